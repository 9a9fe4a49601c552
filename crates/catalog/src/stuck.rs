//! Stuck sessions: a session whose status has not changed for longer than its step may take.
//!
//! The catalog holds only what the backend wrote, so a session whose message died (a
//! dead-letter queue, a function that cannot start) stays `CATALOGED` or `PROCESSING` forever.
//! This is computed when the catalog is read, from the time of the session's last change, so
//! no writer has to notice that nothing happens. The reason (a dead-letter message, the last
//! error) is found by the reader, which knows the queues.
//!
//! Budgets follow `infra/template.yaml`: the preprocess function's timeout (900 s) bounds one
//! run, and SQS retries a request after the preprocess queue's visibility timeout (5,400 s,
//! six times the function timeout, as AWS advises for Lambda event sources). One retry interval
//! plus one run without any change means the retries did not happen or did not help.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::item::SessionItem;
use crate::status::Status;

/// Longest one preprocessing run takes: the preprocess function's timeout.
pub const RUN_SECS: u64 = 900;
/// Time before SQS hands a failed or unfinished preprocessing request out again: the preprocess
/// queue's visibility timeout.
pub const RETRY_SECS: u64 = 5_400;
/// A `CATALOGED` session waits for a run to claim it: the request is sent at once by ingest, and
/// retried after [`RETRY_SECS`]; a run claims it within [`RUN_SECS`] of receiving it.
pub const CATALOGED_BUDGET_SECS: u64 = RETRY_SECS + RUN_SECS;
/// A `PROCESSING` claim ends within [`RUN_SECS`] or is taken over by the retry [`RETRY_SECS`]
/// later (the claim's lease equals the run's limit).
pub const PROCESSING_BUDGET_SECS: u64 = RUN_SECS + RETRY_SECS;

/// Longest one ingest run takes: the ingest function's timeout.
pub const INGEST_RUN_SECS: u64 = 120;
/// Time before SQS hands a failed S3 event to ingest again: the ingest queue's visibility
/// timeout.
pub const INGEST_RETRY_SECS: u64 = 720;
/// Deliveries of one S3 event before it is dead-lettered: the ingest queue's `maxReceiveCount`.
pub const INGEST_DELIVERIES: u64 = 5;
/// An upload finished on the lab PC, and the catalog does not know the session: by this time
/// ingest has had every delivery of its S3 event, so the event is in the ingest dead-letter queue
/// (or ingest does not run at all). Normally a session is cataloged within seconds.
pub const UPLOADED_BUDGET_SECS: u64 = INGEST_DELIVERIES * INGEST_RETRY_SECS + INGEST_RUN_SECS;

/// A session that has made no progress for longer than its step's budget.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stuck {
    /// The status it has been in.
    pub status: Status,
    /// Since when (its last change).
    pub since: DateTime<Utc>,
    /// How long it has been, in seconds.
    pub for_secs: u64,
    /// The budget it overran, in seconds.
    pub budget_secs: u64,
}

/// The budget of a status, when the pipeline is meant to move a session on by itself.
pub fn budget(status: Status) -> Option<u64> {
    match status {
        Status::Cataloged => Some(CATALOGED_BUDGET_SECS),
        Status::Processing => Some(PROCESSING_BUDGET_SECS),
        _ => None,
    }
}

impl SessionItem {
    /// `Some` when the session has been in a status the pipeline moves on by itself for longer
    /// than that status's budget, at `now`.
    pub fn stuck(&self, now: DateTime<Utc>) -> Option<Stuck> {
        let budget = budget(self.status)?;
        let for_secs = self.secs_in_status(now);
        (for_secs > budget).then_some(Stuck {
            status: self.status,
            since: self.updated_at,
            for_secs,
            budget_secs: budget,
        })
    }

    /// Seconds since the session's last change of status (or claim), at `now`; 0 when the clock
    /// is behind the record.
    pub fn secs_in_status(&self, now: DateTime<Utc>) -> u64 {
        now.signed_duration_since(self.updated_at)
            .num_seconds()
            .max(0) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn only_unsettled_statuses_past_their_budget_are_stuck() {
        let now = Utc::now();
        let recorded = chrono::NaiveDate::from_ymd_opt(2021, 3, 1)
            .unwrap()
            .and_hms_opt(9, 0, 0)
            .unwrap();
        for (status, age_secs, stuck) in [
            (Status::Cataloged, CATALOGED_BUDGET_SECS - 60, false),
            (Status::Cataloged, CATALOGED_BUDGET_SECS + 60, true),
            (Status::Processing, PROCESSING_BUDGET_SECS + 1, true),
            (Status::Processing, 60, false),
            (Status::Processed, 10 * PROCESSING_BUDGET_SECS, false),
            (Status::Failed, 10 * PROCESSING_BUDGET_SECS, false),
        ] {
            let item = SessionItem::placeholder(
                "20210301_090000",
                recorded,
                status,
                now - Duration::seconds(age_secs as i64),
            );
            let got = item.stuck(now);
            assert_eq!(got.is_some(), stuck, "{status} for {age_secs} s: {got:?}");
            if let Some(s) = got {
                assert_eq!(s.status, status);
                assert!(s.for_secs > s.budget_secs);
            }
        }
    }

    /// The budgets are the template's numbers: a changed timeout must change them too.
    #[test]
    fn budgets_follow_the_template() {
        let template = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../infra/template.yaml"),
        )
        .expect("infra/template.yaml is readable");
        // The lines of one resource: after `  Name:` up to the next line indented by two spaces.
        let section = |name: &str| -> String {
            let header = format!("  {name}:");
            template
                .lines()
                .skip_while(|l| *l != header)
                .skip(1)
                .take_while(|l| l.is_empty() || l.starts_with("   "))
                .collect::<Vec<_>>()
                .join("\n")
        };
        let number = |text: &str, key: &str| -> u64 {
            let line = text
                .lines()
                .find(|l| l.trim_start().starts_with(&format!("{key}:")))
                .unwrap_or_else(|| panic!("{key} in {text}"));
            line.split(':')
                .nth(1)
                .unwrap()
                .split('#')
                .next()
                .unwrap()
                .trim()
                .parse()
                .unwrap()
        };
        assert_eq!(
            number(&section("PreprocessQueue"), "VisibilityTimeout"),
            RETRY_SECS
        );
        assert_eq!(number(&section("PreprocessFunction"), "Timeout"), RUN_SECS);
        let ingest_queue = section("IngestQueue");
        assert_eq!(
            number(&ingest_queue, "VisibilityTimeout"),
            INGEST_RETRY_SECS
        );
        assert_eq!(number(&ingest_queue, "maxReceiveCount"), INGEST_DELIVERIES);
        assert_eq!(
            number(&section("IngestFunction"), "Timeout"),
            INGEST_RUN_SECS
        );
    }
}
