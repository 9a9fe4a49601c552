//! One client log record: one lab-side fact about one session (or about a whole run), as one JSON
//! object, so an operator can filter the log group with CloudWatch's JSON patterns
//! (`{ $.kind = "FAILED" }`) without the lab PC.
//!
//! The kinds are the lab-side statuses of the design — DETECTED, CHECKED or REJECTED, UPLOADING,
//! UPLOADED, FAILED — plus DROPPED, which says how many records a full spool had to drop. They
//! are derived from the same values the CLI and the app already have: a check's
//! [`SessionReport`] and the upload engine's [`Event`]s, so both programs log the same facts.

use chrono::{DateTime, SecondsFormat, Utc};
use labpipe_core::SessionReport;
use labpipe_upload::{Event, SessionOutcome};
use serde::{Deserialize, Serialize};

/// Longest `reason` kept, in bytes: a record stays far below CloudWatch's per-event limit and a
/// full spool stays small (the spool bounds the record count).
pub const MAX_REASON_BYTES: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Kind {
    /// A session folder was found and is about to be checked.
    Detected,
    /// The checks let the session be uploaded (verdict pass or warn).
    Checked,
    /// The checks block the session (verdict fail, or wait while it is still being written).
    Rejected,
    /// Its upload began.
    Uploading,
    /// Its manifest is in S3 (or already was).
    Uploaded,
    /// Its upload (or the whole run) failed; `reason` says why and what to do.
    Failed,
    /// Records dropped by a full spool; `count` says how many.
    Dropped,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Detected => "DETECTED",
            Kind::Checked => "CHECKED",
            Kind::Rejected => "REJECTED",
            Kind::Uploading => "UPLOADING",
            Kind::Uploaded => "UPLOADED",
            Kind::Failed => "FAILED",
            Kind::Dropped => "DROPPED",
        }
    }
}

/// Who wrote the records: the lab PC, its user and the program.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    pub host: String,
    pub user: String,
    /// `labpipe` (the CLI) or `labpipe-app`.
    pub program: String,
}

impl Origin {
    /// This computer's name and the current user, from the operating system.
    pub fn current(program: &str) -> Self {
        Origin {
            host: host_name(),
            user: user_name(),
            program: program.to_string(),
        }
    }

    /// The log stream of this lab PC and user: `<host>/<user>`. CloudWatch refuses `:` and `*`
    /// in stream names and allows 512 characters.
    /// <https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_CreateLogStream.html>
    pub fn stream_name(&self) -> String {
        let clean = |s: &str| -> String {
            s.chars()
                .map(|c| {
                    if c == ':' || c == '*' || c.is_control() {
                        '_'
                    } else {
                        c
                    }
                })
                .collect()
        };
        let mut name = format!("{}/{}", clean(&self.host), clean(&self.user));
        truncate(&mut name, 512);
        name
    }
}

/// One record, serialised as one JSON object per log event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// When it happened (UTC, RFC 3339 with milliseconds).
    pub time: String,
    pub host: String,
    pub user: String,
    pub program: String,
    pub kind: Kind,
    /// The folder that holds the session folders, as the lab PC names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lab_folder: Option<String>,
    /// The session id (its folder name); `None` for a fact about a whole run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A DROPPED record's number of records lost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
}

impl Record {
    pub fn new(origin: &Origin, kind: Kind, at: DateTime<Utc>) -> Self {
        Record {
            time: at.to_rfc3339_opts(SecondsFormat::Millis, true),
            host: origin.host.clone(),
            user: origin.user.clone(),
            program: origin.program.clone(),
            kind,
            lab_folder: None,
            session: None,
            reason: None,
            count: None,
        }
    }

    pub fn session(mut self, session: impl Into<String>) -> Self {
        self.session = Some(session.into());
        self
    }

    pub fn lab_folder(mut self, folder: impl Into<String>) -> Self {
        self.lab_folder = Some(folder.into());
        self
    }

    /// The reason, cut to [`MAX_REASON_BYTES`] at a character boundary.
    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        let mut r = reason.into();
        truncate(&mut r, MAX_REASON_BYTES);
        self.reason = Some(r);
        self
    }

    /// Milliseconds since the Unix epoch, CloudWatch's event timestamp.
    pub fn timestamp_millis(&self) -> i64 {
        DateTime::parse_from_rfc3339(&self.time)
            .map(|t| t.timestamp_millis())
            .unwrap_or(0)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a record always serialises")
    }

    /// The records of a check: DETECTED, then CHECKED (pass, warn) or REJECTED (fail, wait)
    /// with the verdict and the blocking findings as the reason.
    pub fn from_report(origin: &Origin, report: &SessionReport, at: DateTime<Utc>) -> Vec<Record> {
        let folder = report
            .path
            .parent()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let base = |kind| {
            Record::new(origin, kind, at)
                .session(report.session.clone())
                .lab_folder(folder.clone())
        };
        let verdict = report.verdict.as_str();
        let second = if report.verdict.is_uploadable() {
            base(Kind::Checked).reason(format!("verdict {verdict}"))
        } else {
            let findings: Vec<String> = report
                .errors()
                .map(|f| match &f.file {
                    Some(file) => format!("{file}: {}", f.message),
                    None => f.message.clone(),
                })
                .collect();
            let reason = if findings.is_empty() {
                format!("verdict {verdict}")
            } else {
                format!("verdict {verdict}: {}", findings.join("; "))
            };
            base(Kind::Rejected).reason(reason)
        };
        vec![base(Kind::Detected), second]
    }

    /// The record of an upload event, if it is a status change: UPLOADING, UPLOADED, FAILED.
    /// A refusal is not repeated here: the check's REJECTED record already says it.
    pub fn from_event(
        origin: &Origin,
        lab_folder: Option<&str>,
        event: &Event,
        at: DateTime<Utc>,
    ) -> Option<Record> {
        let (kind, session, reason) = match event {
            Event::SessionStarted {
                session,
                files,
                bytes_total,
            } => (
                Kind::Uploading,
                session,
                format!("{files} files, {bytes_total} bytes"),
            ),
            Event::SessionDone {
                session,
                outcome,
                bytes_sent,
                ..
            } => (
                Kind::Uploaded,
                session,
                match outcome {
                    SessionOutcome::Uploaded => format!("uploaded, {bytes_sent} bytes sent"),
                    SessionOutcome::AlreadyUploaded => "already uploaded".to_string(),
                },
            ),
            Event::SessionFailed {
                session,
                code,
                reason,
                ..
            } => (Kind::Failed, session, format!("{code}: {reason}")),
            _ => return None,
        };
        let mut r = Record::new(origin, kind, at)
            .session(session.clone())
            .reason(reason);
        if let Some(folder) = lab_folder {
            r = r.lab_folder(folder);
        }
        Some(r)
    }
}

/// Cuts `s` to at most `max` bytes at a character boundary.
fn truncate(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

use labpipe_core::machine::{host_name, user_name};

#[cfg(test)]
mod tests {
    use super::*;
    use labpipe_core::check::Verdict;

    fn origin() -> Origin {
        Origin {
            host: "lab-pc:1*".into(),
            user: "tech".into(),
            program: "labpipe".into(),
        }
    }

    #[test]
    fn stream_names_have_no_forbidden_characters() {
        assert_eq!(origin().stream_name(), "lab-pc_1_/tech");
        let long = Origin {
            host: "h".repeat(600),
            ..origin()
        };
        assert_eq!(long.stream_name().len(), 512);
    }

    #[test]
    fn records_are_one_json_object_with_the_named_fields() {
        let at = DateTime::parse_from_rfc3339("2026-12-01T18:00:00.123Z")
            .unwrap()
            .with_timezone(&Utc);
        let r = Record::new(&origin(), Kind::Failed, at)
            .session("20210301_161221")
            .lab_folder("/data/lab")
            .reason("é".repeat(MAX_REASON_BYTES));
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(v["kind"], "FAILED");
        assert_eq!(v["time"], "2026-12-01T18:00:00.123Z");
        assert_eq!(v["session"], "20210301_161221");
        assert_eq!(v["lab_folder"], "/data/lab");
        assert_eq!(v["host"], "lab-pc:1*");
        assert!(v["reason"].as_str().unwrap().len() <= MAX_REASON_BYTES);
        assert!(v.get("count").is_none());
        assert_eq!(r.timestamp_millis(), at.timestamp_millis());
    }

    #[test]
    fn events_map_to_status_changes() {
        let at = Utc::now();
        let failed = Event::SessionFailed {
            session: "s".into(),
            code: "access_denied".into(),
            reason: "ask the operator".into(),
            bytes_sent: 0,
        };
        let r = Record::from_event(&origin(), Some("/lab"), &failed, at).unwrap();
        assert_eq!(r.kind, Kind::Failed);
        assert_eq!(r.reason.as_deref(), Some("access_denied: ask the operator"));
        let done = Event::SessionDone {
            session: "s".into(),
            outcome: SessionOutcome::AlreadyUploaded,
            bytes_total: 1,
            bytes_sent: 0,
            bytes_resumed: 0,
            manifest_key: "k".into(),
        };
        assert_eq!(
            Record::from_event(&origin(), None, &done, at).unwrap().kind,
            Kind::Uploaded
        );
        let refused = Event::SessionRefused {
            session: "s".into(),
            verdict: "fail".into(),
            findings: vec![],
        };
        assert!(Record::from_event(&origin(), None, &refused, at).is_none());
    }

    #[test]
    fn verdicts_map_to_checked_or_rejected() {
        for (verdict, kind) in [
            (Verdict::Pass, Kind::Checked),
            (Verdict::Warn, Kind::Checked),
            (Verdict::Wait, Kind::Rejected),
            (Verdict::Fail, Kind::Rejected),
        ] {
            let report = SessionReport {
                session: "20210301_161221".into(),
                path: "/data/lab/20210301_161221".into(),
                verdict,
                recorded_at: None,
                total_bytes: 0,
                findings: vec![],
                metadata: Default::default(),
                files: vec![],
                id: None,
            };
            let rs = Record::from_report(&origin(), &report, Utc::now());
            assert_eq!(rs[0].kind, Kind::Detected);
            assert_eq!(rs[1].kind, kind, "{verdict:?}");
            assert_eq!(rs[1].lab_folder.as_deref(), Some("/data/lab"));
            assert!(rs[1].reason.as_deref().unwrap().contains(verdict.as_str()));
        }
    }
}
