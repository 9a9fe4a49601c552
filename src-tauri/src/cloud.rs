//! AWS clients built from the settings and the stored credentials, the same way the CLI builds
//! them (region, optional endpoint, path-style S3 for emulators).

use aws_config::BehaviorVersion;
use aws_sdk_s3::config::Credentials as StaticCredentials;
use serde::Serialize;
use ts_rs::TS;

use crate::credentials::{self, Credentials};
use crate::error::{AppError, AppResult};
use crate::settings::Settings;

pub async fn sdk_config(settings: &Settings) -> AppResult<aws_config::SdkConfig> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(aws_config::Region::new(settings.region.clone()));
    if let Some(url) = settings.endpoint_url.as_deref().filter(|u| !u.is_empty()) {
        loader = loader.endpoint_url(url);
    }
    // A keyring that cannot be read is not fatal: the default chain (environment, ~/.aws) still
    // applies, and Settings shows the keyring error.
    match credentials::load() {
        Ok(Some(Credentials::Keys {
            access_key_id,
            secret_access_key,
        })) => {
            loader = loader.credentials_provider(StaticCredentials::new(
                access_key_id,
                secret_access_key,
                None,
                None,
                "labpipe-keyring",
            ));
        }
        Ok(Some(Credentials::Profile { name })) => loader = loader.profile_name(name),
        Ok(None) => {}
        Err(e) => {
            tracing::warn!(error = %e, "keyring unavailable, using the default credential chain")
        }
    }
    Ok(loader.load().await)
}

pub fn s3(sdk: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
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
    Ok(labpipe_catalog::Catalog::new(
        aws_sdk_dynamodb::Client::new(sdk),
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

/// Checks that the raw bucket and the catalog table are reachable with these credentials.
pub async fn test_connection(settings: &Settings) -> AppResult<Vec<Probe>> {
    let sdk = sdk_config(settings).await?;
    let mut probes = Vec::new();
    if settings.raw_bucket.is_empty() {
        probes.push(Probe {
            name: "raw bucket".into(),
            ok: false,
            message: "no raw bucket is set".into(),
        });
    } else {
        let s3 = s3(&sdk);
        let r = s3.head_bucket().bucket(&settings.raw_bucket).send().await;
        probes.push(match r {
            Ok(_) => Probe {
                name: "raw bucket".into(),
                ok: true,
                message: format!("s3://{} is reachable", settings.raw_bucket),
            },
            Err(e) => Probe {
                name: "raw bucket".into(),
                ok: false,
                message: format!(
                    "s3://{} is not reachable: {}; check the bucket name, region, endpoint and credentials",
                    settings.raw_bucket,
                    aws_sdk_s3::error::DisplayErrorContext(&e)
                ),
            },
        });
    }
    if settings.catalog_table.is_empty() {
        probes.push(Probe {
            name: "catalog".into(),
            ok: false,
            message: "no catalog table is set".into(),
        });
    } else {
        let db = aws_sdk_dynamodb::Client::new(&sdk);
        let r = db
            .describe_table()
            .table_name(&settings.catalog_table)
            .send()
            .await;
        probes.push(match r {
            Ok(_) => Probe {
                name: "catalog".into(),
                ok: true,
                message: format!("table {} is reachable", settings.catalog_table),
            },
            Err(e) => Probe {
                name: "catalog".into(),
                ok: false,
                message: format!(
                    "table {} is not reachable: {}; check the table name, region, endpoint and credentials",
                    settings.catalog_table,
                    aws_sdk_dynamodb::error::DisplayErrorContext(&e)
                ),
            },
        });
    }
    Ok(probes)
}
