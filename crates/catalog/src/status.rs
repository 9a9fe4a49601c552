//! The one status every session has, and which changes are allowed.
//!
//! The lab PC, the backend and the researcher's app all show the same word for a session, so the
//! status machine lives in one place. Transitions are checked twice: here, so a caller gets a clear
//! error, and in DynamoDB, as a condition on the status read, so two writers racing on the same
//! session cannot both win.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Where a session is on its way from the lab folder to processed outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(
    feature = "ts",
    derive(ts_rs::TS),
    ts(export_to = "../../ui/src/lib/bindings/")
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    /// A dated folder was found on the lab PC.
    Detected,
    /// Local sanity checks passed (or only warned).
    Checked,
    /// The upload is under way (it resumes after interruptions).
    Uploading,
    /// Every file and the manifest are in the raw bucket.
    Uploaded,
    /// The backend verified the objects against the manifest and wrote the catalog entry.
    Cataloged,
    /// A preprocessing run holds the session.
    Processing,
    /// Processed outputs are written and recorded.
    Processed,
    /// Local checks blocked the session; it never left the lab PC.
    Rejected,
    /// A step failed; `status_step` and `status_message` say which and why.
    Failed,
}

impl Status {
    /// Every status, in pipeline order.
    pub const ALL: [Status; 9] = [
        Status::Detected,
        Status::Checked,
        Status::Uploading,
        Status::Uploaded,
        Status::Cataloged,
        Status::Processing,
        Status::Processed,
        Status::Rejected,
        Status::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Detected => "DETECTED",
            Status::Checked => "CHECKED",
            Status::Uploading => "UPLOADING",
            Status::Uploaded => "UPLOADED",
            Status::Cataloged => "CATALOGED",
            Status::Processing => "PROCESSING",
            Status::Processed => "PROCESSED",
            Status::Rejected => "REJECTED",
            Status::Failed => "FAILED",
        }
    }

    /// The statuses a session may be in for a change to `self`.
    ///
    /// - `PROCESSING → CATALOGED` releases a run interrupted by a transient error, so a retry can
    ///   claim the session again;
    /// - `PROCESSED → PROCESSING` re-processes with a new pipeline version;
    /// - `FAILED → PROCESSING` is an operator's re-drive after fixing the cause;
    /// - `PROCESSING → PROCESSING` takes over a run whose worker died (the caller decides when a
    ///   claim is stale);
    /// - anything may fail.
    pub fn allowed_from(self) -> &'static [Status] {
        use Status::*;
        match self {
            Detected => &[],
            Checked => &[Detected, Checked, Rejected],
            Uploading => &[Checked, Uploading, Failed],
            Uploaded => &[Uploading],
            Cataloged => &[Uploaded, Processing],
            Processing => &[Cataloged, Processing, Processed, Failed],
            Processed => &[Processing],
            Rejected => &[Detected, Checked],
            Failed => &Status::ALL,
        }
    }

    pub fn can_follow(self, from: Status) -> bool {
        self.allowed_from().contains(&from)
    }

    /// Nothing more will happen to the session without someone acting.
    pub fn is_settled(self) -> bool {
        matches!(self, Status::Processed | Status::Rejected | Status::Failed)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status word that is not one of [`Status::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown status '{0}'; expected one of DETECTED, CHECKED, UPLOADING, UPLOADED, CATALOGED, PROCESSING, PROCESSED, REJECTED, FAILED")]
pub struct UnknownStatus(pub String);

impl FromStr for Status {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Status::ALL
            .into_iter()
            .find(|st| st.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownStatus(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip() {
        for s in Status::ALL {
            assert_eq!(s.as_str().parse::<Status>().unwrap(), s);
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.as_str())
            );
        }
        assert_eq!("processed".parse::<Status>().unwrap(), Status::Processed);
        assert!("DONE".parse::<Status>().is_err());
    }

    #[test]
    fn transitions() {
        use Status::*;
        for (from, to, ok) in [
            (Cataloged, Processing, true),
            (Processing, Processed, true),
            (Processed, Processing, true),
            (Processing, Cataloged, true),
            (Failed, Processing, true),
            (Processed, Failed, true),
            (Rejected, Failed, true),
            (Cataloged, Processed, false),
            (Processed, Cataloged, false),
            (Failed, Processed, false),
            (Uploaded, Processing, false),
            (Checked, Detected, false),
        ] {
            assert_eq!(to.can_follow(from), ok, "{from} -> {to}");
        }
    }
}
