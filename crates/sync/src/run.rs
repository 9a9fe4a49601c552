//! One sync run into one destination: take the folder's lock, plan every selected file, fetch
//! what the plan says in parallel, keep the state file current, write the run's record — and
//! report each step as a [`SyncEvent`]. Deciding lives in [`crate::plan`], downloading in
//! [`crate::fetch`], the folder's layout in [`crate::destination`]; this module only sequences
//! them.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::destination::Destination;
use crate::event::EventSink;
use crate::fetch::Fetcher;
use crate::lock::DestinationLock;
use crate::plan::{plan_file, FetchMode, FileAction, OnDisk, Planning};
use crate::record::write_run_record;
use crate::remote::RemoteFile;
use crate::select::Selection;
use crate::state::{LocalFile, SyncState};
use crate::{SyncError, SyncEvent, SyncSummary};
use labpipe_core::digest::sha256_file;

/// How often the state file is rewritten during a run (it is always written at the end).
const STATE_SAVE_EVERY: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// Requests (whole small files or parts of large ones) in flight at once.
    pub concurrency: usize,
    /// Files larger than this are fetched in ranged parts of this size.
    pub part_size: u64,
    /// Re-hash every local file, even those the state file says are current.
    pub verify: bool,
    /// Report what would be transferred; write nothing (and take no lock).
    pub dry_run: bool,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            concurrency: 16,
            part_size: 8 * 1024 * 1024,
            verify: false,
            dry_run: false,
        }
    }
}

/// One sync run into one destination folder.
pub struct SyncRun {
    fetcher: Arc<Fetcher>,
    opts: SyncOptions,
}

/// A file the plan says to download, and how.
struct Download<'a> {
    file: &'a RemoteFile,
    mode: FetchMode,
}

impl SyncRun {
    pub fn new(
        s3: aws_sdk_s3::Client,
        dest: impl Into<PathBuf>,
        opts: SyncOptions,
        events: Option<UnboundedSender<SyncEvent>>,
    ) -> SyncRun {
        let concurrency = opts.concurrency.max(1);
        SyncRun {
            fetcher: Arc::new(Fetcher {
                s3,
                dest: Destination::new(dest),
                requests: Arc::new(Semaphore::new(concurrency)),
                events: EventSink(events),
                part_size: opts.part_size,
                workers: concurrency,
            }),
            opts,
        }
    }

    fn planning(&self) -> Planning {
        Planning {
            verify: self.opts.verify,
            part_size: self.opts.part_size,
        }
    }

    /// Brings the destination in line with `selection`. Refuses with [`SyncError::Busy`] when
    /// another run holds the destination. Per-file failures do not stop the run: they are
    /// reported as [`SyncEvent::FileFailed`] and counted in the summary (`files_failed`,
    /// `first_error`); [`SyncError::Incomplete`] is left to the caller.
    pub async fn run(&self, selection: &Selection, filter: &str) -> Result<SyncSummary, SyncError> {
        let started = Instant::now();
        let fetcher = &self.fetcher;
        let dest = &fetcher.dest;
        let events = &fetcher.events;
        // Held to the end of the run (the state file and the run record are written under it).
        let _lock = if self.opts.dry_run {
            None
        } else {
            let lock = DestinationLock::acquire(dest.root(), &dest.state_dir())?;
            dest.prepare()?;
            Some(lock)
        };
        let mut state = SyncState::load(dest.root());
        let actions = self.plan(selection, &state).await;

        let mut summary = SyncSummary {
            sessions: selection.sessions.len(),
            files: selection.files.len() + selection.refused.len(),
            bytes_total: selection.bytes(),
            dry_run: self.opts.dry_run,
            ..SyncSummary::default()
        };
        for u in &selection.unprocessed {
            events.emit(SyncEvent::SessionNotProcessed {
                session: u.session.clone(),
                status: u.status.as_str().to_string(),
            });
        }
        let mut downloads = Vec::new();
        let mut failed: Vec<String> = Vec::new();
        let mut kept = Vec::new();
        // Keys that are not safe names: not delivered, the rest of the selection is.
        for r in &selection.refused {
            summary.files_failed += 1;
            events.emit(SyncEvent::FileFailed {
                path: r.path.clone(),
                uri: r.uri.clone(),
                code: "unsafe_key",
                reason: r.reason.clone(),
            });
            failed.push(format!("{}: {}", r.path, r.reason));
        }
        for (f, action) in selection.files.iter().zip(actions) {
            match action {
                FileAction::Fetch { mode, .. } => downloads.push(Download { file: f, mode }),
                FileAction::Keep { reason, record } => kept.push((f, reason, record)),
                FileAction::Hash => unreachable!("planning ends with every hash taken"),
                FileAction::Refuse { reason } => {
                    let e = SyncError::UnsafeKey {
                        session: f.session.clone(),
                        key: f.key.clone(),
                        reason: reason.into(),
                    };
                    summary.files_failed += 1;
                    events.emit(SyncEvent::FileFailed {
                        path: f.path.clone(),
                        uri: f.uri(),
                        code: e.code(),
                        reason: e.to_string(),
                    });
                    failed.push(format!("{}: {e}", f.path));
                }
            }
        }
        events.emit(SyncEvent::Plan {
            sessions: summary.sessions,
            files: summary.files,
            bytes: summary.bytes_total,
            files_to_transfer: downloads.len(),
            bytes_to_transfer: downloads.iter().map(|d| d.file.size).sum(),
        });
        for (f, reason, record) in kept {
            summary.files_skipped += 1;
            if let Some(e) = record {
                state.files.insert(f.path.clone(), e);
            }
            events.emit(SyncEvent::FileSkipped {
                path: f.path.clone(),
                reason: reason.as_str(),
            });
        }
        if self.opts.dry_run {
            for d in &downloads {
                events.emit(SyncEvent::FileWouldTransfer {
                    path: d.file.path.clone(),
                    uri: d.file.uri(),
                    bytes: d.file.size,
                });
            }
            summary.files_transferred = downloads.len();
            summary.first_error = failed.into_iter().next();
            summary.seconds = started.elapsed().as_secs_f64();
            return Ok(summary);
        }

        // Files in flight: enough to keep every request slot busy with small files, bounded so
        // thousands of files never hold thousands of open handles.
        let files_in_flight = Arc::new(Semaphore::new(self.opts.concurrency.max(1) * 2));
        let mut tasks = JoinSet::new();
        for d in downloads {
            let (fetcher, f, mode, gate) = (
                self.fetcher.clone(),
                d.file.clone(),
                d.mode,
                files_in_flight.clone(),
            );
            tasks.spawn(async move {
                let _slot = gate.acquire_owned().await.expect("semaphore never closed");
                let result = fetcher.fetch(&f, mode).await;
                (f, result)
            });
        }
        let mut last_save = Instant::now();
        while let Some(joined) = tasks.join_next().await {
            let (f, result) = joined.expect("download task never panics");
            match result {
                Ok(done) => {
                    summary.files_transferred += 1;
                    summary.bytes_transferred += done.transferred;
                    summary.bytes_resumed += done.resumed;
                    events.emit(SyncEvent::FileDone {
                        path: f.path.clone(),
                        bytes: f.size,
                        transferred: done.transferred,
                        sha256: f.sha256.clone(),
                    });
                    state.files.insert(f.path.clone(), done.entry);
                }
                Err(e) => {
                    summary.files_failed += 1;
                    tracing::warn!(path = %f.path, error = %e, "file not synced");
                    events.emit(SyncEvent::FileFailed {
                        path: f.path.clone(),
                        uri: f.uri(),
                        code: e.code(),
                        reason: e.to_string(),
                    });
                    failed.push(format!("{}: {e}", f.path));
                }
            }
            if last_save.elapsed() >= STATE_SAVE_EVERY {
                state.save(dest.root())?;
                last_save = Instant::now();
            }
        }
        state.save(dest.root())?;
        write_run_record(dest, selection, filter, failed.is_empty())?;
        summary.first_error = failed.into_iter().next();
        summary.seconds = started.elapsed().as_secs_f64();
        Ok(summary)
    }

    /// Plans every file; the files the planner wants hashed are hashed in parallel (a bounded
    /// pool) and planned again with their hash. A file that cannot be read counts as absent.
    async fn plan(&self, selection: &Selection, state: &SyncState) -> Vec<FileAction> {
        let dest = &self.fetcher.dest;
        let planning = self.planning();
        let mut actions = Vec::with_capacity(selection.files.len());
        let mut hashing = JoinSet::new();
        let gate = Arc::new(Semaphore::new(self.opts.concurrency.clamp(1, 8)));
        for (i, f) in selection.files.iter().enumerate() {
            let target = dest.target(&f.path);
            let on_disk = OnDisk {
                file: LocalFile::stat(&target),
                sha256: None,
                partial: (f.size > planning.part_size)
                    .then(|| dest.load_partial(&f.path))
                    .flatten(),
            };
            let action = plan_file(f, state.files.get(&f.path), &on_disk, planning);
            if action == FileAction::Hash {
                let gate = gate.clone();
                hashing.spawn(async move {
                    let _slot = gate.acquire_owned().await.expect("semaphore never closed");
                    let on_disk = tokio::task::spawn_blocking(move || match sha256_file(&target) {
                        Ok((_, sha)) => OnDisk {
                            file: LocalFile::stat(&target),
                            sha256: Some(sha),
                            ..on_disk
                        },
                        Err(_) => OnDisk {
                            file: None,
                            ..on_disk
                        },
                    })
                    .await
                    .expect("hash task never panics");
                    (i, on_disk)
                });
            }
            actions.push(action);
        }
        while let Some(joined) = hashing.join_next().await {
            let (i, on_disk) = joined.expect("hash task never panics");
            let f = &selection.files[i];
            actions[i] = plan_file(f, state.files.get(&f.path), &on_disk, planning);
        }
        actions
    }
}
