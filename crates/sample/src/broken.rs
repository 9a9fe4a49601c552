//! The catalogue of deliberate defects. Each variant corresponds to one way a real session
//! has gone wrong (or could) on the lab PC, and names the check that must reject it, so a
//! test can assert that every check fires on exactly the session meant for it.

use serde::Serialize;

/// One defect in an otherwise valid session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BrokenKind {
    /// Folder name is a date that does not exist: 29 February of a non-leap year.
    BadCalendarDate,
    /// Folder name has month 13.
    MonthOutOfRange,
    /// Folder name has hour 25.
    HourOutOfRange,
    /// Folder name is not a `YYYYMMDD_HHMMSS` recording time at all.
    NameNotTimestamp,
    /// No `metadata.txt`.
    MissingMetadata,
    /// `metadata.txt` is not valid UTF-8 (a value saved in Latin-1).
    GarbledMetadata,
    /// A number field holds a word: `fatigue: high`.
    NotANumber,
    /// A number written with a decimal comma: `fatigue: 3,5`.
    DecimalComma,
    /// A number outside its allowed range: `fatigue: 14`.
    ValueOutOfRange,
    /// A required key is absent: no `hardware_model`.
    MissingRequiredKey,
    /// A key appears twice with different values.
    DuplicateKey,
    /// A required key with nothing after the colon.
    EmptyValue,
    /// Metadata but no data files.
    NoDataFiles,
    /// One data file is empty, as when the recorder opened the next file and then crashed.
    ZeroByteDataFile,
    /// One data file ends mid-frame, as after a crash while writing.
    TruncatedDataFile,
    /// Acquisition still running: a `.part` file and modification times of just now.
    StillBeingWritten,
    /// A symbolic link that resolves outside the session folder.
    SymlinkOutside,
}

impl BrokenKind {
    /// Every defect, in the order [`generate`](crate::generate) writes them.
    pub const ALL: [BrokenKind; 17] = [
        Self::BadCalendarDate,
        Self::MonthOutOfRange,
        Self::HourOutOfRange,
        Self::NameNotTimestamp,
        Self::MissingMetadata,
        Self::GarbledMetadata,
        Self::NotANumber,
        Self::DecimalComma,
        Self::ValueOutOfRange,
        Self::MissingRequiredKey,
        Self::DuplicateKey,
        Self::EmptyValue,
        Self::NoDataFiles,
        Self::ZeroByteDataFile,
        Self::TruncatedDataFile,
        Self::StillBeingWritten,
        Self::SymlinkOutside,
    ];

    /// Whether [`generate`](crate::generate) can write this defect here: symbolic links are
    /// only created on unix, where creating one needs no special privilege.
    pub fn is_supported(&self) -> bool {
        !matches!(self, Self::SymlinkOutside) || cfg!(unix)
    }

    /// Short stable identifier, e.g. `bad-calendar-date`.
    pub fn id(&self) -> &'static str {
        match self {
            Self::BadCalendarDate => "bad-calendar-date",
            Self::MonthOutOfRange => "month-out-of-range",
            Self::HourOutOfRange => "hour-out-of-range",
            Self::NameNotTimestamp => "name-not-timestamp",
            Self::MissingMetadata => "missing-metadata",
            Self::GarbledMetadata => "garbled-metadata",
            Self::NotANumber => "not-a-number",
            Self::DecimalComma => "decimal-comma",
            Self::ValueOutOfRange => "value-out-of-range",
            Self::MissingRequiredKey => "missing-required-key",
            Self::DuplicateKey => "duplicate-key",
            Self::EmptyValue => "empty-value",
            Self::NoDataFiles => "no-data-files",
            Self::ZeroByteDataFile => "zero-byte-data-file",
            Self::TruncatedDataFile => "truncated-data-file",
            Self::StillBeingWritten => "still-being-written",
            Self::SymlinkOutside => "symlink-outside",
        }
    }

    /// The LabPipe check that should reject this session: the `check` of the finding that
    /// `labpipe check` reports for it (`session_id`, `folder`, `stability`, `metadata` or
    /// `data_files`).
    pub fn expected_check(&self) -> &'static str {
        match self {
            Self::BadCalendarDate
            | Self::MonthOutOfRange
            | Self::HourOutOfRange
            | Self::NameNotTimestamp => "session_id",
            Self::MissingMetadata
            | Self::GarbledMetadata
            | Self::NotANumber
            | Self::DecimalComma
            | Self::ValueOutOfRange
            | Self::MissingRequiredKey
            | Self::DuplicateKey
            | Self::EmptyValue => "metadata",
            Self::NoDataFiles | Self::ZeroByteDataFile | Self::TruncatedDataFile => "data_files",
            Self::StillBeingWritten => "stability",
            Self::SymlinkOutside => "folder",
        }
    }

    /// One sentence for people: what is wrong with the session.
    pub fn describe(&self) -> &'static str {
        match self {
            Self::BadCalendarDate => {
                "folder name is 29 February of a year that is not a leap year"
            }
            Self::MonthOutOfRange => "folder name has month 13",
            Self::HourOutOfRange => "folder name has hour 25",
            Self::NameNotTimestamp => "folder name is not a YYYYMMDD_HHMMSS recording time",
            Self::MissingMetadata => "metadata.txt is missing",
            Self::GarbledMetadata => "metadata.txt is not valid UTF-8 (a value saved in Latin-1)",
            Self::NotANumber => "fatigue holds a word instead of a number",
            Self::DecimalComma => "fatigue is written with a decimal comma",
            Self::ValueOutOfRange => "fatigue is 14, above the allowed 0 to 10",
            Self::MissingRequiredKey => "required key hardware_model is missing",
            Self::DuplicateKey => "key fatigue appears twice with different values",
            Self::EmptyValue => "required key subject_id has an empty value",
            Self::NoDataFiles => "the folder holds metadata but no data files",
            Self::ZeroByteDataFile => "one data file is empty (0 bytes)",
            Self::TruncatedDataFile => "one data file ends in the middle of a frame",
            Self::StillBeingWritten => {
                "a .part file is present and files were modified just now, so acquisition may still be running"
            }
            Self::SymlinkOutside => "a symbolic link points outside the session folder",
        }
    }
}

impl std::fmt::Display for BrokenKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.id())
    }
}
