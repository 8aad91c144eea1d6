//! Broadcast scenarios: open every subscriber, GET /publish, time until each has all N messages.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::http::{self, SseSub};
use crate::report::{percentile, Outcome};
use crate::wsconn::Conn;
use crate::Args;

/// Connections opened at once (keeps accept backlogs from overflowing).
const OPEN_CONCURRENCY: usize = 64;

/// Opens `count` clients with `open(i)`, a bounded number at a time, all within `timeout`.
pub async fn open_all<T, F, Fut>(count: usize, timeout: Duration, open: F) -> Result<Vec<T>, String>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<T, String>> + Send + 'static,
{
    let gate = Arc::new(Semaphore::new(OPEN_CONCURRENCY));
    let mut set = JoinSet::new();
    for i in 0..count {
        let (gate, fut) = (gate.clone(), open(i));
        set.spawn(async move {
            let _permit = gate.acquire_owned().await.map_err(|e| e.to_string())?;
            fut.await.map(|c| (i, c)).map_err(|e| format!("client {i}: {e}"))
        });
    }
    let deadline = Instant::now() + timeout;
    let mut slots: Vec<Option<T>> = (0..count).map(|_| None).collect();
    let mut ready = 0;
    loop {
        match tokio::time::timeout_at(deadline.into(), set.join_next()).await {
            Err(_) => {
                return Err(format!("only {ready}/{count} clients ready after {} s", timeout.as_secs()))
            }
            Ok(None) => break,
            Ok(Some(joined)) => {
                let (i, c) = joined
                    .map_err(|e| format!("task: {e}"))?
                    .map_err(|e| format!("{e} ({ready}/{count} ready)"))?;
                slots[i] = Some(c);
                ready += 1;
            }
        }
    }
    Ok(slots.into_iter().flatten().collect())
}

/// Checks that `payload` is message `expected`: its leading number and its size.
fn check(expected: u64, payload: &[u8], size: usize) -> Result<(), String> {
    let digits = payload.iter().take_while(|b| b.is_ascii_digit()).count();
    let seq: Option<u64> = std::str::from_utf8(&payload[..digits]).ok().and_then(|s| s.parse().ok());
    match seq {
        None => Err(format!(
            "message without a sequence number: {:?}",
            String::from_utf8_lossy(&payload[..payload.len().min(40)])
        )),
        Some(seq) if seq != expected => Err(format!("out of order: expected message {expected}, got {seq}")),
        Some(seq) if payload.len() != size => {
            Err(format!("message {seq} has {} bytes, expected {size}", payload.len()))
        }
        Some(_) => Ok(()),
    }
}

type Done<T> = Result<(Instant, T), String>;

/// WebSocket broadcast to `--clients` subscribers of /ws-sub (or socket.io room "bench"; with
/// `--deflate`, /ws-sub-z).
pub async fn ws(a: &Args) -> Result<Outcome, String> {
    let (sio, deflate) = (a.socketio, a.deflate);
    let ports = subscriber_ports(a);
    let path = if deflate { "/ws-sub-z" } else { "/ws-sub" };
    let conns = open_all(a.clients, a.timeout, move |i| {
        let port = ports[i % ports.len()];
        async move {
            let mut c = Conn::connect(port, path, sio, deflate).await?;
            c.wait_ready().await?;
            Ok(c)
        }
    })
    .await?;
    let received = Arc::new(AtomicU64::new(0));
    let mut set: JoinSet<Done<Conn>> = JoinSet::new();
    for mut c in conns {
        let (n, size, received) = (a.n, a.size, received.clone());
        set.spawn(async move {
            let mut next = 0;
            while next < n {
                let ev = c.recv().await?;
                if ev.is("m") {
                    check(next, ev.payload().as_bytes(), size)?;
                    received.fetch_add(1, Ordering::Relaxed);
                    next += 1;
                }
            }
            Ok((Instant::now(), c))
        });
    }
    finish(a, set, &received).await
}

/// SSE broadcast to `--clients` subscribers of /sse-sub.
pub async fn sse(a: &Args) -> Result<Outcome, String> {
    let ports = subscriber_ports(a);
    let subs = open_all(a.clients, a.timeout, move |i| {
        let port = ports[i % ports.len()];
        async move { SseSub::open(port, "/sse-sub").await }
    })
    .await?;
    let received = Arc::new(AtomicU64::new(0));
    let mut set: JoinSet<Done<SseSub>> = JoinSet::new();
    for mut s in subs {
        let (n, size, received) = (a.n, a.size, received.clone());
        set.spawn(async move {
            for next in 0..n {
                let data =
                    s.next_event().await?.ok_or_else(|| format!("stream ended after {next} events"))?;
                check(next, &data, size)?;
                received.fetch_add(1, Ordering::Relaxed);
            }
            Ok((Instant::now(), s))
        });
    }
    finish(a, set, &received).await
}

/// The ports subscribers connect to, round-robin: `--port` and every `--also`.
fn subscriber_ports(a: &Args) -> Arc<Vec<u16>> {
    Arc::new(std::iter::once(a.port).chain(a.more_ports.iter().copied()).collect())
}

/// Publishes, then waits for every subscriber task (each keeps its connection open until the end).
async fn finish<T: Send + 'static>(
    a: &Args,
    mut set: JoinSet<Done<T>>,
    received: &AtomicU64,
) -> Result<Outcome, String> {
    let start = Instant::now();
    // `kind=json`: JSON-like messages that compress, for the permessage-deflate run.
    let kind = if a.deflate { "&kind=json" } else { "" };
    // Across processes, the last process publishes (it holds only some of the subscribers).
    let publisher = a.more_ports.last().copied().unwrap_or(a.port);
    let (status, body) =
        http::get(publisher, &format!("/publish?n={}&size={}{kind}", a.n, a.size), a.timeout).await?;
    if status != 200 {
        return Err(format!("GET /publish: status {status} {:?}", &body[..body.len().min(80)]));
    }
    eprintln!("publish answered {:?} after {} ms", body.trim(), start.elapsed().as_millis());
    let deadline = start + a.timeout;
    let (mut times, mut keep, mut errors) =
        (Vec::with_capacity(a.clients), Vec::with_capacity(a.clients), Vec::new());
    let mut timed_out = false;
    loop {
        match tokio::time::timeout_at(deadline.into(), set.join_next()).await {
            Err(_) => {
                timed_out = true;
                break;
            }
            Ok(None) => break,
            Ok(Some(Ok(Ok((at, conn))))) => {
                times.push(at.duration_since(start).as_micros() as u64);
                keep.push(conn);
            }
            Ok(Some(Ok(Err(e)))) => errors.push(e),
            Ok(Some(Err(e))) => errors.push(format!("task: {e}")),
        }
    }
    set.abort_all();
    let elapsed = start.elapsed().as_secs_f64();
    drop(keep);
    times.sort_unstable();
    let total = a.clients as u64 * a.n;
    let got = received.load(Ordering::Relaxed);
    let complete = times.len() == a.clients;
    let mut notes = Vec::new();
    // Across processes a publish only knows its own process's subscribers.
    if a.more_ports.is_empty() && body.trim() != a.clients.to_string() {
        notes.push(format!("publish reported {:?} subscribers", &body.trim()[..body.trim().len().min(40)]));
    }
    if timed_out {
        notes.push(format!("{}/{} clients complete after {} s", times.len(), a.clients, a.timeout.as_secs()));
    }
    if let Some(e) = errors.first() {
        notes.push(format!("{} clients failed, first: {e}", errors.len()));
    }
    if !complete {
        notes.push(format!("{got}/{total} messages received"));
    }
    let value = match (complete, times.last()) {
        (true, Some(&last)) => total as f64 / (last.max(1) as f64 / 1e6),
        _ => got as f64 / elapsed,
    };
    Ok(Outcome {
        value,
        p50: percentile(&times, 0.5),
        p99: percentile(&times, 0.99),
        complete,
        note: notes.join("; "),
    })
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn messages_are_checked_for_order_and_size() {
        assert!(check(7, b"7 xxxx", 6).is_ok());
        assert!(check(7, b"8 xxxx", 6).is_err());
        assert!(check(7, b"7 xxx", 6).is_err());
        assert!(check(0, b"x", 1).is_err());
    }
}
