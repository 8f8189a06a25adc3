//! Group commit: what one transaction of the writer does with many appends.
//!
//! The planning step is pure: given the head of the log, the current versions
//! of the touched streams and the already-stored event ids, it decides for
//! each append whether it is a retry (answer the original result), a version
//! conflict (answer the actual version), or new rows, and chains the new rows'
//! hashes. A rejected append never affects its neighbours in the batch.

use std::collections::HashMap;

use tokio::sync::oneshot;
use uuid::Uuid;

use crate::chain::{event_hash, ChainedFields};
use crate::{AppendOutcome, ExpectedVersion, Head, NewSubjectKey, StoreError};

/// An event with its JSON already rendered to the text the log will store,
/// done on the caller's task so the single writer only writes.
#[derive(Debug)]
pub(crate) struct PreparedEvent {
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: u32,
    pub payload: String,
    pub metadata: String,
}

#[derive(Debug)]
pub(crate) struct AppendRequest {
    pub stream_id: String,
    pub expected: ExpectedVersion,
    pub events: Vec<PreparedEvent>,
    /// The first key of the subject the events are sealed for, if new.
    pub subject_key: Option<NewSubjectKey>,
    /// The chain this append is a link of: written only if every earlier
    /// link was written as it was decided.
    pub chain: Option<crate::Link>,
    pub reply: oneshot::Sender<Result<AppendOutcome, StoreError>>,
}

impl AppendRequest {
    /// Answers the request; an answer other than "written" breaks its chain
    /// before any later link is planned.
    pub(crate) fn answer(self, outcome: Result<AppendOutcome, StoreError>) {
        if let Some(link) = &self.chain {
            if !matches!(&outcome, Ok(o) if !o.duplicate) {
                link.refused();
            }
        }
        let _ = self.reply.send(outcome);
    }
}

/// Where an already-stored event id lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredId {
    pub stream_id: String,
    pub stream_version: u64,
    pub position: u64,
}

/// One row to insert, borrowing its content from the request.
#[derive(Debug)]
pub(crate) struct Row<'a> {
    pub position: u64,
    pub stream_id: &'a str,
    pub stream_version: u64,
    pub event: &'a PreparedEvent,
    pub recorded_at_us: i64,
    pub hash: [u8; 32],
}

#[derive(Debug)]
pub(crate) struct Plan<'a> {
    pub rows: Vec<Row<'a>>,
    /// One answer per request, in request order.
    pub outcomes: Vec<Result<AppendOutcome, StoreError>>,
    /// The head after the rows are written.
    pub head: Head,
    /// First keys of subjects, stored with the rows.
    pub keys: Vec<&'a NewSubjectKey>,
}

/// Subjects whose first key the batch brings: those already stored must be
/// looked up, since an append bringing one is refused.
pub(crate) fn new_subjects(requests: &[AppendRequest]) -> Vec<String> {
    requests
        .iter()
        .filter_map(|r| r.subject_key.as_ref().map(|k| k.subject.clone()))
        .collect()
}

/// Every event id the batch carries.
pub(crate) fn carried_ids(requests: &[AppendRequest]) -> Vec<Uuid> {
    requests
        .iter()
        .flat_map(|r| r.events.iter().map(|e| e.event_id))
        .collect()
}

/// `keyed`: subjects that have a stored key.
pub(crate) fn plan<'a>(
    head: Head,
    versions: &HashMap<String, u64>,
    known_ids: &HashMap<Uuid, StoredId>,
    keyed: &std::collections::HashSet<String>,
    requests: &'a [AppendRequest],
    recorded_at_us: i64,
) -> Plan<'a> {
    let mut keys: Vec<&NewSubjectKey> = Vec::new();
    let mut rows = Vec::with_capacity(requests.iter().map(|r| r.events.len()).sum());
    let mut outcomes = Vec::with_capacity(requests.len());
    let mut head = head;
    // What this batch itself has written so far, over the stored state.
    let mut batch_versions: HashMap<&str, u64> = HashMap::new();
    let mut batch_ids: HashMap<Uuid, StoredId> = HashMap::new();
    // Chains a link of this plan already failed: their later links here
    // are refused too, before any answer has reached the chain itself.
    let mut broken: Vec<&crate::Link> = Vec::new();

    for request in requests {
        let outcome = plan_one(
            request,
            &mut PlanState {
                head: &mut head,
                rows: &mut rows,
                keys: &mut keys,
                batch_versions: &mut batch_versions,
                batch_ids: &mut batch_ids,
            },
            versions,
            known_ids,
            keyed,
            &broken,
            recorded_at_us,
        );
        if let Some(link) = &request.chain {
            if !matches!(&outcome, Ok(o) if !o.duplicate) {
                broken.push(link);
            }
        }
        outcomes.push(outcome);
    }

    Plan {
        rows,
        outcomes,
        head,
        keys,
    }
}

/// What planning the requests so far has built up.
struct PlanState<'p, 'a> {
    head: &'p mut Head,
    rows: &'p mut Vec<Row<'a>>,
    keys: &'p mut Vec<&'a NewSubjectKey>,
    batch_versions: &'p mut HashMap<&'a str, u64>,
    batch_ids: &'p mut HashMap<Uuid, StoredId>,
}

/// Plans one request over what the plan holds so far.
fn plan_one<'a>(
    request: &'a AppendRequest,
    s: &mut PlanState<'_, 'a>,
    versions: &HashMap<String, u64>,
    known_ids: &HashMap<Uuid, StoredId>,
    keyed: &std::collections::HashSet<String>,
    broken: &[&crate::Link],
    recorded_at_us: i64,
) -> Result<AppendOutcome, StoreError> {
    if let Some(link) = &request.chain {
        if link.is_refused(broken) {
            return Err(StoreError::ChainBroken);
        }
    }
    {
        let PlanState {
            head,
            rows,
            keys,
            batch_versions,
            batch_ids,
        } = s;
        if let Some(answer) = earlier_result(request, known_ids, batch_ids) {
            return answer;
        }
        // `keyed` is looked up only once a key's INSERT failed, so an
        // append that is both stale and keyed elsewhere is refused on its
        // version alone or, beside a key that failed, for its key: either
        // way nothing of it is written, and its writer decides again on
        // fresh state and the stored key.
        if let Some(key) = &request.subject_key {
            if keyed.contains(&key.subject) || keys.iter().any(|k| k.subject == key.subject) {
                return Err(StoreError::SubjectKeyTaken {
                    subject: key.subject.clone(),
                });
            }
        }
        let actual = batch_versions
            .get(request.stream_id.as_str())
            .or_else(|| versions.get(&request.stream_id))
            .copied()
            .unwrap_or(0);
        if !request.expected.admits(actual) {
            return Err(StoreError::WrongExpectedVersion {
                stream_id: request.stream_id.clone(),
                expected: request.expected,
                actual,
            });
        }

        let first_position = head.position + 1;
        let mut version = actual;
        for event in &request.events {
            version += 1;
            let position = head.position + 1;
            let hash = event_hash(
                &head.hash,
                &ChainedFields {
                    position,
                    stream_id: &request.stream_id,
                    stream_version: version,
                    event_id: event.event_id,
                    event_type: &event.event_type,
                    schema_version: event.schema_version,
                    payload: &event.payload,
                    metadata: &event.metadata,
                    recorded_at_us,
                },
            );
            batch_ids.insert(
                event.event_id,
                StoredId {
                    stream_id: request.stream_id.clone(),
                    stream_version: version,
                    position,
                },
            );
            rows.push(Row {
                position,
                stream_id: &request.stream_id,
                stream_version: version,
                event,
                recorded_at_us,
                hash,
            });
            **head = Head { position, hash };
        }
        batch_versions.insert(&request.stream_id, version);
        keys.extend(request.subject_key.as_ref());
        Ok(AppendOutcome {
            stream_version: version,
            first_position,
            position: head.position,
            duplicate: false,
        })
    }
}

/// Event ids of the appends a plan refused for their version that have not
/// been looked up yet: such an append may be a retry of one already stored,
/// which must get its original answer rather than a conflict.
pub(crate) fn ids_to_confirm(
    plan: &Plan<'_>,
    requests: &[AppendRequest],
    looked_up: &std::collections::HashSet<Uuid>,
) -> Vec<Uuid> {
    requests
        .iter()
        .zip(&plan.outcomes)
        .filter(|(_, outcome)| {
            matches!(
                outcome,
                Err(StoreError::WrongExpectedVersion { .. } | StoreError::SubjectKeyTaken { .. })
            )
        })
        .flat_map(|(request, _)| request.events.iter().map(|e| e.event_id))
        .filter(|id| !looked_up.contains(id))
        .collect()
}

/// What the single writer remembers between its transactions: the head it
/// last wrote and the versions of streams it has seen. Only trusted while the
/// stored head is still the remembered one (no other process appended).
#[derive(Debug, Default)]
pub(crate) struct WriterCache {
    head: Option<Head>,
    versions: HashMap<String, u64>,
}

/// Beyond this many remembered streams the cache starts over.
const MAX_CACHED_STREAMS: usize = 250_000;

impl WriterCache {
    /// Called with the head read under the write lock (PostgreSQL's
    /// one-statement writes prove the head by their write instead).
    pub(crate) fn sync(&mut self, stored_head: Head) {
        if self.head != Some(stored_head) || self.versions.len() > MAX_CACHED_STREAMS {
            self.versions.clear();
        }
        self.head = Some(stored_head);
    }

    /// Streams of the batch whose version must be read from the log.
    pub(crate) fn unknown_streams(&self, requests: &[AppendRequest]) -> Vec<String> {
        let mut streams: Vec<String> = requests
            .iter()
            .filter(|r| !self.versions.contains_key(&r.stream_id))
            .map(|r| r.stream_id.clone())
            .collect();
        streams.sort_unstable();
        streams.dedup();
        streams
    }

    pub(crate) fn learn(&mut self, versions: impl IntoIterator<Item = (String, u64)>) {
        self.versions.extend(versions);
    }

    /// The head this writer last wrote or read under the lock, if any.
    pub(crate) fn head(&self) -> Option<Head> {
        self.head
    }

    pub(crate) fn versions(&self) -> &HashMap<String, u64> {
        &self.versions
    }

    /// After a commit: the plan's rows are now stored.
    pub(crate) fn committed(&mut self, plan: &Plan<'_>) {
        for row in &plan.rows {
            self.versions
                .insert(row.stream_id.to_owned(), row.stream_version);
        }
        self.head = Some(plan.head);
    }

    /// After a failed transaction nothing it planned can be trusted.
    pub(crate) fn forget(&mut self) {
        self.head = None;
        self.versions.clear();
    }
}

/// If the request's event ids are already stored, the answer it got then.
///
/// All ids stored, in this stream, in the same order: a retry, answered with
/// the original outcome. Some stored, or stored elsewhere: the caller reused
/// an id for something else, which must not be silently dropped.
fn earlier_result(
    request: &AppendRequest,
    stored: &HashMap<Uuid, StoredId>,
    batch: &HashMap<Uuid, StoredId>,
) -> Option<Result<AppendOutcome, StoreError>> {
    let lookup = |id: &Uuid| stored.get(id).or_else(|| batch.get(id));
    let first = request.events.first()?;
    let Some(first_stored) = lookup(&first.event_id) else {
        return request
            .events
            .iter()
            .find(|e| lookup(&e.event_id).is_some())
            .map(|e| {
                Err(StoreError::EventIdReused {
                    event_id: e.event_id,
                })
            });
    };

    let mut last = first_stored;
    for (offset, event) in request.events.iter().enumerate() {
        let matches = lookup(&event.event_id).filter(|stored| {
            stored.stream_id == request.stream_id
                && stored.stream_version == first_stored.stream_version + offset as u64
        });
        match matches {
            Some(stored) => last = stored,
            None => {
                return Some(Err(StoreError::EventIdReused {
                    event_id: event.event_id,
                }))
            }
        }
    }
    Some(Ok(AppendOutcome {
        stream_version: last.stream_version,
        first_position: first_stored.position,
        position: last.position,
        duplicate: true,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(stream: &str, expected: ExpectedVersion, ids: &[Uuid]) -> AppendRequest {
        let (reply, _) = oneshot::channel();
        AppendRequest {
            stream_id: stream.to_owned(),
            expected,
            events: ids
                .iter()
                .map(|id| PreparedEvent {
                    event_id: *id,
                    event_type: "Happened".into(),
                    schema_version: 1,
                    payload: "{}".into(),
                    metadata: "{}".into(),
                })
                .collect(),
            subject_key: None,
            chain: None,
            reply,
        }
    }

    #[test]
    fn a_conflict_in_a_batch_leaves_the_other_appends_standing() {
        let (a, b, c) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let requests = vec![
            request("zone-1", ExpectedVersion::NoStream, &[a]),
            request("zone-1", ExpectedVersion::NoStream, &[b]),
            request("zone-2", ExpectedVersion::Any, &[c]),
        ];
        let plan = fresh_plan(&requests);
        assert_eq!(plan.rows.len(), 2);
        assert!(plan.outcomes[0].is_ok());
        assert!(matches!(
            plan.outcomes[1],
            Err(StoreError::WrongExpectedVersion { actual: 1, .. })
        ));
        let third = plan.outcomes[2].as_ref().expect("third append stands");
        assert_eq!((third.position, third.stream_version), (2, 1));
        assert_eq!(plan.head.position, 2);
    }

    /// The plan of `requests` over an empty log.
    fn fresh_plan(requests: &[AppendRequest]) -> Plan<'_> {
        plan(
            Head::GENESIS,
            &HashMap::new(),
            &HashMap::new(),
            &Default::default(),
            requests,
            0,
        )
    }

    fn link(chain: &crate::AppendChain, mut r: AppendRequest) -> AppendRequest {
        r.chain = Some(chain.link());
        r
    }

    #[test]
    fn breaking_a_chain_off_refuses_only_the_links_submitted_after() {
        let chain = crate::AppendChain::new();
        let (a, b, c) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let mut requests = vec![
            link(&chain, request("zone-1", ExpectedVersion::Any, &[a])),
            link(&chain, request("zone-2", ExpectedVersion::Any, &[b])),
        ];
        // The holder learns a later command must be decided again: the
        // links already queued do not depend on it.
        chain.break_off();
        requests.push(link(&chain, request("zone-3", ExpectedVersion::Any, &[c])));
        let plan = fresh_plan(&requests);
        assert!(plan.outcomes[0].is_ok() && plan.outcomes[1].is_ok());
        assert!(matches!(plan.outcomes[2], Err(StoreError::ChainBroken)));
        assert_eq!(plan.rows.len(), 2);
    }

    #[test]
    fn a_refused_link_refuses_every_later_link_of_its_chain_only() {
        let chain = crate::AppendChain::new();
        let ids: Vec<Uuid> = (0..5).map(|_| Uuid::now_v7()).collect();
        let requests = vec![
            link(
                &chain,
                request("zone-1", ExpectedVersion::NoStream, &[ids[0]]),
            ),
            // Stale: zone-1 is at version 1 after the first link.
            link(
                &chain,
                request("zone-1", ExpectedVersion::NoStream, &[ids[1]]),
            ),
            link(&chain, request("zone-2", ExpectedVersion::Any, &[ids[2]])),
            // Not a link: written whatever the chain's fate.
            request("zone-3", ExpectedVersion::Any, &[ids[3]]),
        ];
        let plan = fresh_plan(&requests);
        assert!(plan.outcomes[0].is_ok());
        assert!(matches!(
            plan.outcomes[1],
            Err(StoreError::WrongExpectedVersion { .. })
        ));
        assert!(matches!(plan.outcomes[2], Err(StoreError::ChainBroken)));
        assert!(plan.outcomes[3].is_ok());
        assert_eq!(plan.rows.len(), 2);
        let outcomes = plan.outcomes;
        // The chain learns it is broken when the answers go out.
        assert!(!chain.is_broken());
        for (request, outcome) in requests.into_iter().zip(outcomes) {
            request.answer(outcome);
        }
        assert!(chain.is_broken());
        let later = [link(
            &chain,
            request("zone-4", ExpectedVersion::Any, &[ids[4]]),
        )];
        let plan = fresh_plan(&later);
        assert!(matches!(plan.outcomes[0], Err(StoreError::ChainBroken)));
        assert!(plan.rows.is_empty());
    }

    #[test]
    fn a_duplicate_link_breaks_its_chain() {
        let chain = crate::AppendChain::new();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let requests = vec![
            link(&chain, request("zone-1", ExpectedVersion::Any, &[a])),
            link(&chain, request("zone-1", ExpectedVersion::Any, &[a])),
            link(&chain, request("zone-2", ExpectedVersion::Any, &[b])),
        ];
        let plan = fresh_plan(&requests);
        assert!(plan.outcomes[1].as_ref().is_ok_and(|o| o.duplicate));
        assert!(matches!(plan.outcomes[2], Err(StoreError::ChainBroken)));
        assert_eq!(plan.rows.len(), 1);
    }

    #[test]
    fn the_same_ids_twice_in_one_batch_are_written_once() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let requests = vec![
            request("zone-1", ExpectedVersion::Any, &[a, b]),
            request("zone-1", ExpectedVersion::Any, &[a, b]),
        ];
        let plan = fresh_plan(&requests);
        assert_eq!(plan.rows.len(), 2);
        let first = plan.outcomes[0].as_ref().expect("first");
        let second = plan.outcomes[1].as_ref().expect("second");
        assert!(!first.duplicate && second.duplicate);
        assert_eq!(
            (first.position, first.stream_version),
            (second.position, second.stream_version)
        );
    }

    #[test]
    fn an_id_reused_for_another_stream_is_refused() {
        let a = Uuid::now_v7();
        let known = HashMap::from([(
            a,
            StoredId {
                stream_id: "zone-1".into(),
                stream_version: 1,
                position: 1,
            },
        )]);
        let requests = vec![request("zone-2", ExpectedVersion::Any, &[a])];
        let plan = plan(
            Head {
                position: 1,
                hash: [1; 32],
            },
            &HashMap::new(),
            &known,
            &Default::default(),
            &requests,
            0,
        );
        assert!(plan.rows.is_empty());
        assert!(matches!(
            plan.outcomes[0],
            Err(StoreError::EventIdReused { event_id }) if event_id == a
        ));
    }

    #[test]
    fn rows_chain_from_the_head() {
        let requests = vec![request(
            "zone-1",
            ExpectedVersion::Any,
            &[Uuid::now_v7(), Uuid::now_v7()],
        )];
        let head = Head {
            position: 41,
            hash: [9; 32],
        };
        let plan = plan(
            head,
            &HashMap::new(),
            &HashMap::new(),
            &Default::default(),
            &requests,
            5,
        );
        assert_eq!(plan.rows[0].position, 42);
        let expected_first = event_hash(
            &[9; 32],
            &ChainedFields {
                position: 42,
                stream_id: "zone-1",
                stream_version: 1,
                event_id: requests[0].events[0].event_id,
                event_type: "Happened",
                schema_version: 1,
                payload: "{}",
                metadata: "{}",
                recorded_at_us: 5,
            },
        );
        assert_eq!(plan.rows[0].hash, expected_first);
        assert_eq!(plan.head.hash, plan.rows[1].hash);
    }
}
