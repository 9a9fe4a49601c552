//! Where the deployed stack is, resolved once for every front end: the `labpipe` CLI (flags),
//! the Python package (keyword arguments) and the desktop app's `labpipe-app configure` (an
//! outputs file into its Settings).
//!
//! One order, so a researcher sets things up once: what the caller gave (a flag or keyword),
//! else its environment variable (`LABPIPE_TABLE`, `LABPIPE_PROCESSED_BUCKET`,
//! `LABPIPE_RAW_BUCKET`, `LABPIPE_STACK_OUTPUTS`; the queues' `LABPIPE_*_QUEUE_URL`,
//! `LABPIPE_PIPELINE_VERSION`, `LABPIPE_CLIENT_LOG_GROUP`), else the stack outputs file the deploy writes
//! (`.labpipe/stack/outputs.json`, keys `CatalogTable`, `ProcessedBucket`, `RawBucket`, …), looked
//! for in the current folder and its parents, or named by the caller / `LABPIPE_STACK_OUTPUTS`.
//! An empty value counts as unset. The front ends differ only in how a setting is spelt in
//! their messages ([`Spelling`]).

use std::path::{Path, PathBuf};

use labpipe_aws::StackOutputs;
use labpipe_catalog::Catalog;
use labpipe_core::filter::Filter;
use labpipe_core::LabSchema;

/// The stack outputs file, relative to the repository (or any folder above the current one).
pub use labpipe_aws::stack::OUTPUTS_FILE;

/// Names the client log group, above the stack outputs file's `ClientLogGroup`.
pub const CLIENT_LOG_GROUP_ENV: &str = "LABPIPE_CLIENT_LOG_GROUP";

/// A setting that is missing or wrong, worded for the front end that asked ([`Spelling`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct StackError(pub String);

/// How a front end names the settings in its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spelling {
    /// How to give the table, e.g. `--table NAME`.
    pub table: &'static str,
    /// How to name the outputs file, e.g. `--stack-outputs`.
    pub stack_outputs: &'static str,
}

impl Spelling {
    /// The CLI's flags.
    pub const CLI: Spelling = Spelling {
        table: "--table NAME",
        stack_outputs: "--stack-outputs",
    };
    /// The Python package's keyword arguments.
    pub const PYTHON: Spelling = Spelling {
        table: "table='NAME'",
        stack_outputs: "stack_outputs=",
    };
}

impl Default for Spelling {
    fn default() -> Spelling {
        Spelling::CLI
    }
}

/// What the caller gave (flags, keyword arguments), before the environment and the outputs file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StackGiven {
    pub table: Option<String>,
    pub processed_bucket: Option<String>,
    pub raw_bucket: Option<String>,
    pub stack_outputs: Option<PathBuf>,
}

/// Names of the deployed resources, each possibly unknown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stack {
    pub table: Option<String>,
    pub processed_bucket: Option<String>,
    pub raw_bucket: Option<String>,
    /// The outputs file consulted, for messages.
    pub outputs: Option<PathBuf>,
    /// The pipeline's queues, for the operator's commands and the stuck-session reasons.
    pub queues: QueueUrls,
    /// The pipeline version new sessions get (`LABPIPE_PIPELINE_VERSION`, else `PipelineVersion`).
    pub pipeline_version: Option<u32>,
    /// The CloudWatch Logs group the lab PC's client log goes to (`LABPIPE_CLIENT_LOG_GROUP`,
    /// else `ClientLogGroup`); `labpipe-clientlog` takes it from here.
    pub client_log_group: Option<String>,
    /// How the front end that resolved it names the settings.
    pub spelling: Spelling,
}

/// The pipeline's queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PipelineQueue {
    Ingest,
    Preprocess,
    IngestDeadLetter,
    PreprocessDeadLetter,
}

impl PipelineQueue {
    pub const ALL: [PipelineQueue; 4] = [
        PipelineQueue::Ingest,
        PipelineQueue::Preprocess,
        PipelineQueue::IngestDeadLetter,
        PipelineQueue::PreprocessDeadLetter,
    ];

    /// The environment variable that names its URL.
    pub fn var(self) -> &'static str {
        match self {
            PipelineQueue::Ingest => "LABPIPE_INGEST_QUEUE_URL",
            PipelineQueue::Preprocess => "LABPIPE_PREPROCESS_QUEUE_URL",
            PipelineQueue::IngestDeadLetter => "LABPIPE_INGEST_DEAD_LETTER_QUEUE_URL",
            PipelineQueue::PreprocessDeadLetter => "LABPIPE_PREPROCESS_DEAD_LETTER_QUEUE_URL",
        }
    }

    /// The stack output that holds its URL.
    pub fn output(self) -> &'static str {
        match self {
            PipelineQueue::Ingest => "IngestQueueUrl",
            PipelineQueue::Preprocess => "PreprocessQueueUrl",
            PipelineQueue::IngestDeadLetter => "IngestDeadLetterQueueUrl",
            PipelineQueue::PreprocessDeadLetter => "PreprocessDeadLetterQueueUrl",
        }
    }
}

/// The URLs of the pipeline's queues, each possibly unknown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueUrls {
    pub ingest: Option<String>,
    pub preprocess: Option<String>,
    pub ingest_dead_letter: Option<String>,
    pub preprocess_dead_letter: Option<String>,
}

impl QueueUrls {
    pub fn get(&self, q: PipelineQueue) -> Option<&str> {
        match q {
            PipelineQueue::Ingest => self.ingest.as_deref(),
            PipelineQueue::Preprocess => self.preprocess.as_deref(),
            PipelineQueue::IngestDeadLetter => self.ingest_dead_letter.as_deref(),
            PipelineQueue::PreprocessDeadLetter => self.preprocess_dead_letter.as_deref(),
        }
    }
}

impl Stack {
    /// Resolves what was given → the environment (through `env`) → the outputs file found from
    /// `cwd` (or the one given).
    pub fn resolve(
        given: &StackGiven,
        env: impl Fn(&str) -> Option<String>,
        cwd: &Path,
        spelling: Spelling,
    ) -> Result<Stack, StackError> {
        let env = |var: &str| env(var).filter(|v| !v.is_empty());
        let outputs = match given
            .stack_outputs
            .clone()
            .filter(|p| !p.as_os_str().is_empty())
            .or_else(|| env("LABPIPE_STACK_OUTPUTS").map(PathBuf::from))
        {
            Some(p) => {
                if !p.is_file() {
                    return Err(StackError(format!(
                        "stack outputs file {} does not exist; check {} / LABPIPE_STACK_OUTPUTS",
                        p.display(),
                        spelling.stack_outputs
                    )));
                }
                Some(p)
            }
            None => StackOutputs::find(cwd),
        };
        // The gateway's reader: a flat object or CloudFormation's OutputKey/OutputValue list.
        let from_file = match &outputs {
            Some(p) => StackOutputs::read(p).map_err(|e| StackError(e.to_string()))?,
            None => StackOutputs::default(),
        };
        let pick = |given: &Option<String>, var: &str, key: &str| {
            given
                .clone()
                .filter(|v| !v.is_empty())
                .or_else(|| env(var))
                .or_else(|| {
                    from_file
                        .get(key)
                        .filter(|v| !v.is_empty())
                        .map(str::to_string)
                })
        };
        let queue = |q: PipelineQueue| pick(&None, q.var(), q.output());
        let pipeline_version = pick(&None, "LABPIPE_PIPELINE_VERSION", "PipelineVersion")
            .and_then(|v| v.trim().parse().ok());
        Ok(Stack {
            table: pick(&given.table, "LABPIPE_TABLE", "CatalogTable"),
            processed_bucket: pick(
                &given.processed_bucket,
                "LABPIPE_PROCESSED_BUCKET",
                "ProcessedBucket",
            ),
            raw_bucket: pick(&given.raw_bucket, "LABPIPE_RAW_BUCKET", "RawBucket"),
            outputs,
            queues: QueueUrls {
                ingest: queue(PipelineQueue::Ingest),
                preprocess: queue(PipelineQueue::Preprocess),
                ingest_dead_letter: queue(PipelineQueue::IngestDeadLetter),
                preprocess_dead_letter: queue(PipelineQueue::PreprocessDeadLetter),
            },
            pipeline_version,
            client_log_group: pick(&None, CLIENT_LOG_GROUP_ENV, "ClientLogGroup"),
            spelling,
        })
    }

    /// [`Stack::resolve`] from the process environment and the current folder.
    pub fn from_process(given: &StackGiven, spelling: Spelling) -> Result<Stack, StackError> {
        let cwd = current_dir()?;
        Stack::resolve(given, |k| std::env::var(k).ok(), &cwd, spelling)
    }

    /// The catalog table, or an error saying how to name it.
    pub fn table(&self) -> Result<&str, StackError> {
        self.table.as_deref().ok_or_else(|| {
            StackError(format!(
                "no catalog table given: pass {}, set LABPIPE_TABLE, or run where {OUTPUTS_FILE} of a deployed stack can be found (or point {} / LABPIPE_STACK_OUTPUTS at it)",
                self.spelling.table, self.spelling.stack_outputs
            ))
        })
    }

    /// A queue's URL, or an error naming where it comes from.
    pub fn queue(&self, q: PipelineQueue) -> Result<&str, StackError> {
        self.queues.get(q).ok_or_else(|| {
            StackError(format!(
                "no {} known: set {}, or run where {OUTPUTS_FILE} of a deployed stack can be found (or point {} / LABPIPE_STACK_OUTPUTS at it)",
                q.output(),
                q.var(),
                self.spelling.stack_outputs
            ))
        })
    }

    /// The catalog client for this stack's table.
    pub fn catalog(&self, sdk: &aws_config::SdkConfig) -> Result<Catalog, StackError> {
        Ok(Catalog::from_sdk(sdk, self.table()?.to_string()))
    }
}

/// The lab schema that types a filter's fields: the one named (`--schema` / `schema=` /
/// `LABPIPE_SCHEMA`), else the lab's `labpipe.toml` found from `path` upwards, else the built-in
/// one.
pub fn lab_schema(named: Option<&Path>, path: &Path) -> Result<LabSchema, StackError> {
    match named
        .map(Path::to_path_buf)
        .or_else(|| LabSchema::discover(path))
    {
        Some(p) => LabSchema::load(&p).map_err(|e| StackError(e.to_string())),
        None => Ok(LabSchema::default()),
    }
}

/// A filter that did not parse or does not fit the schema: the message, and the filter with a
/// caret under the mistake (`rendered`), as every front end shows it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid filter:\n{rendered}")]
pub struct InvalidFilter {
    pub rendered: String,
    pub message: String,
    pub column: usize,
}

/// Parses and type-checks `source` against `schema`.
pub fn parse_filter(source: &str, schema: &LabSchema) -> Result<Filter, InvalidFilter> {
    Filter::new(source, schema).map_err(|e| InvalidFilter {
        rendered: e.render(source),
        message: e.message.clone(),
        column: e.column,
    })
}

fn current_dir() -> Result<PathBuf, StackError> {
    std::env::current_dir().map_err(|e| StackError(format!("cannot read the current folder: {e}")))
}

/// What the desktop app takes from a stack's outputs file (`labpipe-app configure
/// --stack-outputs`): the two names it cannot work without and the optional ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabPcOutputs {
    pub raw_bucket: String,
    pub catalog_table: String,
    pub region: Option<String>,
    pub uploader_role_arn: Option<String>,
    pub client_log_group: Option<String>,
}

impl LabPcOutputs {
    /// Reads `file`; an output the lab PC needs that is missing is named.
    pub fn read(file: &Path) -> Result<LabPcOutputs, StackError> {
        let outputs = StackOutputs::read(file).map_err(|e| StackError(e.to_string()))?;
        let need = |v: Option<String>, name: &str| {
            v.filter(|v| !v.is_empty()).ok_or_else(|| {
                StackError(format!(
                    "{} has no {name} output; is it the LabPipe stack's?",
                    file.display()
                ))
            })
        };
        let optional = |v: Option<String>| v.filter(|v| !v.is_empty());
        Ok(LabPcOutputs {
            raw_bucket: need(outputs.raw_bucket, "RawBucket")?,
            catalog_table: need(outputs.catalog_table, "CatalogTable")?,
            region: optional(outputs.region),
            uploader_role_arn: optional(outputs.uploader_role_arn),
            client_log_group: optional(outputs.client_log_group),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outputs_dir(json: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".labpipe/stack")).unwrap();
        std::fs::write(dir.path().join(OUTPUTS_FILE), json).unwrap();
        dir
    }

    /// Each setting from each source, in order: given beats environment beats the outputs file,
    /// and an empty value counts as unset at every step.
    #[test]
    fn given_beats_environment_beats_the_outputs_file() {
        let dir = outputs_dir(
            r#"{"CatalogTable": "t-file", "ProcessedBucket": "p-file", "RawBucket": "r-file",
                "PreprocessQueueUrl": "q-file", "PipelineVersion": "3"}"#,
        );
        let nested = dir.path().join("a/b");
        std::fs::create_dir_all(&nested).unwrap();
        let env = |k: &str| match k {
            "LABPIPE_PROCESSED_BUCKET" | "LABPIPE_TABLE" => Some(format!("{k}-env")),
            "LABPIPE_RAW_BUCKET" => Some(String::new()),
            "LABPIPE_INGEST_QUEUE_URL" => Some("i-env".into()),
            _ => None,
        };
        let given = StackGiven {
            table: Some("t-given".into()),
            raw_bucket: Some(String::new()),
            ..StackGiven::default()
        };
        let s = Stack::resolve(&given, env, &nested, Spelling::CLI).unwrap();
        assert_eq!(s.table.as_deref(), Some("t-given"));
        assert_eq!(
            s.processed_bucket.as_deref(),
            Some("LABPIPE_PROCESSED_BUCKET-env")
        );
        assert_eq!(s.raw_bucket.as_deref(), Some("r-file"));
        assert_eq!(s.outputs, Some(dir.path().join(OUTPUTS_FILE)));
        assert_eq!(s.queues.ingest.as_deref(), Some("i-env"));
        assert_eq!(s.queue(PipelineQueue::Preprocess), Ok("q-file"));
        assert_eq!(s.pipeline_version, Some(3));
        let err = s.queue(PipelineQueue::IngestDeadLetter).unwrap_err().0;
        assert!(
            err.contains("IngestDeadLetterQueueUrl")
                && err.contains("LABPIPE_INGEST_DEAD_LETTER_QUEUE_URL"),
            "{err}"
        );
    }

    /// The outputs file named by the caller or the environment wins over the one found; a named
    /// file that is not there is an error in the caller's words.
    #[test]
    fn a_named_outputs_file_is_used_or_refused_by_name() {
        let found = outputs_dir(r#"{"CatalogTable": "found"}"#);
        let named = found.path().join("other.json");
        std::fs::write(&named, r#"{"CatalogTable": "named"}"#).unwrap();
        let by_env = |k: &str| (k == "LABPIPE_STACK_OUTPUTS").then(|| named.display().to_string());
        let s =
            Stack::resolve(&StackGiven::default(), by_env, found.path(), Spelling::CLI).unwrap();
        assert_eq!(s.table.as_deref(), Some("named"));
        for (spelling, flag) in [
            (
                Spelling::CLI,
                "check --stack-outputs / LABPIPE_STACK_OUTPUTS",
            ),
            (
                Spelling::PYTHON,
                "check stack_outputs= / LABPIPE_STACK_OUTPUTS",
            ),
        ] {
            let given = StackGiven {
                stack_outputs: Some(found.path().join("nope.json")),
                ..StackGiven::default()
            };
            let err = Stack::resolve(&given, |_| None, found.path(), spelling)
                .unwrap_err()
                .0;
            assert!(
                err.contains("nope.json does not exist") && err.contains(flag),
                "{err}"
            );
        }
    }

    /// The client log's group is resolved with the rest of the stack: the environment, else the
    /// outputs file (named or found), an empty variable counting as unset.
    #[test]
    fn the_client_log_group_comes_from_the_environment_else_the_outputs_file() {
        let dir = outputs_dir(r#"{"ClientLogGroup": "/labpipe/file/clients"}"#);
        let resolve = |env: &dyn Fn(&str) -> Option<String>| {
            Stack::resolve(&StackGiven::default(), env, dir.path(), Spelling::CLI)
                .unwrap()
                .client_log_group
        };
        let group_env = |value: &'static str| {
            move |k: &str| (k == CLIENT_LOG_GROUP_ENV).then(|| value.to_string())
        };
        assert_eq!(
            resolve(&group_env("/labpipe/env/clients")).as_deref(),
            Some("/labpipe/env/clients")
        );
        assert_eq!(
            resolve(&group_env("")).as_deref(),
            Some("/labpipe/file/clients")
        );
        assert_eq!(resolve(&|_| None).as_deref(), Some("/labpipe/file/clients"));
        let nowhere = tempfile::tempdir().unwrap();
        let s = Stack::resolve(
            &StackGiven::default(),
            |_| None,
            nowhere.path(),
            Spelling::CLI,
        )
        .unwrap();
        assert_eq!(s.client_log_group, None);
    }

    #[test]
    fn no_table_anywhere_says_how_to_name_one_in_the_callers_words() {
        let dir = tempfile::tempdir().unwrap();
        for (spelling, how) in [
            (Spelling::CLI, "pass --table NAME"),
            (Spelling::PYTHON, "pass table='NAME'"),
        ] {
            let s = Stack::resolve(&StackGiven::default(), |_| None, dir.path(), spelling).unwrap();
            let err = s.table().unwrap_err().0;
            assert!(err.contains(how) && err.contains("LABPIPE_TABLE"), "{err}");
        }
    }

    #[test]
    fn the_lab_pc_needs_the_raw_bucket_and_the_table_from_the_outputs() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("outputs.json");
        std::fs::write(
            &file,
            r#"{"RawBucket": "raw", "CatalogTable": "cat", "Region": "", "ClientLogGroup": "g"}"#,
        )
        .unwrap();
        let o = LabPcOutputs::read(&file).unwrap();
        assert_eq!(
            o,
            LabPcOutputs {
                raw_bucket: "raw".into(),
                catalog_table: "cat".into(),
                region: None,
                uploader_role_arn: None,
                client_log_group: Some("g".into()),
            }
        );
        std::fs::write(&file, r#"{"RawBucket": "raw"}"#).unwrap();
        let err = LabPcOutputs::read(&file).unwrap_err().0;
        assert!(err.contains("has no CatalogTable output"), "{err}");
    }

    #[test]
    fn a_bad_filter_is_shown_with_a_caret_under_the_mistake() {
        let err = parse_filter("fatige > 5", &LabSchema::default()).unwrap_err();
        assert_eq!(err.column, 0);
        assert!(err.to_string().starts_with("invalid filter:\n"), "{err}");
        assert!(err.rendered.contains('^'), "{}", err.rendered);
    }
}
