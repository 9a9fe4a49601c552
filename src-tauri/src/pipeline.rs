//! The pipeline-status poller: what the cloud pipeline says about the lab folder's sessions, for
//! the Pending view and for desktop notifications.
//!
//! The app learns that a session it uploaded was cataloged, processed or failed by reading the
//! catalog: one BatchGetItem for the sessions that are due. Which are due is
//! [`labpipe_lab::StatusPolling`]'s schedule: settled sessions are never read again on a timer
//! (only when the Sessions view is refreshed), moving ones with a backoff from 3 s to 5 min, so
//! the catalog reads follow what moves, not the size of the lab folder. What a reading means,
//! which changes are news and which sessions are ready to upload are `labpipe_lab`'s rules
//! ([`labpipe_lab::pipeline`], [`labpipe_lab::ready`]); this module runs them on a timer and emits
//! the results:
//!
//! - `pipeline`: the status map (`Record<string, PipelineState>`);
//! - `eligibility`: for each pending session, whether it may be uploaded and why not
//!   (`Record<string, Eligibility>`), so the front end decides nothing; a folder whose session
//!   name the pipeline knows is compared with what the name holds first (the upload engine's
//!   comparison, when [`labpipe_lab::names`] says: once per state of folder and catalog entry, in
//!   the background), so a different recording under a taken name shows a name conflict and a
//!   folder changed since its upload says so, never the uploaded recording's status;
//! - `catalog-changed`: the sessions of the Sessions view's loaded catalog that moved (their new
//!   entries are put into it first), so a researcher sees an upload become PROCESSED without a
//!   rescan.

use labpipe_catalog::SessionItem;
use labpipe_lab::names::{answers, retain_current, to_compare, Compared};
use labpipe_lab::pipeline::{reading, settled_notices, transfer_changes, transfer_states};
use labpipe_lab::ready::{eligibilities, ready_to_upload, Accept, Eligibility};
use labpipe_lab::{NameCheck, Notice, PipelineState, StatusPolling};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tauri::{AppHandle, Emitter, Manager};

use crate::settings::Settings;
use crate::AppState;

/// Event name carrying the whole map (`Record<string, PipelineState>`).
pub const EVENT: &str = "pipeline";
/// Event name carrying every pending session's eligibility (`Record<string, Eligibility>`).
pub const ELIGIBILITY_EVENT: &str = "eligibility";
/// The event that tells the Sessions view which sessions of its loaded catalog changed.
pub const CATALOG_EVENT: &str = "catalog-changed";
/// How often the local transfer list is compared with the last one seen.
const TICK: Duration = Duration::from_millis(500);

pub type PipelineMap = Arc<Mutex<BTreeMap<String, PipelineState>>>;
pub type EligibilityMap = Arc<Mutex<BTreeMap<String, Eligibility>>>;
pub type NamesMap = Arc<Mutex<BTreeMap<String, (Compared, NameCheck)>>>;
/// How long the comparisons wait after one could not be made (no network, no permission).
const COMPARE_BACKOFF: Duration = Duration::from_secs(30);

/// Emits every pending session's eligibility when it changed since the last emit. Called when
/// the pending list, the transfers or the pipeline map change, and on the poller's tick.
pub fn emit_eligibility(app: &AppHandle) {
    let state = app.state::<AppState>();
    let now = current_eligibility(&state);
    let changed = {
        let mut e = state.eligibility.lock().expect("eligibility lock");
        let changed = *e != now;
        if changed {
            *e = now.clone();
        }
        changed
    };
    if changed {
        let _ = app.emit(ELIGIBILITY_EVENT, now);
    }
}

/// Every pending session's eligibility now.
pub fn current_eligibility(state: &AppState) -> BTreeMap<String, Eligibility> {
    let pending = state.pending.lock().expect("pending lock").clone();
    let pipeline = state.pipeline.lock().expect("pipeline lock").clone();
    let names = answers(&state.names.lock().expect("names lock"));
    eligibilities(&pending, &state.queue.list(), &pipeline, &names)
}

/// Starts comparing, in the background, the pending folders [`to_compare`] names (one run at a
/// time); the eligibility is emitted again when it is done.
fn compare_names(
    app: &AppHandle,
    settings: &Settings,
    transfers: &BTreeMap<String, labpipe_lab::TransferState>,
) {
    if settings.raw_bucket.is_empty() {
        return;
    }
    let state = app.state::<AppState>();
    let due = {
        let pending = state.pending.lock().expect("pending lock").clone();
        let pipeline = state.pipeline.lock().expect("pipeline lock").clone();
        let mut names = state.names.lock().expect("names lock");
        retain_current(&mut names, &pending, &pipeline, transfers);
        to_compare(&pending, &pipeline, transfers, &names)
    };
    if due.is_empty()
        || state
            .comparing
            .swap(true, std::sync::atomic::Ordering::AcqRel)
    {
        return;
    }
    let app = app.clone();
    let settings = settings.clone();
    tauri::async_runtime::spawn(async move {
        let failed = match compare_due(&app, &settings, due).await {
            Ok(()) => false,
            Err(e) => {
                tracing::warn!(error = %e, "cannot compare the lab folder's sessions with what their names hold in the raw bucket");
                true
            }
        };
        emit_eligibility(&app);
        if failed {
            tokio::time::sleep(COMPARE_BACKOFF).await;
        }
        app.state::<AppState>()
            .comparing
            .store(false, std::sync::atomic::Ordering::Release);
    });
}

/// Compares each due folder with what its session name holds (`labpipe_upload`'s comparison,
/// the one an upload makes before sending) and records the answer.
async fn compare_due(
    app: &AppHandle,
    settings: &Settings,
    due: Vec<(String, Compared)>,
) -> crate::error::AppResult<()> {
    let sdk = crate::cloud::sdk_config(settings).await?;
    let journal = Arc::new(labpipe_upload::Journal::open(&labpipe_lab::journal_path())?);
    let upload = labpipe_upload::Upload::connect(
        crate::cloud::s3(&sdk),
        settings.raw_bucket.clone(),
        labpipe_upload::UploadOptions::default(),
        journal,
        None,
    )
    .await?;
    let rig = settings.rig();
    let state = app.state::<AppState>();
    for (session, compared) in due {
        let Some(path) = state
            .pending
            .lock()
            .expect("pending lock")
            .get(&session)
            .map(|r| std::path::PathBuf::from(&r.path))
        else {
            continue;
        };
        let report = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || -> crate::error::AppResult<_> {
                let lab = path.parent().unwrap_or(&path).to_path_buf();
                let schema = crate::pending::schema_for(&lab)?;
                let report = labpipe_core::check::check_folder(&path, &schema)?;
                let journal = labpipe_lab::journal_path();
                let folder_rig = labpipe_upload::folder_rig(&journal, &report.session, rig);
                Ok(report.on_rig(folder_rig))
            })
            .await
            .map_err(|e| crate::error::AppError::new("internal", e.to_string()))??
        };
        let check = upload.name_check(&report).await?;
        let check = NameCheck::from_engine(&check, rig.as_ref().map(|r| r.as_str()));
        match &check {
            NameCheck::Same => {}
            NameCheck::Taken { reason, .. } => {
                tracing::warn!(session = %session, path = %path.display(), "name conflict: {reason}")
            }
            NameCheck::Changed { reason, .. } => {
                tracing::warn!(session = %session, path = %path.display(), "{reason}")
            }
        }
        state
            .names
            .lock()
            .expect("names lock")
            .insert(session, (compared, check));
    }
    Ok(())
}

/// Raises a desktop notification (and logs it, so the Logs view tells the same story).
pub fn notify(app: &AppHandle, notice: &Notice) {
    use tauri_plugin_notification::NotificationExt;
    tracing::info!(title = %notice.title, body = %notice.body, "desktop notification");
    if let Err(e) = app
        .notification()
        .builder()
        .title(&notice.title)
        .body(&notice.body)
        .show()
    {
        tracing::warn!(error = %e, "the desktop did not accept the notification");
    }
}

/// The sessions whose status the app follows: every valid session id of the lab folder, and the
/// ones uploaded in this run (`watched`, `finished`).
fn sessions_to_read(
    app: &AppHandle,
    watched: &BTreeMap<String, chrono::DateTime<chrono::Utc>>,
    finished: &[String],
) -> Vec<String> {
    let state = app.state::<AppState>();
    let mut sessions: BTreeSet<String> = state
        .pending
        .lock()
        .expect("pending lock")
        .values()
        .filter(|r| r.recorded_at.is_some())
        .map(|r| r.session.clone())
        .collect();
    sessions.extend(watched.keys().cloned());
    sessions.extend(finished.iter().cloned());
    sessions.into_iter().collect()
}

/// Reads the catalog for `sessions`: the states (sessions uploaded from here but not cataloged
/// yet are `UPLOADED`) and the entries behind them.
async fn read(
    settings: &Settings,
    sdk: &aws_config::SdkConfig,
    sessions: &[String],
    watched: &BTreeMap<String, chrono::DateTime<chrono::Utc>>,
) -> crate::error::AppResult<(
    BTreeMap<String, PipelineState>,
    std::collections::HashMap<String, SessionItem>,
)> {
    let catalog = crate::cloud::catalog(sdk, settings)?;
    let items = catalog.get_many(sessions).await?;
    Ok((reading(&items, watched, chrono::Utc::now()), items))
}

/// Puts the entries of sessions that moved into the Sessions view's loaded catalog (when it is
/// loaded) and tells the view which changed.
async fn update_loaded_catalog(app: &AppHandle, moved: Vec<SessionItem>) {
    if moved.is_empty() {
        return;
    }
    let state = app.state::<AppState>();
    let changed = match state.catalog.lock().await.as_mut() {
        Some(loaded) => loaded.apply(moved),
        None => return,
    };
    if !changed.is_empty() {
        let _ = app.emit(CATALOG_EVENT, changed);
    }
}

/// Queues the lab folder's sessions whose checks all pass and that are not uploaded yet.
fn auto_upload(
    app: &AppHandle,
    map: &PipelineMap,
    transfers: &BTreeMap<String, labpipe_lab::TransferState>,
) {
    let state = app.state::<AppState>();
    let pending = state.pending.lock().expect("pending lock").clone();
    let pipeline = map.lock().expect("pipeline lock").clone();
    for row in ready_to_upload(pending.values(), transfers, &pipeline, Accept::PassOnly) {
        if state.queue.enqueue(&row.session, &row.path) {
            tracing::info!(session = %row.session, "queued automatically: every check passed");
        }
    }
}

/// Keeps the pipeline map current for the life of the app.
pub fn spawn_poller(app: AppHandle, map: PipelineMap) {
    tauri::async_runtime::spawn(async move {
        // Sessions uploaded in this run, and when their upload finished.
        let mut watched: BTreeMap<String, chrono::DateTime<chrono::Utc>> = BTreeMap::new();
        let mut seen = transfer_states(&app.state::<AppState>().queue.list());
        let mut sdk: Option<(Settings, aws_config::SdkConfig, Instant)> = None;
        let mut polling = StatusPolling::new();
        let mut read_once = false;
        let mut last_error = String::new();
        let mut tick = tokio::time::interval(TICK);
        loop {
            tick.tick().await;
            let state = app.state::<AppState>();
            let transfers = state.queue.list();
            let (notices, finished) = transfer_changes(&seen, &transfers);
            seen = transfer_states(&transfers);
            let settings = state.settings();
            if settings.notifications {
                for n in &notices {
                    notify(&app, n);
                }
            }
            let now = Instant::now();
            polling.track(sessions_to_read(&app, &watched, &finished).iter(), now);
            for s in &finished {
                polling.uploaded(s, now);
            }
            let finished_at = chrono::Utc::now();
            watched.extend(finished.into_iter().map(|s| (s, finished_at)));
            if state
                .pipeline_refresh
                .swap(false, std::sync::atomic::Ordering::Relaxed)
            {
                polling.refresh_all(now);
            }
            // Auto-upload waits for the first catalog reading (when there is a catalog), so
            // sessions uploaded before are recognised and not queued again.
            if settings.auto_upload && (read_once || settings.catalog_table.is_empty()) {
                auto_upload(&app, &map, &seen);
            }

            compare_names(&app, &settings, &seen);
            emit_eligibility(&app);

            let due = polling.due(now);
            if due.is_empty() || settings.catalog_table.is_empty() {
                continue;
            }
            // Credentials can change in Settings: build the SDK config again when the settings
            // change, and once a minute.
            let fresh = matches!(&sdk, Some((s, _, at)) if *s == settings && at.elapsed() < Duration::from_secs(60));
            if !fresh {
                match crate::cloud::sdk_config(&settings).await {
                    Ok(c) => sdk = Some((settings.clone(), c, Instant::now())),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read the pipeline status");
                        continue;
                    }
                }
            }
            let Some((_, config, _)) = &sdk else { continue };
            let (read_now, items) = match read(&settings, config, &due, &watched).await {
                Ok(r) => {
                    last_error.clear();
                    read_once = true;
                    r
                }
                Err(e) => {
                    // Once per distinct error, not every few seconds.
                    if e.message != last_error {
                        tracing::warn!(error = %e, "cannot read the pipeline status from the catalog");
                        last_error = e.message.clone();
                    }
                    continue;
                }
            };
            polling.record(&due, &read_now, Instant::now());
            let before = map.lock().expect("pipeline lock").clone();
            let mut after = before.clone();
            for session in &due {
                match read_now.get(session) {
                    Some(now) => after.insert(session.clone(), now.clone()),
                    None => after.remove(session),
                };
            }
            after.retain(|session, _| polling.is_tracked(session));
            if before == after {
                continue;
            }
            for (session, now) in &after {
                if before.get(session).map(|b| b.status) != Some(now.status) {
                    tracing::info!(session = %session, status = now.status.as_str(), step = ?now.step, "pipeline status");
                }
            }
            let notices = settled_notices(&before, &after, &mut watched);
            if settings.notifications {
                for n in &notices {
                    notify(&app, n);
                }
            }
            let moved: Vec<SessionItem> = after
                .iter()
                .filter(|(session, now)| before.get(*session) != Some(*now))
                .filter_map(|(session, _)| items.get(session).cloned())
                .collect();
            *map.lock().expect("pipeline lock") = after.clone();
            let _ = app.emit(EVENT, after);
            emit_eligibility(&app);
            update_loaded_catalog(&app, moved).await;
        }
    });
}
