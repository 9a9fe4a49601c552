//! `labpipe-app configure …`: writes the app's settings without opening a window, so a lab's IT
//! can prepare a lab PC from the deployed stack's outputs, and the demo (`scripts/app.sh`) can
//! point the app at the local stack. It uses the app's own [`Settings`] — the same defaults,
//! validation and atomic save as the Settings view — and keeps every field it is not given.
//!
//! No clap here (the app stays a Tauri adapter): the flags are few and all take one value.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::settings::Settings;

pub const USAGE: &str = "\
usage: labpipe-app configure [--stack-outputs FILE] [--lab-folder DIR] [--region REGION]
                             [--endpoint URL] [--raw-bucket NAME] [--catalog-table NAME]
                             [--uploader-role-arn ARN] [--config-dir DIR]

Writes the desktop app's settings and exits; the next start of the app uses them and skips the
guided setup. Fields not given keep their current value.

  --stack-outputs FILE  the deployed stack's outputs (JSON, as `labpipe admin deploy` or
                        scripts/deploy-local.sh writes them): RawBucket, CatalogTable, Region,
                        UploaderRoleArn, ClientLogGroup
  --lab-folder DIR      the folder the recording rig writes sessions into
  --region REGION       AWS region (wins over the outputs' Region)
  --endpoint URL        an S3/DynamoDB endpoint: https://…, or http:// to this computer only;
                        an empty value means AWS itself
  --raw-bucket NAME     wins over the outputs' RawBucket
  --catalog-table NAME  wins over the outputs' CatalogTable
  --uploader-role-arn ARN  the role the stored access key assumes (wins over the outputs'
                        UploaderRoleArn); an empty value uses the key itself
  --config-dir DIR      where settings.json lives (default: $LABPIPE_APP_CONFIG_DIR, else the
                        app's own config folder, e.g. ~/.config/org.labpipe.desktop on Linux)

Credentials are not set here: the technician stores them in the app (Settings → Credentials,
kept in the system keyring), or the standard AWS chain applies (AWS_PROFILE, SSO, ~/.aws).

Example:
  labpipe-app configure --stack-outputs outputs.json --lab-folder /data/recordings";

/// The app's identifier (tauri.conf.json): its config folder's name.
const IDENTIFIER: &str = "org.labpipe.desktop";

/// Runs the command; the exit code (0 written, 2 usage or invalid values).
pub fn main(args: &[String]) -> i32 {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        // A closed pipe (`| head`) is not an error worth a panic.
        let _ = writeln!(std::io::stdout(), "{USAGE}");
        return 0;
    }
    match run(
        args,
        std::env::var_os("LABPIPE_APP_CONFIG_DIR").map(PathBuf::from),
    ) {
        Ok((path, s)) => {
            println!("settings written to {}", path.display());
            println!(
                "  lab folder     {}",
                s.lab_folder.as_deref().unwrap_or("(not set)")
            );
            println!("  region         {}", s.region);
            println!(
                "  endpoint       {}",
                s.endpoint_url.as_deref().unwrap_or("AWS")
            );
            println!("  raw bucket     {}", s.raw_bucket);
            println!("  catalog table  {}", s.catalog_table);
            println!(
                "  client logs    {}",
                s.client_log_group
                    .as_deref()
                    .unwrap_or("(none: records wait in the local spool)")
            );
            println!(
                "  uploader role  {}",
                s.uploader_role_arn
                    .as_deref()
                    .unwrap_or("(none: a stored key is used itself)")
            );
            0
        }
        Err(e) => {
            eprintln!("labpipe-app configure: {e}\n(see labpipe-app configure --help)");
            2
        }
    }
}

/// Reads the flags, applies them over the current settings, validates and saves.
pub fn run(args: &[String], env_dir: Option<PathBuf>) -> Result<(PathBuf, Settings), String> {
    let mut flags: Vec<(&str, &str)> = Vec::new();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let known = [
            "--stack-outputs",
            "--lab-folder",
            "--region",
            "--endpoint",
            "--raw-bucket",
            "--catalog-table",
            "--uploader-role-arn",
            "--config-dir",
        ];
        if !known.contains(&flag.as_str()) {
            return Err(format!("unknown argument '{flag}'"));
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        flags.push((flag.as_str(), value.as_str()));
    }
    let get = |name: &str| {
        flags
            .iter()
            .rev()
            .find(|(f, _)| *f == name)
            .map(|(_, v)| *v)
    };

    let dir = match get("--config-dir").map(PathBuf::from).or(env_dir) {
        Some(d) => d,
        None => dirs::config_dir()
            .ok_or("this system has no per-user config folder; pass --config-dir")?
            .join(IDENTIFIER),
    };
    let mut s = Settings::load(&dir).map_err(|e| e.message)?;

    if let Some(file) = get("--stack-outputs") {
        let outputs =
            labpipe_lab::stack::LabPcOutputs::read(Path::new(file)).map_err(|e| e.to_string())?;
        s.raw_bucket = outputs.raw_bucket;
        s.catalog_table = outputs.catalog_table;
        if let Some(region) = outputs.region {
            s.region = region;
        }
        if outputs.uploader_role_arn.is_some() {
            s.uploader_role_arn = outputs.uploader_role_arn;
        }
        if outputs.client_log_group.is_some() {
            s.client_log_group = outputs.client_log_group;
        }
    }
    if let Some(lab) = get("--lab-folder") {
        let path = Path::new(lab);
        if !path.is_dir() {
            return Err(format!(
                "--lab-folder {lab} is not a folder on this computer; create it or pick the one the rig writes to"
            ));
        }
        s.lab_folder = Some(lab.to_string());
    }
    if let Some(region) = get("--region") {
        s.region = region.to_string();
    }
    if let Some(url) = get("--endpoint") {
        s.endpoint_url = Some(url.to_string()).filter(|u| !u.is_empty());
    }
    if let Some(bucket) = get("--raw-bucket") {
        s.raw_bucket = bucket.to_string();
    }
    if let Some(table) = get("--catalog-table") {
        s.catalog_table = table.to_string();
    }
    if let Some(role) = get("--uploader-role-arn") {
        s.uploader_role_arn = Some(role.to_string()).filter(|r| !r.is_empty());
    }
    s.setup_done = true;
    s.validate().map_err(|e| e.message)?;
    let path = s.save(&dir).map_err(|e| e.message)?;
    Ok((path, s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn writes_the_stacks_names_and_keeps_what_it_is_not_given() {
        let dir = tempfile::tempdir().unwrap();
        let lab = dir.path().join("lab");
        std::fs::create_dir(&lab).unwrap();
        let outputs = dir.path().join("outputs.json");
        std::fs::write(
            &outputs,
            r#"{"RawBucket": "lab-raw", "CatalogTable": "lab-catalog", "Region": "eu-west-1",
                "UploaderRoleArn": "arn:aws:iam::123456789012:role/lab-UploaderRole"}"#,
        )
        .unwrap();
        let config = dir.path().join("config");
        Settings {
            concurrency: 3,
            ..Settings::default()
        }
        .save(&config)
        .unwrap();

        let (_, s) = run(
            &args(&[
                "--stack-outputs",
                outputs.to_str().unwrap(),
                "--lab-folder",
                lab.to_str().unwrap(),
                "--endpoint",
                "http://127.0.0.1:5000",
            ]),
            Some(config.clone()),
        )
        .unwrap();
        let saved = Settings::load(&config).unwrap();
        assert_eq!(saved, s);
        assert_eq!(saved.raw_bucket, "lab-raw");
        assert_eq!(saved.catalog_table, "lab-catalog");
        assert_eq!(saved.region, "eu-west-1");
        assert_eq!(saved.lab_folder.as_deref(), lab.to_str());
        assert_eq!(saved.endpoint_url.as_deref(), Some("http://127.0.0.1:5000"));
        assert_eq!(
            saved.uploader_role_arn.as_deref(),
            Some("arn:aws:iam::123456789012:role/lab-UploaderRole")
        );
        assert!(saved.setup_done);
        assert_eq!(saved.concurrency, 3, "a field not given is kept");

        // Flags win over the outputs; an empty endpoint means AWS itself.
        let (_, s) = run(
            &args(&[
                "--config-dir",
                config.to_str().unwrap(),
                "--stack-outputs",
                outputs.to_str().unwrap(),
                "--raw-bucket",
                "other-raw",
                "--endpoint",
                "",
            ]),
            None,
        )
        .unwrap();
        assert_eq!(s.raw_bucket, "other-raw");
        assert_eq!(s.endpoint_url, None);
    }

    /// `configure` writes where the app reads: Tauri's app config dir is the OS config dir
    /// (`%APPDATA%` on Windows, `~/.config` on Linux; `dirs::config_dir` for both) joined with the
    /// identifier in tauri.conf.json, which must therefore be this one.
    #[test]
    fn the_config_folder_is_the_apps() {
        let conf: serde_json::Value =
            serde_json::from_str(include_str!("../tauri.conf.json")).unwrap();
        assert_eq!(conf["identifier"], IDENTIFIER);
        assert!(conf["app"].get("appDirectoriesOverride").is_none());
    }

    #[test]
    fn bad_input_names_the_flag_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config");
        let cases: [(&[&str], &str); 6] = [
            (
                &["--uploader-role-arn", "UploaderRole"],
                "role UploaderRole cannot be assumed",
            ),
            (
                &["--lab-folder", "/no/such/folder"],
                "--lab-folder /no/such/folder",
            ),
            (
                &["--endpoint", "http://10.0.0.9:9000"],
                "http://10.0.0.9:9000",
            ),
            (&["--bogus", "x"], "unknown argument '--bogus'"),
            (&["--region"], "--region needs a value"),
            (
                &["--stack-outputs", "/no/such/outputs.json"],
                "/no/such/outputs.json",
            ),
        ];
        for (a, want) in cases {
            let err = run(&args(a), Some(config.clone())).unwrap_err();
            assert!(err.contains(want), "{a:?}: {err}");
        }
        assert!(!config.join("settings.json").exists());
    }
}
