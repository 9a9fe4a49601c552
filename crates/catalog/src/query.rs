//! Running a researcher's filter against the catalog.
//!
//! The filter language compiles (in `labpipe-core`, free of the AWS SDK) to plain data: a plan
//! (one Query per month on `by_month`, or a Scan) plus expression strings over placeholders. This
//! module is the one place that turns that data into DynamoDB requests, so `labpipe query`,
//! `labpipe sync` and the desktop app cannot disagree about what a filter selects.
//!
//! The in-memory evaluator ([`Filter::matches`]) must select exactly the same sessions;
//! [`SessionItem::subject`] gives it the catalog's view of a session, and a property test on the
//! emulator holds the two back ends to each other.

use std::collections::{HashMap, VecDeque};
use std::ops::ControlFlow;

use aws_sdk_dynamodb::types::AttributeValue;
use labpipe_core::filter::dynamo::{compile, AttrValue, Compiled, Plan, MONTH_PLACEHOLDER};
use labpipe_core::filter::{Filter, Subject};

use crate::error::{service, CatalogError};
use crate::item::{get_s, s, SessionItem};
use crate::read::ScanFilter;
use crate::status::Status;
use crate::store::{Catalog, BY_MONTH_INDEX, BY_STATUS_INDEX};

/// Items fetched per request page; small enough to keep one page quick on a slow link.
const PAGE: i32 = 500;
/// Months [`Catalog::query_by_month`] reads at once (a month is ~300 sessions, one page): enough
/// to hide the round trip, few enough that memory holds a handful of months, whatever the table.
const MONTHS_IN_FLIGHT: usize = 4;

impl SessionItem {
    /// What the filter language sees of this session: built-in fields and metadata, with the
    /// status in lower case as the filter writes it.
    pub fn subject(&self) -> Subject {
        Subject {
            session: self.session.clone(),
            recorded_at: self.recorded_at,
            status: self.status.as_str().to_ascii_lowercase(),
            total_bytes: self.total_bytes,
            files: self.file_count,
            metadata: self.metadata.clone(),
        }
    }
}

impl From<&SessionItem> for Subject {
    fn from(item: &SessionItem) -> Self {
        item.subject()
    }
}

fn attribute(v: &AttrValue) -> AttributeValue {
    match v {
        AttrValue::S(s) => AttributeValue::S(s.clone()),
        AttrValue::N(n) => AttributeValue::N(n.clone()),
    }
}

fn values(compiled: &Compiled) -> HashMap<String, AttributeValue> {
    compiled
        .values
        .iter()
        .map(|(k, v)| (k.clone(), attribute(v)))
        .collect()
}

fn names(compiled: &Compiled) -> HashMap<String, String> {
    compiled
        .names
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

impl Catalog {
    /// The sessions matching a type-checked filter, oldest recording first, at most `limit`
    /// (`None`: all).
    ///
    /// Date-bounded filters read only the months they touch (`by_month`, one paginated Query per
    /// month, newest data never scanned); anything else is a paginated Scan of session items.
    pub async fn query(
        &self,
        filter: &Filter,
        limit: Option<usize>,
    ) -> Result<Vec<SessionItem>, CatalogError> {
        let compiled = compile(filter);
        let limit = limit.unwrap_or(usize::MAX);
        let mut found = match &compiled.plan {
            Plan::Query {
                index,
                months,
                key_condition,
            } => {
                let month_query = MonthQuery {
                    catalog: self.clone(),
                    index,
                    key_condition: key_condition.clone(),
                    filter: compiled.filter.clone(),
                    names: names(&compiled),
                    values: values(&compiled),
                };
                let mut found = Vec::new();
                for month in months {
                    if found.len() >= limit {
                        break;
                    }
                    month_query.read_into(month, &mut found, limit).await?;
                }
                found
            }
            Plan::Scan => self.scan_filtered(&compiled).await?,
        };
        found.sort_by(SessionItem::cmp_recorded);
        found.truncate(limit);
        Ok(found)
    }

    /// The sessions matching `filter`, oldest recording first like [`Catalog::query`], handed
    /// to `emit` one month at a time (each month sorted) as they are read, so a caller can write
    /// them out and drop them: memory holds [`MONTHS_IN_FLIGHT`] months, not the catalog.
    /// `emit` returning [`ControlFlow::Break`] stops the reading. At most `limit` sessions
    /// (`None`: all); returns how many were emitted.
    ///
    /// A date-bounded filter reads the months its plan names, as [`Catalog::query`] does. A
    /// filter without a date bound reads every month from the oldest recording to the newest
    /// (found with two one-item Queries per status partition of `by_status`), each one Query of
    /// its `by_month` partition with the filter as a filter expression (a filter that names the
    /// date, which a Query of `by_month` may not filter on, is evaluated on the sessions read):
    /// every session item read once, as by the parallel Scan of [`Catalog::query`], but in
    /// order. A month without sessions costs one empty Query.
    pub async fn query_by_month(
        &self,
        filter: &Filter,
        limit: Option<usize>,
        mut emit: impl FnMut(Vec<SessionItem>) -> ControlFlow<()>,
    ) -> Result<usize, CatalogError> {
        let compiled = compile(filter);
        let mut names = names(&compiled);
        let mut values = values(&compiled);
        let mut expression = compiled.filter.clone();
        // Sessions the expression cannot judge are judged here, by the evaluator the property
        // test holds equal to the DynamoDB plan.
        let mut in_memory = None;
        let (months, key_condition) = match &compiled.plan {
            Plan::Query {
                months,
                key_condition,
                ..
            } => (months.clone(), key_condition.clone()),
            Plan::Scan => {
                // A Query's filter may not name the index's keys (DynamoDB refuses it with a
                // ValidationException): a filter on the date (`recorded_at`) is evaluated on
                // the sessions read instead.
                if names.values().any(|n| n == "recorded_at" || n == "month") {
                    expression = None;
                    names.clear();
                    values.clear();
                    in_memory = Some(filter);
                }
                names.insert("#lp_month".into(), "month".into());
                (
                    self.months_with_sessions().await?,
                    format!("#lp_month = {MONTH_PLACEHOLDER}"),
                )
            }
        };
        let month_query = std::sync::Arc::new(MonthQuery {
            catalog: self.clone(),
            index: BY_MONTH_INDEX,
            key_condition,
            filter: expression,
            names,
            values,
        });
        let limit = limit.unwrap_or(usize::MAX);
        let mut emitted = 0usize;
        let mut months = months.into_iter();
        let mut reading = VecDeque::new();
        loop {
            while reading.len() < MONTHS_IN_FLIGHT {
                let Some(month) = months.next() else { break };
                let q = month_query.clone();
                reading.push_back(tokio::spawn(async move {
                    let mut found = Vec::new();
                    q.read_into(&month, &mut found, usize::MAX).await?;
                    Ok::<_, CatalogError>(found)
                }));
            }
            let Some(next) = reading.pop_front() else {
                break;
            };
            let mut found = match next.await {
                Ok(found) => found?,
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(e) => unreachable!("a month read is never cancelled while awaited: {e}"),
            };
            if let Some(f) = in_memory {
                found.retain(|s| f.matches(&s.subject()));
            }
            found.sort_by(SessionItem::cmp_recorded);
            found.truncate(limit - emitted);
            emitted += found.len();
            if (!found.is_empty() && emit(found).is_break()) || emitted >= limit {
                break;
            }
        }
        for r in reading {
            r.abort();
        }
        Ok(emitted)
    }

    /// Every month from the oldest session's recording to the newest one's, `YYYY-MM`; empty
    /// when the catalog holds no session.
    async fn months_with_sessions(&self) -> Result<Vec<String>, CatalogError> {
        let mut ends = tokio::task::JoinSet::new();
        for status in Status::ALL {
            for forward in [true, false] {
                let catalog = self.clone();
                ends.spawn(async move { catalog.recorded_end(status, forward).await });
            }
        }
        let (mut first, mut last): (Option<String>, Option<String>) = (None, None);
        while let Some(done) = ends.join_next().await {
            let Some(at) = done.expect("an end query never panics")? else {
                continue;
            };
            let month = at.get(..7).unwrap_or(&at).to_string();
            if first.as_ref().is_none_or(|f| month < *f) {
                first = Some(month.clone());
            }
            if last.as_ref().is_none_or(|l| month > *l) {
                last = Some(month);
            }
        }
        let (Some(first), Some(last)) = (first, last) else {
            return Ok(Vec::new());
        };
        Ok(months_from_to(&first, &last))
    }

    /// The oldest (`forward`) or newest `recorded_at` of a status partition of `by_status`.
    async fn recorded_end(
        &self,
        status: Status,
        forward: bool,
    ) -> Result<Option<String>, CatalogError> {
        let out = self
            .client()
            .query()
            .table_name(self.table())
            .index_name(BY_STATUS_INDEX)
            .key_condition_expression("#st = :st")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":st", s(status.as_str()))
            .projection_expression("recorded_at")
            .scan_index_forward(forward)
            .limit(1)
            .send()
            .await
            .map_err(|e| service("Query", self.table(), e))?;
        Ok(out
            .items()
            .first()
            .and_then(|i| get_s(i, "recorded_at"))
            .map(str::to_string))
    }

    /// A filter with no date bound: every session item, read by [`Catalog::scan_sessions`].
    async fn scan_filtered(&self, compiled: &Compiled) -> Result<Vec<SessionItem>, CatalogError> {
        let expression = compiled
            .filter
            .clone()
            .expect("a scan plan always filters on sk = META");
        self.scan_sessions(ScanFilter {
            expression,
            names: names(compiled),
            values: values(compiled),
            page: Some(PAGE),
        })
        .await
    }
}

/// One filter's Query of a `by_month` partition, one month at a time; shared by the month reads
/// in flight.
struct MonthQuery {
    catalog: Catalog,
    index: &'static str,
    key_condition: String,
    filter: Option<String>,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl MonthQuery {
    /// Adds `month`'s sessions to `found`, page by page, until the last page or until `found`
    /// holds `limit` (the page that reaches it is kept whole: the caller sorts, then truncates).
    async fn read_into(
        &self,
        month: &str,
        found: &mut Vec<SessionItem>,
        limit: usize,
    ) -> Result<(), CatalogError> {
        let mut values = self.values.clone();
        values.insert(
            MONTH_PLACEHOLDER.to_string(),
            AttributeValue::S(month.to_string()),
        );
        let c = &self.catalog;
        let mut pages = c
            .client()
            .query()
            .table_name(c.table())
            .index_name(self.index)
            .key_condition_expression(&self.key_condition)
            .set_filter_expression(self.filter.clone())
            .set_expression_attribute_names(Some(self.names.clone()))
            .set_expression_attribute_values(Some(values))
            .into_paginator()
            .page_size(PAGE)
            .send();
        while found.len() < limit {
            let Some(page) = pages.next().await else {
                break;
            };
            let page = page.map_err(|e| service("Query", c.table(), e))?;
            for item in page.items() {
                found.push(SessionItem::from_item(item)?);
            }
        }
        Ok(())
    }
}

/// `first`, `last` and every month between, as `YYYY-MM` (empty if `first` is after `last`).
fn months_from_to(first: &str, last: &str) -> Vec<String> {
    let parse = |m: &str| -> Option<(i32, u32)> {
        let (y, mo) = m.split_once('-')?;
        Some((y.parse().ok()?, mo.parse().ok()?))
    };
    let (Some(mut at), Some(end)) = (parse(first), parse(last)) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    while at <= end {
        out.push(format!("{:04}-{:02}", at.0, at.1));
        at = if at.1 >= 12 {
            (at.0 + 1, 1)
        } else {
            (at.0, at.1 + 1)
        };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Status;
    use chrono::{NaiveDateTime, Utc};
    use labpipe_core::{LabSchema, MetaValue};

    #[test]
    fn months_from_to_spans_year_ends() {
        assert_eq!(
            months_from_to("2020-11", "2021-02"),
            ["2020-11", "2020-12", "2021-01", "2021-02"]
        );
        assert_eq!(months_from_to("2021-03", "2021-03"), ["2021-03"]);
        assert!(months_from_to("2021-04", "2021-03").is_empty());
    }

    #[test]
    fn subject_carries_what_filters_read() {
        let at = NaiveDateTime::parse_from_str("2021-03-01T16:12:21", "%Y-%m-%dT%H:%M:%S").unwrap();
        let mut item =
            SessionItem::placeholder("20210301_161221", at, Status::Processed, Utc::now());
        item.file_count = 6;
        item.metadata
            .insert("fatigue".into(), MetaValue::Number(3.5));
        let f = Filter::new(
            "status = processed and files = 6 and fatigue > 3 and date = 2021-03-01",
            &LabSchema::default(),
        )
        .unwrap();
        assert!(f.matches(&item.subject()));
        assert_eq!(Subject::from(&item).status, "processed");
    }
}
