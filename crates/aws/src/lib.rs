//! How LabPipe reaches AWS (where calls go, the role a configuration assumes, the stack outputs)
//! and its one S3 gateway: every crate that talks to S3 (the upload, sync, the backend, the
//! desktop app) builds its client, watches its retries, classifies its failures and reads
//! manifests and stack outputs through this crate, so each of those is decided once.
//!
//! - [`client`]: the client (retries, timeouts, path style for emulators, checksum policy) and
//!   where calls go ([`AwsTarget`]: region, endpoint — `http://` only to loopback — profile);
//! - [`retry`]: an SDK interceptor that reports each retried attempt with its reason to any
//!   [`RetryReport`] (a progress channel, a closure);
//! - [`count`]: an SDK interceptor counting the requests a client sends ([`RequestCounter`]);
//! - [`error`]: [`ErrorClass`] and [`classify`] — retryable, permanent, not found, access
//!   denied, precondition failed, … — and the crate's [`S3Error`];
//! - [`manifest`]: the size-bounded, version-aware manifest reader;
//! - [`objects`]: what exists under a prefix, from one listing (never inferred from a 404);
//! - [`stack`]: the deployed stack's outputs (bucket, table and queue names), typed.
//!
//! The key layout itself (`raw/<session>/…`, `v<N>/<session>/…`) is pure and lives in
//! [`labpipe_core::layout`].

pub mod client;
pub mod count;
pub mod error;
pub mod manifest;
pub mod objects;
pub mod retry;
pub mod stack;

/// The S3 client type, for callers that hold one without depending on the SDK crate themselves.
pub use aws_sdk_s3::Client as S3Client;
pub use client::{
    assume_role, check_endpoint, check_role_arn, s3_client, with_static_keys, AwsTarget,
    ClientOptions,
};
pub use count::RequestCounter;
pub use error::{classify, classify_response, describe, ErrorClass, S3Error};
pub use manifest::{ManifestObject, ManifestRead};
pub use objects::{list_prefix, ListedObject};
pub use retry::{failure_reason, FromRetry, ReportFn, Retry, RetryReport, RetryWatch};
pub use stack::StackOutputs;
