//! The calls the Python functions make, over the same engines and in the same order as the CLI's
//! `query`, `query --files` and `sync` (`crates/cli/src/commands/`): `labpipe-catalog` runs the
//! filter, `labpipe-sync` picks the output files and downloads them. Kept free of Python so the
//! rows can be checked against the CLI's `--json` shapes without an interpreter.
//!
//! The rows serialize to exactly the objects `labpipe query --json` and `labpipe query --files
//! --json` print (README, *`labpipe query --json`*), so a DataFrame and a CLI run of the same
//! filter agree field for field.

use std::path::Path;

use labpipe_catalog::{Catalog, SessionItem};
use labpipe_core::filter::Filter;
use labpipe_sync::{
    select, Glob, ProcessedFiles, RemoteFile, SelectOptions, Selection, SyncEvent, SyncOptions,
    SyncRun, SyncSummary,
};
use serde::Serialize;
use tokio::sync::mpsc::UnboundedSender;

use crate::error::Error;
use crate::settings::Settings;

/// One session, as `labpipe query --json` prints it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionRow {
    pub session: String,
    pub recorded_at: String,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_message: Option<String>,
    pub total_bytes: u64,
    pub file_count: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pipeline_version: Option<u32>,
    pub metadata: labpipe_core::Metadata,
}

impl From<&SessionItem> for SessionRow {
    fn from(s: &SessionItem) -> SessionRow {
        SessionRow {
            session: s.session.clone(),
            recorded_at: s.recorded_at.format("%Y-%m-%dT%H:%M:%S").to_string(),
            status: s.status.as_str().to_string(),
            status_message: s.status_message.clone(),
            total_bytes: s.total_bytes,
            file_count: s.file_count,
            pipeline_version: s.pipeline_version,
            metadata: s.metadata.clone(),
        }
    }
}

/// One preprocessed file, as `labpipe query --files --json` prints it, plus where `sync` puts
/// it (`path`, relative to the destination).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FileRow {
    pub session: String,
    pub uri: String,
    pub bucket: String,
    pub key: String,
    pub size: u64,
    pub sha256: String,
    pub version: Option<u32>,
    pub path: String,
}

impl From<&RemoteFile> for FileRow {
    fn from(f: &RemoteFile) -> FileRow {
        FileRow {
            session: f.session.clone(),
            uri: f.uri(),
            bucket: f.bucket.clone(),
            key: f.key.clone(),
            size: f.size,
            sha256: f.sha256.clone(),
            version: f.version,
            path: f.path.clone(),
        }
    }
}

/// `files()`' answer: the files, and the matching sessions that have none (yet).
#[derive(Debug, Clone, Serialize)]
pub struct FilesAnswer {
    pub files: Vec<FileRow>,
    pub unprocessed: Vec<UnprocessedRow>,
}

#[derive(Debug, Clone, Serialize)]
pub struct UnprocessedRow {
    pub session: String,
    pub status: String,
}

async fn catalog(settings: &Settings) -> Result<(Catalog, aws_config::SdkConfig), Error> {
    let table = settings.table()?.to_string();
    let sdk = settings.sdk().await;
    Ok((Catalog::from_sdk(&sdk, table), sdk))
}

/// Output records written before the bucket was recorded name none: use the stack's (as the CLI).
fn with_bucket(files: &mut [RemoteFile], processed_bucket: Option<&str>) {
    if let Some(b) = processed_bucket {
        for f in files.iter_mut().filter(|f| f.bucket.is_empty()) {
            f.bucket = b.to_string();
        }
    }
}

/// `labpipe query FILTER --json`.
pub async fn query(
    settings: &Settings,
    filter: &Filter,
    limit: Option<usize>,
) -> Result<Vec<SessionRow>, Error> {
    let (catalog, _) = catalog(settings).await?;
    let sessions = catalog
        .query(filter, limit)
        .await
        .map_err(|e| Error::Catalog(format!("query failed: {e}")))?;
    Ok(sessions.iter().map(SessionRow::from).collect())
}

/// `labpipe query FILTER --files --json [--pipeline-version N]`.
pub async fn files(
    settings: &Settings,
    filter: &Filter,
    pipeline_version: Option<u32>,
    limit: Option<usize>,
) -> Result<FilesAnswer, Error> {
    let (catalog, _) = catalog(settings).await?;
    let sessions = catalog
        .query(filter, limit)
        .await
        .map_err(|e| Error::Catalog(format!("query failed: {e}")))?;
    // Outputs whose keys are not safe names are left out (`sync` reports them as not delivered).
    let ProcessedFiles {
        mut files,
        unprocessed,
        ..
    } = labpipe_sync::processed_files(&catalog, &sessions, pipeline_version, None)
        .await
        .map_err(|e| Error::Catalog(format!("cannot read the output records: {e}")))?;
    with_bucket(&mut files, settings.processed_bucket.as_deref());
    Ok(FilesAnswer {
        files: files.iter().map(FileRow::from).collect(),
        unprocessed: unprocessed
            .iter()
            .map(|u| UnprocessedRow {
                session: u.session.clone(),
                status: u.status.as_str().to_string(),
            })
            .collect(),
    })
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
    let (catalog, sdk) = catalog(settings).await?;
    let s3 = labpipe_sync::s3_client(&sdk);
    let opts = SelectOptions {
        version: request.pipeline_version,
        raw: false,
        raw_bucket: settings.raw_bucket.clone(),
        raw_revision: None,
        revision: None,
        include,
        limit: request.limit,
    };
    let mut selection = select(&catalog, &s3, filter, &opts).await?;
    with_bucket(&mut selection.files, settings.processed_bucket.as_deref());
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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use labpipe_catalog::Status;
    use labpipe_core::{MetaValue, SessionId};

    #[test]
    fn a_session_row_has_the_cli_json_shape() {
        let id = "20210301_090000";
        let mut item = SessionItem::placeholder(
            id,
            SessionId::parse(id).unwrap().recorded_at(),
            Status::Processed,
            Utc::now(),
        );
        item.total_bytes = 42;
        item.file_count = 3;
        item.metadata
            .insert("fatigue".into(), MetaValue::Number(3.5));
        let v = serde_json::to_value(SessionRow::from(&item)).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        // status_message and pipeline_version are left out when absent, as the CLI does.
        assert_eq!(
            keys,
            [
                "file_count",
                "metadata",
                "recorded_at",
                "session",
                "status",
                "total_bytes"
            ]
        );
        assert_eq!(v["recorded_at"], "2021-03-01T09:00:00");
        assert_eq!(v["status"], "PROCESSED");
        assert_eq!(v["metadata"]["fatigue"], 3.5);
    }
}
