//! The S3 client, built one way for every caller: bounded retries with backoff and jitter,
//! timeouts that turn a stalled connection into a retry, path-style addressing when an endpoint is
//! given (`AWS_ENDPOINT_URL`, or S3's own `AWS_ENDPOINT_URL_S3`, e.g. a local emulator, where
//! `<bucket>.127.0.0.1` does not resolve),
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
        .force_path_style(s3_endpoint(sdk).is_some())
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// The endpoint the S3 client built from `sdk` will use, resolved as the SDK resolves it: an
/// endpoint set in code wins; otherwise S3's own (`AWS_ENDPOINT_URL_S3`, or a profile's
/// `services` section) before the global one (`AWS_ENDPOINT_URL`).
///
/// <https://docs.aws.amazon.com/sdkref/latest/guide/feature-ss-endpoints.html>
///
/// `SdkConfig::endpoint_url` alone is the global one: with only S3 pointed elsewhere (S3 on one
/// local server, DynamoDB on another, or on AWS) it is `None`, and path style would be off.
pub fn s3_endpoint(sdk: &aws_config::SdkConfig) -> Option<String> {
    if sdk.get_origin("endpoint_url").is_client_config() {
        return sdk.endpoint_url().map(str::to_string);
    }
    let key = aws_types::service_config::ServiceConfigKey::builder()
        .service_id("S3")
        .env("AWS_ENDPOINT_URL")
        .profile("endpoint_url")
        .build()
        .expect("service id, env and profile keys are all set");
    sdk.service_config()
        .and_then(|conf| conf.load_config(key))
        .or_else(|| sdk.endpoint_url().map(str::to_string))
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

/// The stored key's credentials exchanged for a role's short-lived ones: the desktop app's keys
/// mode keeps the long-term key of a lab user whose one permission is `sts:AssumeRole` on the
/// stack's `UploaderRole`, and every AWS call runs as that role, with credentials that expire
/// within the hour and are renewed by the SDK before they do. A leaked key alone then reaches
/// nothing but `AssumeRole`, and CloudTrail names the session (`session_name`) of each call.
/// <https://docs.aws.amazon.com/IAM/latest/UserGuide/id_credentials_temp_use-resources.html>
pub async fn assume_role(
    base: &aws_config::SdkConfig,
    role_arn: &str,
    session_name: &str,
) -> Result<aws_config::SdkConfig, S3Error> {
    check_role_arn(role_arn)?;
    let source = base
        .credentials_provider()
        .ok_or_else(|| S3Error::RoleArn {
            arn: role_arn.to_string(),
            reason: "there are no credentials to assume it with".into(),
        })?;
    let provider = aws_config::sts::AssumeRoleProvider::builder(role_arn)
        .session_name(role_session_name(session_name))
        .session_length(Duration::from_secs(3600))
        .configure(base)
        .build_from_provider(source)
        .await;
    Ok(base
        .to_builder()
        .credentials_provider(aws_sdk_s3::config::SharedCredentialsProvider::new(provider))
        .build())
}

/// `arn:<partition>:iam::<12-digit account>:role/<path/>name`: what the stack's `UploaderRoleArn`
/// output holds.
pub fn check_role_arn(arn: &str) -> Result<(), S3Error> {
    let invalid = |reason: &str| S3Error::RoleArn {
        arn: arn.to_string(),
        reason: reason.to_string(),
    };
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [prefix, partition, service, region, account, resource] = parts[..] else {
        return Err(invalid("it is not an ARN"));
    };
    if prefix != "arn" || !partition.starts_with("aws") || service != "iam" || !region.is_empty() {
        return Err(invalid(
            "it is not an IAM ARN (arn:aws:iam::ACCOUNT:role/NAME)",
        ));
    }
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid("its account is not 12 digits"));
    }
    match resource.strip_prefix("role/") {
        Some(name) if !name.is_empty() && !name.ends_with('/') => Ok(()),
        _ => Err(invalid("it names no role (…:role/NAME)")),
    }
}

/// A role session name AWS accepts (`[\w+=,.@-]{2,64}`): other characters become `-`.
/// <https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRole.html>
fn role_session_name(wanted: &str) -> String {
    let mut name: String = wanted
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_+=,.@-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    while name.len() < 2 {
        name.push('-');
    }
    name
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

    /// Service-specific settings as the SDK's loader reads them from the environment.
    #[derive(Debug)]
    struct Env(&'static [(&'static str, &'static str)]);

    impl aws_types::service_config::LoadServiceConfig for Env {
        fn load_config(
            &self,
            key: aws_types::service_config::ServiceConfigKey<'_>,
        ) -> Option<String> {
            let name = format!(
                "{}_{}",
                key.env(),
                key.service_id().to_ascii_uppercase().replace(' ', "_")
            );
            self.0
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    fn loaded(
        env: &'static [(&'static str, &'static str)],
        global: Option<&str>,
    ) -> aws_config::SdkConfig {
        let mut b = aws_config::SdkConfig::builder().service_config(Env(env));
        if let Some(url) = global {
            // As the loader sets it when it comes from the environment, not from code.
            b.set_endpoint_url(Some(url.to_string()));
            b.insert_origin(
                "endpoint_url",
                aws_types::origin::Origin::shared_environment_variable(),
            );
        }
        b.build()
    }

    #[test]
    fn s3_endpoint_is_resolved_as_the_sdk_resolves_it() {
        // S3 alone pointed at a local server: path style needs to know it.
        let only_s3 = loaded(&[("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9000")], None);
        assert_eq!(
            s3_endpoint(&only_s3).as_deref(),
            Some("http://127.0.0.1:9000")
        );
        // S3's own endpoint beats the global one; the global one serves when S3 has none.
        let both = loaded(
            &[("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9000")],
            Some("http://127.0.0.1:5000"),
        );
        assert_eq!(s3_endpoint(&both).as_deref(), Some("http://127.0.0.1:9000"));
        let global = loaded(&[], Some("http://127.0.0.1:5000"));
        assert_eq!(
            s3_endpoint(&global).as_deref(),
            Some("http://127.0.0.1:5000")
        );
        // Nothing set: AWS itself, virtual-hosted style.
        assert_eq!(s3_endpoint(&loaded(&[], None)), None);
        // Set in code (the app's endpoint setting): it wins over the environment, as in the SDK.
        let mut b = only_s3.to_builder();
        b.set_endpoint_url(Some("http://127.0.0.1:7000".into()));
        b.insert_origin("endpoint_url", aws_types::origin::Origin::shared_config());
        assert_eq!(
            s3_endpoint(&b.build()).as_deref(),
            Some("http://127.0.0.1:7000")
        );
    }

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

    #[test]
    fn role_arns_are_checked_before_any_call() {
        for good in [
            "arn:aws:iam::123456789012:role/lab-UploaderRole",
            "arn:aws-cn:iam::123456789012:role/path/to/Uploader",
        ] {
            check_role_arn(good).unwrap();
        }
        for bad in [
            "UploaderRole",
            "arn:aws:iam::123456789012:user/lab",
            "arn:aws:s3:::lab-raw",
            "arn:aws:iam::1234:role/x",
            "arn:aws:iam::123456789012:role/",
        ] {
            let err = check_role_arn(bad).unwrap_err().to_string();
            assert!(
                err.contains(bad) && err.contains("UploaderRoleArn"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn session_names_are_what_sts_accepts() {
        assert_eq!(
            role_session_name("labpipe-app lab PC/1"),
            "labpipe-app-lab-PC-1"
        );
        assert_eq!(role_session_name("x"), "x-");
        assert_eq!(role_session_name(&"a".repeat(80)).len(), 64);
    }
}
