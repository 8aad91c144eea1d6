//! The listening server: accept loop, connection limit, graceful close and the request service.

use http::StatusCode;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};

use crate::access::AccessLog;
use crate::body::budget::StreamBudget;
use crate::body::incoming::{RequestBody, StreamingBody};
use crate::builder::Route;
use crate::config::ServerConfig;
use crate::exchange::Tracker;
use crate::handler::{Handler, Request, Responder};
use crate::live::{Live, LiveRequest};
use crate::response::{self, ResponseBody};
use crate::router::{RouteMatch, Router};
use crate::socket::SocketState;
use crate::stats::{Rejection, Stats};

mod conn;
pub use conn::PARK_AFTER;
use conn::{connection, ConnState};

/// Lifecycle phase broadcast to every connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Running,
    /// Finish in-flight responses, accept no new requests.
    Draining,
    /// Drop every connection now.
    Cut,
}

struct Shared<H: Handler> {
    config: ServerConfig,
    router: Router<Route>,
    handler: Arc<H>,
    stats: Arc<Stats>,
    budget: Arc<StreamBudget>,
    access_log: Option<Arc<AccessLog>>,
    live: Arc<Live>,
    phase: watch::Sender<Phase>,
    open: AtomicUsize,
    all_closed: Notify,
    started: Instant,
    lingering: Arc<crate::linger::Lingering>,
}

/// A running server. Dropping the handle does not stop it; call [`ServerHandle::close`].
pub struct ServerHandle {
    local_addr: SocketAddr,
    stats: Arc<Stats>,
    phase: watch::Sender<Phase>,
    closer: Arc<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>,
    access_log: Option<Arc<AccessLog>>,
    /// The Redis adapter started with this server (stopped by `close`).
    pub(crate) cluster: Option<Arc<crate::cluster::Cluster>>,
}

impl ServerHandle {
    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The server's counters.
    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// Graceful close: stop accepting, let in-flight responses finish for up to `timeout`, then cut
    /// the remaining connections. Resolves when every connection is gone.
    pub async fn close(&self, timeout: Duration) {
        if *self.phase.borrow() == Phase::Running {
            self.phase.send_replace(Phase::Draining);
        }
        let wait = (self.closer)();
        if tokio::time::timeout(timeout, wait).await.is_err() {
            self.phase.send_replace(Phase::Cut);
            (self.closer)().await;
        }
        // Every exchange has ended: the access log gets the last of them.
        if let Some(log) = &self.access_log {
            log.stop();
        }
        if let Some(c) = &self.cluster {
            c.stop();
        }
    }
}

/// What a server is built from (see [`crate::ServerBuilder::serve`]).
pub(crate) struct Parts {
    pub(crate) config: ServerConfig,
    pub(crate) router: Router<Route>,
    pub(crate) stats: Arc<Stats>,
    pub(crate) budget: Arc<StreamBudget>,
    pub(crate) access_log: Option<Arc<AccessLog>>,
    pub(crate) live: Arc<Live>,
}

/// Binds `addr` and starts serving on the current tokio runtime (see [`crate::ServerBuilder::serve`]).
pub(crate) async fn serve<H: Handler>(
    addr: SocketAddr,
    parts: Parts,
    handler: Arc<H>,
) -> std::io::Result<ServerHandle> {
    let Parts { config, router, stats, budget, access_log, live } = parts;
    let listener = TcpListener::bind(addr).await?;
    let local_addr = listener.local_addr()?;
    let (phase, _) = watch::channel(Phase::Running);
    let shared = Arc::new(Shared {
        config,
        router,
        handler,
        stats: stats.clone(),
        budget,
        access_log: access_log.clone(),
        live,
        phase: phase.clone(),
        open: AtomicUsize::new(1), // the accept loop itself counts as open until it stops
        all_closed: Notify::new(),
        started: Instant::now(),
        lingering: Arc::default(),
    });
    tokio::spawn(accept_loop(listener, shared.clone()));
    if let Some(log) = &access_log {
        tokio::spawn(log.clone().run());
    }
    let closer_shared = shared.clone();
    let closer = Arc::new(move || {
        let s = closer_shared.clone();
        Box::pin(async move {
            loop {
                let notified = s.all_closed.notified();
                if s.open.load(Ordering::Acquire) == 0 {
                    return;
                }
                notified.await;
            }
        }) as Pin<Box<dyn Future<Output = ()> + Send>>
    });
    Ok(ServerHandle { local_addr, stats, phase, closer, access_log, cluster: None })
}

fn release<H: Handler>(shared: &Shared<H>) {
    if shared.open.fetch_sub(1, Ordering::AcqRel) == 1 {
        shared.all_closed.notify_waiters();
    }
}

async fn accept_loop<H: Handler>(listener: TcpListener, shared: Arc<Shared<H>>) {
    let mut phase = shared.phase.subscribe();
    let stop = async move {
        loop {
            if *phase.borrow_and_update() != Phase::Running || phase.changed().await.is_err() {
                break;
            }
        }
    };
    tokio::pin!(stop);
    loop {
        tokio::select! {
            biased;
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, remote)) => {
                    let _ = stream.set_nodelay(true);
                    // `open` counts the accept loop too, hence `>`.
                    if shared.open.load(Ordering::Relaxed) > shared.config.limits.max_connections {
                        shared.stats.connection_rejected();
                        let now = Instant::now();
                        shared.finished(crate::exchange::Exchange::unparsed(remote, StatusCode::SERVICE_UNAVAILABLE, now));
                        tokio::spawn(reject_overloaded(stream));
                        continue;
                    }
                    shared.open.fetch_add(1, Ordering::AcqRel);
                    shared.stats.connection_opened();
                    tokio::spawn(connection(stream, remote, shared.clone()));
                }
                // Out of file descriptors and similar: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
        }
    }
    drop(listener);
    release(&shared);
}

async fn reject_overloaded(mut stream: TcpStream) {
    let body = "Service Unavailable: too many connections";
    let msg = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\nretry-after: 1\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(2), stream.write_all(msg.as_bytes())).await;
    let _ = stream.shutdown().await;
}

struct Service<H: Handler> {
    shared: Arc<Shared<H>>,
    remote: SocketAddr,
    conn: Arc<ConnState>,
    socket: Arc<SocketState>,
}

/// Calls `Handler::cancelled` if the request future is dropped before its reply arrived.
struct CancelGuard<H: Handler> {
    handler: Arc<H>,
    token: Option<H::Token>,
}

impl<H: Handler> Drop for CancelGuard<H> {
    fn drop(&mut self) {
        if let Some(t) = self.token.take() {
            self.handler.cancelled(t);
        }
    }
}

impl<H: Handler> Shared<H> {
    /// Hands a finished exchange to the metrics and the access log.
    fn finished(&self, ex: crate::exchange::Exchange) {
        self.stats.responses.observe(&ex);
        if let Some(log) = &self.access_log {
            log.push(ex);
        }
    }
}

/// Marks the connection idle again and the request finished once the response body is gone,
/// and hands the exchange to the metrics and the access log.
fn done_hook<H: Handler>(
    shared: &Arc<Shared<H>>,
    conn: &Arc<ConnState>,
    tracker: Tracker,
) -> response::OnDone {
    let shared = shared.clone();
    let conn = conn.clone();
    response::OnDone::new(tracker, move |tracker| {
        conn.idle_since_ms.store(shared.started.elapsed().as_millis() as u64, Ordering::Release);
        conn.finished.fetch_add(1, Ordering::AcqRel);
        conn.inflight.fetch_sub(1, Ordering::AcqRel);
        shared.stats.request_finished();
        shared.finished(tracker.finish());
    })
}

type ServiceFuture =
    Pin<Box<dyn Future<Output = Result<http::Response<ResponseBody>, std::convert::Infallible>> + Send>>;

impl<H: Handler> hyper::service::Service<http::Request<Incoming>> for Service<H> {
    type Response = http::Response<ResponseBody>;
    type Error = std::convert::Infallible;
    type Future = ServiceFuture;

    fn call(&self, req: http::Request<Incoming>) -> Self::Future {
        let shared = self.shared.clone();
        let remote = self.remote;
        self.socket.head_dispatched();
        if req.headers().contains_key(http::header::UPGRADE) {
            self.conn.no_park.store(true, Ordering::Relaxed);
        }
        self.conn.inflight.fetch_add(1, Ordering::AcqRel);
        shared.stats.request_started();
        let tracker = Tracker::new(req.method().clone(), req.uri().clone(), remote);
        let on_done = done_hook(&shared, &self.conn, tracker);
        let socket = self.socket.clone();
        Box::pin(async move {
            let mut res = respond(shared, remote, req, on_done, socket).await;
            let status = res.status();
            res.body_mut().responded(status);
            Ok(res)
        })
    }
}

async fn respond<H: Handler>(
    shared: Arc<Shared<H>>,
    remote: SocketAddr,
    mut req: http::Request<Incoming>,
    mut on_done: response::OnDone,
    socket: Arc<SocketState>,
) -> http::Response<ResponseBody> {
    let stats = &shared.stats;
    // A WebSocket upgrade: check the handshake before dispatch, keep hyper's upgrade handle.
    if let Err(why) = crate::validate::check_head(req.method(), req.uri(), req.version(), req.headers()) {
        stats.count(Rejection::BadRequest);
        let mut res = response::error(StatusCode::BAD_REQUEST, why);
        res.headers_mut().insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
        return with_done(res, on_done);
    }
    let upgrade = if crate::ws::is_upgrade_request(req.headers()) {
        match crate::ws::accept_key(req.version(), req.headers()) {
            Ok(key) => Some((key, crate::ws::extension_offers(req.headers()), hyper::upgrade::on(&mut req))),
            Err(why) => {
                stats.ws_rejected();
                stats.count(Rejection::BadRequest);
                let mut res = response::error(StatusCode::BAD_REQUEST, why);
                res.headers_mut().insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
                return with_done(res, on_done);
            }
        }
    } else {
        None
    };
    let (parts, body) = req.into_parts();
    let limits = &shared.config.limits;
    let early = |what: Rejection, res: http::Response<ResponseBody>| {
        stats.count(what);
        res
    };

    if parts.uri.path_and_query().map_or(0, |p| p.as_str().len()) > limits.max_url_length {
        return with_done(
            early(Rejection::UrlTooLong, response::error(StatusCode::URI_TOO_LONG, "URI Too Long")),
            on_done,
        );
    }
    let (route, params, settings) = match shared.router.find(&parts.method, parts.uri.path()) {
        RouteMatch::Found(Route::Handler(route, settings), params) => (route, params, settings),
        RouteMatch::Found(Route::Static(dir), params) => {
            // Static directories are answered here: the handler never sees these requests.
            let rel = params.into_iter().find(|(k, _)| k == crate::router::WILDCARD).map(|(_, v)| v);
            let cond = crate::files::Conditions::from_headers(&parts.headers);
            // Boxed: its state is the largest of this function's awaits, and every request's
            // future would otherwise be sized (allocated and moved) for it.
            let reply = Box::pin(crate::files::static_reply(
                dir.root.clone(),
                rel.unwrap_or_default(),
                cond,
                dir.options.clone(),
            ))
            .await;
            let mut res = response::build(reply, Some(on_done));
            let accept = parts.headers.get(http::header::ACCEPT_ENCODING);
            let head = parts.method == http::Method::HEAD;
            response::compress(&mut res, accept, shared.config.compression.as_ref(), head, None);
            return res;
        }
        RouteMatch::Found(Route::Metrics(route), _) => {
            let res = crate::metrics::reply(&route, &parts.headers, &shared.stats, &shared.budget);
            return with_done(res, on_done);
        }
        RouteMatch::NotFound => {
            return with_done(
                early(Rejection::NotFound, response::error(StatusCode::NOT_FOUND, "Not Found")),
                on_done,
            )
        }
        RouteMatch::MethodNotAllowed(allow) => {
            return with_done(
                early(Rejection::MethodNotAllowed, response::method_not_allowed(&allow)),
                on_done,
            )
        }
    };

    let route_options = settings.as_ref().map(|s| &s.options);
    if let Some(s) = &settings {
        // Admission for `max_streams`: counted until this exchange ends (the slot is held by
        // `on_done`), so a streaming route's open streams never exceed it.
        match s.options.max_streams {
            Some(max) if s.active.load(Ordering::Acquire) >= max => {
                let mut res = early(
                    Rejection::Unavailable,
                    response::error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "Service Unavailable: route at maxStreams",
                    ),
                );
                res.headers_mut().insert(http::header::RETRY_AFTER, http::HeaderValue::from_static("1"));
                shared.stats.route_full();
                return with_done(res, on_done);
            }
            Some(_) => on_done.hold(response::RouteSlot::take(s.clone())),
            None => {}
        }
    }
    socket.set_stall_limit(route_options.and_then(|o| o.stream_idle));
    let max_body_size = route_options.and_then(|o| o.max_body_size).unwrap_or(limits.max_body_size);
    let body_timeout = route_options.and_then(|o| o.body_timeout).unwrap_or(shared.config.timeouts.body);
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max_body_size) {
        let mut res = early(
            Rejection::BodyTooLarge,
            response::error(StatusCode::PAYLOAD_TOO_LARGE, crate::body::incoming::TOO_LARGE),
        );
        // The unread body is not worth reading: close after answering. The socket then lingers
        // (see `socket`), discarding what the client still sends, so it gets the 413, not a reset.
        res.headers_mut().insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
        return with_done(res, on_done);
    }
    let no_body = hyper::body::Body::is_end_stream(&body) || declared == Some(0);
    let streaming = StreamingBody::new(body, max_body_size, body_timeout, stats.clone());
    let body = if no_body {
        RequestBody::Full(bytes::Bytes::new())
    } else if declared.is_some_and(|n| n <= shared.config.prebuffer_body) {
        match streaming.read_all().await {
            Ok(b) => RequestBody::Full(b),
            Err(e) => {
                let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
                return with_done(response::error(status, e.message()), on_done);
            }
        }
    } else {
        RequestBody::Streaming(streaming)
    };

    let websocket = upgrade.is_some() && parts.method == http::Method::GET;
    let accept_encoding = parts.headers.get(http::header::ACCEPT_ENCODING).cloned();
    let head = parts.method == http::Method::HEAD;
    let request = Request {
        route,
        params,
        method: parts.method,
        uri: parts.uri,
        version: parts.version,
        headers: parts.headers,
        remote,
        body,
        websocket,
        options: settings.clone(),
    };
    let (responder, rx) = Responder::new();
    let token = shared.handler.handle(request, responder);
    let mut guard = CancelGuard { handler: shared.handler.clone(), token: Some(token) };
    let reply = rx.await;
    guard.token = None;
    match reply {
        Ok(mut reply) => {
            match std::mem::replace(&mut reply.body, crate::handler::ReplyBody::Full(bytes::Bytes::new())) {
                crate::handler::ReplyBody::WebSocket(accept) => {
                    let live_request = on_done.live_request();
                    upgrade_websocket(&shared, reply, accept, upgrade, on_done, socket, live_request)
                }
                mut body => {
                    if let crate::handler::ReplyBody::Topic(topic) = &mut body {
                        topic.go_live(&shared.live, on_done.live_request(), Arc::downgrade(&socket));
                    }
                    if let crate::handler::ReplyBody::Stream(ring) = &mut body {
                        ring.go_live(&shared.live, on_done.live_request(), Arc::downgrade(&socket));
                        ring.watch(&socket);
                        if let Some(lifetime) = settings.as_ref().and_then(|s| s.options.stream_lifetime) {
                            ring.expire_after(lifetime, Arc::downgrade(&socket), shared.stats.clone());
                        }
                    }
                    reply.body = body;
                    let mut res = response::build(reply, Some(on_done));
                    let config = shared.config.compression.as_ref();
                    let route_compress = settings.as_ref().and_then(|s| s.options.compress);
                    response::compress(&mut res, accept_encoding.as_ref(), config, head, route_compress);
                    res
                }
            }
        }
        Err(_) => {
            stats.count(Rejection::HandlerError);
            with_done(response::error(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error"), on_done)
        }
    }
}

fn with_done(res: http::Response<ResponseBody>, on_done: response::OnDone) -> http::Response<ResponseBody> {
    res.map(|b| b.with_done(on_done))
}

/// Answers an accepted upgrade with `101` and runs the socket on its own task once hyper hands the
/// connection over. The socket counts as an open connection (limits and graceful close).
fn upgrade_websocket<H: Handler>(
    shared: &Arc<Shared<H>>,
    reply: crate::handler::Reply,
    accept: crate::ws::WsAccept,
    upgrade: Option<(String, Vec<http::HeaderValue>, hyper::upgrade::OnUpgrade)>,
    on_done: response::OnDone,
    socket: Arc<SocketState>,
    live_request: LiveRequest,
) -> http::Response<ResponseBody> {
    let Some((key, offers, on_upgrade)) = upgrade else {
        shared.stats.ws_rejected();
        crate::ws::abandon(accept);
        return with_done(response::error(StatusCode::UPGRADE_REQUIRED, "Upgrade Required"), on_done);
    };
    // The exchange of a WebSocket lasts as long as the socket: its `on_done` goes with the socket
    // task, so the access log reports the upgrade once it closes, with the bytes it sent.
    let mut on_done = on_done;
    on_done.responded(StatusCode::SWITCHING_PROTOCOLS, true);
    let mut res = response::build(
        crate::handler::Reply { body: crate::handler::ReplyBody::Full(bytes::Bytes::new()), ..reply },
        None,
    );
    *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = res.headers_mut();
    h.insert(http::header::UPGRADE, http::HeaderValue::from_static("websocket"));
    h.insert(http::header::CONNECTION, http::HeaderValue::from_static("upgrade"));
    if let Ok(v) = http::HeaderValue::from_str(&key) {
        h.insert(http::header::SEC_WEBSOCKET_ACCEPT, v);
    }
    if let Some(Ok(v)) = accept.socket.session_id().map(|id| http::HeaderValue::from_str(&id)) {
        h.insert(http::HeaderName::from_static("x-catzilla-session"), v);
    }
    // Extensions are the server's to answer: a header set by the handler is replaced.
    h.remove(http::header::SEC_WEBSOCKET_EXTENSIONS);
    let agreed = crate::ws::extensions(&offers, accept.socket.config().compression.as_ref())
        .and_then(|a| http::HeaderValue::from_str(&a.header).ok().map(|v| (a, v)));
    // A resumed session's socket may have agreed otherwise on its previous connection.
    accept.socket.set_agreed(agreed.map(|(a, v)| {
        h.insert(http::header::SEC_WEBSOCKET_EXTENSIONS, v);
        a
    }));
    shared.open.fetch_add(1, Ordering::AcqRel);
    let shared = shared.clone();
    tokio::spawn(async move {
        let phase = shared.phase.subscribe();
        match on_upgrade.await {
            Ok(upgraded) => {
                let ws = accept.socket.clone();
                let _listed = ws.go_live(&shared.live, live_request);
                let draining = wait_phase(phase.clone(), |p| p != Phase::Running);
                let cut = wait_phase(phase, |p| p == Phase::Cut);
                let closed = tokio::select! {
                    () = crate::ws::run(TokioIo::new(upgraded), accept, draining) => true,
                    // A forced close drops the socket at once, without lingering.
                    () = cut => {
                        socket.abort_on_close();
                        false
                    }
                };
                on_done.ended(ws.sent_bytes(), closed);
            }
            Err(_) => crate::ws::abandon(accept),
        }
        drop(on_done);
        release(&shared);
    });
    res
}

/// Resolves once the server's phase satisfies `done` (or the server is gone).
async fn wait_phase(mut rx: watch::Receiver<Phase>, done: impl Fn(Phase) -> bool) {
    loop {
        if done(*rx.borrow_and_update()) || rx.changed().await.is_err() {
            return;
        }
    }
}
