//! Running the HTTP server until SIGTERM or Ctrl-C; in-flight requests
//! finish, live feeds end, the read models are saved, then the store
//! flushes its queued appends and closes.

use actix_web::HttpServer;
use fangkong_api::{AppState, BodyLimit};
use fangkong_domain::access::Role;
use fangkong_domain::Township;
use fangkong_store::EventStore;

pub struct Options<'a> {
    pub bind: &'a str,
    pub body_limit: usize,
    pub workers: Option<usize>,
    /// Tokens to issue and print before serving (a new store's first).
    pub first_tokens: Vec<(Role, String, Vec<uuid::Uuid>)>,
    /// Signed heads published to NATS, when asked for.
    pub witnessing: Option<crate::witness::Witnessing>,
    /// Days after a quarantine (or an arrival without one) before a
    /// person's personal data is erased.
    pub retention_days: u32,
}

/// How often the retention job looks for people due for erasure.
const RETENTION_EVERY: std::time::Duration = std::time::Duration::from_secs(3_600);
/// How often data keys another instance created or erased are picked up.
const KEYS_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

pub async fn run(
    store: EventStore,
    township: Township,
    vault: fangkong_vault::Vault,
    settings: fangkong_api::Settings,
    options: Options<'_>,
) -> anyhow::Result<()> {
    let state = actix_web::web::Data::new(AppState::new(
        store.clone(),
        township,
        vault.clone(),
        settings,
    ));
    // Erasures other instances record are followed in the log, so their
    // keys are forgotten here within a few hundred ms; the refresh below is
    // the fallback, and how new keys of other instances arrive.
    tokio::spawn(fangkong_app::personal::follow_erasures(
        store.clone(),
        vault.clone(),
        state.shutdown.subscribe(),
    ));
    let mut stopping = state.shutdown.subscribe();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(KEYS_EVERY) => {}
                _ = stopping.changed() => return,
            }
            if let Err(error) = vault.refresh().await {
                tracing::warn!(%error, "data keys of other instances not picked up");
            }
        }
    });
    let commands = state.commands.clone();
    let retention_days = options.retention_days;
    let mut stopping = state.shutdown.subscribe();
    tokio::spawn(async move {
        loop {
            match commands.erase_due(retention_days).await {
                Ok(run) if run.erased > 0 || run.in_clear > 0 || run.unreadable > 0 => {
                    tracing::info!(
                        erased = run.erased,
                        recorded_in_clear = run.in_clear,
                        left_out_unreadable = run.unreadable,
                        retention_days,
                        "personal data past its retention erased"
                    )
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "the retention job failed; it runs again"),
            }
            tokio::select! {
                _ = tokio::time::sleep(RETENTION_EVERY) => {}
                _ = stopping.changed() => return,
            }
        }
    });
    for (role, name, zones) in &options.first_tokens {
        let (token, _) = state
            .commands
            .issue_token(&fangkong_app::Envelope::system(), name, *role, zones)
            .await
            .map_err(|e| anyhow::anyhow!("issuing the first tokens: {e}"))?;
        // Shown once; only the hash is kept.
        println!("{} token ({name}): {}", role.code(), token.token);
    }
    // Tokens are known from the log through the projection: serve once it
    // has read the log as it stands, so the tokens just printed work.
    // (A projection stopped by an event it cannot apply serves anyway:
    // readiness fails and figures answer 503, saying where.)
    let head = store.head().await?.position;
    while state
        .projector
        .wait_for(head, std::time::Duration::from_secs(1))
        .await
        .is_err()
        && state.projector.stalled().is_none()
    {}
    let publisher = options.witnessing.map(|witnessing| {
        let task = crate::witness::publish(
            state.get_ref().clone(),
            witnessing.clone(),
            state.shutdown.subscribe(),
        );
        (task, witnessing)
    });
    let projector = state.projector.clone();
    let shutdown = state.shutdown.clone();
    let limit = BodyLimit(options.body_limit);
    let app_state = state.clone();
    let mut server = HttpServer::new(move || fangkong_api::http::app(app_state.clone(), limit))
        .shutdown_timeout(30)
        // A client that closes its side is gone: a live feed ends (and
        // frees its place) at once, not at its next heartbeat.
        .h1_allow_half_closed(false)
        .disable_signals()
        .bind(options.bind)
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", options.bind))?;
    if let Some(workers) = options.workers {
        server = server.workers(workers.max(1));
    }
    for addr in server.addrs() {
        // Tests and scripts read this line to find a port picked with :0.
        println!("listening on http://{addr}");
    }
    if let Some(addr) = server.addrs().first() {
        println!("command centre: http://{addr}/ (sign in with a token)");
    }
    tracing::info!(backend = store.backend_name(), "serving");
    let server = server.run();
    let handle = server.handle();
    actix_web::rt::spawn(async move {
        stop_signal().await;
        tracing::info!("stopping");
        // Live feeds end first, so the graceful stop does not wait on them.
        let _ = shutdown.send(true);
        // Saved while the workers still run (their connections with them);
        // a restart resumes from here and replays whatever lands after.
        match projector.save().await {
            Ok(position) => tracing::info!(position, "read models saved"),
            Err(error) => tracing::warn!(%error, "read models not saved at shutdown"),
        }
        handle.stop(true).await;
    });
    server.await?;
    // The last head covers every write the server took, and goes out
    // before the store closes.
    if let Some((task, witnessing)) = publisher {
        let _ = task.await;
        if let Some(key) = &state.settings.signing_key {
            if let Err(error) = crate::witness::publish_last(&store, key, &witnessing).await {
                tracing::warn!(%error, "the last signed head was not published");
            }
        }
    }
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
