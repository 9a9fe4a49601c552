//! Fills a catalog table on the local emulator with realistic demo sessions, through
//! `labpipe_catalog` (the same writes the backend makes): for the demo script and benchmarks.
//!
//!   usage: seed-catalog --endpoint http://127.0.0.1:PORT --table NAME [--count N] [--create]
//!
//! Refuses endpoints that are not on this machine.

use anyhow::{bail, Context, Result};
use aws_config::BehaviorVersion;
use chrono::NaiveDate;
use labpipe_catalog::{Catalog, OutputFile, OutputRecord, SessionItem, Status};
use labpipe_core::MetaValue;

#[tokio::main]
async fn main() -> Result<()> {
    let mut endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
    let mut table = String::new();
    let mut count = 200usize;
    let mut create = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--endpoint" => endpoint = args.next().context("--endpoint needs a URL")?,
            "--table" => table = args.next().context("--table needs a name")?,
            "--count" => count = args.next().context("--count needs a number")?.parse()?,
            "--create" => create = true,
            other => bail!("unknown argument {other} (see the header of seed-catalog.rs)"),
        }
    }
    if !(endpoint.starts_with("http://127.") || endpoint.starts_with("http://localhost")) {
        bail!("refusing endpoint '{endpoint}': seed-catalog only writes to a local emulator");
    }
    if table.is_empty() {
        bail!("--table is required");
    }
    let region = std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into());
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(&endpoint)
        .region(aws_config::Region::new(region))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "testing", "testing", None, None, "seed",
        ))
        .load()
        .await;
    let db = aws_sdk_dynamodb::Client::new(&sdk);
    if create {
        labpipe_catalog::create_table(&db, &table).await?;
    }
    let catalog = Catalog::new(db, table.clone());
    let t0 = std::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(8));
    for i in 0..count {
        let catalog = catalog.clone();
        let permit = sem.clone().acquire_owned().await?;
        tasks.spawn(async move {
            // The emulator rejects some concurrent transactions; a failed write changed
            // nothing, so the session is simply seeded again from where it stands.
            let mut r = seed_one(&catalog, i).await;
            for attempt in 1..=8u64 {
                if r.is_ok() {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(40 * attempt)).await;
                r = seed_one(&catalog, i).await;
            }
            drop(permit);
            r
        });
        while let Some(r) = tasks.try_join_next() {
            r??;
        }
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    eprintln!(
        "seeded {count} sessions into {table} in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}

/// A deterministic pseudo-random number in 0..1 for session `i` and purpose `k`.
fn rnd(i: usize, k: u64) -> f64 {
    let mut x =
        (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ k.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 31;
    x = x.wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 29;
    (x % 1_000_000) as f64 / 1_000_000.0
}

async fn seed_one(catalog: &Catalog, i: usize) -> Result<()> {
    let start = NaiveDate::from_ymd_opt(2021, 1, 4)
        .unwrap()
        .and_hms_opt(8, 0, 0)
        .unwrap();
    // About six recordings a working day.
    let at = start + chrono::Duration::minutes((i as i64) * 97 + (rnd(i, 1) * 40.0) as i64);
    let session = at.format("%Y%m%d_%H%M%S").to_string();
    let mut item = SessionItem::placeholder(&session, at, Status::Cataloged, chrono::Utc::now());
    item.manifest_sha256 = Some(format!("{:064x}", i as u128 * 2_654_435_761));
    item.raw_prefix = Some(format!("raw/{session}/"));
    item.total_bytes = 560_000_000 + (rnd(i, 2) * 80_000_000.0) as u64;
    item.file_count = 5;
    let models = ["X200", "X200", "X100", "Q8"];
    let m = &mut item.metadata;
    m.insert(
        "fatigue".into(),
        MetaValue::Number(((rnd(i, 3) + rnd(i, 4) + rnd(i, 5)) / 3.0 * 10.0).round()),
    );
    m.insert(
        "hardware_model".into(),
        MetaValue::Text(models[(rnd(i, 6) * 4.0) as usize % 4].into()),
    );
    m.insert(
        "subject_id".into(),
        MetaValue::Text(format!("S{:03}", (rnd(i, 7) * 48.0) as usize)),
    );
    m.insert(
        "sample_rate_hz".into(),
        MetaValue::Number(if rnd(i, 8) < 0.7 { 1000.0 } else { 2000.0 }),
    );
    m.insert(
        "channels".into(),
        MetaValue::Number(if rnd(i, 9) < 0.5 { 32.0 } else { 64.0 }),
    );
    m.insert("sample_format".into(), MetaValue::Text("int16".into()));
    m.insert(
        "operator".into(),
        MetaValue::Text(["ana", "ben", "chen"][i % 3].into()),
    );
    m.insert(
        "electrode_impedance_kohm".into(),
        MetaValue::Number((rnd(i, 10) * 200.0).round() / 10.0),
    );
    let current = match catalog.get(&session).await? {
        Some(c) => c.status,
        None => {
            catalog.put_new_session(&item).await?;
            Status::Cataloged
        }
    };
    if current != Status::Cataloged && current != Status::Processing {
        return Ok(()); // already seeded
    }
    let roll = rnd(i, 11);
    if roll < 0.06 {
        catalog
            .record_failure(
                &session,
                at,
                "preprocess",
                "data_002.bin ends mid-frame (12 bytes short); the raw upload is intact — re-record or ask the operator to re-run with --allow-truncated",
            )
            .await?;
    } else if roll < 0.12 {
        // Still cataloged: waiting for preprocessing.
    } else {
        catalog
            .transition(
                &session,
                Status::Processing,
                "preprocess",
                "pipeline v1 started",
            )
            .await?;
        let record = OutputRecord {
            version: 1,
            bucket: "labpipe-processed".into(),
            prefix: format!("v1/{session}/"),
            files: ["features.parquet", "spectrum.parquet", "qc.json"]
                .iter()
                .map(|f| OutputFile {
                    key: format!("v1/{session}/{f}"),
                    size: 1_000_000 + (rnd(i, 12) * 5e6) as u64,
                    sha256: format!("{:064x}", i as u128 * 31 + f.len() as u128),
                })
                .collect(),
            created_at: chrono::Utc::now(),
        };
        catalog.record_outputs(&session, &record).await?;
        catalog
            .transition(
                &session,
                Status::Processed,
                "preprocess",
                "pipeline v1 wrote 3 files",
            )
            .await?;
    }
    Ok(())
}
