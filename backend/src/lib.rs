//! LabPipe's cloud backend: what happens to a session after its manifest lands in the raw bucket.
//!
//! - [`ingest`]: an S3 event on `raw/<session>/manifest.json` (via SQS) → verify every object
//!   against the manifest → catalog entry `CATALOGED` → a preprocessing request on the
//!   preprocess queue.
//! - [`preprocess`]: a preprocessing request → stream the raw data files, decode, clean, compute
//!   features → outputs under `s3://PROCESSED/v<N>/<session>/` → `PROCESSED`.
//! - [`runner`]: the local runner that long-polls both queues and feeds the same handlers, for
//!   the emulator (where Lambda cannot run) and for debugging.
//!
//! Both handlers run their SQS batches through one loop ([`batch`]), which also turns a panic
//! into a `FAILED` session with the panic as the reason.
//!
//! Handlers are plain async functions over clients built once by the caller: the Lambda binaries
//! (`src/bin/`), the local runner and the tests all call the very same code. A handler returns an
//! [`aws_lambda_events::event::sqs::SqsBatchResponse`]: a message whose work failed for a reason
//! that may go away (throttling, network, a busy session) is reported as a batch item failure so
//! SQS retries it and, after a few attempts, moves it to the dead-letter queue; a problem with the
//! session itself (a bad manifest, a missing or altered object, undecodable data) becomes a
//! `FAILED` status with the step and a reason a technician can act on, and the message is done.
//!
//! Every log line is JSON on stdout and carries the session id (see [`logging`]); every failure is
//! also an event in the session's catalog history.

pub mod batch;
pub mod config;
pub mod failure;
pub mod ingest;
pub mod logging;
pub mod preprocess;
pub mod runner;

pub use config::{BackendConfig, Clients};
pub use failure::Failure;
pub use ingest::Ingest;
pub use preprocess::{Preprocess, PreprocessRequest};
