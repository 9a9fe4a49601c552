//! `labpipe query`: the sessions a filter selects, or (`--files`) the preprocessed files they
//! have — the list a researcher hands to a job. Selection lives in `labpipe-catalog` (the filter
//! plan) and `labpipe-sync` (which output files); this module only renders.
//!
//! `--json` shapes are stable (documented in the README) and are the Python package's too: the
//! rows are `labpipe_lab::research`'s ([`SessionRow`], [`FileRow`]).

use std::collections::HashMap;
use std::io::{self, Write};
use std::ops::ControlFlow;
use std::process::ExitCode;

use anyhow::{Context, Result};
use labpipe_catalog::{Catalog, SessionItem};
use labpipe_core::filter::{Builtin, Filter};
use labpipe_core::units::human_bytes;
use labpipe_core::MetaValue;
use labpipe_lab::research::{FileRow, SessionRow};
use labpipe_sync::{RemoteFile, Unprocessed};

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
    labpipe_lab::stack::parse_filter(source, &schema).map_err(|e| UsageError(e.to_string()).into())
}

pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

pub async fn catalog(stack: &Stack) -> Result<(Catalog, aws_config::SdkConfig)> {
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    Ok((stack.catalog(&sdk)?, sdk))
}

pub fn run(args: QueryArgs) -> Result<ExitCode> {
    let filter = parse_filter(&args.filter, &args.schema)?;
    let stack = crate::config::stack(&args.stack)?;
    stack.table()?;
    runtime()?.block_on(async {
        let (catalog, _) = catalog(&stack).await?;
        if !args.files {
            return stream_sessions(&catalog, &filter, &args).await;
        }
        let (sessions, found) = labpipe_lab::research::files(
            &catalog,
            &filter,
            args.pipeline_version,
            args.limit,
            stack.processed_bucket.as_deref(),
        )
        .await?;
        if sessions.is_empty() {
            eprintln!("no session matches '{}'", filter.source);
        }
        let labpipe_sync::ProcessedFiles {
            files,
            unprocessed,
            refused,
        } = found;
        for r in &refused {
            eprintln!("labpipe: warning: {} not listed: {}", r.path, r.reason);
        }
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
        Ok(ExitCode::SUCCESS)
    })
}

/// The sessions, read month by month (`Catalog::query_by_month`) and written as they come:
/// JSON goes out element by element; CSV and the table, whose header and column widths depend
/// on every row, keep each row as its cells' text (a few hundred bytes), never the sessions.
/// At 100,000 sessions memory holds a few months of sessions, not the catalog.
async fn stream_sessions(catalog: &Catalog, filter: &Filter, args: &QueryArgs) -> Result<ExitCode> {
    let stdout = io::stdout().lock();
    let mut out = io::BufWriter::with_capacity(64 * 1024, stdout);
    let mut sink = SessionSink::new(filter, args);
    let mut write_error = None;
    let matched = catalog
        .query_by_month(filter, args.limit, |month| {
            match sink.add(&mut out, &month) {
                Ok(()) => ControlFlow::Continue(()),
                Err(e) => {
                    write_error = Some(e);
                    ControlFlow::Break(())
                }
            }
        })
        .await
        .context("query failed")?;
    let written = match write_error {
        Some(e) => Err(e),
        None => sink.finish(&mut out).and_then(|()| out.flush()),
    };
    match written {
        // A reader that stopped early (`| head`) is not an error.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {}
        other => other.context("cannot write to standard output")?,
    }
    if matched == 0 {
        eprintln!("no session matches '{}'", filter.source);
    }
    Ok(ExitCode::SUCCESS)
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

/// The table's candidate metadata columns: fields the filter names, then the usual identifying
/// ones; those that some session has become columns, at most [`MAX_META_COLUMNS`].
fn candidate_columns(filter: &Filter) -> Vec<String> {
    let builtin = |n: &str| Builtin::ALL.iter().any(|(b, _)| *b == n);
    let mut cols: Vec<String> = Vec::new();
    for name in filter
        .fields()
        .iter()
        .map(String::as_str)
        .chain(DEFAULT_COLUMNS)
    {
        if !builtin(name) && !cols.iter().any(|c| c == name) {
            cols.push(name.to_string());
        }
    }
    cols
}

/// One session written as one element of a pretty-printed JSON array (`first` opens the array):
/// element by element, the text `serde_json::to_string_pretty` gives the whole array.
fn write_json_element(out: &mut impl Write, s: &SessionItem, first: bool) -> io::Result<()> {
    let text = serde_json::to_string_pretty(&SessionRow::from(s)).expect("rows serialize");
    out.write_all(if first { b"[\n" } else { b",\n" })?;
    for (i, line) in text.lines().enumerate() {
        if i > 0 {
            out.write_all(b"\n")?;
        }
        write!(out, "  {line}")?;
    }
    Ok(())
}

/// A CSV row kept until the header (every metadata key of every session) is known.
struct CsvRow {
    /// The fixed fields, already joined.
    fixed: String,
    /// (key index, text) per metadata value.
    meta: Vec<(u32, String)>,
}

/// Where `labpipe query`'s sessions go as they are read.
enum SessionSink {
    Json {
        written: usize,
    },
    Csv {
        keys: Vec<String>,
        key_index: HashMap<String, u32>,
        rows: Vec<CsvRow>,
    },
    Table {
        candidates: Vec<String>,
        present: Vec<bool>,
        /// SESSION, RECORDED, STATUS, SIZE, then one cell per candidate column.
        rows: Vec<Vec<String>>,
    },
}

impl SessionSink {
    fn new(filter: &Filter, args: &QueryArgs) -> SessionSink {
        if args.json {
            SessionSink::Json { written: 0 }
        } else if args.csv {
            SessionSink::Csv {
                keys: Vec::new(),
                key_index: HashMap::new(),
                rows: Vec::new(),
            }
        } else {
            let candidates = candidate_columns(filter);
            SessionSink::Table {
                present: vec![false; candidates.len()],
                candidates,
                rows: Vec::new(),
            }
        }
    }

    /// Takes the next sessions in order (JSON writes them at once).
    fn add(&mut self, out: &mut impl Write, sessions: &[SessionItem]) -> io::Result<()> {
        match self {
            SessionSink::Json { written } => {
                for s in sessions {
                    write_json_element(out, s, *written == 0)?;
                    *written += 1;
                }
            }
            SessionSink::Csv {
                keys,
                key_index,
                rows,
            } => {
                for s in sessions {
                    let fixed = [
                        csv_field(&s.session),
                        csv_field(&time(s)),
                        csv_field(s.status.as_str()),
                        s.total_bytes.to_string(),
                        s.file_count.to_string(),
                        s.pipeline_version
                            .map(|v| v.to_string())
                            .unwrap_or_default(),
                    ]
                    .join(",");
                    let meta = s
                        .metadata
                        .iter()
                        .map(|(k, v)| {
                            let i = *key_index.entry(k.clone()).or_insert_with(|| {
                                keys.push(k.clone());
                                (keys.len() - 1) as u32
                            });
                            (i, meta_text(Some(v)))
                        })
                        .collect();
                    rows.push(CsvRow { fixed, meta });
                }
            }
            SessionSink::Table {
                candidates,
                present,
                rows,
            } => {
                for s in sessions {
                    let mut row = vec![
                        s.session.clone(),
                        s.recorded_at.format("%Y-%m-%d %H:%M").to_string(),
                        s.status.as_str().to_string(),
                        human_bytes(s.total_bytes),
                    ];
                    for (c, seen) in candidates.iter().zip(present.iter_mut()) {
                        *seen |= s.metadata.contains_key(c);
                        row.push(meta_text(s.metadata.get(c)));
                    }
                    rows.push(row);
                }
            }
        }
        Ok(())
    }

    /// Writes what had to wait for every session: the JSON array's end, the CSV, the table.
    fn finish(self, out: &mut impl Write) -> io::Result<()> {
        match self {
            SessionSink::Json { written: 0 } => writeln!(out, "[]"),
            SessionSink::Json { .. } => writeln!(out, "\n]"),
            SessionSink::Csv { keys, rows, .. } => {
                // Metadata columns in name order.
                let mut order: Vec<u32> = (0..keys.len() as u32).collect();
                order.sort_by(|a, b| keys[*a as usize].cmp(&keys[*b as usize]));
                let mut column = vec![0usize; keys.len()];
                for (col, k) in order.iter().enumerate() {
                    column[*k as usize] = col;
                }
                let header: Vec<String> = [
                    "session",
                    "recorded_at",
                    "status",
                    "total_bytes",
                    "file_count",
                    "pipeline_version",
                ]
                .iter()
                .map(|h| csv_field(h))
                .chain(order.iter().map(|k| csv_field(&keys[*k as usize])))
                .collect();
                writeln!(out, "{}", header.join(","))?;
                let mut cells = vec![String::new(); keys.len()];
                for row in rows {
                    cells.iter_mut().for_each(String::clear);
                    for (k, text) in row.meta {
                        cells[column[k as usize]] = text;
                    }
                    write!(out, "{}", row.fixed)?;
                    for c in &cells {
                        write!(out, ",{}", csv_field(c))?;
                    }
                    writeln!(out)?;
                }
                Ok(())
            }
            SessionSink::Table {
                candidates,
                present,
                rows,
            } => {
                if rows.is_empty() {
                    return Ok(());
                }
                let shown: Vec<usize> = (0..candidates.len())
                    .filter(|i| present[*i])
                    .take(MAX_META_COLUMNS)
                    .collect();
                let header: Vec<String> = ["SESSION", "RECORDED", "STATUS", "SIZE"]
                    .iter()
                    .map(|s| s.to_string())
                    .chain(shown.iter().map(|i| candidates[*i].to_uppercase()))
                    .collect();
                let cells = |row: &[String]| -> Vec<String> {
                    row[..4]
                        .iter()
                        .cloned()
                        .chain(shown.iter().map(|i| row[4 + i].clone()))
                        .collect()
                };
                let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
                for row in &rows {
                    for (w, cell) in widths.iter_mut().zip(cells(row)) {
                        *w = (*w).max(cell.chars().count());
                    }
                }
                let mut line = |row: &[String]| -> io::Result<()> {
                    let padded: Vec<String> = row
                        .iter()
                        .zip(&widths)
                        .map(|(cell, w)| format!("{cell:<w$}"))
                        .collect();
                    writeln!(out, "{}", padded.join("  ").trim_end())
                };
                line(&header)?;
                for row in &rows {
                    line(&cells(row))?;
                }
                writeln!(
                    out,
                    "{} session{}",
                    rows.len(),
                    if rows.len() == 1 { "" } else { "s" }
                )
            }
        }
    }
}

fn render_files(files: &[RemoteFile], args: &QueryArgs) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    if args.json {
        let rows: Vec<FileRow> = files.iter().map(FileRow::from).collect();
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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{NaiveDateTime, Utc};
    use labpipe_catalog::Status;

    fn session(id: &str, meta: &[(&str, MetaValue)]) -> SessionItem {
        let at = NaiveDateTime::parse_from_str(id, "%Y%m%d_%H%M%S").unwrap();
        let mut item = SessionItem::placeholder(id, at, Status::Processed, Utc::now());
        item.status_message = Some("done \"quoted\"\nline".into());
        item.pipeline_version = Some(2);
        for (k, v) in meta {
            item.metadata.insert((*k).into(), v.clone());
        }
        item
    }

    #[test]
    fn streamed_json_is_the_text_of_the_whole_array() {
        let sessions = [
            session(
                "20210301_090000",
                &[
                    ("fatigue", MetaValue::Number(3.5)),
                    ("subject_id", MetaValue::Text("S1".into())),
                ],
            ),
            session("20210302_090000", &[]),
            session("20210303_090000", &[("x", MetaValue::Text("a\tb".into()))]),
        ];
        for n in 0..=sessions.len() {
            let mut streamed = Vec::new();
            let mut sink = SessionSink::Json { written: 0 };
            // In two batches, as months arrive.
            let (a, b) = sessions[..n].split_at(n / 2);
            sink.add(&mut streamed, a).unwrap();
            sink.add(&mut streamed, b).unwrap();
            sink.finish(&mut streamed).unwrap();
            let rows: Vec<SessionRow> = sessions[..n].iter().map(SessionRow::from).collect();
            let whole = serde_json::to_string_pretty(&rows).unwrap() + "\n";
            assert_eq!(String::from_utf8(streamed).unwrap(), whole, "{n} sessions");
        }
    }
}
