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
//!
//! Versions: the event names the manifest version that was written, and the manifest names the
//! version of each object (on a versioned bucket), so ingest checks, and the catalog pins,
//! exactly what the upload wrote. A *different* manifest for a session already cataloged (a
//! second version at the key, which only a write around the upload can make) is recorded as a
//! conflict event in the session's history; the session, its status and its outputs stay as
//! they were.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_s3::types::ChecksumMode;
use chrono::Utc;
use labpipe_aws::{ErrorClass, ManifestRead, S3Error};
use labpipe_catalog::{Catalog, CatalogError, Level, PutOutcome, SessionItem, Status};
use labpipe_core::manifest::MAX_MANIFEST_FILES;
use labpipe_core::{Manifest, SessionId};
use tracing::{error, info, info_span, warn, Instrument};

use crate::batch::{self, MessageHandler};
use crate::config::{BackendConfig, Clients};
use crate::failure::Failure;
use crate::preprocess::PreprocessRequest;
use labpipe_core::layout::raw_session_prefix as session_prefix;
use labpipe_sqs::message::{manifest_events, ManifestEvent};

/// The catalog step name written with ingest's status changes.
pub const STEP: &str = "ingest";
/// Deliveries of one S3 event (the ingest queue's `maxReceiveCount` in `infra/template.yaml`):
/// a transient failure on the last one leaves the event in the dead-letter queue, and ingest
/// says so in the catalog first, so the session is never invisible.
pub const MAX_DELIVERIES: u32 = 5;

/// The ingest handler with its clients.
#[derive(Debug, Clone)]
pub struct Ingest {
    s3: aws_sdk_s3::Client,
    sqs: aws_sdk_sqs::Client,
    catalog: Catalog,
    preprocess_queue_url: String,
    pipeline_version: u32,
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
        batch::handle_batch(self, event).await
    }

    async fn ingest_message(&self, message: &SqsMessage) -> Result<(), Failure> {
        let manifests = parse_notification(message)?;
        if manifests.is_empty() {
            info!("the event names no new session manifest (a test event, another key); ignored");
        }
        let mut first_failure = None;
        let delivery = batch::delivery_count(message);
        for manifest in manifests {
            let span =
                info_span!("session", session = %manifest.session, revision = manifest.revision);
            let result = self
                .ingest_manifest(&manifest, delivery)
                .instrument(span)
                .await;
            if let Err(e) = result {
                first_failure.get_or_insert(e);
            }
        }
        first_failure.map_or(Ok(()), Err)
    }

    /// Ingests one manifest. `Err` only for transient failures; session problems are recorded as
    /// `FAILED` and return `Ok`. `delivery` counts this message's deliveries.
    async fn ingest_manifest(&self, event: &ManifestEvent, delivery: u32) -> Result<(), Failure> {
        let session = event.session;
        let id = session.to_string();
        match self.catalog_manifest(event, &id).await {
            Ok(()) => Ok(()),
            Err(Failure::Session(reason)) => {
                let reason = revision_reason(event.revision, &reason);
                error!(step = STEP, reason = %reason, "session failed ingest");
                self.catalog
                    .record_failure(&id, session.recorded_at(), STEP, &reason)
                    .await
                    .map_err(|e| match Failure::from(e) {
                        Failure::Transient(e) => Failure::transient(format!(
                            "cannot record the failure in the catalog: {e}"
                        )),
                        permanent => permanent,
                    })?;
                Ok(())
            }
            Err(Failure::Transient(reason)) if delivery >= MAX_DELIVERIES => {
                self.record_dead_letter(&session, delivery, &reason).await;
                Err(Failure::Transient(reason))
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

    /// The last delivery failed too: the event goes to the dead-letter queue. A session the
    /// catalog does not know yet gets a bare `FAILED` entry with the reason and the command that
    /// moves it on (ingest replaces that entry when the event comes back); a known one keeps its
    /// status and gets the reason in its history. Best effort: when the catalog itself is what
    /// fails, `labpipe status` finds the event in the dead-letter queue.
    async fn record_dead_letter(&self, session: &SessionId, delivery: u32, reason: &str) {
        let id = session.to_string();
        let message = format!(
            "ingest failed on all {delivery} deliveries ({reason}); its S3 event is in the ingest dead-letter queue: fix the cause (the ingest function's log), then `labpipe redrive --queue ingest`"
        );
        error!(step = STEP, reason = %reason, delivery, "ingest gives up: the event goes to the dead-letter queue");
        let recorded = match self.catalog.get(&id).await {
            Ok(None) => self
                .catalog
                .record_failure(&id, session.recorded_at(), STEP, &message)
                .await
                .map(|_| ()),
            Ok(Some(_)) => self
                .catalog
                .append_event(&id, STEP, Level::Error, &message)
                .await
                .map(|_| ()),
            Err(e) => Err(e),
        };
        if let Err(e) = recorded {
            warn!(error = %e, "cannot record the dead-lettered event in the catalog");
        }
    }

    async fn catalog_manifest(&self, event: &ManifestEvent, session: &str) -> Result<(), Failure> {
        let (bucket, key) = (event.bucket.as_str(), event.key.as_str());
        let version_id = event.version_id.as_deref();
        let read = ManifestRead::key(bucket, key)
            .version(version_id)
            .read(&self.s3)
            .await;
        let (manifest, sha, manifest_version) = match read {
            Ok(object) => (
                object.manifest,
                object.sha256,
                object.version_id.or(version_id.map(str::to_string)),
            ),
            Err(S3Error::ManifestInvalid { source, .. }) => {
                return Err(Failure::session(format!(
                    "manifest.json of {session} cannot be read: {source}; upload the session again with `labpipe upload`"
                )));
            }
            Err(e) => return Err(manifest_failure(bucket, key, e)),
        };

        // `raw/<session>/manifest.json` is revision 1; a correction's is
        // `raw/<session>.r<N>/manifest.json` and must say so itself.
        let revision = event.revision;
        if manifest.revision_number() != revision {
            return Err(Failure::session(format!(
                "{key} holds a manifest of revision {} but lies in the folder of revision {revision}; upload corrections with `labpipe upload --revise`",
                manifest.revision_number()
            )));
        }
        let folder = labpipe_core::layout::revision_folder(session, revision);

        let existing = self.catalog.get(session).await?;
        if let Some(existing) = &existing {
            let newer = revision > existing.current_revision();
            match existing.manifest_sha256.as_deref() {
                Some(cataloged) if cataloged == sha => {
                    info!(status = %existing.status, "manifest already cataloged (duplicate event)");
                    return self.resend_if_waiting(existing).await;
                }
                Some(_) if newer => {}
                Some(cataloged) => {
                    return self
                        .record_conflict(
                            bucket,
                            key,
                            session,
                            cataloged,
                            &sha,
                            manifest_version.as_deref(),
                        )
                        .await;
                }
                None => {}
            }
        }
        // A correction must be the next revision: every lower number committed in the bucket
        // (the rule `labpipe upload --revise` numbers by). A jump (`raw/<session>.r99/`, which any
        // holder of the uploader role can write) is refused and said in the history; the
        // current revision, its status and its outputs stay.
        let missing = self.missing_revisions(bucket, session, revision).await?;
        if !missing.is_empty() {
            return self
                .refuse_gap(event, session, existing.as_ref(), &missing)
                .await;
        }

        if manifest.session.to_string() != session {
            return Err(Failure::session(format!(
                "manifest.json under {} describes session {}; upload each session into its own folder",
                session_prefix(&folder),
                manifest.session
            )));
        }
        if manifest.files.len() > MAX_MANIFEST_FILES {
            return Err(Failure::session(format!(
                "manifest.json of {session} lists {} files, more than the {MAX_MANIFEST_FILES} a session may have; split the recording into several sessions",
                manifest.files.len()
            )));
        }
        self.verify_objects(bucket, &folder, &manifest).await?;

        let raw_prefix = format!("s3://{bucket}/{}", session_prefix(&folder));
        let mut item = SessionItem::from_manifest(&manifest, &sha, &raw_prefix, Utc::now());
        item.manifest_version_id = manifest_version.clone();
        // Who made this revision, in its history event.
        item.status_message = Some(format!(
            "{}; {}",
            item.status_message.as_deref().unwrap_or_default(),
            uploaded_by(event, &manifest)
        ));
        let put = if revision > 1 {
            self.catalog.put_revision(&item).await
        } else {
            self.catalog.put_new_session(&item).await
        };
        let put = match put {
            Err(CatalogError::Conflict { existing, .. }) => {
                // Another manifest was cataloged between our read and our write.
                return self
                    .record_conflict(
                        bucket,
                        key,
                        session,
                        &existing,
                        &sha,
                        manifest_version.as_deref(),
                    )
                    .await;
            }
            other => other?,
        };
        match put {
            PutOutcome::Created(item) => {
                info!(
                    files = item.file_count,
                    bytes = item.total_bytes,
                    revision,
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

    /// Every listed object exists with the listed size and, when recorded, CRC64NVME.
    ///
    /// What exists is learned from one listing of the session's prefix, not from a 404 per file:
    /// the role may list `raw/*` only under an `s3:prefix` condition, and to such a caller AWS
    /// answers a HEAD of a missing key with 403 (see [`labpipe_aws::error`]). A HEAD is made only
    /// for listed objects, for their checksums; access denied there means "not readable".
    ///
    /// A file the manifest pins to a version is checked at that version (a `HeadObject` with
    /// `versionId`), whatever the current version at its key is: that version is what
    /// preprocessing and `sync --raw` will read. A read of a given version needs
    /// `s3:GetObjectVersion` rather than `s3:GetObject` (Amazon S3 API Reference, GetObject,
    /// "versionId": <https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html>; HEAD
    /// takes "the relevant read object (or version) permission":
    /// <https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadObject.html>), which the ingest,
    /// preprocess and reader roles hold on `raw/*`.
    async fn verify_objects(
        &self,
        bucket: &str,
        folder: &str,
        manifest: &Manifest,
    ) -> Result<(), Failure> {
        let prefix = session_prefix(folder);
        let listed = labpipe_aws::list_prefix(&self.s3, bucket, &prefix)
            .await
            .map_err(|e| Failure::transient(e.to_string()))?;
        for file in &manifest.files {
            let key = labpipe_core::layout::raw_key(folder, &file.path);
            if file.version_id.is_some() {
                self.verify_object(bucket, &prefix, &key, file).await?;
                continue;
            }
            let Some(object) = listed.get(&key) else {
                return Err(Failure::session(format!(
                    "{} is listed in manifest.json but missing from s3://{bucket}/{prefix}; run `labpipe upload` for this session again (it re-sends missing files)",
                    file.path
                )));
            };
            if object.size != file.size {
                return Err(Failure::session(format!(
                    "{} is {} bytes in s3://{bucket}/{prefix} but {} bytes in manifest.json: the object is not the checked file; upload the session again from the lab PC",
                    file.path, object.size, file.size
                )));
            }
            if file.crc64nvme.is_none() {
                continue;
            }
            self.verify_object(bucket, &prefix, &key, file).await?;
        }
        Ok(())
    }

    /// One object (at the manifest's version, when it names one) has the listed size and
    /// CRC64NVME.
    async fn verify_object(
        &self,
        bucket: &str,
        prefix: &str,
        key: &str,
        file: &labpipe_core::ManifestFile,
    ) -> Result<(), Failure> {
        let version = file
            .version_id
            .as_deref()
            .map(|v| format!(" (version {v})"))
            .unwrap_or_default();
        let head = self
            .s3
            .head_object()
            .bucket(bucket)
            .key(key)
            .set_version_id(file.version_id.clone())
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
            .map_err(|e| {
                let e = S3Error::call("HeadObject", bucket, key, &e);
                match e.class() {
                    ErrorClass::NotFound | ErrorClass::AccessDenied => Failure::session(format!(
                        "{}{version} is listed in manifest.json but missing or not readable in s3://{bucket}/{prefix} ({e}); run `labpipe upload` for this session again, or check the ingest role's s3:GetObject and s3:GetObjectVersion on raw/*",
                        file.path
                    )),
                    _ => Failure::transient(e.to_string()),
                }
            })?;
        let size = head.content_length().unwrap_or(-1);
        if size != file.size as i64 {
            return Err(Failure::session(format!(
                    "{}{version} is {size} bytes in s3://{bucket}/{prefix} but {} bytes in manifest.json: the object is not the checked file; upload the session again from the lab PC",
                    file.path, file.size
                )));
        }
        if let (Some(want), Some(got)) = (file.crc64nvme.as_deref(), head.checksum_crc64_nvme()) {
            if want != got {
                return Err(Failure::session(format!(
                        "{}{version} in s3://{bucket}/{prefix} has CRC64NVME {got} but manifest.json says {want}: its bytes differ from the checked file; upload the session again from the lab PC",
                        file.path
                    )));
            }
        } else {
            warn!(file = %file.path, "no CRC64NVME on the object; its SHA-256 is verified during preprocessing");
        }
        Ok(())
    }

    /// The revision numbers below `revision` without a committed manifest in the bucket (none
    /// for revision 1). Learned from listings (the role may list `raw/*` only under an
    /// `s3:prefix` condition, see [`Ingest::verify_objects`]): the first upload's manifest key,
    /// then every correction's folder at once.
    async fn missing_revisions(
        &self,
        bucket: &str,
        session: &str,
        revision: u32,
    ) -> Result<Vec<u32>, Failure> {
        use labpipe_core::layout::{manifest_key, manifest_revision, raw_revisions_prefix};
        if revision <= 1 {
            return Ok(Vec::new());
        }
        let transient = |e: S3Error| Failure::transient(e.to_string());
        let first = manifest_key(session);
        let mut committed: std::collections::BTreeSet<u32> =
            labpipe_aws::list_prefix(&self.s3, bucket, &first)
                .await
                .map_err(transient)?
                .contains_key(&first)
                .then_some(1)
                .into_iter()
                .collect();
        if revision > 2 {
            let corrections =
                labpipe_aws::list_prefix(&self.s3, bucket, &raw_revisions_prefix(session))
                    .await
                    .map_err(transient)?;
            committed.extend(
                corrections
                    .keys()
                    .filter_map(|k| manifest_revision(k))
                    .filter(|(id, _)| id.to_string() == session)
                    .map(|(_, n)| n),
            );
        }
        Ok((1..revision).filter(|n| !committed.contains(n)).collect())
    }

    /// A correction whose number skips revisions: an `error` event in the session's history
    /// naming the missing numbers and who wrote it, nothing else (a session not cataloged yet
    /// gets a `FAILED` placeholder with that reason, so the refusal is visible).
    async fn refuse_gap(
        &self,
        event: &ManifestEvent,
        session: &str,
        existing: Option<&SessionItem>,
        missing: &[u32],
    ) -> Result<(), Failure> {
        let missing_list = missing
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let current = existing
            .filter(|e| e.manifest_sha256.is_some())
            .map(SessionItem::current_revision);
        let message = format!(
            "refused revision {}: s3://{}/{} skips revision {missing_list}, which has no manifest in the bucket; a correction must be the next revision ({}), which `labpipe upload --revise` picks. Written by {}. {}",
            event.revision,
            event.bucket,
            event.key,
            current.map_or("1".to_string(), |c| format!(
                "the current one is {c}"
            )),
            event.principal.as_deref().unwrap_or("an unknown principal (not in the S3 event)"),
            match current {
                Some(c) => format!("The session keeps revision {c}, its status and its outputs."),
                None => "Upload the session's first revision without --revise.".to_string(),
            }
        );
        warn!(step = STEP, revision = event.revision, missing = %missing_list, "a correction skips revisions; refused");
        if current.is_some() {
            let recorded = self
                .catalog
                .append_event(session, STEP, Level::Error, &message)
                .await?;
            if recorded {
                return Ok(());
            }
        }
        Err(Failure::Session(message))
    }

    /// A different manifest for a session already cataloged: a conflict event in its history,
    /// nothing else. The cataloged manifest (pinned by SHA-256 and version id) stays what
    /// preprocessing and `sync --raw` read, so a processed session stays processed.
    async fn record_conflict(
        &self,
        bucket: &str,
        key: &str,
        session: &str,
        cataloged: &str,
        incoming: &str,
        version_id: Option<&str>,
    ) -> Result<(), Failure> {
        let version = version_id
            .map(|v| format!(" (version {v})"))
            .unwrap_or_default();
        let message = format!(
            "conflict: s3://{bucket}/{key}{version} has sha256 {incoming}, but the session was cataloged from sha256 {cataloged}; the session keeps its cataloged manifest and outputs. Raw data must not change: ask the operator to find out who wrote the second manifest (the bucket keeps both versions)"
        );
        warn!(
            step = STEP,
            cataloged,
            incoming,
            "a different manifest for a cataloged session; recorded as a conflict"
        );
        let recorded = self
            .catalog
            .append_event(session, STEP, Level::Error, &message)
            .await?;
        if !recorded {
            return Err(Failure::transient(format!(
                "cannot record the manifest conflict of {session}: its catalog entry is gone"
            )));
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
                    labpipe_aws::describe(&e)
                ))
            })?;
        info!(
            pipeline_version = self.pipeline_version,
            "preprocessing requested"
        );
        Ok(())
    }
}

impl MessageHandler for Ingest {
    const STEP: &'static str = STEP;

    async fn handle_message(&self, message: SqsMessage) -> Result<(), Failure> {
        self.ingest_message(&message).await
    }

    async fn fail_message(&self, message: &SqsMessage, reason: &str) -> Result<(), Failure> {
        for manifest in parse_notification(message)? {
            let reason = revision_reason(manifest.revision, reason);
            error!(session = %manifest.session, step = STEP, reason = %reason, "session failed ingest");
            self.catalog
                .record_failure(
                    &manifest.session.to_string(),
                    manifest.session.recorded_at(),
                    STEP,
                    &reason,
                )
                .await?;
        }
        Ok(())
    }
}

/// A reason about revision `revision` ≥ 2 starts with `revision <R>: `, so the history says
/// which upload it is about and `labpipe redrive` knows which manifest to send again
/// (`labpipe_sqs::reprocess::failed_ingest_revision`).
fn revision_reason(revision: u32, reason: &str) -> String {
    if revision <= 1 || reason.starts_with("refused revision") {
        reason.to_string()
    } else {
        format!("revision {revision}: {reason}")
    }
}

/// Who made a revision: the principal of the S3 event and the machine the manifest names.
fn uploaded_by(event: &ManifestEvent, manifest: &Manifest) -> String {
    format!(
        "uploaded by {} from {}",
        event
            .principal
            .as_deref()
            .unwrap_or("an unknown principal (not in the S3 event)"),
        uploading_machine(manifest)
            .unwrap_or_else(|| "an unknown machine (not in the manifest)".into())
    )
}

/// The machine the manifest says uploaded it (`uploaded_by`), when it says.
fn uploading_machine(manifest: &Manifest) -> Option<String> {
    manifest.uploaded_by.as_ref().map(ToString::to_string)
}

/// The session manifests the message's S3 event announces
/// ([`labpipe_sqs::message::manifest_events`]). A body that is not an S3 event notification is
/// an error that goes, after the queue's retries, to the dead-letter queue for someone to look
/// at.
fn parse_notification(message: &SqsMessage) -> Result<Vec<ManifestEvent>, Failure> {
    manifest_events(message.body.as_deref().unwrap_or_default()).map_err(|e| {
        error!(error = %e, "message is not an S3 event notification; it goes to the dead-letter queue");
        Failure::transient(format!("message body is not an S3 event notification: {e}"))
    })
}

/// A manifest that cannot be read: gone, over the size bound or unreadable is the session's
/// problem; anything else (throttling, a role or bucket misconfigured) is retried, and after a
/// few attempts dead-lettered for an operator to redrive.
fn manifest_failure(bucket: &str, key: &str, e: S3Error) -> Failure {
    match e.class() {
        ErrorClass::NotFound => Failure::session(format!(
            "s3://{bucket}/{key} no longer exists (deleted after upload?); upload the session again with `labpipe upload`"
        )),
        ErrorClass::Permanent => Failure::session(e.to_string()),
        _ => Failure::transient(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn manifest_bytes_never_panic_the_parser(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = Manifest::from_json(&bytes);
        }

        #[test]
        fn manifests_with_any_file_names_round_trip(
            session in "20[0-9]{2}(0[1-9]|1[0-2])(0[1-9]|1[0-9]|2[0-8])_([01][0-9]|2[0-3])[0-5][0-9][0-5][0-9]",
            paths in proptest::collection::btree_set("[ a-zA-Z0-9+%()._-]{1,12}(/[ a-zA-Z0-9._-]{1,8})?", 0..20),
            sizes in proptest::collection::vec(any::<u64>(), 20),
        ) {
            let files: Vec<serde_json::Value> = paths
                .iter()
                .zip(&sizes)
                .map(|(p, size)| serde_json::json!({"path": p, "size": size, "role": "data", "sha256": "00"}))
                .collect();
            let text = serde_json::json!({
                "format": labpipe_core::manifest::MANIFEST_FORMAT,
                "session": session,
                "recorded_at": "2021-03-01T16:12:21",
                "created_at": "2021-03-01T17:00:00Z",
                "tool_version": "t",
                "verdict": "pass",
                "total_bytes": 0,
                "metadata": {},
                "files": files,
                "findings": [],
            })
            .to_string();
            let m = Manifest::from_json(text.as_bytes()).unwrap();
            prop_assert_eq!(m.files.len(), paths.len());
            prop_assert_eq!(Manifest::from_json(m.to_json().as_bytes()).unwrap(), m);
        }
    }

    /// The last delivery is the ingest queue's `maxReceiveCount`: a changed template must change
    /// [`MAX_DELIVERIES`] too.
    #[test]
    fn max_deliveries_follow_the_template() {
        let template = include_str!("../../infra/template.yaml");
        let count = template
            .lines()
            .skip_while(|l| *l != "  IngestQueue:")
            .skip(1)
            .take_while(|l| l.is_empty() || l.starts_with("   "))
            .find_map(|l| l.trim().strip_prefix("maxReceiveCount:"))
            .expect("IngestQueue has a maxReceiveCount");
        assert_eq!(count.trim().parse::<u32>().unwrap(), MAX_DELIVERIES);
    }
}
