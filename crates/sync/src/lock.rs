//! One sync per destination folder at a time.
//!
//! Two runs into one folder would race on the same `.part` files, partial records and state file:
//! one could rename the other's half-written download, or overwrite its record of what is
//! verified. So a run holds an exclusive OS lock on `DIR/.labpipe-sync/lock` from start to end.
//! A second run does not wait: it refuses at once with [`SyncError::Busy`], naming the holder
//! (pid, host, since — read from `lock.holder`, which the holder writes after taking the lock),
//! because a sync can take hours and a silent wait looks like a hang; the message says to wait
//! for that run or to pick another folder.
//!
//! The lock is `File::try_lock` (`flock` on Unix, `LockFileEx` on Windows): the OS drops it when
//! the process dies, so a killed run never leaves a stale lock behind. The holder details live in
//! a separate file because Windows forbids reading a locked byte range. On a network file system
//! without lock support, taking the lock fails and the run stops with an I/O error rather than
//! running unprotected.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use chrono::Utc;
use serde::{Deserialize, Serialize};

use crate::SyncError;

const LOCK_FILE: &str = "lock";
const HOLDER_FILE: &str = "lock.holder";

/// Who holds a destination's lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockHolder {
    pub pid: u32,
    pub host: String,
    /// UTC, RFC 3339.
    pub since: String,
}

impl std::fmt::Display for LockHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pid {} on {} since {}", self.pid, self.host, self.since)
    }
}

/// The exclusive right to write into one destination; released on drop (or when the process
/// ends, however it ends).
#[derive(Debug)]
pub struct DestinationLock {
    file: File,
    holder: PathBuf,
}

impl DestinationLock {
    /// Takes the lock of the destination whose state folder is `state_dir`, or says who holds it.
    pub fn acquire(dest: &Path, state_dir: &Path) -> Result<DestinationLock, SyncError> {
        std::fs::create_dir_all(state_dir).map_err(SyncError::io("create", state_dir))?;
        let path = state_dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(SyncError::io("open", &path))?;
        let holder = state_dir.join(HOLDER_FILE);
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let who = std::fs::read(&holder)
                    .ok()
                    .and_then(|b| serde_json::from_slice::<LockHolder>(&b).ok());
                return Err(SyncError::Busy {
                    dest: dest.to_path_buf(),
                    holder: who
                        .map(|h| h.to_string())
                        .unwrap_or_else(|| "holder not recorded yet".into()),
                });
            }
            Err(TryLockError::Error(e)) => {
                return Err(SyncError::Io {
                    action: "lock",
                    path,
                    source: e,
                })
            }
        }
        let me = LockHolder {
            pid: std::process::id(),
            host: host_name(),
            since: labpipe_catalog::format_utc(Utc::now()),
        };
        let tmp = state_dir.join(format!("{HOLDER_FILE}.tmp"));
        std::fs::write(&tmp, serde_json::to_vec(&me).expect("holder serializes"))
            .and_then(|()| std::fs::rename(&tmp, &holder))
            .map_err(SyncError::io("write", &holder))?;
        Ok(DestinationLock { file, holder })
    }
}

impl Drop for DestinationLock {
    fn drop(&mut self) {
        // Remove the details first, so nobody reads them after the lock is gone.
        let _ = std::fs::remove_file(&self.holder);
        let _ = self.file.unlock();
    }
}

/// This machine's name, for "who holds the lock" ([`labpipe_core::machine`]).
fn host_name() -> String {
    format!("host {}", labpipe_core::machine::host_name())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_one_destination_is_refused_with_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join(".labpipe-sync");
        let first = DestinationLock::acquire(dir.path(), &state).unwrap();
        let err = DestinationLock::acquire(dir.path(), &state).unwrap_err();
        assert_eq!(err.code(), "busy");
        let message = err.to_string();
        assert!(
            message.contains(&format!("pid {}", std::process::id())) && message.contains("since "),
            "{message}"
        );
        drop(first);
        assert!(!state.join(HOLDER_FILE).exists());
        let again = DestinationLock::acquire(dir.path(), &state);
        assert!(again.is_ok(), "{again:?}");
    }
}
