//! Who and where this program runs: the operating system's host name and user name, for the
//! upload manifest's `uploaded_by`, the client log's stream, and the holders of the upload and
//! sync locks. One place, so every record names a machine and a user the same way.
//!
//! Both come from the operating system through `whoami` (`gethostname` and the passwd entry of
//! the process's real user on Unix, `GetComputerNameExW` / `GetUserNameW` on Windows), never from
//! environment variables a shell or a scheduler may set to something else (`USER` is unset under
//! cron and systemd, and whatever its caller likes under `sudo` or `env`).

use crate::manifest::UploadedBy;

/// This machine's host name, or `unknown-host` when the OS does not tell.
pub fn host_name() -> String {
    whoami::hostname()
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".into())
}

/// The operating-system account this process runs as, or `unknown-user` when the OS does not
/// tell.
pub fn user_name() -> String {
    whoami::username()
        .ok()
        .map(|u| u.trim().to_string())
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "unknown-user".into())
}

/// This machine as a manifest records its uploader: host, user and the session's rig id.
pub fn uploaded_by(rig: Option<String>) -> UploadedBy {
    UploadedBy::new(&host_name(), &user_name(), rig)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn the_user_is_the_processs_account_whatever_the_environment_says() {
        // The account of the real user id, from the passwd database.
        let uid = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("Uid:"))
                    .and_then(|l| l.split_whitespace().nth(1).map(String::from))
            });
        let Some(uid) = uid else { return };
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        let Some(name) = passwd
            .lines()
            .map(|l| l.split(':').collect::<Vec<_>>())
            .find(|f| f.len() > 2 && f[2] == uid)
            .map(|f| f[0].to_string())
        else {
            return;
        };
        assert_eq!(user_name(), name);
    }

    #[test]
    fn the_host_is_the_kernels_name() {
        let host = host_name();
        assert!(!host.is_empty());
        #[cfg(target_os = "linux")]
        if let Ok(kernel) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
            assert_eq!(host, kernel.trim());
        }
        let by = uploaded_by(Some("rigB".into()));
        assert_eq!(
            (by.host, by.user, by.rig.as_deref()),
            (host, user_name(), Some("rigB"))
        );
    }
}
