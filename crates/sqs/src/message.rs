//! What travels on the queues: preprocessing requests, and S3 event notifications of manifests.
//!
//! An S3 event is read in one place, [`manifest_events`], into `aws_lambda_events`' own
//! [`S3Event`] type: ingest handles what it returns, and `labpipe redrive` and `labpipe status`
//! name a dead-lettered event's session with it ([`session_of`]).

use aws_lambda_events::event::s3::{S3Event, S3EventRecord};
use labpipe_core::layout::manifest_revision;
use labpipe_core::SessionId;
use percent_encoding::percent_decode_str;
use serde::{Deserialize, Serialize};
use serde_json::Value;

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

/// A session manifest named by an S3 event record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestEvent {
    pub bucket: String,
    /// The decoded key, `raw/<session>/manifest.json` or `raw/<session>.r<R>/manifest.json`.
    pub key: String,
    pub version_id: Option<String>,
    pub session: SessionId,
    /// The revision the key's folder names (1 for `raw/<session>/`).
    pub revision: u32,
    /// The principal that wrote the manifest (`userIdentity.principalId`: for an assumed role
    /// `AWS:<role id>:<session name>`), when the event says.
    pub principal: Option<String>,
}

/// The session manifests an S3 event notification (an SQS message body) announces as created;
/// records of other keys and other event kinds are left out, and S3's `s3:TestEvent` (sent once
/// when a notification is configured) announces none. A body that is not an S3 event is an
/// error.
///
/// S3 writes every field [`S3Event`] requires; the emulator leaves out `userIdentity` and
/// `requestParameters`, and events `labpipe redrive` sent before it wrote complete ones have no
/// `eventTime`. Those three are read as empty when absent (ingest reads none of them but the
/// principal, which is then unknown).
pub fn manifest_events(body: &str) -> Result<Vec<ManifestEvent>, serde_json::Error> {
    let mut value: Value = serde_json::from_str(body)?;
    if value.get("Event").and_then(Value::as_str) == Some("s3:TestEvent") {
        return Ok(Vec::new());
    }
    if let Some(records) = value.get_mut("Records").and_then(Value::as_array_mut) {
        for record in records.iter_mut().filter_map(Value::as_object_mut) {
            for (field, empty) in [
                ("userIdentity", serde_json::json!({})),
                ("requestParameters", serde_json::json!({})),
                ("eventTime", serde_json::json!("1970-01-01T00:00:00Z")),
            ] {
                record.entry(field).or_insert(empty);
            }
        }
    }
    let event: S3Event = serde_json::from_value(value)?;
    Ok(event.records.iter().filter_map(manifest_of).collect())
}

/// The manifest a record announces as created, if it does.
fn manifest_of(record: &S3EventRecord) -> Option<ManifestEvent> {
    if !record
        .event_name
        .as_deref()
        .is_some_and(|name| name.starts_with("ObjectCreated"))
    {
        return None;
    }
    let key = decode_event_key(record.s3.object.key.as_deref()?);
    let (session, revision) = manifest_revision(&key)?;
    let present = |v: &Option<String>| v.clone().filter(|v| !v.is_empty());
    Some(ManifestEvent {
        bucket: record.s3.bucket.name.clone()?,
        key,
        version_id: present(&record.s3.object.version_id),
        session,
        revision,
        principal: present(&record.principal_id.principal_id),
    })
}

/// Decodes a key from an S3 event. S3 event notifications URL-encode keys the way HTML forms do
/// (`raw%2F2021…`, `+` for a space), and the emulator does the same
/// (<https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html>:
/// "The object key name value is URL encoded.").
pub fn decode_event_key(key: &str) -> String {
    percent_decode_str(&key.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

/// The S3 event notification ingest receives when a revision's manifest is created
/// (`raw/<session>/manifest.json` for revision 1, `raw/<session>.r<R>/manifest.json` for a
/// correction; [`labpipe_core::layout::revision_manifest_key`]), as S3 writes it. Sending it
/// again re-runs ingest for that revision: ingest reads the manifest and the objects from the
/// bucket, so the event carries no state that could be stale.
pub fn ingest_event(bucket: &str, session: &str, revision: u32) -> String {
    let mut record = S3EventRecord::default();
    record.event_version = Some("2.1".into());
    record.event_source = Some("aws:s3".into());
    record.event_name = Some("ObjectCreated:Put".into());
    record.event_time = chrono::Utc::now();
    record.s3.bucket.name = Some(bucket.to_string());
    record.s3.object.key = Some(labpipe_core::layout::revision_manifest_key(
        session, revision,
    ));
    let mut event = S3Event::default();
    event.records.push(record);
    serde_json::to_string(&event).expect("an S3 event serialises")
}

/// The session a message is about: a preprocessing request's `session`, or the session of the
/// first manifest an S3 event announces. `None` for anything else (a test event, a malformed
/// body).
pub fn session_of(body: &str) -> Option<String> {
    if let Ok(request) = serde_json::from_str::<PreprocessRequest>(body) {
        return Some(request.session);
    }
    manifest_events(body)
        .ok()?
        .first()
        .map(|m| m.session.to_string())
}

#[cfg(test)]
mod tests;
