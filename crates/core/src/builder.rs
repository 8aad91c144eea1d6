//! The server builder: one place that owns a server's shared state (stats, the stream budget,
//! topics) and every route kind (handler routes, static directories answered in Rust, WebSocket
//! settings, metrics, the access log), and serves them. The Node binding and the standalone binary both start from it.

use http::Method;
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::access::AccessLog;
use crate::body::budget::StreamBudget;
use crate::cluster::{Cluster, RedisConfig};
use crate::config::{RouteOptions, RouteSettings, ServerConfig};
use crate::files::StaticOptions;
use crate::handler::Handler;
use crate::live::Live;
use crate::router::{RouteError, Router};
use crate::server::ServerHandle;
use crate::stats::Stats;
use crate::topics::{TopicConfig, Topics};
use crate::ws::{Sessions, WsConfig};

/// Default bytes all disconnected WebSocket sessions may hold queued together.
pub const OFFLINE_MEMORY: usize = 64 << 20;

/// What a matched route does.
#[derive(Debug, Clone)]
pub enum Route {
    /// Hand the request to the [`Handler`] with this route id, under the route's own options.
    Handler(u32, Option<Arc<RouteSettings>>),
    /// Serve files from a directory in Rust; the handler never sees these requests.
    Static(Arc<StaticDir>),
    /// Serve the Prometheus metrics in Rust, behind an optional `Authorization` check.
    Metrics(Arc<MetricsRoute>),
}

/// The settings of a metrics route.
#[derive(Debug)]
pub struct MetricsRoute {
    /// The exact `Authorization` header value required (`Bearer …` or `Basic …`); `None`: open.
    pub authorization: Option<String>,
}

/// A directory served by a static route.
#[derive(Debug)]
pub struct StaticDir {
    /// The resolved directory.
    pub root: Arc<PathBuf>,
    /// Index file, dotfiles and cache settings.
    pub options: Arc<StaticOptions>,
}

impl StaticDir {
    /// Resolves `dir` now; an error when it is not an existing directory.
    pub fn new(dir: &Path, options: StaticOptions) -> io::Result<Self> {
        let root = dir.canonicalize()?;
        if !root.is_dir() {
            return Err(io::Error::new(io::ErrorKind::NotADirectory, "not a directory"));
        }
        Ok(Self { root: Arc::new(root), options: Arc::new(options) })
    }
}

/// Collects routes and settings, then serves them. Cloning shares the state (stats, budget,
/// topics) and copies the routes.
#[derive(Clone)]
pub struct ServerBuilder {
    config: ServerConfig,
    router: Router<Route>,
    stats: Arc<Stats>,
    budget: Arc<StreamBudget>,
    topics: Arc<Topics>,
    sessions: Arc<Sessions>,
    websockets: HashMap<u32, WsConfig>,
    access_log: Option<Arc<AccessLog>>,
    live: Arc<Live>,
    redis: Option<RedisConfig>,
}

impl ServerBuilder {
    /// A builder with the shared state of one server. `max_stream_memory` bounds all stream rings
    /// together (0: unbounded).
    pub fn new(config: ServerConfig, topics: TopicConfig, max_stream_memory: usize) -> Self {
        let stats = Arc::new(Stats::default());
        Self {
            config,
            router: Router::new(),
            topics: Topics::new(topics, stats.clone()),
            sessions: Sessions::new(OFFLINE_MEMORY, stats.clone()),
            budget: StreamBudget::new(max_stream_memory),
            stats,
            websockets: HashMap::new(),
            access_log: None,
            live: Live::new(),
            redis: None,
        }
    }

    /// Spans topics across processes through Redis (see [`crate::cluster`]); the adapter starts
    /// with `serve`.
    pub fn redis(&mut self, config: RedisConfig) {
        self.redis = Some(config);
    }

    /// The live streams and WebSockets of this server (`app.streams()`).
    pub fn live(&self) -> &Arc<Live> {
        &self.live
    }

    /// The server configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// The server's counters.
    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// The budget shared by all stream rings.
    pub fn budget(&self) -> &Arc<StreamBudget> {
        &self.budget
    }

    /// The server's topics (publish, subscriptions, history).
    pub fn topics(&self) -> &Arc<Topics> {
        &self.topics
    }

    /// The WebSocket sessions of routes with `resume` (resume, `sendTo`, the offline budget).
    pub fn sessions(&self) -> &Arc<Sessions> {
        &self.sessions
    }

    /// Routes `method` (`None`: every method) and `pattern` to the handler with route id `id`.
    pub fn route(&mut self, method: Option<Method>, pattern: &str, id: u32) -> Result<(), RouteError> {
        self.router.add(method, pattern, Route::Handler(id, None))
    }

    /// Adds a handler route with options that replace the server's for its requests.
    pub fn route_with(
        &mut self,
        method: Option<Method>,
        pattern: &str,
        id: u32,
        options: RouteOptions,
    ) -> Result<(), RouteError> {
        self.router.add(method, pattern, Route::Handler(id, Some(Arc::new(RouteSettings::new(options)))))
    }

    /// Sends requests no route matches to the handler with route id `id` (a not-found handler).
    pub fn not_found(&mut self, id: u32) {
        self.router.set_fallback(Route::Handler(id, None));
    }

    /// Serves `dir` at `prefix/` (its index) and `prefix/*`, in Rust.
    pub fn static_dir(&mut self, prefix: &str, dir: StaticDir) -> Result<(), RouteError> {
        let base = prefix.strip_suffix('/').unwrap_or(prefix);
        let dir = Arc::new(dir);
        self.router.add(Some(Method::GET), &format!("{base}/"), Route::Static(dir.clone()))?;
        self.router.add(Some(Method::GET), &format!("{base}/*"), Route::Static(dir))
    }

    /// Settings of the WebSockets accepted on route `id`.
    pub fn websocket(&mut self, id: u32, config: WsConfig) {
        self.websockets.insert(id, config);
    }

    /// The WebSocket settings of route `id` (the defaults when none were set).
    pub fn ws_config(&self, id: u32) -> WsConfig {
        self.websockets.get(&id).cloned().unwrap_or_default()
    }

    /// Serves the Prometheus text exposition of this server's metrics at `path` (GET), answered
    /// in Rust; with `authorization`, only requests carrying exactly that `Authorization` value
    /// get it (others get `401`).
    pub fn metrics(&mut self, path: &str, authorization: Option<String>) -> Result<(), RouteError> {
        self.router.add(Some(Method::GET), path, Route::Metrics(Arc::new(MetricsRoute { authorization })))
    }

    /// Sends every finished exchange (responses the core answers itself included) to `log`.
    pub fn access_log(&mut self, log: Arc<AccessLog>) {
        self.access_log = Some(log);
    }

    /// Binds `addr` and serves the routes with `handler` on the current tokio runtime; with
    /// [`ServerBuilder::redis`], starts the Redis adapter too (it connects in the background).
    pub async fn serve<H: Handler>(&self, addr: SocketAddr, handler: Arc<H>) -> io::Result<ServerHandle> {
        let cluster = match &self.redis {
            Some(c) if self.topics.cluster().is_none() => {
                let cluster = Cluster::start(c.clone(), &self.topics, &self.sessions, self.stats.clone())
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("redis: {e}")))?;
                self.topics.attach_cluster(Some(cluster.clone()));
                self.sessions.attach_cluster(Some(cluster.clone()));
                Some(cluster)
            }
            _ => None,
        };
        let parts = crate::server::Parts {
            config: self.config.clone(),
            router: self.router.clone(),
            stats: self.stats.clone(),
            budget: self.budget.clone(),
            access_log: self.access_log.clone(),
            live: self.live.clone(),
        };
        match crate::server::serve(addr, parts, handler).await {
            Ok(mut handle) => {
                handle.cluster = cluster;
                Ok(handle)
            }
            Err(e) => {
                // A later `serve` (another port) starts a fresh adapter.
                if let Some(c) = cluster {
                    c.stop();
                    self.topics.attach_cluster(None);
                    self.sessions.attach_cluster(None);
                }
                Err(e)
            }
        }
    }
}
