//! The process-wide budget for stream buffers (`maxStreamMemory`): when the sum of all rings
//! reaches it, writers are told to wait, and they are woken as soon as any ring drains below it.

use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use super::ring::Shared;

/// Shared accounting of bytes buffered in all stream rings of one server.
pub struct StreamBudget {
    limit: usize,
    used: AtomicUsize,
    has_waiters: AtomicBool,
    waiters: Mutex<Vec<Weak<Shared>>>,
}

impl std::fmt::Debug for StreamBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamBudget").field("limit", &self.limit).field("used", &self.used()).finish()
    }
}

impl StreamBudget {
    /// A budget of `limit` bytes; `0` means unlimited.
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit: if limit == 0 { usize::MAX } else { limit },
            used: AtomicUsize::new(0),
            has_waiters: AtomicBool::new(false),
            waiters: Mutex::new(Vec::new()),
        })
    }

    /// The limit in bytes (`usize::MAX` when unlimited).
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes currently buffered in rings.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// `true` while the buffered total is at or over the limit.
    pub fn is_exhausted(&self) -> bool {
        self.used() >= self.limit
    }

    /// Accounts `n` more bytes; returns `true` while the total stays under the limit.
    pub(crate) fn acquire(&self, n: usize) -> bool {
        self.used.fetch_add(n, Ordering::AcqRel).saturating_add(n) < self.limit
    }

    /// Returns `n` bytes; wakes waiting writers once the total is under the limit again.
    pub(crate) fn release(&self, n: usize) {
        let after = self.used.fetch_sub(n, Ordering::AcqRel).saturating_sub(n);
        if after < self.limit && self.has_waiters.load(Ordering::Acquire) {
            self.wake_all();
        }
    }

    /// Parks a ring whose writer waits for budget; re-checks to avoid a lost wake-up.
    pub(crate) fn wait(&self, ring: &Arc<Shared>) {
        self.waiters.lock().push(Arc::downgrade(ring));
        self.has_waiters.store(true, Ordering::Release);
        if !self.is_exhausted() {
            self.wake_all();
        }
    }

    fn wake_all(&self) {
        let list = {
            let mut w = self.waiters.lock();
            self.has_waiters.store(false, Ordering::Release);
            std::mem::take(&mut *w)
        };
        for ring in list.iter().filter_map(Weak::upgrade) {
            super::ring::budget_available(&ring);
        }
    }
}
