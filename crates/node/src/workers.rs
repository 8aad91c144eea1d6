//! Worker threads: the pool of JS dispatchers the core spreads requests over (least outstanding
//! requests first), and the registry through which a worker thread's server attaches to the main
//! thread's.
//!
//! The native library is loaded once per process, so a `static` here is seen by every Node worker
//! thread: the main thread's server registers its shared state under a key, and a worker's
//! `NativeServer.attach(key)` gets the same core (listener, topics, sessions, stats) with a
//! dispatcher of its own.

use catzilla_core::ws::Sessions;
use catzilla_core::{Live, ServerConfig, Stats, StreamBudget, Topics};
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};

use crate::dispatch::JsHandler;

/// Socket ids and their owners, shared by every dispatcher of one server: a socket keeps its id
/// when its session resumes, so ids must be unique across workers, and a resume goes back to the
/// worker that holds the socket's JS object.
#[derive(Default)]
pub(crate) struct SocketOwners {
    next_id: AtomicU32,
    owners: Mutex<HashMap<u32, u32>>,
}

impl SocketOwners {
    /// A fresh socket id (never 0, which JS reads as "gone").
    pub(crate) fn next_id(&self) -> u32 {
        loop {
            let id = self.next_id.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
            if id != 0 {
                return id;
            }
        }
    }

    /// Socket `id` is handled by worker `worker` (until `forget`).
    pub(crate) fn own(&self, id: u32, worker: u32) {
        self.owners.lock().insert(id, worker);
    }

    /// Socket `id` is gone for good (closed, or its session expired).
    pub(crate) fn forget(&self, id: u32) {
        self.owners.lock().remove(&id);
    }

    fn owner(&self, id: u32) -> Option<u32> {
        self.owners.lock().get(&id).copied()
    }

    fn forget_worker(&self, worker: u32) {
        self.owners.lock().retain(|_, w| *w != worker);
    }
}

/// The JS dispatchers of one server, one per thread that runs handlers (index 0: the main thread).
#[derive(Default)]
pub(crate) struct Pool {
    workers: RwLock<Vec<Arc<JsHandler>>>,
    /// Where the scan for the least busy worker starts, so ties rotate.
    next: AtomicUsize,
    pub(crate) sockets: Arc<SocketOwners>,
    /// Set by `drain` (the server closed): no worker joins after it.
    closed: AtomicBool,
}

impl Pool {
    /// Adds (or replaces) the dispatcher of worker `handler.worker`; `false` once the server
    /// has closed.
    pub(crate) fn join(&self, handler: Arc<JsHandler>) -> bool {
        let mut workers = self.workers.write();
        if self.closed.load(Ordering::Relaxed) {
            return false;
        }
        workers.retain(|w| w.worker != handler.worker);
        workers.push(handler);
        true
    }

    /// Removes worker `index`; its dispatcher is returned so its requests can be failed.
    pub(crate) fn leave(&self, index: u32) -> Option<Arc<JsHandler>> {
        let mut workers = self.workers.write();
        let at = workers.iter().position(|w| w.worker == index)?;
        let gone = workers.remove(at);
        drop(workers);
        self.sockets.forget_worker(index);
        Some(gone)
    }

    /// Takes every dispatcher out; no worker joins after this (the server closed).
    pub(crate) fn drain(&self) -> Vec<Arc<JsHandler>> {
        let mut workers = self.workers.write();
        self.closed.store(true, Ordering::Relaxed);
        std::mem::take(&mut *workers)
    }

    /// Threads that run handlers now.
    pub(crate) fn len(&self) -> usize {
        self.workers.read().len()
    }

    /// The dispatcher for a new request: the worker that owns WebSocket `resuming` if it is
    /// still there, else the one with the fewest requests waiting for a reply (ties rotate).
    pub(crate) fn pick(&self, resuming: Option<u32>) -> Option<Arc<JsHandler>> {
        let workers = self.workers.read();
        if workers.len() == 1 {
            return workers.first().cloned();
        }
        if let Some(owner) = resuming.and_then(|id| self.sockets.owner(id)) {
            if let Some(w) = workers.iter().find(|w| w.worker == owner) {
                return Some(w.clone());
            }
        }
        let n = workers.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n).map(|i| &workers[(start + i) % n]).min_by_key(|w| w.outstanding()).cloned()
    }
}

/// What a worker thread's server shares with the main thread's.
#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) config: ServerConfig,
    pub(crate) stats: Arc<Stats>,
    pub(crate) budget: Arc<StreamBudget>,
    pub(crate) topics: Arc<Topics>,
    pub(crate) sessions: Arc<Sessions>,
    pub(crate) live: Arc<Live>,
    pub(crate) pool: Arc<Pool>,
    /// The main thread's routes, in registration order; a worker must declare the same.
    pub(crate) routes: Arc<Mutex<Vec<String>>>,
    /// The `batchScheduling` option, for the workers' threads too.
    pub(crate) batch: bool,
}

/// Open servers that workers may attach to, by key (removed when the server closes).
static REGISTRY: LazyLock<Mutex<HashMap<u32, Shared>>> = LazyLock::new(Mutex::default);
static NEXT_KEY: AtomicU32 = AtomicU32::new(1);

/// Registers `shared` and returns the key workers attach with.
pub(crate) fn register(shared: Shared) -> u32 {
    let key = NEXT_KEY.fetch_add(1, Ordering::Relaxed);
    REGISTRY.lock().insert(key, shared);
    key
}

/// The shared state registered under `key`, if that server is still open.
pub(crate) fn lookup(key: u32) -> Option<Shared> {
    REGISTRY.lock().get(&key).cloned()
}

/// Forgets `key` (the server closed): later attaches fail.
pub(crate) fn unregister(key: u32) {
    REGISTRY.lock().remove(&key);
}

/// The socket id in a WebSocket upgrade's `cz_session` query parameter, through the sessions
/// registry (a resume goes back to the worker that holds the socket).
pub(crate) fn resuming_socket(sessions: &Sessions, query: Option<&str>) -> Option<u32> {
    let session = query?.split('&').find_map(|kv| kv.strip_prefix("cz_session="))?;
    sessions.get(session).map(|s| s.id() as u32)
}
