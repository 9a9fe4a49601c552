//! The metadata text file: `key: value` lines typed by the lab schema.
//!
//! Metadata is typed by hand by people at the end of a long recording, on whatever editor the lab
//! PC has, so the parser is forgiving about form (BOM, CRLF, `key = value`, `# comments`, blank
//! lines, `Hardware Model` for `hardware_model`, a unit after a number) and strict about content:
//! every value is typed against the schema so the catalog can compare numbers as numbers, and every
//! problem is a finding that names the line and says what to write instead.

use crate::finding::Finding;
use crate::schema::{FieldKind, LabSchema};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

const CHECK: &str = "metadata";

/// A typed metadata value. Serialises as a bare JSON number or string.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MetaValue {
    Number(f64),
    Text(String),
}

impl MetaValue {
    pub fn as_number(&self) -> Option<f64> {
        match self {
            MetaValue::Number(n) => Some(*n),
            MetaValue::Text(_) => None,
        }
    }
    pub fn as_text(&self) -> Option<&str> {
        match self {
            MetaValue::Text(s) => Some(s),
            MetaValue::Number(_) => None,
        }
    }
}

impl fmt::Display for MetaValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetaValue::Number(n) => f.write_str(&format_number(*n)),
            MetaValue::Text(s) => f.write_str(s),
        }
    }
}

/// Numbers without a pointless `.0`: `10`, `3.5`.
pub fn format_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

/// Parsed metadata, keyed by normalised key, in a stable (sorted) order.
pub type Metadata = BTreeMap<String, MetaValue>;

/// Parses metadata file bytes. `file` is the file's name, used in findings.
pub fn parse(bytes: &[u8], file: &str, schema: &LabSchema) -> (Metadata, Vec<Finding>) {
    let mut findings = Vec::new();
    let mut metadata = Metadata::new();
    let mut seen_on: BTreeMap<String, u32> = BTreeMap::new();
    let err = |line: u32, msg: String| Finding::error(CHECK, msg).in_file(file).at_line(line);

    if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) {
        findings.push(
            Finding::error(
                CHECK,
                "the file is saved as UTF-16; save it again as UTF-8 text",
            )
            .in_file(file),
        );
        return (metadata, findings);
    }
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);

    for (index, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line_no = index as u32 + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let line = match std::str::from_utf8(raw) {
            Ok(line) => line,
            Err(e) => {
                let at = e.valid_up_to();
                findings.push(err(
                    line_no,
                    format!(
                        "line {line_no} is not valid UTF-8 text (byte 0x{:02X} at column {}); save the file as UTF-8 or retype the line",
                        raw[at],
                        at + 1
                    ),
                ));
                continue;
            }
        };
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let Some(split) = trimmed.find([':', '=']) else {
            findings.push(err(
                line_no,
                format!("line {line_no} ('{}') is not a `key: value` line; write it as `key: value` or start it with # to make it a comment", shorten(trimmed)),
            ));
            continue;
        };
        let key_raw = trimmed[..split].trim();
        let value = unquote(trimmed[split + 1..].trim());
        let key = normalise_key(key_raw);
        if key.is_empty() {
            findings.push(err(
                line_no,
                format!(
                    "line {line_no} has a value but no key before '{}'; write it as `key: value`",
                    &trimmed[split..split + 1]
                ),
            ));
            continue;
        }
        if let Some(first) = seen_on.get(&key) {
            findings.push(err(
                line_no,
                format!("'{key}' is set twice (line {first} and line {line_no}); keep only the correct line"),
            ));
            continue;
        }
        seen_on.insert(key.clone(), line_no);
        if value.is_empty() {
            findings.push(err(
                line_no,
                format!("'{key}' on line {line_no} has no value; fill it in or remove the line"),
            ));
            continue;
        }
        match type_value(&key, value, schema) {
            Ok(v) => {
                if schema.field(&key).is_none() {
                    let kind = if matches!(v, MetaValue::Number(_)) {
                        "number"
                    } else {
                        "text"
                    };
                    findings.push(
                        Finding::warning(
                            CHECK,
                            format!("'{key}' (line {line_no}) is not in the lab schema; kept as {kind} — add it to labpipe.toml to have it checked, or fix the spelling"),
                        )
                        .in_file(file)
                        .at_line(line_no),
                    );
                }
                metadata.insert(key, v);
            }
            Err(msg) => findings.push(err(line_no, format!("line {line_no}: {msg}"))),
        }
    }

    for (name, spec) in &schema.fields {
        if spec.required && !seen_on.contains_key(name) {
            findings.push(
                Finding::error(
                    CHECK,
                    format!(
                        "required key '{name}' is missing; add a line `{name}: …` ({})",
                        spec.expectation()
                    ),
                )
                .in_file(file),
            );
        }
    }
    (metadata, findings)
}

/// `Hardware Model` → `hardware_model`, `Sample-Rate-Hz` → `sample_rate_hz`.
pub fn normalise_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for c in key.trim().chars() {
        if c.is_whitespace() || c == '-' || c == '.' {
            if !out.ends_with('_') {
                out.push('_');
            }
        } else {
            out.extend(c.to_lowercase());
        }
    }
    out
}

fn unquote(v: &str) -> &str {
    for q in ['"', '\''] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
            return &v[1..v.len() - 1];
        }
    }
    v
}

fn shorten(s: &str) -> String {
    if s.chars().count() > 40 {
        format!("{}…", s.chars().take(40).collect::<String>())
    } else {
        s.to_string()
    }
}

/// Types one value against the schema; unknown keys become numbers when they parse as one.
fn type_value(key: &str, value: &str, schema: &LabSchema) -> Result<MetaValue, String> {
    let Some(spec) = schema.field(key) else {
        return Ok(parse_plain_number(value)
            .map(MetaValue::Number)
            .unwrap_or_else(|| MetaValue::Text(value.to_string())));
    };
    match spec.kind {
        FieldKind::Text => {
            if !spec.allowed.is_empty() {
                return match spec.allowed.iter().find(|a| a.eq_ignore_ascii_case(value)) {
                    Some(canonical) => Ok(MetaValue::Text(canonical.clone())),
                    None => Err(format!(
                        "{key} '{value}' is not one of {}; use one of those values",
                        spec.allowed.join(", ")
                    )),
                };
            }
            if let Some(re) = schema.pattern(key) {
                if !re.is_match(value) {
                    return Err(format!(
                        "{key} '{value}' does not have the expected form ({}); check the value",
                        spec.pattern.as_deref().unwrap_or_default()
                    ));
                }
            }
            Ok(MetaValue::Text(value.to_string()))
        }
        FieldKind::Number | FieldKind::Integer => {
            let expect = spec.expectation();
            let number_part = match &spec.unit {
                Some(unit) => strip_unit(value, unit),
                None => value,
            };
            let n = match parse_plain_number(number_part) {
                Some(n) => n,
                None => {
                    let hint = if looks_like_decimal_comma(number_part) {
                        let decimal = number_part.replace(',', ".");
                        let after = number_part.rsplit(',').next().unwrap_or_default();
                        if after.len() == 3 && after.bytes().all(|b| b.is_ascii_digit()) {
                            // `1,000` is a thousands separator as often as a decimal comma.
                            format!(" — use a decimal point ({decimal}) or drop the thousands separator ({})", number_part.replace(',', ""))
                        } else {
                            format!(" — use a decimal point: {decimal}")
                        }
                    } else {
                        "; fix the value".to_string()
                    };
                    return Err(format!("{key} must be a {expect}, got '{value}'{hint}"));
                }
            };
            if spec.kind == FieldKind::Integer && n.fract() != 0.0 {
                return Err(format!(
                    "{key} must be a whole number ({expect}), got '{value}'; fix the value"
                ));
            }
            let below =
                spec.min.is_some_and(|m| n < m) || spec.greater_than.is_some_and(|g| n <= g);
            let above = spec.max.is_some_and(|m| n > m);
            if below || above {
                return Err(format!(
                    "{key} {} is out of range ({}); check the value",
                    format_number(n),
                    spec.range_text().unwrap_or_default()
                ));
            }
            Ok(MetaValue::Number(n))
        }
    }
}

/// A finite decimal number, no thousands separators, no hex, no `inf`/`nan`.
fn parse_plain_number(s: &str) -> Option<f64> {
    let s = s.trim();
    let ok_chars = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'))
        && s.bytes().any(|b| b.is_ascii_digit());
    if !ok_chars {
        return None;
    }
    s.parse::<f64>().ok().filter(|n| n.is_finite())
}

fn strip_unit<'a>(value: &'a str, unit: &str) -> &'a str {
    let v = value.trim_end();
    if v.len() > unit.len() && v.is_char_boundary(v.len() - unit.len()) {
        let (head, tail) = v.split_at(v.len() - unit.len());
        if tail.eq_ignore_ascii_case(unit) {
            return head.trim_end();
        }
    }
    value
}

fn looks_like_decimal_comma(s: &str) -> bool {
    s.matches(',').count() == 1 && parse_plain_number(&s.replace(',', ".")).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::Severity;
    use proptest::prelude::*;

    const GOOD: &str = "subject_id: S017\nfatigue: 3.5\nhardware_model: X200\nsample_rate_hz: 1000\nchannels: 8\nsample_format: int16\n";

    fn parse_str(text: &str) -> (Metadata, Vec<Finding>) {
        parse(text.as_bytes(), "metadata.txt", &LabSchema::default())
    }

    /// `check(input, expected error fragment)` over a good file with one line replaced/added.
    fn check_error(extra: &str, want: &str, line: Option<u32>) {
        let text = format!("{GOOD}{extra}");
        let (_, findings) = parse_str(&text);
        let errors: Vec<_> = findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .collect();
        assert_eq!(errors.len(), 1, "{extra:?}: {findings:#?}");
        assert!(
            errors[0].message.contains(want),
            "{extra:?}: {}",
            errors[0].message
        );
        assert_eq!(errors[0].line, line, "{extra:?}");
        assert_eq!(errors[0].file.as_deref(), Some("metadata.txt"));
    }

    #[test]
    fn good_file_is_typed() {
        let (m, findings) = parse_str(GOOD);
        assert!(findings.is_empty(), "{findings:?}");
        assert_eq!(m["fatigue"], MetaValue::Number(3.5));
        assert_eq!(m["channels"], MetaValue::Number(8.0));
        assert_eq!(m["hardware_model"], MetaValue::Text("X200".into()));
        assert_eq!(serde_json::to_string(&m["fatigue"]).unwrap(), "3.5");
    }

    #[test]
    fn unusual_but_good_forms_pass() {
        let text = "\u{feff}# recorded by the night shift\r\n\r\nSubject ID = \"S017\"\r\nFatigue: 3.5\r\nHardware-Model : X200\r\nsample_rate_hz: 1000 Hz\r\nchannels=8\r\nsample_format: INT16\r\n";
        let (m, findings) = parse_str(text);
        assert!(findings.is_empty(), "{findings:#?}");
        assert_eq!(m["subject_id"], MetaValue::Text("S017".into()));
        assert_eq!(m["sample_rate_hz"], MetaValue::Number(1000.0));
        assert_eq!(m["sample_format"], MetaValue::Text("int16".into()));
    }

    #[test]
    fn unknown_keys_are_kept_with_a_warning() {
        let (m, findings) = parse_str(&format!(
            "{GOOD}booth: B12\nimpedance: 4.2\nremark: a=b: c\n"
        ));
        assert_eq!(m["booth"], MetaValue::Text("B12".into()));
        assert_eq!(m["impedance"], MetaValue::Number(4.2));
        assert_eq!(m["remark"], MetaValue::Text("a=b: c".into()));
        assert_eq!(findings.len(), 3);
        assert!(findings.iter().all(|f| f.severity == Severity::Warning));
        assert_eq!(findings[0].line, Some(7));
    }

    #[test]
    fn bad_values_name_the_line() {
        check_error(
            "fatigue: 4\n",
            "'fatigue' is set twice (line 2 and line 7)",
            Some(7),
        );
        check_error("operator:\n", "'operator' on line 7 has no value", Some(7));
        check_error("just some words\n", "is not a `key: value` line", Some(7));
        check_error(": 5\n", "no key", Some(7));
        let replace = |from: &str, to: &str, want: &str, line: u32| {
            let text = GOOD.replace(from, to);
            let (_, findings) = parse_str(&text);
            let e: Vec<_> = findings
                .iter()
                .filter(|f| f.severity == Severity::Error)
                .collect();
            assert_eq!(e.len(), 1, "{to}: {findings:#?}");
            assert!(e[0].message.contains(want), "{to}: {}", e[0].message);
            assert_eq!(e[0].line, Some(line), "{to}");
        };
        replace(
            "fatigue: 3.5",
            "fatigue: high",
            "fatigue must be a number 0–10, got 'high'",
            2,
        );
        replace(
            "fatigue: 3.5",
            "fatigue: 3,5",
            "use a decimal point: 3.5",
            2,
        );
        replace(
            "sample_rate_hz: 1000",
            "sample_rate_hz: 1,000",
            "use a decimal point (1.000) or drop the thousands separator (1000)",
            4,
        );
        replace(
            "fatigue: 3.5",
            "fatigue: 14",
            "fatigue 14 is out of range (0–10)",
            2,
        );
        replace("fatigue: 3.5", "fatigue: -1", "out of range", 2);
        replace("fatigue: 3.5", "fatigue: NaN", "must be a number", 2);
        replace("fatigue: 3.5", "fatigue: inf", "must be a number", 2);
        replace("channels: 8", "channels: 8.5", "must be a whole number", 5);
        replace("channels: 8", "channels: 0", "out of range (1–1024)", 5);
        // The backend's bound (`sample_format::MAX_CHANNELS`) is a check finding on the lab PC.
        replace(
            "channels: 8",
            "channels: 65000",
            "channels 65000 is out of range (1–1024)",
            5,
        );
        replace(
            "sample_rate_hz: 1000",
            "sample_rate_hz: 0",
            "out of range (> 0)",
            4,
        );
        replace(
            "sample_rate_hz: 1000",
            "sample_rate_hz: 1000 kHz",
            "got '1000 kHz'",
            4,
        );
        replace(
            "sample_format: int16",
            "sample_format: int12",
            "not one of int16, int32, float32",
            6,
        );
    }

    #[test]
    fn missing_required_keys_are_named() {
        let text = GOOD.replace("hardware_model: X200\n", "");
        let (_, findings) = parse_str(&text);
        assert_eq!(findings.len(), 1);
        assert!(findings[0]
            .message
            .contains("required key 'hardware_model' is missing"));
        assert_eq!(findings[0].line, None);
    }

    #[test]
    fn undecodable_bytes_name_the_line() {
        let mut bytes = GOOD.as_bytes().to_vec();
        bytes.extend_from_slice(b"operator: J\xF6rg\n");
        let (_, findings) = parse(&bytes, "metadata.txt", &LabSchema::default());
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert!(findings[0]
            .message
            .contains("line 7 is not valid UTF-8 text (byte 0xF6 at column 12)"));
        let (_, findings) = parse(b"\xFF\xFEs\x00", "metadata.txt", &LabSchema::default());
        assert!(findings[0].message.contains("UTF-16"));
    }

    #[test]
    fn text_patterns_apply() {
        let schema =
            LabSchema::from_toml("[fields.subject_id]\ntype = \"text\"\npattern = \"S[0-9]{3}\"")
                .unwrap();
        let (_, f) = parse(GOOD.as_bytes(), "m", &schema);
        assert!(f.is_empty(), "{f:?}");
        let (_, f) = parse(GOOD.replace("S017", "subject 17").as_bytes(), "m", &schema);
        assert!(
            f[0].message.contains("does not have the expected form"),
            "{f:?}"
        );
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = parse(&bytes, "metadata.txt", &LabSchema::default());
        }

        #[test]
        fn never_panics_on_arbitrary_text(text in "(\\PC{0,20}[:=]?\\PC{0,20}\r?\n){0,12}") {
            let (m, findings) = parse(text.as_bytes(), "metadata.txt", &LabSchema::default());
            for value in m.values() {
                if let MetaValue::Number(n) = value { prop_assert!(n.is_finite()); }
            }
            for f in findings { prop_assert!(!f.message.is_empty()); }
        }
    }
}
