//! Moves checked recording sessions from the lab PC to S3 without ever losing, corrupting,
//! duplicating or overwriting one.
//!
//! Why it is shaped like this:
//!
//! - **One read per byte.** Every block read from disk feeds the SHA-256 (for the manifest), the
//!   CRC64NVME (the S3 checksum, full-object for multipart) and the request body at once
//!   ([`digest`]). A 600 MB session is read once, not three times.
//! - **Resume, not restart.** One SQLite [`journal`] per machine user (shared by the CLI and the
//!   app) records each multipart upload id and its acknowledged parts. The next run — in either
//!   program — reconciles it with `ListParts` and sends only what is missing, so a kill costs at
//!   most the parts that were in flight.
//! - **One listing, one plan.** What S3 holds for a session is learned from one prefix listing
//!   (objects; multipart uploads too when the journal has one to resume), never from a HEAD that
//!   expects 404; the pure [`plan`]
//!   decides per file: skip, compare, conflict, put, resume or start.
//! - **One uploader per session.** A [`lock`] file per session beside the journal: a second
//!   uploader fails fast naming the holder, and the engine aborts only multipart uploads it can
//!   prove are its own stale ones.
//! - **Never overwrite.** Every object and the manifest are written with `If-None-Match: *`; an
//!   existing object is compared by checksum first: same bytes → "already uploaded", different →
//!   a conflict naming the key, and nothing is written.
//! - **Manifest last.** `raw/<session>/manifest.json` is written only after every file is
//!   uploaded *and* verified by the checksum S3 returned for it; the backend treats a session
//!   without it as incomplete.
//! - **Changes abort.** A file whose size or mtime moves while it is read (or that grows past its
//!   checked size) aborts its upload and fails the session; no manifest is written.
//! - **Errors are classed.** Throttling, 5xx, timeouts and resets are retried by the SDK's
//!   bounded exponential backoff with jitter (plus two outer rounds per part); missing bucket,
//!   denied access and bad credentials fail the whole run at once with what to do.
//!
//! Progress is a typed, serde-serialisable [`Event`] stream so the CLI and the desktop app render
//! the same facts, retries included ([`Event::Retrying`]): a flaky link should not look like a
//! slow one.

//! Modules: [`run`] (a session start to end) → [`plan`] (pure: what to do per file) →
//! [`object`] / [`multipart`] (sending) → [`manifest`] (last); [`bucket`] holds every S3
//! request, [`files`] the single read of each file, [`journal`] and [`lock`] the local state,
//! [`slots`] the bytes in flight.

mod bucket;
/// The S3 client, built by the gateway ([`labpipe_aws::client`]).
pub use labpipe_aws::client;
pub mod digest;
mod error;
pub mod event;
mod files;
pub mod journal;
pub mod lock;
mod manifest;
mod multipart;
mod object;
mod plan;
mod progress;
pub mod refusal;
mod retry;
mod run;
mod slots;
mod throttle;

pub use error::UploadError;
pub use event::{Event, FileOutcome, SessionOutcome};
pub use journal::{folder_rig, folder_session, Journal};
pub use labpipe_aws::{s3_client, ClientOptions};
pub use lock::{Holder, SessionLock};
pub use refusal::{ChangedSinceUpload, FolderChanges, NameTaken};
pub use run::{NameCheck, RequestTally, SessionResult, Upload, UploadOptions};

/// Top folder of every raw object: `raw/<session id>/<relative path>` (see
/// [`labpipe_core::layout`], where the layout is defined).
pub const RAW_PREFIX: &str = labpipe_core::layout::RAW_ROOT;
/// The manifest's file name inside the session prefix; written last.
pub const MANIFEST_NAME: &str = labpipe_core::layout::MANIFEST_NAME;
/// Smallest part S3 accepts (except the last one).
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
/// Largest part number S3 accepts.
pub const MAX_PARTS: u64 = 10_000;

/// `raw/<session>/<relative path>` and `raw/<session>/manifest.json`, built by
/// [`labpipe_core::layout`] (the one place keys are made).
pub use labpipe_core::layout::{manifest_key, raw_key as object_key};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_raw_layout() {
        assert_eq!(
            object_key("20210301_161221", "sub/a.bin"),
            "raw/20210301_161221/sub/a.bin"
        );
        assert_eq!(
            manifest_key("20210301_161221"),
            "raw/20210301_161221/manifest.json"
        );
    }
}
