//! What one catalog item can hold, computed on the lab PC so `labpipe check` refuses a session
//! the catalog could not store, instead of ingest failing with DynamoDB's "Item size has
//! exceeded the maximum allowed size" after the upload.
//!
//! The session's catalog entry is one DynamoDB item (`labpipe_catalog::SessionItem::to_item`):
//! a fixed set of attributes plus one `m_<key>` attribute per metadata field. Its size follows
//! DynamoDB's documented rules (Amazon DynamoDB Developer Guide, "DynamoDB item sizes and
//! formats", <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html>):
//! an item is the sum of its attribute names and values; a string value is its UTF-8 length; a
//! number is about 1 byte per two significant digits (leading and trailing zeros trimmed) plus
//! 1 byte. The limit is 400 KB, and DynamoDB counts 1 KB as 1,024 bytes ("Constraints in
//! Amazon DynamoDB", <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Constraints.html>).
//! Numbers must lie within ±1E-130 … ±9.99…E+125 (same page, "Data types"), so a metadata
//! number outside that range is refused too.
//!
//! This module is the one copy of the rule: the check uses it, and the catalog's tests hold
//! [`SESSION_ATTRIBUTES`] to the attributes `to_item` really writes.

use crate::metadata::{format_number, MetaValue, Metadata};

/// DynamoDB's largest item: 400 KB of 1,024 bytes.
pub const ITEM_LIMIT_BYTES: u64 = 400 * 1024;

/// Room kept free on a session item for what is written after the check and has no bound of
/// its own: the status message (a failure reason names a file and what to do, a few hundred
/// bytes) and a correction's reason typed at `labpipe upload --revise`. 16 KiB is 4 % of the
/// item — 50 times a long status message — and also absorbs DynamoDB's "approximately" for
/// numbers (at most a byte per number) and the local emulator's lower ceiling (405,000 bytes,
/// numbers counted as their text), so what passes the check is cataloged on both.
pub const RESERVED_BYTES: u64 = 16 * 1024;

/// The most a session item may take when checked: [`ITEM_LIMIT_BYTES`] − [`RESERVED_BYTES`].
pub const SESSION_ITEM_BUDGET: u64 = ITEM_LIMIT_BYTES - RESERVED_BYTES;

/// Prefix of the metadata attributes on the session item (`m_fatigue`).
pub const METADATA_PREFIX: &str = "m_";

/// The session item's attributes besides metadata, with the largest value the catalog writes
/// for each (bytes of the string, or significant digits of the number). `status_message` and
/// `revision_reason` are the unbounded ones, covered by [`RESERVED_BYTES`].
pub const SESSION_ATTRIBUTES: [(&str, Size); 16] = [
    ("pk", Size::Text(8 + SESSION_ID_BYTES)), // SESSION#<id>
    ("sk", Size::Text(4)),                    // META
    ("session", Size::Text(SESSION_ID_BYTES)),
    ("recorded_at", Size::Text(19)), // YYYY-MM-DDTHH:MM:SS
    ("month", Size::Text(7)),        // YYYY-MM
    ("status", Size::Text(16)),      // the longest is PROCESSING (10)
    ("status_step", Size::Text(32)), // ingest, preprocess, upload, …
    // s3://<bucket, at most 63>/raw/<id>.r<u32>/
    (
        "raw_prefix",
        Size::Text(5 + 63 + 5 + SESSION_ID_BYTES + 2 + 10 + 1),
    ),
    ("manifest_sha256", Size::Text(64)),
    // S3 version ids are at most 1,024 bytes (Amazon S3 API Reference).
    ("manifest_version_id", Size::Text(1024)),
    ("revision", Size::Digits(10)),         // u32
    ("total_bytes", Size::Digits(20)),      // u64
    ("file_count", Size::Digits(20)),       // u64
    ("pipeline_version", Size::Digits(10)), // u32
    ("updated_at", Size::Text(24)),         // 2021-03-01T17:00:00.000Z
    ("event_count", Size::Digits(20)),      // u64
];

/// `YYYYMMDD_HHMMSS`.
const SESSION_ID_BYTES: u64 = 15;

/// The largest value of one attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    /// A string of at most this many UTF-8 bytes.
    Text(u64),
    /// A number of at most this many significant digits.
    Digits(u64),
}

/// Bytes of a number attribute's value with `digits` significant digits.
pub fn number_value_bytes(digits: u64) -> u64 {
    digits.div_ceil(2) + 1
}

/// Significant digits of a number in decimal text (`-0.00120` → 2, `1000` → 1).
pub fn significant_digits(text: &str) -> u64 {
    let mantissa = text.split(['e', 'E']).next().unwrap_or(text);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let trimmed = digits.trim_start_matches('0').trim_end_matches('0');
    (trimmed.len() as u64).max(1)
}

/// Bytes of one attribute: its name plus its value.
pub fn attribute_bytes(name: &str, value: Size) -> u64 {
    name.len() as u64
        + match value {
            Size::Text(n) => n,
            Size::Digits(d) => number_value_bytes(d),
        }
}

/// The catalog's attribute name of a metadata key.
pub fn metadata_attribute(key: &str) -> String {
    format!("{METADATA_PREFIX}{key}")
}

/// Bytes one metadata field takes on the session item (a number as the catalog writes it,
/// [`format_number`]).
pub fn metadata_field_bytes(key: &str, value: &MetaValue) -> u64 {
    let size = match value {
        MetaValue::Number(x) => Size::Digits(significant_digits(&format_number(*x))),
        MetaValue::Text(t) => Size::Text(t.len() as u64),
    };
    attribute_bytes(&metadata_attribute(key), size)
}

/// The session item's size with every non-metadata attribute at its largest
/// ([`SESSION_ATTRIBUTES`]; the unbounded ones are in [`RESERVED_BYTES`]) and `metadata`.
pub fn session_item_bytes(metadata: &Metadata) -> u64 {
    SESSION_ATTRIBUTES
        .iter()
        .map(|(name, size)| attribute_bytes(name, *size))
        .sum::<u64>()
        + metadata
            .iter()
            .map(|(k, v)| metadata_field_bytes(k, v))
            .sum::<u64>()
}

/// A number DynamoDB can store: 0, or a magnitude from 1E-130 to below 1E+126.
pub fn number_fits(x: f64) -> bool {
    x == 0.0 || (x.is_finite() && (1e-130..1e126).contains(&x.abs()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_the_documented_rules() {
        // Strings: name + UTF-8 bytes.
        assert_eq!(attribute_bytes("m_note", Size::Text("é".len() as u64)), 8);
        // Numbers: name + 1 byte per two significant digits + 1.
        for (text, digits) in [
            ("0", 1),
            ("10", 1),
            ("1000", 1),
            ("3.5", 2),
            ("-0.00120", 2),
            ("123456789", 9),
            ("1.5e10", 2),
        ] {
            assert_eq!(significant_digits(text), digits, "{text}");
        }
        assert_eq!(number_value_bytes(1), 2);
        assert_eq!(number_value_bytes(2), 2);
        assert_eq!(number_value_bytes(3), 3);
        let mut m = Metadata::new();
        m.insert("fatigue".into(), MetaValue::Number(3.5));
        m.insert("subject_id".into(), MetaValue::Text("S017".into()));
        let fixed = session_item_bytes(&Metadata::new());
        assert_eq!(
            session_item_bytes(&m) - fixed,
            ("m_fatigue".len() + 2 + "m_subject_id".len() + 4) as u64
        );
        // A session's fixed attributes are a small part of the item.
        assert!(fixed < 2_000, "{fixed}");
    }

    #[test]
    fn numbers_dynamodb_cannot_store_are_told_apart() {
        for x in [0.0, 1.0, -3.5, 1e125, 9.9e125, 1e-130, -1e-129] {
            assert!(number_fits(x), "{x}");
        }
        for x in [1e126, -1e200, 1e-131, 1e-300, f64::INFINITY, f64::NAN] {
            assert!(!number_fits(x), "{x}");
        }
    }
}
