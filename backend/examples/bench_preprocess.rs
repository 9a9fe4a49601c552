//! Benchmark helper for `bench/preprocess.sh`, in two phases so the measured process does only
//! preprocessing:
//!
//! - `bench_preprocess setup DIR SIZE_MB`: creates buckets, catalog table and queues on the
//!   emulator (`AWS_ENDPOINT_URL`), generates one session of SIZE_MB in DIR, uploads it with
//!   CRC64NVME checksums and its manifest, runs ingest, and prints `export NAME=value` lines;
//! - `bench_preprocess run`: preprocesses the session named by `LABPIPE_BENCH_SESSION` with the
//!   settings from the environment, and prints one JSON line with the outcome and wall time.

use std::time::Instant;

use anyhow::{bail, Context, Result};
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ChecksumAlgorithm;
use base64::Engine as _;
use labpipe_backend::preprocess::PreprocessRequest;
use labpipe_backend::{BackendConfig, Clients, Ingest, Preprocess};
use labpipe_catalog::Catalog;
use labpipe_core::check::check_folder;
use labpipe_core::{LabSchema, Manifest};
use sha2::{Digest, Sha256};

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("setup") => {
            let dir = args
                .get(2)
                .context("usage: bench_preprocess setup DIR SIZE_MB")?;
            let mb: f64 = args
                .get(3)
                .context("usage: bench_preprocess setup DIR SIZE_MB")?
                .parse()?;
            setup(dir, mb).await
        }
        Some("run") => run().await,
        _ => bail!("usage: bench_preprocess setup DIR SIZE_MB | bench_preprocess run"),
    }
}

async fn setup(dir: &str, size_mb: f64) -> Result<()> {
    let clients = Clients::from_env().await;
    let suffix = std::process::id();
    let (raw, processed, table) = (
        format!("bench-raw-{suffix}"),
        format!("bench-processed-{suffix}"),
        format!("bench-catalog-{suffix}"),
    );
    for b in [&raw, &processed] {
        clients.s3.create_bucket().bucket(b).send().await?;
    }
    labpipe_tests::create_catalog_table(&clients.dynamodb, &table).await?;
    let queue = clients
        .sqs
        .create_queue()
        .queue_name(format!("bench-preprocess-{suffix}"))
        .send()
        .await?;
    let queue_url = queue.queue_url().unwrap_or_default().to_string();

    let mut opts = labpipe_sample::GenerateOptions::new(dir);
    opts.count = 1;
    opts.size_bytes = (size_mb * 1e6) as u64;
    opts.seed = 7;
    let generated = labpipe_sample::generate(&opts, |_, _| {})?;
    let folder = generated[0].path.clone();
    let report = check_folder(&folder, &LabSchema::default())?;
    let mut hashes = Vec::new();
    for f in &report.files {
        let bytes = std::fs::read(folder.join(&f.path))?;
        let crc = crc_fast::checksum(crc_fast::CrcAlgorithm::Crc64Nvme, &bytes);
        hashes.push((
            hex::encode(Sha256::digest(&bytes)),
            Some(base64::engine::general_purpose::STANDARD.encode(crc.to_be_bytes())),
        ));
        clients
            .s3
            .put_object()
            .bucket(&raw)
            .key(labpipe_core::layout::raw_key(&report.session, &f.path))
            .checksum_algorithm(ChecksumAlgorithm::Crc64Nvme)
            .body(ByteStream::from_path(folder.join(&f.path)).await?)
            .send()
            .await?;
    }
    let manifest = Manifest::new(&report, hashes, chrono::Utc::now())?;
    let key = labpipe_core::layout::manifest_key(&report.session);
    clients
        .s3
        .put_object()
        .bucket(&raw)
        .key(&key)
        .body(ByteStream::from(manifest.to_json().into_bytes()))
        .send()
        .await?;
    let config = BackendConfig {
        table: table.clone(),
        raw_bucket: raw.clone(),
        processed_bucket: processed.clone(),
        preprocess_queue_url: queue_url.clone(),
        ingest_queue_url: String::new(),
        pipeline_version: 1,
        processing_lease_secs: 900,
    };
    let mut message = SqsMessage::default();
    message.message_id = Some("bench".into());
    message.body = Some(labpipe_sqs::ingest_event(
        &raw,
        &report.session.to_string(),
        1,
    ));
    let mut event = SqsEvent::default();
    event.records.push(message);
    let response = Ingest::new(&clients, &config).handle(event).await;
    anyhow::ensure!(response.batch_item_failures.is_empty(), "ingest failed");
    let item = Catalog::new(clients.dynamodb.clone(), &table)
        .get(&report.session)
        .await?
        .context("not cataloged")?;
    eprintln!(
        "bench: session {} ({} bytes, {} channels × {} at {} Hz) is {}",
        report.session,
        manifest.total_bytes,
        manifest.metadata["channels"],
        manifest.metadata["sample_format"],
        manifest.metadata["sample_rate_hz"],
        item.status
    );
    println!("export LABPIPE_TABLE={table}");
    println!("export LABPIPE_RAW_BUCKET={raw}");
    println!("export LABPIPE_PROCESSED_BUCKET={processed}");
    println!("export LABPIPE_PREPROCESS_QUEUE_URL={queue_url}");
    println!("export LABPIPE_BENCH_SESSION={}", report.session);
    println!("export LABPIPE_BENCH_BYTES={}", manifest.total_bytes);
    Ok(())
}

async fn run() -> Result<()> {
    let config = BackendConfig::from_env()?;
    let session = std::env::var("LABPIPE_BENCH_SESSION")
        .context("LABPIPE_BENCH_SESSION is not set; run setup first")?;
    let clients = Clients::from_env().await;
    let preprocess = Preprocess::new(&clients, &config);
    let started = Instant::now();
    let outcome = preprocess
        .process(&PreprocessRequest {
            session: session.clone(),
            pipeline_version: config.pipeline_version,
        })
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let secs = started.elapsed().as_secs_f64();
    let bytes: f64 = std::env::var("LABPIPE_BENCH_BYTES")
        .ok()
        .and_then(|b| b.parse().ok())
        .unwrap_or(0.0);
    println!(
        "{}",
        serde_json::json!({"session": session, "outcome": format!("{outcome:?}"), "wall_s": secs, "mb_per_s": bytes / 1e6 / secs})
    );
    Ok(())
}
