//! `labpipe status`: where sessions are in the cloud pipeline, read from the catalog.
//!
//! With session ids: each session's status, the step and reason of its latest error, and its
//! history. Without: the most recent sessions, newest first, with a count per status, so a
//! technician sees at a glance what is stuck or failed.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::{Context, Result};
use labpipe_catalog::{Catalog, Event, Level, SessionItem, Status};
use serde::Serialize;

use crate::cli::StatusArgs;

pub fn run(args: StatusArgs) -> Result<ExitCode> {
    let table = crate::config::Stack::resolve(&args.stack)?
        .table()?
        .to_string();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let catalog = Catalog::from_sdk(&sdk, table);
        if args.sessions.is_empty() {
            summary(&catalog, &args).await
        } else {
            details(&catalog, &args).await
        }
    })
}

#[derive(Serialize)]
struct SessionStatus<'a> {
    #[serde(flatten)]
    item: &'a SessionItem,
    latest_error: Option<&'a Event>,
    events: &'a [Event],
}

async fn details(catalog: &Catalog, args: &StatusArgs) -> Result<ExitCode> {
    let mut bad = false;
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for session in &args.sessions {
        match catalog.get(session).await? {
            Some(item) => {
                let events = catalog.events(session).await?;
                bad |= item.status == Status::Failed;
                found.push((item, events));
            }
            None => {
                bad = true;
                missing.push(session.clone());
            }
        }
    }
    if args.json {
        let mut out: Vec<serde_json::Value> = found
            .iter()
            .map(|(item, events)| {
                serde_json::to_value(SessionStatus {
                    item,
                    latest_error: latest_error(events),
                    events,
                })
                .expect("status serialises")
            })
            .collect();
        out.extend(missing.iter().map(
            |s| serde_json::json!({"session": s, "status": null, "error": "not in the catalog"}),
        ));
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        for (item, events) in &found {
            print_session(item, events);
        }
        for s in &missing {
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

fn latest_error(events: &[Event]) -> Option<&Event> {
    events.iter().rev().find(|e| e.level == Level::Error)
}

fn print_session(item: &SessionItem, events: &[Event]) {
    println!("{}  {}", item.session, item.status);
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
        println!("  pipeline   v{v}");
    }
    if let Some(p) = &item.raw_prefix {
        println!("  raw        {p}");
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

async fn summary(catalog: &Catalog, args: &StatusArgs) -> Result<ExitCode> {
    let recent = catalog.list_recent(args.limit).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&recent)?);
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
    let counts: Vec<String> = counts.iter().map(|(s, n)| format!("{s} {n}")).collect();
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
        let message = item.status_message.as_deref().unwrap_or("");
        let short: String = if message.chars().count() > 90 {
            format!("{}…", message.chars().take(89).collect::<String>())
        } else {
            message.to_string()
        };
        println!(
            "{:<16} {:<19} {:<10} {:<10} {}",
            item.session,
            item.recorded_at.format("%Y-%m-%d %H:%M:%S"),
            item.status.as_str(),
            item.status_step.as_deref().unwrap_or(""),
            short
        );
    }
    println!("details: labpipe status SESSION");
    Ok(ExitCode::SUCCESS)
}
