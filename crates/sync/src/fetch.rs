//! Downloads: one GET for a small file, parallel ranged GETs for a large one, both into the
//! file's `.part` file and both ending in [`Destination::install`], which compares the SHA-256
//! of the bytes written (taken as they are written, in file order) with the catalog's before the
//! file gets its real name.
//!
//! Ranged parts are pinned to the object's ETag with `If-Match`, so a file cannot be stitched
//! from two versions; each finished part is recorded in the partial record, so a killed run
//! leaves both files and the next one fetches only the missing parts.

use std::fs::File;
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use crate::destination::{Destination, PartHasher, PartialRecord, Written};
use crate::event::EventSink;
use crate::plan::{missing_ranges, FetchMode, Range, Resume};
use crate::remote::RemoteFile;
use crate::s3::{interrupted, s3_error};
use crate::state::StateEntry;
use crate::{SyncError, SyncEvent};

/// Everything a download needs, shared by the run's download tasks.
pub(crate) struct Fetcher {
    pub s3: aws_sdk_s3::Client,
    pub dest: Destination,
    /// Requests in flight across the whole run.
    pub requests: Arc<Semaphore>,
    pub events: EventSink,
    pub part_size: u64,
    /// Ranged GETs of one file in flight at once (they still share `requests`).
    pub workers: usize,
}

/// A file downloaded, verified and in place.
pub(crate) struct Fetched {
    /// What the state file records for it.
    pub entry: StateEntry,
    /// Bytes received in this run.
    pub transferred: u64,
    /// Bytes continued from an interrupted run.
    pub resumed: u64,
}

impl Fetcher {
    pub async fn fetch(&self, f: &RemoteFile, mode: FetchMode) -> Result<Fetched, SyncError> {
        match mode {
            FetchMode::Whole => self.fetch_whole(f).await,
            FetchMode::Ranged { resume } => {
                let resumed = resume.is_some();
                match self.fetch_ranged(f, resume).await {
                    // A resumed file that does not verify may hold a part torn by the
                    // interruption: start it over once before blaming the object.
                    Err(SyncError::ChecksumMismatch { .. }) if resumed => {
                        self.fetch_ranged(f, None).await
                    }
                    other => other,
                }
            }
        }
    }

    async fn fetch_whole(&self, f: &RemoteFile) -> Result<Fetched, SyncError> {
        let paths = self.dest.partial(&f.path);
        self.events.emit(SyncEvent::FileStarted {
            path: f.path.clone(),
            bytes: f.size,
            resumed_bytes: 0,
        });
        let slot = self
            .requests
            .acquire()
            .await
            .expect("semaphore never closed");
        let resp = self
            .s3
            .get_object()
            .bucket(&f.bucket)
            .key(&f.key)
            .set_version_id(f.version_id.clone())
            .send()
            .await
            .map_err(|e| s3_error(&f.bucket, &f.key, e))?;
        let etag = resp.e_tag().map(str::to_string);
        if let Some(len) = resp.content_length().filter(|l| *l as u64 != f.size) {
            return Err(size_mismatch(f, len as u64));
        }
        // A whole file is at most one part: its body is held, then written and hashed in one
        // pass by a blocking thread (no hop per chunk).
        let segments: Vec<bytes::Bytes> = resp
            .body
            .collect()
            .await
            .map_err(|e| interrupted(&f.bucket, &f.key, e))?
            .into_segments()
            .collect();
        drop(slot);
        let received: u64 = segments.iter().map(|s| s.len() as u64).sum();
        let part = paths.part.clone();
        let written = tokio::task::spawn_blocking(move || Written::whole(&part, &segments))
            .await
            .expect("write task never panics")
            .map_err(SyncError::io("write", &paths.part))?;
        self.events.emit(SyncEvent::Progress { bytes: received });
        let entry = self.dest.install(f, written, &paths, etag).await?;
        Ok(Fetched {
            entry,
            transferred: received,
            resumed: 0,
        })
    }

    async fn fetch_ranged(
        &self,
        f: &RemoteFile,
        resume: Option<Resume>,
    ) -> Result<Fetched, SyncError> {
        let paths = self.dest.partial(&f.path);
        let head = {
            let _slot = self
                .requests
                .acquire()
                .await
                .expect("semaphore never closed");
            self.s3
                .head_object()
                .bucket(&f.bucket)
                .key(&f.key)
                .set_version_id(f.version_id.clone())
                .send()
                .await
                .map_err(|e| s3_error(&f.bucket, &f.key, e))?
        };
        let size = head.content_length().unwrap_or(0) as u64;
        if size != f.size {
            return Err(size_mismatch(f, size));
        }
        let etag = head.e_tag().map(str::to_string);
        let done = resume
            .and_then(|r| r.against(etag.as_deref()))
            .map(|r| r.done)
            .unwrap_or_default();
        let mut record = PartialRecord {
            key: f.key.clone(),
            sha256: f.sha256.clone(),
            size,
            part_size: self.part_size,
            etag: etag.clone(),
            done,
        };
        let resumed = record.done_bytes();
        let missing = missing_ranges(size, self.part_size, &record.done);
        // Read too: the parts an interrupted run left are read back to hash them.
        let file = std::fs::OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(false)
            .open(&paths.part)
            .map_err(SyncError::io("create", &paths.part))?;
        file.set_len(size)
            .map_err(SyncError::io("write", &paths.part))?;
        let file = Arc::new(file);
        self.dest.save_partial(&paths, &record)?;
        self.events.emit(SyncEvent::FileStarted {
            path: f.path.clone(),
            bytes: size,
            resumed_bytes: resumed,
        });
        if resumed > 0 {
            self.events.emit(SyncEvent::Progress { bytes: resumed });
        }

        let mut transferred = 0u64;
        let mut queue = missing.into_iter().peekable();
        let mut running = JoinSet::new();
        // Parts received ahead of one still on its way wait in the hasher with their request
        // slot: parts in memory never exceed the run's requests in flight.
        let mut hasher = Some(PartHasher::new(size, self.part_size, record.done.clone()));
        // Resumed parts at the start are hashed (read back from disk) before any request.
        hasher = Some(
            advance(
                hasher.take().expect("hasher present"),
                file.clone(),
                &paths.part,
            )
            .await?,
        );
        loop {
            let waiting = hasher.as_ref().map_or(0, PartHasher::waiting);
            while running.len() + waiting < self.workers.max(1) && queue.peek().is_some() {
                let range = queue.next().expect("peeked");
                // Take the request slot before spawning so parts of one file start in order.
                let slot = self
                    .requests
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("semaphore never closed");
                let get = RangeGet {
                    s3: self.s3.clone(),
                    bucket: f.bucket.clone(),
                    key: f.key.clone(),
                    version_id: f.version_id.clone(),
                    etag: etag.clone(),
                    file: file.clone(),
                    part_path: paths.part.clone(),
                    range,
                };
                running.spawn(async move { get.run().await.map(|(r, b)| (r, b, slot)) });
            }
            let Some(joined) = running.join_next().await else {
                break;
            };
            let (range, segments, slot) = joined.expect("part task never panics")?;
            transferred += range.len;
            record.done.insert(range.index);
            self.dest.save_partial(&paths, &record)?;
            self.events.emit(SyncEvent::Progress { bytes: range.len });
            let mut h = hasher.take().expect("hasher present");
            h.add(range.index, segments, slot);
            hasher = Some(advance(h, file.clone(), &paths.part).await?);
        }
        let file = Arc::into_inner(file).expect("every part task has ended");
        let sha256 = hasher
            .take()
            .and_then(PartHasher::finish)
            .expect("every part was received or resumed, and hashed");
        let entry = self
            .dest
            .install(f, Written { file, sha256 }, &paths, etag)
            .await?;
        Ok(Fetched {
            entry,
            transferred,
            resumed,
        })
    }
}

/// Hashes what is next in file order on a blocking thread (resumed parts are read from disk).
async fn advance(
    mut hasher: PartHasher<OwnedSemaphorePermit>,
    file: Arc<File>,
    part: &std::path::Path,
) -> Result<PartHasher<OwnedSemaphorePermit>, SyncError> {
    tokio::task::spawn_blocking(move || hasher.advance(&file).map(|()| hasher))
        .await
        .expect("hash task never panics")
        .map_err(SyncError::io("read back a resumed part of", part))
}

/// One ranged GET written at its offset in the `.part` file.
struct RangeGet {
    s3: aws_sdk_s3::Client,
    bucket: String,
    key: String,
    version_id: Option<String>,
    etag: Option<String>,
    file: Arc<File>,
    part_path: std::path::PathBuf,
    range: Range,
}

impl RangeGet {
    /// The range, and its bytes as written at its offset (for the file's hash).
    async fn run(self) -> Result<(Range, Vec<bytes::Bytes>), SyncError> {
        let RangeGet {
            s3,
            bucket,
            key,
            version_id,
            etag,
            file,
            part_path,
            range,
        } = self;
        let resp = s3
            .get_object()
            .bucket(&bucket)
            .key(&key)
            .set_version_id(version_id)
            .range(range.header())
            .set_if_match(etag)
            .send()
            .await
            .map_err(|e| s3_error(&bucket, &key, e))?;
        let segments: Vec<bytes::Bytes> = resp
            .body
            .collect()
            .await
            .map_err(|e| interrupted(&bucket, &key, e))?
            .into_segments()
            .collect();
        let got: u64 = segments.iter().map(|s| s.len() as u64).sum();
        if got != range.len {
            return Err(SyncError::S3 {
                message: format!(
                    "range {}+{} returned {got} bytes; run again",
                    range.start, range.len,
                ),
                bucket,
                key,
                retryable: true,
            });
        }
        tokio::task::spawn_blocking(move || {
            let mut offset = range.start;
            for s in &segments {
                write_at(&file, s, offset)?;
                offset += s.len() as u64;
            }
            Ok(segments)
        })
        .await
        .expect("write task never panics")
        .map_err(SyncError::io("write", &part_path))
        .map(|segments| (range, segments))
    }
}

fn size_mismatch(f: &RemoteFile, actual: u64) -> SyncError {
    SyncError::SizeMismatch {
        bucket: f.bucket.clone(),
        key: f.key.clone(),
        expected: f.size,
        actual,
    }
}

/// Writes all of `buf` at `offset` without moving a shared cursor (parts land in any order).
fn write_at(file: &File, buf: &[u8], offset: u64) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileExt;
        file.write_all_at(buf, offset)
    }
    #[cfg(windows)]
    {
        use std::os::windows::fs::FileExt;
        let mut written = 0;
        while written < buf.len() {
            match file.seek_write(&buf[written..], offset + written as u64)? {
                0 => return Err(std::io::ErrorKind::WriteZero.into()),
                n => written += n,
            }
        }
        Ok(())
    }
}
