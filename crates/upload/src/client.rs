//! The S3 client as the upload needs it: bounded retries with backoff and jitter, timeouts that
//! turn a stalled connection into a retry, path-style addressing when an endpoint is given
//! (`AWS_ENDPOINT_URL`, e.g. a local emulator), and no SDK-computed checksums — the upload
//! supplies its own CRC64NVME from the single read.

use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{RequestChecksumCalculation, ResponseChecksumValidation};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Attempts per request, first one included (throttling, 5xx, timeouts, resets).
    pub max_attempts: u32,
    /// Longest time one attempt of one request may take before it counts as stalled.
    pub attempt_timeout: Duration,
    pub connect_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            attempt_timeout: Duration::from_secs(120),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// Builds the S3 client from a loaded AWS configuration (credentials, region, endpoint).
pub fn s3_client(sdk: &aws_config::SdkConfig, opts: &ClientOptions) -> aws_sdk_s3::Client {
    let retry = RetryConfig::standard()
        .with_max_attempts(opts.max_attempts.max(1))
        .with_initial_backoff(Duration::from_millis(200))
        .with_max_backoff(Duration::from_secs(8));
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(opts.connect_timeout)
        .operation_attempt_timeout(opts.attempt_timeout)
        .build();
    let conf = aws_sdk_s3::config::Builder::from(sdk)
        .retry_config(retry)
        .timeout_config(timeouts)
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .force_path_style(sdk.endpoint_url().is_some())
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}
