use super::*;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use proptest::prelude::*;

/// How S3 encodes a key in an event: form encoding, a space as `+`; `/` kept (AWS) or encoded
/// (the emulator).
fn event_encode(key: &str, slash: bool) -> String {
    const KEEP: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'*');
    const KEEP_SLASH: &AsciiSet = &KEEP.remove(b'/');
    let set = if slash { KEEP } else { KEEP_SLASH };
    utf8_percent_encode(key, set)
        .to_string()
        .replace("%20", "+")
}

/// An S3 event of `records` (event name, encoded key, version id) as AWS writes it, or as the
/// emulator does (`emulator`: no `userIdentity`, no `requestParameters`, no `responseElements`;
/// `infra/` deploys the template to it, and its events reach ingest).
fn body(records: &[(&str, &str, Option<&str>)], emulator: bool) -> String {
    let records: Vec<Value> = records
        .iter()
        .map(|(name, key, version)| {
            let mut record = serde_json::json!({
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": "eu-central-1",
                "eventTime": "2021-03-01T17:00:00.000Z",
                "eventName": name,
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "manifests",
                    "bucket": {"name": "raw-bucket", "arn": "arn:aws:s3:::raw-bucket"},
                    "object": {"key": key, "size": 10, "eTag": "0123", "versionId": version},
                },
            });
            if !emulator {
                record["userIdentity"] =
                    serde_json::json!({"principalId": "AWS:AROAEXAMPLE:lab-pc"});
                record["requestParameters"] = serde_json::json!({"sourceIPAddress": "192.0.2.1"});
                record["responseElements"] =
                    serde_json::json!({"x-amz-request-id": "C3D13FE58DE4C810"});
            }
            record
        })
        .collect();
    serde_json::json!({ "Records": records }).to_string()
}

fn session_id() -> impl Strategy<Value = String> {
    (
        2000u32..2100,
        1u32..13,
        1u32..29,
        0u32..24,
        0u32..60,
        0u32..60,
    )
        .prop_map(|(y, mo, d, h, mi, s)| format!("{y:04}{mo:02}{d:02}_{h:02}{mi:02}{s:02}"))
}

proptest! {
    #[test]
    fn manifest_keys_survive_event_encoding(
        session in session_id(),
        slash in any::<bool>(),
        emulator in any::<bool>(),
        version in proptest::option::of("[A-Za-z0-9._]{1,32}"),
    ) {
        let key = labpipe_core::layout::manifest_key(&session);
        let text = body(&[("ObjectCreated:CompleteMultipartUpload", &event_encode(&key, slash), version.as_deref())], emulator);
        let found = manifest_events(&text).unwrap();
        prop_assert_eq!(found.len(), 1);
        prop_assert_eq!(&found[0].key, &key);
        prop_assert_eq!(found[0].session.to_string(), session.clone());
        prop_assert_eq!(found[0].revision, 1);
        prop_assert_eq!(found[0].version_id.as_deref(), version.as_deref());
        prop_assert_eq!(found[0].bucket.as_str(), "raw-bucket");
        let principal = (!emulator).then_some("AWS:AROAEXAMPLE:lab-pc");
        prop_assert_eq!(found[0].principal.as_deref(), principal);
        prop_assert_eq!(session_of(&text), Some(session));
    }

    #[test]
    fn other_keys_and_events_are_ignored(
        session in session_id(),
        path in "[ a-zA-Z0-9+%()._/-]{1,40}",
        slash in any::<bool>(),
        emulator in any::<bool>(),
    ) {
        prop_assume!(path != "manifest.json");
        let data = labpipe_core::layout::raw_key(&session, &path);
        let manifest = labpipe_core::layout::manifest_key(&session);
        let text = body(&[
            ("ObjectCreated:Put", &event_encode(&data, slash), None),
            ("ObjectRemoved:Delete", &event_encode(&manifest, slash), None),
        ], emulator);
        prop_assert!(manifest_events(&text).unwrap().is_empty());
        prop_assert_eq!(session_of(&text), None);
    }

    #[test]
    fn any_body_parses_or_fails_without_panicking(text in ".{0,200}") {
        let _ = manifest_events(&text);
        let _ = session_of(&text);
    }
}

#[test]
fn test_events_and_bad_bodies() {
    assert!(manifest_events(r#"{"Event":"s3:TestEvent"}"#)
        .unwrap()
        .is_empty());
    assert!(manifest_events("not json").is_err());
}

/// A JSON object without `Records` is not an S3 event: it goes to the dead-letter queue for
/// someone to look at, it is not deleted as an event that named no manifest.
#[test]
fn a_body_without_records_is_not_an_s3_event() {
    for body in [
        "{}",
        r#"{"session":"20210301_161221"}"#,
        r#"{"Event":"s3:ObjectCreated:Put"}"#,
    ] {
        assert!(manifest_events(body).is_err(), "{body}");
    }
}

/// `labpipe redrive` sends an event S3 itself could have sent: it reads as `aws_lambda_events`'
/// type with nothing filled in, and names the revision's manifest.
#[test]
fn redrives_event_is_an_s3_event_as_s3_writes_it() {
    for (revision, key) in [
        (1, "raw/20210302_090000/manifest.json"),
        (2, "raw/20210302_090000.r2/manifest.json"),
    ] {
        let text = ingest_event("raw-bucket", "20210302_090000", revision);
        let strict: S3Event = serde_json::from_str(&text).expect("a complete S3 event");
        assert_eq!(strict.records.len(), 1);
        assert_eq!(strict.records[0].s3.object.key.as_deref(), Some(key));
        let found = manifest_events(&text).unwrap();
        assert_eq!(
            (
                found[0].key.as_str(),
                found[0].revision,
                found[0].bucket.as_str()
            ),
            (key, revision, "raw-bucket")
        );
    }
}

#[test]
fn messages_name_their_session() {
    let request = PreprocessRequest {
        session: "20210301_161221".into(),
        pipeline_version: 2,
    };
    assert_eq!(
        request.to_json(),
        r#"{"session":"20210301_161221","pipeline_version":2}"#
    );
    assert_eq!(
        session_of(&request.to_json()).as_deref(),
        Some("20210301_161221")
    );
    assert_eq!(
        session_of(&ingest_event("raw-bucket", "20210302_090000", 1)).as_deref(),
        Some("20210302_090000")
    );
    // A correction's manifest names its session, not its folder.
    assert_eq!(
        session_of(&ingest_event("raw-bucket", "20210302_090000", 2)).as_deref(),
        Some("20210302_090000")
    );
    // URL-encoded key, as S3 sends it; a data file's event names no session.
    let encoded = body(
        &[(
            "ObjectCreated:Put",
            "raw%2F20210303_101010%2Fmanifest.json",
            None,
        )],
        false,
    );
    assert_eq!(session_of(&encoded).as_deref(), Some("20210303_101010"));
    let data = body(
        &[("ObjectCreated:Put", "raw/20210303_101010/ch01.bin", None)],
        true,
    );
    assert_eq!(session_of(&data), None);
    assert_eq!(session_of(r#"{"Event":"s3:TestEvent"}"#), None);
    assert_eq!(session_of("not json"), None);
}

#[test]
fn event_keys_are_decoded() {
    for (raw, want) in [
        (
            "raw%2F20210301_161221%2Fmanifest.json",
            "raw/20210301_161221/manifest.json",
        ),
        (
            "raw/20210301_161221/manifest.json",
            "raw/20210301_161221/manifest.json",
        ),
        ("raw/x/my+file%281%29.bin", "raw/x/my file(1).bin"),
        ("raw/x/a%2Bb", "raw/x/a+b"),
    ] {
        assert_eq!(decode_event_key(raw), want, "{raw}");
    }
}
