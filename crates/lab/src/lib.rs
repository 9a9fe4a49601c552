//! The one client API of the front ends — the desktop app, the `labpipe` CLI and the Python
//! package — and the lab PC's rules, written once.
//!
//! Before this crate the app decided "ready to upload" in three places and two languages, folded
//! upload events into progress twice and kept the upload state machine in Rust *and* TypeScript.
//! Now the adapters only adapt: `src-tauri` turns these values into Tauri commands and events,
//! `crates/cli` into flags and terminal output, and the front end only formats what it is sent.
//!
//! - [`stack`]: where the deployed stack is (flag or keyword, environment, outputs file) and its
//!   catalog client; [`research`]: the rows of `query --json` / `--files --json` and the files
//!   and selection behind them (CLI and Python); [`stuck`]: why a session is stuck;
//! - [`pending`]: one session folder of the lab folder as last checked ([`PendingSession`]);
//! - [`ready`]: may a session be uploaded, and if not, why ([`Eligibility`]);
//! - [`names`]: a folder whose session name the pipeline knows, compared with what the name
//!   holds (the upload engine's comparison): the same recording, changed since upload, or
//!   another recording ([`NameCheck`]), and when to compare;
//! - [`progress`]: the one fold of `labpipe_upload` events into a [`TransferView`], and the
//!   run policy of a batch ([`RunSummary`]: refused, waiting, uploaded, already uploaded, failed);
//! - [`queue`]: the app's upload queue and its states ([`TransferState`]), restart-safe;
//! - [`pipeline`]: a session's status in the cloud pipeline ([`PipelineState`]) and which changes
//!   are news;
//! - [`polling`]: which sessions to read from the catalog and when ([`StatusPolling`]): settled
//!   ones never on a timer, moving ones in one batch with backoff;
//! - [`sessions`]: the Sessions view's catalog, held column by column and filtered in memory
//!   ([`sessions::Loaded`]), and a session's detail with its manifest's files;
//! - [`watch`]: native change events or polling for the lab folder ([`WatchMode`]; network
//!   shares are polled);
//! - [`journal_path`]: the one upload journal per machine user that CLI and app share.
//!
//! With the `ts` feature the views derive `ts_rs::TS`. Their `export_to` is relative to the
//! bindings folder of the exporting crate's tests (the app's: `src-tauri/bindings`), so they all
//! land in `ui/src/lib/bindings/` as dependencies of the app's exported types.

mod error;
pub mod names;
pub mod pending;
pub mod pipeline;
pub mod polling;
pub mod progress;
pub mod queue;
pub mod ready;
pub mod research;
pub mod sessions;
pub mod stack;
pub mod stuck;
pub mod watch;

pub use error::{ErrorActions, LabError, SETTINGS_CODES};
pub use names::NameCheck;
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
