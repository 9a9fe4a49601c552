//! How `labpipe upload` shows a run: progress bars on stderr (a total and one per session, retries
//! beside them) or the engine's events as JSON lines, one line per session on stdout saying how
//! it ended and why, and the summary.
//!
//! The numbers come from `labpipe_lab`'s fold ([`TransferView::apply`]) and run policy
//! ([`RunSummary`], [`SessionEnd`]), the same the desktop app shows. The session lines are printed
//! whether or not stdout is a terminal: a failed session's reason must reach a log or a cron
//! mail, not only the log file.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use labpipe_core::units::human_bytes;
use labpipe_lab::progress::retries_text;
use labpipe_lab::{RunSummary, SessionEnd, TransferView};
use labpipe_upload::Event;
use std::collections::{HashMap, HashSet};

/// The run's display: bars, per-session views and what JSON already said.
pub struct UploadProgress {
    json: bool,
    multi: MultiProgress,
    style: ProgressStyle,
    all: ProgressBar,
    bars: HashMap<String, ProgressBar>,
    views: HashMap<String, TransferView>,
    /// Sessions whose `session_failed` event was printed (`--json`).
    failed_printed: HashSet<String>,
    retries: u64,
}

impl UploadProgress {
    /// `total`: the bytes of the sessions that may be uploaded.
    pub fn new(json: bool, total: u64) -> Self {
        let multi = MultiProgress::with_draw_target(if json {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        });
        let style = ProgressStyle::with_template(
            "{prefix:>16} {bar:30} {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {msg}",
        )
        .expect("static template");
        let all = multi.add(
            ProgressBar::new(total)
                .with_style(style.clone())
                .with_prefix("total"),
        );
        UploadProgress {
            json,
            multi,
            style,
            all,
            bars: HashMap::new(),
            views: HashMap::new(),
            failed_printed: HashSet::new(),
            retries: 0,
        }
    }

    /// Shows one engine event.
    pub fn event(&mut self, event: &Event) {
        if self.json {
            if let Ok(line) = serde_json::to_string(event) {
                println!("{line}");
            }
            if let Event::SessionFailed { session, .. } = event {
                self.failed_printed.insert(session.clone());
            }
        }
        let session = session_of(event);
        let view = self
            .views
            .entry(session.to_string())
            .or_insert_with(|| TransferView::queued(session, ""));
        let before = view.bytes_done;
        view.apply(event);
        let done = view.bytes_done;
        match event {
            Event::SessionStarted { bytes_total, .. } => {
                let bar = self.multi.add(
                    ProgressBar::new(*bytes_total)
                        .with_style(self.style.clone())
                        .with_prefix(session.to_string()),
                );
                self.bars.insert(session.to_string(), bar);
            }
            Event::FileProgress { .. } | Event::FileDone { .. } => {
                self.all.inc(done.saturating_sub(before));
                if let Some(b) = self.bars.get(session) {
                    b.set_position(done);
                }
            }
            Event::Retrying { .. } => {
                self.retries += 1;
                if let Some(b) = self.bars.get(session) {
                    b.set_message(view.retries_text());
                }
            }
            Event::SessionDone { .. } => {
                if let Some(b) = self.bars.remove(session) {
                    b.finish_and_clear();
                }
            }
            Event::SessionFailed { .. } => {
                if let Some(b) = self.bars.remove(session) {
                    b.abandon();
                }
            }
            Event::SessionRefused { .. } | Event::FileVerified { .. } => {}
        }
    }

    /// Says how `session` ended (and why, when it did not upload), on stdout.
    pub fn ended(&mut self, session: &str, end: &SessionEnd, bytes_sent: u64) {
        if let Some(b) = self.bars.remove(session) {
            b.abandon();
        }
        let tried = self
            .views
            .get(session)
            .map(|v| v.retries_text())
            .filter(|t| !t.is_empty())
            .map(|t| format!(" ({t})"))
            .unwrap_or_default();
        if self.json {
            // The engine normally reported the failure itself; a failure it could not report
            // (e.g. before the session started) is reported here, so every reason is printed.
            if let SessionEnd::Failed { code, reason, .. } = end {
                if !self.failed_printed.contains(session) {
                    let line = serde_json::json!({"event": "session_failed", "session": session, "code": code, "reason": reason, "bytes_sent": bytes_sent});
                    println!("{line}");
                }
            }
            return;
        }
        let line = session_line(session, end, bytes_sent, &tried);
        self.multi.suspend(|| println!("{line}"));
    }

    /// Clears the bars; the number of retries seen.
    pub fn finish(self) -> u64 {
        self.all.finish_and_clear();
        self.retries
    }
}

fn session_of(event: &Event) -> &str {
    match event {
        Event::SessionStarted { session, .. }
        | Event::SessionRefused { session, .. }
        | Event::FileProgress { session, .. }
        | Event::FileDone { session, .. }
        | Event::Retrying { session, .. }
        | Event::FileVerified { session, .. }
        | Event::SessionDone { session, .. }
        | Event::SessionFailed { session, .. } => session,
    }
}

/// One session's outcome in words.
pub fn session_line(session: &str, end: &SessionEnd, bytes_sent: u64, tried: &str) -> String {
    match end {
        SessionEnd::Uploaded => format!(
            "{session}: uploaded ({} sent){tried}",
            human_bytes(bytes_sent)
        ),
        SessionEnd::AlreadyUploaded => format!("{session}: already uploaded{tried}"),
        SessionEnd::Waiting => {
            format!("{session}: waiting — still being written; a later run uploads it")
        }
        SessionEnd::Refused { findings } => format!(
            "{session}: refused by checks: {}; then run labpipe check again",
            findings.join("; ")
        ),
        SessionEnd::Failed { reason, .. } => format!("{session}: failed{tried}: {reason}"),
    }
}

/// The last line: counts by outcome, bytes and retries.
pub fn summary_line(s: &RunSummary) -> String {
    format!(
        "{}; sent {} of {} ({} resumed){}",
        s.counts_text(),
        human_bytes(s.bytes_sent),
        human_bytes(s.bytes_total),
        human_bytes(s.bytes_resumed),
        match s.retries {
            0 => String::new(),
            n => format!("; {}", retries_text(n, None)),
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_ending_reads_as_what_happened() {
        let failed = SessionEnd::Failed {
            code: "s3",
            reason: "s3 UploadPart failed for raw/s/a.bin after retries: NoSuchUpload".into(),
            stop: false,
        };
        let cases = [
            (SessionEnd::Uploaded, "", "s: uploaded (1.0 kB sent)"),
            (SessionEnd::AlreadyUploaded, "", "s: already uploaded"),
            (
                SessionEnd::Waiting,
                "",
                "s: waiting — still being written; a later run uploads it",
            ),
            (
                SessionEnd::Refused {
                    findings: vec!["metadata.txt:4: fatigue is missing".into()],
                },
                "",
                "s: refused by checks: metadata.txt:4: fatigue is missing; then run labpipe check again",
            ),
            (
                failed,
                " (2 retries)",
                "s: failed (2 retries): s3 UploadPart failed for raw/s/a.bin after retries: NoSuchUpload",
            ),
        ];
        for (end, tried, want) in cases {
            assert_eq!(session_line("s", &end, 1000, tried), want);
        }
    }

    #[test]
    fn the_summary_separates_refused_waiting_and_failed() {
        let s = RunSummary {
            sessions_uploaded: 1,
            sessions_refused: 16,
            sessions_waiting: 2,
            bytes_total: 2000,
            bytes_sent: 1000,
            retries: 3,
            ..RunSummary::default()
        };
        assert_eq!(
            summary_line(&s),
            "1 uploaded, 2 waiting (still being written), 16 refused by checks, 0 failed; sent 1.0 kB of 2.0 kB (0 B resumed); 3 retries"
        );
    }
}
