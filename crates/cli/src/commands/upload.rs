//! `labpipe upload`: check, then hand the ready sessions to `labpipe-upload` and render its
//! events as progress bars or JSON lines. Every rule about what is safe lives in the library.

use crate::cli::UploadArgs;
use crate::UsageError;
use anyhow::{Context, Result};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use labpipe_core::check::check_folder;
use labpipe_core::scan::session_folders;
use labpipe_core::units::human_bytes;
use labpipe_core::{SessionReport, Verdict};
use labpipe_upload::{
    object_key, ClientOptions, Event, Journal, SessionOutcome, Upload, UploadError, UploadOptions,
};
use serde::Serialize;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// The last line of `--json`.
#[derive(Debug, Default, Serialize)]
struct Summary {
    event: &'static str,
    sessions_uploaded: usize,
    sessions_skipped: usize,
    sessions_failed: usize,
    bytes_total: u64,
    bytes_sent: u64,
    bytes_resumed: u64,
    /// Requests sent again after a failed attempt (resets, 5xx, timeouts), all sessions.
    retries: u64,
}

pub fn run(args: UploadArgs) -> Result<ExitCode> {
    let _log = init_log(args.verbose)?;
    let part_size =
        parse_bytes(&args.part_size).map_err(|e| UsageError(format!("--part-size: {e}")))?;
    if part_size < labpipe_upload::MIN_PART_SIZE {
        return Err(UsageError(format!(
            "--part-size must be at least 5MiB (S3's minimum), got {}",
            args.part_size
        ))
        .into());
    }
    let max_bandwidth = match &args.max_bandwidth {
        Some(s) => Some(
            parse_bytes(s.trim_end_matches("/s"))
                .map_err(|e| UsageError(format!("--max-bandwidth: {e}")))?,
        ),
        None => None,
    };
    if args.concurrency == 0 {
        return Err(UsageError("--concurrency must be at least 1".into()).into());
    }
    let reports = check_all(&args)?;
    if args.dry_run {
        return dry_run(&reports, args.json);
    }
    // Same resolution as every cloud command: flag/env, else the deployed stack's outputs file.
    let bucket = match args.bucket.clone() {
        Some(b) => b,
        None => crate::config::Stack::resolve(&crate::cli::StackArgs {
            table: None,
            processed_bucket: None,
            raw_bucket: None,
            stack_outputs: std::env::var_os("LABPIPE_STACK_OUTPUTS").map(Into::into),
        })?
        .raw_bucket
        .ok_or_else(|| {
            UsageError(
                "no bucket: pass --bucket NAME, set LABPIPE_RAW_BUCKET, or deploy the stack (scripts/deploy-local.sh writes .labpipe/stack/outputs.json)".into(),
            )
        })?,
    };
    let opts = UploadOptions {
        part_size,
        concurrency: args.concurrency,
        max_bandwidth,
    };
    let journal_path = args.journal.clone().unwrap_or_else(Journal::default_path);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(upload_all(&args, bucket, opts, journal_path, reports))
}

fn check_all(args: &UploadArgs) -> Result<Vec<SessionReport>> {
    let mut reports = Vec::new();
    for path in &args.paths {
        let schema = super::load_schema(&args.schema, path)?;
        let folders = session_folders(path).map_err(|e| UsageError(e.to_string()))?;
        if folders.is_empty() {
            return Err(UsageError(format!(
                "{}: no session folders found (expected folders named YYYYMMDD_HHMMSS)",
                path.display()
            ))
            .into());
        }
        for folder in folders {
            reports.push(check_folder(&folder, &schema).map_err(|e| UsageError(e.to_string()))?);
        }
    }
    Ok(reports)
}

fn dry_run(reports: &[SessionReport], json: bool) -> Result<ExitCode> {
    let mut failed = false;
    for r in reports {
        let ready = r.verdict.is_uploadable();
        failed |= r.verdict == Verdict::Fail;
        if json {
            let keys: Vec<String> = if ready {
                r.files
                    .iter()
                    .map(|f| object_key(&r.session, &f.path))
                    .collect()
            } else {
                vec![]
            };
            let line = serde_json::json!({"event": "plan", "session": r.session, "verdict": r.verdict, "bytes_total": r.total_bytes, "keys": keys});
            println!("{line}");
        } else if ready {
            println!(
                "{}: would upload {} files ({}) to raw/{}/",
                r.session,
                r.files.len(),
                human_bytes(r.total_bytes),
                r.session
            );
        } else {
            println!(
                "{}: would not upload (verdict {}); run labpipe check for details",
                r.session,
                r.verdict.as_str()
            );
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

async fn upload_all(
    args: &UploadArgs,
    bucket: String,
    opts: UploadOptions,
    journal_path: PathBuf,
    reports: Vec<SessionReport>,
) -> Result<ExitCode> {
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let client_opts = ClientOptions {
        attempt_timeout: Duration::from_secs(args.attempt_timeout.max(1)),
        ..ClientOptions::default()
    };
    let s3 = labpipe_upload::s3_client(&sdk, &client_opts);
    let journal = Arc::new(Journal::open(&journal_path)?);
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let total: u64 = reports
        .iter()
        .filter(|r| r.verdict.is_uploadable())
        .map(|r| r.total_bytes)
        .sum();
    let view = tokio::spawn(render(rx, args.json, total));
    tracing::info!(bucket = %bucket, sessions = reports.len(), journal = %journal_path.display(), "upload run starting");

    let mut summary = Summary {
        event: "summary",
        ..Summary::default()
    };
    let mut fatal: Option<UploadError> = None;
    match Upload::connect(s3, &bucket, opts, journal, Some(tx)).await {
        Err(e) => fatal = Some(e),
        Ok(upload) => {
            for report in &reports {
                match upload.session(report).await {
                    Ok(r) => {
                        summary.bytes_total += r.bytes_total;
                        summary.bytes_sent += r.bytes_sent;
                        summary.bytes_resumed += r.bytes_resumed;
                        match r.outcome {
                            SessionOutcome::Uploaded => summary.sessions_uploaded += 1,
                            SessionOutcome::AlreadyUploaded => summary.sessions_skipped += 1,
                        }
                    }
                    Err(UploadError::NotUploadable {
                        verdict: "wait", ..
                    }) => summary.sessions_skipped += 1,
                    Err(e) => {
                        summary.sessions_failed += 1;
                        summary.bytes_total += report.total_bytes;
                        if e.is_permanent() {
                            fatal = Some(e);
                            break;
                        }
                    }
                }
            }
            drop(upload);
        }
    }
    summary.retries = view.await.unwrap_or_default();
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        println!(
            "{} uploaded, {} skipped, {} failed; sent {} of {} ({} resumed){}",
            summary.sessions_uploaded,
            summary.sessions_skipped,
            summary.sessions_failed,
            human_bytes(summary.bytes_sent),
            human_bytes(summary.bytes_total),
            human_bytes(summary.bytes_resumed),
            match summary.retries {
                0 => String::new(),
                n => format!("; {}", retries_text(n, None)),
            }
        );
    }
    if let Some(e) = fatal {
        tracing::error!(error = %e, "upload run stopped");
        return Err(anyhow::Error::new(e).context("upload stopped"));
    }
    Ok(if summary.sessions_failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `1 retry`, `3 retries — last: connection reset`.
fn retries_text(n: u64, last_reason: Option<&str>) -> String {
    let count = if n == 1 {
        "1 retry".to_string()
    } else {
        format!("{n} retries")
    };
    match last_reason {
        Some(r) => format!("{count} — last: {r}"),
        None => count,
    }
}

/// Retries of one session so far and why the latest was needed.
#[derive(Default)]
struct SessionRetries {
    count: u64,
    last_reason: String,
}

impl SessionRetries {
    fn text(&self) -> String {
        retries_text(self.count, Some(&self.last_reason))
    }
    /// ` (2 retries — last: connection reset)` or nothing.
    fn suffix(&self) -> String {
        if self.count == 0 {
            String::new()
        } else {
            format!(" ({})", self.text())
        }
    }
}

/// Draws bars (total + one per session, retries beside them) or prints JSON lines, until the
/// sender is dropped; returns how many retries there were.
async fn render(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Event>,
    json: bool,
    total: u64,
) -> u64 {
    let multi = MultiProgress::with_draw_target(if json {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    });
    let style = ProgressStyle::with_template(
        "{prefix:>16} {bar:30} {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {msg}",
    )
    .expect("static template");
    let all = multi.add(
        ProgressBar::new(total)
            .with_style(style.clone())
            .with_prefix("total"),
    );
    let mut bars: HashMap<String, ProgressBar> = HashMap::new();
    let mut done: HashMap<(String, String), u64> = HashMap::new();
    let mut retries: HashMap<String, SessionRetries> = HashMap::new();
    let mut all_retries = 0u64;
    while let Some(event) = rx.recv().await {
        if json {
            if let Ok(line) = serde_json::to_string(&event) {
                println!("{line}");
            }
        }
        match &event {
            Event::SessionStarted {
                session,
                bytes_total,
                ..
            } => {
                let bar = multi.add(
                    ProgressBar::new(*bytes_total)
                        .with_style(style.clone())
                        .with_prefix(session.clone()),
                );
                bars.insert(session.clone(), bar);
            }
            Event::FileProgress {
                session,
                path,
                bytes_done,
                ..
            } => {
                let prev = done
                    .insert((session.clone(), path.clone()), *bytes_done)
                    .unwrap_or(0);
                let delta = bytes_done.saturating_sub(prev);
                all.inc(delta);
                if let Some(b) = bars.get(session) {
                    b.inc(delta);
                }
            }
            Event::SessionDone {
                session,
                outcome,
                bytes_sent,
                ..
            } => {
                if let Some(b) = bars.remove(session) {
                    b.finish_and_clear();
                }
                let what = match outcome {
                    SessionOutcome::Uploaded => {
                        format!("uploaded ({} sent)", human_bytes(*bytes_sent))
                    }
                    SessionOutcome::AlreadyUploaded => "already uploaded".into(),
                };
                let tried = retries.remove(session).unwrap_or_default().suffix();
                if !json {
                    let _ = multi.println(format!("{session}: {what}{tried}"));
                }
            }
            Event::SessionFailed {
                session, reason, ..
            } => {
                if let Some(b) = bars.remove(session) {
                    b.abandon();
                }
                let tried = retries.remove(session).unwrap_or_default().suffix();
                if !json {
                    let _ = multi.println(format!("{session}: failed{tried}: {reason}"));
                }
            }
            Event::SessionRefused {
                session,
                verdict,
                findings,
            } => {
                if !json {
                    let _ = multi.println(format!(
                        "{session}: not uploaded (verdict {verdict}): {}",
                        findings.join("; ")
                    ));
                }
            }
            Event::Retrying {
                session, reason, ..
            } => {
                all_retries += 1;
                let r = retries.entry(session.clone()).or_default();
                r.count += 1;
                r.last_reason.clone_from(reason);
                if let Some(b) = bars.get(session) {
                    b.set_message(r.text());
                }
            }
            Event::FileDone { .. } | Event::FileVerified { .. } => {}
        }
    }
    all.finish_and_clear();
    all_retries
}

/// A rolling daily log in the user's log folder (or `LABPIPE_LOG_DIR`); `-v` mirrors it on stderr.
fn init_log(verbose: u8) -> Result<tracing_appender::non_blocking::WorkerGuard> {
    use tracing_subscriber::prelude::*;
    use tracing_subscriber::{fmt, EnvFilter};
    let dir = std::env::var_os("LABPIPE_LOG_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            dirs::state_dir()
                .or_else(dirs::data_local_dir)
                .unwrap_or_else(std::env::temp_dir)
                .join("labpipe")
                .join("logs")
        });
    std::fs::create_dir_all(&dir).with_context(|| {
        format!(
            "cannot create the log folder {}; set LABPIPE_LOG_DIR",
            dir.display()
        )
    })?;
    let (file, guard) =
        tracing_appender::non_blocking(tracing_appender::rolling::daily(&dir, "labpipe.log"));
    let filter = || {
        EnvFilter::try_from_env("LABPIPE_LOG")
            .unwrap_or_else(|_| EnvFilter::new("info,aws_smithy_runtime=warn,aws_config=warn"))
    };
    let stderr_level = match verbose {
        0 => None,
        1 => Some("info"),
        _ => Some("debug"),
    };
    let stderr = stderr_level.map(|lvl| {
        fmt::layer()
            .with_writer(std::io::stderr)
            .with_filter(EnvFilter::new(lvl))
    });
    let _ = tracing_subscriber::registry()
        .with(
            fmt::layer()
                .with_ansi(false)
                .with_writer(file)
                .with_filter(filter()),
        )
        .with(stderr)
        .try_init();
    Ok(guard)
}

/// `16MiB`, `5MB`, `1048576`, `1.5GB` → bytes.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{text:?} is not a size like 16MiB or 20MB"))?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {text:?}; use B, KB, MB, GB, KiB, MiB or GiB"
            ))
        }
    };
    let bytes = n * mult;
    if !(bytes.is_finite() && bytes >= 1.0) {
        return Err(format!("{text:?} must be at least one byte"));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::{parse_bytes, retries_text};

    #[test]
    fn retries_read_naturally() {
        assert_eq!(retries_text(1, None), "1 retry");
        assert_eq!(
            retries_text(3, Some("connection reset")),
            "3 retries — last: connection reset"
        );
    }

    #[test]
    fn sizes_parse() {
        for (input, expect) in [
            ("16MiB", Ok(16 << 20)),
            ("5MB", Ok(5_000_000)),
            ("1048576", Ok(1 << 20)),
            ("1.5 GB", Ok(1_500_000_000)),
        ] {
            assert_eq!(parse_bytes(input), expect, "{input}");
        }
        assert!(parse_bytes("fast").is_err());
        assert!(parse_bytes("3 parsecs").is_err());
        assert!(parse_bytes("0").is_err());
    }
}
