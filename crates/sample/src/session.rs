//! Planning and writing session folders.
//!
//! Every session is planned in full — name, setup, metadata bytes, file sizes — before any
//! byte is written, so the progress total is exact and an existing folder stops the run
//! before it has touched anything. Each session draws from its own ChaCha stream (stream
//! number = its slot in the schedule), so sessions do not depend on each other and the good
//! ones stay identical whether or not broken examples are added.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::NaiveDateTime;
use filetime::FileTime;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::metadata::{self, Setup, METADATA_FILE};
use crate::schedule;
use crate::signal::{Events, Signal};
use crate::{
    recording_system_time, BrokenKind, GenerateOptions, GeneratedSession, SampleError, SampleKind,
    BROKEN_SIZE_DIVISOR,
};

/// Target size of one write: large enough that syscalls cost nothing, small enough to stay
/// in cache-friendly memory and give a smooth progress bar.
const CHUNK_BYTES: usize = 4 << 20;

#[derive(Debug)]
struct Plan {
    name: String,
    recorded_at: NaiveDateTime,
    kind: SampleKind,
    setup: Setup,
    metadata: Option<Vec<u8>>,
    files: Vec<FilePlan>,
    /// Link path inside the folder and its target, relative to the link.
    symlink: Option<(PathBuf, PathBuf)>,
    /// Rng for the sample generators, positioned after all planning draws.
    rng: ChaCha8Rng,
}

#[derive(Debug)]
struct FilePlan {
    rel: PathBuf,
    source: Source,
    bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Signal,
    Events,
}

impl Plan {
    fn bytes(&self) -> u64 {
        // Saturating: absurd sizes must fail on a full disk, not overflow here.
        let metadata = self.metadata.as_ref().map_or(0, |m| m.len() as u64);
        self.files
            .iter()
            .fold(metadata, |sum, f| sum.saturating_add(f.bytes))
    }
}

pub(crate) fn generate(
    opts: &GenerateOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Vec<GeneratedSession>, SampleError> {
    let plans = plan(opts)?;
    for plan in &plans {
        let path = opts.out.join(&plan.name);
        if fs::symlink_metadata(&path).is_ok() {
            return Err(SampleError::AlreadyExists(path));
        }
    }
    fs::create_dir_all(&opts.out).map_err(SampleError::io(&opts.out))?;
    let mut progress = Progress {
        done: 0,
        total: plans.iter().fold(0, |sum, p| sum.saturating_add(p.bytes())),
        report: progress,
    };
    let mut buf = Vec::new();
    let mut sessions = Vec::with_capacity(plans.len());
    for plan in plans {
        sessions.push(write_session(&opts.out, plan, &mut buf, &mut progress)?);
    }
    Ok(sessions)
}

struct Progress<'a> {
    done: u64,
    total: u64,
    report: &'a mut dyn FnMut(u64, u64),
}

impl Progress<'_> {
    fn add(&mut self, bytes: u64) {
        self.done = self.done.saturating_add(bytes);
        (self.report)(self.done, self.total);
    }
}

fn session_rng(seed: u64, slot: usize) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // Stream 0 is the schedule.
    rng.set_stream(slot as u64 + 1);
    rng
}

fn plan(opts: &GenerateOptions) -> Result<Vec<Plan>, SampleError> {
    let broken: Vec<BrokenKind> = if opts.broken {
        BrokenKind::ALL
            .into_iter()
            .filter(BrokenKind::is_supported)
            .collect()
    } else {
        Vec::new()
    };
    let times = schedule::recording_times(
        opts.start,
        &mut ChaCha8Rng::seed_from_u64(opts.seed),
        opts.count.saturating_add(broken.len()),
    )?;
    let good = (0..opts.count).map(|slot| (slot, SampleKind::Good));
    let bad = broken
        .iter()
        .enumerate()
        .map(|(i, kind)| (opts.count + i, SampleKind::Broken(*kind)));
    let mut plans: Vec<Plan> = good
        .chain(bad)
        .map(|(slot, kind)| plan_session(opts, times[slot], session_rng(opts.seed, slot), kind))
        .collect::<Result<_, _>>()?;
    // The link needs a sibling with data to point at: the first good session, or failing
    // that the broken session that has data but no metadata.
    let target = plans
        .iter()
        .find(|p| {
            matches!(
                p.kind,
                SampleKind::Good | SampleKind::Broken(BrokenKind::MissingMetadata)
            )
        })
        .map(|p| Path::new("..").join(&p.name).join(&p.files[0].rel));
    for plan in &mut plans {
        if plan.kind == SampleKind::Broken(BrokenKind::SymlinkOutside) {
            let target = target
                .clone()
                .expect("the missing-metadata session is planned");
            plan.symlink = Some((PathBuf::from("reference.bin"), target));
        }
    }
    Ok(plans)
}

fn plan_session(
    opts: &GenerateOptions,
    recorded_at: NaiveDateTime,
    mut rng: ChaCha8Rng,
    kind: SampleKind,
) -> Result<Plan, SampleError> {
    let setup = Setup::random(&mut rng);
    let mut entries = metadata::random_entries(&mut rng, &setup);
    let data_bytes = match kind {
        SampleKind::Good => opts.size_bytes,
        SampleKind::Broken(_) => opts.size_bytes / BROKEN_SIZE_DIVISOR,
    };
    let rec_files = match kind {
        // Acquisition was interrupted while writing the fourth file.
        SampleKind::Broken(BrokenKind::StillBeingWritten) => 4,
        _ => rng.gen_range(3..=6),
    };
    let with_events =
        rng.gen_bool(0.5) && kind != SampleKind::Broken(BrokenKind::StillBeingWritten);
    let mut files = plan_files(&mut rng, &setup, data_bytes, rec_files, with_events);
    let frame = setup.frame_bytes() as u64;

    let name = match kind.broken() {
        Some(BrokenKind::BadCalendarDate) => schedule::bad_calendar_date_name(recorded_at),
        Some(BrokenKind::MonthOutOfRange) => schedule::month_13_name(recorded_at),
        Some(BrokenKind::HourOutOfRange) => schedule::hour_25_name(recorded_at),
        Some(BrokenKind::NameNotTimestamp) => schedule::free_text_name(recorded_at),
        _ => schedule::folder_name(recorded_at),
    };
    let fatigue = entries
        .iter()
        .find(|(k, _)| k == "fatigue")
        .map(|(_, v)| v.clone())
        .expect("the schema has fatigue");
    let set = |entries: &mut Vec<(String, String)>, key: &str, value: String| {
        for entry in entries.iter_mut().filter(|(k, _)| k == key) {
            entry.1 = value.clone();
        }
    };
    let mut latin1_operator = false;
    match kind.broken() {
        Some(BrokenKind::GarbledMetadata) => {
            entries.retain(|(k, _)| k != "operator");
            latin1_operator = true;
        }
        Some(BrokenKind::NotANumber) => set(&mut entries, "fatigue", "high".to_owned()),
        Some(BrokenKind::DecimalComma) => set(&mut entries, "fatigue", fatigue.replace('.', ",")),
        Some(BrokenKind::ValueOutOfRange) => set(&mut entries, "fatigue", "14".to_owned()),
        Some(BrokenKind::MissingRequiredKey) => entries.retain(|(k, _)| k != "hardware_model"),
        Some(BrokenKind::DuplicateKey) => {
            // Someone appended a corrected value instead of editing the first one.
            let value: f64 = fatigue.parse().expect("generated fatigue is a number");
            let other = if value < 9.0 {
                value + 1.0
            } else {
                value - 1.0
            };
            entries.push(("fatigue".to_owned(), format!("{other:.1}")));
        }
        Some(BrokenKind::EmptyValue) => set(&mut entries, "subject_id", String::new()),
        Some(BrokenKind::NoDataFiles) => files.clear(),
        Some(BrokenKind::ZeroByteDataFile) => {
            // An extra file, so the session keeps its usual size.
            files.insert(
                rec_files,
                FilePlan {
                    rel: PathBuf::from(format!("rec_{rec_files:03}.bin")),
                    source: Source::Signal,
                    bytes: 0,
                },
            );
        }
        Some(BrokenKind::TruncatedDataFile) => {
            let last = files
                .iter_mut()
                .rfind(|f| f.source == Source::Signal)
                .expect("sessions have recording files");
            last.bytes -= rng.gen_range(1..frame);
        }
        Some(BrokenKind::StillBeingWritten) => {
            let last = files.last_mut().expect("sessions have recording files");
            last.rel.set_extension("bin.part");
            // Whole frames, so the only defect is the unfinished write.
            last.bytes = (last.bytes / frame).div_ceil(2) * frame;
        }
        _ => {}
    }
    let mut metadata = metadata::render(&entries)?;
    if latin1_operator {
        // Saved by an editor using Latin-1: "ü" is the single byte 0xFC.
        metadata.extend_from_slice(b"operator: J. M\xFCller\n");
    }
    Ok(Plan {
        name,
        recorded_at,
        kind,
        setup,
        metadata: (kind != SampleKind::Broken(BrokenKind::MissingMetadata)).then_some(metadata),
        files,
        symlink: None,
        rng,
    })
}

/// Splits about `data_bytes` into `rec_files` recording files and maybe a small events file.
/// The acquisition software rolls over to a new file at a fixed length, so all recording
/// files but the last have the same size and the last is shorter; every file holds at least
/// one frame.
fn plan_files(
    rng: &mut ChaCha8Rng,
    setup: &Setup,
    data_bytes: u64,
    rec_files: usize,
    with_events: bool,
) -> Vec<FilePlan> {
    let frame = setup.frame_bytes() as u64;
    let n = rec_files as u64;
    let total = (data_bytes / frame).max(n + u64::from(with_events));
    let events = if with_events { (total / 200).max(1) } else { 0 };
    let spare = total - events - n;
    // Weights in percent of a full file: n - 1 full files and a shorter last one.
    let last_weight = rng.gen_range(20..=100u64);
    let weight_sum = 100 * (n - 1) + last_weight;
    let full = 1 + (u128::from(spare) * 100 / u128::from(weight_sum)) as u64;
    let mut files: Vec<FilePlan> = (0..rec_files)
        .map(|i| FilePlan {
            rel: PathBuf::from(format!("rec_{i:03}.bin")),
            source: Source::Signal,
            bytes: full * frame,
        })
        .collect();
    let last = total - events - full * (n - 1);
    files[rec_files - 1].bytes = last * frame;
    if with_events {
        files.push(FilePlan {
            // Not `aux`: AUX (like CON, NUL, COM1) is a device name on Windows, where no folder
            // can have it, so a lab PC there could never have written such a session.
            rel: Path::new("auxiliary").join("events.bin"),
            source: Source::Events,
            bytes: events * frame,
        });
    }
    files
}

fn write_session(
    out: &Path,
    mut plan: Plan,
    buf: &mut Vec<u8>,
    progress: &mut Progress<'_>,
) -> Result<GeneratedSession, SampleError> {
    let dir = out.join(&plan.name);
    fs::create_dir(&dir).map_err(SampleError::io(&dir))?;
    let mut stamped: Vec<PathBuf> = Vec::new();
    if let Some(metadata) = &plan.metadata {
        let path = dir.join(METADATA_FILE);
        fs::write(&path, metadata).map_err(SampleError::io(&path))?;
        progress.add(metadata.len() as u64);
        stamped.push(path);
    }
    let mut signal = Signal::new(&plan.setup, &mut plan.rng);
    let mut events = Events::new(&plan.setup, &mut plan.rng);
    let frame = signal.frame_bytes();
    let chunk = (CHUNK_BYTES / frame).max(1) * frame;
    buf.resize(chunk, 0);
    let mut subdirs: Vec<PathBuf> = Vec::new();
    for file in &plan.files {
        let path = dir.join(&file.rel);
        if let Some(parent) = path.parent().filter(|p| *p != dir) {
            if !subdirs.iter().any(|d| d == parent) {
                fs::create_dir_all(parent).map_err(SampleError::io(parent))?;
                subdirs.push(parent.to_path_buf());
            }
        }
        let mut handle = File::create(&path).map_err(SampleError::io(&path))?;
        let mut left = file.bytes;
        while left > 0 {
            let n = left.min(chunk as u64) as usize;
            // Generate whole frames and write only what is needed, which truncates mid-frame
            // when a plan asks for it.
            let piece = &mut buf[..n.div_ceil(frame) * frame];
            match file.source {
                Source::Signal => signal.fill(piece),
                Source::Events => events.fill(piece),
            }
            handle
                .write_all(&piece[..n])
                .map_err(SampleError::io(&path))?;
            left -= n as u64;
            progress.add(n as u64);
        }
        drop(handle);
        stamped.push(path);
    }
    if let Some((link, target)) = &plan.symlink {
        make_symlink(target, &dir.join(link))?;
    }
    let fresh = plan.kind == SampleKind::Broken(BrokenKind::StillBeingWritten);
    if !fresh {
        let time = FileTime::from_system_time(recording_system_time(plan.recorded_at));
        if let Some((link, _)) = &plan.symlink {
            // Stamp the link itself; following it would restamp the sibling it points to.
            let path = dir.join(link);
            filetime::set_symlink_file_times(&path, time, time).map_err(SampleError::io(&path))?;
        }
        // Files first, then folders from the inside out: creating an entry touches its folder.
        subdirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for path in stamped.iter().chain(&subdirs).chain([&dir]) {
            filetime::set_file_times(path, time, time).map_err(SampleError::io(path))?;
        }
    }
    Ok(GeneratedSession {
        bytes: plan.bytes(),
        name: plan.name,
        path: dir,
        kind: plan.kind,
        recorded_at: plan.recorded_at,
    })
}

#[cfg(unix)]
fn make_symlink(target: &Path, link: &Path) -> Result<(), SampleError> {
    std::os::unix::fs::symlink(target, link).map_err(SampleError::io(link))
}

#[cfg(not(unix))]
fn make_symlink(_target: &Path, _link: &Path) -> Result<(), SampleError> {
    unreachable!("symlink sessions are only planned on unix")
}
