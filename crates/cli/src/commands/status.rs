//! `labpipe status`: where sessions are in the cloud pipeline, read from the catalog.
//!
//! With session ids: each session's status, the step and reason of its latest error, and its
//! history. Without: the most recent sessions, newest first, with a count per status, so a
//! technician sees at a glance what is stuck or failed.
//!
//! A stuck session shows `STUCK` with its reason; which sessions are stuck and why is
//! `labpipe_lab::stuck`'s (shared with any other front end), this module only renders.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::{Context, Result};
use chrono::Utc;
use labpipe_catalog::{Catalog, Event, OutputRecord, SessionItem, Status};
use labpipe_lab::stuck::{self, latest_error, DeadLetters, StuckView};
use labpipe_sqs::Queues;
use serde::Serialize;

use crate::cli::StatusArgs;

pub fn run(args: StatusArgs) -> Result<ExitCode> {
    let stack = crate::config::stack(&args.stack)?;
    let table = stack.table()?.to_string();
    let queues = stack.queues.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let catalog = Catalog::from_sdk(&sdk, table);
        let dead = DeadLetterView {
            queues: Queues::from_sdk(&sdk),
            urls: queues,
        };
        if args.sessions.is_empty() {
            summary(&catalog, &dead, &args).await
        } else {
            details(&catalog, &dead, &args).await
        }
    })
}

/// Where the dead-letter queues are, read once per command and only when a session is stuck.
struct DeadLetterView {
    queues: Queues,
    urls: labpipe_lab::stack::QueueUrls,
}

#[derive(Serialize)]
struct SessionStatus<'a> {
    #[serde(flatten)]
    item: &'a SessionItem,
    latest_error: Option<&'a Event>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stuck: Option<&'a StuckView>,
    /// The outputs of every pipeline version the session was processed with, oldest first.
    outputs: &'a [OutputRecord],
    events: &'a [Event],
}

async fn details(catalog: &Catalog, dead: &DeadLetterView, args: &StatusArgs) -> Result<ExitCode> {
    let mut bad = false;
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for session in &args.sessions {
        match catalog.get(session).await? {
            Some(item) => {
                let events = catalog.events(session).await?;
                let outputs = catalog.all_outputs(session).await?;
                bad |= item.status == Status::Failed;
                found.push((item, events, outputs));
            }
            None => {
                bad = true;
                missing.push(session.clone());
            }
        }
    }
    let now = Utc::now();
    let stuck_items: Vec<_> = found
        .iter()
        .filter_map(|(item, events, _)| item.stuck(now).map(|s| (item, s, latest_error(events))))
        .collect();
    // The dead-letter queues are read once, and only when a session is stuck or missing: a
    // missing session's S3 event may be dead-lettered before ingest could catalog it.
    let letters = if stuck_items.is_empty() && missing.is_empty() {
        DeadLetters::default()
    } else {
        DeadLetters::read(&dead.queues, &dead.urls).await
    };
    let stuck = letters.explain(&stuck_items);
    bad |= !stuck.is_empty();
    let uncataloged: BTreeMap<&String, _> = missing
        .iter()
        .filter_map(|s| Some((s, letters.uncataloged(s)?)))
        .collect();
    if args.json {
        let mut out: Vec<serde_json::Value> = found
            .iter()
            .map(|(item, events, outputs)| {
                serde_json::to_value(SessionStatus {
                    item,
                    latest_error: latest_error(events),
                    stuck: stuck.get(&item.session),
                    outputs,
                    events,
                })
                .expect("status serialises")
            })
            .collect();
        out.extend(missing.iter().map(|s| match uncataloged.get(s) {
            Some((reason, letter)) => serde_json::json!({
                "session": s,
                "status": null,
                "error": "not in the catalog",
                "stuck": {"reason": reason, "dead_letter": letter},
            }),
            None => {
                serde_json::json!({"session": s, "status": null, "error": "not in the catalog"})
            }
        }));
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        for (item, events, outputs) in &found {
            print_session(item, events, outputs, stuck.get(&item.session));
        }
        for s in &missing {
            if let Some((reason, _)) = uncataloged.get(s) {
                println!("{s}  STUCK (not cataloged)");
                println!("  stuck      {reason}");
                println!();
                continue;
            }
            println!(
                "{s}: not in the catalog (table {}) — not uploaded yet, its manifest is not ingested yet, or the id is wrong",
                catalog.table()
            );
        }
    }
    Ok(if bad {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn print_session(
    item: &SessionItem,
    events: &[Event],
    outputs: &[OutputRecord],
    stuck: Option<&StuckView>,
) {
    match stuck {
        Some(s) => {
            println!("{}  STUCK ({})", item.session, item.status);
            println!("  stuck      {}", s.line());
        }
        None => println!("{}  {}", item.session, item.status),
    }
    println!(
        "  recorded   {}",
        item.recorded_at.format("%Y-%m-%d %H:%M:%S")
    );
    if let Some(step) = &item.status_step {
        println!("  step       {step}");
    }
    if let Some(msg) = &item.status_message {
        println!("  message    {msg}");
    }
    if item.status != Status::Failed {
        if let Some(e) = latest_error(events) {
            println!(
                "  last error {} at {}: {}",
                e.step,
                e.at.format("%Y-%m-%d %H:%M:%S"),
                e.message
            );
        }
    }
    println!(
        "  files      {} ({})",
        item.file_count,
        labpipe_core::units::human_bytes(item.total_bytes)
    );
    if let Some(v) = item.pipeline_version {
        println!("  pipeline   v{v} (latest run)");
    }
    let current = item.current_revision();
    for o in outputs {
        // A session never corrected shows no revision; a corrected one's every output line does.
        let revision = if item.revision.is_none() && o.revision == 1 {
            String::new()
        } else if o.revision == current {
            format!(" r{} (current)", o.revision)
        } else {
            format!(" r{}", o.revision)
        };
        println!(
            "  outputs v{:<2}{revision} {} files ({}) in s3://{}/{}, {}",
            o.version,
            o.files.len(),
            labpipe_core::units::human_bytes(o.files.iter().map(|f| f.size).sum()),
            o.bucket,
            o.prefix,
            o.created_at.format("%Y-%m-%d %H:%M:%S")
        );
    }
    if let Some(p) = &item.raw_prefix {
        println!("  raw        {p}");
    }
    if let Some(n) = item.revision {
        let earlier: Vec<String> = (1..n)
            .map(|r| {
                labpipe_core::layout::raw_session_prefix(&labpipe_core::layout::revision_folder(
                    &item.session,
                    r,
                ))
            })
            .collect();
        println!(
            "  revision   {n} ({}); earlier revisions stay in {}; `labpipe sync --revision N` fetches one's outputs",
            item.revision_reason.as_deref().unwrap_or("no reason given"),
            earlier.join(", ")
        );
    }
    if !item.metadata.is_empty() {
        let meta: Vec<String> = item
            .metadata
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        println!("  metadata   {}", meta.join(", "));
    }
    println!("  history");
    for e in events {
        let what = match (e.from, e.status) {
            (Some(from), Some(to)) => format!("{from} → {to}"),
            (None, Some(to)) => to.to_string(),
            _ => e.level.as_str().to_string(),
        };
        println!(
            "    {}  {:<24} {:<10} {}",
            e.at.format("%Y-%m-%d %H:%M:%S"),
            what,
            e.step,
            e.message
        );
    }
    println!();
}

#[derive(Serialize)]
struct SummaryLine<'a> {
    #[serde(flatten)]
    item: &'a SessionItem,
    #[serde(skip_serializing_if = "Option::is_none")]
    stuck: Option<&'a StuckView>,
}

async fn summary(catalog: &Catalog, dead: &DeadLetterView, args: &StatusArgs) -> Result<ExitCode> {
    let recent = catalog.list_recent(args.limit).await?;
    let now = Utc::now();
    let stuck_items: Vec<_> = recent
        .iter()
        .filter_map(|item| item.stuck(now).map(|s| (item, s, None)))
        .collect();
    let stuck = stuck::explain(&dead.queues, &dead.urls, &stuck_items).await;
    if args.json {
        let lines: Vec<SummaryLine> = recent
            .iter()
            .map(|item| SummaryLine {
                item,
                stuck: stuck.get(&item.session),
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&lines)?);
        return Ok(ExitCode::SUCCESS);
    }
    if recent.is_empty() {
        println!("no sessions in the catalog (table {}) yet", catalog.table());
        return Ok(ExitCode::SUCCESS);
    }
    let mut counts: BTreeMap<Status, usize> = BTreeMap::new();
    for item in &recent {
        *counts.entry(item.status).or_default() += 1;
    }
    let mut counts: Vec<String> = counts.iter().map(|(s, n)| format!("{s} {n}")).collect();
    if !stuck.is_empty() {
        counts.push(format!("STUCK {}", stuck.len()));
    }
    println!(
        "{} most recent sessions: {}",
        recent.len(),
        counts.join(", ")
    );
    println!(
        "{:<16} {:<19} {:<10} {:<10} MESSAGE",
        "SESSION", "RECORDED", "STATUS", "STEP"
    );
    for item in &recent {
        let stuck_line = stuck.get(&item.session).map(StuckView::line);
        let message = stuck_line
            .as_deref()
            .or(item.status_message.as_deref())
            .unwrap_or("");
        let short: String = if message.chars().count() > 90 {
            format!("{}…", message.chars().take(89).collect::<String>())
        } else {
            message.to_string()
        };
        println!(
            "{:<16} {:<19} {:<10} {:<10} {}",
            item.session,
            item.recorded_at.format("%Y-%m-%d %H:%M:%S"),
            if stuck.contains_key(&item.session) {
                "STUCK"
            } else {
                item.status.as_str()
            },
            item.status_step.as_deref().unwrap_or(""),
            short
        );
    }
    println!("details: labpipe status SESSION");
    Ok(ExitCode::SUCCESS)
}
