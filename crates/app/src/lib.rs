//! The application layer: a command comes in an [`Envelope`] (who sends
//! it, its idempotency key, `If-Match`, when it happened, its correlation
//! and causation), is decided by its aggregate on the stream's state and
//! recorded with typed metadata, and answers an [`Outcome`] or an
//! [`AppError`]. No transport here: HTTP handlers, batch items, the demo
//! township and the command line all come through [`Application::execute`].

mod command;
mod envelope;
mod error;
mod execute;
pub mod personal;
mod pipeline;
pub mod tokens;

pub use command::{Command, Target};
pub use envelope::{Actor, Envelope, Scope};
pub use error::AppError;
pub use execute::{decode, Application, Loaded, Outcome, RecordedChange, WriteCounts};
pub use pipeline::Pipeline;
