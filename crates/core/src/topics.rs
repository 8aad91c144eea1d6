//! Topic fan-out: a publish reaches every WebSocket and SSE subscriber of a topic from Rust,
//! sharing one payload (`Bytes`) and one encoded SSE frame, with a bounded replay history.

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::future::Future as _;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::time::Sleep;

use crate::body::ring::StreamAborted;
use crate::stats::Stats;
use crate::ws::{Message, SendStatus, WsSocket};

/// Bounds of each topic's replay history (used by SSE `Last-Event-ID` and `replay: n`).
#[derive(Debug, Clone)]
pub struct TopicConfig {
    /// Messages kept per topic (0 disables history and replay).
    pub history: usize,
    /// Bytes of encoded SSE frames kept per topic, whichever bound is hit first.
    pub history_bytes: usize,
}

impl Default for TopicConfig {
    fn default() -> Self {
        Self { history: 1000, history_bytes: 1 << 20 }
    }
}

/// The topics of one server.
pub struct Topics {
    map: Mutex<HashMap<String, Arc<Topic>>>,
    config: TopicConfig,
    stats: Arc<Stats>,
    next_sse: AtomicU64,
}

/// One topic: its subscribers and its recent history.
pub struct Topic {
    name: String,
    state: Mutex<TopicState>,
}

struct TopicState {
    ws: Vec<WsSocket>,
    sse: Vec<(u64, Arc<SseQueue>)>,
    /// Sequence number of the last publish (SSE event ids).
    seq: u64,
    history: VecDeque<(u64, Bytes)>,
    history_bytes: usize,
}

impl Topic {
    /// The topic's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn remove_ws(&self, id: u64) {
        let mut st = self.state.lock();
        if let Some(i) = st.ws.iter().position(|s| s.id() == id) {
            st.ws.swap_remove(i);
        }
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
        Arc::new(Self { map: Mutex::new(HashMap::new()), config, stats, next_sse: AtomicU64::new(1) })
    }

    fn topic(&self, name: &str) -> Arc<Topic> {
        let mut map = self.map.lock();
        if let Some(t) = map.get(name) {
            return t.clone();
        }
        let t = Arc::new(Topic {
            name: name.to_owned(),
            state: Mutex::new(TopicState {
                ws: Vec::new(),
                sse: Vec::new(),
                seq: 0,
                history: VecDeque::new(),
                history_bytes: 0,
            }),
        });
        map.insert(name.to_owned(), t.clone());
        t
    }

    /// Subscribes a WebSocket; `false` if it already was.
    pub fn subscribe_ws(&self, name: &str, socket: &WsSocket) -> bool {
        let topic = self.topic(name);
        if socket.is_closed() || !socket.add_subscription(topic.clone()) {
            return false;
        }
        topic.state.lock().ws.push(socket.clone());
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
    pub fn publish(&self, name: &str, message: Message, event: Option<&str>, exclude: Option<u64>) -> usize {
        // With history on, a publish before anyone subscribed is kept for later replay.
        let topic =
            if self.config.history > 0 { Some(self.topic(name)) } else { self.map.lock().get(name).cloned() };
        let Some(topic) = topic else {
            self.stats.published(0);
            return 0;
        };
        let mut st = topic.state.lock();
        st.seq += 1;
        let seq = st.seq;
        let mut reached = 0;
        for s in &st.ws {
            if Some(s.id()) != exclude && s.send(message.clone()) != SendStatus::Dropped {
                reached += 1;
            }
        }
        if !st.sse.is_empty() || self.config.history > 0 {
            let frame = sse_frame(seq, event, &message);
            let mut cut = Vec::new();
            for (id, q) in &st.sse {
                if q.push(frame.clone()) {
                    reached += 1;
                } else {
                    cut.push(*id);
                }
            }
            if !cut.is_empty() {
                st.sse.retain(|(id, _)| !cut.contains(id));
            }
            if self.config.history > 0 {
                st.history_bytes += frame.len();
                st.history.push_back((seq, frame));
                while st.history.len() > self.config.history || st.history_bytes > self.config.history_bytes {
                    if let Some((_, f)) = st.history.pop_front() {
                        st.history_bytes -= f.len();
                    }
                }
            }
        }
        drop(st);
        self.stats.published(reached as u64);
        reached
    }

    /// Subscribes an SSE client: the returned body streams the topic's events (after any replay)
    /// until the client leaves or falls `max_backpressure` bytes behind.
    pub fn subscribe_sse(&self, name: &str, opts: SseSubscribe) -> TopicBody {
        let topic = self.topic(name);
        let id = self.next_sse.fetch_add(1, Ordering::Relaxed);
        let queue = Arc::new(SseQueue {
            state: Mutex::new(QueueState { frames: VecDeque::new(), bytes: 0, cut: false, waker: None }),
            limit: opts.max_backpressure.max(1),
        });
        {
            let mut st = topic.state.lock();
            let mut q = queue.state.lock();
            if let Some(p) = &opts.preamble {
                q.bytes += p.len();
                q.frames.push_back(p.clone());
            }
            let oldest = st.history.front().map_or(st.seq + 1, |(s, _)| *s);
            let replay_from = match opts.last_event_id.as_deref().map(str::trim) {
                Some(last) => match last.parse::<u64>() {
                    // Everything after `last` is still in history: resume exactly.
                    Ok(n) if n <= st.seq && n + 1 >= oldest => Some(n + 1),
                    // Older than the history, or from another server run: say so honestly.
                    _ => {
                        let gap = format!(
                            "event: cz-gap\ndata: {{\"lastEventId\":{:?},\"oldest\":{oldest}}}\n\n",
                            last
                        );
                        q.bytes += gap.len();
                        q.frames.push_back(Bytes::from(gap));
                        Some(oldest)
                    }
                },
                None if opts.recent > 0 => Some(st.seq.saturating_sub(opts.recent as u64 - 1).max(oldest)),
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
        self.stats.subscriber_added();
        TopicBody {
            queue,
            topic,
            id,
            stats: self.stats.clone(),
            heartbeat: opts.heartbeat,
            sleep: None,
            ended: false,
        }
    }
}

/// Encodes one SSE event: `id`, optional `event`, and the data split into `data:` lines.
fn sse_frame(seq: u64, event: Option<&str>, message: &Message) -> Bytes {
    let lossy;
    let data: &str = match message {
        Message::Text(t) => t.as_str(),
        Message::Binary(b) => {
            lossy = String::from_utf8_lossy(b);
            &lossy
        }
        _ => "",
    };
    let mut s = String::with_capacity(data.len() + 32);
    let _ = writeln!(s, "id: {seq}");
    if let Some(e) = event {
        s.push_str("event: ");
        s.push_str(e);
        s.push('\n');
    }
    for line in data.split('\n') {
        s.push_str("data: ");
        s.push_str(line.strip_suffix('\r').unwrap_or(line));
        s.push('\n');
    }
    s.push('\n');
    Bytes::from(s)
}

struct QueueState {
    frames: VecDeque<Bytes>,
    bytes: usize,
    /// Fell too far behind: the stream ends with an error.
    cut: bool,
    waker: Option<Waker>,
}

/// The frames waiting for one SSE subscriber.
struct SseQueue {
    state: Mutex<QueueState>,
    limit: usize,
}

impl SseQueue {
    /// Queues a frame; `false` (and the subscriber is cut) when it is over its limit.
    fn push(&self, frame: Bytes) -> bool {
        let mut q = self.state.lock();
        if q.cut {
            return false;
        }
        if q.bytes + frame.len() > self.limit {
            q.cut = true;
            q.frames.clear();
            q.bytes = 0;
        } else {
            q.bytes += frame.len();
            q.frames.push_back(frame);
        }
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
                drop(q);
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
        Topics::new(TopicConfig { history, history_bytes: 1 << 20 }, Arc::new(Stats::default()))
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
        let f = sse_frame(7, Some("up"), &Message::text("a\r\nb\nc"));
        assert_eq!(&f[..], b"id: 7\nevent: up\ndata: a\ndata: b\ndata: c\n\n");
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
        assert_eq!(t.publish("room", Message::text("hi"), None, None), 2);
        assert_eq!(t.publish("room", Message::text("hi"), None, Some(1)), 1);
        assert!(t.unsubscribe_ws("room", &a));
        assert_eq!(t.publish("room", Message::text("hi"), None, None), 1);
        assert_eq!(t.publish("nobody", Message::text("hi"), None, None), 0);
    }

    #[test]
    fn history_is_bounded_and_replays_after_the_last_event_id() {
        let t = topics(3);
        for i in 1..=5 {
            t.publish("feed", Message::text(format!("m{i}")), None, None);
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
    fn a_subscriber_past_its_limit_is_cut_and_forgotten() {
        let t = topics(0);
        let opts = SseSubscribe { max_backpressure: 100, ..Default::default() };
        let mut body = t.subscribe_sse("x", opts);
        assert_eq!(t.publish("x", Message::text("a".repeat(60)), None, None), 1);
        assert_eq!(t.publish("x", Message::text("a".repeat(60)), None, None), 0);
        assert_eq!(t.subscribers("x"), 0);
        let mut cx = Context::from_waker(Waker::noop());
        assert!(matches!(Pin::new(&mut body).poll_frame(&mut cx), Poll::Ready(Some(Err(_)))));
        drop(body);
        assert_eq!(t.stats.snapshot().subscribers_dropped, 1);
    }
}
