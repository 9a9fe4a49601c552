//! Why one unit of work failed, and therefore what happens next.

use labpipe_catalog::CatalogError;

/// The outcome class of a failed step.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The session itself is wrong: retrying cannot help. The session becomes `FAILED` with this
    /// reason, which names the file and says what to do.
    #[error("{0}")]
    Session(String),
    /// Something around the session failed (network, throttling, a busy session, a missing
    /// table): the message is retried and, after a few attempts, dead-lettered.
    #[error("{0}")]
    Transient(String),
}

impl Failure {
    pub fn session(reason: impl Into<String>) -> Self {
        Failure::Session(reason.into())
    }
    pub fn transient(reason: impl Into<String>) -> Self {
        Failure::Transient(reason.into())
    }
}

impl From<CatalogError> for Failure {
    /// Catalog errors are never the session's fault, except a manifest conflict.
    fn from(e: CatalogError) -> Self {
        match e {
            CatalogError::Conflict { .. } => Failure::Session(e.to_string()),
            other => Failure::Transient(other.to_string()),
        }
    }
}

/// A short description of an SDK error: the service code and message when there is one.
pub fn describe_sdk_error<E, R>(err: &aws_sdk_s3::error::SdkError<E, R>) -> String
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    use aws_sdk_s3::error::SdkError;
    match err {
        SdkError::ServiceError(e) => format!(
            "{}: {}",
            e.err().code().unwrap_or("unknown error"),
            e.err().message().unwrap_or("no message")
        ),
        SdkError::DispatchFailure(e) => format!("cannot reach the service ({e:?})"),
        SdkError::TimeoutError(_) => "timed out".to_string(),
        other => other.to_string(),
    }
}
