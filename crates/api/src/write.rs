//! The command path: load the entity's state (from memory when the cache is
//! current), decide, append with the expected version, retry once on a
//! concurrent write, answer. Idempotency keys become deterministic event
//! ids, so a retry finds the first attempt in the log itself, whichever
//! instance served it and across restarts.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use fangkong_domain::{Aggregate, Context, EventCodec, Township};
use fangkong_store::{EventStore, ExpectedVersion, NewEvent, RecordedEvent, StoreError};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::extract::WriteHeaders;
use crate::problem::ApiError;

/// Namespace of the event ids derived from idempotency keys.
const IDEMPOTENCY_NAMESPACE: Uuid = Uuid::from_u128(0x6661_6e67_6b6f_6e67_2d69_6465_6d70_6f74);
/// Streams whose state is kept in memory before the cache starts over.
const MAX_CACHED: usize = 100_000;
/// How far in the future a client's clock may be before `occurred_at` is refused.
const CLOCK_SKEW: chrono::Duration = chrono::Duration::minutes(5);

/// One event of a write's answer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WrittenEvent {
    pub position: u64,
    #[serde(rename = "type")]
    pub event_type: String,
    pub schema_version: u32,
    pub data: serde_json::Value,
}

/// The answer to every write.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0190f5a2-7c1e-7d3a-9a51-3f1f2b6c8d10",
    "version": 3,
    "position": 1042,
    "events": [{"position": 1042, "type": "QuarantineStarted", "schema_version": 1,
                "data": {"start_date": "2020-01-25", "planned_days": 14, "planned_end": "2020-02-07"}}]
}))]
pub struct Written {
    /// The entity written to.
    pub id: Uuid,
    /// Its stream version after the write (the `ETag`).
    pub version: u64,
    /// The global position of the write's last event: pass it as
    /// `min_position` to read your own write from a projection.
    pub position: u64,
    /// The events recorded (none when the command changed nothing).
    pub events: Vec<WrittenEvent>,
    /// True when this is the stored answer to an earlier request with the
    /// same Idempotency-Key.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub replayed: bool,
}

/// An entity's state as of its stream's version.
#[derive(Debug, Clone)]
pub struct Loaded<A> {
    pub version: u64,
    pub position: u64,
    pub state: A,
}

#[derive(Debug, Clone)]
struct Cached {
    version: u64,
    position: u64,
    state: Arc<dyn Any + Send + Sync>,
}

/// What a write is about.
#[derive(Debug, Clone)]
pub struct Target {
    pub stream_id: String,
    pub entity_id: Uuid,
    /// Names the operation, so one idempotency key cannot be replayed
    /// against another route.
    pub operation: &'static str,
}

/// Runs commands against the event store.
#[derive(Debug, Clone)]
pub struct Commands {
    store: EventStore,
    township: Township,
    cache: Arc<Mutex<HashMap<String, Cached>>>,
    metrics: crate::metrics::Metrics,
    /// The position of a stored event found undecodable (0: none yet):
    /// readiness fails from then on, naming it.
    corrupt_at: Arc<std::sync::atomic::AtomicU64>,
}

impl Commands {
    pub fn new(store: EventStore, township: Township, metrics: crate::metrics::Metrics) -> Self {
        Commands {
            store,
            township,
            cache: Arc::new(Mutex::new(HashMap::new())),
            metrics,
            corrupt_at: Arc::new(std::sync::atomic::AtomicU64::new(0)),
        }
    }

    pub fn store(&self) -> &EventStore {
        &self.store
    }

    /// The position of an event this process found it cannot decode.
    pub fn corrupt_at(&self) -> Option<u64> {
        match self.corrupt_at.load(std::sync::atomic::Ordering::Relaxed) {
            0 => None,
            position => Some(position),
        }
    }

    pub fn township(&self) -> Township {
        self.township
    }

    /// The context of a command that happened at `occurred_at`.
    pub fn context(&self, occurred_at: Option<DateTime<Utc>>) -> Result<Context, ApiError> {
        let now = Utc::now();
        let occurred_at = occurred_at.unwrap_or(now);
        if occurred_at > now + CLOCK_SKEW {
            return Err(ApiError::field(
                "occurred_at",
                "lies in the future: record what has happened (check the device clock)",
            ));
        }
        Ok(Context {
            today: self.township.local_date(now),
            occurred_on: self.township.local_date(occurred_at),
        })
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
    pub async fn load<A>(&self, stream_id: &str) -> Result<Loaded<A>, ApiError>
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
                    self.corrupt_at
                        .store(recorded.position, std::sync::atomic::Ordering::Relaxed);
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

    /// Decides `command` on the target's current state and records the
    /// events.
    pub async fn execute<A, P>(
        &self,
        target: &Target,
        headers: &WriteHeaders<P>,
        body_hash: [u8; 32],
        occurred_at: Option<DateTime<Utc>>,
        command: A::Command,
        authorize: impl Fn(&A, &A::Command) -> Result<(), ApiError>,
    ) -> Result<Written, ApiError>
    where
        A: Aggregate + Send + Sync + 'static,
    {
        let request_hash = request_hash(target, &body_hash);
        if let Some(key) = &headers.idempotency_key {
            if let Some(answer) = self.earlier_answer(target, key, &request_hash).await? {
                // Checked before a replay too: a key must not reveal
                // another zone's answer.
                let loaded = self.load::<A>(&target.stream_id).await?;
                authorize(&loaded.state, &command)?;
                return Ok(answer);
            }
        }
        let ctx = self.context(occurred_at)?;
        let occurred_at = occurred_at.unwrap_or_else(Utc::now);
        let mut retried = false;
        // First from this process's cache, without a query: the append's
        // expected version catches a write by another process, and any
        // refusal is decided again on fresh state before it is answered.
        let mut fresh = false;
        loop {
            let loaded = if fresh {
                self.load::<A>(&target.stream_id).await?
            } else {
                match self.cached::<A>(&target.stream_id) {
                    Some(cached) => cached,
                    None => {
                        fresh = true;
                        self.load::<A>(&target.stream_id).await?
                    }
                }
            };
            let precondition = match headers.if_match {
                Some(expected) if expected != loaded.version => Err(ApiError::PreconditionFailed {
                    expected,
                    actual: loaded.version,
                }),
                _ => Ok(()),
            };
            let decided = authorize(&loaded.state, &command)
                .and(precondition)
                .and_then(|()| loaded.state.handle(&command, &ctx).map_err(ApiError::from));
            let events = match decided {
                Ok(events) => events,
                Err(_) if !fresh => {
                    fresh = true;
                    continue;
                }
                Err(refused) => return Err(refused),
            };
            if events.is_empty() {
                return Ok(Written {
                    id: target.entity_id,
                    version: loaded.version,
                    position: loaded.position,
                    events: vec![],
                    replayed: false,
                });
            }
            let metadata = serde_json::json!({
                "occurred_at": occurred_at,
                "request_id": headers.request_id,
                "correlation_id": headers.correlation_id,
                "idempotency_key": headers.idempotency_key,
                "request_hash": hex::encode(request_hash),
                "actor": headers.caller.actor(),
            });
            let new_events: Vec<NewEvent> = events
                .iter()
                .enumerate()
                .map(|(i, event)| {
                    let event_id = match &headers.idempotency_key {
                        Some(key) => key_event_id(key, i),
                        None => Uuid::now_v7(),
                    };
                    NewEvent::new(event.event_type(), event.to_payload())
                        .with_id(event_id)
                        .with_schema_version(event.schema_version())
                        .with_metadata(metadata.clone())
                })
                .collect();
            let expected = if loaded.version == 0 {
                ExpectedVersion::NoStream
            } else {
                ExpectedVersion::Exact(loaded.version)
            };
            match self
                .store
                .append(&target.stream_id, expected, new_events)
                .await
            {
                Ok(outcome) if outcome.duplicate => {
                    // A concurrent retry with the same key got there first.
                    let key = headers.idempotency_key.as_deref().unwrap_or_default();
                    return self
                        .earlier_answer(target, key, &request_hash)
                        .await?
                        .ok_or(ApiError::Internal);
                }
                Ok(outcome) => {
                    self.metrics.appended(events.len());
                    let state = events.iter().fold(loaded.state, |s, e| s.apply(e));
                    self.remember(
                        &target.stream_id,
                        &Loaded {
                            version: outcome.stream_version,
                            position: outcome.position,
                            state,
                        },
                    );
                    return Ok(Written {
                        id: target.entity_id,
                        version: outcome.stream_version,
                        position: outcome.position,
                        events: events
                            .iter()
                            .enumerate()
                            .map(|(i, e)| WrittenEvent {
                                position: outcome.first_position + i as u64,
                                event_type: e.event_type().to_owned(),
                                schema_version: e.schema_version(),
                                data: shown(e.event_type(), e.to_payload()),
                            })
                            .collect(),
                        replayed: false,
                    });
                }
                Err(StoreError::WrongExpectedVersion { actual, .. }) => {
                    if let Some(expected) = headers.if_match {
                        return Err(ApiError::PreconditionFailed { expected, actual });
                    }
                    if retried {
                        return Err(ApiError::ConcurrentWrite(
                            "the entity changed twice while this command was decided; retry it"
                                .into(),
                        ));
                    }
                    retried = true;
                    fresh = true;
                }
                Err(StoreError::EventIdReused { .. }) => {
                    return Err(ApiError::IdempotencyKeyReused(
                        headers.idempotency_key.clone().unwrap_or_default(),
                    ))
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The answer a request with this key got before, if it was recorded.
    async fn earlier_answer(
        &self,
        target: &Target,
        key: &str,
        request_hash: &[u8; 32],
    ) -> Result<Option<Written>, ApiError> {
        let Some(first) = self.store.read_event(key_event_id(key, 0)).await? else {
            return Ok(None);
        };
        let hash = hex::encode(request_hash);
        if first.metadata.get("request_hash").and_then(|h| h.as_str()) != Some(hash.as_str()) {
            return Err(ApiError::IdempotencyKeyReused(key.to_owned()));
        }
        let recorded = self
            .store
            .read_stream(&first.stream_id, first.stream_version, 1_000)
            .await?;
        let events: Vec<RecordedEvent> = recorded
            .into_iter()
            .enumerate()
            .take_while(|(i, e)| e.event_id == key_event_id(key, *i))
            .map(|(_, e)| e)
            .collect();
        let last = events.last().unwrap_or(&first);
        Ok(Some(Written {
            id: entity_of(&first.stream_id).unwrap_or(target.entity_id),
            version: last.stream_version,
            position: last.position,
            replayed: true,
            events: events
                .iter()
                .map(|e| WrittenEvent {
                    position: e.position,
                    event_type: e.event_type.clone(),
                    schema_version: e.schema_version,
                    data: shown(&e.event_type, e.payload.clone()),
                })
                .collect(),
        }))
    }
}

/// An event's data as a write's answer shows it: to the writer, whose zone
/// the command was checked against, with secrets removed.
fn shown(event_type: &str, mut data: serde_json::Value) -> serde_json::Value {
    crate::access::show_event(event_type, &mut data, true);
    data
}

/// Reads a stored event as the aggregate's event type.
pub fn decode<A: Aggregate>(recorded: &RecordedEvent) -> Result<A::Event, ApiError> {
    A::Event::from_stored(
        &recorded.event_type,
        recorded.schema_version,
        recorded.payload.clone(),
    )
    .map_err(|error| {
        tracing::error!(position = recorded.position, %error, "a stored event cannot be decoded");
        ApiError::LogCorrupt {
            position: recorded.position,
        }
    })
}

/// What a retry must repeat: the operation, the entity it addresses (when
/// the client named it) and the body.
fn request_hash(target: &Target, body_hash: &[u8; 32]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(target.operation.as_bytes());
    h.update([0]);
    h.update(body_hash);
    h.finalize().into()
}

/// The id of the `index`th event written under an idempotency key: the same
/// key always names the same events, whatever route it is sent to, so a
/// reuse for another request is caught.
fn key_event_id(key: &str, index: usize) -> Uuid {
    Uuid::new_v5(
        &IDEMPOTENCY_NAMESPACE,
        format!("{key}\u{0}{index}").as_bytes(),
    )
}

/// The entity id inside a stream id (`returnee-<uuid>`).
fn entity_of(stream_id: &str) -> Option<Uuid> {
    stream_id
        .split_once('-')
        .and_then(|(_, id)| id.parse().ok())
}
