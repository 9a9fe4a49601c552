//! The backend against the local emulator, through the real SDK: handlers called directly with
//! real event shapes, and the whole path from an uploaded session to processed outputs through
//! S3 notifications, SQS and the local runner.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ChecksumAlgorithm;
use base64::Engine as _;
use chrono::Utc;
use labpipe_backend::preprocess::{Outcome, PreprocessRequest};
use labpipe_backend::runner::{Runner, RunnerOptions};
use labpipe_backend::{BackendConfig, Clients, Ingest, Preprocess};
use labpipe_catalog::{Catalog, Status};
use labpipe_core::check::check_folder;
use labpipe_core::manifest::sha256_file;
use labpipe_core::{LabSchema, Manifest};
use labpipe_tests::{object_bytes, repo_root, Emulator, QueueStack};
use sha2::{Digest, Sha256};

/// One isolated stack on the shared emulator ([`QueueStack`]: buckets, table, queues and the
/// manifest notification), with the handlers' configuration read from its outputs.
struct Stack {
    clients: Clients,
    config: BackendConfig,
    catalog: Catalog,
}

impl Stack {
    async fn create() -> Stack {
        let emulator = Emulator::shared();
        let clients = Clients::from_sdk_config(&emulator.sdk_config().await);
        let stack = QueueStack::create(emulator).await;
        let config = BackendConfig::resolve(&stack.outputs(), |_| None).expect("stack outputs");
        let catalog = Catalog::new(clients.dynamodb.clone(), &config.table);
        Stack {
            clients,
            config,
            catalog,
        }
    }

    fn ingest(&self) -> Ingest {
        Ingest::new(&self.clients, &self.config)
    }

    fn preprocess(&self) -> Preprocess {
        Preprocess::new(&self.clients, &self.config)
    }

    /// Hands ingest the S3 event of the session's manifest, alone in its batch.
    async fn ingest_manifest(&self, s: &Session, message_id: &str) -> SqsBatchResponse {
        let key = labpipe_core::layout::manifest_key(&s.id);
        self.ingest()
            .handle(sqs_event(vec![s3_event_message(
                &self.config.raw_bucket,
                &key,
                message_id,
            )]))
            .await
    }

    async fn queue_bodies(&self, url: &str) -> Vec<String> {
        let out = self
            .clients
            .sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        out.messages()
            .iter()
            .filter_map(|m| m.body().map(str::to_string))
            .collect()
    }
}

/// A generated session folder, its manifest, and the bytes to upload.
struct Session {
    id: String,
    folder: PathBuf,
    manifest: Manifest,
    _dir: tempfile::TempDir,
}

fn crc64nvme(bytes: &[u8]) -> String {
    let crc = crc_fast::checksum(crc_fast::CrcAlgorithm::Crc64Nvme, bytes);
    base64::engine::general_purpose::STANDARD.encode(crc.to_be_bytes())
}

fn generate(seed: u64, size_bytes: u64) -> Session {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = labpipe_sample::GenerateOptions::new(dir.path());
    opts.count = 1;
    opts.size_bytes = size_bytes;
    opts.seed = seed;
    opts.start += chrono::Duration::days(seed as i64 * 3);
    let generated = labpipe_sample::generate(&opts, |_, _| {}).unwrap();
    let folder = generated[0].path.clone();
    let report = check_folder(&folder, &LabSchema::default()).unwrap();
    assert!(report.verdict.is_uploadable(), "{:?}", report.findings);
    let hashes = report
        .files
        .iter()
        .map(|f| {
            let bytes = std::fs::read(folder.join(&f.path)).unwrap();
            (hex::encode(Sha256::digest(&bytes)), Some(crc64nvme(&bytes)))
        })
        .collect();
    let manifest = Manifest::new(&report, hashes, Utc::now()).unwrap();
    Session {
        id: report.session.clone(),
        folder,
        manifest,
        _dir: dir,
    }
}

/// Uploads the data files (with S3 CRC64NVME checksums), then, unless `manifest` is false, the
/// manifest last — the upload engine's contract.
async fn upload(stack: &Stack, s: &Session, manifest: bool) {
    for f in &s.manifest.files {
        let bytes = std::fs::read(s.folder.join(&f.path)).unwrap();
        put_data_file(stack, s, &f.path, bytes).await;
    }
    if manifest {
        put_manifest(stack, s).await;
    }
}

/// Puts `bytes` as the session's data file `path`, with the S3 CRC64NVME checksum ingest checks.
async fn put_data_file(stack: &Stack, s: &Session, path: &str, bytes: Vec<u8>) {
    stack
        .clients
        .s3
        .put_object()
        .bucket(&stack.config.raw_bucket)
        .key(labpipe_core::layout::raw_key(&s.id, path))
        .checksum_algorithm(ChecksumAlgorithm::Crc64Nvme)
        .body(ByteStream::from(bytes))
        .send()
        .await
        .unwrap();
}

async fn put_manifest(stack: &Stack, s: &Session) {
    stack
        .clients
        .s3
        .put_object()
        .bucket(&stack.config.raw_bucket)
        .key(labpipe_core::layout::manifest_key(&s.id))
        .body(ByteStream::from(s.manifest.to_json().into_bytes()))
        .send()
        .await
        .unwrap();
}

/// The S3 event notification exactly as S3 (and the emulator) sends it to SQS: keys
/// URL-encoded.
fn s3_event_message(bucket: &str, key: &str, message_id: &str) -> SqsMessage {
    s3_event_message_at(bucket, key, None, message_id)
}

/// The same for a versioned bucket: the record names the version the write created.
fn s3_event_message_at(
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
    message_id: &str,
) -> SqsMessage {
    let encoded = key.replace('/', "%2F");
    let body = serde_json::json!({"Records": [{
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "us-east-1",
        "eventTime": "2021-03-01T17:00:00.000Z",
        "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": "AWS:AIDAEXAMPLE"},
        "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {"x-amz-request-id": "EXAMPLE", "x-amz-id-2": "EXAMPLE"},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "manifest-to-ingest",
            "bucket": {"name": bucket, "ownerIdentity": {"principalId": "EXAMPLE"}, "arn": format!("arn:aws:s3:::{bucket}")},
            "object": {"key": encoded, "size": 1234, "eTag": "0123456789abcdef", "versionId": version_id, "sequencer": "0A1B2C3D4E5F678901"}
        }
    }]});
    let mut m = SqsMessage::default();
    m.message_id = Some(message_id.to_string());
    m.receipt_handle = Some(format!("receipt-{message_id}"));
    m.body = Some(body.to_string());
    m.event_source = Some("aws:sqs".into());
    m
}

fn sqs_event(messages: Vec<SqsMessage>) -> SqsEvent {
    let mut e = SqsEvent::default();
    e.records = messages;
    e
}

fn request_message(body: &str, id: &str) -> SqsMessage {
    let mut m = SqsMessage::default();
    m.message_id = Some(id.to_string());
    m.body = Some(body.to_string());
    m
}

#[tokio::test]
async fn duplicate_url_encoded_events_catalog_once_and_process_once() {
    let stack = Stack::create().await;
    let s = generate(1, 1_500_000);
    upload(&stack, &s, true).await;
    let key = labpipe_core::layout::manifest_key(&s.id);

    // The same event twice in one batch, then redelivered in another batch.
    let ingest = stack.ingest();
    let response = ingest
        .handle(sqs_event(vec![
            s3_event_message(&stack.config.raw_bucket, &key, "m1"),
            s3_event_message(&stack.config.raw_bucket, &key, "m2"),
        ]))
        .await;
    assert!(response.batch_item_failures.is_empty());
    let response = ingest
        .handle(sqs_event(vec![s3_event_message(
            &stack.config.raw_bucket,
            &key,
            "m1",
        )]))
        .await;
    assert!(response.batch_item_failures.is_empty());

    let item = stack.catalog.get(&s.id).await.unwrap().expect("cataloged");
    assert_eq!(item.status, Status::Cataloged);
    assert_eq!(item.file_count, s.manifest.files.len() as u64);
    assert_eq!(
        item.metadata, s.manifest.metadata,
        "typed metadata round-trips"
    );
    assert_eq!(
        stack.catalog.scan_all().await.unwrap().len(),
        1,
        "one catalog entry"
    );
    assert_eq!(
        stack.catalog.events(&s.id).await.unwrap().len(),
        1,
        "one CATALOGED event"
    );
    // Numbers are DynamoDB numbers.
    let raw_item = stack
        .clients
        .dynamodb
        .get_item()
        .table_name(&stack.config.table)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("SESSION#{}", s.id)),
        )
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S("META".into()),
        )
        .send()
        .await
        .unwrap();
    let attrs = raw_item.item().unwrap();
    assert!(matches!(
        attrs["m_fatigue"],
        aws_sdk_dynamodb::types::AttributeValue::N(_)
    ));
    assert!(matches!(
        attrs["m_hardware_model"],
        aws_sdk_dynamodb::types::AttributeValue::S(_)
    ));

    // Each delivery while CATALOGED re-sends the request; preprocessing runs once.
    let bodies = stack.queue_bodies(&stack.config.preprocess_queue_url).await;
    assert!(!bodies.is_empty());
    let preprocess = stack.preprocess();
    let mut outcomes = Vec::new();
    for (i, body) in bodies.iter().enumerate() {
        let request: PreprocessRequest = serde_json::from_str(body).unwrap();
        assert_eq!(
            request,
            PreprocessRequest {
                session: s.id.clone(),
                pipeline_version: 1
            }
        );
        let response = preprocess
            .handle(sqs_event(vec![request_message(body, &format!("p{i}"))]))
            .await;
        assert!(response.batch_item_failures.is_empty());
        outcomes.push(preprocess.process(&request).await.unwrap());
    }
    assert!(
        outcomes.iter().all(|o| matches!(o, Outcome::Skipped(_))),
        "{outcomes:?}"
    );
    let events = stack.catalog.events(&s.id).await.unwrap();
    let processing = events
        .iter()
        .filter(|e| e.status == Some(Status::Processing))
        .count();
    assert_eq!(processing, 1, "one preprocessing run: {events:#?}");
    let item = stack.catalog.get(&s.id).await.unwrap().unwrap();
    assert_eq!(item.status, Status::Processed, "{:?}", item.status_message);
    assert_eq!(item.pipeline_version, Some(1));
}

#[tokio::test]
async fn an_object_altered_before_the_manifest_fails_naming_the_file() {
    let stack = Stack::create().await;
    let s = generate(2, 1_000_000);
    upload(&stack, &s, false).await;
    let victim = s
        .manifest
        .files
        .iter()
        .find(|f| f.path.starts_with("rec_"))
        .unwrap();
    let mut bytes = std::fs::read(s.folder.join(&victim.path)).unwrap();
    bytes[100] ^= 0xFF;
    put_data_file(&stack, &s, &victim.path, bytes).await;
    put_manifest(&stack, &s).await;

    let response = stack.ingest_manifest(&s, "m1").await;
    assert!(
        response.batch_item_failures.is_empty(),
        "a session problem is not retried"
    );
    let item = stack
        .catalog
        .get(&s.id)
        .await
        .unwrap()
        .expect("failure is visible in the catalog");
    assert_eq!(item.status, Status::Failed);
    assert_eq!(item.status_step.as_deref(), Some("ingest"));
    let message = item.status_message.unwrap();
    assert!(
        message.contains(&victim.path) && message.contains("CRC64NVME"),
        "{message}"
    );
    assert!(stack
        .queue_bodies(&stack.config.preprocess_queue_url)
        .await
        .is_empty());

    // A missing object is named too, in a session of its own.
    let t = generate(3, 1_000_000);
    upload(&stack, &t, false).await;
    let gone = &t.manifest.files[0].path;
    stack
        .clients
        .s3
        .delete_object()
        .bucket(&stack.config.raw_bucket)
        .key(labpipe_core::layout::raw_key(&t.id, gone))
        .send()
        .await
        .unwrap();
    put_manifest(&stack, &t).await;
    stack.ingest_manifest(&t, "m2").await;
    let item = stack.catalog.get(&t.id).await.unwrap().unwrap();
    assert_eq!(item.status, Status::Failed);
    let message = item.status_message.unwrap();
    assert!(
        message.contains(gone.as_str()) && message.contains("missing"),
        "{message}"
    );
}

#[tokio::test]
async fn an_upload_flows_to_processed_outputs_that_numpy_and_pyarrow_open() {
    let stack = Stack::create().await;
    let s = generate(4, 3_000_000);
    upload(&stack, &s, true).await;

    let runner = Runner::new(
        &stack.clients,
        &stack.config,
        RunnerOptions {
            wait_secs: 1,
            batch_size: 10,
            retry_after_secs: 1,
        },
    )
    .unwrap();
    let stats = runner.drain(30).await.unwrap();
    assert!(stats.ingest_messages >= 1, "{stats:?}");
    assert_eq!(stats.retried, 0, "{stats:?}");

    let item = stack.catalog.get(&s.id).await.unwrap().expect("cataloged");
    assert_eq!(item.status, Status::Processed, "{:?}", item.status_message);
    let events = stack.catalog.events(&s.id).await.unwrap();
    let statuses: Vec<_> = events.iter().filter_map(|e| e.status).collect();
    assert_eq!(
        statuses,
        [Status::Cataloged, Status::Processing, Status::Processed],
        "{events:#?}"
    );

    // The outputs match the catalog byte for byte.
    let record = stack
        .catalog
        .outputs(&s.id, 1, 1)
        .await
        .unwrap()
        .expect("outputs recorded");
    let names: Vec<_> = record
        .files
        .iter()
        .map(|f| f.key.rsplit('/').next().unwrap().to_string())
        .collect();
    assert_eq!(names, ["signals.npy", "features.parquet", "summary.json"]);
    let dir = tempfile::tempdir().unwrap();
    let mut local = BTreeMap::new();
    for f in &record.files {
        let body = object_bytes(&stack.clients.s3, &record.bucket, &f.key).await;
        let name = f.key.rsplit('/').next().unwrap().to_string();
        let path = dir.path().join(&name);
        std::fs::write(&path, &body).unwrap();
        let (size, sha) = sha256_file(&path).unwrap();
        assert_eq!(
            (size, sha.as_str()),
            (f.size, f.sha256.as_str()),
            "{}",
            f.key
        );
        local.insert(name, path);
    }

    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&local["summary.json"]).unwrap()).unwrap();
    let channels = s.manifest.metadata["channels"].as_number().unwrap() as u64;
    let rate = s.manifest.metadata["sample_rate_hz"].as_number().unwrap();
    let out_frames = summary["output"]["frames"].as_u64().unwrap();
    assert!(summary["output"]["sample_rate_hz"].as_f64().unwrap() <= 250.0);
    assert_eq!(summary["input"]["sample_rate_hz"].as_f64().unwrap(), rate);

    // `labpipe status` shows the same, for a person and for a script.
    let emulator = Emulator::shared();
    let status = |extra: &[&str]| {
        let out = std::process::Command::new(labpipe_tests::labpipe_bin())
            .envs(emulator.env())
            .args(["status", "--table", &stack.config.table])
            .args(extra)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let json: serde_json::Value = serde_json::from_str(&status(&[&s.id, "--json"])).unwrap();
    assert_eq!(json[0]["status"], "PROCESSED", "{json}");
    assert_eq!(json[0]["events"].as_array().unwrap().len(), 3, "{json}");
    let table = status(&[]);
    assert!(
        table.contains(&s.id) && table.contains("PROCESSED"),
        "{table}"
    );

    let check = python_check(&local["signals.npy"], &local["features.parquet"]);
    assert_eq!(
        check["shape"],
        serde_json::json!([out_frames, channels]),
        "{check}"
    );
    assert_eq!(check["dtype"], "float32");
    assert_eq!(check["finite"], true);
    assert!(
        check["max_abs_mean"].as_f64().unwrap() < 1.0,
        "mean removed: {check}"
    );
    assert_eq!(check["rows"], channels);
    for column in [
        "channel",
        "rms",
        "mean",
        "std",
        "min",
        "max",
        "band_alpha",
        "total_power",
        "flat",
    ] {
        assert!(
            check["columns"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c == column),
            "{column}: {check}"
        );
    }
}

/// Opens the outputs with numpy and pyarrow from the repo's venv.
fn python_check(npy: &Path, parquet: &Path) -> serde_json::Value {
    let python = repo_root().join(".venv/bin/python");
    let script = r#"
import json, sys
import numpy as np
import pyarrow.parquet as pq
a = np.load(sys.argv[1])
t = pq.read_table(sys.argv[2])
print(json.dumps({
    "shape": list(a.shape), "dtype": str(a.dtype), "finite": bool(np.isfinite(a).all()),
    "max_abs_mean": float(np.abs(a.mean(axis=0)).max()),
    "rows": t.num_rows, "columns": t.column_names,
}))
"#;
    let out = std::process::Command::new(&python)
        .arg("-c")
        .arg(script)
        .arg(npy)
        .arg(parquet)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {}: {e}; run scripts/bootstrap.sh venv",
                python.display()
            )
        });
    assert!(
        out.status.success(),
        "numpy/pyarrow check failed (run scripts/bootstrap.sh venv to install them): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test]
async fn a_manifest_over_the_size_bound_fails_naming_the_limit() {
    let stack = Stack::create().await;
    let mut s = generate(11, 1_000_000);
    upload(&stack, &s, false).await;
    // Valid JSON, padded past the bound: refused by size before it is parsed.
    let limit = labpipe_core::manifest::MAX_MANIFEST_BYTES;
    let mut json = s.manifest.to_json();
    json.push_str(&" ".repeat(limit as usize));
    stack
        .clients
        .s3
        .put_object()
        .bucket(&stack.config.raw_bucket)
        .key(labpipe_core::layout::manifest_key(&s.id))
        .body(ByteStream::from(json.into_bytes()))
        .send()
        .await
        .unwrap();
    let response = stack.ingest_manifest(&s, "m1").await;
    assert!(response.batch_item_failures.is_empty(), "not retried");
    let item = stack.catalog.get(&s.id).await.unwrap().expect("visible");
    assert_eq!(item.status, Status::Failed);
    let message = item.status_message.unwrap();
    assert!(
        message.contains("manifest.json") && message.contains(&limit.to_string()),
        "{message}"
    );

    // A manifest listing more files than a session may have fails too, naming the bound.
    s = generate(12, 1_000_000);
    upload(&stack, &s, false).await;
    let template = s.manifest.files[0].clone();
    let max = labpipe_core::manifest::MAX_MANIFEST_FILES;
    s.manifest.files = (0..=max)
        .map(|i| labpipe_core::ManifestFile {
            path: format!("f{i}"),
            ..template.clone()
        })
        .collect();
    put_manifest(&stack, &s).await;
    stack.ingest_manifest(&s, "m2").await;
    let item = stack.catalog.get(&s.id).await.unwrap().unwrap();
    assert_eq!(item.status, Status::Failed);
    let message = item.status_message.unwrap();
    assert!(message.contains(&max.to_string()), "{message}");
}

#[tokio::test]
async fn channels_over_the_bound_fail_preprocessing_instead_of_allocating() {
    let stack = Stack::create().await;
    let mut s = generate(13, 1_000_000);
    upload(&stack, &s, false).await;
    // Checked on the lab PC with a sane value; the manifest then claims ~65,000 channels.
    s.manifest
        .metadata
        .insert("channels".into(), labpipe_core::MetaValue::Number(65_000.0));
    put_manifest(&stack, &s).await;
    let response = stack.ingest_manifest(&s, "m1").await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(
        stack.catalog.get(&s.id).await.unwrap().unwrap().status,
        Status::Cataloged
    );
    let request = PreprocessRequest {
        session: s.id.clone(),
        pipeline_version: 1,
    };
    let body = serde_json::to_string(&request).unwrap();
    let response = stack
        .preprocess()
        .handle(sqs_event(vec![request_message(&body, "p1")]))
        .await;
    assert!(response.batch_item_failures.is_empty(), "not retried");
    let item = stack.catalog.get(&s.id).await.unwrap().unwrap();
    assert_eq!(item.status, Status::Failed);
    assert_eq!(item.status_step.as_deref(), Some("preprocess"));
    let message = item.status_message.unwrap();
    assert!(
        message.contains("65000 channels") && message.contains("1024"),
        "{message}"
    );
}

#[tokio::test]
async fn a_run_that_keeps_dying_ends_failed_on_its_last_delivery() {
    let stack = Stack::create().await;
    let s = generate(14, 1_000_000);
    upload(&stack, &s, true).await;
    stack.ingest_manifest(&s, "m1").await;
    // A run claimed the session and died without settling (no lease left).
    let item = stack.catalog.get(&s.id).await.unwrap().unwrap();
    stack
        .catalog
        .transition_from(
            &item,
            Status::Processing,
            "preprocess",
            "pipeline v1 started",
        )
        .await
        .unwrap();
    let mut config = stack.config.clone();
    config.processing_lease_secs = 0;
    let preprocess = Preprocess::new(&stack.clients, &config);
    let body = serde_json::to_string(&PreprocessRequest {
        session: s.id.clone(),
        pipeline_version: 1,
    })
    .unwrap();
    let mut message = request_message(&body, "p1");
    message.attributes.insert(
        "ApproximateReceiveCount".into(),
        labpipe_backend::preprocess::MAX_DELIVERIES.to_string(),
    );
    let response = preprocess.handle(sqs_event(vec![message])).await;
    assert!(response.batch_item_failures.is_empty());
    let item = stack.catalog.get(&s.id).await.unwrap().unwrap();
    assert_eq!(item.status, Status::Failed, "{:?}", item.status_message);
    let message = item.status_message.unwrap();
    assert!(message.contains("never finished"), "{message}");
}

/// Turns versioning on for the raw bucket, as the template's `VersioningConfiguration` does.
async fn enable_versioning(stack: &Stack) {
    stack
        .clients
        .s3
        .put_bucket_versioning()
        .bucket(&stack.config.raw_bucket)
        .versioning_configuration(
            aws_sdk_s3::types::VersioningConfiguration::builder()
                .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .expect("enable versioning");
}

/// Puts `bytes` at `key` and returns the version id S3 gave the write.
async fn put_version(stack: &Stack, key: &str, bytes: Vec<u8>) -> String {
    stack
        .clients
        .s3
        .put_object()
        .bucket(&stack.config.raw_bucket)
        .key(key)
        .checksum_algorithm(ChecksumAlgorithm::Crc64Nvme)
        .body(ByteStream::from(bytes))
        .send()
        .await
        .unwrap()
        .version_id()
        .expect("a versioned bucket names the version")
        .to_string()
}

#[tokio::test]
async fn pinned_versions_are_what_is_read_and_a_second_manifest_is_only_a_conflict() {
    let stack = Stack::create().await;
    enable_versioning(&stack).await;
    let mut s = generate(9, 1_000_000);
    // The upload's contract on a versioned bucket: each file's version in the manifest.
    let mut versions = Vec::new();
    for f in &s.manifest.files {
        let bytes = std::fs::read(s.folder.join(&f.path)).unwrap();
        let version = put_version(
            &stack,
            &labpipe_core::layout::raw_key(&s.id, &f.path),
            bytes,
        )
        .await;
        versions.push((f.path.clone(), Some(version)));
    }
    s.manifest
        .pin_versions(versions.iter().map(|(p, v)| (p.as_str(), v.clone())));
    let manifest_key = labpipe_core::layout::manifest_key(&s.id);
    let first = put_version(&stack, &manifest_key, s.manifest.to_json().into_bytes()).await;

    // A write around the upload makes a new current version of a data file.
    let victim = s
        .manifest
        .files
        .iter()
        .find(|f| f.path.starts_with("rec_"))
        .unwrap()
        .path
        .clone();
    let mut altered = std::fs::read(s.folder.join(&victim)).unwrap();
    altered[100] ^= 0xFF;
    let victim_key = labpipe_core::layout::raw_key(&s.id, &victim);
    let current = put_version(&stack, &victim_key, altered).await;
    assert_ne!(
        Some(&current),
        versions
            .iter()
            .find(|(p, _)| *p == victim)
            .unwrap()
            .1
            .as_ref()
    );

    // Ingest checks the pinned versions, not the current one, and pins the manifest's version.
    let ingest = stack.ingest();
    let response = ingest
        .handle(sqs_event(vec![s3_event_message_at(
            &stack.config.raw_bucket,
            &manifest_key,
            Some(&first),
            "m1",
        )]))
        .await;
    assert!(response.batch_item_failures.is_empty());
    let item = stack.catalog.get(&s.id).await.unwrap().expect("cataloged");
    assert_eq!(item.status, Status::Cataloged, "{:?}", item.status_message);
    assert_eq!(item.manifest_version_id.as_deref(), Some(first.as_str()));

    // Preprocessing streams the pinned versions (their SHA-256 is checked while it reads).
    let request = PreprocessRequest {
        session: s.id.clone(),
        pipeline_version: 1,
    };
    let preprocess = stack.preprocess();
    let outcome = preprocess.process(&request).await.unwrap();
    assert!(matches!(outcome, Outcome::Processed { .. }), "{outcome:?}");
    let item = stack.catalog.get(&s.id).await.unwrap().unwrap();
    assert_eq!(item.status, Status::Processed, "{:?}", item.status_message);
    let outputs = stack.catalog.all_outputs(&s.id).await.unwrap();
    let events_before = stack.catalog.events(&s.id).await.unwrap();

    // A different second manifest at the key: a conflict event, nothing else.
    let mut other = s.manifest.clone();
    other.created_at += chrono::Duration::seconds(1);
    let second = put_version(&stack, &manifest_key, other.to_json().into_bytes()).await;
    let response = ingest
        .handle(sqs_event(vec![s3_event_message_at(
            &stack.config.raw_bucket,
            &manifest_key,
            Some(&second),
            "m2",
        )]))
        .await;
    assert!(response.batch_item_failures.is_empty(), "not retried");
    let after = stack.catalog.get(&s.id).await.unwrap().unwrap();
    assert_eq!(
        after.status,
        Status::Processed,
        "{:?}",
        after.status_message
    );
    assert_eq!(after.manifest_sha256, item.manifest_sha256);
    assert_eq!(after.manifest_version_id.as_deref(), Some(first.as_str()));
    assert_eq!(stack.catalog.all_outputs(&s.id).await.unwrap(), outputs);
    let events = stack.catalog.events(&s.id).await.unwrap();
    assert_eq!(events.len(), events_before.len() + 1, "{events:#?}");
    let conflict = events.last().unwrap();
    assert_eq!(conflict.status, None, "no transition: {conflict:?}");
    assert_eq!(conflict.level, labpipe_catalog::Level::Error);
    assert!(
        conflict.message.starts_with("conflict:") && conflict.message.contains(&second),
        "{}",
        conflict.message
    );

    // A redelivered request still finds the session processed from its pinned manifest.
    let outcome = preprocess.process(&request).await.unwrap();
    assert!(matches!(outcome, Outcome::Skipped(_)), "{outcome:?}");
    assert_eq!(
        stack.catalog.get(&s.id).await.unwrap().unwrap().status,
        Status::Processed
    );
}

/// Puts the session's files and its manifest as revision `revision` (`raw/<session>.r<R>/`,
/// manifest last), as `labpipe upload --revise` does; returns the manifest key.
async fn put_revision(stack: &Stack, s: &Session, revision: u32) -> String {
    use labpipe_core::layout::{raw_key, revision_folder, revision_manifest_key};
    let folder = revision_folder(&s.id, revision);
    for f in &s.manifest.files {
        let bytes = std::fs::read(s.folder.join(&f.path)).unwrap();
        stack
            .clients
            .s3
            .put_object()
            .bucket(&stack.config.raw_bucket)
            .key(raw_key(&folder, &f.path))
            .checksum_algorithm(ChecksumAlgorithm::Crc64Nvme)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .unwrap();
    }
    let mut manifest = s.manifest.clone();
    manifest.revision = Some(labpipe_core::manifest::Revision {
        number: revision,
        reason: format!("correction {revision}"),
    });
    manifest.uploaded_by = Some(labpipe_core::UploadedBy {
        host: "RIG-B-PC".into(),
        user: "lab".into(),
        rig: Some("rigB".into()),
    });
    let key = revision_manifest_key(&s.id, revision);
    stack
        .clients
        .s3
        .put_object()
        .bucket(&stack.config.raw_bucket)
        .key(&key)
        .body(ByteStream::from(manifest.to_json().into_bytes()))
        .send()
        .await
        .unwrap();
    key
}

/// The S3 event of a manifest written by `principal` (`userIdentity.principalId`).
fn s3_event_by(bucket: &str, key: &str, principal: &str, message_id: &str) -> SqsMessage {
    let mut m = s3_event_message(bucket, key, message_id);
    let mut body: serde_json::Value = serde_json::from_str(m.body.as_deref().unwrap()).unwrap();
    body["Records"][0]["userIdentity"]["principalId"] = principal.into();
    m.body = Some(body.to_string());
    m
}

/// A correction must be the next revision. One that skips a number (`raw/<session>.r3/` while
/// the session is at revision 1 and no revision 2 exists), which any holder of the uploader role
/// can write, is refused: the history says why and who wrote it; the session keeps its revision,
/// status and outputs. The next revision becomes current with who made it in its history, after
/// which revision 3 is the next one; its outputs are keyed by revision, and revision 1's stay.
#[tokio::test]
async fn a_correction_that_skips_a_revision_is_refused_and_each_revision_keeps_its_outputs() {
    let stack = Stack::create().await;
    let s = generate(12, 1_000_000);
    upload(&stack, &s, true).await;
    let ingest = stack.ingest();
    let preprocess = stack.preprocess();
    let raw = stack.config.raw_bucket.clone();
    let request = PreprocessRequest {
        session: s.id.clone(),
        pipeline_version: 1,
    };
    let response = ingest
        .handle(sqs_event(vec![s3_event_by(
            &raw,
            &labpipe_core::layout::manifest_key(&s.id),
            "AWS:AROAFIRST:lab-pc-1",
            "m1",
        )]))
        .await;
    assert!(response.batch_item_failures.is_empty());
    let outcome = preprocess.process(&request).await.unwrap();
    assert!(matches!(outcome, Outcome::Processed { .. }), "{outcome:?}");
    let first = stack.catalog.get(&s.id).await.unwrap().unwrap();
    let first_outputs = stack.catalog.all_outputs(&s.id).await.unwrap();
    let events = stack.catalog.events(&s.id).await.unwrap();
    assert!(
        events[0]
            .message
            .contains("uploaded by AWS:AROAFIRST:lab-pc-1"),
        "the first revision's history names its principal: {events:#?}"
    );

    // Revision 3 without a revision 2: refused, nothing changes but the history.
    let jump = put_revision(&stack, &s, 3).await;
    let response = ingest
        .handle(sqs_event(vec![s3_event_by(
            &raw,
            &jump,
            "AWS:AROAMALLORY:stolen-key",
            "m2",
        )]))
        .await;
    assert!(response.batch_item_failures.is_empty(), "not retried");
    let after = stack.catalog.get(&s.id).await.unwrap().unwrap();
    assert_eq!(after.revision, None, "{after:?}");
    assert_eq!(after.status, Status::Processed);
    assert_eq!(after.manifest_sha256, first.manifest_sha256);
    assert_eq!(after.raw_prefix, first.raw_prefix);
    assert_eq!(
        stack.catalog.all_outputs(&s.id).await.unwrap(),
        first_outputs
    );
    let refused = stack.catalog.events(&s.id).await.unwrap();
    let refused = refused.last().unwrap();
    assert_eq!(refused.status, None, "no transition: {refused:?}");
    assert_eq!(refused.level, labpipe_catalog::Level::Error);
    for part in [
        "refused revision 3",
        "skips revision 2",
        "AWS:AROAMALLORY:stolen-key",
        "keeps revision 1",
    ] {
        assert!(
            refused.message.contains(part),
            "{part}: {}",
            refused.message
        );
    }

    // Revision 2 is the next one: current, and its history event says who made it.
    let next = put_revision(&stack, &s, 2).await;
    let response = ingest
        .handle(sqs_event(vec![s3_event_by(
            &raw,
            &next,
            "AWS:AROATECH:lab-pc-2",
            "m3",
        )]))
        .await;
    assert!(response.batch_item_failures.is_empty());
    let second = stack.catalog.get(&s.id).await.unwrap().unwrap();
    assert_eq!(second.revision, Some(2), "{:?}", second.status_message);
    let made = stack.catalog.events(&s.id).await.unwrap();
    let made = made.last().unwrap();
    assert!(
        made.message.starts_with("revision 2 (correction 2)")
            && made
                .message
                .contains("uploaded by AWS:AROATECH:lab-pc-2 from RIG-B-PC (user lab, rig rigB)"),
        "{}",
        made.message
    );

    // Now revision 3 is the next one: the same event again makes it current.
    let response = ingest
        .handle(sqs_event(vec![s3_event_by(
            &raw,
            &jump,
            "AWS:AROATECH:lab-pc-2",
            "m4",
        )]))
        .await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(
        stack.catalog.get(&s.id).await.unwrap().unwrap().revision,
        Some(3)
    );
    let outcome = preprocess.process(&request).await.unwrap();
    assert!(matches!(outcome, Outcome::Processed { .. }), "{outcome:?}");

    // Revision 3's outputs are its own; revision 1's record and objects are as they were.
    let outputs = stack.catalog.all_outputs(&s.id).await.unwrap();
    let keys: Vec<(u32, u32, String)> = outputs
        .iter()
        .map(|o| (o.version, o.revision, o.prefix.clone()))
        .collect();
    assert_eq!(
        keys,
        [
            (1, 1, labpipe_core::layout::processed_prefix(1, &s.id, 1)),
            (1, 3, labpipe_core::layout::processed_prefix(1, &s.id, 3)),
        ]
    );
    assert_eq!(outputs[0], first_outputs[0]);
    for f in &first_outputs[0].files {
        let bytes = object_bytes(&stack.clients.s3, &stack.config.processed_bucket, &f.key).await;
        assert_eq!(
            hex::encode(Sha256::digest(&bytes)),
            f.sha256,
            "{} overwritten",
            f.key
        );
    }
}
