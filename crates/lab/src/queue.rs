//! The app's upload queue: sessions wait their turn, one session uploads at a time (its files
//! and parts in parallel, as `labpipe upload` does), and each keeps a [`TransferView`].
//!
//! Restart-safe: the queue is saved to `queue.json` on every change of state and reloaded at
//! start; the byte-level resume is `labpipe_upload`'s journal, so a paused, cancelled or
//! interrupted session continues where it stopped. Pausing aborts the running task like a kill
//! would; the journal is what makes that safe, and `bytes_resumed` shows what it saved.
//!
//! The states and their moves are [`TransferState`]'s (see [`crate::progress`]). Only a
//! `running` transfer takes events, so the last events of an aborted task cannot revive a
//! transfer that was paused or cancelled.

use labpipe_upload::{Event, SessionResult};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::Notify;

use crate::progress::{TransferError, TransferState, TransferView};
use crate::LabError;

/// The queue's file in the app's data folder.
pub const QUEUE_FILE: &str = "queue.json";
/// Finished transfers kept for the Transfers view.
const KEEP_FINISHED: usize = 200;

#[derive(Default)]
struct QueueState {
    /// In queue order (oldest first).
    jobs: Vec<TransferView>,
    running: Option<(String, tokio::task::AbortHandle)>,
    /// Changed since the last [`Queue::take_changes`].
    dirty: bool,
}

/// The upload queue; cheap to clone.
#[derive(Clone)]
pub struct Queue {
    state: Arc<Mutex<QueueState>>,
    wake: Arc<Notify>,
    file: PathBuf,
}

impl Queue {
    /// Loads `queue.json` from `data_dir`: transfers that were running become `interrupted`
    /// (they wait their turn and resume from the journal), queued ones stay queued and paused
    /// ones stay paused. A missing or unreadable file is an empty queue.
    pub fn load(data_dir: &Path) -> Queue {
        let file = data_dir.join(QUEUE_FILE);
        let jobs: Vec<TransferView> = std::fs::read(&file)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let jobs = jobs
            .into_iter()
            .map(|mut j| {
                if j.state == TransferState::Running {
                    j.interrupted = true;
                    j.stand_still();
                    j.state = TransferState::Interrupted;
                }
                // Files written before `actions` existed, or by an older rule.
                j.refresh_actions();
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
            file,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.state.lock().expect("queue lock")
    }

    pub fn list(&self) -> Vec<TransferView> {
        self.lock().jobs.clone()
    }

    /// The whole list when it changed since the last call (for an emitter that redraws a few
    /// times a second at most).
    pub fn take_changes(&self) -> Option<Vec<TransferView>> {
        let mut s = self.lock();
        if !s.dirty {
            return None;
        }
        s.dirty = false;
        Some(s.jobs.clone())
    }

    fn save(&self, jobs: &[TransferView]) {
        let tmp = self.file.with_extension("json.tmp");
        let write = || -> std::io::Result<()> {
            if let Some(dir) = self.file.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::write(&tmp, serde_json::to_vec_pretty(jobs).unwrap_or_default())?;
            std::fs::rename(&tmp, &self.file)
        };
        if let Err(e) = write() {
            tracing::error!(error = %e, path = %self.file.display(), "cannot save the upload queue");
        }
    }

    fn changed(&self, s: &mut QueueState, persist: bool) {
        s.dirty = true;
        if persist {
            self.save(&s.jobs);
        }
    }

    fn abort_if_running(s: &QueueState, session: &str) {
        if let Some((running, handle)) = &s.running {
            if running == session {
                handle.abort();
            }
        }
    }

    /// Queues a session folder; false when it is already queued, running or held.
    pub fn enqueue(&self, session: &str, path: &str) -> bool {
        self.enqueue_job(TransferView::queued(session, path))
    }

    /// Queues a corrected session folder as a new revision of the uploaded session, with the
    /// reason; false when the session is already queued, running or held.
    pub fn enqueue_revision(&self, session: &str, path: &str, reason: &str) -> bool {
        let mut job = TransferView::queued(session, path);
        job.revision_reason = Some(reason.trim().to_string());
        self.enqueue_job(job)
    }

    /// The reason of a queued correction, `None` for a plain upload.
    pub fn revision_reason(&self, session: &str) -> Option<String> {
        self.lock()
            .jobs
            .iter()
            .find(|j| j.session == session && j.state.is_active())
            .and_then(|j| j.revision_reason.clone())
    }

    fn enqueue_job(&self, job: TransferView) -> bool {
        let session = job.session.clone();
        let session = session.as_str();
        let mut s = self.lock();
        if s.jobs
            .iter()
            .any(|j| j.session == session && j.state.is_active())
        {
            return false;
        }
        s.jobs.retain(|j| j.session != session);
        s.jobs.push(job);
        let finished = s.jobs.iter().filter(|j| !j.state.is_active()).count();
        let mut excess = finished.saturating_sub(KEEP_FINISHED);
        s.jobs.retain(|j| {
            if excess > 0 && !j.state.is_active() {
                excess -= 1;
                false
            } else {
                true
            }
        });
        self.changed(&mut s, true);
        drop(s);
        tracing::info!(session, "queued for upload");
        self.wake.notify_one();
        true
    }

    /// Stops a queued, running, interrupted or paused transfer and takes it off the active
    /// list. Parts already acknowledged stay in S3 and in the journal: uploading the session
    /// again resumes from there.
    pub fn cancel(&self, session: &str) -> Result<(), LabError> {
        let mut s = self.lock();
        Self::abort_if_running(&s, session);
        let job = s
            .jobs
            .iter_mut()
            .find(|j| j.session == session && j.actions.cancel)
            .ok_or_else(|| LabError::NotActive {
                session: session.into(),
            })?;
        job.finish(TransferState::Cancelled);
        self.changed(&mut s, true);
        tracing::info!(session, "upload cancelled");
        Ok(())
    }

    /// Holds a transfer. A running one stops at once (parts S3 already acknowledged stay there
    /// and in the journal); a waiting one is passed over. Paused transfers stay paused across a
    /// restart until [`Queue::resume`].
    pub fn pause(&self, session: &str) -> Result<(), LabError> {
        let mut s = self.lock();
        let job = s
            .jobs
            .iter_mut()
            .find(|j| j.session == session && j.actions.pause)
            .ok_or_else(|| LabError::NotActive {
                session: session.into(),
            })?;
        job.set_state(TransferState::Paused);
        job.stand_still();
        Self::abort_if_running(&s, session);
        self.changed(&mut s, true);
        tracing::info!(session, "upload paused");
        Ok(())
    }

    /// Puts a paused transfer back in the queue; it continues from the journal.
    pub fn resume(&self, session: &str) -> Result<(), LabError> {
        let mut s = self.lock();
        let job = s
            .jobs
            .iter_mut()
            .find(|j| j.session == session && j.actions.resume)
            .ok_or_else(|| LabError::NotPaused {
                session: session.into(),
            })?;
        job.set_state(TransferState::Queued);
        self.changed(&mut s, true);
        drop(s);
        tracing::info!(session, "upload resumed");
        self.wake.notify_one();
        Ok(())
    }

    /// Removes finished transfers from the list.
    pub fn clear_finished(&self) {
        let mut s = self.lock();
        s.jobs.retain(|j| j.state.is_active());
        self.changed(&mut s, true);
    }

    /// Changes the running transfer of `session`; nothing when it is not running (paused or
    /// cancelled meanwhile). Saved when `persist`.
    fn update(&self, session: &str, f: impl FnOnce(&mut TransferView), persist: bool) {
        let mut s = self.lock();
        if let Some(j) = s
            .jobs
            .iter_mut()
            .find(|j| j.session == session && j.state == TransferState::Running)
        {
            f(j);
        }
        self.changed(&mut s, persist);
    }

    /// Folds one event of the running upload of `session`; saved when it ends the session.
    pub fn apply(&self, session: &str, ev: &Event) {
        let ends = matches!(
            ev,
            Event::SessionDone { .. } | Event::SessionFailed { .. } | Event::SessionRefused { .. }
        );
        self.update(session, |j| j.apply(ev), ends);
    }

    /// Folds every event from `rx` into `session`'s transfer until the sender is dropped.
    pub async fn follow(&self, session: &str, mut rx: tokio::sync::mpsc::UnboundedReceiver<Event>) {
        while let Some(ev) = rx.recv().await {
            self.apply(session, &ev);
        }
    }

    /// Ends a running transfer as the engine's result says, in case its last event was lost.
    pub fn settle(&self, session: &str, r: &SessionResult) {
        self.update(session, |j| j.settle(r), true);
    }

    /// Ends a running transfer as failed.
    pub fn fail(&self, session: &str, e: &TransferError) {
        tracing::error!(session, code = %e.code, error = %e.message, "upload failed");
        self.update(session, |j| j.fail(&e.code, &e.message), true);
    }

    /// Marks the oldest waiting transfer running and returns its session and path; paused ones
    /// are passed over.
    fn take_next(&self) -> Option<(String, String)> {
        let mut s = self.lock();
        let next = s
            .jobs
            .iter_mut()
            .find(|j| j.state.waits_its_turn())
            .map(|j| {
                j.start_run();
                (j.session.clone(), j.path.clone())
            });
        if next.is_some() {
            self.changed(&mut s, true);
        }
        next
    }

    /// Runs waiting transfers one after another, for as long as the future is polled: `run`
    /// uploads one session folder (folding its events with [`Queue::follow`]). A pause or
    /// cancel aborts the task running it.
    pub async fn work<F, Fut>(&self, run: F)
    where
        F: Fn(String, PathBuf) -> Fut,
        Fut: Future<Output = Result<(), TransferError>> + Send + 'static,
    {
        loop {
            let Some((session, path)) = self.take_next() else {
                self.wake.notified().await;
                continue;
            };
            let task = {
                let mut s = self.lock();
                // A pause or cancel since the job was picked wins; starting the task and
                // publishing its abort handle under one lock leaves no gap for one to miss.
                if !s
                    .jobs
                    .iter()
                    .any(|j| j.session == session && j.state == TransferState::Running)
                {
                    continue;
                }
                let task = tokio::spawn(run(session.clone(), PathBuf::from(&path)));
                s.running = Some((session.clone(), task.abort_handle()));
                task
            };
            let started = Instant::now();
            let result = task.await;
            self.lock().running = None;
            match result {
                Ok(Ok(())) => {
                    tracing::info!(session = %session, secs = started.elapsed().as_secs_f64(), "upload finished")
                }
                Ok(Err(e)) => self.fail(&session, &e),
                Err(_) => {} // paused or cancelled: already marked
            }
            let mut s = self.lock();
            self.changed(&mut s, true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::TransferActions;
    use TransferState::*;

    fn states_of(q: &Queue) -> Vec<(String, TransferState)> {
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

    fn err(code: &str, message: &str) -> TransferError {
        TransferError {
            code: code.into(),
            message: message.into(),
        }
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
            [("a".into(), Running), ("b".into(), Running)]
        );
    }

    #[tokio::test]
    async fn pausing_a_running_transfer_stops_its_task_and_outlives_its_last_events() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::load(dir.path());
        q.enqueue("a", "/lab/a");
        q.take_next().unwrap();
        q.apply("a", &progress("a", "x.bin", 400));
        let task = tokio::spawn(std::future::pending::<()>());
        q.lock().running = Some(("a".into(), task.abort_handle()));

        q.pause("a").unwrap();
        assert!(
            task.await.unwrap_err().is_cancelled(),
            "the upload task stops"
        );
        // What the aborted task may still have sent, and the worker's verdict on it.
        q.apply("a", &progress("a", "x.bin", 800));
        q.fail("a", &err("s3", "connection reset"));
        let a = &q.list()[0];
        assert_eq!(
            (a.state, a.bytes_done, a.rate, a.error.is_none()),
            (Paused, 400, 0.0, true)
        );
        assert!(q.pause("a").is_err(), "already paused");

        q.resume("a").unwrap();
        assert_eq!(q.take_next(), Some(("a".into(), "/lab/a".into())));
        let a = &q.list()[0];
        assert_eq!((a.state, a.bytes_done), (Running, 0));
        q.apply("a", &progress("a", "x.bin", 600));
        assert_eq!(q.list()[0].bytes_done, 600, "the new run reports again");
    }

    #[test]
    fn a_paused_transfer_can_be_cancelled() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::load(dir.path());
        q.enqueue("a", "/lab/a");
        q.pause("a").unwrap();
        q.cancel("a").unwrap();
        assert_eq!(states_of(&q), [("a".into(), Cancelled)]);
        assert!(q.resume("a").is_err());
        assert!(q.cancel("a").is_err(), "already finished");
        q.clear_finished();
        assert!(q.list().is_empty());
    }

    #[test]
    fn a_restart_interrupts_the_running_one_and_keeps_the_paused_one_held() {
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
                ("held".into(), Paused),
                ("running".into(), Interrupted),
                ("waiting".into(), Queued)
            ]
        );
        let list = again.list();
        assert!(list[1].interrupted, "the restart shows it was interrupted");
        assert!(!list[0].interrupted && !list[2].interrupted);
        assert_eq!((list[1].rate, list[1].files[0].rate), (0.0, 0.0));
        assert_eq!(list[1].actions, TransferActions::of(Interrupted, None));
        assert_eq!(again.take_next().unwrap().0, "running", "it keeps its turn");
        assert!(
            again.list()[1].interrupted,
            "and remembers the interruption"
        );
        assert_eq!(again.take_next().unwrap().0, "waiting");
        assert_eq!(again.take_next(), None);
        assert!(
            !again.enqueue("held", "/lab/held"),
            "a paused session is not queued twice"
        );
    }

    #[test]
    fn a_queue_file_from_before_typed_states_still_loads() {
        let dir = tempfile::tempdir().unwrap();
        let old = r#"[{"session":"a","path":"/lab/a","state":"running","bytes_total":10,
            "bytes_done":5,"bytes_resumed":0,"rate":1.0,"eta_secs":5.0,
            "files":[{"path":"x.bin","bytes_done":5,"bytes_total":10,"rate":1.0,"eta_secs":5.0,"state":"uploading"}],
            "error":null,"outcome":"uploaded","queued_at":"2024-01-01 10:00:00","finished_at":null},
            {"session":"b","path":"/lab/b","state":"failed","bytes_total":0,"bytes_done":0,"bytes_resumed":0,
            "rate":0.0,"eta_secs":null,"files":[],"error":{"code":"s3","message":"reset"},"outcome":null,
            "queued_at":"2024-01-01 10:00:00","finished_at":"2024-01-01 10:01:00"}]"#;
        std::fs::write(dir.path().join(QUEUE_FILE), old).unwrap();
        let q = Queue::load(dir.path());
        assert_eq!(
            states_of(&q),
            [("a".into(), Interrupted), ("b".into(), Failed)]
        );
        let list = q.list();
        assert_eq!(list[0].files[0].retries, 0);
        assert!(
            list[1].actions.again,
            "actions are filled in from the state"
        );
    }

    #[test]
    fn enqueue_keeps_one_entry_per_session() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::load(dir.path());
        assert!(q.enqueue("s1", "/lab/s1"));
        assert!(!q.enqueue("s1", "/lab/s1"), "no duplicates");
        q.enqueue("s2", "/lab/s2");
        q.cancel("s2").unwrap();
        assert!(
            q.enqueue("s2", "/lab/s2"),
            "a cancelled session may be queued again"
        );
        assert_eq!(
            states_of(&q),
            [("s1".into(), Queued), ("s2".into(), Queued)]
        );
        assert!(q.take_changes().is_some());
        assert!(q.take_changes().is_none(), "no change since");
    }

    #[tokio::test]
    async fn the_worker_runs_sessions_in_turn_and_records_failures() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::load(dir.path());
        q.enqueue("good", "/lab/good");
        q.enqueue("bad", "/lab/bad");
        let worker = {
            let q = q.clone();
            tokio::spawn(async move {
                let q2 = q.clone();
                q.work(move |session, _path| {
                    let q = q2.clone();
                    async move {
                        if session == "bad" {
                            return Err(err("conflict", "s3://b/raw/bad/a.bin differs"));
                        }
                        q.apply(
                            &session,
                            &Event::SessionDone {
                                session: session.clone(),
                                outcome: labpipe_upload::SessionOutcome::Uploaded,
                                bytes_total: 5,
                                bytes_sent: 5,
                                bytes_resumed: 0,
                                manifest_key: String::new(),
                            },
                        );
                        Ok(())
                    }
                })
                .await
            })
        };
        for _ in 0..200 {
            if q.list().iter().all(|j| !j.state.is_active()) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        worker.abort();
        let list = q.list();
        assert_eq!((list[0].state, list[1].state), (Done, Failed));
        assert_eq!(list[1].error.as_ref().unwrap().code, "conflict");
        assert!(
            list[1].actions.correct && !list[1].actions.again,
            "a conflict offers a correction, not the same upload again: {:?}",
            list[1].actions
        );
        let saved = Queue::load(dir.path());
        assert_eq!(
            states_of(&saved),
            [("good".into(), Done), ("bad".into(), Failed)]
        );
    }

    /// A queue saved before transfers offered corrections: a failure for other bytes under the
    /// name offers one after the restart.
    #[test]
    fn a_saved_conflict_offers_a_correction_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let saved = r#"[{"session":"c","path":"/lab/c","state":"failed","bytes_total":0,"bytes_done":0,
            "bytes_resumed":0,"rate":0.0,"eta_secs":null,"files":[],
            "error":{"code":"changed_since_upload","message":"session c changed since upload"},
            "outcome":null,"queued_at":"2024-01-01 10:00:00","finished_at":"2024-01-01 10:01:00",
            "actions":{"pause":false,"resume":false,"cancel":false,"again":true,"active":false}}]"#;
        std::fs::write(dir.path().join(QUEUE_FILE), saved).unwrap();
        let actions = Queue::load(dir.path()).list()[0].actions;
        assert_eq!(
            actions,
            TransferActions::of(
                Failed,
                Some(&TransferError {
                    code: "changed_since_upload".into(),
                    message: String::new()
                })
            )
        );
        assert!(actions.correct && !actions.again, "{actions:?}");
    }
}
