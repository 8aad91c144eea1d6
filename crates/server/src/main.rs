//! Standalone Catzilla server with Rust handlers: the profiling target and the benchmark ceiling.
//!
//! `cargo run -p catzilla-server --release -- --port 8080 [--host 127.0.0.1]` serves:
//! - `GET /hello`: `Hello, World!` as text/plain;
//! - `GET /users/:id?q=...`: a small JSON document echoing the parameter and the query;
//! - `GET /stream?bytes=N&chunk=M`: N bytes in M-byte chunks through the same bounded ring as the
//!   Node binding, produced by a tokio task that waits whenever the ring is full.

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

fn content_type(value: &'static str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(value));
    h
}

impl Scenarios {
    fn stream(&self, req: &Request, responder: Responder) {
        let query = req.uri.query().unwrap_or("");
        let total: u64 = query_param(query, "bytes").and_then(|v| v.parse().ok()).unwrap_or(1 << 20);
        let chunk: usize =
            query_param(query, "chunk").and_then(|v| v.parse().ok()).unwrap_or(16 * 1024).max(1);
        let notify = Arc::new(Notify::new());
        let (writer, body) = ring(
            RingConfig::new(self.buffer_size),
            Box::new(Wake(notify.clone())),
            self.stats.clone(),
            self.budget.clone(),
        );
        let headers = content_type("application/octet-stream");
        if !responder.send(Reply { status: StatusCode::OK, headers, body: ReplyBody::Stream(body) }) {
            return;
        }
        tokio::spawn(async move {
            let data = vec![b'x'; chunk];
            let mut left = total;
            while left > 0 {
                let n = left.min(chunk as u64) as usize;
                match writer.write(&data[..n]) {
                    WriteStatus::Closed => return,
                    WriteStatus::Full => notify.notified().await,
                    WriteStatus::Ready => writer.flush(),
                }
                left -= n as u64;
            }
            writer.end();
        });
    }
}

impl Handler for Scenarios {
    type Token = ();

    fn handle(&self, req: Request, responder: Responder) {
        let reply = match req.route {
            HELLO => Reply::full(StatusCode::OK, content_type("text/plain; charset=utf-8"), "Hello, World!"),
            USER => {
                let id = req.params.first().map_or("", |(_, v)| v.as_str());
                let q = query_param(req.uri.query().unwrap_or(""), "q").unwrap_or("");
                let body = format!(r#"{{"id":"{}","q":"{}"}}"#, escape(id), escape(q));
                Reply::full(StatusCode::OK, content_type("application/json"), Bytes::from(body))
            }
            STREAM => return self.stream(&req, responder),
            _ => Reply::text(StatusCode::NOT_FOUND, "Not Found"),
        };
        let _ = responder.send(reply);
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
        router.add(Some(Method::GET), "/hello", HELLO).map_err(std::io::Error::other)?;
        router.add(Some(Method::GET), "/users/:id", USER).map_err(std::io::Error::other)?;
        router.add(Some(Method::GET), "/stream", STREAM).map_err(std::io::Error::other)?;
        let config = ServerConfig::default();
        let stats = Arc::new(Stats::default());
        let handler = Arc::new(Scenarios {
            stats: stats.clone(),
            budget: StreamBudget::new(0),
            buffer_size: config.buffer_size,
        });
        let server = serve(addr, config, router, handler, stats).await?;
        println!("catzilla-server listening on http://{}", server.local_addr());
        tokio::signal::ctrl_c().await?;
        server.close(Duration::from_secs(5)).await;
        Ok(())
    })
}
