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
use labpipe_catalog::{Catalog, SessionItem, Status};
use labpipe_core::Manifest;
use labpipe_sample::{generate, GenerateOptions, GeneratedSession};
use labpipe_tests::{create_catalog_table, labpipe_bin, object_bytes, unique_name, Emulator};
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
        create_catalog_table(&db, &table).await.unwrap();
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
        let key = labpipe_core::layout::manifest_key(session);
        let bytes = object_bytes(&self.s3, &self.raw, &key).await;
        let manifest = Manifest::from_json(&bytes).unwrap();
        let sha = hex::encode(Sha256::digest(&bytes));
        let prefix = format!(
            "s3://{}/{}",
            self.raw,
            labpipe_core::layout::raw_session_prefix(session)
        );
        let mut item = SessionItem::from_manifest(&manifest, &sha, &prefix, Utc::now());
        item.status = status;
        self.catalog.put_new_session(&item).await.unwrap();
    }

    /// The catalog entry ingest would write for revision `n` of `session` (its own raw folder).
    async fn catalog_revision(&self, session: &str, n: u32) {
        let folder = labpipe_core::layout::revision_folder(session, n);
        let key = format!("raw/{folder}/manifest.json");
        let bytes = object_bytes(&self.s3, &self.raw, &key).await;
        let manifest = Manifest::from_json(&bytes).unwrap();
        assert_eq!(manifest.revision_number(), n);
        let sha = hex::encode(Sha256::digest(&bytes));
        let prefix = format!("s3://{}/raw/{folder}/", self.raw);
        let mut item = SessionItem::from_manifest(&manifest, &sha, &prefix, Utc::now());
        item.status = Status::Processed;
        self.catalog.put_revision(&item).await.unwrap();
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
        .key(labpipe_core::layout::raw_key(missing, &f_missing))
        .send()
        .await
        .unwrap();
    // The S3 copy of one file is other bytes of the same size (S3 computes their CRC64NVME).
    let f_differs = data_file(&path(differs));
    let local = std::fs::read(path(differs).join(&f_differs)).unwrap();
    lab.s3
        .put_object()
        .bucket(&lab.raw)
        .key(labpipe_core::layout::raw_key(differs, &f_differs))
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

/// One folder per condition that must keep a folder and that the first test does not break:
/// the catalog verified another manifest, a symbolic link, a manifest without the checksum that
/// proves an object, an upload of the session running on this PC, and a folder holding an
/// earlier revision's bytes. A revised folder that holds the current revision goes. Removing
/// any of these checks from `labpipe-retention` deletes a folder this test wants kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_keeps_every_folder_it_cannot_prove_safe_and_names_the_condition() {
    let lab = Lab::new().await;
    let sessions = lab.record(6, labpipe_sample::default_start(), 21);
    lab.upload();
    let names: Vec<&str> = sessions.iter().map(|s| s.name.as_str()).collect();
    let [unverified, linked, unchecksummed, uploading, old_revision, revised] = names[..] else {
        panic!("expected 6 sessions, got {names:?}")
    };
    let path = |s: &str| lab.root.path().join(s);

    // The catalog verified another manifest than the one in S3 (a second write at the key).
    let key = format!("raw/{unverified}/manifest.json");
    let manifest = Manifest::from_json(&object_bytes(&lab.s3, &lab.raw, &key).await).unwrap();
    let prefix = format!("s3://{}/raw/{unverified}/", lab.raw);
    let mut item = SessionItem::from_manifest(&manifest, &"0".repeat(64), &prefix, Utc::now());
    item.status = Status::Processed;
    lab.catalog.put_new_session(&item).await.unwrap();
    // A symbolic link beside the uploaded files.
    lab.catalog_as(linked, Status::Processed).await;
    let target = path(linked).join(data_file(&path(linked)));
    std::os::unix::fs::symlink(&target, path(linked).join("alias.bin")).unwrap();
    // A manifest of an older client: no CRC64NVME for one file, so its object cannot be proven
    // without downloading it.
    let key = format!("raw/{unchecksummed}/manifest.json");
    let mut manifest: Value =
        serde_json::from_slice(&object_bytes(&lab.s3, &lab.raw, &key).await).unwrap();
    manifest["files"][0]
        .as_object_mut()
        .unwrap()
        .remove("crc64nvme");
    lab.s3
        .put_object()
        .bucket(&lab.raw)
        .key(&key)
        .body(serde_json::to_vec(&manifest).unwrap().into())
        .send()
        .await
        .unwrap();
    lab.catalog_as(unchecksummed, Status::Processed).await;
    // Uploading on this PC: the session's upload lock is held, as `labpipe upload` holds it.
    lab.catalog_as(uploading, Status::Processed).await;
    let locks = labpipe_upload::journal::locks_dir_beside(&lab.home.path().join("journal.sqlite3"));
    let upload_lock = labpipe_upload::SessionLock::acquire(&locks, uploading).unwrap();
    // Two sessions corrected as revision 2: one folder keeps the correction, the other goes back
    // to the first upload's bytes (which are not the current revision's).
    let mut first_bytes = BTreeMap::new();
    for s in [old_revision, revised] {
        let f = path(s).join(data_file(&path(s)));
        let bytes = std::fs::read(&f).unwrap();
        let mtime = std::fs::metadata(&f).unwrap().modified().unwrap();
        std::fs::write(&f, flipped(&bytes)).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&f)
            .unwrap()
            .set_modified(mtime - std::time::Duration::from_secs(3600))
            .unwrap();
        let out = lab
            .labpipe()
            .arg("upload")
            .arg(path(s))
            .args(["--bucket", &lab.raw, "--revise", "--reason", "gain fixed"])
            .output()
            .unwrap();
        assert!(out.status.success(), "upload --revise: {}", text(&out));
        lab.catalog_revision(s, 2).await;
        first_bytes.insert(s, (f, bytes));
    }
    let (f, bytes) = &first_bytes[old_revision];
    std::fs::write(f, bytes).unwrap();

    let s3_before = lab.raw_objects().await;
    let out = lab.clean(&["--json"]);
    drop(upload_lock);
    assert!(out.status.success(), "{}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let by_session: BTreeMap<String, &Value> = v["folders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["session"].as_str().unwrap().to_string(), f))
        .collect();
    let pid = format!("pid {}", std::process::id());
    let old_file = data_file(&path(old_revision));
    let expect = [
        (unverified, "kept", "manifest_not_verified", "0000000000"),
        (linked, "kept", "symlink", "alias.bin"),
        (unchecksummed, "kept", "no_checksum", "no CRC64NVME"),
        (uploading, "kept", "uploading", "uploading on this PC"),
        (uploading, "kept", "uploading", pid.as_str()),
        (old_revision, "kept", "changed_file", old_file.as_str()),
        (revised, "deleted", "verified", "processed"),
    ];
    for (s, action, code, word) in expect {
        let f = by_session
            .get(s)
            .unwrap_or_else(|| panic!("{s} not reported: {v:#}"));
        assert_eq!(f["action"], action, "{s}: {f:#}");
        assert_eq!(f["code"], code, "{s}: {f:#}");
        let reason = f["reason"].as_str().unwrap();
        assert!(
            reason.contains(word),
            "{s}: reason must name {word}: {reason}"
        );
        assert_eq!(
            path(s).exists(),
            action == "kept",
            "{s} on disk after clean"
        );
    }
    assert_eq!(
        lab.raw_objects().await,
        s3_before,
        "clean changed the raw bucket"
    );
}

/// A folder that changes while it is checked (here: one file's modification time moves on all
/// the time, its bytes stay the same, so every check passes) is kept: the folder is listed again
/// right before it would be deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_that_changes_while_it_is_checked_is_kept() {
    let lab = Lab::new().await;
    let sessions = lab.record(1, labpipe_sample::default_start(), 31);
    lab.upload();
    let session = sessions[0].name.clone();
    lab.catalog_as(&session, Status::Processed).await;
    let folder = lab.root.path().join(&session);
    let file = folder.join(data_file(&folder));
    let base = std::fs::metadata(&file).unwrap().modified().unwrap();

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let toucher = {
        let (stop, file) = (stop.clone(), file.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let Ok(f) = std::fs::File::options().write(true).open(&file) else {
                    break; // deleted
                };
                let _ = f.set_modified(base - std::time::Duration::from_secs(n));
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        })
    };
    let out = lab.clean(&["--json"]);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    toucher.join().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let f = &v["folders"][0];
    assert_eq!(f["code"], "changed_while_checking", "{v:#}");
    assert_eq!(f["action"], "kept", "{v:#}");
    assert!(file.is_file(), "the folder was deleted while it changed");
}
