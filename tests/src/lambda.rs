//! The deployed pipeline, run through its packaged Lambdas: the stack of `infra/template.yaml`
//! on the emulator (`scripts/deploy-local.sh`), the zips of `scripts/package-lambdas.sh`, and
//! what Lambda's SQS event source mapping does between a queue and a function (receive a batch,
//! invoke with an SQS event, delete what the function did not report as failed).
//! See [`crate::runtime_api`] for how the bootstraps run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{bail, ensure, Context as _};
use aws_sdk_sqs::types::{Message, MessageSystemAttributeName};
use serde_json::{json, Value};

use crate::{repo_root, Emulator, REGION};

/// Packages live in `<temp>/labpipe-lambda-package-<pid of the test process>`.
const PACKAGE_DIR_PREFIX: &str = "labpipe-lambda-package-";

/// Removes the packages of test processes that have ended: the static that holds a package's path
/// is never dropped, so each run used to leave its zips behind.
fn sweep_packages_of_ended_runs() {
    crate::sweep_temp_dirs(PACKAGE_DIR_PREFIX, |_, pid| !crate::process_runs(pid));
}

/// The folder holding `ingest.zip` and `preprocess.zip`: `LABPIPE_LAMBDA_PACKAGE`, else made
/// once per test process by `scripts/package-lambdas.sh`. By default the script zips the debug
/// executables of the build the tests come from (`--from-build`: `cargo build --workspace
/// --bins`, or `-p labpipe-backend --bins`, must have run, as for [`crate::labpipe_bin`]); with
/// `LABPIPE_LAMBDA_CARGO_LAMBDA=1` it runs cargo-lambda (a second build of the backend for its
/// explicit target, minutes on a small machine).
pub fn lambda_package() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Some(p) = std::env::var_os("LABPIPE_LAMBDA_PACKAGE").filter(|p| !p.is_empty()) {
            return PathBuf::from(p);
        }
        sweep_packages_of_ended_runs();
        let out = std::env::temp_dir().join(format!("{PACKAGE_DIR_PREFIX}{}", std::process::id()));
        let mut cmd = Command::new("bash");
        // The target dir this test was built in (`<target>/debug/deps/<test>`), so the script
        // finds the backend's executables from the same build.
        if let Some(target) = std::env::current_exe()
            .ok()
            .and_then(|e| Some(e.parent()?.parent()?.parent()?.to_path_buf()))
        {
            cmd.env("CARGO_TARGET_DIR", target);
        }
        cmd.arg(repo_root().join("scripts/package-lambdas.sh"))
            .arg("--out")
            .arg(&out);
        if std::env::var("LABPIPE_LAMBDA_CARGO_LAMBDA").as_deref() != Ok("1") {
            cmd.arg("--from-build");
        }
        let started = std::time::Instant::now();
        let output = cmd.output().expect("cannot run scripts/package-lambdas.sh");
        assert!(
            output.status.success(),
            "scripts/package-lambdas.sh failed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        eprintln!(
            "packaged the Lambdas in {:.1}s:\n{}",
            started.elapsed().as_secs_f64(),
            String::from_utf8_lossy(&output.stdout)
        );
        out
    })
    .clone()
}

/// Deploys the stack to `emu` with `scripts/deploy-local.sh` (template + emulator-only step) and
/// returns its outputs.
pub fn deploy_local(emu: &Emulator, dir: &Path, stack: &str) -> anyhow::Result<Value> {
    let outputs = dir.join(format!("{stack}-outputs.json"));
    let out = Command::new("bash")
        .arg(repo_root().join("scripts/deploy-local.sh"))
        .args(["--endpoint", &emu.endpoint(), "--stack", stack, "--outputs"])
        .arg(&outputs)
        .envs(emu.env())
        .output()
        .context("scripts/deploy-local.sh")?;
    ensure!(
        out.status.success(),
        "deploying the stack to the emulator failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&std::fs::read(&outputs)?)?)
}

/// An output of a stack's outputs JSON.
pub fn output(outputs: &Value, key: &str) -> String {
    outputs[key]
        .as_str()
        .unwrap_or_else(|| panic!("stack output {key} is missing: {outputs}"))
        .to_string()
}

/// The environment `function` (a logical id of the template, e.g. `IngestFunction`) gets on
/// AWS: its `Environment.Variables` read from `infra/template.yaml`, each `!Ref` resolved
/// through the stack outputs, plus what the runtime provides (region, credentials) and the
/// emulator's endpoint.
pub fn function_env(
    emu: &Emulator,
    function: &str,
    outputs: &Value,
) -> anyhow::Result<Vec<(String, String)>> {
    let template = std::fs::read_to_string(repo_root().join("infra/template.yaml"))?;
    let mut env = Vec::new();
    let mut in_function = false;
    let mut in_vars: Option<usize> = None;
    for line in template.lines() {
        let indent = line.len() - line.trim_start().len();
        if indent == 2 && line.trim_end().ends_with(':') {
            in_function = line.trim() == format!("{function}:");
            in_vars = None;
            continue;
        }
        if !in_function {
            continue;
        }
        if line.trim() == "Variables:" {
            in_vars = Some(indent);
            continue;
        }
        let Some(vars_indent) = in_vars else { continue };
        if line.trim().is_empty() || indent <= vars_indent {
            in_vars = None;
            continue;
        }
        let (key, value) = line.trim().split_once(':').context("variable line")?;
        let value = value.trim();
        let value = match value.strip_prefix("!Ref ") {
            // The output that names the same resource.
            Some(logical) => {
                let out = match logical {
                    "IngestQueue" | "PreprocessQueue" => format!("{logical}Url"),
                    other => other.to_string(),
                };
                outputs[&out]
                    .as_str()
                    .with_context(|| {
                        format!(
                            "{function}: {key} refers to {logical}, and no output {out} names it"
                        )
                    })?
                    .to_string()
            }
            None if value.starts_with('!') => {
                bail!("{function}: {key} = {value}: teach function_env this intrinsic")
            }
            None => value.trim_matches('"').to_string(),
        };
        env.push((key.to_string(), value));
    }
    ensure!(
        !env.is_empty(),
        "no Environment.Variables for {function} in infra/template.yaml"
    );
    for (k, v) in emu.env() {
        env.push((k.to_string(), v));
    }
    env.push(("AWS_DEFAULT_REGION".into(), REGION.into()));
    Ok(env)
}

/// The ARN of a queue, from its URL (`.../<account>/<name>`).
pub fn queue_arn(url: &str) -> String {
    let mut parts = url.rsplit('/');
    let name = parts.next().unwrap_or_default();
    let account = parts.next().unwrap_or_default();
    format!("arn:aws:sqs:{REGION}:{account}:{name}")
}

/// Receives up to `max` messages (waiting up to `wait_secs` for the first).
pub async fn receive(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    max: i32,
    wait_secs: i32,
) -> anyhow::Result<Vec<Message>> {
    let out = sqs
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(max)
        .wait_time_seconds(wait_secs)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await
        .with_context(|| format!("receive from {url}"))?;
    Ok(out.messages().to_vec())
}

/// The event Lambda's SQS event source mapping invokes a function with, as AWS documents it
/// (<https://docs.aws.amazon.com/lambda/latest/dg/with-sqs.html>, "Example standard queue
/// message event").
pub fn sqs_event(queue_url: &str, messages: &[Message]) -> Value {
    let records: Vec<Value> = messages
        .iter()
        .map(|m| {
            let attributes: serde_json::Map<String, Value> = m
                .attributes()
                .map(|a| {
                    a.iter()
                        .map(|(k, v)| (k.as_str().to_string(), json!(v)))
                        .collect()
                })
                .unwrap_or_default();
            json!({
                "messageId": m.message_id(),
                "receiptHandle": m.receipt_handle(),
                "body": m.body(),
                "attributes": attributes,
                "messageAttributes": {},
                "md5OfBody": m.md5_of_body(),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn(queue_url),
                "awsRegion": REGION,
            })
        })
        .collect();
    json!({ "Records": records })
}

/// The message ids a function's SQS batch response reports as failed
/// (`{"batchItemFailures": [{"itemIdentifier": id}]}`).
pub fn batch_item_failures(response: &Value) -> anyhow::Result<Vec<String>> {
    let failures = response
        .get("batchItemFailures")
        .and_then(Value::as_array)
        .with_context(|| format!("not an SQS batch response: {response}"))?;
    failures
        .iter()
        .map(|f| {
            f.get("itemIdentifier")
                .and_then(Value::as_str)
                .map(str::to_string)
                .with_context(|| format!("batch item failure without itemIdentifier: {response}"))
        })
        .collect()
}

/// Deletes the messages of a batch that the function did not report as failed, as the event
/// source mapping does with `ReportBatchItemFailures`.
pub async fn settle(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    messages: &[Message],
    failed: &[String],
) -> anyhow::Result<()> {
    for m in messages {
        if failed.iter().any(|f| Some(f.as_str()) == m.message_id()) {
            continue;
        }
        sqs.delete_message()
            .queue_url(url)
            .receipt_handle(m.receipt_handle().unwrap_or_default())
            .send()
            .await
            .context("delete message")?;
    }
    Ok(())
}
