//! What travels on the queues: preprocessing requests, and S3 event notifications of manifests.

use serde::{Deserialize, Serialize};

/// The message on the preprocess queue: process `session` with pipeline `pipeline_version`,
/// writing `v<N>/<session>/` in the processed bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreprocessRequest {
    pub session: String,
    pub pipeline_version: u32,
}

impl PreprocessRequest {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a request serialises")
    }
}

/// The S3 event notification ingest receives when a revision's manifest is created
/// (`raw/<session>/manifest.json` for revision 1, `raw/<session>.r<R>/manifest.json` for a
/// correction; [`labpipe_core::layout::revision_manifest_key`]), as S3 writes it (only the fields
/// ingest reads). Sending it again re-runs ingest for that revision: ingest reads the manifest
/// and the objects from the bucket, so the event carries no state that could be stale.
pub fn ingest_event(bucket: &str, session: &str, revision: u32) -> String {
    serde_json::json!({
        "Records": [{
            "eventVersion": "2.1",
            "eventSource": "aws:s3",
            "eventName": "ObjectCreated:Put",
            "s3": {
                "bucket": {"name": bucket},
                "object": {"key": labpipe_core::layout::revision_manifest_key(session, revision)}
            }
        }]
    })
    .to_string()
}

/// The session a message is about: a preprocessing request's `session`, or the session folder of
/// the first manifest key in an S3 event (keys in events are URL-encoded). `None` for anything
/// else (a test event, a malformed body).
pub fn session_of(body: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(body).ok()?;
    if let Some(s) = value.get("session").and_then(|s| s.as_str()) {
        return Some(s.to_string());
    }
    value
        .get("Records")?
        .as_array()?
        .iter()
        .filter_map(|r| r.pointer("/s3/object/key")?.as_str())
        .find_map(|key| {
            let key = percent_encoding::percent_decode_str(&key.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned();
            labpipe_core::layout::manifest_revision(&key).map(|(session, _)| session.to_string())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let encoded =
            r#"{"Records":[{"s3":{"object":{"key":"raw%2F20210303_101010%2Fmanifest.json"}}}]}"#;
        assert_eq!(session_of(encoded).as_deref(), Some("20210303_101010"));
        let data = r#"{"Records":[{"s3":{"object":{"key":"raw/20210303_101010/ch01.bin"}}}]}"#;
        assert_eq!(session_of(data), None);
        assert_eq!(session_of(r#"{"Event":"s3:TestEvent"}"#), None);
        assert_eq!(session_of("not json"), None);
    }

    /// Redrive sends the manifest of the revision it names: the first upload's, or a
    /// correction's own folder.
    #[test]
    fn ingest_events_name_the_revisions_manifest() {
        let key = |revision| {
            let body: serde_json::Value =
                serde_json::from_str(&ingest_event("raw-bucket", "20210302_090000", revision))
                    .unwrap();
            body["Records"][0]["s3"]["object"]["key"]
                .as_str()
                .unwrap()
                .to_string()
        };
        assert_eq!(key(1), "raw/20210302_090000/manifest.json");
        assert_eq!(key(2), "raw/20210302_090000.r2/manifest.json");
    }
}
