//! Catalog errors, classed so callers know whether to retry.
//!
//! The Lambdas turn a retryable error into an SQS retry (and, after a few, the dead-letter queue)
//! and a permanent one into a `FAILED` status; the CLI turns either into a message. A DynamoDB
//! error that is not about the session itself (throttling, a network hiccup, a missing table) is
//! never the session's fault, so the handlers do not mark sessions `FAILED` for it.

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

use crate::status::Status;

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("session {session} is not in the catalog (table {table}); check the session id, or wait until its upload is ingested")]
    NotFound { session: String, table: String },

    #[error("session {session} is {from} and cannot become {to}")]
    InvalidTransition {
        session: String,
        from: Status,
        to: Status,
    },

    #[error("session {session} is already cataloged from a different manifest (cataloged sha256 {existing}, new {incoming}); raw data is never replaced — upload a correction as a new revision: labpipe upload --revise --reason TEXT FOLDER")]
    Conflict {
        session: String,
        existing: String,
        incoming: String,
    },

    #[error("catalog item of session {session} is malformed: {reason}; fix or delete the item")]
    Malformed { session: String, reason: String },

    #[error("cannot import session {session}: {reason}; fix the record (nothing was imported)")]
    InvalidRecord { session: String, reason: String },

    #[error("the catalog entry of session {session} would be {size}, more than the {limit} a DynamoDB item holds (largest: {largest}); shorten those values in the session's metadata file (`labpipe check` names them) and upload it as a correction: labpipe upload --revise --reason TEXT FOLDER")]
    TooLarge {
        session: String,
        size: String,
        limit: String,
        largest: String,
    },

    #[error(
        "session {session} kept changing while being updated ({attempts} attempts); try again"
    )]
    Contention { session: String, attempts: u32 },

    #[error("catalog {operation} on table {table} failed: {message}")]
    Service {
        operation: &'static str,
        table: String,
        message: String,
        retryable: bool,
        /// DynamoDB's error code, when it answered with one.
        code: Option<String>,
    },
}

impl CatalogError {
    /// True when the same call may succeed later without anyone changing anything.
    pub fn is_retryable(&self) -> bool {
        match self {
            CatalogError::Contention { .. } => true,
            CatalogError::Service { retryable, .. } => *retryable,
            _ => false,
        }
    }

    /// True when no retry of the same request can succeed, whatever happens around it: a
    /// request DynamoDB rejects as invalid, a change the session's status does not allow, a
    /// malformed item, a conflicting manifest. A handler records such a failure instead of
    /// retrying the message until it is dead-lettered.
    ///
    /// A missing table, denied access or unknown credentials are *not* permanent: they are the
    /// deployment's fault, not the request's, and the message must survive (in the dead-letter
    /// queue) until an operator fixes the stack and redrives it.
    pub fn is_permanent(&self) -> bool {
        match self {
            CatalogError::Conflict { .. }
            | CatalogError::InvalidTransition { .. }
            | CatalogError::Malformed { .. }
            | CatalogError::InvalidRecord { .. }
            | CatalogError::TooLarge { .. }
            | CatalogError::NotFound { .. } => true,
            CatalogError::Contention { .. } => false,
            CatalogError::Service {
                retryable, code, ..
            } => {
                !retryable
                    && code
                        .as_deref()
                        .is_some_and(|c| PERMANENT_CODES.contains(&c))
            }
        }
    }

    /// A short stable code for programs (`{code, message}` at the app boundary).
    pub fn code(&self) -> &'static str {
        match self {
            CatalogError::NotFound { .. } => "not_found",
            CatalogError::InvalidTransition { .. } => "invalid_transition",
            CatalogError::Conflict { .. } => "conflict",
            CatalogError::Malformed { .. } => "malformed",
            CatalogError::InvalidRecord { .. } => "invalid_record",
            CatalogError::TooLarge { .. } => "too_large",
            CatalogError::Contention { .. } => "contention",
            CatalogError::Service { .. } => "service",
        }
    }
}

/// DynamoDB error codes worth retrying.
const RETRYABLE_CODES: &[&str] = &[
    "ThrottlingException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
    "TransactionConflictException",
    "TransactionInProgressException",
    "LimitExceededException",
];

/// DynamoDB error codes for a request that can never succeed as sent.
const PERMANENT_CODES: &[&str] = &[
    "ValidationException",
    "SerializationException",
    "ConditionalCheckFailedException",
    "ItemCollectionSizeLimitExceededException",
    "DuplicateItemException",
];

/// The service error code, when the call reached DynamoDB and it answered with one.
pub(crate) fn error_code<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> Option<&str> {
    match err {
        SdkError::ServiceError(e) => e.err().code(),
        _ => None,
    }
}

pub(crate) fn service<E, R>(
    operation: &'static str,
    table: &str,
    err: SdkError<E, R>,
) -> CatalogError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let code = error_code(&err).map(str::to_string);
    let (retryable, message) = match &err {
        SdkError::ServiceError(e) => {
            let code = e.err().code().unwrap_or("unknown");
            let msg = e.err().message().unwrap_or("no message");
            let hint = match code {
                "ResourceNotFoundException" => "; check the table name (--table, LABPIPE_TABLE or the stack outputs) and that the stack is deployed",
                "AccessDeniedException" | "UnrecognizedClientException" => "; check the credentials and the role's permissions on the table",
                _ => "",
            };
            (
                RETRYABLE_CODES.contains(&code),
                format!("{code}: {msg}{hint}"),
            )
        }
        SdkError::TimeoutError(_) => (true, "timed out; check the network and retry".to_string()),
        SdkError::DispatchFailure(e) => (
            true,
            format!("cannot reach DynamoDB ({e:?}); check the network or the endpoint URL"),
        ),
        SdkError::ResponseError(_) => {
            (true, "unreadable response from DynamoDB; retry".to_string())
        }
        other => (false, format!("{other}")),
    };
    CatalogError::Service {
        operation,
        table: table.to_string(),
        message,
        retryable,
        code,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service_error(code: Option<&str>, retryable: bool) -> CatalogError {
        CatalogError::Service {
            operation: "UpdateItem",
            table: "t".into(),
            message: "m".into(),
            retryable,
            code: code.map(str::to_string),
        }
    }

    #[test]
    fn only_errors_no_retry_can_fix_are_permanent() {
        let s = || "20210301_161221".to_string();
        let permanent = [
            service_error(Some("ValidationException"), false),
            service_error(Some("ConditionalCheckFailedException"), false),
            CatalogError::InvalidTransition {
                session: s(),
                from: Status::Failed,
                to: Status::Processed,
            },
            CatalogError::Malformed {
                session: s(),
                reason: "r".into(),
            },
            CatalogError::Conflict {
                session: s(),
                existing: "a".into(),
                incoming: "b".into(),
            },
        ];
        for e in &permanent {
            assert!(e.is_permanent(), "{e}");
            assert!(!e.is_retryable(), "{e}");
        }
        let not_permanent = [
            service_error(Some("ThrottlingException"), true),
            service_error(Some("ResourceNotFoundException"), false),
            service_error(Some("AccessDeniedException"), false),
            service_error(None, false),
            CatalogError::Contention {
                session: s(),
                attempts: 3,
            },
        ];
        for e in &not_permanent {
            assert!(!e.is_permanent(), "{e}");
        }
    }
}
