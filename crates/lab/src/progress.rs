//! Upload progress, folded once: the engine's [`Event`]s become one [`TransferView`] per session
//! (the app's Transfers view and the CLI's bars both read it), and a batch's results become a
//! [`RunSummary`] under one policy.
//!
//! Transfer states: `queued` → `running` → `done` | `failed`; `queued`/`running` ⇄ `paused` (held,
//! kept across restarts, never started by a worker); a `running` transfer the app did not see
//! end becomes `interrupted` at the next start and waits its turn like a queued one (it resumes
//! from the journal); any active one → `cancelled`.

use labpipe_upload::{Event, SessionOutcome, SessionResult, UploadError};
use serde::{Deserialize, Serialize};

/// Where a session's upload stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(
    feature = "ts",
    derive(ts_rs::TS),
    ts(export_to = "../../ui/src/lib/bindings/")
)]
#[serde(rename_all = "snake_case")]
pub enum TransferState {
    /// Waiting for its turn.
    Queued,
    /// Uploading now.
    Running,
    /// Held by the user; a running upload stopped, keeping what S3 acknowledged.
    Paused,
    /// The app stopped while it was uploading; it waits its turn and continues from the journal.
    Interrupted,
    /// Every file and the manifest are in S3.
    Done,
    /// The upload stopped with an error (see `error`).
    Failed,
    /// Taken off the queue by the user; uploading it again resumes from the journal.
    Cancelled,
}

impl TransferState {
    /// Not finished: waiting, uploading or held.
    pub fn is_active(self) -> bool {
        matches!(
            self,
            Self::Queued | Self::Running | Self::Paused | Self::Interrupted
        )
    }

    /// Picked by the worker when its turn comes.
    pub fn waits_its_turn(self) -> bool {
        matches!(self, Self::Queued | Self::Interrupted)
    }
}

/// The buttons a transfer offers, decided here so the front end only draws them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "ts",
    derive(ts_rs::TS),
    ts(export_to = "../../ui/src/lib/bindings/")
)]
pub struct TransferActions {
    /// Hold it: a running upload stops, keeping what is already in the cloud.
    pub pause: bool,
    /// Back into the queue after a pause.
    pub resume: bool,
    /// Take it off the active list.
    pub cancel: bool,
    /// Upload a failed or cancelled session again (it resumes from the journal). Not offered
    /// when the cloud holds other bytes under the session's name: the same upload would be
    /// refused again (`correct` is offered instead).
    pub again: bool,
    /// Offer "Upload as a correction…": the upload ended because the session's name already
    /// holds other bytes of this recording (the error `conflict` or `changed_since_upload`), so
    /// the local files can go up as a new revision beside the first, with a reason.
    #[serde(default)]
    pub correct: bool,
    /// Not finished: listed with the active transfers.
    pub active: bool,
}

/// The error codes of an upload that ended because the session's name already holds other bytes
/// of the same recording (`labpipe_upload::UploadError::code`): nothing was overwritten, and a
/// correction (a new revision) is the way on. A name another recording holds (`name_taken`) is
/// not one of them: that folder needs a rig id, not a correction.
pub const CORRECTION_CODES: [&str; 2] = ["conflict", "changed_since_upload"];

impl TransferActions {
    /// What the user may do with a transfer in `state` that ended with `error` (if any).
    pub fn of(state: TransferState, error: Option<&TransferError>) -> TransferActions {
        use TransferState::*;
        let correct = !state.is_active()
            && error.is_some_and(|e| CORRECTION_CODES.contains(&e.code.as_str()));
        TransferActions {
            pause: matches!(state, Queued | Running | Interrupted),
            resume: state == Paused,
            cancel: state.is_active(),
            again: matches!(state, Failed | Cancelled) && !correct,
            correct,
            active: state.is_active(),
        }
    }
}

/// Where one file's upload stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "ts",
    derive(ts_rs::TS),
    ts(export_to = "../../ui/src/lib/bindings/")
)]
#[serde(rename_all = "snake_case")]
pub enum FileState {
    Uploading,
    Uploaded,
    /// The object already held exactly these bytes; nothing was sent.
    AlreadyUploaded,
    /// Read back from S3: checksum and size match the local file.
    Verified,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(
    feature = "ts",
    derive(ts_rs::TS),
    ts(export_to = "../../ui/src/lib/bindings/")
)]
pub struct FileTransferView {
    pub path: String,
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub bytes_done: u64,
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub bytes_total: u64,
    /// Bytes per second.
    pub rate: f64,
    pub eta_secs: Option<f64>,
    pub state: FileState,
    /// Requests for this file sent again after a failed attempt.
    #[serde(default)]
    pub retries: u32,
    /// Why the latest retry was needed, e.g. `connection reset`.
    #[serde(default)]
    pub last_retry_reason: Option<String>,
}

/// Why an upload failed: the library's stable code and its sentence.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(
    feature = "ts",
    derive(ts_rs::TS),
    ts(export_to = "../../ui/src/lib/bindings/")
)]
pub struct TransferError {
    pub code: String,
    pub message: String,
}

/// One session's upload as the app's Transfers view and the CLI's bars show it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(
    feature = "ts",
    derive(ts_rs::TS),
    ts(export_to = "../../ui/src/lib/bindings/")
)]
pub struct TransferView {
    pub session: String,
    pub path: String,
    pub state: TransferState,
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub bytes_total: u64,
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub bytes_done: u64,
    /// Bytes found already in S3 from an earlier, interrupted run (not sent again).
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub bytes_resumed: u64,
    pub rate: f64,
    pub eta_secs: Option<f64>,
    pub files: Vec<FileTransferView>,
    /// Requests sent again after a failed attempt in this run (files and session-wide ones).
    #[serde(default)]
    pub retries: u32,
    /// Why the latest retry was needed, e.g. `connection reset`.
    #[serde(default)]
    pub last_retry_reason: Option<String>,
    /// The app stopped while this was uploading; it continued from the journal at the next start.
    #[serde(default)]
    pub interrupted: bool,
    pub error: Option<TransferError>,
    /// How it ended when `done`.
    #[cfg_attr(
        feature = "ts",
        ts(type = "\"uploaded\" | \"already_uploaded\" | null")
    )]
    pub outcome: Option<SessionOutcome>,
    pub queued_at: String,
    pub finished_at: Option<String>,
    /// What the user may do now (follows `state`).
    #[serde(default)]
    pub actions: TransferActions,
    /// Set when this upload is a correction of an uploaded session (a new revision): why.
    #[serde(default)]
    pub revision_reason: Option<String>,
}

fn now() -> String {
    chrono::Local::now().format("%Y-%m-%d %H:%M:%S").to_string()
}

impl TransferView {
    /// A session waiting for its turn.
    pub fn queued(session: impl Into<String>, path: impl Into<String>) -> Self {
        TransferView {
            session: session.into(),
            path: path.into(),
            state: TransferState::Queued,
            bytes_total: 0,
            bytes_done: 0,
            bytes_resumed: 0,
            rate: 0.0,
            eta_secs: None,
            files: Vec::new(),
            retries: 0,
            last_retry_reason: None,
            interrupted: false,
            error: None,
            outcome: None,
            queued_at: now(),
            finished_at: None,
            actions: TransferActions::of(TransferState::Queued, None),
            revision_reason: None,
        }
    }

    /// Moves to `state`, keeping `actions` in step.
    pub fn set_state(&mut self, state: TransferState) {
        self.state = state;
        self.refresh_actions();
    }

    /// Works `actions` out again from the state and the error (for a view saved by an older
    /// rule).
    pub fn refresh_actions(&mut self) {
        self.actions = TransferActions::of(self.state, self.error.as_ref());
    }

    /// Ends the transfer in `state` (done, failed or cancelled).
    pub fn finish(&mut self, state: TransferState) {
        self.set_state(state);
        self.stand_still();
        self.finished_at = Some(now());
    }

    /// Ends the transfer as failed, saying why.
    pub fn fail(&mut self, code: &str, message: &str) {
        self.error = Some(TransferError {
            code: code.into(),
            message: message.into(),
        });
        self.finish(TransferState::Failed);
    }

    /// Nothing moves any more: no rate, no time left.
    pub fn stand_still(&mut self) {
        self.rate = 0.0;
        self.eta_secs = None;
        for f in &mut self.files {
            f.rate = 0.0;
            f.eta_secs = None;
        }
    }

    /// Clears what the previous run showed; a worker is about to start this one again.
    pub fn start_run(&mut self) {
        self.error = None;
        self.set_state(TransferState::Running);
        self.files.clear();
        self.bytes_done = 0;
        self.bytes_resumed = 0;
        self.retries = 0;
        self.last_retry_reason = None;
    }

    /// Folds one progress event into the view.
    pub fn apply(&mut self, ev: &Event) {
        match ev {
            Event::SessionStarted { bytes_total, .. } => {
                self.bytes_total = *bytes_total;
                self.set_state(TransferState::Running);
            }
            Event::SessionRefused {
                verdict, findings, ..
            } => self.fail(
                "not_uploadable",
                &format!("the checks say {verdict}: {}", findings.join("; ")),
            ),
            Event::FileProgress {
                path,
                bytes_done,
                bytes_total,
                rate,
                eta_secs,
                ..
            } => {
                let f = self.file(path);
                f.bytes_done = *bytes_done;
                f.bytes_total = *bytes_total;
                f.rate = *rate;
                f.eta_secs = *eta_secs;
                self.recount();
            }
            Event::FileDone {
                path,
                outcome,
                bytes_resumed,
                ..
            } => {
                let f = self.file(path);
                f.bytes_done = f.bytes_total.max(f.bytes_done);
                f.rate = 0.0;
                f.eta_secs = None;
                f.state = match outcome {
                    labpipe_upload::FileOutcome::Uploaded => FileState::Uploaded,
                    labpipe_upload::FileOutcome::AlreadyUploaded => FileState::AlreadyUploaded,
                };
                self.bytes_resumed += bytes_resumed;
                self.recount();
            }
            Event::FileVerified { path, .. } => self.file(path).state = FileState::Verified,
            Event::Retrying { path, reason, .. } => {
                if let Some(path) = path {
                    let f = self.file(path);
                    f.retries += 1;
                    f.last_retry_reason = Some(reason.clone());
                }
                self.retries += 1;
                self.last_retry_reason = Some(reason.clone());
            }
            Event::SessionDone {
                outcome,
                bytes_total,
                bytes_resumed,
                ..
            } => {
                self.bytes_total = *bytes_total;
                self.bytes_done = *bytes_total;
                self.bytes_resumed = self.bytes_resumed.max(*bytes_resumed);
                self.outcome = Some(*outcome);
                self.finish(TransferState::Done);
            }
            Event::SessionFailed { code, reason, .. } => self.fail(code, reason),
        }
    }

    /// Ends a running transfer with what the engine returned, in case its last event was lost.
    pub fn settle(&mut self, r: &SessionResult) {
        if self.state == TransferState::Running {
            self.bytes_total = r.bytes_total;
            self.bytes_done = r.bytes_total;
            self.bytes_resumed = r.bytes_resumed;
            self.outcome = Some(r.outcome);
            self.finish(TransferState::Done);
        }
    }

    /// `1 retry — last: connection reset`; empty when nothing was retried.
    pub fn retries_text(&self) -> String {
        retries_text(u64::from(self.retries), self.last_retry_reason.as_deref())
    }

    fn file(&mut self, path: &str) -> &mut FileTransferView {
        let at = match self.files.binary_search_by(|f| f.path.as_str().cmp(path)) {
            Ok(i) => i,
            Err(i) => {
                self.files.insert(
                    i,
                    FileTransferView {
                        path: path.into(),
                        bytes_done: 0,
                        bytes_total: 0,
                        rate: 0.0,
                        eta_secs: None,
                        state: FileState::Uploading,
                        retries: 0,
                        last_retry_reason: None,
                    },
                );
                i
            }
        };
        &mut self.files[at]
    }

    fn recount(&mut self) {
        self.bytes_done = self.files.iter().map(|f| f.bytes_done).sum();
        self.rate = self
            .files
            .iter()
            .filter(|f| f.state == FileState::Uploading)
            .map(|f| f.rate)
            .sum();
        let left = self.bytes_total.saturating_sub(self.bytes_done) as f64;
        self.eta_secs = (self.rate > 0.0).then(|| left / self.rate);
    }
}

/// `1 retry`, `3 retries — last: connection reset`; empty for none.
pub fn retries_text(n: u64, last_reason: Option<&str>) -> String {
    let count = match n {
        0 => return String::new(),
        1 => "1 retry".to_string(),
        n => format!("{n} retries"),
    };
    match last_reason {
        Some(r) => format!("{count} — last: {r}"),
        None => count,
    }
}

/// How one session of a batch ended, under the run policy.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionEnd {
    Uploaded,
    /// Every object and the manifest were already there; nothing was sent.
    AlreadyUploaded,
    /// Still being written (`wait`): not an error, the next run takes it.
    Waiting,
    /// The checks block it (`fail`): someone must fix the folder; `findings` say what.
    Refused {
        findings: Vec<String>,
    },
    /// The upload itself failed; `stop` when no other session can succeed either.
    Failed {
        code: &'static str,
        reason: String,
        stop: bool,
    },
}

impl SessionEnd {
    /// The run policy: a `wait` session is waiting, not failed; a `fail` one is refused by the
    /// checks, not a failed upload; missing bucket, denied access or bad credentials stop the run.
    pub fn of(result: &Result<SessionResult, UploadError>) -> Self {
        match result {
            Ok(r) => match r.outcome {
                SessionOutcome::Uploaded => Self::Uploaded,
                SessionOutcome::AlreadyUploaded => Self::AlreadyUploaded,
            },
            Err(UploadError::NotUploadable { verdict, .. }) if *verdict == "wait" => Self::Waiting,
            Err(UploadError::NotUploadable { findings, .. }) => Self::Refused {
                findings: findings.clone(),
            },
            Err(e) => Self::Failed {
                code: e.code(),
                reason: e.to_string(),
                stop: e.is_permanent(),
            },
        }
    }
}

/// A batch upload's counts, as `labpipe upload` prints them (its `--json` summary line).
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct RunSummary {
    pub sessions_uploaded: usize,
    /// Already uploaded before this run: nothing sent.
    pub sessions_skipped: usize,
    /// Still being written: left for a later run.
    pub sessions_waiting: usize,
    /// Blocked by their checks: never left the PC.
    pub sessions_refused: usize,
    /// Uploads that failed (see each session's reason).
    pub sessions_failed: usize,
    pub bytes_total: u64,
    pub bytes_sent: u64,
    pub bytes_resumed: u64,
    /// Requests sent again after a failed attempt (resets, 5xx, timeouts), all sessions.
    pub retries: u64,
}

impl RunSummary {
    /// Counts one session's result (`total_bytes` is the checked size, counted for failures);
    /// returns how it ended.
    pub fn add(
        &mut self,
        total_bytes: u64,
        result: &Result<SessionResult, UploadError>,
    ) -> SessionEnd {
        let end = SessionEnd::of(result);
        if let Ok(r) = result {
            self.bytes_total += r.bytes_total;
            self.bytes_sent += r.bytes_sent;
            self.bytes_resumed += r.bytes_resumed;
        }
        match &end {
            SessionEnd::Uploaded => self.sessions_uploaded += 1,
            SessionEnd::AlreadyUploaded => self.sessions_skipped += 1,
            SessionEnd::Waiting => self.sessions_waiting += 1,
            SessionEnd::Refused { .. } => self.sessions_refused += 1,
            SessionEnd::Failed { .. } => {
                self.sessions_failed += 1;
                self.bytes_total += total_bytes;
            }
        }
        end
    }

    /// Exit status 1: something needs a person (a failed upload or a session its checks block).
    pub fn needs_attention(&self) -> bool {
        self.sessions_failed > 0 || self.sessions_refused > 0
    }

    /// `2 uploaded, 1 already uploaded, 1 waiting (still being written), 3 refused by checks,
    /// 0 failed`: categories that are zero are left out, except uploaded and failed.
    pub fn counts_text(&self) -> String {
        let mut parts = vec![format!("{} uploaded", self.sessions_uploaded)];
        if self.sessions_skipped > 0 {
            parts.push(format!("{} already uploaded", self.sessions_skipped));
        }
        if self.sessions_waiting > 0 {
            parts.push(format!(
                "{} waiting (still being written)",
                self.sessions_waiting
            ));
        }
        if self.sessions_refused > 0 {
            parts.push(format!("{} refused by checks", self.sessions_refused));
        }
        parts.push(format!("{} failed", self.sessions_failed));
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests;
