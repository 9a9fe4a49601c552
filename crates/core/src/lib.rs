//! LabPipe's domain model, free of any cloud, UI or CLI dependency.
//!
//! Everything that decides *whether a recording session is fit to leave the lab PC* lives here, so
//! that the CLI, the desktop app and the cloud backend all apply the very same rules:
//!
//! - [`session_id`]: the folder name `YYYYMMDD_HHMMSS` as a real, valid recording time;
//! - [`schema`]: the lab schema (`labpipe.toml`) that types metadata values and configures checks;
//! - [`metadata`]: the metadata text file parsed into typed numbers and texts, with line-precise
//!   findings;
//! - [`file_name`]: the names every OS a lab uses can hold (check and sync share the rule);
//! - [`catalog_size`]: what one catalog item can hold, by DynamoDB's sizing rules, so the check
//!   refuses on the lab PC what ingest could not store;
//! - [`scan`]: lists session folders and their files (sizes, mtimes, symlinks) without reading
//!   data bytes;
//! - [`check`]: the sanity checks, pure functions over a listing, the metadata bytes and a clock;
//! - [`manifest`]: the commit marker the upload writes last (files, sizes, SHA-256, metadata);
//! - [`layout`]: the object keys in the raw and processed buckets, built and parsed in one place;
//! - [`sample_format`]: the sample encodings, their widths and the channel bound;
//! - [`digest`]: SHA-256 of files and bytes as the manifest records it.
//!
//! Invariants: nothing here writes to disk or talks to a network (reading happens in [`scan`],
//! the metadata read of [`check`] and [`digest`]); checks never read data-file
//! bytes (only sizes), so checking a 600 MB session costs a directory listing and one small read.

pub mod catalog_size;
pub mod check;
pub mod digest;
pub mod file_name;
pub mod filter;
pub mod finding;
pub mod layout;
pub mod lock;
pub mod machine;
pub mod manifest;
pub mod metadata;
pub mod sample_format;
pub mod scan;
pub mod schema;
pub mod session_id;
pub mod units;

pub use check::{check_session, CheckInput, SessionReport, Verdict};
pub use finding::{Finding, Severity};
pub use manifest::{Manifest, ManifestFile, Revision, UploadedBy};
pub use metadata::{MetaValue, Metadata};
pub use sample_format::SampleFormat;
pub use schema::{FieldKind, FieldSpec, LabSchema, SessionRules};
pub use session_id::SessionId;

/// The version of the tool, written into every manifest so a catalog entry says what checked it.
pub const TOOL_VERSION: &str = env!("CARGO_PKG_VERSION");
