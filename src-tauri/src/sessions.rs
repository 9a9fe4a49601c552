//! The Sessions view: the catalog loaded once (a scan of the table), kept in memory, filtered
//! with the filter language of `labpipe query` (`labpipe_core::filter`), so typing in the filter
//! bar costs no round trip. The detail pane reads one session's history, outputs and manifest.
//!
//! The catalog travels to the UI column by column ([`CatalogSnapshot`]): one array per built-in
//! field and per metadata field, text that repeats (status steps and messages, text metadata
//! such as the hardware model) as a dictionary of its distinct values and one small code per
//! session; the UI reads a cell by row index (`ui/src/lib/table.ts`). With 10,000 sessions the
//! JSON is 0.9 MB instead of 4.0 MB as an array of row objects each with its own metadata map,
//! and the IPC of a load 114–150 ms instead of 578 ms (`bench/app.sh`). The Rust side keeps the
//! metadata in the same columns ([`Loaded`]) and filters a row view of them: 3.8 MB of heap per
//! 10,000 sessions instead of 16.7 MB for the entries plus a filter subject per session, each
//! with its own map and key strings (`catalog_at_scale` below, which also times the filter at
//! 100,000 sessions). What a load adds to the processes' PSS did not move with it: the web
//! process grows as much with 1,000 sessions as with 10,000 (the view, not the rows), and the
//! app process by ~2 KB per session, not the loaded catalog's 0.4 KB: with one malloc arena
//! (`MALLOC_ARENA_MAX=1`) it is 4 MB less at 10,000, so part is the allocator keeping what the
//! table scan (five items per session) freed; the rest is not traced yet.

use labpipe_catalog::{Event as CatalogEvent, OutputRecord, SessionItem, Status};
use labpipe_core::filter::{Filter, Record, Value};
use labpipe_core::{LabSchema, MetaValue, Metadata};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Instant;
use ts_rs::TS;

use crate::error::{AppError, AppResult};

/// One session's catalog entry, as the detail pane shows it.
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

impl From<&SessionItem> for CatalogRow {
    fn from(i: &SessionItem) -> Self {
        CatalogRow {
            session: i.session.clone(),
            recorded_at: recorded_at(i),
            status: i.status,
            status_step: i.status_step.clone(),
            status_message: i.status_message.clone(),
            total_bytes: i.total_bytes,
            file_count: i.file_count,
            pipeline_version: i.pipeline_version,
            metadata: i.metadata.clone(),
        }
    }
}

fn recorded_at(i: &SessionItem) -> String {
    i.recorded_at.format("%Y-%m-%d %H:%M:%S").to_string()
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

/// Text of every session, each distinct value once: session `i` has `values[codes[i] - 1]`, or
/// nothing when `codes[i]` is 0.
#[derive(Debug, Clone, Default, Serialize, TS, PartialEq)]
#[ts(export, export_to = "../../ui/src/lib/bindings/")]
pub struct TextColumn {
    pub values: Vec<String>,
    pub codes: Vec<u32>,
}

impl TextColumn {
    #[cfg(test)]
    fn get(&self, row: usize) -> Option<&str> {
        match self.codes[row] {
            0 => None,
            c => Some(&self.values[c as usize - 1]),
        }
    }
}

/// Builds a [`TextColumn`] row by row.
#[derive(Default)]
struct TextBuilder {
    column: TextColumn,
    seen: HashMap<String, u32>,
}

impl TextBuilder {
    fn push(&mut self, value: Option<&str>) {
        let code = match value {
            None => 0,
            Some(v) => match self.seen.get(v) {
                Some(c) => *c,
                None => {
                    self.column.values.push(v.to_string());
                    let c = self.column.values.len() as u32;
                    self.seen.insert(v.to_string(), c);
                    c
                }
            },
        };
        self.column.codes.push(code);
    }
}

/// One metadata field over every session.
#[derive(Debug, Clone, Serialize, TS, PartialEq)]
#[serde(tag = "kind", rename_all = "lowercase")]
#[ts(export, export_to = "../../ui/src/lib/bindings/")]
pub enum MetaColumn {
    /// Numbers, `null` where a session has none.
    Number { values: Vec<Option<f64>> },
    /// Text, each distinct value once (as in [`TextColumn`]).
    Text {
        values: Vec<String>,
        codes: Vec<u32>,
    },
    /// Numbers in some sessions and text in others (a field the schema does not declare).
    Mixed {
        #[ts(type = "Array<number | string | null>")]
        values: Vec<Option<MetaValue>>,
    },
}

impl MetaColumn {
    /// The column of `field` over `rows` (each session's metadata).
    fn build(field: &str, rows: &[Metadata]) -> Self {
        let values = || rows.iter().map(|m| m.get(field));
        if values().all(|v| matches!(v, None | Some(MetaValue::Number(_)))) {
            MetaColumn::Number {
                values: values().map(|v| v.and_then(MetaValue::as_number)).collect(),
            }
        } else if values().all(|v| matches!(v, None | Some(MetaValue::Text(_)))) {
            let mut b = TextBuilder::default();
            for v in values() {
                b.push(match v {
                    Some(MetaValue::Text(t)) => Some(t),
                    _ => None,
                });
            }
            MetaColumn::Text {
                values: b.column.values,
                codes: b.column.codes,
            }
        } else {
            MetaColumn::Mixed {
                values: values().map(|v| v.cloned()).collect(),
            }
        }
    }

    fn get(&self, row: usize) -> Option<Value<'_>> {
        match self {
            MetaColumn::Number { values } => values[row].map(Value::Num),
            MetaColumn::Text { values, codes } => match codes[row] {
                0 => None,
                c => Some(Value::Text(&values[c as usize - 1])),
            },
            MetaColumn::Mixed { values } => values[row].as_ref().map(Value::from),
        }
    }

    fn meta_value(&self, row: usize) -> Option<MetaValue> {
        self.get(row).map(|v| match v {
            Value::Num(n) => MetaValue::Number(n),
            Value::Text(t) => MetaValue::Text(t.to_string()),
            Value::Time(t) => MetaValue::Text(t.to_string()),
        })
    }
}

/// Every loaded session, field by field: row `i` of each array is the `i`-th session, newest
/// first.
#[derive(Debug, Clone, Serialize, TS)]
#[ts(export, export_to = "../../ui/src/lib/bindings/")]
pub struct CatalogColumns {
    pub session: Vec<String>,
    /// `YYYY-MM-DD HH:MM:SS`, lab-local.
    pub recorded_at: Vec<String>,
    /// Index into `CatalogSnapshot.statuses`.
    pub status: Vec<u8>,
    pub status_step: TextColumn,
    pub status_message: TextColumn,
    #[ts(type = "Array<number>")]
    pub total_bytes: Vec<u64>,
    #[ts(type = "Array<number>")]
    pub file_count: Vec<u64>,
    pub pipeline_version: Vec<Option<u32>>,
    /// One column per metadata field any session has.
    pub metadata: BTreeMap<String, MetaColumn>,
}

#[derive(Debug, Clone, Serialize, TS)]
#[ts(export, export_to = "../../ui/src/lib/bindings/")]
pub struct CatalogSnapshot {
    /// How many sessions: the length of every column.
    pub count: u32,
    pub columns: CatalogColumns,
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
    /// Row indexes (into the snapshot's columns) of the matching sessions.
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
    /// The revision the outputs were made from (1 = the first upload); each revision's stay.
    pub revision: u32,
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

/// The loaded catalog: each session's entry without its metadata, and the metadata column by
/// column, the store the filter reads (through [`Row`]) and the snapshot is built from.
///
/// Kept once: a metadata map per session (with its own copy of every key) and a filter subject
/// per session beside the entries cost ~1 KB per session; a metadata column costs 16 bytes per
/// session for a number and 4 for repeated text.
pub struct Loaded {
    items: Vec<SessionItem>,
    metadata: BTreeMap<String, MetaColumn>,
    pub schema: LabSchema,
}

/// Lowercase status names, as the filter compares them, in the order of [`Status::ALL`].
fn status_names() -> &'static [String] {
    static NAMES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    NAMES.get_or_init(|| {
        Status::ALL
            .iter()
            .map(|s| s.as_str().to_ascii_lowercase())
            .collect()
    })
}

fn status_index(s: Status) -> usize {
    Status::ALL.iter().position(|x| *x == s).unwrap_or(0)
}

/// Session `i` of a [`Loaded`] catalog, as the filter reads it.
struct Row<'a> {
    loaded: &'a Loaded,
    i: usize,
}

impl Record for Row<'_> {
    fn session(&self) -> &str {
        &self.loaded.items[self.i].session
    }
    fn recorded_at(&self) -> chrono::NaiveDateTime {
        self.loaded.items[self.i].recorded_at
    }
    fn status(&self) -> &str {
        &status_names()[status_index(self.loaded.items[self.i].status)]
    }
    fn total_bytes(&self) -> u64 {
        self.loaded.items[self.i].total_bytes
    }
    fn files(&self) -> u64 {
        self.loaded.items[self.i].file_count
    }
    fn meta(&self, name: &str) -> Option<Value<'_>> {
        self.loaded.metadata.get(name)?.get(self.i)
    }
}

impl Loaded {
    pub fn new(items: Vec<SessionItem>, schema: LabSchema) -> Self {
        let mut items = items;
        // A scan collects its entries into a Vec that grew by doubling: up to twice the
        // entries' size (~0.5 KB each) would stay allocated with the catalog.
        items.shrink_to_fit();
        items.sort_by(|a, b| b.cmp_recorded(a));
        let rows: Vec<Metadata> = items
            .iter_mut()
            .map(|i| std::mem::take(&mut i.metadata))
            .collect();
        let fields: BTreeSet<&str> = rows
            .iter()
            .flat_map(|m| m.keys().map(String::as_str))
            .collect();
        let metadata = fields
            .into_iter()
            .map(|f| (f.to_string(), MetaColumn::build(f, &rows)))
            .collect();
        Loaded {
            items,
            metadata,
            schema,
        }
    }

    pub fn snapshot(&self, source: String, load_ms: f64) -> CatalogSnapshot {
        let mut step = TextBuilder::default();
        let mut message = TextBuilder::default();
        for i in &self.items {
            step.push(i.status_step.as_deref());
            message.push(i.status_message.as_deref());
        }
        let columns = CatalogColumns {
            session: self.items.iter().map(|i| i.session.clone()).collect(),
            recorded_at: self.items.iter().map(recorded_at).collect(),
            status: self
                .items
                .iter()
                .map(|i| status_index(i.status) as u8)
                .collect(),
            status_step: step.column,
            status_message: message.column,
            total_bytes: self.items.iter().map(|i| i.total_bytes).collect(),
            file_count: self.items.iter().map(|i| i.file_count).collect(),
            pipeline_version: self.items.iter().map(|i| i.pipeline_version).collect(),
            metadata: self.metadata.clone(),
        };
        CatalogSnapshot {
            count: self.items.len() as u32,
            columns,
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
        let n = self.items.len() as u32;
        let indexes = if source.trim().is_empty() {
            (0..n).collect()
        } else {
            let f = Filter::new(source, &self.schema)?;
            (0..n)
                .filter(|&i| {
                    f.matches(&Row {
                        loaded: self,
                        i: i as usize,
                    })
                })
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
        let changed: Vec<SessionItem> = {
            let at: HashMap<&str, usize> = self
                .items
                .iter()
                .enumerate()
                .map(|(k, i)| (i.session.as_str(), k))
                .collect();
            fresh
                .into_iter()
                .filter(|f| {
                    at.get(f.session.as_str())
                        .map(|&k| self.item_at(k))
                        .as_ref()
                        != Some(f)
                })
                .collect()
        };
        let names: BTreeSet<String> = changed.iter().map(|i| i.session.clone()).collect();
        if names.is_empty() {
            return names;
        }
        let mut all: Vec<SessionItem> = (0..self.items.len())
            .filter(|&k| !names.contains(&self.items[k].session))
            .map(|k| self.item_at(k))
            .collect();
        all.extend(changed);
        *self = Loaded::new(all, std::mem::take(&mut self.schema));
        names
    }

    /// Session `k`'s whole entry, metadata included.
    fn item_at(&self, k: usize) -> SessionItem {
        let mut item = self.items[k].clone();
        item.metadata = self
            .metadata
            .iter()
            .filter_map(|(name, column)| Some((name.clone(), column.meta_value(k)?)))
            .collect();
        item
    }

    /// The whole entry of `session`, metadata included.
    pub fn item(&self, session: &str) -> Option<SessionItem> {
        let at = self.items.iter().position(|i| i.session == session)?;
        Some(self.item_at(at))
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
pub fn manifest_read<'a>(bucket: &'a str, item: &'a SessionItem) -> labpipe_s3::ManifestRead<'a> {
    labpipe_s3::ManifestRead::key(
        bucket,
        &labpipe_core::layout::revision_manifest_key(&item.session, item.current_revision()),
    )
    .version(item.manifest_version_id.as_deref())
}

/// Reads the current revision's manifest ([`manifest_read`]) for the list of raw files, with the
/// gateway's bounded reader. The lab PC's role may not list the bucket outside `raw/`, so for a
/// missing manifest AWS answers 403, not 404: both read as "not uploaded yet (or not readable)".
pub async fn manifest_files(
    s3: &labpipe_s3::S3Client,
    bucket: &str,
    item: &SessionItem,
) -> Result<Vec<RawFileView>, String> {
    use labpipe_s3::{ErrorClass, S3Error};
    if bucket.is_empty() {
        return Err("no raw bucket is set in Settings".into());
    }
    let read = manifest_read(bucket, item);
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

    /// The detail pane lists the files of the revision the catalog made current, at the
    /// manifest version it pinned, not the first upload's.
    #[test]
    fn the_detail_reads_the_current_revisions_manifest() {
        let mut i = item("20210301_161221", Status::Processed, 1.0);
        let first = manifest_read("labpipe-raw", &i);
        assert_eq!(first.key, "raw/20210301_161221/manifest.json");
        assert_eq!(first.version_id, None);
        i.revision = Some(2);
        i.manifest_version_id = Some("3HL4kqtJlcpXroDTDmJ".into());
        let current = manifest_read("labpipe-raw", &i);
        assert_eq!(current.key, "raw/20210301_161221.r2/manifest.json");
        assert_eq!(current.version_id, Some("3HL4kqtJlcpXroDTDmJ"));
        assert_eq!(current.bucket, "labpipe-raw");
    }

    fn fatigue(snapshot: &CatalogSnapshot, row: usize) -> Option<Value<'_>> {
        snapshot.columns.metadata["fatigue"].get(row)
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
        let snap = loaded.snapshot(String::new(), 0.0);
        assert_eq!(snap.count, 3);
        assert_eq!(snap.columns.session[0], "20210303_161221");
        assert_eq!(snap.columns.recorded_at[0], "2021-03-03 16:12:21");
        assert_eq!(
            snap.statuses[snap.columns.status[1] as usize],
            Status::Failed
        );
        assert_eq!(fatigue(&snap, 0), Some(Value::Num(8.0)));
        assert_eq!(fatigue(&snap, 2), Some(Value::Num(2.0)));
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
        assert_eq!(
            loaded.filter("session contains \"0302\"").unwrap().indexes,
            [1]
        );
        let err = loaded.filter("fatige > 5").unwrap_err();
        assert_eq!((err.code.as_str(), err.column), ("filter", Some(0)));
    }

    /// The columns hold what each session's own entry says, and the filter over them agrees
    /// with the filter over each session's own subject.
    #[test]
    fn columns_keep_each_sessions_values_and_filter_like_its_subject() {
        let mut items = Vec::new();
        for (k, model) in ["X200", "X100", "X200", "", "X200"].iter().enumerate() {
            let mut i = item(
                &format!("2021030{}_161221", k + 1),
                Status::ALL[k],
                k as f64,
            );
            if !model.is_empty() {
                i.metadata
                    .insert("hardware_model".into(), MetaValue::Text(model.to_string()));
            }
            // A field with numbers in some sessions and text in others.
            i.metadata.insert(
                "notes".into(),
                if k % 2 == 0 {
                    MetaValue::Number(k as f64)
                } else {
                    MetaValue::Text(format!("t{k}"))
                },
            );
            i.status_message = (k % 2 == 0).then(|| "waiting for ingest".to_string());
            items.push(i);
        }
        let loaded = Loaded::new(items.clone(), LabSchema::default());
        let snap = loaded.snapshot(String::new(), 0.0);
        let models = &snap.columns.metadata["hardware_model"];
        let MetaColumn::Text { values, codes } = models else {
            panic!("hardware_model is text: {models:?}")
        };
        assert_eq!(values, &["X200", "X100"], "each distinct value once");
        assert_eq!(
            codes,
            &[1, 0, 1, 2, 1],
            "newest first; 0 where there is none"
        );
        assert!(matches!(
            snap.columns.metadata["notes"],
            MetaColumn::Mixed { .. }
        ));
        assert_eq!(snap.columns.status_message.values, ["waiting for ingest"]);
        assert_eq!(
            snap.columns.status_message.get(0),
            Some("waiting for ingest")
        );
        assert_eq!(snap.columns.status_message.get(1), None);
        for i in &items {
            assert_eq!(loaded.item(&i.session).as_ref(), Some(i));
        }
        let schema = LabSchema::default();
        for text in [
            "hardware_model = \"X200\"",
            "not hardware_model exists",
            "notes = \"t1\" or notes exists and fatigue < 1",
            "status in (detected, uploading) or fatigue >= 4",
            "session contains \"0303\"",
        ] {
            let f = Filter::new(text, &schema).unwrap();
            let by_subject: Vec<&str> = items
                .iter()
                .filter(|i| f.matches(&i.subject()))
                .map(|i| i.session.as_str())
                .collect();
            let mut by_columns: Vec<&str> = loaded
                .filter(text)
                .unwrap()
                .indexes
                .iter()
                .map(|&k| snap.columns.session[k as usize].as_str())
                .collect();
            by_columns.reverse();
            assert_eq!(by_columns, by_subject, "{text}");
        }
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
        let snap = loaded.snapshot(String::new(), 0.0);
        let seen: Vec<_> = (0..snap.count as usize)
            .map(|k| {
                (
                    snap.columns.session[k].as_str(),
                    snap.statuses[snap.columns.status[k] as usize].as_str(),
                )
            })
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
        assert_eq!(fatigue(&snap, 1), Some(Value::Num(5.0)));
        assert_eq!(loaded.filter("fatigue > 4").unwrap().indexes, [0, 1]);
        assert!(loaded.apply(vec![]).is_empty());
    }

    /// The Rust side of the catalog at scale, without the emulator (whose scan takes minutes per
    /// 10,000 sessions): building the columns, the snapshot's JSON (against the former array of
    /// row objects) and each filter of `bench/app.sh`. Ignored; run with
    /// `LABPIPE_SCALE_SESSIONS=100000 cargo test -p labpipe-app catalog_at_scale -- --ignored --nocapture`.
    #[test]
    #[ignore = "a measurement, not a check"]
    fn catalog_at_scale() {
        let n: usize = std::env::var("LABPIPE_SCALE_SESSIONS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(100_000);
        let start = chrono::NaiveDate::from_ymd_opt(2021, 1, 1)
            .unwrap()
            .and_hms_opt(8, 0, 0)
            .unwrap();
        // Heap in use, glibc's count over every arena.
        let heap = || {
            // SAFETY: mallinfo2 only reads the allocator's counters.
            unsafe { libc::mallinfo2().uordblks as f64 / 1e6 }
        };
        let start_heap = heap();
        let items: Vec<SessionItem> = (0..n)
            .map(|k| {
                let at = start + chrono::Duration::minutes(37 * k as i64);
                let session = at.format("%Y%m%d_%H%M%S").to_string();
                let mut i = SessionItem::placeholder(
                    &session,
                    at,
                    Status::ALL[[4, 6, 6, 6, 8][k % 5]],
                    chrono::Utc::now(),
                );
                i.manifest_sha256 = Some(format!("{:064x}", k));
                i.raw_prefix = Some(format!(
                    "s3://labpipe-raw/{}",
                    labpipe_core::layout::raw_session_prefix(&session)
                ));
                i.status_step = Some("ingest".into());
                i.status_message = Some("5 files (153600512 bytes)".into());
                i.total_bytes = 150_000_000 + k as u64 * 7919 % 300_000_000;
                i.file_count = 5;
                let m = &mut i.metadata;
                let num = |v: f64| MetaValue::Number(v);
                let text = |v: String| MetaValue::Text(v);
                m.insert("fatigue".into(), num((k * 7 % 11) as f64));
                m.insert(
                    "hardware_model".into(),
                    text(["X200", "X100", "Q8"][k % 3].into()),
                );
                m.insert("subject_id".into(), text(format!("S{:03}", k % 48 + 1)));
                m.insert("sample_rate_hz".into(), num([1000.0, 2000.0][k % 2]));
                m.insert("channels".into(), num([64.0, 32.0, 8.0][k % 3]));
                m.insert(
                    "sample_format".into(),
                    text(["int16", "float32"][k % 2].into()),
                );
                m.insert(
                    "operator".into(),
                    text(["chen", "diaz", "ito"][k % 3].into()),
                );
                m.insert(
                    "electrode_impedance_kohm".into(),
                    num((k % 200) as f64 / 10.0),
                );
                i
            })
            .collect();
        let scanned_mb = heap() - start_heap;
        let rows_json =
            serde_json::to_string(&items.iter().map(CatalogRow::from).collect::<Vec<_>>())
                .unwrap()
                .len();
        // The former store: the entries without metadata and one filter subject per session,
        // each with its own metadata map.
        let schema = LabSchema::default();
        let before = heap();
        let stripped: Vec<SessionItem> = items
            .iter()
            .map(|i| SessionItem {
                metadata: Default::default(),
                ..i.clone()
            })
            .collect();
        let subjects: Vec<_> = items.iter().map(SessionItem::subject).collect();
        let former_mb = heap() - before;
        drop(stripped);
        let by_subject = |text: &str| {
            let f = Filter::new(text, &schema).unwrap();
            let t = Instant::now();
            let hits = subjects.iter().filter(|s| f.matches(*s)).count();
            (hits, t.elapsed().as_secs_f64() * 1e3)
        };
        let before = heap();
        let t = Instant::now();
        let loaded = Loaded::new(items, LabSchema::default());
        let new_ms = t.elapsed().as_secs_f64() * 1e3;
        // `items` (with their metadata maps) moved in and were partly freed: what stays is the store.
        let items_mb = before - heap();
        let t = Instant::now();
        let json = serde_json::to_string(&loaded.snapshot(String::new(), 0.0)).unwrap();
        let snapshot_ms = t.elapsed().as_secs_f64() * 1e3;
        println!("{n} sessions: columns built in {new_ms:.0} ms; snapshot + JSON {snapshot_ms:.0} ms, {:.1} MB (as row objects: {:.1} MB)", json.len() as f64 / 1e6, rows_json as f64 / 1e6);
        println!(
            "  one entry without its strings: {} bytes",
            std::mem::size_of::<SessionItem>()
        );
        println!("  heap: the entries as scanned {scanned_mb:.1} MB; kept by the former store (entries + subjects) {former_mb:.1} MB, by the columns {:.1} MB", scanned_mb - items_mb);
        for text in [
            "",
            "fatigue > 5",
            "hardware_model = \"X200\" and status = processed",
            "date >= 2021-06-01 and date < 2021-07-01",
            "status = failed or fatigue >= 8",
            "fatigue > 99",
        ] {
            let r = loaded.filter(text).unwrap();
            let t = Instant::now();
            let json = serde_json::to_string(&r).unwrap();
            let json_ms = t.elapsed().as_secs_f64() * 1e3;
            let (hits, subject_ms) = if text.is_empty() {
                (r.indexes.len(), 0.0)
            } else {
                by_subject(text)
            };
            assert_eq!(hits, r.indexes.len(), "{text}");
            println!(
                "  {text:<50} {:>7} rows  filter {:>6.1} ms (per-session subjects: {subject_ms:>6.1} ms)  JSON {:>5.1} ms, {:>4} kB",
                r.indexes.len(),
                r.elapsed_ms,
                json_ms,
                json.len() / 1000
            );
        }
    }
}
