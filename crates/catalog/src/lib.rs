//! The LabPipe session catalog: one typed API over one DynamoDB table, used by the backend
//! Lambdas, the CLI and the desktop app alike, so every one of them reads and writes sessions the
//! same way and sees the same status.
//!
//! Table layout (see `docs/catalog.md` for the why):
//!
//! | item | pk | sk | holds |
//! |---|---|---|---|
//! | session | `SESSION#<id>` | `META` | status, step, message, sizes, manifest hash, `m_<key>` metadata |
//! | history | `SESSION#<id>` | `EVENT#<utc time>#<seq>` | one status change or note |
//! | outputs | `SESSION#<id>` | `OUTPUT#v<N>` | processed files (key, size, sha256) of pipeline N |
//!
//! Indexes: `by_month` (`month`, `recorded_at`) and `by_status` (`status`, `recorded_at`), both
//! projecting every attribute.
//!
//! Invariants: a session's status changes only along [`Status::allowed_from`]; every change
//! writes its history item in the same transaction; an entry cataloged from one manifest is never
//! overwritten by another. The one exception is [`Catalog::import_sessions`], which writes
//! complete, self-consistent records without conditions, for seeding and migrating tables; the
//! pipeline never calls it.

mod error;
mod import;
mod item;
pub mod query;
mod status;
mod store;
pub mod stuck;

pub use error::CatalogError;
pub use import::{ImportSummary, SessionRecord};
pub use item::{
    format_utc, meta_value, metadata_attribute, session_pk, Event, Level, OutputFile, OutputRecord,
    SessionItem, EVENT_PREFIX, METADATA_PREFIX, META_SK, OUTPUT_PREFIX,
};
pub use status::{Status, UnknownStatus};
pub use store::{create_table, Catalog, PutOutcome, BY_MONTH_INDEX, BY_STATUS_INDEX};
pub use stuck::Stuck;
