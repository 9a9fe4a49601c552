//! The download engine: many files at once, large files as parallel byte ranges, resumable,
//! verified, atomic.
//!
//! Every download goes to `DIR/.labpipe-sync/partial/<id>.part`. Large files are fetched in
//! ranged parts (pinned to the object's ETag with `If-Match`, so a file cannot be stitched from
//! two versions) and each finished part is recorded in a small sidecar (`<id>.json`); a killed run
//! leaves both, and the next run fetches only the missing parts. Once complete, the `.part` file
//! is hashed and renamed to its real name only if the SHA-256 equals the catalog's — so a file
//! under its final name is always a verified copy.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::ResponseChecksumValidation;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::select::{FileKind, RemoteFile, Selection};
use crate::state::{stat, StateEntry, SyncState, STATE_DIR};
use crate::{SyncError, SyncEvent, SyncSummary};

/// The run's record in the destination: which filter, when, which sessions and files.
pub const MANIFEST_NAME: &str = "labpipe-sync.json";
const MANIFEST_FORMAT: &str = "labpipe-sync/1";
const PARTIAL_DIR: &str = "partial";
/// How often the state file is rewritten during a run (it is always written at the end).
const STATE_SAVE_EVERY: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// Requests (whole small files or parts of large ones) in flight at once.
    pub concurrency: usize,
    /// Files larger than this are fetched in ranged parts of this size.
    pub part_size: u64,
    /// Re-hash every local file, even those the state file says are current.
    pub verify: bool,
    /// Report what would be transferred; write nothing.
    pub dry_run: bool,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            concurrency: 16,
            part_size: 8 * 1024 * 1024,
            verify: false,
            dry_run: false,
        }
    }
}

/// The S3 client a sync needs: bounded retries, timeouts that turn a stalled connection into a
/// retry, path-style addressing when an endpoint is configured (`AWS_ENDPOINT_URL`), and no SDK
/// response checksums (every file is verified against the catalog's SHA-256 instead).
pub fn s3_client(sdk: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    let retry = RetryConfig::standard()
        .with_max_attempts(6)
        .with_initial_backoff(Duration::from_millis(200))
        .with_max_backoff(Duration::from_secs(8));
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(5))
        .read_timeout(Duration::from_secs(60))
        .build();
    let conf = aws_sdk_s3::config::Builder::from(sdk)
        .retry_config(retry)
        .timeout_config(timeouts)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .force_path_style(sdk.endpoint_url().is_some())
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

pub(crate) fn s3_error<E>(bucket: &str, key: &str, err: SdkError<E, HttpResponse>) -> SyncError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let (message, retryable) = match &err {
        SdkError::ServiceError(e) => {
            let status = e.raw().status().as_u16();
            match (e.err().code(), status) {
                (Some("NoSuchBucket"), _) => ("the bucket does not exist; check the bucket name (stack outputs) and region".to_string(), false),
                (Some("NoSuchKey"), _) | (_, 404) => {
                    ("not found: the catalog lists it but the bucket does not have it; ask the operator to re-run preprocessing".to_string(), false)
                }
                (Some("AccessDenied"), _) | (_, 403) => {
                    ("access denied; check the credentials or the instance role's read permission on the bucket".to_string(), false)
                }
                (Some("PreconditionFailed"), _) | (_, 412) => ("the object changed while it was being downloaded; run again".to_string(), true),
                (code, status) => (
                    format!("{} (HTTP {status}): {}", code.unwrap_or("error"), e.err().message().unwrap_or("no message")),
                    status >= 500,
                ),
            }
        }
        SdkError::TimeoutError(_) => (
            "timed out; check the network and run again".to_string(),
            true,
        ),
        SdkError::DispatchFailure(e) => (
            format!("cannot reach S3 ({e:?}); check the network or AWS_ENDPOINT_URL"),
            true,
        ),
        other => (other.to_string(), true),
    };
    SyncError::S3 {
        bucket: bucket.into(),
        key: key.into(),
        message,
        retryable,
    }
}

/// Completed ranges of one partial download, next to its `.part` file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct PartialRecord {
    key: String,
    sha256: String,
    size: u64,
    part_size: u64,
    etag: Option<String>,
    done: BTreeSet<u64>,
}

struct Ctx {
    s3: aws_sdk_s3::Client,
    dest: PathBuf,
    opts: SyncOptions,
    requests: Arc<Semaphore>,
    events: Option<UnboundedSender<SyncEvent>>,
}

impl Ctx {
    fn emit(&self, e: SyncEvent) {
        if let Some(tx) = &self.events {
            let _ = tx.send(e);
        }
    }

    fn partial_paths(&self, rel: &str) -> (PathBuf, PathBuf) {
        let id = hex::encode(&Sha256::digest(rel.as_bytes())[..12]);
        let dir = self.dest.join(STATE_DIR).join(PARTIAL_DIR);
        (
            dir.join(format!("{id}.part")),
            dir.join(format!("{id}.json")),
        )
    }
}

/// A finished download.
struct Fetched {
    entry: StateEntry,
    transferred: u64,
    resumed: u64,
}

/// One sync run into one destination folder.
pub struct SyncRun {
    ctx: Arc<Ctx>,
}

enum Decision {
    Skip(&'static str, Option<StateEntry>),
    Transfer,
}

impl SyncRun {
    pub fn new(
        s3: aws_sdk_s3::Client,
        dest: impl Into<PathBuf>,
        opts: SyncOptions,
        events: Option<UnboundedSender<SyncEvent>>,
    ) -> SyncRun {
        let concurrency = opts.concurrency.max(1);
        SyncRun {
            ctx: Arc::new(Ctx {
                s3,
                dest: dest.into(),
                opts,
                requests: Arc::new(Semaphore::new(concurrency)),
                events,
            }),
        }
    }

    /// Brings the destination in line with `selection`. Per-file failures do not stop the run:
    /// they are reported as [`SyncEvent::FileFailed`] and counted in the summary
    /// (`files_failed`, `first_error`); [`SyncError::Incomplete`] is left to the caller.
    pub async fn run(&self, selection: &Selection, filter: &str) -> Result<SyncSummary, SyncError> {
        let started = Instant::now();
        let ctx = &self.ctx;
        let dest = ctx.dest.clone();
        if !ctx.opts.dry_run {
            std::fs::create_dir_all(dest.join(STATE_DIR).join(PARTIAL_DIR))
                .map_err(SyncError::io("create", &dest))?;
        }
        let mut state = SyncState::load(&dest);
        let decisions = self.decide(selection, &state).await?;

        let mut summary = SyncSummary {
            sessions: selection.sessions.len(),
            files: selection.files.len(),
            bytes_total: selection.bytes(),
            dry_run: ctx.opts.dry_run,
            ..SyncSummary::default()
        };
        for u in &selection.unprocessed {
            ctx.emit(SyncEvent::SessionNotProcessed {
                session: u.session.clone(),
                status: u.status.as_str().to_string(),
            });
        }
        let to_transfer: Vec<&RemoteFile> = selection
            .files
            .iter()
            .zip(&decisions)
            .filter(|(_, d)| matches!(d, Decision::Transfer))
            .map(|(f, _)| f)
            .collect();
        ctx.emit(SyncEvent::Plan {
            sessions: summary.sessions,
            files: summary.files,
            bytes: summary.bytes_total,
            files_to_transfer: to_transfer.len(),
            bytes_to_transfer: to_transfer.iter().map(|f| f.size).sum(),
        });
        for (f, d) in selection.files.iter().zip(decisions) {
            if let Decision::Skip(reason, entry) = d {
                summary.files_skipped += 1;
                if let Some(e) = entry {
                    state.files.insert(f.path.clone(), e);
                }
                ctx.emit(SyncEvent::FileSkipped {
                    path: f.path.clone(),
                    reason,
                });
            }
        }
        if ctx.opts.dry_run {
            for f in &to_transfer {
                ctx.emit(SyncEvent::FileWouldTransfer {
                    path: f.path.clone(),
                    uri: f.uri(),
                    bytes: f.size,
                });
            }
            summary.files_transferred = to_transfer.len();
            summary.seconds = started.elapsed().as_secs_f64();
            return Ok(summary);
        }

        // Files in flight: enough to keep every request slot busy with small files, bounded so
        // thousands of files never hold thousands of open handles.
        let files_in_flight = Arc::new(Semaphore::new(ctx.opts.concurrency.max(1) * 2));
        let mut tasks = JoinSet::new();
        for f in to_transfer {
            let (ctx, f, gate) = (self.ctx.clone(), f.clone(), files_in_flight.clone());
            tasks.spawn(async move {
                let _slot = gate.acquire_owned().await.expect("semaphore never closed");
                let result = fetch(&ctx, &f).await;
                (f, result)
            });
        }
        let mut last_save = Instant::now();
        let mut failed: Vec<String> = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            let (f, result) = joined.expect("download task never panics");
            match result {
                Ok(done) => {
                    summary.files_transferred += 1;
                    summary.bytes_transferred += done.transferred;
                    summary.bytes_resumed += done.resumed;
                    ctx.emit(SyncEvent::FileDone {
                        path: f.path.clone(),
                        bytes: f.size,
                        transferred: done.transferred,
                        sha256: f.sha256.clone(),
                    });
                    state.files.insert(f.path.clone(), done.entry);
                }
                Err(e) => {
                    summary.files_failed += 1;
                    tracing::warn!(path = %f.path, error = %e, "file not synced");
                    ctx.emit(SyncEvent::FileFailed {
                        path: f.path.clone(),
                        uri: f.uri(),
                        code: e.code(),
                        reason: e.to_string(),
                    });
                    failed.push(format!("{}: {e}", f.path));
                }
            }
            if last_save.elapsed() >= STATE_SAVE_EVERY {
                state.save(&dest)?;
                last_save = Instant::now();
            }
        }
        state.save(&dest)?;
        write_manifest(&dest, selection, filter, failed.is_empty())?;
        summary.first_error = failed.into_iter().next();
        summary.seconds = started.elapsed().as_secs_f64();
        Ok(summary)
    }

    /// Compares each selected file with the destination; files that exist with the right size
    /// but are not vouched for by the state file (or all files, with `--verify`) are hashed, in
    /// parallel.
    async fn decide(
        &self,
        selection: &Selection,
        state: &SyncState,
    ) -> Result<Vec<Decision>, SyncError> {
        let mut out: Vec<Option<Decision>> = Vec::with_capacity(selection.files.len());
        let mut hashing = JoinSet::new();
        let gate = Arc::new(Semaphore::new(self.ctx.opts.concurrency.clamp(1, 8)));
        for (i, f) in selection.files.iter().enumerate() {
            let path = self.ctx.dest.join(&f.path);
            let local = stat(&path);
            if !self.ctx.opts.verify && state.is_current(&f.path, &f.key, &f.sha256, local) {
                out.push(Some(Decision::Skip("up_to_date", None)));
                continue;
            }
            match local {
                Some((size, _)) if size == f.size => {
                    out.push(None);
                    let (f, gate) = (f.clone(), gate.clone());
                    let etag = state
                        .files
                        .get(&f.path)
                        .filter(|e| e.key == f.key)
                        .and_then(|e| e.etag.clone());
                    hashing.spawn(async move {
                        let _slot = gate.acquire_owned().await.expect("semaphore never closed");
                        let hashed = tokio::task::spawn_blocking(move || {
                            hash_file(&path).map(|h| (h, stat(&path)))
                        })
                        .await
                        .expect("hash task never panics");
                        (i, f, etag, hashed)
                    });
                }
                _ => out.push(Some(Decision::Transfer)),
            }
        }
        while let Some(joined) = hashing.join_next().await {
            let (i, f, etag, hashed) = joined.expect("hash task never panics");
            out[i] = Some(match hashed {
                Ok((sha, Some((size, mtime_ns)))) if sha == f.sha256 => {
                    let entry = StateEntry {
                        bucket: f.bucket.clone(),
                        key: f.key.clone(),
                        etag,
                        size,
                        sha256: sha,
                        mtime_ns,
                    };
                    Decision::Skip(
                        if self.ctx.opts.verify {
                            "verified"
                        } else {
                            "already_present"
                        },
                        Some(entry),
                    )
                }
                _ => Decision::Transfer,
            });
        }
        Ok(out
            .into_iter()
            .map(|d| d.expect("every file decided"))
            .collect())
    }
}

fn hash_file(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

async fn fetch(ctx: &Ctx, f: &RemoteFile) -> Result<Fetched, SyncError> {
    if f.size <= ctx.opts.part_size {
        return fetch_whole(ctx, f).await;
    }
    match fetch_ranged(ctx, f).await {
        // A resumed file that does not verify may have a torn part from the interruption:
        // start it over once before blaming the object.
        Err(SyncError::ChecksumMismatch { .. }) if resumed_retry_allowed(ctx, f) => {
            fetch_ranged(ctx, f).await
        }
        other => other,
    }
}

fn resumed_retry_allowed(ctx: &Ctx, f: &RemoteFile) -> bool {
    // `fetch_ranged` removes the partial state on a mismatch; a marker file tells the retry
    // apart from the first attempt.
    let (part, _) = ctx.partial_paths(&f.path);
    let marker = part.with_extension("resumed");
    let retry = marker.exists();
    let _ = std::fs::remove_file(&marker);
    retry
}

async fn fetch_whole(ctx: &Ctx, f: &RemoteFile) -> Result<Fetched, SyncError> {
    let (part, _) = ctx.partial_paths(&f.path);
    ctx.emit(SyncEvent::FileStarted {
        path: f.path.clone(),
        bytes: f.size,
        resumed_bytes: 0,
    });
    let _slot = ctx
        .requests
        .acquire()
        .await
        .expect("semaphore never closed");
    let resp = ctx
        .s3
        .get_object()
        .bucket(&f.bucket)
        .key(&f.key)
        .send()
        .await
        .map_err(|e| s3_error(&f.bucket, &f.key, e))?;
    let etag = resp.e_tag().map(str::to_string);
    if let Some(len) = resp.content_length().filter(|l| *l as u64 != f.size) {
        return Err(SyncError::SizeMismatch {
            bucket: f.bucket.clone(),
            key: f.key.clone(),
            expected: f.size,
            actual: len as u64,
        });
    }
    let mut out = tokio::fs::File::create(&part)
        .await
        .map_err(SyncError::io("create", &part))?;
    let mut hasher = Sha256::new();
    let mut body = resp.body;
    let mut received = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| SyncError::S3 {
            bucket: f.bucket.clone(),
            key: f.key.clone(),
            message: format!("download interrupted: {e}; run again"),
            retryable: true,
        })?;
        hasher.update(&chunk);
        out.write_all(&chunk)
            .await
            .map_err(SyncError::io("write", &part))?;
        received += chunk.len() as u64;
    }
    out.flush().await.map_err(SyncError::io("write", &part))?;
    drop(out);
    drop(_slot);
    ctx.emit(SyncEvent::Progress { bytes: received });
    let actual = hex::encode(hasher.finalize());
    if actual != f.sha256 {
        let _ = std::fs::remove_file(&part);
        return Err(SyncError::ChecksumMismatch {
            bucket: f.bucket.clone(),
            key: f.key.clone(),
            expected: f.sha256.clone(),
            actual,
        });
    }
    let entry = install(ctx, f, &part, etag)?;
    Ok(Fetched {
        entry,
        transferred: received,
        resumed: 0,
    })
}

fn load_partial(sidecar: &Path) -> Option<PartialRecord> {
    serde_json::from_slice(&std::fs::read(sidecar).ok()?).ok()
}

fn save_partial(sidecar: &Path, record: &PartialRecord) -> Result<(), SyncError> {
    let tmp = sidecar.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec(record).expect("record serializes"))
        .map_err(SyncError::io("write", &tmp))?;
    std::fs::rename(&tmp, sidecar).map_err(SyncError::io("rename", sidecar))
}

async fn fetch_ranged(ctx: &Ctx, f: &RemoteFile) -> Result<Fetched, SyncError> {
    let (part, sidecar) = ctx.partial_paths(&f.path);
    let head = {
        let _slot = ctx
            .requests
            .acquire()
            .await
            .expect("semaphore never closed");
        ctx.s3
            .head_object()
            .bucket(&f.bucket)
            .key(&f.key)
            .send()
            .await
            .map_err(|e| s3_error(&f.bucket, &f.key, e))?
    };
    let size = head.content_length().unwrap_or(0) as u64;
    if size != f.size {
        return Err(SyncError::SizeMismatch {
            bucket: f.bucket.clone(),
            key: f.key.clone(),
            expected: f.size,
            actual: size,
        });
    }
    let etag = head.e_tag().map(str::to_string);
    let part_size = ctx.opts.part_size;
    let fresh = PartialRecord {
        key: f.key.clone(),
        sha256: f.sha256.clone(),
        size,
        part_size,
        etag: etag.clone(),
        done: BTreeSet::new(),
    };
    let record = match load_partial(&sidecar) {
        Some(r)
            if r.key == fresh.key
                && r.sha256 == fresh.sha256
                && r.size == size
                && r.part_size == part_size
                && r.etag == etag
                && part.exists() =>
        {
            r
        }
        _ => fresh,
    };
    let parts = size.div_ceil(part_size);
    let part_len = |i: u64| (size - i * part_size).min(part_size);
    let resumed: u64 = record.done.iter().map(|i| part_len(*i)).sum();
    if resumed > 0 {
        let _ = std::fs::write(part.with_extension("resumed"), b"");
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(&part)
        .map_err(SyncError::io("create", &part))?;
    file.set_len(size).map_err(SyncError::io("write", &part))?;
    let file = Arc::new(file);
    save_partial(&sidecar, &record)?;
    ctx.emit(SyncEvent::FileStarted {
        path: f.path.clone(),
        bytes: size,
        resumed_bytes: resumed,
    });
    if resumed > 0 {
        ctx.emit(SyncEvent::Progress { bytes: resumed });
    }

    let record = Arc::new(Mutex::new(record));
    let missing: Vec<u64> = (0..parts)
        .filter(|i| !record.lock().expect("lock").done.contains(i))
        .collect();
    let mut transferred = 0u64;
    // Parts are fetched by a bounded pool of workers per file, sharing the run's request slots.
    let mut queue = missing.into_iter();
    let mut running = JoinSet::new();
    let workers = ctx.opts.concurrency.max(1);
    loop {
        while running.len() < workers {
            let Some(i) = queue.next() else { break };
            let (s3, bucket, key, etag, file, part_path) = (
                ctx.s3.clone(),
                f.bucket.clone(),
                f.key.clone(),
                etag.clone(),
                file.clone(),
                part.clone(),
            );
            let start = i * part_size;
            let len = part_len(i);
            // Acquire the request slot before spawning so parts of one file start in order.
            let slot = ctx
                .requests
                .clone()
                .acquire_owned()
                .await
                .expect("semaphore never closed");
            running.spawn(async move {
                let _slot = slot;
                let resp = s3
                    .get_object()
                    .bucket(&bucket)
                    .key(&key)
                    .range(format!("bytes={start}-{}", start + len - 1))
                    .set_if_match(etag)
                    .send()
                    .await
                    .map_err(|e| s3_error(&bucket, &key, e))?;
                let bytes = resp
                    .body
                    .collect()
                    .await
                    .map_err(|e| SyncError::S3 {
                        bucket: bucket.clone(),
                        key: key.clone(),
                        message: format!("download interrupted: {e}; run again"),
                        retryable: true,
                    })?
                    .into_bytes();
                if bytes.len() as u64 != len {
                    return Err(SyncError::S3 {
                        bucket,
                        key,
                        message: format!(
                            "range {start}+{len} returned {} bytes; run again",
                            bytes.len()
                        ),
                        retryable: true,
                    });
                }
                tokio::task::spawn_blocking(move || {
                    use std::os::unix::fs::FileExt;
                    file.write_all_at(&bytes, start)
                })
                .await
                .expect("write task never panics")
                .map_err(SyncError::io("write", &part_path))?;
                Ok((i, len))
            });
        }
        let Some(joined) = running.join_next().await else {
            break;
        };
        let (i, len) = joined.expect("part task never panics")?;
        transferred += len;
        let snapshot = {
            let mut r = record.lock().expect("lock");
            r.done.insert(i);
            r.clone()
        };
        save_partial(&sidecar, &snapshot)?;
        ctx.emit(SyncEvent::Progress { bytes: len });
    }
    drop(file);
    let hashed_path = part.clone();
    let actual = tokio::task::spawn_blocking(move || hash_file(&hashed_path))
        .await
        .expect("hash task never panics")
        .map_err(SyncError::io("read", &part))?;
    if actual != f.sha256 {
        let _ = std::fs::remove_file(&part);
        let _ = std::fs::remove_file(&sidecar);
        return Err(SyncError::ChecksumMismatch {
            bucket: f.bucket.clone(),
            key: f.key.clone(),
            expected: f.sha256.clone(),
            actual,
        });
    }
    let _ = std::fs::remove_file(part.with_extension("resumed"));
    let entry = install(ctx, f, &part, etag)?;
    let _ = std::fs::remove_file(&sidecar);
    Ok(Fetched {
        entry,
        transferred,
        resumed,
    })
}

/// Moves a verified `.part` file to its real name (raw files read-only) and describes it for the
/// state file.
fn install(
    ctx: &Ctx,
    f: &RemoteFile,
    part: &Path,
    etag: Option<String>,
) -> Result<StateEntry, SyncError> {
    let target = ctx.dest.join(&f.path);
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent).map_err(SyncError::io("create", parent))?;
    }
    if f.kind == FileKind::Raw {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(part, std::fs::Permissions::from_mode(0o444))
            .map_err(SyncError::io("set permissions of", part))?;
    }
    std::fs::rename(part, &target).map_err(SyncError::io("rename", &target))?;
    let (size, mtime_ns) = stat(&target).ok_or_else(|| SyncError::Io {
        action: "stat",
        path: target.clone(),
        source: std::io::Error::other("file vanished after rename"),
    })?;
    Ok(StateEntry {
        bucket: f.bucket.clone(),
        key: f.key.clone(),
        etag,
        size,
        sha256: f.sha256.clone(),
        mtime_ns,
    })
}

#[derive(Serialize)]
struct ManifestSession<'a> {
    session: &'a str,
    recorded_at: String,
    status: &'a str,
    pipeline_version: Option<u32>,
    metadata: &'a labpipe_core::Metadata,
}

#[derive(Serialize)]
struct ManifestFile<'a> {
    path: &'a str,
    uri: String,
    kind: FileKind,
    size: u64,
    sha256: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<u32>,
}

/// Writes `DIR/labpipe-sync.json`: what this folder was synced from, for the researcher (and for
/// reproducibility: the filter and the checksums of every file).
fn write_manifest(
    dest: &Path,
    selection: &Selection,
    filter: &str,
    complete: bool,
) -> Result<(), SyncError> {
    let doc = serde_json::json!({
        "format": MANIFEST_FORMAT,
        "filter": filter,
        "synced_at": labpipe_catalog::format_utc(Utc::now()),
        "complete": complete,
        "sessions": selection.sessions.iter().map(|s| ManifestSession {
            session: &s.session,
            recorded_at: s.recorded_at.format("%Y-%m-%dT%H:%M:%S").to_string(),
            status: s.status.as_str(),
            pipeline_version: s.pipeline_version,
            metadata: &s.metadata,
        }).collect::<Vec<_>>(),
        "not_processed": selection.unprocessed,
        "files": selection.files.iter().map(|f| ManifestFile {
            path: &f.path, uri: f.uri(), kind: f.kind, size: f.size, sha256: &f.sha256, version: f.version,
        }).collect::<Vec<_>>(),
    });
    let path = dest.join(MANIFEST_NAME);
    let tmp = dest.join(STATE_DIR).join(format!("{MANIFEST_NAME}.tmp"));
    std::fs::write(
        &tmp,
        serde_json::to_vec_pretty(&doc).expect("manifest serializes"),
    )
    .map_err(SyncError::io("write", &tmp))?;
    std::fs::rename(&tmp, &path).map_err(SyncError::io("write", &path))
}
