//! Read models fed one recorded event at a time, and the runtime that tails
//! the log to keep them current.
//!
//! So far one model: how much control work each zone recorded on each day,
//! which a zero report must find to be nothing. Dashboards, the county's
//! aggregates and the quarantine roster will join it here.

pub mod activity;
pub mod runtime;

pub use activity::ZoneDayActivity;
pub use runtime::{Projector, ProjectorError};
