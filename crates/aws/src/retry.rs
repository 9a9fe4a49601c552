//! Retries made visible. The SDK retries throttling, 5xx, timeouts and resets on its own (see
//! [`crate::client`]) and callers may add rounds on top, so without this a flaky link looks
//! exactly like a slow one. A [`RetryWatch`] rides along with one logical request (every round
//! of it) as an SDK interceptor: it remembers why an attempt failed and, when the next attempt
//! starts, reports it as a [`Retry`] to whatever [`RetryReport`] the caller gave — the upload
//! turns it into its progress event, sync and the app into theirs. Reporting at the start of the
//! next attempt, not at the failure, means only failures that really are retried are counted.

use aws_sdk_s3::config::interceptors::{
    BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_s3::error::{BoxError, ErrorMetadata};
use aws_smithy_runtime_api::client::interceptors::context::Error as OperationError;
use aws_smithy_runtime_api::client::orchestrator::{HttpResponse, Metadata, OrchestratorError};
use labpipe_core::layout::{parse_raw_key, split_revision, RawKey};
use std::error::Error as StdError;
use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc::UnboundedSender;

/// One retried attempt of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retry {
    /// The object key the request is about.
    pub key: String,
    /// The S3 operation (`UploadPart`, `GetObject`).
    pub operation: String,
    /// The attempt about to start (2 for the first retry).
    pub attempt: u32,
    /// Why the previous attempt failed: `connection reset`, `timed out`, `HTTP 503 SlowDown`.
    pub reason: String,
}

impl Retry {
    /// The session and file the key names, when it lies under `raw/<session>/` (or a
    /// revision's `raw/<session>.r<N>/`: the session is then named without the revision mark).
    pub fn raw_place(&self) -> Option<RawKey<'_>> {
        parse_raw_key(&self.key).map(|k| RawKey {
            session: split_revision(k.session).0,
            ..k
        })
    }
}

/// Receives the retries a [`RetryWatch`] sees. Called on the SDK's task: keep it quick.
pub trait RetryReport: Send + Sync {
    fn retrying(&self, retry: &Retry);
}

/// A progress event that can stand for a retry; `None` when this retry is not worth an event
/// (e.g. a key outside any session).
pub trait FromRetry: Sized {
    fn from_retry(retry: &Retry) -> Option<Self>;
}

/// A channel of progress events reports retries as events.
impl<T: FromRetry + Send> RetryReport for UnboundedSender<T> {
    fn retrying(&self, retry: &Retry) {
        if let Some(event) = T::from_retry(retry) {
            let _ = self.send(event);
        }
    }
}

/// Any `Fn(&Retry)` closure reports retries.
pub struct ReportFn<F>(pub F);

impl<F: Fn(&Retry) + Send + Sync> RetryReport for ReportFn<F> {
    fn retrying(&self, retry: &Retry) {
        (self.0)(retry)
    }
}

/// Watches the attempts of one logical request on one key; clones share the count, so extra
/// rounds continue the attempt numbers of the first.
#[derive(Clone)]
pub struct RetryWatch {
    shared: Arc<Watched>,
}

struct Watched {
    report: Option<Box<dyn RetryReport>>,
    key: String,
    attempts: AtomicU32,
    last_failure: Mutex<Option<String>>,
}

impl fmt::Debug for RetryWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryWatch")
            .field("key", &self.shared.key)
            .field("attempts", &self.shared.attempts)
            .field("reports", &self.shared.report.is_some())
            .finish()
    }
}

impl RetryWatch {
    /// A watch for one request on `key`; retries are logged, and reported to `report` when
    /// there is one.
    pub fn new<R: RetryReport + 'static>(report: Option<R>, key: &str) -> Self {
        Self {
            shared: Arc::new(Watched {
                report: report.map(|r| Box::new(r) as Box<dyn RetryReport>),
                key: key.into(),
                attempts: AtomicU32::new(0),
                last_failure: Mutex::new(None),
            }),
        }
    }

    /// Attempts started so far, over every round.
    pub fn attempts(&self) -> u32 {
        self.shared.attempts.load(Ordering::Relaxed)
    }
}

impl Intercept for RetryWatch {
    fn name(&self) -> &'static str {
        "LabpipeRetryWatch"
    }

    fn read_before_attempt(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let w = &self.shared;
        let attempt = w.attempts.fetch_add(1, Ordering::Relaxed) + 1;
        if attempt < 2 {
            return Ok(());
        }
        let reason = w
            .last_failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .unwrap_or_else(|| "unknown failure".into());
        let operation = cfg
            .load::<Metadata>()
            .map(|m| m.name().to_string())
            .unwrap_or_default();
        tracing::info!(key = %w.key, operation = %operation, attempt, reason = %reason, "retrying a request");
        if let Some(report) = &w.report {
            report.retrying(&Retry {
                key: w.key.clone(),
                operation,
                attempt,
                reason,
            });
        }
        Ok(())
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let failure = match context.output_or_error() {
            Some(Err(e)) => Some(failure_reason(e, context.response())),
            _ => None,
        };
        *self
            .shared
            .last_failure
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = failure;
        Ok(())
    }
}

/// A short, human reason for a failed attempt: `connection reset`, `timed out`,
/// `HTTP 503 SlowDown`.
pub fn failure_reason(
    e: &OrchestratorError<OperationError>,
    response: Option<&HttpResponse>,
) -> String {
    if e.is_timeout_error() {
        return "timed out".into();
    }
    if let Some(c) = e.as_connector_error() {
        if c.is_timeout() {
            return "timed out".into();
        }
        return connection_reason(c);
    }
    if let Some(status) = response.map(|r| r.status().as_u16()).filter(|s| *s >= 300) {
        let code = e
            .as_operation_error()
            .and_then(error_code)
            .or_else(|| response.and_then(|r| code_in_body(r.body().bytes()?)));
        return match code {
            Some(code) => format!("HTTP {status} {code}"),
            None => format!("HTTP {status}"),
        };
    }
    innermost(e)
}

/// What happened to the connection, from the innermost I/O error when there is one.
fn connection_reason(e: &(dyn StdError + 'static)) -> String {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind as K;
            return match io.kind() {
                K::ConnectionReset => "connection reset".into(),
                K::ConnectionRefused => "connection refused".into(),
                K::ConnectionAborted => "connection aborted".into(),
                K::BrokenPipe | K::UnexpectedEof => "connection closed".into(),
                K::TimedOut => "timed out".into(),
                _ => io.to_string(),
            };
        }
        cur = err.source();
    }
    // The HTTP client's own words, e.g. "connection closed before message completed".
    let text = innermost(e);
    let lower = text.to_ascii_lowercase();
    match ["connection closed", "connection reset"]
        .into_iter()
        .find(|short| lower.contains(short))
    {
        Some(short) => short.into(),
        None => text,
    }
}

fn innermost(e: &(dyn StdError + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// The S3 error code (`SlowDown`, `InternalError`) of a failed operation, from the error
/// metadata somewhere in its source chain.
fn error_code(e: &OperationError) -> Option<String> {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(code) = err.downcast_ref::<ErrorMetadata>().and_then(|m| m.code()) {
            return Some(code.to_string());
        }
        cur = err.source();
    }
    None
}

fn code_in_body(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let start = text.find("<Code>")? + "<Code>".len();
    let len = text[start..].find("</Code>")?;
    Some(text[start..start + len].to_string()).filter(|c| !c.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_s3::config::{Credentials, Region};
    use aws_sdk_s3::error::ConnectorError;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    #[test]
    fn reasons_are_short_and_human() {
        let io = |kind| {
            OrchestratorError::<OperationError>::connector(ConnectorError::io(Box::new(
                std::io::Error::from(kind),
            )))
        };
        assert_eq!(
            failure_reason(&io(std::io::ErrorKind::ConnectionReset), None),
            "connection reset"
        );
        assert_eq!(
            failure_reason(&io(std::io::ErrorKind::UnexpectedEof), None),
            "connection closed"
        );
        let timeout = OrchestratorError::<OperationError>::timeout("attempt took too long".into());
        assert_eq!(failure_reason(&timeout, None), "timed out");
        let hyper_words = OrchestratorError::<OperationError>::connector(ConnectorError::other(
            "connection closed before message completed".into(),
            None,
        ));
        assert_eq!(failure_reason(&hyper_words, None), "connection closed");
        assert_eq!(
            code_in_body(b"<Error><Code>SlowDown</Code><Message>m</Message></Error>").as_deref(),
            Some("SlowDown")
        );
        assert_eq!(code_in_body(b"<Error></Error>"), None);
    }

    /// Answers the first request with `503 SlowDown`, the second with an object.
    fn flaky_server() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for (n, conn) in listener.incoming().enumerate() {
                let Ok(mut conn) = conn else { continue };
                let mut seen = Vec::new();
                let mut buf = [0u8; 4096];
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(k) => seen.extend_from_slice(&buf[..k]),
                    }
                }
                let (status, body) = if n == 0 {
                    (
                        "503 Service Unavailable",
                        "<Error><Code>SlowDown</Code><Message>slow down</Message></Error>",
                    )
                } else {
                    ("200 OK", "hello")
                };
                let _ = write!(
                    conn,
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        format!("http://{addr}")
    }

    impl FromRetry for Retry {
        fn from_retry(retry: &Retry) -> Option<Self> {
            Some(retry.clone())
        }
    }

    #[tokio::test]
    async fn a_retried_request_is_reported_with_its_reason() {
        let conf = aws_sdk_s3::config::Builder::new()
            .behavior_version_latest()
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("AKID", "SECRET", None, None, "test"))
            .endpoint_url(flaky_server())
            .force_path_style(true)
            .retry_config(
                aws_sdk_s3::config::retry::RetryConfig::standard()
                    .with_max_attempts(3)
                    .with_initial_backoff(std::time::Duration::from_millis(10)),
            )
            .build();
        let s3 = aws_sdk_s3::Client::from_conf(conf);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Retry>();
        let key = labpipe_core::layout::raw_key("20210301_161221", "a.bin");
        let got = s3
            .get_object()
            .bucket("b")
            .key(&key)
            .customize()
            .interceptor(RetryWatch::new(Some(tx), &key))
            .send()
            .await
            .expect("the second attempt succeeds");
        let body = got.body.collect().await.unwrap().into_bytes();
        assert_eq!(&body[..], b"hello");
        let events: Vec<Retry> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
        assert_eq!(
            events,
            [Retry {
                key: key.clone(),
                operation: "GetObject".into(),
                attempt: 2,
                reason: "HTTP 503 SlowDown".into(),
            }]
        );
        let place = events[0].raw_place().unwrap();
        assert_eq!(
            (place.session, place.path),
            ("20210301_161221", Some("a.bin"))
        );
    }
}
