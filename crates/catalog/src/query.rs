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

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use labpipe_core::filter::dynamo::{compile, AttrValue, Compiled, Plan, MONTH_PLACEHOLDER};
use labpipe_core::filter::{Filter, Subject};

use crate::error::{service, CatalogError};
use crate::item::SessionItem;
use crate::store::{read_pages, Catalog, ScanFilter};

/// Items fetched per request page; small enough to keep one page quick on a slow link.
const PAGE: i32 = 500;

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
                let mut found = Vec::new();
                for month in months {
                    if found.len() >= limit {
                        break;
                    }
                    self.query_month(&compiled, index, key_condition, month, limit, &mut found)
                        .await?;
                }
                found
            }
            Plan::Scan => self.scan_filtered(&compiled).await?,
        };
        found.sort_by(SessionItem::cmp_recorded);
        found.truncate(limit);
        Ok(found)
    }

    async fn query_month(
        &self,
        compiled: &Compiled,
        index: &str,
        key_condition: &str,
        month: &str,
        limit: usize,
        found: &mut Vec<SessionItem>,
    ) -> Result<(), CatalogError> {
        let mut vals = values(compiled);
        vals.insert(
            MONTH_PLACEHOLDER.to_string(),
            AttributeValue::S(month.to_string()),
        );
        let vals = &vals;
        read_pages(
            found,
            |n| n >= limit,
            |start| async move {
                let out = self
                    .client()
                    .query()
                    .table_name(self.table())
                    .index_name(index)
                    .key_condition_expression(key_condition)
                    .set_filter_expression(compiled.filter.clone())
                    .set_expression_attribute_names(Some(names(compiled)))
                    .set_expression_attribute_values(Some(vals.clone()))
                    .limit(PAGE)
                    .set_exclusive_start_key(start)
                    .send()
                    .await
                    .map_err(|e| service("Query", self.table(), e))?;
                Ok((out.items().to_vec(), out.last_evaluated_key().cloned()))
            },
        )
        .await
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Status;
    use chrono::{NaiveDateTime, Utc};
    use labpipe_core::{LabSchema, MetaValue};

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
