//! [`Catalog`]: the session catalog over one DynamoDB table.
//!
//! Every write that changes a session's status is one transaction of two items: the `META` item,
//! conditional on the status *and* the event count the writer read, and a new `EVENT#…` item.
//! So the status and its history never disagree, two writers racing on a session cannot both
//! win, and a redelivered message that repeats a write finds the work done instead of doing it
//! twice.

use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, CancellationReason, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, Projection, ProjectionType, Put, ScalarAttributeType, TransactWriteItem, Update,
};
use aws_sdk_dynamodb::Client;
use chrono::{NaiveDateTime, Utc};
use std::collections::HashMap;

use crate::error::{error_code, service, CatalogError};
use crate::item::{
    format_utc, get_n, n, output_sort_key, s, session_pk, Event, Item, Level, OutputRecord,
    SessionItem, EVENT_PREFIX, META_SK, OUTPUT_PREFIX,
};
use crate::status::Status;

/// Index of sessions by recording month (`month`, `recorded_at`).
pub const BY_MONTH_INDEX: &str = "by_month";
/// Index of sessions by status (`status`, `recorded_at`).
pub const BY_STATUS_INDEX: &str = "by_status";

/// Segments of a full read of the sessions ([`Catalog::scan_sessions`]): four requests in flight
/// load 100,000 sessions (~200 MB of session items: ~200 pages of 1 MB) in about a quarter of the time of one after another,
/// and ask on-demand capacity for no more than four reads at once.
pub const SCAN_SEGMENTS: i32 = 4;

/// A Scan's filter with its placeholders, and the items evaluated per page (`None`: DynamoDB's
/// 1 MB page).
pub(crate) struct ScanFilter {
    pub expression: String,
    pub names: HashMap<String, String>,
    pub values: HashMap<String, aws_sdk_dynamodb::types::AttributeValue>,
    pub page: Option<i32>,
}

/// Attempts of a read-check-write cycle before giving up with [`CatalogError::Contention`].
const ATTEMPTS: u32 = 5;

/// What [`Catalog::put_new_session`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum PutOutcome {
    /// The entry was written now.
    Created(SessionItem),
    /// The same manifest was cataloged before (a duplicate event): nothing was written.
    AlreadyCataloged(SessionItem),
}

/// The session catalog in one DynamoDB table. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Catalog {
    db: Client,
    table: String,
}

impl Catalog {
    pub fn new(db: Client, table: impl Into<String>) -> Self {
        Catalog {
            db,
            table: table.into(),
        }
    }

    /// The catalog over a client built from the caller's AWS configuration (credentials chain,
    /// region, endpoint): the one place adapters get a DynamoDB client from.
    pub fn from_sdk(sdk: &aws_config::SdkConfig, table: impl Into<String>) -> Self {
        Catalog::new(Client::new(sdk), table)
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// The DynamoDB client, for read paths kept in their own module (`query`).
    pub fn client(&self) -> &Client {
        &self.db
    }

    /// The session's entry, read consistently; `None` when it is not cataloged.
    pub async fn get(&self, session: &str) -> Result<Option<SessionItem>, CatalogError> {
        let out = self
            .db
            .get_item()
            .table_name(&self.table)
            .key("pk", s(session_pk(session)))
            .key("sk", s(META_SK))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| service("GetItem", &self.table, e))?;
        out.item().map(SessionItem::from_item).transpose()
    }

    /// The entries of the given sessions that are cataloged (absent ones are left out), read
    /// with BatchGetItem in requests of 100 keys. Eventually consistent: for dashboards that
    /// poll, not for read-check-write.
    pub async fn get_many(
        &self,
        sessions: &[String],
    ) -> Result<std::collections::HashMap<String, SessionItem>, CatalogError> {
        let keys = sessions
            .iter()
            .map(|session| (session_pk(session), META_SK.to_string()));
        let mut found = std::collections::HashMap::new();
        for item in self.batch_get(keys, false).await? {
            let entry = SessionItem::from_item(&item)?;
            found.insert(entry.session.clone(), entry);
        }
        Ok(found)
    }

    /// The items at `keys` (`pk`, `sk`; repeats asked once; absent ones left out), in
    /// `BatchGetItem`s of at most 100 keys, DynamoDB's limit
    /// (<https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_BatchGetItem.html>).
    /// Keys DynamoDB returns as `UnprocessedKeys` (throughput, the 16 MB response cap) are asked
    /// again after a growing pause, as that page advises, at most 8 times.
    async fn batch_get(
        &self,
        keys: impl Iterator<Item = (String, String)>,
        consistent: bool,
    ) -> Result<Vec<Item>, CatalogError> {
        use aws_sdk_dynamodb::types::KeysAndAttributes;
        const BATCH: usize = 100;
        const ROUNDS: u32 = 8;
        let failed = |message: String, retryable: bool| CatalogError::Service {
            operation: "BatchGetItem",
            table: self.table.clone(),
            message,
            retryable,
            code: None,
        };
        // DynamoDB refuses a batch that names a key twice.
        let unique: Vec<(String, String)> = keys
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut found = Vec::new();
        for chunk in unique.chunks(BATCH) {
            let mut keys: Vec<Item> = chunk
                .iter()
                .map(|(pk, sk)| Item::from([("pk".to_string(), s(pk)), ("sk".to_string(), s(sk))]))
                .collect();
            let mut round = 0;
            while !keys.is_empty() {
                if round > 0 {
                    if round >= ROUNDS {
                        return Err(failed(
                            format!("{} keys still unprocessed after {ROUNDS} rounds (throttled); try again later", keys.len()),
                            true,
                        ));
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(50 << round.min(5))).await;
                }
                round += 1;
                let ask = KeysAndAttributes::builder()
                    .set_keys(Some(std::mem::take(&mut keys)))
                    .consistent_read(consistent)
                    .build()
                    .map_err(|e| failed(e.to_string(), false))?;
                let out = self
                    .db
                    .batch_get_item()
                    .request_items(&self.table, ask)
                    .send()
                    .await
                    .map_err(|e| service("BatchGetItem", &self.table, e))?;
                if let Some(items) = out.responses().and_then(|r| r.get(&self.table)) {
                    found.extend(items.iter().cloned());
                }
                keys = out
                    .unprocessed_keys()
                    .and_then(|u| u.get(&self.table))
                    .map(|k| k.keys().to_vec())
                    .unwrap_or_default();
            }
        }
        Ok(found)
    }

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
        let incoming = new.manifest_sha256.clone().unwrap_or_default();
        for _ in 0..ATTEMPTS {
            let existing = self.get(&new.session).await?;
            let (from, old_count) = match &existing {
                Some(e) => match &e.manifest_sha256 {
                    Some(sha) if *sha == incoming => {
                        return Ok(PutOutcome::AlreadyCataloged(e.clone()))
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
            let event = Event {
                at: item.updated_at,
                seq: item.event_count,
                status: Some(item.status),
                from,
                step: item.status_step.clone().unwrap_or_default(),
                level: level_for(item.status),
                message: item.status_message.clone().unwrap_or_default(),
            };
            let mut put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(item.to_item()));
            put = if existing.is_some() {
                put.condition_expression(
                    "attribute_not_exists(manifest_sha256) AND event_count = :old",
                )
                .expression_attribute_values(":old", n(old_count))
            } else {
                put.condition_expression("attribute_not_exists(pk)")
            };
            if self
                .write_with_event(put_op(put), &new.session, &event)
                .await?
            {
                return Ok(PutOutcome::Created(item));
            }
        }
        Err(CatalogError::Contention {
            session: new.session.clone(),
            attempts: ATTEMPTS,
        })
    }

    /// Makes a verified correction the session's current entry. The revision's manifest, raw
    /// prefix, metadata and counts replace the earlier revision's; the history and the outputs
    /// records stay; the status is `CATALOGED` again, so preprocessing runs on the new files.
    /// Only a higher revision replaces an entry: the same manifest again is
    /// [`PutOutcome::AlreadyCataloged`], another manifest of the same or a lower revision a
    /// [`CatalogError::Conflict`]. A session not cataloged yet is written as new.
    pub async fn put_revision(&self, new: &SessionItem) -> Result<PutOutcome, CatalogError> {
        new.check_size()?;
        let incoming = new.manifest_sha256.clone().unwrap_or_default();
        let revision = new.revision.unwrap_or(1);
        for _ in 0..ATTEMPTS {
            let Some(existing) = self.get(&new.session).await? else {
                return self.put_new_session(new).await;
            };
            let Some(current_sha) = existing.manifest_sha256.clone() else {
                return self.put_new_session(new).await;
            };
            if current_sha == incoming {
                return Ok(PutOutcome::AlreadyCataloged(existing));
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
            let event = Event {
                at: item.updated_at,
                seq: item.event_count,
                status: Some(item.status),
                from: Some(existing.status),
                step: item.status_step.clone().unwrap_or_default(),
                level: level_for(item.status),
                message: item.status_message.clone().unwrap_or_default(),
            };
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(item.to_item()))
                .condition_expression("manifest_sha256 = :prev AND event_count = :old")
                .expression_attribute_values(":prev", s(&current_sha))
                .expression_attribute_values(":old", n(existing.event_count));
            if self
                .write_with_event(put_op(put), &new.session, &event)
                .await?
            {
                return Ok(PutOutcome::Created(item));
            }
        }
        Err(CatalogError::Contention {
            session: new.session.clone(),
            attempts: ATTEMPTS,
        })
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
        for _ in 0..ATTEMPTS {
            let current = self.require(session).await?;
            match self.transition_from(&current, to, step, message).await {
                Err(CatalogError::Contention { .. }) => continue,
                other => return other,
            }
        }
        Err(CatalogError::Contention {
            session: session.to_string(),
            attempts: ATTEMPTS,
        })
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
        if !to.can_follow(current.status) {
            return Err(CatalogError::InvalidTransition {
                session: current.session.clone(),
                from: current.status,
                to,
            });
        }
        let now = Utc::now();
        let seq = current.event_count + 1;
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
            .expression_attribute_values(":now", s(format_utc(now)))
            .expression_attribute_values(":seq", n(seq))
            .expression_attribute_values(":from", s(current.status.as_str()))
            .expression_attribute_values(":old", n(current.event_count))
            .expression_attribute_values(":zero", n(0))
            .build()
            .expect("table, key and update expression are set");
        let event = Event {
            at: now,
            seq,
            status: Some(to),
            from: Some(current.status),
            step: step.to_string(),
            level: level_for(to),
            message: message.to_string(),
        };
        let op = TransactWriteItem::builder().update(update).build();
        if !self.write_with_event(op, &current.session, &event).await? {
            return Err(CatalogError::Contention {
                session: current.session.clone(),
                attempts: 1,
            });
        }
        let mut next = current.clone();
        next.status = to;
        next.status_step = Some(step.to_string());
        next.status_message = Some(message.to_string());
        next.updated_at = now;
        next.event_count = seq;
        Ok(next)
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
        for _ in 0..ATTEMPTS {
            if let Some(current) = self.get(session).await? {
                match self
                    .transition_from(&current, Status::Failed, step, message)
                    .await
                {
                    Err(CatalogError::Contention { .. }) => continue,
                    other => return other,
                }
            }
            let mut item =
                SessionItem::placeholder(session, recorded_at, Status::Failed, Utc::now());
            item.status_step = Some(step.to_string());
            item.status_message = Some(message.to_string());
            item.event_count = 1;
            let event = Event {
                at: item.updated_at,
                seq: 1,
                status: Some(Status::Failed),
                from: None,
                step: step.to_string(),
                level: Level::Error,
                message: message.to_string(),
            };
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(item.to_item()))
                .condition_expression("attribute_not_exists(pk)");
            if self.write_with_event(put_op(put), session, &event).await? {
                return Ok(item);
            }
        }
        Err(CatalogError::Contention {
            session: session.to_string(),
            attempts: ATTEMPTS,
        })
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
            .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedNew)
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

    /// The session's history, oldest first.
    pub async fn events(&self, session: &str) -> Result<Vec<Event>, CatalogError> {
        let items = self.query_prefix(session, EVENT_PREFIX).await?;
        items.iter().map(|i| Event::from_item(session, i)).collect()
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

    /// The outputs recorded for one pipeline version of one revision (1 = the first upload;
    /// [`SessionItem::current_revision`] for the current one).
    pub async fn outputs(
        &self,
        session: &str,
        version: u32,
        revision: u32,
    ) -> Result<Option<OutputRecord>, CatalogError> {
        let out = self
            .db
            .get_item()
            .table_name(&self.table)
            .key("pk", s(session_pk(session)))
            .key("sk", s(output_sort_key(version, revision)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| service("GetItem", &self.table, e))?;
        out.item()
            .map(|i| OutputRecord::from_item(session, i))
            .transpose()
    }

    /// The output records of many `(session, version, revision)` triples, one entry per triple in
    /// order (`None`: no such record), read like [`Catalog::outputs`] (strongly consistent) but
    /// with [`Catalog::batch_get`]: a sync of 300 sessions asks 3 times instead of 300.
    pub async fn outputs_of(
        &self,
        wanted: &[(String, u32, u32)],
    ) -> Result<Vec<Option<OutputRecord>>, CatalogError> {
        let key = |session: &str, version: u32, revision: u32| {
            (session_pk(session), output_sort_key(version, revision))
        };
        let keys = wanted
            .iter()
            .map(|(session, version, revision)| key(session, *version, *revision));
        let found: std::collections::HashMap<(String, String), Item> = self
            .batch_get(keys, true)
            .await?
            .into_iter()
            .map(|item| {
                let text = |name: &str| match item.get(name) {
                    Some(aws_sdk_dynamodb::types::AttributeValue::S(v)) => v.clone(),
                    _ => String::new(),
                };
                ((text("pk"), text("sk")), item)
            })
            .collect();
        wanted
            .iter()
            .map(|(session, version, revision)| {
                found
                    .get(&key(session, *version, *revision))
                    .map(|item| OutputRecord::from_item(session, item))
                    .transpose()
            })
            .collect()
    }

    /// Every output record of a session (all pipeline versions of all revisions), by version
    /// then revision.
    pub async fn all_outputs(&self, session: &str) -> Result<Vec<OutputRecord>, CatalogError> {
        let items = self.query_prefix(session, OUTPUT_PREFIX).await?;
        let mut records = items
            .iter()
            .map(|i| OutputRecord::from_item(session, i))
            .collect::<Result<Vec<_>, _>>()?;
        records.sort_by_key(|r| (r.version, r.revision));
        Ok(records)
    }

    /// Sessions in one status, most recently recorded first (the `by_status` index).
    pub async fn with_status(
        &self,
        status: Status,
        limit: usize,
    ) -> Result<Vec<SessionItem>, CatalogError> {
        let mut found = Vec::new();
        read_pages(
            &mut found,
            |n| n >= limit,
            |start| async move {
                let out = self
                    .db
                    .query()
                    .table_name(&self.table)
                    .index_name(BY_STATUS_INDEX)
                    .key_condition_expression("#st = :st")
                    .expression_attribute_names("#st", "status")
                    .expression_attribute_values(":st", s(status.as_str()))
                    .scan_index_forward(false)
                    .limit(limit.clamp(1, 1000) as i32)
                    .set_exclusive_start_key(start)
                    .send()
                    .await
                    .map_err(|e| service("Query", &self.table, e))?;
                Ok((out.items().to_vec(), out.last_evaluated_key().cloned()))
            },
        )
        .await?;
        found.truncate(limit);
        Ok(found)
    }

    /// The `limit` most recently recorded sessions, whatever their status: the top of each
    /// status partition of `by_status`, merged. Costs one small query per status, never a scan.
    pub async fn list_recent(&self, limit: usize) -> Result<Vec<SessionItem>, CatalogError> {
        let mut all = Vec::new();
        for status in Status::ALL {
            all.extend(self.with_status(status, limit).await?);
        }
        all.sort_by(|a, b| b.cmp_recorded(a));
        all.truncate(limit);
        Ok(all)
    }

    /// Every session entry, oldest recording first (the app's Sessions view, exports): a
    /// [`Catalog::scan_sessions`] with no filter but the session items' own.
    pub async fn scan_all(&self) -> Result<Vec<SessionItem>, CatalogError> {
        let mut found = self
            .scan_sessions(ScanFilter {
                expression: "sk = :meta".into(),
                names: HashMap::new(),
                values: HashMap::from([(":meta".to_string(), s(META_SK))]),
                page: None,
            })
            .await?;
        found.sort_by(SessionItem::cmp_recorded);
        Ok(found)
    }

    /// The session entries that pass `filter`, in no particular order: a parallel Scan of the
    /// `by_month` index in [`SCAN_SEGMENTS`] segments.
    ///
    /// Only session items carry `month`, so the index is sparse: it holds the sessions and none
    /// of their events or output records, which are four in five items of the table. A Scan of
    /// the table reads (and is billed for) every item before its filter drops them; a Scan of the
    /// index reads the sessions alone (AWS: "Take advantage of sparse indexes",
    /// <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/bp-indexes-general-sparse-indexes.html>).
    /// The segments are read side by side, each paged with its own `LastEvaluatedKey` (AWS:
    /// "Parallel scan", <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Scan.html#Scan.ParallelScan>).
    /// The index is eventually consistent, as a default Scan of the table is.
    pub(crate) async fn scan_sessions(
        &self,
        filter: ScanFilter,
    ) -> Result<Vec<SessionItem>, CatalogError> {
        let filter = std::sync::Arc::new(filter);
        let mut segments = tokio::task::JoinSet::new();
        for segment in 0..SCAN_SEGMENTS {
            let (catalog, filter) = (self.clone(), filter.clone());
            segments.spawn(async move { catalog.scan_segment(&filter, segment).await });
        }
        let mut found = Vec::new();
        while let Some(done) = segments.join_next().await {
            match done {
                Ok(part) => found.extend(part?),
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(e) => unreachable!("a scan segment is never cancelled while awaited: {e}"),
            }
        }
        Ok(found)
    }

    async fn scan_segment(
        &self,
        filter: &ScanFilter,
        segment: i32,
    ) -> Result<Vec<SessionItem>, CatalogError> {
        let mut found = Vec::new();
        read_pages(
            &mut found,
            |_| false,
            |start| async move {
                let out = self
                    .db
                    .scan()
                    .table_name(&self.table)
                    .index_name(BY_MONTH_INDEX)
                    .segment(segment)
                    .total_segments(SCAN_SEGMENTS)
                    .filter_expression(&filter.expression)
                    .set_expression_attribute_names(
                        (!filter.names.is_empty()).then(|| filter.names.clone()),
                    )
                    .set_expression_attribute_values(Some(filter.values.clone()))
                    .set_limit(filter.page)
                    .set_exclusive_start_key(start)
                    .send()
                    .await
                    .map_err(|e| service("Scan", &self.table, e))?;
                Ok((out.items().to_vec(), out.last_evaluated_key().cloned()))
            },
        )
        .await?;
        Ok(found)
    }

    async fn require(&self, session: &str) -> Result<SessionItem, CatalogError> {
        self.get(session)
            .await?
            .ok_or_else(|| CatalogError::NotFound {
                session: session.to_string(),
                table: self.table.clone(),
            })
    }

    async fn query_prefix(&self, session: &str, prefix: &str) -> Result<Vec<Item>, CatalogError> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .db
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .expression_attribute_values(":pk", s(session_pk(session)))
                .expression_attribute_values(":prefix", s(prefix))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| service("Query", &self.table, e))?;
            items.extend(out.items().iter().cloned());
            match out.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => break,
            }
        }
        Ok(items)
    }

    /// Writes `op` and the event item in one transaction. `Ok(false)` when `op`'s condition
    /// failed (someone else changed the session).
    async fn write_with_event(
        &self,
        op: TransactWriteItem,
        session: &str,
        event: &Event,
    ) -> Result<bool, CatalogError> {
        let put_event = Put::builder()
            .table_name(&self.table)
            .set_item(Some(event.to_item(session)))
            .condition_expression("attribute_not_exists(sk)")
            .build()
            .expect("table and item are set");
        let result = self
            .db
            .transact_write_items()
            .transact_items(op)
            .transact_items(TransactWriteItem::builder().put(put_event).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure(&e) => Ok(false),
            Err(e) => Err(match canceled_as_invalid(&e) {
                Some(reason) => CatalogError::Service {
                    operation: "TransactWriteItems",
                    table: self.table.clone(),
                    message: format!("ValidationError: {reason}"),
                    retryable: false,
                    code: Some("ValidationException".into()),
                },
                None => service("TransactWriteItems", &self.table, e),
            }),
        }
    }
}

/// A transaction DynamoDB canceled because one of its writes is invalid as sent (an item over
/// 400 KB, a malformed value): AWS reports that as `TransactionCanceledException` with a
/// `ValidationError` cancellation reason, not as a `ValidationException`, and no retry can make
/// it succeed. Its message, so the failure says what was wrong.
fn canceled_as_invalid<R>(
    e: &aws_sdk_dynamodb::error::SdkError<TransactWriteItemsError, R>,
) -> Option<String> {
    match e.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(t)) => {
            validation_reason(t.cancellation_reasons())
        }
        _ => None,
    }
}

fn validation_reason(reasons: &[CancellationReason]) -> Option<String> {
    reasons
        .iter()
        .find(|r| r.code() == Some("ValidationError"))
        .map(|r| r.message().unwrap_or("a write is invalid").to_string())
}

fn put_op(put: aws_sdk_dynamodb::types::builders::PutBuilder) -> TransactWriteItem {
    TransactWriteItem::builder()
        .put(put.build().expect("table and item are set"))
        .build()
}

fn is_condition_failure<R>(
    e: &aws_sdk_dynamodb::error::SdkError<TransactWriteItemsError, R>,
) -> bool {
    match e.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(t)) => {
            let reasons = t.cancellation_reasons();
            reasons.is_empty()
                || reasons.iter().any(|r| {
                    matches!(
                        r.code(),
                        Some("ConditionalCheckFailed" | "TransactionConflict")
                    )
                })
        }
        Some(other) => other.code() == Some("ConditionalCheckFailedException"),
        None => false,
    }
}

fn level_for(status: Status) -> Level {
    if status == Status::Failed {
        Level::Error
    } else {
        Level::Info
    }
}

/// Reads a paged Query or Scan into `found`: `page(start)` sends one request from `start` and
/// returns its items and `LastEvaluatedKey`; reading stops at the last page, or once
/// `enough(found.len())`. Every paged read of the catalog goes through here, so none can forget
/// a page.
pub(crate) async fn read_pages<F, Fut>(
    found: &mut Vec<SessionItem>,
    enough: impl Fn(usize) -> bool,
    mut page: F,
) -> Result<(), CatalogError>
where
    F: FnMut(Option<Item>) -> Fut,
    Fut: std::future::Future<Output = Result<(Vec<Item>, Option<Item>), CatalogError>>,
{
    let mut start = None;
    loop {
        let (items, next) = page(start.take()).await?;
        for item in &items {
            found.push(SessionItem::from_item(item)?);
        }
        match next {
            Some(k) if !k.is_empty() && !enough(found.len()) => start = Some(k),
            _ => return Ok(()),
        }
    }
}

/// Creates the catalog table with the layout the stack template declares (keys, both indexes,
/// on-demand billing), for tests and for a local stack without the template. Waits until the
/// table is active.
pub async fn create_table(db: &Client, table: &str) -> Result<(), CatalogError> {
    let attr = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .expect("name and type are set")
    };
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .expect("name and key type are set")
    };
    let index = |name: &str, hash: &str| {
        GlobalSecondaryIndex::builder()
            .index_name(name)
            .key_schema(key(hash, KeyType::Hash))
            .key_schema(key("recorded_at", KeyType::Range))
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::All)
                    .build(),
            )
            .build()
            .expect("index name and keys are set")
    };
    db.create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr("pk"))
        .attribute_definitions(attr("sk"))
        .attribute_definitions(attr("month"))
        .attribute_definitions(attr("status"))
        .attribute_definitions(attr("recorded_at"))
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .global_secondary_indexes(index(BY_MONTH_INDEX, "month"))
        .global_secondary_indexes(index(BY_STATUS_INDEX, "status"))
        .send()
        .await
        .map_err(|e| service("CreateTable", table, e))?;
    for _ in 0..100 {
        let out = db
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|e| service("DescribeTable", table, e))?;
        if out
            .table()
            .and_then(|t| t.table_status())
            .map(|s| s.as_str())
            == Some("ACTIVE")
        {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    Err(CatalogError::Service {
        operation: "CreateTable",
        table: table.to_string(),
        message: "table did not become active in time".into(),
        retryable: true,
        code: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;
    use std::cell::RefCell;

    #[test]
    fn a_transaction_canceled_as_invalid_is_told_apart_from_a_lost_race() {
        let reason = |code: &str, message: Option<&str>| {
            CancellationReason::builder()
                .code(code)
                .set_message(message.map(str::to_string))
                .build()
        };
        // AWS's answer to a write over 400 KB inside a transaction.
        let too_big = [
            reason(
                "ValidationError",
                Some("Item size has exceeded the maximum allowed size"),
            ),
            reason("None", None),
        ];
        assert_eq!(
            validation_reason(&too_big).as_deref(),
            Some("Item size has exceeded the maximum allowed size")
        );
        let race = [reason("ConditionalCheckFailed", None), reason("None", None)];
        assert_eq!(validation_reason(&race), None);
        assert_eq!(validation_reason(&[]), None);
    }

    fn item(n: u32) -> Item {
        let at = NaiveDate::from_ymd_opt(2021, 3, 1)
            .unwrap()
            .and_hms_opt(9, 0, n)
            .unwrap();
        let session = at.format("%Y%m%d_%H%M%S").to_string();
        SessionItem::placeholder(&session, at, Status::Processed, Utc::now()).to_item()
    }

    /// Three pages of 2, 2 and 1 items; the key after page `i` is `Some` except after the last.
    fn pages() -> Vec<(Vec<Item>, Option<Item>)> {
        let key = |k: &str| Some(Item::from([("pk".to_string(), s(k))]));
        vec![
            (vec![item(1), item(2)], key("after-2")),
            (vec![item(3), item(4)], key("after-4")),
            (vec![item(5)], None),
        ]
    }

    async fn read(enough: impl Fn(usize) -> bool) -> (Vec<SessionItem>, Vec<Option<Item>>) {
        let starts = RefCell::new(Vec::new());
        let mut left = pages().into_iter();
        let mut found = Vec::new();
        read_pages(&mut found, enough, |start| {
            starts.borrow_mut().push(start);
            let page = left.next().expect("asked for a page after the last");
            async move { Ok(page) }
        })
        .await
        .unwrap();
        (found, starts.into_inner())
    }

    #[tokio::test]
    async fn read_pages_follows_every_next_key_to_the_last_page() {
        let (found, starts) = read(|_| false).await;
        assert_eq!(found.len(), 5);
        assert_eq!(found[4].session, "20210301_090005");
        assert_eq!(starts.len(), 3);
        assert_eq!(starts[0], None);
        assert_eq!(starts[2].as_ref().unwrap()["pk"], s("after-4"));
    }

    #[tokio::test]
    async fn read_pages_stops_once_enough_is_read() {
        let (found, starts) = read(|n| n >= 3).await;
        assert_eq!(
            found.len(),
            4,
            "the page that crossed the limit is kept whole"
        );
        assert_eq!(starts.len(), 2);
    }

    #[tokio::test]
    async fn an_empty_next_key_ends_the_read() {
        let mut found = Vec::new();
        let mut calls = 0;
        read_pages(
            &mut found,
            |_| false,
            |_| {
                calls += 1;
                async { Ok((vec![item(1)], Some(Item::new()))) }
            },
        )
        .await
        .unwrap();
        assert_eq!((found.len(), calls), (1, 1));
    }
}
