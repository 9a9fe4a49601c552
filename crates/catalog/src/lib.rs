//! The LabPipe session catalog: one typed API over one DynamoDB table, used by the backend
//! Lambdas, the CLI and the desktop app alike, so every one of them reads and writes sessions the
//! same way and sees the same status.
//!
//! Table layout: one partition per session (`SESSION#<id>`) holding its `META` item, one
//! `EVENT#<utc time>#<seq>` item per status change or note and one `OUTPUT#v<N>` item per
//! pipeline version and revision (`OUTPUT#v<N>` for the first upload, `OUTPUT#v<N>#r<R>` for
//! correction R), and two sparse indexes, `by_month` and `by_status`. Every attribute, index and
//! condition, and why: `docs/catalog.md`.
//!
//! Invariants: a session's status changes only along [`Status::allowed_from`]; every change
//! writes its history item in the same transaction; an entry cataloged from one manifest is never
//! overwritten by another. Two writes step outside [`Status::allowed_from`]:
//! [`Catalog::put_revision`] makes a verified correction (a higher revision) current and sets the
//! session `CATALOGED` again from any status, `PROCESSED` included, so preprocessing runs on the
//! new files; [`Catalog::import_sessions`] writes complete, self-consistent records without
//! conditions, for seeding and migrating tables (the pipeline never calls it).

mod error;
mod import;
mod item;
pub mod query;
mod read;
mod status;
mod store;
pub mod stuck;
mod transaction;
mod write;

pub use error::CatalogError;
pub use import::{ImportSummary, SessionRecord};
pub use item::{
    format_utc, meta_value, metadata_attribute, output_sort_key, session_pk, Event, Level,
    OutputFile, OutputRecord, SessionItem, EVENT_PREFIX, METADATA_PREFIX, META_SK, OUTPUT_PREFIX,
};
pub use status::{Status, UnknownStatus};
pub use store::{Catalog, BY_MONTH_INDEX, BY_STATUS_INDEX};
pub use stuck::Stuck;
pub use write::PutOutcome;
