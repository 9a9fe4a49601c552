//! The catalog against two DynamoDB implementations, through the real SDK: the local emulator's
//! (moto) and dynalite (LevelDB, written to mirror DynamoDB's validation). Each test runs as
//! `<name>::emulator` and `<name>::dynalite`; dynalite lacks transactions, so the dynalite variant
//! of a test whose writes are transactions checks that the catalog's error names the missing
//! operation instead (`docs/catalog.md`, *Two DynamoDB implementations*): what passes on one only
//! is a quirk of that one, not a property of the catalog. `labpipe_tests::on_each_engine!` makes
//! the two tests of each body.

use chrono::{NaiveDateTime, Utc};
use labpipe_catalog::{
    Catalog, CatalogError, Event, Level, OutputFile, OutputRecord, PutOutcome, SessionItem,
    SessionRecord, Status,
};
use labpipe_core::{layout, MetaValue};
use labpipe_tests::{create_catalog_table, on_each_engine, unique_name, DynamoServer};

async fn catalog(server: DynamoServer) -> Catalog {
    let db = server.dynamodb_client().await;
    let table = unique_name("catalog");
    create_catalog_table(&db, &table)
        .await
        .expect("create table");
    Catalog::new(db, table)
}

/// On dynalite, a pipeline write (a transaction) fails with the catalog's service error naming
/// `operation` and DynamoDB's `UnknownOperationException`, not retryable; this fails the day
/// dynalite gains the operation (then run the whole test there).
async fn missing_operation_is_named(operation: &str) {
    let server = DynamoServer::Dynalite;
    assert!(
        server.lacks(operation),
        "{operation} is not in DYNALITE_LACKS"
    );
    let c = catalog(server).await;
    let err = c
        .put_new_session(&entry("20210301_161221", "aaa"))
        .await
        .unwrap_err();
    match &err {
        CatalogError::Service {
            operation: op,
            code: Some(code),
            ..
        } => {
            assert_eq!(*op, operation, "{err}");
            assert_eq!(code, "UnknownOperationException", "{err}");
        }
        _ => panic!(
            "dynalite answered {operation} ({err}): it gained the operation — remove it from \
             DYNALITE_LACKS and run the whole test on dynalite"
        ),
    }
    assert!(!err.is_retryable(), "{err}");
}

fn entry(session: &str, sha: &str) -> SessionItem {
    let recorded_at = NaiveDateTime::parse_from_str(
        &format!("{}T{}", &session[..8], &session[9..]),
        "%Y%m%dT%H%M%S",
    )
    .unwrap();
    let mut item = SessionItem::placeholder(session, recorded_at, Status::Cataloged, Utc::now());
    item.manifest_sha256 = Some(sha.into());
    item.status_step = Some("ingest".into());
    item.status_message = Some("verified".into());
    item.total_bytes = 1234;
    item.file_count = 3;
    item.metadata
        .insert("fatigue".into(), MetaValue::Number(7.5));
    item.metadata
        .insert("hardware_model".into(), MetaValue::Text("X200".into()));
    item
}

on_each_engine!(#[tokio::test]
    async fn put_is_idempotent_and_refuses_a_different_manifest
    on emulator, dynalite instead super::missing_operation_is_named("TransactWriteItems"));
async fn put_is_idempotent_and_refuses_a_different_manifest(server: DynamoServer) {
    let c = catalog(server).await;
    let e = entry("20210301_161221", "aaa");
    let PutOutcome::Created(created) = c.put_new_session(&e).await.unwrap() else {
        panic!("first put must create")
    };
    assert_eq!(created.event_count, 1);
    assert!(matches!(
        c.put_new_session(&e).await.unwrap(),
        PutOutcome::AlreadyCataloged(_)
    ));
    let err = c
        .put_new_session(&entry("20210301_161221", "bbb"))
        .await
        .unwrap_err();
    assert!(matches!(err, CatalogError::Conflict { .. }), "{err}");
    assert!(!err.is_retryable());
    let got = c.get("20210301_161221").await.unwrap().unwrap();
    assert_eq!(got.manifest_sha256.as_deref(), Some("aaa"));
    assert_eq!(got.metadata["fatigue"], MetaValue::Number(7.5));
    assert_eq!(c.events("20210301_161221").await.unwrap().len(), 1);
}

on_each_engine!(#[tokio::test]
    async fn transitions_follow_the_status_machine_and_keep_history
    on emulator, dynalite instead super::missing_operation_is_named("TransactWriteItems"));
async fn transitions_follow_the_status_machine_and_keep_history(server: DynamoServer) {
    let c = catalog(server).await;
    let s = "20210302_090000";
    c.put_new_session(&entry(s, "x")).await.unwrap();
    let err = c
        .transition(s, Status::Processed, "preprocess", "skip")
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            CatalogError::InvalidTransition {
                from: Status::Cataloged,
                to: Status::Processed,
                ..
            }
        ),
        "{err}"
    );
    let item = c
        .transition(s, Status::Processing, "preprocess", "pipeline v1 started")
        .await
        .unwrap();
    // A writer that decided on a stale read loses.
    let stale = c.get(s).await.unwrap().unwrap();
    c.transition(s, Status::Processed, "preprocess", "done")
        .await
        .unwrap();
    let err = c
        .transition_from(&stale, Status::Failed, "preprocess", "late")
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert_eq!(item.status, Status::Processing);
    assert!(c
        .append_event(s, "preprocess", Level::Warning, "a note")
        .await
        .unwrap());
    assert!(!c
        .append_event("20990101_000000", "x", Level::Info, "nobody")
        .await
        .unwrap());

    let events = c.events(s).await.unwrap();
    let statuses: Vec<_> = events.iter().map(|e| e.status).collect();
    assert_eq!(
        statuses,
        [
            Some(Status::Cataloged),
            Some(Status::Processing),
            Some(Status::Processed),
            None
        ]
    );
    let seqs: Vec<_> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [1, 2, 3, 4]);
    assert_eq!(c.get(s).await.unwrap().unwrap().event_count, 4);
}

on_each_engine!(#[tokio::test]
    async fn failures_of_unknown_sessions_leave_a_placeholder_that_a_good_manifest_replaces
    on emulator, dynalite instead super::missing_operation_is_named("TransactWriteItems"));
async fn failures_of_unknown_sessions_leave_a_placeholder_that_a_good_manifest_replaces(
    server: DynamoServer,
) {
    let c = catalog(server).await;
    let s = "20210303_101010";
    let at = NaiveDateTime::parse_from_str("2021-03-03T10:10:10", "%Y-%m-%dT%H:%M:%S").unwrap();
    let failed = c
        .record_failure(s, at, "ingest", "rec_001.bin is missing")
        .await
        .unwrap();
    assert_eq!(failed.status, Status::Failed);
    assert_eq!(failed.month, "2021-03");
    let PutOutcome::Created(item) = c.put_new_session(&entry(s, "good")).await.unwrap() else {
        panic!("a placeholder must be replaced")
    };
    assert_eq!(item.event_count, 2);
    let events = c.events(s).await.unwrap();
    assert_eq!(events[0].level, Level::Error);
    assert_eq!(events[1].from, Some(Status::Failed));
}

on_each_engine!(#[tokio::test]
    async fn outputs_listing_and_scans
    on emulator, dynalite instead super::missing_operation_is_named("TransactWriteItems"));
async fn outputs_listing_and_scans(server: DynamoServer) {
    let c = catalog(server).await;
    for (i, s) in ["20210401_080000", "20210402_080000", "20210501_080000"]
        .iter()
        .enumerate()
    {
        c.put_new_session(&entry(s, &format!("m{i}")))
            .await
            .unwrap();
    }
    c.transition("20210402_080000", Status::Processing, "preprocess", "go")
        .await
        .unwrap();
    let record = OutputRecord {
        version: 3,
        revision: 1,
        bucket: "processed".into(),
        prefix: layout::processed_prefix(3, "20210402_080000", 1),
        files: vec![OutputFile {
            key: layout::processed_key(3, "20210402_080000", 1, "summary.json"),
            size: 10,
            sha256: "ff".into(),
        }],
        created_at: Utc::now(),
    };
    c.record_outputs("20210402_080000", &record).await.unwrap();
    let back = c.outputs("20210402_080000", 3, 1).await.unwrap().unwrap();
    assert_eq!(back.files, record.files);
    // A correction's outputs of the same version are a record of their own: the first
    // revision's stays, and both are listed.
    let corrected = OutputRecord {
        revision: 2,
        prefix: layout::processed_prefix(3, "20210402_080000", 2),
        files: vec![OutputFile {
            key: layout::processed_key(3, "20210402_080000", 2, "summary.json"),
            size: 11,
            sha256: "ee".into(),
        }],
        ..record.clone()
    };
    c.record_outputs("20210402_080000", &corrected)
        .await
        .unwrap();
    // Read back as written (times kept to the millisecond, so compare the rest).
    let shape = |r: &OutputRecord| (r.version, r.revision, r.prefix.clone(), r.files.clone());
    assert_eq!(
        c.outputs("20210402_080000", 3, 1)
            .await
            .unwrap()
            .map(|r| shape(&r)),
        Some(shape(&record))
    );
    assert_eq!(
        c.outputs("20210402_080000", 3, 2)
            .await
            .unwrap()
            .map(|r| shape(&r)),
        Some(shape(&corrected))
    );
    let all: Vec<_> = c
        .all_outputs("20210402_080000")
        .await
        .unwrap()
        .iter()
        .map(shape)
        .collect();
    assert_eq!(all, [shape(&record), shape(&corrected)]);
    assert_eq!(
        c.get("20210402_080000")
            .await
            .unwrap()
            .unwrap()
            .pipeline_version,
        Some(3)
    );
    assert!(matches!(
        c.record_outputs("20990101_000000", &record)
            .await
            .unwrap_err(),
        CatalogError::NotFound { .. }
    ));

    let recent: Vec<_> = c
        .list_recent(2)
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.session)
        .collect();
    assert_eq!(recent, ["20210501_080000", "20210402_080000"]);
    let cataloged = c.with_status(Status::Cataloged, 10).await.unwrap();
    assert_eq!(cataloged.len(), 2);
    assert_eq!(c.scan_all().await.unwrap().len(), 3);
}

/// Sessions written the pipeline's way, one of each shape: processed twice (two output
/// versions), failed while processing, failed before it was cataloged, cataloged with a note.
async fn pipeline_written(c: &Catalog) -> Vec<&'static str> {
    let reprocessed = "20210401_080000";
    c.put_new_session(&entry(reprocessed, "a")).await.unwrap();
    for version in [1, 2] {
        c.transition(reprocessed, Status::Processing, "preprocess", "go")
            .await
            .unwrap();
        let record = OutputRecord {
            version,
            revision: 1,
            bucket: "processed".into(),
            prefix: layout::processed_prefix(version, reprocessed, 1),
            files: vec![OutputFile {
                key: layout::processed_key(version, reprocessed, 1, "features.parquet"),
                size: 1000 + u64::from(version),
                sha256: "ab".repeat(32),
            }],
            created_at: Utc::now(),
        };
        c.record_outputs(reprocessed, &record).await.unwrap();
        c.transition(reprocessed, Status::Processed, "preprocess", "done")
            .await
            .unwrap();
    }
    let failed = "20210415_093000";
    let mut item = entry(failed, "b");
    item.metadata
        .insert("fatigue".into(), MetaValue::Number(3.0));
    c.put_new_session(&item).await.unwrap();
    c.transition(failed, Status::Processing, "preprocess", "go")
        .await
        .unwrap();
    let at = NaiveDateTime::parse_from_str("2021-04-15T09:30:00", "%Y-%m-%dT%H:%M:%S").unwrap();
    c.record_failure(failed, at, "preprocess", "channel 3 is flat")
        .await
        .unwrap();
    let placeholder = "20210502_101010";
    let at = NaiveDateTime::parse_from_str("2021-05-02T10:10:10", "%Y-%m-%dT%H:%M:%S").unwrap();
    c.record_failure(placeholder, at, "ingest", "manifest unreadable")
        .await
        .unwrap();
    let noted = "20210503_120000";
    c.put_new_session(&entry(noted, "c")).await.unwrap();
    c.append_event(noted, "preprocess", Level::Warning, "throttled; retrying")
        .await
        .unwrap();
    vec![reprocessed, failed, placeholder, noted]
}

on_each_engine!(#[tokio::test]
    async fn imported_sessions_read_back_like_pipeline_written_ones on emulator, dynalite);
async fn imported_sessions_read_back_like_pipeline_written_ones(server: DynamoServer) {
    // Written the pipeline's way (transactions) on the emulator, imported into `server`.
    let written = catalog(DynamoServer::Emulator).await;
    let sessions = pipeline_written(&written).await;
    let mut records = Vec::new();
    for s in &sessions {
        records.push(written.read_record(s).await.unwrap().expect("written"));
    }
    assert_eq!(records[0].outputs.len(), 2, "two pipeline versions");
    assert_eq!(records[0].events.len(), 5);

    let imported = catalog(server).await;
    assert!(imported.scan_all().await.unwrap().is_empty());
    let summary = imported.import_sessions(&records).await.unwrap();
    let items: usize = records
        .iter()
        .map(|r| 1 + r.events.len() + r.outputs.len())
        .sum();
    assert_eq!((summary.sessions, summary.items), (4, items));

    for s in &sessions {
        assert_eq!(
            imported.get(s).await.unwrap(),
            written.get(s).await.unwrap(),
            "{s}"
        );
        assert_eq!(
            imported.events(s).await.unwrap(),
            written.events(s).await.unwrap(),
            "{s}"
        );
        assert_eq!(
            imported.all_outputs(s).await.unwrap(),
            written.all_outputs(s).await.unwrap(),
            "{s}"
        );
    }
    let schema = labpipe_core::LabSchema::default();
    for text in [
        "status = failed",
        "fatigue > 5",
        "date >= 2021-04-10 and date < 2021-05-03",
        "hardware_model = \"X200\" and status = processed",
    ] {
        let filter = labpipe_core::filter::Filter::new(text, &schema).unwrap();
        let want = written.query(&filter, None).await.unwrap();
        assert!(!want.is_empty(), "{text} selects something");
        assert_eq!(imported.query(&filter, None).await.unwrap(), want, "{text}");
    }
    assert_eq!(
        imported.with_status(Status::Failed, 10).await.unwrap(),
        written.with_status(Status::Failed, 10).await.unwrap()
    );
    assert_eq!(
        imported.list_recent(10).await.unwrap(),
        written.list_recent(10).await.unwrap()
    );

    // The status machine takes over where the import left off (a transaction: not on dynalite).
    let next = imported
        .transition("20210503_120000", Status::Processing, "preprocess", "go")
        .await;
    if server.lacks("TransactWriteItems") {
        let err = next.unwrap_err();
        assert!(err.to_string().contains("TransactWriteItems"), "{err}");
        return;
    }
    let next = next.unwrap();
    assert_eq!(next.event_count, 3);
    assert_eq!(imported.events("20210503_120000").await.unwrap().len(), 3);
}

/// A processed session with a three-event history and one output record.
fn processed_record(i: usize) -> SessionRecord {
    let session = format!("2021{:02}{:02}_120000", 1 + i / 28, 1 + i % 28);
    let mut item = entry(&session, &format!("sha{i}"));
    item.status = Status::Processed;
    item.event_count = 3;
    item.pipeline_version = Some(1);
    let event = |seq: u64, status: Status| Event {
        at: item.updated_at + chrono::Duration::seconds(seq as i64),
        seq,
        status: Some(status),
        from: None,
        step: "preprocess".into(),
        level: Level::Info,
        message: format!("{status}"),
    };
    let events = vec![
        event(1, Status::Cataloged),
        event(2, Status::Processing),
        event(3, Status::Processed),
    ];
    let outputs = vec![OutputRecord {
        version: 1,
        revision: 1,
        bucket: "processed".into(),
        prefix: layout::processed_prefix(1, &session, 1),
        files: Vec::new(),
        created_at: item.updated_at,
    }];
    SessionRecord {
        item,
        events,
        outputs,
    }
}

on_each_engine!(#[tokio::test]
    async fn import_writes_many_batches_and_refuses_inconsistent_records on emulator, dynalite);
async fn import_writes_many_batches_and_refuses_inconsistent_records(server: DynamoServer) {
    let c = catalog(server).await;
    let records: Vec<_> = (0..60).map(processed_record).collect();
    let summary = c.import_sessions(&records).await.unwrap();
    assert_eq!(summary.items, 60 * 5);
    assert!(summary.requests >= 12, "{summary:?}");
    // The parallel scan of the sparse index: each session once (not its events or outputs),
    // oldest first, whichever segment read it.
    let all = c.scan_all().await.unwrap();
    assert_eq!(all.len(), 60);
    let ids: Vec<_> = all.iter().map(|i| i.session.clone()).collect();
    let mut once_in_order = ids.clone();
    once_in_order.sort();
    once_in_order.dedup();
    assert_eq!(ids, once_in_order);
    assert!(all.iter().all(|i| i.status == Status::Processed));
    assert_eq!(
        c.with_status(Status::Processed, 100).await.unwrap().len(),
        60
    );
    assert_eq!(c.events(&records[59].item.session).await.unwrap().len(), 3);

    // Nothing is written when one record is inconsistent, wherever it is in the import.
    let fresh = catalog(server).await;
    let mut bad = vec![processed_record(70), processed_record(71)];
    bad[1].events.pop();
    let err = fresh.import_sessions(&bad).await.unwrap_err();
    assert!(
        matches!(&err, CatalogError::InvalidRecord { session, .. } if *session == bad[1].item.session),
        "{err}"
    );
    assert!(
        err.to_string().contains("history ends in PROCESSING"),
        "{err}"
    );
    let twice = vec![processed_record(72), processed_record(72)];
    let err = fresh.import_sessions(&twice).await.unwrap_err();
    assert!(err.to_string().contains("more than once"), "{err}");
    assert!(fresh.scan_all().await.unwrap().is_empty());
}

on_each_engine!(#[tokio::test]
    async fn outputs_of_many_sessions_equal_one_read_each on emulator, dynalite);
/// `outputs_of` answers like one `outputs` per pair, in the order asked, across several batches
/// of 100 keys, with missing records, repeated pairs and a version that does not exist.
async fn outputs_of_many_sessions_equal_one_read_each(server: DynamoServer) {
    let c = catalog(server).await;
    let records: Vec<SessionRecord> = (0..230).map(processed_record).collect();
    c.import_sessions(&records).await.unwrap();
    let mut wanted: Vec<(String, u32, u32)> = records
        .iter()
        .map(|r| (r.item.session.clone(), 1, 1))
        .collect();
    wanted.push(("20990101_000000".into(), 1, 1)); // no such session
    wanted.push((records[7].item.session.clone(), 2, 1)); // no such version
    wanted.push((records[5].item.session.clone(), 1, 2)); // no such revision
    wanted.push((records[3].item.session.clone(), 1, 1)); // asked twice
    wanted.reverse();
    let batched = c.outputs_of(&wanted).await.unwrap();
    assert_eq!(batched.len(), wanted.len());
    for ((session, version, revision), got) in wanted.iter().zip(&batched) {
        let one = c.outputs(session, *version, *revision).await.unwrap();
        assert_eq!(got, &one, "{session} v{version} r{revision}");
    }
    assert_eq!(batched.iter().filter(|r| r.is_some()).count(), 231);
    assert!(c.outputs_of(&[]).await.unwrap().is_empty());
}
