//! Which sessions a reprocessing or redrive run sends, and why it leaves the others: pure rules
//! over catalog entries, so `--dry-run` shows exactly what a real run does.

use chrono::{DateTime, Utc};
use labpipe_catalog::stuck::RUN_SECS;
use labpipe_catalog::{Event, SessionItem, Status};

use crate::message::PreprocessRequest;

/// The catalog step name the backend writes with preprocessing's status changes.
pub const PREPROCESS_STEP: &str = "preprocess";
/// The catalog step name the backend writes with ingest's status changes.
pub const INGEST_STEP: &str = "ingest";

/// What to do with one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Send this preprocessing request.
    Preprocess(PreprocessRequest),
    /// Send an S3 event for the manifest of this revision of the session to the ingest queue
    /// ([`crate::ingest_event`]).
    Ingest { revision: u32 },
    /// Leave it; the reason says why and what to do instead.
    Skip(String),
}

/// Whether `labpipe reprocess --pipeline-version version` sends a request for `item` at `now`.
///
/// Mirrors what the preprocess handler would do with the request, so nothing is sent that the
/// backend would drop: a session never cataloged from a manifest has nothing to process; one a
/// run holds now is left to that run (a second request would only bounce off the claim until it
/// lands in the dead-letter queue); one already processed at this version or a later one is
/// skipped by the backend (outputs of a version are written once). A `PROCESSING` claim older
/// than one run's limit ([`RUN_SECS`], the claim's lease) belongs to a run that died (out of
/// memory, past its time limit) — a stuck session: it is sent, and the backend takes the stale
/// claim over.
pub fn reprocess(item: &SessionItem, version: u32, now: DateTime<Utc>) -> Decision {
    if item.manifest_sha256.is_none() {
        return Decision::Skip(format!(
            "never cataloged from a manifest ({}): nothing to process; see `labpipe status {}`",
            item.status, item.session
        ));
    }
    match item.status {
        Status::Processing if !claim_expired(item, now) => {
            let age_min = item.secs_in_status(now) / 60;
            Decision::Skip(format!(
                "a preprocessing run claimed it {age_min} min ago; reprocess it once it is PROCESSED or FAILED, or after {} min, when a claim of a run that died expires",
                RUN_SECS / 60
            ))
        }
        Status::Processed if item.pipeline_version.is_some_and(|v| v >= version) => {
            Decision::Skip(format!(
                "already processed at pipeline version {}",
                item.pipeline_version.unwrap_or(version)
            ))
        }
        Status::Cataloged | Status::Processed | Status::Failed | Status::Processing => {
            Decision::Preprocess(PreprocessRequest {
                session: item.session.clone(),
                pipeline_version: version,
            })
        }
        other => Decision::Skip(format!("status {other}: not cataloged yet")),
    }
}

/// The backend takes over a claim at least as old as its lease (`processing_lease_secs`, the
/// function's time limit, [`RUN_SECS`]).
fn claim_expired(item: &SessionItem, now: DateTime<Utc>) -> bool {
    item.secs_in_status(now) >= RUN_SECS
}

/// What `labpipe redrive` re-sends for a `FAILED` session, given its history and the stack's
/// pipeline version for new sessions.
///
/// A session that failed ingest before it was cataloged (no manifest hash), or whose correction
/// failed ingest (revision R above the cataloged one, named by the failure), gets that
/// manifest's S3 event again (`raw/<session>/manifest.json`, or `raw/<session>.r<R>/…` for the
/// correction): ingest re-reads the manifest and re-checks every object, so a fixed cause (a
/// missing object uploaded since, a permission repaired) lets it through, and an unfixed one fails
/// again with the same reason. A session that failed preprocessing gets a request for the
/// version of the run that failed. Anything else failed for a reason re-sending cannot change.
pub fn redrive_failed(item: &SessionItem, events: &[Event], default_version: u32) -> Decision {
    if item.status != Status::Failed {
        return Decision::Skip(format!("status {}: not FAILED", item.status));
    }
    let failed_revision = failed_ingest_revision(events);
    if item.manifest_sha256.is_none() {
        return Decision::Ingest {
            revision: failed_revision.unwrap_or(item.current_revision()),
        };
    }
    if item.status_step.as_deref() == Some(INGEST_STEP) {
        if let Some(revision) = failed_revision.filter(|r| *r > item.current_revision()) {
            return Decision::Ingest { revision };
        }
    }
    if item.status_step.as_deref() == Some(PREPROCESS_STEP) {
        let version = failed_run_version(events)
            .or(item.pipeline_version)
            .unwrap_or(default_version);
        return Decision::Preprocess(PreprocessRequest {
            session: item.session.clone(),
            pipeline_version: version,
        });
    }
    Decision::Skip(format!(
        "failed at {} after it was cataloged: {}; re-sending cannot change that",
        item.status_step.as_deref().unwrap_or("an unknown step"),
        item.status_message
            .as_deref()
            .unwrap_or("no reason recorded")
    ))
}

/// The pipeline version of the session's latest preprocessing run, from the history event the
/// backend writes when a run claims the session (`PROCESSING`, message `pipeline v<N> started`).
pub fn failed_run_version(events: &[Event]) -> Option<u32> {
    events
        .iter()
        .rev()
        .filter(|e| e.status == Some(Status::Processing) && e.step == PREPROCESS_STEP)
        .find_map(|e| {
            let rest = e.message.strip_prefix("pipeline v")?;
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
}

/// The revision whose ingest failed last, from the session's latest `FAILED` event of ingest:
/// ingest starts the reason of a correction's failure with `revision <R>: `; any other reason is
/// about the first upload.
pub fn failed_ingest_revision(events: &[Event]) -> Option<u32> {
    let failed = events
        .iter()
        .rev()
        .find(|e| e.status == Some(Status::Failed) && e.step == INGEST_STEP)?;
    let Some(rest) = failed.message.strip_prefix("revision ") else {
        return Some(1);
    };
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    if rest[digits.len()..].starts_with(':') {
        digits.parse().ok()
    } else {
        Some(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use labpipe_catalog::Level;

    fn item(status: Status, version: Option<u32>, manifest: bool) -> SessionItem {
        let recorded = chrono::NaiveDate::from_ymd_opt(2021, 3, 1)
            .unwrap()
            .and_hms_opt(16, 12, 21)
            .unwrap();
        let mut item = SessionItem::placeholder("20210301_161221", recorded, status, Utc::now());
        item.pipeline_version = version;
        if manifest {
            item.manifest_sha256 = Some("ab".repeat(32));
        }
        item
    }

    fn event(status: Option<Status>, step: &str, message: &str) -> Event {
        Event {
            at: Utc::now(),
            seq: 1,
            status,
            from: None,
            step: step.into(),
            level: Level::Info,
            message: message.into(),
        }
    }

    fn sends(d: &Decision) -> Option<u32> {
        match d {
            Decision::Preprocess(r) => Some(r.pipeline_version),
            _ => None,
        }
    }

    #[test]
    fn reprocess_sends_only_what_the_backend_would_run() {
        use Status::*;
        for (status, current, manifest, version, sent) in [
            (Processed, Some(1), true, 2, true),
            (Processed, Some(2), true, 2, false),
            (Processed, Some(3), true, 2, false),
            (Cataloged, None, true, 2, true),
            (Failed, Some(1), true, 2, true),
            (Failed, None, false, 2, false),
            (Processing, Some(1), true, 2, false),
            (Uploaded, None, true, 2, false),
        ] {
            let d = reprocess(&item(status, current, manifest), version, Utc::now());
            assert_eq!(
                sends(&d),
                sent.then_some(version),
                "{status} at {current:?}: {d:?}"
            );
        }
    }

    #[test]
    fn a_processing_claim_older_than_a_run_is_stuck_and_sent_again() {
        let claimed = item(Status::Processing, Some(1), true);
        let now = claimed.updated_at;
        let at = |secs: i64| now + chrono::Duration::seconds(secs);
        let held = reprocess(&claimed, 1, at(RUN_SECS as i64 - 1));
        assert!(
            matches!(&held, Decision::Skip(r) if r.contains("claimed it 14 min ago")),
            "{held:?}"
        );
        assert_eq!(sends(&reprocess(&claimed, 1, at(RUN_SECS as i64))), Some(1));
        assert_eq!(sends(&reprocess(&claimed, 2, at(7_200))), Some(2));
    }

    #[test]
    fn redrive_re_runs_the_step_that_failed_at_its_version() {
        let never_cataloged = item(Status::Failed, None, false);
        assert_eq!(
            redrive_failed(&never_cataloged, &[], 1),
            Decision::Ingest { revision: 1 }
        );

        let mut failed_v2 = item(Status::Failed, Some(1), true);
        failed_v2.status_step = Some(PREPROCESS_STEP.into());
        let history = [
            event(
                Some(Status::Processing),
                PREPROCESS_STEP,
                "pipeline v1 started",
            ),
            event(
                Some(Status::Processed),
                PREPROCESS_STEP,
                "pipeline v1: 3 outputs",
            ),
            event(
                Some(Status::Processing),
                PREPROCESS_STEP,
                "pipeline v2 started",
            ),
            event(
                Some(Status::Failed),
                PREPROCESS_STEP,
                "ch02.bin cannot be decoded",
            ),
        ];
        assert_eq!(failed_run_version(&history), Some(2));
        assert_eq!(sends(&redrive_failed(&failed_v2, &history, 1)), Some(2));
        // No run in the history: the session's version, else the stack's.
        assert_eq!(sends(&redrive_failed(&failed_v2, &[], 7)), Some(1));
        failed_v2.pipeline_version = None;
        assert_eq!(sends(&redrive_failed(&failed_v2, &[], 7)), Some(7));

        let mut conflict = item(Status::Failed, None, true);
        conflict.status_step = Some(INGEST_STEP.into());
        assert!(matches!(
            redrive_failed(&conflict, &[], 1),
            Decision::Skip(_)
        ));
        assert!(matches!(
            redrive_failed(&item(Status::Processed, Some(1), true), &[], 1),
            Decision::Skip(_)
        ));
    }

    /// A correction that failed ingest is sent again as that revision's manifest, not the first
    /// upload's; a failure of the cataloged revision itself is not re-ingested.
    #[test]
    fn redrive_re_ingests_the_revision_that_failed() {
        let mut revised = item(Status::Failed, Some(1), true);
        revised.status_step = Some(INGEST_STEP.into());
        let failed = |message: &str| {
            [
                event(
                    Some(Status::Processed),
                    PREPROCESS_STEP,
                    "pipeline v1: 3 outputs",
                ),
                event(Some(Status::Failed), INGEST_STEP, message),
            ]
        };
        let history = failed("revision 2: ch01.bin is listed in manifest.json but missing");
        assert_eq!(failed_ingest_revision(&history), Some(2));
        assert_eq!(
            redrive_failed(&revised, &history, 1),
            Decision::Ingest { revision: 2 }
        );
        // Revision 2 is cataloged now and failed a later check: nothing to re-ingest.
        revised.revision = Some(2);
        assert!(matches!(
            redrive_failed(&revised, &history, 1),
            Decision::Skip(_)
        ));
        let first = failed("revision history lost: ch01.bin is missing");
        assert_eq!(failed_ingest_revision(&first), Some(1));
        assert_eq!(failed_ingest_revision(&[]), None);
        // Never cataloged, its correction failed: that correction's manifest.
        let mut placeholder = item(Status::Failed, None, false);
        placeholder.status_step = Some(INGEST_STEP.into());
        assert_eq!(
            redrive_failed(&placeholder, &history, 1),
            Decision::Ingest { revision: 2 }
        );
    }
}
