//! `labpipe sync`: the selected sessions' preprocessed files into a folder on this machine
//! (an EC2 node). Selection and transfer live in `labpipe-sync`; this module parses flags, draws
//! the progress bar or prints `--json` events, and maps failures to exit codes.
//!
//! `--json`: one object per line, `event` naming the kind (`plan`, `session_not_processed`,
//! `file_skipped`, `file_would_transfer`, `file_started`, `file_done`, `file_failed`), then one
//! `{"event": "summary", …}` line; on a failure before the transfer, `{"event": "error", code,
//! message}` (`busy`: another run holds the destination's lock — one run per folder, the second
//! refuses at once rather than wait, and the message names the holder and says what to do).
//! With `--save-snapshot FILE`, after the summary: `{"event": "snapshot", path, files,
//! unversioned}`. `--snapshot FILE` reproduces one: the same events, no catalog query.
//! Stable; documented in the README.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use labpipe_core::units::human_bytes;
use labpipe_sync::{
    Glob, SelectOptions, Snapshot, SyncError, SyncEvent, SyncOptions, SyncRun, SyncSummary,
};
use tokio::sync::mpsc::UnboundedReceiver;

use super::query::{catalog, parse_filter, runtime};
use super::upload::parse_bytes;
use crate::cli::SyncArgs;
use crate::UsageError;

/// Smallest useful part: below this, request overhead dominates.
const MIN_PART_SIZE: u64 = 1024 * 1024;

pub fn run(args: SyncArgs) -> Result<ExitCode> {
    if args.concurrency == 0 {
        return Err(UsageError("--concurrency must be at least 1".into()).into());
    }
    let part_size =
        parse_bytes(&args.part_size).map_err(|e| UsageError(format!("--part-size: {e}")))?;
    if part_size < MIN_PART_SIZE {
        return Err(UsageError(format!(
            "--part-size must be at least 1MiB, got {}",
            args.part_size
        ))
        .into());
    }
    if args.dest.exists() && !args.dest.is_dir() {
        return Err(UsageError(format!(
            "--dest {} is a file; give a folder",
            args.dest.display()
        ))
        .into());
    }
    let sync_opts = SyncOptions {
        concurrency: args.concurrency,
        part_size,
        verify: args.verify,
        dry_run: args.dry_run,
    };
    if let Some(file) = &args.snapshot {
        return restore(&args, file, sync_opts);
    }
    let filter = parse_filter(args.filter.as_deref().unwrap_or_default(), &args.schema)?;
    let include = args
        .include
        .iter()
        .map(|p| Glob::new(p))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| UsageError(e.to_string()))?;
    let stack = crate::config::stack(&args.stack)?;
    stack.table()?;
    let select_opts = SelectOptions {
        version: args.pipeline_version,
        raw: args.raw,
        raw_bucket: stack.raw_bucket.clone(),
        raw_revision: args.raw_revision,
        revision: args.revision,
        include,
        limit: args.limit,
    };

    runtime()?.block_on(async {
        let (catalog, sdk) = catalog(&stack).await?;
        let s3 = labpipe_sync::s3_client(&sdk);
        let selection = match labpipe_lab::research::selection(
            &catalog,
            &s3,
            &filter,
            &select_opts,
            stack.processed_bucket.as_deref(),
        )
        .await
        {
            Ok(s) => s,
            Err(e) => return Err(fail(e, args.json)),
        };
        transfer(&s3, &selection, &filter.source, &args, sync_opts).await?;
        if let Some(file) = &args.save_snapshot {
            let snap = Snapshot::of_sync(&s3, &args.dest, &selection, &filter.source)
                .await
                .map_err(|e| fail(e, args.json))?;
            snap.save(file).map_err(|e| fail(e, args.json))?;
            report_snapshot(&snap, file, args.json);
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// `--snapshot FILE`: the snapshot's exact object versions into `--dest`, no catalog query.
fn restore(args: &SyncArgs, file: &Path, opts: SyncOptions) -> Result<ExitCode> {
    let snap = Snapshot::load(file).map_err(|e| UsageError(e.to_string()))?;
    let selection = snap.selection();
    let label = format!("snapshot {} of '{}'", file.display(), snap.filter);
    runtime()?.block_on(async {
        let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let s3 = labpipe_sync::s3_client(&sdk);
        transfer(&s3, &selection, &label, args, opts).await?;
        Ok(ExitCode::SUCCESS)
    })
}

/// Runs the transfer with its progress view and summary; an error when a file failed.
async fn transfer(
    s3: &labpipe_sync::S3Client,
    selection: &labpipe_sync::Selection,
    label: &str,
    args: &SyncArgs,
    opts: SyncOptions,
) -> Result<()> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let view = tokio::spawn(render(rx, args.json));
    let sync = SyncRun::new(s3.clone(), &args.dest, opts, Some(tx));
    let result = sync.run(selection, label).await;
    drop(sync);
    let _ = view.await;
    let summary = match result {
        Ok(s) => s,
        Err(e) => return Err(fail(e, args.json)),
    };
    print_summary(&summary, args);
    if summary.files_failed > 0 {
        let e = SyncError::Incomplete {
            failed: summary.files_failed,
            total: summary.files,
            first: summary.first_error.clone().unwrap_or_default(),
        };
        return Err(anyhow::Error::new(e));
    }
    Ok(())
}

fn report_snapshot(snap: &Snapshot, file: &Path, json: bool) {
    let unversioned = snap.unversioned();
    if json {
        println!(
            "{}",
            serde_json::json!({"event": "snapshot", "path": file.display().to_string(),
                "files": snap.files.len(), "unversioned": unversioned})
        );
    } else {
        eprintln!(
            "snapshot of {} files (exact object versions) saved to {}; reproduce it with: labpipe sync --snapshot {} --dest DIR",
            snap.files.len(),
            file.display(),
            file.display()
        );
    }
    if unversioned > 0 {
        eprintln!(
            "labpipe: warning: {unversioned} file(s) come from a bucket without versioning; the snapshot cannot bring them back once they are overwritten — enable versioning on the bucket"
        );
    }
}

/// A failure before or outside the per-file transfers: an `error` line for `--json`, then the
/// error for the exit code (a pattern mistake is a usage error).
fn fail(e: SyncError, json: bool) -> anyhow::Error {
    if json {
        println!(
            "{}",
            serde_json::json!({"event": "error", "code": e.code(), "message": e.to_string()})
        );
    }
    if matches!(e, SyncError::BadPattern { .. }) {
        UsageError(e.to_string()).into()
    } else {
        anyhow::Error::new(e)
    }
}

fn print_summary(s: &SyncSummary, args: &SyncArgs) {
    if args.json {
        let mut v = serde_json::to_value(s).expect("summary serializes");
        v["event"] = "summary".into();
        v["dest"] = args.dest.display().to_string().into();
        println!("{v}");
        return;
    }
    let rate = if s.seconds > 0.0 {
        s.bytes_transferred as f64 / s.seconds
    } else {
        0.0
    };
    let verb = if s.dry_run {
        "would transfer"
    } else {
        "transferred"
    };
    println!(
        "{} session{}, {} files ({}): {verb} {} ({}{}, {:.1}s, {}/s), {} up to date, {} failed → {}",
        s.sessions,
        if s.sessions == 1 { "" } else { "s" },
        s.files,
        human_bytes(s.bytes_total),
        s.files_transferred,
        human_bytes(s.bytes_transferred),
        if s.bytes_resumed > 0 { format!(", {} resumed", human_bytes(s.bytes_resumed)) } else { String::new() },
        s.seconds,
        human_bytes(rate as u64),
        s.files_skipped,
        s.files_failed,
        args.dest.display()
    );
}

/// Progress bar (bytes to transfer) and per-file messages, or JSON lines.
async fn render(mut rx: UnboundedReceiver<SyncEvent>, json: bool) {
    let bar = ProgressBar::with_draw_target(
        Some(0),
        if json {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        },
    );
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:30} {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {msg}",
        )
        .expect("static template"),
    );
    while let Some(event) = rx.recv().await {
        if json {
            if !matches!(event, SyncEvent::Progress { .. }) {
                if let Ok(line) = serde_json::to_string(&event) {
                    println!("{line}");
                }
            }
            continue;
        }
        match event {
            SyncEvent::Plan {
                files_to_transfer,
                bytes_to_transfer,
                files,
                ..
            } => {
                bar.set_length(bytes_to_transfer);
                bar.set_message(format!("{files_to_transfer} of {files} files to fetch"));
            }
            SyncEvent::Progress { bytes } => bar.inc(bytes),
            SyncEvent::SessionNotProcessed { session, status } => {
                bar.println(format!("{session}: not processed yet ({status}), skipped"))
            }
            SyncEvent::FileWouldTransfer { path, uri, bytes } => bar.println(format!(
                "would download {uri} → {path} ({})",
                human_bytes(bytes)
            )),
            SyncEvent::FileFailed { path, reason, .. } => {
                bar.println(format!("{path}: failed: {reason}"))
            }
            SyncEvent::FileStarted { .. }
            | SyncEvent::FileDone { .. }
            | SyncEvent::FileSkipped { .. } => {}
        }
    }
    bar.finish_and_clear();
}
