//! `labpipe upload`: flags, check, then hand the sessions to `labpipe-upload`, up to
//! `--sessions-in-flight` at once. A backlog of small sessions is bound by round trips (a listing,
//! then the files, then the manifest — each step waits for the one before), not by bandwidth;
//! sessions side by side fill those waits, while every data request still takes its share of the
//! run's `--concurrency` slots. Sessions are admitted by **bytes** too: a new one starts only
//! while the running ones hold less than the slots' budget (`concurrency × part size`), so a
//! backlog of 1 MB sessions runs sixteen side by side, while 600 MB sessions go one after another
//! and finish in order (a kill then leaves one session half-sent, not sixteen). Each session's
//! events stay in order (they come from its own task, on one channel), and a session's ending is
//! shown only after all its events.
//! What is safe is the upload library's rule, how a run counts is `labpipe_lab`'s
//! ([`RunSummary`]), and how it looks is [`crate::render_upload`]'s.

use crate::cli::UploadArgs;
use crate::render_upload::{summary_line, UploadProgress};
use crate::UsageError;
use anyhow::{Context, Result};
use labpipe_core::check::check_folder;
use labpipe_core::scan::session_folders;
use labpipe_core::units::human_bytes;
use labpipe_core::{SessionReport, Verdict};
use labpipe_lab::{RunSummary, SessionEnd};
use labpipe_upload::{object_key, ClientOptions, Journal, Upload, UploadError, UploadOptions};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

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
    if args.sessions_in_flight == 0 {
        return Err(UsageError("--sessions-in-flight must be at least 1".into()).into());
    }
    let reports = check_all(&args)?;
    if args.dry_run {
        return dry_run(&reports, args.json);
    }
    // Same resolution as every cloud command: flag/env, else the deployed stack's outputs file.
    // It also names the client log group; a stack that cannot be resolved fails the run only
    // when the bucket has to come from it.
    let stack = crate::config::stack(&crate::cli::StackArgs {
        table: None,
        processed_bucket: None,
        raw_bucket: None,
        stack_outputs: None,
    });
    let log_group = match &stack {
        Ok(s) => s
            .client_log_group
            .clone()
            .ok_or_else(|| labpipe_clientlog::ClientLogError::NoLogGroup.to_string()),
        Err(e) => Err(format!(
            "no client log group known ({e}); records wait in the spool"
        )),
    };
    let bucket = match args.bucket.clone() {
        Some(b) => b,
        None => stack?.raw_bucket.ok_or_else(|| {
            UsageError(
                "no bucket: pass --bucket NAME, set LABPIPE_RAW_BUCKET, or deploy the stack (scripts/deploy-local.sh writes .labpipe/stack/outputs.json)".into(),
            )
        })?,
    };
    // A refusal's correction command runs against the same bucket and journal as this run.
    let mut command_flags = vec!["--bucket".to_string(), bucket.clone()];
    if let Some(journal) = &args.journal {
        command_flags.extend(["--journal".to_string(), journal.display().to_string()]);
    }
    let opts = UploadOptions {
        part_size,
        concurrency: args.concurrency,
        max_bandwidth,
        command_flags,
    };
    let journal_path = args
        .journal
        .clone()
        .unwrap_or_else(labpipe_lab::journal_path);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(upload_all(
        &args,
        bucket,
        opts,
        journal_path,
        reports,
        log_group,
    ))
}

fn check_all(args: &UploadArgs) -> Result<Vec<SessionReport>> {
    let journal = args
        .journal
        .clone()
        .unwrap_or_else(labpipe_lab::journal_path);
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
            let report = check_folder(&folder, &schema).map_err(|e| UsageError(e.to_string()))?;
            let rig = labpipe_upload::folder_rig(&journal, &report.session, args.rig);
            reports.push(report.on_rig(rig));
        }
    }
    Ok(reports)
}

fn dry_run(reports: &[SessionReport], json: bool) -> Result<ExitCode> {
    let mut failed = false;
    for r in reports {
        let ready = may_upload(r);
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
                "{}: would upload {} files ({}) to {}",
                r.session,
                r.files.len(),
                human_bytes(r.total_bytes),
                labpipe_core::layout::raw_session_prefix(&r.session)
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
    log_group: Result<String, String>,
) -> Result<ExitCode> {
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let client_opts = ClientOptions {
        attempt_timeout: Duration::from_secs(args.attempt_timeout.max(1)),
        ..ClientOptions::default()
    };
    let s3 = labpipe_upload::s3_client(&sdk, &client_opts);
    let mut client_log = super::client_log::RunLog::open(&journal_path, &reports, log_group);
    let journal = Arc::new(Journal::open(&journal_path)?);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    client_log.start_shipping(&sdk);
    let total: u64 = reports
        .iter()
        .filter(|r| may_upload(r))
        .map(|r| r.total_bytes)
        .sum();
    let mut view = UploadProgress::new(args.json, total);
    tracing::info!(bucket = %bucket, sessions = reports.len(), journal = %journal_path.display(), "upload run starting");

    let mut summary = RunSummary::default();
    let mut fatal: Option<UploadError> = None;
    let mut upload_ref: Option<Upload> = None;
    // The slots' byte budget: sessions start while the running ones hold less than this.
    let budget = opts.concurrency as u64 * opts.part_size;
    match Upload::connect(s3, &bucket, opts, journal, Some(tx)).await {
        Err(e) => fatal = Some(e),
        Ok(upload) => {
            upload_ref = Some(upload.clone());
            // The display and the summary stay in this task: one owner of the display, and a
            // session's ending is shown only after every event it sent (they are on the channel
            // before its task returns).
            let mut running = tokio::task::JoinSet::new();
            let mut next = reports.iter().enumerate().peekable();
            let in_flight = args.sessions_in_flight;
            let mut running_bytes = 0u64;
            let mut stopping = false;
            loop {
                while !stopping && running.len() < in_flight {
                    let Some((_, report)) = next.peek() else {
                        break;
                    };
                    if !running.is_empty() && running_bytes + report.total_bytes > budget {
                        break;
                    }
                    let Some((index, report)) = next.next() else {
                        break;
                    };
                    running_bytes += report.total_bytes;
                    let upload = upload.clone();
                    let report = report.clone();
                    let reason = args.reason.clone().filter(|_| args.revise);
                    running.spawn(async move {
                        let result = match &reason {
                            Some(reason) => upload.correction(&report, reason).await,
                            None => upload.session(&report).await,
                        };
                        (index, result)
                    });
                }
                if running.is_empty() {
                    break;
                }
                let joined = loop {
                    tokio::select! {
                        j = running.join_next() => break j,
                        Some(ev) = rx.recv() => {
                            client_log.event(&ev);
                            view.event(&ev);
                        }
                    }
                };
                let Some(joined) = joined else { break };
                while let Ok(ev) = rx.try_recv() {
                    client_log.event(&ev);
                    view.event(&ev);
                }
                let (index, result) = joined.context("a session's upload task ended abnormally")?;
                let report = &reports[index];
                running_bytes -= report.total_bytes;
                let end = summary.add(report.total_bytes, &result);
                let sent = result.as_ref().map(|r| r.bytes_sent).unwrap_or(0);
                if let SessionEnd::Failed { code, reason, .. } = &end {
                    tracing::error!(session = %report.session, code, error = %reason, "session failed");
                }
                view.ended(&report.session, &end, sent);
                if let (SessionEnd::Failed { stop: true, .. }, Err(e)) = (&end, result) {
                    // Nothing new starts; the sessions already running end on their own (the
                    // same cause stops them soon) so none is cut off half-way.
                    stopping = true;
                    fatal.get_or_insert(e);
                }
            }
        }
    }
    summary.retries = view.finish();
    let requests = upload_ref
        .as_ref()
        .map(|u| u.request_tally())
        .unwrap_or_default();
    tracing::info!(
        requests = requests.requests,
        objects = requests.objects,
        per_object = requests.per_object(),
        "S3 requests of the run (every attempt, counted by an SDK interceptor)"
    );
    if let Some(e) = &fatal {
        client_log.run_failed(&e.to_string());
    }
    client_log.finish(&sdk).await;
    if args.json {
        let mut line = serde_json::to_value(&summary)?;
        line["event"] = "summary".into();
        line["requests"] = requests.requests.into();
        line["objects"] = requests.objects.into();
        println!("{line}");
    } else {
        println!("{}", summary_line(&summary));
    }
    if let Some(e) = fatal {
        tracing::error!(error = %e, "upload run stopped");
        return Err(anyhow::Error::new(e).context("upload stopped"));
    }
    Ok(if summary.needs_attention() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The lab rule for a folder on its own (no queue, no catalog here): `pass` and `warn` go.
fn may_upload(r: &SessionReport) -> bool {
    labpipe_lab::eligibility(r.verdict, None, None, None, labpipe_lab::Accept::PassOrWarn)
        .is_ready()
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
    use super::parse_bytes;

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
