//! The response body type given to hyper, and the core's own short error responses.

use bytes::{Buf, Bytes};
use http::{HeaderMap, HeaderValue, StatusCode};
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::body::ring::{RingBody, StreamAborted};
use crate::body::segments::Segments;
use crate::compression::{self, CompressionConfig, Encoder};
use crate::config::RouteSettings;
use crate::exchange::Tracker;
use crate::files::FileBody;
use crate::handler::{Reply, ReplyBody};
use crate::topics::TopicBody;
use std::sync::Arc;

/// Tracks one exchange and runs its hook exactly once when dropped: when the response body is
/// gone (sent, or its connection closed), or, if no response was ever built, when the request
/// future is dropped (hyper drops it when the client leaves before the reply), so per-request
/// counters always come back down and every exchange reaches the metrics and the access log.
pub(crate) struct OnDone {
    done: Option<(Tracker, DoneHook)>,
    /// A route's `max_streams` slot, given back when the exchange ends.
    slot: Option<RouteSlot>,
}

/// What runs with the finished exchange.
type DoneHook = Box<dyn FnOnce(Tracker) + Send>;

impl OnDone {
    pub(crate) fn new(tracker: Tracker, f: impl FnOnce(Tracker) + Send + 'static) -> Self {
        Self { done: Some((tracker, Box::new(f))), slot: None }
    }

    fn tracker(&mut self) -> Option<&mut Tracker> {
        self.done.as_mut().map(|(t, _)| t)
    }

    /// The response head with `status` went out (for exchanges whose body is not a
    /// [`ResponseBody`], such as a WebSocket).
    pub(crate) fn responded(&mut self, status: StatusCode, stream: bool) {
        if let Some(t) = self.tracker() {
            t.status = Some(status);
            t.head_at = Some(std::time::Instant::now());
            t.stream = stream;
        }
    }

    /// Such an exchange ended after sending `bytes`; `complete` when it ended normally.
    pub(crate) fn ended(&mut self, bytes: u64, complete: bool) {
        if let Some(t) = self.tracker() {
            t.bytes = bytes;
            t.complete = complete;
        }
    }

    /// The request of this exchange as `app.streams()` lists it (read from the tracker, which
    /// already holds the method, target and peer: nothing is cloned for requests that do not
    /// stream). Called once an exchange turns out to be long-lived (a stream, a topic, a
    /// WebSocket), it also gives the tracker a target of its own (see [`crate::detach`]).
    pub(crate) fn live_request(&mut self) -> crate::live::LiveRequest {
        self.detach_target();
        match &self.done {
            Some((t, _)) => crate::live::LiveRequest {
                method: t.method.to_string(),
                path: t.uri.path().to_owned(),
                remote: t.remote,
            },
            None => crate::live::LiveRequest {
                method: String::new(),
                path: String::new(),
                remote: std::net::SocketAddr::from(([0, 0, 0, 0], 0)),
            },
        }
    }

    /// Gives the tracker a target of its own instead of hyper's view of its read buffer (see
    /// [`crate::detach`]): for exchanges that may last long (streams, topics, WebSockets, files).
    fn detach_target(&mut self) {
        if let Some((t, _)) = &mut self.done {
            t.uri = crate::detach::uri(&t.uri);
        }
    }

    /// Holds a route slot until the exchange ends.
    pub(crate) fn hold(&mut self, slot: RouteSlot) {
        self.slot = Some(slot);
    }
}

impl Drop for OnDone {
    fn drop(&mut self) {
        self.slot = None;
        if let Some((t, f)) = self.done.take() {
            f(t);
        }
    }
}

/// One response in progress on a route with `max_streams`; counted while it lives.
pub(crate) struct RouteSlot(Arc<RouteSettings>);

impl RouteSlot {
    pub(crate) fn take(settings: Arc<RouteSettings>) -> Self {
        settings.active.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        Self(settings)
    }
}

impl Drop for RouteSlot {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

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
    /// A stream compressed frame by frame (sync flush after each).
    Encoded(Box<ResponseBody>, Encoder, bool),
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

    /// The response head with `status` is being handed to the connection.
    pub(crate) fn responded(&mut self, status: StatusCode) {
        let stream = self.kind.is_stream();
        if let Some(t) = self.on_done.as_mut().and_then(OnDone::tracker) {
            t.status = Some(status);
            t.head_at = Some(std::time::Instant::now());
            t.stream = stream;
        }
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        // A body with nothing (left) to send is complete even if hyper never polled it.
        let end = self.kind.is_end();
        if let Some(t) = self.on_done.as_mut().and_then(OnDone::tracker) {
            t.complete |= end;
        }
    }
}

impl Kind {
    fn is_stream(&self) -> bool {
        match self {
            Kind::Ring(_) | Kind::Topic(_) => true,
            Kind::Encoded(inner, ..) => inner.kind.is_stream(),
            Kind::Full(_) | Kind::File(_) => false,
        }
    }

    fn is_end(&self) -> bool {
        match self {
            Kind::Full(b) => b.as_ref().is_none_or(Bytes::is_empty),
            Kind::Ring(r) => r.is_end_stream(),
            Kind::Topic(t) => t.is_end_stream(),
            Kind::File(f) => f.is_end_stream(),
            Kind::Encoded(_, _, finished) => *finished,
        }
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Segments>, StreamAborted>>> {
        let one = |f: Frame<Bytes>| f.map_data(Segments::from);
        match self {
            Kind::Full(b) => {
                Poll::Ready(b.take().filter(|b| !b.is_empty()).map(|b| Ok(Frame::data(b.into()))))
            }
            Kind::Ring(r) => Pin::new(r).poll_frame(cx),
            Kind::Topic(t) => Pin::new(t).poll_frame(cx).map_ok(one),
            Kind::File(f) => Pin::new(f).poll_frame(cx).map_ok(one),
            Kind::Encoded(inner, encoder, finished) => loop {
                match Pin::new(&mut **inner).poll_frame(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                    Poll::Ready(Some(Ok(frame))) => {
                        let Ok(data) = frame.into_data() else { continue };
                        match encoder.write_parts(data.iter().map(|b| &b[..])) {
                            Ok(out) if out.is_empty() => continue,
                            Ok(out) => return Poll::Ready(Some(Ok(Frame::data(out.into())))),
                            Err(_) => return Poll::Ready(Some(Err(StreamAborted))),
                        }
                    }
                    Poll::Ready(None) if *finished => return Poll::Ready(None),
                    Poll::Ready(None) => {
                        *finished = true;
                        return match encoder.finish() {
                            Ok(out) if out.is_empty() => Poll::Ready(None),
                            Ok(out) => Poll::Ready(Some(Ok(Frame::data(out.into())))),
                            Err(_) => Poll::Ready(Some(Err(StreamAborted))),
                        };
                    }
                }
            },
        }
    }
}

impl Body for ResponseBody {
    type Data = Segments;
    type Error = StreamAborted;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Segments>, StreamAborted>>> {
        let this = self.get_mut();
        let polled = this.kind.poll(cx);
        if let Some(t) = this.on_done.as_mut().and_then(OnDone::tracker) {
            match &polled {
                Poll::Ready(Some(Ok(frame))) => {
                    t.bytes += frame.data_ref().map_or(0, |d| d.remaining() as u64)
                }
                Poll::Ready(None) => t.complete = true,
                Poll::Ready(Some(Err(_))) | Poll::Pending => {}
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.kind.is_end()
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Ring(r) => r.size_hint(),
            Kind::Topic(t) => t.size_hint(),
            Kind::File(f) => f.size_hint(),
            Kind::Encoded(..) => SizeHint::default(),
        }
    }
}

/// Compresses `res` for a client that accepts `accept`, when the server setting (or the
/// stream's own override) allows it and the response is eligible. Whole bodies under the
/// threshold are left alone; streams are compressed frame by frame; topic streams never are
/// (each subscriber would need its own compressor state, defeating the shared frame).
pub(crate) fn compress(
    res: &mut http::Response<ResponseBody>,
    accept: Option<&HeaderValue>,
    config: Option<&CompressionConfig>,
    head: bool,
    route: Option<bool>,
) {
    let body = res.body_mut();
    let default = route.unwrap_or(config.is_some());
    let wanted = match &body.kind {
        Kind::Ring(r) => r.compress().unwrap_or(default),
        Kind::Topic(_) | Kind::Encoded(..) => false,
        Kind::Full(_) | Kind::File(_) => default,
    };
    if !wanted || !compression::eligible(res.status(), res.headers()) {
        return;
    }
    compression::add_vary(res.headers_mut());
    let defaults = CompressionConfig::default();
    let config = config.unwrap_or(&defaults);
    let Some(encoding) = compression::negotiate(accept, config) else { return };
    let body = res.body_mut();
    match &mut body.kind {
        Kind::Full(Some(b)) if b.len() < config.threshold => return,
        Kind::Full(None) => return,
        Kind::Full(Some(b)) => {
            if !head {
                match compression::compress_all(encoding, config.level, b) {
                    Ok(c) => *b = c,
                    Err(_) => return,
                }
            }
        }
        _ => {
            let Ok(encoder) = Encoder::new(encoding, config.level) else { return };
            if let Kind::Ring(r) = &body.kind {
                r.compressed();
            }
            let inner =
                ResponseBody { kind: std::mem::replace(&mut body.kind, Kind::Full(None)), on_done: None };
            body.kind = Kind::Encoded(Box::new(inner), encoder, false);
        }
    }
    res.headers_mut().insert(http::header::CONTENT_ENCODING, HeaderValue::from_static(encoding.token()));
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
        // `drain` names a header once and yields its further values with `None`: carry the name
        // forward, or every repeated header (`Set-Cookie`) would keep only its first value.
        let mut keep = HeaderMap::with_capacity(headers.len());
        let mut last: Option<http::HeaderName> = None;
        for (k, v) in headers.drain() {
            if let Some(k) = k {
                last = Some(k);
            }
            if let Some(k) = last.as_ref().filter(|k| !is_managed(k)) {
                keep.append(k.clone(), v);
            }
        }
        headers = keep;
    }
    if status == StatusCode::UPGRADE_REQUIRED {
        // RFC 9110 §15.5.22: a 426 names the protocol to upgrade to.
        headers.insert(http::header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(http::header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
    // A download to a slow client lasts as long as a stream: its tracker gets a target of its own
    // (streams, topics and WebSockets get theirs when they go live, see `OnDone::live_request`).
    let on_done = on_done.map(|mut d| {
        if matches!(body, crate::handler::ReplyBody::File(_)) {
            d.detach_target();
        }
        d
    });
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regression_a_live_exchange_no_longer_holds_the_buffer_hyper_read_its_head_into() {
        // The access-log tracker kept a clone of the target, a view of hyper's read buffer, for
        // the whole exchange: every stalled stream held that 8 KiB beside hyper's next buffer.
        let head = bytes::Bytes::from(b"/stream?bytes=1000000".to_vec());
        let uri = http::Uri::from_maybe_shared(head.clone()).expect("uri");
        let remote = std::net::SocketAddr::from(([127, 0, 0, 1], 9));
        let tracker = crate::exchange::Tracker::new(http::Method::GET, uri, remote);
        let (tx, rx) = std::sync::mpsc::channel();
        let mut done = OnDone::new(tracker, move |t| tx.send(t.finish()).expect("send"));
        assert!(!head.is_unique());
        let live = done.live_request();
        assert_eq!((live.method.as_str(), live.path.as_str()), ("GET", "/stream"));
        assert!(head.is_unique(), "the tracker still shares the head buffer");
        drop(done);
        let exchange = rx.recv().expect("exchange");
        assert_eq!(exchange.uri.expect("uri"), "/stream?bytes=1000000");
    }

    #[tokio::test]
    async fn regression_a_file_download_no_longer_holds_the_buffer_hyper_read_its_head_into() {
        // A download to a slow client lasts as long as a stream; its tracker kept hyper's view
        // of the target too. Larger than one read, so the file is streamed, not read whole.
        let path = std::env::temp_dir().join(format!("cz-detach-{}.bin", std::process::id()));
        std::fs::write(&path, vec![b'x'; crate::files::CHUNK * 2]).expect("write");
        let reply = crate::files::file_reply(path.clone(), Default::default(), Default::default()).await;
        std::fs::remove_file(&path).expect("remove");
        assert!(matches!(reply.body, crate::handler::ReplyBody::File(_)), "a streamed file");
        let head = bytes::Bytes::from(b"/files/big.bin".to_vec());
        let uri = http::Uri::from_maybe_shared(head.clone()).expect("uri");
        let remote = std::net::SocketAddr::from(([127, 0, 0, 1], 9));
        let tracker = crate::exchange::Tracker::new(http::Method::GET, uri, remote);
        let res = build(reply, Some(OnDone::new(tracker, |_| {})));
        assert!(head.is_unique(), "the tracker still shares the head buffer");
        drop(res);
    }

    #[test]
    fn regression_repeated_response_headers_survive_a_managed_header() {
        let mut headers = HeaderMap::new();
        headers.append(http::header::SET_COOKIE, HeaderValue::from_static("a=1"));
        headers.append(http::header::SET_COOKIE, HeaderValue::from_static("b=2"));
        headers.append(http::header::CONNECTION, HeaderValue::from_static("close"));
        headers.append(http::header::VARY, HeaderValue::from_static("x"));
        headers.append(http::header::VARY, HeaderValue::from_static("y"));
        headers.append(http::header::CONTENT_LENGTH, HeaderValue::from_static("999"));
        let res = build(Reply::full(StatusCode::OK, headers, "hi"), None);
        let values =
            |n| res.headers().get_all(n).iter().map(|v| v.to_str().unwrap_or("?")).collect::<Vec<_>>();
        assert_eq!(values(http::header::SET_COOKIE), ["a=1", "b=2"]);
        assert_eq!(values(http::header::VARY), ["x", "y"]);
        assert!(res.headers().get(http::header::CONNECTION).is_none());
        assert!(res.headers().get(http::header::CONTENT_LENGTH).is_none());
    }
}
