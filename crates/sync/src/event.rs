//! What a sync reports while it runs. The CLI draws a progress bar from these or prints them as
//! JSON lines (`--json`, one object per line, `event` names the kind; stable, see the README);
//! transfer accounting stays out of the transfer code.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum SyncEvent {
    /// What the run will do, after comparing the selection with the destination.
    Plan {
        sessions: usize,
        files: usize,
        bytes: u64,
        files_to_transfer: usize,
        bytes_to_transfer: u64,
    },
    /// A matching session without outputs of the requested pipeline version (not synced).
    SessionNotProcessed { session: String, status: String },
    /// The local copy is already right.
    FileSkipped { path: String, reason: &'static str },
    /// `--dry-run`: this file would be downloaded.
    FileWouldTransfer {
        path: String,
        uri: String,
        bytes: u64,
    },
    /// A download started; `resumed_bytes` were already on disk from an interrupted run.
    FileStarted {
        path: String,
        bytes: u64,
        resumed_bytes: u64,
    },
    /// Bytes received (for progress bars; not printed by `--json`).
    Progress { bytes: u64 },
    /// The file was downloaded, verified against the catalog's SHA-256 and moved into place.
    FileDone {
        path: String,
        bytes: u64,
        transferred: u64,
        sha256: String,
    },
    /// The file could not be synced; nothing was written under its name.
    FileFailed {
        path: String,
        uri: String,
        code: &'static str,
        reason: String,
    },
}

/// The result of a run; also the last line of `--json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SyncSummary {
    pub sessions: usize,
    pub files: usize,
    pub files_transferred: usize,
    pub files_skipped: usize,
    pub files_failed: usize,
    pub bytes_total: u64,
    /// Bytes received over the network in this run.
    pub bytes_transferred: u64,
    /// Bytes of partial downloads continued from an earlier run.
    pub bytes_resumed: u64,
    pub seconds: f64,
    pub dry_run: bool,
    /// The first per-file failure, when `files_failed > 0`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
}

/// Where a run sends its events; nowhere when the caller did not ask for them.
#[derive(Debug, Clone, Default)]
pub(crate) struct EventSink(pub Option<tokio::sync::mpsc::UnboundedSender<SyncEvent>>);

impl EventSink {
    pub fn emit(&self, event: SyncEvent) {
        if let Some(tx) = &self.0 {
            let _ = tx.send(event);
        }
    }
}
