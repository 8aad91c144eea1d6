//! Live streams and WebSockets, inspectable while they run: each registers on start with its
//! request and a probe of relaxed atomics it updates as it goes, and unregisters when it ends.
//! Listing copies the table's handles under a short lock and reads the probes without locking
//! the streams themselves.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Weak};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// What kind of live connection an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveKind {
    /// A streamed response fed through a ring (generator, writer, SSE, NDJSON, CSV).
    Stream,
    /// An SSE stream fed by a topic.
    Topic,
    /// A WebSocket.
    WebSocket,
}

/// Counters a live connection updates as it goes (relaxed atomics: a reader sees recent values).
#[derive(Debug, Default)]
pub struct Probe {
    /// Bytes handed to the socket (messages' payload bytes for a WebSocket).
    pub bytes: AtomicU64,
    /// Chunks written by the producer (messages sent for a WebSocket).
    pub chunks: AtomicU64,
    /// Bytes buffered and not yet handed to the socket.
    pub buffered: AtomicU64,
    /// Buffer capacity in bytes (0: unbounded or not applicable).
    pub capacity: AtomicU64,
    /// The buffer's current size limit in bytes: a stream ring adapts it between its floor and
    /// `capacity` to the client's speed; equal to `capacity` for other buffers.
    pub limit: AtomicU64,
    /// When the producer started waiting for a slow client, in ms since the Unix epoch; 0 while
    /// it is not waiting.
    pub stalled_since: AtomicU64,
}

impl Probe {
    /// Marks the producer as waiting for the client (keeps the first time while it waits).
    pub fn stalled(&self) {
        if self.stalled_since.load(Relaxed) == 0 {
            self.stalled_since.store(epoch_ms().max(1), Relaxed);
        }
    }

    /// The producer may write again.
    pub fn unstalled(&self) {
        if self.stalled_since.load(Relaxed) != 0 {
            self.stalled_since.store(0, Relaxed);
        }
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn epoch_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Ends a live connection from outside (the dashboard's close button, `app.closeStream(id)`).
pub trait Closer: Send + Sync + 'static {
    /// Cuts the stream (or closes the WebSocket with 1001); what was written before still goes out.
    fn close(&self);
}

struct Entry {
    kind: LiveKind,
    method: String,
    path: String,
    remote: SocketAddr,
    started: Instant,
    started_at: u64,
    probe: Arc<Probe>,
    closer: Box<dyn Closer>,
}

/// One row of [`Live::list`].
#[derive(Debug, Clone, PartialEq)]
pub struct LiveInfo {
    /// Id for [`Live::close`].
    pub id: u64,
    /// Stream, topic stream or WebSocket.
    pub kind: LiveKind,
    /// Request method.
    pub method: String,
    /// Request path (no query).
    pub path: String,
    /// Client address.
    pub remote: SocketAddr,
    /// Start time, ms since the Unix epoch.
    pub started_at: u64,
    /// Age in ms.
    pub age_ms: u64,
    /// See [`Probe::bytes`].
    pub bytes: u64,
    /// See [`Probe::chunks`].
    pub chunks: u64,
    /// See [`Probe::buffered`].
    pub buffered: u64,
    /// See [`Probe::capacity`].
    pub capacity: u64,
    /// See [`Probe::limit`].
    pub limit: u64,
    /// See [`Probe::stalled_since`] (`None` while not waiting).
    pub stalled_since: Option<u64>,
}

/// The table of live connections of one server.
#[derive(Default)]
pub struct Live {
    entries: Mutex<HashMap<u64, Arc<Entry>>>,
    next: AtomicU64,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live").field("entries", &self.entries.lock().len()).finish()
    }
}

/// Removes its entry when dropped (the connection ended).
pub struct LiveGuard {
    live: Weak<Live>,
    id: u64,
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        if let Some(live) = self.live.upgrade() {
            live.entries.lock().remove(&self.id);
        }
    }
}

/// The request a live connection answers.
#[derive(Debug, Clone)]
pub struct LiveRequest {
    /// Request method.
    pub method: String,
    /// Request path.
    pub path: String,
    /// Client address.
    pub remote: SocketAddr,
}

impl Live {
    /// An empty table.
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// Registers a live connection; it stays listed until the guard is dropped.
    pub fn register(
        self: &Arc<Self>,
        kind: LiveKind,
        req: LiveRequest,
        probe: Arc<Probe>,
        closer: Box<dyn Closer>,
    ) -> LiveGuard {
        let id = self.next.fetch_add(1, Relaxed) + 1;
        let entry = Entry {
            kind,
            method: req.method,
            path: req.path,
            remote: req.remote,
            started: Instant::now(),
            started_at: epoch_ms(),
            probe,
            closer,
        };
        self.entries.lock().insert(id, Arc::new(entry));
        LiveGuard { live: Arc::downgrade(self), id }
    }

    /// Every live connection now, oldest first.
    pub fn list(&self) -> Vec<LiveInfo> {
        let entries: Vec<(u64, Arc<Entry>)> =
            self.entries.lock().iter().map(|(k, v)| (*k, v.clone())).collect();
        let mut out: Vec<LiveInfo> = entries
            .into_iter()
            .map(|(id, e)| {
                let p = &e.probe;
                let stalled = p.stalled_since.load(Relaxed);
                LiveInfo {
                    id,
                    kind: e.kind,
                    method: e.method.clone(),
                    path: e.path.clone(),
                    remote: e.remote,
                    started_at: e.started_at,
                    age_ms: e.started.elapsed().as_millis() as u64,
                    bytes: p.bytes.load(Relaxed),
                    chunks: p.chunks.load(Relaxed),
                    buffered: p.buffered.load(Relaxed),
                    capacity: p.capacity.load(Relaxed),
                    // Buffers that do not adapt leave `limit` at 0: their limit is their capacity.
                    limit: match p.limit.load(Relaxed) {
                        0 => p.capacity.load(Relaxed),
                        limit => limit,
                    },
                    stalled_since: (stalled != 0).then_some(stalled),
                }
            })
            .collect();
        out.sort_by_key(|i| i.id);
        out
    }

    /// Number of live connections.
    pub fn len(&self) -> usize {
        self.entries.lock().len()
    }

    /// `true` when nothing is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Closes live connection `id`; `false` when it is not (or no longer) live.
    pub fn close(&self, id: u64) -> bool {
        let entry = self.entries.lock().get(&id).cloned();
        match entry {
            Some(e) => {
                e.closer.close();
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    struct Flag(Arc<AtomicBool>);
    impl Closer for Flag {
        fn close(&self) {
            self.0.store(true, Relaxed);
        }
    }

    #[test]
    fn entries_are_listed_while_their_guard_lives_and_can_be_closed() {
        let live = Live::new();
        let probe = Arc::new(Probe::default());
        let closed = Arc::new(AtomicBool::new(false));
        let req = LiveRequest {
            method: "GET".into(),
            path: "/events".into(),
            remote: SocketAddr::from(([127, 0, 0, 1], 9)),
        };
        let guard = live.register(LiveKind::Stream, req, probe.clone(), Box::new(Flag(closed.clone())));
        probe.bytes.store(42, Relaxed);
        probe.stalled();
        let rows = live.list();
        assert_eq!(rows.len(), 1);
        assert_eq!((rows[0].bytes, rows[0].path.as_str()), (42, "/events"));
        assert!(rows[0].stalled_since.is_some());
        probe.unstalled();
        assert_eq!(live.list()[0].stalled_since, None);
        assert!(live.close(rows[0].id));
        assert!(closed.load(Relaxed));
        drop(guard);
        assert!(live.list().is_empty());
        assert!(!live.close(rows[0].id));
    }
}
