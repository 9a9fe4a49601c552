//! Typed catalog records and their DynamoDB attribute encoding.
//!
//! Metadata goes onto the session item as top-level `m_<key>` attributes, numbers as DynamoDB
//! `N` and texts as `S`, so a researcher's filter (`fatigue > 5 and hardware_model = X200`)
//! compiles to a plain filter expression over expression attribute names, and numbers compare as
//! numbers rather than as strings.

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use labpipe_core::{Manifest, MetaValue, Metadata};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

use crate::error::CatalogError;
use crate::status::Status;

pub(crate) type Item = HashMap<String, AttributeValue>;

/// Prefix of metadata attributes on the session item (defined with the item's size rule in
/// `labpipe_core::catalog_size`, which the lab PC's check applies).
pub const METADATA_PREFIX: &str = labpipe_core::catalog_size::METADATA_PREFIX;
/// Sort key of the session item.
pub const META_SK: &str = "META";
/// Sort-key prefix of status history items.
pub const EVENT_PREFIX: &str = "EVENT#";
/// Sort-key prefix of processed-output records.
pub const OUTPUT_PREFIX: &str = "OUTPUT#v";

/// The most a DynamoDB item may hold: 400 KB, attribute names and values together (Amazon
/// DynamoDB Developer Guide, "Item sizes and formats"). A session entry over it cannot be written.
/// Defined with the sizing rule in `labpipe_core::catalog_size`, which the lab PC's check applies.
pub const MAX_ITEM_BYTES: usize = labpipe_core::catalog_size::ITEM_LIMIT_BYTES as usize;

/// Partition key of everything about one session.
pub fn session_pk(session: &str) -> String {
    format!("SESSION#{session}")
}

/// The catalog entry of one session (the `META` item).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionItem {
    pub session: String,
    /// Lab-local recording time from the folder name, `YYYY-MM-DDTHH:MM:SS`.
    pub recorded_at: NaiveDateTime,
    /// `YYYY-MM` of `recorded_at`: the partition of the `by_month` index.
    pub month: String,
    pub status: Status,
    /// The step that set the status (`upload`, `ingest`, `preprocess`, …).
    pub status_step: Option<String>,
    /// Why: for `FAILED`, what went wrong and what to do.
    pub status_message: Option<String>,
    /// `s3://bucket/raw/<session>/`.
    pub raw_prefix: Option<String>,
    /// SHA-256 of the manifest bytes this entry was cataloged from.
    pub manifest_sha256: Option<String>,
    /// S3 version id of that manifest object, when the bucket is versioned: preprocessing and
    /// `sync --raw` read exactly this version.
    pub manifest_version_id: Option<String>,
    /// The current revision when it is a correction (2, 3, …; `None` = the first upload), and
    /// why it was made. Earlier revisions stay in `raw/<session>[.r<N>]/`; the history lists them.
    #[serde(default)]
    pub revision: Option<u32>,
    #[serde(default)]
    pub revision_reason: Option<String>,
    pub total_bytes: u64,
    pub file_count: u64,
    pub metadata: Metadata,
    /// Pipeline version of the latest recorded outputs.
    pub pipeline_version: Option<u32>,
    pub updated_at: DateTime<Utc>,
    /// Number of status events written so far; guards concurrent updates.
    pub event_count: u64,
}

impl SessionItem {
    /// The catalog's one order of sessions: by recording time, then by id (two sessions can be
    /// recorded in the same second on two rigs). Oldest first; reverse it for newest first.
    pub fn cmp_recorded(&self, other: &Self) -> std::cmp::Ordering {
        self.recorded_at
            .cmp(&other.recorded_at)
            .then_with(|| self.session.cmp(&other.session))
    }

    /// The entry for a manifest that was verified against the raw bucket.
    pub fn from_manifest(
        manifest: &Manifest,
        manifest_sha256: &str,
        raw_prefix: &str,
        now: DateTime<Utc>,
    ) -> Self {
        SessionItem {
            session: manifest.session.to_string(),
            recorded_at: manifest.recorded_at,
            month: manifest.recorded_at.format("%Y-%m").to_string(),
            status: Status::Cataloged,
            status_step: Some("ingest".into()),
            status_message: Some(format!(
                "{} files ({} bytes) verified against the manifest",
                manifest.files.len(),
                manifest.total_bytes
            )),
            raw_prefix: Some(raw_prefix.to_string()),
            manifest_sha256: Some(manifest_sha256.to_string()),
            manifest_version_id: None,
            revision: manifest.revision.as_ref().map(|r| r.number),
            revision_reason: manifest.revision.as_ref().map(|r| r.reason.clone()),
            total_bytes: manifest.total_bytes,
            file_count: manifest.files.len() as u64,
            metadata: manifest.metadata.clone(),
            pipeline_version: None,
            updated_at: now,
            event_count: 0,
        }
    }

    /// A bare entry for a session known only by its id (e.g. a manifest that could not be read),
    /// so its failure is visible in the catalog.
    pub fn placeholder(
        session: &str,
        recorded_at: NaiveDateTime,
        status: Status,
        now: DateTime<Utc>,
    ) -> Self {
        SessionItem {
            session: session.to_string(),
            recorded_at,
            month: recorded_at.format("%Y-%m").to_string(),
            status,
            status_step: None,
            status_message: None,
            raw_prefix: None,
            manifest_sha256: None,
            manifest_version_id: None,
            revision: None,
            revision_reason: None,
            total_bytes: 0,
            file_count: 0,
            metadata: Metadata::new(),
            pipeline_version: None,
            updated_at: now,
            event_count: 0,
        }
    }

    /// The size DynamoDB counts for this entry's item: every attribute's UTF-8 name plus its
    /// value (a text's UTF-8 bytes; a number's digits, which bound its stored size from above).
    pub fn item_bytes(&self) -> usize {
        self.to_item()
            .iter()
            .map(|(k, v)| k.len() + value_bytes(v))
            .sum()
    }

    /// `Err` with what to shorten when the entry is over [`MAX_ITEM_BYTES`]: the attributes that
    /// take the most room, largest first (a metadata value is named by its key).
    pub fn check_size(&self) -> Result<(), CatalogError> {
        let bytes = self.item_bytes();
        if bytes <= MAX_ITEM_BYTES {
            return Ok(());
        }
        let mut parts: Vec<(String, usize)> = self
            .to_item()
            .iter()
            .map(|(k, v)| {
                let name = match k.strip_prefix(METADATA_PREFIX) {
                    Some(key) => format!("metadata '{key}'"),
                    None => k.clone(),
                };
                (name, k.len() + value_bytes(v))
            })
            .collect();
        parts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let largest = parts
            .iter()
            .take(3)
            .filter(|(_, n)| *n >= 1024)
            .map(|(name, n)| format!("{name} {}", kb(*n)))
            .collect::<Vec<_>>()
            .join(", ");
        Err(CatalogError::TooLarge {
            session: self.session.clone(),
            size: kb(bytes),
            limit: kb(MAX_ITEM_BYTES),
            largest,
        })
    }

    /// The current revision: 1 for a session never corrected.
    pub fn current_revision(&self) -> u32 {
        self.revision.unwrap_or(1)
    }

    pub(crate) fn to_item(&self) -> Item {
        let mut item = Item::new();
        item.insert("pk".into(), s(session_pk(&self.session)));
        item.insert("sk".into(), s(META_SK));
        item.insert("session".into(), s(&self.session));
        item.insert("recorded_at".into(), s(format_local(self.recorded_at)));
        item.insert("month".into(), s(&self.month));
        item.insert("status".into(), s(self.status.as_str()));
        let opt = |item: &mut Item, k: &str, v: &Option<String>| {
            if let Some(v) = v {
                item.insert(k.into(), s(v));
            }
        };
        opt(&mut item, "status_step", &self.status_step);
        opt(&mut item, "status_message", &self.status_message);
        opt(&mut item, "raw_prefix", &self.raw_prefix);
        opt(&mut item, "manifest_sha256", &self.manifest_sha256);
        opt(&mut item, "manifest_version_id", &self.manifest_version_id);
        if let Some(r) = self.revision {
            item.insert("revision".into(), n(r));
        }
        opt(&mut item, "revision_reason", &self.revision_reason);
        item.insert("total_bytes".into(), n(self.total_bytes));
        item.insert("file_count".into(), n(self.file_count));
        if let Some(v) = self.pipeline_version {
            item.insert("pipeline_version".into(), n(v));
        }
        item.insert("updated_at".into(), s(format_utc(self.updated_at)));
        item.insert("event_count".into(), n(self.event_count));
        for (key, value) in &self.metadata {
            item.insert(metadata_attribute(key), meta_value(value));
        }
        item
    }

    pub(crate) fn from_item(item: &Item) -> Result<Self, CatalogError> {
        let session = get_s(item, "session").unwrap_or_default().to_string();
        let bad = |reason: String| CatalogError::Malformed {
            session: session.clone(),
            reason,
        };
        if session.is_empty() {
            return Err(bad("no 'session' attribute".into()));
        }
        let recorded_at = get_s(item, "recorded_at")
            .and_then(|v| NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%M:%S").ok())
            .ok_or_else(|| bad("'recorded_at' is missing or not YYYY-MM-DDTHH:MM:SS".into()))?;
        let status = get_s(item, "status")
            .ok_or_else(|| bad("no 'status' attribute".into()))?
            .parse::<Status>()
            .map_err(|e| bad(e.to_string()))?;
        let updated_at = get_s(item, "updated_at")
            .and_then(|v| DateTime::parse_from_rfc3339(v).ok())
            .map(|t| t.with_timezone(&Utc))
            .ok_or_else(|| bad("'updated_at' is missing or not an RFC 3339 time".into()))?;
        let mut metadata = Metadata::new();
        for (k, v) in item {
            if let Some(key) = k.strip_prefix(METADATA_PREFIX) {
                let value = match v {
                    AttributeValue::N(x) => MetaValue::Number(
                        x.parse()
                            .map_err(|_| bad(format!("metadata '{key}' is not a number: {x}")))?,
                    ),
                    AttributeValue::S(x) => MetaValue::Text(x.clone()),
                    _ => {
                        return Err(bad(format!(
                            "metadata '{key}' is neither a number nor a text"
                        )))
                    }
                };
                metadata.insert(key.to_string(), value);
            }
        }
        Ok(SessionItem {
            month: get_s(item, "month")
                .map(str::to_string)
                .unwrap_or_else(|| recorded_at.format("%Y-%m").to_string()),
            session,
            recorded_at,
            status,
            status_step: get_s(item, "status_step").map(str::to_string),
            status_message: get_s(item, "status_message").map(str::to_string),
            raw_prefix: get_s(item, "raw_prefix").map(str::to_string),
            manifest_sha256: get_s(item, "manifest_sha256").map(str::to_string),
            manifest_version_id: get_s(item, "manifest_version_id").map(str::to_string),
            revision: get_n(item, "revision"),
            revision_reason: get_s(item, "revision_reason").map(str::to_string),
            total_bytes: get_n(item, "total_bytes").unwrap_or(0),
            file_count: get_n(item, "file_count").unwrap_or(0),
            metadata,
            pipeline_version: get_n(item, "pipeline_version"),
            updated_at,
            event_count: get_n(item, "event_count").unwrap_or(0),
        })
    }
}

/// How serious a status event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Info,
    Warning,
    Error,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Warning => "warning",
            Level::Error => "error",
        }
    }
}

/// One line of a session's history (an `EVENT#…` item).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub at: DateTime<Utc>,
    pub seq: u64,
    /// The status the session moved to, for status changes; `None` for notes.
    pub status: Option<Status>,
    pub from: Option<Status>,
    pub step: String,
    pub level: Level,
    pub message: String,
}

impl Event {
    pub(crate) fn sort_key(&self) -> String {
        format!("{EVENT_PREFIX}{}#{:06}", format_utc(self.at), self.seq)
    }

    pub(crate) fn to_item(&self, session: &str) -> Item {
        let mut item = Item::new();
        item.insert("pk".into(), s(session_pk(session)));
        item.insert("sk".into(), s(self.sort_key()));
        item.insert("session".into(), s(session));
        item.insert("at".into(), s(format_utc(self.at)));
        item.insert("seq".into(), n(self.seq));
        if let Some(st) = self.status {
            item.insert("status".into(), s(st.as_str()));
        }
        if let Some(st) = self.from {
            item.insert("from".into(), s(st.as_str()));
        }
        item.insert("step".into(), s(&self.step));
        item.insert("level".into(), s(self.level.as_str()));
        item.insert("message".into(), s(&self.message));
        item
    }

    pub(crate) fn from_item(session: &str, item: &Item) -> Result<Self, CatalogError> {
        let bad = |reason: &str| CatalogError::Malformed {
            session: session.to_string(),
            reason: format!("event {}: {reason}", get_s(item, "sk").unwrap_or("?")),
        };
        let status = |k: &str| get_s(item, k).and_then(|v| v.parse::<Status>().ok());
        Ok(Event {
            at: get_s(item, "at")
                .and_then(|v| DateTime::parse_from_rfc3339(v).ok())
                .map(|t| t.with_timezone(&Utc))
                .ok_or_else(|| bad("no valid 'at'"))?,
            seq: get_n(item, "seq").unwrap_or(0),
            status: status("status"),
            from: status("from"),
            step: get_s(item, "step").unwrap_or_default().to_string(),
            level: match get_s(item, "level") {
                Some("error") => Level::Error,
                Some("warning") => Level::Warning,
                _ => Level::Info,
            },
            message: get_s(item, "message").unwrap_or_default().to_string(),
        })
    }
}

/// One processed file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputFile {
    /// Object key in the processed bucket.
    pub key: String,
    pub size: u64,
    /// Lowercase hex SHA-256 of the object.
    pub sha256: String,
}

/// The outputs of one pipeline version for one revision of a session (an `OUTPUT#v<N>` item for
/// revision 1, `OUTPUT#v<N>#r<R>` for a correction).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputRecord {
    pub version: u32,
    /// The revision whose raw files these outputs were made from (1 = the first upload).
    #[serde(default = "first_revision")]
    pub revision: u32,
    pub bucket: String,
    /// `v<N>/<session>/` (revision 1) or `v<N>/<session>.r<R>/`
    /// ([`labpipe_core::layout::processed_prefix`]).
    pub prefix: String,
    pub files: Vec<OutputFile>,
    pub created_at: DateTime<Utc>,
}

fn first_revision() -> u32 {
    1
}

/// The sort key of the outputs of pipeline `version` made from `revision`: `OUTPUT#v<N>` for
/// revision 1 (the key outputs had before revisions existed), `OUTPUT#v<N>#r<R>` for a
/// correction. All begin with [`OUTPUT_PREFIX`], so one query reads every record.
pub fn output_sort_key(version: u32, revision: u32) -> String {
    if revision <= 1 {
        format!("{OUTPUT_PREFIX}{version}")
    } else {
        format!("{OUTPUT_PREFIX}{version}#r{revision}")
    }
}

impl OutputRecord {
    pub(crate) fn to_item(&self, session: &str) -> Item {
        let files = self
            .files
            .iter()
            .map(|f| {
                AttributeValue::M(HashMap::from([
                    ("key".to_string(), s(&f.key)),
                    ("size".to_string(), n(f.size)),
                    ("sha256".to_string(), s(&f.sha256)),
                ]))
            })
            .collect();
        HashMap::from([
            ("pk".to_string(), s(session_pk(session))),
            (
                "sk".to_string(),
                s(output_sort_key(self.version, self.revision)),
            ),
            ("session".to_string(), s(session)),
            ("version".to_string(), n(self.version)),
            ("revision".to_string(), n(self.revision.max(1))),
            ("bucket".to_string(), s(&self.bucket)),
            ("prefix".to_string(), s(&self.prefix)),
            ("files".to_string(), AttributeValue::L(files)),
            ("created_at".to_string(), s(format_utc(self.created_at))),
        ])
    }

    pub(crate) fn from_item(session: &str, item: &Item) -> Result<Self, CatalogError> {
        let bad = |reason: &str| CatalogError::Malformed {
            session: session.to_string(),
            reason: format!("output record: {reason}"),
        };
        let files = match item.get("files") {
            Some(AttributeValue::L(list)) => list
                .iter()
                .map(|v| match v {
                    AttributeValue::M(m) => Ok(OutputFile {
                        key: get_s(m, "key")
                            .ok_or_else(|| bad("file without key"))?
                            .to_string(),
                        size: get_n(m, "size").unwrap_or(0),
                        sha256: get_s(m, "sha256").unwrap_or_default().to_string(),
                    }),
                    _ => Err(bad("file entry is not a map")),
                })
                .collect::<Result<Vec<_>, _>>()?,
            _ => Vec::new(),
        };
        Ok(OutputRecord {
            version: get_n(item, "version").ok_or_else(|| bad("no version"))?,
            revision: get_n(item, "revision").unwrap_or(1),
            bucket: get_s(item, "bucket").unwrap_or_default().to_string(),
            prefix: get_s(item, "prefix").unwrap_or_default().to_string(),
            files,
            created_at: get_s(item, "created_at")
                .and_then(|v| DateTime::parse_from_rfc3339(v).ok())
                .map(|t| t.with_timezone(&Utc))
                .ok_or_else(|| bad("no valid created_at"))?,
        })
    }
}

/// `m_<key>`: the attribute holding metadata `key`.
pub fn metadata_attribute(key: &str) -> String {
    format!("{METADATA_PREFIX}{key}")
}

/// A metadata value as DynamoDB stores it: numbers as `N`, texts as `S`.
pub fn meta_value(value: &MetaValue) -> AttributeValue {
    match value {
        MetaValue::Number(x) => AttributeValue::N(number_text(*x)),
        MetaValue::Text(t) => AttributeValue::S(t.clone()),
    }
}

/// A finite number in the decimal form DynamoDB accepts (`3.5`, `10`, `0.0001`).
/// The same text `labpipe_core::catalog_size` sizes.
fn number_text(x: f64) -> String {
    labpipe_core::metadata::format_number(x)
}

/// The bytes DynamoDB counts for a value of the kinds the catalog writes.
/// An attribute value's size by the one rule (`labpipe_core::catalog_size`): a text's UTF-8
/// bytes, a number's significant digits two to a byte plus one.
fn value_bytes(v: &AttributeValue) -> usize {
    use labpipe_core::catalog_size::{attribute_bytes, significant_digits, Size};
    let size = match v {
        AttributeValue::S(t) => Size::Text(t.len() as u64),
        AttributeValue::N(t) => Size::Digits(significant_digits(t)),
        _ => Size::Text(1),
    };
    attribute_bytes("", size) as usize
}

/// `412.5 KB` (1 KB = 1,024 bytes, as DynamoDB counts its limit).
fn kb(bytes: usize) -> String {
    format!("{:.1} KB", bytes as f64 / 1024.0)
}

pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(crate) fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub(crate) fn get_s<'a>(item: &'a Item, key: &str) -> Option<&'a str> {
    match item.get(key) {
        Some(AttributeValue::S(v)) => Some(v),
        _ => None,
    }
}

pub(crate) fn get_n<T: std::str::FromStr>(item: &Item, key: &str) -> Option<T> {
    match item.get(key) {
        Some(AttributeValue::N(v)) => v.parse().ok(),
        _ => None,
    }
}

/// UTC times with milliseconds, so history items sort in the order they happened.
pub fn format_utc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub(crate) fn format_local(t: NaiveDateTime) -> String {
    t.format("%Y-%m-%dT%H:%M:%S").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_over_the_item_limit_is_refused_naming_its_largest_values() {
        let mut item = sample();
        assert!(item.check_size().is_ok());
        let small = item.item_bytes();
        // The size counts names and values: a 10-byte text under a 5-byte key adds 2 + 5 + 10.
        item.metadata
            .insert("notes".into(), MetaValue::Text("0123456789".into()));
        assert_eq!(item.item_bytes(), small + 2 + 5 + 10);
        // Just at the limit is fine; one byte more is not.
        let room = MAX_ITEM_BYTES - item.item_bytes() + 10;
        item.metadata
            .insert("notes".into(), MetaValue::Text("x".repeat(room)));
        assert_eq!(item.item_bytes(), MAX_ITEM_BYTES);
        assert!(item.check_size().is_ok());
        item.metadata
            .insert("notes".into(), MetaValue::Text("x".repeat(room + 1)));
        let err = item.check_size().unwrap_err();
        assert!(err.is_permanent());
        assert_eq!(err.code(), "too_large");
        let msg = err.to_string();
        for want in [
            "20210301_161221",
            "400.0 KB",
            "metadata 'notes' 399.",
            "labpipe upload --revise",
        ] {
            assert!(msg.contains(want), "{want:?} not in {msg}");
        }
    }

    fn sample() -> SessionItem {
        let mut metadata = Metadata::new();
        metadata.insert("fatigue".into(), MetaValue::Number(3.5));
        metadata.insert("channels".into(), MetaValue::Number(8.0));
        metadata.insert("hardware_model".into(), MetaValue::Text("X200".into()));
        SessionItem {
            session: "20210301_161221".into(),
            recorded_at: NaiveDateTime::parse_from_str("2021-03-01T16:12:21", "%Y-%m-%dT%H:%M:%S")
                .unwrap(),
            month: "2021-03".into(),
            status: Status::Cataloged,
            status_step: Some("ingest".into()),
            status_message: None,
            raw_prefix: Some("s3://raw/raw/20210301_161221/".into()),
            manifest_sha256: Some("ab".into()),
            manifest_version_id: Some("3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY".into()),
            revision: Some(2),
            revision_reason: Some("gain fixed".into()),
            total_bytes: 600,
            file_count: 3,
            metadata,
            pipeline_version: Some(2),
            updated_at: DateTime::parse_from_rfc3339("2021-03-02T10:00:00.250Z")
                .unwrap()
                .with_timezone(&Utc),
            event_count: 4,
        }
    }

    #[test]
    fn session_item_round_trips_with_typed_metadata() {
        let it = sample();
        let item = it.to_item();
        assert_eq!(item["m_fatigue"], AttributeValue::N("3.5".into()));
        assert_eq!(item["m_channels"], AttributeValue::N("8".into()));
        assert_eq!(item["m_hardware_model"], AttributeValue::S("X200".into()));
        assert_eq!(
            item["pk"],
            AttributeValue::S("SESSION#20210301_161221".into())
        );
        assert_eq!(
            item["recorded_at"],
            AttributeValue::S("2021-03-01T16:12:21".into())
        );
        assert_eq!(
            item["updated_at"],
            AttributeValue::S("2021-03-02T10:00:00.250Z".into())
        );
        assert_eq!(SessionItem::from_item(&item).unwrap(), it);
    }

    #[test]
    fn malformed_items_say_what_is_wrong() {
        let mut item = sample().to_item();
        item.insert("status".into(), s("DONE"));
        let err = SessionItem::from_item(&item).unwrap_err().to_string();
        assert!(err.contains("unknown status 'DONE'"), "{err}");
        item.remove("recorded_at");
        assert!(SessionItem::from_item(&item)
            .unwrap_err()
            .to_string()
            .contains("recorded_at"));
    }

    #[test]
    fn event_sort_keys_order_by_time_then_sequence() {
        let at = DateTime::parse_from_rfc3339("2021-03-02T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let e = Event {
            at,
            seq: 7,
            status: Some(Status::Failed),
            from: Some(Status::Cataloged),
            step: "preprocess".into(),
            level: Level::Error,
            message: "x".into(),
        };
        assert_eq!(e.sort_key(), "EVENT#2021-03-02T10:00:00.000Z#000007");
        assert_eq!(Event::from_item("s", &e.to_item("s")).unwrap(), e);
    }

    /// The size the lab PC's check computes (`labpipe_core::catalog_size`) is never below what
    /// `to_item` writes: every attribute is one the check knows with its largest value, a
    /// metadata field, or one of the two the check's reserve covers.
    #[test]
    fn the_checks_size_rule_covers_every_attribute_the_item_has() {
        use labpipe_core::catalog_size::{
            attribute_bytes, session_item_bytes, significant_digits, Size, RESERVED_BYTES,
            SESSION_ATTRIBUTES,
        };
        let mut it = sample();
        // Every bounded attribute at its largest.
        it.raw_prefix = Some(format!(
            "s3://{}/raw/20210301_161221.r4294967295/",
            "b".repeat(63)
        ));
        it.manifest_sha256 = Some("f".repeat(64));
        it.manifest_version_id = Some("v".repeat(1024));
        it.revision = Some(u32::MAX);
        it.total_bytes = u64::MAX;
        it.file_count = u64::MAX;
        it.pipeline_version = Some(u32::MAX);
        it.event_count = u64::MAX;
        it.status = Status::Processing;
        it.status_step = Some("preprocess".into());
        it.metadata
            .insert("notes".into(), MetaValue::Text("é".repeat(1000)));
        it.metadata
            .insert("gain".into(), MetaValue::Number(-0.000123456789));
        let unbounded = ["status_message", "revision_reason"];
        it.status_message = Some("m".repeat(RESERVED_BYTES as usize / 2 - 20));
        it.revision_reason = Some("r".repeat(RESERVED_BYTES as usize / 2 - 20));
        let mut written = 0;
        let mut reserved = 0;
        for (name, value) in it.to_item() {
            let size = match &value {
                AttributeValue::S(v) => Size::Text(v.len() as u64),
                AttributeValue::N(v) => Size::Digits(significant_digits(v)),
                other => panic!("{name} is {other:?}: size it in labpipe_core::catalog_size"),
            };
            let bytes = attribute_bytes(&name, size);
            written += bytes;
            if unbounded.contains(&name.as_str()) {
                reserved += bytes;
                continue;
            }
            if name.starts_with(METADATA_PREFIX) {
                continue;
            }
            let (_, max) = SESSION_ATTRIBUTES
                .iter()
                .find(|(n, _)| *n == name)
                .unwrap_or_else(|| panic!("{name} is not in catalog_size::SESSION_ATTRIBUTES"));
            assert!(attribute_bytes(&name, *max) >= bytes, "{name}: {value:?}");
        }
        let checked = session_item_bytes(&it.metadata);
        assert!(
            written - reserved <= checked,
            "{written} - {reserved} > {checked}"
        );
        assert!(reserved <= RESERVED_BYTES);
    }

    #[test]
    fn numbers_are_plain_decimals() {
        for (x, want) in [
            (10.0, "10"),
            (3.5, "3.5"),
            (-2.0, "-2"),
            (0.0001, "0.0001"),
            (1e20, "100000000000000000000"),
        ] {
            assert_eq!(number_text(x), want);
        }
    }
}
