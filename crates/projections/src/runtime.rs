//! Tails the log and keeps the read models current; saves them now and
//! then so a restart resumes where it stopped; answers "wait until you have
//! seen position n" so a reader can rely on its own writes; rebuilds them as
//! they stood at any earlier position.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono::Utc;
use fangkong_domain::Township;
use fangkong_store::{Checkpoint, EventStore, LogFilter, RecordedEvent, StoreError};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::{Board, QuarantineRoster, StateKey};

impl StateKey {
    /// The read models' checkpoint, sealed under this key.
    pub fn sealed(&self, position: u64, hash: [u8; 32], state: Vec<u8>) -> Checkpoint {
        Checkpoint {
            position,
            hash,
            format: STATE_FORMAT,
            state: self.seal(CHECKPOINT_NAME, position, &hash, STATE_FORMAT, &state),
            saved_at: Utc::now(),
        }
    }

    /// The saved read models, when this key sealed them.
    pub fn unseal(&self, saved: &Checkpoint) -> Option<ReadModels> {
        let state = self.open(
            CHECKPOINT_NAME,
            saved.position,
            &saved.hash,
            saved.format,
            &saved.state,
        )?;
        ReadModels::from_state(state).ok()
    }
}

/// Name of the saved state in the store.
pub const CHECKPOINT_NAME: &str = "read-models";
/// Bumped whenever the shape or meaning of the saved state changes: a
/// state in another format is never resumed, the log is replayed instead.
pub const STATE_FORMAT: u32 = 7;
/// Events read per page while replaying.
const PAGE: usize = 1_000;
/// As-of boards kept, so an auditor paging through one moment, or walking
/// forward through several, does not replay from the start each time.
const AS_OF_KEPT: usize = 4;
/// As-of rebuilds running at once.
const AS_OF_AT_ONCE: usize = 2;
/// As-of rebuilds one requester (a token) may run at once: one walking
/// back through history never holds every slot.
const AS_OF_PER_REQUESTER: usize = 1;

/// Every read model, updated together so a reader never sees one ahead of
/// another.
///
/// The token registry is never saved: credentials come from the log alone,
/// so a resumed runtime rebuilds it from the log's token events.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadModels {
    pub board: Board,
    pub roster: QuarantineRoster,
    pub directory: crate::Directory,
    /// Rebuilt as of an earlier position, for figures only: the lists are
    /// read live, so an as-of rebuild does not fold them.
    #[serde(skip)]
    pub figures_only: bool,
    #[serde(skip)]
    pub tokens: crate::TokenRegistry,
}

/// An event of the log the read models cannot take in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the event at position {position} ({event_type}) cannot be applied: {reason}")]
pub struct Unapplicable {
    pub position: u64,
    pub event_type: String,
    pub reason: String,
}

impl ReadModels {
    /// Takes in one event, or refuses it, changing nothing, when it belongs
    /// to the domain but cannot be read as any of its events: figures
    /// silently short are worse than figures that stop.
    pub fn apply(
        &mut self,
        event: &RecordedEvent,
        township: &Township,
    ) -> Result<(), Unapplicable> {
        let refused = |reason: String| Unapplicable {
            position: event.position,
            event_type: event.event_type.clone(),
            reason,
        };
        // Most of the log is returnee events: decode each once for both.
        let returnee = if event.stream_id.starts_with("returnee-") {
            match crate::board::decode_returnee(event) {
                Some(decoded) => Some(decoded),
                None => return Err(refused("not a returnee event of this domain".into())),
            }
        } else {
            let category = fangkong_store::category_of(&event.stream_id);
            if self.figures_only || !crate::Directory::lists(category) {
                fangkong_domain::check_decodes(
                    category,
                    &event.event_type,
                    event.schema_version,
                    &event.payload,
                )
                .map_err(|e| refused(e.to_string()))?;
            }
            None
        };
        // The directory decodes what it lists, and refuses before anything
        // changes.
        if !self.figures_only {
            self.directory
                .apply(event, returnee.as_ref())
                .map_err(|e| refused(e.to_string()))?;
        }
        if let Some((id, decoded)) = &returnee {
            self.roster.apply_returnee(*id, decoded);
        }
        self.board.apply_prepared(event, township, returnee);
        self.tokens.apply(event);
        Ok(())
    }

    pub fn position(&self) -> u64 {
        self.board.position()
    }

    /// Continues replaying the log from where these models stand, up to
    /// and including `until`.
    pub async fn replay_until(
        &mut self,
        store: &EventStore,
        township: &Township,
        until: u64,
    ) -> Result<(), ProjectorError> {
        while self.position() < until {
            let page = store
                .read_all(self.position(), PAGE, &LogFilter::default())
                .await?;
            if page.is_empty() {
                break;
            }
            for event in page.iter().take_while(|e| e.position <= until) {
                self.apply(event, township)?;
            }
        }
        Ok(())
    }

    /// Rebuilds the token registry from the log's token events up to the
    /// models' position (after resuming saved state, which never holds it).
    pub async fn rebuild_tokens(&mut self, store: &EventStore) -> Result<(), StoreError> {
        let until = self.position();
        let filter = LogFilter {
            category: Some("token".into()),
            ..Default::default()
        };
        let mut registry = crate::TokenRegistry::default();
        let mut after = 0;
        loop {
            let page = store.read_all(after, PAGE, &filter).await?;
            let Some(last) = page.last() else { break };
            after = last.position;
            for event in page.iter().filter(|e| e.position <= until) {
                registry.apply(event);
            }
            if after >= until {
                break;
            }
        }
        self.tokens = registry;
        Ok(())
    }

    /// The read models replayed from position 0 to `until` (the head when
    /// `None`): what `fangkong rebuild` computes.
    pub async fn rebuild(
        store: &EventStore,
        township: &Township,
        until: Option<u64>,
    ) -> Result<ReadModels, ProjectorError> {
        let until = match until {
            Some(p) => p,
            None => store.head().await?.position,
        };
        let mut models = ReadModels::default();
        models.replay_until(store, township, until).await?;
        Ok(models)
    }

    /// The models as a checkpoint stores them: their JSON, compressed.
    pub fn to_state(&self) -> Result<Vec<u8>, StateError> {
        compress_state(&serde_json::to_vec(self)?)
    }

    /// The models a checkpoint's state holds (opened and checked first: a
    /// state is only read after its seal verified).
    pub fn from_state(state: &[u8]) -> Result<ReadModels, StateError> {
        let json = zstd::stream::decode_all(state)?;
        Ok(serde_json::from_slice(&json)?)
    }
}

/// zstd's level for saved state: its default, a small fraction of the
/// JSON (the same keys over and over) for little more time than writing
/// the JSON takes.
const STATE_COMPRESSION: i32 = 3;

/// The models' JSON as a checkpoint stores it.
fn compress_state(json: &[u8]) -> Result<Vec<u8>, StateError> {
    Ok(zstd::bulk::compress(json, STATE_COMPRESSION)?)
}

/// Why read models cannot be saved or read back.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("the read models cannot be encoded: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the saved state cannot be compressed or decompressed: {0}")]
    Compression(#[from] std::io::Error),
}

#[derive(Debug, thiserror::Error)]
pub enum ProjectorError {
    #[error("the projection reached position {reached}, not yet {wanted}")]
    Behind { reached: u64, wanted: u64 },
    #[error("the log ends at position {head}; there is no position {wanted} yet")]
    BeyondTheLog { head: u64, wanted: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Unapplicable(#[from] Unapplicable),
    #[error("the read models cannot be saved: {0}")]
    Encode(#[from] StateError),
}

#[derive(Debug, Clone)]
pub struct ProjectorOptions {
    /// How often the state is saved while the log moves.
    pub save_every: Duration,
    /// Seals the saved state; a state sealed under another key is never
    /// resumed. The default is a key of this process alone: set one kept
    /// outside the store to resume across restarts.
    pub state_key: StateKey,
}

impl Default for ProjectorOptions {
    fn default() -> Self {
        ProjectorOptions {
            save_every: Duration::from_secs(30),
            state_key: StateKey::random().unwrap_or_else(|_| process_key()),
        }
    }
}

/// A key no other process knows, without the operating system's
/// generator (when it fails, the state saved is simply never resumed).
fn process_key() -> StateKey {
    let mut bytes = [0u8; 32];
    bytes[..16].copy_from_slice(uuid::Uuid::now_v7().as_bytes());
    bytes[16..].copy_from_slice(&(std::process::id() as u128).to_be_bytes());
    StateKey::from_bytes(bytes)
}

/// The running read models of this process.
#[derive(Debug, Clone)]
pub struct Projector {
    store: EventStore,
    township: Township,
    models: Arc<RwLock<ReadModels>>,
    position: watch::Receiver<u64>,
    resumed_from: watch::Receiver<Option<u64>>,
    as_of: Arc<Mutex<VecDeque<Arc<ReadModels>>>>,
    /// As-of rebuilds replay the log: a few at a time, so a burst of them
    /// queues instead of starving the service.
    rebuilds: Arc<tokio::sync::Semaphore>,
    /// Each requester's own share of those: taken before a shared slot.
    requesters: Arc<Mutex<std::collections::HashMap<uuid::Uuid, Arc<tokio::sync::Semaphore>>>>,
    /// A save of the tail's is on its way to the store.
    saving: Arc<std::sync::atomic::AtomicBool>,
    /// Set when the tail met an event it cannot apply: it stops there.
    stalled: Arc<RwLock<Option<Unapplicable>>>,
    state_key: StateKey,
}

impl Projector {
    /// Starts the read models from their saved state (when it belongs to
    /// this log and this format) and tails the log from there.
    pub fn start(store: EventStore, township: Township, options: ProjectorOptions) -> Projector {
        let models = Arc::new(RwLock::new(ReadModels::default()));
        let (position_tx, position) = watch::channel(0);
        let (resumed_tx, resumed_from) = watch::channel(None);
        let projector = Projector {
            store,
            township,
            models,
            position,
            resumed_from,
            as_of: Arc::new(Mutex::new(VecDeque::new())),
            rebuilds: Arc::new(tokio::sync::Semaphore::new(AS_OF_AT_ONCE)),
            requesters: Arc::default(),
            saving: Arc::default(),
            stalled: Arc::new(RwLock::new(None)),
            state_key: options.state_key.clone(),
        };
        let runner = projector.clone();
        tokio::spawn(async move {
            let resumed = runner.resume().await;
            let _ = resumed_tx.send(Some(resumed));
            let _ = position_tx.send(resumed);
            runner.tail(position_tx, options).await;
        });
        projector
    }

    /// Loads the saved state; 0 (start from scratch) when there is none or
    /// it cannot be trusted.
    async fn resume(&self) -> u64 {
        let saved = match self.store.load_checkpoint(CHECKPOINT_NAME).await {
            Ok(Some(saved)) => saved,
            Ok(None) => return 0,
            Err(error) => {
                tracing::warn!(%error, "cannot read the saved read models; replaying the log");
                return 0;
            }
        };
        if saved.format != STATE_FORMAT {
            tracing::info!(
                saved = saved.format,
                current = STATE_FORMAT,
                "saved read models are in an older format; replaying the log"
            );
            return 0;
        }
        match self.store.hash_at(saved.position).await {
            Ok(Some(hash)) if hash == saved.hash => {}
            Ok(_) => {
                tracing::warn!(
                    position = saved.position,
                    "saved read models belong to another log; replaying the log"
                );
                return 0;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot check the saved read models; replaying the log");
                return 0;
            }
        }
        let Some(mut models) = self.state_key.unseal(&saved) else {
            tracing::warn!(
                position = saved.position,
                "saved read models are not sealed by this service's state key, or cannot be read; replaying the log"
            );
            return 0;
        };
        if models.position() != saved.position {
            tracing::warn!("saved read models cannot be read; replaying the log");
            return 0;
        }
        if let Err(error) = models.rebuild_tokens(&self.store).await {
            tracing::warn!(%error, "cannot read the log's tokens; replaying the log");
            return 0;
        }
        if let Ok(mut live) = self.models.write() {
            *live = models;
        }
        tracing::info!(position = saved.position, "read models resumed");
        saved.position
    }

    async fn tail(&self, position_tx: watch::Sender<u64>, options: ProjectorOptions) {
        let mut heads = self.store.subscribe();
        let mut after = self.position();
        let mut saved_at = after;
        let mut last_save = tokio::time::Instant::now();
        loop {
            match self
                .store
                .read_all(after, PAGE, &LogFilter::default())
                .await
            {
                Ok(page) if !page.is_empty() => {
                    let (applied, refused) = self.apply_page(&page);
                    if applied > after {
                        after = applied;
                        let _ = position_tx.send(after);
                    }
                    match refused {
                        None => {
                            self.set_stalled(None);
                            continue;
                        }
                        Some(refused) => {
                            // Stop here, loudly, rather than step over it:
                            // try again now and then (an administrator may
                            // repair the store), never past it.
                            if self.stalled().as_ref() != Some(&refused) {
                                tracing::error!(
                                    position = refused.position,
                                    event_type = %refused.event_type,
                                    reason = %refused.reason,
                                    "the read models stopped: an event of the log cannot be applied"
                                );
                            }
                            self.set_stalled(Some(refused));
                            tokio::time::sleep(Duration::from_secs(5)).await;
                            continue;
                        }
                    }
                }
                Ok(_) => {}
                Err(error) if error.is_closed() => break,
                Err(error) => {
                    tracing::warn!(%error, "projection cannot read the log; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            }
            // Caught up: a good moment to save, when enough time has passed.
            if after > saved_at && last_save.elapsed() >= options.save_every {
                if let Some(p) = self.save_behind() {
                    saved_at = p;
                }
                last_save = tokio::time::Instant::now();
            }
            // Woken by new positions; the timeout guards against a missed
            // notification and lets a due save happen.
            let _ = tokio::time::timeout(Duration::from_secs(1), heads.changed()).await;
        }
    }

    /// Applies a page in order up to the first event that cannot be
    /// applied; answers the last position applied and the refusal.
    fn apply_page(&self, page: &[RecordedEvent]) -> (u64, Option<Unapplicable>) {
        let mut models = match self.models.write() {
            Ok(models) => models,
            Err(_) => {
                // A panic while applying left the models in an unknown
                // state: nothing more is applied to them.
                let first = page.first();
                return (
                    0,
                    Some(Unapplicable {
                        position: first.map_or(0, |e| e.position),
                        event_type: first.map_or_else(String::new, |e| e.event_type.clone()),
                        reason: "the read models were left inconsistent by an earlier failure"
                            .into(),
                    }),
                );
            }
        };
        for event in page {
            if let Err(refused) = models.apply(event, &self.township) {
                return (models.position(), Some(refused));
            }
        }
        (models.position(), None)
    }

    fn set_stalled(&self, refused: Option<Unapplicable>) {
        if let Ok(mut stalled) = self.stalled.write() {
            if *stalled != refused {
                *stalled = refused;
            }
        }
    }

    /// The event the tail stopped at, when it met one it cannot apply.
    pub fn stalled(&self) -> Option<Unapplicable> {
        match self.stalled.read() {
            Ok(stalled) => stalled.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Saves the current state now (the server does at shutdown). Answers
    /// the position saved.
    pub async fn save(&self) -> Result<u64, ProjectorError> {
        let (position, json) = self.render()?;
        self.store_state(position, json).await
    }

    /// The models' position and JSON, read under their lock.
    fn render(&self) -> Result<(u64, Vec<u8>), ProjectorError> {
        let models = self.models.read().map_err(|_| poisoned())?;
        Ok((
            models.position(),
            serde_json::to_vec(&*models).map_err(StateError::from)?,
        ))
    }

    /// The tail's save: the JSON is rendered here (the tail, being this
    /// task, applies nothing meanwhile), then compressed and stored by a
    /// task of its own while the tail goes on. One at a time: answers the
    /// position being saved, or `None` when a save is still on its way or
    /// the models cannot be rendered.
    fn save_behind(&self) -> Option<u64> {
        if self.saving.swap(true, std::sync::atomic::Ordering::AcqRel) {
            return None;
        }
        let (position, json) = match self.render() {
            Ok(rendered) => rendered,
            Err(error) => {
                tracing::warn!(%error, "read models not saved");
                self.saving
                    .store(false, std::sync::atomic::Ordering::Release);
                return None;
            }
        };
        let projector = self.clone();
        tokio::spawn(async move {
            // A later save never loses to this one: the store keeps the
            // state of the highest position.
            if let Err(error) = projector.store_state(position, json).await {
                tracing::warn!(%error, "read models not saved");
            }
            projector
                .saving
                .store(false, std::sync::atomic::Ordering::Release);
        });
        Some(position)
    }

    /// Compresses and stores the models' JSON as of `position`.
    async fn store_state(&self, position: u64, json: Vec<u8>) -> Result<u64, ProjectorError> {
        // Off the async workers: a large state takes a while.
        let state = tokio::task::spawn_blocking(move || compress_state(&json))
            .await
            .map_err(|e| StateError::Compression(std::io::Error::other(e.to_string())))??;
        let Some(hash) = self.store.hash_at(position).await? else {
            return Ok(0);
        };
        self.store
            .save_checkpoint(
                CHECKPOINT_NAME,
                &self.state_key.sealed(position, hash, state),
            )
            .await?;
        Ok(position)
    }

    /// The last position the read models reflect.
    pub fn position(&self) -> u64 {
        *self.position.borrow()
    }

    /// The position the read models reflect, as it changes.
    pub fn watch_position(&self) -> watch::Receiver<u64> {
        self.position.clone()
    }

    /// The position the saved state let this process start from (0: the
    /// whole log was replayed), once known.
    pub fn resumed_from(&self) -> Option<u64> {
        *self.resumed_from.borrow()
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

    /// Reads the live models, consistently with the position they reflect.
    pub fn read<T>(&self, read: impl FnOnce(&ReadModels) -> T) -> T {
        match self.models.read() {
            Ok(models) => read(&models),
            // A panic while applying cannot leave a half-applied event
            // visible to readers in any way that matters more than
            // answering: read what is there.
            Err(poisoned) => read(&poisoned.into_inner()),
        }
    }

    /// [`Projector::as_of`] for `requester` (a token id), who runs at most
    /// one rebuild at a time: further ones wait their turn, so the shared
    /// slots stay open to others.
    pub async fn as_of_for(
        &self,
        requester: uuid::Uuid,
        position: u64,
    ) -> Result<Arc<ReadModels>, ProjectorError> {
        let own = {
            let mut requesters = self.requesters.lock().map_err(|_| poisoned())?;
            // Only requesters with a rebuild running or waiting are kept.
            requesters.retain(|_, turn| Arc::strong_count(turn) > 1);
            requesters
                .entry(requester)
                .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(AS_OF_PER_REQUESTER)))
                .clone()
        };
        let _own = own
            .acquire()
            .await
            .map_err(|_| ProjectorError::Store(StoreError::Closed))?;
        self.as_of(position).await
    }

    /// Shared as-of slots free now (for tests and metrics).
    pub fn as_of_slots_free(&self) -> usize {
        self.rebuilds.available_permits()
    }

    /// The read models exactly as they stood at `position`, rebuilt from
    /// the log (from the nearest kept earlier rebuild, when there is one).
    pub async fn as_of(&self, position: u64) -> Result<Arc<ReadModels>, ProjectorError> {
        let head = self.store.head().await?.position;
        if position > head {
            return Err(ProjectorError::BeyondTheLog {
                head,
                wanted: position,
            });
        }
        let _turn = self
            .rebuilds
            .acquire()
            .await
            .map_err(|_| ProjectorError::Store(StoreError::Closed))?;
        let start = {
            let kept = self.as_of.lock().map_err(|_| poisoned())?;
            if let Some(hit) = kept.iter().find(|m| m.position() == position) {
                return Ok(hit.clone());
            }
            kept.iter()
                .filter(|m| m.position() < position)
                .max_by_key(|m| m.position())
                .cloned()
        };
        let mut models = start.map_or_else(
            || ReadModels {
                figures_only: true,
                ..ReadModels::default()
            },
            |m| (*m).clone(),
        );
        models
            .replay_until(&self.store, &self.township, position)
            .await?;
        let models = Arc::new(models);
        let mut kept = self.as_of.lock().map_err(|_| poisoned())?;
        if kept.len() >= AS_OF_KEPT {
            kept.pop_front();
        }
        kept.push_back(models.clone());
        Ok(models)
    }

    pub fn township(&self) -> &Township {
        &self.township
    }
}

fn poisoned() -> ProjectorError {
    ProjectorError::Store(StoreError::Unavailable("read models lock poisoned".into()))
}
