//! Which sessions the lab PC asks the catalog about, and when: the schedule behind the app's
//! pipeline-status view.
//!
//! Reading every session of the lab folder on a fixed timer costs more every day the folder
//! grows (~3,650 sessions a year) although almost all of them will never change again. The rules
//! here make the cost follow what is *moving*, not what exists:
//!
//! - a **settled** session (`PROCESSED`, `FAILED`, `REJECTED`) is never read again on a timer;
//!   only an explicit refresh ([`StatusPolling::refresh_all`]) or a new upload of it asks again;
//! - every **unsettled** session (on its way through the pipeline, or not in the catalog yet) is
//!   read in one batch with the others that are due, with a backoff per session: the first
//!   reading [`FIRST_INTERVAL`] after an upload or a change, then twice as long each time nothing
//!   changed, up to [`MAX_INTERVAL`]. A session stuck for hours is read every few minutes, not
//!   every few seconds;
//! - a session that is not in the catalog and not uploaded from here backs off the same way
//!   (another PC or the CLI may upload it).
//!
//! The schedule is pure (time is passed in), so its request counts are measured by a test over a
//! simulated year of the lab (`tests` below), and `docs/cost/model.py` turns the counts into a
//! monthly cost for DESIGN.md.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::pipeline::PipelineState;

/// First reading after an upload, a change or a refresh.
pub const FIRST_INTERVAL: Duration = Duration::from_secs(3);
/// The longest wait between two readings of an unsettled session. Five minutes keeps a stuck or
/// slow session visible within minutes while costing ~300 readings a day at most per session.
pub const MAX_INTERVAL: Duration = Duration::from_secs(300);

#[derive(Debug, Clone)]
struct Schedule {
    /// When the session is due; `None` when settled (never read on a timer again).
    due: Option<Instant>,
    /// The wait after the next unchanged reading.
    backoff: Duration,
    /// What the last reading said; `None` when not in the catalog (or never read).
    last: Option<PipelineState>,
}

impl Schedule {
    fn fresh(now: Instant) -> Self {
        Schedule {
            due: Some(now),
            backoff: FIRST_INTERVAL,
            last: None,
        }
    }
}

/// The reading schedule of the sessions a lab PC cares about.
#[derive(Debug, Clone, Default)]
pub struct StatusPolling {
    sessions: BTreeMap<String, Schedule>,
    /// `(due, session)` of every unsettled session: what is due is read off its front, so a lab
    /// folder of thousands of settled sessions costs nothing per tick.
    queue: BTreeSet<(Instant, String)>,
}

impl StatusPolling {
    pub fn new() -> Self {
        Self::default()
    }

    fn set_due(&mut self, session: &str, due: Option<Instant>) {
        let Some(s) = self.sessions.get_mut(session) else {
            return;
        };
        if let Some(old) = s.due {
            self.queue.remove(&(old, session.to_string()));
        }
        s.due = due;
        if let Some(d) = due {
            self.queue.insert((d, session.to_string()));
        }
    }

    fn insert_fresh(&mut self, session: &str, now: Instant) {
        if !self.sessions.contains_key(session) {
            self.sessions
                .insert(session.to_string(), Schedule::fresh(now));
            self.queue.insert((now, session.to_string()));
        }
    }

    /// Keeps exactly `sessions` (the lab folder's valid sessions plus those uploaded from here
    /// in this run): new ones are due at once, ones no longer listed are forgotten.
    pub fn track<'a>(&mut self, sessions: impl IntoIterator<Item = &'a String>, now: Instant) {
        let wanted: BTreeSet<&String> = sessions.into_iter().collect();
        let gone: Vec<String> = self
            .sessions
            .keys()
            .filter(|s| !wanted.contains(s))
            .cloned()
            .collect();
        for s in gone {
            self.set_due(&s, None);
            self.sessions.remove(&s);
        }
        for s in wanted {
            self.insert_fresh(s, now);
        }
    }

    /// A session was just uploaded from here: read it soon and often until it settles, even if
    /// an earlier revision of it had settled.
    pub fn uploaded(&mut self, session: &str, now: Instant) {
        self.insert_fresh(session, now);
        self.set_due(session, Some(now + FIRST_INTERVAL));
        if let Some(s) = self.sessions.get_mut(session) {
            s.backoff = FIRST_INTERVAL;
        }
    }

    /// Someone asked (the Refresh button, a redrive): every session, settled or not, is read once
    /// more now.
    pub fn refresh_all(&mut self, now: Instant) {
        let all: Vec<String> = self.sessions.keys().cloned().collect();
        for s in all {
            self.set_due(&s, Some(now));
            if let Some(s) = self.sessions.get_mut(&s) {
                s.backoff = FIRST_INTERVAL;
            }
        }
    }

    /// The sessions to read now, in one batch.
    pub fn due(&self, now: Instant) -> Vec<String> {
        let mut due: Vec<String> = self
            .queue
            .iter()
            .take_while(|(d, _)| *d <= now)
            .map(|(_, s)| s.clone())
            .collect();
        due.sort();
        due
    }

    /// When the next reading is due, if any session is unsettled.
    pub fn next_due(&self) -> Option<Instant> {
        self.queue.first().map(|(d, _)| *d)
    }

    /// Whether `session` is followed at all (in the lab folder or uploaded from here).
    pub fn is_tracked(&self, session: &str) -> bool {
        self.sessions.contains_key(session)
    }

    /// Any session still on its way (the app shows a spinner and polls).
    pub fn is_busy(&self) -> bool {
        !self.queue.is_empty()
    }

    /// Records the answer to reading `asked`: `states` holds those the catalog (or this PC's own
    /// uploads) knows. Settled sessions leave the timer; changed ones start again at
    /// [`FIRST_INTERVAL`]; unchanged ones wait twice as long as last time, up to
    /// [`MAX_INTERVAL`].
    pub fn record(
        &mut self,
        asked: &[String],
        states: &BTreeMap<String, PipelineState>,
        now: Instant,
    ) {
        for session in asked {
            let Some(s) = self.sessions.get_mut(session) else {
                continue;
            };
            let state = states.get(session).cloned();
            let changed = s.last != state;
            let due = if state.as_ref().is_some_and(PipelineState::is_settled) {
                None
            } else {
                s.backoff = if changed {
                    FIRST_INTERVAL
                } else {
                    (s.backoff * 2).min(MAX_INTERVAL)
                };
                Some(now + s.backoff)
            };
            s.last = state;
            self.set_due(session, due);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use labpipe_catalog::Status;

    fn state(status: Status) -> PipelineState {
        PipelineState {
            status,
            step: None,
            message: None,
            pipeline_version: None,
            stuck: None,
            manifest: None,
        }
    }

    fn answer(pairs: &[(&str, Status)]) -> BTreeMap<String, PipelineState> {
        pairs
            .iter()
            .map(|(k, s)| (k.to_string(), state(*s)))
            .collect()
    }

    #[test]
    fn a_settled_session_is_never_read_again_until_someone_asks() {
        let t0 = Instant::now();
        let mut p = StatusPolling::new();
        let a = "20210301_161221".to_string();
        p.track([&a], t0);
        assert_eq!(p.due(t0), vec![a.clone()]);
        p.record(
            std::slice::from_ref(&a),
            &answer(&[(&a, Status::Processed)]),
            t0,
        );
        assert!(!p.is_busy());
        assert_eq!(p.next_due(), None);
        assert!(p.due(t0 + Duration::from_secs(86_400 * 365)).is_empty());
        p.refresh_all(t0 + Duration::from_secs(10));
        assert_eq!(p.due(t0 + Duration::from_secs(10)), vec![a.clone()]);
        // A new upload of it (a revision) puts it back on the timer.
        p.record(
            std::slice::from_ref(&a),
            &answer(&[(&a, Status::Processed)]),
            t0,
        );
        p.uploaded(&a, t0 + Duration::from_secs(20));
        assert_eq!(p.next_due(), Some(t0 + Duration::from_secs(23)));
    }

    #[test]
    fn an_unchanged_session_backs_off_to_the_cap_and_a_change_resets_it() {
        let t0 = Instant::now();
        let mut p = StatusPolling::new();
        let a = "20210301_161221".to_string();
        p.track([&a], t0);
        let mut now = t0;
        let mut waits = Vec::new();
        p.record(
            std::slice::from_ref(&a),
            &answer(&[(&a, Status::Processing)]),
            now,
        );
        for _ in 0..10 {
            let next = p.next_due().unwrap();
            waits.push((next - now).as_secs());
            now = next;
            assert_eq!(p.due(now), vec![a.clone()]);
            p.record(
                std::slice::from_ref(&a),
                &answer(&[(&a, Status::Processing)]),
                now,
            );
        }
        assert_eq!(waits, vec![3, 6, 12, 24, 48, 96, 192, 300, 300, 300]);
        p.record(
            std::slice::from_ref(&a),
            &answer(&[(&a, Status::Cataloged)]),
            now,
        );
        assert_eq!(p.next_due(), Some(now + FIRST_INTERVAL));
    }

    #[test]
    fn sessions_that_leave_the_lab_folder_are_forgotten_and_due_ones_share_a_batch() {
        let t0 = Instant::now();
        let mut p = StatusPolling::new();
        let (a, b, c) = ("a".to_string(), "b".to_string(), "c".to_string());
        p.track([&a, &b, &c], t0);
        assert_eq!(p.due(t0), vec![a.clone(), b.clone(), c.clone()]);
        p.track([&a, &c], t0);
        assert_eq!(p.due(t0), vec![a, c]);
    }

    /// Simulates `days` of a lab that records `per_day` sessions, uploads each at once and sees
    /// it cataloged after `catalog_after` and processed after `process_after`; every session
    /// stays in the lab folder (no cleaning), the worst case. Returns (BatchGetItem requests,
    /// items read) over the last 30 days.
    fn simulate(days: u64, per_day: u64) -> (u64, u64) {
        let catalog_after = Duration::from_secs(60);
        let process_after = Duration::from_secs(600);
        let t0 = Instant::now();
        let mut p = StatusPolling::new();
        let mut uploads: Vec<(String, Instant)> = Vec::new();
        let (mut requests, mut items) = (0u64, 0u64);
        let step = Duration::from_secs(1);
        let end = t0 + Duration::from_secs(days * 86_400);
        let count_from = end - Duration::from_secs(30 * 86_400);
        let gap = Duration::from_secs(86_400 / per_day);
        let mut next_session = t0;
        let mut now = t0;
        let mut n = 0u64;
        while now < end {
            if now >= next_session {
                let s = format!("s{n:06}");
                n += 1;
                p.uploaded(&s, now);
                uploads.push((s, now));
                next_session += gap;
            }
            // Jump straight to the next thing that can happen.
            let due = p.due(now);
            if !due.is_empty() {
                let answer: BTreeMap<String, PipelineState> = due
                    .iter()
                    .filter_map(|s| {
                        let at = uploads.iter().rev().find(|(u, _)| u == s)?.1;
                        let age = now - at;
                        let status = if age >= process_after {
                            Status::Processed
                        } else if age >= catalog_after {
                            Status::Cataloged
                        } else {
                            Status::Uploaded
                        };
                        Some((s.clone(), state(status)))
                    })
                    .collect();
                if now >= count_from {
                    requests += due.len().div_ceil(100) as u64;
                    items += due.len() as u64;
                }
                p.record(&due, &answer, now);
            }
            uploads.retain(|(_, at)| now - *at < process_after + step);
            let next = p.next_due().unwrap_or(end).min(next_session);
            now = next.max(now + step);
        }
        (requests, items)
    }

    /// The request counts that `docs/cost/measured.json` (`status_polling`) holds and
    /// `docs/cost/model.py` prices: they must not grow with the age of the lab folder.
    #[test]
    fn catalog_reads_per_month_do_not_grow_with_the_lab_folder() {
        let (req_1y, items_1y) = simulate(365, 10);
        let (req_5y, items_5y) = simulate(5 * 365, 10);
        eprintln!("status polling, last 30 days: after 1 year {req_1y} requests / {items_1y} items, after 5 years {req_5y} / {items_5y}");
        assert_eq!(req_1y, req_5y);
        assert_eq!(items_1y, items_5y);
        // 300 sessions a month, each read about a dozen times on its ~10 minutes through the pipeline.
        assert!((300 * 3..=300 * 16).contains(&items_1y), "{items_1y}");
        let measured: serde_json::Value =
            serde_json::from_str(include_str!("../../../docs/cost/measured.json")).unwrap();
        let polling = &measured["status_polling"];
        assert_eq!(
            polling["batch_get_item_requests_per_month"].as_u64(),
            Some(req_1y),
            "docs/cost/measured.json is out of date: set status_polling to these counts"
        );
        assert_eq!(polling["items_read_per_month"].as_u64(), Some(items_1y));
    }
}
