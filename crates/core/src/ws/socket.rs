//! The socket handle: a bounded outbound queue, inbound flow control, topic subscriptions and the
//! agreed permessage-deflate parameters of one WebSocket connection.

use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::Notify;

use super::deflate::{deflate_alone, Agreed};
use super::encode::Outgoing;
use super::resume::SessionRef;
use super::{Message, SendStatus, WsCloser, WsConfig};
use crate::stats::Stats;
use crate::topics::Topic;

pub(super) struct Outbox {
    pub(super) queue: VecDeque<Outgoing>,
    /// Queued bytes plus the bytes of the batch being written.
    pub(super) bytes: usize,
    /// A close the server asked for, sent after what is already queued.
    pub(super) closing: Option<(u16, String)>,
    /// The connection is gone; nothing is queued any more.
    pub(super) closed: bool,
    /// A send crossed the limit: `drain` is due when the queue falls under half of it.
    pub(super) over: bool,
    /// The connection is gone but the session waits for its client: sends are queued within the
    /// route's resume bounds, oldest dropped first.
    pub(super) offline: bool,
    /// Messages dropped while offline since the last connection.
    pub(super) dropped: u64,
    /// Offline and its disconnect reported: a new connection may take it.
    pub(super) awaiting: bool,
    /// Pongs in `queue` (bounded, see `push_control`).
    pub(super) pongs: usize,
    /// While a session claimed from Redis has its missed messages read: everything sent meanwhile
    /// (topic messages with their topic and event id), queued after them by `release`.
    pub(super) hold: Option<Hold>,
    /// After such a replay: per topic, the newest event id the socket already has; a late live
    /// copy of it (or of anything older) is dropped.
    pub(super) floors: Vec<(String, u64)>,
}

/// Messages held back behind a replay, bounded by `max_backpressure`.
#[derive(Default)]
pub(super) struct Hold {
    items: Vec<(Option<(String, u64)>, Outgoing)>,
    bytes: usize,
    /// Messages that did not fit: the client is told with `cz-gap` for each topic.
    overflowed: bool,
}

pub(super) struct Inner {
    pub(super) id: u64,
    pub(super) config: WsConfig,
    pub(super) out: Mutex<Outbox>,
    pub(super) wake_writer: Notify,
    pub(super) inbound: AtomicUsize,
    pub(super) inbound_room: Notify,
    /// Signalled when every delivered message was consumed (`inbound` back to 0), only while
    /// `idle_wanted` says the reader waits for it (a protocol error about to close).
    pub(super) inbound_idle: Notify,
    pub(super) idle_wanted: AtomicBool,
    /// Lengths of delivered messages whose consumer is still busy (an async handler), in order.
    pub(super) deferred: Mutex<VecDeque<usize>>,
    pub(super) subscriptions: Mutex<Vec<Arc<Topic>>>,
    pub(super) stats: Arc<Stats>,
    /// What `app.streams()` reads: bytes and messages written, queued bytes, over-limit since.
    pub(super) probe: Arc<crate::live::Probe>,
    /// permessage-deflate as agreed in the handshake of the current connection.
    pub(super) agreed: Mutex<Option<Agreed>>,
    /// The session, on routes with `resume`.
    pub(super) session: Mutex<Option<SessionRef>>,
    /// The session registry, set with the first session; read without locking `session`, so
    /// code holding `out` never waits for `session` (which `reconnect` takes before `out`).
    pub(super) registry: std::sync::OnceLock<std::sync::Weak<super::resume::Sessions>>,
    /// Mirrors `Outbox::offline` for the writer's check between two writes.
    pub(super) offline: AtomicBool,
}

/// A handle to one WebSocket connection; cheap to clone, usable from any thread.
#[derive(Clone)]
pub struct WsSocket(pub(super) Arc<Inner>);

/// Inbound bytes that may wait for the consumer before the reader pauses.
pub(super) const INBOUND_WINDOW: usize = 1 << 20;

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
                offline: false,
                dropped: 0,
                awaiting: false,
                pongs: 0,
                hold: None,
                floors: Vec::new(),
            }),
            wake_writer: Notify::new(),
            inbound: AtomicUsize::new(0),
            inbound_room: Notify::new(),
            inbound_idle: Notify::new(),
            idle_wanted: AtomicBool::new(false),
            deferred: Mutex::new(VecDeque::new()),
            subscriptions: Mutex::new(Vec::new()),
            stats,
            agreed: Mutex::new(None),
            session: Mutex::new(None),
            registry: std::sync::OnceLock::new(),
            offline: AtomicBool::new(false),
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
        self.push(Outgoing::Message(message), None)
    }

    /// Queues a topic message (`tag`: its topic and event id, when it has one). When this socket
    /// compresses every message alone with a 15-bit window, the payload is compressed once, into
    /// `shared`, for every such subscriber.
    pub(crate) fn send_topic(
        &self,
        message: &Message,
        shared: &mut Option<(u32, Bytes)>,
        tag: Option<(&str, u64)>,
    ) -> SendStatus {
        let payload = match message {
            Message::Text(t) => t.as_bytes(),
            Message::Binary(b) => &b[..],
            _ => return self.push(Outgoing::Message(message.clone()), tag),
        };
        let agreed = self.0.agreed.lock().clone();
        match agreed {
            Some(a) if a.shares_payloads() && payload.len() >= a.threshold => {
                let z = match shared {
                    Some((level, z)) if *level == a.level => z.clone(),
                    _ => {
                        let z = deflate_alone(payload, a.level, 15);
                        *shared = Some((a.level, z.clone()));
                        z
                    }
                };
                self.push(Outgoing::Shared { message: message.clone(), deflated: z, level: a.level }, tag)
            }
            _ => self.push(Outgoing::Message(message.clone()), tag),
        }
    }

    /// The config this socket was created with.
    pub fn config(&self) -> &WsConfig {
        &self.0.config
    }

    /// Records the permessage-deflate agreement made in the handshake (`None`: not agreed).
    pub(crate) fn set_agreed(&self, agreed: Option<Agreed>) {
        *self.0.agreed.lock() = agreed;
    }

    /// The session id the client resumes with (routes with `resume` only).
    pub fn session_id(&self) -> Option<String> {
        self.0.session.lock().as_ref().map(|s| s.id.clone())
    }

    pub(super) fn set_session(&self, session: SessionRef) {
        let _ = self.0.registry.set(session.registry.clone());
        *self.0.session.lock() = Some(session);
    }

    /// Queues the session message first: `{"type":"cz-session","session":…,"recovered":…,"dropped":…}`.
    pub(super) fn greet(&self, id: &str, recovered: bool, dropped: u64) {
        let text = format!(
            r#"{{"type":"cz-session","session":"{id}","recovered":{recovered},"dropped":{dropped}}}"#
        );
        let item = Outgoing::Message(Message::text(text));
        let mut out = self.0.out.lock();
        out.bytes += item.held();
        out.queue.push_front(item);
        drop(out);
        self.0.wake_writer.notify_one();
    }

    /// Takes this offline socket for a new connection of `route` under session id `fresh`.
    /// Returns the queued bytes (no longer offline) and how many messages were dropped.
    pub(super) fn reconnect(&self, route: u32, fresh: &str) -> Option<(usize, u64)> {
        let mut session = self.0.session.lock();
        let s = session.as_mut().filter(|s| s.route == route)?;
        let mut out = self.0.out.lock();
        if !(out.offline && out.awaiting) {
            return None;
        }
        out.offline = false;
        self.0.offline.store(false, Ordering::Release);
        out.awaiting = false;
        // The close that answered the old connection's 1001 belongs to it, not to this one.
        out.closing = None;
        out.closed = false;
        // What was charged offline is released by the caller; from now on only the queue counts
        // (a writer dropped mid-batch left its items' bytes behind).
        let charged = out.bytes;
        out.bytes = out.queue.iter().map(Outgoing::held).sum();
        out.over = out.bytes > self.0.config.max_backpressure;
        s.id = fresh.to_owned();
        s.epoch += 1;
        self.0.inbound.store(0, Ordering::Release);
        self.0.deferred.lock().clear();
        Some((charged, std::mem::take(&mut out.dropped)))
    }

    /// Whether this connection's end keeps the session for a resume: the route has `resume` and
    /// the session is still registered.
    pub(super) fn resumable(&self) -> bool {
        self.0.config.resume.is_some()
            && self.0.session.lock().as_ref().is_some_and(|s| s.registry.strong_count() > 0)
    }

    /// The connection ended without a clean close: keep the socket subscribed and queueing
    /// within the resume bounds (what the writer had not written stays queued).
    pub(super) fn go_offline(&self) -> bool {
        let Some(resume) = self.0.config.resume.clone() else { return false };
        let Some(registry) = self.registry() else { return false };
        let mut out = self.0.out.lock();
        // A close the server asked for (the app, a limit, shutdown) ends the session even when the
        // connection dropped before the close frame went out.
        if out.offline || out.closed || out.closing.is_some() {
            return false;
        }
        out.offline = true;
        self.0.offline.store(true, Ordering::Release);
        out.over = false;
        out.dropped = 0;
        // Pings and pongs of the old connection mean nothing to the next one.
        let mut removed = 0;
        out.queue.retain(|i| {
            let control = matches!(i, Outgoing::Message(Message::Ping(_) | Message::Pong(_)));
            if control {
                removed += i.held();
            }
            !control
        });
        out.bytes = out.bytes.saturating_sub(removed);
        out.pongs = 0;
        registry.charge(out.bytes);
        self.bound_offline(&mut out, &resume, &registry);
        true
    }

    /// The disconnect was reported: the session may now be resumed, until its TTL.
    pub(super) fn await_resume(&self, events: Arc<dyn super::WsEvents>) {
        let (Some(registry), Some(resume)) = (self.registry(), self.0.config.resume.as_ref()) else { return };
        let Some(epoch) = self.0.session.lock().as_ref().map(|s| s.epoch) else { return };
        self.0.out.lock().awaiting = true;
        self.0.inbound.store(0, Ordering::Release);
        self.0.deferred.lock().clear();
        registry.wait(self.clone(), epoch, resume.ttl, events);
    }

    fn registry(&self) -> Option<Arc<super::resume::Sessions>> {
        self.0.registry.get().and_then(std::sync::Weak::upgrade)
    }

    /// Queues the close frame answering the peer's, even while offline.
    pub(super) fn reply_close(&self, code: u16, reason: &str) {
        let mut out = self.0.out.lock();
        if out.closing.is_none() {
            out.closing = Some((code, reason.to_owned()));
        }
        drop(out);
        self.0.wake_writer.notify_one();
    }

    /// `bytes` of queued messages were written; they no longer count offline either.
    pub(super) fn written_offline(&self, bytes: usize) {
        if let Some(r) = self.registry() {
            r.release(bytes);
        }
    }

    /// Drops the oldest queued messages while an offline queue is over its bounds or the global
    /// budget; returns how many.
    fn bound_offline(
        &self,
        out: &mut Outbox,
        resume: &super::ResumeConfig,
        registry: &super::resume::Sessions,
    ) -> usize {
        let mut dropped = 0;
        while !out.queue.is_empty()
            && (out.queue.len() > resume.max_messages
                || out.bytes > resume.max_bytes
                || registry.over_budget())
        {
            if let Some(item) = out.queue.pop_front() {
                let len = item.held();
                out.bytes = out.bytes.saturating_sub(len);
                registry.release(len);
                dropped += 1;
            }
        }
        out.dropped += dropped as u64;
        if dropped > 0 {
            self.0.stats.ws_offline_dropped(dropped as u64);
        }
        dropped
    }

    /// Queues `item` for a disconnected client.
    fn push_offline(&self, mut out: parking_lot::MutexGuard<'_, Outbox>, item: Outgoing) -> SendStatus {
        let (Some(registry), Some(resume)) = (self.registry(), self.0.config.resume.as_ref()) else {
            return SendStatus::Dropped;
        };
        let len = item.held();
        let before = out.queue.len();
        out.queue.push_back(item);
        out.bytes += len;
        registry.charge(len);
        let dropped = self.bound_offline(&mut out, resume, &registry);
        if dropped > before {
            SendStatus::Dropped
        } else {
            SendStatus::Sent
        }
    }

    /// Ends an offline session whose TTL (started at `epoch`) passed; returns its id and queued
    /// bytes, or `None` when it reconnected since.
    pub(super) fn expire(&self, epoch: u64) -> Option<(String, usize)> {
        let session = self.0.session.lock();
        let s = session.as_ref().filter(|s| s.epoch == epoch)?;
        let mut out = self.0.out.lock();
        if !out.offline {
            return None;
        }
        out.offline = false;
        self.0.offline.store(false, Ordering::Release);
        out.awaiting = false;
        out.closed = true;
        Some((s.id.clone(), out.bytes))
    }

    /// Takes this waiting session out of the process so it can wait in Redis (see
    /// `Sessions::wait`): leaves its topics, noting for each the newest event id its queue already
    /// holds (what was delivered here, or `floor`, where this process's subscription began), then
    /// empties its queue. The socket is closed for good. `None` when the session is not waiting
    /// at `epoch` any more, or still has a replay of its own to receive (it waits here then).
    pub(super) fn export(
        &self,
        epoch: u64,
        floor: impl Fn(&str) -> Option<u64>,
    ) -> Option<crate::cluster::sessions::Exported> {
        // The session's lock is not held past this (topic locks come next, and `Topics::gap`
        // takes them in the other order); the caller's registry lock keeps resume and expiry out.
        let (id, route) = {
            let session = self.0.session.lock();
            let s = session.as_ref().filter(|s| s.epoch == epoch)?;
            (s.id.clone(), s.route)
        };
        let resume = self.0.config.resume.as_ref()?;
        let replayed = {
            let out = self.0.out.lock();
            if !(out.offline && out.awaiting) || out.hold.is_some() {
                return None;
            }
            // A socket restored from Redis had replayed messages that never went through this
            // process's fan-out: they bound its floors too.
            out.floors.clone()
        };
        // Topics first, so nothing is queued once the queue is taken.
        let subs = std::mem::take(&mut *self.0.subscriptions.lock());
        let topics = subs
            .iter()
            .map(|t| {
                let delivered = t.leave_ws(self.id());
                let had = replayed.iter().find(|(n, _)| n == t.name()).map_or(0, |(_, f)| *f);
                let floor = match floor(t.name()) {
                    Some(f) => Some(f.max(delivered).max(had)),
                    None => Some(delivered.max(had)).filter(|&d| d > 0),
                };
                (t.name().to_owned(), floor)
            })
            .collect();
        let mut out = self.0.out.lock();
        if let Some(r) = self.registry() {
            r.release(out.bytes);
        }
        let queue = out
            .queue
            .drain(..)
            .filter_map(|item| match item {
                Outgoing::Message(m @ (Message::Text(_) | Message::Binary(_))) => Some(m),
                Outgoing::Shared { message, .. } => Some(message),
                Outgoing::Message(_) => None,
            })
            .collect();
        out.offline = false;
        self.0.offline.store(false, Ordering::Release);
        out.awaiting = false;
        out.closed = true;
        out.bytes = 0;
        out.pongs = 0;
        Some(crate::cluster::sessions::Exported {
            id,
            route,
            socket: self.id(),
            dropped: std::mem::take(&mut out.dropped),
            max_messages: resume.max_messages,
            max_bytes: resume.max_bytes,
            ttl: resume.ttl,
            topics,
            queue,
        })
    }

    /// Undoes [`WsSocket::export`] after Redis failed to take the session: it waits here again,
    /// offline, with its queue and then `gaps`, within its bounds (the caller subscribes it to its
    /// topics again).
    pub(super) fn take_back(&self, e: &crate::cluster::sessions::Exported, gaps: Vec<Message>) {
        let mut out = self.0.out.lock();
        out.closed = false;
        out.offline = true;
        self.0.offline.store(true, Ordering::Release);
        out.awaiting = true;
        out.dropped = e.dropped;
        out.queue = e.queue.iter().cloned().chain(gaps).map(Outgoing::Message).collect();
        out.bytes = out.queue.iter().map(Outgoing::held).sum();
        if let (Some(registry), Some(resume)) = (self.registry(), self.0.config.resume.as_ref()) {
            registry.charge(out.bytes);
            self.bound_offline(&mut out, resume, &registry);
        }
    }

    /// Holds back everything sent from now on until [`WsSocket::release`]: a session claimed
    /// from Redis has its missed messages read first.
    pub(crate) fn hold(&self) {
        self.0.out.lock().hold = Some(Hold::default());
    }

    /// Queues the missed messages of a claimed session, then what was held back meanwhile (minus
    /// topic messages at or under `floors`, which the replay had), and keeps `floors` to drop
    /// late live copies. `gaps` go before them when some did not fit (`max_backpressure`).
    pub(crate) fn release(&self, missed: Vec<Message>, floors: Vec<(String, u64)>, gaps: Vec<Message>) {
        let mut out = self.0.out.lock();
        let Some(hold) = out.hold.take() else { return };
        if out.closed {
            return;
        }
        out.floors = floors;
        let mut items: Vec<Outgoing> = Vec::with_capacity(missed.len() + hold.items.len());
        items.extend(missed.into_iter().map(Outgoing::Message));
        if hold.overflowed {
            items.extend(gaps.into_iter().map(Outgoing::Message));
        }
        for (tag, item) in hold.items {
            let had = tag.is_some_and(|(topic, id)| out.floors.iter().any(|(t, f)| *t == topic && id <= *f));
            if !had {
                items.push(item);
            }
        }
        let added: usize = items.iter().map(Outgoing::held).sum();
        out.queue.extend(items);
        out.bytes += added;
        if out.offline {
            // The new connection was lost too while the replay was read.
            if let (Some(registry), Some(resume)) = (self.registry(), self.0.config.resume.as_ref()) {
                registry.charge(added);
                self.bound_offline(&mut out, resume, &registry);
            }
        } else if out.bytes > self.0.config.max_backpressure {
            out.over = true;
            self.0.probe.stalled();
        }
        self.0.probe.buffered.store(out.bytes as u64, Ordering::Relaxed);
        drop(out);
        self.0.wake_writer.notify_one();
    }

    /// Forgets the replay floor of `topic` (its stream's ids went back: lower ids are new).
    pub(crate) fn clear_floor(&self, topic: &str) {
        let mut out = self.0.out.lock();
        if !out.floors.is_empty() {
            out.floors.retain(|(t, _)| t != topic);
        }
    }

    /// Ends a socket that never got its connection (the client left during the handshake): its
    /// session, resumed or new, ends too.
    pub fn discard(&self) {
        self.finish();
        self.end_session();
    }

    /// What is queued now (tests).
    #[cfg(test)]
    pub(crate) fn queued(&self) -> Vec<Outgoing> {
        self.0.out.lock().queue.iter().cloned().collect()
    }

    /// Forgets the session (the socket closed for good).
    pub(super) fn end_session(&self) {
        let session = self.0.session.lock().take();
        if let Some(s) = session {
            if let Some(registry) = s.registry.upgrade() {
                registry.forget(&s.id);
            }
        }
    }

    fn push(&self, item: Outgoing, tag: Option<(&str, u64)>) -> SendStatus {
        let len = item.held();
        let cfg = &self.0.config;
        let mut out = self.0.out.lock();
        if let Some((topic, id)) = tag {
            if out.floors.iter().any(|(t, floor)| t == topic && id <= *floor) {
                // The replay of a resumed session already had it.
                return SendStatus::Sent;
            }
        }
        if out.hold.is_some() && !out.offline && (out.closed || out.closing.is_some()) {
            return SendStatus::Dropped;
        }
        if let Some(hold) = out.hold.as_mut() {
            if hold.bytes + len > cfg.max_backpressure {
                hold.overflowed = true;
                self.0.stats.ws_dropped();
                return SendStatus::Dropped;
            }
            hold.bytes += len;
            hold.items.push((tag.map(|(t, id)| (t.to_owned(), id)), item));
            return SendStatus::Sent;
        }
        if out.offline {
            return self.push_offline(out, item);
        }
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
        self.enqueue(out, item);
        status
    }

    /// Appends to the queue and wakes the writer if it was idle.
    pub(super) fn enqueue(&self, mut out: parking_lot::MutexGuard<'_, Outbox>, item: Outgoing) {
        let was_empty = out.queue.is_empty();
        out.queue.push_back(item);
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
        // Saturating: a late consume from a connection this socket had before a resume (whose
        // count was reset) must not wrap the count and stop the new reader for good.
        let Ok(before) =
            self.0.inbound.fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| Some(v.saturating_sub(len)))
        else {
            return;
        };
        let len = len.min(before);
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
    pub(super) fn finish(&self) {
        let registry = self.registry();
        {
            let mut out = self.0.out.lock();
            if out.offline {
                if let Some(r) = &registry {
                    r.release(out.bytes);
                }
                out.offline = false;
                self.0.offline.store(false, Ordering::Release);
                out.awaiting = false;
            }
            out.closed = true;
            out.queue.clear();
            out.pongs = 0;
            out.bytes = 0;
        }
        let subs = std::mem::take(&mut *self.0.subscriptions.lock());
        for t in subs {
            t.remove_ws(self.id());
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
    fn a_claimed_session_queues_its_replay_before_what_was_held_and_drops_what_the_replay_had() {
        let s = socket(1 << 20, false);
        s.send(Message::text("greeting"));
        s.hold();
        let mut shared = None;
        s.send_topic(&Message::text("live 5"), &mut shared, Some(("room", 5)));
        s.send_topic(&Message::text("live 7"), &mut shared, Some(("room", 7)));
        s.send(Message::text("direct"));
        assert_eq!(s.queued().len(), 1, "held back, not queued");
        s.release(vec![Message::text("replayed 5")], vec![("room".into(), 5)], Vec::new());
        let texts: Vec<String> = s
            .queued()
            .into_iter()
            .map(|i| match i {
                Outgoing::Message(Message::Text(t)) => t.to_string(),
                _ => String::new(),
            })
            .collect();
        assert_eq!(texts, ["greeting", "replayed 5", "live 7", "direct"]);
        assert_eq!(s.buffered_amount(), texts.iter().map(String::len).sum::<usize>());
        // A late live copy of what the replay had is dropped; newer ones pass.
        s.send_topic(&Message::text("live 5"), &mut shared, Some(("room", 5)));
        s.send_topic(&Message::text("live 8"), &mut shared, Some(("room", 8)));
        assert_eq!(s.queued().len(), 5);
    }

    #[test]
    fn messages_held_past_the_limit_are_dropped_and_reported_with_a_gap() {
        let s = socket(10, false);
        s.hold();
        assert_eq!(s.send(Message::text("12345678")), SendStatus::Sent);
        assert_eq!(s.send(Message::text("123")), SendStatus::Dropped);
        s.release(Vec::new(), Vec::new(), vec![Message::text("gap")]);
        let q = s.queued();
        assert_eq!(q.len(), 2);
        assert!(matches!(&q[0], Outgoing::Message(Message::Text(t)) if t.as_str() == "gap"));
    }

    #[test]
    fn close_reasons_are_cut_to_123_bytes_on_a_char_boundary() {
        let s = socket(10, false);
        s.close(4000, &"é".repeat(100));
        let reason = s.0.out.lock().closing.clone().map(|c| c.1).unwrap_or_default();
        assert_eq!(reason.len(), 122);
        assert_eq!(s.send(Message::text("late")), SendStatus::Dropped);
    }
}
