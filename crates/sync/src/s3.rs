//! The S3 side of a sync, on the workspace's S3 gateway (`labpipe-aws`): its client for
//! downloads (bounded retries, a minute without bytes is a stall, path-style addressing for an
//! endpoint, no SDK response checksums: every file is verified against the catalog's SHA-256)
//! and its one error classification, put in words that say what a researcher can do and whether
//! running again can help.

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use labpipe_aws::{ErrorClass, S3Error};

use crate::SyncError;

/// The S3 client a sync needs: the gateway's client with its download options.
pub fn s3_client(sdk: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    labpipe_aws::s3_client(sdk, &labpipe_aws::ClientOptions::download())
}

/// One S3 failure on `s3://bucket/key` as a [`SyncError::S3`].
pub(crate) fn s3_error<E>(bucket: &str, key: &str, err: SdkError<E, HttpResponse>) -> SyncError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    from_gateway(
        bucket,
        key,
        labpipe_aws::classify(&err),
        labpipe_aws::describe(&err),
    )
}

/// A gateway error (a manifest read) as a [`SyncError`].
pub(crate) fn gateway_error(bucket: &str, key: &str, err: S3Error) -> SyncError {
    match err {
        S3Error::Call { class, detail, .. } => from_gateway(bucket, key, class, detail),
        S3Error::Interrupted { detail, .. } => interrupted(bucket, key, detail),
        other => SyncError::S3 {
            bucket: bucket.into(),
            key: key.into(),
            message: other.to_string(),
            retryable: false,
        },
    }
}

fn from_gateway(bucket: &str, key: &str, class: ErrorClass, detail: String) -> SyncError {
    let (message, retryable) = match class {
        ErrorClass::NoSuchBucket => ("the bucket does not exist; check the bucket name (stack outputs) and region".to_string(), false),
        ErrorClass::NotFound => (
            "not found: the catalog lists it but the bucket does not have it; ask the operator to re-run preprocessing".to_string(),
            false,
        ),
        // For an identity without s3:ListBucket, S3 answers a missing key with 403 as well.
        ErrorClass::AccessDenied => (
            "access denied (or missing, for an identity that may not list the bucket); check the credentials or the instance role's read permission on the bucket".to_string(),
            false,
        ),
        ErrorClass::InvalidCredentials => (
            format!("the credentials were refused or are missing ({detail}); check AWS_PROFILE, SSO login or the instance role"),
            false,
        ),
        ErrorClass::PreconditionFailed => ("the object changed while it was being downloaded; run again".to_string(), true),
        ErrorClass::Retryable => (format!("{detail}; check the network and run again"), true),
        ErrorClass::Permanent | ErrorClass::NoSuchUpload => (detail, false),
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
