//! `labpipe admin deploy`: LabPipe into a lab's AWS account in one command.
//!
//! A thin layer over `labpipe_deploy`: parse the flags, build (or take) the Lambda zips, run the
//! deploy with one progress line per stack event on stderr, then print the outputs and the next
//! steps (or one JSON object with `--json`). `--outputs FILE` saves the outputs where `labpipe
//! status/query/sync` look for them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{ArgGroup, Args, Subcommand};
use labpipe_deploy::{AlarmEmail, Arch, BuildOptions, DeployPlan, LambdaPackage, StackEvent};

use crate::UsageError;

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Deploy (or update) LabPipe in an AWS account: Lambda zips to an artifacts bucket, then the CloudFormation stack
    #[command(after_help = "Examples:\n  \
scripts/package-lambdas.sh --release && labpipe admin deploy --stack labpipe --region eu-central-1 --alarm-email ops@lab.example --package target/lambda-package/release\n  \
labpipe admin deploy --stack labpipe --region eu-central-1 --alarm-email none --build --json\n\n\
Credentials: the standard AWS chain (AWS_PROFILE, SSO, ...) of an administrator of the account; AWS_ENDPOINT_URL selects another endpoint.\n\
The zips go to s3://ARTIFACTS/lambda/<function>-<content hash>.zip (bucket default <stack>-artifacts-<account>-<region>,\n\
created private and versioned), so a new build updates the functions and an unchanged one changes nothing.\n\
The stack <stack>-cfn-role (infra/deploy-role.yaml) holds the CloudFormation service role every operation on the stack runs as\n\
(RoleARN): created first with these credentials, which also need iam:PassRole on it.\n\
The stack is created, or updated keeping parameters not given here; a failed first create must be deleted before a new try.\n\n\
Exit codes: 0 = the stack is CREATE_COMPLETE / UPDATE_COMPLETE, 1 = the deploy failed (the failed resources and reasons are printed), 2 = usage error.")]
    Deploy(DeployArgs),
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("code").required(true).args(["package", "build"])))]
pub struct DeployArgs {
    /// Stack name: lowercase letters, digits and '-' (part of the bucket and function names)
    #[arg(long, value_name = "NAME")]
    pub stack: String,
    /// AWS region to deploy to
    #[arg(long, value_name = "REGION", env = "AWS_REGION")]
    pub region: String,
    /// Who receives the alarms (must confirm SNS's e-mail), or `none` to subscribe nobody now
    #[arg(long, value_name = "ADDR|none")]
    pub alarm_email: String,
    /// Bucket for the Lambda zips (default <stack>-artifacts-<account>-<region>; created if missing)
    #[arg(long, value_name = "BUCKET")]
    pub artifacts_bucket: Option<String>,
    /// Folder holding ingest.zip and preprocess.zip (from scripts/package-lambdas.sh)
    #[arg(long, value_name = "DIR")]
    pub package: Option<PathBuf>,
    /// Build the zips with cargo-lambda first (release profile; run from the LabPipe source tree)
    #[arg(long)]
    pub build: bool,
    /// Instruction set the zips are built for (arm64 needs zig and the aarch64 target for --build)
    #[arg(long, value_name = "ARCH", default_value = "x86_64", value_parser = ["x86_64", "arm64"])]
    pub lambda_arch: String,
    /// Another template parameter, e.g. PipelineVersion=2 (repeatable)
    #[arg(long = "param", value_name = "KEY=VALUE")]
    pub params: Vec<String>,
    /// Template to deploy instead of the one this binary was built with
    #[arg(long, value_name = "FILE")]
    pub template: Option<PathBuf>,
    /// Also write the stack outputs as JSON here (e.g. .labpipe/stack/outputs.json, read by status/query/sync)
    #[arg(long, value_name = "FILE")]
    pub outputs: Option<PathBuf>,
    /// Give up waiting for the stack after this many seconds
    #[arg(long, value_name = "SECS", default_value_t = 3600)]
    pub timeout: u64,
    /// Print one JSON object (artifacts, action, outputs, next steps) instead of text
    #[arg(long)]
    pub json: bool,
}

pub fn run(cmd: AdminCommand) -> Result<ExitCode> {
    match cmd {
        AdminCommand::Deploy(args) => deploy(args),
    }
}

fn deploy(args: DeployArgs) -> Result<ExitCode> {
    let usage = |e: labpipe_deploy::DeployError| anyhow::Error::from(UsageError(e.to_string()));
    let alarm_email = AlarmEmail::parse(&args.alarm_email).map_err(usage)?;
    labpipe_deploy::validate_stack_name(&args.stack, &args.region).map_err(usage)?;
    let arch = Arch::parse(&args.lambda_arch).map_err(usage)?;
    let mut parameters = BTreeMap::new();
    for p in &args.params {
        let (k, v) = p
            .split_once('=')
            .filter(|(k, _)| !k.is_empty())
            .ok_or_else(|| UsageError(format!("--param {p}: expected KEY=VALUE")))?;
        parameters.insert(k.to_string(), v.to_string());
    }
    let template = match &args.template {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| UsageError(format!("cannot read the template {}: {e}", path.display())))?,
        None => labpipe_deploy::TEMPLATE.to_string(),
    };
    let package = match (&args.package, args.build) {
        (Some(dir), _) => LambdaPackage::from_dir(dir).map_err(usage)?,
        (None, _) => {
            let repo = source_tree()?;
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| repo.join("target"));
            let out_dir = target.join("lambda-package/release");
            eprintln!(
                "labpipe: building the Lambda zips with cargo-lambda (release, {})",
                arch.template_value()
            );
            labpipe_deploy::build_package(&BuildOptions {
                repo,
                release: true,
                arch,
                out_dir,
            })?
        }
    };

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(async {
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(args.region.clone()))
            .load()
            .await;
        // A local endpoint settles in well under a second; AWS takes minutes.
        let poll = if sdk.endpoint_url().is_some() {
            Duration::from_millis(500)
        } else {
            Duration::from_secs(5)
        };
        let plan = DeployPlan {
            stack: args.stack.clone(),
            region: args.region.clone(),
            alarm_email,
            artifacts_bucket: args.artifacts_bucket.clone(),
            package,
            arch,
            parameters,
            template,
            timeout: Duration::from_secs(args.timeout),
            poll,
        };
        eprintln!("labpipe: deploying stack {} to {}", plan.stack, plan.region);
        let mut progress = |e: &StackEvent| {
            let reason = if e.reason.is_empty() {
                String::new()
            } else {
                format!("  {}", e.reason)
            };
            eprintln!(
                "  {:>5.0}s  {:<20} {} ({}){reason}",
                e.elapsed_secs, e.status, e.logical_id, e.resource_type
            );
        };
        labpipe_deploy::deploy(&labpipe_deploy::Clients::new(&sdk), &plan, &mut progress).await
    });
    let deployment = match result {
        Ok(d) => d,
        Err(e) => {
            anstream::eprintln!("labpipe: error: deploy failed: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    if let Some(path) = &args.outputs {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        std::fs::write(path, serde_json::to_string_pretty(&deployment.outputs)?)
            .with_context(|| format!("cannot write the outputs to {}", path.display()))?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&deployment)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "Stack {} in {}: {} ({:?}) in {:.0}s",
        deployment.stack,
        deployment.region,
        deployment.status,
        deployment.action,
        deployment.elapsed_secs
    );
    println!(
        "Lambda code: s3://{}/{} and s3://{}/{}{}",
        deployment.artifacts_bucket,
        deployment.ingest_code_key,
        deployment.artifacts_bucket,
        deployment.preprocess_code_key,
        if deployment.uploaded.is_empty() {
            " (unchanged, nothing uploaded)"
        } else {
            ""
        }
    );
    println!(
        "Runs as: {} (CloudFormation service role, stack {})",
        deployment.cloudformation_role_arn, deployment.role_stack
    );
    println!("\nOutputs:");
    let width = deployment
        .outputs
        .keys()
        .map(String::len)
        .max()
        .unwrap_or(0);
    for (k, v) in &deployment.outputs {
        println!("  {k:<width$}  {v}");
    }
    println!("\nNext steps:");
    for (i, step) in deployment.next_steps.iter().enumerate() {
        println!("  {}. {step}", i + 1);
    }
    Ok(ExitCode::SUCCESS)
}

/// The LabPipe source tree around the current folder (for `--build`).
fn source_tree() -> Result<PathBuf> {
    let cwd = std::env::current_dir().context("cannot read the current folder")?;
    cwd.ancestors()
        .find(|d| d.join("backend/Cargo.toml").is_file() && d.join("Cargo.lock").is_file())
        .map(PathBuf::from)
        .ok_or_else(|| {
            UsageError("--build needs the LabPipe source tree: run it inside the repository, or pass --package DIR with the zips of scripts/package-lambdas.sh".into()).into()
        })
}
