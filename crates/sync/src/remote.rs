//! What a sync fetches, as the catalog describes it: one object, where it goes, and the size and
//! SHA-256 it must have. A leaf module: selection produces these, planning and fetching read them.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    Processed,
    Raw,
}

/// One object to fetch and what it must be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RemoteFile {
    pub session: String,
    pub kind: FileKind,
    pub bucket: String,
    pub key: String,
    /// Where it goes, relative to the destination: `<session>/<path in the output>` for
    /// processed files, `<session>/raw/<path in the session folder>` for raw ones.
    pub path: String,
    pub size: u64,
    /// Lowercase hex SHA-256 recorded by the pipeline (processed) or the manifest (raw).
    pub sha256: String,
    /// Pipeline version of a processed file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// The S3 object version to read: a raw file's version as its manifest pins it (absent for
    /// processed files, unversioned buckets and manifests that name none — then the current one),
    /// or the exact version a snapshot saved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
}

impl RemoteFile {
    pub fn uri(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }

    /// The path inside the session folder (`path` without `<session>/`).
    pub fn path_in_session(&self) -> &str {
        self.path
            .split_once('/')
            .map(|(_, rest)| rest)
            .unwrap_or(&self.path)
    }
}

/// A file the selection names but will not write: its key is not a safe name inside the
/// destination (it could land outside it, or some OS cannot hold it). Reported as not
/// delivered; every other file of the session is synced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RefusedFile {
    pub session: String,
    pub kind: FileKind,
    /// `s3://bucket/key`.
    pub uri: String,
    /// `<session>/<path as the key names it>`, for messages and `--include`.
    pub path: String,
    /// The whole refusal, with what to do.
    pub reason: String,
}

impl RefusedFile {
    /// The path inside the session folder (`path` without `<session>/`).
    pub fn path_in_session(&self) -> &str {
        self.path
            .split_once('/')
            .map(|(_, rest)| rest)
            .unwrap_or(&self.path)
    }
}
