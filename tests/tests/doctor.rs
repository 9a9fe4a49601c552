//! `labpipe doctor` end to end on the emulator: a healthy configuration passes every check; a
//! message in a dead-letter queue, a wrong table name, a recently FAILED session and missing
//! credentials each fail their check, say what to do, and make the exit code 1.
//!
//! Needs the binary: `cargo build -p labpipe-cli` before `cargo test -p labpipe-tests --test doctor`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use chrono::Utc;
use labpipe_catalog::{Catalog, SessionItem, Status};
use labpipe_core::SessionId;
use labpipe_tests::{labpipe_bin, Emulator, QueueStack};
use serde_json::Value;

/// A stack with queues ([`QueueStack`]) and its outputs file, which `labpipe doctor` reads.
struct Stack {
    sqs: aws_sdk_sqs::Client,
    catalog: Catalog,
    outputs: PathBuf,
    ingest_dlq: String,
    dir: tempfile::TempDir,
}

impl Stack {
    async fn new() -> Stack {
        let emulator = Emulator::shared();
        let stack = QueueStack::create(emulator).await;
        let dir = tempfile::tempdir().unwrap();
        let outputs = dir.path().join("outputs.json");
        std::fs::write(&outputs, serde_json::to_string(&stack.outputs()).unwrap()).unwrap();
        Stack {
            sqs: aws_sdk_sqs::Client::new(&emulator.sdk_config().await),
            catalog: Catalog::new(emulator.dynamodb_client().await, &stack.table),
            outputs,
            ingest_dlq: stack.ingest_dead_letter_queue_url,
            dir,
        }
    }

    fn doctor(&self, extra: &[&str], env: &[(&str, &str)], remove: &[&str]) -> (Output, Value) {
        let mut cmd = Command::new(labpipe_bin());
        cmd.envs(Emulator::shared().env())
            .env_remove("LABPIPE_TABLE")
            .env_remove("LABPIPE_RAW_BUCKET")
            .env_remove("LABPIPE_PROCESSED_BUCKET")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .current_dir(self.dir.path())
            .arg("doctor")
            .arg("--stack-outputs")
            .arg(&self.outputs)
            .arg("--json")
            .args(extra);
        for k in remove {
            cmd.env_remove(k);
        }
        cmd.envs(env.iter().copied());
        let out = cmd.output().unwrap();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out, v)
    }
}

fn find<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check '{name}' in {v:#}"))
}

fn outcomes(v: &Value) -> Vec<(String, String)> {
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().into(),
                c["outcome"].as_str().unwrap().into(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_passes_a_healthy_stack_and_names_each_problem() {
    let stack = Stack::new().await;

    let (out, v) = stack.doctor(&[], &[], &[]);
    assert_eq!(out.status.code(), Some(0), "{v:#}");
    assert_eq!(v["ok"], true);
    let all = outcomes(&v);
    assert_eq!(all.len(), 11, "{all:?}");
    assert!(all.iter().all(|(_, o)| o == "ok"), "{all:?}");
    assert!(find(&v, "ingest queue")["detail"]
        .as_str()
        .unwrap()
        .contains("0 waiting"));

    // A message in the ingest dead-letter queue.
    stack
        .sqs
        .send_message()
        .queue_url(&stack.ingest_dlq)
        .message_body(r#"{"Records": []}"#)
        .send()
        .await
        .unwrap();
    // A session that failed just now.
    let session = "20210301_161221";
    let mut item = SessionItem::placeholder(
        session,
        SessionId::parse(session).unwrap().recorded_at(),
        Status::Failed,
        Utc::now(),
    );
    item.status_step = Some("preprocess".into());
    item.status_message = Some("ch03.bin is not a whole number of frames".into());
    stack.catalog.put_new_session(&item).await.unwrap();

    let (out, v) = stack.doctor(&[], &[], &[]);
    assert_eq!(out.status.code(), Some(1), "{v:#}");
    assert_eq!(v["ok"], false);
    let dlq = find(&v, "ingest dead-letter queue");
    assert_eq!(dlq["outcome"], "fail", "{dlq:#}");
    assert!(
        dlq["detail"].as_str().unwrap().starts_with("1 message"),
        "{dlq:#}"
    );
    assert!(
        dlq["fix"].as_str().unwrap().contains("log group"),
        "{dlq:#}"
    );
    assert_eq!(find(&v, "preprocess dead-letter queue")["outcome"], "ok");
    let failures = find(&v, "recent failures");
    assert_eq!(failures["outcome"], "fail", "{failures:#}");
    assert!(
        failures["detail"].as_str().unwrap().contains(session),
        "{failures:#}"
    );
    assert!(failures["fix"]
        .as_str()
        .unwrap()
        .contains(&format!("labpipe status {session}")));

    // A wrong table name (a flag wins over the outputs file).
    let (out, v) = stack.doctor(&["--table", "no-such-table"], &[], &[]);
    assert_eq!(out.status.code(), Some(1));
    let table = find(&v, "catalog table");
    assert_eq!(table["outcome"], "fail", "{table:#}");
    assert!(
        table["detail"]
            .as_str()
            .unwrap()
            .contains("no-such-table does not exist"),
        "{table:#}"
    );
    assert_eq!(find(&v, "recent failures")["outcome"], "skipped");

    // The human form says what to do under each problem.
    let mut cmd = Command::new(labpipe_bin());
    let out = cmd
        .envs(Emulator::shared().env())
        .current_dir(stack.dir.path())
        .args(["doctor", "--table", "no-such-table", "--stack-outputs"])
        .arg(&stack.outputs)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with("FAIL") && l.contains("catalog table")),
        "{text}"
    );
    assert!(
        text.contains("→ check CatalogTable in the stack outputs"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_without_credentials_says_how_to_get_them() {
    let stack = Stack::new().await;
    let empty = stack.dir.path().join("no-aws");
    std::fs::create_dir_all(&empty).unwrap();
    let nowhere = |f: &str| -> String { Path::new(&empty).join(f).display().to_string() };
    let (config, creds) = (nowhere("config"), nowhere("credentials"));
    let (out, v) = stack.doctor(
        &[],
        &[
            ("AWS_CONFIG_FILE", &config),
            ("AWS_SHARED_CREDENTIALS_FILE", &creds),
        ],
        &[
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_PROFILE",
            "AWS_SESSION_TOKEN",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{v:#}");
    let c = find(&v, "credentials");
    assert_eq!(c["outcome"], "fail", "{c:#}");
    assert!(c["fix"].as_str().unwrap().contains("AWS_PROFILE"), "{c:#}");
    assert_eq!(find(&v, "catalog table")["outcome"], "skipped");
}
