//! Lab disk retention: which local session folders may be deleted because they are provably
//! safe in S3 and processed, and deleting exactly those.
//!
//! A lab PC records about 6 GB a day and nothing else frees it. Deleting a recording is the one
//! operation here that can lose data, so a folder goes only when every one of these holds, and is
//! kept, with the first reason that fails, otherwise:
//!
//! 0. no upload of it is queued or running on this PC: the session's upload lock
//!    (`labpipe_upload::SessionLock`, beside the journal) is taken before the checks and held until
//!    the folder is gone, so an upload cannot start in between, and a session that waits in the
//!    app's upload queue is kept;
//! 1. its name is a session id and the recording is older than the limit;
//! 2. the catalog has the session and its status is `PROCESSED`;
//! 3. the session's `manifest.json` in S3 is the one the catalog verified at ingest (same SHA-256);
//! 4. every file in the folder is listed by that manifest (OS litter such as `Thumbs.db` aside), no
//!    symlink, nothing unreadable;
//! 5. every file the manifest lists exists in S3 with the listed size and with S3's stored
//!    full-object CRC64NVME equal to the manifest's (S3 computed it from the bytes it received;
//!    the manifest's comes from the same read of the file that gave its SHA-256);
//! 6. every local file has the manifest's size and SHA-256 (read again now).
//!
//! It only reads S3 (ListObjectsV2, HeadObject, GetObject of the manifest) and the catalog; it
//! never writes or deletes anything there. Right before deleting, the folder is listed again and
//! must be unchanged (names, sizes, modification times) since the checks began.

mod error;

pub use error::RetentionError;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use aws_sdk_s3::types::ChecksumMode;
use chrono::{NaiveDateTime, TimeDelta};
use labpipe_aws::{describe, list_prefix, ManifestRead};
use labpipe_catalog::{Catalog, Status};
use labpipe_core::digest::sha256_file;
use labpipe_core::scan::{self, EntryKind, SessionListing};
use labpipe_core::SessionId;
use labpipe_upload::{SessionLock, UploadError};
use serde::Serialize;

/// What a clean run is asked to do.
#[derive(Debug, Clone)]
pub struct CleanOptions {
    /// Only recordings older than this go.
    pub older_than: TimeDelta,
    /// Lab-local time now (session ids are lab-local recording times).
    pub now: NaiveDateTime,
    /// Check and report, delete nothing.
    pub dry_run: bool,
    /// Raw bucket for a catalog entry that names no raw location.
    pub raw_bucket: Option<String>,
    /// This PC's per-session upload locks (`labpipe_upload::journal::locks_dir_beside` of the
    /// journal the CLI and the app share).
    pub upload_locks: PathBuf,
    /// This PC's upload journal: a folder it uploaded under its bare name keeps that name with a
    /// rig id ([`labpipe_upload::folder_rig`]).
    pub journal: PathBuf,
    /// Sessions waiting in this PC's upload queue (the app's queue; empty for the CLI, which has
    /// none): kept without being checked.
    pub queued: BTreeSet<String>,
    /// This lab PC's rig id: a folder named `YYYYMMDD_HHMMSS` is the session
    /// `YYYYMMDD_HHMMSS_<rig>`, as the upload named it (`labpipe upload --rig`), unless this PC
    /// uploaded it under its bare name ([`labpipe_upload::folder_rig`]).
    pub rig: Option<labpipe_core::session_id::Rig>,
}

/// What happened to one folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Deleted,
    WouldDelete,
    Kept,
}

/// One folder's outcome, as the CLI prints it (`--json`: these fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FolderOutcome {
    pub session: String,
    pub path: PathBuf,
    pub action: Action,
    /// Stable machine-readable reason: `verified` for a folder that went (or would), else
    /// [`Keep::code`].
    pub code: &'static str,
    /// The reason in words, for a technician.
    pub reason: String,
    /// Files in the folder and their bytes (what deleting frees).
    pub files: usize,
    pub bytes: u64,
    /// The folder could not be checked or deleted (network, credentials, permissions), as
    /// opposed to rightly kept.
    pub failed: bool,
}

/// Why a folder is kept. Each message says what was found and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Keep {
    #[error("uploading on this PC ({holder}); clean again when the upload has finished")]
    Uploading { holder: String },
    #[error("queued for upload on this PC; clean again once it is uploaded and processed")]
    Queued,
    #[error("the folder name is not a session id (YYYYMMDD_HHMMSS), so it is not a LabPipe session; left alone")]
    NotASession,
    #[error(
        "recorded {age_days} days ago, not older than the {limit_days}-day limit (--older-than)"
    )]
    TooRecent { age_days: i64, limit_days: i64 },
    #[error("not in the catalog (table {table}): never uploaded, or its upload is not ingested yet; upload it with `labpipe upload`, or wait")]
    NotInCatalog { table: String },
    #[error("the catalog says {status}, not PROCESSED; a folder is deleted only after its session is processed (see `labpipe status {session}`)")]
    NotProcessed { session: String, status: String },
    #[error(
        "the catalog entry names no raw location; pass --raw-bucket (or set LABPIPE_RAW_BUCKET)"
    )]
    NoRawLocation,
    #[error("the manifest s3://{bucket}/{key} cannot be read ({detail}); the uploaded copy cannot be proven, so the folder is kept — ask the operator to run `labpipe doctor`")]
    ManifestUnreadable {
        bucket: String,
        key: String,
        detail: String,
    },
    #[error("the manifest in S3 (SHA-256 {found}) is not the one the catalog verified ({cataloged}); ask the operator to look at this session before deleting anything")]
    ManifestNotVerified { found: String, cataloged: String },
    #[error("{path} is not part of the uploaded session (the manifest does not list it); move it out of the folder if it is needed, then clean again")]
    ExtraFile { path: String },
    #[error("{path} is a symbolic link, which LabPipe never uploads; remove it by hand if the folder should go")]
    Symlink { path: String },
    #[error("{path} cannot be read ({detail}); fix its permissions, then clean again")]
    Unreadable { path: String, detail: String },
    #[error("{path} changed since it was uploaded ({what}); the folder holds data that is not in S3 — keep it, or upload it as a correction: labpipe upload --revise --reason TEXT FOLDER")]
    Changed { path: String, what: String },
    #[error("s3://{bucket}/{key} is missing: the uploaded copy of {path} is not in S3; tell the operator (docs/operations.md, \"Restore an object deleted by mistake\") and keep the folder")]
    ObjectMissing {
        bucket: String,
        key: String,
        path: String,
    },
    #[error("s3://{bucket}/{key} is {actual} bytes but the manifest says {expected}: the object in S3 is not the uploaded file; tell the operator and keep the folder")]
    ObjectSize {
        bucket: String,
        key: String,
        expected: u64,
        actual: u64,
    },
    #[error("s3://{bucket}/{key} has CRC64NVME {actual} but the manifest recorded {expected}: the object in S3 is not the uploaded file; tell the operator and keep the folder")]
    ChecksumDiffers {
        bucket: String,
        key: String,
        expected: String,
        actual: String,
    },
    #[error("s3://{bucket}/{key}: {what}, so the copy cannot be proven without downloading it; the folder is kept")]
    NoChecksum {
        bucket: String,
        key: String,
        what: &'static str,
    },
    #[error("cannot check: {detail}")]
    CheckFailed { detail: String },
    #[error(
        "the folder changed while it was being checked; clean again when nothing writes to it"
    )]
    ChangedWhileChecking,
    #[error("deleting failed ({detail}); what is left is still verified in S3 — fix the permissions and clean again")]
    DeleteFailed { detail: String },
}

impl Keep {
    /// A stable code for scripts (`--json`).
    pub fn code(&self) -> &'static str {
        match self {
            Keep::Uploading { .. } => "uploading",
            Keep::Queued => "queued",
            Keep::NotASession => "not_a_session",
            Keep::TooRecent { .. } => "too_recent",
            Keep::NotInCatalog { .. } => "not_in_catalog",
            Keep::NotProcessed { .. } => "not_processed",
            Keep::NoRawLocation => "no_raw_location",
            Keep::ManifestUnreadable { .. } => "manifest_unreadable",
            Keep::ManifestNotVerified { .. } => "manifest_not_verified",
            Keep::ExtraFile { .. } => "extra_file",
            Keep::Symlink { .. } => "symlink",
            Keep::Unreadable { .. } => "unreadable",
            Keep::Changed { .. } => "changed_file",
            Keep::ObjectMissing { .. } => "object_missing",
            Keep::ObjectSize { .. } => "object_size_differs",
            Keep::ChecksumDiffers { .. } => "checksum_differs",
            Keep::NoChecksum { .. } => "no_checksum",
            Keep::CheckFailed { .. } => "check_failed",
            Keep::ChangedWhileChecking => "changed_while_checking",
            Keep::DeleteFailed { .. } => "delete_failed",
        }
    }

    /// A failure of the run itself (network, access, the disk), as opposed to a folder that is
    /// rightly kept: the CLI exits non-zero for these.
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            Keep::CheckFailed { .. } | Keep::DeleteFailed { .. } | Keep::Unreadable { .. }
        )
    }
}

/// The S3 client for these checks: the workspace's one client (bounded retries, path style for
/// an endpoint such as the local emulator).
pub fn s3_client(sdk: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    labpipe_aws::s3_client(sdk, &labpipe_aws::ClientOptions::default())
}

/// Every session folder the given paths denote (a session folder, or a folder of them), once.
pub fn session_folders(paths: &[PathBuf]) -> Result<Vec<PathBuf>, RetentionError> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for p in paths {
        let folders = scan::session_folders(p).map_err(|source| RetentionError::Scan {
            path: p.display().to_string(),
            source,
        })?;
        for f in folders {
            let key = std::fs::canonicalize(&f).unwrap_or_else(|_| f.clone());
            if seen.insert(key) {
                out.push(f);
            }
        }
    }
    Ok(out)
}

/// Checks each folder and deletes those proven safe (unless `dry_run`), calling `each` with
/// every outcome as it is decided.
pub async fn clean(
    catalog: &Catalog,
    s3: &aws_sdk_s3::Client,
    folders: &[PathBuf],
    opts: &CleanOptions,
    mut each: impl FnMut(&FolderOutcome),
) -> Vec<FolderOutcome> {
    let mut out = Vec::with_capacity(folders.len());
    for folder in folders {
        let outcome = clean_one(catalog, s3, folder, opts).await;
        each(&outcome);
        out.push(outcome);
    }
    out
}

async fn clean_one(
    catalog: &Catalog,
    s3: &aws_sdk_s3::Client,
    folder: &Path,
    opts: &CleanOptions,
) -> FolderOutcome {
    // The session the folder was uploaded as, by the upload's own rule.
    let session = labpipe_upload::folder_session(&opts.journal, folder, opts.rig);
    let (files, bytes) = footprint(folder);
    let outcome = |action, code, reason: String, failed| FolderOutcome {
        session: session.clone(),
        path: folder.to_path_buf(),
        action,
        code,
        reason,
        files,
        bytes,
        failed,
    };
    let kept = |k: Keep| outcome(Action::Kept, k.code(), k.to_string(), k.is_failure());
    if opts.queued.contains(&session) {
        return kept(Keep::Queued);
    }
    // Held until the folder is gone: an upload of this session cannot start meanwhile.
    let _lock = match SessionLock::acquire(&opts.upload_locks, &session) {
        Ok(lock) => lock,
        Err(UploadError::Locked { holder, .. }) => return kept(Keep::Uploading { holder }),
        Err(e) => {
            return kept(Keep::CheckFailed {
                detail: format!("cannot take the session's upload lock: {e}"),
            })
        }
    };
    let proof = match verify(catalog, s3, folder, &session, opts).await {
        Ok(p) => p,
        Err(k) => return kept(k),
    };
    let reason = format!(
        "processed; all {} files match the verified manifest and their S3 objects (size, SHA-256, CRC64NVME)",
        proof.manifest_files
    );
    if opts.dry_run {
        return outcome(Action::WouldDelete, "verified", reason, false);
    }
    match listing(folder) {
        Ok(now) if fingerprint(&now) == proof.fingerprint => {}
        Ok(_) => return kept(Keep::ChangedWhileChecking),
        Err(k) => return kept(k),
    }
    if let Err(e) = std::fs::remove_dir_all(folder) {
        return kept(Keep::DeleteFailed {
            detail: e.to_string(),
        });
    }
    tracing::info!(session = %session, path = %folder.display(), bytes, "deleted a verified local session folder");
    outcome(Action::Deleted, "verified", reason, false)
}

/// What the checks proved, and the folder's state when they began.
struct Proof {
    manifest_files: usize,
    fingerprint: Vec<(String, u64, SystemTime)>,
}

fn listing(folder: &Path) -> Result<SessionListing, Keep> {
    let l = scan::list_session(folder, "").map_err(|e| Keep::Unreadable {
        path: folder.display().to_string(),
        detail: e.to_string(),
    })?;
    if let Some((path, detail)) = l.unreadable.first() {
        return Err(Keep::Unreadable {
            path: folder.join(path).display().to_string(),
            detail: detail.clone(),
        });
    }
    Ok(l)
}

fn fingerprint(l: &SessionListing) -> Vec<(String, u64, SystemTime)> {
    l.entries
        .iter()
        .map(|e| (e.path.clone(), e.size, e.modified))
        .collect()
}

/// Files and bytes in the folder (best effort; for the report only).
fn footprint(folder: &Path) -> (usize, u64) {
    match scan::list_session(folder, "") {
        Ok(l) => (l.entries.len(), l.entries.iter().map(|e| e.size).sum()),
        Err(_) => (0, 0),
    }
}

/// `s3://bucket/prefix` → (bucket, prefix).
fn split_s3_uri(uri: &str) -> Option<(String, String)> {
    let rest = uri.strip_prefix("s3://")?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    (!bucket.is_empty()).then(|| (bucket.to_string(), prefix.to_string()))
}

async fn verify(
    catalog: &Catalog,
    s3: &aws_sdk_s3::Client,
    folder: &Path,
    session: &str,
    opts: &CleanOptions,
) -> Result<Proof, Keep> {
    // 1. A session, old enough.
    let id = SessionId::parse(session).map_err(|_| Keep::NotASession)?;
    let age = opts.now - id.recorded_at();
    if age < opts.older_than {
        return Err(Keep::TooRecent {
            age_days: age.num_days(),
            limit_days: opts.older_than.num_days(),
        });
    }
    let local = listing(folder)?;
    let fingerprint = fingerprint(&local);

    // 2. Processed in the catalog.
    let item = catalog
        .get(session)
        .await
        .map_err(|e| Keep::CheckFailed {
            detail: e.to_string(),
        })?
        .ok_or_else(|| Keep::NotInCatalog {
            table: catalog.table().to_string(),
        })?;
    if item.status != Status::Processed {
        return Err(Keep::NotProcessed {
            session: session.to_string(),
            status: item.status.to_string(),
        });
    }

    // 3. The manifest the catalog verified.
    let (bucket, prefix) = match item.raw_prefix.as_deref().and_then(split_s3_uri) {
        Some(bp) => bp,
        None => match &opts.raw_bucket {
            Some(b) => (b.clone(), labpipe_core::layout::raw_session_prefix(session)),
            None => return Err(Keep::NoRawLocation),
        },
    };
    let manifest_key = format!("{prefix}manifest.json");
    let read = ManifestRead::key(&bucket, &manifest_key)
        .read(s3)
        .await
        .map_err(|e| Keep::ManifestUnreadable {
            bucket: bucket.clone(),
            key: manifest_key.clone(),
            detail: e.to_string(),
        })?;
    let cataloged = item.manifest_sha256.clone().unwrap_or_default();
    if read.sha256 != cataloged {
        return Err(Keep::ManifestNotVerified {
            found: read.sha256,
            cataloged: if cataloged.is_empty() {
                "none recorded".into()
            } else {
                cataloged
            },
        });
    }
    let manifest = read.manifest;
    let listed: BTreeMap<&str, &labpipe_core::ManifestFile> = manifest
        .files
        .iter()
        .map(|f| (f.path.as_str(), f))
        .collect();

    // 4. Nothing in the folder that the upload did not send; sizes as uploaded.
    let mut to_hash = Vec::new();
    for e in &local.entries {
        match e.kind {
            EntryKind::Litter => continue,
            EntryKind::Symlink { .. } => {
                return Err(Keep::Symlink {
                    path: e.path.clone(),
                })
            }
            _ => {}
        }
        let Some(mf) = listed.get(e.path.as_str()) else {
            return Err(Keep::ExtraFile {
                path: e.path.clone(),
            });
        };
        if e.size != mf.size {
            return Err(Keep::Changed {
                path: e.path.clone(),
                what: format!("{} bytes now, {} bytes uploaded", e.size, mf.size),
            });
        }
        to_hash.push((e.path.clone(), *mf));
    }

    // 5. Every uploaded file is in S3 as uploaded: one listing for presence and size (a HEAD
    //    of a missing key answers 403, not 404, to a role without a prefix-free s3:ListBucket;
    //    see labpipe_aws::objects), then a HEAD per object for S3's stored checksum.
    let objects = list_prefix(s3, &bucket, &prefix)
        .await
        .map_err(|e| Keep::CheckFailed {
            detail: e.to_string(),
        })?;
    for mf in &manifest.files {
        let key = format!("{prefix}{}", mf.path);
        let Some(obj) = objects.get(&key) else {
            return Err(Keep::ObjectMissing {
                bucket: bucket.clone(),
                key,
                path: mf.path.clone(),
            });
        };
        if obj.size != mf.size {
            return Err(Keep::ObjectSize {
                bucket: bucket.clone(),
                key,
                expected: mf.size,
                actual: obj.size,
            });
        }
        let Some(expected) = mf.crc64nvme.clone() else {
            return Err(Keep::NoChecksum {
                bucket: bucket.clone(),
                key,
                what: "the manifest records no CRC64NVME for it",
            });
        };
        // HeadObject with x-amz-checksum-mode: ENABLED returns the object's stored checksum
        // (https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadObject.html, ChecksumMode).
        let head = s3
            .head_object()
            .bucket(&bucket)
            .key(&key)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
            .map_err(|e| Keep::CheckFailed {
                detail: format!("HeadObject s3://{bucket}/{key}: {}", describe(&e)),
            })?;
        let Some(actual) = head.checksum_crc64_nvme().map(str::to_string) else {
            return Err(Keep::NoChecksum {
                bucket: bucket.clone(),
                key,
                what: "S3 returns no CRC64NVME for it",
            });
        };
        if actual != expected {
            return Err(Keep::ChecksumDiffers {
                bucket: bucket.clone(),
                key,
                expected,
                actual,
            });
        }
    }

    // 6. Every local file is byte for byte the uploaded one.
    for (path, mf) in to_hash {
        let full = folder.join(&path);
        let (_, sha) = sha256_file(&full).map_err(|e| Keep::Unreadable {
            path: full.display().to_string(),
            detail: e.to_string(),
        })?;
        if sha != mf.sha256 {
            return Err(Keep::Changed {
                path,
                what: format!("SHA-256 {sha} now, {} uploaded", mf.sha256),
            });
        }
    }
    Ok(Proof {
        manifest_files: manifest.files.len(),
        fingerprint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_uris_split_into_bucket_and_prefix() {
        assert_eq!(
            split_s3_uri("s3://raw/raw/20210301_161221/"),
            Some(("raw".into(), "raw/20210301_161221/".into()))
        );
        assert_eq!(split_s3_uri("s3://b"), Some(("b".into(), String::new())));
        assert_eq!(split_s3_uri("s3:///x"), None);
        assert_eq!(split_s3_uri("https://b/x"), None);
    }

    /// A catalog and an S3 client aimed at a closed port: a test that reaches either fails.
    fn clients_pointing_nowhere() -> (Catalog, aws_sdk_s3::Client) {
        let sdk = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("eu-west-1"))
            .endpoint_url("http://127.0.0.1:9")
            .build();
        (Catalog::from_sdk(&sdk, "nowhere"), s3_client(&sdk))
    }

    /// Queued and uploading sessions are kept before anything is read: the clients here point
    /// nowhere, and the folders are old enough and named as sessions.
    #[tokio::test]
    async fn a_session_queued_or_uploading_on_this_pc_is_kept_and_said_so() {
        let (catalog, s3) = clients_pointing_nowhere();
        let lab = tempfile::tempdir().unwrap();
        let locks = tempfile::tempdir().unwrap();
        let (uploading, queued) = ("20210301_090000", "20210301_100000");
        for s in [uploading, queued] {
            std::fs::create_dir(lab.path().join(s)).unwrap();
            std::fs::write(lab.path().join(s).join("ch01.bin"), b"data").unwrap();
        }
        let upload = SessionLock::acquire(locks.path(), uploading).unwrap();
        let opts = CleanOptions {
            older_than: TimeDelta::days(30),
            now: chrono::Local::now().naive_local(),
            dry_run: false,
            raw_bucket: None,
            upload_locks: locks.path().to_path_buf(),
            journal: locks.path().join("journal.sqlite3"),
            queued: BTreeSet::from([queued.to_string()]),
            rig: None,
        };
        let folders = [lab.path().join(uploading), lab.path().join(queued)];
        let out = clean(&catalog, &s3, &folders, &opts, |_| {}).await;
        assert_eq!(out[0].code, "uploading", "{:?}", out[0]);
        assert!(
            out[0].reason.starts_with("uploading on this PC")
                && out[0]
                    .reason
                    .contains(&format!("pid {}", std::process::id())),
            "{}",
            out[0].reason
        );
        assert_eq!(out[1].code, "queued", "{:?}", out[1]);
        assert!(out.iter().all(|o| o.action == Action::Kept && !o.failed));
        assert!(folders.iter().all(|f| f.join("ch01.bin").is_file()));
        drop(upload);
    }

    /// With a rig id, a folder named by its date-time alone is the session `<date-time>_<rig>`
    /// (as `labpipe upload --rig` named it): its upload lock is that session's.
    #[tokio::test]
    async fn with_a_rig_id_a_folder_is_the_session_it_was_uploaded_as() {
        let (catalog, s3) = clients_pointing_nowhere();
        let lab = tempfile::tempdir().unwrap();
        let locks = tempfile::tempdir().unwrap();
        let folder = lab.path().join("20210301_090000");
        std::fs::create_dir(&folder).unwrap();
        std::fs::write(folder.join("ch01.bin"), b"data").unwrap();
        let upload = SessionLock::acquire(locks.path(), "20210301_090000_rigB").unwrap();
        let opts = CleanOptions {
            older_than: TimeDelta::days(30),
            now: chrono::Local::now().naive_local(),
            dry_run: false,
            raw_bucket: None,
            upload_locks: locks.path().to_path_buf(),
            journal: locks.path().join("journal.sqlite3"),
            queued: BTreeSet::new(),
            rig: Some(labpipe_core::session_id::Rig::parse("rigB").unwrap()),
        };
        let out = clean(&catalog, &s3, std::slice::from_ref(&folder), &opts, |_| {}).await;
        assert_eq!(out[0].session, "20210301_090000_rigB");
        assert_eq!(out[0].code, "uploading", "{:?}", out[0]);
        assert!(folder.join("ch01.bin").is_file());
        drop(upload);
    }

    #[test]
    fn only_run_failures_count_as_failures() {
        assert!(Keep::CheckFailed { detail: "x".into() }.is_failure());
        assert!(!Keep::ExtraFile { path: "x".into() }.is_failure());
        assert_eq!(
            Keep::TooRecent {
                age_days: 3,
                limit_days: 30
            }
            .code(),
            "too_recent"
        );
    }
}
