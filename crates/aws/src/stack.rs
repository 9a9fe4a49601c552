//! The deployed stack's outputs, typed: which buckets, table, queues and log groups a command
//! talks to. The deploy writes them to `.labpipe/stack/outputs.json`; the CLI, the local runner
//! and the tests read that file, and a deploy command gets the same pairs from CloudFormation's
//! `DescribeStacks` (`Outputs[].OutputKey/OutputValue`) and feeds them to
//! [`StackOutputs::from_pairs`]. The output names are the template's (`infra/template.yaml`).

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::S3Error;

/// The stack outputs file, relative to the repository (or any folder above the current one).
pub const OUTPUTS_FILE: &str = ".labpipe/stack/outputs.json";

/// A stack's outputs. The typed fields are the ones code uses; every output is in [`Self::all`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StackOutputs {
    pub raw_bucket: Option<String>,
    pub processed_bucket: Option<String>,
    pub catalog_table: Option<String>,
    pub ingest_queue_url: Option<String>,
    pub preprocess_queue_url: Option<String>,
    pub pipeline_version: Option<String>,
    pub region: Option<String>,
    pub uploader_role_arn: Option<String>,
    pub ingest_log_group: Option<String>,
    pub preprocess_log_group: Option<String>,
    pub client_log_group: Option<String>,
    /// Every output by name, values as text.
    pub all: BTreeMap<String, String>,
}

impl StackOutputs {
    /// From `(OutputKey, OutputValue)` pairs, e.g. a `DescribeStacks` answer.
    pub fn from_pairs<K, V>(pairs: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        let all: BTreeMap<String, String> = pairs
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        let get = |name: &str| all.get(name).filter(|v| !v.is_empty()).cloned();
        StackOutputs {
            raw_bucket: get("RawBucket"),
            processed_bucket: get("ProcessedBucket"),
            catalog_table: get("CatalogTable"),
            ingest_queue_url: get("IngestQueueUrl"),
            preprocess_queue_url: get("PreprocessQueueUrl"),
            pipeline_version: get("PipelineVersion"),
            region: get("Region"),
            uploader_role_arn: get("UploaderRoleArn"),
            ingest_log_group: get("IngestLogGroup"),
            preprocess_log_group: get("PreprocessLogGroup"),
            client_log_group: get("ClientLogGroup"),
            all,
        }
    }

    /// From JSON: a flat `{"Name": "value"}` object, or CloudFormation's
    /// `[{"OutputKey": …, "OutputValue": …}]` (bare or under `"Outputs"`, or the first stack of a
    /// `describe-stacks` answer).
    pub fn from_json(text: &str, origin: &str) -> Result<Self, S3Error> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| S3Error::StackOutputs {
                origin: origin.to_string(),
                reason: format!("not JSON ({e}); deploy again"),
            })?;
        let value = value.get("Stacks").and_then(|s| s.get(0)).unwrap_or(&value);
        let list = value.get("Outputs").unwrap_or(value);
        let mut pairs = Vec::new();
        match list {
            serde_json::Value::Array(items) => {
                for it in items {
                    if let (Some(k), Some(v)) = (
                        it.get("OutputKey").and_then(|k| k.as_str()),
                        it.get("OutputValue"),
                    ) {
                        pairs.push((k.to_string(), scalar(v)));
                    }
                }
            }
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    if !v.is_object() && !v.is_array() && !v.is_null() {
                        pairs.push((k.clone(), scalar(v)));
                    }
                }
            }
            _ => return Err(S3Error::StackOutputs {
                origin: origin.to_string(),
                reason:
                    "neither an object of outputs nor a list of OutputKey/OutputValue; deploy again"
                        .into(),
            }),
        }
        Ok(Self::from_pairs(pairs))
    }

    /// Reads an outputs file (see [`Self::from_json`] for the shapes).
    pub fn read(path: &Path) -> Result<Self, S3Error> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| S3Error::StackOutputs {
            origin: origin.clone(),
            reason: format!("cannot be read ({e}); deploy the stack or point to its outputs file"),
        })?;
        Self::from_json(&text, &origin)
    }

    /// [`OUTPUTS_FILE`] in `start` or the nearest folder above it that has one.
    pub fn find(start: &Path) -> Option<std::path::PathBuf> {
        start
            .ancestors()
            .map(|d| d.join(OUTPUTS_FILE))
            .find(|p| p.is_file())
    }

    /// One output by its template name.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.all.get(name).map(String::as_str)
    }
}

fn scalar(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_in_every_shape() {
        let flat = StackOutputs::from_json(
            r#"{"CatalogTable":"t","RawBucket":"r","PipelineVersion":1,"Nested":{"x":1}}"#,
            "flat",
        )
        .unwrap();
        assert_eq!(flat.catalog_table.as_deref(), Some("t"));
        assert_eq!(flat.raw_bucket.as_deref(), Some("r"));
        assert_eq!(flat.pipeline_version.as_deref(), Some("1"));
        assert_eq!(flat.get("Nested"), None);
        let cf = r#"{"Outputs":[{"OutputKey":"ProcessedBucket","OutputValue":"p"},{"OutputKey":"IngestQueueUrl","OutputValue":"http://q"}]}"#;
        let cf = StackOutputs::from_json(cf, "cf").unwrap();
        assert_eq!(cf.processed_bucket.as_deref(), Some("p"));
        assert_eq!(cf.ingest_queue_url.as_deref(), Some("http://q"));
        let described = r#"{"Stacks":[{"StackName":"s","Outputs":[{"OutputKey":"RawBucket","OutputValue":"rb"}]}]}"#;
        assert_eq!(
            StackOutputs::from_json(described, "d")
                .unwrap()
                .raw_bucket
                .as_deref(),
            Some("rb")
        );
        let err = StackOutputs::from_json("[1", "outputs.json")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("stack outputs outputs.json: not JSON"),
            "{err}"
        );
        assert!(StackOutputs::from_json("3", "x").is_err());
    }

    #[test]
    fn files_are_found_above_the_current_folder() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(OUTPUTS_FILE);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, r#"{"RawBucket":"r"}"#).unwrap();
        let deep = dir.path().join("a/b");
        std::fs::create_dir_all(&deep).unwrap();
        assert_eq!(StackOutputs::find(&deep), Some(file.clone()));
        assert_eq!(
            StackOutputs::read(&file).unwrap().raw_bucket.as_deref(),
            Some("r")
        );
        let missing = StackOutputs::read(&dir.path().join("nope.json")).unwrap_err();
        assert!(missing.to_string().contains("cannot be read"), "{missing}");
    }
}
