//! Realistic demo catalogs: the one generator of finished sessions that the app's end-to-end
//! tests, its benchmark and the demo's `seed-catalog` tool all write, so they all show the same
//! kind of catalog and a change to it is made once.
//!
//! Session `i` is a pure function of `i` (no clock, no random state), so the first `n` sessions
//! are the same whatever the count, runs are reproducible, and a test can compute what the app
//! must show. The shape follows the lab: about ten recordings a day from the morning into the
//! evening, amplifiers with the channel counts, rates and sample formats they really offer,
//! most sessions processed (some twice, after a pipeline update), a few failed and a few waiting.
//! Records are complete (status, history, outputs) and go in with
//! [`Catalog::import_sessions`], which takes seconds where replaying the pipeline's status
//! changes took minutes.

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, Utc};
use labpipe_catalog::{
    Catalog, CatalogError, Event, ImportSummary, Level, OutputFile, OutputRecord, SessionItem,
    SessionRecord, Status,
};
use labpipe_core::MetaValue;

/// The reason most failed sessions give (the app's tests look for it in the detail pane).
pub const FLAT_CHANNEL: &str =
    "channel 3 is flat for the whole recording; check the electrode and re-run";
/// The reason the other failed sessions give.
pub const TRUNCATED_FILE: &str = "data_002.bin ends mid-frame (12 bytes short); the raw upload is intact — re-record or ask the operator to re-run with --allow-truncated";

/// Bucket named in the sessions' raw prefixes.
pub const RAW_BUCKET: &str = "labpipe-raw";
/// Bucket named in the output records.
pub const PROCESSED_BUCKET: &str = "labpipe-processed";

/// Recordings per day.
const PER_DAY: usize = 10;
/// Minutes between a day's recording slots, from 08:00.
const SLOT_MINUTES: i64 = 72;
/// Out of every 50 consecutive sessions: this many failed, then this many waiting, then this
/// many processed with two pipeline versions; the rest processed once.
const FAILED_PER_50: usize = 3;
const WAITING_PER_50: usize = 3;
const REPROCESSED_PER_50: usize = 5;
/// Files of each processed output.
const OUTPUT_FILES: [&str; 3] = ["features.parquet", "spectrum.parquet", "qc.json"];

/// Amplifiers, as the lab owns them (X200s the most), and what each one records.
#[derive(Clone, Copy)]
struct Amplifier {
    model: &'static str,
    channels: u32,
    rates_hz: &'static [u32],
    formats: &'static [&'static str],
}

const AMPLIFIERS: [Amplifier; 4] = [
    Amplifier {
        model: "X200",
        channels: 64,
        rates_hz: &[1000, 2000],
        formats: &["int16", "int32"],
    },
    Amplifier {
        model: "X200",
        channels: 64,
        rates_hz: &[1000, 2000],
        formats: &["int16", "int32"],
    },
    Amplifier {
        model: "X100",
        channels: 32,
        rates_hz: &[1000],
        formats: &["int16"],
    },
    Amplifier {
        model: "Q8",
        channels: 8,
        rates_hz: &[500, 1000],
        formats: &["float32"],
    },
];

const OPERATORS: [&str; 3] = ["ana", "ben", "chen"];

/// A deterministic number in `0..1` for session `i` and purpose `k`.
fn unit(i: usize, k: u64) -> f64 {
    let mut x =
        (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ k.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 31;
    x = x.wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 29;
    (x % 1_000_000) as f64 / 1_000_000.0
}

/// A deterministic pick from `options` for session `i` and purpose `k`.
fn pick<T: Copy>(i: usize, k: u64, options: &[T]) -> T {
    options[(unit(i, k) * options.len() as f64) as usize % options.len()]
}

/// What happened to a session in the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Failed,
    Waiting,
    Reprocessed,
    Processed,
}

fn outcome(i: usize) -> Outcome {
    // 23 is coprime to 50, so every block of 50 sessions holds each outcome in the same
    // numbers, spread over the block.
    let slot = (i * 23) % 50;
    if slot < FAILED_PER_50 {
        Outcome::Failed
    } else if slot < FAILED_PER_50 + WAITING_PER_50 {
        Outcome::Waiting
    } else if slot < FAILED_PER_50 + WAITING_PER_50 + REPROCESSED_PER_50 {
        Outcome::Reprocessed
    } else {
        Outcome::Processed
    }
}

/// When session `i` was recorded (lab clock): ten a day from 08:00, up to 30 minutes late.
pub fn recorded_at(i: usize) -> NaiveDateTime {
    let first_day = NaiveDate::from_ymd_opt(2021, 1, 4)
        .expect("valid date")
        .and_hms_opt(8, 0, 0)
        .expect("valid time");
    let day = (i / PER_DAY) as i64;
    let slot = (i % PER_DAY) as i64;
    first_day
        + Duration::days(day)
        + Duration::minutes(slot * SLOT_MINUTES)
        + Duration::seconds((unit(i, 1) * 1800.0) as i64)
}

/// Builds a session's history one event at a time, each after the previous one.
struct History {
    session: String,
    at: DateTime<Utc>,
    events: Vec<Event>,
    status: Option<Status>,
}

impl History {
    fn after(&mut self, seconds: i64, status: Option<Status>, level: Level, message: String) {
        self.at += Duration::seconds(seconds);
        let step = match status {
            Some(Status::Cataloged) if self.status.is_none() => "ingest",
            _ => "preprocess",
        };
        self.events.push(Event {
            at: self.at,
            seq: self.events.len() as u64 + 1,
            status,
            from: status.and(self.status),
            step: step.into(),
            level,
            message,
        });
        if status.is_some() {
            self.status = status;
        }
    }

    fn status(&mut self, seconds: i64, status: Status, message: String) {
        let level = if status == Status::Failed {
            Level::Error
        } else {
            Level::Info
        };
        self.after(seconds, Some(status), level, message);
    }

    fn output(&self, i: usize, version: u32) -> OutputRecord {
        let session = &self.session;
        OutputRecord {
            version,
            revision: 1,
            bucket: PROCESSED_BUCKET.into(),
            prefix: labpipe_core::layout::processed_prefix(version, session, 1),
            files: OUTPUT_FILES
                .iter()
                .enumerate()
                .map(|(n, file)| OutputFile {
                    key: labpipe_core::layout::processed_key(version, session, 1, file),
                    size: 200_000 + (unit(i, 20 + n as u64) * 4e6) as u64,
                    sha256: format!(
                        "{:064x}",
                        (i as u128 + 1) * 7_919 + n as u128 * 31 + version as u128
                    ),
                })
                .collect(),
            created_at: self.at,
        }
    }
}

/// Demo session `i`: its catalog entry, history and outputs.
pub fn demo_session(i: usize) -> SessionRecord {
    let recorded = recorded_at(i);
    let session = recorded.format("%Y%m%d_%H%M%S").to_string();
    let amp = pick(i, 2, &AMPLIFIERS);
    let rate = pick(i, 3, amp.rates_hz);
    let format = pick(i, 4, amp.formats);
    let bytes_per_sample = if format == "int16" { 2 } else { 4 };
    let minutes = 20 + (unit(i, 5) * 25.0) as u64;
    let data_bytes = u64::from(amp.channels) * u64::from(rate) * bytes_per_sample * minutes * 60;

    let mut item = SessionItem::placeholder(&session, recorded, Status::Cataloged, Utc::now());
    item.manifest_sha256 = Some(format!("{:064x}", (i as u128 + 1) * 2_654_435_761));
    item.raw_prefix = Some(format!(
        "s3://{RAW_BUCKET}/{}",
        labpipe_core::layout::raw_session_prefix(&session)
    ));
    item.total_bytes = data_bytes + 512;
    item.file_count = 5;
    let m = &mut item.metadata;
    // Self-reported 0–10, most often in the middle.
    let fatigue = (unit(i, 6) + unit(i, 7) + unit(i, 8)) / 3.0 * 10.0;
    m.insert("fatigue".into(), MetaValue::Number(fatigue.round()));
    m.insert("hardware_model".into(), MetaValue::Text(amp.model.into()));
    m.insert(
        "subject_id".into(),
        MetaValue::Text(format!("S{:03}", (unit(i, 9) * 48.0) as usize + 1)),
    );
    m.insert("sample_rate_hz".into(), MetaValue::Number(rate.into()));
    m.insert("channels".into(), MetaValue::Number(amp.channels.into()));
    m.insert("sample_format".into(), MetaValue::Text(format.into()));
    m.insert(
        "operator".into(),
        MetaValue::Text(OPERATORS[(i / PER_DAY) % OPERATORS.len()].into()),
    );
    m.insert(
        "electrode_impedance_kohm".into(),
        MetaValue::Number((unit(i, 10) * 200.0).round() / 10.0),
    );

    // Uploaded when the recording ends, cataloged a few minutes later.
    let mut history = History {
        session: session.clone(),
        at: recorded.and_utc() + Duration::minutes(minutes as i64 + 4),
        events: Vec::new(),
        status: None,
    };
    history.status(
        (unit(i, 11) * 300.0) as i64,
        Status::Cataloged,
        format!(
            "5 files ({} bytes) verified against the manifest",
            item.total_bytes
        ),
    );
    let mut outputs = Vec::new();
    let run = |history: &mut History, outputs: &mut Vec<OutputRecord>, version: u32| {
        history.status(
            2 + (unit(i, 12) * 20.0) as i64,
            Status::Processing,
            format!("pipeline v{version} started"),
        );
        history.at += Duration::seconds(60 + (unit(i, 13) * 180.0) as i64);
        outputs.push(history.output(i, version));
        history.status(
            1,
            Status::Processed,
            format!("pipeline v{version} wrote {} files", OUTPUT_FILES.len()),
        );
    };
    match outcome(i) {
        Outcome::Waiting => {}
        Outcome::Failed => {
            history.status(3, Status::Processing, "pipeline v1 started".to_string());
            // One block of 50 in three had the file problem, the others the flat channel.
            let reason = if (i / 50) % 3 == 2 {
                TRUNCATED_FILE
            } else {
                FLAT_CHANNEL
            };
            history.status(40, Status::Failed, reason.to_string());
        }
        Outcome::Processed => {
            if unit(i, 14) < 0.03 {
                history.after(
                    1,
                    None,
                    Level::Warning,
                    "the claim was throttled (ThrottlingException); the message will be retried"
                        .into(),
                );
            }
            run(&mut history, &mut outputs, 1);
        }
        Outcome::Reprocessed => {
            run(&mut history, &mut outputs, 1);
            // Pipeline v2 went out some weeks later and re-ran the older sessions.
            history.at += Duration::days(20 + (unit(i, 15) * 40.0) as i64);
            run(&mut history, &mut outputs, 2);
        }
    }
    let status = history.status.expect("every session is cataloged");
    let last = history.events.last().expect("a history");
    item.status = status;
    item.status_step = Some(last.step.clone());
    item.status_message = Some(last.message.clone());
    item.updated_at = last.at;
    item.event_count = history.events.len() as u64;
    item.pipeline_version = outputs.last().map(|o| o.version);
    SessionRecord {
        item,
        events: history.events,
        outputs,
    }
}

/// The first `count` demo sessions, oldest first.
pub fn demo_sessions(count: usize) -> Vec<SessionRecord> {
    (0..count).map(demo_session).collect()
}

/// Imports the first `count` demo sessions into `catalog`.
pub async fn seed_demo_catalog(
    catalog: &Catalog,
    count: usize,
) -> Result<ImportSummary, CatalogError> {
    catalog.import_sessions(&demo_sessions(count)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_unique_increasing_and_the_same_whatever_the_count() {
        let many = demo_sessions(2_000);
        for pair in many.windows(2) {
            assert!(
                pair[0].item.session < pair[1].item.session,
                "{} then {}",
                pair[0].item.session,
                pair[1].item.session
            );
        }
        assert_eq!(demo_sessions(30)[..], many[..30]);
        assert!(many[0].item.session.starts_with("20210104_08"));
        let days = (many[1_999].item.recorded_at - many[0].item.recorded_at).num_days();
        assert_eq!(days, 199, "ten sessions a day");
    }

    #[test]
    fn every_block_of_fifty_mixes_the_outcomes() {
        for block in demo_sessions(200).chunks(50) {
            let count = |s: Status| block.iter().filter(|r| r.item.status == s).count();
            assert_eq!(count(Status::Failed), FAILED_PER_50);
            assert_eq!(count(Status::Cataloged), WAITING_PER_50);
            assert_eq!(
                count(Status::Processed),
                50 - FAILED_PER_50 - WAITING_PER_50
            );
            let twice = block.iter().filter(|r| r.outputs.len() == 2).count();
            assert_eq!(twice, REPROCESSED_PER_50);
        }
    }

    #[test]
    fn records_are_consistent_as_the_pipeline_would_leave_them() {
        let mut reasons = std::collections::BTreeSet::new();
        for r in demo_sessions(500) {
            let item = &r.item;
            let last = r.events.last().unwrap();
            assert_eq!(last.status, Some(item.status), "{}", item.session);
            assert_eq!(item.event_count, r.events.len() as u64);
            assert_eq!(item.pipeline_version, r.outputs.last().map(|o| o.version));
            assert!(r
                .events
                .windows(2)
                .all(|w| w[0].at < w[1].at && w[0].seq < w[1].seq));
            let fatigue = item.metadata["fatigue"].as_number().unwrap();
            assert!((0.0..=10.0).contains(&fatigue));
            if item.status == Status::Failed {
                let message = item.status_message.as_deref().unwrap();
                assert!([FLAT_CHANNEL, TRUNCATED_FILE].contains(&message));
                assert_eq!(last.level, Level::Error);
                reasons.insert(message.to_string());
            }
        }
        assert_eq!(reasons.len(), 2, "both failure reasons occur");
    }
}
