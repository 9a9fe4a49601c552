//! How the lab folder is watched: native change events, or polling where they cannot be trusted.
//!
//! Recording rigs often write to a network share (SMB/CIFS from a Windows rig, NFS from a
//! Linux one). Native change notification (inotify, ReadDirectoryChangesW, FSEvents) only sees
//! changes made *through this computer's* kernel: a file the rig writes to the share from another
//! machine raises no event here, so a native watcher sits silent while sessions pile up. Polling
//! (a scan every few seconds, comparing sizes and times) sees every change wherever it was made,
//! at the cost of one listing per interval.
//!
//! [`WatchMode::Auto`] (the default) polls when the folder is on a network file system
//! ([`network_file_system`]) and uses native events otherwise; when native events cannot be set
//! up at all (for example the inotify watch limit is reached), the app falls back to polling too.
//! `Native` and `Poll` force one or the other.

use serde::{Deserialize, Serialize};
use std::path::Path;

/// The lab folder's watch mode, chosen in Settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(
    feature = "ts",
    derive(ts_rs::TS),
    ts(export_to = "../../ui/src/lib/bindings/")
)]
#[serde(rename_all = "lowercase")]
pub enum WatchMode {
    /// Polling on network file systems, native events elsewhere.
    #[default]
    Auto,
    /// Native change events only.
    Native,
    /// Polling only (every `poll_interval_secs`).
    Poll,
}

/// Why the folder is polled rather than watched natively, when it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PollReason {
    /// Settings say so.
    Chosen,
    /// The folder is on this network file system (`cifs`, `nfs4`, …).
    NetworkShare(String),
    /// Native events could not be set up; the error says why.
    NativeFailed(String),
}

impl PollReason {
    /// One line for the Pending view and the log.
    pub fn text(&self) -> String {
        match self {
            PollReason::Chosen => "polling chosen in Settings".into(),
            PollReason::NetworkShare(fs) => {
                format!("network share ({fs}): change events from other computers do not reach this one")
            }
            PollReason::NativeFailed(e) => format!("change events unavailable ({e})"),
        }
    }
}

/// What the mode asks for on `folder` before any watcher is tried: `Some(reason)` to poll,
/// `None` to try native events.
pub fn should_poll(mode: WatchMode, folder: &Path) -> Option<PollReason> {
    match mode {
        WatchMode::Native => None,
        WatchMode::Poll => Some(PollReason::Chosen),
        WatchMode::Auto => network_file_system(folder).map(PollReason::NetworkShare),
    }
}

/// File-system types whose changes can come from another computer (Linux `mountinfo` names).
const NETWORK_FS: &[&str] = &[
    "cifs",
    "smb3",
    "smbfs",
    "nfs",
    "nfs4",
    "afs",
    "ceph",
    "glusterfs",
    "9p",
    "davfs",
    "lustre",
    "gpfs",
    "beegfs",
    "fuse.sshfs",
    "fuse.rclone",
    "fuse.s3fs",
    "fuse.gcsfuse",
    "fuse.glusterfs",
    "fuse.cephfs",
];

/// The network file system `folder` is on, if it is on one: the type of the longest mount point
/// that contains it (Linux: `/proc/self/mountinfo`), or `smb` for a Windows UNC path
/// (`\\server\share\…`). `None` on a local disk, and where this cannot be told (a mapped drive
/// letter on Windows, macOS): choose *Poll* in Settings there.
pub fn network_file_system(folder: &Path) -> Option<String> {
    let text = folder.to_string_lossy();
    if text.starts_with(r"\\") && !text.starts_with(r"\\?\") && !text.starts_with(r"\\.\") {
        return Some("smb".into());
    }
    if text.starts_with(r"\\?\UNC\") {
        return Some("smb".into());
    }
    #[cfg(target_os = "linux")]
    {
        let real = std::fs::canonicalize(folder).unwrap_or_else(|_| folder.to_path_buf());
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
        fs_type_of(&mountinfo, &real).filter(|fs| is_network_fs(fs))
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

// mountinfo is Linux's: elsewhere only the tests read it.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn is_network_fs(fs: &str) -> bool {
    NETWORK_FS.contains(&fs)
}

// mountinfo is Linux's: elsewhere only the tests read it.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
/// The file-system type of the longest mount point in `mountinfo` that contains `path`.
fn fs_type_of(mountinfo: &str, path: &Path) -> Option<String> {
    let mut best: Option<(usize, String)> = None;
    for line in mountinfo.lines() {
        // `36 35 98:0 /root /mnt/point opts [optional…] - fstype source superopts`
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let Some(mount_point) = left.split(' ').nth(4).map(unescape_octal) else {
            continue;
        };
        let Some(fs) = right.split(' ').next() else {
            continue;
        };
        let mp = Path::new(&mount_point);
        if path.starts_with(mp) {
            let depth = mp.components().count();
            if best.as_ref().is_none_or(|(d, _)| depth >= *d) {
                best = Some((depth, fs.to_string()));
            }
        }
    }
    best.map(|(_, fs)| fs)
}

// mountinfo is Linux's: elsewhere only the tests read it.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
/// `mountinfo` writes space, tab, newline and backslash in paths as `\040`-style octal escapes.
fn unescape_octal(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let digits = &bytes[i + 1..i + 4];
            if digits.iter().all(|b| (b'0'..=b'7').contains(b)) {
                let v = digits.iter().fold(0u32, |v, d| v * 8 + u32::from(d - b'0'));
                if let Ok(v) = u8::try_from(v) {
                    out.push(v);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
22 1 259:2 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
30 22 0:26 / /mnt/rig rw,relatime shared:9 - cifs //rig-pc/recordings rw,vers=3.1.1
31 30 259:3 / /mnt/rig/local\\040disk rw,relatime shared:10 - ext4 /dev/vdb1 rw
32 22 0:27 / /data/nfs rw,relatime - nfs4 fileserver:/export rw
33 22 0:28 / /home/lab/sshfs rw,nosuid - fuse.sshfs lab@host: rw
";

    #[test]
    fn the_longest_mount_point_decides() {
        let fs = |p: &str| fs_type_of(MOUNTINFO, Path::new(p));
        assert_eq!(fs("/mnt/rig/20210301_161221").as_deref(), Some("cifs"));
        assert_eq!(
            fs("/mnt/rig/local disk/20210301_161221").as_deref(),
            Some("ext4")
        );
        assert_eq!(fs("/data/nfs/lab").as_deref(), Some("nfs4"));
        assert_eq!(
            fs("/data/nfsx/lab").as_deref(),
            Some("ext4"),
            "a prefix of a name is not a mount"
        );
        assert_eq!(fs("/home/lab/sshfs").as_deref(), Some("fuse.sshfs"));
        assert_eq!(fs("/srv/lab").as_deref(), Some("ext4"));
    }

    #[test]
    fn network_file_systems_are_polled_in_auto_mode_only() {
        for fs in ["cifs", "nfs4", "fuse.sshfs"] {
            assert!(is_network_fs(fs), "{fs}");
        }
        for fs in [
            "ext4",
            "xfs",
            "btrfs",
            "tmpfs",
            "overlay",
            "ntfs3",
            "fuse.ntfs-3g",
        ] {
            assert!(!is_network_fs(fs), "{fs}");
        }
        let unc = Path::new(r"\\rig-pc\recordings\lab");
        assert_eq!(
            should_poll(WatchMode::Auto, unc),
            Some(PollReason::NetworkShare("smb".into()))
        );
        assert_eq!(should_poll(WatchMode::Native, unc), None);
        let local = std::env::temp_dir();
        assert_eq!(
            should_poll(WatchMode::Poll, &local),
            Some(PollReason::Chosen)
        );
        assert_eq!(should_poll(WatchMode::Native, &local), None);
    }

    #[test]
    fn octal_escapes_in_mount_points_are_read() {
        assert_eq!(unescape_octal(r"/mnt/a\040b\134c"), r"/mnt/a b\c");
        assert_eq!(unescape_octal(r"/mnt/plain"), "/mnt/plain");
        assert_eq!(unescape_octal(r"/mnt/trailing\04"), r"/mnt/trailing\04");
    }
}
