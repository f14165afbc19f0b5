//! `granary serve`: opens the data directory, listens, and shuts down gracefully on SIGTERM
//! and Ctrl-C: requests and refreshes in flight finish within the shutdown grace period.

use std::future::Future;
use std::time::Duration;

use granary_flow::engine::RefresherConfig;
use secrecy::ExposeSecret as _;
use tokio::net::TcpListener;

use crate::api_keys::ApiKeys;
use crate::app::AppState;
use crate::secrets::{AdminTokenSource, admin_token, ensure_dir};
use crate::settings::Settings;
use crate::{Error, Result, open, routes};

/// Runs the server until SIGTERM or Ctrl-C.
pub async fn run(settings: Settings) -> Result<()> {
    ensure_dir(&settings.data_dir)?;
    if let Some(warning) = open::data_dir_warning(&settings.data_dir) {
        tracing::warn!("{warning}");
    }
    // The CLI on this data directory prints links under this URL (see
    // `Settings::with_recorded_public_url`).
    if let Err(error) = crate::settings::record_public_url(&settings.data_dir, &settings.public_url)
    {
        tracing::warn!(%error, "cannot record the public URL for the CLI");
    }
    let (token, source) = admin_token(&settings.data_dir, settings.admin_token.clone())?;
    let engine = open::engine(&settings).await?;
    // The redirect URI follows the public URL: instances last authorized under another one
    // need the current URI registered at their provider before their next authorization.
    match engine.instances_registered_elsewhere().await {
        Ok(moved) if !moved.is_empty() => {
            let list = moved
                .iter()
                .map(|(id, uri)| format!("{id} (was {uri})"))
                .collect::<Vec<_>>()
                .join(", ");
            tracing::warn!(
                redirect_uri = %engine.redirect_uri(),
                instances = %list,
                "the public URL changed since these instances were authorized: register the new redirect URI at their providers before their next authorization"
            );
        }
        Ok(_) => {}
        Err(error) => tracing::warn!(%error, "cannot list the instances' redirect URIs"),
    }
    let api_keys = ApiKeys::open(std::sync::Arc::clone(engine.store())).await?;
    let listener = TcpListener::bind(settings.listen)
        .await
        .map_err(|e| Error::io(format!("cannot listen on {}", settings.listen), e))?;
    let address = listener
        .local_addr()
        .map_err(|e| Error::io("cannot read the listen address", e))?;
    match &source {
        AdminTokenSource::Generated(path) => {
            // Printed once, on the terminal only (never in the log).
            println!(
                "granary: the admin token is {}\n         (shown once; it is kept in {} with mode 0600)",
                token.expose_secret(),
                path.display()
            );
        }
        AdminTokenSource::File(path) => {
            tracing::info!(file = %path.display(), "the admin token is the one in the data directory");
        }
        AdminTokenSource::Given => {
            tracing::info!("the admin token is the one of GRANARY_ADMIN_TOKEN")
        }
    }
    let refresher = engine.spawn_refresher(RefresherConfig {
        concurrency_per_host: settings.refresh_per_host,
        ..RefresherConfig::default()
    });
    let public = settings.base().to_string();
    let redirect_uri = settings.redirect_uri();
    let grace = settings.shutdown_grace;
    let mut webhooks = crate::webhooks::Webhooks::spawn(&engine, &settings.webhooks);
    let state = AppState::new(engine, settings, token, api_keys);
    tracing::info!(
        %address,
        admin = %format!("{public}/admin/"),
        redirect_uri = %redirect_uri,
        "granary listens"
    );
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut stopped_wait = stopped.clone();
    let server = serve(listener, state, async move {
        let _ = stopped_wait.wait_for(|stop| *stop).await;
    });
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => return result,
        () = shutdown_signal() => {}
    }
    let _ = stop.send(true);
    // Requests in flight finish and background refreshes store their answer; whatever still
    // waits for a provider at the end of the grace period is cut short (leases released).
    let finished = tokio::time::timeout(grace + SHUTDOWN_SLACK, async {
        let (served, report, ()) = tokio::join!(
            &mut server,
            refresher.shutdown(grace),
            webhooks.stop_worker(grace)
        );
        // The events of the refreshes that finished meanwhile become deliveries, kept in the
        // store for the next start.
        webhooks.shutdown(SHUTDOWN_SLACK).await;
        (served, report)
    })
    .await;
    match finished {
        Ok((served, report)) => {
            served?;
            if report.finished_in_grace {
                tracing::info!("granary stopped");
            } else {
                tracing::warn!(
                    cancelled = report.cancelled,
                    "granary stopped; refreshes still running at the end of the grace period were cut short"
                );
            }
        }
        Err(_) => tracing::warn!(
            "granary stopped with requests still open at the end of the grace period"
        ),
    }
    drop(stopped);
    Ok(())
}

/// What shutdown may take beyond the grace period: cancelled refreshes release their leases
/// and their callers get an answer.
const SHUTDOWN_SLACK: Duration = Duration::from_millis(800);

/// Serves `state` on `listener` until `shutdown` completes; requests in flight finish.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let closing = state.closing.clone();
    // The peer address reaches handlers (sign-in throttling per client address).
    let app = routes::router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            // Event streams never end by themselves: end them so that shutdown completes.
            closing.send_replace(true);
        })
        .await
        .map_err(|e| Error::io("the server failed", e))
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::warn!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C: shutting down"),
        () = terminate => tracing::info!("SIGTERM: shutting down"),
    }
}
