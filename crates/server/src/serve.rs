//! Running the HTTP server until SIGTERM or Ctrl-C; in-flight requests
//! finish, the read models are saved, then the store flushes its queued
//! appends and closes.

use actix_web::HttpServer;
use fangkong_api::{AppState, BodyLimit};
use fangkong_domain::Township;
use fangkong_store::EventStore;

pub async fn run(
    store: EventStore,
    township: Township,
    settings: fangkong_api::Settings,
    bind: &str,
    body_limit: usize,
    workers: Option<usize>,
) -> anyhow::Result<()> {
    let state = actix_web::web::Data::new(AppState::new(store.clone(), township, settings));
    let projector = state.projector.clone();
    let limit = BodyLimit(body_limit);
    let mut server = HttpServer::new(move || fangkong_api::http::app(state.clone(), limit))
        .shutdown_timeout(30)
        .bind(bind)
        .map_err(|e| anyhow::anyhow!("cannot listen on {bind}: {e}"))?;
    if let Some(workers) = workers {
        server = server.workers(workers.max(1));
    }
    for addr in server.addrs() {
        // Tests and scripts read this line to find a port picked with :0.
        println!("listening on http://{addr}");
    }
    tracing::info!(backend = store.backend_name(), "serving");
    server.run().await?;
    // A restart then resumes the read models from here.
    match projector.save().await {
        Ok(position) => tracing::info!(position, "read models saved"),
        Err(error) => tracing::warn!(%error, "read models not saved at shutdown"),
    }
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}
