use super::*;
use labpipe_upload::FileOutcome;

fn progress(path: &str, done: u64, total: u64, rate: f64) -> Event {
    Event::FileProgress {
        session: "s".into(),
        path: path.into(),
        bytes_done: done,
        bytes_total: total,
        rate,
        eta_secs: None,
    }
}

#[test]
fn folds_progress_into_session_totals() {
    let mut t = TransferView::queued("s", "/lab/s");
    t.apply(&Event::SessionStarted {
        session: "s".into(),
        files: 2,
        bytes_total: 300,
    });
    t.apply(&progress("b.bin", 50, 200, 10.0));
    t.apply(&progress("a.bin", 100, 100, 10.0));
    assert_eq!(t.bytes_done, 150);
    assert_eq!(t.files[0].path, "a.bin", "files in path order");
    assert_eq!(t.eta_secs, Some(150.0 / 20.0));
    t.apply(&Event::FileDone {
        session: "s".into(),
        path: "a.bin".into(),
        outcome: FileOutcome::AlreadyUploaded,
        bytes_sent: 0,
        bytes_resumed: 100,
    });
    assert_eq!(t.files[0].state, FileState::AlreadyUploaded);
    assert_eq!(t.bytes_resumed, 100);
    assert_eq!(t.rate, 10.0, "a finished file adds no rate");
    t.apply(&Event::FileVerified {
        session: "s".into(),
        path: "a.bin".into(),
        key: "raw/s/a.bin".into(),
        crc64nvme: String::new(),
    });
    assert_eq!(t.files[0].state, FileState::Verified);
    t.apply(&Event::SessionDone {
        session: "s".into(),
        outcome: SessionOutcome::Uploaded,
        bytes_total: 300,
        bytes_sent: 200,
        bytes_resumed: 100,
        manifest_key: "raw/s/manifest.json".into(),
    });
    assert_eq!(
        (t.state, t.bytes_done, t.outcome, t.rate),
        (
            TransferState::Done,
            300,
            Some(SessionOutcome::Uploaded),
            0.0
        )
    );
    assert!(t.finished_at.is_some());
    assert_eq!(t.actions, TransferActions::of(TransferState::Done, None));
}

#[test]
fn retries_are_counted_per_file_and_per_session() {
    let mut t = TransferView::queued("s", "/lab/s");
    let retry = |path: Option<&str>, attempt, reason: &str| Event::Retrying {
        session: "s".into(),
        path: path.map(String::from),
        operation: "UploadPart".into(),
        attempt,
        reason: reason.into(),
    };
    t.apply(&retry(Some("a.bin"), 2, "HTTP 503 SlowDown"));
    t.apply(&retry(Some("a.bin"), 3, "connection reset"));
    t.apply(&retry(None, 2, "timed out"));
    let a = &t.files[0];
    assert_eq!(
        (a.retries, a.last_retry_reason.as_deref()),
        (2, Some("connection reset"))
    );
    assert_eq!(t.retries_text(), "3 retries — last: timed out");
    assert_eq!(t.files.len(), 1, "a session-wide retry adds no file row");
}

#[test]
fn refusals_and_failures_say_why() {
    let mut t = TransferView::queued("s", "/lab/s");
    t.apply(&Event::SessionRefused {
        session: "s".into(),
        verdict: "fail".into(),
        findings: vec!["metadata.txt:4: fatigue is missing".into()],
    });
    let e = t.error.clone().unwrap();
    assert_eq!(t.state, TransferState::Failed);
    assert_eq!(e.code, "not_uploadable");
    assert!(e.message.contains("fatigue is missing"), "{}", e.message);

    let mut t = TransferView::queued("s", "/lab/s");
    t.apply(&Event::SessionFailed {
        session: "s".into(),
        code: "conflict".into(),
        reason: "s3://b/raw/s/a.bin already exists".into(),
        bytes_sent: 0,
    });
    assert_eq!(
        (t.state, t.error.unwrap().code.as_str()),
        (TransferState::Failed, "conflict")
    );
}

/// Every state with no error, with an error that calls for a correction and with one that
/// does not: which buttons a transfer offers.
#[test]
fn actions_follow_the_state_and_the_error() {
    use TransferState::*;
    let error = |code: &str| TransferError {
        code: code.into(),
        message: "m".into(),
    };
    let (conflict, changed, taken, reset) = (
        error("conflict"),
        error("changed_since_upload"),
        error("name_taken"),
        error("s3"),
    );
    let table = [
        // state, error, pause, resume, cancel, again, correct, active
        (Queued, None, true, false, true, false, false, true),
        (Running, None, true, false, true, false, false, true),
        (Interrupted, None, true, false, true, false, false, true),
        (Paused, None, false, true, true, false, false, true),
        (Done, None, false, false, false, false, false, false),
        (Failed, None, false, false, false, true, false, false),
        (Cancelled, None, false, false, false, true, false, false),
        // Other bytes under the name: a correction, never the same upload again.
        (
            Failed,
            Some(&conflict),
            false,
            false,
            false,
            false,
            true,
            false,
        ),
        (
            Failed,
            Some(&changed),
            false,
            false,
            false,
            false,
            true,
            false,
        ),
        // Another recording's name, or a network failure: upload again, no correction.
        (
            Failed,
            Some(&taken),
            false,
            false,
            false,
            true,
            false,
            false,
        ),
        (
            Failed,
            Some(&reset),
            false,
            false,
            false,
            true,
            false,
            false,
        ),
        // Not finished: nothing to correct yet, whatever an earlier run said.
        (
            Queued,
            Some(&conflict),
            true,
            false,
            true,
            false,
            false,
            true,
        ),
        (
            Paused,
            Some(&changed),
            false,
            true,
            true,
            false,
            false,
            true,
        ),
    ];
    for (state, error, pause, resume, cancel, again, correct, active) in table {
        assert_eq!(
            TransferActions::of(state, error),
            TransferActions {
                pause,
                resume,
                cancel,
                again,
                correct,
                active
            },
            "{state:?} {error:?}"
        );
        assert_eq!(
            state.waits_its_turn(),
            matches!(state, Queued | Interrupted),
            "{state:?}"
        );
    }
}

/// The fold offers the correction when the engine's refusal says the name holds other bytes
/// of this recording, and takes the offer back when the session runs again.
#[test]
fn a_refusal_for_other_bytes_under_the_name_offers_a_correction() {
    let conflict = UploadError::Conflict {
        bucket: "b".into(),
        key: "raw/s/a.bin".into(),
        detail: "sha256 differs".into(),
    };
    assert!(CORRECTION_CODES.contains(&conflict.code()));
    let mut t = TransferView::queued("s", "/lab/s");
    t.start_run();
    t.apply(&Event::SessionFailed {
        session: "s".into(),
        code: "changed_since_upload".into(),
        reason: "session s changed since upload".into(),
        bytes_sent: 0,
    });
    assert!(t.actions.correct && !t.actions.again, "{:?}", t.actions);
    t.start_run();
    assert!(!t.actions.correct, "{:?}", t.actions);
    t.fail(conflict.code(), &conflict.to_string());
    assert!(t.actions.correct && !t.actions.again, "{:?}", t.actions);
}

#[test]
fn retries_read_naturally() {
    assert_eq!(retries_text(0, Some("x")), "");
    assert_eq!(retries_text(1, None), "1 retry");
    assert_eq!(
        retries_text(3, Some("connection reset")),
        "3 retries — last: connection reset"
    );
}

#[test]
fn the_run_policy_separates_waiting_refused_and_failed() {
    let done = |outcome| {
        Ok(SessionResult {
            outcome,
            bytes_total: 10,
            bytes_sent: 4,
            bytes_resumed: 6,
        })
    };
    let refused = |verdict| {
        Err(UploadError::NotUploadable {
            session: "s".into(),
            verdict,
            findings: vec!["metadata.txt:4: fatigue is missing".into()],
        })
    };
    let cases: Vec<(Result<SessionResult, UploadError>, SessionEnd)> = vec![
        (done(SessionOutcome::Uploaded), SessionEnd::Uploaded),
        (
            done(SessionOutcome::AlreadyUploaded),
            SessionEnd::AlreadyUploaded,
        ),
        (refused("wait"), SessionEnd::Waiting),
        (
            refused("fail"),
            SessionEnd::Refused {
                findings: vec!["metadata.txt:4: fatigue is missing".into()],
            },
        ),
        (
            Err(UploadError::BucketNotFound { bucket: "b".into() }),
            SessionEnd::Failed {
                code: "bucket_not_found",
                reason: UploadError::BucketNotFound { bucket: "b".into() }.to_string(),
                stop: true,
            },
        ),
    ];
    let mut sum = RunSummary::default();
    for (result, want) in &cases {
        assert_eq!(&sum.add(100, result), want);
    }
    assert_eq!(
        (
            sum.sessions_uploaded,
            sum.sessions_skipped,
            sum.sessions_waiting,
            sum.sessions_refused,
            sum.sessions_failed
        ),
        (1, 1, 1, 1, 1)
    );
    assert_eq!((sum.bytes_total, sum.bytes_sent), (120, 8));
    assert!(sum.needs_attention());
    assert_eq!(
        sum.counts_text(),
        "1 uploaded, 1 already uploaded, 1 waiting (still being written), 1 refused by checks, 1 failed"
    );

    let mut waiting_only = RunSummary::default();
    waiting_only.add(1, &refused("wait"));
    assert!(!waiting_only.needs_attention(), "waiting pages no one");
    assert_eq!(
        waiting_only.counts_text(),
        "0 uploaded, 1 waiting (still being written), 0 failed"
    );
}
