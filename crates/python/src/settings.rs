//! Where the deployed stack is and how to reach it, resolved exactly as `labpipe` resolves it
//! (`crates/cli/src/config.rs`), so a researcher who set up the CLI needs nothing more in Python:
//! a keyword argument, else its environment variable (`LABPIPE_TABLE`,
//! `LABPIPE_PROCESSED_BUCKET`, `LABPIPE_RAW_BUCKET`, `LABPIPE_STACK_OUTPUTS`, `LABPIPE_SCHEMA`),
//! else the stack outputs file (`.labpipe/stack/outputs.json` in the current folder or a parent).
//! The AWS side (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_PROFILE`, credentials) is the SDK's own
//! resolution, which `endpoint_url`, `region` and `profile` override.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use labpipe_core::filter::Filter;
use labpipe_core::LabSchema;
use labpipe_s3::stack::OUTPUTS_FILE;
use labpipe_s3::StackOutputs;

use crate::error::Error;

/// The keyword arguments every function takes (all optional).
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
    pub table: Option<String>,
    pub processed_bucket: Option<String>,
    pub raw_bucket: Option<String>,
    /// The outputs file consulted, for messages.
    pub outputs: Option<PathBuf>,
    pub schema: Option<PathBuf>,
    pub endpoint_url: Option<String>,
    pub region: Option<String>,
    pub profile: Option<String>,
}

impl Settings {
    /// Resolves keyword → environment (through `env`) → outputs file found from `cwd`.
    pub fn resolve(
        given: &Overrides,
        env: impl Fn(&str) -> Option<String>,
        cwd: &Path,
    ) -> Result<Settings, Error> {
        let env = |var: &str| env(var).filter(|v| !v.is_empty());
        let either = |key: &str, var: &str| given.get(key).map(str::to_string).or_else(|| env(var));
        let outputs = match either("stack_outputs", "LABPIPE_STACK_OUTPUTS") {
            Some(p) => {
                let p = PathBuf::from(p);
                if !p.is_file() {
                    return Err(Error::Config(format!(
                        "stack outputs file {} does not exist; check stack_outputs= / LABPIPE_STACK_OUTPUTS",
                        p.display()
                    )));
                }
                Some(p)
            }
            None => StackOutputs::find(cwd),
        };
        let from_file = match &outputs {
            Some(p) => StackOutputs::read(p).map_err(|e| Error::Config(e.to_string()))?,
            None => StackOutputs::default(),
        };
        let pick = |key: &str, var: &str, output: &str| {
            either(key, var).or_else(|| {
                from_file
                    .get(output)
                    .filter(|v| !v.is_empty())
                    .map(str::to_string)
            })
        };
        Ok(Settings {
            table: pick("table", "LABPIPE_TABLE", "CatalogTable"),
            processed_bucket: pick(
                "processed_bucket",
                "LABPIPE_PROCESSED_BUCKET",
                "ProcessedBucket",
            ),
            raw_bucket: pick("raw_bucket", "LABPIPE_RAW_BUCKET", "RawBucket"),
            outputs,
            schema: either("schema", "LABPIPE_SCHEMA").map(PathBuf::from),
            endpoint_url: given.get("endpoint_url").map(str::to_string),
            region: given.get("region").map(str::to_string),
            profile: given.get("profile").map(str::to_string),
        })
    }

    /// From the process environment and the current folder.
    pub fn from_process(given: &Overrides) -> Result<Settings, Error> {
        let cwd = std::env::current_dir()
            .map_err(|e| Error::Config(format!("cannot read the current folder: {e}")))?;
        Settings::resolve(given, |k| std::env::var(k).ok(), &cwd)
    }

    /// The catalog table, or an error saying how to name it.
    pub fn table(&self) -> Result<&str, Error> {
        self.table.as_deref().ok_or_else(|| {
            Error::Config(format!(
                "no catalog table given: pass table='NAME', set LABPIPE_TABLE, or run where {OUTPUTS_FILE} of a deployed stack can be found (or pass stack_outputs= / set LABPIPE_STACK_OUTPUTS)"
            ))
        })
    }

    /// The lab schema that types the filter's fields: `schema` / `LABPIPE_SCHEMA`, else the
    /// lab's `labpipe.toml` found from the current folder, else the built-in one (as the CLI).
    pub fn lab_schema(&self) -> Result<LabSchema, Error> {
        let cwd = std::env::current_dir()
            .map_err(|e| Error::Config(format!("cannot read the current folder: {e}")))?;
        match self.schema.clone().or_else(|| LabSchema::discover(&cwd)) {
            Some(p) => LabSchema::load(&p).map_err(|e| Error::Config(e.to_string())),
            None => Ok(LabSchema::default()),
        }
    }

    /// Parses and type-checks a filter against the lab schema.
    pub fn filter(&self, source: &str) -> Result<Filter, Error> {
        let schema = self.lab_schema()?;
        Filter::new(source, &schema).map_err(|e| Error::Filter {
            rendered: e.render(source),
            message: e.message.clone(),
            column: e.column,
        })
    }

    /// The SDK configuration: the standard chain, with the caller's overrides on top.
    pub async fn sdk(&self) -> aws_config::SdkConfig {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(url) = &self.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        if let Some(region) = &self.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        if let Some(profile) = &self.profile {
            loader = loader.profile_name(profile);
        }
        loader.load().await
    }
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

    #[test]
    fn keyword_beats_environment_beats_outputs_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".labpipe/stack")).unwrap();
        std::fs::write(
            dir.path().join(OUTPUTS_FILE),
            r#"{"CatalogTable": "t-file", "ProcessedBucket": "p-file", "RawBucket": "r-file"}"#,
        )
        .unwrap();
        let nested = dir.path().join("a/b");
        std::fs::create_dir_all(&nested).unwrap();
        let env = |k: &str| match k {
            "LABPIPE_PROCESSED_BUCKET" => Some("p-env".to_string()),
            "LABPIPE_TABLE" => Some("t-env".to_string()),
            "LABPIPE_RAW_BUCKET" => Some(String::new()),
            _ => None,
        };
        let s = Settings::resolve(&given(&[("table", "t-kw")]), env, &nested).unwrap();
        assert_eq!(s.table.as_deref(), Some("t-kw"));
        assert_eq!(s.processed_bucket.as_deref(), Some("p-env"));
        // An empty variable counts as unset, as for the CLI.
        assert_eq!(s.raw_bucket.as_deref(), Some("r-file"));
        assert_eq!(s.outputs, Some(dir.path().join(OUTPUTS_FILE)));
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
    fn no_table_anywhere_says_how_to_name_one() {
        let dir = tempfile::tempdir().unwrap();
        let s = Settings::resolve(&Overrides::default(), |_| None, dir.path()).unwrap();
        let err = s.table().unwrap_err().to_string();
        assert!(err.contains("LABPIPE_TABLE"), "{err}");
    }

    #[test]
    fn a_missing_outputs_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.json");
        let err = Settings::resolve(
            &given(&[("stack_outputs", missing.to_str().unwrap())]),
            |_| None,
            dir.path(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("nope.json") && err.contains("does not exist"),
            "{err}"
        );
    }
}
