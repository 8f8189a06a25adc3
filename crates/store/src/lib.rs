//! The fangkong event store: one append-only, hash-chained log of typed JSON
//! events, over SQLite (embedded default) or PostgreSQL, chosen by URL.
//!
//! It knows streams and events, nothing of the domain. Guarantees, on both
//! backends:
//! - an append is atomic and checked against the expected stream version;
//! - appending event ids that are already stored is a retry: the original
//!   result comes back and nothing is written;
//! - global positions are gap-free and become visible strictly in order, so a
//!   reader tailing by position never skips an event;
//! - every event's hash covers the previous hash and the event's content, and
//!   [`EventStore::verify`] names the first position that no longer matches;
//! - concurrent appends are group-committed: one transaction and one fsync for
//!   many callers, each still answered on its own.

mod batch;
mod chain;
mod disclosures;
mod error;
mod postgres;
mod sqlite;
mod types;

#[cfg(feature = "testing")]
pub mod testing;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use uuid::Uuid;

use batch::{AppendRequest, PreparedEvent, WriterCache};
use chain::{event_hash, ChainedFields};

pub use disclosures::{disclosure_link, Disclosure, DisclosureReport, NewDisclosure};
pub use error::StoreError;
pub use types::{
    AppendOutcome, ChainBreak, Checkpoint, ExpectedVersion, ExtensionProof, Head, LogFilter,
    NewEvent, NewSubjectKey, RecordedEvent, SubjectKey, VerifyReport,
};

/// Longest stream id accepted: ids are keys, not documents.
pub const MAX_STREAM_ID_LEN: usize = 200;
/// Most events one read returns.
pub const MAX_READ_LIMIT: usize = 10_000;

const VERIFY_PAGE: usize = 2_000;

/// Longest the writer waits for a batch to fill up to the size of the last
/// one. Short beside a commit, so a lone appender loses nothing by it.
const LINGER: Duration = Duration::from_micros(400);

/// The category of a stream id: the part before the first `-`
/// (`returnee` for `returnee-0190...`).
pub fn category_of(stream_id: &str) -> &str {
    stream_id.split_once('-').map_or(stream_id, |(c, _)| c)
}

/// Tuning knobs; the defaults are what the service uses.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Most events the writer puts in one transaction.
    pub max_batch_events: usize,
    /// Connections for reads.
    pub read_connections: u32,
    /// How often a SQLite store looks for appends by other processes.
    pub poll_interval: Duration,
    /// Longest a statement may wait for a lock or run (PostgreSQL's
    /// `lock_timeout` and `statement_timeout`, SQLite's busy timeout, and
    /// the wait for a pooled connection): a locked store answers "not
    /// now" in this time instead of holding requests.
    pub statement_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_batch_events: 4_096,
            read_connections: 8,
            poll_interval: Duration::from_millis(200),
            statement_timeout: Duration::from_secs(3),
        }
    }
}

/// A stored event exactly as its row holds it: the input of verification.
#[derive(Debug, Clone)]
pub(crate) struct RawEvent {
    pub position: u64,
    pub stream_id: String,
    pub stream_version: u64,
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: u32,
    pub payload: String,
    pub metadata: String,
    pub recorded_at_us: i64,
    pub hash: Vec<u8>,
}

impl RawEvent {
    fn stored_hash(&self) -> Option<[u8; 32]> {
        self.hash.as_slice().try_into().ok()
    }

    fn recomputed_hash(&self, previous: &[u8; 32]) -> [u8; 32] {
        event_hash(
            previous,
            &ChainedFields {
                position: self.position,
                stream_id: &self.stream_id,
                stream_version: self.stream_version,
                event_id: self.event_id,
                event_type: &self.event_type,
                schema_version: self.schema_version,
                payload: &self.payload,
                metadata: &self.metadata,
                recorded_at_us: self.recorded_at_us,
            },
        )
    }

    fn into_recorded(self) -> Result<RecordedEvent, StoreError> {
        let corrupt = |reason: String| StoreError::Corrupt {
            position: self.position,
            reason,
        };
        let hash = self
            .stored_hash()
            .ok_or_else(|| corrupt("hash is not 32 bytes".into()))?;
        let payload = serde_json::from_str(&self.payload)
            .map_err(|e| corrupt(format!("payload is not JSON: {e}")))?;
        let metadata = serde_json::from_str(&self.metadata)
            .map_err(|e| corrupt(format!("metadata is not JSON: {e}")))?;
        let recorded_at = DateTime::<Utc>::from_timestamp_micros(self.recorded_at_us)
            .ok_or_else(|| corrupt("recorded_at out of range".into()))?;
        Ok(RecordedEvent {
            position: self.position,
            stream_id: self.stream_id,
            stream_version: self.stream_version,
            event_id: self.event_id,
            event_type: self.event_type,
            schema_version: self.schema_version,
            payload,
            metadata,
            recorded_at,
            hash,
        })
    }
}

/// Appends that are written in the order submitted, each only if all
/// before it were: see [`EventStore::submit`]. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppendChain(Arc<ChainState>);

#[derive(Debug)]
struct ChainState {
    /// The number the next link submitted gets.
    next: std::sync::atomic::AtomicU64,
    /// Links numbered from here on are refused (`u64::MAX`: none).
    broken_from: std::sync::atomic::AtomicU64,
}

/// One append's place in its chain.
#[derive(Debug, Clone)]
pub(crate) struct Link {
    chain: AppendChain,
    number: u64,
}

impl Default for AppendChain {
    fn default() -> Self {
        AppendChain(Arc::new(ChainState {
            next: std::sync::atomic::AtomicU64::new(0),
            broken_from: std::sync::atomic::AtomicU64::new(u64::MAX),
        }))
    }
}

impl AppendChain {
    pub fn new() -> Self {
        Self::default()
    }

    /// True once a link was refused (or the holder broke the chain off):
    /// the links after it will not be written.
    pub fn is_broken(&self) -> bool {
        self.0
            .broken_from
            .load(std::sync::atomic::Ordering::Acquire)
            != u64::MAX
    }

    /// Refuses every link submitted from now on; those already submitted
    /// are written or refused on their own.
    pub fn break_off(&self) {
        let next = self.0.next.load(std::sync::atomic::Ordering::Acquire);
        self.0
            .broken_from
            .fetch_min(next, std::sync::atomic::Ordering::AcqRel);
    }

    fn link(&self) -> Link {
        Link {
            chain: self.clone(),
            number: self
                .0
                .next
                .fetch_add(1, std::sync::atomic::Ordering::AcqRel),
        }
    }
}

impl Link {
    /// This link was not written: none after it may be.
    pub(crate) fn refused(&self) {
        self.chain
            .0
            .broken_from
            .fetch_min(self.number + 1, std::sync::atomic::Ordering::AcqRel);
    }

    /// Whether the chain refuses this link, given the links this plan
    /// already refused.
    pub(crate) fn is_refused(&self, refused_here: &[&Link]) -> bool {
        self.number
            >= self
                .chain
                .0
                .broken_from
                .load(std::sync::atomic::Ordering::Acquire)
            || refused_here
                .iter()
                .any(|r| Arc::ptr_eq(&r.chain.0, &self.chain.0) && self.number > r.number)
    }
}

/// A queued append: its answer, once the writer has one.
#[derive(Debug)]
pub struct Submitted(oneshot::Receiver<Result<AppendOutcome, StoreError>>);

impl Submitted {
    /// Waits until the append is durable or refused.
    pub async fn outcome(self) -> Result<AppendOutcome, StoreError> {
        self.0.await.map_err(|_| StoreError::Closed)?
    }
}

pub(crate) fn now_micros() -> i64 {
    Utc::now().timestamp_micros()
}

/// The two storage engines behind one API.
#[derive(Debug, Clone)]
enum Backend {
    Sqlite(sqlite::SqliteBackend),
    Postgres(postgres::PgBackend),
}

macro_rules! dispatch {
    ($backend:expr, $b:ident => $call:expr) => {
        match $backend {
            $crate::Backend::Sqlite($b) => $call,
            $crate::Backend::Postgres($b) => $call,
        }
    };
}

// After the macro it uses.
pub mod merkle;

/// A handle on the event log. Cheap to clone; all clones share one writer.
#[derive(Debug, Clone)]
pub struct EventStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    backend: Backend,
    appends: mpsc::Sender<AppendRequest>,
    head: watch::Receiver<u64>,
    shutdown: watch::Sender<bool>,
    writer: std::sync::Mutex<Option<JoinHandle<()>>>,
    watcher: JoinHandle<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

impl EventStore {
    /// Opens (creating if needed) the store at `url`: `sqlite://PATH` or
    /// `postgres://...`. Applies the backend's migrations.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        Self::open_with(url, StoreOptions::default()).await
    }

    pub async fn open_with(url: &str, options: StoreOptions) -> Result<Self, StoreError> {
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite(sqlite::SqliteBackend::open(url, &options).await?)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres(postgres::PgBackend::open(url, &options).await?)
        } else {
            return Err(StoreError::UnsupportedUrl(redact_url(url)));
        };

        let start = dispatch!(&backend, b => b.head().await)?.position;
        let (head_tx, head_rx) = watch::channel(start);
        let head_tx = Arc::new(head_tx);
        let (shutdown, shutdown_rx) = watch::channel(false);
        let (appends, requests) = mpsc::channel(options.max_batch_events.max(64));

        let watcher = match &backend {
            Backend::Sqlite(b) => b.spawn_watcher(head_tx.clone(), options.poll_interval),
            Backend::Postgres(b) => b.spawn_watcher(head_tx.clone()),
        };
        let writer = tokio::spawn(run_writer(
            backend.clone(),
            requests,
            shutdown_rx,
            head_tx,
            options.max_batch_events.max(1),
        ));

        Ok(EventStore {
            inner: Arc::new(Inner {
                backend,
                appends,
                head: head_rx,
                shutdown,
                writer: std::sync::Mutex::new(Some(writer)),
                watcher,
            }),
        })
    }

    /// `"sqlite"` or `"postgres"`.
    pub fn backend_name(&self) -> &'static str {
        match self.inner.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// Appends `events` to `stream_id` atomically, if the stream is at
    /// `expected`. Answers once the events are durable.
    pub async fn append(
        &self,
        stream_id: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome, StoreError> {
        self.append_with_key(stream_id, expected, events, None)
            .await
    }

    /// [`EventStore::append`], storing `key` (the first key of the subject
    /// the events are sealed for) in the same transaction. Refused with
    /// [`StoreError::SubjectKeyTaken`] when the subject has a key by then.
    pub async fn append_with_key(
        &self,
        stream_id: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        key: Option<NewSubjectKey>,
    ) -> Result<AppendOutcome, StoreError> {
        self.submit(stream_id, expected, events, key, None)
            .await?
            .outcome()
            .await
    }

    /// Queues an append for the writer and answers once it is queued, so
    /// appends submitted one after another are planned in that order; the
    /// [`Submitted`] answers once the append is durable (or refused).
    ///
    /// With a `chain`, the append is written only if every append
    /// submitted before it on that chain was written as submitted: a link
    /// refused for any reason (a duplicate included) makes every later
    /// link answer [`StoreError::ChainBroken`] and write nothing. A caller
    /// that decides many commands ahead of their commits, each on the state
    /// the earlier ones leave, so never has a later decision stored
    /// without the earlier one it was made on.
    pub async fn submit(
        &self,
        stream_id: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        key: Option<NewSubjectKey>,
        chain: Option<&AppendChain>,
    ) -> Result<Submitted, StoreError> {
        let mut request = prepare(stream_id, expected, events)?;
        request.subject_key = key;
        // Numbered in the order of these calls, which is the order sent.
        request.chain = chain.map(AppendChain::link);
        let (reply, answer) = oneshot::channel();
        self.inner
            .appends
            .send(AppendRequest { reply, ..request })
            .await
            .map_err(|_| StoreError::Closed)?;
        Ok(Submitted(answer))
    }

    /// Events of one stream with version >= `from_version`, in order.
    pub async fn read_stream(
        &self,
        stream_id: &str,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let limit = limit.min(MAX_READ_LIMIT);
        let raw = dispatch!(&self.inner.backend, b => b.read_stream(stream_id, from_version, limit).await)?;
        raw.into_iter().map(RawEvent::into_recorded).collect()
    }

    /// Events of the whole log with position > `after`, in order.
    pub async fn read_all(
        &self,
        after: u64,
        limit: usize,
        filter: &LogFilter,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let limit = limit.min(MAX_READ_LIMIT);
        let raw = dispatch!(&self.inner.backend, b => b.read_all(after, limit, filter).await)?;
        raw.into_iter().map(RawEvent::into_recorded).collect()
    }

    /// The stored event with this id, if any.
    pub async fn read_event(&self, event_id: Uuid) -> Result<Option<RecordedEvent>, StoreError> {
        let raw = dispatch!(&self.inner.backend, b => b.read_event(event_id).await)?;
        raw.map(RawEvent::into_recorded).transpose()
    }

    /// The last position and its hash (`Head::GENESIS` for an empty log).
    pub async fn head(&self) -> Result<Head, StoreError> {
        dispatch!(&self.inner.backend, b => b.head().await)
    }

    /// The stream's current version: 0 when it does not exist.
    pub async fn stream_version(&self, stream_id: &str) -> Result<u64, StoreError> {
        dispatch!(&self.inner.backend, b => b.stream_version(stream_id).await)
    }

    /// The stored hash at `position`, if the log reaches it.
    pub async fn hash_at(&self, position: u64) -> Result<Option<[u8; 32]>, StoreError> {
        if position == 0 {
            return Ok(Some(Head::GENESIS.hash));
        }
        let raw = dispatch!(&self.inner.backend, b => b.read_all(position - 1, 1, &LogFilter::default()).await)?;
        Ok(raw
            .into_iter()
            .find(|e| e.position == position)
            .and_then(|e| e.stored_hash()))
    }

    /// Saves a read model's state under `name`, unless a state at a later
    /// position is already saved (any instance may save; the newest wins).
    /// Answers whether it was written.
    pub async fn save_checkpoint(
        &self,
        name: &str,
        checkpoint: &Checkpoint,
    ) -> Result<bool, StoreError> {
        dispatch!(&self.inner.backend, b => b.save_checkpoint(name, checkpoint).await)
    }

    /// The saved state of a read model, if any.
    pub async fn load_checkpoint(&self, name: &str) -> Result<Option<Checkpoint>, StoreError> {
        dispatch!(&self.inner.backend, b => b.load_checkpoint(name).await)
    }

    /// Stores `wrapped` as the data key of `subject` unless the subject
    /// already has a row; answers the row now stored (the existing one if
    /// another writer got there first, an erased tombstone included), so
    /// concurrent creators all end up with one key. Durable when it answers.
    pub async fn put_subject_key(
        &self,
        subject: &str,
        kek_id: &str,
        wrapped: &[u8],
    ) -> Result<SubjectKey, StoreError> {
        dispatch!(&self.inner.backend, b => b.put_subject_key(subject, kek_id, wrapped).await)
    }

    /// The stored key row of `subject`, if any.
    pub async fn subject_key(&self, subject: &str) -> Result<Option<SubjectKey>, StoreError> {
        dispatch!(&self.inner.backend, b => b.subject_key(subject).await)
    }

    /// All key rows, live and erased, ordered by subject: for loading into
    /// memory and for rewrapping under a new key-encryption key.
    pub async fn subject_keys(&self) -> Result<Vec<SubjectKey>, StoreError> {
        dispatch!(&self.inner.backend, b => b.subject_keys(None).await)
    }

    /// Key rows created or erased at or after `since_us` (microseconds since
    /// the epoch): how an instance hears of other instances' keys.
    pub async fn subject_keys_changed_since(
        &self,
        since_us: i64,
    ) -> Result<Vec<SubjectKey>, StoreError> {
        dispatch!(&self.inner.backend, b => b.subject_keys(Some(since_us)).await)
    }

    /// Destroys the live key of each of `subjects` (the row stays, as a
    /// tombstone with the time and `reason`); answers how many were live.
    /// Then, best effort, scrubs the old bytes from where the database may
    /// still hold them (SQLite's WAL, PostgreSQL's dead row versions): a
    /// failure there is logged, the erasure stands.
    pub async fn erase_subject_keys(
        &self,
        subjects: &[String],
        reason: &str,
    ) -> Result<u64, StoreError> {
        if subjects.is_empty() {
            return Ok(0);
        }
        let erased =
            dispatch!(&self.inner.backend, b => b.erase_subject_keys(subjects, reason).await)?;
        if erased > 0 {
            dispatch!(&self.inner.backend, b => b.scrub_subject_keys().await);
        }
        Ok(erased)
    }

    /// Replaces the wrapping of live keys: for each `(subject, kek_id,
    /// wrapped)`, in one transaction, the row is updated unless it was
    /// erased meanwhile. Answers how many rows were updated. The old
    /// wrappings are scrubbed as after an erasure (best effort).
    pub async fn rewrap_subject_keys(
        &self,
        rows: &[(String, String, Vec<u8>)],
    ) -> Result<u64, StoreError> {
        if rows.is_empty() {
            return Ok(0);
        }
        let updated = dispatch!(&self.inner.backend, b => b.rewrap_subject_keys(rows).await)?;
        if updated > 0 {
            dispatch!(&self.inner.backend, b => b.scrub_subject_keys().await);
        }
        Ok(updated)
    }

    /// The end of the log as it stood at `at`: the last position before the
    /// first event recorded after `at` (0 when there was none yet).
    pub async fn position_at(&self, at: DateTime<Utc>) -> Result<u64, StoreError> {
        dispatch!(&self.inner.backend, b => b.position_at(at).await)
    }

    /// Checks that the store answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        dispatch!(&self.inner.backend, b => b.ping().await)
    }

    /// The newest position known to this process: updated by its own appends
    /// at once, and by other processes' appends via LISTEN/NOTIFY
    /// (PostgreSQL) or polling (SQLite).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.head.clone()
    }

    /// Walks the chain from `from` (1 for the whole log) to `to` (the head
    /// when `None`), recomputing every hash. Starting past 1 trusts the stored
    /// hash just before `from`.
    pub async fn verify(&self, from: u64, to: Option<u64>) -> Result<VerifyReport, StoreError> {
        self.verify_with_progress(from, to, |_| {}).await
    }

    /// [`EventStore::verify`], calling `progress` with the last checked
    /// position after every page.
    pub async fn verify_with_progress(
        &self,
        from: u64,
        to: Option<u64>,
        mut progress: impl FnMut(u64),
    ) -> Result<VerifyReport, StoreError> {
        let from = from.max(1);
        let start = from - 1;
        let mut previous = match self.hash_at(start).await? {
            Some(hash) => hash,
            None => {
                return Ok(VerifyReport {
                    checked: 0,
                    verified_head: Head::GENESIS,
                    first_break: Some(ChainBreak::MissingPosition {
                        expected: start,
                        found: 0,
                    }),
                })
            }
        };
        let mut report = VerifyReport {
            checked: 0,
            verified_head: Head {
                position: start,
                hash: previous,
            },
            first_break: None,
        };
        let mut expected = from;
        'pages: loop {
            let page = dispatch!(&self.inner.backend, b => b.read_all(expected - 1, VERIFY_PAGE, &LogFilter::default()).await)?;
            if page.is_empty() {
                break;
            }
            for row in page {
                if to.is_some_and(|to| row.position > to) {
                    break 'pages;
                }
                if row.position != expected {
                    report.first_break = Some(ChainBreak::MissingPosition {
                        expected,
                        found: row.position,
                    });
                    break 'pages;
                }
                let Some(stored) = row.stored_hash() else {
                    report.first_break = Some(ChainBreak::Unreadable {
                        position: row.position,
                        reason: "hash is not 32 bytes".into(),
                    });
                    break 'pages;
                };
                if row.recomputed_hash(&previous) != stored {
                    report.first_break = Some(ChainBreak::HashMismatch {
                        position: row.position,
                    });
                    break 'pages;
                }
                previous = stored;
                report.checked += 1;
                report.verified_head = Head {
                    position: row.position,
                    hash: stored,
                };
                expected += 1;
            }
            progress(report.verified_head.position);
        }
        Ok(report)
    }

    /// Proves (or not) that today's log extends `kept`, a head kept
    /// earlier. The chain is recomputed from position 1, so an edit before
    /// the kept position is caught even though the stored hash there was
    /// left alone; then on from the kept position to today's head.
    pub async fn prove_extends(&self, kept: Head) -> Result<ExtensionProof, StoreError> {
        let head = self.head().await?;
        let to_kept = self.verify(1, Some(kept.position)).await?;
        let reached = to_kept.is_intact() && to_kept.verified_head.position == kept.position;
        let recomputed_hash = reached.then_some(to_kept.verified_head.hash);
        let first_break = match to_kept.first_break {
            Some(broken) => Some(broken),
            None if !reached => Some(ChainBreak::MissingPosition {
                expected: to_kept.verified_head.position + 1,
                found: 0,
            }),
            // Verified up to the kept position: its stored hash is the
            // recomputed one, so the rest starts from it.
            None => self.verify(kept.position + 1, None).await?.first_break,
        };
        Ok(ExtensionProof {
            extends: recomputed_hash == Some(kept.hash) && first_break.is_none(),
            recomputed_hash,
            head,
            first_break,
        })
    }

    /// Stops taking appends, finishes those already queued, and closes the
    /// connections. Appends after this fail with [`StoreError::Closed`].
    pub async fn close(&self) {
        let _ = self.inner.shutdown.send(true);
        let writer = self
            .inner
            .writer
            .lock()
            .map(|mut w| w.take())
            .unwrap_or_default();
        if let Some(writer) = writer {
            if let Err(error) = writer.await {
                tracing::error!(%error, "event store writer ended abnormally");
            }
        }
        self.inner.watcher.abort();
        dispatch!(&self.inner.backend, b => b.close().await);
    }
}

/// A database URL fit for an error message or a log line: no password.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}://***{}", &url[..scheme_end], &url[at..])
        }
        _ => url.to_owned(),
    }
}

fn prepare(
    stream_id: &str,
    expected: ExpectedVersion,
    events: Vec<NewEvent>,
) -> Result<AppendRequest, StoreError> {
    let invalid = |why: String| Err(StoreError::InvalidAppend(why));
    if stream_id.is_empty() || stream_id.len() > MAX_STREAM_ID_LEN {
        return invalid(format!(
            "stream id must have 1 to {MAX_STREAM_ID_LEN} bytes"
        ));
    }
    if stream_id.chars().any(char::is_control) {
        return invalid("stream id must not contain control characters".into());
    }
    if events.is_empty() {
        return invalid("an append needs at least one event".into());
    }
    let mut prepared = Vec::with_capacity(events.len());
    for event in events {
        if event.event_type.is_empty() || event.event_type.len() > MAX_STREAM_ID_LEN {
            return invalid(format!(
                "event type must have 1 to {MAX_STREAM_ID_LEN} bytes"
            ));
        }
        if prepared
            .iter()
            .any(|p: &PreparedEvent| p.event_id == event.event_id)
        {
            return invalid(format!("event id {} appears twice", event.event_id));
        }
        let render = |v: &serde_json::Value| {
            serde_json::to_string(v).map_err(|e| StoreError::InvalidAppend(e.to_string()))
        };
        prepared.push(PreparedEvent {
            event_id: event.event_id,
            payload: render(&event.payload)?,
            metadata: render(&event.metadata)?,
            event_type: event.event_type,
            schema_version: event.schema_version,
        });
    }
    let (reply, _) = oneshot::channel();
    Ok(AppendRequest {
        stream_id: stream_id.to_owned(),
        expected,
        events: prepared,
        subject_key: None,
        chain: None,
        reply,
    })
}

/// The single writer: takes every append queued since its last commit and
/// commits them together.
async fn run_writer(
    backend: Backend,
    mut requests: mpsc::Receiver<AppendRequest>,
    mut shutdown: watch::Receiver<bool>,
    head: Arc<watch::Sender<u64>>,
    max_batch_events: usize,
) {
    let mut cache = WriterCache::default();
    // How many appends the last batch carried: the concurrency the writer
    // currently sees. Used to wait briefly for the callers it just answered,
    // whose next appends are on their way (PostgreSQL's commit_delay idea).
    let mut last_batch = 0usize;
    loop {
        let first = tokio::select! {
            biased;
            request = requests.recv() => match request {
                Some(request) => request,
                None => break,
            },
            _ = shutdown.changed() => {
                // Refuse new appends, then drain what was already queued.
                requests.close();
                continue;
            }
        };
        let mut events = first.events.len();
        let mut batch = vec![first];
        let lingering_since = std::time::Instant::now();
        loop {
            while events < max_batch_events {
                match requests.try_recv() {
                    Ok(request) => {
                        events += request.events.len();
                        batch.push(request);
                    }
                    Err(_) => break,
                }
            }
            let expected = last_batch.saturating_sub(last_batch / 8);
            if batch.len() >= expected
                || events >= max_batch_events
                || lingering_since.elapsed() >= LINGER
            {
                break;
            }
            tokio::task::yield_now().await;
        }
        last_batch = batch.len();
        commit(&backend, batch, &head, &mut cache).await;
    }
}

async fn commit(
    backend: &Backend,
    batch: Vec<AppendRequest>,
    head: &watch::Sender<u64>,
    cache: &mut WriterCache,
) {
    let result = dispatch!(backend, b => b.commit_batch(&batch, cache).await);
    if result.is_err() {
        cache.forget();
    }
    match result {
        Ok((outcomes, new_head)) => {
            head.send_if_modified(|h| {
                let moved = new_head.position > *h;
                if moved {
                    *h = new_head.position;
                }
                moved
            });
            for (request, outcome) in batch.into_iter().zip(outcomes) {
                request.answer(outcome);
            }
        }
        // The server refused the transaction itself (not the connection): one
        // request may be at fault, so each is tried alone rather than letting
        // it fail its neighbours.
        Err(sqlx::Error::Database(error)) if batch.len() > 1 => {
            tracing::warn!(%error, appends = batch.len(), "batch commit refused; retrying appends one by one");
            for request in batch {
                Box::pin(commit(backend, vec![request], head, cache)).await;
            }
        }
        Err(error) => {
            tracing::error!(error = %error, appends = batch.len(), "event store commit failed");
            let reason = error.to_string();
            for request in batch {
                request.answer(Err(StoreError::Unavailable(reason.clone())));
            }
        }
    }
}
