//! The access log: every finished [`Exchange`] goes to a sink in batches (one call per batch of
//! up to [`MAX_BATCH`] or per [`WINDOW`], never one per request), so logging costs no crossing
//! per request under load.

use parking_lot::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

use crate::exchange::Exchange;

/// The longest a finished exchange waits before its batch is delivered.
pub const WINDOW: Duration = Duration::from_millis(5);

/// A batch is delivered at once when it reaches this many exchanges.
pub const MAX_BATCH: usize = 1024;

/// Receives batches of finished exchanges, in order. Called from tokio threads.
pub trait ExchangeSink: Send + Sync + 'static {
    /// Takes one batch; `false` when it could not (e.g. the consumer's queue is full), and the
    /// batch is counted as dropped.
    fn deliver(&self, batch: Vec<Exchange>) -> bool;
}

/// Batches exchanges for one sink.
pub struct AccessLog {
    queue: Mutex<Vec<Exchange>>,
    wake: Notify,
    stop: Notify,
    sink: Box<dyn ExchangeSink>,
    dropped: AtomicU64,
}

impl std::fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessLog").field("dropped", &self.dropped()).finish_non_exhaustive()
    }
}

impl AccessLog {
    /// An access log delivering to `sink`.
    pub fn new(sink: impl ExchangeSink) -> Arc<Self> {
        Arc::new(Self {
            queue: Mutex::new(Vec::new()),
            wake: Notify::new(),
            stop: Notify::new(),
            sink: Box::new(sink),
            dropped: AtomicU64::new(0),
        })
    }

    /// Exchanges the sink refused (its consumer fell behind).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Relaxed)
    }

    /// Queues one finished exchange.
    pub(crate) fn push(&self, ex: Exchange) {
        let mut q = self.queue.lock();
        q.push(ex);
        if q.len() >= MAX_BATCH {
            let batch = std::mem::take(&mut *q);
            drop(q);
            self.deliver(batch);
        } else if q.len() == 1 {
            drop(q);
            self.wake.notify_one();
        }
    }

    /// Delivers what is queued now.
    pub(crate) fn flush(&self) {
        let batch = std::mem::take(&mut *self.queue.lock());
        if !batch.is_empty() {
            self.deliver(batch);
        }
    }

    fn deliver(&self, batch: Vec<Exchange>) {
        let n = batch.len() as u64;
        if !self.sink.deliver(batch) {
            self.dropped.fetch_add(n, Relaxed);
        }
    }

    /// Delivers batches until [`AccessLog::stop`]; the first exchange of a batch starts its window.
    pub(crate) async fn run(self: Arc<Self>) {
        loop {
            tokio::select! {
                () = self.wake.notified() => {}
                () = self.stop.notified() => break,
            }
            tokio::time::sleep(WINDOW).await;
            self.flush();
        }
        self.flush();
    }

    /// Ends [`AccessLog::run`] after a last flush (the server closed).
    pub(crate) fn stop(&self) {
        self.stop.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    struct Collect(Arc<Mutex<Vec<usize>>>, bool);

    impl ExchangeSink for Collect {
        fn deliver(&self, batch: Vec<Exchange>) -> bool {
            self.0.lock().push(batch.len());
            self.1
        }
    }

    fn ex() -> Exchange {
        crate::exchange::Tracker::new(
            http::Method::GET,
            http::Uri::from_static("/"),
            SocketAddr::from(([127, 0, 0, 1], 1)),
        )
        .finish()
    }

    #[tokio::test]
    async fn exchanges_are_delivered_in_batches_not_one_by_one() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = AccessLog::new(Collect(seen.clone(), true));
        let task = tokio::spawn(log.clone().run());
        for _ in 0..10 {
            log.push(ex());
        }
        tokio::time::sleep(WINDOW * 4).await;
        assert_eq!(*seen.lock(), vec![10], "ten exchanges in one window, one delivery");
        for _ in 0..MAX_BATCH + 3 {
            log.push(ex());
        }
        assert_eq!(seen.lock().last(), Some(&MAX_BATCH), "a full batch goes at once");
        log.stop();
        task.await.expect("run");
        assert_eq!(seen.lock().last(), Some(&3), "the rest is flushed on stop");
    }

    #[test]
    fn a_refused_batch_is_counted_as_dropped() {
        let log = AccessLog::new(Collect(Arc::default(), false));
        log.push(ex());
        log.push(ex());
        log.flush();
        assert_eq!(log.dropped(), 2);
    }
}
