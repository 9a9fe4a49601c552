//! `labpipe reprocess`: preprocessing requests at a chosen pipeline version for the sessions a
//! filter selects. Which sessions are sent is decided by `labpipe_sqs::reprocess` (the same
//! rules the backend applies), so `--dry-run` shows what a real run sends.

use std::process::ExitCode;

use anyhow::{Context, Result};
use labpipe_sqs::reprocess::{reprocess, Decision};
use labpipe_sqs::Queues;
use serde::Serialize;

use crate::cli::ReprocessArgs;
use crate::config::PipelineQueue;

#[derive(Serialize)]
struct Line {
    session: String,
    status: String,
    /// `send` (dry run), `sent`, `skipped` or `error`.
    action: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message_id: Option<String>,
}

#[derive(Serialize)]
struct Report {
    pipeline_version: u32,
    dry_run: bool,
    queue: Option<String>,
    sent: usize,
    skipped: usize,
    failed: usize,
    sessions: Vec<Line>,
}

pub fn run(args: ReprocessArgs) -> Result<ExitCode> {
    let filter = super::query::parse_filter(&args.filter, &args.schema)?;
    let stack = crate::config::stack(&args.stack)?;
    stack.table()?;
    let queue = if args.dry_run {
        stack.queues.preprocess.clone()
    } else {
        Some(stack.queue(PipelineQueue::Preprocess)?.to_string())
    };
    let version = args.pipeline_version;
    super::query::runtime()?.block_on(async {
        let (catalog, sdk) = super::query::catalog(&stack).await?;
        let sessions = catalog
            .query(&filter, args.limit)
            .await
            .context("cannot read the catalog")?;
        let queues = Queues::from_sdk(&sdk);
        let mut report = Report {
            pipeline_version: version,
            dry_run: args.dry_run,
            queue: queue.clone(),
            sent: 0,
            skipped: 0,
            failed: 0,
            sessions: Vec::new(),
        };
        let now = chrono::Utc::now();
        for item in &sessions {
            let mut line = Line {
                session: item.session.clone(),
                status: item.status.to_string(),
                action: "skipped",
                reason: None,
                message_id: None,
            };
            match reprocess(item, version, now) {
                Decision::Preprocess(_) if args.dry_run => {
                    line.action = "send";
                    report.sent += 1;
                }
                Decision::Preprocess(request) => {
                    let url = queue.as_deref().expect("a real run has the queue");
                    match queues.send(url, &request.to_json()).await {
                        Ok(id) => {
                            line.action = "sent";
                            line.message_id = Some(id);
                            report.sent += 1;
                        }
                        Err(e) => {
                            line.action = "error";
                            line.reason = Some(e.to_string());
                            report.failed += 1;
                        }
                    }
                }
                Decision::Skip(reason) => {
                    line.reason = Some(reason);
                    report.skipped += 1;
                }
                Decision::Ingest { .. } => unreachable!("reprocess never re-ingests"),
            }
            report.sessions.push(line);
        }
        if args.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print_report(&report, &filter.source);
        }
        Ok(if sessions.is_empty() || report.failed > 0 {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        })
    })
}

fn print_report(report: &Report, filter: &str) {
    if report.sessions.is_empty() {
        eprintln!("no session matches '{filter}': nothing to reprocess");
        return;
    }
    for l in &report.sessions {
        let what = match l.action {
            "send" => "would send".to_string(),
            "sent" => "sent".to_string(),
            "error" => "NOT SENT".to_string(),
            other => other.to_string(),
        };
        println!(
            "{:<16} {:<10} {:<10} {}",
            l.session,
            l.status,
            what,
            l.reason.as_deref().unwrap_or("")
        );
    }
    let v = report.pipeline_version;
    if report.dry_run {
        println!(
            "dry run: {} session(s) would be reprocessed at pipeline version {v}, {} left out; nothing was sent",
            report.sent, report.skipped
        );
    } else {
        println!(
            "{} preprocessing request(s) for pipeline version {v} sent, {} session(s) left out{}",
            report.sent,
            report.skipped,
            if report.failed > 0 {
                format!(
                    ", {} not sent (see above; run the command again)",
                    report.failed
                )
            } else {
                String::new()
            }
        );
        if report.sent > 0 {
            println!("follow them with `labpipe status`; the files: `labpipe query --files --pipeline-version {v} '…'`");
        }
    }
}
