//! `postern-admin`: the admin API — JSON over HTTP on its own listener, every `/v1/` request
//! authorized by the bearer token in `DATA/admin.token`.
//!
//! # Layout
//! - this file: [`AdminState`] (what the handlers need, and the hooks `postern serve` sets),
//!   [`router`] and [`serve`].
//! - `token`: the token file, made on first start.
//! - `auth`: the bearer check in front of every `/v1/` route.
//! - `reload`: `POST /v1/reload`.
//! - `body`: the JSON body parser (1 MiB cap, unknown fields refused, errors as JSON).
//! - `status`: `GET /v1/status`.
//! - `bindings`: `/v1/bindings…`, the registry edited as `postern binding` edits it.
//! - `queue`: `GET /v1/queue`, `GET /v1/queue/{id}` and the actions on a message.
//! - `assets`: the non-`/v1` paths (`/metrics`, the dashboard's files).
//! - `error`: [`AdminError`] (start-up) and [`ApiError`] (one refused request).
//!
//! # Design
//! The wire format is the contract in `docs/operations.md`, written as its own `serde_json`
//! values here rather than by serializing domain types, so renaming an internal field never
//! changes the API. A handler validates everything before it changes anything: a refused
//! request changes nothing. What lives in other crates (metrics, traces, the dashboard's
//! files, the actions of the transport) comes in through hooks, so this crate depends only on
//! the transport, the queue and the message below them.

mod assets;
mod auth;
mod bindings;
mod body;
mod error;
mod queue;
mod reload;
mod status;
pub mod token;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::routing::{get, post};
use postern_queue::Spool;
use postern_sink_host::Host;
use postern_transport::Transport;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use error::{AdminError, ApiError};
pub use queue::{Filter, detail, summary};

/// Where `postern serve` writes the admin listener's bound address, in the data folder, for
/// the command line to find it (the configured port may be 0).
pub const ADDRESS_FILE: &str = "admin.address";

/// The largest request body accepted (larger ones get 413).
pub const MAX_BODY: usize = 1 << 20;

/// A listener shown by `GET /v1/status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerInfo {
    /// `smtp` or `admin`.
    pub protocol: &'static str,
    /// The SMTP listener's mode (`mx`, `submission`, …); `None` for the admin listener.
    pub mode: Option<String>,
    /// The bound address.
    pub address: SocketAddr,
}

/// Serves `/metrics`: the exposition text.
pub type MetricsHook = Arc<dyn Fn() -> String + Send + Sync>;
/// Serves `/v1/queue/{id}/trace`: the trace of a queue id, `None` when unknown.
pub type TraceHook = Arc<dyn Fn(&str) -> Option<serde_json::Value> + Send + Sync>;
/// Serves the dashboard: a path (`index.html` for `/`) to its content type and bytes.
pub type AssetsHook = fn(&str) -> Option<(&'static str, &'static [u8])>;
/// Re-reads the binding registry; the error says why it did not load.
pub type ReloadHook = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;
/// Counts the open SMTP connections.
pub type ConnectionsHook = Arc<dyn Fn() -> usize + Send + Sync>;

/// What the handlers need. Built by `postern serve`, shared by every request.
pub struct AdminState {
    /// The server's version, as `postern --version` prints it.
    pub version: &'static str,
    /// The server's host name.
    pub hostname: String,
    /// When the server started, for the uptime.
    pub started: Instant,
    /// The listeners, SMTP then admin.
    pub listeners: Vec<ListenerInfo>,
    /// The bearer token every `/v1/` request must carry.
    pub token: String,
    /// The durable queue, for listings and message detail.
    pub spool: Spool,
    /// Open SMTP connections.
    pub connections: Option<ConnectionsHook>,
    /// Retry, hold, release, bounce and delete of a live message.
    pub transport: Arc<Transport>,
    /// The binding registry in force, for `/v1/bindings`.
    pub host: Option<Arc<Host>>,
    /// `POST /v1/reload`.
    pub reload: Option<ReloadHook>,
    /// `GET /metrics`; 404 when `None`.
    pub metrics: Option<MetricsHook>,
    /// `GET /v1/queue/{id}/trace`; 404 when `None` or when it answers `None`.
    pub trace: Option<TraceHook>,
    /// `GET /` and other non-`/v1` paths; 404 when `None`.
    pub assets: Option<AssetsHook>,
}

impl AdminState {
    /// A state with the required parts and no hooks.
    pub fn new(hostname: String, token: String, spool: Spool, transport: Arc<Transport>) -> Self {
        Self {
            version: env!("CARGO_PKG_VERSION"),
            hostname,
            started: Instant::now(),
            listeners: Vec::new(),
            token,
            spool,
            connections: None,
            transport,
            host: None,
            reload: None,
            metrics: None,
            trace: None,
            assets: None,
        }
    }
}

/// The API's routes over `state`.
pub fn router(state: Arc<AdminState>) -> Router {
    let v1 = Router::new()
        .route("/status", get(status::status))
        .route("/queue", get(queue::list))
        .route("/reload", post(reload::reload))
        .route("/bindings", get(bindings::list).post(bindings::create))
        .route(
            "/bindings/{key}",
            get(bindings::show)
                .patch(bindings::patch)
                .delete(bindings::delete),
        )
        .route("/queue/{id}", get(queue::show).delete(queue::delete))
        .route("/queue/{id}/trace", get(queue::trace))
        .route("/queue/{id}/{action}", post(queue::act))
        .fallback(assets::v1_unknown)
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    Router::new()
        .nest("/v1", v1)
        .route("/metrics", get(assets::metrics))
        .fallback(assets::static_file)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// Binds the admin listener (port 0 picks a free port); the bound address is the listener's.
pub async fn bind(address: SocketAddr) -> Result<TcpListener, AdminError> {
    TcpListener::bind(address)
        .await
        .map_err(|source| AdminError::Bind { address, source })
}

/// Serves the API on `listener` until `shutdown` becomes `true`.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AdminState>,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        })
        .await
}
