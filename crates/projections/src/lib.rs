//! Read models fed one recorded event at a time, and the runtime that tails
//! the log to keep them current.
//!
//! - [`Board`]: every figure of every zone and township-local day, what
//!   stands now (quarantines, closed venues), and each day's report.
//! - [`QuarantineRoster`]: who is in home quarantine and how their visits
//!   stand.
//! - [`Directory`]: every zone, returnee, checkpoint, venue and banquet as
//!   its aggregate folds it, in creation order, indexed by zone: the lists.
//! - [`views`]: dashboards, report states and the county's daily aggregates,
//!   read from the board at a clock.
//! - [`Projector`]: tails the log, saves and resumes, waits for positions,
//!   rebuilds the models as of any earlier position.

pub mod board;
pub mod directory;
pub mod figures;
pub mod roster;
pub mod runtime;
pub mod sealed;
pub mod tokens;
pub mod untrusted;
pub mod views;

pub use board::Board;
pub use directory::{Directory, Entry, Listing};
pub use figures::{Figure, Figures};
pub use roster::{QuarantineRoster, RosterEntry};
pub use runtime::{
    Projector, ProjectorError, ProjectorOptions, ReadModels, StateError, Unapplicable,
};
pub use sealed::{StateKey, StateKeyError};
pub use tokens::{TokenEntry, TokenRegistry};
pub use views::{Clock, Reading, ReportState, ReportingRules};
