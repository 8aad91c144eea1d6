//! `NativeServer` methods for files: `sendFile` answers a request with a file read in Rust, and
//! static routes are answered in Rust without entering JS.

use catzilla_core::http::HeaderValue;
use catzilla_core::{file_reply, Conditions, FileOptions, StaticOptions};
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
    #[napi]
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
    /// request's conditional headers. Resolves to the status sent (0 if the client is gone).
    #[napi]
    #[allow(clippy::too_many_arguments, reason = "one flat call per file keeps it one crossing")]
    pub async fn send_file(
        &self,
        id: u32,
        path: String,
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
        let opts = FileOptions { content_type, cache_control: None, headers: extra };
        let reply = file_reply(PathBuf::from(path), cond, opts).await;
        let status = u32::from(reply.status.as_u16());
        Ok(if responder.send(reply) { status } else { 0 })
    }
}
