//! One client connection's life: served by hyper while requests come, parked between them.
//!
//! A kept-alive connection that idles holds hyper's connection state and its two buffers (the
//! read buffer reserved at the first read, the write buffer allocated with the connection): about
//! 10 KiB each, which hyper offers no way to release. After [`PARK_AFTER`] without a request the
//! connection is parked instead: hyper is asked to let go of it (`graceful_shutdown` on an idle
//! hyper connection closes its state at once, and the socket's shutdown is skipped while parking),
//! everything but the socket is dropped, and the task waits for the socket to become readable.
//! Then a new hyper connection serves it, starting with any bytes the old one had read and not
//! parsed. While parked, the keep-alive limit and the head timer (which hyper also runs between
//! requests) still close it, and a drain closes it at once.

use http::StatusCode;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::{release, Phase, Service, Shared};
use crate::handler::Handler;
use crate::socket::{ConnIo, SocketState};
use crate::stats::Rejection;

/// How long a kept-alive connection idles between requests before it is parked (its hyper state
/// and buffers dropped). Short enough that idle clients cost little, long enough that a client
/// sending requests back to back never pays for a new hyper connection.
pub const PARK_AFTER: Duration = Duration::from_millis(250);

/// How often a connection with a response in flight looks again whether it went idle: a long
/// stream is parked at most this long after it ended.
const BUSY_RECHECK: Duration = Duration::from_secs(1);

/// "No limit" for a timer that must still be armed.
const FAR: Duration = Duration::from_secs(3600);

/// Per-connection state shared with its requests: in-flight count and last activity, for the
/// keep-alive idle timeout and parking.
pub(super) struct ConnState {
    pub(super) inflight: AtomicUsize,
    /// When the last response ended (before the first: when the connection was accepted), in ms
    /// since the server started.
    pub(super) idle_since_ms: AtomicU64,
    /// Responses ended on this connection.
    pub(super) finished: AtomicU64,
    /// A request asked for a protocol upgrade: hyper keeps that upgrade pending, and would hand
    /// the socket to it instead of giving it back when asked to let go, so this connection is
    /// never parked.
    pub(super) no_park: AtomicBool,
}

/// How a hyper connection ended.
enum Served<H: Handler> {
    /// The connection is over; the socket is closed or handed to a lingering close.
    Closed,
    /// hyper let go of an idle connection: the socket, the service, and bytes it read but did
    /// not parse.
    Idle(ConnIo, Service<H>, bytes::Bytes),
}

/// Serves one accepted connection until it closes, parking it whenever it idles.
pub(super) async fn connection<H: Handler>(stream: TcpStream, remote: SocketAddr, shared: Arc<Shared<H>>) {
    let opened = Instant::now();
    let accepted_ms = shared.started.elapsed().as_millis() as u64;
    let state = Arc::new(ConnState {
        inflight: AtomicUsize::new(0),
        idle_since_ms: AtomicU64::new(accepted_ms),
        finished: AtomicU64::new(0),
        no_park: AtomicBool::new(false),
    });
    let socket = SocketState::new(shared.started, shared.lingering.clone());
    let mut service = Service { shared: shared.clone(), remote, conn: state.clone(), socket: socket.clone() };
    let mut io = ConnIo::new(stream, socket.clone());
    let mut phase = shared.phase.subscribe();
    // `finished` when last parked: no second park until another response has ended (nor before
    // the first, so a silent new connection meets hyper's head timer as before).
    let mut parked_at = 0;
    loop {
        let ctx = ServeCtx { shared: &shared, state: &state, socket: &socket, remote, opened, parked_at };
        // Boxed: while parked, the task keeps no room for a serving connection's state.
        match Box::pin(serve(ctx, io, service, &mut phase)).await {
            Served::Closed => break,
            Served::Idle(back, svc, unparsed) => {
                io = back;
                service = svc;
                parked_at = state.finished.load(Ordering::Acquire);
                if !unparsed.is_empty() {
                    // Part of the next head had arrived: serve it now, no parking.
                    io.replay(unparsed);
                    continue;
                }
                shared.stats.connection_parked(true);
                let again = park(&shared, &mut io, &state, &socket, &mut phase).await;
                shared.stats.connection_parked(false);
                if !again {
                    break;
                }
            }
        }
    }
    shared.stats.connection_closed();
    release(&shared);
}

/// What [`serve`] needs besides the socket and the service.
struct ServeCtx<'a, H: Handler> {
    shared: &'a Arc<Shared<H>>,
    state: &'a ConnState,
    socket: &'a Arc<SocketState>,
    remote: SocketAddr,
    opened: Instant,
    parked_at: u64,
}

/// Serves requests with a new hyper connection until it closes or, idle, is let go to be parked.
async fn serve<H: Handler>(
    ctx: ServeCtx<'_, H>,
    io: ConnIo,
    service: Service<H>,
    phase: &mut watch::Receiver<Phase>,
) -> Served<H> {
    let ServeCtx { shared, state, socket, remote, opened, parked_at } = ctx;
    let cfg = &shared.config;
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(cfg.timeouts.headers)
        .keep_alive(true)
        .max_buf_size(cfg.limits.max_header_size.max(8192))
        .writev(true);
    if cfg.limits.max_headers != crate::config::DEFAULT_MAX_HEADERS {
        builder.max_headers(cfg.limits.max_headers);
    }
    // Boxed, so that a parked connection's task does not keep room for it.
    let mut conn = Box::new(builder.serve_connection(TokioIo::new(io), service).with_upgrades());
    let default_idle = cfg.timeouts.stream_idle;
    let stall_check = tokio::time::sleep(default_idle.unwrap_or(FAR));
    tokio::pin!(stall_check);
    let keep_alive = cfg.timeouts.keep_alive;
    let idle_check = tokio::time::sleep(PARK_AFTER.min(keep_alive.unwrap_or(FAR)));
    tokio::pin!(idle_check);
    let mut draining = false;
    // `Some(finished)` once hyper was asked to let go of the connection to park it.
    let mut parking: Option<u64> = None;
    // The keep-alive limit runs from the last response, or from now if later (a parked
    // connection woken by a request that is still arriving).
    let serve_start = shared.started.elapsed().as_millis() as u64;
    if *phase.borrow_and_update() != Phase::Running {
        Pin::new(&mut *conn).graceful_shutdown();
        draining = true;
    }
    let res = loop {
        tokio::select! {
            res = Pin::new(&mut *conn) => break res,
            changed = phase.changed() => {
                let p = if changed.is_ok() { *phase.borrow_and_update() } else { Phase::Cut };
                match p {
                    Phase::Cut => {
                        socket.abort_on_close();
                        socket.set_parking(false);
                        return Served::Closed;
                    }
                    Phase::Draining if !draining => {
                        draining = true;
                        socket.set_parking(false);
                        Pin::new(&mut *conn).graceful_shutdown();
                    }
                    _ => {}
                }
            }
            () = socket.cut_requested() => {
                // `app.closeStream` or a stream's lifetime: the state says to close at once.
                return Served::Closed;
            }
            () = socket.stall_limit_changed() => {
                // A route with its own `streamIdle`: check against it from now on.
                let limit = socket.stall_limit(default_idle).unwrap_or(FAR);
                stall_check.as_mut().reset(tokio::time::Instant::now() + limit.max(Duration::from_millis(50)));
            }
            _ = &mut stall_check => {
                let Some(limit) = socket.stall_limit(default_idle) else {
                    stall_check.as_mut().reset(tokio::time::Instant::now() + FAR);
                    continue;
                };
                let blocked = Duration::from_millis(socket.blocked_for_ms());
                if blocked >= limit {
                    // The client stopped reading: free its buffers and tell the producer.
                    shared.stats.stalled();
                    socket.abort_on_close();
                    return Served::Closed;
                }
                let wait = if blocked.is_zero() { limit } else { limit - blocked };
                stall_check.as_mut().reset(tokio::time::Instant::now() + wait.max(Duration::from_millis(50)));
            }
            _ = &mut idle_check, if !draining && parking.is_none() => {
                let now = shared.started.elapsed().as_millis() as u64;
                let idle_since = state.idle_since_ms.load(Ordering::Acquire);
                let idle_for = Duration::from_millis(now.saturating_sub(idle_since));
                let ka_for = Duration::from_millis(now.saturating_sub(idle_since.max(serve_start)));
                let idle = state.inflight.load(Ordering::Acquire) == 0;
                let finished = state.finished.load(Ordering::Acquire);
                let may_park = idle && finished != parked_at && !state.no_park.load(Ordering::Acquire);
                // Everything written (a blocked write means bytes still wait: hyper's, or the
                // unsent end the socket copied out) and no byte of a next request read: hyper is
                // idle.
                let quiet = !socket.is_blocked() && !socket.head_pending();
                if idle && keep_alive.is_some_and(|ka| ka_for >= ka) {
                    draining = true;
                    Pin::new(&mut *conn).graceful_shutdown();
                } else if may_park && quiet && idle_for >= PARK_AFTER {
                    parking = Some(finished);
                    socket.set_parking(true);
                    Pin::new(&mut *conn).graceful_shutdown();
                    // An idle hyper connection lets go on this very poll. One that is not idle
                    // after all (a request body still being read) only turned keep-alive off:
                    // then it must close as hyper decided, never be parked with a body's bytes
                    // still to come on the socket.
                    let polled = std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *conn).poll(cx))).await;
                    match polled {
                        Poll::Ready(res) => break res,
                        Poll::Pending => {
                            parking = None;
                            socket.set_parking(false);
                            draining = true;
                        }
                    }
                } else {
                    let wait = next_idle_check(idle, may_park && quiet, idle_for, ka_for, keep_alive);
                    idle_check.as_mut().reset(tokio::time::Instant::now() + wait);
                }
            }
        }
    };
    socket.set_parking(false);
    match res {
        Ok(()) => {
            let Some(finished) = parking else { return Served::Closed };
            // An upgraded connection has no parts left; it was not idle.
            let Some(parts) = conn.into_parts() else { return Served::Closed };
            let mut io = parts.io.into_inner();
            if state.finished.load(Ordering::Acquire) != finished
                || state.inflight.load(Ordering::Acquire) != 0
            {
                // A request slipped in: hyper answered it as the last one (`connection: close`),
                // so close as it would have.
                let _ = io.shutdown().await;
                return Served::Closed;
            }
            Served::Idle(io, parts.service, parts.read_buf)
        }
        Err(e) => {
            // Answers given before a head was parsed: counted, and logged with `-`.
            let unparsed = |status| crate::exchange::Exchange::unparsed(remote, status, opened);
            if e.is_parse_too_large() {
                shared.stats.count(Rejection::HeadersTooLarge);
                shared.finished(unparsed(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE));
            } else if e.is_parse() {
                shared.stats.count(Rejection::BadRequest);
                shared.finished(unparsed(StatusCode::BAD_REQUEST));
            } else if e.is_timeout() && socket.head_pending() {
                // hyper closes a head that timed out silently; part of a request arrived,
                // so the client is owed an answer.
                shared.stats.count(Rejection::HeaderTimeout);
                socket.answer_on_close(request_timeout());
                shared.finished(unparsed(StatusCode::REQUEST_TIMEOUT));
            }
            // Dropping `conn` hands the socket to a lingering close (see `socket`).
            Served::Closed
        }
    }
}

/// When to look again whether a connection went idle, given that it is not to be closed or
/// parked now: `idle` (no response in flight), `may_park` (idle, not parked since its last
/// response, nothing unwritten and no next request arriving), `idle_for` (since its last
/// response ended), `ka_for` (what counts against the keep-alive limit).
fn next_idle_check(
    idle: bool,
    may_park: bool,
    idle_for: Duration,
    ka_for: Duration,
    keep_alive: Option<Duration>,
) -> Duration {
    let to_ka = keep_alive.map_or(FAR, |ka| ka.saturating_sub(ka_for));
    let wait = if !idle {
        // A response in flight: its end restarts the idle clock, so neither limit can come
        // sooner than a full period from now.
        keep_alive.unwrap_or(FAR).min(BUSY_RECHECK)
    } else if may_park {
        PARK_AFTER.saturating_sub(idle_for).min(to_ka)
    } else if idle_for >= PARK_AFTER {
        // Could park but for a blocked write or a request arriving: look again later, not
        // every 50 ms.
        to_ka.min(BUSY_RECHECK)
    } else {
        to_ka.min(PARK_AFTER.saturating_sub(idle_for))
    };
    wait.max(Duration::from_millis(50))
}

/// Waits, holding only the socket, until the parked connection has input (`true`: serve it
/// again) or must close (`false`: the keep-alive limit or the head timer ran out, or the server
/// drains or cuts).
async fn park<H: Handler>(
    shared: &Shared<H>,
    io: &mut ConnIo,
    state: &ConnState,
    socket: &SocketState,
    phase: &mut watch::Receiver<Phase>,
) -> bool {
    let timeouts = &shared.config.timeouts;
    let idle_since = Duration::from_millis(state.idle_since_ms.load(Ordering::Acquire));
    let limit = [timeouts.keep_alive, timeouts.headers].into_iter().flatten().min().unwrap_or(FAR);
    let deadline = tokio::time::Instant::from_std(shared.started + idle_since + limit);
    let expired = tokio::time::sleep_until(deadline);
    tokio::pin!(expired);
    loop {
        if *phase.borrow_and_update() != Phase::Running {
            if *phase.borrow() == Phase::Cut {
                socket.abort_on_close();
            } else {
                let _ = io.shutdown().await;
            }
            return false;
        }
        tokio::select! {
            r = io.readable() => return r.is_ok(),
            () = &mut expired => {
                let _ = io.shutdown().await;
                return false;
            }
            changed = phase.changed() => {
                if changed.is_err() {
                    socket.abort_on_close();
                    return false;
                }
            }
        }
    }
}

/// The `408` written to a client whose request head did not arrive within `timeouts.headers`.
fn request_timeout() -> bytes::Bytes {
    let body = "Request Timeout: the request head was not received within timeouts.headers";
    bytes::Bytes::from(format!(
        "HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KA: Option<Duration> = Some(Duration::from_secs(5));
    const LONG_AGO: Duration = Duration::from_secs(3600);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// The idle clock of a connection runs from its last response (from the server's start before
    /// the first). Measured that way, a stream running longer than the keep-alive limit woke its
    /// connection every 50 ms for as long as it lasted: 1,000 quiet SSE streams cost 23–26 CPU
    /// ticks per 5 s instead of 4.
    #[test]
    fn regression_a_response_in_flight_is_looked_at_again_after_a_period_not_every_50_ms() {
        assert_eq!(next_idle_check(false, false, LONG_AGO, LONG_AGO, KA), BUSY_RECHECK);
        assert_eq!(next_idle_check(false, true, LONG_AGO, LONG_AGO, None), BUSY_RECHECK);
        assert_eq!(next_idle_check(false, false, LONG_AGO, LONG_AGO, Some(ms(300))), ms(300));
    }

    /// A connection that could park but for a write its client has not taken yet looked again
    /// every 50 ms until the keep-alive limit.
    #[test]
    fn regression_a_connection_kept_from_parking_by_a_blocked_write_is_not_looked_at_every_50_ms() {
        assert_eq!(next_idle_check(true, false, ms(400), ms(400), KA), BUSY_RECHECK);
        assert_eq!(next_idle_check(true, false, ms(400), ms(400), None), BUSY_RECHECK);
        assert_eq!(next_idle_check(true, false, ms(4900), ms(4900), KA), ms(100), "the limit first");
    }

    #[test]
    fn an_idle_connection_is_looked_at_again_when_it_may_be_parked_or_must_close() {
        assert_eq!(next_idle_check(true, true, ms(100), ms(100), KA), PARK_AFTER - ms(100));
        assert_eq!(
            next_idle_check(true, true, ms(100), ms(100), Some(ms(200))),
            ms(100),
            "the keep-alive limit first"
        );
        assert_eq!(
            next_idle_check(true, false, ms(100), ms(100), KA),
            PARK_AFTER - ms(100),
            "a new connection"
        );
        assert_eq!(next_idle_check(true, true, ms(249), ms(249), KA), ms(50), "never sooner than 50 ms");
        // Woken from parking 4.9 s after its last response: the limit runs from the wake-up.
        assert_eq!(next_idle_check(true, false, ms(4900), ms(100), KA), BUSY_RECHECK);
    }
}
