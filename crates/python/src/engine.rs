//! The calls the Python functions make, over the same engines and in the same order as the CLI's
//! `query`, `query --files` and `sync` (`crates/cli/src/commands/`): `labpipe-catalog` runs the
//! filter, `labpipe_lab::research` lists the output files and picks a sync's selection with the
//! rows the CLI prints, `labpipe-sync` downloads. Kept free of Python so it can be tested
//! without an interpreter.

use std::path::Path;

use labpipe_core::filter::Filter;
use labpipe_lab::research::{self, FileRow, SessionRow, UnprocessedRow};
use labpipe_sync::{Glob, SelectOptions, Selection, SyncEvent, SyncOptions, SyncRun, SyncSummary};
use serde::Serialize;
use tokio::sync::mpsc::UnboundedSender;

use crate::error::Error;
use crate::settings::Settings;

fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("rows serialize")
}

/// `labpipe query FILTER --json`, as its text.
pub async fn query(
    settings: &Settings,
    filter: &Filter,
    limit: Option<usize>,
) -> Result<String, Error> {
    let (catalog, _) = settings.catalog().await?;
    let sessions = catalog
        .query(filter, limit)
        .await
        .map_err(|e| Error::Catalog(format!("query failed: {e}")))?;
    Ok(json(
        &sessions.iter().map(SessionRow::from).collect::<Vec<_>>(),
    ))
}

/// `files()`' answer: the files (`labpipe query --files --json`'s rows), and the matching
/// sessions that have none (yet).
#[derive(Serialize)]
struct FilesAnswer<'a> {
    files: Vec<FileRow<'a>>,
    unprocessed: Vec<UnprocessedRow<'a>>,
}

/// `labpipe query FILTER --files --json [--pipeline-version N]`, with the unprocessed sessions.
pub async fn files(
    settings: &Settings,
    filter: &Filter,
    pipeline_version: Option<u32>,
    limit: Option<usize>,
) -> Result<String, Error> {
    let (catalog, _) = settings.catalog().await?;
    let (_, found) = research::files(
        &catalog,
        filter,
        pipeline_version,
        limit,
        settings.stack.processed_bucket.as_deref(),
    )
    .await
    .map_err(|e| Error::Catalog(e.to_string()))?;
    Ok(json(&FilesAnswer {
        files: found.files.iter().map(FileRow::from).collect(),
        unprocessed: found.unprocessed.iter().map(UnprocessedRow::from).collect(),
    }))
}

/// What `sync()` takes besides the filter and the destination (the CLI's flags).
#[derive(Debug, Clone, Default)]
pub struct SyncRequest {
    pub pipeline_version: Option<u32>,
    pub include: Vec<String>,
    pub limit: Option<usize>,
    pub options: SyncOptions,
}

/// The selection of `labpipe sync --where FILTER`: the same `select` and the same bucket fix-up.
pub async fn selection(
    settings: &Settings,
    filter: &Filter,
    request: &SyncRequest,
) -> Result<(Selection, labpipe_sync::S3Client), Error> {
    let include = request
        .include
        .iter()
        .map(|p| Glob::new(p))
        .collect::<Result<Vec<_>, _>>()?;
    let (catalog, sdk) = settings.catalog().await?;
    let s3 = labpipe_sync::s3_client(&sdk);
    let opts = SelectOptions {
        version: request.pipeline_version,
        raw: false,
        raw_bucket: settings.stack.raw_bucket.clone(),
        raw_revision: None,
        revision: None,
        include,
        limit: request.limit,
    };
    let selection = research::selection(
        &catalog,
        &s3,
        filter,
        &opts,
        settings.stack.processed_bucket.as_deref(),
    )
    .await?;
    Ok((selection, s3))
}

/// Downloads a selection into `dest` with `labpipe-sync`'s run (verified, resumable, one run
/// per folder); events go to `events`. A run with failed files is an error, as for the CLI.
pub async fn transfer(
    s3: labpipe_sync::S3Client,
    selection: &Selection,
    label: &str,
    dest: &Path,
    options: SyncOptions,
    events: Option<UnboundedSender<SyncEvent>>,
) -> Result<SyncSummary, Error> {
    let run = SyncRun::new(s3, dest, options, events);
    let summary = run.run(selection, label).await?;
    if summary.files_failed > 0 {
        return Err(labpipe_sync::SyncError::Incomplete {
            failed: summary.files_failed,
            total: summary.files,
            first: summary.first_error.clone().unwrap_or_default(),
        }
        .into());
    }
    Ok(summary)
}
