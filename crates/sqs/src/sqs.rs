//! The queue operations: send a message, list a dead-letter queue without consuming it, move a
//! dead-letter queue's messages back to their source queue.

use std::collections::BTreeSet;

use aws_sdk_sqs::types::MessageSystemAttributeName;
use aws_sdk_sqs::Client;
use serde::Serialize;

use crate::error::QueueError;
use crate::message::session_of;

/// At most this many messages are listed or moved in one call: far above what a lab's
/// dead-letter queue holds (a few a month), and a bound on a run that meets a flood.
pub const MAX_MESSAGES: usize = 10_000;
/// How long a message received for listing or moving stays hidden from other readers. Long enough
/// for one send + delete; a message whose move was interrupted reappears after it.
const HOLD_SECS: i32 = 60;
/// Long polling (any wait > 0) asks every SQS server, so an empty answer means the queue is
/// empty; short polling samples a subset and may answer empty while messages exist.
/// <https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-short-and-long-polling.html>
const WAIT_SECS: i32 = 1;

/// One message sitting in a dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeadLetter {
    pub message_id: String,
    /// The session the message is about, when it names one.
    pub session: Option<String>,
    /// When the message was first sent (ms since the epoch, SQS's `SentTimestamp`).
    pub sent_at_ms: Option<u64>,
    /// How often it was received before it was dead-lettered (and while it sat there).
    pub receive_count: Option<u64>,
    pub body: String,
}

impl DeadLetter {
    /// Why the session this message names does not move on, and the command that moves it once
    /// the cause is fixed: the one wording of `labpipe status` for a message in `queue`'s
    /// (`ingest` or `preprocess`) dead-letter queue. `cataloged`: whether the catalog has an
    /// entry for the session (an S3 event dead-lettered before ingest wrote one is the only trace
    /// of its upload).
    pub fn reason(&self, queue: &str, cataloged: bool) -> String {
        let received = self.receive_count.unwrap_or(0);
        if cataloged {
            format!(
                "a message for it is in the {queue} dead-letter queue (received {received} times): fix the cause (its last error, the {queue} function's logs), then `labpipe redrive --queue {queue}`"
            )
        } else {
            format!(
                "not in the catalog: its S3 event is in the {queue} dead-letter queue (received {received} times), so ingest never cataloged it; fix the cause (the {queue} function's log), then `labpipe redrive --queue {queue}`"
            )
        }
    }
}

/// One message moved back to its source queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Moved {
    /// Its id in the dead-letter queue (gone now).
    pub dead_letter_id: String,
    /// Its id in the source queue.
    pub message_id: String,
    pub session: Option<String>,
}

/// The pipeline's queues, through one SQS client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Queues {
    sqs: Client,
}

impl Queues {
    pub fn new(sqs: Client) -> Self {
        Queues { sqs }
    }

    /// Queues over a client built from the caller's AWS configuration.
    pub fn from_sdk(sdk: &aws_config::SdkConfig) -> Self {
        Queues::new(Client::new(sdk))
    }

    /// Sends one message; returns its id.
    pub async fn send(&self, queue_url: &str, body: &str) -> Result<String, QueueError> {
        let out = self
            .sqs
            .send_message()
            .queue_url(queue_url)
            .message_body(body)
            .send()
            .await
            .map_err(|e| QueueError::service("SendMessage", queue_url, e.into_service_error()))?;
        Ok(out.message_id().unwrap_or_default().to_string())
    }

    /// The messages of a (dead-letter) queue, left in it: each is received, then made visible
    /// again at once. Reading counts as a receive (`ApproximateReceiveCount` grows), which a
    /// dead-letter queue without a redrive policy of its own ignores.
    pub async fn list(&self, queue_url: &str) -> Result<Vec<DeadLetter>, QueueError> {
        let mut found = Vec::new();
        let mut receipts = Vec::new();
        let mut seen = BTreeSet::new();
        let result = async {
            while found.len() < MAX_MESSAGES {
                let batch = self.receive(queue_url).await?;
                let mut new = 0;
                for m in batch {
                    let id = m.message_id().unwrap_or_default().to_string();
                    if let Some(r) = m.receipt_handle() {
                        receipts.push(r.to_string());
                    }
                    if seen.insert(id) {
                        new += 1;
                        found.push(dead_letter(&m));
                    }
                }
                if new == 0 {
                    break;
                }
            }
            Ok::<_, QueueError>(())
        }
        .await;
        // Visible again now, not after the hold, whatever happened above.
        for r in &receipts {
            let _ = self.release(queue_url, r).await;
        }
        result.map(|_| found)
    }

    /// Moves every message of `dead_letter_url` that was sent before this call to `source_url`
    /// (same body and message attributes), deleting each from the dead-letter queue only after
    /// the source queue accepted its copy. A message dead-lettered again while this runs is left
    /// where it is, so the call ends even if the cause is not fixed.
    pub async fn move_back(
        &self,
        dead_letter_url: &str,
        source_url: &str,
    ) -> Result<Vec<Moved>, QueueError> {
        let started_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let mut moved = Vec::new();
        while moved.len() < MAX_MESSAGES {
            let batch = self.receive(dead_letter_url).await?;
            if batch.is_empty() {
                break;
            }
            let mut progressed = false;
            for m in batch {
                let receipt = m.receipt_handle().unwrap_or_default().to_string();
                let letter = dead_letter(&m);
                if letter.sent_at_ms.is_some_and(|t| t >= started_ms) {
                    let _ = self.release(dead_letter_url, &receipt).await;
                    continue;
                }
                let sent = self
                    .sqs
                    .send_message()
                    .queue_url(source_url)
                    .message_body(&letter.body)
                    .set_message_attributes(m.message_attributes().cloned())
                    .send()
                    .await
                    .map_err(|e| {
                        QueueError::service("SendMessage", source_url, e.into_service_error())
                    });
                let sent = match sent {
                    Ok(out) => out,
                    Err(e) => {
                        let _ = self.release(dead_letter_url, &receipt).await;
                        return Err(e);
                    }
                };
                self.sqs
                    .delete_message()
                    .queue_url(dead_letter_url)
                    .receipt_handle(&receipt)
                    .send()
                    .await
                    .map_err(|e| {
                        QueueError::service(
                            "DeleteMessage",
                            dead_letter_url,
                            e.into_service_error(),
                        )
                    })?;
                progressed = true;
                moved.push(Moved {
                    dead_letter_id: letter.message_id,
                    message_id: sent.message_id().unwrap_or_default().to_string(),
                    session: letter.session,
                });
            }
            if !progressed {
                break;
            }
        }
        Ok(moved)
    }

    async fn receive(
        &self,
        queue_url: &str,
    ) -> Result<Vec<aws_sdk_sqs::types::Message>, QueueError> {
        let out = self
            .sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(WAIT_SECS)
            .visibility_timeout(HOLD_SECS)
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(|e| {
                QueueError::service("ReceiveMessage", queue_url, e.into_service_error())
            })?;
        Ok(out.messages().to_vec())
    }

    async fn release(&self, queue_url: &str, receipt: &str) -> Result<(), QueueError> {
        self.sqs
            .change_message_visibility()
            .queue_url(queue_url)
            .receipt_handle(receipt)
            .visibility_timeout(0)
            .send()
            .await
            .map_err(|e| {
                QueueError::service("ChangeMessageVisibility", queue_url, e.into_service_error())
            })?;
        Ok(())
    }
}

fn dead_letter(m: &aws_sdk_sqs::types::Message) -> DeadLetter {
    let attr = |name: MessageSystemAttributeName| {
        m.attributes()
            .and_then(|a| a.get(&name))
            .and_then(|v| v.parse::<u64>().ok())
    };
    let body = m.body().unwrap_or_default().to_string();
    DeadLetter {
        message_id: m.message_id().unwrap_or_default().to_string(),
        session: session_of(&body),
        sent_at_ms: attr(MessageSystemAttributeName::SentTimestamp),
        receive_count: attr(MessageSystemAttributeName::ApproximateReceiveCount),
        body,
    }
}
