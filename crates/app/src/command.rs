//! Which aggregate decides each command, and the zone it works in.

use fangkong_domain::{access, activity, banquet, checkpoint, report, returnee, venue, zone};
use uuid::Uuid;

/// A command of the domain, as the application runs it.
pub trait Command: std::fmt::Debug + Send + Sync + Sized + 'static {
    type Aggregate: fangkong_domain::Aggregate<Command = Self> + Send + Sync + 'static;

    /// The zone the command works in: the entity's (from its state), or
    /// the one a creating command names. `None` for township-wide work.
    fn zone(&self, state: &Self::Aggregate) -> Option<Uuid>;

    /// The zone of the entity as it stands, whatever the command says: a
    /// creating command aimed at an existing entity of another zone must
    /// find nothing there.
    fn owner(state: &Self::Aggregate) -> Option<Uuid>;

    /// Whether `scope` may send this command to this entity.
    fn admitted(&self, state: &Self::Aggregate, scope: &crate::Scope) -> bool {
        scope.admits(Self::owner(state)) && scope.admits(self.zone(state))
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
    fn owner(state: &zone::Zone) -> Option<Uuid> {
        state.id.map(|z| z.as_uuid())
    }
    fn zone(&self, state: &zone::Zone) -> Option<Uuid> {
        match self {
            zone::ZoneCommand::Establish { zone_id, .. } => Some(zone_id.as_uuid()),
            _ => state.id.map(|z| z.as_uuid()),
        }
    }
}

impl Command for returnee::ReturneeCommand {
    type Aggregate = returnee::Returnee;
    fn owner(state: &returnee::Returnee) -> Option<Uuid> {
        state.registration.as_ref().map(|r| r.zone_id.as_uuid())
    }
    fn zone(&self, state: &returnee::Returnee) -> Option<Uuid> {
        match self {
            returnee::ReturneeCommand::Register(r) => Some(r.zone_id.as_uuid()),
            _ => state.registration.as_ref().map(|r| r.zone_id.as_uuid()),
        }
    }
}

impl Command for checkpoint::CheckpointCommand {
    type Aggregate = checkpoint::Checkpoint;
    fn owner(state: &checkpoint::Checkpoint) -> Option<Uuid> {
        state.established.as_ref().map(|e| e.zone_id.as_uuid())
    }
    fn zone(&self, state: &checkpoint::Checkpoint) -> Option<Uuid> {
        match self {
            checkpoint::CheckpointCommand::Establish { zone_id, .. } => Some(zone_id.as_uuid()),
            _ => state.established.as_ref().map(|e| e.zone_id.as_uuid()),
        }
    }
}

impl Command for venue::VenueCommand {
    type Aggregate = venue::Venue;
    fn owner(state: &venue::Venue) -> Option<Uuid> {
        state.registration.as_ref().map(|r| r.zone_id.as_uuid())
    }
    fn zone(&self, state: &venue::Venue) -> Option<Uuid> {
        match self {
            venue::VenueCommand::Register { zone_id, .. } => Some(zone_id.as_uuid()),
            _ => state.registration.as_ref().map(|r| r.zone_id.as_uuid()),
        }
    }
}

impl Command for banquet::BanquetCommand {
    type Aggregate = banquet::Banquet;
    fn owner(state: &banquet::Banquet) -> Option<Uuid> {
        state.report.as_ref().map(|r| r.zone_id.as_uuid())
    }
    fn zone(&self, state: &banquet::Banquet) -> Option<Uuid> {
        match self {
            banquet::BanquetCommand::Report { zone_id, .. } => Some(zone_id.as_uuid()),
            _ => state.report.as_ref().map(|r| r.zone_id.as_uuid()),
        }
    }
}

impl Command for activity::ActivityCommand {
    type Aggregate = activity::ZoneActivity;
    fn owner(state: &activity::ZoneActivity) -> Option<Uuid> {
        state.zone_id.map(|z| z.as_uuid())
    }
    fn zone(&self, _: &activity::ZoneActivity) -> Option<Uuid> {
        Some(self.zone_id.as_uuid())
    }
}

impl Command for activity::RecordStaffHealthCheck {
    type Aggregate = activity::StaffChecks;
    fn owner(_: &activity::StaffChecks) -> Option<Uuid> {
        None
    }
    fn zone(&self, _: &activity::StaffChecks) -> Option<Uuid> {
        None
    }
}

impl Command for report::SubmitDailyReport {
    type Aggregate = report::DailyReport;
    fn owner(state: &report::DailyReport) -> Option<Uuid> {
        state.last.as_ref().map(|r| r.zone_id.as_uuid())
    }
    fn zone(&self, _: &report::DailyReport) -> Option<Uuid> {
        Some(self.zone_id.as_uuid())
    }
}

impl Command for access::TokenCommand {
    type Aggregate = access::ApiToken;
    fn owner(_: &access::ApiToken) -> Option<Uuid> {
        None
    }
    fn zone(&self, _: &access::ApiToken) -> Option<Uuid> {
        None
    }
}
