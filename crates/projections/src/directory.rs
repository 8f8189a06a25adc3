//! The entities the lists show: each one's state, folded by its own
//! aggregate from its own stream's events as they pass in the log, kept in
//! creation order with an index by zone. Lists are answered from here, with
//! no query per entity.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound::{Excluded, Unbounded};

use fangkong_domain::banquet::Banquet;
use fangkong_domain::checkpoint::Checkpoint;
use fangkong_domain::returnee::{Returnee, ReturneeEvent};
use fangkong_domain::venue::Venue;
use fangkong_domain::zone::Zone;
use fangkong_domain::{Aggregate, DecodeError, EventCodec};
use fangkong_store::RecordedEvent;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// An aggregate the directory lists (indexed by its `Aggregate::zone`).
pub trait Listed: Aggregate + Serialize + DeserializeOwned {}

impl Listed for Zone {}
impl Listed for Returnee {}
impl Listed for Checkpoint {}
impl Listed for Venue {}
impl Listed for Banquet {}

/// One entity as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry<A> {
    pub id: Uuid,
    /// The position of its stream's first event: its place in the list,
    /// and the cursor after it.
    pub created: u64,
    /// Its stream's version.
    pub version: u64,
    pub state: A,
}

/// Every entity of one kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound = "A: Serialize + DeserializeOwned")]
pub struct Listing<A> {
    entries: HashMap<Uuid, Entry<A>>,
    /// Creation position → entity.
    order: BTreeMap<u64, Uuid>,
    /// Zone → creation positions of its entities.
    by_zone: HashMap<Uuid, BTreeSet<u64>>,
}

impl<A> Default for Listing<A> {
    fn default() -> Self {
        Listing {
            entries: HashMap::new(),
            order: BTreeMap::new(),
            by_zone: HashMap::new(),
        }
    }
}

impl<A: Listed> Listing<A> {
    pub fn get(&self, id: Uuid) -> Option<&Entry<A>> {
        self.entries.get(&id)
    }

    /// Entities created after position `after`, in creation order; of one
    /// zone only, when given (from its index, not by scanning).
    pub fn after(
        &self,
        after: u64,
        zone: Option<Uuid>,
    ) -> Box<dyn Iterator<Item = &Entry<A>> + '_> {
        let lookup =
            move |position: &u64| self.order.get(position).and_then(|id| self.entries.get(id));
        match zone {
            Some(zone) => Box::new(
                self.by_zone
                    .get(&zone)
                    .into_iter()
                    .flat_map(move |positions| positions.range((Excluded(after), Unbounded)))
                    .filter_map(lookup),
            ),
            None => Box::new(
                self.order
                    .range((Excluded(after), Unbounded))
                    .filter_map(move |(_, id)| self.entries.get(id)),
            ),
        }
    }

    fn apply(&mut self, id: Uuid, event: &RecordedEvent, decoded: &A::Event) {
        let entry = self.entries.entry(id).or_insert_with(|| {
            // A stream's first event creates its entity: its place in the list.
            self.order.insert(event.position, id);
            Entry {
                id,
                created: event.position,
                version: 0,
                state: A::default(),
            }
        });
        let zone_before = entry.state.zone().map(|z| z.as_uuid());
        entry.state = std::mem::take(&mut entry.state).apply(decoded);
        entry.version = event.stream_version;
        let (created, zone_after) = (entry.created, entry.state.zone().map(|z| z.as_uuid()));
        if zone_before != zone_after {
            if let Some(before) = zone_before {
                if let Some(positions) = self.by_zone.get_mut(&before) {
                    positions.remove(&created);
                }
            }
            if let Some(after) = zone_after {
                self.by_zone.entry(after).or_default().insert(created);
            }
        }
    }

    fn decode_and_apply(&mut self, id: Uuid, event: &RecordedEvent) -> Result<(), DecodeError> {
        let decoded =
            A::Event::from_stored_ref(&event.event_type, event.schema_version, &event.payload)?;
        self.apply(id, event, &decoded);
        Ok(())
    }
}

/// The listed entities of every kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Directory {
    pub zones: Listing<Zone>,
    pub returnees: Listing<Returnee>,
    pub checkpoints: Listing<Checkpoint>,
    pub venues: Listing<Venue>,
    pub banquets: Listing<Banquet>,
}

impl Directory {
    /// Whether events of this stream category are the directory's (and
    /// decoded by it: nothing else needs to check them).
    pub fn lists(category: &str) -> bool {
        matches!(category, "zone" | "checkpoint" | "venue" | "banquet")
    }

    /// Takes in one event; a returnee's comes already decoded. An event of
    /// a listed kind that does not decode changes nothing and is refused.
    pub fn apply(
        &mut self,
        event: &RecordedEvent,
        returnee: Option<&(Uuid, ReturneeEvent)>,
    ) -> Result<(), DecodeError> {
        if let Some((id, decoded)) = returnee {
            self.returnees.apply(*id, event, decoded);
            return Ok(());
        }
        let category = fangkong_store::category_of(&event.stream_id);
        if !Self::lists(category) {
            return Ok(());
        }
        let Some(id) = event
            .stream_id
            .split_once('-')
            .and_then(|(_, id)| id.parse::<Uuid>().ok())
        else {
            return Ok(());
        };
        match category {
            "zone" => self.zones.decode_and_apply(id, event),
            "checkpoint" => self.checkpoints.decode_and_apply(id, event),
            "venue" => self.venues.decode_and_apply(id, event),
            "banquet" => self.banquets.decode_and_apply(id, event),
            _ => Ok(()),
        }
    }
}
