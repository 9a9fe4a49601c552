//! The two-item transaction every status change is: the session's `META` item, written on a
//! condition, and its new `EVENT#…` item; and how DynamoDB reports that the condition failed (a
//! lost race, retried by the caller) or that a write is invalid as sent (permanent).

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::builders::PutBuilder;
use aws_sdk_dynamodb::types::{CancellationReason, Put, TransactWriteItem};

use crate::error::{service, CatalogError};
use crate::item::Event;
use crate::store::Catalog;

impl Catalog {
    /// Writes `op` and the event item in one transaction. `Ok(false)` when `op`'s condition
    /// failed (someone else changed the session).
    pub(crate) async fn write_with_event(
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
fn canceled_as_invalid<R>(e: &SdkError<TransactWriteItemsError, R>) -> Option<String> {
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

/// A conditional put as one write of a transaction.
pub(crate) fn put_op(put: PutBuilder) -> TransactWriteItem {
    TransactWriteItem::builder()
        .put(put.build().expect("table and item are set"))
        .build()
}

/// Whether a transaction failed on a condition (or on a concurrent transaction): the session
/// changed since it was read.
pub(crate) fn is_condition_failure<R>(e: &SdkError<TransactWriteItemsError, R>) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
