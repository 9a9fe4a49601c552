//! `labpipe upload`'s client log: the run's checks, status changes and failures go to the spool
//! beside the upload journal and on to the stack's client log group (`labpipe-clientlog`; the
//! group is resolved with the rest of the stack, `labpipe_lab::stack`).
//!
//! Nothing here can fail or slow the upload: a spool that cannot be opened turns logging off for
//! the run (with a warning in the log file), sending runs beside the upload and once more at the
//! end for at most [`FINAL_SHIP`], and records that could not be sent wait for the next run.

use labpipe_clientlog::ClientLog;
use labpipe_core::SessionReport;
use labpipe_upload::Event;
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

/// The longest the end of a run waits for the last records to be sent.
const FINAL_SHIP: Duration = Duration::from_secs(10);
/// How often a long run sends what it has so far.
const SHIP_EVERY: Duration = Duration::from_secs(60);

pub struct RunLog {
    log: Option<ClientLog>,
    /// The log group, or why none is known.
    group: Result<String, String>,
    lab_folders: HashMap<String, String>,
    periodic: Option<tokio::task::JoinHandle<()>>,
}

impl RunLog {
    /// The client log of this run, its spool beside `journal`; records DETECTED and CHECKED /
    /// REJECTED for every checked session.
    /// `group` is the stack's client log group as [`crate::config::stack`] resolved it, or why
    /// it is not known.
    pub fn open(journal: &Path, reports: &[SessionReport], group: Result<String, String>) -> Self {
        let log = match ClientLog::beside_journal(journal, "labpipe") {
            Ok(l) => Some(l),
            Err(e) => {
                tracing::warn!(error = %e, "client log off for this run");
                None
            }
        };
        let lab_folders = reports
            .iter()
            .filter_map(|r| {
                let folder = r.path.parent()?.display().to_string();
                Some((r.session.clone(), folder))
            })
            .collect();
        if let Some(l) = &log {
            l.checked(reports);
        }
        RunLog {
            log,
            group,
            lab_folders,
            periodic: None,
        }
    }

    /// When the log group is known: sends in the background while the run lasts.
    pub fn start_shipping(&mut self, sdk: &aws_config::SdkConfig) {
        if let (Some(log), Ok(group)) = (&self.log, &self.group) {
            self.periodic = Some(log.ship_periodically(sdk.clone(), group.clone(), SHIP_EVERY));
        }
    }

    /// Spools an upload event that is a status change. Called where the events are shown, so
    /// every record is in the spool before the run ends and the events keep their order.
    pub fn event(&self, event: &Event) {
        if let Some(log) = &self.log {
            let folder = labpipe_clientlog::event_session(event)
                .and_then(|s| self.lab_folders.get(s))
                .map(String::as_str);
            log.observe(event, folder);
        }
    }

    /// A failure of the whole run (no bucket, no credentials).
    pub fn run_failed(&self, reason: &str) {
        if let Some(log) = &self.log {
            let folders: Vec<&String> = self.lab_folders.values().collect();
            let folder = folders.first().filter(|f| folders.iter().all(|g| g == *f));
            log.run_failed(folder.map(|f| f.as_str()), reason);
        }
    }

    /// Sends what is left (bounded); says on stderr when records have to wait. Call it after
    /// the events are rendered: the tee has spooled every one by then.
    pub async fn finish(mut self, sdk: &aws_config::SdkConfig) {
        if let Some(p) = self.periodic.take() {
            p.abort();
        }
        let Some(log) = &self.log else { return };
        let group = match &self.group {
            Ok(g) => g,
            // No log group anywhere (no stack outputs file, no variable): records wait quietly.
            Err(e) => {
                tracing::info!(error = %e, "client log records wait");
                return;
            }
        };
        let result = log.ship(sdk, group, FINAL_SHIP).await;
        let waiting = log.spool().len().unwrap_or(0);
        match result {
            Ok(shipped) => tracing::info!(sent = shipped.sent, waiting, "client log records sent"),
            Err(e) => {
                tracing::warn!(error = %e, waiting, "client log records wait");
                anstream::eprintln!(
                    "labpipe: note: {waiting} client log records wait in {}: {e}",
                    log.spool().path().display()
                );
            }
        }
    }
}
