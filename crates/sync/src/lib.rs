//! `labpipe-sync`: put exactly the preprocessed files a researcher asked for onto a compute node
//! (an EC2 instance), and keep them there.
//!
//! Why a sync of our own rather than `aws s3 sync`: the catalog, not a bucket listing, says which
//! files belong to the sessions a filter selects (`fatigue > 5 and date >= 2021-03-01`), and it
//! records each file's SHA-256. So every file is verified against the catalog before it appears
//! under its real name, an object altered behind the catalog is refused instead of silently
//! copied, and a re-run knows what is already there from a local state file, without listing the
//! bucket or re-reading data.
//!
//! Pieces, each with one job:
//! - [`select`]: catalog sessions → the files to fetch ([`RemoteFile`]), processed outputs of one
//!   pipeline version and optionally the raw files from each session's manifest;
//! - [`Glob`]: `--include` patterns;
//! - [`SyncState`]: what a previous run left in the destination (`.labpipe-sync/state.json`);
//! - [`SyncRun`]: parallel, ranged, resumable, verified downloads, reported as [`SyncEvent`]s.
//!
//! Invariants: nothing is written outside the destination folder (keys with `..`, absolute or
//! empty components are refused); a file appears under its final name only after its SHA-256
//! matched the catalog; an interrupted run leaves `.part` files plus a record of completed ranges
//! in `.labpipe-sync/partial/`, and the next run continues them.

mod error;
mod event;
mod glob;
mod select;
mod state;
mod transfer;

pub use error::SyncError;
pub use event::{SyncEvent, SyncSummary};
pub use glob::Glob;
pub use select::{
    processed_files, raw_files, safe_relative, select, FileKind, RemoteFile, SelectOptions,
    Selection, Unprocessed,
};
pub use state::{StateEntry, SyncState, STATE_DIR};
pub use transfer::{s3_client, SyncOptions, SyncRun, MANIFEST_NAME};
