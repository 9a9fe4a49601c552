//! The watched lab folder: every session folder in it with its check verdict, kept current by a
//! `notify` watcher. A folder is checked when it first appears and again once it has been quiet
//! for the configured period; `wait` folders are re-checked on a timer until they settle.
//!
//! The watcher is native (inotify and its peers) or polling, as [`labpipe_lab::watch`] decides:
//! a network share is polled, since changes the recording rig makes there raise no event on
//! this computer, and so is a folder whose native watch cannot be set up. Both feed the same
//! path channel, so everything after detection is the same code.
//!
//! The checks themselves are `labpipe_core::check::check_folder`, exactly as `labpipe check`;
//! each row is a [`labpipe_lab::PendingSession`], named as it is uploaded: with the rig id of
//! Settings, a folder `YYYYMMDD_HHMMSS` is session `YYYYMMDD_HHMMSS_<rig>`
//! (`labpipe check --rig`).

use labpipe_core::check::check_folder;
use labpipe_core::session_id::Rig;
use labpipe_core::LabSchema;
use labpipe_lab::PendingSession;
use notify::{RecursiveMode, Watcher};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tauri::{AppHandle, Emitter};
use tokio::sync::mpsc;

use crate::error::{AppError, AppResult};

/// Event name carrying the whole pending list (`PendingSession[]`).
pub const EVENT: &str = "pending";

/// The lab's schema for sessions under `folder` (its `labpipe.toml`, else the built-in one).
pub fn schema_for(folder: &Path) -> AppResult<LabSchema> {
    match LabSchema::discover(folder) {
        Some(p) => Ok(LabSchema::load(&p)?),
        None => Ok(LabSchema::default()),
    }
}

pub type PendingMap = Arc<Mutex<BTreeMap<String, PendingSession>>>;

/// Checks one folder; an unreadable folder becomes a `fail` row saying why.
fn check_one(path: &Path, schema: &LabSchema, rig: Option<Rig>) -> PendingSession {
    match check_folder(path, schema) {
        Ok(r) => {
            let rig = labpipe_upload::folder_rig(&labpipe_lab::journal_path(), &r.session, rig);
            PendingSession::from_report(&r.on_rig(rig))
        }
        Err(e) => {
            let mut row = PendingSession::unreadable(path, &e.to_string());
            row.session = session_of(path, rig);
            row
        }
    }
}

/// The session a folder is uploaded as: its name, with the rig id when the name is a date-time
/// alone and this PC did not upload it under that name ([`labpipe_upload::folder_rig`]).
pub fn session_of(path: &Path, rig: Option<Rig>) -> String {
    labpipe_upload::folder_session(&labpipe_lab::journal_path(), path, rig)
}

/// Checks every session folder of `folder` from scratch.
pub fn scan_all(folder: &Path, rig: Option<Rig>) -> AppResult<BTreeMap<String, PendingSession>> {
    let schema = schema_for(folder)?;
    let mut out = BTreeMap::new();
    for path in labpipe_core::scan::session_folders(folder)? {
        let row = check_one(&path, &schema, rig);
        out.insert(row.session.clone(), row);
    }
    Ok(out)
}

fn snapshot(map: &PendingMap) -> Vec<PendingSession> {
    map.lock()
        .expect("pending lock")
        .values()
        .cloned()
        .collect()
}

/// How the lab folder is being watched, for the Pending view.
#[derive(Debug, Clone, serde::Serialize, ts_rs::TS, PartialEq)]
#[ts(export, export_to = "../../ui/src/lib/bindings/")]
pub struct WatchInfo {
    pub folder: String,
    /// Scanned every `poll_interval_secs` instead of native change events.
    pub polling: bool,
    pub poll_interval_secs: Option<u32>,
    /// Why it is polled (a network share, a failed native watch, or Settings).
    pub reason: Option<String>,
}

/// Event name carrying the current [`WatchInfo`] (or `null` when nothing is watched).
pub const WATCH_EVENT: &str = "watch";

/// The running watcher of one folder; dropping it stops watching.
pub struct Watch {
    pub folder: PathBuf,
    pub info: WatchInfo,
    _watcher: Box<dyn Watcher + Send>,
    task: tauri::async_runtime::JoinHandle<()>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How to watch: the mode from Settings and the scan interval when polling.
#[derive(Debug, Clone, Copy)]
pub struct WatchPlan {
    pub mode: labpipe_lab::WatchMode,
    pub poll_every: Duration,
    /// The rig id of Settings, applied to every folder's session name.
    pub rig: Option<Rig>,
}

/// Starts watching `folder`: a full check now, then incremental re-checks.
pub fn start(
    app: AppHandle,
    map: PendingMap,
    folder: PathBuf,
    quiet: Duration,
    plan: WatchPlan,
) -> AppResult<Watch> {
    if !folder.is_dir() {
        return Err(AppError::new(
            "scan",
            format!(
                "lab folder {} does not exist or is not a folder; choose another in Settings",
                folder.display()
            ),
        ));
    }
    let (tx, rx) = mpsc::unbounded_channel::<PathBuf>();
    let handler = move |res: notify::Result<notify::Event>| match res {
        Ok(ev) => {
            for p in ev.paths {
                let _ = tx.send(p);
            }
        }
        Err(e) => tracing::warn!(error = %e, "file watcher error"),
    };
    let mut poll_reason = labpipe_lab::watch::should_poll(plan.mode, &folder);
    let mut watcher: Option<Box<dyn Watcher + Send>> = None;
    if poll_reason.is_none() {
        match native_watch(&folder, handler.clone()) {
            Ok(w) => watcher = Some(w),
            Err(e) if plan.mode == labpipe_lab::WatchMode::Native => return Err(e),
            Err(e) => {
                tracing::warn!(error = %e, "native change events unavailable; polling instead");
                poll_reason = Some(labpipe_lab::PollReason::NativeFailed(e.message));
            }
        }
    }
    let watcher = match watcher {
        Some(w) => w,
        None => {
            let config = notify::Config::default().with_poll_interval(plan.poll_every);
            let mut w = notify::PollWatcher::new(handler, config)
                .map_err(|e| AppError::new("watch", format!("cannot poll the lab folder: {e}")))?;
            w.watch(&folder, RecursiveMode::Recursive).map_err(|e| {
                AppError::new("watch", format!("cannot poll {}: {e}", folder.display()))
            })?;
            Box::new(w)
        }
    };
    let info = WatchInfo {
        folder: folder.display().to_string(),
        polling: poll_reason.is_some(),
        poll_interval_secs: poll_reason
            .as_ref()
            .map(|_| plan.poll_every.as_secs().max(1) as u32),
        reason: poll_reason.as_ref().map(|r| r.text()),
    };
    let task =
        tauri::async_runtime::spawn(run(app.clone(), map, folder.clone(), quiet, plan.rig, rx));
    match &poll_reason {
        None => tracing::info!(folder = %folder.display(), "watching lab folder"),
        Some(r) => tracing::info!(
            folder = %folder.display(),
            every_secs = plan.poll_every.as_secs(),
            reason = %r.text(),
            "polling lab folder"
        ),
    }
    let _ = app.emit(WATCH_EVENT, Some(&info));
    Ok(Watch {
        folder,
        info,
        _watcher: watcher,
        task,
    })
}

/// A native watcher on `folder`, or why there cannot be one.
fn native_watch(
    folder: &Path,
    handler: impl notify::EventHandler,
) -> AppResult<Box<dyn Watcher + Send>> {
    let mut w = notify::recommended_watcher(handler)
        .map_err(|e| AppError::new("watch", format!("cannot watch the lab folder: {e}")))?;
    w.watch(folder, RecursiveMode::Recursive)
        .map_err(|e| AppError::new("watch", format!("cannot watch {}: {e}", folder.display())))?;
    Ok(Box::new(w))
}

/// The top-level entry of `folder` that `path` is in.
fn top_entry(folder: &Path, path: &Path) -> Option<PathBuf> {
    let rel = path.strip_prefix(folder).ok()?;
    let first = rel.components().next()?;
    Some(folder.join(first))
}

async fn run(
    app: AppHandle,
    map: PendingMap,
    folder: PathBuf,
    quiet: Duration,
    rig: Option<Rig>,
    mut rx: mpsc::UnboundedReceiver<PathBuf>,
) {
    let emit = |app: &AppHandle, map: &PendingMap| {
        let _ = app.emit(EVENT, snapshot(map));
        crate::pipeline::emit_eligibility(app);
    };
    let full = {
        let folder = folder.clone();
        tokio::task::spawn_blocking(move || scan_all(&folder, rig)).await
    };
    match full {
        Ok(Ok(rows)) => {
            tracing::info!(sessions = rows.len(), "checked lab folder");
            *map.lock().expect("pending lock") = rows;
        }
        Ok(Err(e)) => tracing::error!(error = %e, "cannot check lab folder"),
        Err(e) => tracing::error!(error = %e, "check task failed"),
    }
    emit(&app, &map);

    let mut dirty: HashMap<PathBuf, Instant> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(300));
    let mut last_wait_check = Instant::now();
    loop {
        tokio::select! {
            got = rx.recv() => {
                let Some(path) = got else { break };
                let Some(top) = top_entry(&folder, &path) else { continue };
                let name = session_of(&top, rig);
                let known = map.lock().expect("pending lock").contains_key(&name);
                // A new folder shows up at once (usually as `wait`), then settles.
                let first_sight = !known && !dirty.contains_key(&top);
                let at = if first_sight { Instant::now().checked_sub(quiet).unwrap_or_else(Instant::now) } else { Instant::now() };
                dirty.insert(top.clone(), at);
            }
            _ = tick.tick() => {
                let mut todo: Vec<PathBuf> = dirty.iter().filter(|(_, t)| t.elapsed() >= quiet).map(|(p, _)| p.clone()).collect();
                for p in &todo { dirty.remove(p); }
                if last_wait_check.elapsed() >= quiet {
                    last_wait_check = Instant::now();
                    let waiting: Vec<PathBuf> = map.lock().expect("pending lock").values()
                        .filter(|r| r.verdict == labpipe_core::Verdict::Wait).map(|r| PathBuf::from(&r.path)).collect();
                    for p in waiting { if !todo.contains(&p) && !dirty.contains_key(&p) { todo.push(p); } }
                }
                if todo.is_empty() { continue; }
                let changed = recheck(&folder, &map, todo, rig).await;
                if changed { emit(&app, &map); }
            }
        }
    }
}

/// Re-checks the given top-level entries; true when the list changed.
async fn recheck(folder: &Path, map: &PendingMap, todo: Vec<PathBuf>, rig: Option<Rig>) -> bool {
    let folder = folder.to_path_buf();
    let schema_changed = todo.iter().any(|p| {
        p.file_name()
            .is_some_and(|n| n == labpipe_core::scan::SCHEMA_FILE)
    });
    let result = tokio::task::spawn_blocking(
        move || -> AppResult<Vec<(String, Option<PendingSession>)>> {
            if schema_changed {
                let all = scan_all(&folder, rig)?;
                return Ok(all.into_iter().map(|(k, v)| (k, Some(v))).collect());
            }
            let schema = schema_for(&folder)?;
            Ok(todo
                .into_iter()
                .filter(|p| !p.is_file())
                .map(|p| {
                    let name = session_of(&p, rig);
                    if p.is_dir() {
                        (name, Some(check_one(&p, &schema, rig)))
                    } else {
                        (name, None)
                    }
                })
                .collect())
        },
    )
    .await;
    let updates = match result {
        Ok(Ok(u)) => u,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "re-check failed");
            return false;
        }
        Err(_) => return false,
    };
    let mut m = map.lock().expect("pending lock");
    let mut changed = false;
    for (name, row) in updates {
        match row {
            Some(mut row) => {
                let old = m.get(&name);
                if let Some(old) = old {
                    // The check time alone is no change worth redrawing.
                    row.checked_at = if old.same_check(&row) {
                        old.checked_at.clone()
                    } else {
                        row.checked_at
                    };
                    if old.verdict != row.verdict {
                        tracing::info!(session = %name, from = old.verdict.as_str(), to = row.verdict.as_str(), "verdict changed");
                        crate::client_log::verdict(&row, false);
                    }
                } else {
                    tracing::info!(session = %name, verdict = row.verdict.as_str(), "new session folder");
                    crate::client_log::verdict(&row, true);
                }
                if m.get(&name) != Some(&row) {
                    changed = true;
                    m.insert(name, row);
                }
            }
            None => {
                if m.remove(&name).is_some() {
                    tracing::info!(session = %name, "session folder removed");
                    changed = true;
                }
            }
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_paths_to_their_top_folder() {
        let lab = Path::new("/lab");
        assert_eq!(
            top_entry(lab, Path::new("/lab/20210301_161221/a.bin")),
            Some(PathBuf::from("/lab/20210301_161221"))
        );
        assert_eq!(
            top_entry(lab, Path::new("/lab/x")),
            Some(PathBuf::from("/lab/x"))
        );
        assert_eq!(top_entry(lab, Path::new("/lab")), None);
        assert_eq!(top_entry(lab, Path::new("/elsewhere/y")), None);
    }
}
