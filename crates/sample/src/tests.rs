//! Whole-run tests: what `generate` leaves on disk, checked the way LabPipe's own checks will
//! look at it.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use chrono::{Datelike, NaiveDateTime};
use filetime::FileTime;

use super::*;

const MB: u64 = 1_000_000;

fn opts(out: &Path, count: usize, size_bytes: u64, seed: u64, broken: bool) -> GenerateOptions {
    GenerateOptions {
        out: out.to_path_buf(),
        count,
        size_bytes,
        seed,
        broken,
        start: default_start(),
    }
}

fn run(opts: &GenerateOptions) -> Vec<GeneratedSession> {
    generate(opts, |_, _| {}).unwrap()
}

/// Every entry under `dir`, relative to it, with its bytes (`None` for folders and links).
fn tree(dir: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Option<Vec<u8>>>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            let meta = fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                out.insert(rel, None);
                walk(root, &path, out);
            } else if meta.is_file() {
                out.insert(rel, Some(fs::read(&path).unwrap()));
            } else {
                out.insert(rel, None);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn mtime(path: &Path) -> FileTime {
    FileTime::from_last_modification_time(&fs::symlink_metadata(path).unwrap())
}

fn parse_metadata(dir: &Path) -> BTreeMap<String, String> {
    let text = fs::read_to_string(dir.join(METADATA_FILE)).unwrap();
    let mut map = BTreeMap::new();
    for line in text.lines() {
        let (key, value) = line.split_once(':').expect("key: value line");
        let previous = map.insert(key.to_owned(), value.trim().to_owned());
        assert!(
            previous.is_none(),
            "duplicate key {key} in {}",
            dir.display()
        );
    }
    map
}

fn data_files(dir: &Path) -> Vec<(PathBuf, u64)> {
    tree(dir)
        .into_iter()
        .filter_map(|(rel, bytes)| {
            let is_data = rel.extension().is_some_and(|e| e == "bin");
            Some((rel, bytes?.len() as u64)).filter(|_| is_data)
        })
        .collect()
}

/// Checks a session the way LabPipe's checks would, failing on any defect.
fn assert_valid(session: &GeneratedSession) {
    let dir = &session.path;
    let at = NaiveDateTime::parse_from_str(&session.name, "%Y%m%d_%H%M%S").unwrap();
    assert_eq!(at, session.recorded_at);
    let meta = parse_metadata(dir);
    for key in REQUIRED_KEYS {
        assert!(!meta[key].is_empty(), "{key} empty in {}", session.name);
    }
    assert!(meta["subject_id"].starts_with('S'));
    let fatigue: f64 = meta["fatigue"].parse().unwrap();
    assert!((0.0..=10.0).contains(&fatigue));
    assert!(HARDWARE_MODELS.contains(&meta["hardware_model"].as_str()));
    let rate: u32 = meta["sample_rate_hz"].parse().unwrap();
    assert!(rate > 0);
    let channels: usize = meta["channels"].parse().unwrap();
    assert!(channels >= 1);
    let frame = channels * sample_format_bytes(&meta["sample_format"]).unwrap();
    let files = data_files(dir);
    assert!(files.len() >= 3, "{files:?}");
    for (rel, len) in &files {
        assert!(*len > 0, "{} is empty", rel.display());
        assert_eq!(
            len % frame as u64,
            0,
            "{} is not whole frames",
            rel.display()
        );
    }
    let time = FileTime::from_system_time(recording_system_time(at));
    for rel in tree(dir).keys() {
        assert_eq!(mtime(&dir.join(rel)), time, "{}", rel.display());
    }
    assert_eq!(mtime(dir), time);
}

#[test]
fn same_seed_same_bytes_and_times() {
    let (a, b, c) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let sa = run(&opts(a.path(), 3, MB, 11, true));
    let sb = run(&opts(b.path(), 3, MB, 11, true));
    let sc = run(&opts(c.path(), 3, MB, 12, true));
    let names = |s: &[GeneratedSession]| s.iter().map(|s| s.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(&sa), names(&sb));
    assert_ne!(names(&sa), names(&sc));
    let (ta, tb) = (tree(a.path()), tree(b.path()));
    assert_eq!(ta, tb);
    assert_ne!(ta, tree(c.path()));
    // Modification times too, except where they are deliberately "now".
    let fresh = sa
        .iter()
        .find(|s| s.kind == SampleKind::Broken(BrokenKind::StillBeingWritten))
        .unwrap();
    for rel in ta.keys().filter(|rel| !rel.starts_with(&fresh.name)) {
        assert_eq!(mtime(&a.path().join(rel)), mtime(&b.path().join(rel)));
    }
}

#[test]
fn good_sessions_do_not_depend_on_broken() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let plain = run(&opts(a.path(), 3, MB, 5, false));
    let with_broken = run(&opts(b.path(), 3, MB, 5, true));
    assert_eq!(plain.len(), 3);
    for (x, y) in plain.iter().zip(&with_broken) {
        assert_eq!(x.name, y.name);
        assert_eq!(tree(&x.path), tree(&y.path));
    }
}

#[test]
fn good_sessions_are_valid_and_frame_aligned() {
    let dir = tempfile::tempdir().unwrap();
    let sessions = run(&opts(dir.path(), 25, MB, 3, false));
    let mut formats = BTreeSet::new();
    let mut models = BTreeSet::new();
    for session in &sessions {
        assert_eq!(session.kind, SampleKind::Good);
        assert_valid(session);
        let meta = parse_metadata(&session.path);
        formats.insert(meta["sample_format"].clone());
        models.insert(meta["hardware_model"].clone());
    }
    assert_eq!(formats.len(), SAMPLE_FORMATS.len(), "{formats:?}");
    assert_eq!(models.len(), HARDWARE_MODELS.len(), "{models:?}");
    // Spread over several days, about ten a day.
    let days: BTreeSet<_> = sessions.iter().map(|s| s.recorded_at.date()).collect();
    assert!((2..=4).contains(&days.len()), "{days:?}");
    assert_eq!(sessions[0].recorded_at, default_start());
}

#[test]
fn total_size_is_close_to_requested() {
    let dir = tempfile::tempdir().unwrap();
    for (seed, size) in [
        (1, MB),
        (2, 2 * MB),
        (3, 3 * MB),
        (4, 5 * MB),
        (5, 1_234_567),
    ] {
        let out = dir.path().join(format!("seed{seed}"));
        for session in run(&opts(&out, 2, size, seed, false)) {
            let on_disk: u64 = tree(&session.path)
                .values()
                .flatten()
                .map(|b| b.len() as u64)
                .sum();
            assert_eq!(on_disk, session.bytes);
            let ratio = session.bytes as f64 / size as f64;
            assert!(
                (0.95..=1.05).contains(&ratio),
                "{size}: {} bytes",
                session.bytes
            );
        }
    }
}

#[test]
fn tiny_sizes_still_give_whole_nonempty_files() {
    let dir = tempfile::tempdir().unwrap();
    for session in run(&opts(dir.path(), 3, 0, 8, false)) {
        assert_valid(&session);
    }
}

#[test]
fn every_broken_kind_once_and_each_defect_present() {
    let dir = tempfile::tempdir().unwrap();
    let sessions = run(&opts(dir.path(), 2, MB, 21, true));
    let broken: Vec<(BrokenKind, &GeneratedSession)> = sessions
        .iter()
        .filter_map(|s| Some((s.kind.broken()?, s)))
        .collect();
    let expected: Vec<BrokenKind> = BrokenKind::ALL
        .into_iter()
        .filter(BrokenKind::is_supported)
        .collect();
    assert_eq!(broken.iter().map(|(k, _)| *k).collect::<Vec<_>>(), expected);
    let names: BTreeSet<_> = sessions.iter().map(|s| &s.name).collect();
    assert_eq!(names.len(), sessions.len(), "names are distinct");
    let ids: BTreeSet<_> = BrokenKind::ALL.iter().map(BrokenKind::id).collect();
    assert_eq!(ids.len(), BrokenKind::ALL.len());

    let parses = |name: &str| NaiveDateTime::parse_from_str(name, "%Y%m%d_%H%M%S").is_ok();
    let text = |s: &GeneratedSession| fs::read_to_string(s.path.join(METADATA_FILE)).unwrap();
    for (kind, session) in broken {
        assert!(!kind.describe().is_empty() && !kind.expected_check().is_empty());
        assert!(session.recorded_at.year() == 2021, "{}", session.name);
        let name_kind = kind.expected_check() == "session_id";
        assert_eq!(parses(&session.name), !name_kind, "{}", session.name);
        match kind {
            BrokenKind::BadCalendarDate => assert!(session.name.starts_with("20210229_")),
            BrokenKind::MonthOutOfRange => assert!(session.name.starts_with("202113")),
            BrokenKind::HourOutOfRange => assert_eq!(&session.name[9..11], "25"),
            BrokenKind::NameNotTimestamp => assert!(session.name.starts_with("session_")),
            BrokenKind::MissingMetadata => {
                assert!(!session.path.join(METADATA_FILE).exists());
                assert!(!data_files(&session.path).is_empty());
            }
            BrokenKind::GarbledMetadata => {
                let bytes = fs::read(session.path.join(METADATA_FILE)).unwrap();
                assert!(std::str::from_utf8(&bytes).is_err());
            }
            BrokenKind::NotANumber => assert!(text(session).contains("fatigue: high\n")),
            BrokenKind::DecimalComma => {
                let line = text(session)
                    .lines()
                    .find(|l| l.starts_with("fatigue:"))
                    .unwrap()
                    .to_owned();
                assert!(line.contains(',') && !line.contains('.'), "{line}");
            }
            BrokenKind::ValueOutOfRange => assert!(text(session).contains("fatigue: 14\n")),
            BrokenKind::MissingRequiredKey => assert!(!text(session).contains("hardware_model")),
            BrokenKind::DuplicateKey => {
                let t = text(session);
                let values: Vec<_> = t.lines().filter(|l| l.starts_with("fatigue:")).collect();
                assert_eq!(values.len(), 2);
                assert_ne!(values[0], values[1]);
            }
            BrokenKind::EmptyValue => assert!(text(session).contains("subject_id:\n")),
            BrokenKind::NoDataFiles => {
                assert!(data_files(&session.path).is_empty());
                assert_eq!(tree(&session.path).len(), 1);
            }
            BrokenKind::ZeroByteDataFile => {
                let files = data_files(&session.path);
                assert_eq!(files.iter().filter(|(_, len)| *len == 0).count(), 1);
            }
            BrokenKind::TruncatedDataFile => {
                let meta = parse_metadata(&session.path);
                let channels: u64 = meta["channels"].parse().unwrap();
                let frame = channels * sample_format_bytes(&meta["sample_format"]).unwrap() as u64;
                let ragged = data_files(&session.path)
                    .iter()
                    .filter(|(_, len)| !len.is_multiple_of(frame))
                    .count();
                assert_eq!(ragged, 1);
            }
            BrokenKind::StillBeingWritten => {
                let part = session.path.join("rec_003.bin.part");
                assert!(fs::metadata(&part).unwrap().len() > 0);
                let age = SystemTime::now()
                    .duration_since(fs::metadata(&part).unwrap().modified().unwrap());
                assert!(age.map_or(true, |age| age < Duration::from_secs(60)));
            }
            BrokenKind::SymlinkOutside => {
                let link = session.path.join("reference.bin");
                let target = fs::read_link(&link).unwrap();
                assert!(target.starts_with(".."), "{}", target.display());
                let resolved = fs::canonicalize(&link).unwrap();
                assert!(!resolved.starts_with(fs::canonicalize(&session.path).unwrap()));
                // Stamping the link must not have restamped the session it points to.
                assert_valid(&sessions[0]);
            }
        }
        if kind != BrokenKind::NoDataFiles {
            // Inside LabPipe's default size band (a quarter to four times the usual size), so
            // size is never a second defect.
            let data: u64 = data_files(&session.path).iter().map(|(_, len)| len).sum();
            assert!((MB / 3..=MB).contains(&data), "{kind}: {data} bytes");
        }
        if !matches!(kind, BrokenKind::StillBeingWritten) {
            let time = FileTime::from_system_time(recording_system_time(session.recorded_at));
            assert_eq!(mtime(&session.path), time, "{}", session.name);
            for rel in tree(&session.path).keys() {
                assert_eq!(mtime(&session.path.join(rel)), time, "{}", rel.display());
            }
        }
    }
}

#[test]
fn metadata_defects_are_the_only_defect() {
    // Each metadata-broken file, once its one problem is undone, satisfies the schema.
    let dir = tempfile::tempdir().unwrap();
    for session in run(&opts(dir.path(), 0, MB / 2, 4, true)) {
        let Some(kind) = session.kind.broken() else {
            continue;
        };
        if kind.expected_check() != "metadata" || kind == BrokenKind::MissingMetadata {
            continue;
        }
        let bytes = fs::read(session.path.join(METADATA_FILE)).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        let mut keys = BTreeSet::new();
        for line in text.lines() {
            let (key, _) = line.split_once(':').unwrap();
            keys.insert(key);
        }
        let missing: Vec<_> = REQUIRED_KEYS
            .iter()
            .filter(|k| !keys.contains(*k))
            .collect();
        if kind == BrokenKind::MissingRequiredKey {
            assert_eq!(missing, [&"hardware_model"]);
        } else {
            assert!(missing.is_empty(), "{kind}: {missing:?}");
        }
    }
}

#[test]
fn progress_counts_every_byte() {
    let dir = tempfile::tempdir().unwrap();
    let mut calls = Vec::new();
    let sessions = generate(&opts(dir.path(), 2, 3 * MB, 6, true), |done, total| {
        calls.push((done, total))
    })
    .unwrap();
    let total: u64 = sessions.iter().map(|s| s.bytes).sum();
    assert!(calls.windows(2).all(|w| w[0].0 <= w[1].0));
    assert!(calls.iter().all(|&(_, t)| t == total));
    assert_eq!(calls.last().unwrap().0, total);
}

#[test]
fn never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let first = run(&opts(dir.path(), 2, MB / 4, 1, false));
    let before = tree(dir.path());
    let err = generate(&opts(dir.path(), 3, MB / 4, 1, false), |_, _| {}).unwrap_err();
    assert!(
        matches!(&err, SampleError::AlreadyExists(p) if *p == first[0].path),
        "{err}"
    );
    assert_eq!(tree(dir.path()), before, "nothing written");
}

#[test]
fn creates_missing_output_folder() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("a").join("b");
    assert_eq!(run(&opts(&out, 1, MB / 4, 1, false)).len(), 1);
}

#[test]
fn schedule_past_year_9999_is_an_error_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(&dir.path().join("lab"), 1000, MB / 4, 1, false);
    o.start = NaiveDateTime::parse_from_str("99991220_090000", "%Y%m%d_%H%M%S").unwrap();
    let err = generate(&o, |_, _| {}).unwrap_err();
    assert!(matches!(err, SampleError::TimeOutOfRange(_)), "{err}");
    assert!(!dir.path().join("lab").exists());
}

/// Whether Windows refuses `name` as a file or folder name: its device names (`CON`, `PRN`,
/// `AUX`, `NUL`, `COM1`–`COM9`, `LPT1`–`LPT9`, also with an extension), names ending in a dot or
/// a space, and the characters `<>:"/\|?*`.
fn reserved_on_windows(name: &str) -> bool {
    let stem = name.split('.').next().unwrap_or(name).to_ascii_uppercase();
    let device = matches!(stem.as_str(), "CON" | "PRN" | "AUX" | "NUL")
        || ((stem.starts_with("COM") || stem.starts_with("LPT"))
            && stem.len() == 4
            && stem.as_bytes()[3].is_ascii_digit()
            && stem.as_bytes()[3] != b'0');
    device || name.ends_with(['.', ' ']) || name.contains(['<', '>', ':', '"', '|', '?', '*', '\\'])
}

/// A sample lab is the kind a lab PC writes, and most lab PCs run Windows: every name the
/// generator writes must be one Windows can hold (it once wrote `aux/`, which Windows cannot).
#[test]
fn every_name_is_valid_on_windows() {
    assert!(reserved_on_windows("aux") && reserved_on_windows("Com3.log"));
    assert!(!reserved_on_windows("auxiliary") && !reserved_on_windows("com10"));
    let dir = tempfile::tempdir().unwrap();
    run(&opts(dir.path(), 3, MB / 10, 5, true));
    let bad: Vec<_> = tree(dir.path())
        .into_keys()
        .filter(|rel| {
            rel.components()
                .any(|c| reserved_on_windows(&c.as_os_str().to_string_lossy()))
        })
        .collect();
    assert!(bad.is_empty(), "names Windows refuses: {bad:?}");
}
