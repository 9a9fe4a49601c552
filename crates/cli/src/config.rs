//! Where the deployed stack is: the catalog table and the two buckets.
//!
//! One resolution order for every command that talks to the cloud, so a researcher sets things up
//! once: a flag, else its environment variable (`LABPIPE_TABLE`, `LABPIPE_PROCESSED_BUCKET`,
//! `LABPIPE_RAW_BUCKET`; clap reads those), else the stack outputs file the deploy writes
//! (`.labpipe/stack/outputs.json`, keys `CatalogTable`, `ProcessedBucket`, `RawBucket`), looked
//! for in the current folder and its parents, or named by `--stack-outputs` /
//! `LABPIPE_STACK_OUTPUTS`.

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::cli::StackArgs;
use crate::UsageError;

/// The stack outputs file, relative to the repository (or any folder above the current one).
pub use labpipe_s3::stack::OUTPUTS_FILE;
use labpipe_s3::StackOutputs;

/// Names of the deployed resources, each possibly unknown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stack {
    pub table: Option<String>,
    pub processed_bucket: Option<String>,
    pub raw_bucket: Option<String>,
    /// The outputs file consulted, for messages.
    pub outputs: Option<PathBuf>,
    /// The pipeline's queues (`LABPIPE_*_QUEUE_URL`, else the outputs file), for the operator's
    /// commands and the stuck-session reasons of `status`.
    pub queues: QueueUrls,
    /// The pipeline version new sessions get (`LABPIPE_PIPELINE_VERSION`, else `PipelineVersion`).
    pub pipeline_version: Option<u32>,
}

/// The URLs of the pipeline's queues, each possibly unknown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueUrls {
    pub ingest: Option<String>,
    pub preprocess: Option<String>,
    pub ingest_dead_letter: Option<String>,
    pub preprocess_dead_letter: Option<String>,
}

/// (environment variable, stack output) of each queue URL.
pub const QUEUE_SOURCES: [(&str, &str); 4] = [
    ("LABPIPE_INGEST_QUEUE_URL", "IngestQueueUrl"),
    ("LABPIPE_PREPROCESS_QUEUE_URL", "PreprocessQueueUrl"),
    (
        "LABPIPE_INGEST_DEAD_LETTER_QUEUE_URL",
        "IngestDeadLetterQueueUrl",
    ),
    (
        "LABPIPE_PREPROCESS_DEAD_LETTER_QUEUE_URL",
        "PreprocessDeadLetterQueueUrl",
    ),
];

impl Stack {
    pub fn resolve(args: &StackArgs) -> Result<Stack> {
        let cwd = std::env::current_dir().context("cannot read the current folder")?;
        let outputs = match &args.stack_outputs {
            Some(p) => {
                if !p.is_file() {
                    return Err(UsageError(format!("stack outputs file {} does not exist; check --stack-outputs / LABPIPE_STACK_OUTPUTS", p.display())).into());
                }
                Some(p.clone())
            }
            None => StackOutputs::find(&cwd),
        };
        // The gateway's reader: a flat object or CloudFormation's OutputKey/OutputValue list.
        let from_file = match &outputs {
            Some(p) => StackOutputs::read(p).map_err(|e| UsageError(e.to_string()))?,
            None => StackOutputs::default(),
        };
        let pick = |flag: &Option<String>, key: &str| {
            flag.clone().filter(|v| !v.is_empty()).or_else(|| {
                from_file
                    .get(key)
                    .filter(|v| !v.is_empty())
                    .map(str::to_string)
            })
        };
        let env = |var: &str| std::env::var(var).ok();
        let [ingest, preprocess, ingest_dead_letter, preprocess_dead_letter] =
            QUEUE_SOURCES.map(|(var, key)| pick(&env(var), key));
        let pipeline_version = env("LABPIPE_PIPELINE_VERSION")
            .filter(|v| !v.is_empty())
            .or_else(|| from_file.get("PipelineVersion").map(str::to_string))
            .and_then(|v| v.trim().parse().ok());
        Ok(Stack {
            table: pick(&args.table, "CatalogTable"),
            processed_bucket: pick(&args.processed_bucket, "ProcessedBucket"),
            raw_bucket: pick(&args.raw_bucket, "RawBucket"),
            outputs,
            queues: QueueUrls {
                ingest,
                preprocess,
                ingest_dead_letter,
                preprocess_dead_letter,
            },
            pipeline_version,
        })
    }

    /// The catalog table, or a usage error saying how to name it.
    pub fn table(&self) -> Result<&str> {
        self.table.as_deref().ok_or_else(|| {
            UsageError(format!(
                "no catalog table given: pass --table NAME, set LABPIPE_TABLE, or run where {OUTPUTS_FILE} of a deployed stack can be found (or point --stack-outputs at it)"
            ))
            .into()
        })
    }
}

/// A queue URL, or a usage error naming where it comes from.
pub fn need_queue<'a>(url: &'a Option<String>, var: &str, output: &str) -> Result<&'a str> {
    url.as_deref().ok_or_else(|| {
        UsageError(format!(
            "no {output} known: set {var}, or run where {OUTPUTS_FILE} of a deployed stack can be found (or point --stack-outputs at it)"
        ))
        .into()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_outputs_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("outputs.json");
        std::fs::write(
            &file,
            r#"{"CatalogTable": "t-file", "ProcessedBucket": "p-file", "RawBucket": "r-file"}"#,
        )
        .unwrap();
        let args = StackArgs {
            table: Some("t-flag".into()),
            processed_bucket: None,
            raw_bucket: None,
            stack_outputs: Some(file.clone()),
        };
        let stack = Stack::resolve(&args).unwrap();
        assert_eq!(stack.table.as_deref(), Some("t-flag"));
        assert_eq!(stack.processed_bucket.as_deref(), Some("p-file"));
        assert_eq!(stack.raw_bucket.as_deref(), Some("r-file"));
        assert_eq!(stack.outputs, Some(file));
        let nested = dir.path().join("a/b");
        std::fs::create_dir_all(&nested).unwrap();
        std::fs::create_dir_all(dir.path().join(".labpipe/stack")).unwrap();
        std::fs::write(dir.path().join(OUTPUTS_FILE), "{}").unwrap();
        assert_eq!(
            StackOutputs::find(&nested),
            Some(dir.path().join(OUTPUTS_FILE))
        );
    }
}
