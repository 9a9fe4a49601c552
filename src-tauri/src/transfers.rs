//! The upload queue: sessions wait their turn, one session uploads at a time (its files and parts
//! in parallel, as `labpipe upload` does), progress events of `labpipe_upload` are folded into
//! one view per session for the Transfers screen.
//!
//! Restart-safe: the queue is saved to `queue.json` on every change and reloaded at start; the
//! byte-level resume is `labpipe_upload`'s own SQLite journal, so a paused, cancelled or
//! interrupted session continues where it stopped. Pausing aborts the running task like a kill
//! would; the journal is what makes that safe, and `bytes_resumed` shows what it saved.
//!
//! States: `queued` → `running` → `done` | `failed`; `queued`/`running` ⇄ `paused` (held, kept
//! across restarts, never started by the worker); any of the three → `cancelled`.

use labpipe_upload::{Event, Journal, Upload, UploadOptions};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tauri::{AppHandle, Emitter, Manager};
use tokio::sync::Notify;
use ts_rs::TS;

use crate::error::{AppError, AppResult};
use crate::settings::Settings;
use crate::AppState;

/// Event name carrying the whole transfer list (`TransferView[]`).
pub const EVENT: &str = "transfers";
const QUEUE_FILE: &str = "queue.json";
const JOURNAL_FILE: &str = "upload-journal.sqlite3";
/// Finished transfers kept for the Transfers view.
const KEEP_FINISHED: usize = 200;

#[derive(Debug, Clone, Serialize, Deserialize, TS, PartialEq)]
#[ts(export, export_to = "../../ui/src/lib/bindings/")]
pub struct FileTransferView {
    pub path: String,
    #[ts(type = "number")]
    pub bytes_done: u64,
    #[ts(type = "number")]
    pub bytes_total: u64,
    /// Bytes per second.
    pub rate: f64,
    pub eta_secs: Option<f64>,
    /// `uploading`, `uploaded`, `already_uploaded` or `verified`.
    pub state: String,
    /// Requests for this file sent again after a failed attempt.
    #[serde(default)]
    pub retries: u32,
    /// Why the latest retry was needed, e.g. `connection reset`.
    #[serde(default)]
    pub last_retry_reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, TS, PartialEq)]
#[ts(export, export_to = "../../ui/src/lib/bindings/")]
pub struct TransferView {
    pub session: String,
    pub path: String,
    /// `queued`, `running`, `paused`, `done`, `failed` or `cancelled`.
    pub state: String,
    #[ts(type = "number")]
    pub bytes_total: u64,
    #[ts(type = "number")]
    pub bytes_done: u64,
    /// Bytes found already in S3 from an earlier, interrupted run (not sent again).
    #[ts(type = "number")]
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
    /// `uploaded` or `already_uploaded` when done.
    pub outcome: Option<String>,
    pub queued_at: String,
    pub finished_at: Option<String>,
}

/// `AppError` without the filter columns, as stored in the queue file.
#[derive(Debug, Clone, Serialize, Deserialize, TS, PartialEq)]
#[ts(export, export_to = "../../ui/src/lib/bindings/")]
pub struct TransferError {
    pub code: String,
    pub message: String,
}

impl TransferView {
    fn queued(session: String, path: String) -> Self {
        TransferView {
            session,
            path,
            state: "queued".into(),
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
        }
    }

    /// Not finished: waiting, uploading or held.
    fn is_active(&self) -> bool {
        matches!(self.state.as_str(), "queued" | "running" | "paused")
    }

    fn finish(&mut self, state: &str) {
        self.state = state.into();
        self.stand_still();
        self.finished_at = Some(now());
    }

    /// Nothing moves any more: no rate, no time left.
    fn stand_still(&mut self) {
        self.rate = 0.0;
        self.eta_secs = None;
        for f in &mut self.files {
            f.rate = 0.0;
            f.eta_secs = None;
        }
    }

    /// Clears what the previous run showed; the worker is about to start this one again.
    fn start_run(&mut self) {
        self.state = "running".into();
        self.error = None;
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
                self.state = "running".into();
            }
            Event::SessionRefused {
                verdict, findings, ..
            } => {
                self.error = Some(TransferError {
                    code: "not_uploadable".into(),
                    message: format!("the checks say {verdict}: {}", findings.join("; ")),
                });
                self.finish("failed");
            }
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
                f.state = serde_json::to_value(outcome)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default();
                self.bytes_resumed += bytes_resumed;
                self.recount();
            }
            Event::FileVerified { path, .. } => self.file(path).state = "verified".into(),
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
                self.outcome = serde_json::to_value(outcome)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from));
                self.finish("done");
            }
            Event::SessionFailed { code, reason, .. } => {
                self.error = Some(TransferError {
                    code: code.clone(),
                    message: reason.clone(),
                });
                self.finish("failed");
            }
        }
    }

    fn file(&mut self, path: &str) -> &mut FileTransferView {
        if let Some(i) = self.files.iter().position(|f| f.path == path) {
            return &mut self.files[i];
        }
        self.files.push(FileTransferView {
            path: path.into(),
            bytes_done: 0,
            bytes_total: 0,
            rate: 0.0,
            eta_secs: None,
            state: "uploading".into(),
            retries: 0,
            last_retry_reason: None,
        });
        self.files.sort_by(|a, b| a.path.cmp(&b.path));
        let i = self
            .files
            .iter()
            .position(|f| f.path == path)
            .expect("just inserted");
        &mut self.files[i]
    }

    fn recount(&mut self) {
        self.bytes_done = self.files.iter().map(|f| f.bytes_done).sum();
        self.rate = self
            .files
            .iter()
            .filter(|f| f.state == "uploading")
            .map(|f| f.rate)
            .sum();
        let left = self.bytes_total.saturating_sub(self.bytes_done) as f64;
        self.eta_secs = (self.rate > 0.0).then(|| left / self.rate);
    }
}

fn now() -> String {
    chrono::Local::now().format("%Y-%m-%d %H:%M:%S").to_string()
}

#[derive(Default)]
struct QueueState {
    /// In queue order (oldest first).
    jobs: Vec<TransferView>,
    running: Option<(String, tokio::task::AbortHandle)>,
    dirty: bool,
}

/// The upload queue; cheap to clone.
#[derive(Clone)]
pub struct Queue {
    state: Arc<Mutex<QueueState>>,
    wake: Arc<Notify>,
    data_dir: PathBuf,
}

impl Queue {
    /// Loads `queue.json`; transfers that were running are queued again (and marked
    /// interrupted), queued ones stay queued and paused ones stay paused.
    pub fn load(data_dir: &Path) -> Queue {
        let jobs: Vec<TransferView> = std::fs::read(data_dir.join(QUEUE_FILE))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let jobs = jobs
            .into_iter()
            .map(|mut j| {
                if j.state == "running" {
                    j.state = "queued".into();
                    j.interrupted = true;
                    j.stand_still();
                }
                j
            })
            .collect();
        Queue {
            state: Arc::new(Mutex::new(QueueState {
                jobs,
                running: None,
                dirty: true,
            })),
            wake: Arc::new(Notify::new()),
            data_dir: data_dir.to_path_buf(),
        }
    }

    pub fn list(&self) -> Vec<TransferView> {
        self.state.lock().expect("queue lock").jobs.clone()
    }

    fn save(&self, jobs: &[TransferView]) {
        let path = self.data_dir.join(QUEUE_FILE);
        let tmp = self.data_dir.join(format!("{QUEUE_FILE}.tmp"));
        let write = || -> std::io::Result<()> {
            std::fs::create_dir_all(&self.data_dir)?;
            std::fs::write(&tmp, serde_json::to_vec_pretty(jobs).unwrap_or_default())?;
            std::fs::rename(&tmp, &path)
        };
        if let Err(e) = write() {
            tracing::error!(error = %e, path = %path.display(), "cannot save the upload queue");
        }
    }

    fn changed(&self, s: &mut QueueState, persist: bool) {
        s.dirty = true;
        if persist {
            self.save(&s.jobs);
        }
    }

    /// Queues a session folder; a session already queued or running is left as it is.
    pub fn enqueue(&self, session: &str, path: &str) -> bool {
        let mut s = self.state.lock().expect("queue lock");
        if s.jobs.iter().any(|j| j.session == session && j.is_active()) {
            return false;
        }
        s.jobs.retain(|j| j.session != session);
        s.jobs
            .push(TransferView::queued(session.into(), path.into()));
        let finished = s.jobs.iter().filter(|j| !j.is_active()).count();
        if finished > KEEP_FINISHED {
            let mut drop = finished - KEEP_FINISHED;
            s.jobs.retain(|j| {
                if drop > 0 && !j.is_active() {
                    drop -= 1;
                    false
                } else {
                    true
                }
            });
        }
        self.changed(&mut s, true);
        drop(s);
        tracing::info!(session, "queued for upload");
        self.wake.notify_one();
        true
    }

    /// Stops a queued, running or paused transfer and takes it off the active list. Parts
    /// already acknowledged stay in S3 and in the journal: uploading the session again resumes
    /// from there.
    pub fn cancel(&self, session: &str) -> AppResult<()> {
        let mut s = self.state.lock().expect("queue lock");
        if let Some((running, handle)) = &s.running {
            if running == session {
                handle.abort();
            }
        }
        let job = s
            .jobs
            .iter_mut()
            .find(|j| j.session == session && j.is_active())
            .ok_or_else(|| {
                AppError::new("not_found", format!("{session} is not queued or uploading"))
            })?;
        job.finish("cancelled");
        self.changed(&mut s, true);
        tracing::info!(session, "upload cancelled");
        Ok(())
    }

    /// Holds a transfer. A running one stops at once (parts S3 already acknowledged stay there and
    /// in the journal); a queued one is passed over. Paused transfers stay paused across a
    /// restart until [`Queue::resume`].
    pub fn pause(&self, session: &str) -> AppResult<()> {
        let mut s = self.state.lock().expect("queue lock");
        let job = s
            .jobs
            .iter_mut()
            .find(|j| j.session == session && matches!(j.state.as_str(), "queued" | "running"))
            .ok_or_else(|| {
                AppError::new("not_found", format!("{session} is not queued or uploading"))
            })?;
        job.state = "paused".into();
        job.stand_still();
        if let Some((running, handle)) = &s.running {
            if running == session {
                handle.abort();
            }
        }
        self.changed(&mut s, true);
        tracing::info!(session, "upload paused");
        Ok(())
    }

    /// Puts a paused transfer back in the queue; it continues from the journal.
    pub fn resume(&self, session: &str) -> AppResult<()> {
        let mut s = self.state.lock().expect("queue lock");
        let job = s
            .jobs
            .iter_mut()
            .find(|j| j.session == session && j.state == "paused")
            .ok_or_else(|| AppError::new("not_found", format!("{session} is not paused")))?;
        job.state = "queued".into();
        self.changed(&mut s, true);
        drop(s);
        tracing::info!(session, "upload resumed");
        self.wake.notify_one();
        Ok(())
    }

    /// Removes finished transfers from the list.
    pub fn clear_finished(&self) {
        let mut s = self.state.lock().expect("queue lock");
        s.jobs.retain(|j| j.is_active());
        self.changed(&mut s, true);
    }

    /// Applies what the running upload of `session` reports. Only a `running` transfer takes
    /// it: once paused or cancelled, the last events of its aborted task must not revive it.
    fn update(&self, session: &str, f: impl FnOnce(&mut TransferView), persist: bool) {
        let mut s = self.state.lock().expect("queue lock");
        if let Some(j) = s
            .jobs
            .iter_mut()
            .find(|j| j.session == session && j.state == "running")
        {
            f(j);
        }
        self.changed(&mut s, persist);
    }

    /// Emits the list at most a few times a second while something changes.
    pub fn spawn_emitter(&self, app: AppHandle) {
        let q = self.clone();
        tauri::async_runtime::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tick.tick().await;
                let jobs = {
                    let mut s = q.state.lock().expect("queue lock");
                    if !s.dirty {
                        continue;
                    }
                    s.dirty = false;
                    s.jobs.clone()
                };
                let _ = app.emit(EVENT, jobs);
            }
        });
    }

    /// Marks the oldest queued transfer running and returns its session and path; paused ones
    /// are passed over.
    fn take_next(&self) -> Option<(String, String)> {
        let mut s = self.state.lock().expect("queue lock");
        let next = s.jobs.iter_mut().find(|j| j.state == "queued").map(|j| {
            j.start_run();
            (j.session.clone(), j.path.clone())
        });
        if next.is_some() {
            self.changed(&mut s, true);
        }
        next
    }

    /// Runs queued transfers one after another, for the life of the app.
    pub fn spawn_worker(&self, app: AppHandle) {
        let q = self.clone();
        tauri::async_runtime::spawn(async move {
            let mut journal: Option<Arc<Journal>> = None;
            loop {
                let Some((session, path)) = q.take_next() else {
                    q.wake.notified().await;
                    continue;
                };
                if journal.is_none() {
                    match Journal::open(&q.data_dir.join(JOURNAL_FILE)) {
                        Ok(j) => journal = Some(Arc::new(j)),
                        Err(e) => {
                            q.fail(&session, e.into());
                            continue;
                        }
                    }
                }
                let settings = app.state::<AppState>().settings();
                let task = {
                    let mut s = q.state.lock().expect("queue lock");
                    // A pause or cancel since the job was picked wins; starting the task and
                    // publishing its abort handle under one lock leaves no gap for one to miss.
                    if !s
                        .jobs
                        .iter()
                        .any(|j| j.session == session && j.state == "running")
                    {
                        continue;
                    }
                    let task = tokio::spawn(run_one(
                        q.clone(),
                        settings,
                        journal.clone().expect("opened above"),
                        session.clone(),
                        PathBuf::from(&path),
                    ));
                    s.running = Some((session.clone(), task.abort_handle()));
                    task
                };
                let started = Instant::now();
                let result = task.await;
                q.state.lock().expect("queue lock").running = None;
                match result {
                    Ok(Ok(())) => {
                        tracing::info!(session = %session, secs = started.elapsed().as_secs_f64(), "upload finished")
                    }
                    Ok(Err(e)) => q.fail(&session, e),
                    Err(_) => {} // paused or cancelled: already marked
                }
                let mut s = q.state.lock().expect("queue lock");
                q.changed(&mut s, true);
            }
        });
    }

    fn fail(&self, session: &str, e: AppError) {
        tracing::error!(session, code = %e.code, error = %e.message, "upload failed");
        self.update(
            session,
            |j| {
                j.error = Some(TransferError {
                    code: e.code.clone(),
                    message: e.message.clone(),
                });
                j.finish("failed");
            },
            true,
        );
    }
}

async fn run_one(
    q: Queue,
    settings: Settings,
    journal: Arc<Journal>,
    session: String,
    path: PathBuf,
) -> AppResult<()> {
    if settings.raw_bucket.is_empty() {
        return Err(AppError::new(
            "not_configured",
            "no raw bucket is set; enter it in Settings",
        ));
    }
    let folder = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| path.clone());
    let report = {
        let path = path.clone();
        tokio::task::spawn_blocking(move || -> AppResult<labpipe_core::SessionReport> {
            let schema = crate::pending::schema_for(&folder)?;
            Ok(labpipe_core::check::check_folder(&path, &schema)?)
        })
        .await
        .map_err(|e| AppError::new("internal", e.to_string()))??
    };
    let sdk = crate::cloud::sdk_config(&settings).await?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Event>();
    let opts = UploadOptions {
        concurrency: settings.concurrency.max(1) as usize,
        max_bandwidth: settings.bandwidth_bytes(),
        ..UploadOptions::default()
    };
    // Folded in the same task as the upload (not a spawned one), so aborting the task for a
    // pause or cancel stops both: no event of the stopped run arrives after it.
    let consume = async {
        while let Some(ev) = rx.recv().await {
            let terminal = matches!(
                ev,
                Event::SessionDone { .. }
                    | Event::SessionFailed { .. }
                    | Event::SessionRefused { .. }
            );
            q.update(&session, |j| j.apply(&ev), terminal);
        }
    };
    tracing::info!(session = %session, bucket = %settings.raw_bucket, "upload starting");
    let upload = async {
        let upload = Upload::connect(
            crate::cloud::s3(&sdk),
            settings.raw_bucket.clone(),
            opts,
            journal,
            Some(tx),
        )
        .await?;
        upload.session(&report).await
    };
    let (result, ()) = tokio::join!(upload, consume);
    match result {
        Ok(r) => {
            tracing::info!(session = %session, sent = r.bytes_sent, resumed = r.bytes_resumed, "session uploaded");
            // The engine's SessionDone event normally did this already.
            q.update(
                &session,
                |j| {
                    if j.state == "running" {
                        j.bytes_total = r.bytes_total;
                        j.bytes_done = r.bytes_total;
                        j.bytes_resumed = r.bytes_resumed;
                        j.finish("done");
                    }
                },
                true,
            );
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// The upload state of every session that has one, by session name.
pub fn states(list: &[TransferView]) -> BTreeMap<String, String> {
    list.iter()
        .map(|t| (t.session.clone(), t.state.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use labpipe_upload::{FileOutcome, SessionOutcome};

    #[test]
    fn folds_progress_into_session_totals() {
        let mut t = TransferView::queued("s".into(), "/lab/s".into());
        t.apply(&Event::SessionStarted {
            session: "s".into(),
            files: 2,
            bytes_total: 300,
        });
        let progress = |path: &str, done, total, rate| Event::FileProgress {
            session: "s".into(),
            path: path.into(),
            bytes_done: done,
            bytes_total: total,
            rate,
            eta_secs: None,
        };
        t.apply(&progress("b.bin", 50, 200, 10.0));
        t.apply(&progress("a.bin", 100, 100, 10.0));
        assert_eq!(t.bytes_done, 150);
        assert_eq!(t.files[0].path, "a.bin");
        assert_eq!(t.eta_secs, Some(150.0 / 20.0));
        t.apply(&Event::FileDone {
            session: "s".into(),
            path: "a.bin".into(),
            outcome: FileOutcome::AlreadyUploaded,
            bytes_sent: 0,
            bytes_resumed: 100,
        });
        assert_eq!(t.files[0].state, "already_uploaded");
        assert_eq!(t.bytes_resumed, 100);
        assert_eq!(t.rate, 10.0);
        t.apply(&Event::SessionDone {
            session: "s".into(),
            outcome: SessionOutcome::Uploaded,
            bytes_total: 300,
            bytes_sent: 200,
            bytes_resumed: 100,
            manifest_key: "raw/s/manifest.json".into(),
        });
        assert_eq!(
            (t.state.as_str(), t.bytes_done, t.outcome.as_deref()),
            ("done", 300, Some("uploaded"))
        );
    }

    fn states_of(q: &Queue) -> Vec<(String, String)> {
        q.list().into_iter().map(|j| (j.session, j.state)).collect()
    }

    fn progress(session: &str, path: &str, done: u64) -> Event {
        Event::FileProgress {
            session: session.into(),
            path: path.into(),
            bytes_done: done,
            bytes_total: 1000,
            rate: 10.0,
            eta_secs: Some(1.0),
        }
    }

    #[test]
    fn retries_are_counted_per_file_and_per_session() {
        let mut t = TransferView::queued("s".into(), "/lab/s".into());
        let retry = |path: Option<&str>, attempt, reason: &str| Event::Retrying {
            session: "s".into(),
            path: path.map(String::from),
            operation: "UploadPart".into(),
            attempt,
            reason: reason.into(),
        };
        t.apply(&retry(Some("a.bin"), 2, "HTTP 503 SlowDown"));
        t.apply(&retry(Some("a.bin"), 3, "connection reset"));
        t.apply(&retry(None, 2, "timed out"));
        let a = &t.files[0];
        assert_eq!(
            (a.retries, a.last_retry_reason.as_deref()),
            (2, Some("connection reset"))
        );
        assert_eq!(
            (t.retries, t.last_retry_reason.as_deref()),
            (3, Some("timed out"))
        );
        assert_eq!(t.files.len(), 1, "a session-wide retry adds no file row");
    }

    #[test]
    fn a_paused_transfer_is_passed_over_until_resumed() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::load(dir.path());
        q.enqueue("a", "/lab/a");
        q.enqueue("b", "/lab/b");
        q.pause("a").unwrap();
        assert!(q.resume("b").is_err(), "only a paused transfer resumes");
        assert_eq!(q.take_next(), Some(("b".into(), "/lab/b".into())));
        assert_eq!(q.take_next(), None, "the paused one is held");
        q.resume("a").unwrap();
        assert_eq!(q.take_next(), Some(("a".into(), "/lab/a".into())));
        assert_eq!(
            states_of(&q),
            [
                ("a".into(), "running".into()),
                ("b".into(), "running".into())
            ]
        );
    }

    #[tokio::test]
    async fn pausing_a_running_transfer_stops_its_task_and_outlives_its_last_events() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::load(dir.path());
        q.enqueue("a", "/lab/a");
        q.take_next().unwrap();
        q.update("a", |j| j.apply(&progress("a", "x.bin", 400)), false);
        let task = tokio::spawn(std::future::pending::<()>());
        q.state.lock().unwrap().running = Some(("a".into(), task.abort_handle()));

        q.pause("a").unwrap();
        assert!(
            task.await.unwrap_err().is_cancelled(),
            "the upload task stops"
        );
        // What the aborted task may still have sent, and the worker's verdict on it.
        q.update("a", |j| j.apply(&progress("a", "x.bin", 800)), false);
        q.fail("a", AppError::new("s3", "connection reset"));
        let a = &q.list()[0];
        assert_eq!(
            (a.state.as_str(), a.bytes_done, a.rate, a.error.is_none()),
            ("paused", 400, 0.0, true)
        );
        assert!(q.pause("a").is_err(), "already paused");

        q.resume("a").unwrap();
        assert_eq!(q.take_next(), Some(("a".into(), "/lab/a".into())));
        let a = &q.list()[0];
        assert_eq!((a.state.as_str(), a.bytes_done), ("running", 0));
        q.update("a", |j| j.apply(&progress("a", "x.bin", 600)), false);
        assert_eq!(q.list()[0].bytes_done, 600, "the new run reports again");
    }

    #[test]
    fn a_paused_transfer_can_be_cancelled() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::load(dir.path());
        q.enqueue("a", "/lab/a");
        q.pause("a").unwrap();
        q.cancel("a").unwrap();
        assert_eq!(states_of(&q), [("a".into(), "cancelled".into())]);
        assert!(q.resume("a").is_err());
        q.clear_finished();
        assert!(q.list().is_empty());
    }

    #[test]
    fn paused_transfers_stay_paused_across_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::load(dir.path());
        for s in ["held", "running", "waiting"] {
            q.enqueue(s, &format!("/lab/{s}"));
        }
        q.pause("held").unwrap();
        assert_eq!(q.take_next().unwrap().0, "running");
        q.update(
            "running",
            |j| j.apply(&progress("running", "x.bin", 400)),
            true,
        );

        let again = Queue::load(dir.path());
        assert_eq!(
            states_of(&again),
            [
                ("held".into(), "paused".into()),
                ("running".into(), "queued".into()),
                ("waiting".into(), "queued".into())
            ]
        );
        let list = again.list();
        assert!(list[1].interrupted, "the restart shows it was interrupted");
        assert!(!list[0].interrupted && !list[2].interrupted);
        assert_eq!((list[1].rate, list[1].files[0].rate), (0.0, 0.0));
        assert_eq!(again.take_next().unwrap().0, "running");
        assert_eq!(again.take_next().unwrap().0, "waiting");
        assert_eq!(again.take_next(), None);
        assert!(
            !again.enqueue("held", "/lab/held"),
            "a paused session is not queued twice"
        );
    }

    #[test]
    fn a_queue_file_from_before_retries_and_pause_still_loads() {
        let dir = tempfile::tempdir().unwrap();
        let old = r#"[{"session":"a","path":"/lab/a","state":"running","bytes_total":10,
            "bytes_done":5,"bytes_resumed":0,"rate":1.0,"eta_secs":5.0,
            "files":[{"path":"x.bin","bytes_done":5,"bytes_total":10,"rate":1.0,"eta_secs":5.0,"state":"uploading"}],
            "error":null,"outcome":null,"queued_at":"2024-01-01 10:00:00","finished_at":null}]"#;
        std::fs::write(dir.path().join(QUEUE_FILE), old).unwrap();
        let q = Queue::load(dir.path());
        assert_eq!(states_of(&q), [("a".into(), "queued".into())]);
        assert_eq!(q.list()[0].files[0].retries, 0);
    }

    #[test]
    fn queue_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::load(dir.path());
        assert!(q.enqueue("20210301_161221", "/lab/20210301_161221"));
        assert!(
            !q.enqueue("20210301_161221", "/lab/20210301_161221"),
            "no duplicates"
        );
        q.enqueue("20210302_101010", "/lab/20210302_101010");
        q.cancel("20210302_101010").unwrap();
        {
            let mut s = q.state.lock().unwrap();
            s.jobs[0].state = "running".into();
            let jobs = s.jobs.clone();
            q.save(&jobs);
        }
        let again = Queue::load(dir.path());
        let states: Vec<(String, String)> = again
            .list()
            .into_iter()
            .map(|j| (j.session, j.state))
            .collect();
        assert_eq!(
            states,
            [
                ("20210301_161221".into(), "queued".into()),
                ("20210302_101010".into(), "cancelled".into())
            ]
        );
    }
}
