//! Thin napi-rs binding: exposes `catzilla-core` to the TypeScript API in `src/native.ts`.
//!
//! One ThreadsafeFunction per server carries every Rust→JS event (requests, drain, close, body
//! chunks); JS answers with synchronous calls (`reply`, `startStream`, `NativeStream.write`).

mod access;
mod dispatch;
mod files;
mod multipart;
mod server;
mod stream;
mod topics;
mod types;
mod workers;
mod ws;

pub use server::NativeServer;
pub use stream::NativeStream;
