//! WebSocket echo: each connection sends a message, waits for its echo, checks it, repeats.

use std::time::{Duration, Instant};

use catzilla_core::ws::deflate::deflate_alone;
use catzilla_core::Bytes;
use tokio::task::JoinSet;

use crate::broadcast::open_all;
use crate::report::{percentile, Outcome};
use crate::wsconn::Conn;
use crate::zconn::LEVEL;
use crate::Args;

/// Messages each permessage-deflate connection cycles through.
const RING: usize = 64;

/// What a connection sends.
enum Script {
    /// A fresh `message` of this size each round.
    Plain(usize),
    /// `json_message`s compressed before the clock starts, sent in turn: the one-core client then
    /// only inflates and checks echoes, while the server inflates and compresses every message.
    Deflated(Vec<(Bytes, String)>),
}

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

/// Message `i` of connection `id` for permessage-deflate: `id:i ` and a JSON object of rows with
/// varied numbers, padded with spaces to `size` bytes. It compresses about as real JSON does, not
/// as one repeated byte; the peers' `/publish?kind=json` makes the same rows.
fn json_message(id: usize, i: usize, size: usize) -> String {
    let seed = (id * RING + i) as u64;
    let mut m = format!("{id}:{i} {{\"seq\":{seed},\"rows\":[");
    for k in 0u64.. {
        let h = (seed * 7919 + k * 104_729) % 1_000_003;
        let row = format!(
            "{}{{\"id\":{},\"sku\":\"SKU-{h}\",\"price\":{},\"qty\":{},\"active\":{}}}",
            if k > 0 { "," } else { "" },
            seed * 64 + k,
            h % 100_000,
            h % 97,
            h % 2 == 0
        );
        if m.len() + row.len() + 2 > size {
            break;
        }
        m.push_str(&row);
    }
    m.push_str("]}");
    m.truncate(size);
    while m.len() < size {
        m.push(' ');
    }
    m
}

async fn echo_loop(id: usize, mut conn: Conn, script: Script, end: Instant, wait: Duration) -> Tally {
    let mut t = Tally { count: 0, latencies: Vec::with_capacity(1 << 16), error: None };
    while Instant::now() < end {
        let fresh;
        let (msg, deflated) = match &script {
            Script::Plain(size) => {
                fresh = message(id, t.count, *size);
                (fresh.as_str(), None)
            }
            Script::Deflated(ring) => {
                let (z, text) = &ring[t.count as usize % ring.len()];
                (text.as_str(), Some(z))
            }
        };
        let sent = Instant::now();
        let round = async {
            match deflated {
                Some(z) => conn.send_deflated(z).await?,
                None => conn.send("echo", msg).await?,
            }
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
    let (port, sio, deflate) = (a.port, a.socketio, a.deflate);
    let path = if deflate { "/ws-echo-z" } else { "/ws-echo" };
    let conns =
        open_all(a.conns, a.timeout, move |_| async move { Conn::connect(port, path, sio, deflate).await })
            .await?;
    let script = |id| {
        if !deflate {
            return Script::Plain(a.size);
        }
        let text = |i| json_message(id, i, a.size);
        Script::Deflated((0..RING).map(text).map(|m| (deflate_alone(m.as_bytes(), LEVEL, 15), m)).collect())
    };
    let scripts: Vec<Script> = (0..conns.len()).map(script).collect();
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(a.seconds);
    let mut set = JoinSet::new();
    for (id, (conn, script)) in conns.into_iter().zip(scripts).enumerate() {
        set.spawn(echo_loop(id, conn, script, end, a.timeout.min(Duration::from_secs(10))));
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
