//! A deployed stack with queues, for the tests that drive the pipeline (`backend/tests`,
//! `tests/tests/operations.rs`): the raw and processed buckets, the catalog table, the ingest and
//! preprocess queues each with its dead-letter queue, and the raw bucket's manifest notification
//! to the ingest queue — the wiring of `infra/template.yaml`, made through the API on the shared
//! emulator under names from [`unique_name`], so each test has its own. Its queues start empty,
//! as a deployed stack's are once the ingest function has consumed the notification's
//! `s3:TestEvent`.
//!
//! Why not `infra/deploy_local.py` (the template through the emulator's CloudFormation): a
//! deploy is a Python process and a whole stack (roles, functions, alarms, log groups, a trail,
//! Object Lock and bucket policies) per test, seconds each where this takes a few requests, and
//! the tests here need a stack the template does not make (no processed bucket yet). What must
//! not drift from the template is read from it: each queue's `maxReceiveCount` and the
//! notification's key filter; the output names are the template's `Outputs`.
//! `tests/tests/lambda.rs` and `deploy.rs` run the template itself.

use std::collections::BTreeMap;

use anyhow::{bail, Context as _};
use aws_sdk_s3::types::{
    Event, FilterRule, FilterRuleName, NotificationConfiguration, NotificationConfigurationFilter,
    QueueConfiguration, S3KeyFilter,
};
use aws_sdk_sqs::types::QueueAttributeName;

use crate::{create_catalog_table, repo_root, unique_name, Emulator};

/// One stack's resources on the emulator: names and queue URLs.
#[derive(Debug, Clone)]
pub struct QueueStack {
    pub raw_bucket: String,
    pub processed_bucket: String,
    pub table: String,
    pub ingest_queue_url: String,
    pub ingest_dead_letter_queue_url: String,
    pub preprocess_queue_url: String,
    pub preprocess_dead_letter_queue_url: String,
}

impl QueueStack {
    /// The whole stack. Panics naming what could not be made.
    pub async fn create(emulator: &Emulator) -> QueueStack {
        Self::try_create(emulator, true)
            .await
            .unwrap_or_else(|e| panic!("cannot make the test stack: {e:#}"))
    }

    /// The stack without its processed bucket (the name is chosen, the bucket not made): every
    /// preprocessing run fails transiently until the test creates it.
    pub async fn create_without_processed_bucket(emulator: &Emulator) -> QueueStack {
        Self::try_create(emulator, false)
            .await
            .unwrap_or_else(|e| panic!("cannot make the test stack: {e:#}"))
    }

    async fn try_create(emulator: &Emulator, processed_bucket: bool) -> anyhow::Result<Self> {
        let s3 = emulator.s3_client().await;
        let sqs = aws_sdk_sqs::Client::new(&emulator.sdk_config().await);
        let stack = QueueStack {
            raw_bucket: unique_name("raw"),
            processed_bucket: unique_name("processed"),
            table: unique_name("catalog"),
            ingest_queue_url: String::new(),
            ingest_dead_letter_queue_url: String::new(),
            preprocess_queue_url: String::new(),
            preprocess_dead_letter_queue_url: String::new(),
        };
        let mut buckets = vec![&stack.raw_bucket];
        if processed_bucket {
            buckets.push(&stack.processed_bucket);
        }
        for bucket in buckets {
            s3.create_bucket()
                .bucket(bucket)
                .send()
                .await
                .with_context(|| format!("CreateBucket {bucket}"))?;
        }
        create_catalog_table(&emulator.dynamodb_client().await, &stack.table).await?;
        let (ingest_dlq, ingest_dlq_arn) = queue(&sqs, "ingest-dlq", None).await?;
        let (ingest, ingest_arn) = queue(
            &sqs,
            "ingest",
            Some((&ingest_dlq_arn, max_receive_count("IngestQueue")?)),
        )
        .await?;
        let (preprocess_dlq, preprocess_dlq_arn) = queue(&sqs, "preprocess-dlq", None).await?;
        let (preprocess, _) = queue(
            &sqs,
            "preprocess",
            Some((&preprocess_dlq_arn, max_receive_count("PreprocessQueue")?)),
        )
        .await?;
        notify_manifests(&s3, &stack.raw_bucket, ingest_arn).await?;
        drop_test_events(&sqs, &ingest).await?;
        Ok(QueueStack {
            ingest_queue_url: ingest,
            ingest_dead_letter_queue_url: ingest_dlq,
            preprocess_queue_url: preprocess,
            preprocess_dead_letter_queue_url: preprocess_dlq,
            ..stack
        })
    }

    /// The stack outputs (the template's `Outputs` names) that name these resources, as
    /// `scripts/deploy-local.sh` writes them: for `LABPIPE_STACK_OUTPUTS`, or the backend's
    /// `BackendConfig::resolve`.
    pub fn outputs(&self) -> BTreeMap<String, String> {
        [
            ("CatalogTable", self.table.as_str()),
            ("RawBucket", &self.raw_bucket),
            ("ProcessedBucket", &self.processed_bucket),
            ("IngestQueueUrl", &self.ingest_queue_url),
            (
                "IngestDeadLetterQueueUrl",
                &self.ingest_dead_letter_queue_url,
            ),
            ("PreprocessQueueUrl", &self.preprocess_queue_url),
            (
                "PreprocessDeadLetterQueueUrl",
                &self.preprocess_dead_letter_queue_url,
            ),
            ("PipelineVersion", "1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }
}

/// A queue named from `name`, with a redrive policy to `dead_letter` (its ARN and the receive
/// count) when given; its URL and ARN.
async fn queue(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    dead_letter: Option<(&str, u32)>,
) -> anyhow::Result<(String, String)> {
    let name = unique_name(name);
    let mut create = sqs.create_queue().queue_name(&name);
    if let Some((arn, max)) = dead_letter {
        create = create.attributes(
            QueueAttributeName::RedrivePolicy,
            serde_json::json!({"deadLetterTargetArn": arn, "maxReceiveCount": max}).to_string(),
        );
    }
    let url = create
        .send()
        .await
        .with_context(|| format!("CreateQueue {name}"))?
        .queue_url()
        .context("CreateQueue returned no URL")?
        .to_string();
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .with_context(|| format!("GetQueueAttributes {url}"))?
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .with_context(|| format!("queue {url} has no QueueArn"))?
        .clone();
    Ok((url, arn))
}

/// The raw bucket's notification: every object created under the template's key filter (the
/// manifests) is an event on the ingest queue.
async fn notify_manifests(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    ingest_arn: String,
) -> anyhow::Result<()> {
    let mut key = S3KeyFilter::builder();
    for (name, value) in manifest_key_filter()? {
        let name = match name.as_str() {
            "prefix" => FilterRuleName::Prefix,
            "suffix" => FilterRuleName::Suffix,
            other => bail!("infra/template.yaml: unknown S3 key filter rule {other:?}"),
        };
        key = key.filter_rules(FilterRule::builder().name(name).value(value).build());
    }
    let queue = QueueConfiguration::builder()
        .queue_arn(ingest_arn)
        .events(Event::S3ObjectCreated)
        .filter(
            NotificationConfigurationFilter::builder()
                .key(key.build())
                .build(),
        )
        .build()
        .context("queue configuration")?;
    s3.put_bucket_notification_configuration()
        .bucket(bucket)
        .notification_configuration(
            NotificationConfiguration::builder()
                .queue_configurations(queue)
                .build(),
        )
        .send()
        .await
        .with_context(|| format!("PutBucketNotificationConfiguration {bucket}"))?;
    Ok(())
}

/// Deletes the `s3:TestEvent` that setting the notification sends to the ingest queue (as AWS
/// does): on a deployed stack the ingest function has consumed it, and a test starts from empty
/// queues.
async fn drop_test_events(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> anyhow::Result<()> {
    let out = sqs
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(10)
        .send()
        .await
        .with_context(|| format!("ReceiveMessage {queue_url}"))?;
    for message in out.messages() {
        let test_event = message.body().is_some_and(|b| b.contains("s3:TestEvent"));
        if let (true, Some(handle)) = (test_event, message.receipt_handle()) {
            sqs.delete_message()
                .queue_url(queue_url)
                .receipt_handle(handle)
                .send()
                .await
                .with_context(|| format!("DeleteMessage {queue_url}"))?;
        }
    }
    Ok(())
}

fn template() -> anyhow::Result<String> {
    let path = repo_root().join("infra/template.yaml");
    std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))
}

/// The lines of the template's resource `logical` (indented under `  <logical>:`).
fn resource_lines(template: &str, logical: &str) -> Vec<String> {
    let head = format!("  {logical}:");
    template
        .lines()
        .skip_while(|l| *l != head)
        .skip(1)
        .take_while(|l| l.trim().is_empty() || l.starts_with("   "))
        .map(str::to_string)
        .collect()
}

/// The `maxReceiveCount` of the queue `logical` (`IngestQueue`, `PreprocessQueue`) in
/// `infra/template.yaml`.
pub fn max_receive_count(logical: &str) -> anyhow::Result<u32> {
    let lines = resource_lines(&template()?, logical);
    let value = lines
        .iter()
        .find_map(|l| l.trim().strip_prefix("maxReceiveCount:"))
        .with_context(|| format!("infra/template.yaml: {logical} has no maxReceiveCount"))?;
    value.trim().parse().with_context(|| {
        format!("infra/template.yaml: {logical}'s maxReceiveCount {value:?} is not a whole number")
    })
}

/// The `(name, value)` rules of the raw bucket's notification key filter in
/// `infra/template.yaml` (`prefix raw/`, `suffix manifest.json`).
fn manifest_key_filter() -> anyhow::Result<Vec<(String, String)>> {
    let lines = resource_lines(&template()?, "RawBucket");
    let mut rules = Vec::new();
    let mut in_rules = false;
    for line in lines
        .iter()
        .skip_while(|l| l.trim() != "QueueConfigurations:")
    {
        let text = line.trim();
        if text == "Rules:" {
            in_rules = true;
        } else if let Some(name) = text.strip_prefix("- Name:").filter(|_| in_rules) {
            rules.push((name.trim().to_string(), String::new()));
        } else if let Some(value) = text.strip_prefix("Value:").filter(|_| in_rules) {
            match rules.last_mut() {
                Some(rule) => rule.1 = value.trim().to_string(),
                None => {
                    bail!("infra/template.yaml: RawBucket's key filter has a Value before a Name")
                }
            }
        } else if in_rules {
            break;
        }
    }
    if rules.is_empty() {
        bail!("infra/template.yaml: RawBucket's notification has no key filter rules");
    }
    Ok(rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the fixture reads from the template is what the template says (and what the backend
    /// counts deliveries against).
    #[test]
    fn the_wiring_read_from_the_template() {
        assert_eq!(max_receive_count("IngestQueue").unwrap(), 5);
        assert_eq!(max_receive_count("PreprocessQueue").unwrap(), 3);
        assert_eq!(
            manifest_key_filter().unwrap(),
            [
                ("prefix".to_string(), "raw/".to_string()),
                ("suffix".to_string(), "manifest.json".to_string())
            ]
        );
        assert!(max_receive_count("RawBucket").is_err());
    }
}
