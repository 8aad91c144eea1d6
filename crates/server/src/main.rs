//! Standalone Catzilla server with Rust handlers: the profiling target and the benchmark ceiling.
//!
//! `cargo run -p catzilla-server --release -- --port 8080 [--host 127.0.0.1] [--threads N]` serves:
//! - `GET /hello`: `Hello, World!` as text/plain;
//! - `GET /users/:id?q=...`: a small JSON document echoing the parameter and the query;
//! - `GET /stream?bytes=N&chunk=M`: N bytes in M-byte chunks through the same bounded ring as the
//!   Node binding, produced by a tokio task that waits whenever the ring is full;
//! - `GET /sse?n=N`: N server-sent events of about 60 bytes, one ring write each;
//! - `GET /ndjson?n=N`: N JSON rows, one ring write each.
//! - `GET /ws-echo`: a WebSocket that echoes every message;
//! - `GET /ws-sub`: a WebSocket subscribed to topic `bench` that is sent `ready` once subscribed;
//! - `GET /sse-sub`: an SSE stream subscribed to topic `bench`;
//! - `GET /publish?n=N&size=S`: publishes N messages of S bytes to `bench` (WebSocket and SSE).

use bytes::Bytes;
use catzilla_core::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use catzilla_core::{
    ring, CloseInfo, Handler, Message, Reply, ReplyBody, Request, Responder, RingConfig, RingEvents,
    ServerBuilder, ServerConfig, SseSubscribe, Stats, StreamBudget, Topics, WriteStatus, WsAccept, WsConfig,
    WsEvents, WsSocket, SHARE_MIN,
};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

const HELLO: u32 = 0;
const USER: u32 = 1;
const STREAM: u32 = 2;
const SSE: u32 = 3;
const NDJSON: u32 = 4;
const WS_ECHO: u32 = 5;
const WS_SUB: u32 = 6;
const SSE_SUB: u32 = 7;
const PUBLISH: u32 = 8;

/// A boxed source of chunks for [`Scenarios::stream`].
type Chunks = Box<dyn Iterator<Item = Bytes> + Send>;

/// Rust handlers for the benchmark scenarios.
struct Scenarios {
    stats: Arc<Stats>,
    budget: Arc<StreamBudget>,
    buffer_size: usize,
    topics: Arc<Topics>,
    next_ws: AtomicU64,
    echo: Arc<Echo>,
    sub: Arc<Subscriber>,
}

/// `/ws-echo`: sends every message back.
struct Echo;

impl WsEvents for Echo {
    fn open(&self, _socket: &WsSocket) {}
    fn message(&self, socket: &WsSocket, message: Message) {
        let len = message.len();
        socket.send(message);
        socket.consumed(len);
    }
    fn drain(&self, _socket: &WsSocket) {}
    fn close(&self, _socket: &WsSocket, _code: u16, _reason: &str) {}
}

/// `/ws-sub`: joins topic `bench`, then says `ready`.
struct Subscriber(Arc<Topics>);

impl WsEvents for Subscriber {
    fn open(&self, socket: &WsSocket) {
        self.0.subscribe_ws("bench", socket);
        socket.send(Message::text("ready"));
    }
    fn message(&self, socket: &WsSocket, message: Message) {
        socket.consumed(message.len());
    }
    fn drain(&self, _socket: &WsSocket) {}
    fn close(&self, _socket: &WsSocket, _code: u16, _reason: &str) {}
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
    /// Streams `chunks` through a ring (large ones shared, small ones copied), waiting whenever it
    /// is full; flushes every 64 writes.
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
                // Large chunks are queued without a copy: they are Rust-owned `Bytes` (the binding
                // copies JS Buffers instead).
                let status =
                    if chunk.len() >= SHARE_MIN { writer.write_shared(chunk) } else { writer.write(&chunk) };
                match status {
                    WriteStatus::Closed => return,
                    WriteStatus::Full => notify.notified().await,
                    WriteStatus::Ready if i % 64 == 63 => writer.flush(),
                    WriteStatus::Ready => {}
                    WriteStatus::Refused => unreachable!("only RingWriter::offer refuses a chunk"),
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
            WS_ECHO | WS_SUB if req.websocket => {
                let socket = WsSocket::new(
                    self.next_ws.fetch_add(1, Ordering::Relaxed),
                    WsConfig::default(),
                    self.stats.clone(),
                );
                let events: Arc<dyn WsEvents> =
                    if req.route == WS_ECHO { self.echo.clone() } else { self.sub.clone() };
                Reply {
                    status: StatusCode::SWITCHING_PROTOCOLS,
                    headers: HeaderMap::new(),
                    body: ReplyBody::WebSocket(WsAccept { socket, events }),
                }
            }
            WS_ECHO | WS_SUB => Reply::text(StatusCode::UPGRADE_REQUIRED, "Upgrade Required"),
            SSE_SUB => {
                let opts = SseSubscribe { max_backpressure: 1 << 20, ..SseSubscribe::default() };
                let body = self.topics.subscribe_sse("bench", opts);
                Reply {
                    status: StatusCode::OK,
                    headers: content_type("text/event-stream"),
                    body: ReplyBody::Topic(body),
                }
            }
            PUBLISH => {
                let n: u64 = number(query, "n", 1);
                let size: usize = number(query, "size", 64);
                let topics = self.topics.clone();
                // Publish off the worker threads (as Node does from its own thread): subscriber
                // tasks woken from a worker wait in that worker's local queue until the loop ends.
                tokio::task::spawn_blocking(move || {
                    let mut reached = 0;
                    for i in 0..n {
                        let text = format!("{:x<size$}", format!("{i} "));
                        // No event name: nothing to refuse.
                        reached =
                            topics.publish("bench", Message::text(text), None, None).unwrap_or_default();
                    }
                    let body = Bytes::from(reached.to_string());
                    responder.send(Reply::full(StatusCode::OK, content_type("text/plain"), body));
                });
                return;
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
        let mut config = ServerConfig::default();
        // Benchmark settings: keep idle connections (memory scenario) and allow many of them.
        config.timeouts.keep_alive = Some(Duration::from_secs(120));
        config.timeouts.headers = Some(Duration::from_secs(120));
        config.limits.max_connections = 20_000;
        let buffer_size = config.buffer_size;
        let mut builder = ServerBuilder::new(config, catzilla_core::TopicConfig::default(), 0);
        let routes = [
            ("/hello", HELLO),
            ("/users/:id", USER),
            ("/stream", STREAM),
            ("/sse", SSE),
            ("/ndjson", NDJSON),
            ("/ws-echo", WS_ECHO),
            ("/ws-sub", WS_SUB),
            ("/sse-sub", SSE_SUB),
            ("/publish", PUBLISH),
        ];
        for (path, id) in routes {
            builder.route(Some(Method::GET), path, id).map_err(std::io::Error::other)?;
        }
        let topics = builder.topics().clone();
        let handler = Arc::new(Scenarios {
            stats: builder.stats().clone(),
            budget: builder.budget().clone(),
            buffer_size,
            topics: topics.clone(),
            next_ws: AtomicU64::new(1),
            echo: Arc::new(Echo),
            sub: Arc::new(Subscriber(topics)),
        });
        let server = builder.serve(addr, handler).await?;
        println!("ready http://{}", server.local_addr());
        tokio::signal::ctrl_c().await?;
        server.close(Duration::from_secs(5)).await;
        Ok(())
    })
}
