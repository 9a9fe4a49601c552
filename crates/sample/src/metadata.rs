//! The lab's metadata schema as the acquisition software fills it in, and the writer for
//! `metadata.txt`. Hardware models, channel counts, sample formats and rates are drawn
//! together because real amplifiers only offer certain combinations; generating impossible
//! ones would make the demo data less convincing.

use std::fs;
use std::path::Path;

use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::SampleError;

/// Name of the metadata file inside every session folder.
pub const METADATA_FILE: &str = "metadata.txt";

/// Keys of the default lab schema, all required.
pub const REQUIRED_KEYS: [&str; 6] = [
    "subject_id",
    "fatigue",
    "hardware_model",
    "sample_rate_hz",
    "channels",
    "sample_format",
];

/// Values allowed for `sample_format`.
pub const SAMPLE_FORMATS: [&str; 3] = [
    SampleFormat::ALL[0].name(),
    SampleFormat::ALL[1].name(),
    SampleFormat::ALL[2].name(),
];

/// Values generated for `hardware_model`.
pub const HARDWARE_MODELS: [&str; 3] = ["X200", "NeuroAmp-32", "BioRec Mk2"];

/// Bytes per sample of a `sample_format` value, or `None` for an unknown format.
pub fn sample_format_bytes(format: &str) -> Option<usize> {
    labpipe_core::sample_format::bytes_per_sample(format)
}

/// Writes `entries` as `key: value` lines, in order and without deduplicating, so tests can
/// also build files with repeated keys. An empty value is written as `key:`.
///
/// Keys must be non-empty and free of `:`; neither keys nor values may contain line breaks,
/// since the file could not be read back as the same entries.
pub fn write_metadata<K, V>(path: impl AsRef<Path>, entries: &[(K, V)]) -> Result<(), SampleError>
where
    K: AsRef<str>,
    V: AsRef<str>,
{
    let path = path.as_ref();
    let bytes = render(entries)?;
    fs::write(path, bytes).map_err(SampleError::io(path))
}

pub(crate) fn render<K, V>(entries: &[(K, V)]) -> Result<Vec<u8>, SampleError>
where
    K: AsRef<str>,
    V: AsRef<str>,
{
    let mut out = String::new();
    for (key, value) in entries {
        let (key, value) = (key.as_ref(), value.as_ref());
        let invalid = |reason| SampleError::InvalidMetadata {
            key: key.to_owned(),
            reason,
        };
        if key.trim().is_empty() {
            return Err(invalid("key is empty"));
        }
        if key.contains(':') {
            return Err(invalid("key contains a colon"));
        }
        if key.contains(['\n', '\r']) || value.contains(['\n', '\r']) {
            return Err(invalid("line break in key or value"));
        }
        out.push_str(key);
        out.push(':');
        if !value.is_empty() {
            out.push(' ');
            out.push_str(value);
        }
        out.push('\n');
    }
    Ok(out.into_bytes())
}

/// How samples are stored on disk: the one definition in `labpipe-core`.
pub(crate) use labpipe_core::SampleFormat;

/// The recording setup of one session: what the amplifier was and how it stored samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Setup {
    pub hardware: &'static str,
    pub channels: usize,
    pub format: SampleFormat,
    pub rate_hz: u32,
}

impl Setup {
    pub(crate) fn frame_bytes(&self) -> usize {
        self.channels * self.format.bytes()
    }

    pub(crate) fn random(rng: &mut ChaCha8Rng) -> Self {
        use SampleFormat::*;
        let (hardware, channels, formats, rates): (_, &[usize], &[SampleFormat], &[u32]) =
            match rng.gen_range(0..HARDWARE_MODELS.len()) {
                0 => ("X200", &[8, 16], &[Int16], &[1000, 2000]),
                1 => ("NeuroAmp-32", &[32], &[Int32, Float32], &[1000, 2000]),
                _ => ("BioRec Mk2", &[16], &[Int16, Int32], &[2000, 4000]),
            };
        Self {
            hardware,
            channels: *pick(rng, channels),
            format: *pick(rng, formats),
            rate_hz: *pick(rng, rates),
        }
    }
}

fn pick<'a, T>(rng: &mut ChaCha8Rng, items: &'a [T]) -> &'a T {
    items.choose(rng).expect("choice lists are not empty")
}

/// Metadata for one session: the required keys, then a varying selection of the optional
/// keys people actually fill in.
pub(crate) fn random_entries(rng: &mut ChaCha8Rng, setup: &Setup) -> Vec<(String, String)> {
    let subject = format!("S{:03}", rng.gen_range(1..=40));
    let fatigue = format!("{:.1}", f64::from(rng.gen_range(0..=100u8)) / 10.0);
    let mut entries = vec![
        ("subject_id".to_owned(), subject),
        ("fatigue".to_owned(), fatigue),
        ("hardware_model".to_owned(), setup.hardware.to_owned()),
        ("sample_rate_hz".to_owned(), setup.rate_hz.to_string()),
        ("channels".to_owned(), setup.channels.to_string()),
        ("sample_format".to_owned(), setup.format.name().to_owned()),
    ];
    const OPERATORS: [&str; 5] = [
        "A. Novak",
        "J. Schmidt",
        "M. Rossi",
        "K. Tanaka",
        "L. Okafor",
    ];
    const ROOMS: [&str; 3] = ["B2.14", "B2.16", "Sleep Lab 1"];
    const TASKS: [&str; 4] = [
        "resting state",
        "n-back",
        "motor imagery",
        "auditory oddball",
    ];
    const NOTES: [&str; 6] = [
        "baseline block then task",
        "subject reported mild headache",
        "re-gelled two electrodes after 10 min",
        "lights dimmed for the whole session",
        "short break halfway",
        "no issues",
    ];
    if rng.gen_bool(0.9) {
        entries.push(("operator".to_owned(), pick(rng, &OPERATORS).to_string()));
    }
    if rng.gen_bool(0.7) {
        entries.push(("room".to_owned(), pick(rng, &ROOMS).to_string()));
    }
    if rng.gen_bool(0.6) {
        entries.push(("task".to_owned(), pick(rng, &TASKS).to_string()));
    }
    if rng.gen_bool(0.6) {
        let kohm = f64::from(rng.gen_range(10..=250u16)) / 10.0;
        entries.push(("electrode_impedance_kohm".to_owned(), format!("{kohm:.1}")));
    }
    if rng.gen_bool(0.5) {
        entries.push(("notes".to_owned(), pick(rng, &NOTES).to_string()));
    }
    entries
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_key_value_lines_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(METADATA_FILE);
        write_metadata(&path, &[("b", "2"), ("a", ""), ("b", "x y")]).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "b: 2\na:\nb: x y\n");
    }

    #[test]
    fn rejects_entries_that_would_not_read_back() {
        assert!(render(&[("a:b", "1")]).is_err());
        assert!(render(&[("", "1")]).is_err());
        assert!(render(&[("a", "1\nb: 2")]).is_err());
        let err = render(&[("note", "x\r")]).unwrap_err().to_string();
        assert!(err.starts_with("metadata entry \"note\""), "{err}");
    }

    #[test]
    fn format_sizes() {
        assert_eq!(sample_format_bytes("int16"), Some(2));
        assert_eq!(sample_format_bytes("int32"), Some(4));
        assert_eq!(sample_format_bytes("float32"), Some(4));
        assert_eq!(sample_format_bytes("float64"), None);
        for name in SAMPLE_FORMATS {
            assert_eq!(SampleFormat::parse(name).unwrap().name(), name);
        }
    }
}
