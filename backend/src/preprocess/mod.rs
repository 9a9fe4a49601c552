//! Preprocess: from a `CATALOGED` session to verified outputs under `v<N>/<session>/`.
//!
//! Claims the session (`PROCESSING`, conditional on the status read), streams the raw data once
//! through the [`engine`], uploads the steps' files and `summary.json`, records the outputs with
//! their sizes and SHA-256 in the catalog, and marks the session `PROCESSED`.
//!
//! Idempotent per (session, pipeline version): a session already `PROCESSED` at this version (or
//! a later one) is skipped, so duplicate requests cost one catalog read. A run that hits a
//! transient error releases its claim (back to `CATALOGED`, with the reason in the history) and
//! the message is retried; a run whose worker died is taken over once its claim is older than
//! the lease (the function timeout). A problem with the data itself ends in `FAILED` with the
//! file and what to do.

pub mod clean;
pub mod decode;
pub mod engine;
pub mod features;
pub mod filter;
pub mod npy;
pub mod step;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_s3::primitives::ByteStream;
use chrono::Utc;
use labpipe_aws::{ErrorClass, ManifestRead};
use labpipe_catalog::{
    Catalog, CatalogError, Level, OutputFile, OutputRecord, SessionItem, Status,
};
use labpipe_core::Manifest;
use tracing::{error, info, info_span, warn, Instrument};

pub use engine::Pipeline;
pub use step::{Artifact, ChannelStats, SignalLayout, Step, StepOutput};

use crate::batch::{self, MessageHandler};
use crate::config::{BackendConfig, Clients};
use crate::failure::Failure;
use labpipe_core::layout::raw_session_prefix as session_prefix;
use labpipe_core::layout::revision_folder;

/// The catalog step name written with preprocess's status changes.
pub const STEP: &str = "preprocess";
/// Deliveries of one request (the preprocess queue's `maxReceiveCount` in
/// `infra/template.yaml`); the last one fails a session whose earlier runs died.
pub const MAX_DELIVERIES: u32 = 3;
/// Name of the run summary written next to the outputs.
pub const SUMMARY_NAME: &str = "summary.json";

/// The message on the preprocess queue (its shape is shared with the operator's commands).
pub use labpipe_sqs::PreprocessRequest;

/// The newest pipeline version this build knows. Version 2 measures gamma as 30–45 Hz instead of
/// 30–100 Hz ([`features::bands`]); everything else is the same as version 1.
pub const LATEST_PIPELINE_VERSION: u32 = 2;

/// What happened to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Processed { outputs: usize },
    Failed(String),
    Skipped(String),
}

/// Builds the pipeline for each run (steps hold per-run state).
pub type PipelineFactory = Arc<dyn Fn() -> Pipeline + Send + Sync>;

/// The preprocess handler with its clients.
#[derive(Clone)]
pub struct Preprocess {
    s3: aws_sdk_s3::Client,
    catalog: Catalog,
    raw_bucket: String,
    processed_bucket: String,
    lease: Duration,
    pipeline: PipelineFactory,
    workdir_root: Option<PathBuf>,
}

impl std::fmt::Debug for Preprocess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Preprocess")
            .field("raw_bucket", &self.raw_bucket)
            .field("processed_bucket", &self.processed_bucket)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

impl Preprocess {
    pub fn new(clients: &Clients, config: &BackendConfig) -> Self {
        Preprocess {
            s3: clients.s3.clone(),
            catalog: Catalog::new(clients.dynamodb.clone(), &config.table),
            raw_bucket: config.raw_bucket.clone(),
            processed_bucket: config.processed_bucket.clone(),
            lease: Duration::from_secs(config.processing_lease_secs),
            pipeline: Arc::new(Pipeline::standard),
            workdir_root: std::env::var_os("LABPIPE_WORK_DIR").map(PathBuf::from),
        }
    }

    /// Uses a lab's own pipeline instead of [`Pipeline::standard`].
    pub fn with_pipeline(mut self, factory: PipelineFactory) -> Self {
        self.pipeline = factory;
        self
    }

    /// Handles one SQS batch of preprocessing requests.
    pub async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        batch::handle_batch(self, event).await
    }

    /// Processes one request on its first delivery. `Err` only when the message should be
    /// retried.
    pub async fn process(&self, request: &PreprocessRequest) -> Result<Outcome, Failure> {
        self.process_delivery(request, 1).await
    }

    /// Processes one request, delivered for the `delivery`-th time. `Err(Transient)` when the
    /// message should be retried; `Err(Session)` for a permanent catalog error the caller records.
    ///
    /// A claim older than the lease means an earlier run died without settling (out of memory,
    /// the function's time limit): once [`MAX_DELIVERIES`] deliveries have seen that, the session
    /// is `FAILED` with that reason instead of being tried again and dead-lettered in
    /// `PROCESSING`.
    pub async fn process_delivery(
        &self,
        request: &PreprocessRequest,
        delivery: u32,
    ) -> Result<Outcome, Failure> {
        let version = request.pipeline_version;
        if !(1..=LATEST_PIPELINE_VERSION).contains(&version) {
            // Not the session's fault and not transient: a request for a version this build does
            // not have. Said in the session's history, status untouched.
            let note = format!(
                "pipeline v{version} requested, but this deployment knows v1 to v{LATEST_PIPELINE_VERSION}: request dropped; deploy a backend with v{version}, then run `labpipe reprocess` again"
            );
            warn!(pipeline_version = version, "{note}");
            self.catalog
                .append_event(&request.session, STEP, Level::Warning, &note)
                .await?;
            return Ok(Outcome::Skipped(note));
        }
        let Some(item) = self.catalog.get(&request.session).await? else {
            warn!("session is not in the catalog; request dropped");
            return Ok(Outcome::Skipped("not in the catalog".into()));
        };
        if item.manifest_sha256.is_none() {
            warn!(status = %item.status, "session was never cataloged from a manifest; request dropped");
            return Ok(Outcome::Skipped("never cataloged".into()));
        }
        match item.status {
            Status::Processed if item.pipeline_version.is_some_and(|v| v >= version) => {
                info!(
                    pipeline_version = version,
                    "already processed; duplicate request skipped"
                );
                return Ok(Outcome::Skipped("already processed".into()));
            }
            Status::Processing => {
                let age = Utc::now()
                    .signed_duration_since(item.updated_at)
                    .to_std()
                    .unwrap_or_default();
                if age < self.lease {
                    info!(
                        claimed_secs_ago = age.as_secs(),
                        "another run holds the session; retrying later"
                    );
                    return Err(Failure::transient("another run is processing this session"));
                }
                if delivery >= MAX_DELIVERIES {
                    let reason = format!(
                        "pipeline v{version} was requested {delivery} times and its runs never finished: they stop without an error, most likely out of memory or past the function's time limit; check the session's size and the preprocess function's memory, then reprocess"
                    );
                    error!(delivery, reason = %reason, "giving up on a session whose runs keep dying");
                    self.catalog
                        .transition_from(&item, Status::Failed, STEP, &reason)
                        .await?;
                    return Ok(Outcome::Failed(reason));
                }
                warn!(
                    claimed_secs_ago = age.as_secs(),
                    delivery, "taking over a stale processing claim"
                );
            }
            Status::Cataloged | Status::Processed | Status::Failed => {}
            other => {
                warn!(status = %other, "session is not ready for processing; request dropped");
                return Ok(Outcome::Skipped(format!("status {other}")));
            }
        }
        let claimed = self
            .catalog
            .transition_from(
                &item,
                Status::Processing,
                STEP,
                &format!("pipeline v{version} started"),
            )
            .await
            .map_err(|e| match e {
                CatalogError::Contention { .. } => {
                    Failure::transient("the session changed while claiming it")
                }
                other => Failure::from(other),
            })?;
        info!(pipeline_version = version, "processing");

        match self.run(&claimed, version).await {
            Ok((outputs, warnings)) => {
                let record = OutputRecord {
                    version,
                    revision: claimed.current_revision(),
                    bucket: self.processed_bucket.clone(),
                    prefix: output_prefix(version, &claimed),
                    files: outputs,
                    created_at: Utc::now(),
                };
                self.catalog
                    .record_outputs(&claimed.session, &record)
                    .await?;
                let mut message = format!(
                    "pipeline v{version}: {} outputs in s3://{}/{}",
                    record.files.len(),
                    record.bucket,
                    record.prefix
                );
                if !warnings.is_empty() {
                    message.push_str(&format!("; {}", warnings.join("; ")));
                }
                let done = self
                    .catalog
                    .transition_from(&claimed, Status::Processed, STEP, &message)
                    .await?;
                for w in &warnings {
                    warn!(warning = %w, "output warning");
                    self.catalog
                        .append_event(&done.session, STEP, Level::Warning, w)
                        .await?;
                }
                info!(outputs = record.files.len(), "session processed");
                Ok(Outcome::Processed {
                    outputs: record.files.len(),
                })
            }
            Err(Failure::Session(reason)) => {
                error!(step = STEP, reason = %reason, "session failed preprocessing");
                self.catalog
                    .transition_from(&claimed, Status::Failed, STEP, &reason)
                    .await?;
                Ok(Outcome::Failed(reason))
            }
            Err(Failure::Transient(reason)) => {
                warn!(step = STEP, reason = %reason, "transient preprocessing failure; releasing the session for a retry");
                let note = format!("interrupted, will be retried: {reason}");
                if let Err(e) = self
                    .catalog
                    .transition_from(&claimed, Status::Cataloged, STEP, &note)
                    .await
                {
                    warn!(error = %e, "cannot release the session; the lease will expire");
                }
                Err(Failure::Transient(reason))
            }
        }
    }

    /// Runs the pipeline and uploads its files. Returns the outputs and the warnings.
    async fn run(
        &self,
        item: &SessionItem,
        version: u32,
    ) -> Result<(Vec<OutputFile>, Vec<String>), Failure> {
        let manifest = self.read_manifest(item).await?;
        let workdir = match &self.workdir_root {
            Some(root) => tempfile::tempdir_in(root),
            None => tempfile::tempdir(),
        }
        .map_err(|e| Failure::transient(format!("cannot create a work directory: {e}")))?;
        let out = engine::run(
            &self.s3,
            &self.raw_bucket,
            &manifest,
            version,
            (self.pipeline)(),
            workdir.path(),
        )
        .await?;

        let mut outputs = Vec::new();
        for artifact in &out.artifacts {
            let key = labpipe_core::layout::processed_key(
                version,
                &item.session,
                item.current_revision(),
                &artifact.name,
            );
            let (size, sha256) =
                labpipe_core::digest::sha256_file(&artifact.path).map_err(|e| {
                    Failure::transient(format!("cannot read {}: {e}", artifact.path.display()))
                })?;
            let body = ByteStream::from_path(&artifact.path).await.map_err(|e| {
                Failure::transient(format!("cannot open {}: {e}", artifact.path.display()))
            })?;
            self.put(&key, body, content_type(&artifact.name)).await?;
            outputs.push(OutputFile { key, size, sha256 });
        }
        let mut summary = out.summary;
        summary["outputs"] = serde_json::to_value(&outputs).expect("outputs serialise");
        let bytes = serde_json::to_vec_pretty(&summary).expect("summary serialises");
        let key = labpipe_core::layout::processed_key(
            version,
            &item.session,
            item.current_revision(),
            SUMMARY_NAME,
        );
        outputs.push(OutputFile {
            key: key.clone(),
            size: bytes.len() as u64,
            sha256: labpipe_core::digest::sha256_hex(&bytes),
        });
        self.put(&key, ByteStream::from(bytes), "application/json")
            .await?;
        Ok((outputs, out.warnings))
    }

    /// The manifest the catalog entry was made from — the version the catalog pins, when it has
    /// one — read through the gateway (size-bounded) and checked against the cataloged SHA-256.
    async fn read_manifest(&self, item: &SessionItem) -> Result<Manifest, Failure> {
        let bucket = &self.raw_bucket;
        // The current revision's folder (`raw/<session>.r<N>/` for a correction).
        let folder = revision_folder(&item.session, item.revision.unwrap_or(1));
        let object = ManifestRead::session(bucket, &folder)
            .version(item.manifest_version_id.as_deref())
            .read(&self.s3)
            .await
            .map_err(|e| match e.class() {
                // The preprocess role lists raw/* only under an s3:prefix condition, so a missing
                // manifest may read as access denied (see labpipe_aws::error).
                ErrorClass::NotFound | ErrorClass::AccessDenied => Failure::session(format!(
                    "the manifest of {} is gone or not readable ({e}); upload the session again",
                    item.session
                )),
                ErrorClass::Permanent => Failure::session(e.to_string()),
                _ => Failure::transient(e.to_string()),
            })?;
        if item.manifest_sha256.as_deref() != Some(object.sha256.as_str()) {
            return Err(Failure::session(format!(
                "manifest.json in s3://{bucket}/{} changed after the session was cataloged (sha256 {}); raw data must not change — ask the operator to investigate",
                session_prefix(&folder),
                object.sha256
            )));
        }
        Ok(object.manifest)
    }

    async fn put(&self, key: &str, body: ByteStream, content_type: &str) -> Result<(), Failure> {
        self.s3
            .put_object()
            .bucket(&self.processed_bucket)
            .key(key)
            .content_type(content_type)
            .body(body)
            .send()
            .await
            .map_err(|e| {
                Failure::transient(format!(
                    "cannot write s3://{}/{key}: {}",
                    self.processed_bucket,
                    labpipe_aws::describe(&e)
                ))
            })?;
        Ok(())
    }
}

impl MessageHandler for Preprocess {
    const STEP: &'static str = STEP;

    async fn handle_message(&self, message: SqsMessage) -> Result<(), Failure> {
        let request = parse_request(&message)?;
        let span = info_span!("session", session = %request.session);
        self.process_delivery(&request, batch::delivery_count(&message))
            .instrument(span)
            .await
            .map(|_| ())
    }

    async fn fail_message(&self, message: &SqsMessage, reason: &str) -> Result<(), Failure> {
        let request = parse_request(message)?;
        let session = labpipe_core::SessionId::parse(&request.session).map_err(|e| {
            Failure::session(format!("{} is not a session id: {e}", request.session))
        })?;
        error!(session = %request.session, step = STEP, reason = %reason, "session failed preprocessing");
        self.catalog
            .record_failure(&request.session, session.recorded_at(), STEP, reason)
            .await?;
        Ok(())
    }
}

fn parse_request(message: &SqsMessage) -> Result<PreprocessRequest, Failure> {
    let body = message.body.as_deref().unwrap_or_default();
    serde_json::from_str(body).map_err(|e| {
        error!(error = %e, "not a preprocessing request; it goes to the dead-letter queue");
        Failure::transient(format!("not a preprocessing request: {e}"))
    })
}

/// Where pipeline `version` writes the outputs of the session's current revision: `v<N>/<session>/`
/// for revision 1, `v<N>/<session>.r<R>/` for a correction, so a correction's run never
/// overwrites an earlier revision's outputs (see [`labpipe_core::layout::processed_prefix`]).
pub fn output_prefix(version: u32, item: &SessionItem) -> String {
    labpipe_core::layout::processed_prefix(version, &item.session, item.current_revision())
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next() {
        Some("json") => "application/json",
        Some("parquet") => "application/vnd.apache.parquet",
        _ => "application/octet-stream",
    }
}
