//! Listing session folders: the one place in this crate that touches the filesystem.
//!
//! A scan records names, sizes, modification times and symlinks — never data bytes — so checking
//! a 600 MB session costs one directory walk. It classifies each entry once (metadata, data,
//! temp/lock file, OS litter, symlink) so the checks in [`crate::check`] are pure functions over
//! the resulting [`SessionListing`].
//!
//! What counts as a session: a PATH that directly holds files (or whose name is a recording time)
//! is one session folder; a PATH holding only folders is a root whose child folders are sessions.

use serde::Serialize;
use std::fs;
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};
use std::time::SystemTime;

use crate::session_id::SessionId;

/// What an entry inside a session folder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// The metadata text file at the top of the folder.
    Metadata,
    /// Any other regular file: recorded data.
    Data,
    /// `*.part`, `*.tmp`, `~$*`, … — something is still writing.
    Temporary,
    /// `.DS_Store`, `Thumbs.db`, `desktop.ini`: ignored.
    Litter,
    /// A symbolic link; `target_inside` says whether it stays in the session folder.
    Symlink { target_inside: bool },
}

/// One entry of a session folder. `path` is relative, with `/` separators on every OS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    pub path: String,
    pub kind: EntryKind,
    pub size: u64,
    pub modified: SystemTime,
}

/// Everything the checks need to know about one session folder.
#[derive(Debug, Clone)]
pub struct SessionListing {
    /// The folder's own name (the would-be session id).
    pub name: String,
    /// The folder as given or found (relative paths kept relative).
    pub path: PathBuf,
    pub entries: Vec<Entry>,
    /// Entries that could not be read (permissions, vanished while listing).
    pub unreadable: Vec<(String, String)>,
}

impl SessionListing {
    pub fn entries_of(&self, kind: EntryKind) -> impl Iterator<Item = &Entry> {
        self.entries.iter().filter(move |e| e.kind == kind)
    }
}

/// Why a PATH given by the user could not be scanned at all.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("{path} does not exist; check the path")]
    NotFound { path: String },
    #[error("{path} is a file, not a folder; give the session folder or the folder that holds the sessions")]
    NotADirectory { path: String },
    #[error("cannot read {path}: {source}")]
    Io { path: String, source: io::Error },
}

/// The lab schema file, which may sit in a root of session folders without making it a session.
pub const SCHEMA_FILE: &str = "labpipe.toml";

const LITTER: [&str; 4] = [".ds_store", "thumbs.db", "desktop.ini", "ehthumbs.db"];

/// Classifies a file name (not a path) that is not a symlink.
pub fn classify(name: &str, at_top: bool, metadata_file: &str) -> EntryKind {
    let lower = name.to_ascii_lowercase();
    if LITTER.contains(&lower.as_str()) || name.starts_with("._") {
        EntryKind::Litter
    } else if is_temporary(name) {
        EntryKind::Temporary
    } else if at_top && name == metadata_file {
        EntryKind::Metadata
    } else {
        EntryKind::Data
    }
}

/// Temp and lock files left by recorders, browsers, office programs and copy tools.
pub fn is_temporary(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    [".part", ".tmp", ".crdownload", ".partial", ".lock"]
        .iter()
        .any(|ext| lower.ends_with(ext))
        || name.starts_with("~$")
        || name.starts_with(".~lock.")
}

/// Resolves the user's PATH into the session folders it denotes.
pub fn session_folders(path: &Path) -> Result<Vec<PathBuf>, ScanError> {
    let meta = fs::metadata(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => ScanError::NotFound {
            path: path.display().to_string(),
        },
        _ => ScanError::Io {
            path: path.display().to_string(),
            source: e,
        },
    })?;
    if !meta.is_dir() {
        return Err(ScanError::NotADirectory {
            path: path.display().to_string(),
        });
    }
    let io_err = |source| ScanError::Io {
        path: path.display().to_string(),
        source,
    };
    let name = folder_name(path);
    let mut dirs = Vec::new();
    let mut has_files = false;
    for entry in fs::read_dir(path).map_err(io_err)? {
        let entry = entry.map_err(io_err)?;
        let file_type = entry.file_type().map_err(io_err)?;
        let entry_name = entry.file_name().to_string_lossy().into_owned();
        if file_type.is_dir() {
            dirs.push(path.join(&entry_name));
        } else if classify(&entry_name, true, "") != EntryKind::Litter && entry_name != SCHEMA_FILE
        {
            has_files = true;
        }
    }
    // A lab's root may hold a stray file (notes, an export) beside its session folders: as soon as
    // one child folder is named like a session, PATH is a root and its loose files are ignored.
    let has_session_children = dirs.iter().any(|d| SessionId::looks_like(&folder_name(d)));
    if SessionId::looks_like(&name) || (has_files && !has_session_children) {
        return Ok(vec![path.to_path_buf()]);
    }
    dirs.sort();
    Ok(dirs)
}

/// The last component of a path, also for `.` and relative paths.
pub fn folder_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .or_else(|| {
            fs::canonicalize(path)
                .ok()
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        })
        .unwrap_or_else(|| path.display().to_string())
}

/// Lists one session folder recursively without following symlinks.
pub fn list_session(folder: &Path, metadata_file: &str) -> Result<SessionListing, ScanError> {
    let root = fs::canonicalize(folder).map_err(|source| ScanError::Io {
        path: folder.display().to_string(),
        source,
    })?;
    let mut listing = SessionListing {
        name: folder_name(folder),
        path: folder.to_path_buf(),
        entries: Vec::new(),
        unreadable: Vec::new(),
    };
    let mut stack = vec![(folder.to_path_buf(), String::new())];
    while let Some((dir, prefix)) = stack.pop() {
        let reader = match fs::read_dir(&dir) {
            Ok(r) => r,
            Err(e) => {
                listing.unreadable.push((prefix.clone(), e.to_string()));
                continue;
            }
        };
        for entry in reader {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    listing.unreadable.push((prefix.clone(), e.to_string()));
                    continue;
                }
            };
            let name = entry.file_name().to_string_lossy().into_owned();
            let rel = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}/{name}")
            };
            let meta = match fs::symlink_metadata(entry.path()) {
                Ok(m) => m,
                Err(e) => {
                    listing.unreadable.push((rel, e.to_string()));
                    continue;
                }
            };
            let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            if meta.file_type().is_symlink() {
                let target_inside = fs::canonicalize(entry.path())
                    .map(|t| t.starts_with(&root))
                    .unwrap_or(false);
                listing.entries.push(Entry {
                    path: rel,
                    kind: EntryKind::Symlink { target_inside },
                    size: 0,
                    modified,
                });
            } else if meta.is_dir() {
                stack.push((entry.path(), rel));
            } else {
                let kind = classify(&name, prefix.is_empty(), metadata_file);
                listing.entries.push(Entry {
                    path: rel,
                    kind,
                    size: meta.len(),
                    modified,
                });
            }
        }
    }
    listing.entries.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(listing)
}

/// Reads a small file that the checks need whole (the metadata file), refusing huge ones.
pub fn read_small(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    fs::File::open(path)?
        .take(limit + 1)
        .read_to_end(&mut buf)?;
    if buf.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {limit} bytes"),
        ));
    }
    Ok(buf)
}

/// Joins a listing-relative `a/b` path onto a folder, refusing anything that escapes it.
pub fn resolve(folder: &Path, rel: &str) -> Option<PathBuf> {
    let rel_path = Path::new(rel);
    rel_path
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
        .then(|| folder.join(rel_path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        for (name, top, expect) in [
            ("metadata.txt", true, EntryKind::Metadata),
            ("metadata.txt", false, EntryKind::Data),
            ("rec_000.bin", true, EntryKind::Data),
            ("rec_003.bin.part", true, EntryKind::Temporary),
            ("x.TMP", true, EntryKind::Temporary),
            ("video.crdownload", true, EntryKind::Temporary),
            ("~$notes.docx", true, EntryKind::Temporary),
            (".~lock.notes.odt#", true, EntryKind::Temporary),
            (".DS_Store", true, EntryKind::Litter),
            ("Thumbs.db", false, EntryKind::Litter),
            ("desktop.ini", true, EntryKind::Litter),
            ("._rec_000.bin", true, EntryKind::Litter),
        ] {
            assert_eq!(classify(name, top, "metadata.txt"), expect, "{name}");
        }
    }

    #[test]
    fn session_vs_root() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("lab");
        let a = root.join("20210301_161221");
        let b = root.join("20210301_181221");
        fs::create_dir_all(a.join("auxiliary")).unwrap();
        fs::create_dir_all(&b).unwrap();
        fs::write(a.join("metadata.txt"), "x").unwrap();
        fs::write(a.join("auxiliary/events.bin"), "12").unwrap();
        fs::write(root.join(".DS_Store"), "").unwrap();
        fs::write(root.join("labpipe.toml"), "").unwrap();
        assert_eq!(session_folders(&root).unwrap(), vec![a.clone(), b.clone()]);
        fs::write(root.join("notes.txt"), "stray").unwrap();
        assert_eq!(
            session_folders(&root).unwrap(),
            vec![a.clone(), b.clone()],
            "loose files beside sessions"
        );
        assert_eq!(session_folders(&a).unwrap(), vec![a.clone()]);
        assert_eq!(
            session_folders(&b).unwrap(),
            vec![b.clone()],
            "empty dated folder is a session"
        );
        let listing = list_session(&a, "metadata.txt").unwrap();
        let paths: Vec<_> = listing
            .entries
            .iter()
            .map(|e| (e.path.as_str(), e.kind))
            .collect();
        assert_eq!(
            paths,
            [
                ("auxiliary/events.bin", EntryKind::Data),
                ("metadata.txt", EntryKind::Metadata)
            ]
        );
        assert!(matches!(
            session_folders(&a.join("metadata.txt")),
            Err(ScanError::NotADirectory { .. })
        ));
        assert!(matches!(
            session_folders(&root.join("nope")),
            Err(ScanError::NotFound { .. })
        ));
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_are_not_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let s = tmp.path().join("20210301_161221");
        fs::create_dir_all(&s).unwrap();
        fs::write(tmp.path().join("secret.bin"), "outside").unwrap();
        fs::write(s.join("a.bin"), "in").unwrap();
        std::os::unix::fs::symlink(tmp.path().join("secret.bin"), s.join("out.bin")).unwrap();
        std::os::unix::fs::symlink(s.join("a.bin"), s.join("in.bin")).unwrap();
        std::os::unix::fs::symlink(tmp.path(), s.join("up")).unwrap();
        let listing = list_session(&s, "metadata.txt").unwrap();
        let kinds: Vec<_> = listing
            .entries
            .iter()
            .map(|e| (e.path.as_str(), e.kind))
            .collect();
        assert_eq!(
            kinds,
            [
                ("a.bin", EntryKind::Data),
                (
                    "in.bin",
                    EntryKind::Symlink {
                        target_inside: true
                    }
                ),
                (
                    "out.bin",
                    EntryKind::Symlink {
                        target_inside: false
                    }
                ),
                (
                    "up",
                    EntryKind::Symlink {
                        target_inside: false
                    }
                ),
            ]
        );
    }

    #[test]
    fn resolve_refuses_escapes() {
        let base = Path::new("/s");
        assert_eq!(resolve(base, "a/b.bin"), Some(PathBuf::from("/s/a/b.bin")));
        assert_eq!(resolve(base, "../x"), None);
        assert_eq!(resolve(base, "/etc/passwd"), None);
    }
}
