//! Short-lived credentials on the lab PC, on an emulator that checks IAM.
//!
//! The lab's stored key belongs to a user whose one permission is `sts:AssumeRole` on an
//! uploader role; the role may use the raw bucket. The emulator (moto with authorization on)
//! checks each request against the identity policies of the key or of the assumed role, so:
//! - the key alone is refused by S3: what a leaked key reaches is `AssumeRole`, nothing else;
//! - `labpipe_aws::assume_role` (the desktop app's keys mode with an uploader role) gets
//!   temporary credentials that expire, and S3 accepts them;
//! - the CLI, which takes the standard AWS chain, uploads a whole session through a profile that
//!   assumes the role (`role_arn` + `source_profile`), and fails fast with the bare key.
//!
//! What rests on AWS's documentation rather than this emulator: moto matches a trust policy's
//! principal literally, so the role here trusts the user's ARN, where the template's
//! `UploaderRole` trusts the account (`arn:…:root`) and leaves the choice of who may assume it to
//! the identity policies of the account's users, as AWS documents for same-account roles.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use aws_config::BehaviorVersion;
use labpipe_sample::{generate, GenerateOptions};
use labpipe_tests::{labpipe_bin, repo_root, Emulator, REGION};
use serde_json::Value;

const BUCKET: &str = "lab-raw";
const ROLE: &str = "lab-UploaderRole";

/// The IAM setup, made with boto3: three unchecked requests create an administrator, whose key
/// then creates the lab user, its key, the role and the bucket.
const SETUP: &str = r#"
import json, sys, boto3
from botocore.config import Config
url, bucket, role = sys.argv[1:4]
cfg = Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"})
def client(name, key):
    return boto3.client(name, endpoint_url=url, region_name="us-east-1", aws_access_key_id=key[0],
                        aws_secret_access_key=key[1], config=cfg)
iam = client("iam", ("test", "test"))
iam.create_user(UserName="admin")
iam.put_user_policy(UserName="admin", PolicyName="all", PolicyDocument=json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
k = iam.create_access_key(UserName="admin")["AccessKey"]
admin = (k["AccessKeyId"], k["SecretAccessKey"])
iam = client("iam", admin)
user = iam.create_user(UserName="lab-pc")["User"]["Arn"]
account = user.split(":")[4]
role_arn = f"arn:aws:iam::{account}:role/{role}"
iam.put_user_policy(UserName="lab-pc", PolicyName="assume-uploader", PolicyDocument=json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": role_arn}]}))
k = iam.create_access_key(UserName="lab-pc")["AccessKey"]
iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": user}, "Action": "sts:AssumeRole"}]}))
iam.put_role_policy(RoleName=role, PolicyName="raw", PolicyDocument=json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*",
     "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]}]}))
client("s3", admin).create_bucket(Bucket=bucket)
print(json.dumps({"admin": admin, "lab": [k["AccessKeyId"], k["SecretAccessKey"]], "role": role_arn}))
"#;

struct Lab {
    emu: Emulator,
    admin: (String, String),
    key: (String, String),
    role: String,
}

fn set_up() -> Result<Lab> {
    let emu = Emulator::start_with_authorization(3);
    let out = Command::new(repo_root().join(".venv/bin/python"))
        .args(["-c", SETUP, &emu.endpoint(), BUCKET, ROLE])
        .output()?;
    ensure!(
        out.status.success(),
        "IAM setup failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        emu.log_tail(30)
    );
    let v: Value = serde_json::from_slice(&out.stdout)?;
    let pair = |k: &str| -> Result<(String, String)> {
        Ok((
            v[k][0].as_str().context("key id")?.to_string(),
            v[k][1].as_str().context("secret")?.to_string(),
        ))
    };
    Ok(Lab {
        admin: pair("admin")?,
        key: pair("lab")?,
        role: v["role"].as_str().context("role")?.to_string(),
        emu,
    })
}

async fn config_with_key(emu: &Emulator, key: &(String, String)) -> aws_config::SdkConfig {
    let loader = aws_config::defaults(BehaviorVersion::latest())
        .region(aws_config::Region::new(REGION))
        .endpoint_url(emu.endpoint());
    labpipe_aws::with_static_keys(loader, &key.0, &key.1, "test")
        .load()
        .await
}

async fn listing(sdk: &aws_config::SdkConfig) -> Result<Vec<String>, labpipe_aws::ErrorClass> {
    let s3 = labpipe_aws::s3_client(sdk, &labpipe_aws::ClientOptions::service());
    s3.list_objects_v2()
        .bucket(BUCKET)
        .send()
        .await
        .map(|o| {
            o.contents()
                .iter()
                .filter_map(|c| c.key().map(str::to_string))
                .collect()
        })
        .map_err(|e| labpipe_aws::classify(&e))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stored_key_reaches_s3_only_through_the_uploader_roles_short_lived_credentials(
) -> Result<()> {
    let lab = tokio::task::block_in_place(set_up)?;
    let base = config_with_key(&lab.emu, &lab.key).await;

    // The key alone: refused.
    assert_eq!(
        listing(&base).await,
        Err(labpipe_aws::ErrorClass::AccessDenied),
        "the lab user's own key must not reach the bucket"
    );

    // Through the role: temporary credentials, accepted.
    let assumed = labpipe_aws::assume_role(&base, &lab.role, "labpipe-app-test").await?;
    let creds = {
        use aws_sdk_s3::config::ProvideCredentials;
        assumed
            .credentials_provider()
            .context("no provider")?
            .provide_credentials()
            .await?
    };
    ensure!(
        creds.access_key_id() != lab.key.0,
        "the assumed credentials are the stored key itself"
    );
    ensure!(
        creds.session_token().is_some(),
        "assumed credentials carry a session token"
    );
    let expiry = creds.expiry().context("assumed credentials must expire")?;
    let left = expiry
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();
    ensure!(
        left > Duration::from_secs(600) && left <= Duration::from_secs(3600),
        "a session of at most an hour: {left:?} left"
    );
    assert_eq!(listing(&assumed).await, Ok(vec![]));

    // A role the key may not assume is refused by STS, and named.
    let other = lab.role.replace(ROLE, "lab-ResearcherRole");
    let denied = labpipe_aws::assume_role(&base, &other, "labpipe-app-test").await?;
    assert_eq!(
        listing(&denied).await,
        Err(labpipe_aws::ErrorClass::InvalidCredentials),
        "assuming a role the key may not assume leaves no credentials"
    );
    Ok(())
}

fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| if p.is_dir() { count_files(&p) } else { 1 })
        .sum()
}

fn upload(lab: &Lab, dir: &Path, folder: &Path, profile: &str) -> Output {
    Command::new(labpipe_bin())
        .env("AWS_ENDPOINT_URL", lab.emu.endpoint())
        .env("AWS_REGION", REGION)
        .env("AWS_CONFIG_FILE", dir.join("config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.join("credentials"))
        .env("AWS_PROFILE", profile)
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env("LABPIPE_JOURNAL", dir.join(format!("{profile}.sqlite3")))
        .env("LABPIPE_LOG_DIR", dir.join("logs"))
        .args(["upload", "--bucket", BUCKET, "--json"])
        .arg(folder)
        .output()
        .expect("run labpipe")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_uploads_through_a_profile_that_assumes_the_uploader_role() -> Result<()> {
    let lab = tokio::task::block_in_place(set_up)?;
    let dir = tempfile::tempdir()?;
    std::fs::write(
        dir.path().join("credentials"),
        format!(
            "[lab-pc]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            lab.key.0, lab.key.1
        ),
    )?;
    std::fs::write(
        dir.path().join("config"),
        format!(
            "[profile lab-pc]\nregion = {REGION}\n\n[profile uploader]\nrole_arn = {}\nsource_profile = lab-pc\nrole_session_name = labpipe-lab-pc\nregion = {REGION}\n",
            lab.role
        ),
    )?;
    let mut opts = GenerateOptions::new(dir.path().join("lab"));
    opts.count = 1;
    opts.size_bytes = 2 * 1024 * 1024;
    opts.seed = 31;
    let made = generate(&opts, |_, _| {})?;
    let session = made[0].name.clone();

    let bare = tokio::task::block_in_place(|| upload(&lab, dir.path(), &made[0].path, "lab-pc"));
    ensure!(
        bare.status.code() == Some(1),
        "the bare key must be refused:\n{}",
        String::from_utf8_lossy(&bare.stderr)
    );

    let out = tokio::task::block_in_place(|| upload(&lab, dir.path(), &made[0].path, "uploader"));
    ensure!(
        out.status.success(),
        "upload through the role failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let admin = config_with_key(&lab.emu, &lab.admin).await;
    let keys = listing(&admin)
        .await
        .map_err(|c| anyhow::anyhow!("admin listing: {c:?}"))?;
    ensure!(
        keys.contains(&labpipe_core::layout::manifest_key(&session))
            && keys.len() == count_files(&made[0].path) + 1,
        "every file and the manifest are in the bucket: {keys:?}"
    );
    Ok(())
}
