//! The admin listener of `postern serve`: the token, the bound address line, and the API's
//! state built from the running server's parts.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use postern_admin::{AdminState, ListenerInfo};
use postern_config::{Config, ListenerMode, LogFormat};
use postern_metrics::Metrics;
use postern_smtp_in::Server;
use postern_transport::Transport;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::info;

/// Makes (or reads) the token and binds the listener, before any listener line is printed.
pub(crate) async fn open(config: &Config, address: SocketAddr) -> Result<(TcpListener, String)> {
    let token = postern_admin::token::load_or_create(&config.data_dir)?;
    let listener = postern_admin::bind(address).await?;
    let bound = listener.local_addr()?;
    let path = config.data_dir.join(postern_admin::ADDRESS_FILE);
    std::fs::write(&path, format!("{bound}\n"))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok((listener, token))
}

/// The admin listener's line on standard output, as the SMTP ones are written.
pub(crate) fn announce(out: &mut impl Write, format: LogFormat, address: SocketAddr) -> Result<()> {
    match format {
        LogFormat::Text => writeln!(out, "listening admin {address}")?,
        LogFormat::Json => writeln!(
            out,
            "{}",
            serde_json::json!({
                "message": "listening",
                "protocol": "admin",
                "address": address.to_string(),
                "port": address.port(),
            })
        )?,
    }
    info!(protocol = "admin", %address, port = address.port(), "listening");
    Ok(())
}

/// The parts of the running server the API reads and acts on.
pub(crate) struct Parts<'a> {
    pub(crate) config: &'a Config,
    pub(crate) smtp: &'a [(TcpListener, ListenerMode)],
    pub(crate) server: &'a Arc<Server>,
    pub(crate) transport: Arc<Transport>,
    pub(crate) metrics: Arc<Metrics>,
}

/// The API served until shutdown.
pub(crate) fn serve(
    listener: TcpListener,
    token: String,
    parts: Parts<'_>,
    shutdown: watch::Receiver<bool>,
) -> Result<impl Future<Output = ()> + Send + 'static> {
    let Parts {
        config,
        smtp,
        server,
        transport,
        metrics,
    } = parts;
    let mut state = AdminState::new(
        config.hostname.clone(),
        token,
        server.spool.clone(),
        transport,
    );
    for (l, mode) in smtp {
        state.listeners.push(ListenerInfo {
            protocol: "smtp",
            mode: Some(mode.as_str().to_owned()),
            address: l.local_addr().context("the SMTP listener's address")?,
        });
    }
    state.listeners.push(ListenerInfo {
        protocol: "admin",
        mode: None,
        address: listener
            .local_addr()
            .context("the admin listener's address")?,
    });
    let connections = server.connections.clone();
    state.connections = Some(Arc::new(move || connections.open()));
    state.host = Some(server.host.clone());
    let host = server.host.clone();
    state.reload = Some(Arc::new(move || {
        host.reload().map(|_| ()).map_err(|e| e.to_string())
    }));
    state.assets = Some(postern_dashboard::asset);
    state.assets_policy = Some(postern_dashboard::CONTENT_SECURITY_POLICY);
    state.metrics = Some(Arc::new(move |accept| metrics.exposition(accept)));
    let data_dir = config.data_dir.clone();
    state.trace = Some(Arc::new(move |id| crate::trace::load(&data_dir, id)));
    let state = Arc::new(state);
    Ok(async move {
        if let Err(e) = postern_admin::serve(listener, state, shutdown).await {
            tracing::error!("admin API stopped: {e}");
        }
    })
}
