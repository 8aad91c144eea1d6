//! One upgraded connection: the reader (decode, flow control, idle pings, the close handshake) and
//! the writer (batches of queued frames, then the close) running side by side.

use bytes::BytesMut;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::decode::{Decoder, Incoming, Violation};
use super::deflate::{Deflater, Inflater};
use super::encode::{self, Outgoing};
use super::socket::INBOUND_WINDOW;
use super::{message_len, Message, WsAccept, WsEvents, WsSocket};

/// Why the connection ended: the code and reason reported to [`WsEvents::close`].
type Outcome = (u16, String);

/// How long a close (ours after a violation, or the peer's) waits for the messages before it to
/// be handled, so their answers go out before the close frame.
const CONSUME_BEFORE_CLOSE: Duration = Duration::from_secs(1);

/// Bytes the reader asks the kernel for at a time; a frame larger than this takes more reads.
const READ_CHUNK: usize = 8 * 1024;

/// Bytes read on the stack by a socket that had nothing buffered (see `read_some`): a small
/// message arrives whole, a larger one continues into a heap buffer.
const IDLE_READ: usize = 1024;

/// Batch buffer size past which the writer writes before encoding more.
const WRITE_BATCH: usize = 64 * 1024;

/// Runs one upgraded connection until it closes; `shutdown` resolving starts a 1001 close.
pub async fn run<S>(io: S, accept: WsAccept, shutdown: impl Future<Output = ()>)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let WsAccept { socket, events } = accept;
    let stats = socket.0.stats.clone();
    stats.ws_opened();
    // Fires `close` exactly once, however this future ends (even if it is dropped).
    let mut guard = CloseGuard { socket: socket.clone(), events: events.clone(), outcome: None, kept: false };
    let agreed = socket.0.agreed.lock().clone();
    let inflater = agreed.as_ref().map(Inflater::new);
    let deflater = agreed.map(Deflater::new);
    let decoder = Decoder::new(socket.0.config.max_payload, inflater);
    let (rd, wr) = tokio::io::split(io);
    events.open(&socket);
    let reader = read_loop(rd, decoder, &socket, &*events);
    let writer = write_loop(wr, deflater, &socket, &*events);
    tokio::pin!(reader, writer, shutdown);
    let mut shutting_down = false;
    let outcome = loop {
        tokio::select! {
            r = &mut reader => {
                // The connection was lost (no close frame) or the client is going away (1001: a
                // page closed or reloaded): on a route with `resume` the session keeps queueing
                // for the client's next connection. Any other close ends the session.
                // A client silent past the idle timeout (a phone that lost its network) is lost too.
                let unexpected = match &r.reply {
                    Some((code, _)) => *code == 1001,
                    None => r.outcome.0 == 1006 || r.idle,
                };
                guard.kept = unexpected && socket.resumable() && socket.go_offline();
                if r.idle {
                    // The old connection still gets its close frame (after the queue, unless kept).
                    if guard.kept {
                        socket.reply_close(1001, "idle timeout");
                    } else {
                        socket.close(1001, "idle timeout");
                    }
                }
                if let Some(reply) = &r.reply {
                    // A close frame from the peer is answered after the answers to the messages
                    // before it (Autobahn 7.1.6), or at once when they wait for a resume.
                    if !guard.kept {
                        wait_consumed(&socket).await;
                    }
                    socket.reply_close(reply.0, &reply.1);
                } else if !guard.kept {
                    socket.0.out.lock().closed = true;
                    socket.0.wake_writer.notify_one();
                } else {
                    socket.0.wake_writer.notify_one();
                }
                let _ = tokio::time::timeout(Duration::from_secs(2), &mut writer).await;
                break r.outcome;
            }
            sent = &mut writer => {
                // We sent a close (or the socket failed): wait briefly for the peer's answer.
                if sent.is_none() && socket.resumable() {
                    // A failed write is an unexpected disconnect: what was not written is kept.
                    guard.kept = socket.go_offline();
                }
                let r = tokio::time::timeout(Duration::from_secs(5), &mut reader).await;
                break match (r, sent) {
                    (Ok(ReadEnd { outcome: (1005 | 1006, _), .. }), Some(ours)) | (Err(_), Some(ours)) => ours,
                    (Ok(theirs), _) => theirs.outcome,
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
    accept.socket.end_session();
    accept.events.close(&accept.socket, 1006, "");
}

struct CloseGuard {
    socket: WsSocket,
    events: Arc<dyn WsEvents>,
    outcome: Option<Outcome>,
    /// The socket went offline: its session waits for a resume.
    kept: bool,
}

impl Drop for CloseGuard {
    fn drop(&mut self) {
        self.socket.0.stats.ws_closed();
        let (code, reason) = self.outcome.take().unwrap_or((1006, String::new()));
        if self.kept {
            // Reported before the session can be taken, so the consumer sees this connection's
            // end before the next connection's start.
            self.events.disconnected(&self.socket, code, &reason);
            self.socket.await_resume(self.events.clone());
        } else {
            self.socket.finish();
            self.socket.end_session();
            self.events.close(&self.socket, code, &reason);
        }
    }
}

/// How the reader ended.
struct ReadEnd {
    /// What `close` reports.
    outcome: Outcome,
    /// The close frame to answer with once the earlier messages are handled (the peer closed).
    reply: Option<Outcome>,
    /// The client was silent past the idle timeout.
    idle: bool,
}

impl ReadEnd {
    fn lost() -> Self {
        Self { outcome: (1006, String::new()), reply: None, idle: false }
    }
}

/// Waits (bounded) until every delivered message was consumed, so the consumer's answers are
/// queued before a close frame.
async fn wait_consumed(socket: &WsSocket) {
    let inner = &socket.0;
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
}

async fn read_loop<R: AsyncRead>(
    rd: tokio::io::ReadHalf<R>,
    mut decoder: Decoder,
    socket: &WsSocket,
    events: &dyn WsEvents,
) -> ReadEnd {
    let mut rd = rd;
    let inner = &socket.0;
    let half_idle = inner.config.idle_timeout.map(|t| t / 2);
    let mut pinged = false;
    let mut buf = BytesMut::new();
    loop {
        // Deliver everything already received, pausing while the consumer is a window behind.
        loop {
            let room = inner.inbound_room.notified();
            if inner.inbound.load(Ordering::Acquire) < INBOUND_WINDOW {
                break;
            }
            room.await;
        }
        match decoder.next(&mut buf) {
            Ok(Some(Incoming::Message(m))) => {
                // After our close frame, late messages are not delivered.
                if !socket.is_closed() {
                    inner.inbound.fetch_add(message_len(&m), Ordering::AcqRel);
                    inner.stats.ws_in();
                    events.message(socket, m);
                }
                continue;
            }
            Ok(Some(Incoming::Ping(payload))) => {
                push_control(socket, Message::Pong(payload));
                continue;
            }
            Ok(Some(Incoming::Pong)) => continue,
            Ok(Some(Incoming::Close(frame))) => {
                let outcome = frame.unwrap_or((1005, String::new()));
                return ReadEnd { reply: Some(outcome.clone()), outcome, idle: false };
            }
            Ok(None) => {}
            Err(Violation { code, reason }) => {
                // Messages that arrived before the violation (often in the same packet) were
                // valid: they are handled and answered first, then the close follows.
                wait_consumed(socket).await;
                socket.close(code, reason);
                return ReadEnd { outcome: (code, reason.to_owned()), reply: None, idle: false };
            }
        }
        let next = read_some(&mut rd, &mut buf);
        let read = match half_idle {
            Some(t) => match tokio::time::timeout(t, next).await {
                Ok(r) => r,
                Err(_) if !pinged => {
                    pinged = true;
                    push_control(socket, Message::Ping(bytes::Bytes::new()));
                    continue;
                }
                Err(_) => {
                    return ReadEnd { outcome: (1001, "idle timeout".to_owned()), reply: None, idle: true };
                }
            },
            None => next.await,
        };
        pinged = false;
        match read {
            Ok(0) | Err(_) => return ReadEnd::lost(),
            Ok(_) => {}
        }
    }
}

/// Reads what arrived into `buf`. With nothing buffered the socket is idle, perhaps for hours: it
/// then holds no read buffer and waits with [`IDLE_READ`] bytes on the stack, so an idle socket
/// costs no heap for reading; a busy one reads [`READ_CHUNK`] at a time into `buf`.
async fn read_some<R: AsyncRead>(
    rd: &mut tokio::io::ReadHalf<R>,
    buf: &mut BytesMut,
) -> std::io::Result<usize> {
    if buf.is_empty() {
        *buf = BytesMut::new();
        let mut first = [0u8; IDLE_READ];
        // `read` is cancel-safe: an idle timeout that drops this future loses no bytes.
        let n = rd.read(&mut first).await?;
        buf.extend_from_slice(&first[..n]);
        return Ok(n);
    }
    if buf.capacity() - buf.len() < READ_CHUNK / 2 {
        buf.reserve(READ_CHUNK);
    }
    rd.read_buf(buf).await
}

/// Puts what a failed write did not deliver back at the front of the queue (for a resume), and
/// uncounts the `written` bytes that did go out.
fn requeue(
    socket: &WsSocket,
    unwritten: Vec<Outgoing>,
    rest: &mut std::collections::VecDeque<Outgoing>,
    written: usize,
) {
    put_back(socket, unwritten, rest);
    let mut o = socket.0.out.lock();
    o.bytes = o.bytes.saturating_sub(written);
    if o.offline {
        drop(o);
        socket.written_offline(written);
    }
}

/// Puts items taken for writing back at the front of the queue, in their order.
fn put_back(socket: &WsSocket, unwritten: Vec<Outgoing>, rest: &mut std::collections::VecDeque<Outgoing>) {
    let mut o = socket.0.out.lock();
    for item in rest.drain(..).rev().chain(unwritten.into_iter().rev()) {
        o.pongs += usize::from(matches!(item, Outgoing::Message(Message::Pong(_))));
        o.queue.push_front(item);
    }
}

/// Pongs that may wait in a socket's queue; past it further pings go unanswered until the queue
/// is written.
const MAX_PONGS: usize = 32;

/// Queues a control frame regardless of the backpressure limit, counted like any message. Every
/// ping is answered (Autobahn 2.10 expects all ten), but at most [`MAX_PONGS`] pongs wait, so a
/// client that pings without reading cannot grow the queue (RFC 6455 §5.5.3 lets an endpoint skip
/// pongs for pings it has not answered yet).
fn push_control(socket: &WsSocket, m: Message) {
    let mut out = socket.0.out.lock();
    if out.closed || out.closing.is_some() || out.offline {
        return;
    }
    if matches!(m, Message::Pong(_)) {
        if out.pongs >= MAX_PONGS {
            return;
        }
        out.pongs += 1;
    }
    out.bytes += crate::ws::message_len(&m);
    socket.enqueue(out, Outgoing::Message(m));
}

/// Writes queued messages in batches (encoded into one buffer, large payloads written from their
/// own). Returns the close it sent, or `None` when the socket failed or was closed by the peer.
async fn write_loop<W: AsyncWrite>(
    wr: tokio::io::WriteHalf<W>,
    mut deflater: Option<Deflater>,
    socket: &WsSocket,
    events: &dyn WsEvents,
) -> Option<Outcome> {
    let mut wr = wr;
    let inner = &socket.0;
    let mut batch = std::collections::VecDeque::new();
    let mut out: Vec<u8> = Vec::new();
    loop {
        let wake = inner.wake_writer.notified();
        let (closing, closed, offline) = {
            let mut o = inner.out.lock();
            if !o.offline {
                std::mem::swap(&mut batch, &mut o.queue);
                o.pongs = 0;
            }
            // Offline, the close answers the old connection only: the session may reconnect.
            let closing = if o.offline { o.closing.take() } else { o.closing.clone() };
            (closing, o.closed, o.offline)
        };
        if offline {
            // The queue waits for the client's next connection; only a close reply goes out.
            if let Some((code, reason)) = closing {
                encode::close(&mut out, code, &reason);
                let _ = wr.write_all(&out).await;
                let _ = wr.flush().await;
            }
            return None;
        }
        if batch.is_empty() && closing.is_none() {
            if closed {
                let _ = wr.shutdown().await;
                return None;
            }
            // An idle socket keeps no write buffer.
            out = Vec::new();
            wake.await;
            continue;
        }
        let (mut bytes, mut count) = (0usize, 0u64);
        // Items encoded into `out` but not written yet: on a failed write they go back to the
        // queue, so a session resumed later still gets them.
        let mut unwritten: Vec<Outgoing> = Vec::new();
        let (mut pending_bytes, mut pending_count) = (0usize, 0u64);
        while let Some(item) = batch.pop_front() {
            pending_bytes += item.held();
            pending_count += u64::from(matches!(
                &item,
                Outgoing::Message(Message::Text(_) | Message::Binary(_)) | Outgoing::Shared { .. }
            ));
            if inner.offline.load(Ordering::Acquire) {
                // The session went offline mid-batch: what is not written yet waits for the next
                // connection (its bytes stay counted; the written ones are uncounted below).
                batch.push_front(item);
                put_back(socket, std::mem::take(&mut unwritten), &mut batch);
                out.clear();
                (pending_bytes, pending_count) = (0, 0);
                break;
            }
            unwritten.push(item.clone());
            let direct = encode::encode(&mut out, item, deflater.as_mut());
            if out.len() < WRITE_BATCH && direct.is_none() {
                continue;
            }
            let mut ok = wr.write_all(&out).await.is_ok();
            out.clear();
            if let (true, Some(payload)) = (ok, direct) {
                ok = wr.write_all(&payload).await.is_ok();
            }
            if !ok {
                requeue(socket, unwritten, &mut batch, bytes);
                return None;
            }
            unwritten.clear();
            bytes += std::mem::take(&mut pending_bytes);
            count += std::mem::take(&mut pending_count);
        }
        let ok = (out.is_empty() || wr.write_all(&out).await.is_ok()) && wr.flush().await.is_ok();
        out.clear();
        if !ok {
            requeue(socket, unwritten, &mut batch, bytes);
            return None;
        }
        bytes += pending_bytes;
        count += pending_count;
        inner.stats.ws_out(count);
        inner.probe.chunks.fetch_add(count, Ordering::Relaxed);
        inner.probe.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        let drained = {
            let mut o = inner.out.lock();
            o.bytes = o.bytes.saturating_sub(bytes);
            if o.offline {
                socket.written_offline(bytes);
            }
            inner.probe.buffered.store(o.bytes as u64, Ordering::Relaxed);
            let drained = o.over && o.bytes <= inner.config.max_backpressure / 2;
            if drained {
                o.over = false;
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
            encode::close(&mut out, code, &reason);
            let _ = wr.write_all(&out).await;
            let _ = wr.flush().await;
            return Some((code, reason));
        }
    }
}
