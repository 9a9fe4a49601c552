//! The one manifest reader: `raw/<session>/manifest.json` (or any given key), optionally at a
//! given object version, refused above a size bound before its bytes are read, parsed into
//! [`Manifest`] and returned with what identifies the exact object read (version id, ETag, the
//! SHA-256 of its bytes, which the catalog records).
//!
//! Ingest, preprocess, sync's `--raw` and the app's session view all read manifests; reading
//! them one way means one bound (a stray multi-gigabyte `manifest.json` is refused by its
//! `Content-Length`, not read into a 256 MB function) and one set of messages.

use aws_sdk_s3::Client;
use labpipe_core::digest::sha256_hex;
use labpipe_core::layout::manifest_key;
use labpipe_core::manifest::{Manifest, MAX_MANIFEST_BYTES};

use crate::error::S3Error;

/// A manifest as read from S3.
#[derive(Debug, Clone, PartialEq)]
pub struct ManifestObject {
    pub manifest: Manifest,
    /// Lowercase hex SHA-256 of the bytes read (the catalog's `manifest_sha256`).
    pub sha256: String,
    /// The object version read; `None` on an unversioned bucket.
    pub version_id: Option<String>,
    pub etag: Option<String>,
    /// Size of the object in bytes.
    pub size: u64,
}

/// How to read a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestRead<'a> {
    pub bucket: &'a str,
    pub key: String,
    /// Read this version rather than the current one.
    pub version_id: Option<&'a str>,
    /// Refuse objects larger than this many bytes.
    pub limit: u64,
}

impl<'a> ManifestRead<'a> {
    /// The current version of `raw/<session>/manifest.json`, bounded by [`MAX_MANIFEST_BYTES`].
    pub fn session(bucket: &'a str, session: &str) -> Self {
        Self::key(bucket, &manifest_key(session))
    }

    /// The current version of `key`, bounded by [`MAX_MANIFEST_BYTES`].
    pub fn key(bucket: &'a str, key: &str) -> Self {
        ManifestRead {
            bucket,
            key: key.to_string(),
            version_id: None,
            limit: MAX_MANIFEST_BYTES,
        }
    }

    /// Reads the given version (when `Some`).
    pub fn version(mut self, version_id: Option<&'a str>) -> Self {
        self.version_id = version_id;
        self
    }

    /// Another size bound.
    pub fn limit(mut self, limit: u64) -> Self {
        self.limit = limit;
        self
    }

    /// Reads and parses the manifest.
    ///
    /// Errors: [`S3Error::Call`] for the GET itself (classified; see [`crate::ErrorClass`] on why
    /// a missing key may read as access denied), [`S3Error::ManifestTooLarge`] above the bound,
    /// [`S3Error::Interrupted`] when the body stops, [`S3Error::ManifestInvalid`] when the bytes
    /// are not a manifest this version can read.
    pub async fn read(&self, s3: &Client) -> Result<ManifestObject, S3Error> {
        let (bucket, key) = (self.bucket, self.key.as_str());
        let out = s3
            .get_object()
            .bucket(bucket)
            .key(key)
            .set_version_id(self.version_id.map(str::to_string))
            .send()
            .await
            .map_err(|e| S3Error::call("GetObject", bucket, key, &e))?;
        let too_large = |size: u64| S3Error::ManifestTooLarge {
            bucket: bucket.to_string(),
            key: key.to_string(),
            size,
            limit: self.limit,
        };
        let declared = out.content_length().and_then(|n| u64::try_from(n).ok());
        if let Some(size) = declared.filter(|n| *n > self.limit) {
            return Err(too_large(size));
        }
        let version_id = out.version_id().map(str::to_string);
        let etag = out.e_tag().map(str::to_string);
        // Bounded while reading too, whatever the header said.
        let mut body = out.body;
        let mut bytes = Vec::with_capacity(declared.unwrap_or(0) as usize);
        while let Some(chunk) = body.try_next().await.map_err(|e| S3Error::Interrupted {
            bucket: bucket.to_string(),
            key: key.to_string(),
            detail: e.to_string(),
        })? {
            bytes.extend_from_slice(&chunk);
            if bytes.len() as u64 > self.limit {
                return Err(too_large(bytes.len() as u64));
            }
        }
        let sha256 = sha256_hex(&bytes);
        let manifest = Manifest::from_json(&bytes).map_err(|source| S3Error::ManifestInvalid {
            bucket: bucket.to_string(),
            key: key.to_string(),
            sha256: sha256.clone(),
            source,
        })?;
        Ok(ManifestObject {
            manifest,
            sha256,
            version_id,
            etag,
            size: bytes.len() as u64,
        })
    }
}
