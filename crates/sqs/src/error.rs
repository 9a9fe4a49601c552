//! Errors of the queue operations.

/// A queue operation that failed, with the queue and what to do.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The service refused or could not be reached.
    #[error("{operation} on {queue} failed: {message}{hint}")]
    Service {
        operation: &'static str,
        queue: String,
        message: String,
        /// What to do, when the error says it (e.g. access denied).
        hint: &'static str,
    },
}

impl QueueError {
    pub(crate) fn service<E>(operation: &'static str, queue: &str, err: E) -> Self
    where
        E: aws_sdk_sqs::error::ProvideErrorMetadata + std::fmt::Debug,
    {
        let code = err.code().unwrap_or_default().to_string();
        let message = match (err.code(), err.message()) {
            (Some(c), Some(m)) => format!("{c}: {m}"),
            (Some(c), None) => c.to_string(),
            _ => format!("{err:?}"),
        };
        let hint = if code.contains("AccessDenied") {
            "; these commands need an operator's credentials (sqs:SendMessage on the pipeline queues, sqs:ReceiveMessage and sqs:DeleteMessage on the dead-letter queues)"
        } else if code.contains("NonExistentQueue") || code.contains("QueueDoesNotExist") {
            "; check the queue URL (stack outputs file, or the LABPIPE_*_QUEUE_URL variables)"
        } else {
            ""
        };
        QueueError::Service {
            operation,
            queue: queue.to_string(),
            message,
            hint,
        }
    }
}
