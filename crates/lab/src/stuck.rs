//! Why a session is stuck, for `labpipe status` and the desktop app.
//!
//! A session in `CATALOGED` or `PROCESSING` for longer than its step's budget
//! (`labpipe_catalog::stuck`) is stuck; the reason is a message for it in a dead-letter queue
//! (read only when something is stuck, and only where the caller may read the queues), else its
//! last error. A session the catalog does not know, whose S3 event sits in the ingest
//! dead-letter queue, is stuck too: ingest never cataloged it, and the event is the only trace of
//! its upload ([`DeadLetter::reason`] words both).
//!
//! The app runs as the uploader role, which reads no queue: it says why in [`without_queues`]'s
//! words (how long against the budget, the last error it knows, and the operator's commands that
//! find the dead-letter message and move the session on).

use std::collections::BTreeMap;

use labpipe_catalog::{Event, Level, SessionItem, Status, Stuck};
use labpipe_core::units::human_duration;
use labpipe_sqs::{DeadLetter, Queues};
use serde::Serialize;

use crate::stack::{PipelineQueue, QueueUrls};

/// A stuck session as shown: how long, against which budget, and why.
#[derive(Debug, Clone, Serialize)]
pub struct StuckView {
    #[serde(flatten)]
    pub stuck: Stuck,
    pub reason: String,
    /// The dead-letter message that names the session, if one does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dead_letter: Option<DeadLetterRef>,
}

impl StuckView {
    /// One line: status, how long against the budget, and why.
    pub fn line(&self) -> String {
        format!(
            "{} for {} (budget {}): {}",
            self.stuck.status,
            human_duration(self.stuck.for_secs),
            human_duration(self.stuck.budget_secs),
            self.reason
        )
    }
}

/// The dead-letter message that names a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeadLetterRef {
    /// `ingest` or `preprocess`.
    pub queue: &'static str,
    pub message_id: String,
    pub receive_count: Option<u64>,
}

/// The pipeline's two dead-letter queues, as `labpipe status` reads them.
const DEAD_LETTER_QUEUES: [(&str, PipelineQueue); 2] = [
    ("ingest", PipelineQueue::IngestDeadLetter),
    ("preprocess", PipelineQueue::PreprocessDeadLetter),
];

/// Every dead-letter message by queue name, and a note for each queue that could not be read.
#[derive(Debug, Clone, Default)]
pub struct DeadLetters {
    pub found: Vec<(&'static str, DeadLetter)>,
    pub notes: Vec<String>,
}

impl DeadLetters {
    /// Reads both dead-letter queues; one that is unknown or unreadable becomes a note.
    pub async fn read(queues: &Queues, urls: &QueueUrls) -> DeadLetters {
        let mut out = DeadLetters::default();
        for (name, q) in DEAD_LETTER_QUEUES {
            let Some(url) = urls.get(q) else {
                out.notes.push(format!(
                    "the {name} dead-letter queue is unknown (no {} output or {})",
                    q.output(),
                    q.var()
                ));
                continue;
            };
            match queues.list(url).await {
                Ok(messages) => out.found.extend(messages.into_iter().map(|m| (name, m))),
                Err(e) => out
                    .notes
                    .push(format!("the {name} dead-letter queue cannot be read: {e}")),
            }
        }
        out
    }

    /// The stuck view of each stuck item (by session): the dead-letter message that names it,
    /// else its last error, else what to check.
    pub fn explain(
        &self,
        stuck: &[(&SessionItem, Stuck, Option<&Event>)],
    ) -> BTreeMap<String, StuckView> {
        let mut out = BTreeMap::new();
        for (item, s, last_error) in stuck {
            let letter = self
                .found
                .iter()
                .find(|(_, m)| m.session.as_deref() == Some(item.session.as_str()));
            let (reason, dead_letter) = match letter {
                Some((queue, m)) => (m.reason(queue, true), Some(reference(queue, m))),
                None => {
                    let mut reason = match last_error {
                        Some(e) => format!(
                            "no dead-letter message names it; last error ({} at {}): {}",
                            e.step,
                            e.at.format("%Y-%m-%d %H:%M:%S"),
                            e.message
                        ),
                        None => "no dead-letter message names it and no error is recorded: check the preprocess function's errors and its queue's age alarm, then `labpipe reprocess` it".to_string(),
                    };
                    if !self.notes.is_empty() {
                        reason.push_str(&format!(" ({})", self.notes.join("; ")));
                    }
                    (reason, None)
                }
            };
            out.insert(
                item.session.clone(),
                StuckView {
                    stuck: s.clone(),
                    reason,
                    dead_letter,
                },
            );
        }
        out
    }

    /// A session the catalog does not know whose S3 event is in the ingest dead-letter queue:
    /// why, and the message.
    pub fn uncataloged(&self, session: &str) -> Option<(String, DeadLetterRef)> {
        let (queue, m) = self
            .found
            .iter()
            .find(|(q, m)| *q == "ingest" && m.session.as_deref() == Some(session))?;
        Some((m.reason(queue, false), reference(queue, m)))
    }
}

fn reference(queue: &'static str, m: &DeadLetter) -> DeadLetterRef {
    DeadLetterRef {
        queue,
        message_id: m.message_id.clone(),
        receive_count: m.receive_count,
    }
}

/// The stuck views of `stuck`, reading the dead-letter queues only when something is stuck.
pub async fn explain(
    queues: &Queues,
    urls: &QueueUrls,
    stuck: &[(&SessionItem, Stuck, Option<&Event>)],
) -> BTreeMap<String, StuckView> {
    if stuck.is_empty() {
        return BTreeMap::new();
    }
    DeadLetters::read(queues, urls).await.explain(stuck)
}

/// A stuck session in words a technician can pass on, for a reader that cannot see the
/// dead-letter queues (the app): how long, what it waits for, the last error — the latest of its
/// history when the caller read it (`last_error`, as [`latest_error`] finds it), else the
/// pipeline's last message on the item — and the operator's commands that move it on.
pub fn without_queues(item: &SessionItem, s: &Stuck, last_error: Option<&Event>) -> String {
    let waiting = match s.status {
        Status::Processing => "processing has not finished",
        _ => "it has waited to be processed",
    };
    let last = match (last_error, item.status_message.as_deref()) {
        (Some(e), _) => format!(
            "; the last error in its history ({} at {}): {}",
            e.step,
            e.at.format("%Y-%m-%d %H:%M UTC"),
            e.message
        ),
        (None, Some(m)) => format!("; the pipeline's last message: {m}"),
        (None, None) => String::new(),
    };
    format!(
        "{waiting} for {} since {} (a run takes at most {}, retries included){last}. \
         Tell the operator: \"labpipe status {}\" names a dead-letter message if there is one, \
         and \"labpipe redrive\" moves it on once the cause is fixed",
        human_duration(s.for_secs),
        s.since.format("%Y-%m-%d %H:%M UTC"),
        human_duration(s.budget_secs),
        item.session,
    )
}

/// A session's latest error event.
pub fn latest_error(events: &[Event]) -> Option<&Event> {
    events.iter().rev().find(|e| e.level == Level::Error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use labpipe_catalog::Status;

    fn item(session: &str) -> SessionItem {
        let at = chrono::NaiveDateTime::parse_from_str(session, "%Y%m%d_%H%M%S").unwrap();
        SessionItem::placeholder(session, at, Status::Processing, Utc::now())
    }

    fn letter(session: &str) -> DeadLetter {
        DeadLetter {
            message_id: format!("m-{session}"),
            session: Some(session.into()),
            sent_at_ms: None,
            receive_count: Some(5),
            body: String::new(),
        }
    }

    /// Each kind of reason: a dead-letter message for the session, else its last error, else
    /// what to check; the notes of unreadable queues follow a reason without a message.
    #[test]
    fn each_stuck_session_gets_the_reason_that_applies() {
        let stuck = Stuck {
            status: Status::Processing,
            since: Utc.with_ymd_and_hms(2021, 3, 1, 9, 0, 0).unwrap(),
            for_secs: 7200,
            budget_secs: 3600,
        };
        let error = Event {
            at: Utc.with_ymd_and_hms(2021, 3, 1, 9, 30, 0).unwrap(),
            seq: 1,
            status: None,
            from: None,
            step: "preprocess".into(),
            level: Level::Error,
            message: "out of memory".into(),
        };
        let (a, b, c) = (
            item("20210301_090000"),
            item("20210302_090000"),
            item("20210303_090000"),
        );
        let letters = DeadLetters {
            found: vec![("preprocess", letter("20210301_090000"))],
            notes: vec!["the ingest dead-letter queue cannot be read: denied".into()],
        };
        let views = letters.explain(&[
            (&a, stuck.clone(), Some(&error)),
            (&b, stuck.clone(), Some(&error)),
            (&c, stuck.clone(), None),
        ]);
        let a = &views["20210301_090000"];
        assert!(
            a.reason.starts_with(
                "a message for it is in the preprocess dead-letter queue (received 5 times)"
            ),
            "{}",
            a.reason
        );
        assert_eq!(
            a.dead_letter,
            Some(DeadLetterRef {
                queue: "preprocess",
                message_id: "m-20210301_090000".into(),
                receive_count: Some(5)
            })
        );
        assert_eq!(
            views["20210302_090000"].reason,
            "no dead-letter message names it; last error (preprocess at 2021-03-01 09:30:00): out of memory (the ingest dead-letter queue cannot be read: denied)"
        );
        let c = &views["20210303_090000"];
        assert!(
            c.reason
                .starts_with("no dead-letter message names it and no error is recorded")
                && c.dead_letter.is_none(),
            "{}",
            c.reason
        );
        assert_eq!(
            c.line(),
            format!("PROCESSING for 2 h (budget 1 h): {}", c.reason)
        );
        // Only an ingest message speaks for a session the catalog does not know.
        assert_eq!(letters.uncataloged("20210301_090000"), None);
        let ingest = DeadLetters {
            found: vec![("ingest", letter("20210304_090000"))],
            notes: Vec::new(),
        };
        let (reason, r) = ingest.uncataloged("20210304_090000").unwrap();
        assert!(
            reason
                .starts_with("not in the catalog: its S3 event is in the ingest dead-letter queue"),
            "{reason}"
        );
        assert_eq!(r.queue, "ingest");
    }
}
