//! A session's status in the cloud pipeline, as the lab PC learns it by reading the catalog, and
//! which changes are news worth a desktop notification.
//!
//! The lab PC never writes the catalog (only the backend does). A session whose upload finished
//! here but which the backend has not cataloged yet is shown as [`Status::Uploaded`] — the
//! catalog's own status for "every file and the manifest are in the raw bucket" — and as stuck
//! once ingest has had every delivery of its S3 event
//! ([`labpipe_catalog::stuck::UPLOADED_BUDGET_SECS`]): the event is then in the ingest
//! dead-letter queue, which the lab PC cannot read, and only an operator moves it on. (When
//! ingest could write the catalog on its last delivery, the session is `FAILED` with that reason
//! long before.)

use chrono::{DateTime, Utc};
use labpipe_catalog::stuck::UPLOADED_BUDGET_SECS;
use labpipe_catalog::{SessionItem, Status};
use labpipe_core::units::human_duration;
use serde::Serialize;
use std::collections::BTreeMap;

use crate::progress::{TransferState, TransferView};

/// One session as the pipeline sees it.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[cfg_attr(
    feature = "ts",
    derive(ts_rs::TS),
    ts(export_to = "../../ui/src/lib/bindings/")
)]
pub struct PipelineState {
    pub status: Status,
    /// The step that set the status (`upload`, `ingest`, `preprocess`, …).
    pub step: Option<String>,
    /// For `FAILED`: what went wrong and what to do.
    pub message: Option<String>,
    /// Pipeline version of the latest outputs.
    pub pipeline_version: Option<u32>,
    /// Set when the session has not moved for longer than its step may take
    /// (`labpipe_catalog::stuck`): why, since when, and who can move it on. The lab PC cannot
    /// read the dead-letter queues, so the reason is the last error the catalog holds.
    pub stuck: Option<String>,
    /// The SHA-256 of the manifest the catalog's entry was made from (`None`: uploaded from
    /// here, not cataloged yet): a new one (a correction) means the name holds something new
    /// ([`crate::names`]). Not sent to the front end.
    #[serde(skip)]
    #[cfg_attr(feature = "ts", ts(skip))]
    pub manifest: Option<String>,
}

impl PipelineState {
    /// The state a catalog entry shows at `now`.
    pub fn from_item(i: &SessionItem, now: DateTime<Utc>) -> Self {
        PipelineState {
            status: i.status,
            step: i.status_step.clone(),
            message: i.status_message.clone(),
            pipeline_version: i.pipeline_version,
            // The poller reads items, not histories: the item's last message stands in.
            stuck: i
                .stuck(now)
                .map(|s| crate::stuck::without_queues(i, &s, None)),
            manifest: i.manifest_sha256.clone(),
        }
    }

    /// Uploaded from here at `at`, not cataloged yet at `now`: stuck once ingest has had every
    /// delivery of its S3 event.
    pub fn uploaded(session: &str, at: DateTime<Utc>, now: DateTime<Utc>) -> Self {
        let waited = now.signed_duration_since(at).num_seconds().max(0) as u64;
        PipelineState {
            status: Status::Uploaded,
            step: Some("upload".into()),
            message: None,
            pipeline_version: None,
            stuck: (waited > UPLOADED_BUDGET_SECS).then(|| {
                format!(
                    "uploaded {} ago ({}), and the catalog still does not know it: ingest has had every try it gets (at most {}), so its S3 event is most likely in the ingest dead-letter queue. \
                     Tell the operator: \"labpipe status {session}\" names the event, and \"labpipe redrive --queue ingest\" moves it on once the cause is fixed",
                    human_duration(waited),
                    at.format("%Y-%m-%d %H:%M UTC"),
                    human_duration(UPLOADED_BUDGET_SECS),
                )
            }),
            manifest: None,
        }
    }

    /// `PROCESSED`, `FAILED` or `REJECTED`: nothing more happens without someone acting.
    pub fn is_settled(&self) -> bool {
        self.status.is_settled()
    }
}

/// What one reading of the catalog says about `sessions`: their entries, plus
/// [`PipelineState::uploaded`] for sessions uploaded from here (`watched`: session → when its
/// upload finished) that the catalog does not know yet.
pub fn reading(
    items: &std::collections::HashMap<String, SessionItem>,
    watched: &BTreeMap<String, DateTime<Utc>>,
    now: DateTime<Utc>,
) -> BTreeMap<String, PipelineState> {
    let mut states: BTreeMap<String, PipelineState> = items
        .iter()
        .map(|(k, v)| (k.clone(), PipelineState::from_item(v, now)))
        .collect();
    for (s, at) in watched {
        states
            .entry(s.clone())
            .or_insert_with(|| PipelineState::uploaded(s, *at, now));
    }
    states
}

/// A desktop notification to raise.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub title: String,
    pub body: String,
}

/// Compares two catalog readings: the notices for sessions that settled, given the sessions
/// that were on their way (`watched`). Settled sessions leave `watched`; sessions that were
/// settled when first seen raise none.
pub fn settled_notices(
    before: &BTreeMap<String, PipelineState>,
    after: &BTreeMap<String, PipelineState>,
    watched: &mut BTreeMap<String, DateTime<Utc>>,
) -> Vec<Notice> {
    let mut notices = Vec::new();
    for (session, now) in after {
        let old = before.get(session);
        if old.map(|o| o.status) == Some(now.status) || !now.is_settled() {
            continue;
        }
        let was_moving = old.is_some_and(|o| !o.is_settled()) || watched.contains_key(session);
        watched.remove(session);
        if !was_moving {
            continue;
        }
        notices.push(match now.status {
            Status::Processed => Notice {
                title: format!("{session} is processed"),
                body: match now.pipeline_version {
                    Some(v) => format!("Pipeline v{v} outputs are ready to sync."),
                    None => "Its outputs are ready to sync.".into(),
                },
            },
            _ => Notice {
                title: format!("{session} failed in the pipeline"),
                body: format!(
                    "{}{}",
                    now.step
                        .as_deref()
                        .map(|s| format!("Step {s}: "))
                        .unwrap_or_default(),
                    now.message.as_deref().unwrap_or("see the Sessions view")
                ),
            },
        });
    }
    notices
}

/// The upload state of every session that has one, by session.
pub fn transfer_states(list: &[TransferView]) -> BTreeMap<String, TransferState> {
    list.iter().map(|t| (t.session.clone(), t.state)).collect()
}

/// Compares two transfer lists: notices for uploads that failed since, and the sessions whose
/// upload finished (to be watched through the pipeline).
///
/// `seen` starts as the queue loaded at start, so transfers that finished before a restart are
/// no news; a transfer missing from `seen` was queued in this run, and may have gone from queued
/// to done between two looks (a small session uploads in less than a tick).
pub fn transfer_changes(
    seen: &BTreeMap<String, TransferState>,
    now: &[TransferView],
) -> (Vec<Notice>, Vec<String>) {
    let mut notices = Vec::new();
    let mut finished = Vec::new();
    for t in now {
        if seen.get(&t.session) == Some(&t.state) {
            continue;
        }
        match t.state {
            TransferState::Failed => notices.push(Notice {
                title: format!("Upload of {} failed", t.session),
                body: t
                    .error
                    .as_ref()
                    .map(|e| e.message.clone())
                    .unwrap_or_else(|| "See the Transfers view.".into()),
            }),
            TransferState::Done => finished.push(t.session.clone()),
            _ => {}
        }
    }
    (notices, finished)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(status: Status) -> PipelineState {
        PipelineState {
            status,
            step: Some("preprocess".into()),
            message: (status == Status::Failed).then(|| "channel 3 is flat".to_string()),
            pipeline_version: (status == Status::Processed).then_some(1),
            stuck: None,
            manifest: None,
        }
    }

    fn map(rows: &[(&str, Status)]) -> BTreeMap<String, PipelineState> {
        rows.iter().map(|(k, v)| (k.to_string(), st(*v))).collect()
    }

    #[test]
    fn a_session_past_its_budget_reads_stuck_with_what_to_do() {
        use chrono::Duration;
        let now = Utc::now();
        let recorded = chrono::NaiveDate::from_ymd_opt(2021, 3, 1)
            .unwrap()
            .and_hms_opt(9, 0, 0)
            .unwrap();
        let item = |session: &str, status: Status, age_mins: i64| {
            let mut i = SessionItem::placeholder(
                session,
                recorded,
                status,
                now - Duration::minutes(age_mins),
            );
            i.status_message = Some("SQS: function throttled".into());
            (session.to_string(), i)
        };
        let items = [
            item("20210301_090000", Status::Cataloged, 3 * 60),
            item("20210301_100000", Status::Cataloged, 10),
            item("20210301_110000", Status::Processing, 26 * 60),
            item("20210301_120000", Status::Processed, 30 * 24 * 60),
        ]
        .into_iter()
        .collect();
        let states = reading(&items, &BTreeMap::new(), now);
        let stuck = states["20210301_090000"].stuck.as_deref().unwrap();
        for want in [
            "waited to be processed for 3 h",
            "a run takes at most 1 h 45 min",
            "the pipeline's last message: SQS: function throttled",
            "labpipe status 20210301_090000",
            "labpipe redrive",
        ] {
            assert!(stuck.contains(want), "{want:?} not in {stuck:?}");
        }
        assert!(states["20210301_110000"]
            .stuck
            .as_deref()
            .unwrap()
            .starts_with("processing has not finished for 26 h"));
        assert_eq!(states["20210301_100000"].stuck, None, "within its budget");
        assert_eq!(
            states["20210301_120000"].stuck, None,
            "settled sessions are never stuck"
        );
    }

    #[test]
    fn a_session_seen_moving_notifies_once_when_it_settles() {
        use Status::*;
        let mut watched = BTreeMap::new();
        let before = map(&[("a", Cataloged), ("b", Processing), ("c", Processed)]);
        let after = map(&[("a", Processed), ("b", Failed), ("c", Processed)]);
        let n = settled_notices(&before, &after, &mut watched);
        assert_eq!(n.len(), 2, "{n:?}");
        assert_eq!(n[0].title, "a is processed");
        assert!(n[0].body.contains("v1"));
        assert_eq!(n[1].title, "b failed in the pipeline");
        assert!(n[1].body.contains("preprocess") && n[1].body.contains("channel 3 is flat"));
        assert!(
            settled_notices(&after, &after, &mut watched).is_empty(),
            "the same reading again is no news"
        );
    }

    #[test]
    fn settled_at_first_sight_is_quiet_unless_uploaded_in_this_run() {
        let mut watched = BTreeMap::from([("new".to_string(), Utc::now())]);
        let after = map(&[("old", Status::Processed), ("new", Status::Processed)]);
        let n = settled_notices(&BTreeMap::new(), &after, &mut watched);
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].title, "new is processed");
        assert!(watched.is_empty(), "a settled session is no longer watched");
    }

    #[test]
    fn uploaded_is_the_catalogs_status_and_not_settled() {
        let u = PipelineState::uploaded("20210301_161221", Utc::now(), Utc::now());
        assert_eq!(u.status, Status::Uploaded);
        assert!(!u.is_settled());
        assert_eq!(serde_json::to_value(&u).unwrap()["status"], "UPLOADED");
        for (status, settled) in [
            (Status::Processed, true),
            (Status::Failed, true),
            (Status::Rejected, true),
            (Status::Processing, false),
            (Status::Cataloged, false),
        ] {
            assert_eq!(st(status).is_settled(), settled, "{status:?}");
        }
    }

    #[test]
    fn a_reading_fills_in_what_was_uploaded_but_not_cataloged() {
        let at = chrono::NaiveDate::from_ymd_opt(2021, 3, 1)
            .unwrap()
            .and_hms_opt(16, 12, 21)
            .unwrap();
        let item = SessionItem::placeholder(
            "20210301_161221",
            at,
            Status::Processing,
            chrono::Utc::now(),
        );
        let items = std::collections::HashMap::from([(item.session.clone(), item)]);
        let now = Utc::now();
        let watched = BTreeMap::from([
            ("20210301_161221".to_string(), now),
            ("20210302_000000".into(), now - chrono::Duration::minutes(5)),
            (
                "20210303_000000".into(),
                now - chrono::Duration::minutes(63),
            ),
        ]);
        let r = reading(&items, &watched, now);
        assert_eq!(r["20210301_161221"].status, Status::Processing);
        assert_eq!(r["20210302_000000"].status, Status::Uploaded);
        assert_eq!(r["20210302_000000"].stuck, None, "within ingest's tries");
        assert_eq!(r.len(), 3);
        // Past every delivery ingest gets, an upload the catalog does not know is stuck: its S3
        // event is in the ingest dead-letter queue, which only the operator reads.
        let lost = &r["20210303_000000"];
        assert_eq!(lost.status, Status::Uploaded);
        let why = lost.stuck.as_deref().expect("stuck");
        for want in [
            "uploaded 1 h 3 min ago",
            "ingest dead-letter queue",
            "labpipe status 20210303_000000",
            "labpipe redrive --queue ingest",
        ] {
            assert!(why.contains(want), "{want:?} not in {why:?}");
        }
    }

    fn transfer(session: &str, state: TransferState) -> TransferView {
        let mut t = TransferView::queued(session, "/lab/x");
        t.set_state(state);
        if state == TransferState::Failed {
            t.fail("network", "connection refused");
        }
        t
    }

    #[test]
    fn transfer_changes_report_failures_and_finished_uploads() {
        use TransferState::*;
        let seen = BTreeMap::from([
            ("a".to_string(), Running),
            ("b".to_string(), Running),
            ("c".to_string(), Failed),
        ]);
        let now = [
            transfer("a", Failed),
            transfer("b", Done),
            transfer("c", Failed),
            // Queued and finished between two looks.
            transfer("d", Done),
            transfer("e", Queued),
        ];
        let (notices, finished) = transfer_changes(&seen, &now);
        assert_eq!(notices.len(), 1, "{notices:?}");
        assert_eq!(notices[0].title, "Upload of a failed");
        assert_eq!(notices[0].body, "connection refused");
        assert_eq!(finished, vec!["b".to_string(), "d".to_string()]);
    }
}
