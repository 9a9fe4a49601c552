//! Progress as typed events: the CLI draws bars or prints JSON lines from them, and the desktop
//! app will receive the very same values. Every event names its session; file events name the
//! path relative to the session folder.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A session passed its checks and its upload begins.
    SessionStarted {
        session: String,
        files: usize,
        bytes_total: u64,
    },
    /// A session was not uploaded because its checks block it.
    SessionRefused {
        session: String,
        verdict: String,
        findings: Vec<String>,
    },
    /// Bytes of one file are acknowledged by S3 (or found already there).
    FileProgress {
        session: String,
        path: String,
        bytes_done: u64,
        bytes_total: u64,
        /// Bytes per second sent by this file so far.
        rate: f64,
        /// Seconds left at that rate, when known.
        eta_secs: Option<f64>,
    },
    /// A file's object is complete.
    FileDone {
        session: String,
        path: String,
        outcome: FileOutcome,
        bytes_sent: u64,
        bytes_resumed: u64,
    },
    /// A request failed and is sent again: the SDK's backoff, or a part's extra round after the
    /// SDK gave up. `attempt` counts this request's attempts from 1, so the first retry is 2.
    Retrying {
        session: String,
        /// The file the request is for; `None` for requests about the whole session.
        path: Option<String>,
        /// The S3 operation, e.g. `UploadPart`.
        operation: String,
        attempt: u32,
        /// Why the attempt before failed, e.g. `connection reset`, `HTTP 503 SlowDown`.
        reason: String,
    },
    /// A file's object is proven equal to the local file: by the CRC64NVME S3 returned for the
    /// write (or a HeadObject where it returns none), or — for an object already there — by its
    /// checksum, or by the journal's record of this very file and the listing's ETag.
    FileVerified {
        session: String,
        path: String,
        key: String,
        crc64nvme: String,
    },
    /// The manifest is written: the session is safely in S3.
    SessionDone {
        session: String,
        outcome: SessionOutcome,
        bytes_total: u64,
        bytes_sent: u64,
        bytes_resumed: u64,
        manifest_key: String,
    },
    /// The session did not make it; `code` is stable, `reason` says what to do.
    SessionFailed {
        session: String,
        code: String,
        reason: String,
        bytes_sent: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileOutcome {
    Uploaded,
    /// The object already held exactly these bytes; nothing was sent.
    AlreadyUploaded,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionOutcome {
    Uploaded,
    /// Every object and the manifest were already there with the same content.
    AlreadyUploaded,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialise_with_a_tag() {
        let e = Event::FileDone {
            session: "20210301_161221".into(),
            path: "a.bin".into(),
            outcome: FileOutcome::AlreadyUploaded,
            bytes_sent: 0,
            bytes_resumed: 0,
        };
        let json = serde_json::to_string(&e).unwrap();
        assert!(json.starts_with("{\"event\":\"file_done\""), "{json}");
        assert!(json.contains("\"outcome\":\"already_uploaded\""));
        assert_eq!(serde_json::from_str::<Event>(&json).unwrap(), e);
    }
}
