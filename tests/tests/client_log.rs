//! End-to-end: `labpipe upload` reports the lab side to the stack's client log group (CloudWatch
//! Logs on this suite's emulator): its status changes arrive as JSON in one stream per lab PC and
//! user; with CloudWatch unreachable the upload still succeeds and the records wait in the spool
//! beside the journal; the next run sends them; a full spool drops the oldest and says how many.
//!
//! Needs the binary: `cargo build -p labpipe-cli` before `cargo test -p labpipe-tests`.

use aws_sdk_cloudwatchlogs::Client as Logs;
use labpipe_sample::{generate, GenerateOptions};
use labpipe_tests::{labpipe_bin, unique_name, Emulator};
use serde_json::Value;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Lab {
    bucket: String,
    group: String,
    /// The OS user the upload runs as (its stream is `<host>/<user>`, in a log group of this
    /// test's own; the user name comes from the OS, not from `USER`).
    user: String,
    dir: tempfile::TempDir,
}

impl Lab {
    async fn new(emulator: &Emulator, sessions: usize, broken: bool) -> (Lab, Logs) {
        let s3 = emulator.s3_client().await;
        let bucket = unique_name("raw");
        s3.create_bucket().bucket(&bucket).send().await.unwrap();
        let logs = Logs::new(&emulator.sdk_config().await);
        let group = format!("/labpipe/{}/clients", unique_name("stack"));
        logs.create_log_group()
            .log_group_name(&group)
            .send()
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut opts = GenerateOptions::new(dir.path().join("lab"));
        opts.count = sessions;
        opts.size_bytes = 300_000;
        opts.broken = broken;
        generate(&opts, |_, _| {}).expect("generate sessions");
        let lab = Lab {
            bucket,
            group,
            user: labpipe_core::machine::user_name(),
            dir,
        };
        (lab, logs)
    }

    fn folder(&self) -> PathBuf {
        self.dir.path().join("lab")
    }

    fn journal(&self) -> PathBuf {
        self.dir.path().join("state").join("journal.sqlite3")
    }

    fn spool(&self) -> PathBuf {
        self.dir.path().join("state").join("client-log.sqlite3")
    }

    fn upload(&self, emulator: &Emulator, extra_env: &[(&str, String)]) -> Output {
        Command::new(labpipe_bin())
            .envs(emulator.env())
            .env("LABPIPE_JOURNAL", self.journal())
            .env("LABPIPE_LOG_DIR", self.dir.path().join("logs"))
            .env("LABPIPE_CLIENT_LOG_GROUP", &self.group)
            .env_remove("LABPIPE_RAW_BUCKET")
            .env_remove("LABPIPE_CLIENT_LOG_MAX_RECORDS")
            .envs(extra_env.iter().map(|(k, v)| (*k, v.as_str())))
            .arg("upload")
            .arg(self.folder())
            .args(["--bucket", &self.bucket, "--json"])
            .output()
            .expect("run labpipe upload")
    }

    /// The records in the group: (stream name, message), oldest first per stream.
    async fn records(&self, logs: &Logs) -> Vec<(String, Value)> {
        let streams = logs
            .describe_log_streams()
            .log_group_name(&self.group)
            .send()
            .await
            .unwrap();
        let mut out = Vec::new();
        for s in streams.log_streams() {
            let name = s.log_stream_name().unwrap().to_string();
            let events = logs
                .get_log_events()
                .log_group_name(&self.group)
                .log_stream_name(&name)
                .start_from_head(true)
                .send()
                .await
                .unwrap();
            for e in events.events() {
                let v: Value = serde_json::from_str(e.message().unwrap())
                    .unwrap_or_else(|err| panic!("not one JSON object ({err}): {:?}", e.message()));
                out.push((name.clone(), v));
            }
        }
        out
    }
}

fn spooled(path: &Path) -> u64 {
    labpipe_clientlog::Spool::open(path, u64::MAX)
        .unwrap()
        .len()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn json_events(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A CloudWatch Logs endpoint nobody listens on; S3 still goes to the emulator.
fn logs_unreachable() -> (&'static str, String) {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    (
        "AWS_ENDPOINT_URL_CLOUDWATCH_LOGS",
        format!("http://127.0.0.1:{port}"),
    )
}

fn kinds_of<'a>(records: &'a [(String, Value)], session: &str) -> Vec<&'a str> {
    records
        .iter()
        .filter(|(_, v)| v["session"] == session)
        .map(|(_, v)| v["kind"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn an_upload_sends_its_status_changes_and_rejections_to_the_lab_pcs_stream() {
    let emulator = Emulator::shared();
    let (lab, logs) = Lab::new(emulator, 1, true).await;
    let out = lab.upload(emulator, &[]);
    let events = json_events(&out);
    let uploaded: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "session_done")
        .map(|e| e["session"].as_str().unwrap())
        .collect();
    let refused: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "session_refused")
        .map(|e| e["session"].as_str().unwrap())
        .collect();
    assert_eq!(uploaded.len(), 1, "{events:?}\n{}", stderr(&out));
    assert!(
        !refused.is_empty(),
        "the broken sessions are refused: {events:?}"
    );

    let records = lab.records(&logs).await;
    let streams: std::collections::BTreeSet<&str> =
        records.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(
        streams.len(),
        1,
        "one stream per lab PC and user: {streams:?}"
    );
    assert!(
        streams
            .iter()
            .all(|s| s.ends_with(&format!("/{}", lab.user))),
        "{streams:?}"
    );
    assert_eq!(
        kinds_of(&records, uploaded[0]),
        ["DETECTED", "CHECKED", "UPLOADING", "UPLOADED"],
        "{records:?}"
    );
    let folder = lab.folder().display().to_string();
    for (_, v) in &records {
        assert_eq!(v["lab_folder"], folder.as_str(), "{v}");
        assert_eq!(v["user"], lab.user.as_str());
        assert!(v["host"].as_str().is_some_and(|h| !h.is_empty()));
        assert!(chrono::DateTime::parse_from_rfc3339(v["time"].as_str().unwrap()).is_ok());
    }
    for session in &refused {
        let kinds = kinds_of(&records, session);
        assert_eq!(kinds, ["DETECTED", "REJECTED"], "{session}: {records:?}");
        let rejected = records
            .iter()
            .find(|(_, v)| v["session"] == *session && v["kind"] == "REJECTED")
            .unwrap();
        let reason = rejected.1["reason"].as_str().unwrap();
        assert!(reason.starts_with("verdict "), "{reason}");
    }
    assert_eq!(spooled(&lab.spool()), 0, "everything sent leaves the spool");
}

#[tokio::test]
async fn with_cloudwatch_unreachable_the_upload_succeeds_and_the_next_run_sends_the_records() {
    let emulator = Emulator::shared();
    let (lab, logs) = Lab::new(emulator, 1, false).await;
    let started = std::time::Instant::now();
    let out = lab.upload(emulator, &[logs_unreachable()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(45),
        "an unreachable log endpoint must not hold the upload up: {:?}",
        started.elapsed()
    );
    let manifests = json_events(&out)
        .iter()
        .filter(|e| e["event"] == "session_done" && e["outcome"] == "uploaded")
        .count();
    assert_eq!(manifests, 1);
    assert!(
        stderr(&out).contains("client log records wait"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        spooled(&lab.spool()),
        4,
        "DETECTED, CHECKED, UPLOADING, UPLOADED"
    );
    assert!(lab.records(&logs).await.is_empty());

    let again = lab.upload(emulator, &[]);
    assert!(again.status.success(), "{}", stderr(&again));
    let records = lab.records(&logs).await;
    let kinds: Vec<&str> = records
        .iter()
        .map(|(_, v)| v["kind"].as_str().unwrap())
        .collect();
    // The first run's four records, then the second run's (its session is already uploaded).
    assert_eq!(
        &kinds[..4],
        ["DETECTED", "CHECKED", "UPLOADING", "UPLOADED"]
    );
    assert!(kinds[4..].contains(&"UPLOADED"), "{kinds:?}");
    assert!(records
        .iter()
        .any(|(_, v)| v["reason"] == "already uploaded"));
    assert_eq!(spooled(&lab.spool()), 0);
}

#[tokio::test]
async fn a_full_spool_keeps_the_newest_records_and_reports_the_dropped_count() {
    let emulator = Emulator::shared();
    let (lab, logs) = Lab::new(emulator, 2, false).await;
    let cap = ("LABPIPE_CLIENT_LOG_MAX_RECORDS", "3".to_string());
    let first = lab.upload(emulator, &[logs_unreachable(), cap.clone()]);
    assert!(first.status.success(), "{}", stderr(&first));
    assert_eq!(spooled(&lab.spool()), 3, "the cap holds");
    let second = lab.upload(emulator, &[cap]);
    assert!(second.status.success(), "{}", stderr(&second));

    // Records each run wrote: DETECTED + CHECKED per session, one per status event.
    let written = |out: &Output| {
        2 * 2
            + json_events(out)
                .iter()
                .filter(|e| {
                    ["session_started", "session_done", "session_failed"]
                        .contains(&e["event"].as_str().unwrap_or_default())
                })
                .count() as u64
    };
    let total = written(&first) + written(&second);
    let records = lab.records(&logs).await;
    let kept: Vec<&Value> = records
        .iter()
        .map(|(_, v)| v)
        .filter(|v| v["kind"] != "DROPPED")
        .collect();
    let dropped: Vec<&Value> = records
        .iter()
        .map(|(_, v)| v)
        .filter(|v| v["kind"] == "DROPPED")
        .collect();
    assert_eq!(kept.len(), 3, "{records:?}");
    assert_eq!(dropped.len(), 1, "{records:?}");
    assert_eq!(dropped[0]["count"].as_u64(), Some(total - 3), "{records:?}");
    assert_eq!(kept[2]["kind"], "UPLOADED", "the newest are kept: {kept:?}");
    assert_eq!(spooled(&lab.spool()), 0);
}
