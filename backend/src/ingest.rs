//! Ingest: from a manifest's S3 event to a `CATALOGED` session and a preprocessing request.
//!
//! The manifest is the upload's commit marker, so an event on any other key is ignored. The
//! manifest is trusted only after every object it lists is checked in the bucket — present, of
//! the listed size, and with the listed CRC64NVME when the upload recorded one (S3 computed that
//! checksum from the bytes it received, so a match proves the object is the checked file without
//! reading 600 MB). The SHA-256 of every file is verified again while preprocessing streams it.
//!
//! Idempotent: S3 may deliver one completion twice (and the emulator does), SQS may redeliver.
//! A manifest already cataloged with the same SHA-256 is a no-op, apart from re-sending the
//! preprocessing request while the session is still `CATALOGED` (the first delivery may have died
//! between the catalog write and the send); preprocessing itself is idempotent per version.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_s3::types::ChecksumMode;
use chrono::Utc;
use labpipe_catalog::{Catalog, PutOutcome, SessionItem, Status};
use labpipe_core::{Manifest, SessionId};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tracing::{error, info, info_span, warn, Instrument};

use crate::config::{BackendConfig, Clients};
use crate::failure::{describe_sdk_error, Failure};
use crate::preprocess::PreprocessRequest;
use crate::s3key::{decode_event_key, manifest_session, session_prefix};

/// The catalog step name written with ingest's status changes.
pub const STEP: &str = "ingest";

/// The ingest handler with its clients.
#[derive(Debug, Clone)]
pub struct Ingest {
    s3: aws_sdk_s3::Client,
    sqs: aws_sdk_sqs::Client,
    catalog: Catalog,
    preprocess_queue_url: String,
    pipeline_version: u32,
}

/// The part of an S3 event notification ingest reads. Parsed leniently: the emulator and
/// EventBridge-era S3 differ in the fields around these.
#[derive(Debug, Deserialize)]
struct S3Notification {
    #[serde(rename = "Records", default)]
    records: Vec<S3Record>,
    /// `s3:TestEvent`, sent once when a notification is configured.
    #[serde(rename = "Event", default)]
    event: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct S3Record {
    #[serde(default)]
    event_name: String,
    s3: S3Entity,
}

#[derive(Debug, Deserialize)]
struct S3Entity {
    bucket: S3Bucket,
    object: S3Object,
}

#[derive(Debug, Deserialize)]
struct S3Bucket {
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct S3Object {
    key: String,
    #[serde(default)]
    version_id: Option<String>,
}

impl Ingest {
    pub fn new(clients: &Clients, config: &BackendConfig) -> Self {
        Ingest {
            s3: clients.s3.clone(),
            sqs: clients.sqs.clone(),
            catalog: Catalog::new(clients.dynamodb.clone(), &config.table),
            preprocess_queue_url: config.preprocess_queue_url.clone(),
            pipeline_version: config.pipeline_version,
        }
    }

    /// Handles one SQS batch of S3 events. Messages that hit a transient problem come back as
    /// batch item failures; everything else is done (successfully, or with the session `FAILED`).
    pub async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        let mut response = SqsBatchResponse::default();
        for message in event.records {
            let id = message.message_id.clone().unwrap_or_default();
            if let Err(e) = self.handle_message(&message).await {
                warn!(message_id = %id, error = %e, "ingest will retry this message");
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = id;
                response.batch_item_failures.push(failure);
            }
        }
        response
    }

    async fn handle_message(&self, message: &SqsMessage) -> Result<(), Failure> {
        let body = message.body.as_deref().unwrap_or_default();
        let notification: S3Notification = serde_json::from_str(body).map_err(|e| {
            error!(error = %e, "message is not an S3 event notification; it goes to the dead-letter queue");
            Failure::transient(format!("message body is not an S3 event notification: {e}"))
        })?;
        if notification.event.as_deref() == Some("s3:TestEvent") {
            info!("ignoring the S3 test event");
            return Ok(());
        }
        let mut first_failure = None;
        for record in &notification.records {
            if !record.event_name.starts_with("ObjectCreated") {
                continue;
            }
            let key = decode_event_key(&record.s3.object.key);
            let Some(session) = manifest_session(&key) else {
                tracing::debug!(key = %key, "not a session manifest; ignored");
                continue;
            };
            let span = info_span!("session", session = %session);
            let result = self
                .ingest_manifest(
                    &record.s3.bucket.name,
                    &key,
                    record.s3.object.version_id.as_deref(),
                    session,
                )
                .instrument(span)
                .await;
            if let Err(e) = result {
                first_failure.get_or_insert(e);
            }
        }
        first_failure.map_or(Ok(()), Err)
    }

    /// Ingests one manifest. `Err` only for transient failures; session problems are recorded as
    /// `FAILED` and return `Ok`.
    async fn ingest_manifest(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        session: SessionId,
    ) -> Result<(), Failure> {
        let id = session.to_string();
        match self.catalog_manifest(bucket, key, version_id, &id).await {
            Ok(()) => Ok(()),
            Err(Failure::Session(reason)) => {
                error!(step = STEP, reason = %reason, "session failed ingest");
                self.catalog
                    .record_failure(&id, session.recorded_at(), STEP, &reason)
                    .await
                    .map_err(|e| {
                        Failure::transient(format!("cannot record the failure in the catalog: {e}"))
                    })?;
                Ok(())
            }
            Err(Failure::Transient(reason)) => {
                warn!(step = STEP, reason = %reason, "transient ingest failure");
                // Best effort: visible in the history when the session is already cataloged.
                let _ = self
                    .catalog
                    .append_event(
                        &id,
                        STEP,
                        labpipe_catalog::Level::Warning,
                        &format!("ingest will be retried: {reason}"),
                    )
                    .await;
                Err(Failure::Transient(reason))
            }
        }
    }

    async fn catalog_manifest(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        session: &str,
    ) -> Result<(), Failure> {
        let bytes = self.read_manifest(bucket, key, version_id).await?;
        let sha = hex::encode(Sha256::digest(&bytes));

        if let Some(existing) = self.catalog.get(session).await? {
            if existing.manifest_sha256.as_deref() == Some(sha.as_str()) {
                info!(status = %existing.status, "manifest already cataloged (duplicate event)");
                return self.resend_if_waiting(&existing).await;
            }
        }

        let manifest = Manifest::from_json(&bytes).map_err(|e| {
            Failure::session(format!(
                "manifest.json of {session} cannot be read: {e}; upload the session again with `labpipe upload`"
            ))
        })?;
        if manifest.session.to_string() != session {
            return Err(Failure::session(format!(
                "manifest.json under raw/{session}/ describes session {}; upload each session into its own folder",
                manifest.session
            )));
        }
        self.verify_objects(bucket, session, &manifest).await?;

        let raw_prefix = format!("s3://{bucket}/{}", session_prefix(session));
        let item = SessionItem::from_manifest(&manifest, &sha, &raw_prefix, Utc::now());
        match self.catalog.put_new_session(&item).await? {
            PutOutcome::Created(item) => {
                info!(
                    files = item.file_count,
                    bytes = item.total_bytes,
                    "session cataloged"
                );
                self.request_preprocessing(session).await
            }
            PutOutcome::AlreadyCataloged(existing) => {
                info!(status = %existing.status, "manifest already cataloged (concurrent duplicate)");
                self.resend_if_waiting(&existing).await
            }
        }
    }

    async fn read_manifest(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<Vec<u8>, Failure> {
        let out = self
            .s3
            .get_object()
            .bucket(bucket)
            .key(key)
            .set_version_id(version_id.map(str::to_string))
            .send()
            .await
            .map_err(|e| {
                let not_found = e.as_service_error().is_some_and(|s| s.is_no_such_key());
                if not_found {
                    Failure::session(format!(
                        "s3://{bucket}/{key} no longer exists (deleted after upload?); upload the session again with `labpipe upload`"
                    ))
                } else {
                    Failure::transient(format!("cannot read s3://{bucket}/{key}: {}", describe_sdk_error(&e)))
                }
            })?;
        let body = out.body.collect().await.map_err(|e| {
            Failure::transient(format!("reading s3://{bucket}/{key} was interrupted: {e}"))
        })?;
        Ok(body.into_bytes().to_vec())
    }

    /// Every listed object exists with the listed size and, when recorded, CRC64NVME.
    async fn verify_objects(
        &self,
        bucket: &str,
        session: &str,
        manifest: &Manifest,
    ) -> Result<(), Failure> {
        let prefix = session_prefix(session);
        for file in &manifest.files {
            let key = format!("{prefix}{}", file.path);
            let head = self
                .s3
                .head_object()
                .bucket(bucket)
                .key(&key)
                .checksum_mode(ChecksumMode::Enabled)
                .send()
                .await;
            let head = match head {
                Ok(h) => h,
                Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => {
                    return Err(Failure::session(format!(
                        "{} is listed in manifest.json but missing from s3://{bucket}/{prefix}; run `labpipe upload` for this session again (it re-sends missing files)",
                        file.path
                    )))
                }
                Err(e) => {
                    return Err(Failure::transient(format!(
                        "cannot check s3://{bucket}/{key}: {}",
                        describe_sdk_error(&e)
                    )))
                }
            };
            let size = head.content_length().unwrap_or(-1);
            if size != file.size as i64 {
                return Err(Failure::session(format!(
                    "{} is {size} bytes in s3://{bucket}/{prefix} but {} bytes in manifest.json: the object is not the checked file; upload the session again from the lab PC",
                    file.path, file.size
                )));
            }
            if let (Some(want), Some(got)) = (file.crc64nvme.as_deref(), head.checksum_crc64_nvme())
            {
                if want != got {
                    return Err(Failure::session(format!(
                        "{} in s3://{bucket}/{prefix} has CRC64NVME {got} but manifest.json says {want}: its bytes differ from the checked file; upload the session again from the lab PC",
                        file.path
                    )));
                }
            } else if file.crc64nvme.is_some() {
                warn!(file = %file.path, "no CRC64NVME on the object; its SHA-256 is verified during preprocessing");
            }
        }
        Ok(())
    }

    async fn resend_if_waiting(&self, item: &SessionItem) -> Result<(), Failure> {
        if item.status == Status::Cataloged {
            self.request_preprocessing(&item.session).await
        } else {
            Ok(())
        }
    }

    async fn request_preprocessing(&self, session: &str) -> Result<(), Failure> {
        let request = PreprocessRequest {
            session: session.to_string(),
            pipeline_version: self.pipeline_version,
        };
        self.sqs
            .send_message()
            .queue_url(&self.preprocess_queue_url)
            .message_body(serde_json::to_string(&request).expect("request serialises"))
            .send()
            .await
            .map_err(|e| {
                Failure::transient(format!(
                    "cannot queue preprocessing: {}",
                    describe_sdk_error(&e)
                ))
            })?;
        info!(
            pipeline_version = self.pipeline_version,
            "preprocessing requested"
        );
        Ok(())
    }
}
