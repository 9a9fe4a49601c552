//! How samples are stored in a data file, defined once: the names the lab schema allows
//! (`sample_format: int16 | int32 | float32`), their width in bytes, and how one little-endian
//! sample reads as a number.
//!
//! The checks use the width for the frame-size rule, the sample generator writes these formats,
//! and preprocessing decodes them; a format added here is known to all three at once.

/// One sample encoding of the lab schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SampleFormat {
    Int16,
    Int32,
    Float32,
}

/// The largest `channels` a session may declare. Real amplifiers stop well below (256 is a large
/// research system); the bound keeps a typo such as `channels: 65000` from becoming a
/// multi-gigabyte allocation in preprocessing.
pub const MAX_CHANNELS: u32 = 1024;

impl SampleFormat {
    /// Every format, in the order the schema lists them.
    pub const ALL: [SampleFormat; 3] = [Self::Int16, Self::Int32, Self::Float32];

    /// The format named by a metadata value (`int16`, `int32`, `float32`; exact, lowercase).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }

    /// The name written in `metadata.txt`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Int16 => "int16",
            Self::Int32 => "int32",
            Self::Float32 => "float32",
        }
    }

    /// Bytes per sample.
    pub const fn bytes(self) -> usize {
        match self {
            Self::Int16 => 2,
            Self::Int32 | Self::Float32 => 4,
        }
    }

    /// Reads one little-endian sample; `b` holds exactly [`Self::bytes`] bytes.
    #[inline]
    pub fn read_le(self, b: &[u8]) -> f64 {
        match self {
            Self::Int16 => f64::from(i16::from_le_bytes([b[0], b[1]])),
            Self::Int32 => f64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            Self::Float32 => f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        }
    }
}

impl std::fmt::Display for SampleFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Bytes per sample of a `sample_format` value, or `None` for an unknown format.
pub fn bytes_per_sample(format: &str) -> Option<usize> {
    SampleFormat::parse(format).map(SampleFormat::bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_widths_match() {
        for f in SampleFormat::ALL {
            assert_eq!(SampleFormat::parse(f.name()), Some(f));
        }
        assert_eq!(bytes_per_sample("int16"), Some(2));
        assert_eq!(bytes_per_sample("int32"), Some(4));
        assert_eq!(bytes_per_sample("float32"), Some(4));
        assert_eq!(bytes_per_sample("INT16"), None);
        assert_eq!(bytes_per_sample("int12"), None);
    }

    #[test]
    fn samples_are_little_endian() {
        assert_eq!(
            SampleFormat::Int16.read_le(&(-1500i16).to_le_bytes()),
            -1500.0
        );
        assert_eq!(
            SampleFormat::Int32.read_le(&(-70000i32).to_le_bytes()),
            -70000.0
        );
        assert_eq!(SampleFormat::Float32.read_le(&1.5f32.to_le_bytes()), 1.5);
    }
}
