//! Tails the log and keeps the read models current; answers "wait until you
//! have seen position n" so a reader can rely on its own writes.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use fangkong_domain::Township;
use fangkong_store::{EventStore, LogFilter};
use tokio::sync::watch;

use crate::{QuarantineRoster, ZoneDayActivity};

/// The read models, updated together under one lock so a reader never sees
/// one ahead of another.
#[derive(Debug, Default)]
struct Models {
    activity: ZoneDayActivity,
    roster: QuarantineRoster,
}

#[derive(Debug, thiserror::Error)]
pub enum ProjectorError {
    #[error("the projection reached position {reached}, not yet {wanted}")]
    Behind { reached: u64, wanted: u64 },
}

/// The running read models of this process.
#[derive(Debug, Clone)]
pub struct Projector {
    models: Arc<RwLock<Models>>,
    position: watch::Receiver<u64>,
}

impl Projector {
    /// Starts tailing `store` from the beginning of the log.
    pub fn start(store: EventStore, township: Township) -> Projector {
        let models = Arc::new(RwLock::new(Models::default()));
        let (tx, position) = watch::channel(0);
        let model = models.clone();
        tokio::spawn(async move {
            let mut heads = store.subscribe();
            let mut after = 0;
            loop {
                match store.read_all(after, 1_000, &LogFilter::default()).await {
                    Ok(page) if !page.is_empty() => {
                        if let Ok(mut m) = model.write() {
                            for event in &page {
                                m.activity.apply(event, &township);
                                m.roster.apply(event);
                            }
                        }
                        after = page.last().map_or(after, |e| e.position);
                        let _ = tx.send(after);
                        continue;
                    }
                    Ok(_) => {}
                    Err(error) if error.is_closed() => break,
                    Err(error) => {
                        tracing::warn!(%error, "projection cannot read the log; retrying");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue;
                    }
                }
                if tx.is_closed() {
                    break;
                }
                // Woken by new positions; the timeout guards against a
                // missed notification.
                let _ = tokio::time::timeout(Duration::from_secs(1), heads.changed()).await;
            }
        });
        Projector { models, position }
    }

    /// The last position the read models reflect.
    pub fn position(&self) -> u64 {
        *self.position.borrow()
    }

    /// Waits until the read models reflect `position`, at most `timeout`.
    pub async fn wait_for(&self, position: u64, timeout: Duration) -> Result<u64, ProjectorError> {
        let mut rx = self.position.clone();
        let reached = tokio::time::timeout(timeout, rx.wait_for(|p| *p >= position)).await;
        match reached {
            Ok(Ok(p)) => Ok(*p),
            _ => Err(ProjectorError::Behind {
                reached: self.position(),
                wanted: position,
            }),
        }
    }

    /// Field events the zone recorded for the day.
    pub fn zone_day_activity(&self, zone: uuid::Uuid, date: chrono::NaiveDate) -> u64 {
        self.models
            .read()
            .map(|m| m.activity.count(zone, date))
            .unwrap_or(0)
    }

    /// Reads the roster and the position it reflects, consistently.
    pub fn with_roster<T>(&self, read: impl FnOnce(&QuarantineRoster, u64) -> T) -> Option<T> {
        self.models
            .read()
            .ok()
            .map(|m| read(&m.roster, m.activity.position()))
    }
}
