//! Standalone Catzilla server with Rust handlers: the profiling target and the benchmark ceiling.
//!
//! `cargo run -p catzilla-server --release -- --port 8080 [--host 127.0.0.1] [--threads N]` serves:
//! - `GET /hello`: `Hello, World!` as text/plain;
//! - `GET /users/:id?q=...`: a small JSON document echoing the parameter and the query;
//! - `GET /stream?bytes=N&chunk=M`: N bytes in M-byte chunks through the same bounded ring as the
//!   Node binding, produced by a tokio task that waits whenever the ring is full;
//! - `GET /sse?n=N`: N server-sent events of about 60 bytes, one ring write each;
//! - `GET /ndjson?n=N`: N JSON rows, one ring write each.

use bytes::Bytes;
use catzilla_core::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use catzilla_core::{
    ring, serve, CloseInfo, Handler, Reply, ReplyBody, Request, Responder, RingConfig, RingEvents, Router,
    ServerConfig, Stats, StreamBudget, WriteStatus,
};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

const HELLO: u32 = 0;
const USER: u32 = 1;
const STREAM: u32 = 2;
const SSE: u32 = 3;
const NDJSON: u32 = 4;

/// A boxed source of chunks for [`Scenarios::stream`].
type Chunks = Box<dyn Iterator<Item = Bytes> + Send>;

/// Rust handlers for the benchmark scenarios.
struct Scenarios {
    stats: Arc<Stats>,
    budget: Arc<StreamBudget>,
    buffer_size: usize,
}

/// Wakes the producing task when the ring drains or closes.
struct Wake(Arc<Notify>);

impl RingEvents for Wake {
    fn drained(&self) {
        self.0.notify_one();
    }
    fn closed(&self, _info: CloseInfo) {
        self.0.notify_one();
    }
}

fn query_param<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query.split('&').find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

fn number<T: std::str::FromStr>(query: &str, key: &str, default: T) -> T {
    query_param(query, key).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn content_type(value: &'static str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(value));
    h
}

impl Scenarios {
    /// Streams `chunks` through a ring, waiting whenever it is full; flushes every 64 writes.
    fn stream(&self, responder: Responder, kind: &'static str, chunks: Chunks) {
        let notify = Arc::new(Notify::new());
        let (writer, body) = ring(
            RingConfig::new(self.buffer_size),
            Box::new(Wake(notify.clone())),
            self.stats.clone(),
            self.budget.clone(),
        );
        let reply =
            Reply { status: StatusCode::OK, headers: content_type(kind), body: ReplyBody::Stream(body) };
        if !responder.send(reply) {
            return;
        }
        tokio::spawn(async move {
            for (i, chunk) in chunks.enumerate() {
                match writer.write(&chunk) {
                    WriteStatus::Closed => return,
                    WriteStatus::Full => notify.notified().await,
                    WriteStatus::Ready if i % 64 == 63 => writer.flush(),
                    WriteStatus::Ready => {}
                }
            }
            writer.end();
        });
    }
}

impl Handler for Scenarios {
    type Token = ();

    fn handle(&self, req: Request, responder: Responder) {
        let query = req.uri.query().unwrap_or("");
        let reply = match req.route {
            HELLO => Reply::full(StatusCode::OK, content_type("text/plain; charset=utf-8"), "Hello, World!"),
            USER => {
                let id = req.params.first().map_or("", |(_, v)| v.as_str());
                let q = query_param(query, "q").unwrap_or("");
                let body = format!(r#"{{"id":"{}","q":"{}"}}"#, escape(id), escape(q));
                Reply::full(StatusCode::OK, content_type("application/json"), Bytes::from(body))
            }
            STREAM => {
                let total: u64 = number(query, "bytes", 1 << 20);
                let size: usize = number(query, "chunk", 16384usize).max(1);
                let data = Bytes::from(vec![b'x'; size]);
                let chunks = (0..total.div_ceil(size as u64)).map(move |_| data.clone());
                return self.stream(responder, "application/octet-stream", Box::new(chunks));
            }
            SSE => {
                let events = (0..number(query, "n", 1000u64)).map(|i| {
                    Bytes::from(format!("id: {i}\ndata: the quick brown fox jumps over the lazy dog\n\n"))
                });
                return self.stream(responder, "text/event-stream", Box::new(events));
            }
            NDJSON => {
                let rows = (0..number(query, "n", 1000u64))
                    .map(|i| Bytes::from(format!("{{\"id\":{i},\"name\":\"row {i}\",\"ok\":true}}\n")));
                return self.stream(responder, "application/x-ndjson", Box::new(rows));
            }
            _ => Reply::text(StatusCode::NOT_FOUND, "Not Found"),
        };
        responder.send(reply);
    }
}

/// Minimal JSON string escaping for the echo route.
fn escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| match c {
            '"' | '\\' => vec!['\\', c],
            c if (c as u32) < 0x20 => format!("\\u{:04x}", c as u32).chars().collect(),
            c => vec![c],
        })
        .collect()
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

fn main() -> std::io::Result<()> {
    let port: u16 = arg("--port").and_then(|p| p.parse().ok()).unwrap_or(8080);
    let host = arg("--host").unwrap_or_else(|| "127.0.0.1".into());
    let threads: usize = arg("--threads").and_then(|p| p.parse().ok()).unwrap_or(0);
    let addr: SocketAddr = format!("{host}:{port}").parse().map_err(std::io::Error::other)?;
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if threads > 0 {
        rt.worker_threads(threads);
    }
    let rt = rt.enable_all().build()?;
    rt.block_on(async move {
        let mut router = Router::new();
        for (path, id) in
            [("/hello", HELLO), ("/users/:id", USER), ("/stream", STREAM), ("/sse", SSE), ("/ndjson", NDJSON)]
        {
            router.add(Some(Method::GET), path, id).map_err(std::io::Error::other)?;
        }
        let mut config = ServerConfig::default();
        // Benchmark settings: keep idle connections (memory scenario) and allow many of them.
        config.timeouts.keep_alive = Some(Duration::from_secs(120));
        config.timeouts.headers = Some(Duration::from_secs(120));
        config.limits.max_connections = 20_000;
        let stats = Arc::new(Stats::default());
        let handler = Arc::new(Scenarios {
            stats: stats.clone(),
            budget: StreamBudget::new(0),
            buffer_size: config.buffer_size,
        });
        let server = serve(addr, config, router, handler, stats).await?;
        println!("ready http://{}", server.local_addr());
        tokio::signal::ctrl_c().await?;
        server.close(Duration::from_secs(5)).await;
        Ok(())
    })
}
