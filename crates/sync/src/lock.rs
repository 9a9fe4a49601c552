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
//! The lock and its holder file are [`labpipe_core::lock`]'s, which the upload's session lock
//! uses too: the OS's lock, dropped when the process dies, so a killed run never leaves a stale
//! lock behind; on a network file system without lock support the run stops with an I/O error
//! rather than running unprotected.

use std::path::Path;

use labpipe_core::lock::{HeldLock, LockError};

use crate::SyncError;

const LOCK_FILE: &str = "lock";
const HOLDER_FILE: &str = "lock.holder";

/// Who holds a destination's lock.
pub use labpipe_core::lock::Holder as LockHolder;

/// The exclusive right to write into one destination; released on drop (or when the process
/// ends, however it ends).
#[derive(Debug)]
pub struct DestinationLock {
    _lock: HeldLock,
}

impl DestinationLock {
    /// Takes the lock of the destination whose state folder is `state_dir`, or says who holds it.
    pub fn acquire(dest: &Path, state_dir: &Path) -> Result<DestinationLock, SyncError> {
        let lock = HeldLock::acquire(&state_dir.join(LOCK_FILE), &state_dir.join(HOLDER_FILE))
            .map_err(|e| match e {
                LockError::Held(holder) => SyncError::Busy {
                    dest: dest.to_path_buf(),
                    holder: holder
                        .map(|h| h.to_string())
                        .unwrap_or_else(|| "holder not recorded yet".into()),
                },
                LockError::Io {
                    action,
                    path,
                    source,
                } => SyncError::Io {
                    action,
                    path,
                    source,
                },
            })?;
        Ok(DestinationLock { _lock: lock })
    }
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
