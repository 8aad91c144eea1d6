//! WebSocket connections: the handshake check, a bounded outbound queue per socket, inbound flow
//! control, and the reader/writer pair that runs over a hyper upgrade with tokio-tungstenite.

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::HeaderMap;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;

use crate::stats::Stats;
use crate::topics::Topic;

pub use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

/// Per-route WebSocket settings.
#[derive(Debug, Clone)]
pub struct WsConfig {
    /// Largest message (and frame) accepted from a client; larger ones close the socket with 1009.
    pub max_payload: usize,
    /// Silence allowed before the socket is closed with 1001; a ping is sent half-way through, so
    /// a live client that answers pings is never cut. `None` disables it.
    pub idle_timeout: Option<Duration>,
    /// Outbound bytes a socket may have queued; past it `send` answers `Dropped`.
    pub max_backpressure: usize,
    /// Close the socket (1008) instead of dropping messages once it is over `max_backpressure`.
    pub close_on_backpressure_limit: bool,
}

impl Default for WsConfig {
    fn default() -> Self {
        Self {
            max_payload: 1 << 20,
            idle_timeout: Some(Duration::from_secs(120)),
            max_backpressure: 1 << 20,
            close_on_backpressure_limit: false,
        }
    }
}

/// What happened to one outbound message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendStatus {
    /// Queued for the socket with the queue under `max_backpressure`.
    Sent = 0,
    /// Queued, but the queue is now over `max_backpressure`: wait for `drain` before sending more.
    Queued = 1,
    /// Not queued: the socket is closed, closing, or was already over its limit.
    Dropped = 2,
}

/// Callbacks of one WebSocket route. They run on tokio worker threads and must not block.
pub trait WsEvents: Send + Sync + 'static {
    /// The handshake completed; the socket can send and receive.
    fn open(&self, socket: &WsSocket);
    /// A text or binary message arrived. The implementation must call
    /// [`WsSocket::consumed`] with the message length once it has processed it: the reader stops
    /// reading while too many bytes are unconsumed, so a slow consumer slows the client down
    /// instead of growing a queue.
    fn message(&self, socket: &WsSocket, message: Message);
    /// The outbound queue fell back under half of `max_backpressure` after a `Queued` send.
    fn drain(&self, socket: &WsSocket);
    /// The socket is gone. Fires exactly once, with the peer's close code (1005 when it sent
    /// none, 1006 when the connection just dropped) or the code the server closed with.
    fn close(&self, socket: &WsSocket, code: u16, reason: &str);
}

/// The payload length used for backpressure accounting.
fn message_len(m: &Message) -> usize {
    match m {
        Message::Text(t) => t.len(),
        Message::Binary(b) | Message::Ping(b) | Message::Pong(b) => b.len(),
        Message::Close(_) | Message::Frame(_) => 0,
    }
}

struct Outbox {
    queue: VecDeque<Message>,
    /// Queued bytes plus the bytes of the batch being written.
    bytes: usize,
    /// A close the server asked for, sent after what is already queued.
    closing: Option<(u16, String)>,
    /// The connection is gone; nothing is queued any more.
    closed: bool,
    /// A send crossed the limit: `drain` is due when the queue falls under half of it.
    over: bool,
}

struct Inner {
    id: u64,
    config: WsConfig,
    out: Mutex<Outbox>,
    wake_writer: Notify,
    inbound: AtomicUsize,
    inbound_room: Notify,
    /// Signalled when every delivered message was consumed (`inbound` back to 0), only while
    /// `idle_wanted` says the reader waits for it (a protocol error about to close).
    inbound_idle: Notify,
    idle_wanted: AtomicBool,
    /// Lengths of delivered messages whose consumer is still busy (an async handler), in order.
    deferred: Mutex<VecDeque<usize>>,
    subscriptions: Mutex<Vec<Arc<Topic>>>,
    stats: Arc<Stats>,
    /// What `app.streams()` reads: bytes and messages written, queued bytes, over-limit since.
    probe: Arc<crate::live::Probe>,
}

/// A handle to one WebSocket connection; cheap to clone, usable from any thread.
#[derive(Clone)]
pub struct WsSocket(Arc<Inner>);

/// How long a protocol error waits for the messages before it to be handled before closing.
const CONSUME_BEFORE_CLOSE: Duration = Duration::from_secs(1);

/// Inbound bytes that may wait for the consumer before the reader pauses.
const INBOUND_WINDOW: usize = 1 << 20;

impl WsSocket {
    /// A socket that is not connected yet; messages sent now are queued until the upgrade.
    pub fn new(id: u64, config: WsConfig, stats: Arc<Stats>) -> Self {
        let config_backpressure = config.max_backpressure;
        Self(Arc::new(Inner {
            id,
            config,
            out: Mutex::new(Outbox {
                queue: VecDeque::new(),
                bytes: 0,
                closing: None,
                closed: false,
                over: false,
            }),
            wake_writer: Notify::new(),
            inbound: AtomicUsize::new(0),
            inbound_room: Notify::new(),
            inbound_idle: Notify::new(),
            idle_wanted: AtomicBool::new(false),
            deferred: Mutex::new(VecDeque::new()),
            subscriptions: Mutex::new(Vec::new()),
            stats,
            probe: {
                let probe = Arc::new(crate::live::Probe::default());
                probe.capacity.store(config_backpressure as u64, Ordering::Relaxed);
                probe
            },
        }))
    }

    /// Lists this socket in `live` until the guard is dropped; closing it there sends 1001.
    pub(crate) fn go_live(
        &self,
        live: &Arc<crate::live::Live>,
        req: crate::live::LiveRequest,
    ) -> crate::live::LiveGuard {
        live.register(
            crate::live::LiveKind::WebSocket,
            req,
            self.0.probe.clone(),
            Box::new(WsCloser(self.clone())),
        )
    }

    /// The id given at creation.
    pub fn id(&self) -> u64 {
        self.0.id
    }

    /// Queues a message; see [`SendStatus`].
    pub fn send(&self, message: Message) -> SendStatus {
        let len = message_len(&message);
        let cfg = &self.0.config;
        let mut out = self.0.out.lock();
        if out.closed || out.closing.is_some() {
            return SendStatus::Dropped;
        }
        if out.bytes > cfg.max_backpressure {
            self.0.stats.ws_dropped();
            if cfg.close_on_backpressure_limit {
                out.closing = Some((1008, "backpressure limit".to_owned()));
                drop(out);
                self.0.wake_writer.notify_one();
            }
            return SendStatus::Dropped;
        }
        out.bytes += len;
        self.0.probe.buffered.store(out.bytes as u64, Ordering::Relaxed);
        let status = if out.bytes > cfg.max_backpressure {
            out.over = true;
            self.0.probe.stalled();
            SendStatus::Queued
        } else {
            SendStatus::Sent
        };
        self.enqueue(out, message);
        status
    }

    /// Appends to the queue and wakes the writer if it was idle.
    fn enqueue(&self, mut out: parking_lot::MutexGuard<'_, Outbox>, message: Message) {
        let was_empty = out.queue.is_empty();
        out.queue.push_back(message);
        drop(out);
        if was_empty {
            self.0.wake_writer.notify_one();
        }
    }

    /// Asks for a close handshake with `code` after the queued messages are written.
    pub fn close(&self, code: u16, reason: &str) {
        let mut out = self.0.out.lock();
        if out.closed || out.closing.is_some() {
            return;
        }
        // A close reason is limited to 123 bytes by the protocol; cut on a char boundary.
        let mut end = reason.len().min(123);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        out.closing = Some((code, reason[..end].to_owned()));
        drop(out);
        self.0.wake_writer.notify_one();
    }

    /// Message payload bytes written to the socket so far.
    pub fn sent_bytes(&self) -> u64 {
        self.0.probe.bytes.load(Ordering::Relaxed)
    }

    /// Outbound bytes not yet written to the socket.
    pub fn buffered_amount(&self) -> usize {
        self.0.out.lock().bytes
    }

    /// `true` once the socket is closed or closing.
    pub fn is_closed(&self) -> bool {
        let out = self.0.out.lock();
        out.closed || out.closing.is_some()
    }

    /// The consumer took a message of `len` bytes but is still handling it: it stays counted
    /// against the inbound window until [`WsSocket::consumed_deferred`].
    pub fn defer(&self, len: usize) {
        self.0.deferred.lock().push_back(len);
    }

    /// The oldest deferred message was handled (see [`WsSocket::defer`]).
    pub fn consumed_deferred(&self) {
        let len = self.0.deferred.lock().pop_front();
        if let Some(len) = len {
            self.consumed(len);
        }
    }

    /// Reports that `len` bytes of received messages were processed (see [`WsEvents::message`]).
    pub fn consumed(&self, len: usize) {
        let before = self.0.inbound.fetch_sub(len, Ordering::AcqRel);
        if before >= INBOUND_WINDOW && before - len < INBOUND_WINDOW {
            self.0.inbound_room.notify_one();
        }
        // Only a closing reader waits for this; the echo path must not pay a notify per message.
        if before == len && self.0.idle_wanted.load(Ordering::Acquire) {
            self.0.inbound_idle.notify_waiters();
        }
    }

    pub(crate) fn add_subscription(&self, topic: Arc<Topic>) -> bool {
        let mut subs = self.0.subscriptions.lock();
        if subs.iter().any(|t| Arc::ptr_eq(t, &topic)) {
            return false;
        }
        subs.push(topic);
        true
    }

    pub(crate) fn remove_subscription(&self, topic: &Arc<Topic>) -> bool {
        let mut subs = self.0.subscriptions.lock();
        match subs.iter().position(|t| Arc::ptr_eq(t, topic)) {
            Some(i) => {
                subs.swap_remove(i);
                true
            }
            None => false,
        }
    }

    /// Names of the topics this socket is subscribed to.
    pub fn topics(&self) -> Vec<String> {
        self.0.subscriptions.lock().iter().map(|t| t.name().to_owned()).collect()
    }

    /// Marks the socket closed and leaves every topic; idempotent.
    fn finish(&self) {
        {
            let mut out = self.0.out.lock();
            out.closed = true;
            out.queue.clear();
            out.bytes = 0;
        }
        let subs = std::mem::take(&mut *self.0.subscriptions.lock());
        for t in subs {
            t.remove_ws(self.id());
        }
    }
}

/// `true` when the request asks for a WebSocket upgrade (`Connection: upgrade`,
/// `Upgrade: websocket`).
pub fn is_upgrade_request(headers: &HeaderMap) -> bool {
    let has_token = |name: http::header::HeaderName, token: &str| {
        headers
            .get_all(name)
            .iter()
            .any(|v| v.to_str().is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token))))
    };
    has_token(http::header::CONNECTION, "upgrade") && has_token(http::header::UPGRADE, "websocket")
}

/// `true` when `key` is the base64 of 16 bytes: 22 characters of the base64 alphabet, then `==`.
fn valid_key(key: &[u8]) -> bool {
    let b64 = |b: &u8| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/';
    key.len() == 24 && key[..22].iter().all(b64) && &key[22..] == b"=="
}

/// Checks the rest of the handshake (RFC 6455 §4.2.1: HTTP/1.1 or later, version 13, a key that
/// is the base64 of 16 bytes) and returns `Sec-WebSocket-Accept`.
pub fn accept_key(version: http::Version, headers: &HeaderMap) -> Result<String, &'static str> {
    if version < http::Version::HTTP_11 {
        return Err("WebSocket upgrades need HTTP/1.1");
    }
    if headers.get(http::header::SEC_WEBSOCKET_VERSION).is_none_or(|v| v.as_bytes() != b"13") {
        return Err("Sec-WebSocket-Version must be 13");
    }
    let key = headers.get(http::header::SEC_WEBSOCKET_KEY).ok_or("missing Sec-WebSocket-Key")?;
    if !valid_key(key.as_bytes()) {
        return Err("invalid Sec-WebSocket-Key: not the base64 of 16 bytes");
    }
    Ok(tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes()))
}

/// What a handler answers to accept an upgrade.
pub struct WsAccept {
    /// The socket handle (already known to the handler, so it can send before `open`).
    pub socket: WsSocket,
    /// The route's callbacks.
    pub events: Arc<dyn WsEvents>,
}

/// Closes a socket from outside (the dashboard): a 1001 close after what is queued.
struct WsCloser(WsSocket);

impl crate::live::Closer for WsCloser {
    fn close(&self) {
        self.0.close(1001, "closed by the server");
    }
}

/// Why the connection ended: the code and reason reported to [`WsEvents::close`].
type Outcome = (u16, String);

/// Runs one upgraded connection until it closes; `shutdown` resolving starts a 1001 close.
pub(crate) async fn run<S>(io: S, accept: WsAccept, shutdown: impl Future<Output = ()>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let WsAccept { socket, events } = accept;
    let stats = socket.0.stats.clone();
    stats.ws_opened();
    // Fires `close` exactly once, however this future ends (even if it is dropped).
    let mut guard = CloseGuard { socket: socket.clone(), events: events.clone(), outcome: None };
    let cfg = &socket.0.config;
    let mut wcfg = WebSocketConfig::default();
    wcfg.max_message_size = Some(cfg.max_payload);
    wcfg.max_frame_size = Some(cfg.max_payload);
    // Our queue is the bounded buffer. tungstenite gathers the frames of one batch in its write
    // buffer and writes them together (16 KiB per syscall); `max_write_buffer_size` stays at its
    // default because the batch is already bounded by `max_backpressure`. Its read buffer is
    // zero-filled to full size before every read: 128 KiB by default cost a 128 KiB memset per
    // small message (7.7 % of an echo profile) and that much memory per socket; 8 KiB is enough
    // for small messages and large ones just take more reads.
    wcfg.write_buffer_size = 16 * 1024;
    wcfg.read_buffer_size = 8 * 1024;
    let ws = WebSocketStream::from_raw_socket(io, Role::Server, Some(wcfg)).await;
    let (sink, stream) = ws.split();
    events.open(&socket);
    let reader = read_loop(stream, &socket, &*events);
    let writer = write_loop(sink, &socket, &*events);
    tokio::pin!(reader, writer, shutdown);
    let mut shutting_down = false;
    let outcome = loop {
        tokio::select! {
            r = &mut reader => {
                // The peer closed or vanished: stop queueing, let the writer answer, then stop.
                socket.0.out.lock().closed = true;
                socket.0.wake_writer.notify_one();
                let _ = tokio::time::timeout(Duration::from_secs(2), &mut writer).await;
                break r;
            }
            sent = &mut writer => {
                // We sent a close (or the socket failed): wait briefly for the peer's answer.
                let r = tokio::time::timeout(Duration::from_secs(5), &mut reader).await;
                break match (r, sent) {
                    (Ok((1005 | 1006, _)), Some(ours)) | (Err(_), Some(ours)) => ours,
                    (Ok(theirs), _) => theirs,
                    (Err(_), None) => (1006, String::new()),
                };
            }
            () = &mut shutdown, if !shutting_down => {
                shutting_down = true;
                socket.close(1001, "server shutting down");
            }
        }
    };
    guard.outcome = Some(outcome);
}

/// Reports an accepted socket that never connected (the client left, or it was not an upgrade).
pub(crate) fn abandon(accept: WsAccept) {
    accept.socket.finish();
    accept.events.close(&accept.socket, 1006, "");
}

struct CloseGuard {
    socket: WsSocket,
    events: Arc<dyn WsEvents>,
    outcome: Option<Outcome>,
}

impl Drop for CloseGuard {
    fn drop(&mut self) {
        self.socket.finish();
        self.socket.0.stats.ws_closed();
        let (code, reason) = self.outcome.take().unwrap_or((1006, String::new()));
        self.events.close(&self.socket, code, &reason);
    }
}

async fn read_loop<S>(
    mut stream: futures_util::stream::SplitStream<WebSocketStream<S>>,
    socket: &WsSocket,
    events: &dyn WsEvents,
) -> Outcome
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let inner = &socket.0;
    let half_idle = inner.config.idle_timeout.map(|t| t / 2);
    let mut pinged = false;
    loop {
        // Inbound flow control: wait while the consumer is a window behind.
        loop {
            let room = inner.inbound_room.notified();
            if inner.inbound.load(Ordering::Acquire) < INBOUND_WINDOW {
                break;
            }
            room.await;
        }
        let next = match half_idle {
            Some(t) => match tokio::time::timeout(t, stream.next()).await {
                Ok(n) => n,
                Err(_) if !pinged => {
                    pinged = true;
                    push_control(socket, Message::Ping(Bytes::new()));
                    continue;
                }
                Err(_) => {
                    socket.close(1001, "idle timeout");
                    return (1001, "idle timeout".to_owned());
                }
            },
            None => stream.next().await,
        };
        pinged = false;
        match next {
            Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => {
                inner.inbound.fetch_add(message_len(&m), Ordering::AcqRel);
                inner.stats.ws_in();
                events.message(socket, m);
            }
            Some(Ok(Message::Close(frame))) => {
                return frame.map_or((1005, String::new()), |f| (u16::from(f.code), f.reason.to_string()));
            }
            Some(Ok(_)) => {} // ping (answered by tungstenite), pong, raw frame
            Some(Err(e)) => {
                use tokio_tungstenite::tungstenite::error::{CapacityError, Error, ProtocolError};
                let (code, why) = match e {
                    Error::Capacity(CapacityError::MessageTooLong { .. }) => (1009, "message too big"),
                    Error::Utf8(_) => (1007, "invalid UTF-8"),
                    Error::Protocol(ProtocolError::ResetWithoutClosingHandshake) => {
                        return (1006, String::new())
                    }
                    Error::Protocol(_) => (1002, "protocol error"),
                    _ => return (1006, String::new()),
                };
                // Messages that arrived before the violation (often in the same packet) were
                // valid: let the consumer handle them and queue its answers, which the close
                // then follows. Bounded, so a stuck consumer cannot hold a broken connection.
                inner.idle_wanted.store(true, Ordering::Release);
                let consumed = async {
                    loop {
                        let idle = inner.inbound_idle.notified();
                        if inner.inbound.load(Ordering::Acquire) == 0 {
                            break;
                        }
                        idle.await;
                    }
                };
                let _ = tokio::time::timeout(CONSUME_BEFORE_CLOSE, consumed).await;
                socket.close(code, why);
                return (code, why.to_owned());
            }
            None => return (1006, String::new()),
        }
    }
}

/// Queues a control frame regardless of the backpressure limit.
fn push_control(socket: &WsSocket, m: Message) {
    let out = socket.0.out.lock();
    if !(out.closed || out.closing.is_some()) {
        socket.enqueue(out, m);
    }
}

/// Writes queued messages in batches (`feed` each, one `flush`). Returns the close it sent, or
/// `None` when the socket failed or the peer's close was answered.
async fn write_loop<S>(
    mut sink: futures_util::stream::SplitSink<WebSocketStream<S>, Message>,
    socket: &WsSocket,
    events: &dyn WsEvents,
) -> Option<Outcome>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let inner = &socket.0;
    let mut batch: VecDeque<Message> = VecDeque::new();
    loop {
        let wake = inner.wake_writer.notified();
        let (closing, closed) = {
            let mut out = inner.out.lock();
            std::mem::swap(&mut batch, &mut out.queue);
            (out.closing.clone(), out.closed)
        };
        if batch.is_empty() && closing.is_none() {
            if closed {
                // The peer closed: flush tungstenite's automatic close reply.
                let _ = sink.close().await;
                return None;
            }
            wake.await;
            continue;
        }
        let mut bytes = 0;
        let count = batch.len() as u64;
        for m in batch.drain(..) {
            bytes += message_len(&m);
            if sink.feed(m).await.is_err() {
                return None;
            }
        }
        if sink.flush().await.is_err() {
            return None;
        }
        inner.stats.ws_out(count);
        inner.probe.chunks.fetch_add(count, Ordering::Relaxed);
        inner.probe.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        let drained = {
            let mut out = inner.out.lock();
            out.bytes = out.bytes.saturating_sub(bytes);
            inner.probe.buffered.store(out.bytes as u64, Ordering::Relaxed);
            let drained = out.over && out.bytes <= inner.config.max_backpressure / 2;
            if drained {
                out.over = false;
                inner.probe.unstalled();
            }
            drained
        };
        if drained {
            events.drain(socket);
        }
        if let Some((code, reason)) = closing {
            // Everything queued before the close is out (it was in this batch or an earlier one).
            if !inner.out.lock().queue.is_empty() {
                continue;
            }
            let frame = CloseFrame { code: CloseCode::from(code), reason: Utf8Bytes::from(reason.clone()) };
            let _ = sink.send(Message::Close(Some(frame))).await;
            return Some((code, reason));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn socket(max_backpressure: usize, close_on_limit: bool) -> WsSocket {
        let config =
            WsConfig { max_backpressure, close_on_backpressure_limit: close_on_limit, ..WsConfig::default() };
        WsSocket::new(1, config, Arc::new(Stats::default()))
    }

    #[test]
    fn send_answers_sent_then_queued_past_the_limit_then_dropped() {
        let s = socket(100, false);
        assert_eq!(s.send(Message::text("x".repeat(60))), SendStatus::Sent);
        assert_eq!(s.send(Message::text("x".repeat(60))), SendStatus::Queued);
        assert_eq!(s.send(Message::text("x")), SendStatus::Dropped);
        assert_eq!(s.buffered_amount(), 120);
        assert!(!s.is_closed());
    }

    #[test]
    fn close_on_backpressure_limit_closes_instead_of_dropping_forever() {
        let s = socket(10, true);
        assert_eq!(s.send(Message::text("x".repeat(20))), SendStatus::Queued);
        assert_eq!(s.send(Message::text("x")), SendStatus::Dropped);
        assert!(s.is_closed());
        assert_eq!(s.0.out.lock().closing.as_ref().map(|c| c.0), Some(1008));
    }

    #[test]
    fn close_reasons_are_cut_to_123_bytes_on_a_char_boundary() {
        let s = socket(10, false);
        s.close(4000, &"é".repeat(100));
        let reason = s.0.out.lock().closing.clone().map(|c| c.1).unwrap_or_default();
        assert_eq!(reason.len(), 122);
        assert_eq!(s.send(Message::text("late")), SendStatus::Dropped);
    }

    #[test]
    fn handshakes_need_version_13_and_a_24_character_key() {
        let v = http::Version::HTTP_11;
        let mut h = HeaderMap::new();
        h.insert(http::header::CONNECTION, http::HeaderValue::from_static("keep-alive, Upgrade"));
        h.insert(http::header::UPGRADE, http::HeaderValue::from_static("WebSocket"));
        assert!(is_upgrade_request(&h));
        assert!(accept_key(v, &h).is_err());
        h.insert(http::header::SEC_WEBSOCKET_VERSION, http::HeaderValue::from_static("13"));
        h.insert(http::header::SEC_WEBSOCKET_KEY, http::HeaderValue::from_static("short"));
        assert!(accept_key(v, &h).is_err());
        // The RFC 6455 §1.3 example.
        h.insert(http::header::SEC_WEBSOCKET_KEY, http::HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ=="));
        assert_eq!(accept_key(v, &h).as_deref(), Ok("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
        assert!(accept_key(http::Version::HTTP_10, &h).is_err(), "HTTP/1.0 cannot upgrade");
    }

    #[test]
    fn regression_websocket_key_must_be_the_base64_of_16_bytes() {
        let mut h = HeaderMap::new();
        h.insert(http::header::SEC_WEBSOCKET_VERSION, http::HeaderValue::from_static("13"));
        for bad in [
            "!!!!!!!!!!!!!!!!!!!!!!==",
            "dGhlIHNhbXBsZSBub25jZQ=x",
            "dGhlIHNhbXBsZSBub25jZ===",
            "dGhlIHNhbXBs ZSBub25jZQ=",
        ] {
            h.insert(http::header::SEC_WEBSOCKET_KEY, http::HeaderValue::from_static(bad));
            assert!(accept_key(http::Version::HTTP_11, &h).is_err(), "{bad}");
        }
    }
}
