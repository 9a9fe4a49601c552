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
//! Modules, each with one job (no module imports one that imports it back):
//! - `select`: catalog sessions → the files to fetch ([`RemoteFile`]), processed outputs of one
//!   pipeline version and optionally the raw files from each session's manifest; [`Glob`]:
//!   `--include` patterns;
//! - [`plan`]: pure — per file, keep / hash first / fetch whole / resume a ranged download /
//!   refuse, from the catalog's file, the state file ([`SyncState`]) and what is on disk;
//! - `fetch`: whole and ranged downloads into `.part` files;
//! - `destination`: the folder's layout, partial records and [`Destination::install`], the only
//!   way to a real name (the bytes hashed as they are written, fsync, length check, rename, fsync
//!   the directory);
//! - `lock`: one run per destination ([`DestinationLock`]; a second run refuses with
//!   [`SyncError::Busy`], naming pid, host and start time of the holder);
//! - `run`: [`SyncRun`], the sequence, reported as [`SyncEvent`]s; `record`: the run's record
//!   (`labpipe-sync.json`); `s3`: client and error classification;
//! - `snapshot`: [`Snapshot`], the exact object versions a finished sync holds, saved to a file
//!   and turned back into a selection that fetches those versions again.
//!
//! Invariants: nothing is written outside the destination folder (keys with `..`, absolute or
//! empty components are refused, by selection and again by the planner); a file appears under
//! its final name only when the bytes written into it (those of a resumed download's earlier
//! parts as read back from disk) hash to the catalog's SHA-256, after an fsync; an
//! interrupted run leaves `.part` files plus a record of completed ranges in
//! `.labpipe-sync/partial/`, and the next run continues them; at most one run writes into a
//! destination at a time (`.labpipe-sync/lock`).

mod destination;
mod error;
mod event;
mod fetch;
mod glob;
mod lock;
pub mod plan;
mod record;
mod remote;
mod run;
mod s3;
mod select;
mod snapshot;
mod state;

/// The S3 client type the engine takes, so adapters need no SDK dependency of their own.
pub use aws_sdk_s3::Client as S3Client;
pub use destination::{safe_relative, Destination, PartialRecord, MANIFEST_NAME};
pub use error::SyncError;
pub use event::{SyncEvent, SyncSummary};
pub use glob::Glob;
pub use lock::{DestinationLock, LockHolder};
pub use remote::{FileKind, RefusedFile, RemoteFile};
pub use run::{SyncOptions, SyncRun};
pub use s3::s3_client;
pub use select::{
    processed_files, raw_files, select, ProcessedFiles, SelectOptions, Selection, Unprocessed,
};
pub use snapshot::{Snapshot, SnapshotFile, SNAPSHOT_FORMAT};
pub use state::{LocalFile, StateEntry, SyncState, STATE_DIR};
