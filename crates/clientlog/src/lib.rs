//! The lab PC's client log: what happened to each session on the lab side — found, checked or
//! rejected, uploading, uploaded, failed and why — sent to the stack's client log group
//! (CloudWatch Logs, output `ClientLogGroup`), one log stream per lab PC and user, so an
//! operator sees a lab's problems without the lab PC.
//!
//! Why it is shaped like this:
//!
//! - **The upload comes first.** Recording is a local SQLite insert; sending is separate, bounded
//!   by a deadline, and its failures are logged, never returned to the upload. A dead network or
//!   a missing permission only means the records wait.
//! - **Spool first, then send.** Every [`Record`] goes to a durable [`Spool`] beside the upload
//!   journal and leaves it only once CloudWatch accepted it, so records written offline are sent
//!   by a later run (of the CLI or the app).
//! - **Bounded.** The spool keeps at most a cap of records; beyond it the oldest are dropped and
//!   counted, and the count is sent as a DROPPED record.
//! - **Batched.** Records go in `PutLogEvents` batches cut to AWS's limits ([`batch`]).
//! - **One record per fact, one JSON object per record** ([`record`]): time, host, user, lab
//!   folder, session, kind, reason.
//!
//! - **Told where to send.** The log group is the stack's (`ClientLogGroup`), resolved where
//!   the rest of the stack is (`labpipe_lab::stack` for the CLI, the Settings for the app) and
//!   passed to [`ClientLog::ship`]; this crate looks for no stack itself.
//!
//! Modules: [`record`] (what is logged) → [`spool`] (kept) → [`batch`] (cut) → [`ship`] (sent).

pub mod batch;
mod error;
pub mod record;
pub mod ship;
pub mod spool;

pub use error::ClientLogError;
pub use record::{Kind, Origin, Record};
pub use ship::{Shipped, Shipper};
pub use spool::Spool;

use chrono::Utc;
use labpipe_core::SessionReport;
use labpipe_upload::Event;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Overrides the spool's cap ([`spool::DEFAULT_MAX_RECORDS`]).
pub const MAX_RECORDS_ENV: &str = "LABPIPE_CLIENT_LOG_MAX_RECORDS";

/// A program's client log: its origin and the shared spool.
#[derive(Clone)]
pub struct ClientLog {
    spool: Arc<Spool>,
    origin: Origin,
}

impl ClientLog {
    /// The client log of `program` (`labpipe`, `labpipe-app`) with the spool beside `journal`
    /// (the upload journal's path), capped by `LABPIPE_CLIENT_LOG_MAX_RECORDS` or the default.
    pub fn beside_journal(journal: &Path, program: &str) -> Result<Self, ClientLogError> {
        let spool = Spool::open(&Spool::path_beside(journal), max_records_from_env())?;
        Ok(ClientLog {
            spool: Arc::new(spool),
            origin: Origin::current(program),
        })
    }

    pub fn new(spool: Spool, origin: Origin) -> Self {
        ClientLog {
            spool: Arc::new(spool),
            origin,
        }
    }

    pub fn spool(&self) -> &Spool {
        &self.spool
    }

    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// Spools records; a failure is logged and otherwise ignored.
    pub fn record(&self, records: &[Record]) {
        if let Err(e) = self.spool.push(records) {
            tracing::warn!(error = %e, "client log: records not kept");
        }
    }

    /// DETECTED and CHECKED / REJECTED for each checked session.
    pub fn checked(&self, reports: &[SessionReport]) {
        let now = Utc::now();
        let records: Vec<Record> = reports
            .iter()
            .flat_map(|r| Record::from_report(&self.origin, r, now))
            .collect();
        self.record(&records);
    }

    /// A failure that is not one session's (a missing bucket, bad credentials).
    pub fn run_failed(&self, lab_folder: Option<&str>, reason: &str) {
        let mut r = Record::new(&self.origin, Kind::Failed, Utc::now()).reason(reason);
        if let Some(f) = lab_folder {
            r = r.lab_folder(f);
        }
        self.record(&[r]);
    }

    /// Spools `event` when it is a status change (a session started, done or failed);
    /// `lab_folder` is the folder that holds the session. Call it where the events are rendered,
    /// so the record is spooled before the run can end.
    pub fn observe(&self, event: &Event, lab_folder: Option<&str>) {
        if event_session(event).is_some() {
            if let Some(r) = Record::from_event(&self.origin, lab_folder, event, Utc::now()) {
                self.record(&[r]);
            }
        }
    }

    /// Sends the spool to `group`, giving up after `deadline`. Never panics, never blocks longer.
    pub async fn ship(
        &self,
        sdk: &aws_config::SdkConfig,
        group: &str,
        deadline: Duration,
    ) -> Result<Shipped, ClientLogError> {
        let shipper = Shipper::new(sdk, group, &self.origin);
        match tokio::time::timeout(deadline, shipper.ship(&self.spool, &self.origin)).await {
            Ok(r) => r,
            Err(_) => {
                // The cancelled ship held the lease: hand it back.
                let _ = self.spool.release_lease();
                Err(ClientLogError::Timeout {
                    group: group.to_string(),
                    secs: deadline.as_secs(),
                })
            }
        }
    }

    /// Ships every `every` until the returned task is aborted: for long upload runs, so records
    /// do not all wait for the end.
    pub fn ship_periodically(
        &self,
        sdk: aws_config::SdkConfig,
        group: String,
        every: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let log = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                if let Err(e) = log.ship(&sdk, &group, every).await {
                    tracing::info!(error = %e, "client log: records wait");
                }
            }
        })
    }
}

fn max_records_from_env() -> u64 {
    std::env::var(MAX_RECORDS_ENV)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(spool::DEFAULT_MAX_RECORDS)
}

/// The session an event is about, when it is a status change.
pub fn event_session(event: &Event) -> Option<&str> {
    match event {
        Event::SessionStarted { session, .. }
        | Event::SessionDone { session, .. }
        | Event::SessionFailed { session, .. } => Some(session.as_str()),
        _ => None,
    }
}
