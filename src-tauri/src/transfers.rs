//! The upload queue's Tauri side: the worker that uploads one session with the app's settings,
//! and the emitter of the `transfers` event. The queue, its states and the fold of upload events
//! are `labpipe_lab`'s ([`labpipe_lab::Queue`], [`labpipe_lab::TransferView`]); the journal is
//! the machine user's one journal, shared with `labpipe upload` ([`labpipe_lab::journal_path`]).

use labpipe_lab::{Queue, TransferError};
use labpipe_upload::{Event, Journal, Upload, UploadOptions};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tauri::{AppHandle, Emitter, Manager};

use crate::error::{AppError, AppResult};
use crate::settings::Settings;
use crate::AppState;

/// Event name carrying the whole transfer list (`TransferView[]`).
pub const EVENT: &str = "transfers";

/// Emits the list at most a few times a second while something changes.
pub fn spawn_emitter(queue: Queue, app: AppHandle) {
    tauri::async_runtime::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tick.tick().await;
            if let Some(jobs) = queue.take_changes() {
                let _ = app.emit(EVENT, jobs);
                crate::pipeline::emit_eligibility(&app);
            }
        }
    });
}

/// Runs queued transfers one after another, for the life of the app.
pub fn spawn_worker(queue: Queue, app: AppHandle) {
    // Opened at the first upload, then shared by every upload of this run.
    let journal: Arc<Mutex<Option<Arc<Journal>>>> = Arc::default();
    tauri::async_runtime::spawn(async move {
        let q = queue.clone();
        queue
            .work(move |session, path| {
                let q = q.clone();
                let settings = app.state::<AppState>().settings();
                let journal = journal.clone();
                let app = app.clone();
                async move {
                    let result = run_one(q, settings, journal, session, path).await;
                    // How the upload ended is worth sending now, not at the next minute; in
                    // its own task, so sending never holds the queue up.
                    tauri::async_runtime::spawn(async move {
                        crate::client_log::ship_once(&app).await;
                    });
                    result.map_err(|e| TransferError {
                        code: e.code,
                        message: e.message,
                    })
                }
            })
            .await;
    });
}

fn open_journal(slot: &Mutex<Option<Arc<Journal>>>) -> AppResult<Arc<Journal>> {
    let mut slot = slot.lock().expect("journal lock");
    if let Some(j) = slot.as_ref() {
        return Ok(j.clone());
    }
    let path = labpipe_lab::journal_path();
    let j = Arc::new(Journal::open(&path)?);
    tracing::info!(journal = %path.display(), "upload journal opened");
    *slot = Some(j.clone());
    Ok(j)
}

async fn run_one(
    q: Queue,
    settings: Settings,
    journal: Arc<Mutex<Option<Arc<Journal>>>>,
    session: String,
    path: PathBuf,
) -> AppResult<()> {
    if settings.raw_bucket.is_empty() {
        return Err(AppError::new(
            "not_configured",
            "no raw bucket is set; enter it in Settings",
        ));
    }
    let journal = open_journal(&journal)?;
    let folder = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| path.clone());
    let settings_rig = settings.rig();
    let report = {
        let path = path.clone();
        tokio::task::spawn_blocking(move || -> AppResult<labpipe_core::SessionReport> {
            let schema = crate::pending::schema_for(&folder)?;
            let report = labpipe_core::check::check_folder(&path, &schema)?;
            let journal = labpipe_lab::journal_path();
            let rig = labpipe_upload::folder_rig(&journal, &report.session, settings_rig);
            Ok(report.on_rig(rig))
        })
        .await
        .map_err(|e| AppError::new("internal", e.to_string()))??
    };
    let sdk = crate::cloud::sdk_config(&settings).await?;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Event>();
    let opts = UploadOptions {
        concurrency: settings.concurrency.max(1) as usize,
        max_bandwidth: settings.bandwidth_bytes(),
        ..UploadOptions::default()
    };
    let revision_reason = q.revision_reason(&session);
    tracing::info!(session = %session, bucket = %settings.raw_bucket, correction = revision_reason.is_some(), "upload starting");
    let upload = async {
        let upload = Upload::connect(
            crate::cloud::s3(&sdk),
            settings.raw_bucket.clone(),
            opts,
            journal,
            Some(tx),
        )
        .await?;
        match &revision_reason {
            // A correction: the lowest revision without a manifest (an interrupted one resumes).
            Some(reason) => upload.correction(&report, reason).await,
            None => upload.session(&report).await,
        }
    };
    // Each event is spooled for the client log on its way to the view.
    let lab_folder = path
        .parent()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let (view_tx, view_rx) = tokio::sync::mpsc::unbounded_channel::<Event>();
    let failure_seen = std::sync::atomic::AtomicBool::new(false);
    let tee = async {
        let mut rx = rx;
        while let Some(ev) = rx.recv().await {
            if matches!(ev, Event::SessionFailed { .. }) {
                failure_seen.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            crate::client_log::observe(&ev, &lab_folder);
            let _ = view_tx.send(ev);
        }
        drop(view_tx);
    };
    // Folded in the same task as the upload (not a spawned one), so aborting the task for a
    // pause or cancel stops all three: no event of the stopped run arrives after it.
    let (result, (), ()) = tokio::join!(upload, tee, q.follow(&session, view_rx));
    if let Err(e) = &result {
        // A failure before the session started (no bucket, credentials refused) has no event.
        if !failure_seen.load(std::sync::atomic::Ordering::Relaxed) {
            crate::client_log::failed(&session, &lab_folder, &e.to_string());
        }
    }
    let r = result?;
    tracing::info!(session = %session, sent = r.bytes_sent, resumed = r.bytes_resumed, "session uploaded");
    q.settle(&session, &r);
    Ok(())
}
