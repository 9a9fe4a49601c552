//! Reproducible datasets: the exact object versions a finished sync holds, written to a file
//! (`labpipe sync --save-snapshot FILE`), and turned back into a selection that fetches exactly
//! those versions (`labpipe sync --snapshot FILE --dest DIR`), even after the objects were
//! overwritten by a re-run of preprocessing.
//!
//! Which version a synced file came from is proven, not guessed: the state file records the ETag
//! of the object whose bytes were hashed to the catalog's SHA-256 when the file was installed; a
//! HEAD of the current object must show that same ETag, and its version id is then the one
//! recorded. If the object changed since, the save refuses (sync again first). A restore GETs
//! each object by version id and installs it only when its bytes hash to the recorded SHA-256,
//! like any sync.
//!
//! The buckets are versioned (`infra/template.yaml`), so an overwritten object's older version
//! stays readable by id — in the processed bucket until its noncurrent-version expiry (90 days),
//! in the raw bucket for good. An unversioned bucket answers without a version id; such files are
//! recorded without one, and the CLI says that they cannot be brought back once overwritten.

use std::path::Path;

use labpipe_catalog::SessionItem;
use serde::{Deserialize, Serialize};

use crate::remote::{FileKind, RemoteFile};
use crate::s3::s3_error;
use crate::select::Selection;
use crate::state::SyncState;
use crate::SyncError;

/// The snapshot layout written by this version.
pub const SNAPSHOT_FORMAT: &str = "labpipe-snapshot/1";

/// One file of a snapshot: where it goes, the exact object version, and what its bytes are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotFile {
    pub session: String,
    pub kind: FileKind,
    /// Relative to the destination folder.
    pub path: String,
    pub bucket: String,
    pub key: String,
    /// The S3 object version; `None` when the bucket is not versioned.
    pub version_id: Option<String>,
    pub etag: Option<String>,
    pub size: u64,
    pub sha256: String,
    /// Pipeline version of a processed file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline_version: Option<u32>,
}

/// A saved dataset: the filter that selected it, the sessions' catalog entries as they were, and
/// every file by object version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub format: String,
    pub created_at: String,
    pub filter: String,
    pub sessions: Vec<SessionItem>,
    pub files: Vec<SnapshotFile>,
}

impl Snapshot {
    /// The snapshot of `selection` as synced into `dest` by a complete run: each file's version
    /// is the current object's, provided its ETag is the one recorded when the file was
    /// verified and installed.
    pub async fn of_sync(
        s3: &aws_sdk_s3::Client,
        dest: &Path,
        selection: &Selection,
        filter: &str,
    ) -> Result<Snapshot, SyncError> {
        let state = SyncState::load(dest);
        let mut files = Vec::with_capacity(selection.files.len());
        for f in &selection.files {
            let refuse = |reason: String| SyncError::Snapshot {
                path: dest.join(&f.path),
                reason,
            };
            let Some(entry) = state.files.get(&f.path) else {
                return Err(refuse(
                    "not recorded as synced in this folder; run the same sync again, then save the snapshot".into(),
                ));
            };
            if entry.sha256 != f.sha256 || entry.key != f.key || entry.bucket != f.bucket {
                return Err(refuse(format!(
                    "the synced file is not the catalog's s3://{}/{} (SHA-256 {}); run the sync again",
                    f.bucket, f.key, f.sha256
                )));
            }
            let head = s3
                .head_object()
                .bucket(&f.bucket)
                .key(&f.key)
                .send()
                .await
                .map_err(|e| s3_error(&f.bucket, &f.key, e))?;
            let etag = head.e_tag().map(str::to_string);
            if entry.etag.is_none() || etag != entry.etag {
                return Err(refuse(format!(
                    "s3://{}/{} changed since it was synced (ETag {} then, {} now); run the sync again, then save the snapshot",
                    f.bucket,
                    f.key,
                    entry.etag.as_deref().unwrap_or("not recorded"),
                    etag.as_deref().unwrap_or("none")
                )));
            }
            // S3 answers "null" for an object written while versioning was off.
            let version_id = head
                .version_id()
                .filter(|v| !v.is_empty() && *v != "null")
                .map(str::to_string);
            files.push(SnapshotFile {
                session: f.session.clone(),
                kind: f.kind,
                path: f.path.clone(),
                bucket: f.bucket.clone(),
                key: f.key.clone(),
                version_id,
                etag,
                size: f.size,
                sha256: f.sha256.clone(),
                pipeline_version: f.version,
            });
        }
        Ok(Snapshot {
            format: SNAPSHOT_FORMAT.into(),
            created_at: labpipe_catalog::format_utc(chrono::Utc::now()),
            filter: filter.to_string(),
            sessions: selection.sessions.clone(),
            files,
        })
    }

    /// Files recorded without a version id (their bucket is not versioned).
    pub fn unversioned(&self) -> usize {
        self.files.iter().filter(|f| f.version_id.is_none()).count()
    }

    /// Writes the snapshot (temp file + rename, so a reader never sees half of one).
    pub fn save(&self, path: &Path) -> Result<(), SyncError> {
        let tmp = path.with_extension("tmp-labpipe");
        let bytes = serde_json::to_vec_pretty(self).expect("snapshot serializes");
        std::fs::write(&tmp, bytes).map_err(SyncError::io("write", &tmp))?;
        std::fs::rename(&tmp, path).map_err(SyncError::io("write", path))
    }

    /// Reads a snapshot, refusing another format and any unsafe destination path.
    pub fn load(path: &Path) -> Result<Snapshot, SyncError> {
        let bad = |reason: String| SyncError::Snapshot {
            path: path.to_path_buf(),
            reason,
        };
        let bytes = std::fs::read(path)
            .map_err(|e| bad(format!("cannot be read ({e}); check the path")))?;
        let snap: Snapshot = serde_json::from_slice(&bytes).map_err(|e| {
            bad(format!(
                "is not a {SNAPSHOT_FORMAT} file ({e}); give a file written by `labpipe sync --save-snapshot`"
            ))
        })?;
        if snap.format != SNAPSHOT_FORMAT {
            return Err(bad(format!(
                "has format '{}', this labpipe reads {SNAPSHOT_FORMAT}; update labpipe",
                snap.format
            )));
        }
        for f in &snap.files {
            if let Some(reason) = crate::destination::unsafe_reason(&f.path) {
                return Err(bad(format!(
                    "file path '{}' is unsafe ({reason}); the snapshot was edited or damaged",
                    f.path
                )));
            }
        }
        Ok(snap)
    }

    /// The selection that fetches exactly these object versions.
    pub fn selection(&self) -> Selection {
        Selection {
            sessions: self.sessions.clone(),
            files: self
                .files
                .iter()
                .map(|f| RemoteFile {
                    session: f.session.clone(),
                    kind: f.kind,
                    bucket: f.bucket.clone(),
                    key: f.key.clone(),
                    path: f.path.clone(),
                    size: f.size,
                    sha256: f.sha256.clone(),
                    version: f.pipeline_version,
                    version_id: f.version_id.clone(),
                })
                .collect(),
            unprocessed: Vec::new(),
            refused: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(path: &str) -> Snapshot {
        Snapshot {
            format: SNAPSHOT_FORMAT.into(),
            created_at: "2026-12-01T00:00:00Z".into(),
            filter: "fatigue > 3".into(),
            sessions: Vec::new(),
            files: vec![SnapshotFile {
                session: "20210301_090000".into(),
                kind: FileKind::Processed,
                path: path.into(),
                bucket: "b".into(),
                key: "v1/20210301_090000/a.bin".into(),
                version_id: Some("v-1".into()),
                etag: Some("\"e\"".into()),
                size: 3,
                sha256: "abc".into(),
                pipeline_version: Some(1),
            }],
        }
    }

    #[test]
    fn a_saved_snapshot_reads_back_into_the_same_versions() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("snap.json");
        let snap = snapshot("20210301_090000/a.bin");
        snap.save(&file).unwrap();
        let back = Snapshot::load(&file).unwrap();
        assert_eq!(back, snap);
        let sel = back.selection();
        assert_eq!(sel.files[0].version_id.as_deref(), Some("v-1"));
        assert_eq!(sel.files[0].path, "20210301_090000/a.bin");
        assert_eq!(back.unversioned(), 0);
    }

    #[test]
    fn unsafe_paths_and_other_formats_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("snap.json");
        snapshot("../../etc/passwd").save(&file).unwrap();
        let e = Snapshot::load(&file).unwrap_err().to_string();
        assert!(e.contains("unsafe"), "{e}");
        let mut other = snapshot("s/a.bin");
        other.format = "labpipe-snapshot/9".into();
        other.save(&file).unwrap();
        let e = Snapshot::load(&file).unwrap_err().to_string();
        assert!(e.contains("update labpipe"), "{e}");
        std::fs::write(&file, b"{").unwrap();
        let e = Snapshot::load(&file).unwrap_err().to_string();
        assert!(e.contains("--save-snapshot"), "{e}");
    }
}
