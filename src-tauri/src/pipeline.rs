//! What the cloud pipeline says about the lab folder's sessions, for the Pending view and for
//! desktop notifications.
//!
//! The lab PC never writes the catalog (only the backend does), so the app learns that a session
//! it uploaded was cataloged, processed or failed by reading the catalog: one BatchGetItem for
//! the sessions of the lab folder, every few seconds while something is on its way through the
//! pipeline and every half minute otherwise. A session whose upload finished but which the
//! backend has not cataloged yet shows as `UPLOADED`.
//!
//! The same reading drives the notifications: a session the app saw on its way (uploaded in
//! this run, or not yet settled at the previous reading) that becomes `PROCESSED` or `FAILED`
//! raises one notification; so does an upload that fails. Sessions that were already settled
//! when the app started raise none.
//!
//! It also keeps the Sessions view current: the entries of sessions that moved replace their
//! old ones in the view's loaded catalog (or join it), and a `catalog-changed` event names them,
//! so a researcher watching Sessions sees an upload become PROCESSED without a rescan.

use labpipe_catalog::{SessionItem, Status};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tauri::{AppHandle, Emitter, Manager};
use ts_rs::TS;

use crate::pending::PendingSession;
use crate::settings::Settings;
use crate::transfers::TransferView;
use crate::AppState;

/// Event name carrying the whole map (`Record<string, PipelineState>`).
pub const EVENT: &str = "pipeline";
/// The event that tells the Sessions view which sessions of its loaded catalog changed.
pub const CATALOG_EVENT: &str = "catalog-changed";
/// Status shown for a session whose upload finished before the backend cataloged it.
pub const UPLOADED: &str = "UPLOADED";
/// Catalog readings while a session is on its way through the pipeline.
const BUSY_INTERVAL: Duration = Duration::from_secs(3);
/// Catalog readings when nothing is moving.
const IDLE_INTERVAL: Duration = Duration::from_secs(30);
/// How often the local transfer list is compared with the last one seen.
const TICK: Duration = Duration::from_millis(500);

/// One session as the pipeline sees it.
#[derive(Debug, Clone, Serialize, TS, PartialEq)]
#[ts(export, export_to = "../../ui/src/lib/bindings/")]
pub struct PipelineState {
    /// `UPLOADED`, `CATALOGED`, `PROCESSING`, `PROCESSED`, `FAILED`, …
    pub status: String,
    /// The step that set the status (`ingest`, `preprocess`, …).
    pub step: Option<String>,
    /// For `FAILED`: what went wrong and what to do.
    pub message: Option<String>,
    /// Pipeline version of the latest outputs.
    pub pipeline_version: Option<u32>,
}

impl PipelineState {
    fn from_item(i: &SessionItem) -> Self {
        PipelineState {
            status: i.status.as_str().to_string(),
            step: i.status_step.clone(),
            message: i.status_message.clone(),
            pipeline_version: i.pipeline_version,
        }
    }

    fn uploaded() -> Self {
        PipelineState {
            status: UPLOADED.into(),
            step: Some("upload".into()),
            message: None,
            pipeline_version: None,
        }
    }

    /// `PROCESSED`, `FAILED` or `REJECTED`: nothing more happens without someone acting.
    pub fn is_settled(&self) -> bool {
        self.status.parse::<Status>().is_ok_and(|s| s.is_settled())
    }
}

pub type PipelineMap = Arc<Mutex<BTreeMap<String, PipelineState>>>;

/// A desktop notification to raise.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub title: String,
    pub body: String,
}

/// Compares two catalog readings: the notices for sessions that settled, given the sessions
/// that were on their way (`watched`). Settled sessions leave `watched`.
pub fn settled_notices(
    before: &BTreeMap<String, PipelineState>,
    after: &BTreeMap<String, PipelineState>,
    watched: &mut BTreeSet<String>,
) -> Vec<Notice> {
    let mut notices = Vec::new();
    for (session, now) in after {
        let old = before.get(session);
        if old.map(|o| &o.status) == Some(&now.status) || !now.is_settled() {
            continue;
        }
        let was_moving = old.is_some_and(|o| !o.is_settled()) || watched.contains(session);
        watched.remove(session);
        if !was_moving {
            continue;
        }
        notices.push(match now.status.as_str() {
            "PROCESSED" => Notice {
                title: format!("{session} is processed"),
                body: match now.pipeline_version {
                    Some(v) => format!("Pipeline v{v} outputs are ready to sync."),
                    None => "Its outputs are ready to sync.".into(),
                },
            },
            _ => Notice {
                title: format!("{session} failed in the pipeline"),
                body: format!(
                    "{}{}",
                    now.step
                        .as_deref()
                        .map(|s| format!("Step {s}: "))
                        .unwrap_or_default(),
                    now.message.as_deref().unwrap_or("see the Sessions view")
                ),
            },
        });
    }
    notices
}

/// Compares two transfer lists: notices for uploads that failed since, and the sessions whose
/// upload finished (to be watched through the pipeline).
///
/// `seen` starts as the queue loaded at start, so transfers that finished before a restart are
/// no news; a transfer missing from `seen` was queued in this run, and may have gone from queued
/// to done between two looks (a small session uploads in less than a tick).
pub fn transfer_changes(
    seen: &BTreeMap<String, String>,
    now: &[TransferView],
) -> (Vec<Notice>, Vec<String>) {
    let mut notices = Vec::new();
    let mut finished = Vec::new();
    for t in now {
        let before = seen.get(&t.session).map(String::as_str).unwrap_or("new");
        if before == t.state {
            continue;
        }
        match t.state.as_str() {
            "failed" => notices.push(Notice {
                title: format!("Upload of {} failed", t.session),
                body: t
                    .error
                    .as_ref()
                    .map(|e| e.message.clone())
                    .unwrap_or_else(|| "See the Transfers view.".into()),
            }),
            "done" => finished.push(t.session.clone()),
            _ => {}
        }
    }
    (notices, finished)
}

/// The lab folder's sessions that may be queued for upload: checked good (`pass`, and `warn`
/// too unless `pass_only`), not queued, uploading, paused or uploaded in this run, and not known
/// to the pipeline (already uploaded from here or elsewhere). Oldest recording first.
pub fn ready_to_upload<'a>(
    pending: impl IntoIterator<Item = &'a PendingSession>,
    transfer_states: &BTreeMap<String, String>,
    pipeline: &BTreeMap<String, PipelineState>,
    pass_only: bool,
) -> Vec<&'a PendingSession> {
    let mut ready: Vec<&PendingSession> = pending
        .into_iter()
        .filter(|r| r.verdict == "pass" || (!pass_only && r.verdict == "warn"))
        .filter(|r| {
            !matches!(
                transfer_states.get(&r.session).map(String::as_str),
                Some("done" | "queued" | "running" | "paused")
            )
        })
        .filter(|r| !pipeline.contains_key(&r.session))
        .collect();
    ready.sort_by(|a, b| a.session.cmp(&b.session));
    ready
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

/// The sessions to read from the catalog: every valid session id of the lab folder, and the
/// ones uploaded in this run.
fn sessions_to_read(app: &AppHandle, watched: &BTreeSet<String>) -> Vec<String> {
    let state = app.state::<AppState>();
    let mut sessions: BTreeSet<String> = state
        .pending
        .lock()
        .expect("pending lock")
        .values()
        .filter(|r| r.recorded_at.is_some())
        .map(|r| r.session.clone())
        .collect();
    sessions.extend(watched.iter().cloned());
    sessions.into_iter().collect()
}

/// What one reading of the catalog found.
struct Reading {
    /// Every session read; sessions not cataloged yet but in `watched` are `UPLOADED`.
    states: BTreeMap<String, PipelineState>,
    /// The catalog entries behind `states`.
    items: std::collections::HashMap<String, SessionItem>,
}

/// Reads the catalog for `sessions`.
async fn read(
    settings: &Settings,
    sdk: &aws_config::SdkConfig,
    sessions: &[String],
    watched: &BTreeSet<String>,
) -> crate::error::AppResult<Reading> {
    let catalog = crate::cloud::catalog(sdk, settings)?;
    let items = catalog.get_many(sessions).await?;
    let mut states: BTreeMap<String, PipelineState> = items
        .iter()
        .map(|(k, v)| (k.clone(), PipelineState::from_item(v)))
        .collect();
    for s in watched {
        states
            .entry(s.clone())
            .or_insert_with(PipelineState::uploaded);
    }
    Ok(Reading { states, items })
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
fn auto_upload(app: &AppHandle, map: &PipelineMap, transfer_states: &BTreeMap<String, String>) {
    let state = app.state::<AppState>();
    let pending = state.pending.lock().expect("pending lock").clone();
    let pipeline = map.lock().expect("pipeline lock").clone();
    for row in ready_to_upload(pending.values(), transfer_states, &pipeline, true) {
        if state.queue.enqueue(&row.session, &row.path) {
            tracing::info!(session = %row.session, "queued automatically: every check passed");
        }
    }
}

/// Keeps the pipeline map current for the life of the app.
pub fn spawn_poller(app: AppHandle, map: PipelineMap) {
    tauri::async_runtime::spawn(async move {
        let mut watched: BTreeSet<String> = BTreeSet::new();
        let mut seen = crate::transfers::states(&app.state::<AppState>().queue.list());
        let mut sdk: Option<(Settings, aws_config::SdkConfig, Instant)> = None;
        let mut last_read: Option<Instant> = None;
        let mut last_error = String::new();
        let mut tick = tokio::time::interval(TICK);
        loop {
            tick.tick().await;
            let state = app.state::<AppState>();
            let transfers = state.queue.list();
            let (notices, finished) = transfer_changes(&seen, &transfers);
            seen = crate::transfers::states(&transfers);
            let settings = state.settings();
            if settings.notifications {
                for n in &notices {
                    notify(&app, n);
                }
            }
            let uploaded_now = !finished.is_empty();
            watched.extend(finished);
            // Auto-upload waits for the first catalog reading (when there is a catalog), so
            // sessions uploaded before are recognised and not queued again.
            if settings.auto_upload && (last_read.is_some() || settings.catalog_table.is_empty()) {
                auto_upload(&app, &map, &seen);
            }

            let busy = !watched.is_empty()
                || map
                    .lock()
                    .expect("pipeline lock")
                    .values()
                    .any(|p| !p.is_settled());
            let interval = if busy { BUSY_INTERVAL } else { IDLE_INTERVAL };
            let due = uploaded_now || last_read.is_none_or(|t| t.elapsed() >= interval);
            if !due || settings.catalog_table.is_empty() {
                continue;
            }
            last_read = Some(Instant::now());
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
            let sessions = sessions_to_read(&app, &watched);
            if sessions.is_empty() {
                continue;
            }
            let Reading {
                states: after,
                items,
            } = match read(&settings, config, &sessions, &watched).await {
                Ok(r) => {
                    last_error.clear();
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
            let before = map.lock().expect("pipeline lock").clone();
            if before == after {
                continue;
            }
            for (session, now) in &after {
                if before.get(session).map(|b| &b.status) != Some(&now.status) {
                    tracing::info!(session = %session, status = %now.status, step = ?now.step, "pipeline status");
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
            update_loaded_catalog(&app, moved).await;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(status: &str) -> PipelineState {
        PipelineState {
            status: status.into(),
            step: Some("preprocess".into()),
            message: (status == "FAILED").then(|| "channel 3 is flat".to_string()),
            pipeline_version: (status == "PROCESSED").then_some(1),
        }
    }

    fn map(rows: &[(&str, &str)]) -> BTreeMap<String, PipelineState> {
        rows.iter().map(|(k, v)| (k.to_string(), st(v))).collect()
    }

    #[test]
    fn a_session_seen_moving_notifies_once_when_it_settles() {
        let mut watched = BTreeSet::new();
        let before = map(&[("a", "CATALOGED"), ("b", "PROCESSING"), ("c", "PROCESSED")]);
        let after = map(&[("a", "PROCESSED"), ("b", "FAILED"), ("c", "PROCESSED")]);
        let n = settled_notices(&before, &after, &mut watched);
        assert_eq!(n.len(), 2, "{n:?}");
        assert_eq!(n[0].title, "a is processed");
        assert!(n[0].body.contains("v1"));
        assert_eq!(n[1].title, "b failed in the pipeline");
        assert!(n[1].body.contains("preprocess") && n[1].body.contains("channel 3 is flat"));
        // The same reading again: nothing new.
        assert!(settled_notices(&after, &after, &mut watched).is_empty());
    }

    #[test]
    fn settled_at_first_sight_is_quiet_unless_uploaded_in_this_run() {
        let mut watched = BTreeSet::from(["new".to_string()]);
        let before = BTreeMap::new();
        let after = map(&[("old", "PROCESSED"), ("new", "PROCESSED")]);
        let n = settled_notices(&before, &after, &mut watched);
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].title, "new is processed");
        assert!(watched.is_empty(), "a settled session is no longer watched");
    }

    fn transfer(session: &str, state: &str) -> TransferView {
        serde_json::from_value(serde_json::json!({
            "session": session, "path": "/lab/x", "state": state, "bytes_total": 0,
            "bytes_done": 0, "bytes_resumed": 0, "rate": 0.0, "eta_secs": null, "files": [],
            "error": if state == "failed" { serde_json::json!({"code": "network", "message": "connection refused"}) } else { serde_json::Value::Null },
            "outcome": null, "queued_at": "", "finished_at": null
        }))
        .expect("a transfer view")
    }

    #[test]
    fn transfer_changes_report_failures_and_finished_uploads() {
        let seen = BTreeMap::from([
            ("a".to_string(), "running".to_string()),
            ("b".to_string(), "running".to_string()),
            ("c".to_string(), "failed".to_string()),
        ]);
        let now = [
            transfer("a", "failed"),
            transfer("b", "done"),
            transfer("c", "failed"),
            // Queued and finished between two looks.
            transfer("d", "done"),
            transfer("e", "queued"),
        ];
        let (notices, finished) = transfer_changes(&seen, &now);
        assert_eq!(notices.len(), 1, "{notices:?}");
        assert_eq!(notices[0].title, "Upload of a failed");
        assert_eq!(notices[0].body, "connection refused");
        assert_eq!(finished, vec!["b".to_string(), "d".to_string()]);
    }

    fn pending(session: &str, verdict: &str) -> PendingSession {
        PendingSession {
            session: session.into(),
            path: format!("/lab/{session}"),
            verdict: verdict.into(),
            recorded_at: Some("2021-03-01 16:12:21".into()),
            total_bytes: 1,
            file_count: 1,
            findings: Vec::new(),
            metadata: BTreeMap::new(),
            checked_at: String::new(),
        }
    }

    #[test]
    fn ready_to_upload_skips_what_is_on_its_way_or_in_the_catalog() {
        let rows = [
            pending("20210301_000001", "pass"),
            pending("20210301_000002", "warn"),
            pending("20210301_000003", "fail"),
            pending("20210301_000004", "wait"),
            pending("20210301_000005", "pass"),
            pending("20210301_000006", "pass"),
            pending("20210301_000007", "pass"),
        ];
        let transfers = BTreeMap::from([
            ("20210301_000005".to_string(), "running".to_string()),
            ("20210301_000007".to_string(), "failed".to_string()),
        ]);
        let pipeline = map(&[("20210301_000006", "PROCESSED")]);
        let names =
            |v: Vec<&PendingSession>| v.iter().map(|r| r.session.clone()).collect::<Vec<_>>();
        assert_eq!(
            names(ready_to_upload(&rows, &transfers, &pipeline, false)),
            ["20210301_000001", "20210301_000002", "20210301_000007"]
        );
        assert_eq!(
            names(ready_to_upload(&rows, &transfers, &pipeline, true)),
            ["20210301_000001", "20210301_000007"]
        );
    }

    #[test]
    fn uploaded_is_not_settled_and_processed_is() {
        assert!(!PipelineState::uploaded().is_settled());
        assert!(st("PROCESSED").is_settled());
        assert!(st("FAILED").is_settled());
        assert!(!st("PROCESSING").is_settled());
    }
}
