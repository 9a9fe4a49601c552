//! The app's client log: the lab side's status changes go to the stack's client log group, as
//! `labpipe upload` sends them (`labpipe-clientlog`), so an operator sees a lab's problems
//! without the lab PC.
//!
//! What is recorded: a session folder that appears, or whose verdict changes, while the app runs
//! (DETECTED, then CHECKED or REJECTED with the findings), and every upload's UPLOADING,
//! UPLOADED and FAILED. Folders already there at start are not recorded again at each start.
//!
//! Nothing here can fail or slow an upload: records go to the durable spool beside the upload
//! journal (shared with the CLI, so either program sends what the other left), a spool that
//! cannot be opened turns logging off with one warning, and a background task sends the spool
//! every minute to the group in Settings (`client_log_group`, the stack's `ClientLogGroup`),
//! waiting quietly while no group is set or the network is down.

use std::sync::OnceLock;
use std::time::Duration;

use chrono::Utc;
use labpipe_clientlog::{ClientLog, Kind, Record};
use labpipe_core::Verdict;
use labpipe_lab::PendingSession;
use labpipe_upload::Event;
use tauri::{AppHandle, Manager};

use crate::AppState;

/// How often the spool is sent.
const SHIP_EVERY: Duration = Duration::from_secs(60);

fn log() -> Option<&'static ClientLog> {
    static LOG: OnceLock<Option<ClientLog>> = OnceLock::new();
    LOG.get_or_init(|| {
        match ClientLog::beside_journal(&labpipe_lab::journal_path(), "labpipe-app") {
            Ok(l) => Some(l),
            Err(e) => {
                tracing::warn!(error = %e, "client log off");
                None
            }
        }
    })
    .as_ref()
}

/// A session folder that appeared (`new`) or whose verdict changed while the app runs.
pub fn verdict(row: &PendingSession, new: bool) {
    let Some(log) = log() else { return };
    let now = Utc::now();
    let folder = std::path::Path::new(&row.path)
        .parent()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let base = |kind| {
        Record::new(log.origin(), kind, now)
            .session(&row.session)
            .lab_folder(&folder)
    };
    let mut records = Vec::new();
    if new {
        records.push(base(Kind::Detected));
    }
    match row.verdict {
        Verdict::Pass | Verdict::Warn => records.push(base(Kind::Checked)),
        Verdict::Fail => {
            let findings: Vec<String> = row
                .findings
                .iter()
                .filter(|f| f.severity >= labpipe_core::Severity::Error)
                .map(|f| match &f.file {
                    Some(file) => format!("{file}: {}", f.message),
                    None => f.message.clone(),
                })
                .collect();
            records.push(base(Kind::Rejected).reason(findings.join("; ")));
        }
        // Still being written: nothing decided yet.
        Verdict::Wait => {}
    }
    log.record(&records);
}

/// An upload event of the session in `lab_folder`; status changes are recorded.
pub fn observe(event: &Event, lab_folder: &str) {
    if let Some(log) = log() {
        log.observe(event, Some(lab_folder));
    }
}

/// An upload of `session` that failed before it started (no event tells of it).
pub fn failed(session: &str, lab_folder: &str, reason: &str) {
    if let Some(log) = log() {
        log.record(&[Record::new(log.origin(), Kind::Failed, Utc::now())
            .session(session)
            .lab_folder(lab_folder)
            .reason(reason)]);
    }
}

/// Sends the spool every minute with the credentials and group of the current settings.
pub fn spawn_shipper(app: AppHandle) {
    tauri::async_runtime::spawn(async move {
        loop {
            tokio::time::sleep(SHIP_EVERY).await;
            ship_once(&app).await;
        }
    });
}

/// One send of the spool (bounded by [`SHIP_EVERY`]); a missing group or a failure only means
/// the records wait.
pub async fn ship_once(app: &AppHandle) {
    let Some(log) = log() else { return };
    let settings = app.state::<AppState>().settings();
    let Some(group) = settings.client_log_group.clone().filter(|g| !g.is_empty()) else {
        return;
    };
    let sdk = match crate::cloud::sdk_config(&settings).await {
        Ok(sdk) => sdk,
        Err(e) => {
            tracing::info!(error = %e.message, "client log records wait");
            return;
        }
    };
    match log.ship(&sdk, &group, SHIP_EVERY).await {
        Ok(shipped) if shipped.sent > 0 => {
            tracing::info!(sent = shipped.sent, group = %group, "client log records sent")
        }
        Ok(_) => {}
        Err(e) => tracing::info!(error = %e, "client log records wait"),
    }
}
