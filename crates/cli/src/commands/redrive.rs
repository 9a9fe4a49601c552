//! `labpipe redrive`: dead-letter messages back to their source queue, and (with `--where`) the
//! selected `FAILED` sessions re-run from the step that failed. The queue work is
//! `labpipe_sqs::Queues`; what a `FAILED` session gets is `labpipe_sqs::reprocess::redrive_failed`.

use std::collections::BTreeSet;
use std::process::ExitCode;

use anyhow::{Context, Result};
use labpipe_catalog::Status;
use labpipe_sqs::reprocess::{redrive_failed, Decision};
use labpipe_sqs::{ingest_event, DeadLetter, Moved, Queues};
use serde::Serialize;

use crate::cli::{QueueName, RedriveArgs};
use crate::config::PipelineQueue;

#[derive(Serialize)]
struct DeadLetters {
    queue: &'static str,
    dead_letter_queue: String,
    /// Moved back (a real run).
    moved: Vec<Moved>,
    /// Sitting there (a dry run).
    waiting: Vec<DeadLetter>,
}

#[derive(Serialize)]
struct FailedLine {
    session: String,
    step: Option<String>,
    /// `ingest` or `preprocess` (the queue it goes to), or `skipped`.
    action: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pipeline_version: Option<u32>,
    /// The manifest whose S3 event is sent again (`ingest`): the failed revision's.
    #[serde(skip_serializing_if = "Option::is_none")]
    manifest_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message_id: Option<String>,
}

#[derive(Serialize)]
struct Report {
    dry_run: bool,
    dead_letters: Vec<DeadLetters>,
    failed: Vec<FailedLine>,
    moved: usize,
    resent: usize,
}

const QUEUES: [(QueueName, &str); 2] = [
    (QueueName::Ingest, "ingest"),
    (QueueName::Preprocess, "preprocess"),
];

pub fn run(args: RedriveArgs) -> Result<ExitCode> {
    let filter = args
        .filter
        .as_deref()
        .map(|f| super::query::parse_filter(f, &args.schema))
        .transpose()?;
    let stack = crate::config::stack(&args.stack)?;
    let wanted = |q: QueueName| args.queue.is_none_or(|w| w == q);
    // Every URL this run needs, before anything is moved.
    let mut plan = Vec::new();
    for (q, name) in QUEUES.into_iter().filter(|(q, _)| wanted(*q)) {
        let (source, dead) = match q {
            QueueName::Ingest => (
                stack.queue(PipelineQueue::Ingest)?,
                stack.queue(PipelineQueue::IngestDeadLetter)?,
            ),
            QueueName::Preprocess => (
                stack.queue(PipelineQueue::Preprocess)?,
                stack.queue(PipelineQueue::PreprocessDeadLetter)?,
            ),
        };
        plan.push((q, name, source.to_string(), dead.to_string()));
    }
    if filter.is_some() {
        stack.table()?;
    }
    super::query::runtime()?.block_on(async {
        let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let queues = Queues::from_sdk(&sdk);
        let mut report = Report {
            dry_run: args.dry_run,
            dead_letters: Vec::new(),
            failed: Vec::new(),
            moved: 0,
            resent: 0,
        };
        let mut moved_sessions = BTreeSet::new();
        for (_, name, source, dead) in &plan {
            let mut entry = DeadLetters {
                queue: name,
                dead_letter_queue: dead.clone(),
                moved: Vec::new(),
                waiting: Vec::new(),
            };
            if args.dry_run {
                entry.waiting = queues.list(dead).await?;
            } else {
                entry.moved = queues.move_back(dead, source).await?;
                report.moved += entry.moved.len();
                moved_sessions.extend(entry.moved.iter().filter_map(|m| m.session.clone()));
            }
            report.dead_letters.push(entry);
        }
        if let Some(filter) = &filter {
            let (catalog, _) = super::query::catalog(&stack).await?;
            let sessions = catalog
                .query(filter, None)
                .await
                .context("cannot read the catalog")?;
            let default_version = stack.pipeline_version.unwrap_or(1);
            for item in sessions.iter().filter(|s| s.status == Status::Failed) {
                let events = catalog.events(&item.session).await?;
                let mut line = FailedLine {
                    session: item.session.clone(),
                    step: item.status_step.clone(),
                    action: "skipped".into(),
                    pipeline_version: None,
                    manifest_key: None,
                    reason: None,
                    message_id: None,
                };
                let (queue, body) = match redrive_failed(item, &events, default_version) {
                    _ if moved_sessions.contains(&item.session) => {
                        line.reason = Some("its dead-letter message was moved back".into());
                        (None, None)
                    }
                    Decision::Ingest { revision } => {
                        let bucket = item
                            .raw_prefix
                            .as_deref()
                            .and_then(|p| p.strip_prefix("s3://"))
                            .and_then(|p| p.split('/').next())
                            .map(str::to_string)
                            .or_else(|| stack.raw_bucket.clone());
                        match bucket {
                            Some(b) => {
                                line.manifest_key = Some(
                                    labpipe_core::layout::revision_manifest_key(
                                        &item.session,
                                        revision,
                                    ),
                                );
                                (
                                    Some(QueueName::Ingest),
                                    Some(ingest_event(&b, &item.session, revision)),
                                )
                            }
                            None => {
                                line.reason = Some("no raw bucket known: pass --raw-bucket or set LABPIPE_RAW_BUCKET".into());
                                (None, None)
                            }
                        }
                    }
                    Decision::Preprocess(request) => {
                        line.pipeline_version = Some(request.pipeline_version);
                        (Some(QueueName::Preprocess), Some(request.to_json()))
                    }
                    Decision::Skip(reason) => {
                        line.reason = Some(reason);
                        (None, None)
                    }
                };
                if let (Some(q), Some(body)) = (queue, body) {
                    let Some((_, name, source, _)) = plan.iter().find(|p| p.0 == q) else {
                        line.reason = Some(format!(
                            "failed at {}; run without --queue (or with --queue {}) to re-run it",
                            item.status_step.as_deref().unwrap_or("?"),
                            if q == QueueName::Ingest { "ingest" } else { "preprocess" }
                        ));
                        report.failed.push(line);
                        continue;
                    };
                    line.action = name.to_string();
                    if !args.dry_run {
                        line.message_id = Some(queues.send(source, &body).await?);
                    }
                    report.resent += 1;
                }
                report.failed.push(line);
            }
            if sessions.iter().all(|s| s.status != Status::Failed) {
                eprintln!(
                    "no FAILED session matches '{}': only dead-letter messages were looked at",
                    filter.source
                );
            }
        }
        if args.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print_report(&report);
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn print_report(report: &Report) {
    for d in &report.dead_letters {
        if report.dry_run {
            println!(
                "{} dead-letter queue: {} message(s) would be moved back",
                d.queue,
                d.waiting.len()
            );
            for m in &d.waiting {
                println!(
                    "  {}  session {}  received {} time(s)",
                    m.message_id,
                    m.session.as_deref().unwrap_or("(none named)"),
                    m.receive_count.unwrap_or(0)
                );
            }
        } else {
            println!(
                "{} dead-letter queue: {} message(s) moved back to the {} queue",
                d.queue,
                d.moved.len(),
                d.queue
            );
            for m in &d.moved {
                println!(
                    "  session {}  (new message {})",
                    m.session.as_deref().unwrap_or("(none named)"),
                    m.message_id
                );
            }
        }
    }
    for f in &report.failed {
        let what = match (f.action.as_str(), report.dry_run) {
            ("skipped", _) => "left as it is".to_string(),
            (q, true) => format!("would be re-run ({q})"),
            (q, false) => format!("re-run ({q})"),
        };
        println!(
            "FAILED {}  {what}{}{}{}",
            f.session,
            f.pipeline_version
                .map(|v| format!(" at pipeline version {v}"))
                .unwrap_or_default(),
            f.manifest_key
                .as_deref()
                .map(|k| format!(" from {k}"))
                .unwrap_or_default(),
            f.reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        );
    }
    if report.dry_run {
        println!("dry run: nothing was moved or sent");
    } else if report.moved + report.resent > 0 {
        println!(
            "{} message(s) moved, {} FAILED session(s) re-run; follow them with `labpipe status`",
            report.moved, report.resent
        );
    } else {
        println!("nothing to move: the dead-letter queue(s) are empty");
    }
}
