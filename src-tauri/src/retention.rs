//! Freeing the lab disk from the app: the Settings option *Free disk space* deletes a session
//! folder of the lab folder once it is older than the chosen number of days, PROCESSED in the
//! catalog and byte-identical to its verified objects in S3 — exactly the rules of
//! `labpipe clean` (`labpipe-retention`, which this calls; nothing is decided here).
//!
//! It runs five minutes after the app starts and then every hour, only when the option is on;
//! *Check now* in Settings runs the same checks as a dry run and shows what would go and why
//! the rest stays. A folder that cannot be proven safe is kept; a failure to reach AWS keeps
//! everything.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use chrono::TimeDelta;
use labpipe_retention::{Action, CleanOptions, FolderOutcome};
use serde::Serialize;
use tauri::{AppHandle, Manager};
use ts_rs::TS;

use crate::error::{AppError, AppResult};
use crate::settings::Settings;
use crate::AppState;

const FIRST_RUN: Duration = Duration::from_secs(300);
const EVERY: Duration = Duration::from_secs(3600);

/// One folder's outcome as the Settings view lists it.
#[derive(Debug, Clone, Serialize, TS)]
#[ts(export, export_to = "../../ui/src/lib/bindings/")]
pub struct CleanRow {
    pub session: String,
    /// `deleted`, `would_delete` or `kept`.
    pub action: String,
    pub reason: String,
    #[ts(type = "number")]
    pub bytes: u64,
}

/// A whole run: what went (or would), what it frees, what stays.
#[derive(Debug, Clone, Serialize, TS)]
#[ts(export, export_to = "../../ui/src/lib/bindings/")]
pub struct CleanReport {
    pub dry_run: bool,
    pub older_than_days: u32,
    pub rows: Vec<CleanRow>,
    #[ts(type = "number")]
    pub bytes_freed: u64,
}

/// Checks every session folder of the lab folder and, unless `dry_run`, deletes those proven
/// safe. `days` overrides the setting (Check now before the option is turned on). Sessions in
/// `queued` (the app's upload queue, not finished) are kept; every other session's upload lock is
/// taken while it is checked and deleted, so neither this app's worker nor `labpipe upload` can
/// upload it meanwhile.
pub async fn run(
    settings: &Settings,
    days: u32,
    dry_run: bool,
    queued: BTreeSet<String>,
) -> AppResult<CleanReport> {
    let lab = settings
        .lab_folder
        .clone()
        .filter(|f| !f.is_empty())
        .ok_or_else(|| {
            AppError::new(
                "not_configured",
                "no lab folder is set; choose it in Settings",
            )
        })?;
    if days == 0 {
        return Err(AppError::new(
            "settings",
            "the age limit must be at least 1 day",
        ));
    }
    let sdk = crate::cloud::sdk_config(settings).await?;
    let catalog = crate::cloud::catalog(&sdk, settings)?;
    let s3 = labpipe_retention::s3_client(&sdk);
    let folders = labpipe_retention::session_folders(&[PathBuf::from(&lab)])
        .map_err(|e| AppError::new("lab_folder", e.to_string()))?;
    let opts = CleanOptions {
        older_than: TimeDelta::days(days as i64),
        now: chrono::Local::now().naive_local(),
        dry_run,
        raw_bucket: Some(settings.raw_bucket.clone()).filter(|b| !b.is_empty()),
        upload_locks: labpipe_upload::journal::locks_dir_beside(&labpipe_lab::journal_path()),
        journal: labpipe_lab::journal_path(),
        queued,
        rig: settings.rig(),
    };
    let outcomes = labpipe_retention::clean(&catalog, &s3, &folders, &opts, log_outcome).await;
    Ok(report(&outcomes, days, dry_run))
}

fn log_outcome(o: &FolderOutcome) {
    match o.action {
        Action::Deleted => {
            tracing::info!(session = %o.session, bytes = o.bytes, "disk clean-up: local copy deleted ({})", o.reason)
        }
        Action::WouldDelete => {
            tracing::info!(session = %o.session, bytes = o.bytes, "disk clean-up (check): would delete")
        }
        Action::Kept if o.failed => {
            tracing::warn!(session = %o.session, "disk clean-up: kept, could not be checked: {}", o.reason)
        }
        Action::Kept => tracing::debug!(session = %o.session, "disk clean-up: kept: {}", o.reason),
    }
}

fn report(outcomes: &[FolderOutcome], days: u32, dry_run: bool) -> CleanReport {
    CleanReport {
        dry_run,
        older_than_days: days,
        bytes_freed: outcomes
            .iter()
            .filter(|o| o.action != Action::Kept)
            .map(|o| o.bytes)
            .sum(),
        rows: outcomes
            .iter()
            .map(|o| CleanRow {
                session: o.session.clone(),
                action: match o.action {
                    Action::Deleted => "deleted",
                    Action::WouldDelete => "would_delete",
                    Action::Kept => "kept",
                }
                .into(),
                reason: o.reason.clone(),
                bytes: o.bytes,
            })
            .collect(),
    }
}

/// The sessions of the app's upload queue that have not finished (queued, uploading, paused,
/// interrupted): clean keeps them.
pub fn queued(state: &AppState) -> BTreeSet<String> {
    state
        .queue
        .list()
        .into_iter()
        .filter(|t| t.state.is_active())
        .map(|t| t.session)
        .collect()
}

/// The periodic clean-up, for the life of the app; does nothing while the option is off.
pub fn spawn_cleaner(app: AppHandle) {
    tauri::async_runtime::spawn(async move {
        tokio::time::sleep(FIRST_RUN).await;
        loop {
            let state = app.state::<AppState>();
            let settings = state.settings();
            if let Some(days) = settings.clean_after_days {
                match run(&settings, days, false, queued(&state)).await {
                    Ok(r) => tracing::info!(
                        deleted = r.rows.iter().filter(|x| x.action == "deleted").count(),
                        kept = r.rows.iter().filter(|x| x.action == "kept").count(),
                        bytes_freed = r.bytes_freed,
                        "disk clean-up done"
                    ),
                    Err(e) => tracing::warn!(error = %e.message, "disk clean-up skipped"),
                }
            }
            tokio::time::sleep(EVERY).await;
        }
    });
}
