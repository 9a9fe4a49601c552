//! Where the backend finds its resources, and the SDK clients it builds once per process.
//!
//! The Lambdas get their settings from environment variables set by `infra/template.yaml`; the
//! local runner also reads the stack outputs the local deploy writes
//! (`.labpipe/stack/outputs.json`), so a developer needs no flags after `scripts/deploy-local.sh`.

use anyhow::{anyhow, Context, Result};
use aws_config::{BehaviorVersion, SdkConfig};
use std::collections::BTreeMap;
use std::path::Path;

/// Everything the handlers need besides clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendConfig {
    /// Catalog table (`LABPIPE_TABLE`).
    pub table: String,
    /// Raw bucket (`LABPIPE_RAW_BUCKET`); ingest takes the bucket from the event, preprocess uses
    /// this one.
    pub raw_bucket: String,
    /// Processed bucket (`LABPIPE_PROCESSED_BUCKET`).
    pub processed_bucket: String,
    /// Queue for preprocessing requests (`LABPIPE_PREPROCESS_QUEUE_URL`).
    pub preprocess_queue_url: String,
    /// Queue of S3 events for ingest (`LABPIPE_INGEST_QUEUE_URL`); only the local runner polls it.
    pub ingest_queue_url: String,
    /// Pipeline version new sessions are processed with (`LABPIPE_PIPELINE_VERSION`, default 1).
    pub pipeline_version: u32,
    /// How long a `PROCESSING` claim holds before another run may take over
    /// (`LABPIPE_PROCESSING_LEASE_SECS`, default 900 = the preprocess function timeout).
    pub processing_lease_secs: u64,
}

/// Stack output names (see `infra/template.yaml`) for each setting.
const OUTPUT_NAMES: [(&str, &str); 6] = [
    ("LABPIPE_TABLE", "CatalogTable"),
    ("LABPIPE_RAW_BUCKET", "RawBucket"),
    ("LABPIPE_PROCESSED_BUCKET", "ProcessedBucket"),
    ("LABPIPE_PREPROCESS_QUEUE_URL", "PreprocessQueueUrl"),
    ("LABPIPE_INGEST_QUEUE_URL", "IngestQueueUrl"),
    ("LABPIPE_PIPELINE_VERSION", "PipelineVersion"),
];

impl BackendConfig {
    /// From environment variables only (the Lambdas).
    pub fn from_env() -> Result<Self> {
        Self::resolve(&BTreeMap::new(), |k| std::env::var(k).ok())
    }

    /// Environment variables first, then the stack outputs file when it exists (the runner).
    pub fn from_env_and_outputs(outputs: &Path) -> Result<Self> {
        let stack = if outputs.is_file() {
            read_outputs(outputs)?
        } else {
            BTreeMap::new()
        };
        Self::resolve(&stack, |k| std::env::var(k).ok())
    }

    /// Settings from `env`, falling back to `stack` outputs.
    pub fn resolve(
        stack: &BTreeMap<String, String>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self> {
        let get = |var: &str| -> Option<String> {
            env(var).filter(|v| !v.is_empty()).or_else(|| {
                OUTPUT_NAMES
                    .iter()
                    .find(|(v, _)| *v == var)
                    .and_then(|(_, out)| stack.get(*out).cloned())
            })
        };
        let need = |var: &str| {
            get(var).ok_or_else(|| {
                anyhow!("{var} is not set and no stack output provides it; deploy the stack (scripts/deploy-local.sh) or set {var}")
            })
        };
        let pipeline_version = match get("LABPIPE_PIPELINE_VERSION") {
            Some(v) => v
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|v| *v >= 1)
                .ok_or_else(|| {
                    anyhow!("LABPIPE_PIPELINE_VERSION must be a whole number ≥ 1, got '{v}'")
                })?,
            None => 1,
        };
        let processing_lease_secs = match env("LABPIPE_PROCESSING_LEASE_SECS") {
            Some(v) => v.trim().parse().with_context(|| {
                format!("LABPIPE_PROCESSING_LEASE_SECS must be whole seconds, got '{v}'")
            })?,
            None => 900,
        };
        Ok(BackendConfig {
            table: need("LABPIPE_TABLE")?,
            raw_bucket: need("LABPIPE_RAW_BUCKET")?,
            processed_bucket: need("LABPIPE_PROCESSED_BUCKET")?,
            preprocess_queue_url: need("LABPIPE_PREPROCESS_QUEUE_URL")?,
            ingest_queue_url: get("LABPIPE_INGEST_QUEUE_URL").unwrap_or_default(),
            pipeline_version,
            processing_lease_secs,
        })
    }
}

/// Reads stack outputs (a flat `{"Name": "value"}` object, or CloudFormation's
/// `[{"OutputKey": …, "OutputValue": …}]`) through the gateway's one reader.
pub fn read_outputs(path: &Path) -> Result<BTreeMap<String, String>> {
    Ok(labpipe_aws::StackOutputs::read(path)?.all)
}

/// The SDK clients, built once per process and shared by every invocation.
#[derive(Debug, Clone)]
pub struct Clients {
    pub s3: aws_sdk_s3::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
}

impl Clients {
    /// Clients from the standard AWS environment (`AWS_ENDPOINT_URL`, region, credentials).
    pub async fn from_env() -> Self {
        let sdk = aws_config::defaults(BehaviorVersion::latest()).load().await;
        Self::from_sdk_config(&sdk)
    }

    /// Clients from one SDK configuration; S3 through the gateway (path-style addressing with a
    /// custom endpoint such as the emulator, the service retry policy).
    pub fn from_sdk_config(sdk: &SdkConfig) -> Self {
        Clients {
            s3: labpipe_aws::s3_client(sdk, &labpipe_aws::ClientOptions::service()),
            dynamodb: aws_sdk_dynamodb::Client::new(sdk),
            sqs: aws_sdk_sqs::Client::new(sdk),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_wins_over_stack_outputs() {
        let stack = BTreeMap::from([
            ("CatalogTable".to_string(), "stack-table".to_string()),
            ("RawBucket".to_string(), "raw".to_string()),
            ("ProcessedBucket".to_string(), "processed".to_string()),
            ("PreprocessQueueUrl".to_string(), "http://q/pre".to_string()),
            ("PipelineVersion".to_string(), "2".to_string()),
        ]);
        let cfg = BackendConfig::resolve(&stack, |k| {
            (k == "LABPIPE_TABLE").then(|| "env-table".to_string())
        })
        .unwrap();
        assert_eq!(cfg.table, "env-table");
        assert_eq!(cfg.raw_bucket, "raw");
        assert_eq!(cfg.pipeline_version, 2);
        assert_eq!(cfg.processing_lease_secs, 900);
        let err = BackendConfig::resolve(&BTreeMap::new(), |_| None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("LABPIPE_TABLE is not set"), "{err}");
    }

    #[test]
    fn outputs_files_in_both_shapes() {
        let dir = tempfile::tempdir().unwrap();
        let flat = dir.path().join("flat.json");
        std::fs::write(&flat, r#"{"CatalogTable":"t","PipelineVersion":1}"#).unwrap();
        let cf = dir.path().join("cf.json");
        std::fs::write(
            &cf,
            r#"{"Outputs":[{"OutputKey":"CatalogTable","OutputValue":"t"}]}"#,
        )
        .unwrap();
        assert_eq!(read_outputs(&flat).unwrap()["PipelineVersion"], "1");
        assert_eq!(read_outputs(&cf).unwrap()["CatalogTable"], "t");
    }
}
