//! The LabPipe desktop app: a thin Tauri shell over the library crates the CLI uses.
//!
//! - checks: `labpipe_core` (`check_folder`, the lab schema, the filter language);
//! - uploads: `labpipe_upload` (resumable, verified, journal-backed);
//! - catalog: `labpipe_catalog`.
//!
//! - the lab PC's rules: `labpipe_lab` (what is ready to upload, the upload queue and its
//!   states, the fold of upload events, pipeline status), shared with the CLI.
//!
//! This crate only adapts: it parses what the UI sends, calls the libraries, emits their views
//! and converts errors to `{code, message}` ([`error::AppError`]). The side effects it owns are
//! the desktop's: a folder watcher, the OS keyring, notifications, rolling logs, windows and
//! settings in the app config directory.
//!
//! Directories (each overridable by an environment variable, for tests and the demo script):
//! config `LABPIPE_APP_CONFIG_DIR`, data (the upload queue) `LABPIPE_APP_DATA_DIR`, logs
//! `LABPIPE_APP_LOG_DIR`. The upload journal is the machine user's one journal, shared with
//! `labpipe upload` (`LABPIPE_JOURNAL` overrides it).

pub mod client_log;
pub mod cloud;
mod commands;
pub mod configure;
pub mod credentials;
pub mod error;
pub mod logs;
pub mod pending;
pub mod pipeline;
pub mod retention;
pub mod sessions;
pub mod settings;
pub mod transfers;

#[cfg(test)]
mod bindings;

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;
use tauri::{Emitter, Manager};

use crate::settings::Settings;

/// Where the app keeps its files.
#[derive(Debug, Clone)]
pub struct Dirs {
    pub config: PathBuf,
    pub data: PathBuf,
    pub logs: PathBuf,
}

impl Dirs {
    fn resolve(app: &tauri::App) -> anyhow::Result<Dirs> {
        let pick = |var: &str, default: tauri::Result<PathBuf>| -> anyhow::Result<PathBuf> {
            match std::env::var_os(var).filter(|v| !v.is_empty()) {
                Some(v) => Ok(PathBuf::from(v)),
                None => Ok(default?),
            }
        };
        let p = app.path();
        Ok(Dirs {
            config: pick("LABPIPE_APP_CONFIG_DIR", p.app_config_dir())?,
            data: pick("LABPIPE_APP_DATA_DIR", p.app_data_dir())?,
            logs: pick("LABPIPE_APP_LOG_DIR", p.app_log_dir())?,
        })
    }
}

/// Everything the commands share.
pub struct AppState {
    pub dirs: Dirs,
    settings: Mutex<Settings>,
    pub pending: pending::PendingMap,
    /// What the catalog says about the lab folder's sessions.
    pub pipeline: pipeline::PipelineMap,
    /// Whether each pending session may be uploaded (last emitted).
    pub eligibility: pipeline::EligibilityMap,
    /// Pending folders whose session name the pipeline knows, compared with what the name holds
    /// (`labpipe_lab::names`), and whether a comparison runs now.
    pub names: pipeline::NamesMap,
    pub comparing: std::sync::atomic::AtomicBool,
    /// Set to have the poller read every session once more (settled ones included).
    pub pipeline_refresh: std::sync::atomic::AtomicBool,
    watch: Mutex<Option<pending::Watch>>,
    pub queue: labpipe_lab::Queue,
    pub catalog: tokio::sync::Mutex<Option<sessions::Loaded>>,
    /// Set when settings.json could not be read at start (shown in Settings).
    pub settings_error: Mutex<Option<error::AppError>>,
    _log_guard: Option<tracing_appender::non_blocking::WorkerGuard>,
}

impl AppState {
    pub fn settings(&self) -> Settings {
        self.settings.lock().expect("settings lock").clone()
    }

    fn set_settings(&self, s: Settings) {
        *self.settings.lock().expect("settings lock") = s;
    }

    /// How the lab folder is watched now; `None` when none is.
    pub fn watch_info(&self) -> Option<pending::WatchInfo> {
        self.watch
            .lock()
            .expect("watch lock")
            .as_ref()
            .map(|w| w.info.clone())
    }

    /// (Re)starts the watcher on the configured lab folder.
    fn rewatch(&self, app: &tauri::AppHandle) -> error::AppResult<()> {
        let s = self.settings();
        let mut watch = self.watch.lock().expect("watch lock");
        let folder = s
            .lab_folder
            .as_deref()
            .filter(|f| !f.is_empty())
            .map(PathBuf::from);
        if watch.as_ref().map(|w| &w.folder) == folder.as_ref() && watch.is_some() {
            return Ok(());
        }
        *watch = None;
        self.pending.lock().expect("pending lock").clear();
        let Some(folder) = folder else {
            let _ = app.emit(pending::WATCH_EVENT, None::<pending::WatchInfo>);
            return Ok(());
        };
        let quiet = Duration::from_secs(s.quiet_period_secs.max(1) as u64);
        let plan = pending::WatchPlan {
            mode: s.watch_mode,
            poll_every: Duration::from_secs(s.poll_interval_secs.max(1) as u64),
            rig: s.rig(),
        };
        *watch = Some(pending::start(
            app.clone(),
            self.pending.clone(),
            folder,
            quiet,
            plan,
        )?);
        Ok(())
    }
}

pub fn run() {
    tauri::Builder::default()
        .plugin(tauri_plugin_dialog::init())
        .plugin(tauri_plugin_notification::init())
        .setup(|app| {
            let dirs = Dirs::resolve(app)?;
            let guard = match logs::init(&dirs.logs) {
                Ok(g) => Some(g),
                Err(e) => {
                    eprintln!("labpipe-app: {e}");
                    None
                }
            };
            tracing::info!(
                version = env!("CARGO_PKG_VERSION"),
                config = %dirs.config.display(),
                data = %dirs.data.display(),
                logs = %dirs.logs.display(),
                "LabPipe app starting"
            );
            let (settings, settings_error) = match Settings::load(&dirs.config) {
                Ok(s) => (s, None),
                Err(e) => {
                    tracing::error!(error = %e, "settings unreadable, using defaults");
                    (Settings::default(), Some(e))
                }
            };
            let queue = labpipe_lab::Queue::load(&dirs.data);
            let state = AppState {
                dirs,
                settings: Mutex::new(settings),
                pending: Default::default(),
                pipeline: Default::default(),
                eligibility: Default::default(),
                names: Default::default(),
                comparing: Default::default(),
                pipeline_refresh: Default::default(),
                watch: Mutex::new(None),
                queue: queue.clone(),
                catalog: tokio::sync::Mutex::new(None),
                settings_error: Mutex::new(settings_error),
                _log_guard: guard,
            };
            app.manage(state);
            let handle = app.handle().clone();
            transfers::spawn_emitter(queue.clone(), handle.clone());
            transfers::spawn_worker(queue, handle.clone());
            pipeline::spawn_poller(handle.clone(), app.state::<AppState>().pipeline.clone());
            client_log::spawn_shipper(handle.clone());
            retention::spawn_cleaner(handle.clone());
            if let Err(e) = app.state::<AppState>().rewatch(&handle) {
                tracing::error!(error = %e, "cannot watch the lab folder");
            }
            Ok(())
        })
        .invoke_handler(tauri::generate_handler![
            commands::app_info,
            commands::get_settings,
            commands::save_settings,
            commands::get_credentials,
            commands::save_credentials,
            commands::clear_credentials,
            commands::test_connection,
            commands::list_pending,
            commands::recheck_pending,
            commands::watch_info,
            commands::upload_sessions,
            commands::revise_session,
            commands::check_disk_cleanup,
            commands::upload_all_ready,
            commands::list_pipeline,
            commands::list_eligibility,
            commands::list_transfers,
            commands::cancel_transfer,
            commands::pause_transfer,
            commands::resume_transfer,
            commands::clear_finished_transfers,
            commands::load_catalog,
            commands::filter_catalog,
            commands::session_detail,
            commands::read_logs,
            commands::open_log_folder,
        ])
        .run(tauri::generate_context!())
        .expect("error while running the LabPipe app");
}
