//! The column store against each session's own entry, and at scale.

use super::*;
use labpipe_catalog::Status;
use labpipe_core::MetaValue;

fn item(session: &str, status: Status, fatigue: f64) -> SessionItem {
    let at = chrono::NaiveDateTime::parse_from_str(session, "%Y%m%d_%H%M%S").unwrap();
    let mut i = SessionItem::placeholder(session, at, status, chrono::Utc::now());
    i.metadata
        .insert("fatigue".into(), MetaValue::Number(fatigue));
    i
}

/// The detail pane lists the files of the revision the catalog made current, at the
/// manifest version it pinned, not the first upload's.
#[test]
fn the_detail_reads_the_current_revisions_manifest() {
    let mut i = item("20210301_161221", Status::Processed, 1.0);
    let first = manifest_read("labpipe-raw", &i);
    assert_eq!(first.key, "raw/20210301_161221/manifest.json");
    assert_eq!(first.version_id, None);
    i.revision = Some(2);
    i.manifest_version_id = Some("3HL4kqtJlcpXroDTDmJ".into());
    let current = manifest_read("labpipe-raw", &i);
    assert_eq!(current.key, "raw/20210301_161221.r2/manifest.json");
    assert_eq!(current.version_id, Some("3HL4kqtJlcpXroDTDmJ"));
    assert_eq!(current.bucket, "labpipe-raw");
}

/// Each way a manifest read fails, in the words the detail pane shows.
#[test]
fn a_manifest_that_cannot_be_read_says_why_in_the_labs_words() {
    use labpipe_aws::{ErrorClass, S3Error};
    let call = |class| S3Error::Call {
        operation: "GetObject",
        bucket: "labpipe-raw".into(),
        key: "raw/20210301_161221/manifest.json".into(),
        class,
        detail: "service error".into(),
    };
    let key = "raw/20210301_161221/manifest.json";
    let not_yet = "no manifest at s3://labpipe-raw/raw/20210301_161221/manifest.json yet: the upload has not finished (or these credentials may not read it)";
    let cases = [
        (call(ErrorClass::NotFound), not_yet.to_string()),
        (call(ErrorClass::AccessDenied), not_yet.to_string()),
        (
            call(ErrorClass::NoSuchBucket),
            "the raw bucket labpipe-raw does not exist; check Settings".to_string(),
        ),
        (
            call(ErrorClass::Retryable),
            call(ErrorClass::Retryable).to_string(),
        ),
        (
            call(ErrorClass::InvalidCredentials),
            call(ErrorClass::InvalidCredentials).to_string(),
        ),
    ];
    for (e, want) in cases {
        assert_eq!(manifest_error("labpipe-raw", key, &e), want, "{e:?}");
    }
}

fn fatigue(snapshot: &CatalogSnapshot, row: usize) -> Option<Value<'_>> {
    snapshot.columns.metadata["fatigue"].get(row)
}

#[test]
fn filters_with_the_query_language() {
    let loaded = Loaded::new(
        vec![
            item("20210301_161221", Status::Processed, 2.0),
            item("20210302_161221", Status::Failed, 7.0),
            item("20210303_161221", Status::Processed, 8.0),
        ],
        LabSchema::default(),
    );
    // Newest first, and each row keeps its own metadata.
    let snap = loaded.snapshot(String::new(), 0.0);
    assert_eq!(snap.count, 3);
    assert_eq!(snap.columns.session[0], "20210303_161221");
    assert_eq!(snap.columns.recorded_at[0], "2021-03-03 16:12:21");
    assert_eq!(
        snap.statuses[snap.columns.status[1] as usize],
        Status::Failed
    );
    assert_eq!(fatigue(&snap, 0), Some(Value::Num(8.0)));
    assert_eq!(fatigue(&snap, 2), Some(Value::Num(2.0)));
    let detail = loaded.item("20210302_161221").unwrap();
    assert_eq!(detail.metadata["fatigue"], MetaValue::Number(7.0));
    assert!(loaded.item("20990101_000000").is_none());
    // Every session matching is said in one word, not row by row.
    assert_eq!(loaded.filter("").unwrap().indexes, None);
    assert_eq!(loaded.filter("fatigue >= 0").unwrap().indexes, None);
    assert_eq!(loaded.filter("").unwrap().rows(3), [0, 1, 2]);
    assert_eq!(
        loaded
            .filter("fatigue > 5 and status = processed")
            .unwrap()
            .indexes,
        Some(vec![0])
    );
    assert_eq!(
        loaded.filter("session contains \"0302\"").unwrap().indexes,
        Some(vec![1])
    );
    let err = loaded.filter("fatige > 5").unwrap_err();
    assert_eq!(err.column, 0, "{err}");
    assert!(err.message.contains("fatige"), "{err}");
}

/// The columns hold what each session's own entry says, and the filter over them agrees
/// with the filter over each session's own subject.
#[test]
fn columns_keep_each_sessions_values_and_filter_like_its_subject() {
    let mut items = Vec::new();
    for (k, model) in ["X200", "X100", "X200", "", "X200"].iter().enumerate() {
        let mut i = item(
            &format!("2021030{}_161221", k + 1),
            Status::ALL[k],
            k as f64,
        );
        if !model.is_empty() {
            i.metadata
                .insert("hardware_model".into(), MetaValue::Text(model.to_string()));
        }
        // A field with numbers in some sessions and text in others.
        i.metadata.insert(
            "notes".into(),
            if k % 2 == 0 {
                MetaValue::Number(k as f64)
            } else {
                MetaValue::Text(format!("t{k}"))
            },
        );
        i.status_message = (k % 2 == 0).then(|| "waiting for ingest".to_string());
        items.push(i);
    }
    let loaded = Loaded::new(items.clone(), LabSchema::default());
    let snap = loaded.snapshot(String::new(), 0.0);
    let models = &snap.columns.metadata["hardware_model"];
    let MetaColumn::Text { values, codes } = models else {
        panic!("hardware_model is text: {models:?}")
    };
    assert_eq!(values, &["X200", "X100"], "each distinct value once");
    assert_eq!(
        codes,
        &[1, 0, 1, 2, 1],
        "newest first; 0 where there is none"
    );
    assert!(matches!(
        snap.columns.metadata["notes"],
        MetaColumn::Mixed { .. }
    ));
    assert_eq!(snap.columns.status_message.values, ["waiting for ingest"]);
    assert_eq!(
        snap.columns.status_message.get(0),
        Some("waiting for ingest")
    );
    assert_eq!(snap.columns.status_message.get(1), None);
    for i in &items {
        assert_eq!(loaded.item(&i.session).as_ref(), Some(i));
    }
    let schema = LabSchema::default();
    for text in [
        "hardware_model = \"X200\"",
        "not hardware_model exists",
        "notes = \"t1\" or notes exists and fatigue < 1",
        "status in (detected, uploading) or fatigue >= 4",
        "session contains \"0303\"",
    ] {
        let f = Filter::new(text, &schema).unwrap();
        let by_subject: Vec<&str> = items
            .iter()
            .filter(|i| f.matches(&i.subject()))
            .map(|i| i.session.as_str())
            .collect();
        let mut by_columns: Vec<&str> = loaded
            .filter(text)
            .unwrap()
            .rows(snap.count as usize)
            .iter()
            .map(|&k| snap.columns.session[k as usize].as_str())
            .collect();
        by_columns.reverse();
        assert_eq!(by_columns, by_subject, "{text}");
    }
}

#[test]
fn newer_entries_replace_or_join_the_loaded_catalog() {
    let mut loaded = Loaded::new(
        vec![
            item("20210301_161221", Status::Processing, 2.0),
            item("20210303_161221", Status::Processed, 8.0),
        ],
        LabSchema::default(),
    );
    let unchanged = loaded.item("20210303_161221").unwrap();
    let moved = item("20210301_161221", Status::Processed, 2.0);
    let new = item("20210302_161221", Status::Cataloged, 5.0);
    let changed = loaded.apply(vec![unchanged, moved, new]);
    assert_eq!(
        changed.into_iter().collect::<Vec<_>>(),
        ["20210301_161221", "20210302_161221"],
        "only what differs from the loaded entry counts as changed"
    );
    let snap = loaded.snapshot(String::new(), 0.0);
    let seen: Vec<_> = (0..snap.count as usize)
        .map(|k| {
            (
                snap.columns.session[k].as_str(),
                snap.statuses[snap.columns.status[k] as usize].as_str(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("20210303_161221", "PROCESSED"),
            ("20210302_161221", "CATALOGED"),
            ("20210301_161221", "PROCESSED"),
        ],
        "newest first, the moved session in its new state, the new one added"
    );
    assert_eq!(fatigue(&snap, 1), Some(Value::Num(5.0)));
    assert_eq!(
        loaded.filter("fatigue > 4").unwrap().indexes,
        Some(vec![0, 1])
    );
    assert!(loaded.apply(vec![]).is_empty());
}

/// The Rust side of the catalog at scale, without the emulator (whose scan takes minutes per
/// 10,000 sessions): the columns hold the loaded catalog in at most half the heap of the former
/// store (the entries plus a filter subject per session), the snapshot's JSON is at most half the
/// former array of row objects, and each filter of `bench/app.sh` selects exactly what the
/// per-session evaluator selects — ratios within one run, so they hold on any machine. The times
/// it prints are for reading; their goals are `bench/app.sh`'s. 10,000 sessions by default;
/// `LABPIPE_SCALE_SESSIONS=100000 cargo test -p labpipe-lab catalog_at_scale -- --nocapture`.
#[test]
fn catalog_at_scale() {
    let n: usize = std::env::var("LABPIPE_SCALE_SESSIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let start = chrono::NaiveDate::from_ymd_opt(2021, 1, 1)
        .unwrap()
        .and_hms_opt(8, 0, 0)
        .unwrap();
    // Heap in use, glibc's count over every arena.
    let heap = || {
        // SAFETY: mallinfo2 only reads the allocator's counters.
        unsafe { libc::mallinfo2().uordblks as f64 / 1e6 }
    };
    let start_heap = heap();
    let items: Vec<SessionItem> = (0..n)
        .map(|k| {
            let at = start + chrono::Duration::minutes(37 * k as i64);
            let session = at.format("%Y%m%d_%H%M%S").to_string();
            let mut i = SessionItem::placeholder(
                &session,
                at,
                Status::ALL[[4, 6, 6, 6, 8][k % 5]],
                chrono::Utc::now(),
            );
            i.manifest_sha256 = Some(format!("{:064x}", k));
            i.raw_prefix = Some(format!(
                "s3://labpipe-raw/{}",
                labpipe_core::layout::raw_session_prefix(&session)
            ));
            i.status_step = Some("ingest".into());
            i.status_message = Some("5 files (153600512 bytes)".into());
            i.total_bytes = 150_000_000 + k as u64 * 7919 % 300_000_000;
            i.file_count = 5;
            let m = &mut i.metadata;
            let num = |v: f64| MetaValue::Number(v);
            let text = |v: String| MetaValue::Text(v);
            m.insert("fatigue".into(), num((k * 7 % 11) as f64));
            m.insert(
                "hardware_model".into(),
                text(["X200", "X100", "Q8"][k % 3].into()),
            );
            m.insert("subject_id".into(), text(format!("S{:03}", k % 48 + 1)));
            m.insert("sample_rate_hz".into(), num([1000.0, 2000.0][k % 2]));
            m.insert("channels".into(), num([64.0, 32.0, 8.0][k % 3]));
            m.insert(
                "sample_format".into(),
                text(["int16", "float32"][k % 2].into()),
            );
            m.insert(
                "operator".into(),
                text(["chen", "diaz", "ito"][k % 3].into()),
            );
            m.insert(
                "electrode_impedance_kohm".into(),
                num((k % 200) as f64 / 10.0),
            );
            i
        })
        .collect();
    let scanned_mb = heap() - start_heap;
    let rows_json = serde_json::to_string(&items.iter().map(CatalogRow::from).collect::<Vec<_>>())
        .unwrap()
        .len();
    // The former store: the entries without metadata and one filter subject per session,
    // each with its own metadata map.
    let schema = LabSchema::default();
    let before = heap();
    let stripped: Vec<SessionItem> = items
        .iter()
        .map(|i| SessionItem {
            metadata: Default::default(),
            ..i.clone()
        })
        .collect();
    let subjects: Vec<_> = items.iter().map(SessionItem::subject).collect();
    let former_mb = heap() - before;
    drop(stripped);
    let by_subject = |text: &str| {
        let f = Filter::new(text, &schema).unwrap();
        let t = Instant::now();
        let hits = subjects.iter().filter(|s| f.matches(*s)).count();
        (hits, t.elapsed().as_secs_f64() * 1e3)
    };
    let before = heap();
    let t = Instant::now();
    let loaded = Loaded::new(items, LabSchema::default());
    let new_ms = t.elapsed().as_secs_f64() * 1e3;
    // `items` (with their metadata maps) moved in and were partly freed: what stays is the store.
    let items_mb = before - heap();
    let t = Instant::now();
    let json = serde_json::to_string(&loaded.snapshot(String::new(), 0.0)).unwrap();
    let snapshot_ms = t.elapsed().as_secs_f64() * 1e3;
    println!("{n} sessions: columns built in {new_ms:.0} ms; snapshot + JSON {snapshot_ms:.0} ms, {:.1} MB (as row objects: {:.1} MB)", json.len() as f64 / 1e6, rows_json as f64 / 1e6);
    println!(
        "  one entry without its strings: {} bytes",
        std::mem::size_of::<SessionItem>()
    );
    let columns_mb = scanned_mb - items_mb;
    println!("  heap: the entries as scanned {scanned_mb:.1} MB; kept by the former store (entries + subjects) {former_mb:.1} MB, by the columns {columns_mb:.1} MB");
    assert!(
        columns_mb <= former_mb / 2.0,
        "the columns keep {columns_mb:.1} MB of heap for {n} sessions, more than half the former store's {former_mb:.1} MB"
    );
    assert!(
        json.len() * 2 <= rows_json,
        "the snapshot's JSON is {} bytes for {n} sessions, more than half the row objects' {rows_json}",
        json.len()
    );
    for text in [
        "",
        "fatigue > 5",
        "hardware_model = \"X200\" and status = processed",
        "date >= 2021-06-01 and date < 2021-07-01",
        "status = failed or fatigue >= 8",
        "fatigue > 99",
    ] {
        let r = loaded.filter(text).unwrap();
        let t = Instant::now();
        let json = serde_json::to_string(&r).unwrap();
        let json_ms = t.elapsed().as_secs_f64() * 1e3;
        let (hits, subject_ms) = if text.is_empty() {
            (r.rows(n).len(), 0.0)
        } else {
            by_subject(text)
        };
        assert_eq!(hits, r.rows(n).len(), "{text}");
        println!(
            "  {text:<50} {:>7} rows  filter {:>6.1} ms (per-session subjects: {subject_ms:>6.1} ms)  JSON {:>5.1} ms, {:>4} kB",
            r.rows(n).len(),
            r.elapsed_ms,
            json_ms,
            json.len() / 1000
        );
    }
}

/// A session past its budget says so in its detail, with the latest error of its history (newer
/// than the item's own message) and the operator's commands; one within its budget, or settled,
/// does not.
#[test]
fn the_detail_of_a_stuck_session_says_so_with_the_last_error_of_its_history() {
    use chrono::Duration;
    use labpipe_catalog::{Event, Level};
    let now = chrono::Utc::now();
    let at = chrono::NaiveDateTime::parse_from_str("20210301_090000", "%Y%m%d_%H%M%S").unwrap();
    let entry = |status, age: Duration| {
        let mut i = SessionItem::placeholder("20210301_090000", at, status, now - age);
        i.status_message = Some("cataloged from raw/20210301_090000/manifest.json".into());
        i
    };
    let event = |age: Duration, level, message: &str| Event {
        at: now - age,
        seq: 1,
        status: None,
        from: None,
        step: "ingest".into(),
        level,
        message: message.into(),
    };
    let events = [
        event(Duration::minutes(150), Level::Info, "cataloged"),
        event(
            Duration::minutes(120),
            Level::Error,
            "ingest failed on all 5 deliveries (throttled)",
        ),
        event(Duration::minutes(60), Level::Warning, "a note"),
    ];
    let stuck = stuck_line(&entry(Status::Cataloged, Duration::hours(3)), &events, now)
        .expect("3 h cataloged is past its budget");
    for want in [
        "waited to be processed for 3 h",
        "the last error in its history (ingest at",
        "ingest failed on all 5 deliveries (throttled)",
        "labpipe status 20210301_090000",
        "labpipe redrive",
    ] {
        assert!(stuck.contains(want), "{want:?} not in {stuck:?}");
    }
    assert!(!stuck.contains("cataloged from"), "{stuck}");
    assert_eq!(
        stuck_line(
            &entry(Status::Cataloged, Duration::minutes(10)),
            &events,
            now
        ),
        None,
        "within its budget"
    );
    assert_eq!(
        stuck_line(&entry(Status::Processed, Duration::days(30)), &events, now),
        None,
        "settled sessions are never stuck"
    );
}
