//! The lab schema: which metadata keys a session must have, their types, and the check settings.
//!
//! Labs differ (one records EEG at 2 kHz, another EMG at 10 kHz with a different amplifier), so the
//! rules live in a `labpipe.toml` the lab owns rather than in code. The built-in default covers the
//! keys every LabPipe session needs (`channels`, `sample_format`, … are what make data files
//! decodable); a lab file extends and overrides it field by field.
//!
//! ```toml
//! [session]
//! metadata_file = "metadata.txt"
//! quiet_period_secs = 60
//! expected_size_mb = 600
//! size_band = [0.25, 4.0]
//!
//! [fields.fatigue]
//! type = "number"        # number | integer | text
//! min = 0
//! max = 10
//! required = true
//!
//! [fields.hardware_model]
//! type = "text"
//! allowed = ["X200", "NeuroAmp-32"]   # optional
//! pattern = "^[A-Za-z0-9 -]+$"        # optional
//! ```

use regex::Regex;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The type of a metadata field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldKind {
    Number,
    Integer,
    Text,
}

impl FieldKind {
    pub fn name(self) -> &'static str {
        match self {
            FieldKind::Number => "number",
            FieldKind::Integer => "integer",
            FieldKind::Text => "text",
        }
    }
    pub fn is_numeric(self) -> bool {
        !matches!(self, FieldKind::Text)
    }
}

/// One field of the lab schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    #[serde(rename = "type")]
    pub kind: FieldKind,
    #[serde(default = "yes")]
    pub required: bool,
    /// Inclusive lower bound (numbers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Exclusive lower bound (numbers), e.g. `greater_than = 0` for a sample rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub greater_than: Option<f64>,
    /// Inclusive upper bound (numbers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// Unit accepted after a number (`1000 Hz`) and shown in messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// Allowed values (texts), matched case-insensitively and stored in the spelling given here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed: Vec<String>,
    /// A regular expression the whole text must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

fn yes() -> bool {
    true
}

impl FieldSpec {
    fn new(kind: FieldKind) -> Self {
        FieldSpec {
            kind,
            required: true,
            min: None,
            greater_than: None,
            max: None,
            unit: None,
            allowed: Vec::new(),
            pattern: None,
            description: None,
        }
    }

    /// The accepted range in words, e.g. "0–10" or "> 0", for messages.
    pub fn range_text(&self) -> Option<String> {
        let fmt = |v: f64| crate::metadata::format_number(v);
        match (self.min, self.greater_than, self.max) {
            (Some(lo), _, Some(hi)) => Some(format!("{}–{}", fmt(lo), fmt(hi))),
            (None, Some(gt), Some(hi)) => Some(format!("> {} and ≤ {}", fmt(gt), fmt(hi))),
            (Some(lo), _, None) => Some(format!("≥ {}", fmt(lo))),
            (None, Some(gt), None) => Some(format!("> {}", fmt(gt))),
            (None, None, Some(hi)) => Some(format!("≤ {}", fmt(hi))),
            (None, None, None) => None,
        }
    }

    /// A short description of what a valid value looks like, for "missing key" messages.
    pub fn expectation(&self) -> String {
        let mut s = self.kind.name().to_string();
        if let Some(range) = self.range_text() {
            s.push_str(&format!(" {range}"));
        }
        if let Some(unit) = &self.unit {
            s.push_str(&format!(" {unit}"));
        }
        if !self.allowed.is_empty() {
            s.push_str(&format!(", one of {}", self.allowed.join(", ")));
        }
        s
    }
}

/// Session-level check settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionRules {
    /// Name of the metadata text file at the top of each session folder.
    pub metadata_file: String,
    /// A folder whose files changed more recently than this is still being written.
    pub quiet_period_secs: u64,
    /// The usual size of a whole session, in MB (10^6 bytes).
    pub expected_size_mb: f64,
    /// Sizes outside `[low × expected, high × expected]` get a warning.
    pub size_band: [f64; 2],
}

impl Default for SessionRules {
    fn default() -> Self {
        SessionRules {
            metadata_file: "metadata.txt".into(),
            quiet_period_secs: 60,
            expected_size_mb: 600.0,
            size_band: [0.25, 4.0],
        }
    }
}

/// The lab schema: session rules plus typed metadata fields.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabSchema {
    pub session: SessionRules,
    pub fields: BTreeMap<String, FieldSpec>,
    /// Compiled `pattern`s, keyed by field name; rebuilt on load.
    #[serde(skip)]
    patterns: BTreeMap<String, Regex>,
}

/// Why a `labpipe.toml` could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("cannot read lab schema {path}: {source}; check the path given to --schema")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("lab schema {path} is not valid: {message}")]
    Invalid { path: String, message: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SchemaFile {
    #[serde(default)]
    session: Option<SessionRules>,
    #[serde(default)]
    fields: BTreeMap<String, FieldSpec>,
}

impl PartialEq for LabSchema {
    fn eq(&self, other: &Self) -> bool {
        self.session == other.session && self.fields == other.fields
    }
}

impl Default for LabSchema {
    fn default() -> Self {
        let mut fields = BTreeMap::new();
        let mut text = |name: &str, desc: &str| {
            let mut f = FieldSpec::new(FieldKind::Text);
            f.description = Some(desc.into());
            fields.insert(name.to_string(), f);
        };
        text("subject_id", "pseudonymous id of the recorded subject");
        text("hardware_model", "recording amplifier / hardware model");
        let mut fatigue = FieldSpec::new(FieldKind::Number);
        fatigue.min = Some(0.0);
        fatigue.max = Some(10.0);
        fatigue.description = Some("subject fatigue, self-reported 0 (none) to 10".into());
        fields.insert("fatigue".into(), fatigue);
        let mut rate = FieldSpec::new(FieldKind::Number);
        rate.greater_than = Some(0.0);
        rate.unit = Some("Hz".into());
        rate.description = Some("samples per second per channel".into());
        fields.insert("sample_rate_hz".into(), rate);
        let mut channels = FieldSpec::new(FieldKind::Integer);
        channels.min = Some(1.0);
        // The backend refuses more (see `sample_format::MAX_CHANNELS`); say so on the lab PC first.
        channels.max = Some(f64::from(crate::sample_format::MAX_CHANNELS));
        channels.description = Some("number of interleaved channels in each data file".into());
        fields.insert("channels".into(), channels);
        let mut format = FieldSpec::new(FieldKind::Text);
        format.allowed = crate::sample_format::SampleFormat::ALL
            .iter()
            .map(|f| f.name().to_string())
            .collect();
        format.description = Some("little-endian sample encoding of the data files".into());
        fields.insert("sample_format".into(), format);
        // Common optional fields, checked when present so typical metadata files raise no warnings.
        for (name, desc) in [
            ("operator", "who ran the recording"),
            ("room", "where it was recorded"),
            ("task", "the protocol or task the subject performed"),
            ("notes", "free-text remarks"),
        ] {
            let mut f = FieldSpec::new(FieldKind::Text);
            f.required = false;
            f.description = Some(desc.into());
            fields.insert(name.into(), f);
        }
        let mut impedance = FieldSpec::new(FieldKind::Number);
        impedance.required = false;
        impedance.min = Some(0.0);
        impedance.unit = Some("kOhm".into());
        impedance.description = Some("mean electrode impedance".into());
        fields.insert("electrode_impedance_kohm".into(), impedance);
        LabSchema {
            session: SessionRules::default(),
            fields,
            patterns: BTreeMap::new(),
        }
    }
}

impl LabSchema {
    /// Reads a `labpipe.toml`, layered over the built-in default.
    pub fn load(path: &Path) -> Result<Self, SchemaError> {
        let text = std::fs::read_to_string(path).map_err(|source| SchemaError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml(&text).map_err(|message| SchemaError::Invalid {
            path: path.display().to_string(),
            message,
        })
    }

    /// Where a lab keeps its schema for the sessions at `path`: `labpipe.toml` in the folder
    /// itself, then in its parent (a session folder inside the lab's root), then in the current
    /// directory. `None` means the built-in default applies.
    pub fn discover(path: &Path) -> Option<std::path::PathBuf> {
        let name = crate::scan::SCHEMA_FILE;
        let mut candidates = vec![path.join(name)];
        if let Some(parent) = path.parent() {
            candidates.push(parent.join(name));
        }
        candidates.push(Path::new(name).to_path_buf());
        candidates.into_iter().find(|p| p.is_file())
    }

    /// Parses schema text layered over the default; the error is a message without the path.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        let file: SchemaFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut schema = LabSchema::default();
        if let Some(session) = file.session {
            schema.session = session;
        }
        schema.fields.extend(file.fields);
        schema.validate()?;
        Ok(schema)
    }

    fn validate(&mut self) -> Result<(), String> {
        let rules = &self.session;
        if rules.metadata_file.is_empty() || rules.metadata_file.contains(['/', '\\']) {
            return Err("session.metadata_file must be a plain file name".into());
        }
        let [lo, hi] = rules.size_band;
        if !(lo > 0.0 && hi >= lo && rules.expected_size_mb > 0.0) {
            return Err("session.size_band must be [low, high] with 0 < low ≤ high, and expected_size_mb > 0".into());
        }
        self.patterns.clear();
        for (name, spec) in &self.fields {
            if !is_valid_key(name) {
                return Err(format!(
                    "field name '{name}' must be lowercase letters, digits and '_'"
                ));
            }
            if spec.kind == FieldKind::Text
                && (spec.min.is_some() || spec.max.is_some() || spec.greater_than.is_some())
            {
                return Err(format!("field '{name}' is text but has a numeric range"));
            }
            if spec.kind.is_numeric() && (!spec.allowed.is_empty() || spec.pattern.is_some()) {
                return Err(format!(
                    "field '{name}' is a {} but has allowed values or a pattern",
                    spec.kind.name()
                ));
            }
            if let Some(p) = &spec.pattern {
                let re = Regex::new(&format!("^(?:{p})$")).map_err(|e| {
                    format!("field '{name}': pattern is not a valid regular expression: {e}")
                })?;
                self.patterns.insert(name.clone(), re);
            }
        }
        Ok(())
    }

    pub fn field(&self, name: &str) -> Option<&FieldSpec> {
        self.fields.get(name)
    }

    pub(crate) fn pattern(&self, name: &str) -> Option<&Regex> {
        self.patterns.get(name)
    }

    /// Field names, for "did you mean" suggestions.
    pub fn field_names(&self) -> impl Iterator<Item = &str> {
        self.fields.keys().map(String::as_str)
    }
}

/// Metadata keys are lowercase snake case after normalisation (see [`crate::metadata`]).
pub fn is_valid_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_schema_has_the_brief_fields() {
        let s = LabSchema::default();
        for name in [
            "subject_id",
            "fatigue",
            "hardware_model",
            "sample_rate_hz",
            "channels",
            "sample_format",
        ] {
            assert!(s.field(name).unwrap().required, "{name}");
        }
        assert_eq!(s.field("fatigue").unwrap().range_text().unwrap(), "0–10");
        assert_eq!(
            s.field("sample_rate_hz").unwrap().range_text().unwrap(),
            "> 0"
        );
        assert_eq!(s.field("channels").unwrap().kind, FieldKind::Integer);
    }

    #[test]
    fn lab_file_overrides_and_extends() {
        let s = LabSchema::from_toml(
            r#"
            [session]
            metadata_file = "info.txt"
            expected_size_mb = 5
            [fields.fatigue]
            type = "number"
            min = 0
            max = 5
            [fields.room]
            type = "text"
            required = false
            pattern = "R[0-9]+"
            "#,
        )
        .unwrap();
        assert_eq!(s.session.metadata_file, "info.txt");
        assert_eq!(s.session.quiet_period_secs, 60);
        assert_eq!(s.field("fatigue").unwrap().max, Some(5.0));
        assert!(!s.field("room").unwrap().required);
        assert!(s.pattern("room").unwrap().is_match("R12"));
        assert!(!s.pattern("room").unwrap().is_match("xR12"));
        assert!(s.field("channels").is_some(), "defaults stay");
    }

    #[test]
    fn bad_schemas_are_explained() {
        for (text, want) in [
            ("[fields.x]\ntype = \"float\"", "unknown variant"),
            (
                "[fields.x]\ntype = \"text\"\nmin = 1",
                "text but has a numeric range",
            ),
            ("[fields.Bad]\ntype = \"text\"", "lowercase letters"),
            (
                "[fields.x]\ntype = \"text\"\npattern = \"(\"",
                "not a valid regular expression",
            ),
            ("[session]\nsize_band = [4.0, 1.0]", "size_band"),
            ("[session]\nmetadata_file = \"a/b.txt\"", "plain file name"),
            ("[fields.x]\ntype = \"text\"\ncolour = 1", "unknown field"),
        ] {
            let err = LabSchema::from_toml(text).unwrap_err();
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }
}
