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
//! with its own map and key strings (`catalog_at_scale` in `tests.rs` holds both ratios and prints the filter's times, at
//! 100,000 sessions with `LABPIPE_SCALE_SESSIONS=100000`). What a load adds to the processes' PSS did not move with it: the web
//! process grows as much with 1,000 sessions as with 10,000 (the view, not the rows), and the
//! app process by ~2 KB per session, not the loaded catalog's 0.4 KB: with one malloc arena
//! (`MALLOC_ARENA_MAX=1`) it is 4 MB less at 10,000, so part is the allocator keeping what the
//! table scan (five items per session) freed; the rest is not traced yet.
//!
//! The app's Tauri commands only hold the [`Loaded`] catalog and hand these values over; the
//! detail pane's reads (history, outputs, the current revision's manifest with its error
//! wording) are `detail.rs`'s.

mod columns;
mod detail;
#[cfg(test)]
mod tests;

use columns::TextBuilder;
pub use columns::{MetaColumn, TextColumn};
pub use detail::{
    manifest_error, manifest_files, manifest_read, outputs, session_detail, stuck_line, timeline,
    OutputFileView, OutputView, RawFileView, SessionDetail, TimelineEntry,
};

use labpipe_catalog::{SessionItem, Status};
use labpipe_core::filter::{Filter, FilterError, Record, Value};
use labpipe_core::{LabSchema, Metadata};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Instant;

/// One session's catalog entry, as the detail pane shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[cfg_attr(
    feature = "ts",
    derive(ts_rs::TS),
    ts(export_to = "../../ui/src/lib/bindings/")
)]
pub struct CatalogRow {
    pub session: String,
    /// `YYYY-MM-DD HH:MM:SS`, lab-local.
    pub recorded_at: String,
    pub status: Status,
    pub status_step: Option<String>,
    pub status_message: Option<String>,
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub total_bytes: u64,
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub file_count: u64,
    pub pipeline_version: Option<u32>,
    #[cfg_attr(feature = "ts", ts(type = "Record<string, number | string>"))]
    pub metadata: BTreeMap<String, labpipe_core::MetaValue>,
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
#[derive(Debug, Clone, Serialize, PartialEq)]
#[cfg_attr(
    feature = "ts",
    derive(ts_rs::TS),
    ts(export_to = "../../ui/src/lib/bindings/")
)]
pub struct FieldInfo {
    pub name: String,
    /// `number`, `integer` or `text`.
    pub kind: String,
    pub unit: Option<String>,
    pub description: Option<String>,
}

/// Every loaded session, field by field: row `i` of each array is the `i`-th session, newest
/// first.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(
    feature = "ts",
    derive(ts_rs::TS),
    ts(export_to = "../../ui/src/lib/bindings/")
)]
pub struct CatalogColumns {
    pub session: Vec<String>,
    /// `YYYY-MM-DD HH:MM:SS`, lab-local.
    pub recorded_at: Vec<String>,
    /// Index into `CatalogSnapshot.statuses`.
    pub status: Vec<u8>,
    pub status_step: TextColumn,
    pub status_message: TextColumn,
    #[cfg_attr(feature = "ts", ts(type = "Array<number>"))]
    pub total_bytes: Vec<u64>,
    #[cfg_attr(feature = "ts", ts(type = "Array<number>"))]
    pub file_count: Vec<u64>,
    pub pipeline_version: Vec<Option<u32>>,
    /// One column per metadata field any session has.
    pub metadata: BTreeMap<String, MetaColumn>,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(
    feature = "ts",
    derive(ts_rs::TS),
    ts(export_to = "../../ui/src/lib/bindings/")
)]
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

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(
    feature = "ts",
    derive(ts_rs::TS),
    ts(export_to = "../../ui/src/lib/bindings/")
)]
pub struct FilterResult {
    /// Row indexes (into the snapshot's columns) of the matching sessions; `None` when every
    /// loaded session matches (an empty filter, or one nothing fails): 100,000 indexes are
    /// ~0.6 MB of JSON and ~40 ms of IPC to say "all of them".
    pub indexes: Option<Vec<u32>>,
    pub elapsed_ms: f64,
}

impl FilterResult {
    /// The matching rows of a catalog of `count` sessions, every row when all match.
    pub fn rows(&self, count: usize) -> Vec<u32> {
        match &self.indexes {
            Some(indexes) => indexes.clone(),
            None => (0..count as u32).collect(),
        }
    }
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

    /// Copies every entry to new allocations, made one after another, and frees the old ones.
    ///
    /// The entries were allocated while the scan parsed its pages and kept their metadata maps,
    /// so their small strings lie spread among the heap that the scan and [`Loaded::new`] freed,
    /// and that heap cannot be given back to the OS while a live string sits on each page. The
    /// app copies them once the freed heap has been trimmed (see `load_catalog`).
    pub fn compact(&mut self) {
        let fresh = self.items.clone();
        self.items = fresh;
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
    pub fn filter(&self, source: &str) -> Result<FilterResult, FilterError> {
        let t = Instant::now();
        let n = self.items.len() as u32;
        let indexes: Vec<u32> = if source.trim().is_empty() {
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
            indexes: (indexes.len() < self.items.len()).then_some(indexes),
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
