//! Topic fan-out: a publish reaches every WebSocket and SSE subscriber of a topic from Rust,
//! sharing one payload (`Bytes`) and one encoded SSE frame, with a bounded replay history.

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::future::Future as _;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::time::Sleep;

use crate::body::ring::StreamAborted;
use crate::cluster::{Cluster, Replay, ReplayFrom};
use crate::sse::{self, SseFieldError};
use crate::stats::Stats;
use crate::ws::{Message, SendStatus, WsSocket};

/// Bounds of the replay history (used by SSE `Last-Event-ID` and `replay: n`).
#[derive(Debug, Clone)]
pub struct TopicConfig {
    /// Messages kept per topic (0 disables history and replay).
    pub history: usize,
    /// Bytes of encoded SSE frames kept per topic, whichever bound is hit first.
    pub history_bytes: usize,
    /// Bytes of history kept across all topics; past it the oldest messages of any topic go
    /// first. With per-user or per-document topics the number of topics is unbounded, so the
    /// per-topic bounds alone would not bound memory.
    pub total_history_bytes: usize,
}

impl Default for TopicConfig {
    fn default() -> Self {
        Self { history: 1000, history_bytes: 1 << 20, total_history_bytes: 64 << 20 }
    }
}

/// Topics created between two sweeps of unused ones.
const SWEEP_EVERY: usize = 1024;

/// The topics of one server.
pub struct Topics {
    map: Mutex<HashMap<String, Arc<Topic>>>,
    config: TopicConfig,
    stats: Arc<Stats>,
    next_sse: AtomicU64,
    /// Event ids: one sequence for all topics, so an id is never reused, even by a topic that
    /// was forgotten and created again.
    seq: AtomicU64,
    /// History entries of all topics in publish order, for global oldest-first eviction.
    ledger: Mutex<Ledger>,
    /// Bytes of history held by all topics.
    total_history: AtomicUsize,
    /// Topics created since the last sweep.
    created: AtomicUsize,
    /// The Redis adapter, when topics span processes: publishes go through it, history and
    /// replays come from its streams (see [`crate::cluster`]).
    cluster: parking_lot::RwLock<Option<Arc<Cluster>>>,
}

#[derive(Default)]
struct Ledger {
    entries: VecDeque<(Weak<Topic>, u64, usize)>,
    /// Ledger length after the last compaction (stale entries are dropped when it doubles).
    compacted_len: usize,
}

/// One topic: its subscribers and its recent history.
pub struct Topic {
    name: String,
    state: Mutex<TopicState>,
}

struct TopicState {
    ws: Vec<WsSocket>,
    sse: Vec<(u64, Arc<SseQueue>)>,
    /// The global sequence number when the topic was created: earlier ids are not its own.
    created_at: u64,
    /// Id of the newest message evicted from history (0: none).
    evicted_upto: u64,
    history: VecDeque<(u64, Bytes)>,
    history_bytes: usize,
    /// With the Redis adapter: the newest event id fanned out here (older ones are duplicates).
    last_delivered: u64,
}

impl Topic {
    /// The topic's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn remove_ws(&self, id: u64) {
        self.leave_ws(id);
    }

    /// Removes WebSocket `id` and returns the newest Redis event id fanned out here (0: none),
    /// under one lock: every message up to it was handed to the socket, none after it.
    pub(crate) fn leave_ws(&self, id: u64) -> u64 {
        let mut st = self.state.lock();
        if let Some(i) = st.ws.iter().position(|s| s.id() == id) {
            st.ws.swap_remove(i);
        }
        st.last_delivered
    }

    fn remove_sse(&self, id: u64) {
        let mut st = self.state.lock();
        if let Some(i) = st.sse.iter().position(|(s, _)| *s == id) {
            st.sse.swap_remove(i);
        }
    }
}

/// Options of one SSE subscription.
#[derive(Debug, Clone, Default)]
pub struct SseSubscribe {
    /// The client's `Last-Event-ID`: history after it is sent first.
    pub last_event_id: Option<String>,
    /// Without `Last-Event-ID`, send up to this many recent messages first.
    pub recent: usize,
    /// Queued bytes allowed before the subscriber is cut (it reconnects and replays).
    pub max_backpressure: usize,
    /// Comment sent after this much silence, so proxies keep the stream open.
    pub heartbeat: Option<(Duration, Bytes)>,
    /// Prefix sent before anything else (e.g. `retry: 3000\n\n`).
    pub preamble: Option<Bytes>,
}

impl Topics {
    /// An empty set of topics.
    pub fn new(config: TopicConfig, stats: Arc<Stats>) -> Arc<Self> {
        Arc::new(Self {
            map: Mutex::new(HashMap::new()),
            config,
            stats,
            next_sse: AtomicU64::new(1),
            seq: AtomicU64::new(0),
            ledger: Mutex::new(Ledger::default()),
            total_history: AtomicUsize::new(0),
            created: AtomicUsize::new(0),
            cluster: parking_lot::RwLock::new(None),
        })
    }

    /// Routes this server's topics through `cluster` from now on (`None`: local again, e.g.
    /// when the server failed to bind).
    pub fn attach_cluster(&self, cluster: Option<Arc<Cluster>>) {
        *self.cluster.write() = cluster;
    }

    /// The Redis adapter, if topics span processes.
    pub fn cluster(&self) -> Option<Arc<Cluster>> {
        self.cluster.read().clone()
    }

    fn topic(&self, name: &str) -> Arc<Topic> {
        let mut map = self.map.lock();
        if let Some(t) = map.get(name) {
            return t.clone();
        }
        if self.created.fetch_add(1, Ordering::Relaxed) + 1 >= SWEEP_EVERY {
            self.created.store(0, Ordering::Relaxed);
            for gone in sweep(&mut map) {
                if let Some(c) = self.cluster() {
                    c.unwatch(&gone);
                }
            }
        }
        let t = Arc::new(Topic {
            name: name.to_owned(),
            state: Mutex::new(TopicState {
                ws: Vec::new(),
                sse: Vec::new(),
                created_at: self.seq.load(Ordering::Acquire),
                evicted_upto: 0,
                history: VecDeque::new(),
                history_bytes: 0,
                last_delivered: 0,
            }),
        });
        map.insert(name.to_owned(), t.clone());
        t
    }

    /// Number of topics known now (subscribed, or holding history).
    pub fn len(&self) -> usize {
        self.map.lock().len()
    }

    /// `true` when no topic is known.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of history held across all topics.
    pub fn history_bytes(&self) -> usize {
        self.total_history.load(Ordering::Acquire)
    }

    /// Records a history entry and evicts the oldest entries of any topic while the total is
    /// over budget. Called without any topic lock held.
    fn record(&self, topic: &Arc<Topic>, seq: u64, len: usize) {
        {
            let mut ledger = self.ledger.lock();
            ledger.entries.push_back((Arc::downgrade(topic), seq, len));
            if ledger.entries.len() > 2 * ledger.compacted_len.max(1024) {
                // Entries already gone from their topic (per-topic bounds) are dropped here, so
                // the ledger stays within twice the live history.
                ledger.entries.retain(|(w, seq, _)| {
                    w.upgrade().is_some_and(|t| t.state.lock().history.front().is_some_and(|(s, _)| s <= seq))
                });
                ledger.compacted_len = ledger.entries.len();
            }
        }
        while self.total_history.load(Ordering::Acquire) > self.config.total_history_bytes {
            let Some((w, seq, _)) = self.ledger.lock().entries.pop_front() else { break };
            let Some(t) = w.upgrade() else { continue };
            let mut st = t.state.lock();
            if st.history.front().is_some_and(|(s, _)| *s == seq) {
                self.evict_front(&mut st);
            }
        }
    }

    fn evict_front(&self, st: &mut TopicState) {
        if let Some((seq, f)) = st.history.pop_front() {
            st.history_bytes -= f.len();
            st.evicted_upto = seq;
            self.total_history.fetch_sub(f.len(), Ordering::AcqRel);
        }
    }

    /// Subscribes a WebSocket; `false` if it already was.
    pub fn subscribe_ws(&self, name: &str, socket: &WsSocket) -> bool {
        let topic = self.topic(name);
        if socket.is_closed() || !socket.add_subscription(topic.clone()) {
            return false;
        }
        topic.state.lock().ws.push(socket.clone());
        if let Some(c) = self.cluster() {
            c.watch(name);
        }
        true
    }

    /// Unsubscribes a WebSocket; `false` if it was not subscribed.
    pub fn unsubscribe_ws(&self, name: &str, socket: &WsSocket) -> bool {
        let Some(topic) = self.map.lock().get(name).cloned() else { return false };
        if !socket.remove_subscription(&topic) {
            return false;
        }
        topic.remove_ws(socket.id());
        true
    }

    /// Number of subscribers (WebSocket and SSE) of a topic.
    pub fn subscribers(&self, name: &str) -> usize {
        self.map.lock().get(name).map_or(0, |t| {
            let st = t.state.lock();
            st.ws.len() + st.sse.len()
        })
    }

    /// Publishes to every subscriber of `name` except the WebSocket `exclude`. A text message
    /// goes to WebSockets as a text frame, a binary one as a binary frame; SSE subscribers get
    /// one event (`id` = the topic's sequence number, optional `event`). Returns how many
    /// subscribers it was handed to (slow WebSockets over their limit are not counted).
    ///
    /// An `event` name with CR, LF or NUL is refused before anything is sent (it would inject
    /// fields or whole events into every SSE subscriber's stream).
    pub fn publish(
        &self,
        name: &str,
        message: Message,
        event: Option<&str>,
        exclude: Option<u64>,
    ) -> Result<usize, SseFieldError> {
        if let Some(e) = event {
            sse::check_field("event", e)?;
        }
        if let Some(c) = self.cluster() {
            // Through Redis: every process, this one too, fans it out when it comes back on the
            // topic's channel, in the stream's order (or, while Redis is unreachable, this
            // process alone, without an id). Counted here: this process's subscribers.
            if c.publish(name, message.clone(), event, exclude) {
                let reached = self.map.lock().get(name).map_or(0, |t| {
                    let st = t.state.lock();
                    st.ws.iter().filter(|s| Some(s.id()) != exclude).count() + st.sse.len()
                });
                return Ok(reached);
            }
            // The adapter stopped (the server is closing): this process's subscribers only.
            return Ok(self.deliver_local(name, &message, event, exclude));
        }
        // With history on, a publish before anyone subscribed is kept for later replay.
        let topic =
            if self.config.history > 0 { Some(self.topic(name)) } else { self.map.lock().get(name).cloned() };
        let Some(topic) = topic else {
            self.stats.published(0);
            return Ok(0);
        };
        let mut st = topic.state.lock();
        let seq = self.seq.fetch_add(1, Ordering::AcqRel) + 1;
        let keep = self.config.history > 0;
        let (reached, frame) = fan_out(&mut st, None, Some(seq), event, &message, exclude, keep)?;
        let mut recorded = None;
        if let Some(frame) = frame.filter(|_| keep) {
            let len = frame.len();
            st.history_bytes += len;
            st.history.push_back((seq, frame));
            self.total_history.fetch_add(len, Ordering::AcqRel);
            while st.history.len() > self.config.history || st.history_bytes > self.config.history_bytes {
                self.evict_front(&mut st);
            }
            recorded = Some(len);
        }
        if !keep {
            // Without history every message is gone at once: a resume after it reports a gap.
            st.evicted_upto = seq;
        }
        drop(st);
        if let Some(len) = recorded {
            self.record(&topic, seq, len);
        }
        self.stats.published(reached as u64);
        Ok(reached)
    }

    /// Fans out a message that came through Redis with event id `id`, unless it was already
    /// delivered here (a catch-up after a reconnect overlaps the live messages).
    pub(crate) fn deliver(
        &self,
        name: &str,
        id: u64,
        message: &Message,
        event: Option<&str>,
        exclude: Option<u64>,
    ) {
        let Some(topic) = self.map.lock().get(name).cloned() else { return };
        let mut st = topic.state.lock();
        if id <= st.last_delivered {
            return;
        }
        st.last_delivered = id;
        // The event name was checked by the publisher; one that is not valid here is dropped.
        if let Ok((reached, _)) = fan_out(&mut st, Some(name), Some(id), event, message, exclude, false) {
            drop(st);
            self.stats.published(reached as u64);
        }
    }

    /// Fans out a message to this process's subscribers only, without an event id (Redis is
    /// unreachable): a client that resumes later is not promised it. Returns the subscribers
    /// reached.
    pub(crate) fn deliver_local(
        &self,
        name: &str,
        message: &Message,
        event: Option<&str>,
        exclude: Option<u64>,
    ) -> usize {
        let Some(topic) = self.map.lock().get(name).cloned() else { return 0 };
        let mut st = topic.state.lock();
        let reached = fan_out(&mut st, None, None, event, message, exclude, false).map_or(0, |(n, _)| n);
        drop(st);
        self.stats.redis_local_only();
        self.stats.published(reached as u64);
        reached
    }

    /// The newest event id fanned out here for `name` (0: none).
    pub(crate) fn last_delivered(&self, name: &str) -> u64 {
        self.map.lock().get(name).map_or(0, |t| t.state.lock().last_delivered)
    }

    /// Messages of `name` after event id `after` may never have reached this process's
    /// subscribers: SSE subscribers get a `cz-gap` event, WebSockets with a session (routes with
    /// `resume`, whose clients read Catzilla's messages) a `{"type":"cz-gap"}` message.
    /// `rewound`: the stream's ids went back (a new stream on a Redis whose clock is behind), so
    /// what was delivered here no longer bounds what is new.
    pub(crate) fn gap(&self, name: &str, after: u64, rewound: bool) {
        let Some(topic) = self.map.lock().get(name).cloned() else { return };
        let mut st = topic.state.lock();
        if rewound {
            st.last_delivered = 0;
        }
        let frame = gap_frame(&after.to_string(), None);
        for (_, q) in &st.sse {
            q.push(frame.clone());
        }
        let sockets = st.ws.clone();
        // Sent to after the topic's lock is released: `session_id` takes a socket's session lock,
        // which is never taken inside a topic's.
        drop(st);
        let gap = ws_gap(name, after);
        for s in sockets.iter().filter(|s| s.session_id().is_some()) {
            if rewound {
                s.clear_floor(name);
            }
            s.send(gap.clone());
        }
    }

    /// Subscribes an SSE client: the returned body streams the topic's events (after any replay)
    /// until the client leaves or falls `max_backpressure` bytes behind.
    pub fn subscribe_sse(&self, name: &str, opts: SseSubscribe) -> TopicBody {
        let topic = self.topic(name);
        let id = self.next_sse.fetch_add(1, Ordering::Relaxed);
        let queue = Arc::new(SseQueue {
            state: Mutex::new(QueueState {
                frames: VecDeque::new(),
                pending: None,
                held: 0,
                floor: 0,
                bytes: 0,
                cut: false,
                waker: None,
            }),
            limit: opts.max_backpressure.max(1),
            probe: {
                let probe = Arc::new(crate::live::Probe::default());
                probe.capacity.store(opts.max_backpressure.max(1) as u64, Ordering::Relaxed);
                probe
            },
        });
        if let Some(c) = self.cluster() {
            return self.subscribe_sse_cluster(&c, topic, id, queue, opts);
        }
        {
            let mut st = topic.state.lock();
            let mut q = queue.state.lock();
            if let Some(p) = &opts.preamble {
                q.bytes += p.len();
                q.frames.push_back(p.clone());
            }
            let now = self.seq.load(Ordering::Acquire);
            let oldest = st.history.front().map_or(now + 1, |(s, _)| *s);
            let replay_from = match opts.last_event_id.as_deref().map(str::trim) {
                Some(last) => match last.parse::<u64>() {
                    // Nothing this topic published after `last` was evicted: resume exactly.
                    Ok(n) if n <= now && n >= st.evicted_upto.max(st.created_at) => Some(n + 1),
                    // Messages after `last` are gone (evicted, before this topic existed, or an
                    // id from another server run): say so before sending what is left.
                    _ => {
                        let gap = gap_frame(last, Some(oldest));
                        q.bytes += gap.len();
                        q.frames.push_back(gap);
                        Some(oldest)
                    }
                },
                None if opts.recent > 0 => {
                    let skip = st.history.len().saturating_sub(opts.recent);
                    Some(st.history.get(skip).map_or(now + 1, |(s, _)| *s))
                }
                None => None,
            };
            if let Some(from) = replay_from {
                for (_, f) in st.history.iter().filter(|(s, _)| *s >= from) {
                    q.bytes += f.len();
                    q.frames.push_back(f.clone());
                }
            }
            drop(q);
            st.sse.push((id, queue.clone()));
        }
        self.body(topic, id, queue, opts.heartbeat)
    }

    fn body(
        &self,
        topic: Arc<Topic>,
        id: u64,
        queue: Arc<SseQueue>,
        heartbeat: Option<(Duration, Bytes)>,
    ) -> TopicBody {
        self.stats.subscriber_added();
        TopicBody {
            queue,
            topic,
            id,
            stats: self.stats.clone(),
            heartbeat,
            sleep: None,
            ended: false,
            _live: None,
        }
    }

    /// An SSE subscription with the Redis adapter: the replay (after `Last-Event-ID`, or the
    /// newest `recent`) is read from the topic's stream, so it works on any process; live events
    /// that arrive meanwhile wait behind it, and those the replay already had are dropped.
    fn subscribe_sse_cluster(
        &self,
        cluster: &Arc<Cluster>,
        topic: Arc<Topic>,
        id: u64,
        queue: Arc<SseQueue>,
        opts: SseSubscribe,
    ) -> TopicBody {
        let from = match opts.last_event_id.as_deref().map(str::trim) {
            Some(last) => Some(last.parse::<u64>().map(ReplayFrom::After).map_err(|_| last.to_owned())),
            None if opts.recent > 0 => Some(Ok(ReplayFrom::Recent(opts.recent))),
            None => None,
        };
        {
            let mut q = queue.state.lock();
            if let Some(p) = &opts.preamble {
                q.bytes += p.len();
                q.frames.push_back(p.clone());
            }
            if let Some(Err(bad)) = &from {
                // Not an id of ours: nothing to replay after it.
                let gap = gap_frame(bad, None);
                q.bytes += gap.len();
                q.frames.push_back(gap);
            }
            if matches!(from, Some(Ok(_))) {
                q.pending = Some(Vec::new());
            }
        }
        topic.state.lock().sse.push((id, queue.clone()));
        cluster.watch(topic.name());
        if let Some(Ok(from)) = from {
            let q = Arc::downgrade(&queue);
            let stats = self.stats.clone();
            cluster.replay(topic.name(), from, move |replay: Replay| {
                if let Some(q) = q.upgrade() {
                    if !replay.exact {
                        stats.redis_gap();
                    }
                    q.replayed(replay, from);
                }
            });
        }
        self.body(topic, id, queue, opts.heartbeat)
    }
}

/// Sends `message` to the topic's WebSockets and SSE subscribers (`seq`: the SSE event id, none
/// for a message that will not be replayed; `redis`: the topic's name when `seq` is a Redis event
/// id, which a resumed WebSocket session compares with its replay). Returns how many it reached
/// and, when `keep` or any SSE subscriber needed it, the encoded SSE frame.
fn fan_out(
    st: &mut TopicState,
    redis: Option<&str>,
    seq: Option<u64>,
    event: Option<&str>,
    message: &Message,
    exclude: Option<u64>,
    keep: bool,
) -> Result<(usize, Option<Bytes>), SseFieldError> {
    let mut reached = 0;
    // Compressed once for every subscriber that compresses messages alone.
    let mut deflated = None;
    let tag = redis.zip(seq);
    for s in &st.ws {
        if Some(s.id()) != exclude && s.send_topic(message, &mut deflated, tag) != SendStatus::Dropped {
            reached += 1;
        }
    }
    if st.sse.is_empty() && !keep {
        return Ok((reached, None));
    }
    let frame = sse_frame(seq, event, message)?;
    let mut cut = Vec::new();
    for (id, q) in &st.sse {
        if q.push_live(seq.unwrap_or(0), frame.clone()) {
            reached += 1;
        } else {
            cut.push(*id);
        }
    }
    if !cut.is_empty() {
        st.sse.retain(|(id, _)| !cut.contains(id));
    }
    Ok((reached, Some(frame)))
}

/// The `cz-gap` message of a WebSocket session: messages of topic `name` after event id `after`
/// may be missing.
pub(crate) fn ws_gap(name: &str, after: u64) -> Message {
    Message::text(format!(r#"{{"type":"cz-gap","topic":{},"lastEventId":"{after}"}}"#, json_string(name)))
}

/// The `cz-gap` event: messages after `last` may be missing (`oldest`: the oldest id still kept).
fn gap_frame(last: &str, oldest: Option<u64>) -> Bytes {
    let data = match oldest {
        Some(o) => format!("{{\"lastEventId\":{},\"oldest\":{o}}}", json_string(last)),
        None => format!("{{\"lastEventId\":{}}}", json_string(last)),
    };
    let mut gap = Vec::with_capacity(data.len() + 32);
    let ev = sse::Event { event: Some("cz-gap"), data: Some(&data), ..sse::Event::default() };
    // A constant event name and JSON without raw line ends: always valid.
    let _ = sse::encode(&ev, &mut gap);
    Bytes::from(gap)
}

/// Drops topics nobody holds (no subscriber, no body, no socket) whose history is empty; returns
/// their names.
fn sweep(map: &mut HashMap<String, Arc<Topic>>) -> Vec<String> {
    let mut gone = Vec::new();
    map.retain(|name, t| {
        let keep = Arc::strong_count(t) > 1 || !t.state.lock().history.is_empty();
        if !keep {
            gone.push(name.clone());
        }
        keep
    });
    gone
}

/// A JSON string literal.
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Encodes one topic message as an SSE event (`id` = the sequence number) with the one encoder,
/// [`sse::encode`]. `event` was checked by [`Topics::publish`].
fn sse_frame(seq: Option<u64>, event: Option<&str>, message: &Message) -> Result<Bytes, SseFieldError> {
    let lossy;
    let data: &str = match message {
        Message::Text(t) => t.as_str(),
        Message::Binary(b) => {
            lossy = String::from_utf8_lossy(b);
            &lossy
        }
        _ => "",
    };
    let id = seq.map(|s| s.to_string());
    let mut out = Vec::with_capacity(data.len() + 32);
    sse::encode(
        &sse::Event { id: id.as_deref(), event, data: Some(data), ..sse::Event::default() },
        &mut out,
    )?;
    Ok(Bytes::from(out))
}

struct QueueState {
    frames: VecDeque<Bytes>,
    /// While a replay is read from Redis: the live frames that arrive meanwhile, with their ids.
    pending: Option<Vec<(u64, Bytes)>>,
    /// Bytes held in `pending` (they count against the subscriber's limit too).
    held: usize,
    /// After a replay: the newest event id this subscriber already has; a live copy of it (or of
    /// anything older) that arrives late is dropped.
    floor: u64,
    bytes: usize,
    /// Fell too far behind: the stream ends with an error.
    cut: bool,
    waker: Option<Waker>,
}

/// The frames waiting for one SSE subscriber.
struct SseQueue {
    state: Mutex<QueueState>,
    limit: usize,
    /// What `app.streams()` reads: bytes and events sent, bytes queued, queued since.
    probe: Arc<crate::live::Probe>,
}

impl SseQueue {
    /// Queues a live frame (event id `seq`, 0: none), or holds it back while a replay is read.
    fn push_live(&self, seq: u64, frame: Bytes) -> bool {
        let mut q = self.state.lock();
        if q.cut {
            return false;
        }
        if seq != 0 && seq <= q.floor {
            return true;
        }
        if q.pending.is_some() {
            if q.bytes + q.held + frame.len() > self.limit {
                self.cut_locked(&mut q);
            } else {
                q.held += frame.len();
                if let Some(p) = q.pending.as_mut() {
                    p.push((seq, frame));
                }
            }
            return !q.cut;
        }
        drop(q);
        self.push(frame)
    }

    /// The replay read from Redis arrived: a `cz-gap` first when it is not exact, its events, then
    /// the live frames held back meanwhile that it did not already contain, all under one lock so
    /// no live frame overtakes them.
    fn replayed(&self, replay: Replay, from: ReplayFrom) {
        let mut frames = Vec::with_capacity(replay.entries.len() + 1);
        let after = match from {
            ReplayFrom::After(id) => id,
            ReplayFrom::Recent(_) => 0,
        };
        if !replay.exact {
            let last = if matches!(from, ReplayFrom::After(_)) { after.to_string() } else { String::new() };
            frames.push(gap_frame(&last, None));
        }
        let mut newest = 0;
        for e in &replay.entries {
            newest = e.id;
            if let Ok(f) = sse_frame(Some(e.id), e.event.as_deref(), &e.message) {
                frames.push(f);
            }
        }
        // What the client has: the replay, and what it saw before (unless the ids went back).
        let floor = if replay.rewound { newest } else { newest.max(after) };
        let mut q = self.state.lock();
        let held = q.pending.take().unwrap_or_default();
        q.held = 0;
        q.floor = floor;
        frames.extend(held.into_iter().filter(|(id, _)| *id == 0 || *id > floor).map(|(_, f)| f));
        for f in frames {
            self.queue_locked(&mut q, f);
        }
        let waker = q.waker.take();
        drop(q);
        if let Some(w) = waker {
            w.wake();
        }
    }

    fn cut_locked(&self, q: &mut QueueState) {
        q.cut = true;
        q.frames.clear();
        q.pending = None;
        q.held = 0;
        q.bytes = 0;
    }

    /// Appends a frame, or cuts the subscriber when it would go over its limit.
    fn queue_locked(&self, q: &mut QueueState, frame: Bytes) {
        if q.cut {
            return;
        }
        if q.bytes + frame.len() > self.limit {
            self.cut_locked(q);
        } else {
            q.bytes += frame.len();
            q.frames.push_back(frame);
            self.probe.buffered.store(q.bytes as u64, Ordering::Relaxed);
            self.probe.stalled();
        }
    }

    /// Queues a frame; `false` (and the subscriber is cut) when it is over its limit.
    fn push(&self, frame: Bytes) -> bool {
        let mut q = self.state.lock();
        if q.cut {
            return false;
        }
        self.queue_locked(&mut q, frame);
        let ok = !q.cut;
        let waker = q.waker.take();
        drop(q);
        if let Some(w) = waker {
            w.wake();
        }
        ok
    }
}

/// Largest frame handed to hyper at once when several events are queued.
const MAX_BATCH: usize = 32 * 1024;

/// The response body of an SSE topic subscriber.
pub struct TopicBody {
    queue: Arc<SseQueue>,
    topic: Arc<Topic>,
    id: u64,
    stats: Arc<Stats>,
    heartbeat: Option<(Duration, Bytes)>,
    sleep: Option<Pin<Box<Sleep>>>,
    ended: bool,
    /// Keeps the subscriber listed in `app.streams()` while the body lives.
    _live: Option<crate::live::LiveGuard>,
}

impl TopicBody {
    /// Lists this subscriber in `live` until it ends; closing it there cuts it and its
    /// connection `socket` (which may be blocked on a client that does not read).
    pub(crate) fn go_live(
        &mut self,
        live: &Arc<crate::live::Live>,
        req: crate::live::LiveRequest,
        socket: Weak<crate::socket::SocketState>,
    ) {
        let closer = Box::new(TopicCloser { queue: Arc::downgrade(&self.queue), socket });
        let probe = self.queue.probe.clone();
        self._live = Some(live.register(crate::live::LiveKind::Topic, req, probe, closer));
    }
}

/// Cuts a topic subscriber from outside.
struct TopicCloser {
    queue: Weak<SseQueue>,
    socket: Weak<crate::socket::SocketState>,
}

impl crate::live::Closer for TopicCloser {
    fn close(&self) {
        if let Some(queue) = self.queue.upgrade() {
            let mut q = queue.state.lock();
            q.cut = true;
            q.frames.clear();
            q.bytes = 0;
            let waker = q.waker.take();
            drop(q);
            if let Some(w) = waker {
                w.wake();
            }
        }
        if let Some(socket) = self.socket.upgrade() {
            socket.cut();
        }
    }
}

impl Drop for TopicBody {
    fn drop(&mut self) {
        self.topic.remove_sse(self.id);
        self.stats.subscriber_removed(self.queue.state.lock().cut);
    }
}

impl Body for TopicBody {
    type Data = Bytes;
    type Error = StreamAborted;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, StreamAborted>>> {
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(None);
        }
        {
            let mut q = this.queue.state.lock();
            if q.cut {
                this.ended = true;
                return Poll::Ready(Some(Err(StreamAborted)));
            }
            if let Some(first) = q.frames.pop_front() {
                let data = if q.frames.is_empty() || first.len() >= MAX_BATCH {
                    first
                } else {
                    // Several events waiting: one chunk for all of them (up to MAX_BATCH).
                    let mut buf = BytesMut::with_capacity(q.bytes.min(MAX_BATCH * 2));
                    buf.extend_from_slice(&first);
                    while let Some(f) = q.frames.front() {
                        if buf.len() + f.len() > MAX_BATCH {
                            break;
                        }
                        buf.extend_from_slice(f);
                        q.frames.pop_front();
                    }
                    buf.freeze()
                };
                q.bytes -= data.len();
                let probe = &this.queue.probe;
                probe.buffered.store(q.bytes as u64, Ordering::Relaxed);
                if q.frames.is_empty() {
                    probe.unstalled();
                }
                drop(q);
                probe.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
                probe.chunks.fetch_add(1, Ordering::Relaxed);
                if let (Some((every, _)), Some(s)) = (&this.heartbeat, this.sleep.as_mut()) {
                    s.as_mut().reset(tokio::time::Instant::now() + *every);
                }
                this.stats.add_stream_bytes(data.len() as u64);
                return Poll::Ready(Some(Ok(Frame::data(data))));
            }
            q.waker = Some(cx.waker().clone());
        }
        if let Some((every, beat)) = &this.heartbeat {
            let sleep = this.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep(*every)));
            if sleep.as_mut().poll(cx).is_ready() {
                sleep.as_mut().reset(tokio::time::Instant::now() + *every);
                return Poll::Ready(Some(Ok(Frame::data(beat.clone()))));
            }
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.ended
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ws::WsConfig;

    fn topics(history: usize) -> Arc<Topics> {
        Topics::new(TopicConfig { history, ..TopicConfig::default() }, Arc::new(Stats::default()))
    }

    /// Everything a topic body has ready now, as text.
    fn drain(body: &mut TopicBody) -> String {
        let mut cx = Context::from_waker(Waker::noop());
        let mut out = String::new();
        while let Poll::Ready(Some(Ok(frame))) = Pin::new(&mut *body).poll_frame(&mut cx) {
            out.push_str(std::str::from_utf8(&frame.into_data().unwrap_or_default()).unwrap_or("?"));
        }
        out
    }

    #[test]
    fn sse_frames_split_lines_and_carry_the_event_name() {
        let f = sse_frame(Some(7), Some("up"), &Message::text("a\r\nb\nc")).expect("valid");
        assert_eq!(&f[..], b"id: 7\nevent: up\ndata: a\ndata: b\ndata: c\n\n");
    }

    #[test]
    fn regression_sse_event_injection_through_topics() {
        let t = topics(0);
        let opts = SseSubscribe { max_backpressure: 1 << 20, ..Default::default() };
        let mut body = t.subscribe_sse("x", opts);
        t.publish("x", Message::text("a\rid: 666\r\revent: evil\rdata: x"), None, None).expect("valid");
        t.publish("x", Message::Binary(Bytes::from_static(b"b\rid: 7")), None, None).expect("valid");
        let text = drain(&mut body);
        assert_eq!(
            text,
            "id: 1\ndata: a\ndata: id: 666\ndata: \ndata: event: evil\ndata: data: x\n\nid: 2\ndata: b\ndata: id: 7\n\n"
        );
        for bad in ["evil\r\ndata: x", "a\rb", "a\0"] {
            let e = t.publish("x", Message::text("hi"), Some(bad), None);
            assert_eq!(e.map_err(|e| e.field()), Err("event"));
        }
        assert_eq!(drain(&mut body), "", "a refused publish sends nothing");
    }

    #[test]
    fn publish_counts_subscribers_and_skips_the_excluded_socket() {
        let t = topics(0);
        let stats = Arc::new(Stats::default());
        let a = WsSocket::new(1, WsConfig::default(), stats.clone());
        let b = WsSocket::new(2, WsConfig::default(), stats);
        assert!(t.subscribe_ws("room", &a));
        assert!(!t.subscribe_ws("room", &a), "a second subscribe is a no-op");
        assert!(t.subscribe_ws("room", &b));
        assert_eq!(t.publish("room", Message::text("hi"), None, None).expect("valid"), 2);
        assert_eq!(t.publish("room", Message::text("hi"), None, Some(1)).expect("valid"), 1);
        assert!(t.unsubscribe_ws("room", &a));
        assert_eq!(t.publish("room", Message::text("hi"), None, None).expect("valid"), 1);
        assert_eq!(t.publish("nobody", Message::text("hi"), None, None).expect("valid"), 0);
    }

    #[test]
    fn a_topic_message_is_compressed_once_for_every_subscriber_without_context() {
        use crate::ws::deflate::{negotiate, DeflateConfig};
        use crate::ws::Outgoing;
        let t = topics(0);
        let stats = Arc::new(Stats::default());
        let shared = negotiate(std::iter::once("permessage-deflate"), &DeflateConfig::default());
        let own = negotiate(
            std::iter::once("permessage-deflate"),
            &DeflateConfig { context_takeover: true, ..DeflateConfig::default() },
        );
        let sockets: Vec<WsSocket> =
            (1..=4).map(|i| WsSocket::new(i, WsConfig::default(), stats.clone())).collect();
        sockets[0].set_agreed(shared.clone());
        sockets[1].set_agreed(shared);
        sockets[2].set_agreed(own);
        for s in &sockets {
            assert!(t.subscribe_ws("room", s));
        }
        let text = "a fairly compressible message ".repeat(100);
        assert_eq!(t.publish("room", Message::text(text.clone()), None, None).expect("valid"), 4);
        let payload = |s: &WsSocket| match s.queued().pop() {
            Some(Outgoing::Shared { deflated, .. }) => Some(deflated),
            _ => None,
        };
        let (a, b) = (payload(&sockets[0]).expect("deflated"), payload(&sockets[1]).expect("deflated"));
        assert_eq!(a.as_ptr(), b.as_ptr(), "one compressed payload shared by both");
        assert!(a.len() < text.len() / 4);
        // A socket with its own context, and one without deflate, get the message itself.
        assert!(payload(&sockets[2]).is_none());
        assert!(payload(&sockets[3]).is_none());
    }

    #[test]
    fn history_is_bounded_and_replays_after_the_last_event_id() {
        let t = topics(3);
        for i in 1..=5 {
            t.publish("feed", Message::text(format!("m{i}")), None, None).expect("valid");
        }
        let opts =
            SseSubscribe { last_event_id: Some("3".into()), max_backpressure: 1 << 20, ..Default::default() };
        let mut body = t.subscribe_sse("feed", opts);
        assert_eq!(drain(&mut body), "id: 4\ndata: m4\n\nid: 5\ndata: m5\n\n");
        let opts = SseSubscribe { recent: 2, max_backpressure: 1 << 20, ..Default::default() };
        let mut body = t.subscribe_sse("feed", opts);
        assert_eq!(drain(&mut body), "id: 4\ndata: m4\n\nid: 5\ndata: m5\n\n");
        // Event 2 fell out of the 3-message history: the client is told before the rest.
        let opts =
            SseSubscribe { last_event_id: Some("1".into()), max_backpressure: 1 << 20, ..Default::default() };
        let mut body = t.subscribe_sse("feed", opts);
        let text = drain(&mut body);
        assert!(
            text.starts_with("event: cz-gap\ndata: {\"lastEventId\":\"1\",\"oldest\":3}\n\nid: 3\n"),
            "{text}"
        );
    }

    #[test]
    fn the_total_history_is_bounded_across_topics_and_unused_topics_are_forgotten() {
        let config = TopicConfig { history: 1000, history_bytes: 1 << 20, total_history_bytes: 64 * 1024 };
        let t = Topics::new(config, Arc::new(Stats::default()));
        // 5,000 per-user topics of 1 KiB messages: 5 MiB if nothing were evicted.
        for user in 0..5000 {
            t.publish(&format!("user:{user}"), Message::text("u".repeat(1000)), None, None).expect("valid");
            assert!(t.history_bytes() <= 64 * 1024 + 1100, "history grew to {}", t.history_bytes());
        }
        assert!(t.len() < 5000 - SWEEP_EVERY, "{} topics kept", t.len());
        // The newest topics still replay; an old one reports the gap honestly.
        let opts = SseSubscribe {
            last_event_id: Some("4999".into()),
            max_backpressure: 1 << 20,
            ..Default::default()
        };
        let mut body = t.subscribe_sse("user:4999", opts);
        assert!(drain(&mut body).starts_with("id: 5000\n"));
        let opts =
            SseSubscribe { last_event_id: Some("0".into()), max_backpressure: 1 << 20, ..Default::default() };
        let mut body = t.subscribe_sse("user:0", opts);
        assert!(drain(&mut body).starts_with("event: cz-gap\n"));
    }

    #[test]
    fn without_history_a_resume_after_missed_messages_reports_a_gap() {
        let t = topics(0);
        let opts = SseSubscribe { max_backpressure: 1 << 20, ..Default::default() };
        let live = t.subscribe_sse("x", opts);
        t.publish("x", Message::text("a"), None, None).expect("valid");
        let opts =
            SseSubscribe { last_event_id: Some("0".into()), max_backpressure: 1 << 20, ..Default::default() };
        let mut body = t.subscribe_sse("x", opts);
        assert!(drain(&mut body).starts_with("event: cz-gap\n"));
        let opts =
            SseSubscribe { last_event_id: Some("1".into()), max_backpressure: 1 << 20, ..Default::default() };
        let mut body = t.subscribe_sse("x", opts);
        assert_eq!(drain(&mut body), "");
        drop(live);
    }

    #[test]
    fn a_subscriber_past_its_limit_is_cut_and_forgotten() {
        let t = topics(0);
        let opts = SseSubscribe { max_backpressure: 100, ..Default::default() };
        let mut body = t.subscribe_sse("x", opts);
        assert_eq!(t.publish("x", Message::text("a".repeat(60)), None, None).expect("valid"), 1);
        assert_eq!(t.publish("x", Message::text("a".repeat(60)), None, None).expect("valid"), 0);
        assert_eq!(t.subscribers("x"), 0);
        let mut cx = Context::from_waker(Waker::noop());
        assert!(matches!(Pin::new(&mut body).poll_frame(&mut cx), Poll::Ready(Some(Err(_)))));
        drop(body);
        assert_eq!(t.stats.snapshot().subscribers_dropped, 1);
    }
}
