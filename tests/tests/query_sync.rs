//! `labpipe query` and `labpipe sync` end to end: a catalog and processed objects seeded through
//! the real SDK on the local emulator, the real binary run against them. Every test also runs
//! with the catalog on dynalite (`<name>::dynalite`), a second DynamoDB implementation, and the
//! sync's main ones with S3 on SeaweedFS (`<name>::seaweedfs`), through
//! `labpipe_tests::on_each_engine!`: what passes on one server only is a quirk of that server,
//! not a property of the sync. The catalog is seeded with batch writes
//! (`Catalog::import_sessions`), since dynalite lacks the transactions of the pipeline's writes
//! (`labpipe_tests::DYNALITE_LACKS`).
//!
//! Also the property that keeps the two filter back ends honest: for random sessions and random
//! filters, the DynamoDB plan (month Queries or Scan, on each DynamoDB) selects exactly what the
//! in-memory evaluator selects.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use chrono::{NaiveDateTime, Utc};
use labpipe_catalog::{
    Catalog, Event, Level, OutputFile, OutputRecord, SessionItem, SessionRecord, Status,
};
use labpipe_core::check::FileRole;
use labpipe_core::filter::Filter;
use labpipe_core::{LabSchema, Manifest, ManifestFile, MetaValue, SessionId, Verdict};
use labpipe_tests::{
    create_catalog_table, labpipe_bin, on_each_engine, runtime, unique_name, DynamoServer, Engines,
};
use proptest::prelude::*;
use serde_json::Value;
use sha2::{Digest, Sha256};

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Deterministic pseudo-random bytes (cheap, incompressible enough for a transfer test).
fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn recorded(session: &str) -> NaiveDateTime {
    SessionId::parse(session).unwrap().recorded_at()
}

fn entry(session: &str, status: Status, meta: &[(&str, MetaValue)]) -> SessionItem {
    let mut item = SessionItem::placeholder(session, recorded(session), status, Utc::now());
    item.manifest_sha256 = Some(format!("sha-{session}"));
    item.total_bytes = 600_000_000;
    item.file_count = 6;
    for (k, v) in meta {
        item.metadata.insert((*k).into(), v.clone());
    }
    item
}

fn num(x: f64) -> MetaValue {
    MetaValue::Number(x)
}
fn text(s: &str) -> MetaValue {
    MetaValue::Text(s.into())
}

/// A session's record as the pipeline would have left it: the item and one event for its status.
fn record_of(mut item: SessionItem, outputs: Vec<OutputRecord>) -> SessionRecord {
    item.event_count = item.event_count.max(1);
    item.pipeline_version = outputs.iter().map(|o| o.version).max();
    let event = Event {
        at: item.updated_at,
        seq: 1,
        status: Some(item.status),
        from: None,
        step: "ingest".into(),
        level: if item.status == Status::Failed {
            Level::Error
        } else {
            Level::Info
        },
        message: item.status.to_string(),
    };
    SessionRecord {
        item,
        events: vec![event],
        outputs,
    }
}

/// A seeded catalog table and processed bucket: two processed sessions, one cataloged, one failed.
/// The catalog is on `engines.db`, the buckets on `engines.s3`.
struct Lab {
    engines: Engines,
    catalog: Catalog,
    s3: aws_sdk_s3::Client,
    processed: String,
    raw: String,
    /// Expected objects: key → bytes.
    objects: BTreeMap<String, Vec<u8>>,
    cwd: tempfile::TempDir,
}

const S1: &str = "20210301_090000";
const S2: &str = "20210315_100000";
const S3: &str = "20210402_110000";
const S4: &str = "20210228_235959";

impl Lab {
    async fn on(engines: Engines, big: usize) -> Lab {
        let db = engines.db.dynamodb_client().await;
        let s3 = engines.s3.s3_client().await;
        let table = unique_name("qs");
        create_catalog_table(&db, &table).await.unwrap();
        let processed = unique_name("processed");
        let raw = unique_name("raw");
        for b in [&processed, &raw] {
            s3.create_bucket().bucket(b).send().await.unwrap();
        }
        let catalog = Catalog::new(db, table);
        let mut lab = Lab {
            engines,
            catalog,
            s3,
            processed,
            raw,
            objects: BTreeMap::new(),
            cwd: tempfile::tempdir().unwrap(),
        };
        let sessions = [
            (
                S1,
                Status::Processed,
                vec![
                    ("fatigue", num(3.5)),
                    ("hardware_model", text("X200")),
                    ("subject_id", text("S1")),
                ],
            ),
            (
                S2,
                Status::Processed,
                vec![
                    ("fatigue", num(7.0)),
                    ("hardware_model", text("NeuroAmp-32")),
                    ("subject_id", text("S2")),
                ],
            ),
            (
                S3,
                Status::Cataloged,
                vec![
                    ("fatigue", num(8.0)),
                    ("hardware_model", text("X200")),
                    ("subject_id", text("S3")),
                ],
            ),
            (
                S4,
                Status::Failed,
                vec![("fatigue", num(5.0)), ("hardware_model", text("X200"))],
            ),
        ];
        let mut outputs = BTreeMap::new();
        outputs.insert(
            S1,
            lab.add_outputs(
                S1,
                &[
                    ("summary.json", 900, 1),
                    ("features.parquet", 300_000, 2),
                    ("signal.bin", big, 3),
                ],
            )
            .await,
        );
        outputs.insert(
            S2,
            lab.add_outputs(
                S2,
                &[
                    ("summary.json", 800, 4),
                    ("band/alpha.parquet", 120_000, 5),
                    ("band/beta.parquet", 130_000, 6),
                ],
            )
            .await,
        );
        let records: Vec<SessionRecord> = sessions
            .iter()
            .map(|(s, status, meta)| {
                let mut item = entry(s, *status, meta);
                item.raw_prefix = Some(format!("s3://{}/raw/{s}/", lab.raw));
                record_of(item, outputs.remove(s).into_iter().collect())
            })
            .collect();
        lab.catalog.import_sessions(&records).await.unwrap();
        lab
    }

    async fn put(&mut self, bucket: &str, key: &str, body: Vec<u8>) {
        self.s3
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(body.clone().into())
            .send()
            .await
            .unwrap();
        self.objects.insert(key.to_string(), body);
    }

    /// Puts a session's processed objects into the bucket; returns the catalog's record of them.
    async fn add_outputs(&mut self, session: &str, files: &[(&str, usize, u64)]) -> OutputRecord {
        let mut out = Vec::new();
        for (name, len, seed) in files {
            let key = labpipe_core::layout::processed_key(1, session, 1, name);
            let body = bytes(*len, *seed);
            out.push(OutputFile {
                key: key.clone(),
                size: *len as u64,
                sha256: sha(&body),
            });
            let bucket = self.processed.clone();
            self.put(&bucket, &key, body).await;
        }
        OutputRecord {
            version: 1,
            revision: 1,
            bucket: self.processed.clone(),
            prefix: labpipe_core::layout::processed_prefix(1, session, 1),
            files: out,
            created_at: Utc::now(),
        }
    }

    /// Replaces the output record of `session` (a batch write, which both DynamoDBs take).
    async fn replace_outputs(&self, session: &str, record: OutputRecord) {
        let mut current = self.catalog.read_record(session).await.unwrap().unwrap();
        current.outputs = vec![record];
        self.catalog.import_sessions(&[current]).await.unwrap();
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = self.engines.db.env_with_s3(self.engines.s3);
        env.push(("LABPIPE_TABLE", self.catalog.table().to_string()));
        env.push(("LABPIPE_PROCESSED_BUCKET", self.processed.clone()));
        env.push(("LABPIPE_RAW_BUCKET", self.raw.clone()));
        env
    }

    fn labpipe(&self, args: &[&str]) -> Output {
        labpipe_in(self.cwd.path(), &self.env(), args)
    }

    fn spawn(&self, args: &[&str]) -> std::process::Child {
        Command::new(labpipe_bin())
            .args(args)
            .envs(self.env())
            .env_remove("LABPIPE_SCHEMA")
            .current_dir(self.cwd.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }
}

fn labpipe_in(cwd: &Path, env: &[(&'static str, String)], args: &[&str]) -> Output {
    let out = Command::new(labpipe_bin())
        .args(args)
        .envs(env.iter().cloned())
        .env_remove("LABPIPE_SCHEMA")
        .current_dir(cwd)
        .output()
        .unwrap();
    eprintln!(
        "$ labpipe {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout_json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

fn json_lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn summary(out: &Output) -> Value {
    json_lines(out)
        .into_iter()
        .find(|v| v["event"] == "summary")
        .expect("a summary line")
}

fn sessions_of(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s["session"].as_str().unwrap().to_string())
        .collect()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

on_each_engine!(#[test]
    fn query_selects_sessions_and_lists_exactly_the_catalogued_files on emulator, dynalite);
fn query_selects_sessions_and_lists_exactly_the_catalogued_files(engines: Engines) {
    let lab = runtime().block_on(Lab::on(engines, 50_000));
    let q = |filter: &str| {
        let out = lab.labpipe(&["query", filter, "--json"]);
        assert!(out.status.success(), "{}", stderr(&out));
        sessions_of(&stdout_json(&out))
    };
    assert_eq!(q(""), [S4, S1, S2, S3]);
    assert_eq!(q("fatigue > 3 and hardware_model = X200"), [S4, S1, S3]);
    assert_eq!(q("date >= 2021-03-01 and date < 2021-04-01"), [S1, S2]);
    assert_eq!(q("status = processed"), [S1, S2]);
    assert_eq!(q("subject_id in (S1, S3) or status = failed"), [S4, S1, S3]);
    assert_eq!(q("not subject_id exists"), [S4]);
    assert_eq!(q("fatigue > 100"), Vec::<String>::new());

    let limited = lab.labpipe(&["query", "", "--json", "--limit", "2"]);
    assert_eq!(sessions_of(&stdout_json(&limited)), [S4, S1]);

    let table = lab.labpipe(&["query", "hardware_model = X200"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.starts_with("SESSION"), "{text}");
    assert!(
        text.contains("HARDWARE_MODEL")
            && text.contains(S3)
            && text.contains("CATALOGED")
            && text.contains("3 sessions"),
        "{text}"
    );

    let csv = lab.labpipe(&["query", "status = processed", "--csv"]);
    let csv = String::from_utf8_lossy(&csv.stdout);
    assert!(csv.starts_with("session,recorded_at,status,total_bytes,file_count,pipeline_version,fatigue,hardware_model,subject_id\n"), "{csv}");
    assert!(
        csv.contains(&format!(
            "{S1},2021-03-01T09:00:00,PROCESSED,600000000,6,1,3.5,X200,S1"
        )),
        "{csv}"
    );

    // --files: exactly the output records, as s3 URIs with size and sha256.
    let files = lab.labpipe(&["query", "fatigue >= 3", "--files", "--json"]);
    assert!(files.status.success());
    let got: BTreeSet<(String, u64, String)> = stdout_json(&files)
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["uri"].as_str().unwrap().to_string(),
                f["size"].as_u64().unwrap(),
                f["sha256"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want: BTreeSet<(String, u64, String)> = lab
        .objects
        .iter()
        .map(|(k, v)| {
            (
                format!("s3://{}/{k}", lab.processed),
                v.len() as u64,
                sha(v),
            )
        })
        .collect();
    assert_eq!(got, want);
    let note = stderr(&files);
    assert!(
        note.contains("2 matching session(s) have no processed files")
            && note.contains(S3)
            && note.contains(S4),
        "{note}"
    );

    let plain = lab.labpipe(&["query", "session = \"20210315_100000\"", "--files"]);
    let plain = String::from_utf8_lossy(&plain.stdout);
    assert_eq!(plain.lines().count(), 3, "{plain}");
    assert!(
        plain.lines().all(|l| l.starts_with(&format!(
            "s3://{}/{}",
            lab.processed,
            labpipe_core::layout::processed_prefix(1, S2, 1)
        )) && l.split('\t').count() == 3),
        "{plain}"
    );
    let v2 = lab.labpipe(&["query", "", "--files", "--json", "--pipeline-version", "2"]);
    assert_eq!(stdout_json(&v2), serde_json::json!([]));
}

/// No catalog is read: a bad filter is refused before.
#[test]
fn bad_filters_point_at_the_column_and_exit_2() {
    let cwd = tempfile::tempdir().unwrap();
    let env = vec![("LABPIPE_TABLE", "unused".to_string())];
    for args in [
        vec!["query", "fatige > 3"],
        vec!["sync", "--where", "fatige > 3", "--dest", "out"],
    ] {
        let out = labpipe_in(cwd.path(), &env, &args);
        assert_eq!(out.status.code(), Some(2));
        let err = stderr(&out);
        assert!(
            err.contains("fatige > 3\n^^^^^^ unknown field 'fatige' — did you mean 'fatigue'?"),
            "{err}"
        );
    }
    let out = labpipe_in(
        cwd.path(),
        &env,
        &["query", "fatigue > 3 and hardware_model > X200"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("fatigue > 3 and hardware_model > X200\n                ^^^^^^^^^^^^^^ 'hardware_model' is a text field"), "{}", stderr(&out));
    assert!(!cwd.path().join("out").exists());
}

fn assert_identical(lab: &Lab, dest: &Path, session_filter: &[&str]) {
    for (key, body) in &lab.objects {
        let rest = key.strip_prefix("v1/").unwrap();
        if !session_filter.iter().any(|s| rest.starts_with(s)) {
            continue;
        }
        let local = std::fs::read(dest.join(rest)).unwrap_or_else(|e| panic!("{rest}: {e}"));
        assert!(local == *body, "{rest} differs");
    }
}

on_each_engine!(#[test]
    fn sync_is_verified_incremental_and_repairs_local_damage on emulator, seaweedfs, dynalite);
fn sync_is_verified_incremental_and_repairs_local_damage(engines: Engines) {
    let lab = runtime().block_on(Lab::on(engines, 20_000_000));
    let dest = lab.cwd.path().join("study");
    let d = dest.to_str().unwrap();
    let args = [
        "sync",
        "--where",
        "status = processed",
        "--dest",
        d,
        "--json",
        "--part-size",
        "2MiB",
        "--concurrency",
        "4",
    ];

    let first = lab.labpipe(&args);
    assert!(first.status.success(), "{}", stderr(&first));
    let s = summary(&first);
    assert_eq!(
        (
            s["sessions"].as_u64(),
            s["files"].as_u64(),
            s["files_transferred"].as_u64()
        ),
        (Some(2), Some(6), Some(6))
    );
    assert_identical(&lab, &dest, &[S1, S2]);
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(dest.join("labpipe-sync.json")).unwrap()).unwrap();
    assert_eq!(manifest["filter"], "status = processed");
    assert_eq!(manifest["complete"], true);
    assert_eq!(sessions_of(&manifest["sessions"]), [S1, S2]);
    assert_eq!(manifest["files"].as_array().unwrap().len(), 6);
    // No temporary files left behind.
    assert_eq!(
        std::fs::read_dir(dest.join(".labpipe-sync/partial"))
            .unwrap()
            .count(),
        0
    );

    let second = lab.labpipe(&args);
    let s = summary(&second);
    assert_eq!(
        (
            s["files_transferred"].as_u64(),
            s["files_skipped"].as_u64(),
            s["bytes_transferred"].as_u64()
        ),
        (Some(0), Some(6), Some(0))
    );

    // Damage: one file deleted, one truncated, one altered in place with size and mtime kept.
    std::fs::remove_file(dest.join(S2).join("summary.json")).unwrap();
    let big = dest.join(S1).join("signal.bin");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&big)
        .unwrap()
        .set_len(1000)
        .unwrap();
    let feat = dest.join(S1).join("features.parquet");
    let mtime = std::fs::metadata(&feat).unwrap().modified().unwrap();
    let mut altered = std::fs::read(&feat).unwrap();
    altered[10] ^= 0xff;
    std::fs::write(&feat, &altered).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&feat)
        .unwrap()
        .set_modified(mtime)
        .unwrap();

    let third = lab.labpipe(&args);
    assert!(third.status.success());
    assert_eq!(
        summary(&third)["files_transferred"].as_u64(),
        Some(2),
        "the in-place edit is invisible without --verify"
    );
    let mut verify_args = args.to_vec();
    verify_args.push("--verify");
    let fourth = lab.labpipe(&verify_args);
    assert!(fourth.status.success());
    assert_eq!(summary(&fourth)["files_transferred"].as_u64(), Some(1));
    assert_identical(&lab, &dest, &[S1, S2]);

    // Human output: one summary line on stdout.
    let human = lab.labpipe(&["sync", "--where", "status = processed", "--dest", d]);
    let line = String::from_utf8_lossy(&human.stdout);
    assert!(
        line.contains("2 sessions, 6 files")
            && line.contains("transferred 0")
            && line.contains("6 up to date, 0 failed"),
        "{line}"
    );
}

on_each_engine!(#[test] fn sync_include_dry_run_and_raw_files on emulator, dynalite);
fn sync_include_dry_run_and_raw_files(engines: Engines) {
    let mut lab = runtime().block_on(Lab::on(engines, 10_000));
    // A raw session folder for S2: its manifest lists the files with their SHA-256.
    let raw_files = [
        ("metadata.txt", bytes(120, 7)),
        ("rec_001.bin", bytes(70_000, 8)),
    ];
    let manifest = Manifest {
        format: labpipe_core::manifest::MANIFEST_FORMAT.into(),
        session: SessionId::parse(S2).unwrap(),
        recorded_at: recorded(S2),
        created_at: Utc::now(),
        tool_version: "test".into(),
        revision: None,
        uploaded_by: None,
        verdict: Verdict::Pass,
        total_bytes: raw_files.iter().map(|(_, b)| b.len() as u64).sum(),
        metadata: Default::default(),
        files: raw_files
            .iter()
            .map(|(p, b)| ManifestFile {
                path: p.to_string(),
                size: b.len() as u64,
                role: if p.ends_with(".txt") {
                    FileRole::Metadata
                } else {
                    FileRole::Data
                },
                sha256: sha(b),
                crc64nvme: None,
                version_id: None,
            })
            .collect(),
        findings: vec![],
    };
    let manifest_bytes = manifest.to_json().into_bytes();
    runtime().block_on(async {
        let raw = lab.raw.clone();
        for (p, b) in &raw_files {
            lab.put(&raw, &labpipe_core::layout::raw_key(S2, p), b.clone())
                .await;
        }
        lab.put(
            &raw,
            &labpipe_core::layout::manifest_key(S2),
            manifest_bytes.clone(),
        )
        .await;
        // The catalog pins the manifest by its hash.
        let db = lab.catalog.client();
        db.update_item()
            .table_name(lab.catalog.table())
            .key(
                "pk",
                aws_sdk_dynamodb::types::AttributeValue::S(format!("SESSION#{S2}")),
            )
            .key(
                "sk",
                aws_sdk_dynamodb::types::AttributeValue::S("META".into()),
            )
            .update_expression("SET manifest_sha256 = :m")
            .expression_attribute_values(
                ":m",
                aws_sdk_dynamodb::types::AttributeValue::S(sha(&manifest_bytes)),
            )
            .send()
            .await
            .unwrap();
    });
    let dest = lab.cwd.path().join("d");
    let d = dest.to_str().unwrap();

    let dry = lab.labpipe(&[
        "sync",
        "--where",
        "status = processed",
        "--dest",
        d,
        "--include",
        "*.parquet",
        "--dry-run",
        "--json",
    ]);
    assert!(dry.status.success());
    let would: BTreeSet<String> = json_lines(&dry)
        .iter()
        .filter(|e| e["event"] == "file_would_transfer")
        .map(|e| e["path"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        would,
        BTreeSet::from([
            format!("{S1}/features.parquet"),
            format!("{S2}/band/alpha.parquet"),
            format!("{S2}/band/beta.parquet")
        ])
    );
    assert!(!dest.exists(), "--dry-run writes nothing");

    let inc = lab.labpipe(&[
        "sync",
        "--where",
        "hardware_model = NeuroAmp-32",
        "--dest",
        d,
        "--include",
        "band/*",
        "--raw",
        "--json",
    ]);
    assert!(inc.status.success(), "{}", stderr(&inc));
    assert_eq!(summary(&inc)["files"].as_u64(), Some(2));
    let raw = lab.labpipe(&[
        "sync",
        "--where",
        "hardware_model = NeuroAmp-32",
        "--dest",
        d,
        "--raw",
        "--json",
    ]);
    assert!(raw.status.success(), "{}", stderr(&raw));
    let s = summary(&raw);
    assert_eq!(
        (s["files"].as_u64(), s["files_transferred"].as_u64()),
        (Some(5), Some(3))
    );
    for (p, b) in &raw_files {
        let local = dest.join(S2).join("raw").join(p);
        assert_eq!(std::fs::read(&local).unwrap(), *b);
        assert!(
            std::fs::metadata(&local).unwrap().permissions().readonly(),
            "raw copies are read-only"
        );
    }
    let none = lab.labpipe(&[
        "sync",
        "--where",
        "status = processed",
        "--dest",
        d,
        "--include",
        "*.csv",
    ]);
    assert_eq!(none.status.code(), Some(1));
    assert!(
        stderr(&none).contains("passes --include '*.csv'"),
        "{}",
        stderr(&none)
    );
}

on_each_engine!(#[test]
    fn sync_raw_reads_the_versions_the_manifest_pins on emulator, seaweedfs, dynalite);
fn sync_raw_reads_the_versions_the_manifest_pins(engines: Engines) {
    let lab = runtime().block_on(Lab::on(engines, 10_000));
    let raw_files = [
        ("metadata.txt", bytes(120, 17)),
        ("rec_001.bin", bytes(70_000, 18)),
    ];
    let put = |key: String, body: Vec<u8>| {
        let s3 = lab.s3.clone();
        let bucket = lab.raw.clone();
        async move {
            s3.put_object()
                .bucket(bucket)
                .key(key)
                .body(body.into())
                .send()
                .await
                .unwrap()
                .version_id()
                .expect("a versioned bucket names the version")
                .to_string()
        }
    };
    let manifest_key = labpipe_core::layout::manifest_key(S2);
    runtime().block_on(async {
        // As the template's raw bucket (`VersioningConfiguration: Enabled`).
        lab.s3
            .put_bucket_versioning()
            .bucket(&lab.raw)
            .versioning_configuration(
                aws_sdk_s3::types::VersioningConfiguration::builder()
                    .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        let mut files = Vec::new();
        for (p, b) in &raw_files {
            let version = put(labpipe_core::layout::raw_key(S2, p), b.clone()).await;
            files.push(ManifestFile {
                path: p.to_string(),
                size: b.len() as u64,
                role: if p.ends_with(".txt") {
                    FileRole::Metadata
                } else {
                    FileRole::Data
                },
                sha256: sha(b),
                crc64nvme: None,
                version_id: Some(version),
            });
        }
        let manifest = Manifest {
            format: labpipe_core::manifest::MANIFEST_FORMAT.into(),
            session: SessionId::parse(S2).unwrap(),
            recorded_at: recorded(S2),
            created_at: Utc::now(),
            tool_version: "test".into(),
            revision: None,
            uploaded_by: None,
            verdict: Verdict::Pass,
            total_bytes: raw_files.iter().map(|(_, b)| b.len() as u64).sum(),
            metadata: Default::default(),
            files,
            findings: vec![],
        };
        let manifest_bytes = manifest.to_json().into_bytes();
        let manifest_version = put(manifest_key.clone(), manifest_bytes.clone()).await;
        // The catalog pins the manifest by its hash and version, as ingest records them.
        let db = lab.catalog.client();
        db.update_item()
            .table_name(lab.catalog.table())
            .key(
                "pk",
                aws_sdk_dynamodb::types::AttributeValue::S(format!("SESSION#{S2}")),
            )
            .key(
                "sk",
                aws_sdk_dynamodb::types::AttributeValue::S("META".into()),
            )
            .update_expression("SET manifest_sha256 = :m, manifest_version_id = :v")
            .expression_attribute_values(
                ":m",
                aws_sdk_dynamodb::types::AttributeValue::S(sha(&manifest_bytes)),
            )
            .expression_attribute_values(
                ":v",
                aws_sdk_dynamodb::types::AttributeValue::S(manifest_version),
            )
            .send()
            .await
            .unwrap();
        // Writes around the upload: new current versions of a data file and of the manifest.
        put(
            labpipe_core::layout::raw_key(S2, "rec_001.bin"),
            bytes(70_000, 99),
        )
        .await;
        put(
            manifest_key.clone(),
            b"{\"format\":\"labpipe-manifest/1\"}".to_vec(),
        )
        .await;
    });
    let dest = lab.cwd.path().join("pinned");
    let raw = lab.labpipe(&[
        "sync",
        "--where",
        "hardware_model = NeuroAmp-32",
        "--dest",
        dest.to_str().unwrap(),
        "--raw",
        "--json",
    ]);
    assert!(raw.status.success(), "{}", stderr(&raw));
    for (p, b) in &raw_files {
        let local = dest.join(S2).join("raw").join(p);
        assert_eq!(
            std::fs::read(&local).unwrap(),
            *b,
            "{p}: the pinned version"
        );
    }
}

on_each_engine!(#[test] fn sync_explains_empty_selections on emulator, dynalite);
fn sync_explains_empty_selections(engines: Engines) {
    let lab = runtime().block_on(Lab::on(engines, 1000));
    let dest = lab.cwd.path().join("x");
    let d = dest.to_str().unwrap();
    let none = lab.labpipe(&["sync", "--where", "fatigue > 100", "--dest", d]);
    assert_eq!(none.status.code(), Some(1));
    assert!(
        stderr(&none).contains("the filter 'fatigue > 100' matches no session in the catalog"),
        "{}",
        stderr(&none)
    );
    let unprocessed = lab.labpipe(&[
        "sync",
        "--where",
        "status in (cataloged, failed)",
        "--dest",
        d,
        "--json",
    ]);
    assert_eq!(unprocessed.status.code(), Some(1));
    let err = stderr(&unprocessed);
    assert!(
        err.contains("2 session(s) match but none has processed outputs")
            && err.contains(&format!("{S3} (CATALOGED)")),
        "{err}"
    );
    assert_eq!(json_lines(&unprocessed)[0]["code"], "not_processed");
    assert!(!dest.exists());
}

on_each_engine!(#[test]
    fn objects_changed_behind_the_catalog_are_refused on emulator, seaweedfs, dynalite);
fn objects_changed_behind_the_catalog_are_refused(engines: Engines) {
    let lab = runtime().block_on(Lab::on(engines, 5_000_000));
    runtime().block_on(async {
        // Same size, different bytes; and a different size.
        let mut tampered =
            lab.objects[&labpipe_core::layout::processed_key(1, S2, 1, "summary.json")].clone();
        tampered[0] ^= 1;
        lab.s3
            .put_object()
            .bucket(&lab.processed)
            .key(labpipe_core::layout::processed_key(
                1,
                S2,
                1,
                "summary.json",
            ))
            .body(tampered.into())
            .send()
            .await
            .unwrap();
        lab.s3
            .put_object()
            .bucket(&lab.processed)
            .key(labpipe_core::layout::processed_key(1, S1, 1, "signal.bin"))
            .body(bytes(5_000_001, 3).into())
            .send()
            .await
            .unwrap();
    });
    let dest = lab.cwd.path().join("d");
    let out = lab.labpipe(&[
        "sync",
        "--where",
        "",
        "--dest",
        dest.to_str().unwrap(),
        "--json",
        "--part-size",
        "1MiB",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let events = json_lines(&out);
    let failed: BTreeMap<String, String> = events
        .iter()
        .filter(|e| e["event"] == "file_failed")
        .map(|e| {
            (
                e["path"].as_str().unwrap().to_string(),
                e["code"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        failed,
        BTreeMap::from([
            (
                format!("{S2}/summary.json"),
                "checksum_mismatch".to_string()
            ),
            (format!("{S1}/signal.bin"), "size_mismatch".to_string())
        ])
    );
    assert!(
        stderr(&out).contains("2 of 6 files failed"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("checksum mismatch") || stderr(&out).contains("size mismatch"));
    assert!(
        !dest.join(S2).join("summary.json").exists() && !dest.join(S1).join("signal.bin").exists()
    );
    assert!(dest.join(S2).join("band/alpha.parquet").exists());
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(dest.join("labpipe-sync.json")).unwrap()).unwrap();
    assert_eq!(manifest["complete"], false);
}

on_each_engine!(#[test] fn unsafe_keys_are_refused on emulator, dynalite);
fn unsafe_keys_are_refused(engines: Engines) {
    let lab = runtime().block_on(Lab::on(engines, 1000));
    runtime().block_on(async {
        let record = OutputRecord {
            version: 1,
            revision: 1,
            bucket: lab.processed.clone(),
            prefix: labpipe_core::layout::processed_prefix(1, S1, 1),
            files: vec![OutputFile {
                key: labpipe_core::layout::processed_key(1, S1, 1, "../../../escape.txt"),
                size: 3,
                sha256: sha(b"abc"),
            }],
            created_at: Utc::now(),
        };
        lab.replace_outputs(S1, record).await;
    });
    let dest = lab.cwd.path().join("inner/d");
    let out = lab.labpipe(&[
        "sync",
        "--where",
        "session = \"20210301_090000\"",
        "--dest",
        dest.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("is unsafe ('..' component)"),
        "{}",
        stderr(&out)
    );
    assert!(
        !lab.cwd.path().join("escape.txt").exists()
            && !lab.cwd.path().join("inner/escape.txt").exists()
    );
}

/// A key no OS of the lab can hold (a backslash, a Windows device name) — uploaded before the
/// check refused such names — is refused alone: reported as not delivered with its reason, the
/// run exits 1, and every other file of the selection is delivered and verified.
#[test]
fn a_file_name_some_os_cannot_hold_is_refused_alone_and_the_rest_is_synced() {
    let mut lab = runtime().block_on(Lab::on(Engines::emulator(), 1000));
    let raw_files = [
        ("metadata.txt".to_string(), bytes(120, 21)),
        ("rec_001.bin".to_string(), bytes(4_000, 22)),
        ("rec\\002.bin".to_string(), bytes(4_000, 23)),
        ("CON.bin".to_string(), bytes(4_000, 24)),
    ];
    let manifest = Manifest {
        format: labpipe_core::manifest::MANIFEST_FORMAT.into(),
        session: SessionId::parse(S2).unwrap(),
        recorded_at: recorded(S2),
        created_at: Utc::now(),
        tool_version: "test".into(),
        revision: None,
        uploaded_by: None,
        verdict: Verdict::Pass,
        total_bytes: raw_files.iter().map(|(_, b)| b.len() as u64).sum(),
        metadata: Default::default(),
        files: raw_files
            .iter()
            .map(|(p, b)| ManifestFile {
                path: p.clone(),
                size: b.len() as u64,
                role: FileRole::Data,
                sha256: sha(b),
                crc64nvme: None,
                version_id: None,
            })
            .collect(),
        findings: vec![],
    };
    let manifest_bytes = manifest.to_json().into_bytes();
    runtime().block_on(async {
        let raw = lab.raw.clone();
        for (p, b) in &raw_files {
            lab.put(&raw, &format!("raw/{S2}/{p}"), b.clone()).await;
        }
        lab.put(
            &raw,
            &format!("raw/{S2}/manifest.json"),
            manifest_bytes.clone(),
        )
        .await;
        lab.catalog
            .client()
            .update_item()
            .table_name(lab.catalog.table())
            .key(
                "pk",
                aws_sdk_dynamodb::types::AttributeValue::S(format!("SESSION#{S2}")),
            )
            .key(
                "sk",
                aws_sdk_dynamodb::types::AttributeValue::S("META".into()),
            )
            .update_expression("SET manifest_sha256 = :m")
            .expression_attribute_values(
                ":m",
                aws_sdk_dynamodb::types::AttributeValue::S(sha(&manifest_bytes)),
            )
            .send()
            .await
            .unwrap();
    });
    let dest = lab.cwd.path().join("d");
    let out = lab.labpipe(&[
        "sync",
        "--where",
        "hardware_model = NeuroAmp-32",
        "--dest",
        dest.to_str().unwrap(),
        "--raw",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let failed: BTreeMap<String, String> = json_lines(&out)
        .iter()
        .filter(|e| e["event"] == "file_failed")
        .map(|e| {
            assert_eq!(e["code"], "unsafe_key", "{e}");
            (
                e["path"].as_str().unwrap().to_string(),
                e["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        failed.keys().cloned().collect::<Vec<_>>(),
        [
            format!("{S2}/raw/CON.bin"),
            format!("{S2}/raw/rec\\002.bin")
        ]
    );
    assert!(failed[&format!("{S2}/raw/CON.bin")].contains("name reserved on Windows"));
    assert!(failed[&format!("{S2}/raw/rec\\002.bin")].contains("backslash"));
    let s = summary(&out);
    assert_eq!(
        (
            s["files"].as_u64(),
            s["files_failed"].as_u64(),
            s["files_transferred"].as_u64()
        ),
        (Some(7), Some(2), Some(5))
    );
    // Everything else is there, verified; nothing under the refused names.
    for (p, b) in &raw_files[..2] {
        assert_eq!(
            std::fs::read(dest.join(S2).join("raw").join(p)).unwrap(),
            *b
        );
    }
    for (key, body) in lab
        .objects
        .iter()
        .filter(|(k, _)| k.starts_with(&format!("v1/{S2}/")))
    {
        let local = dest.join(key.strip_prefix("v1/").unwrap());
        assert_eq!(std::fs::read(&local).unwrap(), *body, "{key}");
    }
    let raw_dir: Vec<String> = std::fs::read_dir(dest.join(S2).join("raw"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(raw_dir.len(), 2, "{raw_dir:?}");
}

on_each_engine!(#[test] fn a_killed_download_resumes_where_it_stopped on emulator, dynalite);
fn a_killed_download_resumes_where_it_stopped(engines: Engines) {
    let lab = runtime().block_on(Lab::on(engines, 160 * 1024 * 1024));
    let dest = lab.cwd.path().join("d");
    let d = dest.to_str().unwrap();
    let args = [
        "sync",
        "--where",
        "session = \"20210301_090000\"",
        "--dest",
        d,
        "--part-size",
        "1MiB",
        "--concurrency",
        "1",
        "--include",
        "signal.bin",
        "--json",
    ];
    let mut child = lab.spawn(&args);
    let partial = dest.join(".labpipe-sync/partial");
    let started = Instant::now();
    let done_parts = loop {
        let parts = std::fs::read_dir(&partial)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .filter_map(|e| serde_json::from_slice::<Value>(&std::fs::read(e.path()).ok()?).ok())
            .map(|v| v["done"].as_array().map(|a| a.len()).unwrap_or(0))
            .max()
            .unwrap_or(0);
        if parts >= 8 {
            break parts;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the download finished before it could be interrupted"
        );
        assert!(started.elapsed() < Duration::from_secs(60), "no progress");
        std::thread::sleep(Duration::from_millis(5));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(done_parts < 160, "{done_parts}");
    assert!(
        !dest.join(S1).join("signal.bin").exists(),
        "nothing under the real name before verification"
    );

    let out = lab.labpipe(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let s = summary(&out);
    let resumed = s["bytes_resumed"].as_u64().unwrap();
    assert!(resumed >= 8 * 1024 * 1024, "{s}");
    assert_eq!(
        s["bytes_transferred"].as_u64().unwrap() + resumed,
        160 * 1024 * 1024,
        "{s}"
    );
    assert!(
        std::fs::read(dest.join(S1).join("signal.bin")).unwrap()
            == lab.objects[&labpipe_core::layout::processed_key(1, S1, 1, "signal.bin")]
    );
}

/// Every file under a real name in `dest` (outside `.labpipe-sync/`) has the bytes of its object.
fn assert_every_present_file_verifies(lab: &Lab, dest: &Path) -> usize {
    let mut checked = 0;
    for (key, body) in &lab.objects {
        let rest = key.strip_prefix("v1/").unwrap();
        // A file may appear (rename) between the check and the read: read, then compare.
        if let Ok(local) = std::fs::read(dest.join(rest)) {
            assert!(
                sha(&local) == sha(body),
                "{rest} is on disk under its real name but fails its SHA-256"
            );
            checked += 1;
        }
    }
    checked
}

/// A child process killed (and woken, if stopped) when the test ends, however it ends.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            // SAFETY: signalling our own child process.
            unsafe { libc::kill(self.0.id() as i32, libc::SIGCONT) };
            let _ = self.0.wait();
        }
    }
}

on_each_engine!(#[test]
    fn a_second_sync_into_the_same_folder_refuses_and_names_the_first on emulator, dynalite);
fn a_second_sync_into_the_same_folder_refuses_and_names_the_first(engines: Engines) {
    let lab = runtime().block_on(Lab::on(engines, 64 * 1024 * 1024));
    let dest = lab.cwd.path().join("d");
    let d = dest.to_str().unwrap();
    let args = [
        "sync",
        "--where",
        "status = processed",
        "--dest",
        d,
        "--part-size",
        "1MiB",
        "--concurrency",
        "1",
        "--json",
    ];
    let mut first = Reaped(lab.spawn(&args));
    let pid = first.0.id();
    // The first run names itself in the lock's holder file as soon as it holds the lock; freeze
    // it there so the second run meets a held lock whatever the machine's speed.
    let holder = dest.join(".labpipe-sync/lock.holder");
    let started = Instant::now();
    loop {
        let named = std::fs::read(&holder)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .is_some_and(|v| v["pid"].as_u64() == Some(pid as u64));
        if named {
            break;
        }
        assert!(
            first.0.try_wait().unwrap().is_none(),
            "the first sync ended before it was seen holding the lock"
        );
        assert!(started.elapsed() < Duration::from_secs(60), "no lock taken");
        std::thread::sleep(Duration::from_millis(2));
    }
    // SAFETY: signalling our own child process.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGSTOP) }, 0);
    assert_every_present_file_verifies(&lab, &dest);

    let second = lab.labpipe(&args);
    assert_eq!(second.status.code(), Some(1), "{}", stderr(&second));
    let error = json_lines(&second)
        .into_iter()
        .find(|v| v["event"] == "error")
        .expect("an error line");
    assert_eq!(error["code"], "busy", "{error}");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("pid {pid} on ")) && message.contains(" since "),
        "{message}"
    );
    assert!(
        stderr(&second).contains("wait for that run to finish"),
        "{}",
        stderr(&second)
    );

    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGCONT) }, 0);
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        assert_every_present_file_verifies(&lab, &dest);
        if let Some(status) = first.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the first sync never ended");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success());
    assert_eq!(assert_every_present_file_verifies(&lab, &dest), 6);
    assert!(!holder.exists(), "the holder file goes with the lock");

    // The lock went with the first run: the next one runs, and finds nothing to do.
    let third = lab.labpipe(&args);
    assert!(third.status.success(), "{}", stderr(&third));
    assert_eq!(
        (
            summary(&third)["files_transferred"].as_u64(),
            summary(&third)["files_skipped"].as_u64()
        ),
        (Some(0), Some(6))
    );
}

// ---- DynamoDB plan == in-memory evaluator --------------------------------------------------

fn arb_session() -> impl Strategy<Value = SessionItem> {
    let model = prop::option::of(prop::sample::select(vec![
        "X200",
        "S1",
        "BioRec Mk2",
        "NeuroAmp-32",
    ]));
    let subject = prop::option::of(prop::sample::select(vec!["S1", "S2", "X200"]));
    let room = prop::option::weighted(0.2, prop::sample::select(vec!["B12", "R7"]));
    (
        (0i64..80 * 24 * 60),
        prop::sample::select(Status::ALL.to_vec()),
        prop::option::weighted(0.9, (0u32..24).prop_map(|x| x as f64 / 2.0)),
        prop::option::weighted(0.8, 1u32..12),
        model,
        subject,
        room,
        (1u64..12, 0u64..2_000_000_000),
    )
        .prop_map(
            |(minutes, status, fatigue, channels, model, subject, room, (files, total))| {
                let start =
                    NaiveDateTime::parse_from_str("2021-02-20T00:00:00", "%Y-%m-%dT%H:%M:%S")
                        .unwrap();
                let at = start
                    + chrono::Duration::minutes(minutes)
                    + chrono::Duration::seconds(minutes % 60);
                let session = at.format("%Y%m%d_%H%M%S").to_string();
                let mut item = SessionItem::placeholder(&session, at, status, Utc::now());
                item.file_count = files;
                item.total_bytes = total;
                let meta = &mut item.metadata;
                if let Some(f) = fatigue {
                    meta.insert("fatigue".into(), num(f));
                }
                if let Some(c) = channels {
                    meta.insert("channels".into(), num(c as f64));
                }
                if let Some(m) = model {
                    meta.insert("hardware_model".into(), text(m));
                }
                if let Some(s) = subject {
                    meta.insert("subject_id".into(), text(s));
                }
                if let Some(r) = room {
                    meta.insert("room".into(), text(r));
                }
                item
            },
        )
}

fn arb_filter() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        (
            prop::sample::select(vec!["fatigue", "channels", "sample_rate_hz", "files"]),
            prop::sample::select(vec!["=", "!=", "<", "<=", ">", ">="]),
            0u8..12
        )
            .prop_map(|(f, o, v)| format!("{f} {o} {v}")),
        (prop::sample::select(vec!["=", "!=", "<", ">="]), 0u32..24)
            .prop_map(|(o, v)| format!("fatigue {o} {}", v as f64 / 2.0)),
        (
            prop::sample::select(vec!["hardware_model", "subject_id"]),
            prop::sample::select(vec!["=", "!="]),
            prop::sample::select(vec!["X200", "S1", "\"BioRec Mk2\""])
        )
            .prop_map(|(f, o, v)| format!("{f} {o} {v}")),
        (
            1u32..31,
            prop::sample::select(vec!["<", "<=", ">", ">=", "=", "!="])
        )
            .prop_map(|(d, o)| format!("date {o} 2021-03-{d:02}")),
        (1u32..28, 0u32..24, prop::sample::select(vec!["<", ">="]))
            .prop_map(|(d, h, o)| format!("time {o} 2021-04-{d:02}T{h:02}:30")),
        prop::sample::select(Status::ALL.to_vec())
            .prop_map(|s| format!("status = {}", s.as_str().to_lowercase())),
        prop::sample::select(vec![
            "room exists",
            "channels exists",
            "hardware_model contains X",
            "hardware_model contains \"Mk\"",
            "hardware_model in (X200, S1)",
            "status in (processed, failed)",
            "total_bytes > 1000000000",
            "session = \"20210301_090000\"",
        ])
        .prop_map(String::from),
    ];
    let tree = leaf.prop_recursive(3, 12, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) and ({b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) or ({b})")),
            inner.prop_map(|a| format!("not ({a})")),
        ]
    });
    // Half the filters carry top-level date bounds, so month Queries are exercised as much as Scans.
    (
        tree,
        prop::option::of((
            1u32..28,
            1u32..28,
            prop::sample::select(vec!["03", "04", "05"]),
        )),
    )
        .prop_map(|(f, range)| match range {
            Some((a, b, m)) => {
                format!("date >= 2021-02-{a:02} and date < 2021-{m}-{b:02} and ({f})")
            }
            None => f,
        })
}

/// Seeds a fresh table on `db` with `sessions` and checks that each filter selects from it
/// exactly what the in-memory evaluator selects.
async fn plan_matches_evaluator(
    db: DynamoServer,
    sessions: &BTreeMap<String, SessionItem>,
    filters: &[String],
) -> Result<(), TestCaseError> {
    let schema = LabSchema::default();
    let client = db.dynamodb_client().await;
    let table = unique_name("prop");
    create_catalog_table(&client, &table).await.unwrap();
    let catalog = Catalog::new(client.clone(), table.clone());
    let records: Vec<_> = sessions
        .values()
        .map(|s| record_of(s.clone(), Vec::new()))
        .collect();
    catalog.import_sessions(&records).await.unwrap();
    for src in filters {
        let filter = Filter::new(src, &schema).map_err(|e| TestCaseError::fail(e.render(src)))?;
        let from_db: Vec<String> = catalog
            .query(&filter, None)
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.session)
            .collect();
        let in_memory: Vec<String> = sessions
            .values()
            .filter(|s| filter.matches(&s.subject()))
            .map(|s| s.session.clone())
            .collect();
        prop_assert_eq!(
            &from_db,
            &in_memory,
            "{:?}: filter {} ({:?})",
            db,
            src,
            labpipe_core::filter::dynamo::compile(&filter)
        );
        // Month by month (what `labpipe query` streams), whole and cut at a limit.
        for limit in [None, Some(3)] {
            let mut streamed = Vec::new();
            let n = catalog
                .query_by_month(&filter, limit, |month| {
                    streamed.extend(month.into_iter().map(|s| s.session));
                    std::ops::ControlFlow::Continue(())
                })
                .await
                .unwrap();
            let want = &in_memory[..in_memory.len().min(limit.unwrap_or(usize::MAX))];
            prop_assert_eq!(n, want.len());
            prop_assert_eq!(
                &streamed[..],
                want,
                "{:?}: filter {} by month, limit {:?}",
                db,
                src,
                limit
            );
        }
    }
    let _ = client.delete_table().table_name(&table).send().await;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    /// On each DynamoDB: the emulator's, and dynalite's (which evaluates expressions its own way).
    #[test]
    fn dynamodb_plan_selects_what_the_evaluator_selects(
        sessions in prop::collection::vec(arb_session(), 1..24),
        filters in prop::collection::vec(arb_filter(), 1..6),
    ) {
        let mut unique: BTreeMap<String, SessionItem> = BTreeMap::new();
        for s in sessions {
            unique.entry(s.session.clone()).or_insert(s);
        }
        runtime().block_on(async {
            for db in [DynamoServer::Emulator, DynamoServer::Dynalite] {
                plan_matches_evaluator(db, &unique, &filters).await?;
            }
            Ok::<(), TestCaseError>(())
        })?;
    }
}
