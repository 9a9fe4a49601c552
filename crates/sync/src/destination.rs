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
//! [`Destination::install`] is the only way into the real name. The SHA-256 is taken of the
//! bytes as they are written into the `.part` file, in file order ([`Written`] for a whole file,
//! [`PartHasher`] for ranged parts that finish in any order; parts an interrupted run left on
//! disk are read back from disk once, when their turn comes), so no byte is read twice. `install`
//! then flushes the file to disk (a write the disk did not take — full disk, I/O error — fails
//! here), checks its length, renames it only when the hash equals the catalog's SHA-256, and
//! flushes the directory entry: after a crash a file under its real name is still a verified
//! copy. What this gives up against reading the file back after the flush is written down in
//! `docs/components.md` (*What a synced file's name guarantees*): the read-back hashed the page
//! cache, not the platter, so it only caught memory corruption between our write and the read,
//! a writer other than us, and bugs in our own offsets (which the end-to-end tests compare byte
//! for byte).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
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
    /// docs for the order of steps. `written` is the open `.part` file and the SHA-256 of the
    /// bytes written into it (flushed to disk here). On a checksum or length mismatch the `.part`
    /// file and its record are removed and nothing is renamed.
    pub(crate) async fn install(
        &self,
        f: &RemoteFile,
        written: Written,
        paths: &PartialPaths,
        etag: Option<String>,
    ) -> Result<StateEntry, SyncError> {
        let (dest, f2, paths2) = (self.clone(), f.clone(), paths.clone());
        tokio::task::spawn_blocking(move || dest.install_blocking(&f2, written, &paths2, etag))
            .await
            .expect("install task never panics")
    }

    fn install_blocking(
        &self,
        f: &RemoteFile,
        written: Written,
        paths: &PartialPaths,
        etag: Option<String>,
    ) -> Result<StateEntry, SyncError> {
        let Written { file, sha256 } = written;
        file.sync_all()
            .map_err(SyncError::io("flush to disk", &paths.part))?;
        let len = file
            .metadata()
            .map_err(SyncError::io("stat", &paths.part))?
            .len();
        drop(file);
        if len != f.size {
            self.discard_partial(paths);
            return Err(SyncError::Io {
                action: "check the length of",
                path: paths.part.clone(),
                source: std::io::Error::other(format!(
                    "{len} bytes on disk after writing {}; another program may have changed \
                     it — run the sync again",
                    f.size
                )),
            });
        }
        if !sha256.eq_ignore_ascii_case(&f.sha256) {
            self.discard_partial(paths);
            return Err(SyncError::ChecksumMismatch {
                bucket: f.bucket.clone(),
                key: f.key.clone(),
                expected: f.sha256.clone(),
                actual: sha256,
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

/// A `.part` file whose bytes have all been written, and the SHA-256 of those bytes in file
/// order — what [`Destination::install`] compares with the catalog.
pub(crate) struct Written {
    pub file: File,
    pub sha256: String,
}

impl Written {
    /// Creates (or truncates) `path`, writes `segments` into it in order and hashes them as they
    /// go: one pass over the bytes of a whole-file download.
    pub(crate) fn whole(path: &Path, segments: &[impl AsRef<[u8]>]) -> std::io::Result<Written> {
        use std::io::Write;
        let mut file = File::create(path)?;
        let mut hasher = Sha256::new();
        for s in segments {
            file.write_all(s.as_ref())?;
            hasher.update(s.as_ref());
        }
        Ok(Written {
            file,
            sha256: hex::encode(hasher.finalize()),
        })
    }
}

/// The SHA-256 of a file written in parts of `part_size` bytes that finish in any order.
///
/// A part's bytes are hashed as soon as every part before it has been: parts received in this
/// run are handed in with [`PartHasher::add`] (and kept, with whatever `T` holds for them — the
/// request slot, so parts waiting here count against the run's memory bound — until their turn);
/// parts an interrupted run left on disk (`on_disk`) are read back from the `.part` file once,
/// when their turn comes. So each byte is hashed once, in file order, and the bytes of resumed
/// parts are the bytes on disk.
pub(crate) struct PartHasher<T> {
    hasher: Sha256,
    size: u64,
    part_size: u64,
    /// The next part to hash.
    next: u64,
    on_disk: BTreeSet<u64>,
    waiting: BTreeMap<u64, (Vec<bytes::Bytes>, T)>,
}

impl<T> PartHasher<T> {
    pub(crate) fn new(size: u64, part_size: u64, on_disk: BTreeSet<u64>) -> PartHasher<T> {
        PartHasher {
            hasher: Sha256::new(),
            size,
            part_size: part_size.max(1),
            next: 0,
            on_disk,
            waiting: BTreeMap::new(),
        }
    }

    fn parts(&self) -> u64 {
        self.size.div_ceil(self.part_size)
    }

    /// Parts received but not yet hashed (a part before them is still on its way).
    pub(crate) fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Part `index`'s bytes, as written at its offset.
    pub(crate) fn add(&mut self, index: u64, segments: Vec<bytes::Bytes>, held: T) {
        self.waiting.insert(index, (segments, held));
    }

    /// Hashes every part that is now next in file order: received ones, and resumed ones read
    /// from `file`. Stops at the first part still on its way.
    pub(crate) fn advance(&mut self, file: &File) -> std::io::Result<()> {
        let mut buf = Vec::new();
        while self.next < self.parts() {
            if let Some((segments, _held)) = self.waiting.remove(&self.next) {
                for s in &segments {
                    self.hasher.update(s);
                }
            } else if self.on_disk.contains(&self.next) {
                let len = part_len(self.size, self.part_size, self.next) as usize;
                buf.resize(len, 0);
                read_at(file, &mut buf, self.next * self.part_size)?;
                self.hasher.update(&buf);
            } else {
                break;
            }
            self.next += 1;
        }
        Ok(())
    }

    /// The hash of the whole file, once every part has been hashed; `None` while one is missing.
    pub(crate) fn finish(self) -> Option<String> {
        (self.next == self.parts()).then(|| hex::encode(self.hasher.finalize()))
    }
}

/// Fills `buf` from `offset` without moving a shared cursor.
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileExt;
        file.read_exact_at(buf, offset)
    }
    #[cfg(windows)]
    {
        use std::os::windows::fs::FileExt;
        let mut read = 0;
        while read < buf.len() {
            match file.seek_read(&mut buf[read..], offset + read as u64)? {
                0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                n => read += n,
            }
        }
        Ok(())
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
    async fn install_renames_only_bytes_written_that_hash_to_the_catalog_sha256() {
        let dir = tempfile::tempdir().unwrap();
        let dest = Destination::new(dir.path());
        dest.prepare().unwrap();
        let f = remote(b"expected bytes");
        let paths = dest.partial(&f.path);

        // What was written differs from what the catalog says: refused, nothing renamed.
        let written = Written::whole(&paths.part, &[&b"expected "[..], &b"bytez"[..]]).unwrap();
        std::fs::write(&paths.sidecar, b"{}").unwrap();
        let err = dest.install(&f, written, &paths, None).await.unwrap_err();
        assert_eq!(err.code(), "checksum_mismatch");
        assert!(!dest.target(&f.path).exists());
        assert!(!paths.part.exists() && !paths.sidecar.exists());

        // The hash is of the bytes written, segment after segment, in order.
        let written = Written::whole(&paths.part, &[&b"expected "[..], &b"bytes"[..]]).unwrap();
        assert_eq!(written.sha256, f.sha256);
        let entry = dest
            .install(&f, written, &paths, Some("e".into()))
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

    #[tokio::test]
    async fn install_refuses_a_part_file_whose_length_changed_after_writing() {
        let dir = tempfile::tempdir().unwrap();
        let dest = Destination::new(dir.path());
        dest.prepare().unwrap();
        let f = remote(b"expected bytes");
        let paths = dest.partial(&f.path);
        let written = Written::whole(&paths.part, &[b"expected bytes"]).unwrap();
        // Someone appends to the `.part` file between the write and the rename.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&paths.part)
            .and_then(|mut p| std::io::Write::write_all(&mut p, b"!"))
            .unwrap();
        let err = dest.install(&f, written, &paths, None).await.unwrap_err();
        assert_eq!(err.code(), "io");
        assert!(
            err.to_string()
                .contains("15 bytes on disk after writing 14"),
            "{err}"
        );
        assert!(!dest.target(&f.path).exists() && !paths.part.exists());
    }

    /// A file of `size` bytes cut in parts of 4, its bytes, and a `.part` file holding them.
    fn parted(size: usize) -> (tempfile::TempDir, File, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let bytes: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
        let path = dir.path().join("f.part");
        std::fs::write(&path, &bytes).unwrap();
        (dir, File::open(&path).unwrap(), bytes)
    }

    fn part(bytes: &[u8], i: u64) -> Vec<bytes::Bytes> {
        let (start, len) = (i as usize * 4, part_len(bytes.len() as u64, 4, i) as usize);
        // Two segments per part, as a body arrives in chunks.
        let (a, b) = bytes[start..start + len].split_at(len / 2);
        vec![
            bytes::Bytes::copy_from_slice(a),
            bytes::Bytes::copy_from_slice(b),
        ]
    }

    #[test]
    fn parts_finishing_in_any_order_hash_to_the_whole_file() {
        let (_dir, file, bytes) = parted(18); // parts 0..=4, the last one 2 bytes
        let whole = hex::encode(Sha256::digest(&bytes));
        for order in [[0, 1, 2, 3, 4], [4, 3, 2, 1, 0], [2, 0, 4, 1, 3]] {
            let mut h = PartHasher::new(18, 4, BTreeSet::new());
            for i in order {
                h.add(i, part(&bytes, i), ());
                h.advance(&file).unwrap();
            }
            assert_eq!(h.waiting(), 0);
            assert_eq!(h.finish().as_deref(), Some(whole.as_str()), "{order:?}");
        }
        let mut h = PartHasher::new(18, 4, BTreeSet::new());
        for i in [1, 2, 3, 4] {
            h.add(i, part(&bytes, i), ());
        }
        h.advance(&file).unwrap();
        assert_eq!(
            h.waiting(),
            4,
            "nothing is hashed while part 0 is on its way"
        );
        assert_eq!(h.finish(), None);
    }

    #[test]
    fn resumed_parts_are_hashed_from_the_bytes_on_disk() {
        let (_dir, file, bytes) = parted(18);
        let whole = hex::encode(Sha256::digest(&bytes));
        // Parts 0, 1 and 3 were written by an interrupted run; 2 and 4 arrive now.
        let mut h = PartHasher::new(18, 4, BTreeSet::from([0, 1, 3]));
        h.advance(&file).unwrap();
        h.add(4, part(&bytes, 4), ());
        h.add(2, part(&bytes, 2), ());
        h.advance(&file).unwrap();
        assert_eq!(h.finish().as_deref(), Some(whole.as_str()));

        // A resumed part torn on disk: the hash is not the file's, so install would refuse it.
        let (dir, _, mut torn) = parted(18);
        torn[13] ^= 0xff; // inside part 3
        std::fs::write(dir.path().join("f.part"), &torn).unwrap();
        let file = File::open(dir.path().join("f.part")).unwrap();
        let mut h = PartHasher::new(18, 4, BTreeSet::from([0, 1, 3]));
        h.add(2, part(&bytes, 2), ());
        h.add(4, part(&bytes, 4), ());
        h.advance(&file).unwrap();
        assert_ne!(h.finish().as_deref(), Some(whole.as_str()));
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
