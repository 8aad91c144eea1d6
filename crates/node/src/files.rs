//! `NativeServer` methods for files: `sendFile` answers a request with a file read in Rust, and
//! static routes are answered in Rust without entering JS.

use catzilla_core::http::{HeaderValue, StatusCode};
use catzilla_core::{file_reply, Conditions, Confinement, FileOptions, Reply, StaticOptions};
use napi_derive::napi;
use std::path::PathBuf;
use std::sync::Arc;

use crate::server::{code_error, parse_headers, NativeServer};

/// A directory served by a static route.
#[derive(Clone)]
pub(crate) struct StaticRoute {
    pub(crate) root: Arc<PathBuf>,
    pub(crate) options: Arc<StaticOptions>,
}

fn header_value(v: Option<String>) -> napi::Result<Option<HeaderValue>> {
    v.map(|s| HeaderValue::from_str(&s).map_err(|_| code_error("CZ_BAD_HEADER", "invalid header value")))
        .transpose()
}

#[napi]
impl NativeServer {
    /// Makes route `routeId` (a `prefix/*` pattern) serve files from `dir` in Rust. Throws
    /// `CZ_STATIC` when `dir` is not a readable directory.
    #[napi(catch_unwind)]
    pub fn static_route(
        &self,
        route_id: u32,
        dir: String,
        index: Option<String>,
        dotfiles: bool,
        cache_control: Option<String>,
    ) -> napi::Result<()> {
        let root = PathBuf::from(&dir)
            .canonicalize()
            .ok()
            .filter(|p| p.is_dir())
            .ok_or_else(|| code_error("CZ_STATIC", format!("{dir:?} is not a readable directory")))?;
        let options = StaticOptions { index, dotfiles, cache_control: header_value(cache_control)? };
        self.statics
            .lock()
            .insert(route_id, StaticRoute { root: Arc::new(root), options: Arc::new(options) });
        Ok(())
    }

    /// Answers request `id` with the file at `path` (200, 206, 304, 404, 403 or 416), with the
    /// request's conditional headers. With `root`, a relative `path` is resolved against it and
    /// the file actually opened must resolve inside it (dotfiles only with `dotfiles`), else 404.
    /// Resolves to the status sent (0 if the client is gone).
    #[napi(catch_unwind)]
    #[allow(clippy::too_many_arguments, reason = "one flat call per file keeps it one crossing")]
    pub async fn send_file(
        &self,
        id: u32,
        path: String,
        root: Option<String>,
        dotfiles: bool,
        headers: String,
        content_type: Option<String>,
        range: Option<String>,
        if_range: Option<String>,
        if_none_match: Option<String>,
        if_modified_since: Option<String>,
    ) -> napi::Result<u32> {
        let Some(h) = self.handler() else { return Ok(0) };
        let Some(extra) = parse_headers(&headers) else {
            return Err(code_error("CZ_BAD_HEADER", "invalid header"));
        };
        let content_type = header_value(content_type)?;
        let Some(responder) = h.take_final(id) else { return Ok(0) };
        let cond = Conditions { range, if_range, if_none_match, if_modified_since };
        let (path, confine) = match root {
            None => (PathBuf::from(path), None),
            Some(root) => {
                let root = PathBuf::from(root);
                let confine = tokio::task::spawn_blocking(move || Confinement::new(&root, dotfiles))
                    .await
                    .ok()
                    .and_then(Result::ok);
                match confine {
                    Some(c) => (c.root().join(path), Some(c)),
                    None => {
                        let reply = Reply::text(StatusCode::NOT_FOUND, "Not Found");
                        return Ok(if responder.send(reply) { 404 } else { 0 });
                    }
                }
            }
        };
        let opts = FileOptions { content_type, cache_control: None, headers: extra, confine };
        let reply = file_reply(path, cond, opts).await;
        let status = u32::from(reply.status.as_u16());
        Ok(if responder.send(reply) { status } else { 0 })
    }
}
