//! The S3 client, built one way for every caller: bounded retries with backoff and jitter,
//! timeouts that turn a stalled connection into a retry, path-style addressing when an endpoint is
//! given (`AWS_ENDPOINT_URL`, e.g. a local emulator, where `<bucket>.127.0.0.1` does not resolve),
//! and — unless asked — no SDK-computed checksums: the upload supplies its own CRC64NVME from its
//! single read, and downloads are verified against the catalog's SHA-256.
//!
//! The callers differ only in [`ClientOptions`]: the upload ([`ClientOptions::default`]) bounds
//! each attempt, downloads ([`ClientOptions::download`]) bound the wait for each chunk of a long
//! body instead, and the backend ([`ClientOptions::service`]) keeps the SDK's checksums.

use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{RequestChecksumCalculation, ResponseChecksumValidation};
use std::time::Duration;

use crate::error::S3Error;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientOptions {
    /// Attempts per request, first one included (throttling, 5xx, timeouts, resets).
    pub max_attempts: u32,
    /// Longest time one attempt of one request may take before it counts as stalled (request
    /// sent and response headers received; a streamed response body is not included).
    pub attempt_timeout: Duration,
    /// Longest wait for the next bytes of a response.
    pub read_timeout: Option<Duration>,
    pub connect_timeout: Duration,
    /// Let the SDK add request checksums and validate response checksums wherever S3 supports
    /// them. Off for the upload and sync, which verify every byte themselves.
    pub sdk_checksums: bool,
}

impl Default for ClientOptions {
    /// The upload's client: 8 attempts, 2 minutes per attempt.
    fn default() -> Self {
        Self {
            max_attempts: 8,
            attempt_timeout: Duration::from_secs(120),
            read_timeout: None,
            connect_timeout: Duration::from_secs(5),
            sdk_checksums: false,
        }
    }
}

impl ClientOptions {
    /// For downloads of large objects (sync): 6 attempts, a minute without bytes is a stall.
    pub fn download() -> Self {
        Self {
            max_attempts: 6,
            read_timeout: Some(Duration::from_secs(60)),
            ..Self::default()
        }
    }

    /// For the backend's handlers: the SDK's own checksums on, a failed attempt retried a few
    /// times before the message itself is retried by SQS.
    pub fn service() -> Self {
        Self {
            max_attempts: 4,
            read_timeout: Some(Duration::from_secs(60)),
            sdk_checksums: true,
            ..Self::default()
        }
    }
}

/// Builds the S3 client from a loaded AWS configuration (credentials, region, endpoint).
pub fn s3_client(sdk: &aws_config::SdkConfig, opts: &ClientOptions) -> aws_sdk_s3::Client {
    let retry = RetryConfig::standard()
        .with_max_attempts(opts.max_attempts.max(1))
        .with_initial_backoff(Duration::from_millis(200))
        .with_max_backoff(Duration::from_secs(8));
    let mut timeouts = TimeoutConfig::builder()
        .connect_timeout(opts.connect_timeout)
        .operation_attempt_timeout(opts.attempt_timeout);
    if let Some(t) = opts.read_timeout {
        timeouts = timeouts.read_timeout(t);
    }
    let (request, response) = if opts.sdk_checksums {
        (
            RequestChecksumCalculation::WhenSupported,
            ResponseChecksumValidation::WhenSupported,
        )
    } else {
        (
            RequestChecksumCalculation::WhenRequired,
            ResponseChecksumValidation::WhenRequired,
        )
    };
    let conf = aws_sdk_s3::config::Builder::from(sdk)
        .retry_config(retry)
        .timeout_config(timeouts.build())
        .request_checksum_calculation(request)
        .response_checksum_validation(response)
        .force_path_style(sdk.endpoint_url().is_some())
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// Where the AWS calls go: a region, an optional endpoint (an emulator, a VPC endpoint) and an
/// optional named profile. Everything left `None` comes from the standard AWS chain
/// (environment, `~/.aws`, SSO, instance role).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AwsTarget {
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
    pub profile: Option<String>,
}

impl AwsTarget {
    /// The configuration loader for this target, for callers that add their own credentials
    /// provider before loading. Refuses a plain `http://` endpoint on anything but loopback.
    pub fn loader(&self) -> Result<aws_config::ConfigLoader, S3Error> {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(region) = self.region.as_deref().filter(|r| !r.is_empty()) {
            loader = loader.region(aws_config::Region::new(region.to_string()));
        }
        if let Some(url) = self.endpoint_url.as_deref().filter(|u| !u.is_empty()) {
            check_endpoint(url)?;
            loader = loader.endpoint_url(url);
        }
        if let Some(profile) = self.profile.as_deref().filter(|p| !p.is_empty()) {
            loader = loader.profile_name(profile);
        }
        Ok(loader)
    }

    /// The loaded SDK configuration for this target.
    pub async fn load(&self) -> Result<aws_config::SdkConfig, S3Error> {
        Ok(self.loader()?.load().await)
    }
}

/// Long-term keys a user stored (the desktop app's keyring) as the loader's credentials. The
/// SDK's credentials type redacts the secret in its `Debug` output.
pub fn with_static_keys(
    loader: aws_config::ConfigLoader,
    access_key_id: &str,
    secret_access_key: &str,
    source: &'static str,
) -> aws_config::ConfigLoader {
    loader.credentials_provider(aws_sdk_s3::config::Credentials::new(
        access_key_id,
        secret_access_key,
        None,
        None,
        source,
    ))
}

/// An endpoint is `https://…`, or `http://` to a loopback address (a local emulator): credentials
/// and data must not cross a network in the clear.
pub fn check_endpoint(url: &str) -> Result<(), S3Error> {
    let invalid = |reason: &str| S3Error::Endpoint {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| invalid("it has no scheme; write https://HOST or http://127.0.0.1:PORT"))?;
    match scheme.to_ascii_lowercase().as_str() {
        "https" => Ok(()),
        "http" => {
            let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
            let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            let host = if let Some(v6) = authority.strip_prefix('[') {
                v6.split(']').next().unwrap_or_default()
            } else {
                authority.split(':').next().unwrap_or_default()
            };
            let loopback = host.eq_ignore_ascii_case("localhost")
                || host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if loopback {
                Ok(())
            } else {
                Err(invalid(
                    "plain http is allowed only to this computer (127.0.0.1, ::1, localhost); use https",
                ))
            }
        }
        _ => Err(invalid(
            "only https (or http to this computer) is supported",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_to_loopback() {
        for ok in [
            "https://s3.eu-west-1.amazonaws.com",
            "https://minio.lab.example:9000/",
            "http://127.0.0.1:5000",
            "http://localhost:4566",
            "http://[::1]:9000/path",
            "HTTP://127.0.0.2",
        ] {
            assert!(check_endpoint(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://10.0.0.5:9000",
            "http://s3.example.org",
            "http://127.0.0.1.evil.example",
            "http://user@192.168.1.2",
            "ftp://127.0.0.1",
            "127.0.0.1:5000",
        ] {
            let err = check_endpoint(bad).unwrap_err().to_string();
            assert!(err.contains(bad), "{bad}: {err}");
        }
    }

    #[tokio::test]
    async fn targets_refuse_clear_text_endpoints_before_loading() {
        let target = AwsTarget {
            endpoint_url: Some("http://s3.example.org".into()),
            ..AwsTarget::default()
        };
        assert!(matches!(target.load().await, Err(S3Error::Endpoint { .. })));
    }
}
