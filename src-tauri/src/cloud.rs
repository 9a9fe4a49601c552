//! AWS clients built from the settings and the stored credentials through the workspace's S3
//! gateway (`labpipe-aws`) and catalog (`labpipe-catalog`), the same way the CLI builds them:
//! region, optional endpoint (`http://` only to this computer), path-style S3 for emulators. The
//! app names no `aws-sdk-*` crate itself (`scripts/check-architecture.sh`).

use serde::Serialize;
use ts_rs::TS;

use crate::credentials::{self, Credentials};
use crate::error::{AppError, AppResult};
use crate::settings::Settings;

pub async fn sdk_config(settings: &Settings) -> AppResult<aws_config::SdkConfig> {
    let target = labpipe_aws::AwsTarget {
        region: Some(settings.region.clone()),
        endpoint_url: settings.endpoint_url.clone(),
        profile: None,
    };
    let mut loader = target
        .loader()
        .map_err(|e| AppError::new("settings", format!("{e}; correct it in Settings")))?;
    // A keyring that cannot be read is not fatal: the default chain (environment, ~/.aws) still
    // applies, and Settings shows the keyring error.
    match credentials::load() {
        Ok(Some(Credentials::Keys {
            access_key_id,
            secret_access_key,
        })) => {
            loader = labpipe_aws::with_static_keys(
                loader,
                &access_key_id,
                &secret_access_key,
                "labpipe-keyring",
            );
        }
        // A profile names its own role (`role_arn` in ~/.aws/config).
        Ok(Some(Credentials::Profile { name })) => {
            return Ok(loader.profile_name(name).load().await)
        }
        Ok(None) => {}
        Err(e) => {
            tracing::warn!(error = %e, "keyring unavailable, using the default credential chain")
        }
    }
    let sdk = loader.load().await;
    // The stored key (or the default chain's) only asks for the uploader role's short-lived
    // credentials; every other call runs as the role.
    match settings
        .uploader_role_arn
        .as_deref()
        .filter(|r| !r.is_empty())
    {
        Some(role) => labpipe_aws::assume_role(&sdk, role, &session_name())
            .await
            .map_err(|e| AppError::new("settings", format!("{e}; correct it in Settings"))),
        None => Ok(sdk),
    }
}

/// The role session's name, which CloudTrail records with each call: this app on this computer.
fn session_name() -> String {
    format!("labpipe-app-{}", labpipe_core::machine::host_name())
}

pub fn s3(sdk: &aws_config::SdkConfig) -> labpipe_aws::S3Client {
    labpipe_upload::s3_client(sdk, &labpipe_upload::ClientOptions::default())
}

pub fn catalog(
    sdk: &aws_config::SdkConfig,
    settings: &Settings,
) -> AppResult<labpipe_catalog::Catalog> {
    if settings.catalog_table.is_empty() {
        return Err(AppError::new(
            "not_configured",
            "no catalog table is set; enter it in Settings (the CatalogTable output of the stack)",
        ));
    }
    Ok(labpipe_catalog::Catalog::from_sdk(
        sdk,
        settings.catalog_table.clone(),
    ))
}

/// The outcome of one probe of "test connection".
#[derive(Debug, Clone, Serialize, TS)]
#[ts(export, export_to = "../../ui/src/lib/bindings/")]
pub struct Probe {
    pub name: String,
    pub ok: bool,
    pub message: String,
}

/// The checks of `labpipe doctor` that concern the lab PC, in its order.
const LAB_PC_CHECKS: [&str; 5] = [
    "credentials",
    "region",
    "raw bucket",
    "catalog table",
    "recent failures",
];

/// *Test connection*: the checks of `labpipe doctor` (`labpipe-doctor`) that concern the lab PC,
/// made with the calls its role holds. The raw bucket is probed with a one-key listing of `raw/`,
/// not HeadBucket: the uploader may list only under `raw/` (`ListRawPrefix`), and HeadBucket
/// carries no prefix, so AWS would deny it (docs/security.md, *Denied on purpose*). It also says
/// whether a session failed in the cloud in the last days.
pub async fn test_connection(settings: &Settings) -> AppResult<Vec<Probe>> {
    let given = |name: &str| Some(name.to_string()).filter(|n| !n.is_empty());
    let target = labpipe_doctor::Target {
        outputs: None,
        table: given(&settings.catalog_table),
        raw_bucket: given(&settings.raw_bucket),
        processed_bucket: None,
    };
    let sdk = sdk_config(settings).await?;
    let checks = labpipe_doctor::diagnose(&sdk, &target, chrono::Utc::now()).await;
    Ok(LAB_PC_CHECKS
        .iter()
        .filter_map(|name| checks.iter().find(|c| c.name == *name))
        .map(probe)
        .collect())
}

/// One doctor check as the Settings view shows it; what to do is said in the app's terms where
/// the CLI's would not apply (flags, environment variables).
fn probe(check: &labpipe_doctor::Check) -> Probe {
    use labpipe_doctor::Outcome;
    let fix = match (check.name, check.outcome, check.fix.as_deref()) {
        (_, Outcome::Ok, _) => None,
        ("credentials", _, _) => Some(
            "enter an access key or an AWS profile name under Credentials, then test again".into(),
        ),
        ("raw bucket", _, _) if check.detail.starts_with("no ") => {
            Some("enter the raw bucket in Settings (the stack's RawBucket output)".into())
        }
        ("catalog table", _, _) if check.detail.starts_with("no ") => {
            Some("enter the catalog table in Settings (the stack's CatalogTable output)".into())
        }
        ("region", _, _) => Some("enter the stack's region in Settings".into()),
        (_, _, fix) => fix.map(str::to_string),
    };
    Probe {
        name: check.name.to_string(),
        ok: check.outcome != Outcome::Fail,
        message: match fix {
            Some(fix) => format!("{}: {}; {fix}", check.name, check.detail),
            None => format!("{}: {}", check.name, check.detail),
        },
    }
}
