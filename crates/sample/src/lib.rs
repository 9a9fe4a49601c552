//! Realistic demo and test data for LabPipe: recording-session folders as the lab PC's
//! acquisition software leaves them, plus, on request, one example of every way a session
//! can be malformed.
//!
//! LabPipe's checks and upload path have to be exercised against data that looks like the
//! real thing — folder names that are recording times spread over several days, a
//! `metadata.txt` following the lab schema, multichannel binary files whose sizes are whole
//! frames, modification times old enough to pass the quiet-period check — without anyone
//! shipping gigabytes of real recordings. The broken examples give every check exactly one
//! session it must reject, so `labpipe dev generate --broken` doubles as a smoke test of the
//! whole validation pipeline.
//!
//! Output is a pure function of [`GenerateOptions`]: the same options write the same names,
//! the same bytes and the same modification times (see [`recording_system_time`]). Good
//! sessions do not depend on [`GenerateOptions::broken`], so adding the broken examples to a
//! demo folder never changes the good ones.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod broken;
mod metadata;
mod schedule;
mod session;
mod signal;

use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use chrono::{Local, NaiveDate, NaiveDateTime, TimeZone};
use serde::Serialize;

pub use broken::BrokenKind;
pub use metadata::{
    sample_format_bytes, write_metadata, HARDWARE_MODELS, METADATA_FILE, REQUIRED_KEYS,
    SAMPLE_FORMATS,
};

/// Total bytes of one generated session when the caller does not choose: the size of a
/// typical real recording, so demos move realistic volumes.
pub const DEFAULT_SIZE_BYTES: u64 = 600_000_000;

/// Number of good sessions when the caller does not choose: about one lab day.
pub const DEFAULT_COUNT: usize = 10;

/// Broken sessions are this many times smaller than good ones. Each exists to trip one check,
/// and seventeen full-size sessions would add 10 GB at the default size; half size halves
/// that while staying well inside the size band LabPipe accepts without warning (a quarter to
/// four times the usual size), so size never becomes a second defect.
pub const BROKEN_SIZE_DIVISOR: u64 = 2;

/// What to generate and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerateOptions {
    /// Folder that receives the session folders; created if missing.
    pub out: PathBuf,
    /// Number of good sessions.
    pub count: usize,
    /// Approximate total size of each good session in bytes (data files plus metadata).
    pub size_bytes: u64,
    /// Seed for every random choice; the same seed gives the same bytes.
    pub seed: u64,
    /// Also write one session for each [`BrokenKind`] supported on this platform.
    pub broken: bool,
    /// Recording time of the first session; later ones follow at a lab's pace.
    pub start: NaiveDateTime,
}

impl GenerateOptions {
    /// Options with the defaults: [`DEFAULT_COUNT`] good sessions of [`DEFAULT_SIZE_BYTES`],
    /// seed 0, no broken sessions, starting at [`default_start`].
    pub fn new(out: impl Into<PathBuf>) -> Self {
        Self {
            out: out.into(),
            count: DEFAULT_COUNT,
            size_bytes: DEFAULT_SIZE_BYTES,
            seed: 0,
            broken: false,
            start: default_start(),
        }
    }
}

/// Recording time of the first session by default: 2021-03-01 09:00:00. A fixed date keeps
/// generated folders reproducible and safely in the past.
pub fn default_start() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2021, 3, 1)
        .and_then(|d| d.and_hms_opt(9, 0, 0))
        .expect("2021-03-01 09:00:00 is a valid time")
}

/// Whether a session is an ordinary recording or a deliberate defect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SampleKind {
    /// A valid session every check should accept.
    Good,
    /// A session valid apart from exactly one defect.
    Broken(BrokenKind),
}

impl SampleKind {
    /// The defect, if this is a broken session.
    pub fn broken(&self) -> Option<BrokenKind> {
        match self {
            Self::Good => None,
            Self::Broken(kind) => Some(*kind),
        }
    }
}

/// One session folder that [`generate`] wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GeneratedSession {
    /// Folder name, normally the recording time as `YYYYMMDD_HHMMSS`.
    pub name: String,
    /// Full path of the folder.
    pub path: PathBuf,
    /// Good, or which defect it carries.
    pub kind: SampleKind,
    /// Bytes written into regular files of the folder (data and metadata).
    pub bytes: u64,
    /// When the session was recorded; every file's and the folder's modification time is set
    /// to this (see [`recording_system_time`]), except for
    /// [`BrokenKind::StillBeingWritten`], which keeps the time it was written. For sessions
    /// whose name is not a valid time this is the time the name was derived from.
    pub recorded_at: NaiveDateTime,
}

/// Why generating failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SampleError {
    /// A file or folder could not be created, written or stamped.
    #[error("cannot write {}", path.display())]
    Io {
        /// What was being written.
        path: PathBuf,
        /// The underlying failure.
        #[source]
        source: io::Error,
    },
    /// Generating never overwrites: the folder might hold real recordings.
    #[error("session folder {} already exists; choose another output folder or seed", .0.display())]
    AlreadyExists(PathBuf),
    /// Folder names need a four-digit year.
    #[error("recording time {0} is outside the years 1 to 9999")]
    TimeOutOfRange(NaiveDateTime),
    /// A metadata key or value that cannot be written as one `key: value` line.
    #[error("metadata entry {key:?} cannot be written: {reason}")]
    InvalidMetadata {
        /// The offending key.
        key: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl SampleError {
    pub(crate) fn io(path: &Path) -> impl FnOnce(io::Error) -> Self + '_ {
        move |source| Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Writes the sessions described by `opts` and returns them in the order written: good
/// sessions by recording time, then the broken examples.
///
/// `progress` is called after every chunk written with the bytes written so far and the total
/// that will be written, so a caller can draw a progress bar.
///
/// Nothing is written if any session folder already exists.
pub fn generate(
    opts: &GenerateOptions,
    mut progress: impl FnMut(u64, u64),
) -> Result<Vec<GeneratedSession>, SampleError> {
    session::generate(opts, &mut progress)
}

/// The modification time given to a session recorded at `recorded_at`.
///
/// Folder names are the lab PC's local wall-clock time, so the name is read in the local
/// time zone; a time skipped by a daylight-saving change is read as UTC instead.
pub fn recording_system_time(recorded_at: NaiveDateTime) -> SystemTime {
    match Local.from_local_datetime(&recorded_at).earliest() {
        Some(local) => SystemTime::from(local),
        None => SystemTime::from(recorded_at.and_utc()),
    }
}

#[cfg(test)]
mod tests;
