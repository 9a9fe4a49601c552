//! Bulk import of complete session records: demo catalogs, benchmarks, migrations between
//! tables.
//!
//! The pipeline builds a session's entry one status change at a time, each a conditional
//! transaction (`store.rs`): several round trips per session, which is right for ten new sessions
//! a day and far too slow for filling a table with thousands of finished ones (10,000 sessions
//! took more than nine minutes against the local emulator). An import writes records that are
//! already complete — the `META` item with its final status, its history, its outputs — with
//! `BatchWriteItem`: 25 items per request, a few requests in flight, unprocessed items sent again
//! with backoff.
//!
//! **Never for the pipeline.** Batch writes carry no conditions: an import does not follow the
//! status machine, does not guard against concurrent writers and replaces any item with the same
//! key. What it checks instead is that each record is consistent in itself (its history ends in
//! its status, its event count covers its history, its pipeline version names one of its
//! outputs), so an imported session reads back exactly like one the pipeline wrote, and the
//! status machine can take over from there.
//!
//! Items are encoded by the same code as every other write (`item.rs`).

use std::collections::HashSet;
use std::time::Duration;

use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

use crate::error::{service, CatalogError};
use crate::item::{Event, Item, OutputRecord, SessionItem};
use crate::store::Catalog;

/// Most items one `BatchWriteItem` request may carry (a DynamoDB limit).
const ITEMS_PER_REQUEST: usize = 25;
/// Requests in flight at once: enough to hide the round trip, few enough not to run into an
/// on-demand table's initial throughput or to swamp the local emulator.
const REQUESTS_IN_FLIGHT: usize = 4;
/// Requests for one batch (the first and its retries of unprocessed items) before giving up.
const ATTEMPTS_PER_BATCH: u32 = 10;
/// Wait before the first resend of unprocessed items; doubles on each further one.
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Everything about one session, as [`Catalog::import_sessions`] writes it and
/// [`Catalog::read_record`] reads it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// The `META` item, with the session's final status and `event_count`.
    pub item: SessionItem,
    /// The session's history, in any order.
    pub events: Vec<Event>,
    /// Processed outputs, one per pipeline version.
    pub outputs: Vec<OutputRecord>,
}

/// What [`Catalog::import_sessions`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportSummary {
    pub sessions: usize,
    /// Items written: session, history and output items.
    pub items: usize,
    /// `BatchWriteItem` requests sent, resends of unprocessed items included.
    pub requests: usize,
    /// Items DynamoDB returned unprocessed (throttled) and that were sent again.
    pub resent_items: usize,
}

impl SessionRecord {
    /// Why the record cannot be imported as it is, if it cannot.
    fn inconsistency(&self) -> Option<String> {
        let item = &self.item;
        if item.session.is_empty() {
            return Some("the session id is empty".into());
        }
        let month = item.recorded_at.format("%Y-%m").to_string();
        if item.month != month {
            return Some(format!(
                "month is '{}' but recorded_at is in {month}, so date filters would miss it",
                item.month
            ));
        }
        let mut keys = HashSet::new();
        for event in &self.events {
            if !keys.insert(event.sort_key()) {
                return Some(format!(
                    "two events have the same time and seq ({}); one would replace the other",
                    event.sort_key()
                ));
            }
        }
        if let Some(max_seq) = self.events.iter().map(|e| e.seq).max() {
            if item.event_count < max_seq {
                return Some(format!(
                    "event_count is {} but an event has seq {max_seq}; event_count must count the whole history",
                    item.event_count
                ));
            }
        }
        let last_status = self
            .events
            .iter()
            .filter(|e| e.status.is_some())
            .max_by_key(|e| e.sort_key())
            .and_then(|e| e.status);
        if let Some(last) = last_status.filter(|last| *last != item.status) {
            return Some(format!(
                "the history ends in {last} but the status is {}",
                item.status
            ));
        }
        let mut versions = HashSet::new();
        for output in &self.outputs {
            if !versions.insert((output.version, output.revision)) {
                return Some(format!(
                    "two output records for pipeline version {} of revision {}",
                    output.version, output.revision
                ));
            }
        }
        // `pipeline_version` names the current revision's latest outputs; an earlier revision's
        // stay beside them.
        let current = item.current_revision();
        let versions: HashSet<u32> = versions
            .into_iter()
            .filter(|(_, r)| *r == current)
            .map(|(v, _)| v)
            .collect();
        match item.pipeline_version {
            None if !versions.is_empty() => {
                Some("outputs are recorded but pipeline_version is not set".into())
            }
            Some(v) if !versions.contains(&v) => Some(format!(
                "pipeline_version is {v} but there is no output record for it"
            )),
            _ => None,
        }
    }
}

impl Catalog {
    /// Writes complete session records with batch writes, replacing items with the same keys.
    ///
    /// For importing or seeding finished sessions (demo catalogs, benchmarks, migrations between
    /// tables) only: it bypasses the status machine and every condition the pipeline's writes
    /// carry, so the pipeline must never use it. Every record is checked for consistency before
    /// anything is written ([`CatalogError::InvalidRecord`]). History and output items are
    /// written before any session item, so a session appears in listings and indexes only with
    /// everything about it in place. Not atomic: after a failure, run the same import again (it
    /// writes the same items).
    pub async fn import_sessions(
        &self,
        records: &[SessionRecord],
    ) -> Result<ImportSummary, CatalogError> {
        let mut sessions = HashSet::new();
        for record in records {
            let session = &record.item.session;
            let reason = record.inconsistency().or_else(|| {
                (!sessions.insert(session.as_str()))
                    .then(|| "the session appears more than once in the import".to_string())
            });
            if let Some(reason) = reason {
                return Err(CatalogError::InvalidRecord {
                    session: session.clone(),
                    reason,
                });
            }
        }
        let details = records.iter().flat_map(|r| {
            let session = r.item.session.as_str();
            r.events
                .iter()
                .map(move |e| e.to_item(session))
                .chain(r.outputs.iter().map(move |o| o.to_item(session)))
        });
        let mut summary = ImportSummary {
            sessions: records.len(),
            ..ImportSummary::default()
        };
        self.put_in_batches(details.collect(), &mut summary).await?;
        let session_items = records.iter().map(|r| r.item.to_item()).collect();
        self.put_in_batches(session_items, &mut summary).await?;
        Ok(summary)
    }

    /// Everything the catalog holds about one session (for exports and migrations); `None` when
    /// it is not cataloged.
    pub async fn read_record(&self, session: &str) -> Result<Option<SessionRecord>, CatalogError> {
        let Some(item) = self.get(session).await? else {
            return Ok(None);
        };
        Ok(Some(SessionRecord {
            item,
            events: self.events(session).await?,
            outputs: self.all_outputs(session).await?,
        }))
    }

    async fn put_in_batches(
        &self,
        items: Vec<Item>,
        summary: &mut ImportSummary,
    ) -> Result<(), CatalogError> {
        summary.items += items.len();
        let mut batches = Vec::new();
        let mut batch = Vec::with_capacity(ITEMS_PER_REQUEST);
        for item in items {
            let put = PutRequest::builder()
                .set_item(Some(item))
                .build()
                .expect("the item is set");
            batch.push(WriteRequest::builder().put_request(put).build());
            if batch.len() == ITEMS_PER_REQUEST {
                batches.push(std::mem::replace(
                    &mut batch,
                    Vec::with_capacity(ITEMS_PER_REQUEST),
                ));
            }
        }
        if !batch.is_empty() {
            batches.push(batch);
        }
        let mut waiting = batches.into_iter();
        let mut in_flight = JoinSet::new();
        loop {
            while in_flight.len() < REQUESTS_IN_FLIGHT {
                let Some(batch) = waiting.next() else { break };
                let catalog = self.clone();
                in_flight.spawn(async move { catalog.write_batch(batch).await });
            }
            let Some(done) = in_flight.join_next().await else {
                return Ok(());
            };
            let (requests, resent) = match done {
                Ok(result) => result?,
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(e) => {
                    return Err(CatalogError::Service {
                        operation: "BatchWriteItem",
                        table: self.table().to_string(),
                        message: format!("the write was cancelled: {e}"),
                        retryable: true,
                        code: None,
                    })
                }
            };
            summary.requests += requests;
            summary.resent_items += resent;
        }
    }

    /// Writes one batch, sending unprocessed items again with backoff. Returns the requests sent
    /// and the items resent.
    async fn write_batch(
        &self,
        mut batch: Vec<WriteRequest>,
    ) -> Result<(usize, usize), CatalogError> {
        let mut resent = 0;
        for attempt in 0..ATTEMPTS_PER_BATCH {
            if attempt > 0 {
                tokio::time::sleep(backoff(attempt)).await;
                resent += batch.len();
            }
            let out = self
                .client()
                .batch_write_item()
                .request_items(self.table(), batch)
                .send()
                .await
                .map_err(|e| service("BatchWriteItem", self.table(), e))?;
            batch = out
                .unprocessed_items
                .and_then(|mut by_table| by_table.remove(self.table()))
                .unwrap_or_default();
            if batch.is_empty() {
                return Ok((attempt as usize + 1, resent));
            }
        }
        Err(CatalogError::Service {
            operation: "BatchWriteItem",
            table: self.table().to_string(),
            message: format!(
                "{} items were still unprocessed (throttled) after {ATTEMPTS_PER_BATCH} requests; run the import again, it rewrites the same items",
                batch.len()
            ),
            retryable: true,
            code: None,
        })
    }
}

/// How long to wait before resend `attempt` (1, 2, …): doubling from [`FIRST_BACKOFF`] up to
/// [`MAX_BACKOFF`].
fn backoff(attempt: u32) -> Duration {
    FIRST_BACKOFF
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
        .min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::item::Level;
    use crate::status::Status;
    use chrono::{DateTime, NaiveDateTime, Utc};

    fn at(t: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc)
    }

    fn event(seq: u64, at_time: &str, status: Option<Status>) -> Event {
        Event {
            at: at(at_time),
            seq,
            status,
            from: None,
            step: "preprocess".into(),
            level: Level::Info,
            message: "m".into(),
        }
    }

    fn output(version: u32) -> OutputRecord {
        OutputRecord {
            version,
            revision: 1,
            bucket: "processed".into(),
            prefix: labpipe_core::layout::processed_prefix(version, "20210301_161221", 1),
            files: Vec::new(),
            created_at: at("2021-03-01T18:00:00Z"),
        }
    }

    fn processed() -> SessionRecord {
        let recorded =
            NaiveDateTime::parse_from_str("2021-03-01T16:12:21", "%Y-%m-%dT%H:%M:%S").unwrap();
        let mut item = SessionItem::placeholder(
            "20210301_161221",
            recorded,
            Status::Processed,
            at("2021-03-01T18:00:01Z"),
        );
        item.event_count = 3;
        item.pipeline_version = Some(1);
        SessionRecord {
            item,
            events: vec![
                event(1, "2021-03-01T17:00:00Z", Some(Status::Cataloged)),
                event(3, "2021-03-01T18:00:01Z", Some(Status::Processed)),
                event(2, "2021-03-01T17:00:05Z", Some(Status::Processing)),
            ],
            outputs: vec![output(1)],
        }
    }

    #[test]
    fn consistent_records_pass_in_any_event_order() {
        assert_eq!(processed().inconsistency(), None);
    }

    #[test]
    fn inconsistent_records_say_what_is_wrong() {
        type Break = fn(&mut SessionRecord);
        let cases: [(&str, Break); 7] = [
            (
                "history ends in PROCESSING but the status is PROCESSED",
                |r| r.events.retain(|e| e.seq != 3),
            ),
            ("event_count is 2 but an event has seq 3", |r| {
                r.item.event_count = 2
            }),
            ("same time and seq", |r| {
                let copy = r.events[0].clone();
                r.events.push(copy)
            }),
            ("month is '2021-04'", |r| r.item.month = "2021-04".into()),
            ("no output record for it", |r| {
                r.item.pipeline_version = Some(2)
            }),
            ("pipeline_version is not set", |r| {
                r.item.pipeline_version = None
            }),
            (
                "two output records for pipeline version 1 of revision 1",
                |r| r.outputs.push(output(1)),
            ),
        ];
        for (want, break_it) in cases {
            let mut record = processed();
            break_it(&mut record);
            let reason = record.inconsistency().unwrap_or_default();
            assert!(reason.contains(want), "want '{want}', got '{reason}'");
        }
    }

    #[test]
    fn backoff_doubles_up_to_a_cap() {
        let waits: Vec<_> = (1..=9).map(|a| backoff(a).as_millis()).collect();
        assert_eq!(waits, [50, 100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }
}
