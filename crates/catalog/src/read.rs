//! The catalog's reads beyond one session's entry: many entries and output records by key
//! (`BatchGetItem`), a session's history and outputs, sessions by status, and every session (a
//! parallel Scan of the sparse `by_month` index). Paged reads go through the SDK's paginators,
//! which follow every `LastEvaluatedKey`, so none can forget a page.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};

use crate::error::{service, CatalogError};
use crate::item::{
    output_sort_key, s, session_pk, Event, Item, OutputRecord, SessionItem, EVENT_PREFIX, META_SK,
    OUTPUT_PREFIX,
};
use crate::status::Status;
use crate::store::{Catalog, BY_MONTH_INDEX, BY_STATUS_INDEX};

/// Segments of a full read of the sessions ([`Catalog::scan_sessions`]): four requests in flight
/// load 100,000 sessions (~200 MB of session items: ~200 pages of 1 MB) in about a quarter of the time of one after another,
/// and ask on-demand capacity for no more than four reads at once.
pub const SCAN_SEGMENTS: i32 = 4;

/// A Scan's filter with its placeholders, and the items evaluated per page (`None`: DynamoDB's
/// 1 MB page).
pub(crate) struct ScanFilter {
    pub expression: String,
    pub names: HashMap<String, String>,
    pub values: HashMap<String, AttributeValue>,
    pub page: Option<i32>,
}

impl Catalog {
    /// The entries of the given sessions that are cataloged (absent ones are left out), read
    /// with BatchGetItem in requests of 100 keys. Eventually consistent: for dashboards that
    /// poll, not for read-check-write.
    pub async fn get_many(
        &self,
        sessions: &[String],
    ) -> Result<HashMap<String, SessionItem>, CatalogError> {
        let keys = sessions
            .iter()
            .map(|session| (session_pk(session), META_SK.to_string()));
        let mut found = HashMap::new();
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
        let unique: Vec<(String, String)> = keys.collect::<BTreeSet<_>>().into_iter().collect();
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
                    tokio::time::sleep(Duration::from_millis(50 << round.min(5))).await;
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

    /// The session's history, oldest first.
    pub async fn events(&self, session: &str) -> Result<Vec<Event>, CatalogError> {
        let items = self.query_prefix(session, EVENT_PREFIX).await?;
        items.iter().map(|i| Event::from_item(session, i)).collect()
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
        let found: HashMap<(String, String), Item> = self
            .batch_get(keys, true)
            .await?
            .into_iter()
            .map(|item| {
                let text = |name: &str| match item.get(name) {
                    Some(AttributeValue::S(v)) => v.clone(),
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
        let mut pages = self
            .db
            .query()
            .table_name(&self.table)
            .index_name(BY_STATUS_INDEX)
            .key_condition_expression("#st = :st")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":st", s(status.as_str()))
            .scan_index_forward(false)
            .into_paginator()
            .page_size(limit.clamp(1, 1000) as i32)
            .send();
        let mut found = Vec::new();
        while found.len() < limit {
            let Some(page) = pages.next().await else {
                break;
            };
            let page = page.map_err(|e| service("Query", &self.table, e))?;
            for item in page.items() {
                found.push(SessionItem::from_item(item)?);
            }
        }
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
        let filter = Arc::new(filter);
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
        let items: Vec<Item> = self
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
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| service("Scan", &self.table, e))?;
        items.iter().map(SessionItem::from_item).collect()
    }

    /// Every item of the session's partition whose sort key starts with `prefix`, read
    /// consistently.
    async fn query_prefix(&self, session: &str, prefix: &str) -> Result<Vec<Item>, CatalogError> {
        self.db
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", s(session_pk(session)))
            .expression_attribute_values(":prefix", s(prefix))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| service("Query", &self.table, e))
    }
}
