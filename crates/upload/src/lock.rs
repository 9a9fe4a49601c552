//! One uploader per session on this machine: a lock file per session beside the journal.
//!
//! Two uploaders of one session (the CLI and the app, two CLI runs, two tasks of one app) would
//! otherwise race on the same multipart uploads. The second one **fails fast** and says who holds
//! the session (pid, program, host, since when) instead of waiting: a session can take minutes,
//! the first uploader will finish it, and a queue (the app's, or a re-run) can try again later.
//! Nothing is touched before the lock is held, so the second never aborts the first's parts.
//!
//! The lock is the operating system's (`File::try_lock`: `flock` on Unix, `LockFileEx` on
//! Windows), held for as long as the [`SessionLock`] lives and released by the OS when the
//! process dies, so a killed uploader never leaves a stale lock behind. Who holds it is written
//! to a separate `.holder` file: on Windows a locked file's bytes cannot be read by others.

use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use crate::UploadError;

/// Who holds a session, as the holder wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub pid: u32,
    pub program: String,
    pub host: String,
    /// RFC 3339 time the lock was taken.
    pub since: String,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (pid {}) on {} since {}",
            self.program, self.pid, self.host, self.since
        )
    }
}

/// The held lock of one session; dropping it releases the session.
#[derive(Debug)]
pub struct SessionLock {
    _file: File,
    holder_path: PathBuf,
}

impl SessionLock {
    /// Takes the lock of `session` in `dir`, or fails at once with [`UploadError::Locked`]
    /// naming the holder.
    pub fn acquire(dir: &Path, session: &str) -> Result<Self, UploadError> {
        let io = |path: &Path, source| UploadError::Io {
            path: path.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let name = file_stem(session);
        let path = dir.join(format!("{name}.lock"));
        let holder_path = dir.join(format!("{name}.holder"));
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| io(&path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = std::fs::read(&holder_path)
                    .ok()
                    .and_then(|b| serde_json::from_slice::<Holder>(&b).ok())
                    .map(|h| h.to_string())
                    .unwrap_or_else(|| "another uploader (it has not said who yet)".into());
                return Err(UploadError::Locked {
                    session: session.into(),
                    holder,
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(&path, e)),
        }
        let me = Holder::current();
        // Best effort: the lock is what protects the session, the holder file only explains it.
        if let Err(e) = write_holder(&holder_path, &me) {
            tracing::warn!(path = %holder_path.display(), error = %e, "cannot record the upload lock's holder");
        }
        Ok(Self {
            _file: file,
            holder_path,
        })
    }
}

impl Drop for SessionLock {
    fn drop(&mut self) {
        // Still holding the lock: nobody else can have written their name yet.
        let _ = std::fs::remove_file(&self.holder_path);
    }
}

impl Holder {
    fn current() -> Self {
        let program = std::env::current_exe()
            .ok()
            .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "unknown program".into());
        Self {
            pid: std::process::id(),
            program,
            host: host_name(),
            since: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        }
    }
}

fn write_holder(path: &Path, h: &Holder) -> std::io::Result<()> {
    let tmp = path.with_extension("holder.tmp");
    std::fs::write(&tmp, serde_json::to_vec(h)?)?;
    std::fs::rename(&tmp, path)
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

pub(crate) use labpipe_core::machine::host_name;

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
        assert!(msg.contains(&host_name()), "{msg}");
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
