//! The record of who read personal data: every answer that shows a
//! person's data unmasked is noted (the token and its role, whose data,
//! when, which route) in a hash-chained record of its own that auditors
//! page through. Notes are queued as the answer is built and written in
//! groups off the request's path, so reads do not wait on a commit; a
//! clean stop writes what is queued.

use std::time::Duration;

use fangkong_store::{EventStore, NewDisclosure};
use tokio::sync::{mpsc, oneshot};

use crate::access::Caller;

/// Most notes written in one transaction.
const GROUP: usize = 1_000;
/// How long a note may wait for others to join its group.
const LINGER: Duration = Duration::from_millis(50);

enum Message {
    Note(NewDisclosure),
    Flush(oneshot::Sender<()>),
}

/// Where answers note what they disclosed. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Disclosures {
    queue: mpsc::UnboundedSender<Message>,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Message")
    }
}

impl Disclosures {
    /// Starts the writer. Must run inside a tokio runtime.
    pub fn start(store: EventStore) -> Self {
        let (queue, notes) = mpsc::unbounded_channel();
        tokio::spawn(write(store, notes));
        Disclosures { queue }
    }

    /// Notes that `caller` was shown the personal data of `subjects` (data
    /// subjects: entity stream ids) through `route`.
    pub fn record(&self, caller: &Caller, route: &str, subjects: impl IntoIterator<Item = String>) {
        let mut subjects: Vec<String> = subjects.into_iter().collect();
        if subjects.is_empty() {
            return;
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
        if self.queue.send(Message::Note(note)).is_err() {
            tracing::error!(
                "the access record's writer stopped: a read of personal data went unrecorded"
            );
        }
    }

    /// Waits until everything noted so far is written.
    pub async fn flush(&self) {
        let (done, written) = oneshot::channel();
        if self.queue.send(Message::Flush(done)).is_ok() {
            let _ = written.await;
        }
    }
}

async fn write(store: EventStore, mut notes: mpsc::UnboundedReceiver<Message>) {
    let mut group = Vec::with_capacity(GROUP);
    let mut waiting = Vec::new();
    while let Some(first) = notes.recv().await {
        let deadline = tokio::time::Instant::now() + LINGER;
        let mut next = Some(first);
        loop {
            match next.take() {
                Some(Message::Note(note)) => group.push(note),
                Some(Message::Flush(done)) => {
                    waiting.push(done);
                    break;
                }
                None => {}
            }
            if group.len() >= GROUP {
                break;
            }
            match tokio::time::timeout_at(deadline, notes.recv()).await {
                Ok(Some(message)) => next = Some(message),
                Ok(None) | Err(_) => break,
            }
        }
        // Retried until written: a note is never dropped for a passing
        // database error.
        let mut pause = Duration::from_millis(50);
        while !group.is_empty() {
            match store.record_disclosures(&group).await {
                Ok(()) => group.clear(),
                Err(error) => {
                    tracing::error!(%error, notes = group.len(), "the access record could not be written; retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
            }
        }
        for done in waiting.drain(..) {
            let _ = done.send(());
        }
    }
}
