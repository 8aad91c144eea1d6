//! Session resume: every socket of a route with `resume` has a session id; after an unexpected
//! disconnect its socket stays subscribed and queues (bounded, oldest dropped first) until the
//! client reconnects with the id within the TTL, or the TTL fires the `expired` callback. With
//! the Redis adapter connected, a disconnected session waits in Redis instead (see
//! [`crate::cluster::sessions`]), so the client may resume on any process.

use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use super::{Message, SendStatus, WsConfig, WsEvents, WsSocket};
use crate::cluster::sessions::{plausible_id, Claimed, Exported, Outcome, GRACE};
use crate::cluster::Cluster;
use crate::stats::Stats;

/// How long a session claimed from Redis waits for its connection to be accepted (the JS upgrade
/// continues right after the claim); past it, it is given up.
const CLAIM_WAIT: Duration = Duration::from_secs(30);

/// Between two attempts to settle a session's TTL with an unreachable Redis.
const EXPIRE_RETRY: Duration = Duration::from_secs(1);

/// Bounds of one route's offline sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumeConfig {
    /// How long a disconnected session waits for its client.
    pub ttl: Duration,
    /// Messages queued for a disconnected client at most; past it the oldest are dropped.
    pub max_messages: usize,
    /// Bytes queued for a disconnected client at most; past it the oldest are dropped.
    pub max_bytes: usize,
}

impl Default for ResumeConfig {
    fn default() -> Self {
        Self { ttl: Duration::from_secs(120), max_messages: 1000, max_bytes: 1 << 20 }
    }
}

/// A socket's link to its session.
pub(crate) struct SessionRef {
    /// The id the client resumes with; a new one is issued on every connection.
    pub(crate) id: String,
    /// The route the session belongs to (a session resumes on its own route only).
    pub(crate) route: u32,
    pub(crate) registry: Weak<Sessions>,
    /// Bumped on every connection, so a TTL timer of an earlier disconnect does nothing.
    pub(crate) epoch: u64,
}

/// Every session of one server, live or disconnected, by id.
pub struct Sessions {
    map: Mutex<HashMap<String, WsSocket>>,
    /// Bytes all disconnected sessions may hold queued (their total is in `stats`).
    budget: AtomicUsize,
    stats: Arc<Stats>,
    /// The Redis adapter, when sessions wait in Redis while it is connected.
    cluster: RwLock<Option<Arc<Cluster>>>,
    /// Sessions claimed from Redis for a connection being accepted here: id → (when, route, it).
    claimed: Mutex<HashMap<String, (Instant, u32, Claimed)>>,
    /// The server closed: TTLs of sessions in Redis are no longer settled from here.
    closed: AtomicBool,
    /// Wakes the tasks that wait to settle those TTLs when the server closes.
    closing: tokio::sync::Notify,
    /// Sessions this process moved to Redis whose TTL it has not settled yet: a `sendTo` that
    /// reaches this process after one left is relayed to Redis.
    moved_out: Mutex<std::collections::HashSet<String>>,
}

/// 128 random bits from the operating system, URL-safe hex: a session id is a bearer token.
fn new_id() -> String {
    let mut b = [0u8; 16];
    if getrandom::fill(&mut b).is_err() {
        // No OS randomness (never seen on supported platforms): std's per-process random keys.
        use std::hash::{BuildHasher, Hasher};
        for (i, chunk) in b.chunks_mut(8).enumerate() {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_usize(i);
            chunk.copy_from_slice(&h.finish().to_ne_bytes());
        }
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl Sessions {
    /// A registry whose disconnected sessions hold at most `budget` queued bytes in total.
    pub fn new(budget: usize, stats: Arc<Stats>) -> Arc<Self> {
        Arc::new(Self {
            map: Mutex::new(HashMap::new()),
            budget: AtomicUsize::new(budget),
            stats,
            cluster: RwLock::new(None),
            claimed: Mutex::new(HashMap::new()),
            closed: AtomicBool::new(false),
            closing: tokio::sync::Notify::new(),
            moved_out: Mutex::new(std::collections::HashSet::new()),
        })
    }

    /// Lets disconnected sessions wait in Redis through `cluster` (`None`: on this process
    /// again, e.g. when the server failed to bind).
    pub fn attach_cluster(&self, cluster: Option<Arc<Cluster>>) {
        *self.cluster.write() = cluster;
    }

    fn cluster(&self) -> Option<Arc<Cluster>> {
        self.cluster.read().clone()
    }

    /// Sets the global budget of queued offline bytes.
    pub fn set_budget(&self, bytes: usize) {
        self.budget.store(bytes, Ordering::Relaxed);
    }

    /// Bytes queued for disconnected clients now.
    pub fn offline_bytes(&self) -> usize {
        self.stats.offline_bytes() as usize
    }

    /// Sessions known now (connected or waiting for their client).
    pub fn len(&self) -> usize {
        self.map.lock().len()
    }

    /// `true` when there is no session.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The socket of session `id`, connected or not (for `sendTo`).
    pub fn get(&self, id: &str) -> Option<WsSocket> {
        self.map.lock().get(id).cloned()
    }

    /// The socket for a new connection on `route`: on a route with `resume`, the disconnected
    /// session `requested` names, resumed (`true`), or else a socket from `create` with a new
    /// session; on other routes always a socket from `create` without one.
    pub fn accept(
        self: &Arc<Self>,
        route: u32,
        config: WsConfig,
        requested: Option<&str>,
        create: impl FnOnce(WsConfig) -> WsSocket,
    ) -> (WsSocket, bool) {
        if config.resume.is_none() {
            return (create(config), false);
        }
        if let Some(socket) = requested.and_then(|id| self.resume(id, route)) {
            return (socket, true);
        }
        let claimed = requested.and_then(|id| self.claimed.lock().remove(id)).filter(|(_, r, _)| *r == route);
        let socket = create(config);
        match claimed {
            Some((_, _, claimed)) => {
                self.start(&socket, route, true, claimed.dropped);
                self.stats.ws_resumed();
                let cluster = self.cluster();
                match cluster.as_ref().and_then(|c| c.topics().map(|t| (c, t))) {
                    Some((c, topics)) => {
                        crate::cluster::restore(c, &topics, &socket, claimed, self.stats.clone())
                    }
                    None => {
                        socket.hold();
                        socket.release(claimed.first, Vec::new(), Vec::new());
                    }
                }
                (socket, true)
            }
            None => {
                self.open(&socket, route);
                (socket, false)
            }
        }
    }

    /// Gives a new socket of `route` a session and lists it; its first message tells the client
    /// the id.
    pub fn open(self: &Arc<Self>, socket: &WsSocket, route: u32) {
        self.start(socket, route, false, 0);
    }

    fn start(self: &Arc<Self>, socket: &WsSocket, route: u32, recovered: bool, dropped: u64) {
        let id = new_id();
        self.map.lock().insert(id.clone(), socket.clone());
        socket.set_session(SessionRef { id: id.clone(), route, registry: Arc::downgrade(self), epoch: 0 });
        socket.greet(&id, recovered, dropped);
    }

    /// Claims session `id` of `route` from Redis for a connection about to be accepted here
    /// (`accept` then resumes it); `true` when it was waiting there. A session waiting on this
    /// process, or any session without the Redis adapter, needs no claim: `false`.
    pub async fn claim(&self, id: &str, route: u32) -> bool {
        let Some(cluster) = self.cluster() else { return false };
        if !plausible_id(id) || self.map.lock().contains_key(id) {
            return false;
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        cluster.claim(id, route, move |c| {
            let _ = tx.send(c);
        });
        // Not past the upgrade's patience (the adapter may be busy reconnecting).
        let Ok(Ok(Some(claimed))) = tokio::time::timeout(CLAIM_WAIT / 3, rx).await else { return false };
        if self.closed.load(Ordering::Acquire) {
            return false;
        }
        self.stats.redis_session_claimed();
        let mut waiting = self.claimed.lock();
        waiting.retain(|_, (at, _, _)| at.elapsed() < CLAIM_WAIT);
        waiting.insert(id.to_owned(), (Instant::now(), route, claimed));
        true
    }

    /// Puts back a session claimed for a connection that was not accepted after all (the client
    /// left during the upgrade): written to Redis again, to be resumed or to expire there.
    pub fn unclaim(&self, id: &str, config: &ResumeConfig) {
        let Some((_, route, c)) = self.claimed.lock().remove(id) else { return };
        let Some(cluster) = self.cluster() else { return };
        let exported = Exported {
            id: id.to_owned(),
            route,
            socket: c.socket,
            dropped: c.dropped,
            max_messages: config.max_messages,
            max_bytes: config.max_bytes,
            ttl: config.ttl,
            topics: c.topics.into_iter().map(|(t, f)| (t, Some(f))).collect(),
            queue: c.first.into_iter().chain(c.later.into_iter().map(|(_, m)| m)).collect(),
        };
        // The process it left still settles its TTL; nothing to do here whatever happens.
        cluster.export(exported, |_| {});
    }

    /// Sends to session `id`: its socket when this process holds it (connected or waiting here),
    /// else, with the Redis adapter, its queue in Redis if it waits there (answered `Sent`: Redis
    /// is not waited for; an unknown session drops it there).
    pub fn send_to(&self, id: &str, message: Message) -> SendStatus {
        // Under the map's lock: a session moving to Redis leaves the map and queues its export in
        // one step, so this send lands before it (in its queue) or after it (in Redis).
        let map = self.map.lock();
        if let Some(s) = map.get(id) {
            return s.send(message);
        }
        match self.cluster() {
            Some(c) if plausible_id(id) => {
                c.send_to(id, message, false);
                SendStatus::Sent
            }
            _ => SendStatus::Dropped,
        }
    }

    /// A `sendTo` of another process (through Redis) for session `id`: sent if this process holds
    /// it. If it just left this process for Redis, the message was sent before it got there:
    /// relayed to Redis once (after the export), where it waits.
    pub(crate) fn relay(&self, id: &str, message: Message, relayed: bool) {
        let map = self.map.lock();
        if let Some(s) = map.get(id) {
            s.send(message);
        } else if !relayed && self.moved_out.lock().contains(id) {
            if let Some(c) = self.cluster() {
                c.send_to(id, message, true);
            }
        }
    }

    /// Takes the disconnected session `id` of `route` for a new connection: the socket keeps its
    /// topics and its queue (the missed messages, in order), under a new id. `None` when there is
    /// no such session (unknown, expired, already resumed, connected, or of another route).
    pub fn resume(&self, id: &str, route: u32) -> Option<WsSocket> {
        let mut map = self.map.lock();
        let socket = map.get(id)?.clone();
        let fresh = new_id();
        let (bytes, dropped) = socket.reconnect(route, &fresh)?;
        self.release(bytes);
        map.remove(id);
        map.insert(fresh.clone(), socket.clone());
        drop(map);
        self.stats.ws_resumed();
        socket.greet(&fresh, true, dropped);
        Some(socket)
    }

    /// Adds `bytes` to the offline total; `true` while it is over the global budget.
    pub(crate) fn charge(&self, bytes: usize) -> bool {
        self.stats.offline_charge(bytes as u64) > self.budget.load(Ordering::Relaxed) as u64
    }

    /// Removes `bytes` from the offline total.
    pub(crate) fn release(&self, bytes: usize) {
        self.stats.offline_release(bytes as u64);
    }

    /// `true` while the offline total is over the global budget.
    pub(crate) fn over_budget(&self) -> bool {
        self.offline_bytes() > self.budget.load(Ordering::Relaxed)
    }

    /// Forgets session `id` (its socket closed for good).
    pub(crate) fn forget(&self, id: &str) {
        self.map.lock().remove(id);
    }

    /// Ends every session because the server closed: waiting sessions are dropped (without
    /// `expired`: the app is going away) and their queued bytes released.
    pub fn clear(&self) {
        self.closed.store(true, Ordering::Release);
        self.closing.notify_waiters();
        self.claimed.lock().clear();
        self.moved_out.lock().clear();
        let sockets: Vec<WsSocket> = self.map.lock().drain().map(|(_, s)| s).collect();
        for s in sockets {
            s.finish();
        }
    }

    /// Starts the TTL of a session that just went offline: in Redis while the adapter is
    /// connected, else here.
    pub(crate) fn wait(
        self: &Arc<Self>,
        socket: WsSocket,
        epoch: u64,
        ttl: Duration,
        events: Arc<dyn WsEvents>,
    ) {
        if let Some(cluster) = self.cluster().filter(|c| c.connected()) {
            if self.export(&cluster, &socket, epoch, &events) {
                return;
            }
        }
        self.wait_here(socket, epoch, ttl, events);
    }

    /// The TTL of a session waiting in this process.
    fn wait_here(self: &Arc<Self>, socket: WsSocket, epoch: u64, ttl: Duration, events: Arc<dyn WsEvents>) {
        let registry = self.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    tokio::time::sleep(ttl).await;
                    registry.expire(&socket, epoch, &*events);
                });
            }
            Err(_) => registry.expire(&socket, epoch, &*events),
        }
    }

    /// Moves a waiting session to Redis; `false` when it stays here (no longer waiting, or a
    /// replay of its own still being read).
    fn export(
        self: &Arc<Self>,
        cluster: &Arc<Cluster>,
        socket: &WsSocket,
        epoch: u64,
        events: &Arc<dyn WsEvents>,
    ) -> bool {
        let mut map = self.map.lock();
        let Some(exported) = socket.export(epoch, |t| cluster.floor(t)) else { return false };
        let (id, ttl) = (exported.id.clone(), exported.ttl);
        map.remove(&id);
        self.moved_out.lock().insert(id.clone());
        let (registry, socket, events) = (self.clone(), socket.clone(), events.clone());
        cluster.export(exported, move |outcome| match outcome {
            Outcome::Written => {
                registry.stats.redis_session_stored();
                registry.settle(id, socket, ttl, events);
            }
            // Redis failed before it had the session: it waits here after all.
            Outcome::Failed(exported) => registry.take_back(socket, *exported, epoch, events),
            // The server is closing: sessions end without `expired`, as in `clear`.
            Outcome::Stopped => {
                registry.moved_out.lock().remove(&id);
                socket.finish();
            }
        });
        drop(map);
        true
    }

    /// A session whose export failed waits in this process again, with its queue, its topics and
    /// a `cz-gap` for each (what they published while it was away from them is not in its queue).
    fn take_back(self: &Arc<Self>, socket: WsSocket, e: Exported, epoch: u64, events: Arc<dyn WsEvents>) {
        self.moved_out.lock().remove(&e.id);
        if self.closed.load(Ordering::Acquire) {
            socket.finish();
            return;
        }
        let gaps = e.topics.iter().map(|(t, floor)| crate::topics::ws_gap(t, floor.unwrap_or(0))).collect();
        let mut map = self.map.lock();
        socket.take_back(&e, gaps);
        map.insert(e.id.clone(), socket.clone());
        drop(map);
        if let Some(topics) = self.cluster().and_then(|c| c.topics()) {
            for (t, _) in &e.topics {
                topics.subscribe_ws(t, &socket);
            }
        }
        self.wait_here(socket, epoch, e.ttl, events);
    }

    /// At the TTL of a session that waits in Redis: it expired if it is still there, or was
    /// resumed elsewhere if it was claimed. Asked again while Redis cannot answer, until Redis has
    /// dropped it by itself.
    fn settle(self: Arc<Self>, id: String, socket: WsSocket, ttl: Duration, events: Arc<dyn WsEvents>) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else { return };
        rt.spawn(async move {
            if !self.sleep_unless_closed(ttl).await {
                return;
            }
            let deadline = Instant::now() + GRACE;
            loop {
                let (tx, rx) = tokio::sync::oneshot::channel();
                match self.cluster() {
                    Some(c) => c.expire(&id, move |r| {
                        let _ = tx.send(r);
                    }),
                    None => drop(tx),
                }
                let expired = match rx.await.ok().flatten() {
                    Some(expired) => expired,
                    None if Instant::now() >= deadline => true,
                    None => {
                        if !self.sleep_unless_closed(EXPIRE_RETRY).await {
                            return;
                        }
                        continue;
                    }
                };
                self.moved_out.lock().remove(&id);
                socket.finish();
                if expired {
                    self.stats.ws_resume_expired();
                    events.expired(&socket);
                } else {
                    events.moved(&socket);
                }
                return;
            }
        });
    }

    /// Sleeps `d`; `false` (at once) when the server closes first.
    async fn sleep_unless_closed(&self, d: Duration) -> bool {
        let closing = self.closing.notified();
        tokio::pin!(closing);
        closing.as_mut().enable();
        if self.closed.load(Ordering::Acquire) {
            return false;
        }
        tokio::select! {
            () = tokio::time::sleep(d) => !self.closed.load(Ordering::Acquire),
            () = closing => false,
        }
    }

    /// Ends a session whose client did not come back in time.
    fn expire(&self, socket: &WsSocket, epoch: u64, events: &dyn WsEvents) {
        let mut map = self.map.lock();
        let Some((id, bytes)) = socket.expire(epoch) else { return };
        map.remove(&id);
        drop(map);
        self.release(bytes);
        socket.finish();
        self.stats.ws_resume_expired();
        events.expired(socket);
    }
}
