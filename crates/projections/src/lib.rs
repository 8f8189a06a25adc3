//! Read models fed one recorded event at a time, and the runtime that tails
//! the log to keep them current.
//!
//! So far: how much control work each zone recorded on each day (which a
//! zero report must find to be nothing), and the quarantine roster.
//! Dashboards and the county's aggregates will join them here.

pub mod activity;
pub mod roster;
pub mod runtime;

pub use activity::ZoneDayActivity;
pub use roster::{QuarantineRoster, RosterEntry};
pub use runtime::{Projector, ProjectorError};
