//! The one error type of the lab library; messages say what failed and what to do. And what a
//! front end offers beside an error ([`ErrorActions`]): decided here from the error's stable
//! code, so the app's views only draw the offer they are sent.

use labpipe_core::Verdict;
use serde::{Deserialize, Serialize};

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

/// The error codes a change in the app's Settings fixes: something the lab PC was never told
/// (a bucket, the catalog table, the lab folder).
pub const SETTINGS_CODES: [&str; 1] = ["not_configured"];

/// What the front end offers beside an error, decided here so it only draws the offer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "ts",
    derive(ts_rs::TS),
    ts(export_to = "../../ui/src/lib/bindings/")
)]
pub struct ErrorActions {
    /// Offer "Open Settings": the error goes away once Settings holds what is missing.
    pub open_settings: bool,
}

impl ErrorActions {
    /// The offer beside an error with the stable `code` (`LabError::code`, the app's codes).
    pub fn of(code: &str) -> ErrorActions {
        ErrorActions {
            open_settings: SETTINGS_CODES.contains(&code),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_settings_fix_offers_settings() {
        let table = [
            ("not_configured", true),
            // Wrong values in Settings are refused where they are typed, not offered again.
            ("settings", false),
            // Missing credentials are entered in Settings too, but the error may also come from
            // AWS_PROFILE or ~/.aws, which Settings does not hold.
            ("credentials", false),
            ("catalog_service", false),
            ("not_found", false),
            ("internal", false),
            ("", false),
        ];
        for (code, open_settings) in table {
            assert_eq!(
                ErrorActions::of(code),
                ErrorActions { open_settings },
                "{code:?}"
            );
        }
    }
}
