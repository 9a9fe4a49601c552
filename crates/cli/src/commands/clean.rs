//! `labpipe clean`: free the lab disk of session folders that are processed and provably safe
//! in S3. Every rule lives in `labpipe-retention`; this module parses the age, prints one line
//! per folder as it is decided (or, with `--json`, one object at the end) and sets the exit code.
//!
//! `--json` (stable): `{dry_run, older_than_days, folders: [{session, path, action, code, reason,
//! files, bytes}], deleted, would_delete, kept, bytes_freed}`; `action` is `deleted`,
//! `would_delete` or `kept`, `code` is `verified` or the reason a folder was kept
//! (`uploading`, `too_recent`, `not_processed`, `extra_file`, `changed_file`, `object_missing`,
//! `checksum_differs`, …).
//!
//! Each folder is checked and deleted while its session's upload lock is held (the locks beside
//! the upload journal, `--journal`), so a folder uploading on this PC is kept and no upload of it
//! can start meanwhile.

use std::process::ExitCode;

use anyhow::Result;
use chrono::TimeDelta;
use labpipe_core::units::human_bytes;
use labpipe_retention::{clean, session_folders, Action, CleanOptions, FolderOutcome};

use super::query::{catalog, runtime};
use crate::cli::CleanArgs;
use crate::UsageError;

/// `30d`, `8w`, `12h` → a duration; anything else is a usage error that shows the form.
pub fn parse_age(text: &str) -> Result<TimeDelta, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: i64 = n.parse().map_err(|_| {
        format!("'{text}' is not an age; write a number and a unit, e.g. 30d, 8w or 12h")
    })?;
    match unit {
        "d" => Ok(TimeDelta::days(n)),
        "w" => Ok(TimeDelta::weeks(n)),
        "h" => Ok(TimeDelta::hours(n)),
        _ => Err(format!(
            "'{text}': unknown unit '{unit}'; use d (days), w (weeks) or h (hours), e.g. 30d"
        )),
    }
}

pub fn run(args: CleanArgs) -> Result<ExitCode> {
    let older_than =
        parse_age(&args.older_than).map_err(|e| UsageError(format!("--older-than {e}")))?;
    let mut paths = args.folders.clone();
    paths.extend(args.root.clone());
    let folders = session_folders(&paths).map_err(|e| UsageError(e.to_string()))?;
    let stack = crate::config::stack(&args.stack)?;
    stack.table()?;
    let journal = args
        .journal
        .clone()
        .unwrap_or_else(labpipe_upload::Journal::default_path);
    let opts = CleanOptions {
        older_than,
        now: chrono::Local::now().naive_local(),
        dry_run: args.dry_run,
        raw_bucket: stack.raw_bucket.clone(),
        upload_locks: labpipe_upload::journal::locks_dir_beside(&journal),
        journal,
        queued: Default::default(),
        rig: args.rig,
    };
    let json = args.json;
    let outcomes = runtime()?.block_on(async {
        let (catalog, sdk) = catalog(&stack).await?;
        let s3 = labpipe_retention::s3_client(&sdk);
        if !json {
            eprintln!(
                "checking {} session folder{} against the catalog and S3{}",
                folders.len(),
                if folders.len() == 1 { "" } else { "s" },
                if opts.dry_run {
                    " (dry run: nothing is deleted)"
                } else {
                    ""
                }
            );
        }
        anyhow::Ok(
            clean(&catalog, &s3, &folders, &opts, |o| {
                if !json {
                    print_line(o)
                }
            })
            .await,
        )
    })?;

    let count = |a: Action| outcomes.iter().filter(|o| o.action == a).count();
    let freed: u64 = outcomes
        .iter()
        .filter(|o| o.action != Action::Kept)
        .map(|o| o.bytes)
        .sum();
    let failed = outcomes.iter().filter(|o| o.failed).count();
    if json {
        let v = serde_json::json!({
            "dry_run": args.dry_run,
            "older_than_days": older_than.num_days(),
            "folders": outcomes,
            "deleted": count(Action::Deleted),
            "would_delete": count(Action::WouldDelete),
            "kept": count(Action::Kept),
            "bytes_freed": freed,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else if args.dry_run {
        println!(
            "{} folders checked: {} would be deleted ({} freed), {} kept",
            outcomes.len(),
            count(Action::WouldDelete),
            human_bytes(freed),
            count(Action::Kept)
        );
    } else {
        println!(
            "{} folders checked: {} deleted ({} freed), {} kept",
            outcomes.len(),
            count(Action::Deleted),
            human_bytes(freed),
            count(Action::Kept)
        );
    }
    if failed > 0 {
        eprintln!("labpipe: {failed} folder(s) could not be checked or deleted; see the reasons above, fix them and run again");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

fn print_line(o: &FolderOutcome) {
    let what = match o.action {
        Action::Deleted => "deleted",
        Action::WouldDelete => "would delete",
        Action::Kept => "kept",
    };
    println!(
        "{what:<12} {:<16} {:>10}  {}",
        o.session,
        human_bytes(o.bytes),
        o.reason
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_in_days_weeks_and_hours() {
        assert_eq!(parse_age("30d"), Ok(TimeDelta::days(30)));
        assert_eq!(parse_age("8w"), Ok(TimeDelta::weeks(8)));
        assert_eq!(parse_age("12h"), Ok(TimeDelta::hours(12)));
        assert!(parse_age("30").unwrap_err().contains("unknown unit"));
        assert!(parse_age("d").unwrap_err().contains("e.g. 30d"));
        assert!(parse_age("3y").unwrap_err().contains("unknown unit 'y'"));
    }
}
