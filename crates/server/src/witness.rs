//! Witnessing: a signed head published every so often, and a last one
//! once the server has stopped taking writes, to a NATS JetStream subject,
//! so county systems and auditors keep heads without polling, and a log
//! rewritten later fails against any of them. The record does not depend
//! on the witness: NATS down at start or later is logged and retried.

use std::time::Duration;

use async_nats::jetstream;
use fangkong_api::AppState;
use fangkong_heads::SignedHead;

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

    /// A JetStream context with the stream in place.
    async fn connect(&self) -> anyhow::Result<jetstream::Context> {
        let client = async_nats::connect(&self.nats_url)
            .await
            .map_err(|e| anyhow::anyhow!("NATS at {}: {e}", self.nats_url))?;
        let js = jetstream::new(client);
        js.get_or_create_stream(jetstream::stream::Config {
            name: self.stream(),
            subjects: vec![self.subject.clone()],
            ..Default::default()
        })
        .await
        .map_err(|e| anyhow::anyhow!("JetStream stream {}: {e}", self.stream()))?;
        Ok(js)
    }

    /// Publishes one head and waits for JetStream to keep it.
    async fn send(&self, js: &jetstream::Context, head: &SignedHead) -> anyhow::Result<()> {
        let payload = serde_json::to_vec(head)?;
        js.publish(self.subject.clone(), payload.into())
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(())
    }
}

/// Publishes a signed head every `every` until `shutdown`, connecting (and
/// reconnecting) in the background. A head the index cannot vouch for (it
/// stopped at a break) is not published; witnesses see the heads stop.
pub fn publish(
    state: AppState,
    witnessing: Witnessing,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut js = None;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(witnessing.every) => {}
                _ = shutdown.changed() => return,
            }
            if js.is_none() {
                match witnessing.connect().await {
                    Ok(connected) => {
                        tracing::info!(subject = %witnessing.subject, "publishing signed heads");
                        js = Some(connected);
                    }
                    Err(error) => {
                        tracing::warn!(%error, "signed heads wait for NATS");
                        continue;
                    }
                }
            }
            let position = state.store().head().await.map(|h| h.position).unwrap_or(0);
            let head = match fangkong_api::routes::audit::signed_head(&state, position).await {
                Ok(head) => head,
                Err(why) => {
                    tracing::warn!(%why, "no signed head to publish");
                    continue;
                }
            };
            if let Some(context) = &js {
                if let Err(error) = witnessing.send(context, &head).await {
                    tracing::warn!(%error, "a signed head was not published");
                    js = None;
                }
            }
        }
    })
}

/// The last head, once the server takes no more writes: the tree brought
/// up to the log's head and signed, so nothing accepted goes unwitnessed.
pub async fn publish_last(
    store: &fangkong_store::EventStore,
    key: &fangkong_heads::SigningKey,
    witnessing: &Witnessing,
) -> anyhow::Result<()> {
    let mut indexer =
        fangkong_store::merkle::Indexer::resume(store, Some(fangkong_api::frontier_seal(key)))
            .await?;
    let state = indexer.catch_up(store).await?;
    if let Some(stalled) = state.stalled {
        anyhow::bail!("no last head: {stalled}");
    }
    let (seq, hash) = store.disclosure_head().await?;
    let head = key.sign(
        state.head.size,
        &state.head.root,
        &state.head.chain_hash,
        Some((seq, &hash)),
        chrono::Utc::now(),
    );
    let js = tokio::time::timeout(Duration::from_secs(5), witnessing.connect())
        .await
        .map_err(|_| anyhow::anyhow!("NATS did not answer in 5 s"))??;
    witnessing.send(&js, &head).await?;
    tracing::info!(tree_size = head.tree_size, "published the last signed head");
    Ok(())
}
