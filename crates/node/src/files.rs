//! `NativeServer` methods for files: `sendFile` answers a request with a file read in Rust, and
//! static routes are answered in Rust without entering JS.

use catzilla_core::http::{HeaderValue, StatusCode};
use catzilla_core::{file_reply, Conditions, Confinement, FileOptions, Reply, StaticDir, StaticOptions};
use napi_derive::napi;
use std::path::PathBuf;

use crate::server::{code_error, parse_headers, NativeServer};

fn header_value(v: Option<String>) -> napi::Result<Option<HeaderValue>> {
    v.map(|s| HeaderValue::from_str(&s).map_err(|_| code_error("CZ_BAD_HEADER", "invalid header value")))
        .transpose()
}

#[napi]
impl NativeServer {
    /// Serves the files under `dir` at `prefix/` and `prefix/*`, answered in Rust (requests
    /// never reach JS). Throws `CZ_STATIC` when `dir` is not a readable directory and
    /// `CZ_ROUTE` when the prefix clashes with a route.
    #[napi(catch_unwind)]
    pub fn static_dir(&self, prefix: String, dir: String, options: StaticDirOptions) -> napi::Result<()> {
        let static_options = StaticOptions {
            index: options.index,
            dotfiles: options.dotfiles,
            cache_control: header_value(options.cache_control)?,
        };
        let static_dir = StaticDir::new(&PathBuf::from(&dir), static_options)
            .map_err(|_| code_error("CZ_STATIC", format!("{dir:?} is not a readable directory")))?;
        self.builder.lock().static_dir(&prefix, static_dir).map_err(|e| code_error("CZ_ROUTE", e.to_string()))
    }

    /// Answers request `id` with the file at `path` (200, 206, 304, 404, 403 or 416), deciding
    /// ranges and conditions from the request head kept in Rust. With `root`, a relative `path`
    /// is resolved against it and the file actually opened must resolve inside it (dotfiles only
    /// with `dotfiles`), else 404. Resolves to the status and the body bytes sent (status 0 if the
    /// client is gone).
    #[napi(catch_unwind)]
    pub async fn send_file(&self, id: u32, path: String, options: FileSendOptions) -> napi::Result<FileSent> {
        let gone = FileSent { status: 0, bytes: 0.0 };
        let Some(h) = self.handler() else { return Ok(gone) };
        let Some(extra) = parse_headers(&options.headers) else {
            return Err(code_error("CZ_BAD_HEADER", "invalid header"));
        };
        let content_type = header_value(options.content_type)?;
        let Some((responder, head)) = h.take_final_with_head(id) else { return Ok(gone) };
        let cond = Conditions::from_headers(&head);
        let (path, confine) = match options.root {
            None => (PathBuf::from(path), None),
            Some(root) => {
                let root = PathBuf::from(root);
                let dotfiles = options.dotfiles.unwrap_or(false);
                let confine = tokio::task::spawn_blocking(move || Confinement::new(&root, dotfiles))
                    .await
                    .ok()
                    .and_then(Result::ok);
                match confine {
                    Some(c) => (c.root().join(path), Some(c)),
                    None => {
                        let reply = Reply::text(StatusCode::NOT_FOUND, "Not Found");
                        let bytes = reply_bytes(&reply);
                        return Ok(if responder.send(reply) {
                            FileSent { status: 404, bytes }
                        } else {
                            gone
                        });
                    }
                }
            }
        };
        let opts = FileOptions { content_type, cache_control: None, headers: extra, confine };
        let reply = file_reply(path, cond, opts).await;
        let sent = FileSent { status: u32::from(reply.status.as_u16()), bytes: reply_bytes(&reply) };
        Ok(if responder.send(reply) { sent } else { gone })
    }
}

/// Named options of `staticDir`.
#[napi(object)]
pub struct StaticDirOptions {
    /// File served for a directory (none: directories are 404).
    pub index: Option<String>,
    /// Serve names starting with `.`.
    pub dotfiles: bool,
    /// `Cache-Control` for every file.
    pub cache_control: Option<String>,
}

/// Named options of `sendFile`.
#[napi(object)]
pub struct FileSendOptions {
    /// Directory the file must stay inside; a relative path is resolved against it.
    pub root: Option<String>,
    /// With `root`: serve names starting with `.`.
    pub dotfiles: Option<bool>,
    /// Extra response headers, packed `name\0value\0...`.
    pub headers: String,
    /// `Content-Type`; guessed from the name when absent.
    pub content_type: Option<String>,
}

/// What `sendFile` sent.
#[napi(object)]
pub struct FileSent {
    /// Status sent (0: the client was gone).
    pub status: u32,
    /// Body bytes of the reply (the range for a 206, 0 for a 304).
    pub bytes: f64,
}

fn reply_bytes(reply: &Reply) -> f64 {
    reply.body_len().unwrap_or(0) as f64
}
