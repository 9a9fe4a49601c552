//! `labpipe query`: the sessions a filter selects, or (`--files`) the preprocessed files they
//! have — the list a researcher hands to a job. Selection lives in `labpipe-catalog` (the filter
//! plan) and `labpipe-sync` (which output files); this module only renders.
//!
//! `--json` shapes are stable (documented in the README):
//! - sessions: `[{session, recorded_at, status, status_message?, total_bytes, file_count,
//!   pipeline_version?, metadata}]`
//! - `--files`: `[{session, uri, bucket, key, size, sha256, version}]`

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::{Context, Result};
use labpipe_catalog::{Catalog, SessionItem};
use labpipe_core::filter::{Builtin, Filter};
use labpipe_core::units::human_bytes;
use labpipe_core::MetaValue;
use labpipe_sync::{RemoteFile, Unprocessed};
use serde::Serialize;

use crate::cli::{QueryArgs, SchemaArg};
use crate::config::Stack;
use crate::UsageError;

/// Metadata columns the table shows besides those the filter names, when sessions have them.
const DEFAULT_COLUMNS: [&str; 3] = ["subject_id", "hardware_model", "fatigue"];
const MAX_META_COLUMNS: usize = 4;

/// Parses and type-checks a filter; a mistake becomes a usage error showing the filter with a
/// caret under the offending part.
pub fn parse_filter(source: &str, schema: &SchemaArg) -> Result<Filter> {
    let cwd = std::env::current_dir().context("cannot read the current folder")?;
    let schema = super::load_schema(schema, &cwd)?;
    Filter::new(source, &schema)
        .map_err(|e| UsageError(format!("invalid filter:\n{}", e.render(source))).into())
}

pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

pub async fn catalog(stack: &Stack) -> Result<(Catalog, aws_config::SdkConfig)> {
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    Ok((Catalog::from_sdk(&sdk, stack.table()?), sdk))
}

pub fn run(args: QueryArgs) -> Result<ExitCode> {
    let filter = parse_filter(&args.filter, &args.schema)?;
    let stack = Stack::resolve(&args.stack)?;
    stack.table()?;
    runtime()?.block_on(async {
        let (catalog, _) = catalog(&stack).await?;
        let sessions = catalog
            .query(&filter, args.limit)
            .await
            .context("query failed")?;
        if sessions.is_empty() {
            eprintln!("no session matches '{}'", filter.source);
        }
        if args.files {
            let labpipe_sync::ProcessedFiles {
                files,
                unprocessed,
                refused,
            } = labpipe_sync::processed_files(&catalog, &sessions, args.pipeline_version)
                .await
                .context("cannot read the output records")?;
            for r in &refused {
                eprintln!("labpipe: warning: {} not listed: {}", r.path, r.reason);
            }
            let files = with_bucket(files, stack.processed_bucket.as_deref());
            print!("{}", render_files(&files, &args));
            note_unprocessed(&unprocessed, args.pipeline_version);
            if !args.json && !args.csv && !files.is_empty() {
                eprintln!(
                    "{} files, {} in {} sessions",
                    files.len(),
                    human_bytes(files.iter().map(|f| f.size).sum()),
                    sessions.len() - unprocessed.len()
                );
            }
        } else {
            print!("{}", render_sessions(&sessions, &filter, &args));
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Output records written before the bucket was recorded name none: use the stack's.
fn with_bucket(mut files: Vec<RemoteFile>, processed_bucket: Option<&str>) -> Vec<RemoteFile> {
    if let Some(b) = processed_bucket {
        for f in files.iter_mut().filter(|f| f.bucket.is_empty()) {
            f.bucket = b.to_string();
        }
    }
    files
}

fn note_unprocessed(unprocessed: &[Unprocessed], version: Option<u32>) {
    if unprocessed.is_empty() {
        return;
    }
    let names: Vec<String> = unprocessed
        .iter()
        .take(8)
        .map(|u| format!("{} ({})", u.session, u.status.as_str()))
        .collect();
    let more = if unprocessed.len() > 8 {
        format!(" and {} more", unprocessed.len() - 8)
    } else {
        String::new()
    };
    let which = version
        .map(|v| format!(" of pipeline version {v}"))
        .unwrap_or_default();
    eprintln!(
        "{} matching session(s) have no processed files{which} yet: {}{more}",
        unprocessed.len(),
        names.join(", ")
    );
}

#[derive(Serialize)]
struct SessionJson<'a> {
    session: &'a str,
    recorded_at: String,
    status: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    status_message: Option<&'a str>,
    total_bytes: u64,
    file_count: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pipeline_version: Option<u32>,
    metadata: &'a labpipe_core::Metadata,
}

#[derive(Serialize)]
struct FileJson<'a> {
    session: &'a str,
    uri: String,
    bucket: &'a str,
    key: &'a str,
    size: u64,
    sha256: &'a str,
    version: Option<u32>,
}

fn time(item: &SessionItem) -> String {
    item.recorded_at.format("%Y-%m-%dT%H:%M:%S").to_string()
}

fn meta_text(v: Option<&MetaValue>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// The metadata columns of the table: fields the filter names, then the usual identifying ones,
/// as far as any session has them.
fn meta_columns(sessions: &[SessionItem], filter: &Filter) -> Vec<String> {
    let present: BTreeSet<&str> = sessions
        .iter()
        .flat_map(|s| s.metadata.keys().map(String::as_str))
        .collect();
    let mut cols: Vec<String> = Vec::new();
    let builtin = |n: &str| Builtin::ALL.iter().any(|(b, _)| *b == n);
    for name in filter
        .fields()
        .iter()
        .map(String::as_str)
        .chain(DEFAULT_COLUMNS)
    {
        if !builtin(name)
            && present.contains(name)
            && !cols.iter().any(|c| c == name)
            && cols.len() < MAX_META_COLUMNS
        {
            cols.push(name.to_string());
        }
    }
    cols
}

fn render_sessions(sessions: &[SessionItem], filter: &Filter, args: &QueryArgs) -> String {
    let mut out = String::new();
    if args.json {
        let rows: Vec<SessionJson> = sessions
            .iter()
            .map(|s| SessionJson {
                session: &s.session,
                recorded_at: time(s),
                status: s.status.as_str(),
                status_message: s.status_message.as_deref(),
                total_bytes: s.total_bytes,
                file_count: s.file_count,
                pipeline_version: s.pipeline_version,
                metadata: &s.metadata,
            })
            .collect();
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&rows).expect("rows serialize")
        );
        return out;
    }
    if args.csv {
        let keys: BTreeSet<&str> = sessions
            .iter()
            .flat_map(|s| s.metadata.keys().map(String::as_str))
            .collect();
        let mut header = vec![
            "session",
            "recorded_at",
            "status",
            "total_bytes",
            "file_count",
            "pipeline_version",
        ];
        header.extend(keys.iter().copied());
        let _ = writeln!(
            out,
            "{}",
            header
                .iter()
                .map(|h| csv_field(h))
                .collect::<Vec<_>>()
                .join(",")
        );
        for s in sessions {
            let mut row = vec![
                s.session.clone(),
                time(s),
                s.status.as_str().to_string(),
                s.total_bytes.to_string(),
                s.file_count.to_string(),
                s.pipeline_version
                    .map(|v| v.to_string())
                    .unwrap_or_default(),
            ];
            row.extend(keys.iter().map(|k| meta_text(s.metadata.get(*k))));
            let _ = writeln!(
                out,
                "{}",
                row.iter()
                    .map(|f| csv_field(f))
                    .collect::<Vec<_>>()
                    .join(",")
            );
        }
        return out;
    }
    if sessions.is_empty() {
        return out;
    }
    let cols = meta_columns(sessions, filter);
    let mut rows: Vec<Vec<String>> = vec![["SESSION", "RECORDED", "STATUS", "SIZE"]
        .iter()
        .map(|s| s.to_string())
        .chain(cols.iter().map(|c| c.to_uppercase()))
        .collect()];
    for s in sessions {
        let mut row = vec![
            s.session.clone(),
            s.recorded_at.format("%Y-%m-%d %H:%M").to_string(),
            s.status.as_str().to_string(),
            human_bytes(s.total_bytes),
        ];
        row.extend(cols.iter().map(|c| meta_text(s.metadata.get(c))));
        rows.push(row);
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    for row in &rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    let _ = writeln!(
        out,
        "{} session{}",
        sessions.len(),
        if sessions.len() == 1 { "" } else { "s" }
    );
    out
}

fn render_files(files: &[RemoteFile], args: &QueryArgs) -> String {
    let mut out = String::new();
    if args.json {
        let rows: Vec<FileJson> = files
            .iter()
            .map(|f| FileJson {
                session: &f.session,
                uri: f.uri(),
                bucket: &f.bucket,
                key: &f.key,
                size: f.size,
                sha256: &f.sha256,
                version: f.version,
            })
            .collect();
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&rows).expect("rows serialize")
        );
    } else if args.csv {
        let _ = writeln!(out, "session,uri,size,sha256");
        for f in files {
            let _ = writeln!(
                out,
                "{},{},{},{}",
                csv_field(&f.session),
                csv_field(&f.uri()),
                f.size,
                f.sha256
            );
        }
    } else {
        // One file per line, URI first, so `cut -f1` or `awk '{print $1}'` gives a plain list.
        for f in files {
            let _ = writeln!(out, "{}\t{}\t{}", f.uri(), f.size, f.sha256);
        }
    }
    out
}
