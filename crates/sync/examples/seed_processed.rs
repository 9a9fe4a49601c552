//! Seeds a catalog table and a processed bucket with synthetic preprocessed sessions, for
//! `bench/sync.sh`: the same layout preprocessing writes (`v1/<session>/…` plus an `OUTPUT#v1`
//! record with size and SHA-256 per file), so `labpipe sync` and bucket-listing tools see the
//! same set.
//!
//! usage: seed_processed TABLE BUCKET SESSIONS SMALL_FILES SMALL_BYTES LARGE_FILES LARGE_BYTES
//! (endpoint and credentials from the standard AWS environment, e.g. AWS_ENDPOINT_URL)
//!
//! The catalog records are imported with batch writes (`Catalog::import_sessions`), so any
//! DynamoDB serves, dynalite too (it lacks the transactions of the pipeline's own writes).

use std::sync::Arc;

use chrono::{Duration, NaiveDateTime, Utc};
use labpipe_catalog::{
    Catalog, Event, Level, OutputFile, OutputRecord, SessionItem, SessionRecord, Status,
};
use labpipe_core::MetaValue;
use labpipe_tests::create_catalog_table;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

fn body(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [table, bucket, sessions, small_n, small_len, large_n, large_len] = &args[..] else {
        eprintln!("usage: seed_processed TABLE BUCKET SESSIONS SMALL_FILES SMALL_BYTES LARGE_FILES LARGE_BYTES");
        std::process::exit(2);
    };
    let n = |s: &String| s.parse::<usize>().expect("a whole number");
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let db = aws_sdk_dynamodb::Client::new(&sdk);
    let s3 = labpipe_sync::s3_client(&sdk);
    create_catalog_table(&db, table)
        .await
        .expect("create table");
    s3.create_bucket()
        .bucket(bucket)
        .send()
        .await
        .expect("create bucket");
    let catalog = Catalog::new(db, table.clone());
    let start = NaiveDateTime::parse_from_str("2021-03-01T09:00:00", "%Y-%m-%dT%H:%M:%S").unwrap();
    let gate = Arc::new(Semaphore::new(8));
    let mut total = 0u64;
    for i in 0..n(sessions) {
        let at = start + Duration::hours(7 * i as i64);
        let session = at.format("%Y%m%d_%H%M%S").to_string();
        let mut item = SessionItem::placeholder(&session, at, Status::Processed, Utc::now());
        item.manifest_sha256 = Some(format!("bench-{i}"));
        item.metadata
            .insert("fatigue".into(), MetaValue::Number((i % 10) as f64));
        item.metadata
            .insert("hardware_model".into(), MetaValue::Text("X200".into()));
        let specs: Vec<(String, usize)> = (0..n(small_n))
            .map(|j| (format!("features/part-{j:04}.parquet"), n(small_len)))
            .chain((0..n(large_n)).map(|j| (format!("signal-{j}.bin"), n(large_len))))
            .collect();
        let mut puts = JoinSet::new();
        for (j, (name, len)) in specs.into_iter().enumerate() {
            let (s3, bucket, gate) = (s3.clone(), bucket.clone(), gate.clone());
            let key = labpipe_core::layout::processed_key(1, &session, 1, &name);
            puts.spawn(async move {
                let _slot = gate.acquire_owned().await.unwrap();
                let data = body(len, (i * 10_000 + j) as u64);
                let sha = hex::encode(Sha256::digest(&data));
                s3.put_object()
                    .bucket(&bucket)
                    .key(&key)
                    .body(data.into())
                    .send()
                    .await
                    .expect("put object");
                OutputFile {
                    key,
                    size: len as u64,
                    sha256: sha,
                }
            });
        }
        let mut files = puts.join_all().await;
        files.sort_by(|a, b| a.key.cmp(&b.key));
        total += files.iter().map(|f| f.size).sum::<u64>();
        let record = OutputRecord {
            version: 1,
            revision: 1,
            bucket: bucket.clone(),
            prefix: labpipe_core::layout::processed_prefix(1, &session, 1),
            files,
            created_at: Utc::now(),
        };
        item.event_count = 1;
        item.pipeline_version = Some(1);
        let event = Event {
            at: item.updated_at,
            seq: 1,
            status: Some(Status::Processed),
            from: None,
            step: "preprocess".into(),
            level: Level::Info,
            message: "seeded".into(),
        };
        catalog
            .import_sessions(&[SessionRecord {
                item,
                events: vec![event],
                outputs: vec![record],
            }])
            .await
            .expect("import session");
    }
    println!("{total}");
}
