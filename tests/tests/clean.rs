//! `labpipe clean` end to end: real session folders uploaded with the real `labpipe upload` to
//! the emulator, cataloged from their real manifests, then broken one way each. `clean` must
//! delete only the folder it can prove safe, keep every other one with the reason a technician
//! can act on, and leave S3 exactly as it was.
//!
//! Needs the binary: `cargo build -p labpipe-cli` before `cargo test -p labpipe-tests --test clean`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use aws_sdk_s3::types::ChecksumAlgorithm;
use chrono::{Duration, Local, Timelike, Utc};
use labpipe_catalog::{create_table, Catalog, SessionItem, Status};
use labpipe_core::Manifest;
use labpipe_sample::{generate, GenerateOptions, GeneratedSession};
use labpipe_tests::{labpipe_bin, object_bytes, unique_name, Emulator};
use serde_json::Value;
use sha2::{Digest, Sha256};

struct Lab {
    s3: aws_sdk_s3::Client,
    catalog: Catalog,
    raw: String,
    table: String,
    root: tempfile::TempDir,
    home: tempfile::TempDir,
}

impl Lab {
    async fn new() -> Lab {
        let emulator = Emulator::shared();
        let s3 = emulator.s3_client().await;
        let db = emulator.dynamodb_client().await;
        let raw = unique_name("raw");
        s3.create_bucket().bucket(&raw).send().await.unwrap();
        let table = unique_name("clean");
        create_table(&db, &table).await.unwrap();
        Lab {
            s3,
            catalog: Catalog::new(db, table.clone()),
            raw,
            table,
            root: tempfile::tempdir().unwrap(),
            home: tempfile::tempdir().unwrap(),
        }
    }

    fn labpipe(&self) -> Command {
        let mut cmd = Command::new(labpipe_bin());
        cmd.envs(Emulator::shared().env())
            .env("LABPIPE_JOURNAL", self.home.path().join("journal.sqlite3"))
            .env("LABPIPE_LOG_DIR", self.home.path().join("logs"))
            .env_remove("LABPIPE_RAW_BUCKET")
            .env_remove("LABPIPE_STACK_OUTPUTS")
            .current_dir(self.home.path());
        cmd
    }

    /// Sessions of ~200 kB written into the lab root.
    fn record(
        &self,
        count: usize,
        start: chrono::NaiveDateTime,
        seed: u64,
    ) -> Vec<GeneratedSession> {
        let mut opts = GenerateOptions::new(self.root.path());
        opts.count = count;
        opts.size_bytes = 200_000;
        opts.seed = seed;
        opts.start = start;
        generate(&opts, |_, _| {}).expect("generate sample sessions")
    }

    fn upload(&self) {
        let out = self
            .labpipe()
            .arg("upload")
            .arg(self.root.path())
            .args(["--bucket", &self.raw, "--json"])
            .output()
            .unwrap();
        assert!(out.status.success(), "upload failed: {}", text(&out));
    }

    /// The catalog entry ingest would write for the uploaded manifest, with `status`.
    async fn catalog_as(&self, session: &str, status: Status) {
        let key = format!("raw/{session}/manifest.json");
        let bytes = object_bytes(&self.s3, &self.raw, &key).await;
        let manifest = Manifest::from_json(&bytes).unwrap();
        let sha = hex::encode(Sha256::digest(&bytes));
        let prefix = format!("s3://{}/raw/{session}/", self.raw);
        let mut item = SessionItem::from_manifest(&manifest, &sha, &prefix, Utc::now());
        item.status = status;
        self.catalog.put_new_session(&item).await.unwrap();
    }

    fn clean(&self, extra: &[&str]) -> Output {
        self.labpipe()
            .arg("clean")
            .args(["--root"])
            .arg(self.root.path())
            .args(["--table", &self.table, "--older-than", "30d"])
            .args(extra)
            .output()
            .unwrap()
    }

    /// Every raw object: key → (size, ETag). What `clean` must never change.
    async fn raw_objects(&self) -> BTreeMap<String, (i64, String)> {
        let out = self
            .s3
            .list_objects_v2()
            .bucket(&self.raw)
            .send()
            .await
            .unwrap();
        out.contents()
            .iter()
            .map(|o| {
                (
                    o.key().unwrap().to_string(),
                    (o.size().unwrap_or(0), o.e_tag().unwrap_or("").to_string()),
                )
            })
            .collect()
    }
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A data file of the session (not the metadata file), relative path.
fn data_file(folder: &Path) -> String {
    let mut names: Vec<String> = std::fs::read_dir(folder)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".bin"))
        .collect();
    names.sort();
    names.into_iter().next().expect("a .bin data file")
}

/// Same length, different bytes.
fn flipped(bytes: &[u8]) -> Vec<u8> {
    let mut b = bytes.to_vec();
    b[0] ^= 0xff;
    b
}

fn folder_bytes(folder: &Path) -> u64 {
    std::fs::read_dir(folder)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_deletes_only_what_it_can_prove_and_says_why_it_keeps_the_rest() {
    let lab = Lab::new().await;
    let old = lab.record(7, labpipe_sample::default_start(), 11);
    // Recorded two days ago: safe in S3 and processed, but within --older-than 30d.
    let two_days_ago = (Local::now() - Duration::days(2))
        .naive_local()
        .with_nanosecond(0)
        .unwrap();
    let recent = lab.record(1, two_days_ago, 12);
    lab.upload();

    let names: Vec<&str> = old.iter().map(|s| s.name.as_str()).collect();
    let [good, changed, extra, unprocessed, missing, differs, uncataloged] = names[..] else {
        panic!("expected 7 sessions, got {names:?}")
    };
    let recent = recent[0].name.as_str();
    for s in [good, changed, extra, missing, differs, recent] {
        lab.catalog_as(s, Status::Processed).await;
    }
    lab.catalog_as(unprocessed, Status::Cataloged).await;
    let path = |s: &str| lab.root.path().join(s);

    // A local file changed after upload (same size, so only the hash can tell).
    let f = data_file(&path(changed));
    let bytes = std::fs::read(path(changed).join(&f)).unwrap();
    std::fs::write(path(changed).join(&f), flipped(&bytes)).unwrap();
    // A file the upload never sent.
    std::fs::write(path(extra).join("notes.txt"), b"electrode 3 loose\n").unwrap();
    // The S3 copy of one file is gone (a break-glass delete, say).
    let f_missing = data_file(&path(missing));
    lab.s3
        .delete_object()
        .bucket(&lab.raw)
        .key(format!("raw/{missing}/{f_missing}"))
        .send()
        .await
        .unwrap();
    // The S3 copy of one file is other bytes of the same size (S3 computes their CRC64NVME).
    let f_differs = data_file(&path(differs));
    let local = std::fs::read(path(differs).join(&f_differs)).unwrap();
    lab.s3
        .put_object()
        .bucket(&lab.raw)
        .key(format!("raw/{differs}/{f_differs}"))
        .checksum_algorithm(ChecksumAlgorithm::Crc64Nvme)
        .body(flipped(&local).into())
        .send()
        .await
        .unwrap();

    let s3_before = lab.raw_objects().await;
    let good_bytes = folder_bytes(&path(good));

    // Dry run, for a person: what would go, the space, and each reason; nothing deleted.
    let out = lab.clean(&["--dry-run"]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("would delete") && l.contains(good)),
        "{}",
        text(&out)
    );
    assert!(
        stdout.contains("notes.txt is not part of the uploaded session"),
        "{}",
        text(&out)
    );
    assert!(
        stdout.contains("8 folders checked: 1 would be deleted"),
        "{}",
        text(&out)
    );
    for s in &names {
        assert!(path(s).is_dir(), "dry run deleted {s}");
    }

    // Dry run, for a script: the space freed is the good folder's bytes.
    let out = lab.clean(&["--dry-run", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["would_delete"], 1, "{v:#}");
    assert_eq!(v["bytes_freed"], good_bytes, "{v:#}");

    // The real run.
    let out = lab.clean(&["--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let by_session: BTreeMap<String, &Value> = v["folders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["session"].as_str().unwrap().to_string(), f))
        .collect();
    let expect = [
        (good, "deleted", "verified", None),
        (changed, "kept", "changed_file", Some(f.as_str())),
        (extra, "kept", "extra_file", Some("notes.txt")),
        (unprocessed, "kept", "not_processed", Some("CATALOGED")),
        (missing, "kept", "object_missing", Some(f_missing.as_str())),
        (
            differs,
            "kept",
            "checksum_differs",
            Some(f_differs.as_str()),
        ),
        (
            uncataloged,
            "kept",
            "not_in_catalog",
            Some(lab.table.as_str()),
        ),
        (recent, "kept", "too_recent", Some("30-day limit")),
    ];
    for (s, action, code, names_it) in expect {
        let f = by_session
            .get(s)
            .unwrap_or_else(|| panic!("{s} not reported: {v:#}"));
        assert_eq!(f["action"], action, "{s}: {f:#}");
        assert_eq!(f["code"], code, "{s}: {f:#}");
        if let Some(word) = names_it {
            let reason = f["reason"].as_str().unwrap();
            assert!(
                reason.contains(word),
                "{s}: reason must name {word}: {reason}"
            );
        }
        assert_eq!(
            path(s).exists(),
            action == "kept",
            "{s} on disk after clean"
        );
    }
    assert_eq!(v["deleted"], 1);
    assert_eq!(v["kept"], 7);
    assert_eq!(v["bytes_freed"], good_bytes);
    // Kept folders are untouched, and S3 is exactly as it was.
    assert!(path(extra).join("notes.txt").is_file());
    assert_eq!(
        lab.raw_objects().await,
        s3_before,
        "clean changed the raw bucket"
    );

    // Running again deletes nothing more.
    let out = lab.clean(&["--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["deleted"], 0, "{v:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_needs_an_age_and_refuses_a_malformed_one() {
    let lab = Lab::new().await;
    let out = lab
        .labpipe()
        .args(["clean", "--older-than", "30 days"])
        .arg(lab.root.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("e.g. 30d"),
        "{}",
        text(&out)
    );
    let out = lab
        .labpipe()
        .arg("clean")
        .arg(lab.root.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}
