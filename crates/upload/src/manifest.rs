//! The commit marker: `raw/<session>/manifest.json` is written last, only after every file is
//! uploaded and verified, and never overwritten. The backend treats a session without it as
//! incomplete, so a session is either entirely in S3 or not at all as far as anyone downstream
//! can tell.

use bytes::Bytes;
use labpipe_core::Manifest;

use crate::bucket::WriteRefused;
use crate::digest::{crc64nvme, crc_to_base64};
use crate::run::Upload;
use crate::{manifest_key, UploadError};

impl Upload {
    /// Writes the manifest unless an equal one is there; returns whether it was already there.
    /// `listed`: the session's listing showed a manifest, so it is read, not written.
    pub(crate) async fn put_manifest(
        &self,
        session: &str,
        manifest: &Manifest,
        listed: bool,
    ) -> Result<bool, UploadError> {
        let bucket = &self.inner.bucket;
        let key = manifest_key(session);
        if !listed {
            let body = Bytes::from(manifest.to_json().into_bytes());
            let crc_b64 = crc_to_base64(crc64nvme(&body));
            match bucket
                .put_new(&key, body, &crc_b64, Some("application/json"))
                .await
            {
                Ok(_) => return Ok(false),
                Err(WriteRefused::Exists) => {}
                Err(WriteRefused::Failed(e)) => return Err(e),
            }
        }
        let there = bucket.get(&key).await?;
        if same_files(&there, manifest) {
            Ok(true)
        } else {
            Err(UploadError::Conflict {
                bucket: bucket.name().into(),
                key,
                detail: "an existing manifest lists different files or hashes".into(),
            })
        }
    }
}

/// The manifest in S3 lists the same files with the same sizes and hashes (its upload time and
/// other fields may differ).
fn same_files(there: &[u8], ours: &Manifest) -> bool {
    Manifest::from_json(there).is_ok_and(|m| {
        m.files.len() == ours.files.len()
            && m.files
                .iter()
                .zip(&ours.files)
                .all(|(a, b)| a.path == b.path && a.size == b.size && a.sha256 == b.sha256)
    })
}
