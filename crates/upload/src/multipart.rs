//! Large files in parts: start (and record in the journal at once) or resume our multipart
//! upload, send the parts S3 does not already hold in parallel, record each part as S3
//! acknowledges it, and complete with the full-object CRC64NVME and `If-None-Match: *`.
//!
//! A kill costs at most the parts in flight: the next run lists the parts S3 holds (in
//! `Upload::look_again`, which also finds an upload completed by the killed run), reads the
//! file once more (the SHA-256 needs every byte) and keeps each held part whose checksum is the
//! local part's.

use aws_sdk_s3::types::CompletedPart;
use bytes::Bytes;
use labpipe_core::check::ReportFile;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;

use crate::bucket::{RemotePart, Stored, WriteRefused};
use crate::digest::{crc_to_base64, CrcChain};
use crate::files::{still_unchanged, FileDigest, SharedReader};
use crate::journal::{JournalPart, OpenUpload};
use crate::plan::{held_parts, HeldPart};
use crate::progress::{FileProgress, Tally};
use crate::run::Upload;
use crate::UploadError;

/// The parts of one file, read and sent.
struct SentParts {
    digest: FileDigest,
    parts: Vec<CompletedPart>,
}

impl Upload {
    /// Sends `file` in parts, continuing `resume` (`Ok`: our upload and the parts `ListParts`
    /// showed, `None` when its answer could not be read) or starting an upload with the given
    /// part size (`Err`); returns its digest and the stored object.
    pub(crate) async fn multipart(
        &self,
        local: &Path,
        key: &str,
        file: &ReportFile,
        resume: Result<(OpenUpload, Option<BTreeMap<i32, RemotePart>>), u64>,
        tally: &Arc<Tally>,
        progress: &Arc<FileProgress>,
    ) -> Result<(FileDigest, Stored), UploadError> {
        let i = &self.inner;
        let bucket = i.bucket.name();
        let (upload, held) = match resume {
            Ok((open, remote)) => {
                let recorded = i.journal.parts(&open.upload_id)?;
                let held = held_parts(file.size, open.part_size, remote.as_ref(), &recorded);
                (open, held)
            }
            Err(part_size) => (self.start(key, file, part_size).await?, BTreeMap::new()),
        };

        let sent = match self
            .send_parts(local, key, file, &upload, &held, tally, progress)
            .await
        {
            Ok(s) => s,
            Err(e) => {
                if matches!(e, UploadError::FileChanged { .. }) {
                    // The bytes already sent no longer describe the file: start over next time.
                    self.abandon(key, &upload.upload_id).await;
                }
                return Err(e);
            }
        };
        let crc_b64 = crc_to_base64(sent.digest.crc);
        if let Err(e) = still_unchanged(local, file) {
            self.abandon(key, &upload.upload_id).await;
            return Err(e);
        }
        let written = match i
            .bucket
            .complete(key, &upload.upload_id, sent.parts, &crc_b64)
            .await
        {
            Ok(w) => w,
            Err(WriteRefused::Exists) => {
                // An object holds the key (another writer's, or ours from a completion whose
                // answer was lost): our upload can never complete over it, so it is stale and
                // ours — abort it whether the object is the same bytes or a conflict.
                let there = self.same_or_conflict(key, file.size, &crc_b64).await;
                self.abandon(key, &upload.upload_id).await;
                there?
            }
            Err(WriteRefused::Failed(e)) => return Err(e),
        };
        i.journal.end_upload(bucket, key, &upload.upload_id)?;
        let stored = self.confirm(key, file.size, &crc_b64, written).await?;
        Ok((sent.digest, stored))
    }

    /// Creates the upload and records it in the journal right away.
    async fn start(
        &self,
        key: &str,
        file: &ReportFile,
        part_size: u64,
    ) -> Result<OpenUpload, UploadError> {
        let i = &self.inner;
        let upload_id = i.bucket.create_multipart(key).await?;
        let open = OpenUpload {
            upload_id,
            size: file.size,
            mtime: file.modified_unix,
            part_size,
        };
        i.journal.begin_upload(i.bucket.name(), key, &open)?;
        Ok(open)
    }

    /// Aborts our upload whose parts must not be completed (the file changed, or another object
    /// holds the key) and forgets it in the journal, so the next run starts that file over. It is
    /// ours (the journal recorded it) and this run holds the session's lock. Failures are only
    /// logged: the session fails anyway, and the bucket's lifecycle rule removes what remains.
    async fn abandon(&self, key: &str, upload_id: &str) {
        let i = &self.inner;
        if let Err(e) = i.bucket.abort(key, upload_id).await {
            tracing::warn!(key, upload_id, error = %e, "could not abort the multipart upload; the bucket's lifecycle rule will");
        }
        if let Err(e) = i.journal.end_upload(i.bucket.name(), key, upload_id) {
            tracing::warn!(key, upload_id, error = %e, "could not forget the multipart upload in the journal");
        }
    }

    /// Reads the file once, part by part, keeping held parts whose checksum matches and sending
    /// the others, at most `concurrency` parts at once across the run.
    #[allow(clippy::too_many_arguments)]
    async fn send_parts(
        &self,
        local: &Path,
        key: &str,
        file: &ReportFile,
        upload: &OpenUpload,
        held: &BTreeMap<i32, HeldPart>,
        tally: &Arc<Tally>,
        progress: &Arc<FileProgress>,
    ) -> Result<SentParts, UploadError> {
        let i = &self.inner;
        let reader = SharedReader::open(local, file)?;
        let count = file.size.div_ceil(upload.part_size);
        let mut chain = CrcChain::default();
        let mut parts: Vec<CompletedPart> = Vec::with_capacity(count as usize);
        let mut tasks: JoinSet<Result<CompletedPart, UploadError>> = JoinSet::new();
        for index in 0..count {
            let offset = index * upload.part_size;
            let len = upload.part_size.min(file.size - offset);
            let number = (index + 1) as i32;
            let slot = i.slots.acquire(len).await;
            // Fail early when a part already failed.
            while let Some(done) = tasks.try_join_next() {
                parts.push(joined(done)?);
            }
            let block = reader.block(len).await?;
            chain.push(block.crc, len);
            let crc_b64 = crc_to_base64(block.crc);
            if let Some(h) = held.get(&number).filter(|h| h.crc64nvme == crc_b64) {
                drop(slot);
                self.emit(progress.resumed(tally, len));
                parts.push(completed(number, &h.etag, crc_b64));
                continue;
            }
            let me = self.clone();
            let key = key.to_string();
            let upload_id = upload.upload_id.clone();
            let tally = tally.clone();
            let progress = progress.clone();
            tasks.spawn(async move {
                let _slot = slot;
                let etag = me
                    .upload_part(&key, &upload_id, number, block.bytes, &crc_b64)
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
                me.emit(progress.sent(&tally, len));
                Ok(completed(number, &etag, crc_b64))
            });
        }
        let sha256 = reader.finish().await?;
        while let Some(done) = tasks.join_next().await {
            parts.push(joined(done)?);
        }
        parts.sort_by_key(|p| p.part_number());
        Ok(SentParts {
            digest: FileDigest {
                sha256,
                crc: chain.value(),
            },
            parts,
        })
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
        let watch = i.bucket.watch(key);
        let mut round = 0u32;
        loop {
            if let Some(t) = &i.throttle {
                t.reserve(body.len() as u64).await;
            }
            match i
                .bucket
                .upload_part(key, upload_id, number, body.clone(), crc_b64, watch.clone())
                .await
            {
                Ok(etag) => return Ok(etag),
                Err(err) => {
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
}

fn completed(number: i32, etag: &str, crc_b64: String) -> CompletedPart {
    CompletedPart::builder()
        .part_number(number)
        .e_tag(etag)
        .checksum_crc64_nvme(crc_b64)
        .build()
}

fn joined(
    done: Result<Result<CompletedPart, UploadError>, tokio::task::JoinError>,
) -> Result<CompletedPart, UploadError> {
    done.map_err(|e| UploadError::Task {
        detail: format!("part upload: {e}"),
    })?
}

fn backoff(round: u32) -> Duration {
    let base = Duration::from_secs(1 << round.min(4));
    base + Duration::from_millis(rand::random::<u64>() % 1000)
}
