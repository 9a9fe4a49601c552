//! Uploading one checked session: files in parallel, parts in parallel, one read per byte,
//! resume from the journal, conditional writes, verification, manifest last.

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, ChecksumMode, ChecksumType, CompletedMultipartUpload, CompletedPart,
};
use aws_sdk_s3::Client;
use bytes::Bytes;
use labpipe_core::check::ReportFile;
use labpipe_core::{Manifest, SessionReport};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{mpsc::UnboundedSender, Semaphore};
use tokio::task::JoinSet;

use crate::digest::{crc64nvme, crc_to_base64, CrcChain};
use crate::event::{Event, FileOutcome, SessionOutcome};
use crate::journal::{DoneFile, Journal, JournalPart, OpenUpload};
use crate::retry::RetryWatch;
use crate::throttle::Throttle;
use crate::{UploadError, MANIFEST_NAME, MAX_PARTS, MIN_PART_SIZE, RAW_PREFIX};

/// How an upload run behaves; the defaults were measured against a local emulator (see
/// `docs/upload.md`).
#[derive(Debug, Clone)]
pub struct UploadOptions {
    /// Files at most this large go in one `PutObject`; larger ones are sent in parts of this size.
    pub part_size: u64,
    /// Parts (and small files) in flight at once across the whole run; memory use is about
    /// `concurrency × part_size`.
    pub concurrency: usize,
    /// Average cap on bytes sent per second.
    pub max_bandwidth: Option<u64>,
}

impl Default for UploadOptions {
    fn default() -> Self {
        Self {
            part_size: 16 * 1024 * 1024,
            concurrency: 8,
            max_bandwidth: None,
        }
    }
}

/// What happened to one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionResult {
    pub outcome: SessionOutcome,
    pub bytes_total: u64,
    pub bytes_sent: u64,
    pub bytes_resumed: u64,
}

/// `raw/<session>/<relative path>`.
pub fn object_key(session: &str, path: &str) -> String {
    format!("{RAW_PREFIX}/{session}/{path}")
}

/// `raw/<session>/manifest.json`.
pub fn manifest_key(session: &str) -> String {
    object_key(session, MANIFEST_NAME)
}

/// An upload run against one bucket; cheap to clone.
#[derive(Clone)]
pub struct Upload {
    inner: Arc<Inner>,
}

struct Inner {
    s3: Client,
    bucket: String,
    opts: UploadOptions,
    journal: Arc<Journal>,
    events: Option<UnboundedSender<Event>>,
    slots: Arc<Semaphore>,
    throttle: Option<Throttle>,
}

#[derive(Default)]
struct Tally {
    sent: AtomicU64,
    resumed: AtomicU64,
}

struct FileDigest {
    sha256: String,
    crc: u64,
    outcome: FileOutcome,
}

/// What S3 says about an existing object.
struct Remote {
    size: u64,
    crc64nvme: Option<String>,
}

impl Upload {
    /// Prepares a run and checks once that the bucket exists and the credentials work, so a
    /// wrong bucket or key fails before any session is touched.
    pub async fn connect(
        s3: Client,
        bucket: impl Into<String>,
        opts: UploadOptions,
        journal: Arc<Journal>,
        events: Option<UnboundedSender<Event>>,
    ) -> Result<Self, UploadError> {
        let bucket = bucket.into();
        if opts.part_size < MIN_PART_SIZE {
            return Err(UploadError::Invalid {
                session: "-".into(),
                detail: format!(
                    "part size {} is below the S3 minimum of 5 MiB; choose a larger --part-size",
                    opts.part_size
                ),
            });
        }
        let upload = Upload {
            inner: Arc::new(Inner {
                slots: Arc::new(Semaphore::new(opts.concurrency.max(1))),
                throttle: opts.max_bandwidth.map(Throttle::new),
                s3,
                bucket,
                opts,
                journal,
                events,
            }),
        };
        upload.preflight().await?;
        Ok(upload)
    }

    pub fn bucket(&self) -> &str {
        &self.inner.bucket
    }

    fn emit(&self, e: Event) {
        if let Some(tx) = &self.inner.events {
            let _ = tx.send(e);
        }
    }

    /// Reports the retries of one request on `key` as events.
    fn watch(&self, key: &str) -> RetryWatch {
        RetryWatch::new(self.inner.events.clone(), key)
    }

    /// A GetObject of `key` in the raw bucket whose retries are reported as events.
    async fn get_object(
        &self,
        key: &str,
    ) -> Result<
        aws_sdk_s3::operation::get_object::GetObjectOutput,
        SdkError<aws_sdk_s3::operation::get_object::GetObjectError>,
    > {
        let i = &self.inner;
        i.s3.get_object()
            .bucket(&i.bucket)
            .key(key)
            .customize()
            .interceptor(self.watch(key))
            .send()
            .await
    }

    async fn preflight(&self) -> Result<(), UploadError> {
        let i = &self.inner;
        let key = format!("{RAW_PREFIX}/.labpipe-preflight");
        match self.get_object(&key).await {
            Ok(_) => Ok(()),
            Err(e) if matches!(e.code(), Some("NoSuchKey") | Some("AccessDenied")) => Ok(()),
            Err(e)
                if e.raw_response().is_some_and(|r| r.status().as_u16() == 404)
                    && e.code().is_none() =>
            {
                Ok(())
            }
            Err(e) => Err(classify(&i.bucket, "GetObject", &key, e)),
        }
    }

    /// Uploads one checked session; emits events and returns what happened.
    ///
    /// Sessions whose verdict is `fail` or `wait` are refused with their findings.
    pub async fn session(&self, report: &SessionReport) -> Result<SessionResult, UploadError> {
        let session = report.session.clone();
        if report.id.is_none() || !report.verdict.is_uploadable() {
            let findings: Vec<String> = report
                .findings
                .iter()
                .filter(|f| f.severity >= labpipe_core::Severity::Warning)
                .map(|f| match &f.file {
                    Some(file) => format!("{file}: {}", f.message),
                    None => f.message.clone(),
                })
                .collect();
            self.emit(Event::SessionRefused {
                session: session.clone(),
                verdict: report.verdict.as_str().into(),
                findings: findings.clone(),
            });
            return Err(UploadError::NotUploadable {
                session,
                verdict: report.verdict.as_str(),
                findings,
            });
        }
        let tally = Arc::new(Tally::default());
        self.emit(Event::SessionStarted {
            session: session.clone(),
            files: report.files.len(),
            bytes_total: report.total_bytes,
        });
        let result = self.session_files(report, &tally).await;
        let sent = tally.sent.load(Ordering::Relaxed);
        let resumed = tally.resumed.load(Ordering::Relaxed);
        match result {
            Ok(outcome) => {
                self.emit(Event::SessionDone {
                    session: session.clone(),
                    outcome,
                    bytes_total: report.total_bytes,
                    bytes_sent: sent,
                    bytes_resumed: resumed,
                    manifest_key: manifest_key(&session),
                });
                Ok(SessionResult {
                    outcome,
                    bytes_total: report.total_bytes,
                    bytes_sent: sent,
                    bytes_resumed: resumed,
                })
            }
            Err(e) => {
                tracing::warn!(session = %session, error = %e, "session failed");
                self.emit(Event::SessionFailed {
                    session,
                    code: e.code().into(),
                    reason: e.to_string(),
                    bytes_sent: sent,
                });
                Err(e)
            }
        }
    }

    async fn session_files(
        &self,
        report: &SessionReport,
        tally: &Arc<Tally>,
    ) -> Result<SessionOutcome, UploadError> {
        let session = &report.session;
        if report.files.iter().any(|f| f.path == MANIFEST_NAME) {
            return Err(UploadError::Invalid {
                session: session.clone(),
                detail: format!("a file named {MANIFEST_NAME} would collide with the upload's manifest; rename it"),
            });
        }
        self.abort_orphans(session).await?;

        let mut set = JoinSet::new();
        for (index, file) in report.files.iter().enumerate() {
            let me = self.clone();
            let file = file.clone();
            let folder = report.path.clone();
            let session = session.clone();
            let tally = tally.clone();
            set.spawn(async move { (index, me.file(&session, &folder, &file, &tally).await) });
        }
        let mut digests: Vec<Option<FileDigest>> = (0..report.files.len()).map(|_| None).collect();
        while let Some(joined) = set.join_next().await {
            let (index, result) = joined.map_err(|e| UploadError::Invalid {
                session: session.clone(),
                detail: format!("upload task failed: {e}"),
            })?;
            match result {
                Ok(d) => digests[index] = Some(d),
                Err(e) => {
                    set.abort_all();
                    while set.join_next().await.is_some() {}
                    return Err(e);
                }
            }
        }
        let digests: Vec<FileDigest> = digests
            .into_iter()
            .map(|d| d.expect("every file task reported"))
            .collect();
        let all_there = digests
            .iter()
            .all(|d| d.outcome == FileOutcome::AlreadyUploaded);
        let hashes = digests
            .iter()
            .map(|d| (d.sha256.clone(), Some(crc_to_base64(d.crc))))
            .collect();
        let manifest = Manifest::new(report, hashes, chrono::Utc::now()).map_err(|e| {
            UploadError::Invalid {
                session: session.clone(),
                detail: e.to_string(),
            }
        })?;
        // The manifest vouches for the local files as they are now: one last look at each.
        for file in &report.files {
            let local = report.path.join(&file.path);
            let meta = std::fs::metadata(&local).map_err(|source| UploadError::Io {
                path: local.clone(),
                source,
            })?;
            unchanged(&file.path, &meta, file)?;
        }
        let manifest_there = self.put_manifest(session, &manifest).await?;
        // A create whose response was lost leaves an upload nobody knows: clean it up now.
        if let Err(e) = self.abort_orphans(session).await {
            tracing::warn!(session, error = %e, "could not abort orphaned multipart uploads; the next run will");
        }
        Ok(if all_there && manifest_there {
            SessionOutcome::AlreadyUploaded
        } else {
            SessionOutcome::Uploaded
        })
    }

    /// Aborts multipart uploads under the session's prefix that the journal does not know: they
    /// were created by a run killed before it could record them, and would otherwise cost storage
    /// forever.
    async fn abort_orphans(&self, session: &str) -> Result<(), UploadError> {
        let i = &self.inner;
        let prefix = format!("{RAW_PREFIX}/{session}/");
        let known = i.journal.known_upload_ids()?;
        let mut key_marker: Option<String> = None;
        let mut id_marker: Option<String> = None;
        loop {
            let out =
                i.s3.list_multipart_uploads()
                    .bucket(&i.bucket)
                    .prefix(&prefix)
                    .set_key_marker(key_marker.clone())
                    .set_upload_id_marker(id_marker.clone())
                    .customize()
                    .interceptor(self.watch(&prefix))
                    .send()
                    .await
                    .map_err(|e| classify(&i.bucket, "ListMultipartUploads", &prefix, e))?;
            for u in out.uploads() {
                let (Some(key), Some(id)) = (u.key(), u.upload_id()) else {
                    continue;
                };
                if !known.iter().any(|k| k == id) {
                    tracing::info!(key, upload_id = id, "aborting orphaned multipart upload");
                    self.abort(key, id).await?;
                }
            }
            if out.is_truncated() == Some(true) {
                key_marker = out.next_key_marker().map(String::from);
                id_marker = out.next_upload_id_marker().map(String::from);
            } else {
                return Ok(());
            }
        }
    }

    async fn abort(&self, key: &str, upload_id: &str) -> Result<(), UploadError> {
        let i = &self.inner;
        match i
            .s3
            .abort_multipart_upload()
            .bucket(&i.bucket)
            .key(key)
            .upload_id(upload_id)
            .customize()
            .interceptor(self.watch(key))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("NoSuchUpload") => Ok(()),
            Err(e) => Err(classify(&i.bucket, "AbortMultipartUpload", key, e)),
        }
    }

    async fn head(&self, key: &str) -> Result<Option<Remote>, UploadError> {
        let i = &self.inner;
        match i
            .s3
            .head_object()
            .bucket(&i.bucket)
            .key(key)
            .checksum_mode(ChecksumMode::Enabled)
            .customize()
            .interceptor(self.watch(key))
            .send()
            .await
        {
            Ok(o) => Ok(Some(Remote {
                size: o.content_length().unwrap_or(0).max(0) as u64,
                crc64nvme: o.checksum_crc64_nvme().map(String::from),
            })),
            Err(SdkError::ServiceError(e)) if e.err().is_not_found() => Ok(None),
            Err(e) => Err(classify(&i.bucket, "HeadObject", key, e)),
        }
    }

    /// One file: already there? then compare; else upload (resuming), then verify.
    async fn file(
        &self,
        session: &str,
        folder: &Path,
        file: &ReportFile,
        tally: &Arc<Tally>,
    ) -> Result<FileDigest, UploadError> {
        let i = &self.inner;
        let local = folder.join(&file.path);
        let key = object_key(session, &file.path);
        let meta = std::fs::metadata(&local).map_err(|source| UploadError::Io {
            path: local.clone(),
            source,
        })?;
        unchanged(&file.path, &meta, file)?;

        if let Some(remote) = self.head(&key).await? {
            // A run that completed the object but died before recording it, or a re-run.
            if let Some(open) = i.journal.open_upload(&i.bucket, &key)? {
                self.abort(&key, &open.upload_id).await?;
                i.journal.end_upload(&i.bucket, &key, &open.upload_id)?;
            }
            let known = i.journal.done_file(&i.bucket, &key)?.filter(|d| {
                d.size == file.size
                    && d.mtime == file.modified_unix
                    && remote.crc64nvme.as_deref() == Some(d.crc64nvme.as_str())
            });
            let (sha256, crc) = match known {
                Some(d) => (d.sha256, crc_from_base64(&d.crc64nvme).unwrap_or_default()),
                None => {
                    let reader = FileReader::open(&local, file)?;
                    let (sha, crc) = spawn_read_all(reader).await?;
                    (sha, crc)
                }
            };
            let local_crc = crc_to_base64(crc);
            if remote.size != file.size || remote.crc64nvme.as_deref() != Some(local_crc.as_str()) {
                return Err(UploadError::Conflict {
                    bucket: i.bucket.clone(),
                    key,
                    detail: format!(
                        "remote {} bytes crc64nvme {}, local {} bytes crc64nvme {local_crc}",
                        remote.size,
                        remote.crc64nvme.as_deref().unwrap_or("none"),
                        file.size
                    ),
                });
            }
            self.emit(Event::FileProgress {
                session: session.into(),
                path: file.path.clone(),
                bytes_done: file.size,
                bytes_total: file.size,
                rate: 0.0,
                eta_secs: Some(0.0),
            });
            self.emit(Event::FileDone {
                session: session.into(),
                path: file.path.clone(),
                outcome: FileOutcome::AlreadyUploaded,
                bytes_sent: 0,
                bytes_resumed: 0,
            });
            self.verified(session, file, &key, &sha256, local_crc)?;
            return Ok(FileDigest {
                sha256,
                crc,
                outcome: FileOutcome::AlreadyUploaded,
            });
        }

        let progress = Arc::new(FileProgress::new(session, &file.path, file.size));
        let (sha256, crc, sent, resumed) = if file.size <= i.opts.part_size {
            self.put_small(&local, &key, file, tally, &progress).await?
        } else {
            self.put_multipart(&local, &key, file, tally, &progress)
                .await?
        };
        self.emit(Event::FileDone {
            session: session.into(),
            path: file.path.clone(),
            outcome: FileOutcome::Uploaded,
            bytes_sent: sent,
            bytes_resumed: resumed,
        });
        let crc_b64 = crc_to_base64(crc);
        self.verify(&key, file.size, &crc_b64).await?;
        self.verified(session, file, &key, &sha256, crc_b64)?;
        Ok(FileDigest {
            sha256,
            crc,
            outcome: FileOutcome::Uploaded,
        })
    }

    /// A file's object is proven equal to the local file: say so, and remember it in the journal
    /// so a re-run needs no re-read.
    fn verified(
        &self,
        session: &str,
        file: &ReportFile,
        key: &str,
        sha256: &str,
        crc_b64: String,
    ) -> Result<(), UploadError> {
        let i = &self.inner;
        self.emit(Event::FileVerified {
            session: session.into(),
            path: file.path.clone(),
            key: key.into(),
            crc64nvme: crc_b64.clone(),
        });
        i.journal.record_done(
            &i.bucket,
            key,
            &DoneFile {
                size: file.size,
                mtime: file.modified_unix,
                sha256: sha256.into(),
                crc64nvme: crc_b64,
            },
        )
    }

    /// Aborts a multipart upload whose parts must not be completed (the file changed, or another
    /// object holds the key) and forgets it in the journal, so the next run starts that file
    /// over. Failures are only logged: the session fails anyway, and the next run aborts what the
    /// journal does not know.
    async fn abandon(&self, key: &str, upload_id: &str) {
        let i = &self.inner;
        if let Err(e) = self.abort(key, upload_id).await {
            tracing::warn!(key, upload_id, error = %e, "could not abort the multipart upload; the next run will");
        }
        if let Err(e) = i.journal.end_upload(&i.bucket, key, upload_id) {
            tracing::warn!(key, upload_id, error = %e, "could not forget the multipart upload in the journal");
        }
    }

    /// After a conditional write was refused: is what is there exactly what we meant to write?
    async fn same_or_conflict(
        &self,
        key: &str,
        size: u64,
        crc_b64: &str,
    ) -> Result<(), UploadError> {
        match self.head(key).await? {
            Some(r) if r.size == size && r.crc64nvme.as_deref() == Some(crc_b64) => Ok(()),
            Some(r) => Err(UploadError::Conflict {
                bucket: self.inner.bucket.clone(),
                key: key.into(),
                detail: format!(
                    "remote {} bytes crc64nvme {}, local {size} bytes crc64nvme {crc_b64}",
                    r.size,
                    r.crc64nvme.as_deref().unwrap_or("none")
                ),
            }),
            None => Err(UploadError::S3 {
                operation: "PutObject",
                key: key.into(),
                detail: "the write was refused but no object exists; run the upload again".into(),
            }),
        }
    }

    async fn put_small(
        &self,
        local: &Path,
        key: &str,
        file: &ReportFile,
        tally: &Tally,
        progress: &FileProgress,
    ) -> Result<(String, u64, u64, u64), UploadError> {
        let i = &self.inner;
        let _slot = i
            .slots
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore is never closed");
        let reader = Arc::new(Mutex::new(FileReader::open(local, file)?));
        let (buf, crc) = spawn_read_part(reader.clone(), file.size).await?;
        let sha = finish(reader).await?;
        let crc_b64 = crc_to_base64(crc);
        if let Some(t) = &i.throttle {
            t.reserve(file.size).await;
        }
        let sent =
            put_conditional(&i.s3, &i.bucket, key, buf, &crc_b64, None, self.watch(key)).await;
        match sent {
            Ok(()) => {}
            Err(e) if is_precondition_failed(&e) => {
                self.same_or_conflict(key, file.size, &crc_b64).await?
            }
            Err(e) => return Err(classify(&i.bucket, "PutObject", key, e)),
        }
        tally.sent.fetch_add(file.size, Ordering::Relaxed);
        progress.add(file.size, true);
        self.emit(progress.event());
        Ok((sha, crc, file.size, 0))
    }

    async fn put_multipart(
        &self,
        local: &Path,
        key: &str,
        file: &ReportFile,
        tally: &Arc<Tally>,
        progress: &Arc<FileProgress>,
    ) -> Result<(String, u64, u64, u64), UploadError> {
        let i = &self.inner;
        let size = file.size;
        let mut open = i.journal.open_upload(&i.bucket, key)?;
        let mut remote_parts: HashMap<i32, RemotePart> = HashMap::new();
        if let Some(o) = open.clone() {
            let stale =
                o.size != size || o.mtime != file.modified_unix || o.part_size < MIN_PART_SIZE;
            if stale {
                self.abort(key, &o.upload_id).await?;
                i.journal.end_upload(&i.bucket, key, &o.upload_id)?;
                open = None;
            } else {
                match self.list_parts(key, &o.upload_id).await {
                    Ok(parts) => remote_parts = parts,
                    Err(None) => {
                        i.journal.end_upload(&i.bucket, key, &o.upload_id)?;
                        open = None;
                    }
                    Err(Some(e)) => return Err(e),
                }
            }
        }
        let upload = match open {
            Some(o) => o,
            None => {
                let part_size = i.opts.part_size.max(size.div_ceil(MAX_PARTS));
                let out =
                    i.s3.create_multipart_upload()
                        .bucket(&i.bucket)
                        .key(key)
                        .checksum_algorithm(ChecksumAlgorithm::Crc64Nvme)
                        .checksum_type(ChecksumType::FullObject)
                        .customize()
                        .interceptor(self.watch(key))
                        .send()
                        .await
                        .map_err(|e| classify(&i.bucket, "CreateMultipartUpload", key, e))?;
                let upload_id = out.upload_id().unwrap_or_default().to_string();
                let o = OpenUpload {
                    upload_id,
                    size,
                    mtime: file.modified_unix,
                    part_size,
                };
                i.journal.begin_upload(&i.bucket, key, &o)?;
                o
            }
        };
        let journal_parts: HashMap<i32, JournalPart> = i
            .journal
            .parts(&upload.upload_id)?
            .into_iter()
            .map(|p| (p.number, p))
            .collect();

        let result = self
            .send_parts(
                local,
                key,
                file,
                &upload,
                &remote_parts,
                &journal_parts,
                tally,
                progress,
            )
            .await;
        let (sha, crc, parts, sent, resumed) = match result {
            Ok(r) => r,
            Err(e) => {
                if matches!(e, UploadError::FileChanged { .. }) {
                    // The bytes already sent no longer describe the file: start over next time.
                    self.abandon(key, &upload.upload_id).await;
                }
                return Err(e);
            }
        };
        let crc_b64 = crc_to_base64(crc);
        let meta = std::fs::metadata(local).map_err(|source| UploadError::Io {
            path: local.into(),
            source,
        })?;
        if let Err(e) = unchanged(&file.path, &meta, file) {
            self.abandon(key, &upload.upload_id).await;
            return Err(e);
        }
        let done =
            i.s3.complete_multipart_upload()
                .bucket(&i.bucket)
                .key(key)
                .upload_id(&upload.upload_id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(parts))
                        .build(),
                )
                .checksum_crc64_nvme(&crc_b64)
                .checksum_type(ChecksumType::FullObject)
                .if_none_match("*")
                .customize()
                .interceptor(self.watch(key))
                .send()
                .await;
        match done {
            Ok(_) => {}
            // A retried completion whose first attempt succeeded, or someone else's object.
            Err(e) if is_precondition_failed(&e) || e.code() == Some("NoSuchUpload") => {
                let same = self.same_or_conflict(key, size, &crc_b64).await;
                if same.is_err() {
                    self.abandon(key, &upload.upload_id).await;
                }
                same?
            }
            Err(e) => return Err(classify(&i.bucket, "CompleteMultipartUpload", key, e)),
        }
        i.journal.end_upload(&i.bucket, key, &upload.upload_id)?;
        Ok((sha, crc, sent, resumed))
    }

    /// `Ok(parts)`, `Err(None)` when the upload no longer exists, `Err(Some(e))` otherwise.
    async fn list_parts(
        &self,
        key: &str,
        upload_id: &str,
    ) -> Result<HashMap<i32, RemotePart>, Option<UploadError>> {
        let i = &self.inner;
        let mut parts = HashMap::new();
        let mut marker: Option<String> = None;
        loop {
            let out =
                i.s3.list_parts()
                    .bucket(&i.bucket)
                    .key(key)
                    .upload_id(upload_id)
                    .set_part_number_marker(marker.clone())
                    .customize()
                    .interceptor(self.watch(key))
                    .send()
                    .await;
            let out = match out {
                Ok(o) => o,
                Err(e) if e.code() == Some("NoSuchUpload") => return Err(None),
                // Some S3-compatible servers answer with a body the SDK cannot parse (the local
                // emulator names its root `ListPartsResponse`): fall back to the journal's parts,
                // after making sure the upload still exists.
                Err(SdkError::ServiceError(e)) if e.raw().status().as_u16() == 200 => {
                    tracing::debug!(key, error = %DisplayErrorContext(e.err()), "unreadable ListParts answer; using the journal's parts");
                    return match self.upload_exists(key, upload_id).await {
                        Ok(true) => {
                            let recorded = i.journal.parts(upload_id).map_err(Some)?;
                            Ok(recorded
                                .into_iter()
                                .map(|p| {
                                    (
                                        p.number,
                                        RemotePart {
                                            etag: p.etag,
                                            crc64nvme: Some(p.crc64nvme),
                                            size: p.size,
                                        },
                                    )
                                })
                                .collect())
                        }
                        Ok(false) => Err(None),
                        Err(e) => Err(Some(e)),
                    };
                }
                Err(e) => return Err(Some(classify(&i.bucket, "ListParts", key, e))),
            };
            for p in out.parts() {
                if let (Some(n), Some(etag)) = (p.part_number(), p.e_tag()) {
                    parts.insert(
                        n,
                        RemotePart {
                            etag: etag.into(),
                            crc64nvme: p.checksum_crc64_nvme().map(String::from),
                            size: p.size().unwrap_or(0).max(0) as u64,
                        },
                    );
                }
            }
            if out.is_truncated() == Some(true) {
                marker = out.next_part_number_marker().map(String::from);
            } else {
                return Ok(parts);
            }
        }
    }

    async fn upload_exists(&self, key: &str, upload_id: &str) -> Result<bool, UploadError> {
        let i = &self.inner;
        let mut key_marker: Option<String> = None;
        let mut id_marker: Option<String> = None;
        loop {
            let out =
                i.s3.list_multipart_uploads()
                    .bucket(&i.bucket)
                    .prefix(key)
                    .set_key_marker(key_marker.clone())
                    .set_upload_id_marker(id_marker.clone())
                    .customize()
                    .interceptor(self.watch(key))
                    .send()
                    .await
                    .map_err(|e| classify(&i.bucket, "ListMultipartUploads", key, e))?;
            if out
                .uploads()
                .iter()
                .any(|u| u.key() == Some(key) && u.upload_id() == Some(upload_id))
            {
                return Ok(true);
            }
            if out.is_truncated() != Some(true) {
                return Ok(false);
            }
            key_marker = out.next_key_marker().map(String::from);
            id_marker = out.next_upload_id_marker().map(String::from);
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn send_parts(
        &self,
        local: &Path,
        key: &str,
        file: &ReportFile,
        upload: &OpenUpload,
        remote: &HashMap<i32, RemotePart>,
        journal: &HashMap<i32, JournalPart>,
        tally: &Arc<Tally>,
        progress: &Arc<FileProgress>,
    ) -> Result<(String, u64, Vec<CompletedPart>, u64, u64), UploadError> {
        let i = &self.inner;
        let reader = Arc::new(Mutex::new(FileReader::open(local, file)?));
        let count = file.size.div_ceil(upload.part_size);
        let mut chain = CrcChain::default();
        let mut parts: Vec<CompletedPart> = Vec::with_capacity(count as usize);
        let mut tasks: JoinSet<Result<CompletedPart, UploadError>> = JoinSet::new();
        let (mut sent, mut resumed) = (0u64, 0u64);
        for index in 0..count {
            let offset = index * upload.part_size;
            let len = upload.part_size.min(file.size - offset);
            let number = (index + 1) as i32;
            let slot = i
                .slots
                .clone()
                .acquire_owned()
                .await
                .expect("semaphore is never closed");
            // Fail early when a part already failed.
            while let Some(done) = tasks.try_join_next() {
                parts.push(joined(done)?);
            }
            let (buf, crc) = spawn_read_part(reader.clone(), len).await?;
            chain.push(crc, len);
            let crc_b64 = crc_to_base64(crc);
            if let Some(rp) = remote.get(&number) {
                let proven = match &rp.crc64nvme {
                    Some(c) => *c == crc_b64,
                    None => journal
                        .get(&number)
                        .is_some_and(|jp| jp.etag == rp.etag && jp.crc64nvme == crc_b64),
                };
                if rp.size == len && proven {
                    drop(slot);
                    resumed += len;
                    tally.resumed.fetch_add(len, Ordering::Relaxed);
                    progress.add(len, false);
                    self.emit(progress.event());
                    parts.push(
                        CompletedPart::builder()
                            .part_number(number)
                            .e_tag(&rp.etag)
                            .checksum_crc64_nvme(crc_b64)
                            .build(),
                    );
                    continue;
                }
            }
            sent += len;
            let me = self.clone();
            let key = key.to_string();
            let upload_id = upload.upload_id.clone();
            let tally = tally.clone();
            let progress = progress.clone();
            tasks.spawn(async move {
                let _slot = slot;
                let etag = me
                    .upload_part(&key, &upload_id, number, buf, &crc_b64)
                    .await?;
                me.inner.journal.record_part(
                    &upload_id,
                    &JournalPart {
                        number,
                        etag: etag.clone(),
                        crc64nvme: crc_b64.clone(),
                        size: len,
                    },
                )?;
                tally.sent.fetch_add(len, Ordering::Relaxed);
                progress.add(len, true);
                me.emit(progress.event());
                Ok(CompletedPart::builder()
                    .part_number(number)
                    .e_tag(etag)
                    .checksum_crc64_nvme(crc_b64)
                    .build())
            });
        }
        let sha = finish(reader).await?;
        while let Some(done) = tasks.join_next().await {
            parts.push(joined(done)?);
        }
        parts.sort_by_key(|p| p.part_number());
        Ok((sha, chain.value(), parts, sent, resumed))
    }

    /// Sends one part; the SDK retries transient failures, and a part gets two more rounds on top
    /// after a pause, because losing a 600 MB session to one bad minute of Wi-Fi is not an option.
    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: i32,
        body: Bytes,
        crc_b64: &str,
    ) -> Result<String, UploadError> {
        let i = &self.inner;
        // One watch for every round, so attempt numbers run on across rounds.
        let watch = self.watch(key);
        let mut round = 0u32;
        loop {
            if let Some(t) = &i.throttle {
                t.reserve(body.len() as u64).await;
            }
            let out =
                i.s3.upload_part()
                    .bucket(&i.bucket)
                    .key(key)
                    .upload_id(upload_id)
                    .part_number(number)
                    .content_length(body.len() as i64)
                    .checksum_algorithm(ChecksumAlgorithm::Crc64Nvme)
                    .checksum_crc64_nvme(crc_b64)
                    .body(ByteStream::from(body.clone()))
                    .customize()
                    .disable_payload_signing()
                    .interceptor(watch.clone())
                    .send()
                    .await;
            match out {
                Ok(o) => return Ok(o.e_tag().unwrap_or_default().to_string()),
                Err(e) => {
                    let err = classify(&i.bucket, "UploadPart", key, e);
                    round += 1;
                    if !matches!(err, UploadError::S3 { .. }) || round > 2 {
                        return Err(err);
                    }
                    tracing::warn!(key, part = number, error = %err, "part failed after retries; pausing before another round");
                    tokio::time::sleep(backoff(round)).await;
                }
            }
        }
    }

    async fn verify(&self, key: &str, size: u64, crc_b64: &str) -> Result<(), UploadError> {
        let i = &self.inner;
        let found = self.head(key).await?;
        match found {
            Some(r) if r.size == size && r.crc64nvme.as_deref() == Some(crc_b64) => Ok(()),
            other => Err(UploadError::Verify {
                bucket: i.bucket.clone(),
                key: key.into(),
                expected: format!("{size} bytes crc64nvme {crc_b64}"),
                found: match other {
                    Some(r) => format!(
                        "{} bytes crc64nvme {}",
                        r.size,
                        r.crc64nvme.as_deref().unwrap_or("none")
                    ),
                    None => "no object".into(),
                },
            }),
        }
    }

    /// Writes the manifest unless an equal one is there; returns whether it was already there.
    async fn put_manifest(&self, session: &str, manifest: &Manifest) -> Result<bool, UploadError> {
        let i = &self.inner;
        let key = manifest_key(session);
        let body = Bytes::from(manifest.to_json().into_bytes());
        let crc_b64 = crc_to_base64(crc64nvme(&body));
        match put_conditional(
            &i.s3,
            &i.bucket,
            &key,
            body,
            &crc_b64,
            Some("application/json"),
            self.watch(&key),
        )
        .await
        {
            Ok(()) => Ok(false),
            Err(e) if is_precondition_failed(&e) => {
                let got = self
                    .get_object(&key)
                    .await
                    .map_err(|e| classify(&i.bucket, "GetObject", &key, e))?;
                let bytes = got
                    .body
                    .collect()
                    .await
                    .map_err(|e| UploadError::S3 {
                        operation: "GetObject",
                        key: key.clone(),
                        detail: e.to_string(),
                    })?
                    .into_bytes();
                let same = Manifest::from_json(&bytes).is_ok_and(|m| {
                    m.files.len() == manifest.files.len()
                        && m.files.iter().zip(&manifest.files).all(|(a, b)| {
                            a.path == b.path && a.size == b.size && a.sha256 == b.sha256
                        })
                });
                if same {
                    Ok(true)
                } else {
                    Err(UploadError::Conflict {
                        bucket: i.bucket.clone(),
                        key,
                        detail: "an existing manifest lists different files or hashes".into(),
                    })
                }
            }
            Err(e) => Err(classify(&i.bucket, "PutObject", &key, e)),
        }
    }
}

struct RemotePart {
    etag: String,
    crc64nvme: Option<String>,
    size: u64,
}

async fn put_conditional(
    s3: &Client,
    bucket: &str,
    key: &str,
    body: Bytes,
    crc_b64: &str,
    content_type: Option<&str>,
    watch: RetryWatch,
) -> Result<
    (),
    SdkError<
        aws_sdk_s3::operation::put_object::PutObjectError,
        aws_sdk_s3::config::http::HttpResponse,
    >,
> {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .content_length(body.len() as i64)
        .checksum_algorithm(ChecksumAlgorithm::Crc64Nvme)
        .checksum_crc64_nvme(crc_b64)
        .set_content_type(content_type.map(String::from))
        .if_none_match("*")
        .body(ByteStream::from(body))
        .customize()
        .disable_payload_signing()
        .interceptor(watch)
        .send()
        .await
        .map(drop)
}

fn joined(
    done: Result<Result<CompletedPart, UploadError>, tokio::task::JoinError>,
) -> Result<CompletedPart, UploadError> {
    done.map_err(|e| UploadError::S3 {
        operation: "UploadPart",
        key: String::new(),
        detail: format!("part task failed: {e}"),
    })?
}

fn backoff(round: u32) -> Duration {
    let base = Duration::from_secs(1 << round.min(4));
    base + Duration::from_millis(rand::random::<u64>() % 1000)
}

fn crc_from_base64(b64: &str) -> Option<u64> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    Some(u64::from_be_bytes(bytes.try_into().ok()?))
}

fn is_precondition_failed<E: ProvideErrorMetadata>(
    e: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> bool {
    e.code() == Some("PreconditionFailed")
        || e.raw_response().is_some_and(|r| r.status().as_u16() == 412)
}

/// Turns an SDK error (after the SDK's own retries) into what the user can act on.
fn classify<E>(
    bucket: &str,
    operation: &'static str,
    key: &str,
    e: SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> UploadError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = e.raw_response().map(|r| r.status().as_u16());
    let detail = match (e.code(), e.message()) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => c.to_string(),
        _ => DisplayErrorContext(&e).to_string(),
    };
    match e.code() {
        Some("NoSuchBucket") => {
            return UploadError::BucketNotFound {
                bucket: bucket.into(),
            }
        }
        Some("AccessDenied") | Some("AllAccessDisabled") => {
            return UploadError::AccessDenied {
                bucket: bucket.into(),
                detail,
            }
        }
        Some("InvalidAccessKeyId")
        | Some("SignatureDoesNotMatch")
        | Some("ExpiredToken")
        | Some("TokenRefreshRequired")
        | Some("InvalidToken") => return UploadError::Credentials { detail },
        _ => {}
    }
    if status == Some(403) {
        return UploadError::AccessDenied {
            bucket: bucket.into(),
            detail,
        };
    }
    if detail.contains("failed to load credentials")
        || detail.contains("no credentials")
        || detail.contains("credentials provider")
    {
        return UploadError::Credentials { detail };
    }
    UploadError::S3 {
        operation,
        key: key.into(),
        detail,
    }
}

/// Compares a file's current size and mtime with what the checks saw.
fn unchanged(path: &str, meta: &std::fs::Metadata, file: &ReportFile) -> Result<(), UploadError> {
    let mtime = unix_seconds(meta.modified().unwrap_or(SystemTime::UNIX_EPOCH));
    if meta.len() != file.size {
        return Err(UploadError::FileChanged {
            path: path.into(),
            what: format!("size {} → {} bytes", file.size, meta.len()),
        });
    }
    if mtime != file.modified_unix {
        return Err(UploadError::FileChanged {
            path: path.into(),
            what: "modification time changed".into(),
        });
    }
    Ok(())
}

fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

/// Reads one file front to back exactly once, feeding SHA-256 as it goes and checking after
/// every block that the file is still the one the checks saw.
struct FileReader {
    file: File,
    path: PathBuf,
    report: ReportFile,
    sha: Sha256,
}

impl FileReader {
    fn open(path: &Path, report: &ReportFile) -> Result<Self, UploadError> {
        let file = File::open(path).map_err(|source| UploadError::Io {
            path: path.into(),
            source,
        })?;
        Ok(Self {
            file,
            path: path.into(),
            report: report.clone(),
            sha: Sha256::new(),
        })
    }

    fn read_part(&mut self, len: u64) -> Result<(Bytes, u64), UploadError> {
        let mut buf = vec![0u8; len as usize];
        if let Err(e) = self.file.read_exact(&mut buf) {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                return Err(UploadError::FileChanged {
                    path: self.report.path.clone(),
                    what: "file shrank".into(),
                });
            }
            return Err(UploadError::Io {
                path: self.path.clone(),
                source: e,
            });
        }
        self.sha.update(&buf);
        let crc = crc64nvme(&buf);
        let meta = self.file.metadata().map_err(|source| UploadError::Io {
            path: self.path.clone(),
            source,
        })?;
        unchanged(&self.report.path, &meta, &self.report)?;
        Ok((Bytes::from(buf), crc))
    }

    /// The SHA-256, once every byte was read and nothing follows them.
    fn finish(&mut self) -> Result<String, UploadError> {
        let mut extra = [0u8; 1];
        let n = self
            .file
            .read(&mut extra)
            .map_err(|source| UploadError::Io {
                path: self.path.clone(),
                source,
            })?;
        if n != 0 {
            return Err(UploadError::FileChanged {
                path: self.report.path.clone(),
                what: "file grew".into(),
            });
        }
        let meta = self.file.metadata().map_err(|source| UploadError::Io {
            path: self.path.clone(),
            source,
        })?;
        unchanged(&self.report.path, &meta, &self.report)?;
        Ok(hex::encode(std::mem::take(&mut self.sha).finalize()))
    }
}

async fn spawn_read_part(
    reader: Arc<Mutex<FileReader>>,
    len: u64,
) -> Result<(Bytes, u64), UploadError> {
    tokio::task::spawn_blocking(move || {
        reader
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .read_part(len)
    })
    .await
    .map_err(|e| UploadError::Invalid {
        session: "-".into(),
        detail: format!("read task failed: {e}"),
    })?
}

async fn finish(reader: Arc<Mutex<FileReader>>) -> Result<String, UploadError> {
    tokio::task::spawn_blocking(move || reader.lock().unwrap_or_else(|e| e.into_inner()).finish())
        .await
        .map_err(|e| UploadError::Invalid {
            session: "-".into(),
            detail: format!("read task failed: {e}"),
        })?
}

/// Reads a whole file only to hash it (the object is already in S3).
async fn spawn_read_all(reader: FileReader) -> Result<(String, u64), UploadError> {
    tokio::task::spawn_blocking(move || {
        let mut reader = reader;
        let mut chain = CrcChain::default();
        let mut left = reader.report.size;
        while left > 0 {
            let len = left.min(8 << 20);
            let (buf, crc) = reader.read_part(len)?;
            chain.push(crc, buf.len() as u64);
            left -= len;
        }
        Ok((reader.finish()?, chain.value()))
    })
    .await
    .map_err(|e| UploadError::Invalid {
        session: "-".into(),
        detail: format!("read task failed: {e}"),
    })?
}

/// Per-file progress shared by that file's part tasks.
struct FileProgress {
    session: String,
    path: String,
    total: u64,
    started: Instant,
    done: AtomicU64,
    sent: AtomicU64,
}

impl FileProgress {
    fn new(session: &str, path: &str, total: u64) -> Self {
        Self {
            session: session.into(),
            path: path.into(),
            total,
            started: Instant::now(),
            done: AtomicU64::new(0),
            sent: AtomicU64::new(0),
        }
    }
    fn add(&self, bytes: u64, sent: bool) {
        self.done.fetch_add(bytes, Ordering::Relaxed);
        if sent {
            self.sent.fetch_add(bytes, Ordering::Relaxed);
        }
    }
    fn event(&self) -> Event {
        let done = self.done.load(Ordering::Relaxed);
        let sent = self.sent.load(Ordering::Relaxed);
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        let rate = sent as f64 / secs;
        let eta_secs = (rate > 0.0).then(|| (self.total.saturating_sub(done)) as f64 / rate);
        Event::FileProgress {
            session: self.session.clone(),
            path: self.path.clone(),
            bytes_done: done,
            bytes_total: self.total,
            rate,
            eta_secs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_raw_layout() {
        assert_eq!(
            object_key("20210301_161221", "sub/a.bin"),
            "raw/20210301_161221/sub/a.bin"
        );
        assert_eq!(
            manifest_key("20210301_161221"),
            "raw/20210301_161221/manifest.json"
        );
    }

    #[test]
    fn crc_base64_round_trips() {
        let c = crc64nvme(b"abc");
        assert_eq!(crc_from_base64(&crc_to_base64(c)), Some(c));
        assert_eq!(crc_from_base64("nope"), None);
    }
}
