//! `labpipe doctor`: one look at a configuration, end to end, so an operator learns what is wrong
//! (and what to do) without the AWS console.
//!
//! Each [`Check`] is one question with a plain answer: are credentials found, are the stack
//! outputs readable, can this identity reach the raw bucket, the processed bucket and the catalog
//! table, how deep are the queues, does a dead-letter queue hold messages, did a session fail
//! recently. A check the caller's role is not meant to pass (a lab PC's `UploaderRole` may not
//! read queue attributes or processed objects) is `skipped` or `warn` with that explanation, not
//! a failure; a failure is something someone must fix.
//!
//! Everything here only reads: ListObjectsV2 (one key), DescribeTable, GetQueueAttributes, and a
//! catalog Query on the status index.

use std::path::PathBuf;

use aws_sdk_s3::config::ProvideCredentials;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_sqs::types::QueueAttributeName;
use chrono::{DateTime, TimeDelta, Utc};
use labpipe_aws::StackOutputs;
use labpipe_catalog::{Catalog, Status};
use serde::Serialize;

/// How long a FAILED session counts as recent.
pub const RECENT_FAILURES_DAYS: i64 = 7;

/// The answer of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    /// Works, but look at it (or: expected for some roles).
    Warn,
    /// Not run: it needs something that failed, or the caller's role may not do it.
    Skipped,
    /// Someone must fix this.
    Fail,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Warn => "warn",
            Outcome::Skipped => "skipped",
            Outcome::Fail => "FAIL",
        }
    }
}

/// One check: what was looked at, what was found, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub outcome: Outcome,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

fn check(name: &'static str, outcome: Outcome, detail: impl Into<String>) -> Check {
    Check {
        name,
        outcome,
        detail: detail.into(),
        fix: None,
    }
}

impl Check {
    fn fix(mut self, fix: impl Into<String>) -> Check {
        self.fix = Some(fix.into());
        self
    }
}

/// What to examine: the stack outputs file (if any) and names given on the command line, which
/// win over the file's.
#[derive(Debug, Clone, Default)]
pub struct Target {
    pub outputs: Option<PathBuf>,
    pub table: Option<String>,
    pub raw_bucket: Option<String>,
    pub processed_bucket: Option<String>,
}

/// The resource names after reading the outputs.
#[derive(Debug, Clone, Default)]
struct Names {
    table: Option<String>,
    raw_bucket: Option<String>,
    processed_bucket: Option<String>,
    queues: Vec<(&'static str, &'static str, Option<String>, bool)>,
}

/// Runs every check in order and returns them all (the caller prints and decides the exit code:
/// any [`Outcome::Fail`] is a failure).
pub async fn diagnose(
    sdk: &aws_config::SdkConfig,
    target: &Target,
    now: DateTime<Utc>,
) -> Vec<Check> {
    let mut out = Vec::new();
    let names = outputs_check(target, &mut out);

    // Credentials and region: without them nothing else can answer.
    let credentials = credentials_check(sdk).await;
    let have_credentials = credentials.outcome == Outcome::Ok;
    out.push(credentials);
    let region = match sdk.region() {
        Some(r) => check("region", Outcome::Ok, r.to_string()),
        None => check("region", Outcome::Fail, "no AWS region configured")
            .fix("set AWS_REGION (or region in ~/.aws/config) to the stack's region"),
    };
    let have_region = region.outcome == Outcome::Ok;
    out.push(region);
    if !(have_credentials && have_region) {
        for name in [
            "raw bucket",
            "processed bucket",
            "catalog table",
            "queues",
            "recent failures",
        ] {
            out.push(check(
                name,
                Outcome::Skipped,
                "needs credentials and a region (see above)",
            ));
        }
        return out;
    }

    let s3 = labpipe_aws::s3_client(
        sdk,
        &labpipe_aws::ClientOptions {
            max_attempts: 2,
            attempt_timeout: std::time::Duration::from_secs(20),
            ..labpipe_aws::ClientOptions::default()
        },
    );
    out.push(
        bucket_check(
            &s3,
            "raw bucket",
            names.raw_bucket.as_deref(),
            labpipe_core::layout::RAW_PREFIX,
            true,
        )
        .await,
    );
    out.push(
        bucket_check(
            &s3,
            "processed bucket",
            names.processed_bucket.as_deref(),
            "v",
            false,
        )
        .await,
    );

    let table_ok = match &names.table {
        Some(t) => {
            let c = table_check(sdk, t).await;
            let ok = c.outcome == Outcome::Ok;
            out.push(c);
            ok
        }
        None => {
            out.push(
                check("catalog table", Outcome::Fail, "no catalog table name")
                    .fix("pass --table, set LABPIPE_TABLE, or point --stack-outputs at the deployed stack's outputs"),
            );
            false
        }
    };

    let sqs = aws_sdk_sqs::Client::new(sdk);
    for (name, output, url, is_dlq) in &names.queues {
        out.push(queue_check(&sqs, name, output, url.as_deref(), *is_dlq).await);
    }

    if table_ok {
        let table = names.table.clone().unwrap_or_default();
        out.push(failures_check(&Catalog::from_sdk(sdk, table), now).await);
    } else {
        out.push(check(
            "recent failures",
            Outcome::Skipped,
            "needs the catalog table (see above)",
        ));
    }
    out
}

fn outputs_check(target: &Target, out: &mut Vec<Check>) -> Names {
    let mut names = Names {
        table: target.table.clone(),
        raw_bucket: target.raw_bucket.clone(),
        processed_bucket: target.processed_bucket.clone(),
        queues: Vec::new(),
    };
    let outputs = match &target.outputs {
        None => {
            let given = names.table.is_some() && names.raw_bucket.is_some();
            out.push(
                check(
                    "stack outputs",
                    if given { Outcome::Warn } else { Outcome::Fail },
                    format!("no {} found here or in a parent folder", labpipe_aws::stack::OUTPUTS_FILE),
                )
                .fix("deploy the stack (scripts/deploy-local.sh writes it), or pass --stack-outputs FILE; without it the queues cannot be checked"),
            );
            StackOutputs::default()
        }
        Some(path) => match StackOutputs::read(path) {
            Ok(o) => {
                let missing: Vec<&str> = [
                    "RawBucket",
                    "ProcessedBucket",
                    "CatalogTable",
                    "IngestQueueUrl",
                    "PreprocessQueueUrl",
                ]
                .into_iter()
                .filter(|k| o.get(k).is_none_or(str::is_empty))
                .collect();
                if missing.is_empty() {
                    out.push(check(
                        "stack outputs",
                        Outcome::Ok,
                        format!("{} ({} outputs)", path.display(), o.all.len()),
                    ));
                } else {
                    out.push(
                        check("stack outputs", Outcome::Fail, format!("{} lacks {}", path.display(), missing.join(", ")))
                            .fix("deploy the stack again so it writes every output, or pass the names as flags"),
                    );
                }
                o
            }
            Err(e) => {
                out.push(check("stack outputs", Outcome::Fail, e.to_string()));
                StackOutputs::default()
            }
        },
    };
    names.table = names.table.or(outputs.catalog_table.clone());
    names.raw_bucket = names.raw_bucket.or(outputs.raw_bucket.clone());
    names.processed_bucket = names.processed_bucket.or(outputs.processed_bucket.clone());
    let get = |k: &str| outputs.get(k).filter(|v| !v.is_empty()).map(str::to_string);
    names.queues = vec![
        (
            "ingest queue",
            "IngestQueueUrl",
            get("IngestQueueUrl"),
            false,
        ),
        (
            "preprocess queue",
            "PreprocessQueueUrl",
            get("PreprocessQueueUrl"),
            false,
        ),
        (
            "ingest dead-letter queue",
            "IngestDeadLetterQueueUrl",
            get("IngestDeadLetterQueueUrl"),
            true,
        ),
        (
            "preprocess dead-letter queue",
            "PreprocessDeadLetterQueueUrl",
            get("PreprocessDeadLetterQueueUrl"),
            true,
        ),
    ];
    names
}

async fn credentials_check(sdk: &aws_config::SdkConfig) -> Check {
    let fix = "set AWS_PROFILE to a configured profile (run `aws sso login` for SSO), or put the lab's key in ~/.aws/credentials; on EC2 attach the instance role";
    let Some(provider) = sdk.credentials_provider() else {
        return check(
            "credentials",
            Outcome::Fail,
            "no AWS credentials provider is configured",
        )
        .fix(fix);
    };
    match provider.provide_credentials().await {
        Ok(c) => {
            let id = c.access_key_id();
            let tail = &id[id.len().saturating_sub(4)..];
            let expiry = c
                .expiry()
                .map(|t| {
                    format!(
                        ", expires {}",
                        DateTime::<Utc>::from(t).format("%Y-%m-%d %H:%M UTC")
                    )
                })
                .unwrap_or_default();
            check(
                "credentials",
                Outcome::Ok,
                format!("found (access key …{tail}{expiry})"),
            )
        }
        Err(e) => check(
            "credentials",
            Outcome::Fail,
            format!("no usable AWS credentials: {}", DisplayErrorContext(&e)),
        )
        .fix(fix),
    }
}

async fn bucket_check(
    s3: &aws_sdk_s3::Client,
    name: &'static str,
    bucket: Option<&str>,
    prefix: &str,
    required: bool,
) -> Check {
    let Some(bucket) = bucket else {
        return check(name, Outcome::Fail, "no bucket name")
            .fix("pass the bucket flag, or point --stack-outputs at the deployed stack's outputs");
    };
    // One key under the prefix: the uploader may list only raw/ (ListRawPrefix), so a listing
    // with that prefix, not a HeadBucket, is what every role that uses the bucket can make.
    match s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .max_keys(1)
        .send()
        .await
    {
        Ok(_) => {
            // `v` is the start of every pipeline version's folder (`v<N>/`); say so.
            let shown = if prefix == "v" { "v<N>/" } else { prefix };
            check(
                name,
                Outcome::Ok,
                format!("s3://{bucket}/{shown} can be listed"),
            )
        }
        Err(e) => {
            let class = labpipe_aws::classify(&e);
            let detail = format!("s3://{bucket}/{prefix}: {}", labpipe_aws::describe(&e));
            match class {
                labpipe_aws::ErrorClass::AccessDenied if !required => check(name, Outcome::Warn, detail)
                    .fix("this identity may not read processed data: normal on the lab PC (UploaderRole); researchers and EC2 nodes need ResearcherRole or Ec2ReaderRole for query --files and sync"),
                labpipe_aws::ErrorClass::AccessDenied => check(name, Outcome::Fail, detail)
                    .fix("this identity may not list the bucket: use a profile that assumes the stack's UploaderRole (lab PC) or ResearcherRole (see docs/security.md)"),
                labpipe_aws::ErrorClass::NoSuchBucket => check(name, Outcome::Fail, detail)
                    .fix("the bucket does not exist in this account: check the name in the stack outputs and AWS_REGION"),
                _ => check(name, Outcome::Fail, detail).fix(class.advice()),
            }
        }
    }
}

async fn table_check(sdk: &aws_config::SdkConfig, table: &str) -> Check {
    let db = aws_sdk_dynamodb::Client::new(sdk);
    match db.describe_table().table_name(table).send().await {
        Ok(out) => {
            let status = out
                .table()
                .and_then(|t| t.table_status())
                .map(|s| s.as_str().to_string())
                .unwrap_or_else(|| "unknown".into());
            if status == "ACTIVE" {
                check("catalog table", Outcome::Ok, format!("{table} is ACTIVE"))
            } else {
                check("catalog table", Outcome::Warn, format!("{table} is {status}"))
                    .fix("wait until the table is ACTIVE; if it stays so, look at it in the DynamoDB console")
            }
        }
        Err(e) => {
            let code = e.code().unwrap_or_default().to_string();
            let detail = format!("{table}: {}", DisplayErrorContext(&e));
            match code.as_str() {
                "ResourceNotFoundException" => check("catalog table", Outcome::Fail, format!("table {table} does not exist in {}", region(sdk)))
                    .fix("check CatalogTable in the stack outputs, --table / LABPIPE_TABLE, and AWS_REGION"),
                c if c.starts_with("AccessDenied") => check("catalog table", Outcome::Fail, detail)
                    .fix("this identity may not read the catalog: every LabPipe role has ReadCatalog; use a profile that assumes one"),
                _ => check("catalog table", Outcome::Fail, detail).fix("check the network and AWS_REGION, then run doctor again"),
            }
        }
    }
}

fn region(sdk: &aws_config::SdkConfig) -> String {
    sdk.region()
        .map(|r| r.to_string())
        .unwrap_or_else(|| "no region".into())
}

async fn queue_check(
    sqs: &aws_sdk_sqs::Client,
    name: &'static str,
    output: &'static str,
    url: Option<&str>,
    dead_letter: bool,
) -> Check {
    let Some(url) = url else {
        return check(
            name,
            Outcome::Skipped,
            format!("no {output} in the stack outputs"),
        )
        .fix("pass --stack-outputs with the deployed stack's outputs");
    };
    let res = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await;
    let out = match res {
        Ok(o) => o,
        Err(e) => {
            let code = e.code().unwrap_or_default().to_string();
            let detail = format!("{url}: {}", DisplayErrorContext(&e));
            return if code.contains("AccessDenied") {
                check(name, Outcome::Skipped, "this identity may not read queue attributes")
                    .fix("queues are an operator's check: run doctor with the administrator's profile (lab and researcher roles have no SQS rights)")
            } else if code.contains("NonExistentQueue") || code.contains("QueueDoesNotExist") {
                check(name, Outcome::Fail, format!("queue {url} does not exist"))
                    .fix(format!("check {output} in the stack outputs and AWS_REGION; deploy the stack again if it was deleted"))
            } else {
                check(name, Outcome::Fail, detail)
                    .fix("check the network and AWS_REGION, then run doctor again")
            };
        }
    };
    let attr = |a: QueueAttributeName| {
        out.attributes()
            .and_then(|m| m.get(&a))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let waiting = attr(QueueAttributeName::ApproximateNumberOfMessages);
    let in_flight = attr(QueueAttributeName::ApproximateNumberOfMessagesNotVisible);
    if dead_letter {
        let n = waiting + in_flight;
        if n == 0 {
            check(name, Outcome::Ok, "empty")
        } else {
            let step = if name.starts_with("ingest") {
                "ingest"
            } else {
                "preprocess"
            };
            check(name, Outcome::Fail, format!("{n} message(s): {step} gave up on them after repeated transient failures; their sessions are not processed"))
                .fix(format!("find the cause in the {step} function's log group, fix it, then move the messages back to the {step} queue (docs/operations.md)"))
        }
    } else {
        check(
            name,
            Outcome::Ok,
            format!("{waiting} waiting, {in_flight} being processed"),
        )
    }
}

async fn failures_check(catalog: &Catalog, now: DateTime<Utc>) -> Check {
    let failed = match catalog.with_status(Status::Failed, 200).await {
        Ok(f) => f,
        Err(e) => return check("recent failures", Outcome::Fail, e.to_string()),
    };
    let since = now - TimeDelta::days(RECENT_FAILURES_DAYS);
    let recent: Vec<_> = failed.iter().filter(|s| s.updated_at >= since).collect();
    if recent.is_empty() {
        return check(
            "recent failures",
            Outcome::Ok,
            format!("no session FAILED in the last {RECENT_FAILURES_DAYS} days"),
        );
    }
    let list: Vec<String> = recent
        .iter()
        .take(5)
        .map(|s| {
            format!(
                "{} ({}: {})",
                s.session,
                s.status_step.as_deref().unwrap_or("?"),
                s.status_message.as_deref().unwrap_or("no message")
            )
        })
        .collect();
    let more = if recent.len() > 5 {
        format!(" and {} more", recent.len() - 5)
    } else {
        String::new()
    };
    check(
        "recent failures",
        Outcome::Fail,
        format!(
            "{} session(s) FAILED in the last {RECENT_FAILURES_DAYS} days: {}{more}",
            recent.len(),
            list.join("; ")
        ),
    )
    .fix(format!(
        "see `labpipe status {}` for the reason and what to do",
        recent[0].session
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_outputs_file_fails_unless_names_are_given() {
        let mut out = Vec::new();
        outputs_check(&Target::default(), &mut out);
        assert_eq!(out[0].outcome, Outcome::Fail);
        let mut out = Vec::new();
        let t = Target {
            table: Some("t".into()),
            raw_bucket: Some("r".into()),
            ..Target::default()
        };
        let names = outputs_check(&t, &mut out);
        assert_eq!(out[0].outcome, Outcome::Warn);
        assert_eq!(names.table.as_deref(), Some("t"));
        assert!(names.queues.iter().all(|q| q.2.is_none()));
    }

    #[test]
    fn an_outputs_file_lacking_names_fails_and_says_which() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("outputs.json");
        std::fs::write(&file, r#"{"RawBucket": "r", "CatalogTable": "t"}"#).unwrap();
        let mut out = Vec::new();
        let names = outputs_check(
            &Target {
                outputs: Some(file),
                ..Target::default()
            },
            &mut out,
        );
        assert_eq!(out[0].outcome, Outcome::Fail);
        assert!(
            out[0]
                .detail
                .contains("ProcessedBucket, IngestQueueUrl, PreprocessQueueUrl"),
            "{}",
            out[0].detail
        );
        assert_eq!(names.raw_bucket.as_deref(), Some("r"));
    }
}
