//! One classification of S3 failures for every caller, and the crate's error type.
//!
//! The upload, sync, the backend and the app each need the same answer to "what went wrong?":
//! may it succeed later unchanged (retry), does the object not exist, is the caller not allowed,
//! are the credentials refused, did a condition (`If-None-Match`, `If-Match`) fail? [`classify`]
//! gives that answer from an SDK error once, from the S3 error code first and the HTTP status
//! second (a HEAD response has no body, so only its status is known).
//!
//! **403 may mean "missing".** AWS answers a GET or HEAD of a key that does not exist with 404
//! only when the caller also has `s3:ListBucket` on the bucket; without it the answer is
//! 403 Access Denied, so that a caller cannot probe which keys exist
//! (<https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadObject.html>, "Permissions";
//! <https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html>, "Permissions"). A role
//! whose `s3:ListBucket` is limited by an `s3:prefix` condition lacks it for a HEAD, which carries
//! no prefix. So [`ErrorClass::AccessDenied`] on an object the caller expects to read must be
//! treated as "missing or not readable", never as proof the object exists; and code that must
//! know whether a key exists lists the prefix instead of relying on a 404.

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use std::error::Error as StdError;

/// What a failed S3 call means for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// May succeed later unchanged: throttling, 5xx, timeouts, resets, an unreadable response.
    Retryable,
    /// Will fail again the same way: a malformed request, an unsupported argument.
    Permanent,
    /// The key or version does not exist (404). A caller without `s3:ListBucket` gets
    /// [`ErrorClass::AccessDenied`] instead; see the module documentation.
    NotFound,
    /// The bucket does not exist (or is in another account and region).
    NoSuchBucket,
    /// The multipart upload id is unknown: completed or aborted (by a lifecycle rule, or by
    /// another uploader).
    NoSuchUpload,
    /// The caller is not allowed (403) — or, for a GET/HEAD, the key may simply not exist.
    AccessDenied,
    /// The credentials were refused or could not be loaded: unknown key id, bad signature,
    /// expired session token, no credentials at all.
    InvalidCredentials,
    /// A condition failed (412): `If-None-Match: *` on an existing key, `If-Match` on a changed
    /// object.
    PreconditionFailed,
}

impl ErrorClass {
    /// True when the same call may succeed later without anyone changing anything.
    pub fn is_retryable(self) -> bool {
        self == ErrorClass::Retryable
    }

    /// A short stable name for logs and programs.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Retryable => "retryable",
            ErrorClass::Permanent => "permanent",
            ErrorClass::NotFound => "not_found",
            ErrorClass::NoSuchBucket => "no_such_bucket",
            ErrorClass::NoSuchUpload => "no_such_upload",
            ErrorClass::AccessDenied => "access_denied",
            ErrorClass::InvalidCredentials => "invalid_credentials",
            ErrorClass::PreconditionFailed => "precondition_failed",
        }
    }

    /// What a person can do about it, as the end of a message.
    pub fn advice(self) -> &'static str {
        match self {
            ErrorClass::Retryable => "it may succeed later; check the network and try again",
            ErrorClass::Permanent => "the request was refused as invalid; report it with the log",
            ErrorClass::NotFound => "the object does not exist",
            ErrorClass::NoSuchBucket => {
                "the bucket does not exist; check the bucket name (stack outputs) and the region"
            }
            ErrorClass::NoSuchUpload => {
                "the multipart upload no longer exists (completed or aborted elsewhere); run the upload again"
            }
            ErrorClass::AccessDenied => {
                "access denied; check the credentials and the role's permissions (to a role without s3:ListBucket a missing object also reads as access denied)"
            }
            ErrorClass::InvalidCredentials => {
                "the credentials were refused or are missing; sign in again, or check the access key, profile and clock"
            }
            ErrorClass::PreconditionFailed => {
                "the object exists already or changed meanwhile (a write condition failed)"
            }
        }
    }
}

impl std::fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// S3 (and STS) error codes whose call may succeed later.
const RETRYABLE_CODES: &[&str] = &[
    "SlowDown",
    "InternalError",
    "ServiceUnavailable",
    "RequestTimeout",
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "TooManyRequestsException",
    // A conflicting conditional operation on the same key is in progress.
    "OperationAborted",
];

/// Codes for refused or unusable credentials.
const CREDENTIAL_CODES: &[&str] = &[
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "ExpiredTokenException",
    "TokenRefreshRequired",
    "InvalidToken",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "RequestTimeTooSkewed",
];

/// The class of an answer S3 gave: its error code when there is one (a HEAD has none), then its
/// HTTP status. Pure, so the table is tested without a server.
pub fn classify_response(code: Option<&str>, status: Option<u16>) -> ErrorClass {
    match code {
        Some("NoSuchBucket") => return ErrorClass::NoSuchBucket,
        Some("NoSuchUpload") => return ErrorClass::NoSuchUpload,
        Some("NoSuchKey" | "NoSuchVersion" | "NotFound") => return ErrorClass::NotFound,
        Some("PreconditionFailed") => return ErrorClass::PreconditionFailed,
        Some("AccessDenied" | "AllAccessDisabled" | "AccountProblem" | "AccessDeniedException") => {
            return ErrorClass::AccessDenied
        }
        Some(c) if CREDENTIAL_CODES.contains(&c) => return ErrorClass::InvalidCredentials,
        Some(c) if RETRYABLE_CODES.contains(&c) => return ErrorClass::Retryable,
        _ => {}
    }
    match status {
        Some(404) => ErrorClass::NotFound,
        Some(403) => ErrorClass::AccessDenied,
        Some(401) => ErrorClass::InvalidCredentials,
        Some(412) => ErrorClass::PreconditionFailed,
        Some(408 | 429) => ErrorClass::Retryable,
        Some(s) if s >= 500 => ErrorClass::Retryable,
        // A service answer with no code and no status is not something to retry blindly.
        _ => ErrorClass::Permanent,
    }
}

/// The class of a failed SDK call (after the SDK's own retries).
pub fn classify<E>(err: &SdkError<E, HttpResponse>) -> ErrorClass
where
    E: ProvideErrorMetadata + StdError + 'static,
{
    match err {
        SdkError::ServiceError(e) => {
            classify_response(e.err().code(), Some(e.raw().status().as_u16()))
        }
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => ErrorClass::Retryable,
        SdkError::DispatchFailure(e) => {
            if e.is_io() || e.is_timeout() {
                ErrorClass::Retryable
            } else if mentions_credentials(err) {
                ErrorClass::InvalidCredentials
            } else if e.is_user() {
                ErrorClass::Permanent
            } else {
                ErrorClass::Retryable
            }
        }
        SdkError::ConstructionFailure(_) if mentions_credentials(err) => {
            ErrorClass::InvalidCredentials
        }
        _ => ErrorClass::Permanent,
    }
}

/// Credential providers fail before anything is sent; their errors only say so in words
/// ("failed to load credentials", "no credentials in the property bag").
fn mentions_credentials(err: &(dyn StdError + 'static)) -> bool {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        let text = e.to_string().to_ascii_lowercase();
        if text.contains("credentials") || text.contains("identity") {
            return true;
        }
        cur = e.source();
    }
    false
}

/// A short description of a failed call: `Code: message` when S3 answered, else what happened
/// to the connection.
pub fn describe<E>(err: &SdkError<E, HttpResponse>) -> String
where
    E: ProvideErrorMetadata + StdError + 'static,
{
    match err {
        SdkError::ServiceError(e) => {
            let status = e.raw().status().as_u16();
            match (e.err().code(), e.err().message()) {
                (Some(c), Some(m)) => format!("{c}: {m}"),
                (Some(c), None) => c.to_string(),
                _ => format!("HTTP {status}"),
            }
        }
        SdkError::TimeoutError(_) => "timed out".to_string(),
        SdkError::DispatchFailure(e) if e.is_io() => {
            format!("cannot reach the service: {}", innermost(err))
        }
        _ => DisplayErrorContext(err).to_string(),
    }
}

fn innermost(e: &(dyn StdError + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    #[error("{operation} s3://{bucket}/{key} failed ({class}): {detail}; {}", .class.advice())]
    Call {
        operation: &'static str,
        bucket: String,
        key: String,
        class: ErrorClass,
        detail: String,
    },

    #[error("endpoint {url} is not accepted: {reason}")]
    Endpoint { url: String, reason: String },

    #[error("role {arn} cannot be assumed: {reason}; copy the stack's UploaderRoleArn output (arn:aws:iam::ACCOUNT:role/NAME)")]
    RoleArn { arn: String, reason: String },

    #[error("s3://{bucket}/{key} is {size} bytes, over the {limit}-byte limit for a manifest; it is not a manifest LabPipe wrote — upload the session again with `labpipe upload`")]
    ManifestTooLarge {
        bucket: String,
        key: String,
        size: u64,
        limit: u64,
    },

    #[error("s3://{bucket}/{key} is not a readable manifest: {source}; upload the session again with `labpipe upload`")]
    ManifestInvalid {
        bucket: String,
        key: String,
        /// SHA-256 of the bytes read, to compare with what the catalog recorded.
        sha256: String,
        #[source]
        source: labpipe_core::manifest::ManifestError,
    },

    #[error("reading s3://{bucket}/{key} was interrupted: {detail}; try again")]
    Interrupted {
        bucket: String,
        key: String,
        detail: String,
    },

    #[error("stack outputs {origin}: {reason}")]
    StackOutputs { origin: String, reason: String },
}

impl S3Error {
    /// A failed call on `s3://bucket/key`, classified.
    pub fn call<E>(
        operation: &'static str,
        bucket: &str,
        key: &str,
        err: &SdkError<E, HttpResponse>,
    ) -> Self
    where
        E: ProvideErrorMetadata + StdError + 'static,
    {
        S3Error::Call {
            operation,
            bucket: bucket.to_string(),
            key: key.to_string(),
            class: classify(err),
            detail: describe(err),
        }
    }

    /// The class of the failure: calls carry theirs; a manifest that is too large or invalid is
    /// permanent; an interrupted read is retryable.
    pub fn class(&self) -> ErrorClass {
        match self {
            S3Error::Call { class, .. } => *class,
            S3Error::Interrupted { .. } => ErrorClass::Retryable,
            S3Error::Endpoint { .. }
            | S3Error::RoleArn { .. }
            | S3Error::ManifestTooLarge { .. }
            | S3Error::ManifestInvalid { .. }
            | S3Error::StackOutputs { .. } => ErrorClass::Permanent,
        }
    }

    pub fn is_retryable(&self) -> bool {
        self.class().is_retryable()
    }

    /// A short stable code for programs (`{code, message}` at the app boundary).
    pub fn code(&self) -> &'static str {
        match self {
            S3Error::Call { class, .. } => class.as_str(),
            S3Error::Endpoint { .. } => "endpoint",
            S3Error::RoleArn { .. } => "role_arn",
            S3Error::ManifestTooLarge { .. } => "manifest_too_large",
            S3Error::ManifestInvalid { .. } => "manifest_invalid",
            S3Error::Interrupted { .. } => "interrupted",
            S3Error::StackOutputs { .. } => "stack_outputs",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_s3::error::ErrorMetadata;
    use aws_sdk_s3::operation::get_object::GetObjectError;
    use aws_sdk_s3::operation::head_object::HeadObjectError;
    use aws_sdk_s3::primitives::SdkBody;
    use aws_smithy_runtime_api::client::result::ConnectorError;
    use aws_smithy_runtime_api::http::StatusCode;

    fn response(status: u16) -> HttpResponse {
        HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::empty())
    }

    fn service(code: Option<&str>, status: u16) -> SdkError<GetObjectError, HttpResponse> {
        let mut meta = ErrorMetadata::builder().message("m");
        if let Some(c) = code {
            meta = meta.code(c);
        }
        SdkError::service_error(GetObjectError::generic(meta.build()), response(status))
    }

    #[test]
    fn service_answers_are_classed_by_code_then_status() {
        use ErrorClass::*;
        let table: &[(Option<&str>, u16, ErrorClass)] = &[
            (Some("NoSuchKey"), 404, NotFound),
            (Some("NoSuchVersion"), 404, NotFound),
            (None, 404, NotFound),
            (Some("NoSuchBucket"), 404, NoSuchBucket),
            (Some("NoSuchUpload"), 404, NoSuchUpload),
            (Some("AccessDenied"), 403, AccessDenied),
            (Some("AllAccessDisabled"), 403, AccessDenied),
            // A HEAD of a missing key, for a caller without s3:ListBucket.
            (None, 403, AccessDenied),
            (Some("InvalidAccessKeyId"), 403, InvalidCredentials),
            (Some("SignatureDoesNotMatch"), 403, InvalidCredentials),
            (Some("ExpiredToken"), 400, InvalidCredentials),
            (Some("RequestTimeTooSkewed"), 403, InvalidCredentials),
            (Some("PreconditionFailed"), 412, PreconditionFailed),
            (None, 412, PreconditionFailed),
            (Some("SlowDown"), 503, Retryable),
            (Some("InternalError"), 500, Retryable),
            (Some("RequestTimeout"), 400, Retryable),
            (Some("OperationAborted"), 409, Retryable),
            (None, 502, Retryable),
            (None, 429, Retryable),
            (Some("InvalidArgument"), 400, Permanent),
            (Some("MalformedXML"), 400, Permanent),
            (Some("EntityTooLarge"), 400, Permanent),
            (None, 400, Permanent),
        ];
        for &(code, status, want) in table {
            assert_eq!(
                classify_response(code, Some(status)),
                want,
                "{code:?} {status}"
            );
            assert_eq!(classify(&service(code, status)), want, "{code:?} {status}");
        }
    }

    #[test]
    fn transport_failures_are_retryable_and_missing_credentials_are_not() {
        let io: SdkError<HeadObjectError, HttpResponse> =
            SdkError::dispatch_failure(ConnectorError::io(Box::new(std::io::Error::from(
                std::io::ErrorKind::ConnectionReset,
            ))));
        assert_eq!(classify(&io), ErrorClass::Retryable);
        assert!(
            describe(&io).starts_with("cannot reach the service"),
            "{}",
            describe(&io)
        );
        let timeout: SdkError<HeadObjectError, HttpResponse> =
            SdkError::timeout_error("attempt timed out");
        assert_eq!(classify(&timeout), ErrorClass::Retryable);
        assert_eq!(describe(&timeout), "timed out");
        let no_creds: SdkError<HeadObjectError, HttpResponse> =
            SdkError::dispatch_failure(ConnectorError::other(
                "failed to load credentials from the environment".into(),
                None,
            ));
        assert_eq!(classify(&no_creds), ErrorClass::InvalidCredentials);
        let construction: SdkError<HeadObjectError, HttpResponse> =
            SdkError::construction_failure("missing required field `key`");
        assert_eq!(classify(&construction), ErrorClass::Permanent);
    }

    #[test]
    fn call_errors_name_the_object_and_what_to_do() {
        let e = S3Error::call(
            "GetObject",
            "raw-bucket",
            "raw/s/a.bin",
            &service(None, 403),
        );
        let text = e.to_string();
        assert!(
            text.starts_with(
                "GetObject s3://raw-bucket/raw/s/a.bin failed (access_denied): HTTP 403"
            ),
            "{text}"
        );
        assert!(text.contains("s3:ListBucket"), "{text}");
        assert_eq!(e.code(), "access_denied");
        assert!(!e.is_retryable());
        let slow = S3Error::call("GetObject", "b", "k", &service(Some("SlowDown"), 503));
        assert!(slow.is_retryable());
        assert!(slow.to_string().contains("SlowDown: m"), "{slow}");
    }
}
