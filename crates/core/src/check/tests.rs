//! Table tests of every check over synthetic listings (no filesystem, fixed clocks).

use super::*;
use crate::scan::Entry;
use chrono::NaiveDate;

const GOOD_META: &str = "subject_id: S017\nfatigue: 3.5\nhardware_model: X200\nsample_rate_hz: 1000\nchannels: 8\nsample_format: int16\n";
const MB: u64 = 1_000_000;

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

/// A listing whose files were all last modified `age` seconds before [`now`].
fn listing(name: &str, files: &[(&str, u64, u64)]) -> SessionListing {
    let entries = files
        .iter()
        .map(|&(path, size, age)| {
            let file = path.rsplit('/').next().unwrap();
            let kind = crate::scan::classify(file, !path.contains('/'), "metadata.txt");
            Entry {
                path: path.into(),
                kind,
                size,
                modified: now() - Duration::from_secs(age),
            }
        })
        .collect();
    SessionListing {
        name: name.into(),
        path: name.into(),
        entries,
        unreadable: vec![],
    }
}

fn run(listing: &SessionListing, meta: Option<&str>) -> SessionReport {
    let schema = LabSchema::default();
    check_session(CheckInput {
        listing,
        metadata_bytes: meta.map(|m| Ok(m.as_bytes().to_vec())),
        schema: &schema,
        now_local: NaiveDate::from_ymd_opt(2023, 11, 14)
            .unwrap()
            .and_hms_opt(22, 0, 0)
            .unwrap(),
        now: now(),
    })
}

/// A good 600 MB session: two data files of whole 16-byte frames.
fn good_files() -> Vec<(&'static str, u64, u64)> {
    vec![
        ("metadata.txt", 120, 3600),
        ("rec_000.bin", 300 * MB, 3600),
        ("rec_001.bin", 300 * MB, 3600),
    ]
}

/// `check(name, files, metadata, expected verdict, expected (check, message fragment) of the first
/// error/warning)`.
fn check(
    name: &str,
    files: &[(&str, u64, u64)],
    meta: Option<&str>,
    verdict: Verdict,
    want: Option<(&str, &str)>,
) {
    let report = run(&listing(name, files), meta);
    assert_eq!(report.verdict, verdict, "{name}: {:#?}", report.findings);
    if let Some((check, fragment)) = want {
        let hit = report.findings.iter().find(|f| {
            f.check == check && f.severity > Severity::Info && f.message.contains(fragment)
        });
        assert!(
            hit.is_some(),
            "{name}: no {check} finding with {fragment:?} in {:#?}",
            report.findings
        );
    } else {
        assert!(
            report.findings.iter().all(|f| f.severity == Severity::Info),
            "{name}: {:#?}",
            report.findings
        );
    }
}

#[test]
fn good_session_passes() {
    check(
        "20210301_161221",
        &good_files(),
        Some(GOOD_META),
        Verdict::Pass,
        None,
    );
    let r = run(&listing("20210301_161221", &good_files()), Some(GOOD_META));
    assert_eq!(r.total_bytes, 600 * MB + 120);
    assert_eq!(r.files.len(), 3);
    assert_eq!(r.recorded_at.unwrap().to_string(), "2021-03-01 16:12:21");
}

#[test]
fn litter_and_nested_folders_pass() {
    let mut files = good_files();
    files.push((".DS_Store", 6148, 10));
    files.push(("auxiliary/Thumbs.db", 10, 10));
    files.push(("auxiliary/events.bin", 1600, 3600));
    check(
        "20210301_161221",
        &files,
        Some(GOOD_META),
        Verdict::Pass,
        None,
    );
    let r = run(&listing("20210301_161221", &files), Some(GOOD_META));
    assert_eq!(r.findings.len(), 2, "two info findings for litter");
    assert!(r
        .files
        .iter()
        .all(|f| !f.path.contains("DS_Store") && !f.path.contains("Thumbs")));
}

#[test]
fn bad_session_names_fail() {
    for (name, fragment) in [
        ("20210229_161221", "2021 is not a leap year"),
        ("20211301_161221", "month 13"),
        ("20210301_251221", "hour 25"),
        ("20210301_166021", "minute 60"),
        ("session_march", "expected YYYYMMDD_HHMMSS"),
        ("20991231_000000", "in the future"),
    ] {
        check(
            name,
            &good_files(),
            Some(GOOD_META),
            Verdict::Fail,
            Some(("session_id", fragment)),
        );
    }
}

#[test]
fn bad_name_fails_even_while_writing() {
    let mut files = good_files();
    files.push(("rec_002.bin.part", 10, 1));
    check(
        "session_march",
        &files,
        Some(GOOD_META),
        Verdict::Fail,
        Some(("session_id", "YYYYMMDD")),
    );
}

#[test]
fn metadata_problems_fail() {
    check(
        "20210301_161221",
        &good_files()[1..],
        None,
        Verdict::Fail,
        Some(("metadata", "no metadata.txt in the session folder; add it")),
    );
    let mut renamed = good_files()[1..].to_vec();
    renamed.push(("Metadata.TXT", 100, 3600));
    check(
        "20210301_161221",
        &renamed,
        None,
        Verdict::Fail,
        Some(("metadata", "rename it to metadata.txt")),
    );
    let mut nested = good_files()[1..].to_vec();
    nested.push(("info/metadata.txt", 100, 3600));
    check(
        "20210301_161221",
        &nested,
        None,
        Verdict::Fail,
        Some(("metadata", "move it up")),
    );
    let mut two = good_files();
    two.push(("metadata (1).txt", 100, 3600));
    check(
        "20210301_161221",
        &two,
        Some(GOOD_META),
        Verdict::Fail,
        Some(("metadata", "second metadata file")),
    );
    for (meta, fragment) in [
        (GOOD_META.replace("3.5", "high"), "got 'high'"),
        (GOOD_META.replace("3.5", "3,5"), "decimal point"),
        (GOOD_META.replace("3.5", "14"), "out of range"),
        (
            GOOD_META.replace("hardware_model: X200\n", ""),
            "'hardware_model' is missing",
        ),
        (format!("{GOOD_META}fatigue: 2\n"), "set twice"),
        (GOOD_META.replace("X200", ""), "has no value"),
    ] {
        check(
            "20210301_161221",
            &good_files(),
            Some(&meta),
            Verdict::Fail,
            Some(("metadata", fragment)),
        );
    }
    let listing = listing("20210301_161221", &good_files());
    let schema = LabSchema::default();
    let r = check_session(CheckInput {
        listing: &listing,
        metadata_bytes: Some(Err("permission denied".into())),
        schema: &schema,
        now_local: chrono::Local::now().naive_local(),
        now: now(),
    });
    assert_eq!(r.verdict, Verdict::Fail);
    assert!(r.findings.iter().any(|f| f
        .message
        .contains("cannot read metadata.txt (permission denied)")));
}

#[test]
fn data_file_problems_fail() {
    check(
        "20210301_161221",
        &[("metadata.txt", 100, 3600)],
        Some(GOOD_META),
        Verdict::Fail,
        Some(("data_files", "no data files")),
    );
    let mut empty = good_files();
    empty.push(("rec_002.bin", 0, 3600));
    check(
        "20210301_161221",
        &empty,
        Some(GOOD_META),
        Verdict::Fail,
        Some(("data_files", "rec_002.bin is empty (0 bytes)")),
    );
    let mut truncated = good_files();
    truncated[2].1 = 300 * MB - 5;
    check(
        "20210301_161221",
        &truncated,
        Some(GOOD_META),
        Verdict::Fail,
        Some(("data_files", "rec_001.bin is 299,999,995 bytes, not a whole number of 16-byte frames (8 channels × int16)")),
    );
    // float32 × 3 channels = 12-byte frames: 300 MB is a multiple of 12? 300e6 / 12 = 25e6, yes.
    let meta = GOOD_META
        .replace("channels: 8", "channels: 3")
        .replace("int16", "float32");
    check(
        "20210301_161221",
        &good_files(),
        Some(&meta),
        Verdict::Pass,
        None,
    );
    let meta = GOOD_META.replace("channels: 8", "channels: 7");
    check(
        "20210301_161221",
        &good_files(),
        Some(&meta),
        Verdict::Fail,
        Some(("data_files", "14-byte frames (7 channels × int16)")),
    );
}

#[test]
fn unusual_sizes_warn() {
    let small = [
        ("metadata.txt", 100, 3600),
        ("rec_000.bin", 16 * 1000, 3600),
    ];
    check(
        "20210301_161221",
        &small,
        Some(GOOD_META),
        Verdict::Warn,
        Some(("size", "check that every data file was copied")),
    );
    let big = [
        ("metadata.txt", 100, 3600),
        ("rec_000.bin", 4000 * MB, 3600),
    ];
    check(
        "20210301_161221",
        &big,
        Some(GOOD_META),
        Verdict::Warn,
        Some(("size", "no unrelated files")),
    );
    let edge = [("metadata.txt", 100, 3600), ("rec_000.bin", 160 * MB, 3600)];
    check(
        "20210301_161221",
        &edge,
        Some(GOOD_META),
        Verdict::Pass,
        None,
    );
}

#[test]
fn unknown_metadata_keys_warn() {
    let meta = format!("{GOOD_META}booth: B12\n");
    check(
        "20210301_161221",
        &good_files(),
        Some(&meta),
        Verdict::Warn,
        Some(("metadata", "not in the lab schema")),
    );
}

#[test]
fn folders_still_being_written_wait() {
    let mut part = good_files();
    part.push(("rec_002.bin.part", 10, 3600));
    check(
        "20210301_161221",
        &part,
        Some(GOOD_META),
        Verdict::Wait,
        Some(("stability", "rec_002.bin.part is a temporary")),
    );
    for lock in ["~$notes.docx", ".~lock.notes.odt#", "x.tmp", "y.crdownload"] {
        let mut files = good_files();
        files.push((lock, 10, 3600));
        check(
            "20210301_161221",
            &files,
            Some(GOOD_META),
            Verdict::Wait,
            Some(("stability", "temporary")),
        );
    }
    let mut recent = good_files();
    recent[2].2 = 12;
    check(
        "20210301_161221",
        &recent,
        Some(GOOD_META),
        Verdict::Wait,
        Some(("stability", "rec_001.bin changed 12 s ago")),
    );
    // A truncated file in a folder still being written is expected: wait, not fail.
    recent[2].1 = 7;
    check(
        "20210301_161221",
        &recent,
        Some(GOOD_META),
        Verdict::Wait,
        Some(("data_files", "not a whole number")),
    );
    let mut quiet = good_files();
    quiet[2].2 = 61;
    check(
        "20210301_161221",
        &quiet,
        Some(GOOD_META),
        Verdict::Pass,
        None,
    );
}

#[test]
fn symlinks_out_of_the_folder_fail() {
    let mut l = listing("20210301_161221", &good_files());
    l.entries.push(Entry {
        path: "link.bin".into(),
        kind: EntryKind::Symlink {
            target_inside: false,
        },
        size: 0,
        modified: now() - Duration::from_secs(3600),
    });
    let r = run(&l, Some(GOOD_META));
    assert_eq!(r.verdict, Verdict::Fail);
    assert!(
        r.findings[0].message.contains("outside the session folder"),
        "{:?}",
        r.findings
    );
    assert!(r.files.iter().all(|f| f.path != "link.bin"));
}

/// Names some OS of the lab cannot hold: an error naming the file and the name to use instead.
#[test]
fn unportable_names_are_refused_with_the_name_to_use() {
    for (bad, file, fixed) in [
        ("rec\\005.bin", "rec\\005.bin", "rec_005.bin"),
        ("CON.bin", "CON.bin", "CON_.bin"),
        ("lpt1", "lpt1", "lpt1_"),
        ("a:b.bin", "a:b.bin", "a_b.bin"),
        ("what?.bin", "what?.bin", "what_.bin"),
        ("tab\there.bin", "tab\there.bin", "tab_here.bin"),
        ("notes.", "notes.", "notes"),
        ("trail ", "trail ", "trail"),
        ("sub:dir/rec.bin", "sub:dir", "sub_dir"),
        ("AUX/rec.bin", "AUX", "AUX_"),
    ] {
        let mut files = good_files();
        files.push((bad, 1600, 3600));
        let r = run(&listing("20210301_161221", &files), Some(GOOD_META));
        assert_eq!(r.verdict, Verdict::Fail, "{bad:?}: {:#?}", r.findings);
        let f: Vec<_> = r
            .findings
            .iter()
            .filter(|f| f.check == "file_name")
            .collect();
        assert_eq!(f.len(), 1, "{bad:?}: {:#?}", r.findings);
        assert_eq!(f[0].file.as_deref(), Some(file));
        assert!(
            f[0].message.ends_with(&format!("rename it to '{fixed}'")),
            "{bad:?}: {}",
            f[0].message
        );
    }
    let long = format!("{}.bin", "x".repeat(300));
    let mut files = good_files();
    files.push((&long, 1600, 3600));
    let r = run(&listing("20210301_161221", &files), Some(GOOD_META));
    assert!(
        r.findings
            .iter()
            .any(|f| f.check == "file_name"
                && f.message.contains("304 bytes long, more than the 255")),
        "{:#?}",
        r.findings
    );
    // The name to use is not one the folder already has (without case, as Windows compares).
    let mut files = good_files();
    files.push(("con.bin", 1600, 3600));
    files.push(("CON_.bin", 1600, 3600));
    let r = run(&listing("20210301_161221", &files), Some(GOOD_META));
    let f = r.findings.iter().find(|f| f.check == "file_name").unwrap();
    assert!(
        f.message.ends_with("rename it to 'con__2.bin'"),
        "{}",
        f.message
    );
    // Names that only look odd pass, and litter or temporary files are not uploaded, so not checked.
    let mut files = good_files();
    files.push(("é café 测试.bin", 1600, 3600));
    files.push(("console.bin", 1600, 3600));
    files.push(("COM0", 1600, 3600));
    let r = run(&listing("20210301_161221", &files), Some(GOOD_META));
    assert!(
        r.findings.iter().all(|f| f.check != "file_name"),
        "{:#?}",
        r.findings
    );
}

/// A session item over DynamoDB's limit is refused on the lab PC, with the field, its size and
/// the limit; one at the budget passes. Numbers DynamoDB cannot store are refused too.
#[test]
fn metadata_the_catalog_cannot_hold_is_refused_with_field_size_and_limit() {
    use crate::catalog_size::{session_item_bytes, SESSION_ITEM_BUDGET};
    let base = run(&listing("20210301_161221", &good_files()), Some(GOOD_META));
    let room = SESSION_ITEM_BUDGET - session_item_bytes(&base.metadata) - "m_notes".len() as u64;
    let at_budget = format!("{GOOD_META}notes: {}\n", "n".repeat(room as usize));
    check(
        "20210301_161221",
        &good_files(),
        Some(&at_budget),
        Verdict::Pass,
        None,
    );
    let over = format!("{GOOD_META}notes: {}\n", "n".repeat(room as usize + 1));
    let r = run(&listing("20210301_161221", &good_files()), Some(&over));
    assert_eq!(r.verdict, Verdict::Fail);
    let f = r.findings.iter().find(|f| f.check == "catalog").unwrap();
    assert_eq!(f.file.as_deref(), Some("metadata.txt"));
    for part in [
        "metadata field 'notes' takes 39",
        &format!("would be {} bytes", group_digits(SESSION_ITEM_BUDGET + 1)),
        "more than the 393,216 bytes one entry may hold",
        "400 KB item limit of 409,600 bytes",
        "shorten 'notes' in metadata.txt",
    ] {
        assert!(f.message.contains(part), "{part:?} not in {}", f.message);
    }
    // Many small fields: the total is named, with the largest fields.
    let mut many = GOOD_META.to_string();
    for i in 0..400 {
        many.push_str(&format!("field_{i:03}: {}\n", "v".repeat(1000)));
    }
    let r = run(&listing("20210301_161221", &good_files()), Some(&many));
    let f = r.findings.iter().find(|f| f.check == "catalog").unwrap();
    assert!(f.message.contains("metadata fields take"), "{}", f.message);
    // A number outside DynamoDB's range.
    let huge = format!("{GOOD_META}electrode_impedance_kohm: 1e200\n");
    check(
        "20210301_161221",
        &good_files(),
        Some(&huge),
        Verdict::Fail,
        Some(("catalog", "outside the numbers the catalog can store")),
    );
}

/// The check's bounds are ingest's: 2,000 files pass, 2,001 fail; a manifest over the read
/// bound (long paths) fails before anything is uploaded.
#[test]
fn sessions_over_the_manifest_bounds_are_refused() {
    use crate::manifest::{Manifest, MAX_MANIFEST_BYTES, MAX_MANIFEST_FILES};
    let names: Vec<String> = (0..=MAX_MANIFEST_FILES)
        .map(|i| format!("rec_{i:05}.bin"))
        .collect();
    let files = |n: usize| {
        let mut f: Vec<(&str, u64, u64)> = vec![("metadata.txt", 120, 3600)];
        f.extend(names[..n].iter().map(|p| (p.as_str(), 1600, 3600)));
        f
    };
    let ok = run(
        &listing("20210301_161221", &files(MAX_MANIFEST_FILES - 1)),
        Some(GOOD_META),
    );
    assert!(
        ok.findings.iter().all(|f| f.check != "catalog"),
        "{:#?}",
        ok.findings
    );
    assert!(Manifest::largest_json_bytes(&ok).unwrap() < MAX_MANIFEST_BYTES);
    let over = run(
        &listing("20210301_161221", &files(MAX_MANIFEST_FILES)),
        Some(GOOD_META),
    );
    assert_eq!(over.verdict, Verdict::Fail);
    assert!(
        over.findings.iter().any(|f| f.check == "catalog"
            && f.message.contains("2,001 files, more than the 2,000")),
        "{:#?}",
        over.findings
    );
    // 1,500 files with 500-byte paths: few enough files, but a manifest over 1 MiB.
    let long: Vec<String> = (0..1500)
        .map(|i| format!("{}/{}/rec_{i:05}.bin", "d".repeat(250), "e".repeat(250)))
        .collect();
    let mut f: Vec<(&str, u64, u64)> = vec![("metadata.txt", 120, 3600)];
    f.extend(long.iter().map(|p| (p.as_str(), 1600, 3600)));
    let r = run(&listing("20210301_161221", &f), Some(GOOD_META));
    assert_eq!(r.verdict, Verdict::Fail);
    let m = r
        .findings
        .iter()
        .find(|f| f.check == "catalog")
        .unwrap_or_else(|| {
            panic!(
                "{:#?}",
                r.findings
                    .iter()
                    .filter(|f| f.severity > Severity::Info)
                    .collect::<Vec<_>>()
            )
        });
    assert!(
        m.message
            .contains("the manifest of this session would be up to"),
        "{}",
        m.message
    );
    assert!(
        m.message.contains("1,032,192 bytes the pipeline reads"),
        "{}",
        m.message
    );
}

/// Every kind of finding the checks make, from folders with one or many problems each.
fn findings_of_every_kind() -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut add = |listing: SessionListing, meta: Option<&str>| {
        findings.extend(run(&listing, meta).findings);
    };
    // A name that is no date-time, a second metadata file, an empty and a cut data file.
    add(
        listing(
            "20210229_161221",
            &[
                ("Metadata.TXT", 100, 3600),
                ("rec_000.bin", 0, 3600),
                ("x.bin", 5, 3600),
            ],
        ),
        None,
    );
    // File names some OS of the lab cannot hold.
    for bad in ["CON.bin", "a:b/c.bin", "tail."] {
        let mut files = good_files();
        files.push((bad, 1600, 3600));
        add(listing("20210301_161221", &files), Some(GOOD_META));
    }
    // Metadata the catalog cannot hold, a value out of range, unparseable and missing fields.
    let big = format!("{GOOD_META}notes: {}\n", "n".repeat(500_000));
    add(listing("20210301_161221", &good_files()), Some(&big));
    let huge = format!("{GOOD_META}electrode_impedance_kohm: 1e200\n");
    add(listing("20210301_161221", &good_files()), Some(&huge));
    add(
        listing("20210301_161221", &good_files()),
        Some("subject_id S017\nfatigue: tired\n"),
    );
    // More files than a manifest holds.
    let many: Vec<String> = (0..2001).map(|i| format!("r{i}.bin")).collect();
    let mut files: Vec<(&str, u64, u64)> = vec![("metadata.txt", 120, 3600)];
    files.extend(many.iter().map(|p| (p.as_str(), 1600, 3600)));
    add(listing("20210301_161221", &files), Some(GOOD_META));
    // Something still writing: a temporary file, a file changed seconds ago.
    let mut files = good_files();
    files.push(("rec_002.bin.part", 1600, 3600));
    add(listing("20210301_161221", &files), Some(GOOD_META));
    let mut files = good_files();
    files[1].2 = 5;
    add(listing("20210301_161221", &files), Some(GOOD_META));
    // Links out of and inside the folder, an unreadable file, no data at all.
    let mut linked = listing("20210301_161221", &good_files());
    for (path, inside) in [("outside.bin", false), ("inside.bin", true)] {
        linked.entries.push(Entry {
            path: path.into(),
            kind: EntryKind::Symlink {
                target_inside: inside,
            },
            size: 0,
            modified: now() - Duration::from_secs(3600),
        });
    }
    linked
        .unreadable
        .push(("rec_009.bin".into(), "permission denied".into()));
    add(linked, Some(GOOD_META));
    add(
        listing("20210301_161221", &[("metadata.txt", 120, 3600)]),
        Some(GOOD_META),
    );
    findings
}

#[test]
fn every_message_names_what_to_do() {
    let findings = findings_of_every_kind();
    // Every check that can refuse a session is in the corpus, so a new message of any of them is
    // held to the rules below (a check missing here fails the test, not silently passes it).
    let kinds: std::collections::BTreeSet<&str> =
        findings.iter().map(|f| f.check.as_str()).collect();
    for kind in [
        "session_id",
        "folder",
        "file_name",
        "stability",
        "metadata",
        "data_files",
        "size",
        "catalog",
    ] {
        assert!(
            kinds.contains(kind),
            "no finding of check {kind:?} in the corpus: {kinds:?}"
        );
    }
    // What to do, as a word of its own ("add" inside "address" does not count).
    let action = regex::Regex::new(
        r"(?i)\b(fix|add|copy|rename|remove|delete|check|move|export|keep|wait|waiting|split|record|shorten|use|write|give|make)\b",
    )
    .unwrap();
    for f in findings.iter().filter(|f| f.severity != Severity::Info) {
        assert!(action.is_match(&f.message), "says nothing to do: {f:?}");
        // What it is about: the file (its path in `file`, or named in the text), the metadata
        // field (with its line), the folder's name, or the session as a whole.
        let names_its_subject = f.file.is_some()
            || f.line.is_some()
            || f.message.contains("metadata.txt")
            || f.message.contains("20210")
            || f.message.contains("folder")
            || f.message.contains("the session");
        assert!(names_its_subject, "names no file, field or folder: {f:?}");
    }
}

#[test]
fn digits_are_grouped() {
    for (n, s) in [
        (0, "0"),
        (999, "999"),
        (1000, "1,000"),
        (299_999_995, "299,999,995"),
    ] {
        assert_eq!(group_digits(n), s);
    }
}
