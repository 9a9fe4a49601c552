//! The writes of the catalog. Each status change is one optimistic read-check-write cycle: read
//! the session, decide, write the decision conditional on what was read
//! ([`Catalog::write_with_event`]). A cycle that lost a race (the session changed in between)
//! reads again, through [`retry_lost_races`], the one place that bounds the attempts.

use std::future::Future;

use aws_sdk_dynamodb::types::{Put, ReturnValue, TransactWriteItem, Update};
use chrono::{NaiveDateTime, Utc};

use crate::error::{error_code, service, CatalogError};
use crate::item::{
    format_utc, get_n, n, s, session_pk, Event, Level, OutputRecord, SessionItem, META_SK,
};
use crate::status::Status;
use crate::store::Catalog;
use crate::transaction::{is_condition_failure, put_op};

/// Attempts of a read-check-write cycle before giving up with [`CatalogError::Contention`].
pub(crate) const ATTEMPTS: u32 = 5;

/// What [`Catalog::put_new_session`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum PutOutcome {
    /// The entry was written now.
    Created(SessionItem),
    /// The same manifest was cataloged before (a duplicate event): nothing was written.
    AlreadyCataloged(SessionItem),
}

/// Runs one read-check-write cycle of `session` until it is decided. `attempt` reads, decides and
/// writes conditionally: `Some` when it is done (written, or nothing to write), `None` when its
/// write lost a race, and then it runs again, at most [`ATTEMPTS`] times in all before
/// [`CatalogError::Contention`] (retryable: the caller's own retry starts a fresh cycle). An
/// error ends the cycle at once.
pub(crate) async fn retry_lost_races<T, Fut>(
    session: &str,
    mut attempt: impl FnMut() -> Fut,
) -> Result<T, CatalogError>
where
    Fut: Future<Output = Result<Option<T>, CatalogError>>,
{
    for _ in 0..ATTEMPTS {
        // Boxed, one allocation per attempt: an attempt's future nests the SDK's, and unboxed
        // the handlers that await a cycle are deeper than rustc lays out by default.
        if let Some(done) = Box::pin(attempt()).await? {
            return Ok(done);
        }
    }
    Err(CatalogError::Contention {
        session: session.to_string(),
        attempts: ATTEMPTS,
    })
}

/// The history item of a change that leaves the session as `entry` (its status, step, message,
/// time and event count), coming `from` a status (`None`: the session's first entry).
fn change_event(entry: &SessionItem, from: Option<Status>) -> Event {
    Event {
        at: entry.updated_at,
        seq: entry.event_count,
        status: Some(entry.status),
        from,
        step: entry.status_step.clone().unwrap_or_default(),
        level: if entry.status == Status::Failed {
            Level::Error
        } else {
            Level::Info
        },
        message: entry.status_message.clone().unwrap_or_default(),
    }
}

impl Catalog {
    /// Writes the entry of a newly verified session, unless it exists.
    ///
    /// An entry with the same `manifest_sha256` is a duplicate delivery:
    /// [`PutOutcome::AlreadyCataloged`], nothing written. An entry from a different manifest is a
    /// [`CatalogError::Conflict`] and is left as it is. An entry without a manifest (a placeholder
    /// written to record a failure before the session could be cataloged, or by the lab side) is
    /// replaced, keeping its history.
    ///
    /// An entry over DynamoDB's item size is [`CatalogError::TooLarge`] (permanent, naming the
    /// largest values) before anything is sent: the caller records the failure on a bare entry.
    pub async fn put_new_session(&self, new: &SessionItem) -> Result<PutOutcome, CatalogError> {
        new.check_size()?;
        retry_lost_races(&new.session, move || self.try_put_new_session(new)).await
    }

    async fn try_put_new_session(
        &self,
        new: &SessionItem,
    ) -> Result<Option<PutOutcome>, CatalogError> {
        let incoming = new.manifest_sha256.clone().unwrap_or_default();
        let existing = self.get(&new.session).await?;
        let (from, old_count) = match &existing {
            Some(e) => match &e.manifest_sha256 {
                Some(sha) if *sha == incoming => {
                    return Ok(Some(PutOutcome::AlreadyCataloged(e.clone())))
                }
                Some(sha) => {
                    return Err(CatalogError::Conflict {
                        session: new.session.clone(),
                        existing: sha.clone(),
                        incoming,
                    })
                }
                None => (Some(e.status), e.event_count),
            },
            None => (None, 0),
        };
        let mut item = new.clone();
        item.event_count = old_count + 1;
        let event = change_event(&item, from);
        let mut put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item.to_item()));
        put = if existing.is_some() {
            put.condition_expression("attribute_not_exists(manifest_sha256) AND event_count = :old")
                .expression_attribute_values(":old", n(old_count))
        } else {
            put.condition_expression("attribute_not_exists(pk)")
        };
        let written = self
            .write_with_event(put_op(put), &new.session, &event)
            .await?;
        Ok(written.then_some(PutOutcome::Created(item)))
    }

    /// Makes a verified correction the session's current entry. The revision's manifest, raw
    /// prefix, metadata and counts replace the earlier revision's; the history and the outputs
    /// records stay; the status is `CATALOGED` again, so preprocessing runs on the new files.
    /// Only a higher revision replaces an entry: the same manifest again is
    /// [`PutOutcome::AlreadyCataloged`], another manifest of the same or a lower revision a
    /// [`CatalogError::Conflict`]. A session not cataloged yet is written as new.
    pub async fn put_revision(&self, new: &SessionItem) -> Result<PutOutcome, CatalogError> {
        new.check_size()?;
        retry_lost_races(&new.session, move || self.try_put_revision(new)).await
    }

    async fn try_put_revision(
        &self,
        new: &SessionItem,
    ) -> Result<Option<PutOutcome>, CatalogError> {
        let incoming = new.manifest_sha256.clone().unwrap_or_default();
        let revision = new.revision.unwrap_or(1);
        let existing = self.get(&new.session).await?;
        let Some((existing, current_sha)) =
            existing.and_then(|e| e.manifest_sha256.clone().map(|sha| (e, sha)))
        else {
            // Not cataloged, or only a placeholder: the revision is the session's first entry.
            return self.put_new_session(new).await.map(Some);
        };
        if current_sha == incoming {
            return Ok(Some(PutOutcome::AlreadyCataloged(existing)));
        }
        if existing.revision.unwrap_or(1) >= revision {
            return Err(CatalogError::Conflict {
                session: new.session.clone(),
                existing: current_sha,
                incoming,
            });
        }
        let mut item = new.clone();
        item.event_count = existing.event_count + 1;
        item.status_message = Some(format!(
            "revision {revision} ({}): {}",
            new.revision_reason.as_deref().unwrap_or("no reason given"),
            new.status_message.as_deref().unwrap_or_default()
        ));
        let event = change_event(&item, Some(existing.status));
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item.to_item()))
            .condition_expression("manifest_sha256 = :prev AND event_count = :old")
            .expression_attribute_values(":prev", s(&current_sha))
            .expression_attribute_values(":old", n(existing.event_count));
        let written = self
            .write_with_event(put_op(put), &new.session, &event)
            .await?;
        Ok(written.then_some(PutOutcome::Created(item)))
    }

    /// Moves a session to `to`, recording why in its history. Reads the current status and
    /// retries when another writer got in between.
    pub async fn transition(
        &self,
        session: &str,
        to: Status,
        step: &str,
        message: &str,
    ) -> Result<SessionItem, CatalogError> {
        retry_lost_races(session, move || async move {
            let current = self.require(session).await?;
            self.try_transition(&current, to, step, message).await
        })
        .await
    }

    /// Moves a session to `to` only if it is still exactly as `current` shows it (same status,
    /// same event count): the caller decided on `current`, and a change since then means its
    /// decision may be wrong. Fails with [`CatalogError::Contention`] (retryable) if it changed.
    pub async fn transition_from(
        &self,
        current: &SessionItem,
        to: Status,
        step: &str,
        message: &str,
    ) -> Result<SessionItem, CatalogError> {
        self.try_transition(current, to, step, message)
            .await?
            .ok_or_else(|| CatalogError::Contention {
                session: current.session.clone(),
                attempts: 1,
            })
    }

    /// One attempt of a status change from `current`: `None` when the session changed since.
    async fn try_transition(
        &self,
        current: &SessionItem,
        to: Status,
        step: &str,
        message: &str,
    ) -> Result<Option<SessionItem>, CatalogError> {
        if !to.can_follow(current.status) {
            return Err(CatalogError::InvalidTransition {
                session: current.session.clone(),
                from: current.status,
                to,
            });
        }
        let mut next = current.clone();
        next.status = to;
        next.status_step = Some(step.to_string());
        next.status_message = Some(message.to_string());
        next.updated_at = Utc::now();
        next.event_count = current.event_count + 1;
        let update = Update::builder()
            .table_name(&self.table)
            .key("pk", s(session_pk(&current.session)))
            .key("sk", s(META_SK))
            .update_expression(
                "SET #st = :to, status_step = :step, status_message = :msg, updated_at = :now, event_count = :seq",
            )
            .condition_expression(
                "#st = :from AND (event_count = :old OR (attribute_not_exists(event_count) AND :old = :zero))",
            )
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":to", s(to.as_str()))
            .expression_attribute_values(":step", s(step))
            .expression_attribute_values(":msg", s(message))
            .expression_attribute_values(":now", s(format_utc(next.updated_at)))
            .expression_attribute_values(":seq", n(next.event_count))
            .expression_attribute_values(":from", s(current.status.as_str()))
            .expression_attribute_values(":old", n(current.event_count))
            .expression_attribute_values(":zero", n(0))
            .build()
            .expect("table, key and update expression are set");
        let event = change_event(&next, Some(current.status));
        let op = TransactWriteItem::builder().update(update).build();
        let written = self.write_with_event(op, &current.session, &event).await?;
        Ok(written.then_some(next))
    }

    /// Marks a session `FAILED` at `step`. A session not yet in the catalog gets a placeholder
    /// entry (from its id's recording time) so the failure is visible where people look.
    pub async fn record_failure(
        &self,
        session: &str,
        recorded_at: NaiveDateTime,
        step: &str,
        message: &str,
    ) -> Result<SessionItem, CatalogError> {
        retry_lost_races(session, move || async move {
            if let Some(current) = self.get(session).await? {
                return self
                    .try_transition(&current, Status::Failed, step, message)
                    .await;
            }
            let mut item =
                SessionItem::placeholder(session, recorded_at, Status::Failed, Utc::now());
            item.status_step = Some(step.to_string());
            item.status_message = Some(message.to_string());
            item.event_count = 1;
            let event = change_event(&item, None);
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(item.to_item()))
                .condition_expression("attribute_not_exists(pk)");
            let written = self.write_with_event(put_op(put), session, &event).await?;
            Ok(written.then_some(item))
        })
        .await
    }

    /// Adds a note to a cataloged session's history without changing its status (e.g. a
    /// transient failure that will be retried). Returns `false` when the session is not in the
    /// catalog, in which case nothing is written.
    pub async fn append_event(
        &self,
        session: &str,
        step: &str,
        level: Level,
        message: &str,
    ) -> Result<bool, CatalogError> {
        let out = self
            .db
            .update_item()
            .table_name(&self.table)
            .key("pk", s(session_pk(session)))
            .key("sk", s(META_SK))
            .update_expression("ADD event_count :one")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await;
        let seq: u64 = match out {
            Ok(out) => out
                .attributes()
                .and_then(|a| get_n(a, "event_count"))
                .unwrap_or(0),
            Err(e) if error_code(&e) == Some("ConditionalCheckFailedException") => {
                return Ok(false)
            }
            Err(e) => return Err(service("UpdateItem", &self.table, e)),
        };
        let event = Event {
            at: Utc::now(),
            seq,
            status: None,
            from: None,
            step: step.to_string(),
            level,
            message: message.to_string(),
        };
        self.db
            .put_item()
            .table_name(&self.table)
            .set_item(Some(event.to_item(session)))
            .send()
            .await
            .map_err(|e| service("PutItem", &self.table, e))?;
        Ok(true)
    }

    /// Records the outputs of pipeline `record.version` and makes it the session's current
    /// version. Writing the same version again replaces the record (a re-run writes the same
    /// keys).
    pub async fn record_outputs(
        &self,
        session: &str,
        record: &OutputRecord,
    ) -> Result<(), CatalogError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(record.to_item(session)))
            .build()
            .expect("table and item are set");
        let update = Update::builder()
            .table_name(&self.table)
            .key("pk", s(session_pk(session)))
            .key("sk", s(META_SK))
            .update_expression("SET pipeline_version = :v")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":v", n(record.version))
            .build()
            .expect("table, key and update expression are set");
        let result = self
            .db
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(put).build())
            .transact_items(TransactWriteItem::builder().update(update).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failure(&e) => Err(CatalogError::NotFound {
                session: session.to_string(),
                table: self.table.clone(),
            }),
            Err(e) => Err(service("TransactWriteItems", &self.table, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// Runs `retry_lost_races` over attempts that answer `outcomes` in turn; how many ran.
    async fn run(
        outcomes: Vec<Result<Option<&'static str>, CatalogError>>,
    ) -> (Result<&'static str, CatalogError>, usize) {
        let calls = Cell::new(0);
        let mut left = outcomes.into_iter();
        let result = retry_lost_races("20210301_090000", || {
            calls.set(calls.get() + 1);
            let next = left.next().expect("asked for an attempt after the last");
            async move { next }
        })
        .await;
        (result, calls.get())
    }

    #[tokio::test]
    async fn a_lost_race_is_tried_again_until_an_attempt_is_decided() {
        let (result, calls) = run(vec![Ok(None), Ok(None), Ok(Some("written"))]).await;
        assert_eq!((result.unwrap(), calls), ("written", 3));
    }

    #[tokio::test]
    async fn races_lost_every_time_end_in_contention_after_the_bound() {
        let (result, calls) = run((0..ATTEMPTS).map(|_| Ok(None)).collect()).await;
        assert_eq!(calls, ATTEMPTS as usize);
        match result {
            Err(e @ CatalogError::Contention { .. }) => {
                assert!(e.is_retryable(), "contention is retryable: {e}");
                assert!(
                    matches!(e, CatalogError::Contention { ref session, attempts }
                        if session == "20210301_090000" && attempts == ATTEMPTS),
                    "{e:?}"
                );
            }
            other => panic!("expected contention, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn an_error_ends_the_cycle_without_another_attempt() {
        let conflict = CatalogError::Conflict {
            session: "20210301_090000".into(),
            existing: "aa".into(),
            incoming: "bb".into(),
        };
        let (result, calls) = run(vec![Ok(None), Err(conflict), Ok(Some("never"))]).await;
        assert!(matches!(result, Err(CatalogError::Conflict { .. })));
        assert_eq!(calls, 2);
    }

    #[test]
    fn a_change_event_carries_the_entry_it_leaves() {
        let at = chrono::NaiveDate::from_ymd_opt(2021, 3, 1)
            .unwrap()
            .and_hms_opt(9, 0, 0)
            .unwrap();
        let mut entry = SessionItem::placeholder("20210301_090000", at, Status::Failed, Utc::now());
        entry.event_count = 3;
        entry.status_step = Some("ingest".into());
        entry.status_message = Some("manifest over 1 MiB".into());
        let event = change_event(&entry, Some(Status::Uploaded));
        assert_eq!(
            (event.seq, event.status, event.from, event.level),
            (
                3,
                Some(Status::Failed),
                Some(Status::Uploaded),
                Level::Error
            )
        );
        assert_eq!(
            (event.step.as_str(), event.message.as_str()),
            ("ingest", "manifest over 1 MiB")
        );
        assert_eq!(event.at, entry.updated_at);
    }
}
