//! `catzilla-loadgen`: the benchmark's load client for WebSocket echo, WebSocket broadcast and
//! SSE broadcast. It prints one JSON line on stdout,
//! `{"value":…,"p50":…,"p99":…,"complete":true|false,"note":"…"}` (latencies in µs), and exits
//! non-zero when the run could not be set up (connections refused, publish failed, …).
//!
//! ```text
//! catzilla-loadgen ws-echo       --port P [--conns 64] [--seconds 5] [--size 64] [--socketio | --deflate]
//! catzilla-loadgen ws-broadcast  --port P [--clients 1000] [--n 1000] [--size 64] [--socketio | --deflate]
//! catzilla-loadgen sse-broadcast --port P [--clients 1000] [--n 1000] [--size 64]
//! (broadcasts: `--also P2` spreads the subscribers over several processes; the last one publishes)
//! common: [--timeout 60] seconds allowed for each phase (connect, deliver)
//! ```
//!
//! `--deflate` uses `/ws-echo-z` and `/ws-sub-z` (broadcast: `GET /publish?…&kind=json`) with
//! permessage-deflate, each message compressed alone both ways, and JSON-like messages of at least
//! 1024 bytes; a server that does not accept the extension, or sends such a message uncompressed,
//! fails the run.

mod broadcast;
mod echo;
mod http;
mod report;
mod wsconn;
mod zconn;

use std::process::ExitCode;
use std::time::Duration;

use report::Outcome;

/// What to measure.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    WsEcho,
    WsBroadcast,
    SseBroadcast,
}

/// The parsed command line.
#[derive(Clone)]
struct Args {
    mode: Mode,
    port: u16,
    /// Broadcast across processes: subscribers spread round-robin over `--port` and these, and
    /// the publish goes to the last of them.
    more_ports: Vec<u16>,
    conns: usize,
    seconds: f64,
    size: usize,
    clients: usize,
    n: u64,
    socketio: bool,
    deflate: bool,
    timeout: Duration,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mode = match it.next().as_deref() {
        Some("ws-echo") => Mode::WsEcho,
        Some("ws-broadcast") => Mode::WsBroadcast,
        Some("sse-broadcast") => Mode::SseBroadcast,
        other => return Err(format!("unknown mode {other:?}: ws-echo | ws-broadcast | sse-broadcast")),
    };
    let mut a = Args {
        mode,
        port: 0,
        more_ports: Vec::new(),
        conns: 64,
        seconds: 5.0,
        size: 64,
        clients: 1000,
        n: 1000,
        socketio: false,
        deflate: false,
        timeout: Duration::from_secs(60),
    };
    while let Some(flag) = it.next() {
        if flag == "--socketio" {
            a.socketio = true;
            continue;
        }
        if flag == "--deflate" {
            a.deflate = true;
            continue;
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{flag} {value}: {e}");
        match flag.as_str() {
            "--port" => a.port = value.parse().map_err(|e| bad(&e))?,
            "--also" => a.more_ports.push(value.parse().map_err(|e| bad(&e))?),
            "--conns" => a.conns = value.parse().map_err(|e| bad(&e))?,
            "--seconds" => a.seconds = value.parse().map_err(|e| bad(&e))?,
            "--size" => a.size = value.parse().map_err(|e| bad(&e))?,
            "--clients" => a.clients = value.parse().map_err(|e| bad(&e))?,
            "--n" => a.n = value.parse().map_err(|e| bad(&e))?,
            "--timeout" => a.timeout = Duration::from_secs_f64(value.parse().map_err(|e| bad(&e))?),
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if a.port == 0 {
        return Err("--port is required".into());
    }
    if a.conns == 0 || a.clients == 0 || a.n == 0 || a.size < 8 || a.seconds.is_nan() || a.seconds <= 0.0 {
        return Err("--conns, --clients and --n must be positive, --size at least 8".into());
    }
    if a.deflate && (a.socketio || a.mode == Mode::SseBroadcast || a.size < zconn::MUST_COMPRESS) {
        return Err(format!(
            "--deflate is for ws-echo and ws-broadcast without --socketio, with --size at least {}",
            zconn::MUST_COMPRESS
        ));
    }
    Ok(a)
}

async fn run(a: Args) -> Result<Outcome, String> {
    // Every phase has its own deadline; this outer bound catches anything they miss.
    let bound = a.timeout * 3 + Duration::from_secs_f64(a.seconds);
    let work = async {
        match a.mode {
            Mode::WsEcho => echo::run(&a).await,
            Mode::WsBroadcast => broadcast::ws(&a).await,
            Mode::SseBroadcast => broadcast::sse(&a).await,
        }
    };
    tokio::time::timeout(bound, work).await.map_err(|_| format!("no result within {} s", bound.as_secs()))?
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let result = match parse_args() {
        Ok(a) => run(a).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(outcome) => {
            outcome.print();
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("catzilla-loadgen: {e}");
            Outcome::failed(e).print();
            ExitCode::FAILURE
        }
    }
}
