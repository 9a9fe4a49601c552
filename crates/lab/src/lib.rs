//! The lab PC's rules, written once for the desktop app and the `labpipe` CLI.
//!
//! Before this crate the app decided "ready to upload" in three places and two languages, folded
//! upload events into progress twice and kept the upload state machine in Rust *and* TypeScript.
//! Now the adapters only adapt: `src-tauri` turns these values into Tauri commands and events,
//! `crates/cli` into flags and terminal output, and the front end only formats what it is sent.
//!
//! - [`pending`]: one session folder of the lab folder as last checked ([`PendingSession`]);
//! - [`ready`]: may a session be uploaded, and if not, why ([`Eligibility`]);
//! - [`progress`]: the one fold of `labpipe_upload` events into a [`TransferView`], and the
//!   run policy of a batch ([`RunSummary`]: refused, waiting, uploaded, already uploaded, failed);
//! - [`queue`]: the app's upload queue and its states ([`TransferState`]), restart-safe;
//! - [`pipeline`]: a session's status in the cloud pipeline ([`PipelineState`]) and which changes
//!   are news;
//! - [`polling`]: which sessions to read from the catalog and when ([`StatusPolling`]): settled
//!   ones never on a timer, moving ones in one batch with backoff;
//! - [`watch`]: native change events or polling for the lab folder ([`WatchMode`]; network
//!   shares are polled);
//! - [`journal_path`]: the one upload journal per machine user that CLI and app share.
//!
//! With the `ts` feature the views derive `ts_rs::TS`. Their `export_to` is relative to the
//! bindings folder of the exporting crate's tests (the app's: `src-tauri/bindings`), so they all
//! land in `ui/src/lib/bindings/` as dependencies of the app's exported types.

mod error;
pub mod pending;
pub mod pipeline;
pub mod polling;
pub mod progress;
pub mod queue;
pub mod ready;
pub mod watch;

pub use error::LabError;
pub use pending::PendingSession;
pub use pipeline::{Notice, PipelineState};
pub use polling::StatusPolling;
pub use progress::{
    FileState, FileTransferView, RunSummary, SessionEnd, TransferActions, TransferError,
    TransferState, TransferView,
};
pub use queue::Queue;
pub use ready::{eligibility, ready_to_upload, Accept, Eligibility};
pub use watch::{PollReason, WatchMode};

use std::path::PathBuf;

/// The upload journal of this machine user: the same file for `labpipe upload` and the app, so
/// an upload interrupted in one resumes in the other (`$LABPIPE_JOURNAL` overrides it).
pub fn journal_path() -> PathBuf {
    labpipe_upload::Journal::default_path()
}
