//! `labpipe check`: list, check and report; never reads data bytes.

use crate::cli::CheckArgs;
use crate::render;
use crate::UsageError;
use anyhow::Result;
use labpipe_core::check::check_folder;
use labpipe_core::scan::session_folders;
use labpipe_core::{SessionReport, Verdict};
use std::io::{IsTerminal, Write};
use std::process::ExitCode;

pub fn run(args: CheckArgs) -> Result<ExitCode> {
    let mut reports: Vec<SessionReport> = Vec::new();
    let mut empty_roots = Vec::new();
    let journal = labpipe_lab::journal_path();
    for path in &args.paths {
        let mut schema = super::load_schema(&args.schema, path)?;
        if let Some(q) = args.quiet_period {
            schema.session.quiet_period_secs = q;
        }
        let folders = session_folders(path).map_err(|e| UsageError(e.to_string()))?;
        if folders.is_empty() {
            empty_roots.push(path.display().to_string());
        }
        for folder in folders {
            let report = check_folder(&folder, &schema).map_err(|e| UsageError(e.to_string()))?;
            let rig = labpipe_upload::folder_rig(&journal, &report.session, args.rig);
            reports.push(report.on_rig(rig));
        }
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &render::check_json(&reports))?;
        writeln!(out)?;
    } else {
        let color = render::colour_wanted(stdout.is_terminal());
        write!(out, "{}", render::check_table(&reports, color))?;
        for root in &empty_roots {
            writeln!(
                out,
                "{root}: no session folders found (expected folders named YYYYMMDD_HHMMSS)"
            )?;
        }
    }
    let blocked = reports
        .iter()
        .any(|r| matches!(r.verdict, Verdict::Fail | Verdict::Wait));
    Ok(if blocked {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
