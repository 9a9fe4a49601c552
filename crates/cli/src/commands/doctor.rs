//! `labpipe doctor`: one look at a configuration. The checks live in `labpipe-doctor`; this
//! module resolves where the stack is, prints one line per check (and what to do), or `--json`,
//! and exits 1 when any check failed.
//!
//! `--json` (stable): `{ok, checks: [{name, outcome, detail, fix?}]}`, `outcome` one of `ok`,
//! `warn`, `skipped`, `fail`.

use std::process::ExitCode;

use anyhow::Result;
use labpipe_doctor::{diagnose, Outcome, Target};

use super::query::runtime;
use crate::cli::DoctorArgs;

pub fn run(args: DoctorArgs) -> Result<ExitCode> {
    let stack = crate::config::stack(&args.stack)?;
    let target = Target {
        outputs: stack.outputs.clone(),
        table: stack.table.clone(),
        raw_bucket: stack.raw_bucket.clone(),
        processed_bucket: stack.processed_bucket.clone(),
    };
    if !args.json {
        eprintln!(
            "checking the configuration{}",
            stack
                .outputs
                .as_ref()
                .map(|p| format!(" of {}", p.display()))
                .unwrap_or_default()
        );
    }
    let checks = runtime()?.block_on(async {
        let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        diagnose(&sdk, &target, chrono::Utc::now()).await
    });
    let count = |o: Outcome| checks.iter().filter(|c| c.outcome == o).count();
    let failed = count(Outcome::Fail);
    if args.json {
        let v = serde_json::json!({"ok": failed == 0, "checks": checks});
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        for c in &checks {
            println!("{:<8} {:<29} {}", c.outcome.as_str(), c.name, c.detail);
            if c.outcome != Outcome::Ok {
                if let Some(fix) = &c.fix {
                    println!("{:<8} {:<29} → {fix}", "", "");
                }
            }
        }
        println!(
            "{} checks: {} ok, {} warnings, {} skipped, {} failed",
            checks.len(),
            count(Outcome::Ok),
            count(Outcome::Warn),
            count(Outcome::Skipped),
            failed
        );
    }
    Ok(if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
