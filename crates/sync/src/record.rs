//! `DIR/labpipe-sync.json`: what the folder was synced from — the filter, when, the sessions with
//! their metadata, and every file with its SHA-256 — for the researcher, and to reproduce the
//! selection later.

use chrono::Utc;
use serde::Serialize;

use crate::destination::{Destination, MANIFEST_NAME};
use crate::remote::FileKind;
use crate::select::Selection;
use crate::SyncError;

const MANIFEST_FORMAT: &str = "labpipe-sync/1";

#[derive(Serialize)]
struct RecordSession<'a> {
    session: &'a str,
    recorded_at: String,
    status: &'a str,
    pipeline_version: Option<u32>,
    metadata: &'a labpipe_core::Metadata,
}

#[derive(Serialize)]
struct RecordFile<'a> {
    path: &'a str,
    uri: String,
    kind: FileKind,
    size: u64,
    sha256: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<u32>,
}

/// Writes the record of a run (temp + rename); `complete` is false when a file failed.
pub(crate) fn write_run_record(
    dest: &Destination,
    selection: &Selection,
    filter: &str,
    complete: bool,
) -> Result<(), SyncError> {
    let doc = serde_json::json!({
        "format": MANIFEST_FORMAT,
        "filter": filter,
        "synced_at": labpipe_catalog::format_utc(Utc::now()),
        "complete": complete,
        "sessions": selection.sessions.iter().map(|s| RecordSession {
            session: &s.session,
            recorded_at: s.recorded_at.format("%Y-%m-%dT%H:%M:%S").to_string(),
            status: s.status.as_str(),
            pipeline_version: s.pipeline_version,
            metadata: &s.metadata,
        }).collect::<Vec<_>>(),
        "not_processed": selection.unprocessed,
        "files": selection.files.iter().map(|f| RecordFile {
            path: &f.path, uri: f.uri(), kind: f.kind, size: f.size, sha256: &f.sha256, version: f.version,
        }).collect::<Vec<_>>(),
    });
    let path = dest.target(MANIFEST_NAME);
    let tmp = dest.state_dir().join(format!("{MANIFEST_NAME}.tmp"));
    std::fs::write(
        &tmp,
        serde_json::to_vec_pretty(&doc).expect("manifest serializes"),
    )
    .map_err(SyncError::io("write", &tmp))?;
    std::fs::rename(&tmp, &path).map_err(SyncError::io("write", &path))
}
