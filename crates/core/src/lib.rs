//! Catzilla's core: a tokio + hyper HTTP/1.1 server with a Rust router, bounded streaming rings,
//! WebSockets, topic fan-out, files, limits, timeouts, stats, Prometheus metrics and an access log. It never depends on napi; the Node binding and the standalone
//! binary both plug in through [`Handler`].

pub mod access;
pub mod body;
pub mod builder;
pub mod cluster;
pub mod compression;
pub mod config;
pub mod detach;
pub mod exchange;
pub mod files;
pub mod handler;
mod linger;
pub mod live;
pub mod metrics;
pub mod multipart;
pub mod response;
pub mod router;
pub mod sched;
pub mod server;
mod socket;
pub mod sse;
pub mod stats;
pub mod topics;
mod validate;
pub mod ws;

pub use access::{AccessLog, ExchangeSink};
pub use body::budget::StreamBudget;
pub use body::incoming::{BodyError, RequestBody, StreamingBody};
pub use body::ring::{ring, CloseInfo, RingBody, RingConfig, RingEvents, RingWriter, WriteStatus, SHARE_MIN};
pub use body::segments::Segments;
pub use builder::{Route, ServerBuilder, StaticDir};
pub use compression::{CompressionConfig, Encoding};
pub use config::{Limits, RouteOptions, RouteSettings, ServerConfig, Timeouts};
pub use exchange::Exchange;
pub use files::{file_reply, static_reply, Conditions, Confinement, FileOptions, StaticOptions};
pub use handler::{Handler, Reply, ReplyBody, Request, Responder};
pub use live::{Live, LiveInfo, LiveKind};
pub use multipart::{PartError, PartHead, PartLimits, Parts};
pub use router::{RouteError, RouteMatch, Router};
pub use server::ServerHandle;
pub use sse::{PackedError, SseFieldError};
pub use stats::{Rejection, Stats, StatsSnapshot};
pub use topics::{SseSubscribe, TopicBody, TopicConfig, Topics};
pub use ws::{Message, SendStatus, Utf8Bytes, WsAccept, WsConfig, WsEvents, WsSocket};

pub use bytes::Bytes;
pub use http;
