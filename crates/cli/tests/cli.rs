//! The `labpipe` binary as a user runs it: real folders on disk, real process, exit codes, output.

use labpipe_sample::{generate, GenerateOptions, SampleKind};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

fn labpipe(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_labpipe"))
        .args(args)
        .current_dir(cwd)
        .env_remove("LABPIPE_SCHEMA")
        .env("NO_COLOR", "1")
        .output()
        .expect("run labpipe")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Generates good and broken sample sessions through the CLI, so the CLI's `dev generate` is
/// exercised too.
fn sample_lab(dir: &Path, count: &str) -> Vec<Value> {
    let out = labpipe(
        &[
            "dev",
            "generate",
            "--out",
            "lab",
            "--count",
            count,
            "--size-mb",
            "2",
            "--seed",
            "7",
            "--broken",
            "--json",
        ],
        dir,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Vec<Value>>(&out.stdout).expect("generate --json is a JSON array")
}

#[test]
fn check_rejects_every_broken_session_and_passes_every_good_one() {
    let tmp = tempfile::tempdir().unwrap();
    let generated = sample_lab(tmp.path(), "4");
    let out = labpipe(&["check", "lab", "--json"], tmp.path());
    assert_eq!(
        out.status.code(),
        Some(1),
        "broken sessions make check exit 1"
    );
    let reports: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(reports.len(), generated.len());
    let mut broken_seen = 0;
    for g in &generated {
        let name = g["name"].as_str().unwrap();
        let r = reports
            .iter()
            .find(|r| r["session"] == name)
            .unwrap_or_else(|| panic!("{name} not reported"));
        if g["kind"] == "good" {
            assert_eq!(r["verdict"], "pass", "{name}: {r:#}");
            continue;
        }
        broken_seen += 1;
        let kind = g["kind"]["broken"].as_str().unwrap();
        let verdict = r["verdict"].as_str().unwrap();
        let errors: Vec<&Value> = r["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["severity"] != "info")
            .collect();
        if kind == "still_being_written" {
            assert_eq!(verdict, "wait", "{name}");
            assert!(
                errors.iter().any(|f| f["check"] == "stability"),
                "{name}: {r:#}"
            );
        } else {
            assert_eq!(verdict, "fail", "{name} ({kind}): {r:#}");
            assert!(
                errors.iter().any(|f| f["severity"] == "error"),
                "{name}: {r:#}"
            );
        }
        for f in errors {
            let msg = f["message"].as_str().unwrap();
            assert!(msg.len() > 30, "{name}: message too terse: {msg}");
        }
    }
    assert!(
        broken_seen >= 16,
        "every broken kind is generated: {broken_seen}"
    );
}

#[test]
fn broken_sessions_fail_for_the_expected_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let sessions = generate(
        &GenerateOptions {
            count: 1,
            size_bytes: 1_000_000,
            broken: true,
            ..GenerateOptions::new(tmp.path().join("lab"))
        },
        |_, _| {},
    )
    .unwrap();
    let out = labpipe(
        &["check", "lab", "--json", "--schema", "/dev/null"],
        tmp.path(),
    );
    let reports: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    for s in sessions {
        let SampleKind::Broken(kind) = s.kind else {
            continue;
        };
        let r = reports
            .iter()
            .find(|r| r["session"] == s.name.as_str())
            .unwrap();
        let hit = r["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["check"] == kind.expected_check() && f["severity"] != "info");
        assert!(
            hit,
            "{} ({}) should be caught by the {} check: {r:#}",
            s.name,
            kind.describe(),
            kind.expected_check()
        );
    }
}

#[test]
fn human_output_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    sample_lab(tmp.path(), "2");
    let out = labpipe(&["check", "lab"], tmp.path());
    assert_eq!(out.status.code(), Some(1));
    // The folder still being written reports how long ago it changed: not reproducible.
    let text = regex::Regex::new(r"changed \d+ s ago")
        .unwrap()
        .replace_all(&stdout(&out), "changed N s ago")
        .into_owned();
    insta::assert_snapshot!(text);
}

#[test]
fn good_lab_exits_zero_and_single_session_paths_work() {
    let tmp = tempfile::tempdir().unwrap();
    let sessions = generate(
        &GenerateOptions {
            count: 2,
            size_bytes: 500_000,
            ..GenerateOptions::new(tmp.path().join("lab"))
        },
        |_, _| {},
    )
    .unwrap();
    std::fs::write(
        tmp.path().join("lab/labpipe.toml"),
        "[session]\nexpected_size_mb = 0.5\n",
    )
    .unwrap();
    let out = labpipe(&["check", "lab"], tmp.path());
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("2 sessions: 2 pass, 0 warn, 0 wait, 0 fail"),
        "{}",
        stdout(&out)
    );
    // A session folder given directly, with the lab schema found in its parent.
    let one = format!("lab/{}", sessions[0].name);
    let out = labpipe(&["check", &one, "--json"], tmp.path());
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let reports: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0]["path"], one.as_str());
    // Without the lab's schema, a 0.5 MB session is unusually small: warn, still exit 0.
    std::fs::remove_file(tmp.path().join("lab/labpipe.toml")).unwrap();
    let out = labpipe(&["check", &one, "--json"], tmp.path());
    assert_eq!(out.status.code(), Some(0));
    let reports: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(reports[0]["verdict"], "warn");
}

/// A file name some OS of the lab cannot hold fails the check, naming the file and the name to
/// rename it to; after the rename the session passes.
#[test]
fn unportable_file_names_fail_with_the_name_to_use() {
    let tmp = tempfile::tempdir().unwrap();
    let sessions = generate(
        &GenerateOptions {
            count: 1,
            size_bytes: 500_000,
            ..GenerateOptions::new(tmp.path().join("lab"))
        },
        |_, _| {},
    )
    .unwrap();
    std::fs::write(
        tmp.path().join("lab/labpipe.toml"),
        "[session]\nexpected_size_mb = 0.5\n",
    )
    .unwrap();
    let folder = tmp.path().join("lab").join(&sessions[0].name);
    let data = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "bin"))
        .unwrap();
    let old = filetime::FileTime::from_unix_time(1_600_000_000, 0);
    for bad in ["CON.bin", "rec\\9.bin", "notes."] {
        std::fs::copy(&data, folder.join(bad)).unwrap();
        filetime::set_file_mtime(folder.join(bad), old).unwrap();
    }
    let out = labpipe(&["check", "lab"], tmp.path());
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    for line in [
        "the file name 'CON.bin' cannot be used on every computer of the lab: 'CON' is a device name on Windows",
        "rename it to 'CON_.bin'",
        "the file name 'rec\\9.bin' cannot be used on every computer of the lab: it contains a backslash",
        "rename it to 'rec_9.bin'",
        "it ends with a dot or a space, which Windows drops (two names would become one); rename it to 'notes'",
    ] {
        assert!(text.contains(line), "{line:?} not in\n{text}");
    }
    let out = labpipe(&["check", "lab", "--json"], tmp.path());
    let reports: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let mut files: Vec<&str> = reports[0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["check"] == "file_name")
        .map(|f| f["file"].as_str().unwrap())
        .collect();
    files.sort();
    assert_eq!(files, ["CON.bin", "notes.", "rec\\9.bin"]);
    // Renamed as told: the session passes.
    for (bad, good) in [
        ("CON.bin", "CON_.bin"),
        ("rec\\9.bin", "rec_9.bin"),
        ("notes.", "notes"),
    ] {
        std::fs::rename(folder.join(bad), folder.join(good)).unwrap();
        filetime::set_file_mtime(folder.join(good), old).unwrap();
    }
    let out = labpipe(&["check", "lab"], tmp.path());
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
}

#[test]
fn quiet_period_flag_controls_waiting() {
    let tmp = tempfile::tempdir().unwrap();
    let s = tmp.path().join("20210301_161221");
    std::fs::create_dir(&s).unwrap();
    std::fs::write(s.join("metadata.txt"), "subject_id: S1\nfatigue: 2\nhardware_model: X200\nsample_rate_hz: 1000\nchannels: 1\nsample_format: int16\n").unwrap();
    std::fs::write(s.join("rec.bin"), [0u8; 2000]).unwrap();
    let schema = tmp.path().join("schema.toml");
    std::fs::write(&schema, "[session]\nexpected_size_mb = 0.002\n").unwrap();
    let schema = schema.to_str().unwrap();
    let out = labpipe(
        &["check", "20210301_161221", "--schema", schema],
        tmp.path(),
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "just written: wait\n{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("wait"));
    let out = labpipe(
        &[
            "check",
            "20210301_161221",
            "--schema",
            schema,
            "--quiet-period",
            "0",
        ],
        tmp.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
}

#[test]
fn usage_errors_exit_two_with_a_clear_message() {
    let tmp = tempfile::tempdir().unwrap();
    let out = labpipe(&["check", "no-such-folder"], tmp.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("no-such-folder does not exist; check the path"));
    std::fs::create_dir(tmp.path().join("lab")).unwrap();
    std::fs::write(
        tmp.path().join("bad.toml"),
        "[fields.fatigue]\ntype = \"float\"\n",
    )
    .unwrap();
    let out = labpipe(&["check", "lab", "--schema", "bad.toml"], tmp.path());
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("lab schema bad.toml is not valid"), "{err}");
    let out = labpipe(&["check"], tmp.path());
    assert_eq!(out.status.code(), Some(2), "missing PATH is a usage error");
    let out = labpipe(&["check", "lab"], tmp.path());
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("no session folders found"));
}

#[test]
fn generate_start_sets_the_first_recording_time() {
    let tmp = tempfile::tempdir().unwrap();
    let args = |start: &str| {
        [
            "dev",
            "generate",
            "--out",
            "lab",
            "--count",
            "2",
            "--size-mb",
            "1",
            "--start",
            start,
            "--json",
        ]
        .map(String::from)
    };
    let a = args("20240611_081500");
    let out = labpipe(
        &a.iter().map(String::as_str).collect::<Vec<_>>(),
        tmp.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sessions: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(sessions[0]["name"], "20240611_081500");
    assert!(sessions[1]["name"].as_str().unwrap() > "20240611_081500");
    let out = labpipe(&["check", "lab"], tmp.path());
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));

    let a = args("2024-06-11");
    let out = labpipe(
        &a.iter().map(String::as_str).collect::<Vec<_>>(),
        tmp.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--start '2024-06-11' is not a session time")
    );
}

#[test]
fn help_explains_exit_codes_and_verdicts() {
    let tmp = tempfile::tempdir().unwrap();
    let top = stdout(&labpipe(&["--help"], tmp.path()));
    assert!(top.contains("Exit codes: 0 = all fine"), "{top}");
    let check = stdout(&labpipe(&["check", "--help"], tmp.path()));
    assert!(check.contains("wait = still being written"), "{check}");
    assert!(check.contains("--quiet-period"), "{check}");
}

/// `labpipe` with a colour preference in the environment (the other tests pin NO_COLOR=1).
fn labpipe_colour(args: &[&str], cwd: &Path, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_labpipe"));
    cmd.args(args)
        .current_dir(cwd)
        .env_remove("LABPIPE_SCHEMA")
        .env_remove("NO_COLOR")
        .env_remove("CLICOLOR_FORCE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run labpipe")
}

#[test]
fn no_color_wins_over_a_forced_colour() {
    let tmp = tempfile::tempdir().unwrap();
    sample_lab(tmp.path(), "2");
    let forced = labpipe_colour(&["check", "lab"], tmp.path(), &[("CLICOLOR_FORCE", "1")]);
    assert!(
        stdout(&forced).contains('\u{1b}'),
        "CLICOLOR_FORCE=1 should colour the table, so the NO_COLOR case below can fail:\n{}",
        stdout(&forced)
    );
    let plain = labpipe_colour(
        &["check", "lab"],
        tmp.path(),
        &[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")],
    );
    let text = format!(
        "{}{}",
        stdout(&plain),
        String::from_utf8_lossy(&plain.stderr)
    );
    assert!(
        !text.contains('\u{1b}'),
        "NO_COLOR=1 must remove every escape code:\n{text}"
    );
}

#[test]
fn version_names_the_build_commit() {
    let tmp = tempfile::tempdir().unwrap();
    let out = labpipe(&["--version"], tmp.path());
    assert!(out.status.success());
    let text = stdout(&out);
    // `labpipe 0.1.0 (1b10e73599a3)`: the package version, then the commit (or `unknown`).
    let re = regex::Regex::new(r"^labpipe \d+\.\d+\.\d+ \(([0-9a-f]{12}|unknown)\)\n$").unwrap();
    assert!(re.is_match(&text), "unexpected --version: {text:?}");
    if std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .is_ok_and(|o| o.status.success())
    {
        assert!(
            !text.contains("unknown"),
            "built in a git checkout, the commit must be known: {text}"
        );
    }
}

#[test]
fn completions_and_man_pages_come_from_the_command_definitions() {
    let tmp = tempfile::tempdir().unwrap();
    let bash = labpipe(&["completions", "bash"], tmp.path());
    assert!(bash.status.success());
    let script = stdout(&bash);
    for word in [
        "_labpipe()",
        "upload",
        "sync",
        "--pipeline-version",
        "--dest",
    ] {
        assert!(script.contains(word), "bash completion lacks {word}");
    }
    let out = labpipe(&["man", "--out", "man"], tmp.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for page in [
        "labpipe.1",
        "labpipe-upload.1",
        "labpipe-sync.1",
        "labpipe-dev-generate.1",
    ] {
        let text = std::fs::read_to_string(tmp.path().join("man").join(page))
            .unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(
            text.starts_with(".ie \\n(.g .ds Aq") || text.contains(".TH"),
            "{page} is not a man page"
        );
    }
    let sync = std::fs::read_to_string(tmp.path().join("man/labpipe-sync.1")).unwrap();
    assert!(
        sync.contains("\\-\\-dest"),
        "labpipe-sync.1 documents --dest"
    );
    let bad = labpipe(&["completions", "tcsh"], tmp.path());
    assert_eq!(
        bad.status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );
}
