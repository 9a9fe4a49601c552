//! The manifest: the commit marker of an upload.
//!
//! The upload writes `raw/<session>/manifest.json` *last*, after every file is in S3 and verified.
//! A session without a manifest is incomplete by definition; the backend reacts only to manifests
//! and verifies every object against it. So the manifest carries, for every file, what is needed to
//! prove the object is the recorded one: size, SHA-256 and the S3 checksum — and, on a versioned
//! bucket, the object version the upload created, so every reader fetches exactly that version
//! and a later write at the same key (which the bucket policy forbids, but versioning would keep)
//! changes nothing downstream.
//!
//! The JSON form is stable: fields in a fixed order, files sorted by path, metadata sorted by key,
//! and a `format` tag so a future layout can be told apart.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::check::{FileRole, SessionReport, Verdict};
use crate::finding::Finding;
use crate::metadata::Metadata;
use crate::session_id::SessionId;

/// The manifest layout written by this version.
pub const MANIFEST_FORMAT: &str = "labpipe-manifest/1";
/// The largest manifest anyone reads (1 MiB). A real session's manifest is a few kB (≈300 bytes
/// per file); the bound keeps a stray or hostile object from being read whole into a 256 MB
/// function.
pub const MAX_MANIFEST_BYTES: u64 = 1 << 20;
/// The most files a session may list. Well above any recorder's rollover count, and low enough
/// that a manifest at the bound stays under [`MAX_MANIFEST_BYTES`].
pub const MAX_MANIFEST_FILES: usize = 2_000;
/// Kept free under [`MAX_MANIFEST_BYTES`] when the check sizes a manifest: a correction's reason
/// (typed at upload, after the check) and version ids longer than the usual 32 characters.
pub const MANIFEST_RESERVED_BYTES: u64 = 16 * 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub session: SessionId,
    /// Lab-local recording time, from the folder name.
    pub recorded_at: NaiveDateTime,
    pub created_at: DateTime<Utc>,
    pub tool_version: String,
    pub verdict: Verdict,
    pub total_bytes: u64,
    pub metadata: Metadata,
    pub files: Vec<ManifestFile>,
    pub findings: Vec<Finding>,
    /// Which upload of the session this is: absent for the first, `2`, `3`, … for corrections
    /// uploaded with `labpipe upload --revise` into `raw/<session>.r<N>/`
    /// ([`crate::layout::revision_folder`]). Earlier revisions stay where they are, unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<Revision>,
    /// The machine that uploaded this manifest: host, user and, when configured, rig id. Absent
    /// in manifests written before it was recorded; readers then say "an unknown machine".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uploaded_by: Option<UploadedBy>,
}

/// Who uploaded a manifest: `{"host": "RIG-B-PC", "user": "lab", "rig": "rigB"}` (`rig` absent
/// when the lab PC has no rig id). What a refusal names when another recording holds a name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadedBy {
    pub host: String,
    pub user: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rig: Option<String>,
}

impl UploadedBy {
    /// The longest host name recorded (DNS's limit); longer ones are cut.
    pub const MAX_HOST_CHARS: usize = 255;
    /// The longest user name recorded; longer ones are cut.
    pub const MAX_USER_CHARS: usize = 256;

    /// The record for `host`, `user` and `rig`, each cut to its bound.
    pub fn new(host: &str, user: &str, rig: Option<String>) -> Self {
        UploadedBy {
            host: host.chars().take(Self::MAX_HOST_CHARS).collect(),
            user: user.chars().take(Self::MAX_USER_CHARS).collect(),
            rig,
        }
    }
}

impl std::fmt::Display for UploadedBy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (user {}", self.host, self.user)?;
        match &self.rig {
            Some(rig) => write!(f, ", rig {rig})"),
            None => write!(f, ", no rig id)"),
        }
    }
}

/// A correction of a session: its number and the reason someone gave for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revision {
    /// 2 for the first correction; revision 1 is the session's first upload.
    pub number: u32,
    pub reason: String,
}

impl Manifest {
    /// The revision number: 1 for a first upload.
    pub fn revision_number(&self) -> u32 {
        self.revision.as_ref().map_or(1, |r| r.number)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    /// Relative to the session folder, `/`-separated.
    pub path: String,
    pub size: u64,
    pub role: FileRole,
    /// Lowercase hex SHA-256 of the whole file.
    pub sha256: String,
    /// Base64 full-object CRC64NVME as S3 reports it, when the upload computed one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crc64nvme: Option<String>,
    /// The S3 version id of the object holding this file, when the bucket returned one. Absent
    /// on unversioned buckets and in manifests written before version ids were recorded:
    /// readers then read the current version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
}

/// Why a manifest could not be built or read.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("session {session} is not uploadable (verdict {verdict}); fix its findings first")]
    NotUploadable {
        session: String,
        verdict: &'static str,
    },
    #[error("hashes given for {given} files but the session has {expected}")]
    FileMismatch { given: usize, expected: usize },
    #[error("manifest is not valid JSON for {MANIFEST_FORMAT}: {0}")]
    Parse(#[from] serde_json::Error),
    #[error("manifest format '{0}' is not supported by this version (expected {MANIFEST_FORMAT}); update labpipe")]
    Format(String),
}

impl Manifest {
    /// Builds the manifest for an uploadable report, given per-file `(sha256, crc64nvme)` in the
    /// report's file order.
    pub fn new(
        report: &SessionReport,
        hashes: Vec<(String, Option<String>)>,
        created_at: DateTime<Utc>,
    ) -> Result<Self, ManifestError> {
        let (Some(id), true) = (report.id, report.verdict.is_uploadable()) else {
            return Err(ManifestError::NotUploadable {
                session: report.session.clone(),
                verdict: report.verdict.as_str(),
            });
        };
        if hashes.len() != report.files.len() {
            return Err(ManifestError::FileMismatch {
                given: hashes.len(),
                expected: report.files.len(),
            });
        }
        let mut files: Vec<ManifestFile> = report
            .files
            .iter()
            .zip(hashes)
            .map(|(f, (sha256, crc64nvme))| ManifestFile {
                path: f.path.clone(),
                size: f.size,
                role: f.role,
                sha256,
                crc64nvme,
                version_id: None,
            })
            .collect();
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(Manifest {
            format: MANIFEST_FORMAT.into(),
            session: id,
            recorded_at: id.recorded_at(),
            created_at,
            tool_version: crate::TOOL_VERSION.into(),
            verdict: report.verdict,
            total_bytes: files.iter().map(|f| f.size).sum(),
            metadata: report.metadata.clone(),
            files,
            findings: report.findings.clone(),
            revision: None,
            uploaded_by: None,
        })
    }

    /// The size of the largest manifest an upload of `report` can write: every value the upload
    /// adds at its largest expected length (SHA-256, CRC64NVME, a version id as long as the
    /// 64-character example in the Amazon S3 documentation — AWS's are 32), a revision number.
    /// A correction's reason is not known yet; [`MANIFEST_RESERVED_BYTES`] is kept for it.
    /// `None` when the report has no session id (it cannot be uploaded anyway).
    pub fn largest_json_bytes(report: &SessionReport) -> Option<u64> {
        let id = report.id?;
        let manifest = Manifest {
            format: MANIFEST_FORMAT.into(),
            session: id,
            recorded_at: id.recorded_at(),
            created_at: DateTime::<Utc>::MAX_UTC,
            tool_version: crate::TOOL_VERSION.into(),
            verdict: Verdict::Pass,
            total_bytes: u64::MAX,
            metadata: report.metadata.clone(),
            files: report
                .files
                .iter()
                .map(|f| ManifestFile {
                    path: f.path.clone(),
                    size: u64::MAX,
                    role: f.role,
                    sha256: "0".repeat(64),
                    crc64nvme: Some("A".repeat(12)),
                    version_id: Some("v".repeat(64)),
                })
                .collect(),
            findings: report.findings.clone(),
            revision: Some(Revision {
                number: u32::MAX,
                reason: String::new(),
            }),
            uploaded_by: Some(UploadedBy {
                host: "h".repeat(UploadedBy::MAX_HOST_CHARS),
                user: "u".repeat(UploadedBy::MAX_USER_CHARS),
                rig: Some("r".repeat(crate::session_id::MAX_RIG_LEN)),
            }),
        };
        Some(manifest.to_json().len() as u64)
    }

    /// Records the object version id of each file, by path (files not named keep theirs).
    pub fn pin_versions<'a>(
        &mut self,
        versions: impl IntoIterator<Item = (&'a str, Option<String>)>,
    ) {
        for (path, version_id) in versions {
            if let Some(file) = self.files.iter_mut().find(|f| f.path == path) {
                file.version_id = version_id;
            }
        }
    }

    /// The stable, pretty JSON written to S3.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("manifest serialises")
    }

    pub fn from_json(bytes: &[u8]) -> Result<Self, ManifestError> {
        #[derive(Deserialize)]
        struct Tag {
            format: String,
        }
        let tag: Tag = serde_json::from_slice(bytes)?;
        if tag.format != MANIFEST_FORMAT {
            return Err(ManifestError::Format(tag.format));
        }
        Ok(serde_json::from_slice(bytes)?)
    }
}

/// Kept here for callers that hash files as part of building a manifest.
pub use crate::digest::sha256_file;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::{check_folder, ReportFile};
    use crate::schema::LabSchema;

    fn report() -> SessionReport {
        let tmp = tempfile::tempdir().unwrap();
        let s = tmp.path().join("20210301_161221");
        std::fs::create_dir_all(&s).unwrap();
        std::fs::write(s.join("metadata.txt"), "subject_id: S1\nfatigue: 2\nhardware_model: X200\nsample_rate_hz: 1000\nchannels: 1\nsample_format: int16\n").unwrap();
        std::fs::write(s.join("b.bin"), [0u8; 4]).unwrap();
        std::fs::write(s.join("a.bin"), [1u8; 2]).unwrap();
        let old = filetime::FileTime::from_unix_time(1_600_000_000, 0);
        for f in ["metadata.txt", "a.bin", "b.bin"] {
            filetime::set_file_mtime(s.join(f), old).unwrap();
        }
        check_folder(&s, &LabSchema::default()).unwrap()
    }

    #[test]
    fn manifest_round_trips_and_is_stable() {
        let r = report();
        assert_eq!(
            r.verdict,
            Verdict::Warn,
            "tiny session warns about size: {:?}",
            r.findings
        );
        let hashes = r
            .files
            .iter()
            .map(|f: &ReportFile| (format!("sha-{}", f.path), None))
            .collect();
        let created = DateTime::parse_from_rfc3339("2021-03-01T17:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let m = Manifest::new(&r, hashes, created).unwrap();
        let json = m.to_json();
        assert_eq!(Manifest::from_json(json.as_bytes()).unwrap(), m);
        let paths: Vec<_> = m.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["a.bin", "b.bin", "metadata.txt"]);
        assert_eq!(m.total_bytes, r.total_bytes);
        let head: Vec<&str> = json.lines().take(4).collect();
        assert_eq!(
            head,
            [
                "{",
                "  \"format\": \"labpipe-manifest/1\",",
                "  \"session\": \"20210301_161221\",",
                "  \"recorded_at\": \"2021-03-01T16:12:21\","
            ]
        );
        assert!(json.contains("\"fatigue\": 2.0"));
    }

    #[test]
    fn version_ids_are_recorded_and_manifests_without_them_still_read() {
        let r = report();
        let hashes = r
            .files
            .iter()
            .map(|f| (format!("sha-{}", f.path), None))
            .collect();
        let mut m = Manifest::new(&r, hashes, Utc::now()).unwrap();
        let unpinned = m.to_json();
        assert!(!unpinned.contains("version_id"), "{unpinned}");
        m.pin_versions([
            ("b.bin", Some("v-b".to_string())),
            ("a.bin", Some("v-a".to_string())),
        ]);
        let json = m.to_json();
        let read = Manifest::from_json(json.as_bytes()).unwrap();
        let versions: Vec<_> = read.files.iter().map(|f| f.version_id.as_deref()).collect();
        assert_eq!(versions, [Some("v-a"), Some("v-b"), None]);
        // A manifest written before version ids existed reads, with none.
        let old = Manifest::from_json(unpinned.as_bytes()).unwrap();
        assert!(old.files.iter().all(|f| f.version_id.is_none()));
        assert_eq!(old.files.len(), 3);
    }

    #[test]
    fn the_uploading_machine_is_recorded_and_older_manifests_still_read() {
        let r = report();
        let hashes = r.files.iter().map(|_| ("s".to_string(), None)).collect();
        let mut m = Manifest::new(&r, hashes, Utc::now()).unwrap();
        let old = m.to_json();
        assert!(!old.contains("uploaded_by"), "{old}");
        assert_eq!(
            Manifest::from_json(old.as_bytes()).unwrap().uploaded_by,
            None
        );
        m.uploaded_by = Some(UploadedBy {
            host: "RIG-B-PC".into(),
            user: "lab".into(),
            rig: Some("rigB".into()),
        });
        let json = m.to_json();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(
            v["uploaded_by"],
            serde_json::json!({"host": "RIG-B-PC", "user": "lab", "rig": "rigB"})
        );
        assert_eq!(Manifest::from_json(json.as_bytes()).unwrap(), m);
        assert_eq!(
            m.uploaded_by.unwrap().to_string(),
            "RIG-B-PC (user lab, rig rigB)"
        );
    }

    #[test]
    fn refuses_what_cannot_be_a_manifest() {
        let mut r = report();
        assert!(matches!(
            Manifest::new(&r, vec![], Utc::now()),
            Err(ManifestError::FileMismatch { .. })
        ));
        r.verdict = Verdict::Fail;
        assert!(matches!(
            Manifest::new(&r, vec![], Utc::now()),
            Err(ManifestError::NotUploadable { .. })
        ));
        assert!(matches!(
            Manifest::from_json(b"{\"format\":\"x/9\"}"),
            Err(ManifestError::Format(_))
        ));
        assert!(matches!(
            Manifest::from_json(b"nope"),
            Err(ManifestError::Parse(_))
        ));
    }
}
