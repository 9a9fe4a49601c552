//! The local runner: long-polls the ingest and preprocess queues and feeds the handlers, the way
//! the Lambda event-source mappings do in AWS (batches, partial batch failures, retries).
//!
//! The emulator cannot invoke Lambdas (that needs Docker), so this is how the deployed local
//! stack processes uploads; it is also the debugger-friendly way to run the backend. A failed
//! message is made visible again after `retry_after` rather than the queue's production
//! visibility timeout, so a developer sees the retry; the queue's redrive policy still moves it
//! to the dead-letter queue after its maximum receive count.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_sqs::types::MessageSystemAttributeName;
use tracing::{info, warn};

use crate::config::{BackendConfig, Clients};
use crate::ingest::Ingest;
use crate::preprocess::Preprocess;

/// Which handler a queue feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queue {
    Ingest,
    Preprocess,
}

impl Queue {
    fn name(self) -> &'static str {
        match self {
            Queue::Ingest => "ingest",
            Queue::Preprocess => "preprocess",
        }
    }
}

/// How the runner polls.
#[derive(Debug, Clone)]
pub struct RunnerOptions {
    /// Long-poll wait per receive, in seconds (0–20).
    pub wait_secs: i32,
    /// Messages per batch (1–10), like the event-source mapping's batch size.
    pub batch_size: i32,
    /// A failed message becomes visible again after this long.
    pub retry_after_secs: i32,
}

impl Default for RunnerOptions {
    fn default() -> Self {
        RunnerOptions {
            wait_secs: 10,
            batch_size: 10,
            retry_after_secs: 10,
        }
    }
}

/// Counts of what the runner did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunnerStats {
    pub ingest_messages: u64,
    pub preprocess_messages: u64,
    pub retried: u64,
}

pub struct Runner {
    sqs: aws_sdk_sqs::Client,
    ingest: Ingest,
    preprocess: Preprocess,
    ingest_queue_url: String,
    preprocess_queue_url: String,
    options: RunnerOptions,
    stats: std::sync::Mutex<RunnerStats>,
}

impl Runner {
    pub fn new(clients: &Clients, config: &BackendConfig, options: RunnerOptions) -> Result<Self> {
        anyhow::ensure!(
            !config.ingest_queue_url.is_empty(),
            "LABPIPE_INGEST_QUEUE_URL is not set and no stack output provides it; deploy the stack (scripts/deploy-local.sh) or pass --ingest-queue-url"
        );
        Ok(Self::with_handlers(
            clients,
            config,
            Ingest::new(clients, config),
            Preprocess::new(clients, config),
            options,
        ))
    }

    /// A runner over given handlers (e.g. a preprocess with a lab's own pipeline).
    pub fn with_handlers(
        clients: &Clients,
        config: &BackendConfig,
        ingest: Ingest,
        preprocess: Preprocess,
        options: RunnerOptions,
    ) -> Self {
        Runner {
            sqs: clients.sqs.clone(),
            ingest,
            preprocess,
            ingest_queue_url: config.ingest_queue_url.clone(),
            preprocess_queue_url: config.preprocess_queue_url.clone(),
            options,
            stats: Default::default(),
        }
    }

    pub fn stats(&self) -> RunnerStats {
        *self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Receives one batch from `queue` (waiting up to `wait_secs`), runs the handler and deletes
    /// the messages it did not report as failed. Returns the number of messages received.
    pub async fn poll_once(&self, queue: Queue, wait_secs: i32) -> Result<usize> {
        let url = match queue {
            Queue::Ingest => &self.ingest_queue_url,
            Queue::Preprocess => &self.preprocess_queue_url,
        };
        let out = self
            .sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(self.options.batch_size.clamp(1, 10))
            .wait_time_seconds(wait_secs.clamp(0, 20))
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .with_context(|| format!("cannot receive from the {} queue {url}", queue.name()))?;
        let messages = out.messages();
        if messages.is_empty() {
            return Ok(0);
        }
        let mut event = SqsEvent::default();
        let mut receipts = HashMap::new();
        for m in messages {
            let id = m.message_id().unwrap_or_default().to_string();
            receipts.insert(
                id.clone(),
                m.receipt_handle().unwrap_or_default().to_string(),
            );
            let mut msg = SqsMessage::default();
            msg.message_id = Some(id);
            msg.receipt_handle = m.receipt_handle().map(str::to_string);
            msg.body = m.body().map(str::to_string);
            msg.md5_of_body = m.md5_of_body().map(str::to_string);
            msg.event_source = Some("aws:sqs".into());
            msg.event_source_arn = Some(url.clone());
            msg.attributes = m
                .attributes()
                .map(|a| {
                    a.iter()
                        .map(|(k, v)| (k.as_str().to_string(), v.clone()))
                        .collect()
                })
                .unwrap_or_default();
            event.records.push(msg);
        }
        let count = event.records.len();
        info!(queue = queue.name(), messages = count, "batch received");
        let response: SqsBatchResponse = match queue {
            Queue::Ingest => self.ingest.handle(event).await,
            Queue::Preprocess => self.preprocess.handle(event).await,
        };
        let failed: Vec<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        for (id, receipt) in &receipts {
            let request = if failed.contains(&id.as_str()) {
                self.sqs
                    .change_message_visibility()
                    .queue_url(url)
                    .receipt_handle(receipt)
                    .visibility_timeout(self.options.retry_after_secs.max(0))
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(anyhow::Error::from)
            } else {
                self.sqs
                    .delete_message()
                    .queue_url(url)
                    .receipt_handle(receipt)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(anyhow::Error::from)
            };
            if let Err(e) = request {
                warn!(queue = queue.name(), message_id = %id, error = %e, "cannot settle the message; it will be redelivered");
            }
        }
        let mut stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        match queue {
            Queue::Ingest => stats.ingest_messages += count as u64,
            Queue::Preprocess => stats.preprocess_messages += count as u64,
        }
        stats.retried += failed.len() as u64;
        Ok(count)
    }

    /// Polls both queues until both are empty twice in a row, or `max_rounds` rounds. For tests
    /// and scripts: returns when the pipeline has nothing more to do.
    pub async fn drain(&self, max_rounds: usize) -> Result<RunnerStats> {
        let mut idle = 0;
        for _ in 0..max_rounds {
            let n = self.poll_once(Queue::Ingest, 1).await?
                + self.poll_once(Queue::Preprocess, 1).await?;
            idle = if n == 0 { idle + 1 } else { 0 };
            if idle >= 2 {
                break;
            }
        }
        Ok(self.stats())
    }

    /// Polls both queues until `stop` is set (checked between batches, so a batch in progress
    /// finishes and its messages are settled) or `max_messages` were handled.
    pub async fn run(
        &self,
        stop: Arc<AtomicBool>,
        max_messages: Option<u64>,
    ) -> Result<RunnerStats> {
        info!(
            ingest_queue = %self.ingest_queue_url,
            preprocess_queue = %self.preprocess_queue_url,
            "local runner polling"
        );
        let wait = self.options.wait_secs;
        while !stop.load(Ordering::SeqCst) {
            let n = self.poll_once(Queue::Ingest, 0).await?;
            if stop.load(Ordering::SeqCst) {
                break;
            }
            // Long-poll the preprocess queue only when ingest had nothing, so new uploads are
            // picked up within one wait.
            let wait_here = if n == 0 { wait.min(5) } else { 0 };
            let m = self.poll_once(Queue::Preprocess, wait_here).await?;
            if n + m == 0 {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            let s = self.stats();
            if max_messages.is_some_and(|max| s.ingest_messages + s.preprocess_messages >= max) {
                break;
            }
        }
        Ok(self.stats())
    }
}
