//! The one error type of the upload library; messages say what failed and what to do.

use std::path::PathBuf;

use crate::refusal::{ChangedSinceUpload, NameTaken};

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("session {session} is not uploadable (verdict {verdict}): {}; then run labpipe check again", findings.join("; "))]
    NotUploadable {
        session: String,
        verdict: &'static str,
        findings: Vec<String>,
    },
    #[error("file changed while uploading: {path} ({what}); wait until the recording is finished, then upload again")]
    FileChanged { path: String, what: String },
    #[error("conflict: s3://{bucket}/{key} already exists with different content ({detail}); nothing was overwritten. If the local files are a correction, upload them as a new revision: labpipe upload --revise --reason \"what changed\" FOLDER")]
    Conflict {
        bucket: String,
        key: String,
        detail: String,
    },
    #[error("verification failed for s3://{bucket}/{key}: expected {expected}, found {found}; run the upload again (nothing is trusted until verified)")]
    Verify {
        bucket: String,
        key: String,
        expected: String,
        found: String,
    },
    #[error("bucket {bucket} does not exist; check --bucket / LABPIPE_RAW_BUCKET and the region")]
    BucketNotFound { bucket: String },
    #[error("access denied to bucket {bucket} ({detail}); ask an admin for s3:PutObject, s3:GetObject and multipart permissions on raw/*")]
    AccessDenied { bucket: String, detail: String },
    #[error("aws credentials rejected or missing ({detail}); set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or refresh your sso login")]
    Credentials { detail: String },
    #[error("s3 {operation} failed for {key} after retries: {detail}; check the network and run the upload again (it resumes)")]
    S3 {
        operation: &'static str,
        key: String,
        detail: String,
    },
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("upload journal {}: {detail}; delete it only if no upload is in progress", path.display())]
    Journal { path: PathBuf, detail: String },
    #[error("session {session}: {detail}")]
    Invalid { session: String, detail: String },
    #[error("session {session} is being uploaded by {holder}; nothing was touched — let it finish, then upload again if needed")]
    Locked { session: String, holder: String },
    /// A different recording already holds the session's name; nothing was sent.
    #[error("{0}")]
    NameTaken(Box<NameTaken>),
    /// The folder changed after (part of) it was uploaded; nothing was sent.
    #[error("{0}")]
    ChangedSinceUpload(Box<ChangedSinceUpload>),
    #[error("invalid upload options: {detail}")]
    Options { detail: String },
    #[error("an upload task stopped unexpectedly ({detail}); run the upload again (it resumes)")]
    Task { detail: String },
}

impl UploadError {
    /// Errors that no other session can avoid either: the run should stop.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            Self::BucketNotFound { .. } | Self::AccessDenied { .. } | Self::Credentials { .. }
        )
    }

    /// A stable machine-readable code for events and the desktop app.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotUploadable { .. } => "not_uploadable",
            Self::FileChanged { .. } => "file_changed",
            Self::Conflict { .. } => "conflict",
            Self::Verify { .. } => "verify_failed",
            Self::BucketNotFound { .. } => "bucket_not_found",
            Self::AccessDenied { .. } => "access_denied",
            Self::Credentials { .. } => "credentials",
            Self::S3 { .. } => "s3",
            Self::Io { .. } => "io",
            Self::Journal { .. } => "journal",
            Self::Invalid { .. } => "invalid_session",
            Self::Locked { .. } => "locked",
            Self::NameTaken(_) => "name_taken",
            Self::ChangedSinceUpload(_) => "changed_since_upload",
            Self::Options { .. } => "invalid_options",
            Self::Task { .. } => "task_failed",
        }
    }
}
