//! Rolling local logs: JSON lines in the OS log directory (`LABPIPE_APP_LOG_DIR` overrides it),
//! one file a day, two weeks kept. The Logs view reads them back.

use serde::Serialize;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use tracing_appender::non_blocking::WorkerGuard;
use tracing_appender::rolling::{Builder, Rotation};
use tracing_subscriber::prelude::*;
use tracing_subscriber::EnvFilter;
use ts_rs::TS;

use crate::error::AppResult;

const PREFIX: &str = "labpipe-app";
const SUFFIX: &str = "log";

/// Starts logging to `dir`; keep the guard alive for the life of the app.
pub fn init(dir: &Path) -> AppResult<WorkerGuard> {
    std::fs::create_dir_all(dir)?;
    let appender = Builder::new()
        .rotation(Rotation::DAILY)
        .filename_prefix(PREFIX)
        .filename_suffix(SUFFIX)
        .max_log_files(14)
        .build(dir)
        .map_err(|e| {
            crate::error::AppError::new("logs", format!("cannot log to {}: {e}", dir.display()))
        })?;
    let (writer, guard) = tracing_appender::non_blocking(appender);
    let filter = EnvFilter::try_from_env("LABPIPE_LOG").unwrap_or_else(|_| {
        EnvFilter::new("info,aws_config=warn,aws_smithy_runtime=warn,tao=warn,wry=warn")
    });
    let file = tracing_subscriber::fmt::layer()
        .json()
        .with_writer(writer)
        .with_ansi(false);
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false);
    // A second init (tests) keeps the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(file)
        .with(stderr)
        .try_init();
    Ok(guard)
}

/// One log line as the Logs view shows it.
#[derive(Debug, Clone, Serialize, TS, PartialEq)]
#[ts(export, export_to = "../../ui/src/lib/bindings/")]
pub struct LogLine {
    pub timestamp: String,
    /// `ERROR`, `WARN`, `INFO`, `DEBUG` or `TRACE`.
    pub level: String,
    pub target: String,
    /// The message followed by the event's other fields (`key=value`).
    pub message: String,
}

#[derive(Debug, Clone, Serialize, TS)]
#[ts(export, export_to = "../../ui/src/lib/bindings/")]
pub struct LogsView {
    pub dir: String,
    pub lines: Vec<LogLine>,
}

/// Parses one JSON log line; lines from elsewhere are kept verbatim.
pub fn parse_line(line: &str) -> LogLine {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
        return LogLine {
            timestamp: String::new(),
            level: "INFO".into(),
            target: String::new(),
            message: line.into(),
        };
    };
    let s = |k: &str| {
        v.get(k)
            .and_then(|x| x.as_str())
            .unwrap_or_default()
            .to_string()
    };
    let mut message = String::new();
    if let Some(fields) = v.get("fields").and_then(|f| f.as_object()) {
        if let Some(m) = fields.get("message").and_then(|m| m.as_str()) {
            message.push_str(m);
        }
        for (k, val) in fields.iter().filter(|(k, _)| k.as_str() != "message") {
            let val = val
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| val.to_string());
            message.push_str(&format!(" {k}={val}"));
        }
    }
    LogLine {
        timestamp: s("timestamp"),
        level: s("level"),
        target: s("target"),
        message,
    }
}

fn log_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(PREFIX) && n.ends_with(SUFFIX))
        })
        .collect();
    files.sort();
    files
}

/// The last `limit` lines, oldest first, across the newest files.
pub fn tail(dir: &Path, limit: usize) -> Vec<LogLine> {
    let mut out: Vec<LogLine> = Vec::new();
    for file in log_files(dir).iter().rev() {
        let Ok(f) = std::fs::File::open(file) else {
            continue;
        };
        let lines: Vec<String> = BufReader::new(f)
            .lines()
            .map_while(Result::ok)
            .filter(|l| !l.is_empty())
            .collect();
        let mut parsed: Vec<LogLine> = lines.iter().map(|l| parse_line(l)).collect();
        parsed.append(&mut out);
        out = parsed;
        if out.len() >= limit {
            break;
        }
    }
    let skip = out.len().saturating_sub(limit);
    out.split_off(skip)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_json_lines_and_keeps_others() {
        let l = parse_line(
            r#"{"timestamp":"2026-01-01T00:00:00Z","level":"WARN","fields":{"message":"slow","session":"20210301_161221"},"target":"labpipe_app"}"#,
        );
        assert_eq!(l.level, "WARN");
        assert_eq!(l.message, "slow session=20210301_161221");
        assert_eq!(parse_line("plain text").message, "plain text");
    }

    #[test]
    fn tails_across_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("labpipe-app.2026-01-01.log"), "a\nb\n").unwrap();
        std::fs::write(dir.path().join("labpipe-app.2026-01-02.log"), "c\n").unwrap();
        std::fs::write(dir.path().join("other.txt"), "x\n").unwrap();
        let got: Vec<String> = tail(dir.path(), 2).into_iter().map(|l| l.message).collect();
        assert_eq!(got, ["b", "c"]);
    }
}
