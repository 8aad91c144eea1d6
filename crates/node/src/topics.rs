//! `NativeServer` methods for topics: publish (fan-out in Rust) and SSE topic subscriptions.

use catzilla_core::http::StatusCode;
use catzilla_core::{sse, Bytes, Message, Reply, ReplyBody, SseSubscribe};
use napi::bindgen_prelude::BufferSlice;
use napi_derive::napi;
use std::time::Duration;

use crate::server::{code_error, parse_headers, NativeServer};

fn exclude(ws: u32) -> Option<u64> {
    (ws != 0).then_some(u64::from(ws))
}

#[napi]
impl NativeServer {
    /// Publishes a text message to `topic` (WebSocket text frame; SSE event with optional
    /// `event`), skipping socket `excludeWs` (0: none). Returns the number of subscribers reached.
    /// Throws `CZ_SSE_FIELD` when `event` contains CR, LF or NUL.
    #[napi(catch_unwind)]
    pub fn publish_text(
        &self,
        topic: String,
        text: String,
        event: Option<String>,
        exclude_ws: u32,
    ) -> napi::Result<u32> {
        self.topics
            .publish(&topic, Message::text(text), event.as_deref(), exclude(exclude_ws))
            .map(|n| n as u32)
            .map_err(|e| code_error("CZ_SSE_FIELD", e.to_string()))
    }

    /// Publishes a binary message to `topic` (WebSocket binary frame; SSE gets it as UTF-8 text).
    /// Throws `CZ_SSE_FIELD` when `event` contains CR, LF or NUL.
    #[napi(catch_unwind)]
    pub fn publish_binary(
        &self,
        topic: String,
        data: BufferSlice,
        event: Option<String>,
        exclude_ws: u32,
    ) -> napi::Result<u32> {
        let message = Message::Binary(Bytes::copy_from_slice(&data));
        self.topics
            .publish(&topic, message, event.as_deref(), exclude(exclude_ws))
            .map(|n| n as u32)
            .map_err(|e| code_error("CZ_SSE_FIELD", e.to_string()))
    }

    /// Subscribers (WebSocket and SSE) of `topic` now.
    #[napi(catch_unwind)]
    pub fn subscribers(&self, topic: String) -> u32 {
        self.topics.subscribers(&topic) as u32
    }

    /// Answers request `id` with an SSE stream fed by `topic`: the replay (after the request's
    /// `Last-Event-ID`, read from the head kept in Rust, or the `recent` last messages), then
    /// live events; `retryMs` is sent first as the client's reconnection delay. A subscriber more
    /// than `maxBackpressure` bytes behind is cut (it reconnects and replays). Returns `false`
    /// when the client is gone; throws `CZ_BAD_HEADER` for invalid headers.
    #[napi(catch_unwind)]
    pub fn subscribe_sse(&self, id: u32, topic: String, options: SseTopicOptions) -> napi::Result<bool> {
        let Some(h) = self.handler() else { return Ok(false) };
        let Some(headers) = parse_headers(&options.headers) else {
            return Err(code_error("CZ_BAD_HEADER", "invalid header"));
        };
        let Some((responder, head)) = h.take_final_with_head(id) else { return Ok(false) };
        let last_event_id = if options.resume {
            head.get("last-event-id").and_then(|v| v.to_str().ok()).map(str::to_owned)
        } else {
            None
        };
        let opts = SseSubscribe {
            last_event_id,
            recent: options.recent as usize,
            max_backpressure: options.max_backpressure.max(1.0) as usize,
            heartbeat: (options.heartbeat_ms > 0).then(|| {
                (Duration::from_millis(u64::from(options.heartbeat_ms)), Bytes::from_static(sse::HEARTBEAT))
            }),
            preamble: options.retry_ms.map(|ms| {
                let mut out = Vec::with_capacity(16);
                // `retry` alone cannot be invalid.
                let _ = sse::encode(
                    &sse::Event { retry: Some(u64::from(ms)), ..sse::Event::default() },
                    &mut out,
                );
                Bytes::from(out)
            }),
        };
        let body = self.topics.subscribe_sse(&topic, opts);
        Ok(responder.send(Reply { status: StatusCode::OK, headers, body: ReplyBody::Topic(body) }))
    }
}

/// Named options of `subscribeSse`.
#[napi(object)]
pub struct SseTopicOptions {
    /// Response headers, packed `name\0value\0...`.
    pub headers: String,
    /// Resume after the request's `Last-Event-ID` from the topic's history.
    pub resume: bool,
    /// Without `Last-Event-ID`, send up to this many recent messages first.
    pub recent: u32,
    /// Bytes the subscriber may fall behind before it is cut.
    pub max_backpressure: f64,
    /// Heartbeat comment after this many ms of silence (0: none).
    pub heartbeat_ms: u32,
    /// Reconnection delay sent first, in ms.
    pub retry_ms: Option<u32>,
}

/// Encodes a packed batch of SSE events (see `catzilla_core::sse::encode_packed`) to text with
/// the core's one SSE encoder. Throws `CZ_SSE_FIELD` on an invalid `id`, `event` or `retry`.
#[napi(catch_unwind)]
#[cfg_attr(test, allow(dead_code, reason = "only Node calls it; #[napi] registers it outside tests"))]
pub fn encode_sse(packed: String) -> napi::Result<String> {
    let mut out = Vec::with_capacity(packed.len() + 16);
    sse::encode_packed(&packed, &mut out).map_err(|e| code_error("CZ_SSE_FIELD", e.to_string()))?;
    // The encoder copies UTF-8 input and ASCII framing only.
    String::from_utf8(out).map_err(|_| code_error("CZ_SSE_FIELD", "SSE output is not UTF-8"))
}
