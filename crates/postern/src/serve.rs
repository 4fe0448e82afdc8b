//! `postern serve`: recover the queue, start the transport, open the listeners, and on SIGTERM
//! or SIGINT stop accepting, let transactions in flight finish, and keep the queue.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use postern_config::{LogFormat, Overrides};
use postern_mailmsg::QueueIdGenerator;
use postern_queue::Spool;
use postern_sink_host::Host;
use postern_smtp_in::Server;
use postern_transport::Transport;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, watch};
use tracing::info;

use crate::cli::ServeArgs;
use crate::setup;

/// How often a running server looks for a changed binding registry.
const REGISTRY_POLL: Duration = Duration::from_millis(500);

pub(crate) fn run(args: ServeArgs) -> Result<ExitCode> {
    let overrides = Overrides {
        data_dir: None,
        listen: args.listen.clone(),
        hostname: args.hostname.clone(),
        admin: args.admin_listen.map(|a| a.0),
    };
    let config = match setup::config(None, &args.common, overrides) {
        Ok(config) => config,
        Err(errors) => {
            eprintln!("postern serve: {errors}");
            return Ok(ExitCode::from(2));
        }
    };
    let _log_writer = match setup::logging(&config, args.log_level.as_deref()) {
        Ok(guard) => guard,
        Err(why) => {
            eprintln!("postern serve: {why}");
            return Ok(ExitCode::from(2));
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(Arc::new(config)))?;
    // Sinks still running on blocking threads (a hung one, say) must not hold up the exit.
    runtime.shutdown_timeout(Duration::from_millis(200));
    Ok(ExitCode::SUCCESS)
}

async fn serve(config: Arc<postern_config::Config>) -> Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating the data folder {}", config.data_dir.display()))?;
    let host = Arc::new(
        Host::load(&config.bindings_file, setup::serving_catalog(&config))
            .context("loading the binding registry")?,
    );
    {
        let snapshot = host.snapshot();
        info!(
            path = %config.bindings_file.display(),
            bindings = snapshot.bound().len(),
            disabled = snapshot.disabled().len(),
            "binding registry loaded"
        );
    }
    let _watcher = host.watch(REGISTRY_POLL);
    let decisions = Arc::new(
        postern_sink_host::DecisionLog::open(
            &config.data_dir,
            config.log.decisions_max_size,
            config.log.decisions_keep,
        )
        .with_context(|| {
            format!(
                "opening the decision log in {}",
                config.data_dir.join("log").display()
            )
        })?,
    );
    host.record_decisions_into(decisions.clone());
    // One set of metrics for the whole server; the admin listener serves `metrics.encode()`.
    let metrics = Arc::new(postern_metrics::Metrics::new());
    metrics.watch_bindings(host.clone());

    // Recovery runs before any listener opens: every accepted message is back in the queue.
    let (spool, recovered) = Spool::open(
        &config.data_dir.join("queue"),
        setup::spool_options(&config),
    )
    .await
    .context("opening the queue")?;
    info!(messages = recovered.live.len(), "queue recovered");
    metrics.watch_spool(spool.clone());
    {
        let spool = spool.clone();
        metrics.watch_queue(move || {
            let [queued, deferred, held] = spool.count_by_state().map(|n| n as u64);
            postern_metrics::QueueCounts {
                queued,
                deferred,
                held,
            }
        });
    }
    if !recovered.damage.is_empty() {
        // The spool logged each range and each lost message; this says where to look.
        tracing::error!(
            damaged = recovered.damage.len(),
            lost = recovered.lost().len(),
            kept = %config.data_dir.join("queue").join("damaged").display(),
            "the queue was damaged: started with every intact message; see `postern queue check`"
        );
    }

    let (stop, shutdown) = watch::channel(false);
    let (inbox, intake) = mpsc::channel(postern_transport::INBOX_CAPACITY);
    let node = node_id(&config.hostname);
    let ids = Arc::new(QueueIdGenerator::new(node));
    let transport = Transport::new(config.clone(), host.clone(), spool.clone(), ids.clone())
        .context("starting the transport")?;
    transport.count_into(metrics.clone());
    let transport_task = tokio::spawn(transport.clone().run(
        intake,
        recovered.live,
        shutdown.clone(),
    ));
    let pickup = postern_transport::Pickup::new(&config, spool.clone(), ids.clone(), inbox.clone());
    let pickup_task = tokio::spawn(pickup.run(postern_transport::PICKUP_POLL, shutdown.clone()));

    // Before the listening line: a SIGTERM sent as soon as it is read must close the queue.
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    // Before any listener opens: a certificate that cannot be had stops the start.
    let tls = Arc::new(postern_smtp_in::Tls::load(&config).context("loading the TLS certificate")?);
    let addresses: Vec<_> = config.listeners.iter().map(|l| l.address).collect();
    let listeners = postern_smtp_in::bind(&addresses).await?;
    let admin = match config.admin.address {
        Some(address) => Some(crate::admin::open(&config, address).await?),
        None => None,
    };
    {
        // The bound addresses go to standard output (port 0 picks a free port), one a line, in
        // the log's format so that a JSON log reader can take standard output too.
        let mut out = std::io::stdout().lock();
        for (listener, spec) in listeners.iter().zip(&config.listeners) {
            let address = listener.local_addr()?;
            let mode = spec.mode.as_str();
            match config.log.format {
                LogFormat::Text => writeln!(out, "listening {mode} {address}")?,
                LogFormat::Json => writeln!(
                    out,
                    "{}",
                    serde_json::json!({
                        "message": "listening",
                        "protocol": "smtp",
                        "mode": mode,
                        "address": address.to_string(),
                        "port": address.port(),
                    })
                )?,
            }
            info!(protocol = "smtp", mode, %address, port = address.port(), "listening");
        }
        if let Some((listener, _)) = &admin {
            crate::admin::announce(&mut out, config.log.format, listener.local_addr()?)?;
        }
        out.flush()?;
    }
    let server = Arc::new(
        Server::new(config.clone(), host, spool.clone(), ids, shutdown, inbox)
            .with_tls(tls)
            .with_metrics(metrics.clone()),
    );
    info!(hostname = %config.hostname, data_dir = %config.data_dir.display(), "postern started");
    let listeners: Vec<_> = listeners
        .into_iter()
        .zip(config.listeners.iter().map(|l| l.mode))
        .collect();
    let admin_task = match admin {
        Some((listener, token)) => Some(tokio::spawn(crate::admin::serve(
            listener,
            token,
            crate::admin::Parts {
                config: &config,
                smtp: &listeners,
                server: &server,
                transport: transport.clone(),
                metrics: metrics.clone(),
            },
            stop.subscribe(),
        )?)),
        None => None,
    };
    let serving = tokio::spawn(postern_smtp_in::serve(server, listeners));

    tokio::select! {
        _ = term.recv() => info!("SIGTERM: shutting down"),
        _ = int.recv() => info!("SIGINT: shutting down"),
    }
    let _ = stop.send(true);
    let _ = serving.await;
    if let Some(task) = admin_task {
        let _ = task.await;
    }
    let _ = pickup_task.await;
    let _ = transport_task.await;
    // Sessions and passes are over: what the bindings decided is in the file before exit.
    decisions.flush().await;
    let stats = spool.stats();
    info!(
        records = stats.records,
        syncs = stats.syncs,
        batches = stats.batches,
        live = stats.live,
        "queue closing"
    );
    spool.close().await.context("closing the queue")?;
    info!("postern stopped; the queue is kept");
    Ok(())
}

/// The node part of queue ids, from the host name (stable across restarts).
fn node_id(hostname: &str) -> u16 {
    // FNV-1a, folded to 16 bits.
    let mut hash: u32 = 0x811C_9DC5;
    for b in hostname.bytes() {
        hash = (hash ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    ((hash >> 16) ^ hash) as u16
}
