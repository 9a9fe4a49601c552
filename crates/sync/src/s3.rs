//! The S3 side of a sync: the client it needs and one classification of S3 failures into
//! messages that say what to do, and whether running again can help.

use std::time::Duration;

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::ResponseChecksumValidation;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

use crate::SyncError;

/// The S3 client a sync needs: bounded retries, timeouts that turn a stalled connection into a
/// retry, path-style addressing when an endpoint is configured (`AWS_ENDPOINT_URL`), and no SDK
/// response checksums (every file is verified against the catalog's SHA-256 instead).
pub fn s3_client(sdk: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    let retry = RetryConfig::standard()
        .with_max_attempts(6)
        .with_initial_backoff(Duration::from_millis(200))
        .with_max_backoff(Duration::from_secs(8));
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(5))
        .read_timeout(Duration::from_secs(60))
        .build();
    let conf = aws_sdk_s3::config::Builder::from(sdk)
        .retry_config(retry)
        .timeout_config(timeouts)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .force_path_style(sdk.endpoint_url().is_some())
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// One S3 failure on `s3://bucket/key` as a [`SyncError::S3`].
pub(crate) fn s3_error<E>(bucket: &str, key: &str, err: SdkError<E, HttpResponse>) -> SyncError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let (message, retryable) = match &err {
        SdkError::ServiceError(e) => {
            let status = e.raw().status().as_u16();
            match (e.err().code(), status) {
                (Some("NoSuchBucket"), _) => ("the bucket does not exist; check the bucket name (stack outputs) and region".to_string(), false),
                (Some("NoSuchKey"), _) | (_, 404) => {
                    ("not found: the catalog lists it but the bucket does not have it; ask the operator to re-run preprocessing".to_string(), false)
                }
                (Some("AccessDenied"), _) | (_, 403) => {
                    ("access denied; check the credentials or the instance role's read permission on the bucket".to_string(), false)
                }
                (Some("PreconditionFailed"), _) | (_, 412) => ("the object changed while it was being downloaded; run again".to_string(), true),
                (code, status) => (
                    format!("{} (HTTP {status}): {}", code.unwrap_or("error"), e.err().message().unwrap_or("no message")),
                    status >= 500,
                ),
            }
        }
        SdkError::TimeoutError(_) => (
            "timed out; check the network and run again".to_string(),
            true,
        ),
        SdkError::DispatchFailure(e) => (
            format!("cannot reach S3 ({e:?}); check the network or AWS_ENDPOINT_URL"),
            true,
        ),
        other => (other.to_string(), true),
    };
    SyncError::S3 {
        bucket: bucket.into(),
        key: key.into(),
        message,
        retryable,
    }
}

/// A body stream that broke off mid-download.
pub(crate) fn interrupted(bucket: &str, key: &str, err: impl std::fmt::Display) -> SyncError {
    SyncError::S3 {
        bucket: bucket.into(),
        key: key.into(),
        message: format!("download interrupted: {err}; run again"),
        retryable: true,
    }
}
