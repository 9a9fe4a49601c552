//! The operator's commands end to end on the emulator: `labpipe reprocess` (a second pipeline
//! version beside the first), `labpipe redrive` (dead-letter messages and FAILED sessions) and
//! stuck sessions in `labpipe status`. The backend runs in-process (the local runner over the
//! real queues), the CLI is the built binary, the stack is real buckets, table and queues with
//! the template's redrive policies.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_sqs::types::QueueAttributeName;
use chrono::{Duration, Utc};
use labpipe_backend::runner::{Runner, RunnerOptions};
use labpipe_backend::{BackendConfig, Clients};
use labpipe_catalog::{Catalog, Event, Level, Status};
use labpipe_core::check::check_folder;
use labpipe_core::{LabSchema, Manifest};
use labpipe_tests::{labpipe_bin, object_bytes, runtime, unique_name, Emulator, QueueStack};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// One stack ([`QueueStack`]: buckets, table, the two queues with their dead-letter queues at the
/// template's receive counts, the raw bucket's manifest notification), the backend's
/// configuration and the outputs file the CLI reads, both from its outputs.
struct Stack {
    clients: Clients,
    config: BackendConfig,
    catalog: Catalog,
    ingest_dlq: String,
    preprocess_dlq: String,
    dir: tempfile::TempDir,
    outputs: PathBuf,
}

impl Stack {
    /// With `processed_bucket_exists` false the processed bucket is created later: every
    /// preprocessing run fails transiently until then.
    async fn create(processed_bucket_exists: bool) -> Stack {
        let emulator = Emulator::shared();
        let clients = Clients::from_sdk_config(&emulator.sdk_config().await);
        let stack = if processed_bucket_exists {
            QueueStack::create(emulator).await
        } else {
            QueueStack::create_without_processed_bucket(emulator).await
        };
        let config = BackendConfig::resolve(&stack.outputs(), |_| None).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let outputs = dir.path().join("outputs.json");
        std::fs::write(&outputs, serde_json::to_string(&stack.outputs()).unwrap()).unwrap();
        Stack {
            catalog: Catalog::new(clients.dynamodb.clone(), &config.table),
            clients,
            config,
            ingest_dlq: stack.ingest_dead_letter_queue_url,
            preprocess_dlq: stack.preprocess_dead_letter_queue_url,
            dir,
            outputs,
        }
    }

    /// Runs the backend until both queues stay empty. Failed messages come back after 1 s.
    async fn drain(&self) {
        let runner = Runner::new(
            &self.clients,
            &self.config,
            RunnerOptions {
                wait_secs: 1,
                batch_size: 10,
                retry_after_secs: 1,
            },
        )
        .unwrap();
        for _ in 0..60 {
            runner.drain(5).await.unwrap();
            if self.depth(&self.config.ingest_queue_url).await
                + self.depth(&self.config.preprocess_queue_url).await
                == 0
            {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
        panic!("the queues did not empty");
    }

    /// Visible plus in-flight messages.
    async fn depth(&self, url: &str) -> u64 {
        let out = self
            .clients
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .unwrap();
        out.attributes()
            .unwrap()
            .values()
            .map(|v| v.parse::<u64>().unwrap())
            .sum()
    }

    fn labpipe(&self, args: &[&str]) -> Output {
        Command::new(labpipe_bin())
            .args(args)
            .current_dir(self.dir.path())
            .envs(Emulator::shared().env())
            .env("LABPIPE_STACK_OUTPUTS", &self.outputs)
            .env("LABPIPE_JOURNAL", self.dir.path().join("journal.sqlite"))
            .env("NO_COLOR", "1")
            .env_remove("LABPIPE_TABLE")
            .env_remove("LABPIPE_PREPROCESS_QUEUE_URL")
            .env_remove("LABPIPE_INGEST_QUEUE_URL")
            .output()
            .unwrap()
    }

    /// Puts `bytes` at `key` of the raw bucket, straight through S3.
    async fn put_raw(&self, key: &str, bytes: Vec<u8>) {
        self.clients
            .s3
            .put_object()
            .bucket(&self.config.raw_bucket)
            .key(key)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .unwrap_or_else(|e| panic!("cannot put {key} in the raw bucket: {e:?}"));
    }

    /// `labpipe sync --where <filter> --dest <dest> --json <extra>`.
    fn sync(&self, filter: &str, dest: &Path, extra: &[&str]) -> Output {
        let dest = dest.to_str().unwrap();
        let mut args = vec!["sync", "--where", filter, "--dest", dest, "--json"];
        args.extend(extra);
        self.labpipe(&args)
    }

    fn json(&self, args: &[&str]) -> Value {
        let out = self.labpipe(args);
        assert!(
            out.status.success(),
            "labpipe {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "labpipe {args:?} printed no JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    async fn status(&self, session: &str) -> Status {
        self.catalog.get(session).await.unwrap().unwrap().status
    }
}

/// A small generated session folder (`seed` picks the recording day).
fn generate(seed: u64) -> (tempfile::TempDir, PathBuf, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = labpipe_sample::GenerateOptions::new(dir.path());
    opts.count = 1;
    opts.size_bytes = 600_000;
    opts.seed = seed;
    opts.start += chrono::Duration::days(seed as i64 * 3);
    let generated = labpipe_sample::generate(&opts, |_, _| {}).unwrap();
    let folder = generated[0].path.clone();
    let id = folder.file_name().unwrap().to_string_lossy().into_owned();
    (dir, folder, id)
}

/// A stack with one generated session (from `seed`) uploaded and processed. Returns the stack,
/// the folder's temp dir (keep it alive), the folder and the session id.
async fn processed_session(seed: u64) -> (Stack, tempfile::TempDir, PathBuf, String) {
    let stack = Stack::create(true).await;
    let (keep, folder, id) = generate(seed);
    upload(&stack, &folder);
    stack.drain().await;
    assert_eq!(stack.status(&id).await, Status::Processed);
    (stack, keep, folder, id)
}

fn upload(stack: &Stack, folder: &Path) {
    let out = stack.labpipe(&[
        "upload",
        folder.to_str().unwrap(),
        "--bucket",
        &stack.config.raw_bucket,
        "--json",
    ]);
    assert!(
        out.status.success(),
        "upload failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Sets the `notes` line of a generated session's metadata file to `len` bytes, keeping the
/// file's old modification time (a fresh one would make the check wait for the folder to settle).
fn set_notes(folder: &Path, len: usize) {
    let path = folder.join("metadata.txt");
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    let mut text: String = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("notes:"))
        .map(|l| format!("{l}\n"))
        .collect();
    text.push_str(&format!("notes: {}\n", "n".repeat(len)));
    std::fs::write(&path, text).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
}

/// Item size by DynamoDB's rules, as `labpipe check` computes it: a session whose catalog entry
/// is exactly at the check's budget is uploaded and cataloged (then processed) on the stack; one
/// byte more and `labpipe check` refuses it naming the field, its size and the limit, and
/// `labpipe upload` sends nothing — instead of ingest failing with "Item size has exceeded the
/// maximum allowed size" after the upload.
#[test]
fn metadata_the_catalog_cannot_hold_is_refused_before_upload() {
    use labpipe_core::catalog_size::{session_item_bytes, SESSION_ITEM_BUDGET};
    runtime().block_on(async {
        let stack = Stack::create(true).await;
        let schema = LabSchema::default();
        // The bytes a `notes` value may have: the budget less every other attribute.
        let room = |folder: &Path| {
            let mut metadata = check_folder(folder, &schema).unwrap().metadata;
            metadata.remove("notes");
            (SESSION_ITEM_BUDGET - session_item_bytes(&metadata)) as usize - "m_notes".len()
        };
        let (_keep_fits, fits, fits_id) = generate(41);
        let notes = room(&fits);
        set_notes(&fits, notes);
        let check = stack.labpipe(&["check", fits.to_str().unwrap()]);
        assert!(
            check.status.success(),
            "{}",
            String::from_utf8_lossy(&check.stdout)
        );
        upload(&stack, &fits);
        stack.drain().await;
        assert_eq!(stack.status(&fits_id).await, Status::Processed);
        let item = stack.catalog.get(&fits_id).await.unwrap().unwrap();
        assert_eq!(item.metadata["notes"].as_text().map(str::len), Some(notes));

        let (_keep_over, over, over_id) = generate(42);
        set_notes(&over, room(&over) + 1);
        let check = stack.labpipe(&["check", over.to_str().unwrap()]);
        let text = String::from_utf8_lossy(&check.stdout);
        assert_eq!(check.status.code(), Some(1), "{text}");
        for part in [
            "metadata field 'notes' takes",
            "393,217 bytes",
            "more than the 393,216 bytes one entry may hold",
            "409,600 bytes",
            "shorten 'notes' in metadata.txt",
        ] {
            assert!(text.contains(part), "{part:?} not in {text}");
        }
        let out = stack.labpipe(&[
            "upload",
            over.to_str().unwrap(),
            "--bucket",
            &stack.config.raw_bucket,
        ]);
        assert_eq!(out.status.code(), Some(1));
        let listed = stack
            .clients
            .s3
            .list_objects_v2()
            .bucket(&stack.config.raw_bucket)
            .prefix(format!("raw/{over_id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(listed.key_count(), Some(0), "nothing of {over_id} is sent");
        assert!(stack.catalog.get(&over_id).await.unwrap().is_none());
    });
}

/// Every file of `dir/<session>/` (relative path → bytes).
fn files_in(dir: &Path, session: &str) -> std::collections::BTreeMap<String, Vec<u8>> {
    let root = dir.join(session);
    let mut out = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir(&root).unwrap() {
        let p = entry.unwrap().path();
        if p.is_file() {
            out.insert(
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            );
        }
    }
    out
}

#[test]
fn reprocess_writes_a_second_version_beside_the_first() {
    runtime().block_on(async {
        let (stack, _keep, _folder, id) = processed_session(11).await;
        let v1 = stack
            .catalog
            .outputs(&id, 1, 1)
            .await
            .unwrap()
            .expect("v1 outputs");
        let mut v1_bytes = Vec::new();
        for f in &v1.files {
            v1_bytes.push(object_bytes(&stack.clients.s3, &v1.bucket, &f.key).await);
        }
        let filter = format!("session = '{id}'");

        // A dry run sends nothing.
        let dry = stack.json(&[
            "reprocess",
            "--where",
            &filter,
            "--pipeline-version",
            "2",
            "--dry-run",
            "--json",
        ]);
        assert_eq!(dry["sessions"][0]["action"], "send", "{dry}");
        assert_eq!(dry["sent"], 1);
        assert_eq!(stack.depth(&stack.config.preprocess_queue_url).await, 0);

        let sent = stack.json(&[
            "reprocess",
            "--where",
            &filter,
            "--pipeline-version",
            "2",
            "--json",
        ]);
        assert_eq!(sent["sessions"][0]["action"], "sent", "{sent}");
        assert!(sent["sessions"][0]["message_id"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
        stack.drain().await;

        let item = stack.catalog.get(&id).await.unwrap().unwrap();
        assert_eq!(item.status, Status::Processed);
        assert_eq!(item.pipeline_version, Some(2));
        let all = stack.catalog.all_outputs(&id).await.unwrap();
        assert_eq!(all.iter().map(|r| r.version).collect::<Vec<_>>(), [1, 2]);
        let v2 = &all[1];
        assert!(v2.files.iter().all(|f| f
            .key
            .starts_with(&labpipe_core::layout::processed_prefix(2, &id, 1))));
        // v1 is untouched: same record, same bytes.
        assert_eq!(all[0], v1);
        for (f, before) in v1.files.iter().zip(&v1_bytes) {
            let now = object_bytes(&stack.clients.s3, &v1.bucket, &f.key).await;
            assert_eq!(&now, before, "{} changed", f.key);
        }
        // The v2 feature table differs from v1's (another gamma band), and says so.
        let features = |r: &labpipe_catalog::OutputRecord| {
            r.files
                .iter()
                .find(|f| f.key.ends_with("features.parquet"))
                .unwrap()
                .sha256
                .clone()
        };
        assert_ne!(features(&v1), features(v2));
        let summary = object_bytes(
            &stack.clients.s3,
            &v2.bucket,
            &labpipe_core::layout::processed_key(2, &id, 1, "summary.json"),
        )
        .await;
        let summary: Value = serde_json::from_slice(&summary).unwrap();
        assert_eq!(summary["pipeline_version"], 2);
        assert_eq!(
            summary["steps"]["feature_table"]["bands_hz"][4]["high"],
            45.0
        );

        // Asking again is left out, with the reason.
        let again = stack.json(&[
            "reprocess",
            "--where",
            &filter,
            "--pipeline-version",
            "2",
            "--json",
        ]);
        assert_eq!(again["sessions"][0]["action"], "skipped");
        assert!(again["sessions"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("already processed at pipeline version 2"));

        // status lists the outputs of both versions.
        let status = stack.json(&["status", &id, "--json"]);
        let versions: Vec<u64> = status[0]["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["version"].as_u64().unwrap())
            .collect();
        assert_eq!(versions, [1, 2], "{status}");

        // sync per version gives exactly that version's files; no flag gives the newest.
        let mut synced = Vec::new();
        for version in [Some("1"), Some("2"), None] {
            let dest = stack
                .dir
                .path()
                .join(format!("sync-{}", version.unwrap_or("default")));
            let out = match version {
                Some(v) => stack.sync(&filter, &dest, &["--pipeline-version", v]),
                None => stack.sync(&filter, &dest, &[]),
            };
            assert!(out.status.success(), "sync {version:?}: {}", said(&out));
            synced.push(files_in(&dest, &id));
        }
        for (record, got) in [(&v1, &synced[0]), (v2, &synced[1]), (v2, &synced[2])] {
            assert_eq!(got.len(), record.files.len());
            for f in &record.files {
                let name = f.key.rsplit('/').next().unwrap();
                assert_eq!(
                    hex::encode(Sha256::digest(&got[name])),
                    f.sha256,
                    "{name} of v{}",
                    record.version
                );
            }
        }
        assert_ne!(synced[0]["features.parquet"], synced[1]["features.parquet"]);

        // A filter that selects nothing is an error for an operator.
        let none = stack.labpipe(&[
            "reprocess",
            "--where",
            "session = '19990101_000000'",
            "--pipeline-version",
            "2",
        ]);
        assert_eq!(none.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&none.stderr).contains("no session matches"));
    });
}

/// The manifest `labpipe upload` would write for a session folder (SHA-256 of each file, no S3
/// checksums).
fn manifest_of(folder: &Path) -> Manifest {
    let report = check_folder(folder, &LabSchema::default()).unwrap();
    let hashes = report
        .files
        .iter()
        .map(|f| {
            (
                hex::encode(Sha256::digest(std::fs::read(folder.join(&f.path)).unwrap())),
                None,
            )
        })
        .collect();
    Manifest::new(&report, hashes, Utc::now()).unwrap()
}

/// Uploads a session's data files except `leave_out`, then its manifest, straight to S3.
async fn upload_without(
    stack: &Stack,
    folder: &Path,
    id: &str,
    revision: u32,
    leave_out: usize,
) -> (String, Vec<u8>) {
    let folder_name = labpipe_core::layout::revision_folder(id, revision);
    let mut manifest = manifest_of(folder);
    manifest.revision = (revision > 1).then(|| labpipe_core::manifest::Revision {
        number: revision,
        reason: "a file re-exported".into(),
    });
    let mut missing = None;
    for (i, f) in manifest.files.iter().enumerate() {
        let bytes = std::fs::read(folder.join(&f.path)).unwrap();
        let key = labpipe_core::layout::raw_key(&folder_name, &f.path);
        if i == leave_out {
            missing = Some((key, bytes));
        } else {
            stack.put_raw(&key, bytes).await;
        }
    }
    let manifest_key = labpipe_core::layout::manifest_key(&folder_name);
    stack
        .put_raw(&manifest_key, manifest.to_json().into_bytes())
        .await;
    missing.expect("the session has that many files")
}

/// A correction that failed ingest (a listed file missing) is re-run by `labpipe redrive` from
/// its own manifest, `raw/<session>.r2/manifest.json`, not the first upload's: once the file is
/// there, revision 2 becomes current and is processed.
#[test]
fn redrive_of_a_corrected_session_sends_its_revisions_manifest() {
    runtime().block_on(async {
        let (stack, _keep, folder, id) = processed_session(24).await;
        let (missing_key, missing_bytes) = upload_without(&stack, &folder, &id, 2, 0).await;
        stack.drain().await;
        let failed = stack.catalog.get(&id).await.unwrap().unwrap();
        assert_eq!(failed.status, Status::Failed, "{failed:?}");
        assert_eq!(failed.status_step.as_deref(), Some("ingest"));
        assert_eq!(
            failed.revision, None,
            "revision 1 stays current: {failed:?}"
        );
        assert!(
            failed
                .status_message
                .as_deref()
                .is_some_and(|m| m.starts_with("revision 2: ")),
            "{failed:?}"
        );

        stack.put_raw(&missing_key, missing_bytes).await;
        stack.drain().await;
        let where_failed = format!("session = '{id}'");
        let done = stack.json(&["redrive", "--where", &where_failed, "--json"]);
        assert_eq!(done["failed"][0]["action"], "ingest", "{done}");
        assert_eq!(
            done["failed"][0]["manifest_key"],
            labpipe_core::layout::revision_manifest_key(&id, 2),
            "{done}"
        );
        stack.drain().await;
        let item = stack.catalog.get(&id).await.unwrap().unwrap();
        assert_eq!(item.revision, Some(2), "{item:?}");
        assert_eq!(item.status, Status::Processed, "{item:?}");
    });
}

#[test]
fn redrive_moves_dead_letters_back_and_re_runs_fixed_failures() {
    runtime().block_on(async {
        // No processed bucket yet: every preprocessing run fails transiently, three receives
        // later the request is in the dead-letter queue and the session is CATALOGED.
        let stack = Stack::create(false).await;
        let (_keep, folder, stuck_id) = generate(21);
        upload(&stack, &folder);
        stack.drain().await;
        assert_eq!(stack.status(&stuck_id).await, Status::Cataloged);
        assert_eq!(stack.depth(&stack.preprocess_dlq).await, 1);

        // A second session fails ingest for good: a listed file is missing.
        let (_keep2, folder2, failed_id) = generate(22);
        let (missing_key, missing_bytes) = upload_without(&stack, &folder2, &failed_id, 1, 0).await;
        stack.drain().await;
        let failed = stack.catalog.get(&failed_id).await.unwrap().unwrap();
        assert_eq!(failed.status, Status::Failed);
        assert_eq!(failed.status_step.as_deref(), Some("ingest"));

        // The dry run names the dead-lettered session and moves nothing.
        let where_failed = format!("session = '{failed_id}'");
        let dry = stack.json(&["redrive", "--dry-run", "--where", &where_failed, "--json"]);
        let pre = dry["dead_letters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["queue"] == "preprocess")
            .unwrap();
        assert_eq!(pre["waiting"][0]["session"], stuck_id.as_str(), "{dry}");
        assert_eq!(dry["failed"][0]["action"], "ingest", "{dry}");
        assert_eq!(stack.depth(&stack.preprocess_dlq).await, 1);
        assert_eq!(stack.depth(&stack.config.ingest_queue_url).await, 0);

        // Fix both causes, then redrive.
        stack
            .clients
            .s3
            .create_bucket()
            .bucket(&stack.config.processed_bucket)
            .send()
            .await
            .unwrap();
        stack.put_raw(&missing_key, missing_bytes).await;
        // The late object's own event is not a manifest's: ingest ignores it.
        stack.drain().await;
        assert_eq!(stack.status(&failed_id).await, Status::Failed);

        let done = stack.json(&["redrive", "--where", &where_failed, "--json"]);
        assert_eq!(done["moved"], 1, "{done}");
        let pre = done["dead_letters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["queue"] == "preprocess")
            .unwrap();
        assert_eq!(pre["moved"][0]["session"], stuck_id.as_str());
        assert_eq!(done["failed"][0]["session"], failed_id.as_str());
        assert_eq!(done["failed"][0]["action"], "ingest");
        assert_eq!(done["resent"], 1);
        assert_eq!(stack.depth(&stack.preprocess_dlq).await, 0);
        // The re-sent ingest event went to the ingest queue, not to its dead-letter queue.
        assert_eq!(stack.depth(&stack.ingest_dlq).await, 0);
        stack.drain().await;
        assert_eq!(stack.status(&stuck_id).await, Status::Processed);
        assert_eq!(stack.status(&failed_id).await, Status::Processed);

        // Nothing left: a second redrive moves nothing.
        let empty = stack.json(&["redrive", "--queue", "preprocess", "--json"]);
        assert_eq!(empty["moved"], 0);
        assert_eq!(empty["dead_letters"].as_array().unwrap().len(), 1);
    });
}

#[test]
fn a_session_without_progress_past_its_budget_shows_stuck_with_its_dead_letter() {
    runtime().block_on(async {
        let stack = Stack::create(false).await;
        let (_keep, folder, stuck_id) = generate(31);
        upload(&stack, &folder);
        stack.drain().await;
        assert_eq!(stack.status(&stuck_id).await, Status::Cataloged);
        let (_keep2, folder2, fresh_id) = generate(32);
        upload(&stack, &folder2);
        // Ingest only: the fresh session is CATALOGED and within its budget.
        let runner = Runner::new(&stack.clients, &stack.config, RunnerOptions::default()).unwrap();
        runner
            .poll_once(labpipe_backend::runner::Queue::Ingest, 1)
            .await
            .unwrap();
        assert_eq!(stack.status(&fresh_id).await, Status::Cataloged);

        // Within the budget nothing is stuck.
        let before = stack.json(&["status", &stuck_id, "--json"]);
        assert!(before[0].get("stuck").is_none(), "{before}");

        // The stuck session's last change was two hours ago (past CATALOGED's 1 h 45 min).
        let mut record = stack.catalog.read_record(&stuck_id).await.unwrap().unwrap();
        record.item.updated_at = Utc::now() - Duration::hours(2);
        stack.catalog.import_sessions(&[record]).await.unwrap();

        let out = stack.labpipe(&["status", &stuck_id, "--json"]);
        assert_eq!(
            out.status.code(),
            Some(1),
            "a stuck session needs someone: exit 1"
        );
        let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
        let stuck = &shown[0]["stuck"];
        assert_eq!(stuck["status"], "CATALOGED", "{shown}");
        assert_eq!(
            stuck["budget_secs"],
            labpipe_catalog::stuck::CATALOGED_BUDGET_SECS
        );
        assert_eq!(stuck["dead_letter"]["queue"], "preprocess");
        assert!(stuck["reason"]
            .as_str()
            .unwrap()
            .contains("labpipe redrive --queue preprocess"));

        let table = stack.labpipe(&["status"]);
        let text = String::from_utf8_lossy(&table.stdout);
        let row = text.lines().find(|l| l.starts_with(&stuck_id)).unwrap();
        assert!(
            row.contains("STUCK") && row.contains("dead-letter"),
            "{text}"
        );
        let fresh = text.lines().find(|l| l.starts_with(&fresh_id)).unwrap();
        assert!(
            fresh.contains("CATALOGED") && !fresh.contains("STUCK"),
            "{text}"
        );
        assert!(text.contains("STUCK 1"), "{text}");

        // Without a readable dead-letter queue the reason is the last error.
        let mut record = stack.catalog.read_record(&fresh_id).await.unwrap().unwrap();
        record.item.updated_at = Utc::now() - Duration::hours(3);
        stack.catalog.import_sessions(&[record]).await.unwrap();
        let out = Command::new(labpipe_bin())
            .args(["status", &fresh_id, "--json"])
            .current_dir(stack.dir.path())
            .envs(Emulator::shared().env())
            .env("LABPIPE_STACK_OUTPUTS", &stack.outputs)
            .env(
                "LABPIPE_PREPROCESS_DEAD_LETTER_QUEUE_URL",
                format!(
                    "{}/000000000000/no-such-queue",
                    Emulator::shared().endpoint()
                ),
            )
            .output()
            .unwrap();
        let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
        let reason = shown[0]["stuck"]["reason"].as_str().unwrap().to_string();
        assert!(
            reason.contains("no dead-letter message names it"),
            "{reason}"
        );
        assert!(
            reason.contains("preprocess dead-letter queue cannot be read"),
            "{reason}"
        );
    });
}

/// A preprocessing run that died (out of memory, past its time limit) leaves its session
/// `PROCESSING`. `labpipe reprocess` leaves a fresh claim to its run, and sends a claim older than
/// one run's limit again: the backend takes the stale claim over and finishes the session.
#[test]
fn reprocess_takes_over_a_session_left_processing_by_a_run_that_died() {
    runtime().block_on(async {
        let (stack, _keep, _folder, id) = processed_session(41).await;
        let filter = format!("session = '{id}'");
        let reprocess = |dry: bool| {
            let mut args = vec![
                "reprocess",
                "--where",
                &filter,
                "--pipeline-version",
                "2",
                "--json",
            ];
            if dry {
                args.push("--dry-run");
            }
            stack.json(&args)
        };

        // The catalog as a run that claimed it `age` ago and then died leaves it: the history,
        // moved back in time, ends in its claim, and nothing changed since.
        let processed = stack.catalog.read_record(&id).await.unwrap().unwrap();
        let claim = |age: Duration| {
            let catalog = &stack.catalog;
            let mut record = processed.clone();
            async move {
                let claimed_at = Utc::now() - age;
                let last = record.events.iter().map(|e| e.at).max().unwrap();
                for e in &mut record.events {
                    e.at = e.at - (last - claimed_at) - Duration::minutes(1);
                }
                let seq = record.events.iter().map(|e| e.seq).max().unwrap() + 1;
                record.events.push(Event {
                    at: claimed_at,
                    seq,
                    status: Some(Status::Processing),
                    from: Some(Status::Processed),
                    step: "preprocess".into(),
                    level: Level::Info,
                    message: "pipeline v2 started".into(),
                });
                record.item.event_count = seq;
                record.item.status = Status::Processing;
                record.item.status_step = Some("preprocess".into());
                record.item.updated_at = claimed_at;
                catalog.import_sessions(&[record]).await.unwrap();
            }
        };
        claim(Duration::minutes(1)).await;
        let fresh = reprocess(true);
        assert_eq!(fresh["sessions"][0]["action"], "skipped", "{fresh}");
        assert!(
            fresh["sessions"][0]["reason"]
                .as_str()
                .is_some_and(|r| r.contains("claimed it 1 min ago")),
            "{fresh}"
        );

        // Two hours later nothing has changed: the run died. Reprocess sends it again.
        claim(Duration::hours(2)).await;
        let sent = reprocess(false);
        assert_eq!(sent["sessions"][0]["action"], "sent", "{sent}");
        stack.drain().await;
        let item = stack.catalog.get(&id).await.unwrap().unwrap();
        assert_eq!(item.status, Status::Processed, "{item:?}");
        assert_eq!(item.pipeline_version, Some(2));
        let versions: Vec<u32> = stack
            .catalog
            .all_outputs(&id)
            .await
            .unwrap()
            .iter()
            .map(|r| r.version)
            .collect();
        assert_eq!(versions, [1, 2]);
    });
}

/// A session corrected after its first upload: the plain upload refuses it as a conflict naming
/// the file that differs and saying how to revise; `upload --revise --reason` puts it up as
/// revision 2 beside the first, which stays byte for byte; ingest makes revision 2 current (with
/// its reason in the history) and preprocessing runs on its files.
#[test]
fn a_corrected_session_becomes_revision_two_and_the_first_stays_as_it_was() {
    runtime().block_on(async {
        let (stack, _keep, folder, id) = processed_session(21).await;
        let raw = stack.config.raw_bucket.clone();
        let first = stack.catalog.get(&id).await.unwrap().unwrap();
        let v1_before = stack.catalog.outputs(&id, 1, 1).await.unwrap().unwrap();
        let mut v1_before_bytes = Vec::new();
        for f in &v1_before.files {
            v1_before_bytes.push(object_bytes(&stack.clients.s3, &v1_before.bucket, &f.key).await);
        }

        // Correct one data file in place: same size, other bytes, and an mtime that differs
        // from the first upload's but is not fresh (a fresh change would make the session "still
        // being written").
        let data = std::fs::read_dir(&folder)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "bin"))
            .min()
            .expect("a data file");
        let name = data.file_name().unwrap().to_string_lossy().into_owned();
        let rev1_key = labpipe_core::layout::raw_key(&id, &name);
        let rev1_bytes = object_bytes(&stack.clients.s3, &raw, &rev1_key).await;
        let mtime = std::fs::metadata(&data).unwrap().modified().unwrap();
        let mut bytes = std::fs::read(&data).unwrap();
        let mid = bytes.len() / 2;
        for b in &mut bytes[mid..mid + 4096] {
            *b = b.wrapping_add(97);
        }
        std::fs::write(&data, &bytes).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&data)
            .unwrap()
            .set_modified(mtime - std::time::Duration::from_secs(3600))
            .unwrap();

        // A plain upload meets the first revision: a conflict that names the file and says how
        // to revise; nothing is written.
        let plain = stack.labpipe(&[
            "upload",
            folder.to_str().unwrap(),
            "--bucket",
            &raw,
            "--json",
        ]);
        let refusal = format!(
            "{}{}",
            String::from_utf8_lossy(&plain.stdout),
            String::from_utf8_lossy(&plain.stderr)
        );
        assert_eq!(plain.status.code(), Some(1), "{refusal}");
        // Refused before a byte is sent, naming the changed file and the correction command.
        assert!(
            refusal.contains("\"code\":\"changed_since_upload\"")
                && refusal.contains(&format!("changed {name}"))
                && refusal.contains("labpipe upload --revise"),
            "the refusal must name the changed {name} and the --revise command: {refusal}"
        );

        // The correction as revision 2.
        let reason = "rec re-exported with the right gain";
        let revised = stack.labpipe(&[
            "upload",
            folder.to_str().unwrap(),
            "--bucket",
            &raw,
            "--revise",
            "--reason",
            reason,
            "--json",
        ]);
        assert!(
            revised.status.success(),
            "upload --revise failed: {}{}",
            String::from_utf8_lossy(&revised.stdout),
            String::from_utf8_lossy(&revised.stderr)
        );
        let rev2_key =
            labpipe_core::layout::raw_key(&labpipe_core::layout::revision_folder(&id, 2), &name);
        assert_eq!(
            object_bytes(&stack.clients.s3, &raw, &rev2_key).await,
            bytes,
            "revision 2 holds the corrected file"
        );
        let manifest: Manifest = serde_json::from_slice(
            &object_bytes(
                &stack.clients.s3,
                &raw,
                &labpipe_core::layout::revision_manifest_key(&id, 2),
            )
            .await,
        )
        .unwrap();
        assert_eq!(manifest.revision_number(), 2);
        assert_eq!(manifest.revision.as_ref().unwrap().reason, reason);

        stack.drain().await;
        let item = stack.catalog.get(&id).await.unwrap().unwrap();
        assert_eq!(item.status, Status::Processed, "{item:?}");
        assert_eq!(item.revision, Some(2));
        assert_eq!(item.revision_reason.as_deref(), Some(reason));
        assert!(
            item.raw_prefix
                .as_deref()
                .is_some_and(|p| p.ends_with(&format!(
                    "/{}",
                    labpipe_core::layout::raw_session_prefix(
                        &labpipe_core::layout::revision_folder(&id, 2)
                    )
                ))),
            "{item:?}"
        );
        assert_ne!(item.manifest_sha256, first.manifest_sha256);
        let events = stack.catalog.events(&id).await.unwrap();
        assert!(
            events
                .iter()
                .any(|e| e.message.contains("revision 2") && e.message.contains(reason)),
            "the history names the revision and its reason: {events:?}"
        );
        // Preprocessing ran on the corrected file: new features, in revision 2's own outputs.
        let v1_after = stack.catalog.outputs(&id, 1, 2).await.unwrap().unwrap();
        let features = |r: &labpipe_catalog::OutputRecord| {
            r.files
                .iter()
                .find(|f| f.key.ends_with("features.parquet"))
                .unwrap()
                .clone()
        };
        assert_ne!(features(&v1_before).sha256, features(&v1_after).sha256);
        assert_eq!(
            v1_after.prefix,
            labpipe_core::layout::processed_prefix(1, &id, 2)
        );
        // Revision 1's outputs are kept, record and bytes, beside revision 2's.
        assert_eq!(
            stack.catalog.outputs(&id, 1, 1).await.unwrap().as_ref(),
            Some(&v1_before)
        );
        for (f, bytes) in v1_before.files.iter().zip(&v1_before_bytes) {
            assert!(
                &object_bytes(&stack.clients.s3, &v1_before.bucket, &f.key).await == bytes,
                "revision 2's run overwrote revision 1's {}",
                f.key
            );
        }
        // Revision 1 is exactly as it was, and still readable.
        assert_eq!(
            object_bytes(&stack.clients.s3, &raw, &rev1_key).await,
            rev1_bytes
        );
        // status shows the revision, and lists both revisions' outputs.
        let status = stack.json(&["status", &id, "--json"]);
        assert_eq!(status[0]["revision"], 2, "{status}");
        let listed: Vec<(u64, u64, String)> = status[0]["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                (
                    o["version"].as_u64().unwrap(),
                    o["revision"].as_u64().unwrap(),
                    o["prefix"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(
            listed,
            [
                (1, 1, labpipe_core::layout::processed_prefix(1, &id, 1)),
                (1, 2, labpipe_core::layout::processed_prefix(1, &id, 2)),
            ],
            "{status}"
        );
        let human = String::from_utf8_lossy(&stack.labpipe(&["status", &id]).stdout).into_owned();
        assert!(
            human.contains("v1  r1 ") && human.contains("v1  r2 (current)"),
            "{human}"
        );

        // sync fetches the current revision's outputs; --revision 1 the first upload's.
        let filter = format!("session = '{id}'");
        let outputs = tempfile::tempdir().unwrap();
        for (revision, want) in [(None, &v1_after), (Some("1"), &v1_before)] {
            let dest = outputs.path().join(revision.unwrap_or("current"));
            let out = match revision {
                Some(r) => stack.sync(&filter, &dest, &["--revision", r]),
                None => stack.sync(&filter, &dest, &[]),
            };
            assert!(out.status.success(), "sync {revision:?}: {}", said(&out));
            let got = std::fs::read(dest.join(&id).join("features.parquet")).unwrap();
            assert_eq!(
                hex::encode(Sha256::digest(&got)),
                features(want).sha256,
                "sync {revision:?} gave another revision's features"
            );
        }

        // sync --raw reads the current revision; --raw-revision 1 the first upload's bytes.
        let filter = format!("session = '{id}'");
        let sync_raw = |dest: &Path, revision: Option<&str>| match revision {
            Some(r) => stack.sync(&filter, dest, &["--raw", "--raw-revision", r]),
            None => stack.sync(&filter, dest, &["--raw"]),
        };
        let synced = tempfile::tempdir().unwrap();
        for (revision, want) in [(None, &bytes), (Some("1"), &rev1_bytes)] {
            let dest = synced.path().join(revision.unwrap_or("current"));
            let out = sync_raw(&dest, revision);
            assert!(
                out.status.success(),
                "sync --raw {revision:?}: {}",
                said(&out)
            );
            let got = std::fs::read(dest.join(&id).join("raw").join(&name)).unwrap();
            assert!(&got == want, "sync --raw {revision:?} gave other bytes");
        }
        let missing = sync_raw(&synced.path().join("r7"), Some("7"));
        let said = String::from_utf8_lossy(&missing.stderr).into_owned();
        assert!(
            !missing.status.success() && said.contains("no revision 7"),
            "{said}"
        );
    });
}

/// Puts a session's files and its manifest straight into the raw bucket, the manifest edited by
/// `edit` first: what an older or foreign client could upload.
async fn upload_straight(stack: &Stack, folder: &Path, id: &str, edit: impl FnOnce(&mut Manifest)) {
    let mut manifest = manifest_of(folder);
    edit(&mut manifest);
    for f in &manifest.files {
        let bytes = std::fs::read(folder.join(&f.path)).unwrap();
        stack
            .put_raw(&labpipe_core::layout::raw_key(id, &f.path), bytes)
            .await;
    }
    let manifest_key = labpipe_core::layout::manifest_key(id);
    stack
        .put_raw(&manifest_key, manifest.to_json().into_bytes())
        .await;
}

/// The text of a command's stdout and stderr, for assertions.
fn said(out: &Output) -> String {
    format!(
        "exit {:?}\n{}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A session whose catalog entry would exceed DynamoDB's 400 KB item (a metadata value an older
/// client let through) is not lost in ingest: it ends `FAILED` on a bare entry, with the value
/// that is too big, its size, the limit and what to do; following that advice (a correction with
/// the metadata fixed) catalogs and processes it.
#[test]
fn a_session_too_big_for_the_catalog_ends_failed_naming_the_value_and_what_to_do() {
    runtime().block_on(async {
        let stack = Stack::create(true).await;
        let (_keep, folder, id) = generate(41);
        upload_straight(&stack, &folder, &id, |m| {
            m.metadata.insert(
                "notes".into(),
                labpipe_core::MetaValue::Text("electrode drift; ".repeat(25_000)),
            );
        })
        .await;
        stack.drain().await;

        let item = stack
            .catalog
            .get(&id)
            .await
            .unwrap()
            .expect("the session has a catalog entry");
        assert_eq!(item.status, Status::Failed, "{item:?}");
        assert_eq!(item.status_step.as_deref(), Some("ingest"));
        assert!(item.metadata.is_empty(), "a bare entry: {item:?}");
        let message = item.status_message.clone().unwrap();
        for want in [
            "metadata 'notes' 415.",
            "400.0 KB",
            "labpipe upload --revise --reason TEXT FOLDER",
        ] {
            assert!(message.contains(want), "{want:?} not in {message}");
        }
        let out = stack.labpipe(&["status", &id]);
        assert_eq!(out.status.code(), Some(1), "{}", said(&out));
        let text = said(&out);
        assert!(
            text.contains(&format!("{id}  FAILED")) && text.contains("metadata 'notes'"),
            "{text}"
        );

        // The advice: a correction (the folder's metadata file has no such value).
        let out = stack.labpipe(&[
            "upload",
            folder.to_str().unwrap(),
            "--bucket",
            &stack.config.raw_bucket,
            "--revise",
            "--reason",
            "notes shortened",
        ]);
        assert!(out.status.success(), "{}", said(&out));
        stack.drain().await;
        assert_eq!(stack.status(&id).await, Status::Processed);
    });
}

/// An S3 event that ingest cannot handle on any delivery ends in the ingest dead-letter queue.
/// Its session is never invisible: when the catalog can be written, ingest's last delivery
/// leaves a `FAILED` entry that says where the event is and how to move it on; when the catalog
/// is what fails, `labpipe status` finds the event in the dead-letter queue and says `STUCK`.
/// Following the printed command (`labpipe redrive --queue ingest`) processes both.
#[test]
fn a_session_whose_ingest_event_is_dead_lettered_shows_failed_or_stuck_with_the_redrive() {
    runtime().block_on(async {
        let stack = Stack::create(true).await;
        let sdk = Emulator::shared().sdk_config().await;
        // Ingest's S3 reads fail on every delivery (nothing listens on the port).
        let (_keep, folder, unreadable) = generate(51);
        upload(&stack, &folder);
        let mut broken = stack.clients.clone();
        broken.s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&sdk)
                .endpoint_url("http://127.0.0.1:9")
                .force_path_style(true)
                .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
                .build(),
        );
        dead_letter_all(&stack, &broken, &stack.config).await;
        let item = stack
            .catalog
            .get(&unreadable)
            .await
            .unwrap()
            .expect("ingest's last delivery leaves an entry");
        assert_eq!(item.status, Status::Failed, "{item:?}");
        let message = item.status_message.clone().unwrap();
        for want in [
            "all 5 deliveries",
            "ingest dead-letter queue",
            "labpipe redrive --queue ingest",
        ] {
            assert!(message.contains(want), "{want:?} not in {message}");
        }
        let out = stack.labpipe(&["status", &unreadable]);
        assert_eq!(out.status.code(), Some(1), "{}", said(&out));
        assert!(
            said(&out).contains(&format!("{unreadable}  FAILED")),
            "{}",
            said(&out)
        );

        // The catalog is what fails (a wrong table): nothing can be recorded there.
        let (_keep2, folder2, uncataloged) = generate(52);
        upload(&stack, &folder2);
        let mut wrong_table = stack.config.clone();
        wrong_table.table = unique_name("no-such-table");
        dead_letter_all(&stack, &stack.clients, &wrong_table).await;
        assert!(stack.catalog.get(&uncataloged).await.unwrap().is_none());
        let out = stack.labpipe(&["status", &uncataloged]);
        let text = said(&out);
        assert_eq!(out.status.code(), Some(1), "{text}");
        assert!(text.contains(&format!("{uncataloged}  STUCK")), "{text}");
        assert!(
            text.contains("S3 event is in the ingest dead-letter queue")
                && text.contains("labpipe redrive --queue ingest"),
            "{text}"
        );
        let out = stack.labpipe(&["status", &uncataloged, "--json"]);
        let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            shown[0]["stuck"]["dead_letter"]["queue"], "ingest",
            "{shown}"
        );

        // The printed command moves both on once the cause is gone.
        let out = stack.labpipe(&["redrive", "--queue", "ingest"]);
        assert!(out.status.success(), "{}", said(&out));
        stack.drain().await;
        assert_eq!(stack.status(&unreadable).await, Status::Processed);
        assert_eq!(stack.status(&uncataloged).await, Status::Processed);
    });
}

/// Runs ingest with `clients` and `config` until the ingest queue is empty, every message having
/// gone to its dead-letter queue (retries after 1 s).
async fn dead_letter_all(stack: &Stack, clients: &Clients, config: &BackendConfig) {
    let runner = Runner::new(
        clients,
        config,
        RunnerOptions {
            wait_secs: 1,
            batch_size: 10,
            retry_after_secs: 1,
        },
    )
    .unwrap();
    let before = stack.depth(&stack.ingest_dlq).await;
    for _ in 0..60 {
        runner
            .poll_once(labpipe_backend::runner::Queue::Ingest, 1)
            .await
            .unwrap();
        if stack.depth(&stack.config.ingest_queue_url).await == 0 {
            assert!(stack.depth(&stack.ingest_dlq).await > before);
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    panic!("the ingest queue did not empty");
}
