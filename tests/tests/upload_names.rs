//! End-to-end tests of `labpipe upload` when a session's name is already taken in the raw
//! bucket: by another rig's recording of the same second (refused before a byte is sent; a rig
//! id per lab PC is the way), by the same folder changed after its upload (each change named,
//! the printed correction command works), and by an upload cut off before a fix (the advice of
//! every refusal, followed as printed, succeeds; a cut-off correction resumes or takes the next
//! number).
//!
//! Needs the binary: `cargo build -p labpipe-cli` before `cargo test -p labpipe-tests`.

use labpipe_core::machine;
use labpipe_sample::{generate, GenerateOptions};
use labpipe_tests::{labpipe_bin, object_bytes, unique_name, S3Server};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

/// A generated session (every seed records at the same time, 20210301_090000, so two seeds
/// are two rigs' recordings of the same second), in a folder of its own.
fn recording(seed: u64, bytes: u64) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = GenerateOptions::new(dir.path());
    opts.count = 1;
    opts.size_bytes = bytes;
    opts.seed = seed;
    let made = generate(&opts, |_, _| {}).expect("generate sample session");
    let folder = made[0].path.clone();
    (dir, folder)
}

fn name_of(folder: &Path) -> String {
    folder.file_name().unwrap().to_string_lossy().into_owned()
}

/// One bucket and one journal (one lab PC's user) per `Pc`.
struct Pc {
    env: Vec<(&'static str, String)>,
    bucket: String,
    journal: PathBuf,
    host: &'static str,
    _home: tempfile::TempDir,
}

impl Pc {
    fn new(env: Vec<(&'static str, String)>, bucket: &str, host: &'static str) -> Self {
        let home = tempfile::tempdir().unwrap();
        Pc {
            env,
            bucket: bucket.into(),
            journal: home.path().join("journal.sqlite3"),
            host,
            _home: home,
        }
    }

    /// `labpipe …` as this PC runs it: its journal and log folder; the bucket from
    /// `LABPIPE_RAW_BUCKET`, as a configured lab PC has it. The environment names another host
    /// and user, which the manifest must not believe: `uploaded_by` is the OS's (the PCs differ
    /// here by their journals).
    fn labpipe(&self) -> Command {
        let mut cmd = Command::new(labpipe_bin());
        cmd.envs(self.env.clone())
            .env("HOSTNAME", self.host)
            .env("COMPUTERNAME", self.host)
            .env("USER", "not-the-os-user")
            .env("USERNAME", "not-the-os-user")
            .env("LOGNAME", "not-the-os-user")
            .env("LABPIPE_RAW_BUCKET", &self.bucket)
            .env("LABPIPE_JOURNAL", &self.journal)
            .env("LABPIPE_LOG_DIR", self._home.path().join("logs"))
            .env_remove("LABPIPE_RIG");
        cmd
    }

    /// `labpipe upload FOLDER EXTRA…` for people (no `--json`): what a technician reads.
    fn upload(&self, folder: &Path, extra: &[&str]) -> Output {
        self.labpipe()
            .arg("upload")
            .arg(folder)
            .args(["--part-size", "5MiB"])
            .args(extra)
            .output()
            .unwrap()
    }

    /// Runs a command line the CLI printed, with this PC's environment (`labpipe` → the binary).
    fn run_printed(&self, line: &str) -> Output {
        let rest = line
            .strip_prefix("labpipe ")
            .unwrap_or_else(|| panic!("not a labpipe command: {line}"));
        let mut cmd = self.labpipe();
        cmd.env_remove("LABPIPE_RAW_BUCKET");
        Command::new("sh")
            .arg("-c")
            .arg(format!("\"$LABPIPE_BIN\" {rest}"))
            .env("LABPIPE_BIN", labpipe_bin())
            .envs(cmd.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))))
            .env_remove("LABPIPE_RAW_BUCKET")
            .env_remove("LABPIPE_RIG")
            .output()
            .unwrap()
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

/// The correction command a refusal printed (`… run: labpipe upload --revise …`).
fn printed_command(out: &Output) -> String {
    let all = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let at = all
        .find("labpipe upload --revise")
        .unwrap_or_else(|| panic!("no correction command printed:\n{all}"));
    all[at..].lines().next().unwrap().trim_end().to_string()
}

/// Every object under `prefix`: key → ETag.
async fn listing(s3: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> BTreeMap<String, String> {
    let out = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .send()
        .await
        .unwrap();
    out.contents()
        .iter()
        .map(|o| {
            (
                o.key().unwrap().to_string(),
                o.e_tag().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

async fn manifest(s3: &aws_sdk_s3::Client, bucket: &str, folder: &str) -> Value {
    let bytes = object_bytes(s3, bucket, &format!("raw/{folder}/manifest.json")).await;
    serde_json::from_slice(&bytes).unwrap()
}

/// Rewrites a file's bytes in place (same size), dated over an hour ago so the checks do not
/// wait, and at a time of its own per `seed`: as an edit does, it moves the mtime, which is what
/// tells the upload to read the file again rather than trust its journal.
fn rewrite(path: &Path, seed: u8) {
    let mut bytes = std::fs::read(path).unwrap();
    for (i, b) in bytes.iter_mut().enumerate().take(4096) {
        *b = b.wrapping_add(seed).wrapping_add(i as u8);
    }
    std::fs::write(path, &bytes).unwrap();
    age(path, 3600 + 60 * u64::from(seed));
}

fn age(path: &Path, secs: u64) {
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(SystemTime::now() - Duration::from_secs(secs))
        .unwrap();
}

async fn new_bucket(s3: &aws_sdk_s3::Client) -> String {
    let bucket = unique_name("raw");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    bucket
}

/// Item 1: two rigs start a recording in the same second. The second upload under the taken
/// name is refused before any byte is sent, saying who holds it, when, what differs and what to
/// do; with a rig id, rig B uploads beside it, while rig A's folder, uploaded from its PC under
/// the bare name, keeps that name when rig A's PC is given a rig id too.
#[tokio::test(flavor = "multi_thread")]
async fn two_rigs_recording_in_the_same_second_never_mix_and_upload_with_a_rig_id_each() {
    let server = S3Server::Emulator;
    let s3 = server.s3_client().await;
    let bucket = new_bucket(&s3).await;
    let (_a_dir, rig_a) = recording(1, 12_000_000);
    let (_b_dir, rig_b) = recording(2, 9_000_000);
    let session = name_of(&rig_a);
    assert_eq!(name_of(&rig_b), session, "the same second on both rigs");
    let pc_a = Pc::new(server.env(), &bucket, "RIG-A-PC");
    let pc_b = Pc::new(server.env(), &bucket, "RIG-B-PC");

    let out = pc_a.upload(&rig_a, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let prefix = format!("raw/{session}/");
    let first = listing(&s3, &bucket, &prefix).await;
    let m = manifest(&s3, &bucket, &session).await;
    let (os_host, os_user) = (machine::host_name(), machine::user_name());
    assert_eq!(
        m["uploaded_by"],
        serde_json::json!({"host": os_host, "user": os_user}),
        "the OS's host and user, not the environment's"
    );

    // Rig B, no rig id: refused, nothing of it under the taken name.
    let out = pc_b.upload(&rig_b, &[]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    for needle in [
        "a different recording already uses this name",
        format!("from {os_host} (user {os_user}, no rig id)").as_str(),
        "uploaded 20",
        "Nothing was sent",
        "--rig NAME",
        "rec_000.bin",
    ] {
        assert!(said.contains(needle), "{needle:?} missing:\n{said}");
    }
    assert_eq!(
        listing(&s3, &bucket, &prefix).await,
        first,
        "rig B's upload wrote under rig A's session"
    );

    // A rig id on each PC (flag on one, environment on the other): rig A's folder is already
    // uploaded from its PC under the bare name and stays there; rig B's goes up beside it.
    let out = pc_a.upload(&rig_a, &["--rig", "rigA"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        listing(&s3, &bucket, &format!("raw/{session}_rigA")).await,
        BTreeMap::new(),
        "rig A's folder uploaded a second time under the rig id"
    );
    let out = pc_b
        .labpipe()
        .env("LABPIPE_RIG", "rigB")
        .arg("upload")
        .arg(&rig_b)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    for (rig, folder) in [("rigB", &rig_b)] {
        let id = format!("{session}_{rig}");
        let m = manifest(&s3, &bucket, &id).await;
        assert_eq!(m["session"], id.as_str());
        assert_eq!(
            m["recorded_at"], "2021-03-01T09:00:00",
            "time from the date-time part"
        );
        assert_eq!(
            m["uploaded_by"],
            serde_json::json!({"host": os_host, "user": os_user, "rig": rig})
        );
        for f in m["files"].as_array().unwrap() {
            let path = f["path"].as_str().unwrap();
            let got = object_bytes(&s3, &bucket, &format!("raw/{id}/{path}")).await;
            assert_eq!(
                got,
                std::fs::read(folder.join(path)).unwrap(),
                "{id}/{path}"
            );
        }
    }
    assert_eq!(
        listing(&s3, &bucket, &prefix).await,
        first,
        "rig A's first upload unchanged"
    );
    // A bad rig id is refused with the rule.
    let out = pc_b.upload(&rig_b, &["--rig", "rig_B"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("letters, digits or '-'"),
        "{}",
        text(&out)
    );
}

/// Item 2: files added, removed and changed after an upload are each named, nothing is sent,
/// and the printed correction command uploads the folder as it is now; a later plain upload
/// finds it already uploaded.
#[tokio::test(flavor = "multi_thread")]
async fn a_folder_changed_after_its_upload_names_each_change_and_the_printed_command_corrects_it() {
    let server = S3Server::Emulator;
    let s3 = server.s3_client().await;
    let bucket = new_bucket(&s3).await;
    let (_dir, folder) = recording(3, 12_000_000);
    let session = name_of(&folder);
    let pc = Pc::new(server.env(), &bucket, "LAB-PC");
    let out = pc.upload(&folder, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let before = listing(&s3, &bucket, "raw/").await;

    std::fs::copy(folder.join("rec_003.bin"), folder.join("rec_004.bin")).unwrap();
    age(&folder.join("rec_004.bin"), 3600);
    std::fs::remove_file(folder.join("rec_002.bin")).unwrap();
    rewrite(&folder.join("rec_001.bin"), 7);

    let out = pc.upload(&folder, &[]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    for needle in [
        "changed since upload",
        "added rec_004.bin",
        "removed rec_002.bin",
        "changed rec_001.bin",
        "Nothing was sent",
        format!("from {}", machine::host_name()).as_str(),
    ] {
        assert!(said.contains(needle), "{needle:?} missing:\n{said}");
    }
    assert_eq!(
        listing(&s3, &bucket, "raw/").await,
        before,
        "something was sent"
    );

    let command = printed_command(&out);
    let out = pc.run_printed(&command);
    assert!(out.status.success(), "{command}\n{}", text(&out));
    let m = manifest(&s3, &bucket, &format!("{session}.r2")).await;
    assert_eq!(m["revision"]["number"], 2, "{m}");
    let paths: Vec<&str> = m["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            "metadata.txt",
            "rec_000.bin",
            "rec_001.bin",
            "rec_003.bin",
            "rec_004.bin"
        ]
    );

    // The folder as it is now is the session's latest revision: nothing to do.
    let out = pc.upload(&folder, &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("already"),
        "{}",
        text(&out)
    );
}

/// An upload cut off after every file went up, right before its manifest (the last write):
/// what a kill or a lost network leaves. The manifest is taken away behind the test's back.
async fn cut_before_the_manifest(s3: &aws_sdk_s3::Client, bucket: &str, folder: &str) {
    s3.delete_object()
        .bucket(bucket)
        .key(format!("raw/{folder}/manifest.json"))
        .send()
        .await
        .unwrap();
}

/// Item 3: an upload cut off after its files went up, then a fix to one of them. The plain
/// upload refuses with a command; that command succeeds. A correction cut off in turn resumes
/// when the folder is unchanged, and takes the next number when it changed again — the same
/// printed command succeeds every time, never a loop.
#[tokio::test(flavor = "multi_thread")]
async fn a_cut_upload_then_a_fix_always_has_a_way_forward_by_the_printed_command() {
    let server = S3Server::Emulator;
    let s3 = server.s3_client().await;
    let bucket = new_bucket(&s3).await;
    let (_dir, folder) = recording(4, 12_000_000);
    let session = name_of(&folder);
    let pc = Pc::new(server.env(), &bucket, "LAB-PC");
    let fix = folder.join("rec_001.bin");

    let out = pc.upload(&folder, &[]);
    assert!(out.status.success(), "{}", text(&out));
    cut_before_the_manifest(&s3, &bucket, &session).await;
    rewrite(&fix, 9);

    let out = pc.upload(&folder, &[]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("changed rec_001.bin") && said.contains("cut off"),
        "{said}"
    );
    let command = printed_command(&out);
    let out = pc.run_printed(&command);
    assert!(out.status.success(), "{command}\n{}", text(&out));
    let m = manifest(&s3, &bucket, &format!("{session}.r2")).await;
    assert_eq!(m["revision"]["number"], 2);

    // A second fix; its correction is cut off, then run again as printed: it resumes (r3).
    rewrite(&fix, 11);
    let out = pc.upload(&folder, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let command = printed_command(&out);
    let out = pc.run_printed(&command);
    assert!(out.status.success(), "{command}\n{}", text(&out));
    cut_before_the_manifest(&s3, &bucket, &format!("{session}.r3")).await;
    let out = pc.run_printed(&command);
    assert!(out.status.success(), "{command}\n{}", text(&out));
    assert_eq!(
        manifest(&s3, &bucket, &format!("{session}.r3")).await["revision"]["number"],
        3
    );

    // A third fix; its correction is cut off, the file fixed once more, the same command run
    // again: the cut correction's differing objects are left, the next number taken (r5).
    rewrite(&fix, 13);
    let out = pc.upload(&folder, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let command = printed_command(&out);
    let out = pc.run_printed(&command);
    assert!(out.status.success(), "{command}\n{}", text(&out));
    cut_before_the_manifest(&s3, &bucket, &format!("{session}.r4")).await;
    rewrite(&fix, 15);
    let out = pc.run_printed(&command);
    assert!(out.status.success(), "{command}\n{}", text(&out));
    let r4 = listing(&s3, &bucket, &format!("raw/{session}.r4/")).await;
    assert!(
        !r4.is_empty() && !r4.contains_key(&format!("raw/{session}.r4/manifest.json")),
        "{r4:?}\n{}",
        text(&out)
    );
    let m = manifest(&s3, &bucket, &format!("{session}.r5")).await;
    assert_eq!(m["revision"]["number"], 5, "{m}");
    let got = object_bytes(&s3, &bucket, &format!("raw/{session}.r5/rec_001.bin")).await;
    assert_eq!(got, std::fs::read(&fix).unwrap());
    // And the folder as it is now is the latest revision: a plain upload has nothing to do.
    let out = pc.upload(&folder, &[]);
    assert!(out.status.success(), "{}", text(&out));
}

/// `labpipe check` names a folder as the upload with the same rig id names it (`--rig`,
/// `LABPIPE_RIG`), so what a technician reads in the check is the session id that goes up.
#[test]
fn check_names_the_session_as_the_upload_with_a_rig_id_does() {
    let (_dir, folder) = recording(3, 2_000_000);
    let bare = name_of(&folder);
    let journal = tempfile::tempdir().unwrap();
    let check = |rig_flag: Option<&str>, rig_env: Option<&str>| -> Value {
        let mut cmd = Command::new(labpipe_bin());
        cmd.env_remove("LABPIPE_RIG")
            .env("LABPIPE_JOURNAL", journal.path().join("journal.sqlite3"))
            .args(["check", "--json"]);
        if let Some(r) = rig_flag {
            cmd.args(["--rig", r]);
        }
        if let Some(r) = rig_env {
            cmd.env("LABPIPE_RIG", r);
        }
        let out = cmd.arg(&folder).output().unwrap();
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)))
    };
    assert_eq!(check(None, None)[0]["session"], bare.as_str());
    assert_eq!(
        check(Some("rigB"), None)[0]["session"],
        format!("{bare}_rigB").as_str()
    );
    assert_eq!(
        check(None, Some("rigC"))[0]["session"],
        format!("{bare}_rigC").as_str()
    );
}

/// A rig id set on a lab PC after it uploaded without one: every folder it already uploaded
/// keeps its bare session name (`labpipe check` says so, the upload sends nothing new), and only
/// a folder never uploaded from this PC is uploaded as `<date-time>_<rig>`.
#[tokio::test(flavor = "multi_thread")]
async fn a_rig_id_set_after_uploads_renames_only_folders_never_uploaded() {
    let server = S3Server::Emulator;
    let s3 = server.s3_client().await;
    let bucket = new_bucket(&s3).await;
    let lab = tempfile::tempdir().unwrap();
    let generate_at = |seed: u64, hour: u32| -> String {
        let mut opts = GenerateOptions::new(lab.path());
        opts.count = 1;
        opts.size_bytes = 2_000_000;
        opts.seed = seed;
        opts.start = labpipe_sample::default_start()
            .date()
            .and_hms_opt(hour, 0, 0)
            .unwrap();
        generate(&opts, |_, _| {}).expect("generate sample session")[0]
            .name
            .clone()
    };
    let old = generate_at(1, 9);
    let pc = Pc::new(server.env(), &bucket, "RIG-B-PC");
    let out = pc.upload(lab.path(), &[]);
    assert!(out.status.success(), "{}", text(&out));
    let before = listing(&s3, &bucket, "raw/").await;
    assert!(before.contains_key(&format!("raw/{old}/manifest.json")));

    let new = generate_at(2, 10);
    assert_ne!(new, old);
    let out = pc
        .labpipe()
        .args(["check", "--json", "--rig", "rigB"])
        .arg(lab.path())
        .output()
        .unwrap();
    let checked: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    let names: Vec<&str> = checked
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["session"].as_str().unwrap())
        .collect();
    assert_eq!(names, [old.clone(), format!("{new}_rigB")], "{checked}");

    let out = pc.upload(lab.path(), &["--rig", "rigB"]);
    assert!(out.status.success(), "{}", text(&out));
    let after = listing(&s3, &bucket, "raw/").await;
    assert!(
        !after
            .keys()
            .any(|k| k.starts_with(&format!("raw/{old}_rigB"))),
        "the folder uploaded before the rig id went up again: {:?}",
        after.keys().collect::<Vec<_>>()
    );
    for (key, etag) in &before {
        assert_eq!(after.get(key), Some(etag), "{key} changed");
    }
    let m = manifest(&s3, &bucket, &format!("{new}_rigB")).await;
    assert_eq!(m["session"], format!("{new}_rigB").as_str());
    assert_eq!(
        after.keys().filter(|k| !before.contains_key(*k)).count(),
        m["files"].as_array().unwrap().len() + 1,
        "only the new folder's files and manifest are new: {:?}",
        after.keys().collect::<Vec<_>>()
    );
}
