//! Rules of the domain, broken: each variant names one rule, with a stable
//! snake_case code the API puts in its problem+json answers.

use crate::values::{LocalDate, ValueError};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("{field}: {error}")]
    InvalidValue { field: String, error: ValueError },

    #[error("{what} is dated {date}, a day that has not come yet (today is {today})")]
    FutureDate {
        what: &'static str,
        date: LocalDate,
        today: LocalDate,
    },

    // API tokens
    #[error("the token is already issued")]
    TokenAlreadyIssued,
    #[error("no such token")]
    TokenNotIssued,
    #[error("the token is already revoked")]
    TokenAlreadyRevoked,
    #[error("a zone worker's token needs at least one zone; other roles take none")]
    TokenZonesMismatch,

    // Zones
    #[error("the zone is already established")]
    ZoneAlreadyEstablished,
    #[error("the zone is not established")]
    ZoneNotEstablished,
    #[error("the zone already has a village named {name}")]
    VillageNameTaken { name: String },
    #[error("the village id is already used in this zone")]
    VillageAlreadyAdded,
    #[error("the village is not part of this zone")]
    VillageNotInZone,
    #[error("the grid id is already used in this zone")]
    GridAlreadyAdded,
    #[error("the village already has a grid named {name}")]
    GridNameTaken { name: String },

    // Returnees
    #[error("the returnee is already registered")]
    ReturneeAlreadyRegistered,
    #[error("the returnee is not registered")]
    ReturneeNotRegistered,
    #[error("a screening cannot take place before the person arrived ({arrival})")]
    ScreenedBeforeArrival { arrival: LocalDate },
    #[error("a five-for-one team needs exactly one member in each of the five roles; {problem}")]
    TeamIncomplete { problem: String },
    #[error("a home quarantine is already under way (since {since})")]
    QuarantineAlreadyActive { since: LocalDate },
    #[error("the returnee is not in home quarantine")]
    NoActiveQuarantine,
    #[error("a quarantine cannot start before the person arrived ({arrival})")]
    QuarantineBeforeArrival { arrival: LocalDate },
    #[error("a quarantine period must be 1 to 60 days, not {days}")]
    QuarantinePeriodOutOfRange { days: i64 },
    #[error("the quarantine started on {start}: it cannot end, or be visited, before that")]
    QuarantineEndsBeforeStart { start: LocalDate },
    #[error("the planned quarantine ends on {planned_end}: release on {date} is not a completed quarantine")]
    ReleasedBeforePlannedEnd {
        date: LocalDate,
        planned_end: LocalDate,
    },
    #[error("a health check on {date} falls before the quarantine's start ({start})")]
    HealthCheckBeforeQuarantine { date: LocalDate, start: LocalDate },
    #[error("an exposure on {date} falls before the current count's start ({start})")]
    ExposureBeforeQuarantine { date: LocalDate, start: LocalDate },
    #[error("a referral needs an abnormal condition reported and not yet referred")]
    ReferralWithoutAbnormalCondition,
    #[error("the quarantine is already planned for {days} days")]
    QuarantinePeriodUnchanged { days: u16 },

    // Checkpoints
    #[error("the checkpoint is already established")]
    CheckpointAlreadyEstablished,
    #[error("the checkpoint is not established")]
    CheckpointNotEstablished,
    #[error("a person from a high-risk area cannot be admitted: turn back or refer to quarantine")]
    HighRiskArrivalAdmitted,
    #[error(
        "a person with a fever ({temperature}) cannot be admitted: refer to quarantine or care"
    )]
    FeverAdmitted { temperature: String },
    #[error("a vehicle crossing needs its plate number")]
    VehicleWithoutPlate,

    // Venues
    #[error("the venue is already registered")]
    VenueAlreadyRegistered,
    #[error("the venue is not registered")]
    VenueNotRegistered,
    #[error("the venue is already closed (since {since})")]
    VenueAlreadyClosed { since: LocalDate },
    #[error("the venue is not closed, so it cannot reopen")]
    VenueNotClosed,
    #[error("the venue was dismantled: it cannot reopen")]
    VenueDismantled,
    #[error("enforcement actions apply to mahjong parlours and card rooms, not to a {kind}")]
    EnforcementOnlyForGamingVenues { kind: &'static str },
    #[error("the venue already signed its commitment letter on {on}")]
    CommitmentAlreadySigned { on: LocalDate },
    #[error("{what} must be at least 1")]
    NothingToRecord { what: &'static str },

    // Banquets
    #[error("the banquet is already reported")]
    BanquetAlreadyReported,
    #[error("the banquet is not reported")]
    BanquetNotReported,
    #[error("the banquet was cancelled: it cannot be {then}")]
    BanquetCancelled { then: &'static str },
    #[error("a postponement must move the banquet later than {current}, not to {requested}")]
    PostponementNotLater {
        current: LocalDate,
        requested: LocalDate,
    },
    #[error("scaling down must reduce the guests below {current}, not to {requested}")]
    ScaleDownNotSmaller { current: u32, requested: u32 },

    // Daily reports
    #[error("no report can be submitted for {date}: the day has not come yet (today is {today})")]
    ReportForFutureDay { date: LocalDate, today: LocalDate },
    #[error("a zero report cannot attest {date}: the zone recorded {activity} events that day")]
    ZeroReportWithActivity { date: LocalDate, activity: u64 },
    #[error("a zero report attests no figures, but {figure} is {value}")]
    ZeroReportWithFigures { figure: String, value: u64 },
}

impl DomainError {
    /// The stable code of the rule, for clients to branch on.
    pub fn code(&self) -> &'static str {
        use DomainError::*;
        match self {
            InvalidValue { .. } => "invalid_value",
            FutureDate { .. } => "future_date",
            TokenAlreadyIssued => "token_already_issued",
            TokenNotIssued => "token_not_issued",
            TokenAlreadyRevoked => "token_already_revoked",
            TokenZonesMismatch => "token_zones_mismatch",
            ZoneAlreadyEstablished => "zone_already_established",
            ZoneNotEstablished => "zone_not_established",
            VillageNameTaken { .. } => "village_name_taken",
            VillageAlreadyAdded => "village_already_added",
            VillageNotInZone => "village_not_in_zone",
            GridAlreadyAdded => "grid_already_added",
            GridNameTaken { .. } => "grid_name_taken",
            ReturneeAlreadyRegistered => "returnee_already_registered",
            ReturneeNotRegistered => "returnee_not_registered",
            ScreenedBeforeArrival { .. } => "screened_before_arrival",
            TeamIncomplete { .. } => "team_incomplete",
            QuarantineAlreadyActive { .. } => "quarantine_already_active",
            NoActiveQuarantine => "no_active_quarantine",
            QuarantineBeforeArrival { .. } => "quarantine_before_arrival",
            QuarantinePeriodOutOfRange { .. } => "quarantine_period_out_of_range",
            QuarantineEndsBeforeStart { .. } => "quarantine_ends_before_start",
            ReleasedBeforePlannedEnd { .. } => "released_before_planned_end",
            HealthCheckBeforeQuarantine { .. } => "health_check_before_quarantine",
            ExposureBeforeQuarantine { .. } => "exposure_before_quarantine",
            ReferralWithoutAbnormalCondition => "referral_without_abnormal_condition",
            QuarantinePeriodUnchanged { .. } => "quarantine_period_unchanged",
            CheckpointAlreadyEstablished => "checkpoint_already_established",
            CheckpointNotEstablished => "checkpoint_not_established",
            HighRiskArrivalAdmitted => "high_risk_arrival_admitted",
            FeverAdmitted { .. } => "fever_admitted",
            VehicleWithoutPlate => "vehicle_without_plate",
            VenueAlreadyRegistered => "venue_already_registered",
            VenueNotRegistered => "venue_not_registered",
            VenueAlreadyClosed { .. } => "venue_already_closed",
            VenueNotClosed => "venue_not_closed",
            VenueDismantled => "venue_dismantled",
            EnforcementOnlyForGamingVenues { .. } => "enforcement_only_for_gaming_venues",
            CommitmentAlreadySigned { .. } => "commitment_already_signed",
            NothingToRecord { .. } => "nothing_to_record",
            BanquetAlreadyReported => "banquet_already_reported",
            BanquetNotReported => "banquet_not_reported",
            BanquetCancelled { .. } => "banquet_cancelled",
            PostponementNotLater { .. } => "postponement_not_later",
            ScaleDownNotSmaller { .. } => "scale_down_not_smaller",
            ReportForFutureDay { .. } => "report_for_future_day",
            ZeroReportWithActivity { .. } => "zero_report_with_activity",
            ZeroReportWithFigures { .. } => "zero_report_with_figures",
        }
    }

    /// True when the entity the command addresses does not exist (HTTP 404
    /// rather than 409).
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            DomainError::ZoneNotEstablished
                | DomainError::TokenNotIssued
                | DomainError::ReturneeNotRegistered
                | DomainError::CheckpointNotEstablished
                | DomainError::VenueNotRegistered
                | DomainError::BanquetNotReported
        )
    }
}
