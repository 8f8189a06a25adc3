//! Which aggregate decides each command, and the zone it works in.

use fangkong_domain::{access, activity, banquet, checkpoint, report, returnee, venue, zone};
use uuid::Uuid;

/// A command of the domain, as the application runs it.
pub trait Command: std::fmt::Debug + Send + Sync + Sized + 'static {
    type Aggregate: fangkong_domain::Aggregate<Command = Self> + Send + Sync + 'static;

    /// The zone a creating command names (none for the others: they work
    /// in the entity's own zone).
    fn names_zone(&self) -> Option<Uuid> {
        None
    }

    /// Whether `scope` may send this command to this entity: the entity's
    /// zone as it stands, whatever the command says (a creating command
    /// aimed at another zone's entity finds nothing there), and the zone a
    /// creating command names.
    fn admitted(&self, state: &Self::Aggregate, scope: &crate::Scope) -> bool {
        use fangkong_domain::Aggregate;
        scope.admits(state.zone().map(|z| z.as_uuid())) && scope.admits(self.names_zone())
    }
}

/// What a command is about: the stream it is decided on, and the operation
/// (which scopes idempotency keys, with the stream).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub stream_id: String,
    pub entity_id: Uuid,
    pub operation: &'static str,
}

impl Target {
    pub fn new(stream_id: impl Into<String>, entity_id: Uuid, operation: &'static str) -> Self {
        Target {
            stream_id: stream_id.into(),
            entity_id,
            operation,
        }
    }

    /// The stream's category (`returnee`), which names the entity in a
    /// not-found answer.
    pub fn category(&self) -> &str {
        fangkong_store::category_of(&self.stream_id)
    }
}

impl Command for zone::ZoneCommand {
    type Aggregate = zone::Zone;
    fn names_zone(&self) -> Option<Uuid> {
        match self {
            zone::ZoneCommand::Establish { zone_id, .. } => Some(zone_id.as_uuid()),
            _ => None,
        }
    }
}

impl Command for returnee::ReturneeCommand {
    type Aggregate = returnee::Returnee;
    fn names_zone(&self) -> Option<Uuid> {
        match self {
            returnee::ReturneeCommand::Register(r) => Some(r.zone_id.as_uuid()),
            _ => None,
        }
    }
}

impl Command for checkpoint::CheckpointCommand {
    type Aggregate = checkpoint::Checkpoint;
    fn names_zone(&self) -> Option<Uuid> {
        match self {
            checkpoint::CheckpointCommand::Establish { zone_id, .. } => Some(zone_id.as_uuid()),
            _ => None,
        }
    }
}

impl Command for venue::VenueCommand {
    type Aggregate = venue::Venue;
    fn names_zone(&self) -> Option<Uuid> {
        match self {
            venue::VenueCommand::Register { zone_id, .. } => Some(zone_id.as_uuid()),
            _ => None,
        }
    }
}

impl Command for banquet::BanquetCommand {
    type Aggregate = banquet::Banquet;
    fn names_zone(&self) -> Option<Uuid> {
        match self {
            banquet::BanquetCommand::Report { zone_id, .. } => Some(zone_id.as_uuid()),
            _ => None,
        }
    }
}

impl Command for activity::ActivityCommand {
    type Aggregate = activity::ZoneActivity;
    fn names_zone(&self) -> Option<Uuid> {
        Some(self.zone_id.as_uuid())
    }
}

impl Command for activity::StaffCommand {
    type Aggregate = activity::StaffChecks;
}

impl Command for report::SubmitDailyReport {
    type Aggregate = report::DailyReport;
    fn names_zone(&self) -> Option<Uuid> {
        Some(self.zone_id.as_uuid())
    }
}

impl Command for access::TokenCommand {
    type Aggregate = access::ApiToken;
}
