//! An exclusive lock with its holder named: the one mechanism behind "one uploader per session"
//! (`labpipe_upload::SessionLock`) and "one sync per folder" (`labpipe_sync::DestinationLock`).
//!
//! The lock is the operating system's (`File::try_lock`: `flock` on Unix, `LockFileEx` on
//! Windows), held for as long as the [`HeldLock`] lives and released by the OS when the process
//! dies, so a killed holder never leaves a stale lock behind. A second taker does not wait: it
//! fails at once naming the holder, because both jobs can take minutes to hours and a silent wait
//! looks like a hang. Who holds it is written to a separate holder file, atomically (temporary
//! file, then rename), since on Windows a locked file's bytes cannot be read by others. On a
//! file system without lock support, taking the lock fails with an I/O error rather than running
//! unprotected.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Who holds a lock, as the holder wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub pid: u32,
    /// The holder's executable (`labpipe`, `labpipe-app`); absent in files of earlier versions.
    #[serde(default)]
    pub program: String,
    pub host: String,
    /// UTC, RFC 3339, when the lock was taken.
    pub since: String,
}

impl Holder {
    /// This process, now.
    pub fn current() -> Self {
        let program = std::env::current_exe()
            .ok()
            .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "unknown program".into());
        Holder {
            pid: std::process::id(),
            program,
            host: crate::machine::host_name(),
            since: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        }
    }
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if !self.program.is_empty() {
            write!(f, "{} ", self.program)?;
        }
        write!(f, "pid {} on {} since {}", self.pid, self.host, self.since)
    }
}

/// Why a lock was not taken.
#[derive(Debug)]
pub enum LockError {
    /// Someone holds it: the holder, when it has written its name yet.
    Held(Option<Holder>),
    /// The lock or holder file could not be opened, locked or written (`action` says which).
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A held lock; dropping it releases the lock and removes the holder file.
#[derive(Debug)]
pub struct HeldLock {
    file: File,
    holder: PathBuf,
}

impl HeldLock {
    /// Takes the lock at `lock` (created, with its folder, if missing) and writes this process
    /// as its holder to `holder`; or says who holds it.
    pub fn acquire(lock: &Path, holder: &Path) -> Result<HeldLock, LockError> {
        if let Some(dir) = lock.parent() {
            std::fs::create_dir_all(dir).map_err(io("create", dir))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(lock)
            .map_err(io("open", lock))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let who = std::fs::read(holder)
                    .ok()
                    .and_then(|b| serde_json::from_slice::<Holder>(&b).ok());
                return Err(LockError::Held(who));
            }
            Err(TryLockError::Error(e)) => return Err(io("lock", lock)(e)),
        }
        let taken = HeldLock {
            file,
            holder: holder.to_path_buf(),
        };
        let mut tmp = holder.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let me = serde_json::to_vec(&Holder::current()).expect("a holder serializes");
        std::fs::write(&tmp, me)
            .and_then(|()| std::fs::rename(&tmp, holder))
            .map_err(io("write", holder))?;
        Ok(taken)
    }
}

/// The error of `action` on `path`, for `map_err`.
fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> LockError {
    let path = path.to_path_buf();
    move |source| LockError::Io {
        action,
        path,
        source,
    }
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        // Remove the name first, so nobody reads it after the lock is gone.
        let _ = std::fs::remove_file(&self.holder);
        let _ = self.file.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_taker_is_refused_with_the_holder_then_takes_it_after_release() {
        let dir = tempfile::tempdir().unwrap();
        let (lock, holder) = (dir.path().join("a/lock"), dir.path().join("a/lock.holder"));
        let first = HeldLock::acquire(&lock, &holder).unwrap();
        match HeldLock::acquire(&lock, &holder) {
            Err(LockError::Held(Some(h))) => {
                assert_eq!(h.pid, std::process::id());
                assert_eq!(h.host, crate::machine::host_name());
                let text = h.to_string();
                assert!(
                    text.contains(&format!("pid {} on ", std::process::id()))
                        && text.contains(" since "),
                    "{text}"
                );
            }
            other => panic!("expected the holder, got {other:?}"),
        }
        drop(first);
        assert!(!holder.exists(), "the holder file goes with the lock");
        HeldLock::acquire(&lock, &holder).unwrap();
    }

    #[test]
    fn holder_files_of_earlier_versions_still_name_their_holder() {
        // labpipe sync wrote no program.
        let h: Holder = serde_json::from_str(
            r#"{"pid":7,"host":"host lab-pc","since":"2021-03-01T17:00:00Z"}"#,
        )
        .unwrap();
        assert_eq!(
            h.to_string(),
            "pid 7 on host lab-pc since 2021-03-01T17:00:00Z"
        );
    }
}
