//! End-to-end tests of `labpipe upload` against this suite's own emulator.
//!
//! What matters about raw recordings is proven from the outside, as a user would see it: bytes
//! downloaded back are identical, a kill -9 at any moment is healed by running the command again
//! (without re-sending more than the parts in flight), a flaky network does not corrupt or lose
//! anything, an existing object is never overwritten, a file that changes mid-upload fails the
//! session, and a wrong bucket or key fails fast with a message that says what to do.
//!
//! Needs the binary: `cargo build -p labpipe-cli` before `cargo test -p labpipe-tests`.

#[path = "upload/engine.rs"]
mod engine;
#[path = "upload/fault_proxy.rs"]
mod fault_proxy;
#[path = "upload/race_proxy.rs"]
mod race_proxy;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ChecksumAlgorithm;
use labpipe_sample::{generate, GenerateOptions};
use labpipe_tests::{labpipe_bin, object_bytes, on_each_engine, unique_name, S3Server};
use rand::{Rng, SeedableRng};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const MIB: u64 = 1024 * 1024;
const PART: u64 = 5 * MIB;
const CONCURRENCY: u64 = 3;

/// One good session of about `bytes` (data files of ~8 MB: two 5 MiB parts each).
fn session(dir: &Path, bytes: u64, seed: u64) -> PathBuf {
    let mut opts = GenerateOptions::new(dir);
    opts.count = 1;
    opts.size_bytes = bytes;
    opts.seed = seed;
    let made = generate(&opts, |_, _| {}).expect("generate sample session");
    made[0].path.clone()
}

/// Files of a session folder, sub-folders included: relative path (with `/`) → bytes.
fn local_files(folder: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(dir: &Path, prefix: &str, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap().map(|e| e.unwrap()) {
            let name = format!("{prefix}{}", e.file_name().to_string_lossy());
            let kind = e.file_type().unwrap();
            if kind.is_dir() {
                walk(&e.path(), &format!("{name}/"), out);
            } else if kind.is_file() {
                out.insert(name, std::fs::read(e.path()).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(folder, "", &mut out);
    out
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

struct Run {
    bucket: String,
    journal: PathBuf,
    _dir: tempfile::TempDir,
}

impl Run {
    async fn new(s3: &aws_sdk_s3::Client) -> Self {
        let bucket = unique_name("raw");
        s3.create_bucket()
            .bucket(&bucket)
            .send()
            .await
            .expect("create bucket");
        let dir = tempfile::tempdir().unwrap();
        Self {
            bucket,
            journal: dir.path().join("journal.sqlite3"),
            _dir: dir,
        }
    }

    fn command(
        &self,
        emulator_env: Vec<(&'static str, String)>,
        folder: &Path,
        extra: &[&str],
    ) -> Command {
        let mut cmd = self.command_text(emulator_env, folder, extra);
        cmd.arg("--json");
        cmd
    }

    /// The same run, for people: bars on stderr, one line per session and the summary on stdout.
    fn command_text(
        &self,
        emulator_env: Vec<(&'static str, String)>,
        folder: &Path,
        extra: &[&str],
    ) -> Command {
        let mut cmd = Command::new(labpipe_bin());
        cmd.envs(emulator_env)
            .env("LABPIPE_JOURNAL", &self.journal)
            .env("LABPIPE_LOG_DIR", self._dir.path().join("logs"))
            .env_remove("LABPIPE_RAW_BUCKET")
            .arg("upload")
            .arg(folder)
            .args([
                "--bucket",
                &self.bucket,
                "--part-size",
                "5MiB",
                "--concurrency",
                &CONCURRENCY.to_string(),
            ])
            .args(extra);
        cmd
    }
}

fn events(out: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect()
}

fn summary(out: &Output) -> Value {
    let ev = events(&out.stdout);
    let last = ev.last().cloned().unwrap_or_default();
    assert_eq!(
        last["event"],
        "summary",
        "last line must be the summary: {ev:?}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    last
}

/// Every object of the bucket is one of the session's files (or its manifest), byte-identical,
/// with no multipart upload left behind.
async fn assert_remote_equals_local(s3: &aws_sdk_s3::Client, bucket: &str, folder: &Path) {
    assert_objects_equal_local(s3, bucket, folder).await;
    let left = leftover_uploads(s3, bucket).await;
    assert!(left.is_empty(), "leftover multipart uploads: {left:?}");
}

/// Multipart uploads in progress in the bucket: (key, upload id).
async fn leftover_uploads(s3: &aws_sdk_s3::Client, bucket: &str) -> Vec<(String, String)> {
    let uploads = s3
        .list_multipart_uploads()
        .bucket(bucket)
        .send()
        .await
        .unwrap();
    uploads
        .uploads()
        .iter()
        .map(|u| {
            (
                u.key().unwrap_or_default().to_string(),
                u.upload_id().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// After a kill: the uploads left in progress are only ones no journal recorded (created by a
/// request whose answer the kill cut off), at most one per file, for keys whose object is
/// complete. The engine cannot prove them its own, so it leaves them to the bucket's
/// `AbortIncompleteMultipartUpload` lifecycle rule.
async fn assert_only_unrecorded_uploads_left(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    folder: &Path,
    journal: &Path,
) {
    let left = leftover_uploads(s3, bucket).await;
    let journal = labpipe_upload::Journal::open(journal).unwrap();
    let files = local_files(folder).len();
    assert!(left.len() <= files, "{left:?}");
    for (key, id) in &left {
        let recorded = journal.open_upload(bucket, key).unwrap();
        assert!(
            recorded.is_none_or(|o| o.upload_id != *id),
            "the journal's own upload {id} of {key} was left behind"
        );
        assert!(
            s3.head_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .is_ok(),
            "an upload is left for {key}, whose object is missing"
        );
    }
    if !left.is_empty() {
        eprintln!("left to the lifecycle rule (created, never recorded): {left:?}");
    }
}

/// Every object of the bucket is one of the session's files (or its manifest), byte-identical.
async fn assert_objects_equal_local(s3: &aws_sdk_s3::Client, bucket: &str, folder: &Path) {
    let session = session_name(folder);
    let local = local_files(folder);
    let listed = s3.list_objects_v2().bucket(bucket).send().await.unwrap();
    let keys: BTreeSet<String> = listed
        .contents()
        .iter()
        .filter_map(|o| o.key().map(String::from))
        .collect();
    let mut expected: BTreeSet<String> = local
        .keys()
        .map(|p| labpipe_core::layout::raw_key(&session, p))
        .collect();
    expected.insert(labpipe_core::layout::manifest_key(&session));
    assert_eq!(keys, expected, "objects in the bucket");
    for (path, bytes) in &local {
        let got = object_bytes(s3, bucket, &labpipe_core::layout::raw_key(&session, path)).await;
        assert_eq!(sha(&got), sha(bytes), "{path} differs from the local file");
    }
    let manifest = object_bytes(s3, bucket, &labpipe_core::layout::manifest_key(&session)).await;
    let manifest: Value = serde_json::from_slice(&manifest).unwrap();
    let listed: BTreeMap<String, String> = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_string(),
                f["sha256"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want: BTreeMap<String, String> = local.iter().map(|(p, b)| (p.clone(), sha(b))).collect();
    assert_eq!(listed, want, "manifest lists every file with its SHA-256");
}

async fn round_trip_is_byte_identical_then_a_rerun_sends_nothing(server: S3Server) {
    let fx = Fixture::on(server, 24_000_000, 11).await;
    let run = Run::new(&fx.s3).await;

    let out = fx.upload(&run, &[]);
    assert!(
        out.status.success(),
        "upload failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = summary(&out);
    assert_eq!(s["sessions_uploaded"], 1);
    let total = s["bytes_total"].as_u64().unwrap();
    assert_eq!(s["bytes_sent"].as_u64().unwrap(), total);
    let ev = events(&out.stdout);
    let verified = ev.iter().filter(|e| e["event"] == "file_verified").count();
    assert_eq!(
        verified,
        local_files(&fx.folder).len(),
        "every file verified"
    );
    let done_at = ev
        .iter()
        .position(|e| e["event"] == "session_done")
        .unwrap();
    assert!(
        ev[..done_at]
            .iter()
            .filter(|e| e["event"] == "file_verified")
            .count()
            == verified,
        "manifest after every verification"
    );
    assert_remote_equals_local(&fx.s3, &run.bucket, &fx.folder).await;

    let again = fx.upload(&run, &[]);
    assert!(again.status.success());
    let s = summary(&again);
    assert_eq!(
        (
            s["sessions_uploaded"].as_u64(),
            s["sessions_skipped"].as_u64(),
            s["bytes_sent"].as_u64()
        ),
        (Some(0), Some(1), Some(0))
    );
    assert_remote_equals_local(&fx.s3, &run.bucket, &fx.folder).await;
}

/// Bytes S3 acknowledged before the kill, per file, from the events the killed run printed.
fn acknowledged(lines: &[Value]) -> BTreeMap<String, u64> {
    let mut per_file: BTreeMap<String, u64> = BTreeMap::new();
    for e in lines {
        if e["event"] == "file_progress" {
            let v = per_file
                .entry(e["path"].as_str().unwrap().into())
                .or_default();
            *v = (*v).max(e["bytes_done"].as_u64().unwrap());
        }
    }
    per_file
}

/// For a failure message: per file, what the killed run had acknowledged and what the re-run
/// did with it (its `file_done` outcome, bytes sent and bytes resumed).
fn rerun_by_file(acked: &BTreeMap<String, u64>, rerun: &[Value]) -> String {
    let mut lines = Vec::new();
    for e in rerun.iter().filter(|e| e["event"] == "file_done") {
        let path = e["path"].as_str().unwrap_or_default();
        lines.push(format!(
            "  {path}: acknowledged {} → {} sent {} resumed {}",
            acked.get(path).copied().unwrap_or(0),
            e["outcome"],
            e["bytes_sent"],
            e["bytes_resumed"]
        ));
    }
    lines.join("\n")
}

async fn kill_9_at_random_moments_then_rerun_completes_without_resending_much(server: S3Server) {
    let fx = Fixture::on(server, 30_000_000, 21).await;
    let trials: usize = std::env::var("LABPIPE_KILL_TRIALS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(match server {
            S3Server::Emulator => 20,
            // Fewer on the second server keeps the suite short; 10 still lands kills mid-upload.
            S3Server::SeaweedFs => 10,
        });
    let seed: u64 = rand::random();
    eprintln!("kill trials: {trials}, seed {seed}");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    // Kills land within the time one whole upload takes on this machine now, so they hit the
    // upload itself, whether the machine is idle or busy.
    let clean = Run::new(&fx.s3).await;
    let started = Instant::now();
    let out = fx.upload(&clean, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let whole_ms = (started.elapsed().as_millis() as u64).max(50);
    eprintln!("one uninterrupted upload: {whole_ms} ms");
    let mut resumed_somewhere = false;
    for trial in 0..trials {
        let run = Run::new(&fx.s3).await;
        let mut child = run
            .command(fx.env(), &fx.folder, &[])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .filter_map(|l| serde_json::from_str::<Value>(&l).ok())
                .collect::<Vec<_>>()
        });
        let delay = Duration::from_millis(rng.gen_range(whole_ms / 10..whole_ms));
        std::thread::sleep(delay);
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        let status = child.wait().unwrap();
        let first = reader.join().unwrap();
        let acked_by_file = acknowledged(&first);
        let acked: u64 = acked_by_file.values().sum();

        let out = fx.upload(&run, &[]);
        assert!(
            out.status.success(),
            "trial {trial} (kill after {delay:?}): re-run failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let s = summary(&out);
        let total = s["bytes_total"].as_u64().unwrap();
        let sent = s["bytes_sent"].as_u64().unwrap();
        resumed_somewhere |= s["bytes_resumed"].as_u64().unwrap() > 0;
        let bound = total - acked.min(total) + CONCURRENCY * PART;
        assert!(
            sent <= bound,
            "trial {trial} (kill after {delay:?}, {status}): re-sent too much: sent {sent}, \
             acknowledged before kill {acked}, total {total}, bound {bound}; per file:\n{}\n\
             re-run stderr: {}",
            rerun_by_file(&acked_by_file, &events(&out.stdout)),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_objects_equal_local(&fx.s3, &run.bucket, &fx.folder).await;
        assert_only_unrecorded_uploads_left(&fx.s3, &run.bucket, &fx.folder, &run.journal).await;
    }
    if trials >= 10 {
        assert!(
            resumed_somewhere,
            "no trial resumed a multipart upload: kills all landed before or after the upload"
        );
    }
}

/// A run killed while S3 completed its multipart upload leaves, for a moment, an upload S3 no
/// longer has and an object not stored yet. The re-run must find the object when it lands and
/// compare it, not send the file again. Here the journal records an upload of ours for the largest
/// file that S3 does not know, and the "completion" is the same bytes put at the key 700 ms after
/// the re-run starts (after its survey, before its later looks).
async fn an_upload_completed_as_the_run_died_is_found_not_sent_again(server: S3Server) {
    let fx = Fixture::on(server, 30_000_000, 61).await;
    let run = Run::new(&fx.s3).await;
    let (path, bytes) = local_files(&fx.folder)
        .into_iter()
        .max_by_key(|(_, b)| b.len())
        .unwrap();
    let key = labpipe_core::layout::raw_key(&session_name(&fx.folder), &path);
    let journal = labpipe_upload::Journal::open(&run.journal).unwrap();
    journal
        .begin_upload(
            &run.bucket,
            &key,
            &labpipe_upload::journal::OpenUpload {
                upload_id: "completed-as-the-run-died".into(),
                size: bytes.len() as u64,
                mtime: 0,
                part_size: PART,
            },
        )
        .unwrap();
    drop(journal);
    let (s3, bucket, landing_key, body) = (
        fx.s3.clone(),
        run.bucket.clone(),
        key.clone(),
        bytes.clone(),
    );
    let landing = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(700)).await;
        s3.put_object()
            .bucket(bucket)
            .key(landing_key)
            .checksum_algorithm(ChecksumAlgorithm::Crc64Nvme)
            .body(ByteStream::from(body))
            .send()
            .await
            .unwrap();
    });
    // The upload blocks this worker thread: `block_in_place` hands its queued tasks (the landing
    // above) to another worker, or they would wait for the upload to end.
    let out = tokio::task::block_in_place(|| fx.upload(&run, &[]));
    landing.await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let done = events_named(&out.stdout, "file_done")
        .into_iter()
        .find(|e| e["path"] == path.as_str())
        .unwrap();
    assert_eq!(
        (done["outcome"].as_str(), done["bytes_sent"].as_u64()),
        (Some("already_uploaded"), Some(0)),
        "{path} was sent again: {done}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_remote_equals_local(&fx.s3, &run.bucket, &fx.folder).await;
}

async fn flaky_network_resets_errors_and_stalls_do_not_corrupt_anything(server: S3Server) {
    let fx = Fixture::on(server, 30_000_000, 31).await;
    let run = Run::new(&fx.s3).await;
    let upstream = format!("127.0.0.1:{}", fx.server.port()).parse().unwrap();
    let proxy = fault_proxy::FaultProxy::start(upstream, 5, 20, rand::random());
    let env = fx.env_through(proxy.endpoint());
    let started = Instant::now();
    let out = run
        .command(env, &fx.folder, &["--attempt-timeout", "3"])
        .output()
        .unwrap();
    let faults = proxy.faults();
    assert!(
        out.status.success(),
        "upload through faults {faults:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(faults.len() >= 5, "the proxy injected only {faults:?}");
    assert!(started.elapsed() < Duration::from_secs(120));
    assert_eq!(summary(&out)["sessions_uploaded"], 1);
    assert_remote_equals_local(&fx.s3, &run.bucket, &fx.folder).await;

    // Every retry is an event, so a flaky link does not look like a slow one.
    let retries = events_named(&out.stdout, "retrying");
    let reasons: Vec<&str> = retries
        .iter()
        .map(|r| r["reason"].as_str().unwrap_or_default())
        .collect();
    for r in &retries {
        assert!(r["attempt"].as_u64() >= Some(2), "{r}");
        assert!(!r["reason"].as_str().unwrap_or_default().is_empty(), "{r}");
        assert!(
            r["operation"].as_str().is_some_and(|o| !o.is_empty()),
            "{r}"
        );
        assert!(r["session"].is_string(), "{r}");
    }
    // A reset at once, an error status or a stall always fails the attempt it meets, and every
    // request on the session's keys (`raw/<session>/…`, or a listing of that prefix) reports its
    // retries as events. Requests before any session (the bucket preflight, which lists `raw/`)
    // are retried just the same but belong to no session, so they are not counted.
    let session_prefix = labpipe_core::layout::raw_session_prefix(&session_name(&fx.folder));
    let on_session = |request: &str| {
        request.contains(&session_prefix) || request.contains(&session_prefix.replace('/', "%2F"))
    };
    let certain: Vec<_> = faults
        .iter()
        .filter(|f| {
            matches!(
                f.fault,
                fault_proxy::Fault::ResetAtOnce
                    | fault_proxy::Fault::Status500
                    | fault_proxy::Fault::Status503
                    | fault_proxy::Fault::Stall
            ) && on_session(&f.request)
        })
        .collect();
    assert!(
        !retries.is_empty() && retries.len() >= certain.len(),
        "{} faults that fail an attempt on the session's requests, {} retry events: {reasons:?}\nfaults and the requests they met: {faults:#?}",
        certain.len(),
        retries.len()
    );
    assert_eq!(summary(&out)["retries"], retries.len() as u64);
    eprintln!("retries through the proxy: {reasons:?}");
}

async fn an_existing_object_is_never_overwritten(server: S3Server) {
    let fx = Fixture::on(server, 12_000_000, 41).await;
    let (name, victim, bytes, key) = fx.data_file();

    // Different bytes at the key, written by no upload of this PC: refused before anything is
    // sent (another recording holds the name), remote unchanged, no manifest.
    let run = Run::new(&fx.s3).await;
    let other = b"someone else's recording".to_vec();
    fx.s3
        .put_object()
        .bucket(&run.bucket)
        .key(&key)
        .body(ByteStream::from(other.clone()))
        .send()
        .await
        .unwrap();
    let out = fx.upload(&run, &[]);
    assert_eq!(out.status.code(), Some(1));
    let failed = events_named(&out.stdout, "session_failed");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["code"], "name_taken");
    assert!(
        failed[0]["reason"]
            .as_str()
            .unwrap()
            .contains(&format!("changed {victim}")),
        "the reason names the file: {}",
        failed[0]["reason"]
    );
    assert_eq!(
        listing_keys(&fx.s3, &run.bucket).await,
        std::slice::from_ref(&key),
        "nothing else was sent under the taken name"
    );
    let got = object_bytes(&fx.s3, &run.bucket, &key).await;
    assert_eq!(
        got.as_slice(),
        other.as_slice(),
        "remote object was overwritten"
    );
    // Without --json, with stdout not a terminal (a pipe here, a log or a cron mail in use):
    // the session's line still says why it failed, and the summary counts it as failed.
    let text = run
        .command_text(fx.env(), &fx.folder, &[])
        .output()
        .expect("run labpipe upload");
    assert_eq!(text.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(
        stdout.contains(&format!("{name}: failed")) && stdout.contains(victim.as_str()),
        "the reason reaches stdout:\n{stdout}"
    );
    assert!(
        stdout.contains("0 uploaded, 1 failed"),
        "the summary counts the failure:\n{stdout}"
    );
    assert!(
        !has_manifest(&fx.s3, &run.bucket, &name).await,
        "no manifest after a conflict"
    );

    // The same bytes at the key: a no-op for that file, the session completes.
    let run = Run::new(&fx.s3).await;
    fx.s3
        .put_object()
        .bucket(&run.bucket)
        .key(&key)
        .checksum_algorithm(ChecksumAlgorithm::Crc64Nvme)
        .body(ByteStream::from(bytes.clone()))
        .send()
        .await
        .unwrap();
    let out = fx.upload(&run, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ev = events(&out.stdout);
    let done = ev
        .iter()
        .find(|e| e["event"] == "file_done" && e["path"] == victim.as_str())
        .unwrap();
    assert_eq!(done["outcome"], "already_uploaded");
    assert_eq!(
        summary(&out)["bytes_sent"].as_u64().unwrap(),
        local_files(&fx.folder)
            .values()
            .map(|b| b.len() as u64)
            .sum::<u64>()
            - bytes.len() as u64
    );
    assert_remote_equals_local(&fx.s3, &run.bucket, &fx.folder).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_appended_to_during_upload_fails_the_session_without_manifest() {
    let fx = Fixture::new(30_000_000, 51).await;
    let name = session_name(&fx.folder);
    let run = Run::new(&fx.s3).await;
    // A bandwidth cap keeps the upload running long enough to change a file under it.
    let mut child = run
        .command(fx.env(), &fx.folder, &["--max-bandwidth", "8MB"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok);
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let e: Value = serde_json::from_str(&line).unwrap();
        let progress = e["event"] == "file_progress";
        seen.push(e);
        if progress {
            break;
        }
    }
    for path in local_files(&fx.folder)
        .keys()
        .filter(|p| p.ends_with(".bin"))
    {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(fx.folder.join(path))
            .unwrap();
        std::io::Write::write_all(&mut f, b"one more frame").unwrap();
    }
    seen.extend(lines.map(|l| serde_json::from_str::<Value>(&l).unwrap()));
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(1), "{seen:?}");
    let failed = seen
        .iter()
        .find(|e| e["event"] == "session_failed")
        .unwrap_or_else(|| panic!("no session_failed in {seen:?}"));
    assert_eq!(failed["code"], "file_changed");
    assert!(failed["reason"]
        .as_str()
        .unwrap()
        .contains("file changed while uploading"));
    assert!(
        !has_manifest(&fx.s3, &run.bucket, &name).await,
        "a manifest was written for a changed session"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_bucket_fails_fast_with_what_to_do() {
    let fx = Fixture::new(6_000_000, 61).await;
    let mut run = Run::new(&fx.s3).await;
    run.bucket = unique_name("missing");
    let started = Instant::now();
    let out = fx.upload(&run, &[]);
    let missing = format!("bucket {} does not exist", run.bucket);
    assert_fails_fast_saying(&out, started, &[&missing, "--bucket"]);
}

/// The run stopped at once (< 10 s, no retrying a hopeless request) with exit 1 and a message
/// that says all of `needles`.
fn assert_fails_fast_saying(out: &Output, started: Instant, needles: &[&str]) {
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(needles.iter().all(|n| err.contains(n)), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rejected_credentials_fail_fast_with_what_to_do() {
    // An emulator of our own that checks access keys (the shared one accepts any).
    let moto = labpipe_tests::Emulator::start_with_authorization(0);
    let endpoint = moto.endpoint();
    let data = tempfile::tempdir().unwrap();
    let folder = session(data.path(), 6_000_000, 71);
    let journal = data.path().join("j.sqlite3");
    let started = Instant::now();
    let out = Command::new(labpipe_bin())
        .env("AWS_ENDPOINT_URL", &endpoint)
        .env("AWS_ACCESS_KEY_ID", "AKIANOTAREALKEY00000")
        .env("AWS_SECRET_ACCESS_KEY", "wrong")
        .env("AWS_REGION", "us-east-1")
        .env("LABPIPE_JOURNAL", &journal)
        .env("LABPIPE_LOG_DIR", data.path().join("logs"))
        .args(["upload", "--bucket", "lab-raw"])
        .arg(&folder)
        .output()
        .unwrap();
    drop(moto);
    assert_fails_fast_saying(
        &out,
        started,
        &["credentials rejected", "AWS_ACCESS_KEY_ID"],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_that_fail_their_checks_are_refused_with_findings() {
    let fx = Fixture::new(6_000_000, 81).await;
    let meta = fx.folder.join("metadata.txt");
    let recorded = std::fs::metadata(&meta).unwrap().modified().unwrap();
    std::fs::write(&meta, "this is not metadata\n").unwrap();
    // Keep the recording's mtime: a fresh change would make the verdict `wait`, not `fail`.
    std::fs::File::options()
        .write(true)
        .open(&meta)
        .unwrap()
        .set_modified(recorded)
        .unwrap();
    let run = Run::new(&fx.s3).await;
    let out = fx.upload(&run, &[]);
    assert_eq!(out.status.code(), Some(1));
    let ev = events(&out.stdout);
    let refused = ev
        .iter()
        .find(|e| e["event"] == "session_refused")
        .unwrap_or_else(|| panic!("{ev:?}"));
    assert_eq!(refused["verdict"], "fail");
    assert!(!refused["findings"].as_array().unwrap().is_empty());
    let s = summary(&out);
    assert_eq!(
        (
            s["sessions_refused"].as_u64(),
            s["sessions_failed"].as_u64()
        ),
        (Some(1), Some(0)),
        "refused by its checks is not a failed upload: {s}"
    );
    let listed = fx
        .s3
        .list_objects_v2()
        .bucket(&run.bucket)
        .send()
        .await
        .unwrap();
    assert!(
        listed.contents().is_empty(),
        "nothing may be uploaded from a failed session"
    );
}

/// What most tests start from: a shared S3 server (the emulator unless a test runs on both), an
/// S3 client for it and one generated session.
struct Fixture {
    server: S3Server,
    s3: aws_sdk_s3::Client,
    folder: PathBuf,
    // Holds the session folder; removed on drop.
    _data: tempfile::TempDir,
}

impl Fixture {
    async fn new(bytes: u64, seed: u64) -> Self {
        Self::on(S3Server::Emulator, bytes, seed).await
    }

    async fn on(server: S3Server, bytes: u64, seed: u64) -> Self {
        let s3 = server.s3_client().await;
        let data = tempfile::tempdir().unwrap();
        let folder = session(data.path(), bytes, seed);
        Self {
            server,
            s3,
            folder,
            _data: data,
        }
    }

    /// What `labpipe` needs to reach the server (S3 only: the upload uses no other service).
    fn env(&self) -> Vec<(&'static str, String)> {
        self.server.env()
    }

    /// The same, with S3 reached through `endpoint` (a proxy in front of the server).
    fn env_through(&self, endpoint: String) -> Vec<(&'static str, String)> {
        self.env()
            .into_iter()
            .map(|(k, v)| match k {
                "AWS_ENDPOINT_URL" | "AWS_ENDPOINT_URL_S3" => (k, endpoint.clone()),
                _ => (k, v),
            })
            .collect()
    }

    /// The session's name, its first data file (path and bytes) and that file's object key.
    fn data_file(&self) -> (String, String, Vec<u8>, String) {
        let name = session_name(&self.folder);
        let (path, bytes) = local_files(&self.folder)
            .into_iter()
            .find(|(p, _)| p.ends_with(".bin"))
            .unwrap();
        let key = labpipe_core::layout::raw_key(&name, &path);
        (name, path, bytes, key)
    }

    /// Runs `labpipe upload` of the session into `run`'s bucket to the end.
    fn upload(&self, run: &Run, extra: &[&str]) -> Output {
        run.command(self.env(), &self.folder, extra)
            .output()
            .unwrap()
    }
}

// Each `async fn(S3Server)` test runs once per S3 server, as `<name>::emulator` and
// `<name>::seaweedfs`: what passes on one server only is a quirk of that server, not a property
// of the upload.
on_each_engine!(#[tokio::test(flavor = "multi_thread")]
    async fn round_trip_is_byte_identical_then_a_rerun_sends_nothing on emulator, seaweedfs);
on_each_engine!(#[tokio::test(flavor = "multi_thread")]
    async fn kill_9_at_random_moments_then_rerun_completes_without_resending_much
    on emulator, seaweedfs);
on_each_engine!(#[tokio::test(flavor = "multi_thread")]
    async fn an_upload_completed_as_the_run_died_is_found_not_sent_again on emulator, seaweedfs);
// The emulator only: SeaweedFS finishes the upload in so few connections that the proxy's
// per-connection fault rate injects too few faults for the test's own floor (seen: 2 of 5).
on_each_engine!(#[tokio::test(flavor = "multi_thread")]
    async fn flaky_network_resets_errors_and_stalls_do_not_corrupt_anything on emulator);
on_each_engine!(#[tokio::test(flavor = "multi_thread")]
    async fn an_existing_object_is_never_overwritten on emulator, seaweedfs);
on_each_engine!(#[tokio::test(flavor = "multi_thread")]
    async fn an_object_written_after_the_listing_is_not_overwritten on emulator, seaweedfs);
on_each_engine!(#[tokio::test(flavor = "multi_thread")]
    async fn on_a_versioned_bucket_the_manifest_pins_each_object_version on emulator, seaweedfs);

/// Another writer puts different bytes at a key after the upload listed the bucket and before its
/// own write of that key: the listing saw nothing there, so only the write's condition
/// (`If-None-Match: *`, answered 412 by S3: <https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html>)
/// keeps the other writer's object. The session fails naming the file, the object keeps the other
/// writer's bytes, and no manifest commits the session.
async fn an_object_written_after_the_listing_is_not_overwritten(server: S3Server) {
    let fx = Fixture::on(server, 12_000_000, 43).await;
    let (name, victim, _, key) = fx.data_file();
    let run = Run::new(&fx.s3).await;
    let other = b"another writer's bytes, written after the listing".to_vec();

    let runtime = tokio::runtime::Handle::current();
    let (s3, bucket, other_key, other_body) = (
        fx.s3.clone(),
        run.bucket.clone(),
        key.clone(),
        other.clone(),
    );
    let upstream = format!("127.0.0.1:{}", fx.server.port()).parse().unwrap();
    let proxy = race_proxy::RaceProxy::start(upstream, &run.bucket, &key, move || {
        runtime
            .block_on(
                s3.put_object()
                    .bucket(&bucket)
                    .key(&other_key)
                    .body(ByteStream::from(other_body.clone()))
                    .send(),
            )
            .expect("the other writer's put");
    });
    let env = fx.env_through(proxy.endpoint());
    let out = tokio::task::block_in_place(|| run.command(env, &fx.folder, &[]).output().unwrap());

    assert!(proxy.fired(), "the upload never sent {key}");
    let kept = object_bytes(&fx.s3, &run.bucket, &key).await;
    assert!(
        kept == other,
        "the other writer's object was overwritten ({} bytes at {key} now); stderr: {}",
        kept.len(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let failed = events_named(&out.stdout, "session_failed");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(
        failed[0]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains(victim.as_str()),
        "the reason names the file: {}",
        failed[0]
    );
    assert!(
        !has_manifest(&fx.s3, &run.bucket, &name).await,
        "no manifest after a conflict"
    );
}

/// Every key in the bucket.
async fn listing_keys(s3: &aws_sdk_s3::Client, bucket: &str) -> Vec<String> {
    let out = s3.list_objects_v2().bucket(bucket).send().await.unwrap();
    out.contents()
        .iter()
        .filter_map(|o| o.key().map(String::from))
        .collect()
}

/// The session's name, which is also its key prefix under `raw/`.
fn session_name(folder: &Path) -> String {
    folder.file_name().unwrap().to_string_lossy().into_owned()
}

/// Whether the session's manifest is in the bucket: it is written last, only for a complete upload.
async fn has_manifest(s3: &aws_sdk_s3::Client, bucket: &str, session: &str) -> bool {
    s3.head_object()
        .bucket(bucket)
        .key(labpipe_core::layout::manifest_key(session))
        .send()
        .await
        .is_ok()
}

/// The events of one kind among the JSON lines a run printed.
fn events_named(out: &[u8], kind: &str) -> Vec<Value> {
    events(out)
        .into_iter()
        .filter(|e| e["event"] == kind)
        .collect()
}

/// The manifest of `session` as the bucket holds it now.
async fn remote_manifest(s3: &aws_sdk_s3::Client, bucket: &str, session: &str) -> Value {
    let bytes = object_bytes(s3, bucket, &labpipe_core::layout::manifest_key(session)).await;
    serde_json::from_slice(&bytes).unwrap()
}

async fn on_a_versioned_bucket_the_manifest_pins_each_object_version(server: S3Server) {
    let fx = Fixture::on(server, 12_000_000, 17).await;
    let run = Run::new(&fx.s3).await;
    // As the template's raw bucket (`VersioningConfiguration: Enabled`).
    fx.s3
        .put_bucket_versioning()
        .bucket(&run.bucket)
        .versioning_configuration(
            aws_sdk_s3::types::VersioningConfiguration::builder()
                .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let session = session_name(&fx.folder);
    let out = fx.upload(&run, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Each file's version is the one S3 holds at its key (the only one there is).
    let pinned = |manifest: &Value| -> BTreeMap<String, String> {
        manifest["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                let version = f["version_id"]
                    .as_str()
                    .unwrap_or_else(|| panic!("no version id: {f}"));
                (f["path"].as_str().unwrap().to_string(), version.to_string())
            })
            .collect()
    };
    let first = pinned(&remote_manifest(&fx.s3, &run.bucket, &session).await);
    assert_eq!(first.len(), local_files(&fx.folder).len());
    for (path, version) in &first {
        let head = fx
            .s3
            .head_object()
            .bucket(&run.bucket)
            .key(labpipe_core::layout::raw_key(&session, path))
            .send()
            .await
            .unwrap();
        assert_eq!(head.version_id(), Some(version.as_str()), "{path}");
    }

    // Without its manifest, a re-run settles every file from the journal (nothing sent) and
    // the new manifest names the same versions, from the journal too.
    fx.s3
        .delete_object()
        .bucket(&run.bucket)
        .key(labpipe_core::layout::manifest_key(&session))
        .send()
        .await
        .unwrap();
    let again = fx.upload(&run, &[]);
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(summary(&again)["bytes_sent"].as_u64(), Some(0));
    assert_eq!(
        pinned(&remote_manifest(&fx.s3, &run.bucket, &session).await),
        first
    );

    // An unversioned bucket gets a manifest without version ids, as before.
    let plain = Run::new(&fx.s3).await;
    let out = fx.upload(&plain, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest = remote_manifest(&fx.s3, &plain.bucket, &session).await;
    assert!(
        manifest["files"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f.get("version_id").is_none()),
        "{manifest}"
    );
}
