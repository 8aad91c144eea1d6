//! WebSocket echo: each connection sends a message, waits for its echo, checks it, repeats.

use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use crate::broadcast::open_all;
use crate::report::{percentile, Outcome};
use crate::wsconn::Conn;
use crate::Args;

/// What one connection did.
struct Tally {
    count: u64,
    latencies: Vec<u64>,
    error: Option<String>,
}

/// Message `i` of connection `id`, padded with 'x' to `size` bytes.
fn message(id: usize, i: u64, size: usize) -> String {
    let mut m = format!("{id}:{i} ");
    while m.len() < size {
        m.push('x');
    }
    m
}

async fn echo_loop(id: usize, mut conn: Conn, size: usize, end: Instant, wait: Duration) -> Tally {
    let mut t = Tally { count: 0, latencies: Vec::with_capacity(1 << 16), error: None };
    while Instant::now() < end {
        let msg = message(id, t.count, size);
        let sent = Instant::now();
        let round = async {
            conn.send("echo", &msg).await?;
            loop {
                let ev = conn.recv().await?;
                if ev.is("echo") {
                    return if ev.payload() == msg {
                        Ok(())
                    } else {
                        Err(format!("echo differs: sent {msg:?}, got {:?}", ev.payload()))
                    };
                }
            }
        };
        match tokio::time::timeout(wait, round).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => t.error = Some(e),
            Err(_) => t.error = Some(format!("no echo within {} s", wait.as_secs())),
        }
        if t.error.is_some() {
            break;
        }
        t.latencies.push(sent.elapsed().as_micros() as u64);
        t.count += 1;
    }
    t
}

/// Runs the echo scenario.
pub async fn run(a: &Args) -> Result<Outcome, String> {
    let (port, sio) = (a.port, a.socketio);
    let conns =
        open_all(a.conns, a.timeout, move |_| async move { Conn::connect(port, "/ws-echo", sio).await })
            .await?;
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(a.seconds);
    let mut set = JoinSet::new();
    for (id, conn) in conns.into_iter().enumerate() {
        set.spawn(echo_loop(id, conn, a.size, end, a.timeout.min(Duration::from_secs(10))));
    }
    let (mut total, mut latencies, mut errors) = (0u64, Vec::new(), Vec::new());
    while let Some(done) = set.join_next().await {
        let t = done.map_err(|e| format!("task: {e}"))?;
        total += t.count;
        latencies.extend(t.latencies);
        errors.extend(t.error);
    }
    let seconds = start.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let note = match errors.first() {
        Some(e) => format!("{} of {} connections failed, first: {e}", errors.len(), a.conns),
        None => String::new(),
    };
    let complete = errors.is_empty() && total > 0;
    Ok(Outcome {
        value: total as f64 / seconds,
        p50: percentile(&latencies, 0.5),
        p99: percentile(&latencies, 0.99),
        complete,
        note,
    })
}
