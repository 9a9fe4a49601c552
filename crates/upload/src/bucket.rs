//! Every S3 request the engine makes, in one place: each carries a [`RetryWatch`] (so retries
//! become events) and each failure is classified into an [`UploadError`] the user can act on.
//!
//! What exists is learned from **listings**, never from a `HeadObject` that expects 404: AWS
//! answers a HEAD (or GET) of a missing key with 403 Access Denied, not 404, to a caller without
//! `s3:ListBucket` on the bucket — "If you don't have the s3:ListBucket permission, Amazon S3
//! returns an HTTP status code 403 Forbidden error" (Amazon S3 API Reference, HeadObject,
//! "Permissions": <https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadObject.html>). The uploader role holds `s3:ListBucket` only under an `s3:prefix` condition,
//! which a HEAD does not carry, so on AWS a missing key would look like a denied one. A HEAD is
//! made here only of an object a listing (or a refused conditional write) showed to exist.

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, ChecksumMode, ChecksumType, CompletedMultipartUpload, CompletedPart,
};
use aws_sdk_s3::Client;
use bytes::Bytes;
use std::collections::{BTreeMap, HashMap};
use tokio::sync::mpsc::UnboundedSender;

use crate::event::Event;
use crate::retry::RetryWatch;
use crate::UploadError;

/// The raw bucket as the engine talks to it.
pub(crate) struct RawBucket {
    s3: Client,
    name: String,
    events: Option<UnboundedSender<Event>>,
}

/// An object a listing returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ListedObject {
    pub size: u64,
    pub etag: String,
}

/// Everything one session prefix holds: one `ListObjectsV2` and, when the journal has an upload
/// to resume there, one `ListMultipartUploads` (each paginated) instead of a request per file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Survey {
    /// Objects by key.
    pub objects: HashMap<String, ListedObject>,
    /// Multipart uploads in progress: key → upload ids (anyone's).
    pub uploads: HashMap<String, Vec<String>>,
}

/// What a `HeadObject` of an existing object says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ObjectState {
    pub size: u64,
    pub crc64nvme: Option<String>,
    pub etag: String,
    /// The current version's id (see [`version_id`]).
    pub version_id: Option<String>,
}

/// A part S3 holds for a multipart upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RemotePart {
    pub etag: String,
    pub crc64nvme: Option<String>,
    pub size: u64,
}

/// What `ListParts` said about an upload.
pub(crate) enum Parts {
    Listed(BTreeMap<i32, RemotePart>),
    /// The upload no longer exists (completed, aborted or expired since the survey).
    Gone,
    /// An answer the SDK cannot parse: some S3-compatible servers send one (the local emulator
    /// names its root `ListPartsResponse`). The journal's parts, acknowledged by S3 for an upload
    /// the survey showed alive, stand in.
    Unreadable,
}

/// What S3 answered to a completed write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Written {
    pub etag: String,
    /// The full-object CRC64NVME S3 computed and stored, where it returns one.
    pub crc64nvme: Option<String>,
    /// The version the write created (see [`version_id`]).
    pub version_id: Option<String>,
}

/// An object proven to hold a file: its ETag and the version id the manifest records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stored {
    pub etag: String,
    pub version_id: Option<String>,
}

/// The version id S3 answered with, as the manifest records it: on a versioned bucket every
/// write gets a unique id, returned in `x-amz-version-id`; an unversioned bucket sends none, and
/// one with versioning suspended sends `null` (Amazon S3 User Guide, "Adding objects to
/// versioning-enabled buckets": <https://docs.aws.amazon.com/AmazonS3/latest/userguide/AddingObjectstoVersioningEnabledBuckets.html>,
/// and API Reference, "Versioning": <https://docs.aws.amazon.com/AmazonS3/latest/API/postVersions.html>).
/// `null` pins nothing (the next suspended-mode write replaces that version), so it is recorded
/// as no version.
pub(crate) fn version_id(answered: Option<&str>) -> Option<String> {
    answered
        .filter(|v| !v.is_empty() && *v != "null")
        .map(str::to_string)
}

/// Why a write was not done.
pub(crate) enum WriteRefused {
    /// `If-None-Match: *` met an existing object (412), or the multipart upload is gone
    /// (a retried completion whose first attempt succeeded, or an upload aborted by someone).
    Exists,
    Failed(UploadError),
}

type S3Error<E> = SdkError<E, aws_sdk_s3::config::http::HttpResponse>;

impl RawBucket {
    pub(crate) fn new(s3: Client, name: String, events: Option<UnboundedSender<Event>>) -> Self {
        Self { s3, name, events }
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Reports the retries of one request on `key` as events.
    pub(crate) fn watch(&self, key: &str) -> RetryWatch {
        RetryWatch::new(self.events.clone(), key)
    }

    fn classify<E>(&self, operation: &'static str, key: &str, e: S3Error<E>) -> UploadError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        classify(&self.name, operation, key, e)
    }

    /// Checks once that the bucket exists and the credentials may list `raw/`, with a call the
    /// uploader role holds (`s3:ListBucket` under `s3:prefix` `raw/*`).
    pub(crate) async fn preflight(&self) -> Result<(), UploadError> {
        let prefix = labpipe_core::layout::RAW_PREFIX.to_string();
        self.s3
            .list_objects_v2()
            .bucket(&self.name)
            .prefix(&prefix)
            .max_keys(1)
            .customize()
            .interceptor(self.watch(&prefix))
            .send()
            .await
            .map(drop)
            .map_err(|e| self.classify("ListObjectsV2", &prefix, e))
    }

    /// Lists every object under `prefix` and, when `with_uploads`, every multipart upload in
    /// progress there. The uploads matter only for resuming one the journal recorded (the
    /// planner never touches an upload it does not know), so without such a record one
    /// `ListObjectsV2` is the session's whole survey.
    pub(crate) async fn survey(
        &self,
        prefix: &str,
        with_uploads: bool,
    ) -> Result<Survey, UploadError> {
        let mut survey = Survey::default();
        let mut token: Option<String> = None;
        loop {
            let out = self
                .s3
                .list_objects_v2()
                .bucket(&self.name)
                .prefix(prefix)
                .set_continuation_token(token.clone())
                .customize()
                .interceptor(self.watch(prefix))
                .send()
                .await
                .map_err(|e| self.classify("ListObjectsV2", prefix, e))?;
            for o in out.contents() {
                if let Some(key) = o.key() {
                    survey.objects.insert(
                        key.to_string(),
                        ListedObject {
                            size: o.size().unwrap_or(0).max(0) as u64,
                            etag: o.e_tag().unwrap_or_default().to_string(),
                        },
                    );
                }
            }
            match out.next_continuation_token() {
                Some(t) if out.is_truncated() == Some(true) => token = Some(t.to_string()),
                _ => break,
            }
        }
        if with_uploads {
            survey.uploads = self.uploads(prefix).await?;
        }
        Ok(survey)
    }

    /// Multipart uploads in progress under `prefix`: key → upload ids.
    async fn uploads(&self, prefix: &str) -> Result<HashMap<String, Vec<String>>, UploadError> {
        let mut uploads: HashMap<String, Vec<String>> = HashMap::new();
        let mut key_marker: Option<String> = None;
        let mut id_marker: Option<String> = None;
        loop {
            let out = self
                .s3
                .list_multipart_uploads()
                .bucket(&self.name)
                .prefix(prefix)
                .set_key_marker(key_marker.clone())
                .set_upload_id_marker(id_marker.clone())
                .customize()
                .interceptor(self.watch(prefix))
                .send()
                .await
                .map_err(|e| self.classify("ListMultipartUploads", prefix, e))?;
            for u in out.uploads() {
                if let (Some(key), Some(id)) = (u.key(), u.upload_id()) {
                    uploads.entry(key.into()).or_default().push(id.into());
                }
            }
            if out.is_truncated() != Some(true) {
                return Ok(uploads);
            }
            key_marker = out.next_key_marker().map(String::from);
            id_marker = out.next_upload_id_marker().map(String::from);
        }
    }

    /// The object at `key`, if a listing shows one, with its checksum (HEAD of an existing
    /// object only; see the module docs).
    pub(crate) async fn object(&self, key: &str) -> Result<Option<ObjectState>, UploadError> {
        let listed = self
            .s3
            .list_objects_v2()
            .bucket(&self.name)
            .prefix(key)
            .max_keys(1)
            .customize()
            .interceptor(self.watch(key))
            .send()
            .await
            .map_err(|e| self.classify("ListObjectsV2", key, e))?;
        if !listed.contents().iter().any(|o| o.key() == Some(key)) {
            return Ok(None);
        }
        self.head(key).await.map(Some)
    }

    /// `HeadObject` of an object known to exist: size, full-object checksum, ETag.
    pub(crate) async fn head(&self, key: &str) -> Result<ObjectState, UploadError> {
        let o = self
            .s3
            .head_object()
            .bucket(&self.name)
            .key(key)
            .checksum_mode(ChecksumMode::Enabled)
            .customize()
            .interceptor(self.watch(key))
            .send()
            .await
            .map_err(|e| self.classify("HeadObject", key, e))?;
        Ok(ObjectState {
            size: o.content_length().unwrap_or(0).max(0) as u64,
            crc64nvme: o.checksum_crc64_nvme().map(String::from),
            etag: o.e_tag().unwrap_or_default().to_string(),
            version_id: version_id(o.version_id()),
        })
    }

    /// The whole body of an existing object.
    pub(crate) async fn get(&self, key: &str) -> Result<Bytes, UploadError> {
        let got = self
            .s3
            .get_object()
            .bucket(&self.name)
            .key(key)
            .customize()
            .interceptor(self.watch(key))
            .send()
            .await
            .map_err(|e| self.classify("GetObject", key, e))?;
        got.body
            .collect()
            .await
            .map(|b| b.into_bytes())
            .map_err(|e| UploadError::S3 {
                operation: "GetObject",
                key: key.into(),
                detail: e.to_string(),
            })
    }

    /// A `PutObject` that never overwrites (`If-None-Match: *`), carrying its CRC64NVME so S3
    /// rejects a body that does not match it.
    pub(crate) async fn put_new(
        &self,
        key: &str,
        body: Bytes,
        crc_b64: &str,
        content_type: Option<&str>,
    ) -> Result<Written, WriteRefused> {
        let out = self
            .s3
            .put_object()
            .bucket(&self.name)
            .key(key)
            .content_length(body.len() as i64)
            .checksum_algorithm(ChecksumAlgorithm::Crc64Nvme)
            .checksum_crc64_nvme(crc_b64)
            .set_content_type(content_type.map(String::from))
            .if_none_match("*")
            .body(ByteStream::from(body))
            .customize()
            .disable_payload_signing()
            .interceptor(self.watch(key))
            .send()
            .await;
        match out {
            Ok(o) => Ok(Written {
                etag: o.e_tag().unwrap_or_default().into(),
                crc64nvme: o.checksum_crc64_nvme().map(String::from),
                version_id: version_id(o.version_id()),
            }),
            Err(e) if is_precondition_failed(&e) => Err(WriteRefused::Exists),
            Err(e) => Err(WriteRefused::Failed(self.classify("PutObject", key, e))),
        }
    }

    /// Starts a multipart upload whose object gets a full-object CRC64NVME; returns its id.
    pub(crate) async fn create_multipart(&self, key: &str) -> Result<String, UploadError> {
        let out = self
            .s3
            .create_multipart_upload()
            .bucket(&self.name)
            .key(key)
            .checksum_algorithm(ChecksumAlgorithm::Crc64Nvme)
            .checksum_type(ChecksumType::FullObject)
            .customize()
            .interceptor(self.watch(key))
            .send()
            .await
            .map_err(|e| self.classify("CreateMultipartUpload", key, e))?;
        match out.upload_id() {
            Some(id) if !id.is_empty() => Ok(id.to_string()),
            _ => Err(UploadError::S3 {
                operation: "CreateMultipartUpload",
                key: key.into(),
                detail: "the answer carried no upload id; run the upload again".into(),
            }),
        }
    }

    /// Sends one part (one attempt sequence of the SDK); returns its ETag.
    pub(crate) async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: i32,
        body: Bytes,
        crc_b64: &str,
        watch: RetryWatch,
    ) -> Result<String, UploadError> {
        self.s3
            .upload_part()
            .bucket(&self.name)
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .content_length(body.len() as i64)
            .checksum_algorithm(ChecksumAlgorithm::Crc64Nvme)
            .checksum_crc64_nvme(crc_b64)
            .body(ByteStream::from(body))
            .customize()
            .disable_payload_signing()
            .interceptor(watch)
            .send()
            .await
            .map(|o| o.e_tag().unwrap_or_default().to_string())
            .map_err(|e| self.classify("UploadPart", key, e))
    }

    /// Completes a multipart upload unless an object is already at the key.
    pub(crate) async fn complete(
        &self,
        key: &str,
        upload_id: &str,
        parts: Vec<CompletedPart>,
        crc_b64: &str,
    ) -> Result<Written, WriteRefused> {
        let out = self
            .s3
            .complete_multipart_upload()
            .bucket(&self.name)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .checksum_crc64_nvme(crc_b64)
            .checksum_type(ChecksumType::FullObject)
            .if_none_match("*")
            .customize()
            .interceptor(self.watch(key))
            .send()
            .await;
        match out {
            Ok(o) => Ok(Written {
                etag: o.e_tag().unwrap_or_default().into(),
                crc64nvme: o.checksum_crc64_nvme().map(String::from),
                version_id: version_id(o.version_id()),
            }),
            Err(e) if is_precondition_failed(&e) || e.code() == Some("NoSuchUpload") => {
                Err(WriteRefused::Exists)
            }
            Err(e) => Err(WriteRefused::Failed(self.classify(
                "CompleteMultipartUpload",
                key,
                e,
            ))),
        }
    }

    /// Aborts one multipart upload; one that is already gone counts as aborted.
    pub(crate) async fn abort(&self, key: &str, upload_id: &str) -> Result<(), UploadError> {
        match self
            .s3
            .abort_multipart_upload()
            .bucket(&self.name)
            .key(key)
            .upload_id(upload_id)
            .customize()
            .interceptor(self.watch(key))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("NoSuchUpload") => Ok(()),
            Err(e) => Err(self.classify("AbortMultipartUpload", key, e)),
        }
    }

    /// The parts S3 holds for an upload the survey listed.
    pub(crate) async fn parts(&self, key: &str, upload_id: &str) -> Result<Parts, UploadError> {
        let mut parts = BTreeMap::new();
        let mut marker: Option<String> = None;
        loop {
            let out = self
                .s3
                .list_parts()
                .bucket(&self.name)
                .key(key)
                .upload_id(upload_id)
                .set_part_number_marker(marker.clone())
                .customize()
                .interceptor(self.watch(key))
                .send()
                .await;
            let out = match out {
                Ok(o) => o,
                Err(e) if e.code() == Some("NoSuchUpload") => return Ok(Parts::Gone),
                Err(SdkError::ServiceError(e)) if e.raw().status().as_u16() == 200 => {
                    tracing::debug!(key, error = %DisplayErrorContext(e.err()), "unreadable ListParts answer; using the journal's parts");
                    return Ok(Parts::Unreadable);
                }
                Err(e) => return Err(self.classify("ListParts", key, e)),
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
                return Ok(Parts::Listed(parts));
            }
        }
    }
}

fn is_precondition_failed<E: ProvideErrorMetadata>(e: &S3Error<E>) -> bool {
    e.code() == Some("PreconditionFailed")
        || e.raw_response().is_some_and(|r| r.status().as_u16() == 412)
}

/// Turns an SDK error (after the SDK's own retries) into what the user can act on.
fn classify<E>(bucket: &str, operation: &'static str, key: &str, e: S3Error<E>) -> UploadError
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
