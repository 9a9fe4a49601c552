//! The catalog against the local DynamoDB emulator, through the real SDK.

use chrono::{NaiveDateTime, Utc};
use labpipe_catalog::{
    create_table, Catalog, CatalogError, Level, OutputFile, OutputRecord, PutOutcome, SessionItem,
    Status,
};
use labpipe_core::MetaValue;
use labpipe_tests::{unique_name, Emulator};

async fn catalog() -> Catalog {
    let emulator = Emulator::shared();
    let db = emulator.dynamodb_client().await;
    let table = unique_name("catalog");
    create_table(&db, &table).await.expect("create table");
    Catalog::new(db, table)
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

#[tokio::test]
async fn put_is_idempotent_and_refuses_a_different_manifest() {
    let c = catalog().await;
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

#[tokio::test]
async fn transitions_follow_the_status_machine_and_keep_history() {
    let c = catalog().await;
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

#[tokio::test]
async fn failures_of_unknown_sessions_leave_a_placeholder_that_a_good_manifest_replaces() {
    let c = catalog().await;
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

#[tokio::test]
async fn outputs_listing_and_scans() {
    let c = catalog().await;
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
        bucket: "processed".into(),
        prefix: "v3/20210402_080000/".into(),
        files: vec![OutputFile {
            key: "v3/20210402_080000/summary.json".into(),
            size: 10,
            sha256: "ff".into(),
        }],
        created_at: Utc::now(),
    };
    c.record_outputs("20210402_080000", &record).await.unwrap();
    let back = c.outputs("20210402_080000", 3).await.unwrap().unwrap();
    assert_eq!(back.files, record.files);
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
