//! The record of who read personal data: every answer that shows a
//! person's data unmasked is noted (the token and its role, whose data,
//! when, which route) in a hash-chained record of its own that auditors
//! page through. An answer waits until its note is committed, and is not
//! given when it cannot be (503): nothing is shown off the record. Notes
//! waiting together are written in one transaction, so the wait is one
//! commit shared by every concurrent reader.

use std::time::Duration;

use fangkong_store::{EventStore, NewDisclosure};
use tokio::sync::{mpsc, oneshot};

use crate::access::Caller;
use crate::problem::ApiError;

/// Most notes written in one transaction.
const GROUP: usize = 1_000;
/// How long a note waits for others to join its group: short beside a
/// commit, so a lone reader loses nothing by it.
const LINGER: Duration = Duration::from_micros(400);

type Written = oneshot::Sender<bool>;

/// Where answers note what they disclosed. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Disclosures {
    queue: mpsc::UnboundedSender<(NewDisclosure, Written)>,
}

impl Disclosures {
    /// Starts the writer. Must run inside a tokio runtime.
    pub fn start(store: EventStore) -> Self {
        let (queue, notes) = mpsc::unbounded_channel();
        tokio::spawn(write(store, notes));
        Disclosures { queue }
    }

    /// Notes that `caller` is shown the personal data of `subjects` (data
    /// subjects: entity stream ids) through `route`, and answers once the
    /// note is committed. Unavailable when it cannot be: the answer that
    /// would have shown the data must not be given.
    pub async fn record(
        &self,
        caller: &Caller,
        route: &str,
        subjects: impl IntoIterator<Item = String>,
    ) -> Result<(), ApiError> {
        let mut subjects: Vec<String> = subjects.into_iter().collect();
        if subjects.is_empty() {
            return Ok(());
        }
        subjects.sort();
        subjects.dedup();
        let note = NewDisclosure {
            at: chrono::Utc::now(),
            token_id: caller.token_id,
            role: caller.role.code().to_owned(),
            route: route.to_owned(),
            subjects,
        };
        let (done, written) = oneshot::channel();
        if self.queue.send((note, done)).is_err() {
            tracing::error!("the access record's writer stopped: personal data is not shown");
            return Err(ApiError::Unavailable);
        }
        match written.await {
            Ok(true) => Ok(()),
            _ => Err(ApiError::Unavailable),
        }
    }
}

async fn write(store: EventStore, mut notes: mpsc::UnboundedReceiver<(NewDisclosure, Written)>) {
    let mut group = Vec::with_capacity(GROUP);
    let mut waiting = Vec::with_capacity(GROUP);
    while let Some((note, done)) = notes.recv().await {
        group.push(note);
        waiting.push(done);
        let deadline = tokio::time::Instant::now() + LINGER;
        while group.len() < GROUP {
            // Whatever is already queued joins at once; then a short wait.
            let next = match notes.try_recv() {
                Ok(next) => Some(next),
                Err(_) => tokio::time::timeout_at(deadline, notes.recv())
                    .await
                    .ok()
                    .flatten(),
            };
            let Some((note, done)) = next else { break };
            group.push(note);
            waiting.push(done);
        }
        let written = match store.record_disclosures(&group).await {
            Ok(()) => true,
            Err(error) => {
                tracing::error!(%error, notes = group.len(), "the access record could not be written: those answers are refused");
                false
            }
        };
        group.clear();
        for done in waiting.drain(..) {
            let _ = done.send(written);
        }
    }
}
