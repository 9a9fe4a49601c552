//! The Sessions view: the catalog loaded once (a scan of the table), kept in memory, filtered
//! with the filter language of `labpipe query` (`labpipe_core::filter`), so typing in the filter
//! bar costs no round trip. The detail pane reads one session's history, outputs and manifest.

use labpipe_catalog::{Event as CatalogEvent, OutputRecord, SessionItem, Status};
use labpipe_core::filter::{Filter, Subject};
use labpipe_core::{LabSchema, MetaValue};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;
use ts_rs::TS;

use crate::error::{AppError, AppResult};

#[derive(Debug, Clone, Serialize, TS, PartialEq)]
#[ts(export, export_to = "../../ui/src/lib/bindings/")]
pub struct CatalogRow {
    pub session: String,
    /// `YYYY-MM-DD HH:MM:SS`, lab-local.
    pub recorded_at: String,
    pub status: Status,
    pub status_step: Option<String>,
    pub status_message: Option<String>,
    #[ts(type = "number")]
    pub total_bytes: u64,
    #[ts(type = "number")]
    pub file_count: u64,
    pub pipeline_version: Option<u32>,
    #[ts(type = "Record<string, number | string>")]
    pub metadata: BTreeMap<String, MetaValue>,
}

impl CatalogRow {
    fn from_item(i: &SessionItem, metadata: &BTreeMap<String, MetaValue>) -> Self {
        CatalogRow {
            session: i.session.clone(),
            recorded_at: i.recorded_at.format("%Y-%m-%d %H:%M:%S").to_string(),
            status: i.status,
            status_step: i.status_step.clone(),
            status_message: i.status_message.clone(),
            total_bytes: i.total_bytes,
            file_count: i.file_count,
            pipeline_version: i.pipeline_version,
            metadata: metadata.clone(),
        }
    }
}

/// A metadata field of the lab schema, for column headers, facets and the histogram.
#[derive(Debug, Clone, Serialize, TS, PartialEq)]
#[ts(export, export_to = "../../ui/src/lib/bindings/")]
pub struct FieldInfo {
    pub name: String,
    /// `number`, `integer` or `text`.
    pub kind: String,
    pub unit: Option<String>,
    pub description: Option<String>,
}

#[derive(Debug, Clone, Serialize, TS)]
#[ts(export, export_to = "../../ui/src/lib/bindings/")]
pub struct CatalogSnapshot {
    pub rows: Vec<CatalogRow>,
    pub fields: Vec<FieldInfo>,
    /// Every status, in pipeline order.
    pub statuses: Vec<Status>,
    /// Where the rows came from, e.g. `table labpipe-catalog`.
    pub source: String,
    pub loaded_at: String,
    pub load_ms: f64,
}

#[derive(Debug, Clone, Serialize, TS)]
#[ts(export, export_to = "../../ui/src/lib/bindings/")]
pub struct FilterResult {
    /// Indexes into `CatalogSnapshot.rows` of the matching sessions.
    pub indexes: Vec<u32>,
    pub elapsed_ms: f64,
}

#[derive(Debug, Clone, Serialize, TS)]
#[ts(export, export_to = "../../ui/src/lib/bindings/")]
pub struct TimelineEntry {
    pub at: String,
    pub status: Option<Status>,
    pub from: Option<Status>,
    pub step: String,
    /// `info`, `warning` or `error`.
    pub level: String,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, TS)]
#[ts(export, export_to = "../../ui/src/lib/bindings/")]
pub struct OutputFileView {
    pub key: String,
    #[ts(type = "number")]
    pub size: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize, TS)]
#[ts(export, export_to = "../../ui/src/lib/bindings/")]
pub struct OutputView {
    pub version: u32,
    pub bucket: String,
    pub prefix: String,
    pub created_at: String,
    pub files: Vec<OutputFileView>,
}

#[derive(Debug, Clone, Serialize, TS)]
#[ts(export, export_to = "../../ui/src/lib/bindings/")]
pub struct RawFileView {
    pub path: String,
    #[ts(type = "number")]
    pub size: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize, TS)]
#[ts(export, export_to = "../../ui/src/lib/bindings/")]
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
}

/// The loaded catalog: rows for the UI and subjects for the filter.
///
/// Each session's metadata is kept once, in its subject (the filter reads it there); `items`
/// hold the rest. With 10,000 sessions a second copy cost ~10 MB.
pub struct Loaded {
    items: Vec<SessionItem>,
    subjects: Vec<Subject>,
    pub schema: LabSchema,
}

impl Loaded {
    pub fn new(items: Vec<SessionItem>, schema: LabSchema) -> Self {
        let mut items = items;
        items.sort_by(|a, b| {
            b.recorded_at
                .cmp(&a.recorded_at)
                .then(b.session.cmp(&a.session))
        });
        // The catalog's own subject builder, the one its property test holds to the DynamoDB
        // query; the item's metadata then lives only in the subject.
        let subjects = items
            .iter_mut()
            .map(|i| {
                let subject = i.subject();
                i.metadata = Default::default();
                subject
            })
            .collect();
        Loaded {
            items,
            subjects,
            schema,
        }
    }

    pub fn snapshot(&self, source: String, load_ms: f64) -> CatalogSnapshot {
        CatalogSnapshot {
            rows: self
                .items
                .iter()
                .zip(&self.subjects)
                .map(|(i, s)| CatalogRow::from_item(i, &s.metadata))
                .collect(),
            fields: self
                .schema
                .fields
                .iter()
                .map(|(name, f)| FieldInfo {
                    name: name.clone(),
                    kind: f.kind.name().into(),
                    unit: f.unit.clone(),
                    description: f.description.clone(),
                })
                .collect(),
            statuses: Status::ALL.to_vec(),
            source,
            loaded_at: chrono::Local::now().format("%H:%M:%S").to_string(),
            load_ms,
        }
    }

    /// Indexes of the rows matching `source`; an empty filter matches everything.
    pub fn filter(&self, source: &str) -> AppResult<FilterResult> {
        let t = Instant::now();
        let indexes = if source.trim().is_empty() {
            (0..self.subjects.len() as u32).collect()
        } else {
            let f = Filter::new(source, &self.schema)?;
            self.subjects
                .iter()
                .enumerate()
                .filter(|(_, s)| f.matches(s))
                .map(|(i, _)| i as u32)
                .collect()
        };
        Ok(FilterResult {
            indexes,
            elapsed_ms: t.elapsed().as_secs_f64() * 1e3,
        })
    }

    /// Puts newer entries into the loaded catalog, replacing a session's old entry or adding a
    /// new session; returns the sessions that changed. The pipeline poller feeds it what it
    /// reads, so the Sessions view follows uploads without a rescan of the table.
    pub fn apply(&mut self, fresh: Vec<SessionItem>) -> BTreeSet<String> {
        let changed: Vec<SessionItem> = fresh
            .into_iter()
            .filter(|f| self.item(&f.session).as_ref() != Some(f))
            .collect();
        let names: BTreeSet<String> = changed.iter().map(|i| i.session.clone()).collect();
        if names.is_empty() {
            return names;
        }
        let items = std::mem::take(&mut self.items);
        let subjects = std::mem::take(&mut self.subjects);
        let mut all: Vec<SessionItem> = items
            .into_iter()
            .zip(subjects)
            .filter(|(i, _)| !names.contains(&i.session))
            .map(|(mut i, s)| {
                i.metadata = s.metadata;
                i
            })
            .collect();
        all.extend(changed);
        *self = Loaded::new(all, std::mem::take(&mut self.schema));
        names
    }

    /// The whole entry of `session`, metadata included.
    pub fn item(&self, session: &str) -> Option<SessionItem> {
        let at = self.items.iter().position(|i| i.session == session)?;
        let mut item = self.items[at].clone();
        item.metadata = self.subjects[at].metadata.clone();
        Some(item)
    }
}

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

pub fn outputs(records: Vec<OutputRecord>) -> Vec<OutputView> {
    records
        .into_iter()
        .map(|r| OutputView {
            version: r.version,
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

/// Reads `raw/<session>/manifest.json` for the list of raw files, with the gateway's bounded
/// reader. The lab PC's role may not list the bucket outside `raw/`, so for a missing manifest
/// AWS answers 403, not 404: both read as "not uploaded yet (or not readable)".
pub async fn manifest_files(
    s3: &labpipe_s3::S3Client,
    bucket: &str,
    session: &str,
) -> Result<Vec<RawFileView>, String> {
    use labpipe_s3::{ErrorClass, S3Error};
    if bucket.is_empty() {
        return Err("no raw bucket is set in Settings".into());
    }
    let read = labpipe_s3::ManifestRead::session(bucket, session);
    let manifest = match read.read(s3).await {
        Ok(object) => object.manifest,
        Err(S3Error::Call {
            class: ErrorClass::NotFound | ErrorClass::AccessDenied,
            ..
        }) => {
            return Err(format!(
                "no manifest at s3://{bucket}/{} yet: the upload has not finished (or these credentials may not read it)",
                read.key
            ))
        }
        Err(S3Error::Call {
            class: ErrorClass::NoSuchBucket,
            ..
        }) => return Err(format!("the raw bucket {bucket} does not exist; check Settings")),
        Err(e) => return Err(e.to_string()),
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

pub fn not_loaded() -> AppError {
    AppError::new(
        "not_loaded",
        "the catalog is not loaded yet; open Sessions or press Refresh",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use labpipe_catalog::Status;

    fn item(session: &str, status: Status, fatigue: f64) -> SessionItem {
        let at = chrono::NaiveDateTime::parse_from_str(session, "%Y%m%d_%H%M%S").unwrap();
        let mut i = SessionItem::placeholder(session, at, status, chrono::Utc::now());
        i.metadata
            .insert("fatigue".into(), MetaValue::Number(fatigue));
        i
    }

    #[test]
    fn filters_with_the_query_language() {
        let loaded = Loaded::new(
            vec![
                item("20210301_161221", Status::Processed, 2.0),
                item("20210302_161221", Status::Failed, 7.0),
                item("20210303_161221", Status::Processed, 8.0),
            ],
            LabSchema::default(),
        );
        // Newest first, and each row keeps its own metadata.
        let rows = loaded.snapshot(String::new(), 0.0).rows;
        assert_eq!(rows[0].session, "20210303_161221");
        assert_eq!(rows[0].metadata["fatigue"], MetaValue::Number(8.0));
        assert_eq!(rows[2].metadata["fatigue"], MetaValue::Number(2.0));
        let detail = loaded.item("20210302_161221").unwrap();
        assert_eq!(detail.metadata["fatigue"], MetaValue::Number(7.0));
        assert!(loaded.item("20990101_000000").is_none());
        assert_eq!(loaded.filter("").unwrap().indexes, [0, 1, 2]);
        assert_eq!(
            loaded
                .filter("fatigue > 5 and status = processed")
                .unwrap()
                .indexes,
            [0]
        );
        let err = loaded.filter("fatige > 5").unwrap_err();
        assert_eq!((err.code.as_str(), err.column), ("filter", Some(0)));
    }

    #[test]
    fn newer_entries_replace_or_join_the_loaded_catalog() {
        let mut loaded = Loaded::new(
            vec![
                item("20210301_161221", Status::Processing, 2.0),
                item("20210303_161221", Status::Processed, 8.0),
            ],
            LabSchema::default(),
        );
        let unchanged = loaded.item("20210303_161221").unwrap();
        let moved = item("20210301_161221", Status::Processed, 2.0);
        let new = item("20210302_161221", Status::Cataloged, 5.0);
        let changed = loaded.apply(vec![unchanged, moved, new]);
        assert_eq!(
            changed.into_iter().collect::<Vec<_>>(),
            ["20210301_161221", "20210302_161221"],
            "only what differs from the loaded entry counts as changed"
        );
        let rows = loaded.snapshot(String::new(), 0.0).rows;
        let seen: Vec<_> = rows
            .iter()
            .map(|r| (r.session.as_str(), r.status.as_str()))
            .collect();
        assert_eq!(
            seen,
            [
                ("20210303_161221", "PROCESSED"),
                ("20210302_161221", "CATALOGED"),
                ("20210301_161221", "PROCESSED"),
            ],
            "newest first, the moved session in its new state, the new one added"
        );
        assert_eq!(rows[1].metadata["fatigue"], MetaValue::Number(5.0));
        assert_eq!(loaded.filter("fatigue > 4").unwrap().indexes, [0, 1]);
        assert!(loaded.apply(vec![]).is_empty());
    }
}
