//! The spool shipped to a real CloudWatch Logs API (the emulator on 127.0.0.1): records arrive as
//! JSON in the lab PC's stream, wait in the spool while the endpoint is unreachable or the log
//! group is missing, and a full spool's dropped records are reported.

use aws_sdk_cloudwatchlogs::Client as Logs;
use chrono::Utc;
use labpipe_clientlog::{ClientLog, ClientLogError, Kind, Origin, Record, Spool};
use labpipe_tests::{unique_name, Emulator};
use std::net::TcpListener;
use std::time::Duration;

fn origin() -> Origin {
    Origin {
        host: unique_name("lab-pc"),
        user: "technician".into(),
        program: "labpipe".into(),
    }
}

async fn logs(emulator: &Emulator) -> Logs {
    Logs::new(&emulator.sdk_config().await)
}

async fn new_group(logs: &Logs) -> String {
    let group = format!("/labpipe/{}/clients", unique_name("stack"));
    logs.create_log_group()
        .log_group_name(&group)
        .send()
        .await
        .expect("create log group");
    group
}

/// Every message in the stream, oldest first, as JSON.
async fn messages(logs: &Logs, group: &str, stream: &str) -> Vec<serde_json::Value> {
    let out = logs
        .get_log_events()
        .log_group_name(group)
        .log_stream_name(stream)
        .start_from_head(true)
        .send()
        .await
        .unwrap_or_else(|e| panic!("read {group} {stream}: {e:?}"));
    out.events()
        .iter()
        .map(|e| serde_json::from_str(e.message().unwrap()).expect("one JSON object per event"))
        .collect()
}

fn records(origin: &Origin, n: usize) -> Vec<Record> {
    (0..n)
        .map(|i| {
            Record::new(origin, Kind::Failed, Utc::now())
                .session(format!("20260101_0000{i:02}"))
                .lab_folder("/data/lab")
                .reason(format!("connection reset, attempt {i}"))
        })
        .collect()
}

fn client_log(dir: &tempfile::TempDir, cap: u64, origin: Origin) -> ClientLog {
    ClientLog::new(
        Spool::open(&dir.path().join("client-log.sqlite3"), cap).unwrap(),
        origin,
    )
}

/// An SDK configuration whose endpoint refuses connections (a port nobody listens on).
async fn unreachable(emulator: &Emulator) -> aws_config::SdkConfig {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    emulator
        .sdk_config()
        .await
        .into_builder()
        .endpoint_url(format!("http://127.0.0.1:{port}"))
        .build()
}

#[tokio::test]
async fn spooled_records_arrive_as_json_in_the_lab_pcs_stream_and_leave_the_spool() {
    let emulator = Emulator::shared();
    let logs = logs(emulator).await;
    let group = new_group(&logs).await;
    let dir = tempfile::tempdir().unwrap();
    let origin = origin();
    let log = client_log(&dir, 1000, origin.clone());
    let sent = records(&origin, 25);
    log.record(&sent);
    let shipped = log
        .ship(
            &emulator.sdk_config().await,
            &group,
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert_eq!(shipped.sent, 25);
    assert!(log.spool().is_empty().unwrap());
    let got = messages(&logs, &group, &origin.stream_name()).await;
    assert_eq!(got.len(), 25);
    for (g, r) in got.iter().zip(&sent) {
        assert_eq!(g["kind"], "FAILED");
        assert_eq!(g["session"], r.session.clone().unwrap());
        assert_eq!(g["host"], origin.host);
        assert_eq!(g["lab_folder"], "/data/lab");
        assert_eq!(g["reason"], r.reason.clone().unwrap());
    }
    // A second run appends to the same stream (it already exists).
    log.record(&records(&origin, 2));
    let again = log
        .ship(
            &emulator.sdk_config().await,
            &group,
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert_eq!(again.sent, 2);
    assert_eq!(
        messages(&logs, &group, &origin.stream_name()).await.len(),
        27
    );
}

#[tokio::test]
async fn records_wait_while_the_endpoint_is_unreachable_and_go_with_the_next_run() {
    let emulator = Emulator::shared();
    let logs = logs(emulator).await;
    let group = new_group(&logs).await;
    let dir = tempfile::tempdir().unwrap();
    let origin = origin();
    let log = client_log(&dir, 1000, origin.clone());
    log.record(&records(&origin, 3));
    let started = std::time::Instant::now();
    let err = log
        .ship(
            &unreachable(emulator).await,
            &group,
            Duration::from_secs(30),
        )
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert!(
        matches!(err, ClientLogError::Send { .. }) && err.to_string().contains("wait in the spool"),
        "{err}"
    );
    assert_eq!(log.spool().len().unwrap(), 3);
    // The lease was handed back: the next run ships at once.
    let shipped = log
        .ship(
            &emulator.sdk_config().await,
            &group,
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert_eq!(shipped.sent, 3);
    assert_eq!(
        messages(&logs, &group, &origin.stream_name()).await.len(),
        3
    );
}

#[tokio::test]
async fn a_missing_log_group_keeps_the_records_and_says_what_to_do() {
    let emulator = Emulator::shared();
    let dir = tempfile::tempdir().unwrap();
    let origin = origin();
    let log = client_log(&dir, 1000, origin.clone());
    log.record(&records(&origin, 2));
    let err = log
        .ship(
            &emulator.sdk_config().await,
            "/labpipe/no-such-stack/clients",
            Duration::from_secs(30),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientLogError::MissingLogGroup { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("deploy the stack"), "{err}");
    assert_eq!(log.spool().len().unwrap(), 2);
}

#[tokio::test]
async fn a_full_spool_drops_the_oldest_and_reports_how_many() {
    let emulator = Emulator::shared();
    let logs = logs(emulator).await;
    let group = new_group(&logs).await;
    let dir = tempfile::tempdir().unwrap();
    let origin = origin();
    let log = client_log(&dir, 5, origin.clone());
    let all = records(&origin, 8);
    for r in &all {
        log.record(std::slice::from_ref(r));
    }
    assert_eq!(log.spool().len().unwrap(), 5);
    assert_eq!(log.spool().dropped().unwrap(), 3);
    let shipped = log
        .ship(
            &emulator.sdk_config().await,
            &group,
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert_eq!((shipped.sent, shipped.dropped_reported), (5, 3));
    assert_eq!(log.spool().dropped().unwrap(), 0);
    let got = messages(&logs, &group, &origin.stream_name()).await;
    let sessions: Vec<_> = got
        .iter()
        .filter(|m| m["kind"] == "FAILED")
        .map(|m| m["session"].as_str().unwrap().to_string())
        .collect();
    let newest: Vec<_> = all[3..]
        .iter()
        .map(|r| r.session.clone().unwrap())
        .collect();
    assert_eq!(sessions, newest, "the three oldest are the ones dropped");
    let dropped: Vec<_> = got.iter().filter(|m| m["kind"] == "DROPPED").collect();
    assert_eq!(dropped.len(), 1, "{got:?}");
    assert_eq!(dropped[0]["count"], 3);
}
