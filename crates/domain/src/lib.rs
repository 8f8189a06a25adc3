//! The township's epidemic control work as pure aggregates.
//!
//! Each aggregate decides with `handle(&state, &command, &context)`, which
//! returns the events to record or the rule that was broken, and evolves with
//! `apply(state, &event)`. Nothing here does IO, awaits, or reads a clock:
//! what needs a lookup (today's date, the day the event happened in the
//! township's time zone, the activity recorded for a day) comes in with the
//! command or its [`Context`].

mod codec;
pub mod error;
pub mod values;

pub mod access;
pub mod activity;
pub mod banquet;
pub mod checkpoint;
pub mod metadata;
pub mod personal;
pub mod report;
pub mod returnee;
pub mod schedule;
pub mod venue;
pub mod zone;

#[cfg(test)]
mod testing;

pub use codec::{DecodeError, EventCodec};

/// Every event type's payload schema, for the contract: pushes each (named
/// as its type) and the schemas it refers to onto `out`, and answers each
/// type's name and current schema version.
#[cfg(feature = "openapi")]
pub fn event_schemas(
    out: &mut Vec<(
        String,
        utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
    )>,
) -> Vec<(&'static str, u32)> {
    use codec::EventSchemas;
    // Personal fields' schemas come from `personal::shown_schema`, which
    // inlines the value's schema: what it refers to is pushed here.
    <returnee::PersonalData as utoipa::ToSchema>::schemas(out);
    <banquet::BanquetHost as utoipa::ToSchema>::schemas(out);
    for (name, schema) in [
        (
            <PhoneNumber as utoipa::ToSchema>::name(),
            <PhoneNumber as utoipa::PartialSchema>::schema(),
        ),
        (
            <ResidentIdNumber as utoipa::ToSchema>::name(),
            <ResidentIdNumber as utoipa::PartialSchema>::schema(),
        ),
        (
            <Name as utoipa::ToSchema>::name(),
            <Name as utoipa::PartialSchema>::schema(),
        ),
    ] {
        out.push((name.into_owned(), schema));
    }
    [
        zone::ZoneEvent::event_schemas(out),
        returnee::ReturneeEvent::event_schemas(out),
        checkpoint::CheckpointEvent::event_schemas(out),
        venue::VenueEvent::event_schemas(out),
        banquet::BanquetEvent::event_schemas(out),
        activity::ActivityEvent::event_schemas(out),
        activity::StaffEvent::event_schemas(out),
        report::ReportEvent::event_schemas(out),
        access::TokenEvent::event_schemas(out),
    ]
    .concat()
}
pub use error::DomainError;
pub use values::*;

/// What a decision needs to know about time, looked up by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Context {
    /// Today in the township's time zone, by the server's clock.
    pub today: LocalDate,
    /// The township-local day on which the recorded thing happened in the
    /// field (from the client's `occurred_at`; may be days ago after an
    /// offline sync, never after `today`).
    pub occurred_on: LocalDate,
}

impl Context {
    /// A context for something happening today.
    pub fn on(today: LocalDate) -> Self {
        Context {
            today,
            occurred_on: today,
        }
    }

    /// Refuses a field date later than today.
    pub fn check_not_future(&self, what: &'static str) -> Result<(), DomainError> {
        if self.occurred_on > self.today {
            return Err(DomainError::FutureDate {
                what,
                date: self.occurred_on,
                today: self.today,
            });
        }
        Ok(())
    }
}

/// A consistency boundary: its state is the fold of its own stream.
pub trait Aggregate: Default + Clone + PartialEq + std::fmt::Debug {
    type Command: std::fmt::Debug;
    type Event: EventCodec + Clone + PartialEq + std::fmt::Debug;

    /// The category of its streams (`returnee` for `returnee-...`).
    const CATEGORY: &'static str;

    /// Decides what happens: the events to record, or the broken rule.
    fn handle(
        &self,
        command: &Self::Command,
        context: &Context,
    ) -> Result<Vec<Self::Event>, DomainError>;

    /// What deciding `command` depends on. `Independent` commands can be
    /// recorded after any other event of the stream without changing what
    /// they would have decided; the rest are decided in order.
    fn concurrency(command: &Self::Command) -> Concurrency {
        let _ = command;
        Concurrency::Ordered
    }

    /// The zone the entity belongs to, once it exists (`None` for
    /// township-wide streams): what a zone worker's scope is checked
    /// against and what lists are indexed by.
    fn zone(&self) -> Option<ZoneId> {
        None
    }

    /// Evolves the state by one recorded event. Total: never fails.
    fn apply(self, event: &Self::Event) -> Self;

    /// The state after a whole history.
    fn fold<'a>(events: impl IntoIterator<Item = &'a Self::Event>) -> Self
    where
        Self::Event: 'a,
    {
        events.into_iter().fold(Self::default(), Self::apply)
    }
}

/// How a command's decision relates to other writes to its stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Concurrency {
    /// The decision needs no more of the stream than its existence, which
    /// nothing can take back (a crossing at an established checkpoint, a
    /// leaflet count): another writer's event never changes it, so the
    /// events are appended wherever the stream stands.
    Independent,
    /// The decision reads state that other events change (a quarantine
    /// under way, a venue's closure, a report's figures): it is taken on
    /// the stream as it stands and appended only if nothing came between.
    Ordered,
}

/// Whether a stored event reads as an event of the aggregate its stream's
/// category names. Categories this domain does not have are not its
/// concern (`Ok`).
pub fn check_decodes(
    category: &str,
    event_type: &str,
    schema_version: u32,
    payload: &serde_json::Value,
) -> Result<(), DecodeError> {
    fn check<E: EventCodec>(
        event_type: &str,
        schema_version: u32,
        payload: &serde_json::Value,
    ) -> Result<(), DecodeError> {
        E::from_stored_ref(event_type, schema_version, payload).map(|_| ())
    }
    match category {
        "zone" => check::<zone::ZoneEvent>(event_type, schema_version, payload),
        "returnee" => check::<returnee::ReturneeEvent>(event_type, schema_version, payload),
        "checkpoint" => check::<checkpoint::CheckpointEvent>(event_type, schema_version, payload),
        "venue" => check::<venue::VenueEvent>(event_type, schema_version, payload),
        "banquet" => check::<banquet::BanquetEvent>(event_type, schema_version, payload),
        "activity" => check::<activity::ActivityEvent>(event_type, schema_version, payload),
        "staff" => check::<activity::StaffEvent>(event_type, schema_version, payload),
        "report" => check::<report::ReportEvent>(event_type, schema_version, payload),
        "token" => check::<access::TokenEvent>(event_type, schema_version, payload),
        _ => Ok(()),
    }
}
