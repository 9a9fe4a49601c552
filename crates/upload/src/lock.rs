//! One uploader per session on this machine: a lock file per session beside the journal.
//!
//! Two uploaders of one session (the CLI and the app, two CLI runs, two tasks of one app) would
//! otherwise race on the same multipart uploads. The second one **fails fast** and says who holds
//! the session (pid, program, host, since when) instead of waiting: a session can take minutes,
//! the first uploader will finish it, and a queue (the app's, or a re-run) can try again later.
//! Nothing is touched before the lock is held, so the second never aborts the first's parts.
//!
//! The lock and its holder file (`<session>.lock`, `<session>.holder`) are
//! [`labpipe_core::lock`]'s, which sync's folder lock uses too: the OS's lock, released when the
//! process dies, so a killed uploader never leaves a stale lock behind.

use std::path::Path;

use labpipe_core::lock::{HeldLock, LockError};

use crate::UploadError;

/// Who holds a session, as the holder wrote it.
pub use labpipe_core::lock::Holder;

/// The held lock of one session; dropping it releases the session.
#[derive(Debug)]
pub struct SessionLock {
    _lock: HeldLock,
}

impl SessionLock {
    /// Takes the lock of `session` in `dir`, or fails at once with [`UploadError::Locked`]
    /// naming the holder.
    pub fn acquire(dir: &Path, session: &str) -> Result<Self, UploadError> {
        let name = file_stem(session);
        let lock = HeldLock::acquire(
            &dir.join(format!("{name}.lock")),
            &dir.join(format!("{name}.holder")),
        )
        .map_err(|e| match e {
            LockError::Held(holder) => UploadError::Locked {
                session: session.into(),
                holder: holder
                    .map(|h| h.to_string())
                    .unwrap_or_else(|| "another uploader (it has not said who yet)".into()),
            },
            LockError::Io { path, source, .. } => UploadError::Io { path, source },
        })?;
        Ok(Self { _lock: lock })
    }
}

/// A file name for the session id: ids are `YYYYMMDD_HHMMSS`, anything else is made safe.
fn file_stem(session: &str) -> String {
    session
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_fails_fast_naming_the_first_then_gets_it_after_release() {
        let dir = tempfile::tempdir().unwrap();
        let first = SessionLock::acquire(dir.path(), "20210301_161221").unwrap();
        let err = SessionLock::acquire(dir.path(), "20210301_161221").unwrap_err();
        let msg = err.to_string();
        assert_eq!(err.code(), "locked");
        assert!(
            msg.contains(&format!("pid {}", std::process::id())),
            "{msg}"
        );
        assert!(msg.contains(&labpipe_core::machine::host_name()), "{msg}");
        // Another session is not affected.
        let other = SessionLock::acquire(dir.path(), "20210301_161222").unwrap();
        drop(first);
        let again = SessionLock::acquire(dir.path(), "20210301_161221");
        assert!(again.is_ok(), "{again:?}");
        drop(other);
    }

    #[test]
    fn session_ids_become_safe_file_names() {
        assert_eq!(file_stem("20210301_161221"), "20210301_161221");
        assert_eq!(file_stem("../x y"), "___x_y");
    }
}
