//! Where the deployed stack is and how to reach it: `labpipe_lab::stack` resolves it exactly as
//! for `labpipe` (a keyword argument, else its environment variable, else the stack outputs
//! file), so a researcher who set up the CLI needs nothing more in Python. This module only
//! checks the keyword names and adds what is Python's own: `schema` (`LABPIPE_SCHEMA`) and the
//! AWS target (`endpoint_url`, `region`, `profile` over the SDK's own resolution of
//! `AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_PROFILE` and credentials).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use labpipe_aws::AwsTarget;
use labpipe_catalog::Catalog;
use labpipe_core::filter::Filter;
use labpipe_core::LabSchema;
use labpipe_lab::stack::{self, Spelling, Stack, StackGiven};

use crate::error::Error;

/// The keyword arguments every function takes (all optional); `labpipe.SETTINGS` in Python.
pub const KEYS: [&str; 8] = [
    "table",
    "processed_bucket",
    "raw_bucket",
    "stack_outputs",
    "schema",
    "endpoint_url",
    "region",
    "profile",
];

/// What the caller passed (keyword arguments), before the environment and the outputs file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides(BTreeMap<String, String>);

impl Overrides {
    /// Checks the names (a misspelt keyword would otherwise be silently ignored) and drops
    /// `None` and empty values, as the CLI ignores an empty flag or variable.
    pub fn new(given: BTreeMap<String, Option<String>>) -> Result<Overrides, Error> {
        let mut out = BTreeMap::new();
        for (key, value) in given {
            if !KEYS.contains(&key.as_str()) {
                return Err(Error::Config(format!(
                    "unknown setting '{key}'; the settings are: {}",
                    KEYS.join(", ")
                )));
            }
            if let Some(v) = value.filter(|v| !v.is_empty()) {
                out.insert(key, v);
            }
        }
        Ok(Overrides(out))
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }
}

/// The resolved configuration of one call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    pub stack: Stack,
    pub schema: Option<PathBuf>,
    pub target: AwsTarget,
}

fn config(e: impl std::fmt::Display) -> Error {
    Error::Config(e.to_string())
}

impl Settings {
    /// Resolves keyword → environment (through `env`) → outputs file found from `cwd`.
    pub fn resolve(
        given: &Overrides,
        env: impl Fn(&str) -> Option<String>,
        cwd: &Path,
    ) -> Result<Settings, Error> {
        let get = |key: &str| given.get(key).map(str::to_string);
        let stack = Stack::resolve(
            &StackGiven {
                table: get("table"),
                processed_bucket: get("processed_bucket"),
                raw_bucket: get("raw_bucket"),
                stack_outputs: get("stack_outputs").map(PathBuf::from),
            },
            &env,
            cwd,
            Spelling::PYTHON,
        )
        .map_err(config)?;
        Ok(Settings {
            stack,
            schema: get("schema")
                .or_else(|| env("LABPIPE_SCHEMA").filter(|v| !v.is_empty()))
                .map(PathBuf::from),
            target: AwsTarget {
                region: get("region"),
                endpoint_url: get("endpoint_url"),
                profile: get("profile"),
            },
        })
    }

    /// From the process environment and the current folder.
    pub fn from_process(given: &Overrides) -> Result<Settings, Error> {
        Settings::resolve(given, |k| std::env::var(k).ok(), &current_dir()?)
    }

    /// The catalog table, or an error saying how to name it.
    pub fn table(&self) -> Result<&str, Error> {
        self.stack.table().map_err(config)
    }

    /// The lab schema that types the filter's fields (as the CLI's `--schema`).
    pub fn lab_schema(&self) -> Result<LabSchema, Error> {
        stack::lab_schema(self.schema.as_deref(), &current_dir()?).map_err(config)
    }

    /// Parses and type-checks a filter against the lab schema.
    pub fn filter(&self, source: &str) -> Result<Filter, Error> {
        stack::parse_filter(source, &self.lab_schema()?).map_err(|e| Error::Filter {
            rendered: e.rendered,
            message: e.message,
            column: e.column,
        })
    }

    /// The SDK configuration (the standard chain, with the caller's overrides on top) and the
    /// catalog client.
    pub async fn catalog(&self) -> Result<(Catalog, aws_config::SdkConfig), Error> {
        self.table()?;
        let sdk = self.target.load().await.map_err(config)?;
        Ok((self.stack.catalog(&sdk).map_err(config)?, sdk))
    }
}

fn current_dir() -> Result<PathBuf, Error> {
    std::env::current_dir()
        .map_err(|e| Error::Config(format!("cannot read the current folder: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn given(pairs: &[(&str, &str)]) -> Overrides {
        Overrides::new(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), Some(v.to_string())))
                .collect(),
        )
        .unwrap()
    }

    /// Each keyword reaches its setting (the order of the sources is `labpipe_lab::stack`'s).
    #[test]
    fn each_keyword_reaches_its_setting() {
        let dir = tempfile::tempdir().unwrap();
        let outputs = dir.path().join("outputs.json");
        std::fs::write(&outputs, r#"{"CatalogTable": "t-file"}"#).unwrap();
        let s = Settings::resolve(
            &given(&[
                ("processed_bucket", "p-kw"),
                ("raw_bucket", "r-kw"),
                ("stack_outputs", outputs.to_str().unwrap()),
                ("endpoint_url", "http://127.0.0.1:5000"),
                ("region", "eu-west-1"),
                ("profile", "lab"),
            ]),
            |k| (k == "LABPIPE_SCHEMA").then(|| "lab.toml".to_string()),
            dir.path(),
        )
        .unwrap();
        assert_eq!(s.stack.table.as_deref(), Some("t-file"));
        assert_eq!(s.stack.processed_bucket.as_deref(), Some("p-kw"));
        assert_eq!(s.stack.raw_bucket.as_deref(), Some("r-kw"));
        assert_eq!(s.stack.outputs, Some(outputs));
        assert_eq!(s.schema, Some(PathBuf::from("lab.toml")));
        assert_eq!(
            s.target,
            AwsTarget {
                region: Some("eu-west-1".into()),
                endpoint_url: Some("http://127.0.0.1:5000".into()),
                profile: Some("lab".into()),
            }
        );
    }

    /// As for the app, plain `http://` only to this computer (`labpipe_aws::AwsTarget`).
    #[tokio::test]
    async fn an_http_endpoint_off_this_computer_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let given = given(&[("table", "t"), ("endpoint_url", "http://10.0.0.9:9000")]);
        let s = Settings::resolve(&given, |_| None, dir.path()).unwrap();
        let err = s.catalog().await.unwrap_err().to_string();
        assert!(err.contains("http://10.0.0.9:9000"), "{err}");
    }

    #[test]
    fn a_misspelt_setting_is_refused_by_name() {
        let err = Overrides::new([("tabel".to_string(), Some("x".to_string()))].into())
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown setting 'tabel'"), "{err}");
        assert!(err.contains("table"), "{err}");
    }

    #[test]
    fn no_table_anywhere_says_how_to_name_one_in_python() {
        let dir = tempfile::tempdir().unwrap();
        let s = Settings::resolve(&Overrides::default(), |_| None, dir.path()).unwrap();
        let err = s.table().unwrap_err().to_string();
        assert!(
            err.contains("table='NAME'") && err.contains("LABPIPE_TABLE"),
            "{err}"
        );
    }
}
