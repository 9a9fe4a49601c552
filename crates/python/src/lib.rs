//! `labpipe._labpipe`: the Python extension module behind the `labpipe` package researchers
//! import in a notebook. It is a thin adapter, like the CLI: the same filter parser and schema
//! (`labpipe-core`), the same catalog queries (`labpipe-catalog`) and the same verified,
//! resumable downloads (`labpipe-sync`), so `labpipe.query(f)` and `labpipe query f` cannot
//! disagree and a `labpipe.sync` folder is a `labpipe sync` folder.
//!
//! The boundary is deliberately narrow: every function takes plain values and returns JSON text,
//! which the pure-Python wrapper (`python/labpipe/__init__.py`) turns into DataFrames. The GIL is
//! released while the engines run; during a sync the calling thread still wakes a few times a
//! second to hand events to the progress callback and to notice Ctrl-C (which stops the run: the
//! next sync resumes the partial files, as after any interruption).
//!
//! Errors become exceptions of one family, `labpipe.LabpipeError`: `FilterError` (with
//! `column`), `ConfigError`, `CatalogError`, `SyncError` (with `code`, the CLI's `--json` code)
//! and `DataError`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

pub mod engine;
pub mod error;
pub mod features;
pub mod settings;

use engine::SyncRequest;
use error::Error;
use labpipe_sync::{SyncEvent, SyncOptions};
use settings::{Overrides, Settings};

create_exception!(_labpipe, LabpipeError, PyException, "Any LabPipe failure.");
create_exception!(
    _labpipe,
    FilterError,
    LabpipeError,
    "The filter does not parse or does not fit the lab schema; `column` is where."
);
create_exception!(
    _labpipe,
    ConfigError,
    LabpipeError,
    "The stack, schema or a keyword argument is missing or wrong."
);
create_exception!(
    _labpipe,
    CatalogError,
    LabpipeError,
    "Reading the catalog failed."
);
create_exception!(
    _labpipe,
    SyncError,
    LabpipeError,
    "Selecting or downloading files failed; `code` names the kind."
);
create_exception!(
    _labpipe,
    DataError,
    LabpipeError,
    "A synced output file is missing or unreadable."
);

/// Smallest useful ranged part (as the CLI's `--part-size` floor).
const MIN_PART_SIZE: u64 = 1024 * 1024;
/// How often a running sync wakes the calling thread (progress, Ctrl-C).
const TICK: Duration = Duration::from_millis(200);

/// One runtime per process, started on first use (engines spawn their transfers on it).
fn runtime() -> Result<&'static tokio::runtime::Runtime, Error> {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    if let Some(rt) = RT.get() {
        return Ok(rt);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Config(format!("cannot start the async runtime: {e}")))?;
    Ok(RT.get_or_init(|| rt))
}

fn to_py(py: Python<'_>, e: Error) -> PyErr {
    let text = e.to_string();
    match e {
        Error::Filter {
            message, column, ..
        } => {
            let err = FilterError::new_err(text);
            let value = err.value(py);
            let _ = value.setattr("column", column);
            let _ = value.setattr("reason", message);
            err
        }
        Error::Config(_) => ConfigError::new_err(text),
        Error::Catalog(_) => CatalogError::new_err(text),
        Error::Sync { code, .. } => {
            let err = SyncError::new_err(text);
            let _ = err.value(py).setattr("code", code);
            err
        }
        Error::Data(_) => DataError::new_err(text),
    }
}

fn settings(config: Option<BTreeMap<String, Option<String>>>) -> Result<Settings, Error> {
    Settings::from_process(&Overrides::new(config.unwrap_or_default())?)
}

fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("rows serialize")
}

/// Checks a filter against the lab schema without reaching the cloud; raises `FilterError`.
#[pyfunction]
#[pyo3(signature = (filter, config=None))]
fn check_filter(
    py: Python<'_>,
    filter: &str,
    config: Option<BTreeMap<String, Option<String>>>,
) -> PyResult<()> {
    settings(config)
        .and_then(|s| s.filter(filter))
        .map(|_| ())
        .map_err(|e| to_py(py, e))
}

/// Resolves the settings and the filter, then runs `call` on the runtime with the GIL released.
fn catalog_call<F, Fut>(
    py: Python<'_>,
    config: Option<BTreeMap<String, Option<String>>>,
    filter: &str,
    call: F,
) -> PyResult<String>
where
    F: FnOnce(Settings, labpipe_core::filter::Filter) -> Fut + Send,
    Fut: std::future::Future<Output = Result<String, Error>>,
{
    py.detach(|| {
        let settings = settings(config)?;
        let filter = settings.filter(filter)?;
        settings.table()?;
        runtime()?.block_on(call(settings, filter))
    })
    .map_err(|e| to_py(py, e))
}

/// The sessions `filter` selects, as the JSON array `labpipe query FILTER --json` prints.
#[pyfunction]
#[pyo3(signature = (filter, limit=None, config=None))]
fn query(
    py: Python<'_>,
    filter: &str,
    limit: Option<usize>,
    config: Option<BTreeMap<String, Option<String>>>,
) -> PyResult<String> {
    catalog_call(py, config, filter, |s, f| async move {
        engine::query(&s, &f, limit).await
    })
}

/// The preprocessed files of the sessions `filter` selects: `{"files": [...], "unprocessed":
/// [...]}`, each file as `labpipe query --files --json` prints it.
#[pyfunction]
#[pyo3(signature = (filter, pipeline_version=None, limit=None, config=None))]
fn files(
    py: Python<'_>,
    filter: &str,
    pipeline_version: Option<u32>,
    limit: Option<usize>,
    config: Option<BTreeMap<String, Option<String>>>,
) -> PyResult<String> {
    catalog_call(py, config, filter, |s, f| async move {
        engine::files(&s, &f, pipeline_version, limit).await
    })
}

/// Why a sync ended early: an engine error, or an exception on the Python side (Ctrl-C, or the
/// progress callback raised).
enum Stop {
    Engine(Error),
    Python(PyErr),
}

impl From<Error> for Stop {
    fn from(e: Error) -> Stop {
        Stop::Engine(e)
    }
}

/// Hands `event` (as JSON) to the callback; progress events are folded into a running byte
/// count, sent at most once per tick.
fn deliver(callback: &Option<Py<PyAny>>, event: &SyncEvent) -> Result<(), PyErr> {
    let Some(cb) = callback else { return Ok(()) };
    let line = serde_json::to_string(event).expect("events serialize");
    Python::attach(|py| cb.call1(py, (line,)).map(|_| ()))
}

/// Downloads the preprocessed files of the sessions `filter` selects into `dest`, like
/// `labpipe sync --where FILTER --dest DEST`; returns the summary as JSON (the `--json` summary
/// line). `on_event` gets each event as a JSON string (`--json`'s lines, plus
/// `{"event": "progress", "bytes": N}` with the bytes received so far).
#[pyfunction]
#[pyo3(signature = (
    filter, dest, pipeline_version=None, include=Vec::new(), limit=None, concurrency=16,
    part_size=8 * 1024 * 1024, verify=false, dry_run=false, on_event=None, config=None
))]
#[allow(clippy::too_many_arguments)]
fn sync(
    py: Python<'_>,
    filter: &str,
    dest: PathBuf,
    pipeline_version: Option<u32>,
    include: Vec<String>,
    limit: Option<usize>,
    concurrency: usize,
    part_size: u64,
    verify: bool,
    dry_run: bool,
    on_event: Option<Py<PyAny>>,
    config: Option<BTreeMap<String, Option<String>>>,
) -> PyResult<String> {
    if concurrency == 0 {
        return Err(ConfigError::new_err("concurrency must be at least 1"));
    }
    if part_size < MIN_PART_SIZE {
        return Err(ConfigError::new_err(format!(
            "part_size must be at least 1 MiB ({MIN_PART_SIZE} bytes), got {part_size}"
        )));
    }
    if dest.exists() && !dest.is_dir() {
        return Err(ConfigError::new_err(format!(
            "dest {} is a file; give a folder",
            dest.display()
        )));
    }
    let request = SyncRequest {
        pipeline_version,
        include,
        limit,
        options: SyncOptions {
            concurrency,
            part_size,
            verify,
            dry_run,
        },
    };
    let outcome: Result<labpipe_sync::SyncSummary, Stop> = py.detach(|| {
        let settings = settings(config)?;
        let filter = settings.filter(filter)?;
        settings.table()?;
        let rt = runtime()?;
        rt.block_on(async {
            let (selection, s3) = engine::selection(&settings, &filter, &request).await?;
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            let run = engine::transfer(
                s3,
                &selection,
                &filter.source,
                &dest,
                request.options.clone(),
                Some(tx),
            );
            tokio::pin!(run);
            let mut tick = tokio::time::interval(TICK);
            let (mut received, mut reported) = (0u64, 0u64);
            let mut events_open = true;
            let summary = loop {
                tokio::select! {
                    result = &mut run => break result,
                    event = rx.recv(), if events_open => match event {
                        Some(SyncEvent::Progress { bytes }) => received += bytes,
                        Some(event) => deliver(&on_event, &event).map_err(Stop::Python)?,
                        None => events_open = false,
                    },
                    _ = tick.tick() => {
                        Python::attach(|py| py.check_signals()).map_err(Stop::Python)?;
                        if received != reported {
                            reported = received;
                            progress(&on_event, received).map_err(Stop::Python)?;
                        }
                    }
                }
            };
            // The run is over: hand over what it sent last, then the summary or its error.
            while let Ok(event) = rx.try_recv() {
                match event {
                    SyncEvent::Progress { bytes } => received += bytes,
                    event => deliver(&on_event, &event).map_err(Stop::Python)?,
                }
            }
            if received != reported {
                progress(&on_event, received).map_err(Stop::Python)?;
            }
            Ok(summary?)
        })
    });
    match outcome {
        Ok(summary) => {
            let mut v = serde_json::to_value(&summary).expect("summary serializes");
            v["dest"] = dest.display().to_string().into();
            Ok(v.to_string())
        }
        Err(Stop::Engine(e)) => Err(to_py(py, e)),
        Err(Stop::Python(e)) => Err(e),
    }
}

fn progress(callback: &Option<Py<PyAny>>, bytes: u64) -> Result<(), PyErr> {
    let Some(cb) = callback else { return Ok(()) };
    let line = serde_json::json!({"event": "progress", "bytes": bytes}).to_string();
    Python::attach(|py| cb.call1(py, (line,)).map(|_| ()))
}

/// A `features.parquet` as `{"columns": [[name, [values…]], …], "metadata": {…}}`.
#[pyfunction]
fn read_features(py: Python<'_>, path: PathBuf) -> PyResult<String> {
    py.detach(|| features::read(&path))
        .map(|t| json(&t))
        .map_err(|e| to_py(py, e))
}

#[pymodule]
fn _labpipe(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    // The keyword arguments every function takes, for the Python side's own check.
    m.add("SETTINGS", settings::KEYS.to_vec())?;
    m.add("LabpipeError", py.get_type::<LabpipeError>())?;
    m.add("FilterError", py.get_type::<FilterError>())?;
    m.add("ConfigError", py.get_type::<ConfigError>())?;
    m.add("CatalogError", py.get_type::<CatalogError>())?;
    m.add("SyncError", py.get_type::<SyncError>())?;
    m.add("DataError", py.get_type::<DataError>())?;
    m.add_function(wrap_pyfunction!(check_filter, m)?)?;
    m.add_function(wrap_pyfunction!(query, m)?)?;
    m.add_function(wrap_pyfunction!(files, m)?)?;
    m.add_function(wrap_pyfunction!(sync, m)?)?;
    m.add_function(wrap_pyfunction!(read_features, m)?)?;
    Ok(())
}
