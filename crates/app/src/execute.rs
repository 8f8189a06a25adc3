//! The one way a command is recorded: load the stream's state, decide,
//! append, answer.
//!
//! Concurrency follows what the decision depends on. An `Independent`
//! command (a crossing, a leaflet count) is appended wherever the stream
//! stands, so writers never wait on each other. An `Ordered` one takes its
//! stream's turn in this process (so two workers here never collide) and
//! appends only if the stream is still at the version it decided on; when
//! another instance got there first it is decided again on the fresh
//! state, in a bounded, jittered loop, and refused only for a rule broken
//! on that state or the sender's `If-Match`. A batch's ordered command
//! holds the turn only until its events are queued (see
//! [`crate::Pipeline`]): a lone request on the same stream in this process
//! meanwhile may find the stream moved on and decide again, as it would
//! after another instance's write.
//!
//! Idempotency keys become event ids derived from the key, the sender's
//! token, the operation and the stream, so a retry finds the first attempt
//! in the log itself, whichever instance served it and across restarts,
//! and a key can never find another entity's write, nor another device's.

use std::any::Any;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use fangkong_domain::metadata::EventMetadata;
use fangkong_domain::{Aggregate, Concurrency, Context, EventCodec, Township};
use fangkong_store::{EventStore, ExpectedVersion, NewEvent, RecordedEvent, StoreError};
use uuid::Uuid;

use crate::command::{Command, Target};
use crate::envelope::{key_event_id, Envelope};
use crate::error::AppError;
use crate::pipeline::Item;

/// Streams whose state is kept in memory before the cache starts over.
const MAX_CACHED: usize = 100_000;
/// How far in the future a client's clock may be before `occurred_at` is refused.
const CLOCK_SKEW: chrono::Duration = chrono::Duration::minutes(5);
/// Turns for ordered commands: streams share one when their ids hash alike.
const TURNS: usize = 1024;
/// An ordered command beaten by other instances is decided again at least
/// this many times, and for at least `RETRY_FOR`.
const MIN_ATTEMPTS: u32 = 5;
const RETRY_FOR: Duration = Duration::from_secs(1);
/// The longest pause between two attempts (before jitter).
const MAX_BACKOFF: Duration = Duration::from_millis(64);

/// One event of a command's outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedChange {
    pub position: u64,
    pub event_type: String,
    pub schema_version: u32,
    /// The event's data as stored, personal fields sealed (the API opens
    /// and masks what a reader may see).
    pub data: serde_json::Value,
}

/// What a command did.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The stream written to: the data subject of its personal fields.
    pub stream_id: String,
    /// The entity written to.
    pub entity_id: Uuid,
    /// Its stream version after the write.
    pub version: u64,
    /// The global position of the write's last event.
    pub position: u64,
    /// The events recorded (none when the command changed nothing).
    pub events: Vec<RecordedChange>,
    /// The stored outcome of an earlier command with the same key.
    pub replayed: bool,
}

/// Counts of what commands did in this process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteCounts {
    /// Commands that recorded events.
    pub writes: u64,
    /// Events they appended.
    pub events: u64,
    /// Appends another writer beat (each decided again).
    pub conflicts: u64,
}

/// An entity's state as of its stream's version.
#[derive(Debug, Clone)]
pub struct Loaded<A> {
    pub version: u64,
    pub position: u64,
    pub state: A,
}

#[derive(Debug, Clone)]
pub(crate) struct Cached {
    version: u64,
    position: u64,
    state: Arc<dyn Any + Send + Sync>,
}

/// Runs commands against the event store.
#[derive(Debug, Clone)]
pub struct Application {
    store: EventStore,
    vault: fangkong_vault::Vault,
    township: Township,
    cache: Arc<Mutex<HashMap<String, Cached>>>,
    turns: Arc<[tokio::sync::Mutex<()>]>,
    writes: Arc<AtomicU64>,
    appended: Arc<AtomicU64>,
    conflicts: Arc<AtomicU64>,
    /// The position of a stored event found undecodable (0: none yet).
    corrupt_at: Arc<AtomicU64>,
}

impl Cached {
    fn of<A: Clone + Send + Sync + 'static>(loaded: &Loaded<A>) -> Cached {
        Cached {
            version: loaded.version,
            position: loaded.position,
            state: Arc::new(loaded.state.clone()),
        }
    }

    fn loaded<A: Clone + 'static>(&self) -> Option<Loaded<A>> {
        Some(Loaded {
            version: self.version,
            position: self.position,
            state: self.state.downcast_ref::<A>()?.clone(),
        })
    }
}

impl Application {
    pub fn new(store: EventStore, township: Township, vault: fangkong_vault::Vault) -> Self {
        Application {
            store,
            vault,
            township,
            cache: Arc::new(Mutex::new(HashMap::new())),
            turns: (0..TURNS).map(|_| tokio::sync::Mutex::new(())).collect(),
            writes: Arc::new(AtomicU64::new(0)),
            appended: Arc::new(AtomicU64::new(0)),
            conflicts: Arc::new(AtomicU64::new(0)),
            corrupt_at: Arc::new(AtomicU64::new(0)),
        }
    }

    pub fn store(&self) -> &EventStore {
        &self.store
    }

    /// The keys personal data is sealed under.
    pub fn vault(&self) -> &fangkong_vault::Vault {
        &self.vault
    }

    /// What a retry must repeat: the operation, the stream and what was
    /// asked. Keyed with the store's own key: the hash sits in the log's
    /// metadata, and an unkeyed hash of a body holding a person's name and
    /// ID number would let any reader of the log confirm a guess of them,
    /// erased or not.
    fn request_hash(&self, target: &Target, fingerprint: &[u8; 32]) -> Result<[u8; 32], AppError> {
        self.vault
            .keyed_hash(&[
                target.operation.as_bytes(),
                target.stream_id.as_bytes(),
                fingerprint,
            ])
            .map_err(|e| crate::personal::vault_error(e, fangkong_vault::STORE_KEY))
    }

    pub fn township(&self) -> Township {
        self.township
    }

    /// What this process's commands did so far.
    pub fn write_counts(&self) -> WriteCounts {
        WriteCounts {
            writes: self.writes.load(Ordering::Relaxed),
            events: self.appended.load(Ordering::Relaxed),
            conflicts: self.conflicts.load(Ordering::Relaxed),
        }
    }

    /// The position of an event this process found it cannot decode.
    pub fn corrupt_at(&self) -> Option<u64> {
        match self.corrupt_at.load(Ordering::Relaxed) {
            0 => None,
            position => Some(position),
        }
    }

    /// When a command happened: the client's `occurred_at`, refused when
    /// it lies further ahead than a device clock may run fast, and taken
    /// as now when it lies within that allowance (so a clock a minute fast
    /// at midnight does not date a visit tomorrow).
    pub fn occurred_at(
        &self,
        occurred_at: Option<DateTime<Utc>>,
    ) -> Result<DateTime<Utc>, AppError> {
        let now = Utc::now();
        let occurred_at = occurred_at.unwrap_or(now);
        if occurred_at > now + CLOCK_SKEW {
            return Err(AppError::invalid(
                "occurred_at",
                "lies in the future: record what has happened (check the device clock)",
            ));
        }
        Ok(occurred_at.min(now))
    }

    /// The context of a command that happened at `occurred_at`.
    pub fn context(&self, occurred_at: Option<DateTime<Utc>>) -> Result<Context, AppError> {
        Ok(self.context_at(self.occurred_at(occurred_at)?))
    }

    /// The context of a command whose `occurred_at` was already checked.
    fn context_at(&self, occurred_at: DateTime<Utc>) -> Context {
        Context {
            today: self.township.local_date(Utc::now()),
            occurred_on: self.township.local_date(occurred_at),
        }
    }

    /// The state this process last saw for the stream, if it kept one.
    fn cached<A>(&self, stream_id: &str) -> Option<Loaded<A>>
    where
        A: Aggregate + Send + Sync + 'static,
    {
        let cache = self.cache.lock().ok()?;
        let c = cache.get(stream_id)?;
        Some(Loaded {
            version: c.version,
            position: c.position,
            state: c.state.downcast_ref::<A>()?.clone(),
        })
    }

    /// The entity's current state: the cached state plus any events after it.
    pub async fn load<A>(&self, stream_id: &str) -> Result<Loaded<A>, AppError>
    where
        A: Aggregate + Send + Sync + 'static,
    {
        // A command decided ahead of its commit reads the stream as the
        // commands before it left it, or as this batch last read it.
        let Some(item) = Item::current().filter(|item| !item.has_passed()) else {
            return self.load_stored(stream_id).await;
        };
        item.read_state();
        if let Some(loaded) = item.overlay(stream_id).and_then(|c| c.loaded::<A>()) {
            return Ok(loaded);
        }
        let loaded = self.load_stored::<A>(stream_id).await?;
        item.set_overlay(stream_id, Cached::of(&loaded));
        Ok(loaded)
    }

    /// The stream's state as the log holds it now.
    async fn load_stored<A>(&self, stream_id: &str) -> Result<Loaded<A>, AppError>
    where
        A: Aggregate + Send + Sync + 'static,
    {
        let mut loaded = self.cached::<A>(stream_id).unwrap_or(Loaded {
            version: 0,
            position: 0,
            state: A::default(),
        });
        let start = loaded.version;
        loop {
            let page = self
                .store
                .read_stream(stream_id, loaded.version + 1, 1_000)
                .await?;
            let full = page.len() == 1_000;
            for recorded in page {
                let event = decode::<A>(&recorded).inspect_err(|_| {
                    self.corrupt_at.store(recorded.position, Ordering::Relaxed);
                })?;
                loaded.state = loaded.state.apply(&event);
                loaded.version = recorded.stream_version;
                loaded.position = recorded.position;
            }
            if !full {
                break;
            }
        }
        if loaded.version != start {
            self.remember(stream_id, &loaded);
        }
        Ok(loaded)
    }

    fn remember<A: Clone + Send + Sync + 'static>(&self, stream_id: &str, loaded: &Loaded<A>) {
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= MAX_CACHED {
                cache.clear();
            }
            let newer = cache
                .get(stream_id)
                .is_none_or(|c| c.version <= loaded.version);
            if newer {
                cache.insert(
                    stream_id.to_owned(),
                    Cached {
                        version: loaded.version,
                        position: loaded.position,
                        state: Arc::new(loaded.state.clone()),
                    },
                );
            }
        }
    }

    /// The turn ordered commands on this stream take in this process.
    fn turn(&self, stream_id: &str) -> &tokio::sync::Mutex<()> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        stream_id.hash(&mut h);
        &self.turns[(h.finish() % TURNS as u64) as usize]
    }

    /// Decides `command` on its target's state and records the events.
    pub async fn execute<C: Command>(
        &self,
        envelope: &Envelope,
        target: &Target,
        command: C,
    ) -> Result<Outcome, AppError> {
        if let Some(item) = Item::current() {
            return self.execute_ahead(&item, envelope, target, command).await;
        }
        // A sender's If-Match asks for the exact version, whatever the command.
        let independent = <C::Aggregate as Aggregate>::concurrency(&command)
            == Concurrency::Independent
            && envelope.if_match.is_none();
        let _turn = match independent {
            true => None,
            false => Some(self.turn(&target.stream_id).lock().await),
        };
        let request_hash = self.request_hash(target, &envelope.fingerprint)?;
        if let Some(replay) = self
            .replay(envelope, target, &request_hash, &command)
            .await?
        {
            return Ok(replay);
        }
        let occurred_at = self.occurred_at(envelope.occurred_at)?;
        let ctx = self.context_at(occurred_at);
        let metadata = metadata(envelope, &request_hash, occurred_at);

        let started = Instant::now();
        let mut attempts = 0u32;
        // First from this process's cache, without a query: the append's
        // expected version catches a write by another process, and any
        // refusal is decided again on fresh state before it is answered.
        let mut fresh = false;
        loop {
            attempts += 1;
            let loaded = match (fresh, self.cached::<C::Aggregate>(&target.stream_id)) {
                (false, Some(cached)) => cached,
                _ => {
                    fresh = true;
                    self.load::<C::Aggregate>(&target.stream_id).await?
                }
            };
            let events = match decide(envelope, target, &loaded, &command, &ctx) {
                Ok(events) => events,
                Err(_) if !fresh => {
                    fresh = true;
                    continue;
                }
                Err(refused) => {
                    // Another instance may have recorded this very command.
                    if let Some(replay) = self
                        .replay(envelope, target, &request_hash, &command)
                        .await?
                    {
                        return Ok(replay);
                    }
                    return Err(refused);
                }
            };
            if events.is_empty() {
                // "Nothing to change" is only true of the stream as it
                // stands, not as this process last saw it.
                if !fresh {
                    fresh = true;
                    continue;
                }
                // The same command, recorded meanwhile by another instance,
                // is answered as the first try was.
                if let Some(replay) = self
                    .replay(envelope, target, &request_hash, &command)
                    .await?
                {
                    return Ok(replay);
                }
                return Ok(Outcome {
                    stream_id: target.stream_id.clone(),
                    entity_id: target.entity_id,
                    version: loaded.version,
                    position: loaded.position,
                    events: vec![],
                    replayed: false,
                });
            }
            let mut sealing = None;
            let new_events = self.new_events(envelope, target, &events, &metadata, &mut sealing)?;
            let stored: Vec<serde_json::Value> =
                new_events.iter().map(|e| e.payload.clone()).collect();
            let expected = match (independent, loaded.version) {
                (true, _) => ExpectedVersion::Any,
                (false, 0) => ExpectedVersion::NoStream,
                (false, version) => ExpectedVersion::Exact(version),
            };
            // A subject's first key is stored with the events it sealed.
            let new_key = sealing.as_ref().and_then(|k| k.pending.clone());
            match self
                .store
                .append_with_key(&target.stream_id, expected, new_events, new_key)
                .await
            {
                Ok(outcome) if outcome.duplicate => {
                    // A concurrent try with the same key got there first.
                    match self
                        .replay(envelope, target, &request_hash, &command)
                        .await?
                    {
                        Some(replay) => return Ok(replay),
                        None => fresh = true,
                    }
                }
                Ok(outcome) => {
                    if let Some(sealing) = sealing {
                        self.vault.committed(sealing);
                    }
                    self.writes.fetch_add(1, Ordering::Relaxed);
                    self.appended
                        .fetch_add(events.len() as u64, Ordering::Relaxed);
                    // Only a stream no one else wrote in between can be
                    // folded forward here; otherwise the next load reads on.
                    if outcome.stream_version == loaded.version + events.len() as u64 {
                        let state = events.iter().fold(loaded.state, |s, e| s.apply(e));
                        self.remember(
                            &target.stream_id,
                            &Loaded {
                                version: outcome.stream_version,
                                position: outcome.position,
                                state,
                            },
                        );
                    }
                    return Ok(recorded_outcome(target, &events, stored, &outcome));
                }
                Err(StoreError::WrongExpectedVersion { actual, .. }) => {
                    self.conflicts.fetch_add(1, Ordering::Relaxed);
                    if let Some(expected) = envelope.if_match {
                        return Err(AppError::VersionMismatch { expected, actual });
                    }
                    if attempts >= MIN_ATTEMPTS && started.elapsed() >= RETRY_FOR {
                        tracing::warn!(
                            stream = %target.stream_id,
                            attempts,
                            "a command lost every attempt to other writers"
                        );
                        return Err(AppError::Contended { attempts });
                    }
                    // The first loss after a decision on cached state is
                    // retried at once; later ones back off, with jitter, so
                    // instances stop colliding.
                    if fresh {
                        tokio::time::sleep(backoff(attempts)).await;
                    }
                    fresh = true;
                    if let Some(replay) = self
                        .replay(envelope, target, &request_hash, &command)
                        .await?
                    {
                        return Ok(replay);
                    }
                }
                Err(StoreError::SubjectKeyTaken { subject }) => {
                    // Another writer made the subject's key first: seal
                    // again under it (the decision itself still stands).
                    if attempts >= MIN_ATTEMPTS {
                        return Err(AppError::Contended { attempts });
                    }
                    self.vault
                        .learn(&subject)
                        .await
                        .map_err(|e| crate::personal::vault_error(e, &subject))?;
                }
                Err(StoreError::EventIdReused { .. }) => {
                    return Err(AppError::KeyReused {
                        key: envelope.idempotency_key.clone().unwrap_or_default(),
                    })
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// A batch's command decided on the state the commands before it leave
    /// and queued on their chain (see [`crate::Pipeline`]). Anything but
    /// new events written on the chain answers [`AppError::Resequence`]:
    /// the command is then decided again the ordinary way, in its turn.
    async fn execute_ahead<C: Command>(
        &self,
        item: &Item,
        envelope: &Envelope,
        target: &Target,
        command: C,
    ) -> Result<Outcome, AppError> {
        if item.has_passed() {
            // A second command of one batch item: never decided ahead.
            return Err(AppError::Resequence);
        }
        let independent = <C::Aggregate as Aggregate>::concurrency(&command)
            == Concurrency::Independent
            && envelope.if_match.is_none();
        let request_hash = self.request_hash(target, &envelope.fingerprint)?;
        let occurred_at = self.occurred_at(envelope.occurred_at)?;
        let ctx = self.context_at(occurred_at);
        let metadata = metadata(envelope, &request_hash, occurred_at);
        // From here on the answer depends on the state.
        item.read_state();
        // Decided and queued in the stream's turn, so this process's other
        // writers queue theirs before or after, not in between.
        let turn = match independent {
            true => None,
            false => Some(self.turn(&target.stream_id).lock().await),
        };
        let loaded = match item.overlay(&target.stream_id).and_then(|c| c.loaded()) {
            Some(loaded) => loaded,
            None => match self.cached::<C::Aggregate>(&target.stream_id) {
                Some(cached) => cached,
                None => self.load_stored::<C::Aggregate>(&target.stream_id).await?,
            },
        };
        // A refusal, or nothing to change, may be an answer about stale
        // state or a retry of a stored write: the ordinary way tells.
        let events =
            decide(envelope, target, &loaded, &command, &ctx).map_err(|_| AppError::Resequence)?;
        if events.is_empty() {
            return Err(AppError::Resequence);
        }
        // A key the batch made serves later commands only while the person
        // is not erased; the vault refuses them after.
        let mut sealing = item
            .sealing_key(&target.stream_id)
            .filter(|_| !self.vault.is_erased(&target.stream_id));
        let new_events = self.new_events(envelope, target, &events, &metadata, &mut sealing)?;
        let stored: Vec<serde_json::Value> = new_events.iter().map(|e| e.payload.clone()).collect();
        // The chain, not the version, keeps an independent command on a
        // stream the batch created from being stored without it.
        let expected = match (independent, loaded.version) {
            (true, _) => ExpectedVersion::Any,
            (false, 0) => ExpectedVersion::NoStream,
            (false, version) => ExpectedVersion::Exact(version),
        };
        let new_key = sealing.as_ref().and_then(|k| k.pending.clone());
        let Some(first_id) = new_events.first().map(|e| e.event_id) else {
            return Err(AppError::Resequence);
        };
        let chain = item.chain();
        let submitted = self
            .store
            .submit(
                &target.stream_id,
                expected,
                new_events,
                new_key,
                Some(&chain),
            )
            .await
            // Nothing was queued (a store shut down, an append it cannot
            // take): deciding again the ordinary way is safe and meets the
            // same answer the command alone would.
            .map_err(|_| AppError::Resequence)?;
        let version = loaded.version + events.len() as u64;
        let state = events.iter().fold(loaded.state, |s, e| s.apply(e));
        item.queued(
            &target.stream_id,
            Cached {
                version,
                position: loaded.position,
                state: Arc::new(state.clone()),
            },
            sealing.as_ref(),
            first_id,
        );
        item.pass();
        drop(turn);

        let outcome = match submitted.outcome().await {
            Ok(outcome) if !outcome.duplicate => outcome,
            // A retry of a stored write, or not written as decided: the
            // ordinary way answers it.
            Ok(_)
            | Err(
                StoreError::ChainBroken
                | StoreError::WrongExpectedVersion { .. }
                | StoreError::EventIdReused { .. }
                | StoreError::SubjectKeyTaken { .. },
            ) => return Err(AppError::Resequence),
            // The store failed under it, perhaps after committing: the
            // sender is told so, as it would be for the command alone, and
            // retries with its key; deciding again here could record an
            // unkeyed command twice.
            Err(error) => {
                item.stands();
                return Err(error.into());
            }
        };
        item.stands();
        if let Some(sealing) = sealing {
            self.vault.committed(sealing);
        }
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.appended
            .fetch_add(events.len() as u64, Ordering::Relaxed);
        if outcome.stream_version == version {
            self.remember(
                &target.stream_id,
                &Loaded {
                    version,
                    position: outcome.position,
                    state,
                },
            );
        }
        Ok(recorded_outcome(target, &events, stored, &outcome))
    }

    /// The events of a decision as the store takes them: ids from the
    /// idempotency key, personal fields sealed.
    fn new_events<E: fangkong_domain::EventCodec>(
        &self,
        envelope: &Envelope,
        target: &Target,
        events: &[E],
        metadata: &serde_json::Value,
        sealing: &mut Option<fangkong_vault::SealingKey>,
    ) -> Result<Vec<NewEvent>, AppError> {
        let mut new_events: Vec<NewEvent> = Vec::with_capacity(events.len());
        for (i, event) in events.iter().enumerate() {
            let event_id = match &envelope.idempotency_key {
                Some(key) => key_event_id(
                    key,
                    envelope.actor.token_id,
                    target.operation,
                    &target.stream_id,
                    i,
                ),
                None => Uuid::now_v7(),
            };
            // Sealed before the store hashes it: the chain covers the
            // ciphertext, so destroying the key erases the person and
            // every hash still verifies.
            let mut payload = event.to_payload();
            crate::personal::seal_payload(
                &self.vault,
                sealing,
                &target.stream_id,
                event.event_type(),
                &mut payload,
            )?;
            new_events.push(
                NewEvent::new(event.event_type(), payload)
                    .with_id(event_id)
                    .with_schema_version(event.schema_version())
                    .with_metadata(metadata.clone()),
            );
        }
        Ok(new_events)
    }

    /// Waits, in a batch, until every command before this one is answered
    /// (at once otherwise): for a decision that reads what they wrote
    /// beyond the streams it loads, such as a day's recorded figures.
    pub async fn settle(&self) {
        if let Some(item) = Item::current() {
            item.settle().await;
        }
    }

    /// The stored outcome of `command` if this sender already recorded it
    /// under the envelope's key on `target` (none without a key): for a
    /// route whose stream depends on the day, to find a retry's first try
    /// on the day before.
    pub async fn recorded<C: Command>(
        &self,
        envelope: &Envelope,
        target: &Target,
        command: &C,
    ) -> Result<Option<Outcome>, AppError> {
        // In a batch, the first try may be a command before this one, still
        // on its way to the log: then wait for it.
        if let (Some(item), Some(key)) = (Item::current(), &envelope.idempotency_key) {
            item.read_state();
            let first_id = key_event_id(
                key,
                envelope.actor.token_id,
                target.operation,
                &target.stream_id,
                0,
            );
            if item.is_queued(first_id) {
                item.settle().await;
            }
        }
        let request_hash = self.request_hash(target, &envelope.fingerprint)?;
        self.replay(envelope, target, &request_hash, command).await
    }

    /// The stored outcome of the same command sent earlier with the same
    /// key, authorised as this sender: the key is scoped to the operation
    /// and the stream, so what is found is always this target's.
    async fn replay<C: Command>(
        &self,
        envelope: &Envelope,
        target: &Target,
        request_hash: &[u8; 32],
        command: &C,
    ) -> Result<Option<Outcome>, AppError> {
        let Some(key) = &envelope.idempotency_key else {
            return Ok(None);
        };
        let first_id = key_event_id(
            key,
            envelope.actor.token_id,
            target.operation,
            &target.stream_id,
            0,
        );
        let Some(first) = self.store.read_event(first_id).await? else {
            return Ok(None);
        };
        let reused = || AppError::KeyReused { key: key.clone() };
        if first.stream_id != target.stream_id {
            return Err(reused());
        }
        // Authorised as this sender, on the entity as it stands, before
        // anything about the earlier request is said.
        let loaded = self.load::<C::Aggregate>(&target.stream_id).await?;
        if !command.admitted(&loaded.state, &envelope.actor.scope) {
            return Err(AppError::NotFound {
                what: target.category().to_owned(),
            });
        }
        let hash = hex::encode(request_hash);
        if EventMetadata::read(&first.metadata).request_hash.as_deref() != Some(hash.as_str()) {
            return Err(reused());
        }
        let recorded = self
            .store
            .read_stream(&target.stream_id, first.stream_version, 1_000)
            .await?;
        let events: Vec<RecordedEvent> = recorded
            .into_iter()
            .enumerate()
            .take_while(|(i, e)| {
                e.event_id
                    == key_event_id(
                        key,
                        envelope.actor.token_id,
                        target.operation,
                        &target.stream_id,
                        *i,
                    )
            })
            .map(|(_, e)| e)
            .collect();
        let last = events.last().unwrap_or(&first);
        Ok(Some(Outcome {
            stream_id: target.stream_id.clone(),
            entity_id: target.entity_id,
            version: last.stream_version,
            position: last.position,
            replayed: true,
            events: events
                .iter()
                .map(|e| RecordedChange {
                    position: e.position,
                    event_type: e.event_type.clone(),
                    schema_version: e.schema_version,
                    data: e.payload.clone(),
                })
                .collect(),
        }))
    }
}

/// The decision: the sender's scope, their `If-Match`, then the domain.
fn decide<C: Command>(
    envelope: &Envelope,
    target: &Target,
    loaded: &Loaded<C::Aggregate>,
    command: &C,
    ctx: &Context,
) -> Result<Vec<<C::Aggregate as Aggregate>::Event>, AppError> {
    if !command.admitted(&loaded.state, &envelope.actor.scope) {
        return Err(AppError::NotFound {
            what: target.category().to_owned(),
        });
    }
    if let Some(expected) = envelope.if_match {
        if expected != loaded.version {
            if loaded.version == 0 {
                // Nothing there: a command that needs the entity says so in
                // the words an unknown or out-of-zone one gets, never with
                // a version that tells them apart.
                loaded.state.handle(command, ctx)?;
            }
            return Err(AppError::VersionMismatch {
                expected,
                actual: loaded.version,
            });
        }
    }
    Ok(loaded.state.handle(command, ctx)?)
}

/// What a command's events record about it.
fn metadata(
    envelope: &Envelope,
    request_hash: &[u8; 32],
    occurred_at: DateTime<Utc>,
) -> serde_json::Value {
    EventMetadata {
        occurred_at: Some(occurred_at),
        request_id: Some(envelope.request_id.clone()),
        correlation_id: envelope.correlation_id.clone(),
        causation_id: envelope.causation_id.clone(),
        idempotency_key: envelope.idempotency_key.clone(),
        request_hash: Some(hex::encode(request_hash)),
        actor: Some(envelope.actor.record()),
    }
    .to_value()
}

/// The answer to a command whose events were written.
fn recorded_outcome<E: fangkong_domain::EventCodec>(
    target: &Target,
    events: &[E],
    stored: Vec<serde_json::Value>,
    outcome: &fangkong_store::AppendOutcome,
) -> Outcome {
    Outcome {
        stream_id: target.stream_id.clone(),
        entity_id: target.entity_id,
        version: outcome.stream_version,
        position: outcome.position,
        events: events
            .iter()
            .zip(stored)
            .enumerate()
            .map(|(i, (e, data))| RecordedChange {
                position: outcome.first_position + i as u64,
                event_type: e.event_type().to_owned(),
                schema_version: e.schema_version(),
                data,
            })
            .collect(),
        replayed: false,
    }
}

/// Reads a stored event as the aggregate's event type.
pub fn decode<A: Aggregate>(recorded: &RecordedEvent) -> Result<A::Event, AppError> {
    A::Event::from_stored(
        &recorded.event_type,
        recorded.schema_version,
        recorded.payload.clone(),
    )
    .map_err(|error| {
        tracing::error!(position = recorded.position, %error, "a stored event cannot be decoded");
        AppError::Corrupt {
            position: recorded.position,
        }
    })
}

/// A random pause, growing with the attempts.
fn backoff(attempts: u32) -> Duration {
    let ceiling = Duration::from_millis(2u64 << attempts.min(8)).min(MAX_BACKOFF);
    let random = Uuid::new_v4().as_u128() as u64;
    Duration::from_micros(random % (ceiling.as_micros() as u64).max(1))
}
