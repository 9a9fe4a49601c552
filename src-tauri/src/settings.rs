//! Settings persisted as JSON in the app config directory (`settings.json`).
//!
//! Secrets never go here: access keys and profile names live in the OS keyring (see
//! [`crate::credentials`]).

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use ts_rs::TS;

use crate::error::{AppError, AppResult};

pub const FILE: &str = "settings.json";

#[derive(Debug, Clone, Serialize, Deserialize, TS, PartialEq)]
#[serde(default)]
#[ts(export, export_to = "../../ui/src/lib/bindings/")]
pub struct Settings {
    /// The lab folder watched for new session folders.
    pub lab_folder: Option<String>,
    pub region: String,
    /// An S3/DynamoDB endpoint (e.g. the local stack); `None` means AWS itself.
    pub endpoint_url: Option<String>,
    pub raw_bucket: String,
    pub catalog_table: String,
    /// The role a stored access key assumes (the stack's `UploaderRoleArn`): every call then runs
    /// with that role's short-lived credentials. `None` uses the key itself. Not used with an
    /// AWS profile, which names its own role (`role_arn` in `~/.aws/config`).
    pub uploader_role_arn: Option<String>,
    /// The stack's client log group (`ClientLogGroup`): the lab's status changes and failures
    /// are sent there. `None`: they wait in the local spool.
    pub client_log_group: Option<String>,
    /// Free disk space: delete a local session folder once it is older than this many days,
    /// processed in the cloud and identical to its uploaded copy (`labpipe clean`'s rules).
    /// `None`: never.
    pub clean_after_days: Option<u32>,
    /// Parts in flight at once during an upload.
    pub concurrency: u32,
    /// Upload bandwidth cap in megabytes per second; `None` = unlimited.
    pub bandwidth_mb_per_sec: Option<f64>,
    /// This lab PC's rig id (`labpipe upload --rig`, `LABPIPE_RIG`): a folder named
    /// `YYYYMMDD_HHMMSS` is checked, uploaded and cleaned as session `YYYYMMDD_HHMMSS_<rig>`, so
    /// rigs recording in the same second never share a name. The exception: a folder this PC
    /// already uploaded (or began to upload) under its bare `YYYYMMDD_HHMMSS` name keeps that
    /// name, so setting an id never uploads an earlier session a second time; only folders never
    /// uploaded get `_<rig>` (`labpipe_upload::folder_rig`). `None`: no id.
    pub rig_id: Option<String>,
    /// Seconds without file changes in a session folder before it is checked again.
    pub quiet_period_secs: u32,
    /// How the lab folder is watched: `auto` polls network shares and uses native change events
    /// elsewhere; `native` or `poll` force one ([`labpipe_lab::watch`]).
    pub watch_mode: labpipe_lab::WatchMode,
    /// Seconds between two scans of the lab folder when it is polled.
    pub poll_interval_secs: u32,
    /// The guided first-run setup was completed (or skipped).
    pub setup_done: bool,
    /// Queue sessions whose checks all pass as soon as they settle (not ones with warnings).
    pub auto_upload: bool,
    /// Desktop notification when an upload fails and when a session is processed or fails.
    pub notifications: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            lab_folder: None,
            region: "eu-central-1".into(),
            endpoint_url: None,
            raw_bucket: String::new(),
            catalog_table: String::new(),
            uploader_role_arn: None,
            client_log_group: None,
            clean_after_days: None,
            concurrency: 8,
            bandwidth_mb_per_sec: None,
            rig_id: None,
            quiet_period_secs: 5,
            watch_mode: labpipe_lab::WatchMode::Auto,
            poll_interval_secs: 10,
            setup_done: false,
            auto_upload: false,
            notifications: true,
        }
    }
}

impl Settings {
    /// Reads `dir/settings.json`; a missing file gives the defaults.
    pub fn load(dir: &Path) -> AppResult<Settings> {
        let path = dir.join(FILE);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                AppError::new(
                    "settings",
                    format!(
                        "settings file {} is not valid JSON ({e}); fix or delete it",
                        path.display()
                    ),
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Settings::default()),
            Err(e) => Err(AppError::new(
                "settings",
                format!("cannot read {}: {e}", path.display()),
            )),
        }
    }

    /// Writes atomically (temp file + rename) so a crash never leaves half a file.
    pub fn save(&self, dir: &Path) -> AppResult<PathBuf> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(FILE);
        let tmp = dir.join(format!("{FILE}.tmp"));
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| AppError::new("settings", e.to_string()))?;
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, &path)?;
        Ok(path)
    }

    /// Checks values a user can get wrong; the message says which field and what to do.
    pub fn validate(&self) -> AppResult<()> {
        if self.concurrency == 0 || self.concurrency > 64 {
            return Err(AppError::new(
                "settings",
                "concurrency must be between 1 and 64",
            ));
        }
        if let Some(bw) = self.bandwidth_mb_per_sec {
            if !(bw > 0.0 && bw.is_finite()) {
                return Err(AppError::new(
                    "settings",
                    "bandwidth cap must be a positive number of MB/s, or empty for no cap",
                ));
            }
        }
        // https://, or plain http:// only to this computer (an emulator): keys and recordings
        // must not cross a network in the clear. The same rule as the CLI's (labpipe-aws).
        if let Some(url) = self.endpoint_url.as_deref().filter(|u| !u.is_empty()) {
            labpipe_aws::check_endpoint(url)
                .map_err(|e| AppError::new("settings", e.to_string()))?;
        }
        if let Some(arn) = self.uploader_role_arn.as_deref().filter(|a| !a.is_empty()) {
            labpipe_aws::check_role_arn(arn)
                .map_err(|e| AppError::new("settings", e.to_string()))?;
        }
        if let Some(rig) = self.rig_id.as_deref().filter(|r| !r.trim().is_empty()) {
            labpipe_core::session_id::Rig::parse(rig.trim())
                .map_err(|e| AppError::new("settings", e.to_string()))?;
        }
        if let Some(days) = self.clean_after_days {
            if days == 0 || days > 3650 {
                return Err(AppError::new(
                    "settings",
                    "free disk space: the age must be between 1 and 3650 days, or the option off",
                ));
            }
        }
        if self.quiet_period_secs == 0 || self.quiet_period_secs > 3600 {
            return Err(AppError::new(
                "settings",
                "quiet period must be between 1 and 3600 seconds",
            ));
        }
        if self.poll_interval_secs == 0 || self.poll_interval_secs > 3600 {
            return Err(AppError::new(
                "settings",
                "poll interval must be between 1 and 3600 seconds",
            ));
        }
        Ok(())
    }

    /// The rig id, when one is set (and valid: [`Settings::validate`] refuses an invalid one).
    pub fn rig(&self) -> Option<labpipe_core::session_id::Rig> {
        self.rig_id
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .and_then(|r| labpipe_core::session_id::Rig::parse(r).ok())
    }

    pub fn bandwidth_bytes(&self) -> Option<u64> {
        self.bandwidth_mb_per_sec.map(|mb| (mb * 1e6) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_defaults_missing_fields() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Settings::load(dir.path()).unwrap(), Settings::default());
        let s = Settings {
            lab_folder: Some("/lab".into()),
            concurrency: 3,
            ..Settings::default()
        };
        s.save(dir.path()).unwrap();
        assert_eq!(Settings::load(dir.path()).unwrap(), s);
        std::fs::write(dir.path().join(FILE), r#"{"region":"us-east-1"}"#).unwrap();
        let partial = Settings::load(dir.path()).unwrap();
        assert_eq!(partial.region, "us-east-1");
        assert_eq!(partial.concurrency, 8);
    }

    #[test]
    fn rejects_bad_values() {
        let bad = Settings {
            concurrency: 0,
            ..Settings::default()
        };
        assert_eq!(bad.validate().unwrap_err().code, "settings");
        let bad = Settings {
            endpoint_url: Some("localhost:5000".into()),
            ..Settings::default()
        };
        assert!(bad.validate().unwrap_err().message.contains("http://"));
        for (url, ok) in [
            ("http://127.0.0.1:5000", true),
            ("https://s3.eu-central-1.amazonaws.com", true),
            ("http://10.1.2.3:9000", false),
            ("http://s3.lab.example", false),
        ] {
            let s = Settings {
                endpoint_url: Some(url.into()),
                ..Settings::default()
            };
            assert_eq!(s.validate().is_ok(), ok, "{url}");
        }
        assert!(Settings::default().validate().is_ok());
    }

    #[test]
    fn a_rig_id_is_checked_and_applied_as_the_cli_applies_it() {
        let bad = Settings {
            rig_id: Some("rig_B".into()),
            ..Settings::default()
        };
        assert!(bad.validate().unwrap_err().message.contains("rig id"));
        let good = Settings {
            rig_id: Some(" rigB ".into()),
            ..Settings::default()
        };
        good.validate().unwrap();
        assert_eq!(good.rig().unwrap().as_str(), "rigB");
        let none = Settings {
            rig_id: Some(String::new()),
            ..Settings::default()
        };
        none.validate().unwrap();
        assert!(none.rig().is_none());
    }
}
