//! Sync errors. Each says what failed and what to do; [`SyncError::is_usage`] separates "your
//! request selects nothing useful" (exit 2 at the CLI) from failures of the transfer itself.

use std::path::PathBuf;

use labpipe_catalog::CatalogError;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("the filter '{filter}' matches no session in the catalog; loosen it, and check with `labpipe query '{filter}'` what it selects")]
    NothingMatched { filter: String },

    #[error("{count} session(s) match but none has processed outputs{version}: {sessions}; wait for preprocessing to finish (`labpipe query` shows each status) or choose another --pipeline-version")]
    NotProcessed {
        count: usize,
        sessions: String,
        version: String,
    },

    #[error("no file of the {sessions} matching session(s) passes --include {patterns}; check the patterns (they match the path inside the session, or the file name when they have no '/')")]
    NothingIncluded { sessions: usize, patterns: String },

    #[error("--include pattern '{pattern}' is not usable: {reason}")]
    BadPattern { pattern: String, reason: String },

    #[error("object key '{key}' of session {session} is unsafe ({reason}): it could land outside the destination folder, or it is not a name every OS can hold, so it is not synced (the session's other files are); report it to the operator")]
    UnsafeKey {
        session: String,
        key: String,
        reason: String,
    },

    #[error("s3://{bucket}/{key}: checksum mismatch — the catalog says sha256 {expected}, the downloaded bytes have {actual}; the object changed behind the catalog, so it was not written. Ask the operator to re-run preprocessing of this session")]
    ChecksumMismatch {
        bucket: String,
        key: String,
        expected: String,
        actual: String,
    },

    #[error("s3://{bucket}/{key}: size mismatch — the catalog says {expected} bytes, S3 has {actual}; the object changed behind the catalog, so it was not downloaded. Ask the operator to re-run preprocessing of this session")]
    SizeMismatch {
        bucket: String,
        key: String,
        expected: u64,
        actual: u64,
    },

    #[error("s3://{bucket}/{key}: {message}")]
    S3 {
        bucket: String,
        key: String,
        message: String,
        retryable: bool,
    },

    #[error("raw files of session {session}: {reason}")]
    RawManifest { session: String, reason: String },

    #[error("snapshot {path}: {reason}")]
    Snapshot { path: PathBuf, reason: String },

    #[error(transparent)]
    Catalog(#[from] CatalogError),

    #[error("cannot {action} {}: {source}; check free space and permissions of the destination", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{} is being synced by another `labpipe sync` ({holder}); wait for that run to finish, or stop it, then run this command again (it continues from what is already there) — or sync into another folder", dest.display())]
    Busy { dest: PathBuf, holder: String },

    #[error("{failed} of {total} files failed (first: {first}); run the same command again to retry — verified files are kept and partial downloads resume")]
    Incomplete {
        failed: usize,
        total: usize,
        first: String,
    },
}

impl SyncError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> SyncError {
        let path = path.into();
        move |source| SyncError::Io {
            action,
            path,
            source,
        }
    }

    /// True when the request itself selects nothing to sync (a filter or pattern to change),
    /// rather than a transfer that failed.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            SyncError::NothingMatched { .. }
                | SyncError::NotProcessed { .. }
                | SyncError::NothingIncluded { .. }
                | SyncError::BadPattern { .. }
        )
    }

    /// A short stable code for `--json` consumers.
    pub fn code(&self) -> &'static str {
        match self {
            SyncError::NothingMatched { .. } => "nothing_matched",
            SyncError::NotProcessed { .. } => "not_processed",
            SyncError::NothingIncluded { .. } => "nothing_included",
            SyncError::BadPattern { .. } => "bad_pattern",
            SyncError::UnsafeKey { .. } => "unsafe_key",
            SyncError::ChecksumMismatch { .. } => "checksum_mismatch",
            SyncError::SizeMismatch { .. } => "size_mismatch",
            SyncError::S3 { .. } => "s3",
            SyncError::RawManifest { .. } => "raw_manifest",
            SyncError::Snapshot { .. } => "snapshot",
            SyncError::Catalog(_) => "catalog",
            SyncError::Io { .. } => "io",
            SyncError::Busy { .. } => "busy",
            SyncError::Incomplete { .. } => "incomplete",
        }
    }
}
