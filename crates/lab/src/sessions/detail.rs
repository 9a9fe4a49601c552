//! A session's detail pane: its history, its outputs and the raw files of its current
//! revision's manifest (read with the gateway's bounded reader, its errors worded for the lab).

use labpipe_catalog::{
    Catalog, CatalogError, Event as CatalogEvent, OutputRecord, SessionItem, Status,
};
use serde::Serialize;

use super::CatalogRow;

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(
    feature = "ts",
    derive(ts_rs::TS),
    ts(export_to = "../../ui/src/lib/bindings/")
)]
pub struct TimelineEntry {
    pub at: String,
    pub status: Option<Status>,
    pub from: Option<Status>,
    pub step: String,
    /// `info`, `warning` or `error`.
    pub level: String,
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(
    feature = "ts",
    derive(ts_rs::TS),
    ts(export_to = "../../ui/src/lib/bindings/")
)]
pub struct OutputFileView {
    pub key: String,
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub size: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(
    feature = "ts",
    derive(ts_rs::TS),
    ts(export_to = "../../ui/src/lib/bindings/")
)]
pub struct OutputView {
    pub version: u32,
    /// The revision the outputs were made from (1 = the first upload); each revision's stay.
    pub revision: u32,
    pub bucket: String,
    pub prefix: String,
    pub created_at: String,
    pub files: Vec<OutputFileView>,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(
    feature = "ts",
    derive(ts_rs::TS),
    ts(export_to = "../../ui/src/lib/bindings/")
)]
pub struct RawFileView {
    pub path: String,
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub size: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(
    feature = "ts",
    derive(ts_rs::TS),
    ts(export_to = "../../ui/src/lib/bindings/")
)]
pub struct SessionDetail {
    pub row: CatalogRow,
    pub raw_prefix: Option<String>,
    pub manifest_sha256: Option<String>,
    pub timeline: Vec<TimelineEntry>,
    pub outputs: Vec<OutputView>,
    /// The raw files from the session's manifest in S3.
    pub files: Vec<RawFileView>,
    /// Why `files` is empty, when the manifest could not be read.
    pub files_error: Option<String>,
    /// Set when the session has not moved for longer than its step may take: why, with the
    /// latest error of its history ([`stuck_line`]).
    pub stuck: Option<String>,
}

/// One session's detail: `item` is its catalog entry (read now, or the loaded one), the rest is
/// read at once. A catalog read that fails is the error; an unreadable manifest only empties
/// `files` and says why in `files_error`.
pub async fn session_detail(
    catalog: &Catalog,
    s3: &labpipe_aws::S3Client,
    raw_bucket: &str,
    item: SessionItem,
) -> Result<SessionDetail, CatalogError> {
    let session = item.session.as_str();
    let (events, records, files) = tokio::join!(
        catalog.events(session),
        catalog.all_outputs(session),
        manifest_files(s3, raw_bucket, &item)
    );
    let (files, files_error) = match files {
        Ok(f) => (f, None),
        Err(e) => (Vec::new(), Some(e)),
    };
    let events = events?;
    let stuck = stuck_line(&item, &events, chrono::Utc::now());
    Ok(SessionDetail {
        row: CatalogRow::from(&item),
        raw_prefix: item.raw_prefix.clone(),
        manifest_sha256: item.manifest_sha256.clone(),
        timeline: timeline(events),
        outputs: outputs(records?),
        files,
        files_error,
        stuck,
    })
}

/// The detail's stuck line at `now`: past the budget of its status
/// (`labpipe_catalog::stuck`), said as Pending says it ([`crate::stuck::without_queues`]) but
/// with the latest error of the history the detail reads anyway ([`crate::stuck::latest_error`]),
/// which may be newer than the item's last message (an error noted without a status change).
pub fn stuck_line(
    item: &SessionItem,
    events: &[CatalogEvent],
    now: chrono::DateTime<chrono::Utc>,
) -> Option<String> {
    item.stuck(now)
        .map(|s| crate::stuck::without_queues(item, &s, crate::stuck::latest_error(events)))
}

/// The status events as the detail's timeline, in lab-local time.
pub fn timeline(events: Vec<CatalogEvent>) -> Vec<TimelineEntry> {
    events
        .into_iter()
        .map(|e| TimelineEntry {
            at: e
                .at
                .with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string(),
            status: e.status,
            from: e.from,
            step: e.step,
            level: e.level.as_str().to_string(),
            message: e.message,
        })
        .collect()
}

/// Each pipeline version's outputs, in lab-local time.
pub fn outputs(records: Vec<OutputRecord>) -> Vec<OutputView> {
    records
        .into_iter()
        .map(|r| OutputView {
            version: r.version,
            revision: r.revision,
            bucket: r.bucket,
            prefix: r.prefix,
            created_at: r
                .created_at
                .with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string(),
            files: r
                .files
                .into_iter()
                .map(|f| OutputFileView {
                    key: f.key,
                    size: f.size,
                    sha256: f.sha256,
                })
                .collect(),
        })
        .collect()
}

/// The manifest a session's detail lists: the current revision's (`raw/<session>/manifest.json`,
/// or `raw/<session>.r<R>/manifest.json` for a correction) at the version the catalog pinned.
pub fn manifest_read<'a>(bucket: &'a str, item: &'a SessionItem) -> labpipe_aws::ManifestRead<'a> {
    labpipe_aws::ManifestRead::key(
        bucket,
        &labpipe_core::layout::revision_manifest_key(&item.session, item.current_revision()),
    )
    .version(item.manifest_version_id.as_deref())
}

/// Reads the current revision's manifest ([`manifest_read`]) for the list of raw files, with the
/// gateway's bounded reader; a failure in the lab's words ([`manifest_error`]).
pub async fn manifest_files(
    s3: &labpipe_aws::S3Client,
    bucket: &str,
    item: &SessionItem,
) -> Result<Vec<RawFileView>, String> {
    if bucket.is_empty() {
        return Err("no raw bucket is set in Settings".into());
    }
    let read = manifest_read(bucket, item);
    let manifest = match read.read(s3).await {
        Ok(object) => object.manifest,
        Err(e) => return Err(manifest_error(bucket, &read.key, &e)),
    };
    Ok(manifest
        .files
        .into_iter()
        .map(|f| RawFileView {
            path: f.path,
            size: f.size,
            sha256: f.sha256,
        })
        .collect())
}

/// Why the manifest at `key` could not be listed, as the detail pane says it. The lab PC's role
/// may not list the bucket outside `raw/`, so for a missing manifest AWS answers 403, not 404:
/// both read as "not uploaded yet (or not readable)".
pub fn manifest_error(bucket: &str, key: &str, e: &labpipe_aws::S3Error) -> String {
    use labpipe_aws::{ErrorClass, S3Error};
    match e {
        S3Error::Call {
            class: ErrorClass::NotFound | ErrorClass::AccessDenied,
            ..
        } => format!(
            "no manifest at s3://{bucket}/{key} yet: the upload has not finished (or these credentials may not read it)"
        ),
        S3Error::Call {
            class: ErrorClass::NoSuchBucket,
            ..
        } => format!("the raw bucket {bucket} does not exist; check Settings"),
        e => e.to_string(),
    }
}
