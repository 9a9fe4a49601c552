//! The one error type of the lab library; messages say what failed and what to do.

use labpipe_core::Verdict;

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("{session} is not queued or uploading; refresh the Transfers view")]
    NotActive { session: String },
    #[error("{session} is not paused; only a paused upload can be resumed")]
    NotPaused { session: String },
    #[error("{session} is not in the watched lab folder; check the lab folder in Settings")]
    NotInLabFolder { session: String },
    #[error("{session} cannot be uploaded: its check verdict is {}; fix what the checks found (or wait until it is written) and check again", verdict.as_str())]
    Blocked { session: String, verdict: Verdict },
    #[error("{session} is already uploaded (the catalog knows it); raw data is kept exactly as it was sent — upload a corrected folder as a correction (a new revision)")]
    AlreadyUploaded { session: String },
    #[error("{session} is not uploaded under this name: {reason} {advice}")]
    NameTaken {
        session: String,
        reason: String,
        advice: String,
    },
    #[error("{session} {reason} {advice}")]
    ChangedSinceUpload {
        session: String,
        reason: String,
        advice: String,
    },
    #[error("{session} is being uploaded; wait until it has finished (or cancel it) before uploading a correction")]
    Busy { session: String },
    #[error(
        "a correction of {session} needs a reason (what changed and why), at most 500 characters"
    )]
    NoReason { session: String },
    #[error(transparent)]
    Upload(#[from] labpipe_upload::UploadError),
}

impl LabError {
    /// A stable machine-readable code for the app and logs.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotActive { .. } | Self::NotPaused { .. } | Self::NotInLabFolder { .. } => {
                "not_found"
            }
            Self::Blocked { .. }
            | Self::AlreadyUploaded { .. }
            | Self::Busy { .. }
            | Self::NoReason { .. } => "not_uploadable",
            Self::NameTaken { .. } => "name_taken",
            Self::ChangedSinceUpload { .. } => "changed_since_upload",
            Self::Upload(e) => e.code(),
        }
    }
}
