//! What a researcher reads, for `labpipe query` / `sync` and the Python package alike: the rows
//! of `query --json` and `query --files --json` ([`SessionRow`], [`FileRow`]), the files of the
//! sessions a filter selects ([`files`]) and the selection a sync downloads ([`selection`]).
//! The CLI and Python serialize the same rows from the same calls, so a DataFrame and a CLI run
//! of one filter agree field for field by construction.

use labpipe_catalog::{Catalog, CatalogError, SessionItem};
use labpipe_core::filter::Filter;
use labpipe_sync::{
    processed_files, select, ProcessedFiles, RemoteFile, SelectOptions, Selection, SyncError,
};
use serde::Serialize;

/// One session, as `labpipe query --json` prints it and `labpipe.query(as_frame=False)` returns
/// it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionRow<'a> {
    pub session: &'a str,
    /// `YYYY-MM-DDTHH:MM:SS`, lab-local.
    pub recorded_at: String,
    pub status: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_message: Option<&'a str>,
    pub total_bytes: u64,
    pub file_count: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pipeline_version: Option<u32>,
    pub metadata: &'a labpipe_core::Metadata,
}

impl<'a> From<&'a SessionItem> for SessionRow<'a> {
    fn from(s: &'a SessionItem) -> SessionRow<'a> {
        SessionRow {
            session: &s.session,
            recorded_at: s.recorded_at.format("%Y-%m-%dT%H:%M:%S").to_string(),
            status: s.status.as_str(),
            status_message: s.status_message.as_deref(),
            total_bytes: s.total_bytes,
            file_count: s.file_count,
            pipeline_version: s.pipeline_version,
            metadata: &s.metadata,
        }
    }
}

/// One preprocessed file, as `labpipe query --files --json` prints it: where it is, what it
/// holds, and where `sync` puts it (`path`, relative to the destination).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FileRow<'a> {
    pub session: &'a str,
    /// `s3://bucket/key`.
    pub uri: String,
    pub bucket: &'a str,
    pub key: &'a str,
    pub size: u64,
    pub sha256: &'a str,
    /// The pipeline version that wrote it.
    pub version: Option<u32>,
    pub path: &'a str,
}

impl<'a> From<&'a RemoteFile> for FileRow<'a> {
    fn from(f: &'a RemoteFile) -> FileRow<'a> {
        FileRow {
            session: &f.session,
            uri: f.uri(),
            bucket: &f.bucket,
            key: &f.key,
            size: f.size,
            sha256: &f.sha256,
            version: f.version,
            path: &f.path,
        }
    }
}

/// A matching session without processed files (yet).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnprocessedRow<'a> {
    pub session: &'a str,
    pub status: &'a str,
}

impl<'a> From<&'a labpipe_sync::Unprocessed> for UnprocessedRow<'a> {
    fn from(u: &'a labpipe_sync::Unprocessed) -> UnprocessedRow<'a> {
        UnprocessedRow {
            session: &u.session,
            status: u.status.as_str(),
        }
    }
}

/// Why the files could not be listed.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    #[error("query failed: {0}")]
    Query(#[from] CatalogError),
    #[error("cannot read the output records: {0}")]
    Outputs(#[from] SyncError),
}

/// `labpipe query FILTER --files`: the sessions `filter` selects, and the preprocessed files of
/// those at `version` (each session's latest when `None`); outputs whose keys are not safe
/// names are `refused` (a sync reports them as not delivered).
pub async fn files(
    catalog: &Catalog,
    filter: &Filter,
    version: Option<u32>,
    limit: Option<usize>,
    processed_bucket: Option<&str>,
) -> Result<(Vec<SessionItem>, ProcessedFiles), FilesError> {
    let sessions = catalog.query(filter, limit).await?;
    let mut found = processed_files(catalog, &sessions, version, None).await?;
    with_bucket(&mut found.files, processed_bucket);
    Ok((sessions, found))
}

/// `labpipe sync --where FILTER`'s selection: `labpipe_sync::select` and the bucket fix-up.
pub async fn selection(
    catalog: &Catalog,
    s3: &labpipe_sync::S3Client,
    filter: &Filter,
    opts: &SelectOptions,
    processed_bucket: Option<&str>,
) -> Result<Selection, SyncError> {
    let mut selection = select(catalog, s3, filter, opts).await?;
    with_bucket(&mut selection.files, processed_bucket);
    Ok(selection)
}

/// Output records written before the bucket was recorded name none: they are in the stack's
/// processed bucket.
pub fn with_bucket(files: &mut [RemoteFile], processed_bucket: Option<&str>) {
    if let Some(b) = processed_bucket {
        for f in files.iter_mut().filter(|f| f.bucket.is_empty()) {
            f.bucket = b.to_string();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use labpipe_catalog::Status;
    use labpipe_core::{MetaValue, SessionId};

    #[test]
    fn a_session_row_leaves_out_what_is_absent() {
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
        item.status_message = Some("done".into());
        item.pipeline_version = Some(2);
        let v = serde_json::to_value(SessionRow::from(&item)).unwrap();
        assert_eq!(
            (&v["status_message"], &v["pipeline_version"]),
            (&"done".into(), &2.into())
        );
    }

    #[test]
    fn a_file_without_a_bucket_is_in_the_stacks_processed_bucket() {
        let file = |bucket: &str| RemoteFile {
            session: "20210301_090000".into(),
            kind: labpipe_sync::FileKind::Processed,
            bucket: bucket.into(),
            key: "v1/20210301_090000/signals.npy".into(),
            path: "20210301_090000/signals.npy".into(),
            size: 1,
            sha256: String::new(),
            version: Some(1),
            version_id: None,
        };
        let mut files = vec![file(""), file("recorded")];
        with_bucket(&mut files, None);
        assert_eq!(files[0].bucket, "");
        with_bucket(&mut files, Some("stack"));
        assert_eq!([&files[0].bucket, &files[1].bucket], ["stack", "recorded"]);
    }
}
