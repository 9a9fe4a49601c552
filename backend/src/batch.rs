//! The one SQS batch loop both handlers run: each message on its own, a retryable failure
//! reported as a batch item failure (SQS redelivers it and, after the queue's
//! `maxReceiveCount`, dead-letters it), a permanent one recorded as `FAILED` with its reason
//! and the message settled.
//!
//! A handler that panics must not leave its session in `PROCESSING` with no reason: each message
//! runs as its own task, a panic is caught at the task boundary, and the handler is asked to fail
//! the sessions the message names with the panic's text. (A process that dies outright — out of
//! memory, the function's time limit — cannot be caught here; preprocess detects the stale claim
//! on the message's next delivery, see `Preprocess::process`.)

use std::future::Future;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use tracing::{error, warn};

use crate::failure::Failure;

/// One kind of queue message and what to do with it.
pub trait MessageHandler: Clone + Send + Sync + 'static {
    /// The step name, in logs and catalog events.
    const STEP: &'static str;

    /// Handles one message. `Ok` when it is done (including a session recorded as `FAILED`),
    /// `Err(Transient)` to have it redelivered, `Err(Session)` for a permanent failure the
    /// handler could not record itself: the loop then calls [`Self::fail_message`].
    fn handle_message(
        &self,
        message: SqsMessage,
    ) -> impl Future<Output = Result<(), Failure>> + Send;

    /// Records `reason` as the `FAILED` reason of every session `message` names. `Err(Transient)`
    /// has the message redelivered; `Err(Session)` means it cannot be recorded at all (the
    /// message is dropped with an error in the log).
    fn fail_message(
        &self,
        message: &SqsMessage,
        reason: &str,
    ) -> impl Future<Output = Result<(), Failure>> + Send;
}

/// How many times SQS has delivered this message, this delivery included (1 when unknown).
pub fn delivery_count(message: &SqsMessage) -> u32 {
    message
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|n| n.parse().ok())
        .unwrap_or(1)
}

/// Runs `handler` over every message of the batch; returns the messages to redeliver.
pub async fn handle_batch<H: MessageHandler>(handler: &H, event: SqsEvent) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    for message in event.records {
        let id = message.message_id.clone().unwrap_or_default();
        let task = {
            let handler = handler.clone();
            let message = message.clone();
            tokio::spawn(async move { handler.handle_message(message).await })
        };
        let result = match task.await {
            Ok(result) => result,
            Err(join) => {
                let what = if join.is_panic() {
                    panic_text(join.into_panic())
                } else {
                    "the task was cancelled".to_string()
                };
                let reason = format!(
                    "{} stopped unexpectedly ({what}); this is a LabPipe bug — report it with the session id and the log",
                    H::STEP
                );
                error!(message_id = %id, step = H::STEP, reason = %reason, "handler crashed");
                Err(Failure::Session(reason))
            }
        };
        let result = match result {
            Err(Failure::Session(reason)) => handler.fail_message(&message, &reason).await,
            other => other,
        };
        match result {
            Ok(()) => {}
            Err(Failure::Transient(reason)) => {
                warn!(message_id = %id, step = H::STEP, error = %reason, "message will be retried");
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = id;
                response.batch_item_failures.push(failure);
            }
            Err(Failure::Session(reason)) => {
                error!(message_id = %id, step = H::STEP, error = %reason, "message dropped: the failure cannot be recorded in the catalog");
            }
        }
    }
    response
}

fn panic_text(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Fails or panics as the body says, and remembers what it was asked to record.
    #[derive(Clone, Default)]
    struct Scripted {
        failed: Arc<Mutex<Vec<(String, String)>>>,
    }

    impl MessageHandler for Scripted {
        const STEP: &'static str = "test";

        async fn handle_message(&self, message: SqsMessage) -> Result<(), Failure> {
            match message.body.as_deref().unwrap_or_default() {
                "ok" => Ok(()),
                "transient" => Err(Failure::transient("busy")),
                "permanent" => Err(Failure::session("bad input")),
                "unrecordable" => Err(Failure::session("cannot record")),
                "panic" => panic!("index out of bounds"),
                other => unreachable!("{other}"),
            }
        }

        async fn fail_message(&self, message: &SqsMessage, reason: &str) -> Result<(), Failure> {
            let body = message.body.clone().unwrap_or_default();
            if body == "unrecordable" {
                return Err(Failure::session("no such session"));
            }
            self.failed.lock().unwrap().push((body, reason.to_string()));
            Ok(())
        }
    }

    fn message(id: &str, body: &str) -> SqsMessage {
        let mut m = SqsMessage::default();
        m.message_id = Some(id.into());
        m.body = Some(body.into());
        m
    }

    #[tokio::test]
    async fn each_outcome_settles_its_message() {
        let handler = Scripted::default();
        let mut event = SqsEvent::default();
        for (id, body) in [
            ("1", "ok"),
            ("2", "transient"),
            ("3", "permanent"),
            ("4", "panic"),
            ("5", "unrecordable"),
        ] {
            event.records.push(message(id, body));
        }
        let response = handle_batch(&handler, event).await;
        let retried: Vec<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(retried, ["2"]);
        let failed = handler.failed.lock().unwrap().clone();
        assert_eq!(failed.len(), 2, "{failed:?}");
        assert_eq!(failed[0], ("permanent".into(), "bad input".into()));
        assert_eq!(failed[1].0, "panic");
        assert!(
            failed[1]
                .1
                .starts_with("test stopped unexpectedly (index out of bounds)"),
            "{}",
            failed[1].1
        );
    }

    #[test]
    fn delivery_counts_come_from_the_attributes() {
        let mut m = message("1", "ok");
        assert_eq!(delivery_count(&m), 1);
        m.attributes
            .insert("ApproximateReceiveCount".into(), "3".into());
        assert_eq!(delivery_count(&m), 3);
    }
}
