//! Witnessing: a signed head published every so often (and at shutdown) to
//! a NATS JetStream subject, so county systems and auditors keep heads
//! without polling, and a log rewritten later fails against any of them.

use std::time::Duration;

use async_nats::jetstream;
use fangkong_api::AppState;

/// Where and how often heads are published.
#[derive(Debug, Clone)]
pub struct Witnessing {
    pub nats_url: String,
    pub subject: String,
    pub every: Duration,
}

impl Witnessing {
    /// The stream that keeps the subject's heads: named after it.
    fn stream(&self) -> String {
        let name: String = self
            .subject
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect();
        format!("HEADS_{name}")
    }
}

/// Connects, makes sure the stream exists, and publishes a signed head
/// every `every` and once more when the server stops. A head the index
/// cannot vouch for (it stopped at a break) is not published; the failure
/// is logged, and witnesses see the heads stop.
pub async fn publish(
    state: AppState,
    witnessing: Witnessing,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let client = async_nats::connect(&witnessing.nats_url)
        .await
        .map_err(|e| anyhow::anyhow!("--nats-url {}: {e}", witnessing.nats_url))?;
    let js = jetstream::new(client);
    js.get_or_create_stream(jetstream::stream::Config {
        name: witnessing.stream(),
        subjects: vec![witnessing.subject.clone()],
        ..Default::default()
    })
    .await
    .map_err(|e| anyhow::anyhow!("JetStream stream {}: {e}", witnessing.stream()))?;
    tracing::info!(subject = %witnessing.subject, every_s = witnessing.every.as_secs_f64(), "publishing signed heads");
    Ok(tokio::spawn(async move {
        loop {
            let stopping = tokio::select! {
                _ = tokio::time::sleep(witnessing.every) => false,
                _ = shutdown.changed() => true,
            };
            let position = state.store().head().await.map(|h| h.position).unwrap_or(0);
            match fangkong_api::routes::audit::signed_head(&state, position).await {
                Ok(head) => {
                    let payload = serde_json::to_vec(&head).unwrap_or_default();
                    let sent = js.publish(witnessing.subject.clone(), payload.into()).await;
                    let acked = match sent {
                        Ok(ack) => ack.await.map(|_| ()).map_err(|e| e.to_string()),
                        Err(e) => Err(e.to_string()),
                    };
                    if let Err(error) = acked {
                        tracing::warn!(%error, "a signed head was not published");
                    }
                }
                Err(why) => tracing::warn!(%why, "no signed head to publish"),
            }
            if stopping {
                return;
            }
        }
    }))
}
