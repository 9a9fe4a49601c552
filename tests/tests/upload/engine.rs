//! The engine as the desktop app uses it (`Upload::connect` + the default journal) next to the
//! `labpipe` CLI: one journal per machine user, one uploader per session, and what each object
//! costs in requests.
//!
//! "The app" here is a second process: this test binary run again with only
//! [`library_upload_child`] selected, under the HOME and XDG folders of its test, so
//! `Journal::default_path()` is resolved exactly as a program started by that user would.

use super::*;
use labpipe_core::check::check_folder;
use labpipe_core::{LabSchema, SessionReport};
use labpipe_tests::RequestCount;
use labpipe_upload::{Event, Journal, SessionOutcome, Upload, UploadError, UploadOptions};
use std::sync::Arc;

/// A user's home on this machine: HOME and XDG data folder, so the CLI and the engine both find
/// the default journal at `<xdg data>/labpipe/upload-journal.sqlite3`.
struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn env(&self) -> Vec<(&'static str, PathBuf)> {
        vec![
            ("HOME", self.dir.path().to_path_buf()),
            ("XDG_DATA_HOME", self.dir.path().join("data")),
            ("XDG_CONFIG_HOME", self.dir.path().join("config")),
            ("XDG_STATE_HOME", self.dir.path().join("state")),
            ("XDG_CACHE_HOME", self.dir.path().join("cache")),
        ]
    }

    /// Where the default journal must be for this user (Linux layout).
    fn journal(&self) -> PathBuf {
        self.dir.path().join("data/labpipe/upload-journal.sqlite3")
    }

    /// `labpipe upload` with the default journal (no `--journal`, no `LABPIPE_JOURNAL`).
    fn cli(&self, fx: &Fixture, bucket: &str, extra: &[&str]) -> Command {
        let mut cmd = Command::new(labpipe_bin());
        cmd.envs(fx.env())
            .envs(self.env())
            .env_remove("LABPIPE_JOURNAL")
            .env_remove("LABPIPE_RAW_BUCKET")
            .env("LABPIPE_LOG_DIR", self.dir.path().join("logs"))
            .arg("upload")
            .arg(&fx.folder)
            .args([
                "--bucket",
                bucket,
                "--json",
                "--part-size",
                "5MiB",
                "--concurrency",
                &CONCURRENCY.to_string(),
            ])
            .args(extra);
        cmd
    }

    /// The engine in a second process, as the app runs it: `Upload::connect` with the journal at
    /// `Journal::default_path()`. Prints one JSON line with the result.
    fn library(&self, fx: &Fixture, bucket: &str) -> Command {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.envs(fx.env())
            .envs(self.env())
            .env_remove("LABPIPE_JOURNAL")
            .env("LABPIPE_TEST_CHILD_FOLDER", &fx.folder)
            .env("LABPIPE_TEST_CHILD_BUCKET", bucket)
            .args([
                "--exact",
                "engine::library_upload_child",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ]);
        cmd
    }
}

/// The session checked as `labpipe upload` checks it: with the lab schema found beside it.
fn report(folder: &Path) -> SessionReport {
    let schema = LabSchema::discover(folder)
        .map(|p| LabSchema::load(&p).expect("load the lab schema"))
        .unwrap_or_default();
    check_folder(folder, &schema).expect("check the session")
}

fn options() -> UploadOptions {
    UploadOptions {
        part_size: PART,
        concurrency: CONCURRENCY as usize,
        max_bandwidth: None,
        ..UploadOptions::default()
    }
}

/// The child side of [`Home::library`]; does nothing unless started by it.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "run as a child process by the engine tests"]
async fn library_upload_child() {
    let Some(folder) = std::env::var_os("LABPIPE_TEST_CHILD_FOLDER") else {
        return;
    };
    let bucket = std::env::var("LABPIPE_TEST_CHILD_BUCKET").unwrap();
    let sdk = aws_config::load_from_env().await;
    let s3 = labpipe_upload::s3_client(&sdk, &labpipe_upload::ClientOptions::default());
    let path = Journal::default_path();
    let journal = Arc::new(Journal::open(&path).unwrap());
    let upload = Upload::connect(s3, bucket, options(), journal, None)
        .await
        .unwrap();
    let line = match upload.session(&report(Path::new(&folder))).await {
        Ok(r) => serde_json::json!({
            "journal": path,
            "ok": true,
            "outcome": format!("{:?}", r.outcome),
            "bytes_total": r.bytes_total,
            "bytes_sent": r.bytes_sent,
            "bytes_resumed": r.bytes_resumed,
        }),
        Err(e) => serde_json::json!({
            "journal": path,
            "ok": false,
            "code": e.code(),
            "reason": e.to_string(),
        }),
    };
    println!("LIBRARY-RESULT {line}");
}

/// The result line a [`Home::library`] child printed.
fn library_result(out: &Output) -> Value {
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find_map(|l| l.split_once("LIBRARY-RESULT ").map(|(_, r)| r))
        .unwrap_or_else(|| {
            panic!(
                "the library child printed no result:\n{text}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    serde_json::from_str(line).unwrap()
}

/// Starts `cmd` with piped stdout and reads its JSON lines until `until` accepts one; returns
/// the child, the lines seen so far and a reader thread that collects the rest.
fn start_until(
    mut cmd: Command,
    until: impl Fn(&Value) -> bool,
) -> (
    std::process::Child,
    Vec<Value>,
    std::thread::JoinHandle<Vec<Value>>,
) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok);
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let Ok(e) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        let stop = until(&e);
        seen.push(e);
        if stop {
            break;
        }
    }
    let rest = std::thread::spawn(move || {
        lines
            .filter_map(|l| serde_json::from_str::<Value>(&l).ok())
            .collect()
    });
    (child, seen, rest)
}

/// A part of a multipart file is acknowledged (bytes done, file not complete).
fn mid_multipart(e: &Value) -> bool {
    e["event"] == "file_progress"
        && e["bytes_total"].as_u64() > Some(PART)
        && e["bytes_done"].as_u64() < e["bytes_total"].as_u64()
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_killed_mid_way_then_the_apps_engine_resumes_from_the_same_journal() {
    let fx = Fixture::new(30_000_000, 91).await;
    let run = Run::new(&fx.s3).await;
    let home = Home::new();
    // Slow enough that the kill lands inside the upload.
    let (mut cli, seen, rest) = start_until(
        home.cli(&fx, &run.bucket, &["--max-bandwidth", "6MB"]),
        mid_multipart,
    );
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(cli.id() as i32, libc::SIGKILL) };
    cli.wait().unwrap();
    let mut first = seen;
    first.extend(rest.join().unwrap());
    let acked: u64 = acknowledged(&first).values().sum();
    assert!(acked > 0, "the kill came before any part: {first:?}");
    assert!(
        home.journal().is_file(),
        "the CLI kept no journal at the default path {}",
        home.journal().display()
    );

    let out = home.library(&fx, &run.bucket).output().unwrap();
    let r = library_result(&out);
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(
        r["journal"].as_str().map(PathBuf::from),
        Some(home.journal()),
        "the engine's default journal is the CLI's"
    );
    let total = r["bytes_total"].as_u64().unwrap();
    let sent = r["bytes_sent"].as_u64().unwrap();
    let resumed = r["bytes_resumed"].as_u64().unwrap();
    let bound = total - acked.min(total) + CONCURRENCY * PART;
    eprintln!("killed after {acked} bytes acknowledged; the engine sent {sent}, resumed {resumed} of {total}");
    assert!(
        sent <= bound,
        "re-sent too much: sent {sent}, acknowledged before the kill {acked}, total {total}, bound {bound}"
    );
    assert!(
        resumed > 0,
        "the engine resumed nothing of the CLI's parts: {r}"
    );
    assert_objects_equal_local(&fx.s3, &run.bucket, &fx.folder).await;
    assert_only_unrecorded_uploads_left(&fx.s3, &run.bucket, &fx.folder, &home.journal()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_cli_of_the_same_session_says_who_holds_it_and_aborts_nothing() {
    let fx = Fixture::new(30_000_000, 92).await;
    let run = Run::new(&fx.s3).await;
    let home = Home::new();
    let (mut first, _seen, rest) = start_until(
        home.cli(&fx, &run.bucket, &["--max-bandwidth", "10MB"]),
        mid_multipart,
    );
    let second = home.cli(&fx, &run.bucket, &[]).output().unwrap();
    let status = first.wait().unwrap();
    rest.join().unwrap();
    assert_eq!(second.status.code(), Some(1));
    let failed = events_named(&second.stdout, "session_failed");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["code"], "locked", "{}", failed[0]);
    let reason = failed[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains(&format!("pid {}", first.id())) && reason.contains("labpipe"),
        "the reason names the holder: {reason}"
    );
    assert_eq!(
        failed[0]["bytes_sent"], 0,
        "the second sent nothing: {}",
        failed[0]
    );
    assert!(status.success(), "the first uploader failed: {status}");
    assert_remote_equals_local(&fx.s3, &run.bucket, &fx.folder).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_apps_engine_meets_a_running_cli_with_who_holds_the_session() {
    let fx = Fixture::new(30_000_000, 93).await;
    let run = Run::new(&fx.s3).await;
    let home = Home::new();
    let (mut cli, _seen, rest) = start_until(
        home.cli(&fx, &run.bucket, &["--max-bandwidth", "10MB"]),
        mid_multipart,
    );
    let out = home.library(&fx, &run.bucket).output().unwrap();
    let r = library_result(&out);
    let status = cli.wait().unwrap();
    rest.join().unwrap();
    assert_eq!(r["ok"], false, "{r}");
    assert_eq!(r["code"], "locked", "{r}");
    assert!(
        r["reason"]
            .as_str()
            .unwrap()
            .contains(&format!("pid {}", cli.id())),
        "{r}"
    );
    assert!(status.success(), "the CLI failed: {status}");
    assert_remote_equals_local(&fx.s3, &run.bucket, &fx.folder).await;
    // Once the CLI is done, the engine finds everything there.
    let r = library_result(&home.library(&fx, &run.bucket).output().unwrap());
    assert_eq!(
        (r["ok"].as_bool(), r["outcome"].as_str()),
        (Some(true), Some("AlreadyUploaded")),
        "{r}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_clis_with_different_journals_half_a_second_apart_both_finish_without_aborting_each_other(
) {
    // No shared lock (different journals, as two users of one machine would have): each sees
    // the other's multipart uploads as not its own and leaves them alone; the conditional writes
    // decide who writes each object, and the other finds the same bytes there.
    let fx = Fixture::new(30_000_000, 94).await;
    let run = Run::new(&fx.s3).await;
    let (a, b) = (Home::new(), Home::new());
    let first = a
        .cli(&fx, &run.bucket, &["--max-bandwidth", "20MB"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let second = b
        .cli(&fx, &run.bucket, &["--max-bandwidth", "20MB"])
        .output()
        .unwrap();
    let first = first.wait_with_output().unwrap();
    for (name, out) in [("first", &first), ("second", &second)] {
        assert!(
            out.status.success(),
            "the {name} uploader failed: {:?}\n{}",
            events_named(&out.stdout, "session_failed"),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_remote_equals_local(&fx.s3, &run.bucket, &fx.folder).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_tasks_of_one_engine_on_one_session_one_uploads_the_other_is_refused() {
    let fx = Fixture::new(30_000_000, 95).await;
    let run = Run::new(&fx.s3).await;
    let journal = Arc::new(Journal::open(&run.journal).unwrap());
    let mut opts = options();
    opts.max_bandwidth = Some(20_000_000);
    let upload = Upload::connect(fx.s3.clone(), &run.bucket, opts, journal, None)
        .await
        .unwrap();
    let report = report(&fx.folder);
    let (a, b) = tokio::join!(upload.session(&report), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        upload.session(&report).await
    });
    assert!(a.is_ok(), "{a:?}");
    match b {
        Err(UploadError::Locked { holder, .. }) => {
            assert!(
                holder.contains(&format!("pid {}", std::process::id())),
                "{holder}"
            )
        }
        other => panic!("the second task was not refused: {other:?}"),
    }
    assert_remote_equals_local(&fx.s3, &run.bucket, &fx.folder).await;
}

/// Uploads `folder` with the engine through a counting client, then again; prints requests per
/// object and returns (first run, re-run) counts.
async fn count_requests(
    fx: &Fixture,
    part_size: u64,
    label: &str,
) -> (
    BTreeMap<&'static str, u64>,
    BTreeMap<&'static str, u64>,
    usize,
) {
    let run = Run::new(&fx.s3).await;
    let count = RequestCount::default();
    let s3 = count.attach(&fx.s3);
    let journal = Arc::new(Journal::open(&run.journal).unwrap());
    let opts = UploadOptions {
        part_size,
        concurrency: CONCURRENCY as usize,
        max_bandwidth: None,
        ..UploadOptions::default()
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let upload = Upload::connect(s3, &run.bucket, opts, journal, Some(tx))
        .await
        .unwrap();
    let report = report(&fx.folder);
    let files = report.files.len();
    count.reset();
    let before = upload.request_tally();
    let first = upload.session(&report).await.unwrap();
    assert_eq!(first.outcome, SessionOutcome::Uploaded);
    let fresh = count.by_operation();
    // The engine's own count (its interceptor) is the requests this test's interceptor saw, and
    // it settled every file and the manifest.
    let after = upload.request_tally();
    assert_eq!(
        after.requests - before.requests,
        fresh.values().sum::<u64>(),
        "the engine's request count against an independent one: {fresh:?}"
    );
    assert_eq!(after.objects - before.objects, files as u64 + 1);
    count.reset();
    let again = upload.session(&report).await.unwrap();
    assert_eq!(again.outcome, SessionOutcome::AlreadyUploaded);
    let rerun = count.by_operation();
    drop(upload);
    let mut verified = 0;
    while let Ok(e) = rx.try_recv() {
        verified += matches!(e, Event::FileVerified { .. }) as usize;
    }
    assert_eq!(verified, 2 * files, "every file verified in both runs");
    assert_remote_equals_local(&fx.s3, &run.bucket, &fx.folder).await;
    let objects = files + 1; // and the manifest
    for (run, counts) in [("first upload", &fresh), ("re-run", &rerun)] {
        let total: u64 = counts.values().sum();
        eprintln!(
            "{label}, {run}: {total} requests for {objects} objects ({:.2} per object): {counts:?}",
            total as f64 / objects as f64
        );
    }
    (fresh, rerun, files)
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_per_object_come_from_one_listing_and_the_write_answers() {
    // Small files: every file fits one PutObject.
    let fx = Fixture::new(40_000_000, 96).await;
    let (fresh, rerun, files) = count_requests(&fx, 64 * MIB, "single-part session").await;
    let files = files as u64;
    let n = |m: &BTreeMap<&str, u64>, op| m.get(op).copied().unwrap_or(0);
    assert_eq!(n(&fresh, "HeadObject"), 0, "no HEAD per file: {fresh:?}");
    assert_eq!(n(&fresh, "PutObject"), files + 1, "{fresh:?}");
    // One listing: no multipart upload of ours is open, so in-progress uploads are not listed.
    assert_eq!(n(&fresh, "ListObjectsV2"), 1, "{fresh:?}");
    assert_eq!(n(&fresh, "ListMultipartUploads"), 0, "{fresh:?}");
    // Every small object costs its PutObject and nothing else; the session's listing is the
    // only extra request: (files + 2) / (files + 1) requests per object, at most 2.
    assert_eq!(fresh.values().sum::<u64>(), files + 2, "{fresh:?}");
    let per_object = fresh.values().sum::<u64>() as f64 / (files + 1) as f64;
    assert!(
        per_object <= 2.0,
        "{per_object:.2} requests per small object"
    );
    // A re-run proves every object from the listing and the journal: list, read manifest.
    assert_eq!(rerun.values().sum::<u64>(), 2, "{rerun:?}");

    // Parts: 5 MiB parts of ~8 MB data files.
    let fx = Fixture::new(30_000_000, 97).await;
    let (fresh, rerun, _) = count_requests(&fx, PART, "multipart session").await;
    // AWS returns the full-object checksum from CompleteMultipartUpload; where a server does
    // not (the emulator), one HEAD per completed multipart object reads it back — never more.
    assert!(
        n(&fresh, "HeadObject") <= n(&fresh, "CompleteMultipartUpload"),
        "HEAD only after a completion without a checksum: {fresh:?}"
    );
    assert_eq!(rerun.values().sum::<u64>(), 2, "{rerun:?}");
}
