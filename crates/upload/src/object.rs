//! Whole objects: a file that fits in one part goes in one conditional `PutObject`; an object
//! already at a key is compared with the local file by checksum; and a completed write is
//! verified from the checksum S3 returns for it.
//!
//! Verification: S3 computes the CRC64NVME of what it stored and returns it in the `PutObject`
//! and `CompleteMultipartUpload` answers (full-object for our multipart uploads). The same value
//! as ours proves the object; only when no checksum comes back is the object read back with a
//! `HeadObject` (it exists then, so the HEAD needs no `s3:ListBucket`). AWS documents the
//! answer's `x-amz-checksum-crc64nvme` as "present if the object was uploaded with the
//! CRC64NVME checksum algorithm" (Amazon S3 API Reference, PutObject, "Response Syntax":
//! <https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutObject.html>; CompleteMultipartUpload
//! likewise returns `ChecksumCRC64NVME` with `ChecksumType` `FULL_OBJECT`:
//! <https://docs.aws.amazon.com/AmazonS3/latest/API/API_CompleteMultipartUpload.html>), so a
//! small file costs one request: its `PutObject`.

use labpipe_core::check::ReportFile;
use std::path::Path;
use std::time::Duration;

use crate::bucket::{ObjectState, Stored, WriteRefused, Written};
use crate::digest::crc_to_base64;
use crate::event::FileOutcome;
use crate::files::{digest_whole, FileDigest, SharedReader};
use crate::progress::{FileProgress, Tally};
use crate::run::{Settled, Upload};
use crate::UploadError;

impl Upload {
    /// One `PutObject` of a small file; returns its digest and the stored object.
    pub(crate) async fn put_small(
        &self,
        local: &Path,
        key: &str,
        file: &ReportFile,
        tally: &Tally,
        progress: &FileProgress,
    ) -> Result<(FileDigest, Stored), UploadError> {
        let i = &self.inner;
        let _slot = i.slots.acquire(file.size).await;
        let reader = SharedReader::open(local, file)?;
        let block = reader.block(file.size).await?;
        let digest = FileDigest {
            sha256: reader.finish().await?,
            crc: block.crc,
        };
        let crc_b64 = crc_to_base64(block.crc);
        if let Some(t) = &i.throttle {
            t.reserve(file.size).await;
        }
        let written = match i.bucket.put_new(key, block.bytes, &crc_b64, None).await {
            Ok(w) => w,
            Err(WriteRefused::Exists) => self.same_or_conflict(key, file.size, &crc_b64).await?,
            Err(WriteRefused::Failed(e)) => return Err(e),
        };
        self.emit(progress.sent(tally, file.size));
        let stored = self.confirm(key, file.size, &crc_b64, written).await?;
        Ok((digest, stored))
    }

    /// A completed write is the object we meant: from the checksum S3 returned, else from a
    /// `HeadObject`. Returns the object's ETag and version id.
    pub(crate) async fn confirm(
        &self,
        key: &str,
        size: u64,
        crc_b64: &str,
        written: Written,
    ) -> Result<Stored, UploadError> {
        match written.crc64nvme.as_deref() {
            Some(c) if c == crc_b64 => Ok(Stored {
                etag: written.etag,
                version_id: written.version_id,
            }),
            Some(other) => {
                Err(self.verify_failed(key, size, crc_b64, format!("crc64nvme {other}")))
            }
            None => {
                let found = self.inner.bucket.head(key).await?;
                if found.size == size && found.crc64nvme.as_deref() == Some(crc_b64) {
                    Ok(Stored {
                        etag: found.etag,
                        version_id: written.version_id.or(found.version_id),
                    })
                } else {
                    Err(self.verify_failed(
                        key,
                        size,
                        crc_b64,
                        format!(
                            "{} bytes crc64nvme {}",
                            found.size,
                            found.crc64nvme.as_deref().unwrap_or("none")
                        ),
                    ))
                }
            }
        }
    }

    fn verify_failed(&self, key: &str, size: u64, crc_b64: &str, found: String) -> UploadError {
        UploadError::Verify {
            bucket: self.bucket().into(),
            key: key.into(),
            expected: format!("{size} bytes crc64nvme {crc_b64}"),
            found,
        }
    }

    /// The object at `key`, looking again for a while when there is none yet. A write that has
    /// ended (a completion, or the write that made ours refused) may not show its object at once:
    /// S3 may take a while to store the object of a completion ("could take several minutes to
    /// finalize", Amazon S3 API Reference, CompleteMultipartUpload:
    /// <https://docs.aws.amazon.com/AmazonS3/latest/API/API_CompleteMultipartUpload.html>). Five
    /// looks over about 4 s; only a key that stays empty pays that time.
    pub(crate) async fn object_soon(&self, key: &str) -> Result<Option<ObjectState>, UploadError> {
        for pause_ms in [0, 250, 500, 1000, 2000] {
            tokio::time::sleep(Duration::from_millis(pause_ms)).await;
            if let Some(found) = self.inner.bucket.object(key).await? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// After a conditional write was refused: is what is there exactly what we meant to write?
    /// Returns it as a write of ours when it is.
    pub(crate) async fn same_or_conflict(
        &self,
        key: &str,
        size: u64,
        crc_b64: &str,
    ) -> Result<Written, UploadError> {
        match self.object_soon(key).await? {
            Some(r) if r.size == size && r.crc64nvme.as_deref() == Some(crc_b64) => Ok(Written {
                etag: r.etag,
                crc64nvme: r.crc64nvme,
                version_id: r.version_id,
            }),
            Some(r) => Err(self.conflict(key, &r, size, crc_b64)),
            None => Err(UploadError::S3 {
                operation: "PutObject",
                key: key.into(),
                detail: "the write was refused but no object exists; run the upload again".into(),
            }),
        }
    }

    fn conflict(&self, key: &str, remote: &ObjectState, size: u64, crc_b64: &str) -> UploadError {
        UploadError::Conflict {
            bucket: self.bucket().into(),
            key: key.into(),
            detail: format!(
                "remote {} bytes crc64nvme {}, local {size} bytes crc64nvme {crc_b64}",
                remote.size,
                remote.crc64nvme.as_deref().unwrap_or("none")
            ),
        }
    }

    /// An object of the file's size is at the key: the same bytes make the file "already
    /// uploaded", other bytes a conflict. The journal's record of this very file saves reading
    /// it when its checksum is the object's.
    pub(crate) async fn compare(
        &self,
        session: &str,
        local: &Path,
        key: &str,
        file: &ReportFile,
    ) -> Result<Settled, UploadError> {
        let i = &self.inner;
        let remote = i.bucket.head(key).await?;
        let recorded = i.journal.done_file(i.bucket.name(), key)?.filter(|d| {
            d.size == file.size
                && d.mtime == file.modified_unix
                && remote.crc64nvme.as_deref() == Some(d.crc64nvme.as_str())
        });
        let digest = match recorded {
            Some(d) => FileDigest {
                sha256: d.sha256,
                crc: crate::digest::crc_from_base64(&d.crc64nvme).unwrap_or_default(),
            },
            None => digest_whole(local, file).await?,
        };
        let crc_b64 = crc_to_base64(digest.crc);
        if remote.size != file.size || remote.crc64nvme.as_deref() != Some(crc_b64.as_str()) {
            return Err(self.conflict(key, &remote, file.size, &crc_b64));
        }
        self.already_there(session, file);
        let stored = Stored {
            etag: remote.etag,
            version_id: remote.version_id,
        };
        self.verified(session, file, key, &digest, &stored)?;
        Ok(Settled {
            digest,
            outcome: FileOutcome::AlreadyUploaded,
            version_id: stored.version_id,
        })
    }
}
