//! Rendering results for people (tables with colours) and scripts (JSON). Pure functions of their
//! input so the output is snapshot-tested.

use labpipe_core::units::human_bytes;
use labpipe_core::{Finding, SessionReport, Severity, Verdict};
use owo_colors::{OwoColorize, Style};
use serde::Serialize;
use std::fmt::Write;

/// The `--json` shape of `labpipe check`: stable, documented in the README.
#[derive(Serialize)]
pub struct CheckJson<'a> {
    pub session: &'a str,
    pub path: String,
    pub verdict: Verdict,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recorded_at: Option<String>,
    pub total_bytes: u64,
    pub files: usize,
    pub findings: &'a [Finding],
    pub metadata: &'a labpipe_core::Metadata,
}

pub fn check_json(reports: &[SessionReport]) -> Vec<CheckJson<'_>> {
    reports
        .iter()
        .map(|r| CheckJson {
            session: &r.session,
            path: r.path.display().to_string(),
            verdict: r.verdict,
            recorded_at: r
                .recorded_at
                .map(|t| t.format("%Y-%m-%dT%H:%M:%S").to_string()),
            total_bytes: r.total_bytes,
            files: r.files.len(),
            findings: &r.findings,
            metadata: &r.metadata,
        })
        .collect()
}

/// Whether to colour a table: `NO_COLOR` (set and not empty, no-color.org) always wins; else
/// `CLICOLOR_FORCE` (set and not `0`) colours even a pipe; else only a terminal is coloured.
pub fn colour_wanted(is_terminal: bool) -> bool {
    let set = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if set("NO_COLOR").is_some() {
        return false;
    }
    is_terminal || set("CLICOLOR_FORCE").is_some_and(|v| v != "0")
}

fn paint(text: &str, style: Style, color: bool) -> String {
    if color {
        text.style(style).to_string()
    } else {
        text.to_string()
    }
}

fn verdict_style(v: Verdict) -> Style {
    match v {
        Verdict::Pass => Style::new().green().bold(),
        Verdict::Warn => Style::new().yellow().bold(),
        Verdict::Wait => Style::new().cyan().bold(),
        Verdict::Fail => Style::new().red().bold(),
    }
}

/// The human table of `labpipe check`: one row per session, its findings indented below it.
pub fn check_table(reports: &[SessionReport], color: bool) -> String {
    let mut out = String::new();
    if reports.is_empty() {
        return out;
    }
    let width = reports
        .iter()
        .map(|r| r.session.chars().count())
        .max()
        .unwrap_or(7)
        .max(7);
    let header = format!(
        "{:<width$}  {:<7}  {:>10}  {:>5}  {}",
        "SESSION", "VERDICT", "SIZE", "FILES", "RECORDED"
    );
    let _ = writeln!(out, "{}", paint(&header, Style::new().bold(), color));
    for r in reports {
        let verdict = format!("{:<7}", r.verdict.as_str());
        let recorded = r
            .recorded_at
            .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
            .unwrap_or_else(|| "-".into());
        let _ = writeln!(
            out,
            "{:<width$}  {}  {:>10}  {:>5}  {recorded}",
            r.session,
            paint(&verdict, verdict_style(r.verdict), color),
            human_bytes(r.total_bytes),
            r.files.len(),
        );
        let mut findings: Vec<&Finding> = r.findings.iter().collect();
        findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
        for f in findings {
            let (mark, style) = match f.severity {
                Severity::Error => ("✗", Style::new().red()),
                Severity::Warning if f.check == "stability" => ("…", Style::new().cyan()),
                Severity::Warning => ("!", Style::new().yellow()),
                Severity::Info => ("·", Style::new().dimmed()),
            };
            let _ = writeln!(
                out,
                "    {} {:<11} {}",
                paint(mark, style, color),
                f.check,
                paint(&f.message, style, color && f.severity == Severity::Info)
            );
        }
    }
    let count = |v: Verdict| reports.iter().filter(|r| r.verdict == v).count();
    let mut summary = format!(
        "{} session{}: {} pass, {} warn, {} wait, {} fail",
        reports.len(),
        if reports.len() == 1 { "" } else { "s" },
        count(Verdict::Pass),
        count(Verdict::Warn),
        count(Verdict::Wait),
        count(Verdict::Fail)
    );
    let ready = count(Verdict::Pass) + count(Verdict::Warn);
    let _ = write!(summary, " — {ready} ready to upload");
    if count(Verdict::Wait) > 0 {
        summary.push_str("; waiting sessions are re-checked once their folder stops changing");
    }
    let _ = writeln!(out, "{}", paint(&summary, Style::new().bold(), color));
    out
}
