//! The response body type given to hyper, and the core's own short error responses.

use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::body::ring::{RingBody, StreamAborted};
use crate::files::FileBody;
use crate::handler::{Reply, ReplyBody};
use crate::topics::TopicBody;

/// Called when a response body is dropped (sent, or its connection closed).
pub(crate) type OnDone = Box<dyn FnOnce() + Send>;

/// A response body: complete (with `Content-Length`) or a streaming ring.
pub struct ResponseBody {
    kind: Kind,
    on_done: Option<OnDone>,
}

enum Kind {
    Full(Option<Bytes>),
    Ring(RingBody),
    Topic(TopicBody),
    File(FileBody),
}

impl ResponseBody {
    pub(crate) fn new(body: ReplyBody, on_done: Option<OnDone>) -> Self {
        let kind = match body {
            ReplyBody::Full(b) => Kind::Full(Some(b)),
            ReplyBody::Stream(r) => Kind::Ring(r),
            ReplyBody::Topic(t) => Kind::Topic(t),
            ReplyBody::File(f) => Kind::File(f),
            // The server handles upgrades before building a response; never reached with one.
            ReplyBody::WebSocket(_) => Kind::Full(None),
        };
        Self { kind, on_done }
    }
}

impl ResponseBody {
    pub(crate) fn with_done(mut self, on_done: OnDone) -> Self {
        self.on_done = Some(on_done);
        self
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        if let Some(f) = self.on_done.take() {
            f();
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = StreamAborted;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, StreamAborted>>> {
        match &mut self.get_mut().kind {
            Kind::Full(b) => Poll::Ready(b.take().filter(|b| !b.is_empty()).map(|b| Ok(Frame::data(b)))),
            Kind::Ring(r) => Pin::new(r).poll_frame(cx),
            Kind::Topic(t) => Pin::new(t).poll_frame(cx),
            Kind::File(f) => Pin::new(f).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full(b) => b.as_ref().is_none_or(Bytes::is_empty),
            Kind::Ring(r) => r.is_end_stream(),
            Kind::Topic(t) => t.is_end_stream(),
            Kind::File(f) => f.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Ring(r) => r.size_hint(),
            Kind::Topic(t) => t.size_hint(),
            Kind::File(f) => f.size_hint(),
        }
    }
}

/// Headers a handler may not set: hyper owns the framing and the connection.
fn is_managed(name: &http::HeaderName) -> bool {
    use http::header::*;
    name == CONNECTION
        || name == TRANSFER_ENCODING
        || name == CONTENT_LENGTH
        || name == UPGRADE
        || name == TE
        || name == TRAILER
        || name.as_str() == "keep-alive"
        || name.as_str() == "proxy-connection"
}

/// Turns a handler's reply into a hyper response.
pub(crate) fn build(reply: Reply, on_done: Option<OnDone>) -> http::Response<ResponseBody> {
    let Reply { status, mut headers, body } = reply;
    if headers.keys().any(is_managed) {
        let keep: Vec<_> = headers.drain().filter_map(|(k, v)| k.map(|k| (k, v))).collect();
        for (k, v) in keep {
            if !is_managed(&k) {
                headers.append(k, v);
            }
        }
    }
    if status == StatusCode::UPGRADE_REQUIRED {
        // RFC 9110 §15.5.22: a 426 names the protocol to upgrade to.
        headers.insert(http::header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(http::header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
    let mut res = http::Response::new(ResponseBody::new(body, on_done));
    *res.status_mut() = status;
    *res.headers_mut() = headers;
    res
}

/// A short plain-text error response built by the core itself.
pub(crate) fn error(status: StatusCode, message: &str) -> http::Response<ResponseBody> {
    build(Reply::text(status, message), None)
}

/// `405 Method Not Allowed` with its `Allow` header.
pub(crate) fn method_not_allowed(allow: &str) -> http::Response<ResponseBody> {
    let mut res = error(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
    if let Ok(v) = HeaderValue::from_str(allow) {
        res.headers_mut().insert(http::header::ALLOW, v);
    }
    res
}
