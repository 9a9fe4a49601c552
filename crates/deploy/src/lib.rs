//! Deploys LabPipe into a lab's AWS account with one call.
//!
//! A lab should not need to know CloudFormation to get the pipeline running, and the code its
//! Lambdas run must be exactly the zips it built. So [`deploy`] does the whole path: it puts the
//! two Lambda zips ([`LambdaPackage`]) into an artifacts bucket under *content-hashed* keys (a new
//! build is a new key, so CloudFormation sees a changed `Code` and updates the functions; an
//! unchanged build changes nothing), then creates or updates the stack of `infra/template.yaml`
//! with those keys as parameters, waits for it while reporting each resource event, and returns
//! the outputs and the next steps a lab takes (who gets which role).
//!
//! The library is used by `labpipe admin deploy` and by the end-to-end test against the local
//! emulator; it never deletes anything (a failed first create is left for the operator to
//! delete, so its events stay readable).

mod package;
mod stack;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use labpipe_aws::ErrorClass;
use serde::Serialize;
use sha2::{Digest, Sha256};

pub use package::{build_package, elf_arch, Arch, BuildOptions, LambdaPackage};
pub use stack::{
    deploy_stack, FailedResource, StackAction, StackEvent, StackOutcome, StackRequest,
};

/// `infra/template.yaml` as this binary was built with it: the deployed infrastructure and the
/// code that talks to it come from the same commit.
pub const TEMPLATE: &str = include_str!("../../../infra/template.yaml");

/// `infra/deploy-role.yaml`: the CloudFormation service role of the LabPipe stack, deployed first
/// as its own stack ([`role_stack_name`]) with the administrator's credentials. Every operation
/// on the LabPipe stack then runs as that role, the one principal besides break-glass that the
/// raw and audit bucket policies let change those buckets' configuration (a retention parameter,
/// the policies themselves).
pub const ROLE_TEMPLATE: &str = include_str!("../../../infra/deploy-role.yaml");

/// The stack holding the LabPipe stack's CloudFormation service role.
pub fn role_stack_name(stack: &str) -> String {
    format!("{stack}-cfn-role")
}

/// Capabilities the template needs: it creates IAM roles with fixed names.
pub const CAPABILITIES: [&str; 2] = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"];

/// Largest template CloudFormation takes inline; a larger one goes through the artifacts bucket.
/// <https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/cloudformation-limits.html>
pub const MAX_TEMPLATE_BODY: usize = 51_200;

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("invalid {what}: {reason}")]
    Invalid { what: String, reason: String },
    #[error("lambda package {}: {reason}", path.display())]
    Package { path: PathBuf, reason: String },
    #[error("cannot build the lambda zips: {0}")]
    Build(String),
    #[error("{what}: {message}")]
    Aws { what: String, message: String },
    #[error("stack {stack} ended in {status}{}", failure_detail(.reason, .failed))]
    StackFailed {
        stack: String,
        status: String,
        reason: String,
        failed: Vec<FailedResource>,
    },
    #[error("stack {stack} is still {status} after {secs}s; watch it in the CloudFormation console and run the deploy again when it has settled")]
    Timeout {
        stack: String,
        status: String,
        secs: u64,
    },
    #[error("stack {stack} is {status}: {what_to_do}")]
    StackBlocked {
        stack: String,
        status: String,
        what_to_do: String,
    },
}

fn failure_detail(reason: &str, failed: &[FailedResource]) -> String {
    let mut out = if reason.is_empty() {
        String::new()
    } else {
        format!(" ({reason})")
    };
    for f in failed {
        out.push_str(&format!(
            "\n  {} ({}): {} {}",
            f.logical_id, f.resource_type, f.status, f.reason
        ));
    }
    if failed.is_empty() {
        out.push_str("; see the stack's events in the CloudFormation console");
    }
    out
}

pub type Result<T, E = DeployError> = std::result::Result<T, E>;

/// Wraps an SDK error with what was being done, keeping the service's own message.
pub(crate) fn aws_error(what: impl Into<String>, e: impl std::error::Error) -> DeployError {
    DeployError::Aws {
        what: what.into(),
        message: aws_sdk_s3::error::DisplayErrorContext(e).to_string(),
    }
}

/// Where alarms go: required by the template, an address or an explicit `none`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlarmEmail {
    Address(String),
    Nobody,
}

impl AlarmEmail {
    pub fn parse(s: &str) -> Result<Self> {
        let s = s.trim();
        if s == "none" {
            return Ok(AlarmEmail::Nobody);
        }
        let ok = matches!(s.split_once('@'), Some((user, host))
            if !user.is_empty() && host.contains('.') && !host.starts_with('.') && !host.ends_with('.')
            && !host.contains('@') && !s.chars().any(char::is_whitespace));
        if ok {
            Ok(AlarmEmail::Address(s.to_string()))
        } else {
            Err(DeployError::Invalid {
                what: "alarm e-mail".into(),
                reason: format!("'{s}' is neither an e-mail address nor the word none"),
            })
        }
    }

    /// The template parameter value.
    pub fn parameter(&self) -> &str {
        match self {
            AlarmEmail::Address(a) => a,
            AlarmEmail::Nobody => "none",
        }
    }
}

/// Everything one deploy needs.
#[derive(Debug, Clone)]
pub struct DeployPlan {
    pub stack: String,
    pub region: String,
    pub alarm_email: AlarmEmail,
    /// Artifacts bucket; default `<stack>-artifacts-<account>-<region>`, created if missing.
    pub artifacts_bucket: Option<String>,
    pub package: LambdaPackage,
    pub arch: Arch,
    /// Other template parameters (e.g. `PipelineVersion`); on an update, parameters not named
    /// here keep their deployed values.
    pub parameters: BTreeMap<String, String>,
    /// The template body (normally [`TEMPLATE`]).
    pub template: String,
    pub timeout: Duration,
    /// Pause between two looks at the stack.
    pub poll: Duration,
}

/// What a deploy did.
#[derive(Debug, Clone, Serialize)]
pub struct Deployment {
    pub stack: String,
    pub region: String,
    pub action: StackAction,
    pub status: String,
    pub artifacts_bucket: String,
    pub artifacts_bucket_created: bool,
    /// The stack holding the CloudFormation service role, and that role's ARN (passed as RoleARN).
    pub role_stack: String,
    pub cloudformation_role_arn: String,
    pub ingest_code_key: String,
    pub preprocess_code_key: String,
    /// Artifact keys uploaded by this run (an unchanged build uploads nothing).
    pub uploaded: Vec<String>,
    pub outputs: BTreeMap<String, String>,
    pub elapsed_secs: f64,
    pub next_steps: Vec<String>,
}

/// The AWS clients a deploy uses.
#[derive(Debug, Clone)]
pub struct Clients {
    pub cloudformation: aws_sdk_cloudformation::Client,
    pub s3: aws_sdk_s3::Client,
    pub sts: aws_sdk_sts::Client,
}

impl Clients {
    pub fn new(sdk: &aws_config::SdkConfig) -> Self {
        Clients {
            cloudformation: aws_sdk_cloudformation::Client::new(sdk),
            // The workspace's one S3 gateway: retries, timeouts, path style for an endpoint.
            s3: labpipe_aws::s3_client(sdk, &labpipe_aws::ClientOptions::service()),
            sts: aws_sdk_sts::Client::new(sdk),
        }
    }
}

/// Checks a stack name: it is part of the bucket names (`<stack>-processed-<account>-<region>`,
/// at most 63 characters, lowercase) and of the function names.
pub fn validate_stack_name(stack: &str, region: &str) -> Result<()> {
    let invalid = |reason: String| DeployError::Invalid {
        what: "stack name".into(),
        reason,
    };
    let first_ok = stack.chars().next().is_some_and(|c| c.is_ascii_lowercase());
    if !first_ok
        || !stack
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        || stack.ends_with('-')
    {
        return Err(invalid(format!(
            "'{stack}' must be lowercase letters, digits and '-', starting with a letter (it is part of the bucket names)"
        )));
    }
    // The longest bucket name: <stack>-processed-<12-digit account>-<region>.
    let max = 63 - "-processed-".len() - 12 - 1 - region.len();
    if stack.len() > max {
        return Err(invalid(format!(
            "'{stack}' is {} characters; in {region} at most {max} fit in the bucket names",
            stack.len()
        )));
    }
    Ok(())
}

/// The artifact key of a zip: `lambda/<name>-<first 16 hex of SHA-256>.zip`.
pub fn artifact_key(name: &str, zip: &[u8]) -> String {
    let digest = hex::encode(Sha256::digest(zip));
    format!("lambda/{name}-{}.zip", &digest[..16])
}

/// Creates `bucket` if it does not exist (private, versioned, so earlier code stays
/// recoverable). Returns whether it was created.
pub async fn ensure_artifacts_bucket(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    region: &str,
) -> Result<bool> {
    match s3.head_bucket().bucket(bucket).send().await {
        Ok(_) => return Ok(false),
        Err(e) => {
            let class = labpipe_aws::classify(&e);
            if !matches!(class, ErrorClass::NotFound | ErrorClass::NoSuchBucket) {
                return Err(if class == ErrorClass::AccessDenied {
                    DeployError::Aws {
                        what: format!("artifacts bucket {bucket}"),
                        message: "it exists but these credentials may not use it (another account's bucket names are global): pass another --artifacts-bucket".into(),
                    }
                } else {
                    aws_error(format!("cannot look up the artifacts bucket {bucket}"), e)
                });
            }
        }
    }
    let mut create = s3.create_bucket().bucket(bucket);
    // us-east-1 is the one region that takes no location constraint.
    // https://docs.aws.amazon.com/AmazonS3/latest/API/API_CreateBucket.html
    if region != "us-east-1" {
        create = create.create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(region))
                .build(),
        );
    }
    create
        .send()
        .await
        .map_err(|e| aws_error(format!("cannot create the artifacts bucket {bucket}"), e))?;
    s3.put_public_access_block()
        .bucket(bucket)
        .public_access_block_configuration(
            aws_sdk_s3::types::PublicAccessBlockConfiguration::builder()
                .block_public_acls(true)
                .ignore_public_acls(true)
                .block_public_policy(true)
                .restrict_public_buckets(true)
                .build(),
        )
        .send()
        .await
        .map_err(|e| aws_error(format!("cannot block public access to {bucket}"), e))?;
    s3.put_bucket_versioning()
        .bucket(bucket)
        .versioning_configuration(
            aws_sdk_s3::types::VersioningConfiguration::builder()
                .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .map_err(|e| aws_error(format!("cannot turn on versioning of {bucket}"), e))?;
    Ok(true)
}

/// Uploads `zip` as `name` unless an object with its content-hashed key is already there.
/// Returns the key and whether it was uploaded now.
pub async fn upload_artifact(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    name: &str,
    zip: &Path,
) -> Result<(String, bool)> {
    let bytes = std::fs::read(zip).map_err(|e| DeployError::Package {
        path: zip.to_path_buf(),
        reason: format!("cannot read it: {e}"),
    })?;
    let key = artifact_key(name, &bytes);
    match s3.head_object().bucket(bucket).key(&key).send().await {
        Ok(head) if head.content_length() == Some(bytes.len() as i64) => return Ok((key, false)),
        Ok(_) => {}
        Err(e) if labpipe_aws::classify(&e) == ErrorClass::NotFound => {}
        Err(e) => return Err(aws_error(format!("cannot look up s3://{bucket}/{key}"), e)),
    }
    s3.put_object()
        .bucket(bucket)
        .key(&key)
        .content_type("application/zip")
        .body(ByteStream::from(bytes))
        .send()
        .await
        .map_err(|e| {
            aws_error(
                format!("cannot upload {} to s3://{bucket}/{key}", zip.display()),
                e,
            )
        })?;
    Ok((key, true))
}

/// Uploads the package, then creates or updates the stack. `progress` sees each stack event.
pub async fn deploy(
    clients: &Clients,
    plan: &DeployPlan,
    progress: &mut dyn FnMut(&StackEvent),
) -> Result<Deployment> {
    let started = std::time::Instant::now();
    validate_stack_name(&plan.stack, &plan.region)?;
    plan.package.validate()?;
    let bucket = match &plan.artifacts_bucket {
        Some(b) => b.clone(),
        None => {
            let who = clients
                .sts
                .get_caller_identity()
                .send()
                .await
                .map_err(|e| aws_error("cannot tell which account these credentials belong to (sts GetCallerIdentity); check AWS_PROFILE / credentials", e))?;
            let account = who.account().unwrap_or_default();
            format!("{}-artifacts-{account}-{}", plan.stack, plan.region)
        }
    };
    let created = ensure_artifacts_bucket(&clients.s3, &bucket, &plan.region).await?;
    let mut uploaded = Vec::new();
    let (ingest_key, new) =
        upload_artifact(&clients.s3, &bucket, "ingest", &plan.package.ingest).await?;
    if new {
        uploaded.push(ingest_key.clone());
    }
    let (preprocess_key, new) =
        upload_artifact(&clients.s3, &bucket, "preprocess", &plan.package.preprocess).await?;
    if new {
        uploaded.push(preprocess_key.clone());
    }

    let mut parameters = plan.parameters.clone();
    parameters.insert("AlarmEmail".into(), plan.alarm_email.parameter().into());
    parameters.insert("LambdaCodeBucket".into(), bucket.clone());
    parameters.insert("IngestCodeKey".into(), ingest_key.clone());
    parameters.insert("PreprocessCodeKey".into(), preprocess_key.clone());
    parameters.insert(
        "LambdaArchitecture".into(),
        plan.arch.template_value().into(),
    );

    let template_url = if plan.template.len() > MAX_TEMPLATE_BODY {
        let key = artifact_key("template", plan.template.as_bytes())
            .replace("lambda/", "templates/")
            .replace(".zip", ".yaml");
        clients
            .s3
            .put_object()
            .bucket(&bucket)
            .key(&key)
            .body(ByteStream::from(plan.template.clone().into_bytes()))
            .send()
            .await
            .map_err(|e| {
                aws_error(
                    format!("cannot upload the template to s3://{bucket}/{key}"),
                    e,
                )
            })?;
        Some(format!(
            "https://{bucket}.s3.{}.amazonaws.com/{key}",
            plan.region
        ))
    } else {
        None
    };
    // The service role first, with the administrator's own credentials: someone has to create
    // it, and CloudFormation can only run as a role that exists (docs/security.md).
    let role_stack = role_stack_name(&plan.stack);
    let role = deploy_stack(
        &clients.cloudformation,
        &StackRequest {
            stack: role_stack.clone(),
            template_body: ROLE_TEMPLATE.to_string(),
            template_url: None,
            parameters: BTreeMap::from([
                ("LabPipeStackName".to_string(), plan.stack.clone()),
                ("ArtifactsBucket".to_string(), bucket.clone()),
            ]),
            role_arn: None,
            timeout: plan.timeout,
            poll: plan.poll,
        },
        progress,
    )
    .await?;
    let role_arn = role
        .outputs
        .get("RoleArn")
        .cloned()
        .ok_or_else(|| DeployError::Aws {
            what: format!("stack {role_stack}"),
            message: "has no RoleArn output; delete it and deploy again".into(),
        })?;
    let outcome = deploy_stack(
        &clients.cloudformation,
        &StackRequest {
            stack: plan.stack.clone(),
            template_body: plan.template.clone(),
            template_url,
            parameters,
            role_arn: Some(role_arn.clone()),
            timeout: plan.timeout,
            poll: plan.poll,
        },
        progress,
    )
    .await?;
    let next_steps = next_steps(
        &plan.stack,
        &plan.region,
        &plan.alarm_email,
        &outcome.outputs,
    );
    Ok(Deployment {
        stack: plan.stack.clone(),
        region: plan.region.clone(),
        action: outcome.action,
        status: outcome.status,
        artifacts_bucket: bucket,
        artifacts_bucket_created: created,
        role_stack,
        cloudformation_role_arn: role_arn,
        ingest_code_key: ingest_key,
        preprocess_code_key: preprocess_key,
        uploaded,
        outputs: outcome.outputs,
        elapsed_secs: started.elapsed().as_secs_f64(),
        next_steps,
    })
}

/// What the lab does after a deploy: who gets which role, and how the clients find the stack.
pub fn next_steps(
    stack: &str,
    region: &str,
    alarm: &AlarmEmail,
    outputs: &BTreeMap<String, String>,
) -> Vec<String> {
    let out = |k: &str| outputs.get(k).cloned().unwrap_or_else(|| format!("<{k}>"));
    let mut steps = vec![
        format!(
            "Lab PC (uploader): let its IAM user or Identity Center permission set assume {role} (sts:AssumeRole, nothing else), \
             and give the PC a profile with role_arn = that ARN for the CLI; the desktop app takes the user's key in Settings \
             and assumes the role itself (labpipe-app configure --stack-outputs FILE sets it). It may upload and never delete.",
            role = out("UploaderRoleArn")
        ),
        format!(
            "Researchers: let them assume {} (query, status, sync, read raw).",
            out("ResearcherRoleArn")
        ),
        format!(
            "EC2 compute nodes: launch them with the instance profile {} (read-only); the SDK picks up the instance role by itself.",
            out("Ec2ReaderInstanceProfile")
        ),
        format!(
            "Clients need nothing else: export AWS_REGION={region} LABPIPE_RAW_BUCKET={} LABPIPE_TABLE={} \
             (or save the outputs as .labpipe/stack/outputs.json), then labpipe upload / query / status / sync.",
            out("RawBucket"),
            out("CatalogTable")
        ),
        format!(
            "Break-glass ({}) is the only principal that may delete raw data; it requires MFA.",
            out("BreakGlassRoleArn")
        ),
        format!(
            "Stack operations run as the CloudFormation role of stack {role_stack} (the one principal besides break-glass that may change the raw and audit buckets' configuration): \
             whoever may run `labpipe admin deploy` needs iam:PassRole on it; remove the stacks as docs/operations.md says.",
            role_stack = role_stack_name(stack)
        ),
    ];
    match alarm {
        AlarmEmail::Address(a) => steps.push(format!(
            "Alarms: {a} must confirm the subscription e-mail from SNS, or no alarm reaches it."
        )),
        AlarmEmail::Nobody => steps.push(format!(
            "Alarms: nobody is subscribed; subscribe someone to {} (aws sns subscribe).",
            out("AlarmTopicArn")
        )),
    }
    steps.push(format!(
        "Redeploy after a new build with the same command: new zips get new keys in the artifacts bucket and the functions of {stack} are updated."
    ));
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alarm_email_is_an_address_or_none() {
        assert_eq!(AlarmEmail::parse("none").unwrap(), AlarmEmail::Nobody);
        assert_eq!(
            AlarmEmail::parse("lab@uni.example").unwrap().parameter(),
            "lab@uni.example"
        );
        for bad in [
            "",
            "lab",
            "lab@",
            "@uni.example",
            "lab@uni",
            "a b@c.d",
            "a@b@c.d",
        ] {
            assert!(AlarmEmail::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn stack_names_fit_the_bucket_names() {
        validate_stack_name("labpipe", "eu-central-1").unwrap();
        for bad in ["", "LabPipe", "1lab", "lab_pipe", "lab-", "lab pipe"] {
            assert!(
                validate_stack_name(bad, "us-east-1").is_err(),
                "{bad:?} accepted"
            );
        }
        let long = "a".repeat(30);
        let err = validate_stack_name(&long, "ap-southeast-2")
            .unwrap_err()
            .to_string();
        assert!(err.contains("at most"), "{err}");
    }

    #[test]
    fn artifact_keys_follow_the_content() {
        let a = artifact_key("ingest", b"one build");
        assert_eq!(a, artifact_key("ingest", b"one build"));
        assert_ne!(a, artifact_key("ingest", b"another build"));
        assert!(
            a.starts_with("lambda/ingest-") && a.ends_with(".zip"),
            "{a}"
        );
    }

    #[test]
    fn the_embedded_template_takes_the_code_parameters() {
        for p in [
            "LambdaCodeBucket:",
            "IngestCodeKey:",
            "PreprocessCodeKey:",
            "LambdaArchitecture:",
            "AlarmEmail:",
        ] {
            assert!(
                TEMPLATE.contains(&format!("\n  {p}")),
                "template lacks parameter {p}"
            );
        }
        let len = TEMPLATE.len();
        assert!(
            len <= MAX_TEMPLATE_BODY,
            "the template ({len} bytes) now needs the TemplateURL path; test it"
        );
    }

    #[test]
    fn next_steps_name_the_roles_and_the_alarm() {
        let outputs = BTreeMap::from([
            (
                "UploaderRoleArn".to_string(),
                "arn:aws:iam::1:role/up".to_string(),
            ),
            ("Ec2ReaderInstanceProfile".to_string(), "prof".to_string()),
        ]);
        let steps = next_steps("lab", "eu-west-1", &AlarmEmail::Nobody, &outputs).join("\n");
        assert!(steps.contains("arn:aws:iam::1:role/up"), "{steps}");
        assert!(steps.contains("instance profile prof"), "{steps}");
        assert!(steps.contains("nobody is subscribed"), "{steps}");
    }
}
