//! `labpipe dev …`: sample data for demos and tests.

use crate::cli::GenerateArgs;
use crate::UsageError;
use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use labpipe_sample::{generate as write_sessions, GenerateOptions, SampleKind};
use std::process::ExitCode;

pub fn generate(args: GenerateArgs) -> Result<ExitCode> {
    if !(args.size_mb > 0.0 && args.size_mb.is_finite()) {
        return Err(UsageError(format!(
            "--size-mb must be a positive number, got {}",
            args.size_mb
        ))
        .into());
    }
    let mut opts = GenerateOptions::new(&args.out);
    opts.count = args.count;
    opts.size_bytes = (args.size_mb * 1e6) as u64;
    opts.seed = args.seed;
    opts.broken = args.broken;
    if let Some(start) = &args.start {
        opts.start =
            chrono::NaiveDateTime::parse_from_str(start, "%Y%m%d_%H%M%S").map_err(|e| {
                UsageError(format!(
                    "--start '{start}' is not a session time like 20210301_161221 ({e})"
                ))
            })?;
    }
    let bar = if args.json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(0)
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} writing sessions {bar:30} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .expect("static template"),
    );
    let sessions = write_sessions(&opts, |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    })
    .with_context(|| format!("generating sample sessions in {}", args.out.display()))?;
    bar.finish_and_clear();
    write_demo_schema(&args)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&sessions)?);
        return Ok(ExitCode::SUCCESS);
    }
    let good = sessions
        .iter()
        .filter(|s| s.kind == SampleKind::Good)
        .count();
    let bytes: u64 = sessions.iter().map(|s| s.bytes).sum();
    for s in &sessions {
        let what = match s.kind.broken() {
            None => "good".to_string(),
            Some(kind) => format!("broken: {}", kind.describe()),
        };
        println!(
            "{:<22} {:>10}  {what}",
            s.name,
            labpipe_core::units::human_bytes(s.bytes)
        );
    }
    println!(
        "wrote {} sessions ({good} good, {} broken, {}) to {}\nnext: labpipe check {}",
        sessions.len(),
        sessions.len() - good,
        labpipe_core::units::human_bytes(bytes),
        args.out.display(),
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Gives the generated lab its own `labpipe.toml` (unless one exists) declaring the session size
/// it records, so scaled-down demo sessions are not flagged as unusually small.
fn write_demo_schema(args: &GenerateArgs) -> Result<()> {
    let path = args.out.join(labpipe_core::scan::SCHEMA_FILE);
    if path.exists() {
        return Ok(());
    }
    let text = format!(
        "# Lab schema of this sample lab, written by `labpipe dev generate`.\n\
         # The built-in fields (subject_id, fatigue, hardware_model, sample_rate_hz, channels,\n\
         # sample_format, ...) apply; add [fields.NAME] tables to check more keys.\n\
         [session]\nexpected_size_mb = {}\n",
        args.size_mb
    );
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
}
