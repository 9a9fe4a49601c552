//! Reproducible datasets end to end: `labpipe sync --save-snapshot` on the emulator's versioned
//! processed bucket, then preprocessing "re-runs" (new bytes over the same keys, a new catalog
//! record), and `labpipe sync --snapshot` must bring back the first bytes exactly — while a plain
//! sync now gets the new ones.
//!
//! Needs the binary: `cargo build -p labpipe-cli` before `cargo test -p labpipe-tests --test snapshot`.

use std::path::Path;
use std::process::{Command, Output};

use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
use chrono::Utc;
use labpipe_catalog::{Catalog, OutputFile, OutputRecord, SessionItem, Status};
use labpipe_core::SessionId;
use labpipe_tests::{create_catalog_table, labpipe_bin, unique_name, Emulator};
use serde_json::Value;
use sha2::{Digest, Sha256};

const SESSION: &str = "20210301_090000";

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

struct Lab {
    s3: aws_sdk_s3::Client,
    catalog: Catalog,
    processed: String,
    dir: tempfile::TempDir,
}

impl Lab {
    async fn new() -> Lab {
        let emulator = Emulator::shared();
        let s3 = emulator.s3_client().await;
        let db = emulator.dynamodb_client().await;
        let table = unique_name("snap");
        create_catalog_table(&db, &table).await.unwrap();
        let processed = unique_name("processed");
        s3.create_bucket().bucket(&processed).send().await.unwrap();
        s3.put_bucket_versioning()
            .bucket(&processed)
            .versioning_configuration(
                VersioningConfiguration::builder()
                    .status(BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        let catalog = Catalog::new(db, table);
        let recorded = SessionId::parse(SESSION).unwrap().recorded_at();
        let item = SessionItem::placeholder(SESSION, recorded, Status::Processed, Utc::now());
        catalog.put_new_session(&item).await.unwrap();
        Lab {
            s3,
            catalog,
            processed,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// Preprocessing's outputs of `SESSION` (v1): writes the objects and the catalog record.
    async fn preprocess(&self, files: &[(&str, Vec<u8>)]) {
        let mut out = Vec::new();
        for (name, body) in files {
            let key = labpipe_core::layout::processed_key(1, SESSION, 1, name);
            self.s3
                .put_object()
                .bucket(&self.processed)
                .key(&key)
                .body(body.clone().into())
                .send()
                .await
                .unwrap();
            out.push(OutputFile {
                key,
                size: body.len() as u64,
                sha256: hex::encode(Sha256::digest(body)),
            });
        }
        let record = OutputRecord {
            version: 1,
            revision: 1,
            bucket: self.processed.clone(),
            prefix: labpipe_core::layout::processed_prefix(1, SESSION, 1),
            files: out,
            created_at: Utc::now(),
        };
        self.catalog.record_outputs(SESSION, &record).await.unwrap();
    }

    fn labpipe(&self, args: &[&str]) -> Output {
        let out = Command::new(labpipe_bin())
            .args(args)
            .envs(Emulator::shared().env())
            .env("LABPIPE_TABLE", self.catalog.table())
            .env("LABPIPE_PROCESSED_BUCKET", &self.processed)
            .env_remove("LABPIPE_SCHEMA")
            .env_remove("LABPIPE_STACK_OUTPUTS")
            .current_dir(self.dir.path())
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

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

fn read(dir: &str, name: &str) -> Vec<u8> {
    std::fs::read(Path::new(dir).join(SESSION).join(name))
        .unwrap_or_else(|e| panic!("{dir}/{SESSION}/{name}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_restores_the_synced_bytes_after_reprocessing_overwrote_them() {
    let lab = Lab::new().await;
    // One file above the part size, so the ranged download is pinned to the version too.
    let first = [
        ("summary.json", bytes(700, 1)),
        ("signal.bin", bytes(2_500_000, 2)),
    ];
    lab.preprocess(&first).await;
    let (d1, d2, d3, snap) = (
        lab.path("first"),
        lab.path("latest"),
        lab.path("restored"),
        lab.path("study.snapshot.json"),
    );
    let sync = [
        "sync",
        "--where",
        "status = processed",
        "--part-size",
        "1MiB",
    ];

    let out = lab.labpipe(
        &[
            &sync[..],
            &["--dest", &d1, "--save-snapshot", &snap, "--json"],
        ]
        .concat(),
    );
    assert!(out.status.success());
    let last: Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last().unwrap()).unwrap();
    assert_eq!(last["event"], "snapshot");
    assert_eq!(last["files"], 2);
    assert_eq!(last["unversioned"], 0);
    let saved: Value = serde_json::from_slice(&std::fs::read(&snap).unwrap()).unwrap();
    for f in saved["files"].as_array().unwrap() {
        assert!(f["version_id"].is_string(), "no version id: {f}");
    }
    for (name, body) in &first {
        assert_eq!(&read(&d1, name), body, "{name} synced");
    }

    // Preprocessing runs again: other bytes (one of another size) under the same keys.
    let second = [
        ("summary.json", bytes(650, 3)),
        ("signal.bin", bytes(2_500_000, 4)),
    ];
    lab.preprocess(&second).await;
    let out = lab.labpipe(&[&sync[..], &["--dest", &d2]].concat());
    assert!(out.status.success());
    for (name, body) in &second {
        assert_eq!(&read(&d2, name), body, "a plain sync gets the new {name}");
    }

    // The snapshot brings back the first bytes, exactly.
    let out = lab.labpipe(&[
        "sync",
        "--snapshot",
        &snap,
        "--dest",
        &d3,
        "--part-size",
        "1MiB",
    ]);
    assert!(out.status.success());
    for (name, body) in &first {
        assert_eq!(&read(&d3, name), body, "{name} restored from the snapshot");
    }
    let record: Value =
        serde_json::from_slice(&std::fs::read(Path::new(&d3).join("labpipe-sync.json")).unwrap())
            .unwrap();
    assert!(
        record["filter"]
            .as_str()
            .unwrap()
            .contains("status = processed"),
        "{record}"
    );

    // A snapshot whose checksum does not match the version's bytes installs nothing.
    let mut tampered = saved.clone();
    tampered["files"][0]["sha256"] = Value::from("0".repeat(64));
    let name = tampered["files"][0]["path"].as_str().unwrap().to_string();
    let bad = lab.path("tampered.json");
    std::fs::write(&bad, serde_json::to_vec(&tampered).unwrap()).unwrap();
    let d4 = lab.path("refused");
    let out = lab.labpipe(&["sync", "--snapshot", &bad, "--dest", &d4]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("checksum mismatch"));
    assert!(!Path::new(&d4).join(&name).exists(), "{name} was installed");

    // --snapshot with a filter is a usage error.
    let out = lab.labpipe(&[
        "sync",
        "--snapshot",
        &snap,
        "--where",
        "status = processed",
        "--dest",
        &d4,
    ]);
    assert_eq!(out.status.code(), Some(2));
}
