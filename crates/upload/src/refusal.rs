//! The two refusals an upload makes before it sends a byte under a name that is already taken,
//! and what they tell a person: which files differ, who holds the name, and the exact command
//! that goes forward (`docs/upload.md`, "A name already taken").
//!
//! - [`NameTaken`]: a *different* recording holds the name (no data file in common): two rigs
//!   that started in the same second, or a lab PC whose clock was reset. The way forward is a rig
//!   id per lab PC (`--rig`, `LABPIPE_RIG`, the app's Settings), which makes the session
//!   `<date-time>_<rig>`; a correction is offered too, for the rare folder whose every data file
//!   was replaced.
//! - [`ChangedSinceUpload`]: the *same* recording, changed after (part of) it went up — a file
//!   added, removed or changed. The way forward is a correction, whose command is printed
//!   complete; following it always succeeds ([`crate::Upload::correction`] takes the next free
//!   revision number).

use chrono::{DateTime, Utc};
use labpipe_core::units::human_bytes;
use labpipe_core::UploadedBy;
use serde::Serialize;
use std::fmt;
use std::path::PathBuf;

pub use crate::plan::FolderChanges;

/// What the name holds in S3.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Holder {
    /// When its manifest was written; `None` when it was never committed (an upload cut off or
    /// still running).
    pub uploaded_at: Option<DateTime<Utc>>,
    /// Who wrote its manifest, when the manifest says (older manifests do not).
    pub uploaded_by: Option<UploadedBy>,
    pub files: usize,
    pub bytes: u64,
    /// Revision of the session that was compared (1: the first upload).
    pub revision: u32,
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let by = self
            .uploaded_by
            .as_ref()
            .map_or_else(|| "an unknown machine".to_string(), ToString::to_string);
        match self.uploaded_at {
            Some(at) => write!(
                f,
                "uploaded {} from {by}",
                at.format("%Y-%m-%d %H:%M:%S UTC")
            )?,
            None => write!(f, "an upload not finished (no manifest), not from this PC")?,
        }
        write!(f, ", {} files ({})", self.files, human_bytes(self.bytes))
    }
}

/// A different recording already uses this session name; nothing was sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NameTaken {
    pub session: String,
    pub folder: PathBuf,
    pub bucket: String,
    pub holder: Holder,
    pub files: usize,
    pub bytes: u64,
    pub changes: FolderChanges,
    /// This PC's rig id, when it has one.
    pub rig: Option<String>,
    /// The correction command, for a folder that really is a correction of the holder.
    pub command: String,
}

impl fmt::Display for NameTaken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "session {}: a different recording already uses this name in s3://{}/ — {}; this folder ({}) has {} files ({}) and none of its data files is in that upload ({}). Nothing was sent. ",
            self.session,
            self.bucket,
            self.holder,
            self.folder.display(),
            self.files,
            human_bytes(self.bytes),
            self.changes.summary(),
        )?;
        match &self.rig {
            None => write!(
                f,
                "If this folder comes from another rig or lab PC, give each rig its own id (labpipe upload --rig NAME, or LABPIPE_RIG=NAME; in the app, Settings → Rig id) and upload again: the session becomes {}_NAME. ",
                self.session
            )?,
            Some(rig) => write!(
                f,
                "This PC's rig id is {rig}: if another PC uses the same id, give it its own; if this PC's clock was wrong when the folder was made, rename the folder to the time it was really recorded. "
            )?,
        }
        write!(
            f,
            "Only if this folder really is a correction of that recording: {}",
            self.command
        )
    }
}

/// The folder changed after (part of) it was uploaded; nothing was sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChangedSinceUpload {
    pub session: String,
    pub folder: PathBuf,
    /// The upload compared with; `uploaded_at: None` for one of this PC's that was cut off.
    pub holder: Holder,
    pub changes: FolderChanges,
    /// The command that uploads the folder as it is now (a correction).
    pub command: String,
}

impl fmt::Display for ChangedSinceUpload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.holder.uploaded_at {
            Some(_) => write!(
                f,
                "session {} changed since upload: {}. It was {}. Nothing was sent; the upload stays as it was. To upload the folder as it is now, as a correction kept beside the earlier upload, run: {}",
                self.session,
                self.changes.summary(),
                self.holder,
                self.command
            ),
            None => write!(
                f,
                "session {} changed since an upload from this PC was cut off: {}. Nothing was sent; the cut upload's objects stay unused. To upload the folder as it is now, run: {}",
                self.session,
                self.changes.summary(),
                self.command
            ),
        }
    }
}

/// `labpipe upload --revise --reason "…" FOLDER` (with `--rig` when the session id carries a rig
/// the folder name does not), quoted for a POSIX shell.
pub(crate) fn correction_command(
    folder: &std::path::Path,
    folder_rig: Option<&str>,
    flags: &[String],
    changes: &FolderChanges,
) -> String {
    let reason = format!("changed since upload: {}", changes.summary());
    let reason: String = reason.chars().take(300).collect();
    let mut cmd = String::from("labpipe upload --revise");
    for flag in flags {
        cmd.push(' ');
        cmd.push_str(&quote(flag));
    }
    if let Some(rig) = folder_rig {
        cmd.push_str(&format!(" --rig {}", quote(rig)));
    }
    cmd.push_str(&format!(
        " --reason {} {}",
        quote(&reason),
        quote(&folder.display().to_string())
    ));
    cmd
}

/// A word for a POSIX shell: bare when it is plain, else in single quotes.
fn quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_is_quoted_for_the_shell() {
        let changes = FolderChanges {
            changed: vec!["it's.bin".into()],
            ..Default::default()
        };
        let cmd = correction_command(
            std::path::Path::new("/lab/data/20210301_161221"),
            Some("rigB"),
            &["--bucket".into(), "raw".into()],
            &changes,
        );
        assert_eq!(
            cmd,
            r"labpipe upload --revise --bucket raw --rig rigB --reason 'changed since upload: changed it'\''s.bin' /lab/data/20210301_161221"
        );
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote(""), "''");
    }
}
