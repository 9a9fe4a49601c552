//! The destination folder: where each selected file goes, where its download waits until it is
//! verified, and the one step that makes a file appear under its real name.
//!
//! Layout of `DIR`:
//! - `<session>/<path>`: verified files (raw ones read-only);
//! - `.labpipe-sync/partial/<id>.part` + `<id>.json`: a download in progress and, for ranged
//!   downloads, the parts already on disk ([`PartialRecord`]);
//! - `.labpipe-sync/state.json`: what earlier runs verified ([`crate::SyncState`]);
//! - `.labpipe-sync/lock`: held by the run that writes into `DIR` ([`crate::DestinationLock`]);
//! - `labpipe-sync.json`: the record of the last run (`crate::record`).
//!
//! [`Destination::install`] is the only way into the real name: it flushes the `.part` file to
//! disk, hashes the bytes *on disk* (not the bytes received, which could differ after a torn
//! write or a full disk), renames only when they equal the catalog's SHA-256, then flushes the
//! directory entry, so after a crash a file under its real name is still a verified copy.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::remote::{FileKind, RemoteFile};
use crate::state::{LocalFile, StateEntry, STATE_DIR};
use crate::SyncError;

/// The run's record in the destination: which filter, when, which sessions and files.
pub const MANIFEST_NAME: &str = "labpipe-sync.json";
const PARTIAL_DIR: &str = "partial";

/// `<session>/<inner>`, refusing anything that could resolve outside the destination.
pub fn safe_relative(session: &str, inner: &str, key: &str) -> Result<String, SyncError> {
    let unsafe_key = |reason: &str| SyncError::UnsafeKey {
        session: session.into(),
        key: key.into(),
        reason: reason.into(),
    };
    if !component_ok(session) || session.contains('/') {
        return Err(unsafe_key("the session id is not a plain folder name"));
    }
    match unsafe_reason(inner) {
        Some(reason) => Err(unsafe_key(reason)),
        None => Ok(format!("{session}/{inner}")),
    }
}

fn component_ok(c: &str) -> bool {
    !c.is_empty() && c != "." && c != ".." && !c.contains(['\0', '\\'])
}

/// Why the relative path `rel` could land outside the destination, on a reserved name or on a
/// name some OS cannot hold; `None` when it is safe.
pub(crate) fn unsafe_reason(rel: &str) -> Option<&'static str> {
    if rel.starts_with('/') {
        Some("absolute path")
    } else if rel.split('/').any(|c| c == "..") {
        Some("'..' component")
    } else if let Some(problem) = rel.split('/').find_map(labpipe_core::file_name::problem) {
        // A name some OS cannot hold (`CON.bin`, `a\b`, `notes.`): the check refuses it on the
        // lab PC; one uploaded before that is refused here alone, so a sync means the same files
        // on every OS.
        Some(problem.reason())
    } else if !rel.split('/').all(component_ok) {
        Some("'.' component")
    } else if rel.starts_with(STATE_DIR) || rel == MANIFEST_NAME {
        Some("reserved name")
    } else {
        None
    }
}

/// The two files of one download in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PartialPaths {
    /// The bytes, at their final offsets.
    pub part: PathBuf,
    /// The [`PartialRecord`] of a ranged download.
    pub sidecar: PathBuf,
}

/// Completed ranges of one partial download, next to its `.part` file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartialRecord {
    pub key: String,
    pub sha256: String,
    pub size: u64,
    pub part_size: u64,
    pub etag: Option<String>,
    /// Indexes of the parts (of `part_size` bytes) already written.
    pub done: BTreeSet<u64>,
}

impl PartialRecord {
    /// Bytes already on disk.
    pub fn done_bytes(&self) -> u64 {
        self.done
            .iter()
            .map(|i| part_len(self.size, self.part_size, *i))
            .sum()
    }
}

/// Length of part `i` of a `size`-byte object cut into `part_size` parts.
pub(crate) fn part_len(size: u64, part_size: u64, i: u64) -> u64 {
    size.saturating_sub(i * part_size).min(part_size)
}

/// One destination folder.
#[derive(Debug, Clone)]
pub struct Destination {
    root: PathBuf,
}

impl Destination {
    pub fn new(root: impl Into<PathBuf>) -> Destination {
        Destination { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the file at relative path `rel` lives.
    pub fn target(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// The folder of the state file, the lock and partial downloads.
    pub fn state_dir(&self) -> PathBuf {
        self.root.join(STATE_DIR)
    }

    /// Creates the folders a run writes into.
    pub fn prepare(&self) -> Result<(), SyncError> {
        let partial = self.state_dir().join(PARTIAL_DIR);
        std::fs::create_dir_all(&partial).map_err(SyncError::io("create", &partial))
    }

    /// The partial-download files of `rel` (named by a hash of the path, so deep or long paths
    /// never matter).
    pub(crate) fn partial(&self, rel: &str) -> PartialPaths {
        let id = hex::encode(&Sha256::digest(rel.as_bytes())[..12]);
        let dir = self.state_dir().join(PARTIAL_DIR);
        PartialPaths {
            part: dir.join(format!("{id}.part")),
            sidecar: dir.join(format!("{id}.json")),
        }
    }

    /// The recorded progress of `rel`'s ranged download, when its `.part` file is still there.
    pub(crate) fn load_partial(&self, rel: &str) -> Option<PartialRecord> {
        let paths = self.partial(rel);
        if !paths.part.is_file() {
            return None;
        }
        serde_json::from_slice(&std::fs::read(&paths.sidecar).ok()?).ok()
    }

    /// Records which parts of a ranged download are on disk (temp + rename: a crash leaves the
    /// old record or the new one, never half of one).
    pub(crate) fn save_partial(
        &self,
        paths: &PartialPaths,
        record: &PartialRecord,
    ) -> Result<(), SyncError> {
        let tmp = paths.sidecar.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec(record).expect("record serializes"))
            .map_err(SyncError::io("write", &tmp))?;
        std::fs::rename(&tmp, &paths.sidecar).map_err(SyncError::io("rename", &paths.sidecar))
    }

    /// Forgets a download in progress (both files).
    pub(crate) fn discard_partial(&self, paths: &PartialPaths) {
        let _ = std::fs::remove_file(&paths.part);
        let _ = std::fs::remove_file(&paths.sidecar);
    }

    /// Makes a finished `.part` file `f`'s verified copy under its real name; see the module
    /// docs for the order of steps. `file` is the open `.part` file (flushed to disk here). On a
    /// checksum mismatch the `.part` file and its record are removed and nothing is renamed.
    pub(crate) async fn install(
        &self,
        f: &RemoteFile,
        file: std::fs::File,
        paths: &PartialPaths,
        etag: Option<String>,
    ) -> Result<StateEntry, SyncError> {
        let part = paths.part.clone();
        let actual = tokio::task::spawn_blocking(move || {
            file.sync_all()
                .map_err(SyncError::io("flush to disk", &part))?;
            drop(file);
            sha256_file(&part).map_err(SyncError::io("read", &part))
        })
        .await
        .expect("verify task never panics")?;
        if actual != f.sha256 {
            self.discard_partial(paths);
            return Err(SyncError::ChecksumMismatch {
                bucket: f.bucket.clone(),
                key: f.key.clone(),
                expected: f.sha256.clone(),
                actual,
            });
        }
        let target = self.target(&f.path);
        let parent = target.parent().unwrap_or(&self.root).to_path_buf();
        std::fs::create_dir_all(&parent).map_err(SyncError::io("create", &parent))?;
        if f.kind == FileKind::Raw {
            let mut perms = std::fs::metadata(&paths.part)
                .map_err(SyncError::io("read permissions of", &paths.part))?
                .permissions();
            perms.set_readonly(true);
            std::fs::set_permissions(&paths.part, perms)
                .map_err(SyncError::io("set permissions of", &paths.part))?;
        }
        std::fs::rename(&paths.part, &target).map_err(SyncError::io("rename", &target))?;
        sync_dir(&parent)?;
        let _ = std::fs::remove_file(&paths.sidecar);
        let local = LocalFile::stat(&target).ok_or_else(|| SyncError::Io {
            action: "stat",
            path: target.clone(),
            source: std::io::Error::other("file vanished after rename"),
        })?;
        Ok(StateEntry {
            bucket: f.bucket.clone(),
            key: f.key.clone(),
            etag,
            size: local.size,
            sha256: f.sha256.clone(),
            mtime_ns: local.mtime_ns,
        })
    }
}

/// Flushes a directory's entries (a rename into it) to disk. Unix only: Windows has no handle
/// on a directory to flush, and NTFS journals renames itself.
fn sync_dir(dir: &Path) -> Result<(), SyncError> {
    #[cfg(unix)]
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(SyncError::io("flush to disk", dir))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Lowercase hex SHA-256 of the file at `path`, read from disk.
pub(crate) fn sha256_file(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_stay_inside_the_destination() {
        assert_eq!(
            safe_relative("20210301_161221", "band/alpha.parquet", "k").unwrap(),
            "20210301_161221/band/alpha.parquet"
        );
        for bad in [
            "../x",
            "a/../../x",
            "/etc/passwd",
            "a//b",
            "./a",
            "a\\..\\b",
            "",
        ] {
            assert!(safe_relative("20210301_161221", bad, "k").is_err(), "{bad}");
        }
        assert!(safe_relative("..", "a", "k").is_err());
        assert!(safe_relative("a/b", "a", "k").is_err());
        assert_eq!(unsafe_reason(".labpipe-sync/lock"), Some("reserved name"));
        assert_eq!(unsafe_reason(MANIFEST_NAME), Some("reserved name"));
        // Names some OS cannot hold: the check's rule (`labpipe_core::file_name`).
        for (rel, reason) in [
            ("s/raw/CON.bin", "name reserved on Windows"),
            (
                "s/raw/a:b.bin",
                "character Windows does not allow in a name",
            ),
            ("s/raw/notes.", "name ends with a dot or space"),
            ("s/raw/tab\t.bin", "control character in a name"),
            ("s/raw/a\\b.bin", "backslash in a name"),
        ] {
            assert_eq!(unsafe_reason(rel), Some(reason), "{rel:?}");
        }
        assert_eq!(unsafe_reason("s/raw/x/rec_000.bin"), None);
    }

    fn remote(bytes: &[u8]) -> RemoteFile {
        RemoteFile {
            session: "s".into(),
            kind: FileKind::Processed,
            bucket: "b".into(),
            key: "v1/s/a.bin".into(),
            path: "s/a.bin".into(),
            size: bytes.len() as u64,
            sha256: hex::encode(Sha256::digest(bytes)),
            version: Some(1),
            version_id: None,
        }
    }

    #[tokio::test]
    async fn install_checks_the_bytes_on_disk_not_the_bytes_received() {
        let dir = tempfile::tempdir().unwrap();
        let dest = Destination::new(dir.path());
        dest.prepare().unwrap();
        let f = remote(b"expected bytes");
        let paths = dest.partial(&f.path);

        // What reached the disk differs from what the catalog says: refused, nothing renamed.
        std::fs::write(&paths.part, b"expected bytez").unwrap();
        std::fs::write(&paths.sidecar, b"{}").unwrap();
        let open = std::fs::File::open(&paths.part).unwrap();
        let err = dest.install(&f, open, &paths, None).await.unwrap_err();
        assert_eq!(err.code(), "checksum_mismatch");
        assert!(!dest.target(&f.path).exists());
        assert!(!paths.part.exists() && !paths.sidecar.exists());

        std::fs::write(&paths.part, b"expected bytes").unwrap();
        let open = std::fs::File::open(&paths.part).unwrap();
        let entry = dest
            .install(&f, open, &paths, Some("e".into()))
            .await
            .unwrap();
        assert_eq!(
            std::fs::read(dest.target(&f.path)).unwrap(),
            b"expected bytes"
        );
        assert_eq!(
            (entry.size, entry.sha256.as_str(), entry.etag.as_deref()),
            (14, f.sha256.as_str(), Some("e"))
        );
        assert!(!paths.part.exists());
    }

    #[test]
    fn part_lengths_cover_the_object_exactly() {
        let record = PartialRecord {
            key: "k".into(),
            sha256: "s".into(),
            size: 10,
            part_size: 4,
            etag: None,
            done: BTreeSet::from([0, 2]),
        };
        assert_eq!(record.done_bytes(), 4 + 2);
        assert_eq!((0..3).map(|i| part_len(10, 4, i)).sum::<u64>(), 10);
    }
}
