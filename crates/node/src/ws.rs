//! WebSocket callbacks that become dispatcher events, and the table of sockets JS addresses by id.

use catzilla_core::{Message, WsEvents, WsSocket};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;

use crate::dispatch::{Event, JsHandler};

/// One thread's sockets by id (the id JS holds), from accept until their close event.
#[derive(Default)]
pub(crate) struct SocketTable {
    sockets: Mutex<HashMap<u32, WsSocket>>,
}

impl SocketTable {
    pub(crate) fn insert(&self, socket: WsSocket) {
        self.sockets.lock().insert(socket.id() as u32, socket);
    }

    pub(crate) fn get(&self, id: u32) -> Option<WsSocket> {
        self.sockets.lock().get(&id).cloned()
    }

    pub(crate) fn remove(&self, id: u32) {
        self.sockets.lock().remove(&id);
    }

    pub(crate) fn clear(&self) {
        self.sockets.lock().clear();
    }

    /// Takes every socket out of the table.
    pub(crate) fn drain(&self) -> Vec<WsSocket> {
        self.sockets.lock().drain().map(|(_, s)| s).collect()
    }
}

/// The callbacks of every WebSocket route of one server: each becomes one dispatcher event.
pub(crate) struct JsWsEvents(pub(crate) Arc<JsHandler>);

impl WsEvents for JsWsEvents {
    fn open(&self, socket: &WsSocket) {
        self.0.emit(Event::WsOpen { id: socket.id() as u32 });
    }

    fn message(&self, socket: &WsSocket, message: Message) {
        let len = message.len();
        let s = socket.clone();
        // The reader pauses while too many bytes wait for JS; they count as consumed once the
        // dispatcher has returned from this message, or, when an async hook is still handling
        // it, once JS calls `wsConsumed`.
        self.0.emit_then(Event::WsMessage { id: socket.id() as u32, message }, move |deferred| {
            if deferred {
                s.defer(len);
            } else {
                s.consumed(len);
            }
        });
    }

    fn drain(&self, socket: &WsSocket) {
        self.0.emit(Event::WsDrain { id: socket.id() as u32 });
    }

    fn close(&self, socket: &WsSocket, code: u16, reason: &str) {
        let id = socket.id() as u32;
        self.0.sockets.remove(id);
        self.0.owners.forget(id);
        self.0.emit(Event::WsClose { id, code, reason: reason.to_owned() });
    }

    fn disconnected(&self, socket: &WsSocket, code: u16, reason: &str) {
        let id = socket.id() as u32;
        self.0.sockets.remove(id);
        self.0.emit(Event::WsOffline { id, code, reason: reason.to_owned() });
    }

    fn expired(&self, socket: &WsSocket) {
        self.0.owners.forget(socket.id() as u32);
        self.0.emit(Event::WsExpired { id: socket.id() as u32 });
    }

    fn moved(&self, socket: &WsSocket) {
        self.0.owners.forget(socket.id() as u32);
        self.0.emit(Event::WsMoved { id: socket.id() as u32 });
    }
}

/// `NativeServer` methods for WebSocket routes and sockets.
mod methods {
    use catzilla_core::http::StatusCode;
    use catzilla_core::ws::{DeflateConfig, ResumeConfig};
    use catzilla_core::{Bytes, Message, Reply, ReplyBody, WsAccept, WsConfig, WsSocket};
    use napi::bindgen_prelude::BufferSlice;
    use napi_derive::napi;
    use std::sync::Arc;
    use std::time::Duration;

    use super::JsWsEvents;
    use crate::server::{code_error, parse_headers, NativeServer};
    use crate::types::{WsAccepted, WsOptions};

    /// `SendStatus::Dropped`, for sockets JS no longer knows.
    const DROPPED: u32 = 2;

    #[napi]
    impl NativeServer {
        /// Declares route `routeId` a WebSocket route with these settings.
        #[napi(catch_unwind)]
        pub fn ws_route(&self, route_id: u32, options: Option<WsOptions>) {
            let o = options.unwrap_or_default();
            let mut c = WsConfig::default();
            if let Some(v) = o.max_payload {
                c.max_payload = v.max(1.0) as usize;
            }
            match o.idle_timeout {
                Some(0) => c.idle_timeout = None,
                Some(ms) => c.idle_timeout = Some(Duration::from_millis(u64::from(ms))),
                None => {}
            }
            if let Some(v) = o.max_backpressure {
                c.max_backpressure = v.max(0.0) as usize;
            }
            if let Some(v) = o.close_on_backpressure_limit {
                c.close_on_backpressure_limit = v;
            }
            c.resume = o.resume.map(|r| {
                let d = ResumeConfig::default();
                ResumeConfig {
                    ttl: r.ttl.map_or(d.ttl, |ms| Duration::from_millis(ms.max(0.0) as u64)),
                    max_messages: r.max_messages.map_or(d.max_messages, |n| n as usize),
                    max_bytes: r.max_bytes.map_or(d.max_bytes, |b| b.max(0.0) as usize),
                }
            });
            c.compression = o.compression.map(|z| {
                let d = DeflateConfig::default();
                let bits = |v: Option<u32>, lo: u8, default: u8| {
                    v.map_or(default, |b| b.clamp(u32::from(lo), 15) as u8)
                };
                DeflateConfig {
                    context_takeover: z.context_takeover.unwrap_or(d.context_takeover),
                    threshold: z.threshold.map_or(d.threshold, |t| t as usize),
                    level: z.level.map_or(d.level, |l| l.clamp(1, 9)),
                    server_max_window_bits: bits(z.server_max_window_bits, 9, d.server_max_window_bits),
                    client_max_window_bits: bits(z.client_max_window_bits, 8, d.client_max_window_bits),
                }
            });
            self.builder.lock().websocket(route_id, c);
        }

        /// Accepts the upgrade of request `id` (on WebSocket route `routeId`) with extra response
        /// headers (e.g. `sec-websocket-protocol`); on a route with `resume`, `session` names the
        /// disconnected session the client asks to resume. Its id is 0 when the client is gone.
        /// Throws `CZ_BAD_HEADER` for invalid headers.
        #[napi(catch_unwind)]
        pub fn accept_ws(
            &self,
            id: u32,
            route_id: u32,
            headers: String,
            session: Option<String>,
        ) -> napi::Result<WsAccepted> {
            let gone = WsAccepted { id: 0, session: None, recovered: false };
            let Some(h) = self.handler() else { return Ok(gone) };
            let Some(headers) = parse_headers(&headers) else {
                return Err(code_error("CZ_BAD_HEADER", "invalid header"));
            };
            let config = self.builder.lock().ws_config(route_id);
            let Some(responder) = h.take_final(id) else {
                // A session claimed from Redis for this client goes back there.
                if let (Some(s), Some(resume)) = (&session, &config.resume) {
                    self.sessions.unclaim(s, resume);
                }
                return Ok(gone);
            };
            let (socket, recovered) = self.sessions.accept(route_id, config, session.as_deref(), |config| {
                WsSocket::new(u64::from(h.owners.next_id()), config, self.stats.clone())
            });
            let ws_id = socket.id() as u32;
            let session = socket.session_id();
            h.sockets.insert(socket.clone());
            h.owners.own(ws_id, h.worker);
            let accept = WsAccept { socket: socket.clone(), events: Arc::new(JsWsEvents(h.clone())) };
            let reply = Reply {
                status: StatusCode::SWITCHING_PROTOCOLS,
                headers,
                body: ReplyBody::WebSocket(accept),
            };
            if responder.send(reply) {
                Ok(WsAccepted { id: ws_id, session, recovered })
            } else {
                h.sockets.remove(ws_id);
                h.owners.forget(ws_id);
                socket.discard();
                Ok(gone)
            }
        }

        /// Claims session `session` of route `routeId` from Redis before `acceptWs` resumes it
        /// (Redis adapter only); `false` when it does not wait there (it may wait here, or be
        /// unknown).
        #[napi(catch_unwind)]
        pub async fn claim_ws_session(&self, route_id: u32, session: String) -> bool {
            self.sessions.claim(&session, route_id).await
        }

        /// Queues a text message for the socket of session `session`, connected or waiting for
        /// a resume (here, or in Redis). Returns 0 sent, 1 queued over the limit, 2 dropped (or
        /// no such session here and no Redis).
        #[napi(catch_unwind)]
        pub fn send_to_session_text(&self, session: String, text: String) -> u32 {
            self.sessions.send_to(&session, Message::text(text)) as u32
        }

        /// Queues a binary message for session `session`; see `sendToSessionText`.
        #[napi(catch_unwind)]
        pub fn send_to_session_binary(&self, session: String, data: BufferSlice) -> u32 {
            self.sessions.send_to(&session, Message::Binary(Bytes::copy_from_slice(&data))) as u32
        }

        /// Queues a text message. Returns 0 sent, 1 queued over the limit, 2 dropped.
        #[napi(catch_unwind)]
        pub fn ws_send_text(&self, ws: u32, text: String) -> u32 {
            self.socket(ws).map_or(DROPPED, |s| s.send(Message::text(text)) as u32)
        }

        /// Queues a binary message. Returns 0 sent, 1 queued over the limit, 2 dropped.
        #[napi(catch_unwind)]
        pub fn ws_send_binary(&self, ws: u32, data: BufferSlice) -> u32 {
            self.socket(ws).map_or(DROPPED, |s| s.send(Message::Binary(Bytes::copy_from_slice(&data))) as u32)
        }

        /// Starts the close handshake after the queued messages.
        #[napi(catch_unwind)]
        pub fn ws_close(&self, ws: u32, code: u32, reason: String) {
            if let Some(s) = self.socket(ws) {
                s.close(u16::try_from(code).unwrap_or(1000), &reason);
            }
        }

        /// The async `message` hook of socket `ws` finished its oldest deferred message.
        #[napi(catch_unwind)]
        pub fn ws_consumed(&self, ws: u32) {
            if let Some(s) = self.socket(ws) {
                s.consumed_deferred();
            }
        }

        /// Outbound bytes not yet written.
        #[napi(catch_unwind)]
        pub fn ws_buffered(&self, ws: u32) -> f64 {
            self.socket(ws).map_or(0.0, |s| s.buffered_amount() as f64)
        }

        /// Subscribes socket `ws` to `topic`; `false` if it already was (or is closed).
        #[napi(catch_unwind)]
        pub fn ws_subscribe(&self, ws: u32, topic: String) -> bool {
            self.socket(ws).is_some_and(|s| self.topics.subscribe_ws(&topic, &s))
        }

        /// Unsubscribes socket `ws` from `topic`; `false` if it was not subscribed.
        #[napi(catch_unwind)]
        pub fn ws_unsubscribe(&self, ws: u32, topic: String) -> bool {
            self.socket(ws).is_some_and(|s| self.topics.unsubscribe_ws(&topic, &s))
        }

        /// The topics socket `ws` is subscribed to.
        #[napi(catch_unwind)]
        pub fn ws_topics(&self, ws: u32) -> Vec<String> {
            self.socket(ws).map_or_else(Vec::new, |s| s.topics())
        }

        fn socket(&self, ws: u32) -> Option<WsSocket> {
            self.handler().and_then(|h| h.sockets.get(ws))
        }
    }
}
