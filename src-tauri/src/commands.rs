//! The Tauri commands: parse, call the libraries, map the error. Nothing else.

use serde::Serialize;
use std::time::Instant;
use tauri::{AppHandle, State};
use ts_rs::TS;

use crate::credentials::{self, Credentials, CredentialsView};
use crate::error::{AppError, AppResult};
use crate::logs::{self, LogsView};
use crate::sessions::{self, CatalogSnapshot, FilterResult, SessionDetail};
use crate::settings::Settings;
use crate::AppState;
use labpipe_lab::ready::{check_request, ready_to_upload, Accept, Eligibility};
use labpipe_lab::{PendingSession, TransferView};

#[derive(Debug, Clone, Serialize, TS)]
#[ts(export, export_to = "../../ui/src/lib/bindings/")]
pub struct AppInfo {
    pub version: String,
    pub config_dir: String,
    pub data_dir: String,
    pub log_dir: String,
    /// The guided setup has not been completed yet.
    pub first_run: bool,
    pub settings_error: Option<AppError>,
}

#[tauri::command]
pub fn app_info(state: State<'_, AppState>) -> AppInfo {
    AppInfo {
        version: env!("CARGO_PKG_VERSION").into(),
        config_dir: state.dirs.config.display().to_string(),
        data_dir: state.dirs.data.display().to_string(),
        log_dir: state.dirs.logs.display().to_string(),
        first_run: !state.settings().setup_done,
        settings_error: state.settings_error.lock().expect("lock").clone(),
    }
}

#[tauri::command]
pub fn get_settings(state: State<'_, AppState>) -> Settings {
    state.settings()
}

#[tauri::command]
pub async fn save_settings(
    app: AppHandle,
    state: State<'_, AppState>,
    settings: Settings,
) -> AppResult<Settings> {
    settings.validate()?;
    let path = settings.save(&state.dirs.config)?;
    let old = state.settings();
    state.set_settings(settings.clone());
    *state.settings_error.lock().expect("lock") = None;
    tracing::info!(path = %path.display(), "settings saved");
    if old.lab_folder != settings.lab_folder
        || old.quiet_period_secs != settings.quiet_period_secs
        || old.watch_mode != settings.watch_mode
        || old.poll_interval_secs != settings.poll_interval_secs
        || old.rig() != settings.rig()
    {
        // Force a restart of the watcher with the new folder or period.
        *state.watch.lock().expect("watch lock") = None;
        state.rewatch(&app)?;
    }
    if old.endpoint_url != settings.endpoint_url
        || old.catalog_table != settings.catalog_table
        || old.region != settings.region
        || old.lab_folder != settings.lab_folder
    {
        *state.catalog.lock().await = None;
    }
    Ok(settings)
}

/// *Check now* under Free disk space: `labpipe clean --dry-run` over the lab folder with the
/// given (unsaved) settings and age; deletes nothing.
#[tauri::command]
pub async fn check_disk_cleanup(
    state: State<'_, AppState>,
    settings: Option<Settings>,
    days: u32,
) -> AppResult<crate::retention::CleanReport> {
    let settings = settings.unwrap_or_else(|| state.settings());
    let queued = crate::retention::queued(&state);
    crate::retention::run(&settings, days, true, queued).await
}

#[tauri::command]
pub fn get_credentials() -> CredentialsView {
    credentials::view()
}

#[tauri::command]
pub async fn save_credentials(
    state: State<'_, AppState>,
    credentials: Credentials,
) -> AppResult<CredentialsView> {
    credentials::store(&credentials)?;
    tracing::info!(
        kind = if matches!(credentials, Credentials::Keys { .. }) {
            "keys"
        } else {
            "profile"
        },
        "credentials saved to the keyring"
    );
    *state.catalog.lock().await = None;
    Ok(credentials::view())
}

#[tauri::command]
pub fn clear_credentials() -> AppResult<CredentialsView> {
    credentials::clear()?;
    tracing::info!("credentials removed from the keyring");
    Ok(credentials::view())
}

#[tauri::command]
pub async fn test_connection(
    state: State<'_, AppState>,
    settings: Option<Settings>,
) -> AppResult<Vec<crate::cloud::Probe>> {
    let settings = settings.unwrap_or_else(|| state.settings());
    let probes = crate::cloud::test_connection(&settings).await?;
    for p in &probes {
        tracing::info!(probe = %p.name, ok = p.ok, "{}", p.message);
    }
    Ok(probes)
}

#[tauri::command]
pub fn list_pending(state: State<'_, AppState>) -> Vec<PendingSession> {
    state
        .pending
        .lock()
        .expect("pending lock")
        .values()
        .cloned()
        .collect()
}

/// How the lab folder is watched now (native events or polling, and why); `None` when no
/// folder is watched.
#[tauri::command]
pub fn watch_info(state: State<'_, AppState>) -> Option<crate::pending::WatchInfo> {
    state.watch_info()
}

#[tauri::command]
pub async fn recheck_pending(
    app: AppHandle,
    state: State<'_, AppState>,
) -> AppResult<Vec<PendingSession>> {
    let Some(folder) = state.settings().lab_folder.filter(|f| !f.is_empty()) else {
        return Ok(Vec::new());
    };
    let rig = state.settings().rig();
    let rows = tokio::task::spawn_blocking(move || {
        crate::pending::scan_all(std::path::Path::new(&folder), rig)
    })
    .await
    .map_err(|e| AppError::new("internal", e.to_string()))??;
    let list: Vec<PendingSession> = rows.values().cloned().collect();
    *state.pending.lock().expect("pending lock") = rows;
    crate::pipeline::emit_eligibility(&app);
    Ok(list)
}

#[tauri::command]
pub fn upload_sessions(state: State<'_, AppState>, sessions: Vec<String>) -> AppResult<u32> {
    let pending = state.pending.lock().expect("pending lock").clone();
    let transfers = labpipe_lab::pipeline::transfer_states(&state.queue.list());
    let pipeline = state.pipeline.lock().expect("pipeline lock").clone();
    let names = labpipe_lab::names::answers(&state.names.lock().expect("names lock"));
    let mut queued = 0;
    for s in &sessions {
        let row = pending
            .get(s)
            .ok_or_else(|| labpipe_lab::LabError::NotInLabFolder { session: s.clone() })?;
        check_request(
            row,
            transfers.get(s).copied(),
            pipeline.get(s),
            names.get(s),
        )?;
        if state.queue.enqueue(&row.session, &row.path) {
            queued += 1;
        }
    }
    Ok(queued)
}

/// Queues a corrected session folder as a new revision of the uploaded session (what
/// `labpipe upload --revise --reason` does), with the technician's reason.
#[tauri::command]
pub fn revise_session(
    state: State<'_, AppState>,
    session: String,
    reason: String,
) -> AppResult<bool> {
    let pending = state.pending.lock().expect("pending lock").clone();
    let transfers = labpipe_lab::pipeline::transfer_states(&state.queue.list());
    let row = pending
        .get(&session)
        .ok_or_else(|| labpipe_lab::LabError::NotInLabFolder {
            session: session.clone(),
        })?;
    labpipe_lab::ready::check_revision(row, transfers.get(&session).copied(), &reason)?;
    Ok(state
        .queue
        .enqueue_revision(&row.session, &row.path, &reason))
}

/// Queues every `pass`/`warn` session that has not been uploaded (or queued) yet.
#[tauri::command]
pub fn upload_all_ready(state: State<'_, AppState>) -> u32 {
    let pending = state.pending.lock().expect("pending lock").clone();
    let known = labpipe_lab::pipeline::transfer_states(&state.queue.list());
    let pipeline = state.pipeline.lock().expect("pipeline lock").clone();
    let mut queued = 0;
    for row in ready_to_upload(pending.values(), &known, &pipeline, Accept::PassOrWarn) {
        if state.queue.enqueue(&row.session, &row.path) {
            queued += 1;
        }
    }
    queued
}

/// The pipeline status of the lab folder's sessions that the catalog knows (or that were just
/// uploaded), by session.
#[tauri::command]
pub fn list_pipeline(
    state: State<'_, AppState>,
) -> std::collections::BTreeMap<String, labpipe_lab::PipelineState> {
    state.pipeline.lock().expect("pipeline lock").clone()
}

/// Whether each pending session may be uploaded now, and if not, why.
#[tauri::command]
pub fn list_eligibility(
    state: State<'_, AppState>,
) -> std::collections::BTreeMap<String, Eligibility> {
    crate::pipeline::current_eligibility(&state)
}

#[tauri::command]
pub fn list_transfers(state: State<'_, AppState>) -> Vec<TransferView> {
    state.queue.list()
}

#[tauri::command]
pub fn cancel_transfer(state: State<'_, AppState>, session: String) -> AppResult<()> {
    Ok(state.queue.cancel(&session)?)
}

/// Holds a queued or running upload; a running one stops, keeping what S3 acknowledged.
#[tauri::command]
pub fn pause_transfer(state: State<'_, AppState>, session: String) -> AppResult<()> {
    Ok(state.queue.pause(&session)?)
}

/// Queues a paused upload again; it continues from the journal.
#[tauri::command]
pub fn resume_transfer(state: State<'_, AppState>, session: String) -> AppResult<()> {
    Ok(state.queue.resume(&session)?)
}

#[tauri::command]
pub fn clear_finished_transfers(state: State<'_, AppState>) {
    state.queue.clear_finished()
}

/// Loads the catalog (a table scan) unless it is loaded and `refresh` is false.
#[tauri::command]
pub async fn load_catalog(state: State<'_, AppState>, refresh: bool) -> AppResult<CatalogSnapshot> {
    let settings = state.settings();
    let source = format!("table {}", settings.catalog_table);
    let mut cache = state.catalog.lock().await;
    let t = Instant::now();
    if refresh {
        // The researcher asked for fresh data: the pipeline view reads settled sessions too.
        state
            .pipeline_refresh
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
    if refresh || cache.is_none() {
        let sdk = crate::cloud::sdk_config(&settings).await?;
        let catalog = crate::cloud::catalog(&sdk, &settings)?;
        let items = catalog.scan_all().await?;
        let schema = match settings.lab_folder.as_deref().filter(|f| !f.is_empty()) {
            Some(f) => crate::pending::schema_for(std::path::Path::new(f)).unwrap_or_default(),
            None => labpipe_core::LabSchema::default(),
        };
        tracing::info!(
            sessions = items.len(),
            ms = t.elapsed().as_millis() as u64,
            "catalog loaded"
        );
        let mut loaded = sessions::Loaded::new(items, schema);
        compact_heap(&mut loaded);
        *cache = Some(loaded);
    }
    let loaded = cache.as_ref().expect("loaded above");
    let snapshot = loaded.snapshot(source, t.elapsed().as_secs_f64() * 1e3);
    return_freed_memory_soon();
    Ok(snapshot)
}

/// Gives back the heap the scan used before the catalog's entries settle in it for good.
///
/// Measured with 10,000 sessions (`mallinfo2` and `/proc/self/smaps_rollup` at each stage of a
/// load, debug build, `bench/app.sh`): the scan takes the heap from 10 to ~48 MB, of which 11 MB
/// stay in use once [`sessions::Loaded::new`] has built its columns; yet after `malloc_trim` the
/// process keeps 16 MB more anonymous memory than before the scan, because the entries' strings
/// lie on nearly every page of that heap. Trimming first, then copying the entries (which fills
/// the trimmed heap from the start) and freeing the old copies leaves 6.5 MB more, and the app
/// process's PSS with the catalog loaded falls from 151.5 to 141.5 MB. Smaller scan pages
/// (250 items) halved the heap's peak but not what it kept; streaming the pages kept as much.
fn compact_heap(loaded: &mut sessions::Loaded) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        trim_heap();
        loaded.compact();
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = loaded;
}

/// A catalog scan parses every item into DynamoDB attribute maps and the snapshot is serialised
/// to JSON after this command returns: tens of MB with 10,000 sessions, freed at once but kept
/// by glibc's per-thread arenas. Trimming them a moment later gives that memory back to the OS.
fn return_freed_memory_soon() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    tauri::async_runtime::spawn(async {
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        trim_heap();
    });
}

/// Hands glibc's free heap pages back to the OS.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim_heap() {
    // SAFETY: malloc_trim only releases free heap pages; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[tauri::command]
pub async fn filter_catalog(state: State<'_, AppState>, filter: String) -> AppResult<FilterResult> {
    let cache = state.catalog.lock().await;
    cache
        .as_ref()
        .ok_or_else(sessions::not_loaded)?
        .filter(&filter)
        .map_err(Into::into)
}

#[tauri::command]
pub async fn session_detail(
    state: State<'_, AppState>,
    session: String,
) -> AppResult<SessionDetail> {
    let settings = state.settings();
    let sdk = crate::cloud::sdk_config(&settings).await?;
    let catalog = crate::cloud::catalog(&sdk, &settings)?;
    let item = match catalog.get(&session).await? {
        Some(i) => i,
        None => {
            let cache = state.catalog.lock().await;
            cache
                .as_ref()
                .and_then(|c| c.item(&session))
                .ok_or_else(|| {
                    AppError::new("not_found", format!("{session} is not in the catalog"))
                })?
        }
    };
    let s3 = crate::cloud::s3(&sdk);
    Ok(sessions::session_detail(&catalog, &s3, &settings.raw_bucket, item).await?)
}

#[tauri::command]
pub fn read_logs(state: State<'_, AppState>, limit: Option<u32>) -> LogsView {
    let dir = state.dirs.logs.clone();
    LogsView {
        dir: dir.display().to_string(),
        lines: logs::tail(&dir, limit.unwrap_or(2000) as usize),
    }
}

#[tauri::command]
pub fn open_log_folder(state: State<'_, AppState>) -> AppResult<()> {
    let dir = &state.dirs.logs;
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else if cfg!(target_os = "windows") {
        "explorer"
    } else {
        "xdg-open"
    };
    std::process::Command::new(opener)
        .arg(dir)
        .spawn()
        .map_err(|e| {
            AppError::new(
                "io",
                format!("cannot open {} with {opener}: {e}", dir.display()),
            )
        })?;
    Ok(())
}
