//! The pipeline's SQS queues as an operator uses them: what a message on each queue says
//! ([`message`]), which sessions a reprocessing run sends and why the others are left
//! ([`reprocess`]), and the queue operations behind `labpipe reprocess`, `labpipe redrive` and the
//! stuck-session reasons of `labpipe status` ([`Queues`]).
//!
//! Why a crate of its own: the backend consumes these queues, but the commands that feed them by
//! hand run on an operator's machine, and the CLI reaches AWS only through the workspace's
//! libraries. The message shapes live here once, so the backend and the operator's commands
//! cannot disagree about them (the backend re-exports [`PreprocessRequest`] and reads its S3
//! events with [`message::manifest_events`]).
//!
//! Dead-letter messages are moved one by one (receive, send to the source queue, delete) rather
//! than with SQS's `StartMessageMoveTask`, so every moved message is reported with the session it
//! names, and a message is deleted from the dead-letter queue only after its copy was accepted by
//! the source queue: an interrupted redrive can leave a message in both queues (the handlers are
//! idempotent per session), never in neither.

mod error;
pub mod message;
pub mod reprocess;
mod sqs;

pub use error::QueueError;
pub use message::{ingest_event, session_of, PreprocessRequest};
pub use reprocess::{failed_run_version, Decision};
pub use sqs::{DeadLetter, Moved, Queues};
