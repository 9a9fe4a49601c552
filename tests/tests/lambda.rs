//! The Lambda path as AWS runs it: the packaged `bootstrap` executables (the zips a lab
//! deploys, from `scripts/package-lambdas.sh`) started under a Lambda Runtime API
//! (`labpipe_tests::runtime_api`), fed the SQS events the emulator's queues hold after a real
//! `labpipe upload` to a stack deployed from `infra/template.yaml`, until the catalog says
//! PROCESSED. The event source mapping's part (receive a batch, invoke, delete what did not
//! fail) is done here, as `labpipe_tests::lambda` documents.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use labpipe_catalog::{Catalog, Status};
use labpipe_sample::{generate, GenerateOptions};
use labpipe_tests::lambda::{
    batch_item_failures, deploy_local, function_env, lambda_package, output, receive, settle,
    sqs_event,
};
use labpipe_tests::runtime_api::{LambdaFunction, Outcome};
use labpipe_tests::{labpipe_bin, Emulator};
use serde_json::Value;

const FUNCTION_TIMEOUT: Duration = Duration::from_secs(120);

fn response(outcome: Outcome) -> Result<Value> {
    match outcome {
        Outcome::Response(v) => Ok(v),
        Outcome::Error { error_type, body } => anyhow::bail!("function error {error_type}: {body}"),
    }
}

fn upload(emu: &Emulator, dir: &Path, session: &Path, bucket: &str) -> Result<()> {
    let out = Command::new(labpipe_bin())
        .envs(emu.env())
        .env("LABPIPE_JOURNAL", dir.join("journal.sqlite3"))
        .env("LABPIPE_LOG_DIR", dir.join("logs"))
        .arg("upload")
        .arg(session)
        .args(["--bucket", bucket, "--json"])
        .output()?;
    ensure!(
        out.status.success(),
        "labpipe upload failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uploaded_session_reaches_processed_through_the_packaged_lambdas() -> Result<()> {
    tokio::time::timeout(Duration::from_secs(420), run()).await?
}

async fn run() -> Result<()> {
    let t0 = Instant::now();
    let package = tokio::task::spawn_blocking(lambda_package).await?;
    let t_package = t0.elapsed();
    let emu = Emulator::start();
    let dir = tempfile::tempdir()?;
    let outputs = tokio::task::block_in_place(|| deploy_local(&emu, dir.path(), "lplambda"))?;
    let t_deploy = t0.elapsed();
    let (raw, table) = (
        output(&outputs, "RawBucket"),
        output(&outputs, "CatalogTable"),
    );
    let (ingest_url, preprocess_url) = (
        output(&outputs, "IngestQueueUrl"),
        output(&outputs, "PreprocessQueueUrl"),
    );

    let mut opts = GenerateOptions::new(dir.path().join("lab"));
    opts.count = 1;
    opts.size_bytes = 3 * 1024 * 1024;
    opts.seed = 12;
    let made = generate(&opts, |_, _| {})?;
    let session = made[0].name.clone();
    tokio::task::block_in_place(|| upload(&emu, dir.path(), &made[0].path, &raw))?;

    let mut ingest = LambdaFunction::start(
        "lplambda-ingest",
        &package.join("ingest.zip"),
        dir.path(),
        &function_env(&emu, "IngestFunction", &outputs)?,
        FUNCTION_TIMEOUT,
    )
    .await?;
    let mut preprocess = LambdaFunction::start(
        "lplambda-preprocess",
        &package.join("preprocess.zip"),
        dir.path(),
        &function_env(&emu, "PreprocessFunction", &outputs)?,
        FUNCTION_TIMEOUT,
    )
    .await?;

    let sdk = emu.sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let catalog = Catalog::new(aws_sdk_dynamodb::Client::new(&sdk), &table);

    // What the event source mappings do: batches of up to 10 (ingest) and 1 (preprocess), as
    // the template's BatchSize says.
    let mut manifest_event_body = None;
    let mut invocations = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(240);
    let status = loop {
        let batch = receive(&sqs, &ingest_url, 10, 1).await?;
        if !batch.is_empty() {
            if let Some(m) = batch
                .iter()
                .find(|m| m.body().is_some_and(|b| b.contains("manifest.json")))
            {
                manifest_event_body.get_or_insert_with(|| m.body().unwrap_or_default().to_string());
            }
            let answer = response(ingest.invoke(&sqs_event(&ingest_url, &batch)).await?)?;
            let failed = batch_item_failures(&answer)?;
            ensure!(
                failed.is_empty(),
                "ingest reported failures {failed:?}\n{}",
                ingest.log_text()
            );
            settle(&sqs, &ingest_url, &batch, &failed).await?;
            invocations.0 += 1;
        }
        let batch = receive(&sqs, &preprocess_url, 1, 1).await?;
        if !batch.is_empty() {
            let answer = response(
                preprocess
                    .invoke(&sqs_event(&preprocess_url, &batch))
                    .await?,
            )?;
            let failed = batch_item_failures(&answer)?;
            ensure!(
                failed.is_empty(),
                "preprocess reported failures {failed:?}\n{}",
                preprocess.log_text()
            );
            settle(&sqs, &preprocess_url, &batch, &failed).await?;
            invocations.1 += 1;
        }
        let item = catalog.get(&session).await?;
        let status = item.as_ref().map(|i| i.status);
        if status == Some(Status::Processed) || status == Some(Status::Failed) {
            break status;
        }
        ensure!(
            Instant::now() < deadline,
            "{session} is {status:?} after 240s\ningest log:\n{}\npreprocess log:\n{}",
            ingest.log_text(),
            preprocess.log_text()
        );
    };
    ensure!(
        status == Some(Status::Processed),
        "{session} ended {status:?}\ningest log:\n{}\npreprocess log:\n{}",
        ingest.log_text(),
        preprocess.log_text()
    );
    let t_processed = t0.elapsed();
    ensure!(
        invocations.0 >= 1 && invocations.1 >= 1,
        "invocations {invocations:?}"
    );
    // The bootstraps spoke the runtime API: each polled for work and posted a response.
    for f in [&ingest, &preprocess] {
        let served = f.api().served();
        ensure!(
            served.iter().filter(|s| *s == "next").count() >= 2
                && served.contains(&"response".to_string()),
            "{} runtime API calls: {served:?}",
            f.name
        );
    }
    // The Lambdas log JSON lines for CloudWatch (the FAILED-sessions metric filter reads them).
    ensure!(
        ingest
            .log_text()
            .lines()
            .any(|l| l.trim_start().starts_with('{') && l.contains(&session)),
        "ingest wrote no JSON log line naming {session}:\n{}",
        ingest.log_text()
    );

    // The catalog the Lambdas wrote answers `labpipe query` with the processed files.
    let out = Command::new(labpipe_bin())
        .envs(emu.env())
        .env("LABPIPE_TABLE", &table)
        .args([
            "query",
            &format!("session = \"{session}\""),
            "--files",
            "--json",
        ])
        .output()?;
    ensure!(
        out.status.success(),
        "labpipe query: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed = String::from_utf8_lossy(&out.stdout);
    ensure!(
        listed.contains(&session)
            && listed.contains(&labpipe_core::layout::processed_prefix(1, &session, 1)),
        "query lists no processed files of {session}: {listed}"
    );

    // A poison message in a batch with a good one (a second delivery of the real manifest
    // event, which ingest handles idempotently): only the poison comes back as a batch item
    // failure, so SQS retries it and, after maxReceiveCount, parks it in the DLQ.
    let poison = sqs
        .send_message()
        .queue_url(&ingest_url)
        .message_body("this is not an S3 event notification")
        .send()
        .await?
        .message_id()
        .context("poison message id")?
        .to_string();
    sqs.send_message()
        .queue_url(&ingest_url)
        .message_body(manifest_event_body.context("no manifest event was seen")?)
        .send()
        .await?;
    let mut batch = Vec::new();
    while batch.len() < 2 {
        let got = receive(&sqs, &ingest_url, 10, 2).await?;
        ensure!(!got.is_empty(), "the two messages did not arrive");
        batch.extend(got);
    }
    let answer = response(ingest.invoke(&sqs_event(&ingest_url, &batch)).await?)?;
    ensure!(
        answer == serde_json::json!({ "batchItemFailures": [{ "itemIdentifier": poison }] }),
        "ingest's batch response for [poison, duplicate] was {answer}"
    );
    // The duplicate left the session as it was.
    let item = catalog.get(&session).await?.context("session vanished")?;
    ensure!(
        item.status == Status::Processed,
        "duplicate event changed {session} to {:?}",
        item.status
    );

    // The same for preprocess: a body that is not a preprocessing request.
    let poison = sqs
        .send_message()
        .queue_url(&preprocess_url)
        .message_body("{\"not\": \"a request\"}")
        .send()
        .await?
        .message_id()
        .context("poison message id")?
        .to_string();
    let batch = receive(&sqs, &preprocess_url, 1, 2).await?;
    ensure!(batch.len() == 1, "preprocess poison did not arrive");
    let answer = response(
        preprocess
            .invoke(&sqs_event(&preprocess_url, &batch))
            .await?,
    )?;
    ensure!(
        batch_item_failures(&answer)? == vec![poison],
        "preprocess's batch response for a poison message was {answer}"
    );

    eprintln!(
        "timings: package {:.1}s, deploy {:.1}s, upload → PROCESSED {:.1}s ({} ingest, {} preprocess invocations), total {:.1}s",
        t_package.as_secs_f64(),
        (t_deploy - t_package).as_secs_f64(),
        (t_processed - t_deploy).as_secs_f64(),
        invocations.0,
        invocations.1,
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}
