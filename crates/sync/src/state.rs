//! What earlier runs left in the destination, so a re-run transfers only what is missing or
//! changed without listing the bucket or re-reading every local byte.
//!
//! `DIR/.labpipe-sync/state.json` records, per synced file, the object it came from (key, ETag),
//! its size and SHA-256, and the size and modification time the file had when it was verified.
//! A file whose size and mtime still match is trusted; anything else is re-checked (hashed) and,
//! if wrong, downloaded again. `--verify` re-hashes every file regardless.
//!
//! The file is rewritten atomically (temp + rename) and only ever as a whole; losing it costs a
//! re-hash of the local files, never a wrong file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};

use crate::SyncError;

/// Folder (inside the destination) holding the state file and partial downloads.
pub const STATE_DIR: &str = ".labpipe-sync";
const STATE_FILE: &str = "state.json";
const STATE_FORMAT: &str = "labpipe-sync-state/1";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateEntry {
    pub bucket: String,
    pub key: String,
    #[serde(default)]
    pub etag: Option<String>,
    pub size: u64,
    pub sha256: String,
    /// Local modification time (nanoseconds since the epoch) when the file was verified.
    pub mtime_ns: i128,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncState {
    pub format: String,
    /// By path relative to the destination.
    pub files: BTreeMap<String, StateEntry>,
}

/// What a local file looks like without reading it: its size and modification time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalFile {
    pub size: u64,
    /// Nanoseconds since the epoch.
    pub mtime_ns: i128,
}

impl LocalFile {
    /// Size and modification time of the regular file at `path`; `None` when there is none.
    pub fn stat(path: &Path) -> Option<LocalFile> {
        let meta = std::fs::metadata(path).ok()?;
        if !meta.is_file() {
            return None;
        }
        let mtime = meta.modified().ok()?;
        let mtime_ns = match mtime.duration_since(UNIX_EPOCH) {
            Ok(d) => d.as_nanos() as i128,
            Err(e) => -(e.duration().as_nanos() as i128),
        };
        Some(LocalFile {
            size: meta.len(),
            mtime_ns,
        })
    }
}

impl SyncState {
    pub fn path(dest: &Path) -> PathBuf {
        dest.join(STATE_DIR).join(STATE_FILE)
    }

    /// The state of `dest`; empty when there is none or it is unreadable (then files are
    /// re-checked by hashing, which is slow but never wrong).
    pub fn load(dest: &Path) -> SyncState {
        let empty = SyncState {
            format: STATE_FORMAT.into(),
            files: BTreeMap::new(),
        };
        match std::fs::read(Self::path(dest)) {
            Ok(bytes) => match serde_json::from_slice::<SyncState>(&bytes) {
                Ok(s) if s.format == STATE_FORMAT => s,
                _ => {
                    tracing::warn!(dest = %dest.display(), "sync state unreadable; local files will be re-checked");
                    empty
                }
            },
            Err(_) => empty,
        }
    }

    pub fn save(&self, dest: &Path) -> Result<(), SyncError> {
        let path = Self::path(dest);
        let dir = path.parent().expect("state path has a parent");
        std::fs::create_dir_all(dir).map_err(SyncError::io("create", dir))?;
        let tmp = dir.join(format!("{STATE_FILE}.tmp"));
        let text = serde_json::to_vec_pretty(self).expect("state serializes");
        std::fs::write(&tmp, text).map_err(SyncError::io("write", &tmp))?;
        std::fs::rename(&tmp, &path).map_err(SyncError::io("rename", &path))
    }

    /// True when the recorded entry still describes the local file exactly (same object, same
    /// expected content, same size and mtime on disk).
    pub fn is_current(&self, rel: &str, key: &str, sha256: &str, local: Option<LocalFile>) -> bool {
        self.files
            .get(rel)
            .is_some_and(|e| e.describes(key, sha256, local))
    }
}

impl StateEntry {
    /// True when this record vouches for `local` as a copy of `key` with content `sha256`.
    pub fn describes(&self, key: &str, sha256: &str, local: Option<LocalFile>) -> bool {
        local.is_some_and(|l| {
            self.key == key
                && self.sha256 == sha256
                && self.size == l.size
                && self.mtime_ns == l.mtime_ns
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_and_tracks_changes() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.bin");
        std::fs::write(&file, b"abc").unwrap();
        let mut st = SyncState::load(dir.path());
        assert!(st.files.is_empty());
        let local = LocalFile::stat(&file);
        st.files.insert(
            "a.bin".into(),
            StateEntry {
                bucket: "b".into(),
                key: "k".into(),
                etag: None,
                size: 3,
                sha256: "s".into(),
                mtime_ns: local.unwrap().mtime_ns,
            },
        );
        st.save(dir.path()).unwrap();
        let back = SyncState::load(dir.path());
        assert_eq!(back, st);
        assert!(back.is_current("a.bin", "k", "s", LocalFile::stat(&file)));
        assert!(!back.is_current("a.bin", "k", "other", LocalFile::stat(&file)));
        std::fs::write(&file, b"abcd").unwrap();
        assert!(!back.is_current("a.bin", "k", "s", LocalFile::stat(&file)));
        std::fs::remove_file(&file).unwrap();
        assert!(!back.is_current("a.bin", "k", "s", LocalFile::stat(&file)));
    }
}
