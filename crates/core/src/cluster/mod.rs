//! The Redis adapter: topics across processes. A publish goes into the topic's Redis stream and
//! out on its channel in one atomic script, so every process (the publisher too) fans it out to
//! its local subscribers in one global order, with the stream id as the event id. One channel
//! subscription per topic per process, not per client; history and resumes read the stream, so a
//! client resumes on whichever process it reconnects to. A process that loses Redis keeps
//! serving its own subscribers, reconnects with backoff, subscribes again, catches up from the
//! streams, and tells subscribers (`cz-gap`) when that could not be exact.

mod restore;
pub mod sessions;
pub mod wire;

pub(crate) use restore::restore;

use futures_util::StreamExt;
use parking_lot::Mutex;
use redis::aio::{MultiplexedConnection, PubSubSink};
use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::{mpsc, Notify};

use crate::stats::Stats;
use crate::topics::Topics;
use crate::ws::{Message, Sessions};

/// Where the adapter connects and how it names things.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]`.
    pub url: String,
    /// Prefix of every key and channel (`<prefix>:t:<topic>` streams, `<prefix>:c:<topic>`
    /// channels), so several apps can share one Redis.
    pub prefix: String,
    /// Entries each topic's stream keeps (the `topicHistory` bound): what a resume can replay.
    pub history: usize,
    /// A topic's stream expires this long after its last publish (`None`: never).
    pub ttl: Option<Duration>,
}

/// First and longest wait between two connection attempts.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How long commands wait for a connection that was just lost to come back before they are
/// answered without Redis.
const HOLD: Duration = Duration::from_secs(1);
/// Publishes and `sendTo`s sent to Redis in one pipeline at most.
const BATCH: usize = 256;
/// Longest wait for a Redis reply (a subscribe, a pipeline, a ping) before the connection is
/// taken for dead and replaced.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the subscription connection is pinged: a half-open connection (a Redis host that
/// vanished without a reset) would otherwise look connected while nothing arrives.
const PING_EVERY: Duration = Duration::from_secs(5);

/// `fut`, failed with a timeout error past [`REPLY_TIMEOUT`].
async fn timed<T>(fut: impl std::future::Future<Output = redis::RedisResult<T>>) -> redis::RedisResult<T> {
    tokio::time::timeout(REPLY_TIMEOUT, fut)
        .await
        .unwrap_or_else(|_| Err(redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut))))
}

/// A replay for one subscriber, read from the topic's stream.
pub struct Replay {
    /// Entries after the requested id, oldest first.
    pub entries: Vec<wire::Entry>,
    /// `false` when entries after the requested id may be missing (trimmed, Redis restarted
    /// empty, or Redis unreachable): the subscriber is told with a `cz-gap` event.
    pub exact: bool,
    /// The stream's ids went back below the requested one (a new stream on a Redis whose clock
    /// is behind): later ids may be lower than what the client saw.
    pub rewound: bool,
}

impl Replay {
    fn lost() -> Self {
        Self { entries: Vec::new(), exact: false, rewound: false }
    }
}

/// Where a replay starts.
#[derive(Debug, Clone, Copy)]
pub enum ReplayFrom {
    /// After this event id (the client's `Last-Event-ID`).
    After(u64),
    /// The newest n messages.
    Recent(usize),
}

/// The callback of a command that answers; called exactly once, with `lost()` if the command is
/// dropped unanswered (Redis failed first, or the server stopped), so nobody waits for an answer
/// that will not come (a subscriber behind its replay, a session behind its export).
struct Done<T> {
    f: Option<Box<dyn FnOnce(T) + Send>>,
    lost: fn() -> T,
}

impl<T> Done<T> {
    fn new(f: impl FnOnce(T) + Send + 'static, lost: fn() -> T) -> Self {
        Self { f: Some(Box::new(f)), lost }
    }

    fn call(mut self, value: T) {
        if let Some(f) = self.f.take() {
            f(value);
        }
    }
}

impl<T> Drop for Done<T> {
    fn drop(&mut self) {
        if let Some(f) = self.f.take() {
            f((self.lost)());
        }
    }
}

enum Command {
    Publish {
        topic: String,
        message: Message,
        event: Option<String>,
        exclude: Option<u64>,
    },
    Watch(String),
    Unwatch(String),
    Replay {
        topic: String,
        from: ReplayFrom,
        done: Done<Replay>,
    },
    /// Writes a disconnected session to Redis.
    Export {
        session: sessions::Exported,
        done: Done<sessions::Outcome>,
    },
    /// Takes a session from Redis for a new connection of `route`.
    Claim {
        id: String,
        route: u32,
        done: Done<Option<sessions::Claimed>>,
    },
    /// A session's TTL passed: `Some(true)` it expired, `Some(false)` it was claimed, `None`
    /// Redis could not say.
    Expire {
        id: String,
        done: Done<Option<bool>>,
    },
    /// `sendTo` a session this process does not hold: queued in Redis if it waits there, else
    /// published to every process (`relayed`: by the process it just left, which then relays no
    /// further).
    SendTo {
        id: String,
        message: Message,
        relayed: bool,
    },
}

/// One process's connection to the topics of every process.
pub struct Cluster {
    config: RedisConfig,
    topics: Weak<Topics>,
    sessions: Weak<Sessions>,
    stats: Arc<Stats>,
    /// This process's id in channel messages (to skip the socket a publish excludes).
    origin: String,
    commands: mpsc::UnboundedSender<Command>,
    /// Topics with local subscribers → the newest event id of the stream when the subscription
    /// began (0: the stream was empty; `None`: not read yet), so a catch-up after a reconnect
    /// never replays older messages to them.
    watched: Mutex<HashMap<String, Option<u64>>>,
    stop: Notify,
}

/// The live connections of one session with Redis.
struct Session {
    conn: MultiplexedConnection,
    sink: PubSubSink,
    messages: redis::aio::PubSubStream,
}

impl Cluster {
    /// Starts the adapter on the current tokio runtime; it connects in the background (until
    /// then, publishes reach local subscribers only).
    pub fn start(
        config: RedisConfig,
        topics: &Arc<Topics>,
        sessions: &Arc<Sessions>,
        stats: Arc<Stats>,
    ) -> redis::RedisResult<Arc<Self>> {
        let client = redis::Client::open(config.url.as_str())?;
        let (tx, rx) = mpsc::unbounded_channel();
        let mut origin = [0u8; 8];
        getrandom::fill(&mut origin)
            .map_err(|e| redis::RedisError::from(std::io::Error::other(e.to_string())))?;
        let cluster = Arc::new(Self {
            config,
            topics: Arc::downgrade(topics),
            sessions: Arc::downgrade(sessions),
            stats,
            origin: origin.iter().map(|b| format!("{b:02x}")).collect(),
            commands: tx,
            watched: Mutex::new(HashMap::new()),
            stop: Notify::new(),
        });
        tokio::spawn(cluster.clone().run(client, rx));
        Ok(cluster)
    }

    /// Stops the adapter (the server closed).
    pub fn stop(&self) {
        self.stop.notify_one();
    }

    /// Publishes through Redis, in order with every earlier publish of this process: sent in
    /// the next pipeline while connected, else handed to this process's subscribers (without an
    /// event id) as soon as the adapter sees it. `false` once the adapter has stopped.
    pub(crate) fn publish(
        &self,
        topic: &str,
        message: Message,
        event: Option<&str>,
        exclude: Option<u64>,
    ) -> bool {
        let cmd =
            Command::Publish { topic: topic.to_owned(), message, event: event.map(str::to_owned), exclude };
        self.commands.send(cmd).is_ok()
    }

    /// This process has subscribers of `topic`: receive its messages.
    pub(crate) fn watch(&self, topic: &str) {
        if let std::collections::hash_map::Entry::Vacant(e) = self.watched.lock().entry(topic.to_owned()) {
            e.insert(None);
            let _ = self.commands.send(Command::Watch(topic.to_owned()));
        }
    }

    /// Nobody here subscribes to `topic` any more.
    pub(crate) fn unwatch(&self, topic: &str) {
        if self.watched.lock().remove(topic).is_some() {
            let _ = self.commands.send(Command::Unwatch(topic.to_owned()));
        }
    }

    /// Reads a replay of `topic` from its stream (after the topic is watched, so nothing falls
    /// between the replay and the live messages) and hands it to `done`, on a runtime thread.
    pub(crate) fn replay(&self, topic: &str, from: ReplayFrom, done: impl FnOnce(Replay) + Send + 'static) {
        // If the adapter is gone the command is dropped, and the guard answers it.
        let _ = self.commands.send(Command::Replay {
            topic: topic.to_owned(),
            from,
            done: Done::new(done, Replay::lost),
        });
    }

    /// `true` while the adapter is connected to Redis (a disconnected session then goes to
    /// Redis; otherwise it waits on this process).
    pub(crate) fn connected(&self) -> bool {
        self.stats.redis_connected()
    }

    /// This server's topics.
    pub(crate) fn topics(&self) -> Option<Arc<Topics>> {
        self.topics.upgrade()
    }

    /// Writes a disconnected session to Redis, after every command asked before it; `done` says
    /// how that ended (a session Redis did not take is handed back).
    pub(crate) fn export(
        &self,
        session: sessions::Exported,
        done: impl FnOnce(sessions::Outcome) + Send + 'static,
    ) {
        let done = Done::new(done, || sessions::Outcome::Stopped);
        let _ = self.commands.send(Command::Export { session, done });
    }

    /// Takes session `id` of `route` from Redis; `done` gets it, or `None` when Redis has no
    /// such session (or cannot be reached).
    pub(crate) fn claim(
        &self,
        id: &str,
        route: u32,
        done: impl FnOnce(Option<sessions::Claimed>) + Send + 'static,
    ) {
        let _ =
            self.commands.send(Command::Claim { id: id.to_owned(), route, done: Done::new(done, || None) });
    }

    /// Ends session `id` in Redis at its TTL; `done` gets `Some(true)` when it was still waiting
    /// (expired), `Some(false)` when another connection claimed it, `None` when Redis could not say.
    pub(crate) fn expire(&self, id: &str, done: impl FnOnce(Option<bool>) + Send + 'static) {
        let _ = self.commands.send(Command::Expire { id: id.to_owned(), done: Done::new(done, || None) });
    }

    /// Sends `message` to session `id`, which this process does not hold: queued in Redis if it
    /// waits there (after every export this process asked before), else published to every
    /// process for the one it is connected to. `relayed`: this process relays a message that
    /// reached it just after the session left it for Redis.
    pub(crate) fn send_to(&self, id: &str, message: Message, relayed: bool) {
        let _ = self.commands.send(Command::SendTo { id: id.to_owned(), message, relayed });
    }

    /// The channel of `sendTo` messages for sessions connected anywhere.
    fn sessions_channel(&self) -> String {
        format!("{}:u", self.config.prefix)
    }

    fn session_key(&self, id: &str) -> String {
        format!("{}:s:{id}", self.config.prefix)
    }

    fn queue_key(&self, id: &str) -> String {
        format!("{}:q:{id}", self.config.prefix)
    }

    fn moved_key(&self, id: &str) -> String {
        format!("{}:m:{id}", self.config.prefix)
    }

    fn stream_key(&self, topic: &str) -> String {
        format!("{}:t:{topic}", self.config.prefix)
    }

    fn trim_key(&self, topic: &str) -> String {
        format!("{}:g:{topic}", self.config.prefix)
    }

    fn channel(&self, topic: &str) -> String {
        format!("{}:c:{topic}", self.config.prefix)
    }

    /// The topic of a channel name of ours.
    fn topic_of<'a>(&self, channel: &'a str) -> Option<&'a str> {
        channel.strip_prefix(self.config.prefix.as_str())?.strip_prefix(":c:")
    }

    /// Connects, serves until the connection is lost, and starts again with backoff, until
    /// stopped.
    async fn run(self: Arc<Self>, client: redis::Client, mut rx: mpsc::UnboundedReceiver<Command>) {
        let mut backoff = BACKOFF_MIN;
        let mut first = true;
        // The last session was lost after serving a while: a connection that just dropped
        // (killed, a proxy restarted) usually comes back at once.
        let mut blip = false;
        loop {
            let connect = timed(async {
                let mut conn = client.get_multiplexed_async_connection().await?;
                conn.set_response_timeout(REPLY_TIMEOUT);
                let (sink, messages) = client.get_async_pubsub().await?.split();
                Ok::<_, redis::RedisError>(Session { conn, sink, messages })
            });
            tokio::pin!(connect);
            // After a blip, commands wait for the new connection (up to HOLD), so what is
            // published meanwhile still goes through Redis to every process; past it, and on
            // later attempts, publishes keep reaching local subscribers while an attempt hangs.
            let held = if std::mem::take(&mut blip) {
                tokio::select! {
                    () = self.stop.notified() => return,
                    r = tokio::time::timeout(HOLD, connect.as_mut()) => r.ok(),
                }
            } else {
                None
            };
            let session = match held {
                Some(s) => s,
                None => {
                    let Some(s) = self.offline_until(&mut rx, connect.as_mut()).await else { return };
                    s
                }
            };
            match session {
                Ok(mut s) => {
                    backoff = BACKOFF_MIN;
                    if !first {
                        self.stats.redis_reconnected();
                    }
                    first = false;
                    let resumed = tokio::select! {
                        () = self.stop.notified() => return,
                        r = tokio::time::timeout(REPLY_TIMEOUT * 4, self.resume(&mut s)) => matches!(r, Ok(Ok(()))),
                    };
                    if resumed {
                        self.stats.set_redis_connected(true);
                        let since = std::time::Instant::now();
                        let stopped = self.serve(&mut s, &mut rx).await;
                        self.stats.set_redis_connected(false);
                        if stopped {
                            return;
                        }
                        // Not a session that fails as soon as it starts (that one backs off).
                        blip = since.elapsed() >= BACKOFF_MIN;
                    }
                    self.stats.redis_error();
                }
                Err(_) => self.stats.redis_error(),
            }
            if blip {
                continue;
            }
            // Unreachable: wait, answering what arrives meanwhile without Redis.
            if self.offline_until(&mut rx, tokio::time::sleep(backoff)).await.is_none() {
                return;
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// Runs `fut` while answering the commands that arrive meanwhile without Redis; `None` when
    /// the adapter is stopped first.
    async fn offline_until<F: std::future::Future>(
        &self,
        rx: &mut mpsc::UnboundedReceiver<Command>,
        fut: F,
    ) -> Option<F::Output> {
        tokio::pin!(fut);
        loop {
            tokio::select! {
                () = self.stop.notified() => return None,
                out = &mut fut => return Some(out),
                cmd = rx.recv() => self.offline(cmd?),
            }
        }
    }

    /// A command that arrives while Redis is unreachable.
    fn offline(&self, cmd: Command) {
        match cmd {
            Command::Publish { topic, message, event, exclude } => {
                if let Some(t) = self.topics.upgrade() {
                    t.deliver_local(&topic, &message, event.as_deref(), exclude);
                }
            }
            // Subscribed again (and caught up) on reconnect: `watched` has it.
            Command::Watch(_) | Command::Unwatch(_) => {}
            Command::Replay { done, .. } => done.call(Replay::lost()),
            Command::Export { session, done } => done.call(sessions::Outcome::Failed(Box::new(session))),
            Command::Claim { done, .. } => done.call(None),
            Command::Expire { done, .. } => done.call(None),
            Command::SendTo { .. } => self.stats.redis_error(),
        }
    }

    /// After (re)connecting: subscribes to every watched topic, then catches each up from its
    /// stream after the last message delivered here, reporting a gap first where that is not
    /// exact.
    async fn resume(&self, s: &mut Session) -> redis::RedisResult<()> {
        // Publishes and `sendTo`s run their scripts by hash (EVALSHA in a pipeline): load them.
        redis::Script::new(wire::PUBLISH).load_async(&mut s.conn).await?;
        redis::Script::new(sessions::SEND).load_async(&mut s.conn).await?;
        s.sink.subscribe(self.sessions_channel()).await?;
        let watched: Vec<(String, Option<u64>)> =
            self.watched.lock().iter().map(|(t, f)| (t.clone(), *f)).collect();
        for (topic, floor) in &watched {
            if floor.is_none() {
                self.set_floor(topic, &mut s.conn).await?;
            }
            s.sink.subscribe(self.channel(topic)).await?;
        }
        let Some(topics) = self.topics.upgrade() else { return Ok(()) };
        for (topic, floor) in watched {
            let Some(floor) = floor else { continue };
            let after = topics.last_delivered(&topic).max(floor);
            let replay = self.read_replay(&mut s.conn, &topic, ReplayFrom::After(after)).await?;
            if !replay.exact {
                self.stats.redis_gap();
                topics.gap(&topic, after, replay.rewound);
            }
            for e in &replay.entries {
                self.deliver(&topics, &topic, e);
            }
        }
        Ok(())
    }

    /// Records the newest id of `topic`'s stream (0: empty) as where its catch-ups start; read
    /// before subscribing, so a message published in between is caught up, not skipped.
    async fn set_floor(&self, topic: &str, conn: &mut MultiplexedConnection) -> redis::RedisResult<()> {
        let id = self.newest_id(topic, conn).await?;
        if let Some(f) = self.watched.lock().get_mut(topic) {
            *f = Some(f.unwrap_or(0).max(id));
        }
        Ok(())
    }

    /// The newest event id of `topic`'s stream (0: empty).
    async fn newest_id(&self, topic: &str, conn: &mut MultiplexedConnection) -> redis::RedisResult<u64> {
        let newest: redis::Value = redis::cmd("XREVRANGE")
            .arg(self.stream_key(topic))
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(conn)
            .await?;
        Ok(match &newest {
            redis::Value::Array(entries) => entries.first().and_then(wire::parse_entry).map_or(0, |e| e.id),
            _ => 0,
        })
    }

    /// Serves one session: channel messages in, commands out. Returns `true` when stopped,
    /// `false` when the connection was lost.
    async fn serve(&self, s: &mut Session, rx: &mut mpsc::UnboundedReceiver<Command>) -> bool {
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.reset();
        loop {
            tokio::select! {
                () = self.stop.notified() => return true,
                _ = ping.tick() => {
                    if timed(s.sink.ping::<String>()).await.is_err() {
                        return false;
                    }
                }
                msg = s.messages.next() => match msg {
                    Some(msg) => self.received(&msg),
                    None => return false,
                },
                cmd = rx.recv() => {
                    let Some(cmd) = cmd else { return true };
                    let mut batch = Vec::new();
                    let mut next = Some(cmd);
                    while let Some(cmd) = next.take() {
                        let item = match cmd {
                            Command::Publish { topic, message, event, exclude } => {
                                Some(Batched::Publish { topic, message, event, exclude })
                            }
                            Command::SendTo { id, message, relayed } => Some(Batched::SendTo { id, message, relayed }),
                            other => {
                                if self.publish_batch(&mut s.conn, &mut batch).await.is_err()
                                    || self.command(s, other).await.is_err()
                                {
                                    return false;
                                }
                                None
                            }
                        };
                        if let Some(item) = item {
                            batch.push(item);
                            if batch.len() < BATCH {
                                next = rx.try_recv().ok();
                            }
                        }
                    }
                    if self.publish_batch(&mut s.conn, &mut batch).await.is_err() {
                        return false;
                    }
                }
            }
        }
    }

    /// Sends queued publishes and `sendTo`s in one pipeline, in order. A publish Redis refuses
    /// (out of memory, a key of another type) reaches this process's subscribers instead and is
    /// counted as an error (a refused `sendTo` is only counted); when the connection fails
    /// mid-pipeline, Redis may have stored some of them, so they are left to the catch-up after
    /// the reconnect (delivering them here too would duplicate them) and the session ends.
    async fn publish_batch(
        &self,
        conn: &mut MultiplexedConnection,
        batch: &mut Vec<Batched>,
    ) -> redis::RedisResult<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let publish = redis::Script::new(wire::PUBLISH).get_hash().to_owned();
        let send = redis::Script::new(sessions::SEND).get_hash().to_owned();
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for item in batch.iter() {
            match item {
                Batched::Publish { topic, message, event, exclude } => {
                    pipe.cmd("EVALSHA")
                        .arg(&publish)
                        .arg(3)
                        .arg(self.stream_key(topic))
                        .arg(self.trim_key(topic))
                        .arg(self.channel(topic))
                        .arg(self.config.history.max(1))
                        .arg(wire::kind(message))
                        .arg(event.as_deref().unwrap_or(""))
                        .arg(payload(message))
                        .arg(&self.origin)
                        .arg(exclude.unwrap_or(0))
                        .arg(self.config.ttl.map_or(0, |t| t.as_secs().max(1)));
                }
                Batched::SendTo { id, message, relayed } => {
                    pipe.cmd("EVALSHA")
                        .arg(&send)
                        .arg(3)
                        .arg(self.session_key(id))
                        .arg(self.queue_key(id))
                        .arg(self.sessions_channel())
                        .arg(wire::kind(message))
                        .arg(payload(message))
                        .arg(id)
                        .arg(u8::from(*relayed));
                }
            }
        }
        let results = pipe.query_async::<Vec<redis::RedisResult<redis::Value>>>(conn).await;
        let sent = std::mem::take(batch);
        let results = match results {
            Ok(r) => r,
            Err(e) => {
                self.stats.redis_error();
                return Err(e);
            }
        };
        let mut stored = 0;
        for (item, result) in sent.into_iter().zip(results) {
            match (item, result) {
                (Batched::Publish { .. }, Ok(_)) => stored += 1,
                (Batched::Publish { topic, message, event, exclude }, Err(_)) => {
                    self.stats.redis_error();
                    if let Some(t) = self.topics.upgrade() {
                        t.deliver_local(&topic, &message, event.as_deref(), exclude);
                    }
                }
                (Batched::SendTo { .. }, Ok(_)) => {}
                (Batched::SendTo { .. }, Err(_)) => self.stats.redis_error(),
            }
        }
        self.stats.redis_published(stored);
        Ok(())
    }

    /// A watch, unwatch or replay, in the order they were asked.
    async fn command(&self, s: &mut Session, cmd: Command) -> redis::RedisResult<()> {
        match cmd {
            // Pipelined by `serve`.
            Command::Publish { .. } | Command::SendTo { .. } => Ok(()),
            Command::Watch(topic) => {
                if self.watched.lock().contains_key(&topic) {
                    self.set_floor(&topic, &mut s.conn).await?;
                    timed(s.sink.subscribe(self.channel(&topic))).await?;
                }
                Ok(())
            }
            Command::Unwatch(topic) => {
                if !self.watched.lock().contains_key(&topic) {
                    timed(s.sink.unsubscribe(self.channel(&topic))).await?;
                }
                Ok(())
            }
            Command::Replay { topic, from, done } => {
                // The topic's subscription was confirmed before this (its Watch came first):
                // the live messages after the replay are already arriving.
                let mut conn = s.conn.clone();
                let this = ReplayReader {
                    key: self.stream_key(&topic),
                    trim_key: self.trim_key(&topic),
                    history: self.config.history,
                    stats: self.stats.clone(),
                };
                tokio::spawn(async move {
                    let replay = this.read(&mut conn, from).await.unwrap_or_else(|_| Replay::lost());
                    done.call(replay);
                });
                Ok(())
            }
            // Sessions run in order with each other (a `sendTo` after the export it follows, a
            // claim after an export of the same process).
            Command::Export { session, done } => match self.export_session(&mut s.conn, &session).await {
                Ok(()) => {
                    done.call(sessions::Outcome::Written);
                    Ok(())
                }
                Err(e) => {
                    done.call(sessions::Outcome::Failed(Box::new(session)));
                    self.failed(e)
                }
            },
            Command::Claim { id, route, done } => {
                match self.session_script(&mut s.conn, sessions::CLAIM, &id, Some(route)).await {
                    Ok(r) => {
                        done.call(sessions::parse_claim(&r));
                        Ok(())
                    }
                    Err(e) => self.failed(e),
                }
            }
            Command::Expire { id, done } => {
                match self.session_script(&mut s.conn, sessions::EXPIRE, &id, None).await {
                    Ok(r) => {
                        done.call(Some(sessions::expired(&r)));
                        Ok(())
                    }
                    Err(e) => self.failed(e),
                }
            }
        }
    }

    /// Runs a session script (`CLAIM`, `EXPIRE`) on session `id`'s keys: its hash, its queue and
    /// its claim marker, with `route` as the argument when given.
    async fn session_script(
        &self,
        conn: &mut MultiplexedConnection,
        script: &str,
        id: &str,
        route: Option<u32>,
    ) -> redis::RedisResult<redis::Value> {
        let script = redis::Script::new(script);
        let mut call = script.prepare_invoke();
        call.key(self.session_key(id)).key(self.queue_key(id)).key(self.moved_key(id));
        if let Some(route) = route {
            call.arg(route);
        }
        call.invoke_async(conn).await
    }

    /// A session command failed: counted; the connection is given up (`Err`) only when the error
    /// says it is unusable, not for a refusal of one command (out of memory, a script error).
    fn failed(&self, e: redis::RedisError) -> redis::RedisResult<()> {
        if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_unrecoverable_error() {
            return Err(e);
        }
        self.stats.redis_error();
        Ok(())
    }

    /// Writes one session (see [`sessions::EXPORT`]). A topic whose subscription here had not
    /// read its stream's newest id yet starts after the newest id now: the socket subscribed
    /// within that moment, and what was published in it is not promised.
    async fn export_session(
        &self,
        conn: &mut MultiplexedConnection,
        session: &sessions::Exported,
    ) -> redis::RedisResult<()> {
        let mut floors = Vec::with_capacity(session.topics.len());
        for (topic, floor) in &session.topics {
            let floor = match floor {
                Some(f) => *f,
                None => self.newest_id(topic, conn).await?,
            };
            floors.push((topic.clone(), floor));
        }
        let export = redis::Script::new(sessions::EXPORT);
        let mut script = export.prepare_invoke();
        script.key(self.session_key(&session.id)).key(self.queue_key(&session.id));
        for a in sessions::export_args(session, &self.origin, &floors) {
            script.arg(a);
        }
        let _: redis::Value = script.invoke_async(conn).await?;
        Ok(())
    }

    /// Where catch-ups of `topic` start here: its stream's newest id when this process subscribed
    /// (`None`: not subscribed, or not read yet).
    pub(crate) fn floor(&self, topic: &str) -> Option<u64> {
        self.watched.lock().get(topic).copied().flatten()
    }

    async fn read_replay(
        &self,
        conn: &mut MultiplexedConnection,
        topic: &str,
        from: ReplayFrom,
    ) -> redis::RedisResult<Replay> {
        ReplayReader {
            key: self.stream_key(topic),
            trim_key: self.trim_key(topic),
            history: self.config.history,
            stats: self.stats.clone(),
        }
        .read(conn, from)
        .await
    }

    /// A message on one of our channels: fan it out here.
    fn received(&self, msg: &redis::Msg) {
        if msg.get_channel_name() == self.sessions_channel() {
            let Some((id, relayed, message)) = sessions::parse_sent(msg.get_payload_bytes()) else {
                self.stats.redis_error();
                return;
            };
            self.stats.redis_received();
            if let Some(s) = self.sessions.upgrade() {
                s.relay(&id, message, relayed);
            }
            return;
        }
        let Some(topic) = self.topic_of(msg.get_channel_name()) else { return };
        let Some(d) = wire::parse_delivery(msg.get_payload_bytes()) else {
            self.stats.redis_error();
            return;
        };
        self.stats.redis_received();
        if let Some(t) = self.topics.upgrade() {
            self.deliver(&t, topic, &d);
        }
    }

    /// Fans out one message of `topic` here; the socket a publish excluded is skipped only on
    /// the process that published it (socket ids are per process).
    fn deliver(&self, topics: &Topics, topic: &str, e: &wire::Entry) {
        let exclude = e.exclude.filter(|_| e.origin == self.origin);
        topics.deliver(topic, e.id, &e.message, e.event.as_deref(), exclude);
    }
}

/// A command sent in a pipeline with its neighbours.
enum Batched {
    Publish { topic: String, message: Message, event: Option<String>, exclude: Option<u64> },
    SendTo { id: String, message: Message, relayed: bool },
}

/// The bytes of a text or binary message.
fn payload(message: &Message) -> &[u8] {
    match message {
        Message::Text(t) => t.as_bytes(),
        Message::Binary(b) => b,
        _ => &[],
    }
}

/// Reads replays from one topic's stream.
struct ReplayReader {
    key: String,
    trim_key: String,
    history: usize,
    stats: Arc<Stats>,
}

impl ReplayReader {
    async fn read(&self, conn: &mut MultiplexedConnection, from: ReplayFrom) -> redis::RedisResult<Replay> {
        let (after, count) = match from {
            ReplayFrom::After(id) => (wire::stream_id(id), self.history.max(1)),
            ReplayFrom::Recent(n) => (String::new(), n.min(self.history).max(1)),
        };
        let reply: redis::Value = redis::Script::new(wire::REPLAY)
            .key(&self.key)
            .key(&self.trim_key)
            .arg(&after)
            .arg(count)
            .invoke_async(conn)
            .await?;
        let bad = || redis::RedisError::from(std::io::Error::other("unexpected replay reply"));
        let redis::Value::Array(parts) = reply else { return Err(bad()) };
        let [exists, older, trimmed, newest, entries] = parts.as_slice() else { return Err(bad()) };
        let exists = wire::as_int(exists) == Some(1);
        let raw = match entries {
            redis::Value::Array(e) => e.as_slice(),
            _ => &[],
        };
        let mut entries: Vec<_> = raw.iter().filter_map(wire::parse_entry).collect();
        // An entry we cannot read is a message the client will not get.
        let whole = entries.len() == raw.len();
        let (exact, rewound) = match from {
            ReplayFrom::Recent(_) => {
                entries.reverse();
                (whole, false)
            }
            ReplayFrom::After(id) => {
                let trimmed = wire::as_string(trimmed).and_then(|t| wire::event_id(&t));
                let newest = wire::as_string(newest).and_then(|t| wire::event_id(&t));
                // Nothing after `id` is missing when an entry at or before it is still there, or
                // when the bound removed nothing after it (the trim key); a stream with neither
                // (recreated after Redis lost it, or expired and started again) is exact only
                // for a client that had seen nothing. A full page may have more behind it.
                let kept = exists && wire::as_int(older).unwrap_or(0) > 0;
                let exact =
                    (id == 0 || kept || trimmed.is_some_and(|t| t <= id)) && whole && raw.len() < count;
                (exact, newest.is_some_and(|n| n < id))
            }
        };
        self.stats.redis_replayed(entries.len() as u64);
        Ok(Replay { entries, exact, rewound })
    }
}
