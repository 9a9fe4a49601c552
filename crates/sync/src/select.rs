//! From a filter to the exact list of files to fetch, with the size and SHA-256 each must have.
//!
//! Processed files come from the session's `OUTPUT#v<N>` catalog record (never from listing the
//! bucket: a half-written or stray object is not an output until preprocessing recorded it). Raw
//! files come from the session's manifest (`raw/<session>/manifest.json`), which lists every raw
//! file with its SHA-256 (and, on a versioned bucket, its object version) and is itself pinned by
//! the catalog's `manifest_sha256` and `manifest_version_id`.

use std::collections::BTreeMap;

use labpipe_catalog::{Catalog, OutputRecord, SessionItem, Status};
use labpipe_core::filter::Filter;
use serde::Serialize;

use crate::destination::safe_relative;
use crate::remote::{FileKind, RefusedFile, RemoteFile};
use crate::s3::gateway_error;
use crate::{Glob, SyncError};

/// A matching session that has no outputs of the requested pipeline version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unprocessed {
    pub session: String,
    pub status: Status,
}

#[derive(Debug, Clone, Default)]
pub struct SelectOptions {
    /// Pipeline version; `None`: each session's latest (`pipeline_version` on its entry).
    pub version: Option<u32>,
    /// Also fetch the raw files listed in each session's manifest.
    pub raw: bool,
    /// Raw bucket for sessions whose entry has no `raw_prefix`.
    pub raw_bucket: Option<String>,
    /// With `raw`: this revision of each session (1 = the first upload) instead of its current
    /// one; a session without that revision is an error that names it.
    pub raw_revision: Option<u32>,
    /// The outputs of this revision of each session (1 = the first upload) instead of its
    /// current one's; a session without outputs of that revision is listed as unprocessed.
    pub revision: Option<u32>,
    /// Keep only files matching one of these (all when empty).
    pub include: Vec<Glob>,
    pub limit: Option<usize>,
}

/// What a filter selects for syncing.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Matching sessions that have outputs (the ones synced).
    pub sessions: Vec<SessionItem>,
    pub files: Vec<RemoteFile>,
    /// Matching sessions skipped for lack of outputs.
    pub unprocessed: Vec<Unprocessed>,
    /// Files of the synced sessions whose keys are not safe names: reported as not delivered.
    pub refused: Vec<RefusedFile>,
}

impl Selection {
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

/// The processed files of some sessions, and the sessions that have none.
#[derive(Debug, Clone, Default)]
pub struct ProcessedFiles {
    pub files: Vec<RemoteFile>,
    pub unprocessed: Vec<Unprocessed>,
    /// Outputs whose keys are not safe names (see [`RefusedFile`]).
    pub refused: Vec<RefusedFile>,
}

/// The processed files of `sessions` at `version` (each session's latest when `None`) made from
/// `revision` (each session's current revision when `None`), and the sessions that have none.
pub async fn processed_files(
    catalog: &Catalog,
    sessions: &[SessionItem],
    version: Option<u32>,
    revision: Option<u32>,
) -> Result<ProcessedFiles, SyncError> {
    // One batched read for every session with a version to read (100 keys per request).
    let wanted: Vec<(usize, (String, u32, u32))> = sessions
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            let revision = revision.unwrap_or(s.current_revision());
            version
                .or(s.pipeline_version)
                .map(|v| (i, (s.session.clone(), v, revision)))
        })
        .collect();
    let pairs: Vec<(String, u32, u32)> = wanted.iter().map(|(_, p)| p.clone()).collect();
    let read = catalog.outputs_of(&pairs).await?;
    let mut records: BTreeMap<usize, Option<OutputRecord>> =
        (0..sessions.len()).map(|i| (i, None)).collect();
    for ((i, _), record) in wanted.into_iter().zip(read) {
        records.insert(i, record);
    }
    let mut files = Vec::new();
    let mut unprocessed = Vec::new();
    let mut refused = Vec::new();
    for (i, record) in records {
        let s = &sessions[i];
        match record {
            Some(r) if !r.files.is_empty() => {
                let prefix = if r.prefix.is_empty() {
                    labpipe_core::layout::processed_prefix(r.version, &s.session, r.revision)
                } else {
                    r.prefix.clone()
                };
                for f in &r.files {
                    let inner = f
                        .key
                        .strip_prefix(&prefix)
                        .ok_or_else(|| SyncError::UnsafeKey {
                            session: s.session.clone(),
                            key: f.key.clone(),
                            reason: format!("not under the output prefix {prefix}"),
                        });
                    let path =
                        match inner.and_then(|inner| safe_relative(&s.session, inner, &f.key)) {
                            Ok(path) => path,
                            Err(e) => {
                                let inner = f.key.strip_prefix(&prefix).unwrap_or(&f.key);
                                refused.push(refusal(
                                    &s.session,
                                    FileKind::Processed,
                                    &r.bucket,
                                    &f.key,
                                    inner,
                                    e,
                                ));
                                continue;
                            }
                        };
                    files.push(RemoteFile {
                        session: s.session.clone(),
                        kind: FileKind::Processed,
                        bucket: r.bucket.clone(),
                        key: f.key.clone(),
                        path,
                        size: f.size,
                        sha256: f.sha256.to_ascii_lowercase(),
                        version: Some(r.version),
                        version_id: None,
                    });
                }
            }
            _ => unprocessed.push(Unprocessed {
                session: s.session.clone(),
                status: s.status,
            }),
        }
    }
    Ok(ProcessedFiles {
        files,
        unprocessed,
        refused,
    })
}

/// A key that is not a safe name, as one file not delivered (the rest of the selection is).
fn refusal(
    session: &str,
    kind: FileKind,
    bucket: &str,
    key: &str,
    inner: &str,
    e: SyncError,
) -> RefusedFile {
    RefusedFile {
        session: session.to_string(),
        kind,
        uri: format!("s3://{bucket}/{key}"),
        path: format!("{session}/{inner}"),
        reason: e.to_string(),
    }
}

fn split_s3_uri(uri: &str) -> Option<(String, String)> {
    let rest = uri.strip_prefix("s3://")?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let mut prefix = prefix.to_string();
    if !prefix.is_empty() && !prefix.ends_with('/') {
        prefix.push('/');
    }
    (!bucket.is_empty()).then(|| (bucket.to_string(), prefix))
}

/// The raw files of `sessions`, from each session's manifest, verified against the catalog's
/// `manifest_sha256` before it is trusted; and those whose names are not safe (not delivered).
pub async fn raw_files(
    s3: &aws_sdk_s3::Client,
    sessions: &[SessionItem],
    fallback_bucket: Option<&str>,
    revision: Option<u32>,
) -> Result<(Vec<RemoteFile>, Vec<RefusedFile>), SyncError> {
    let mut files = Vec::new();
    let mut refused = Vec::new();
    for s in sessions {
        let bad = |reason: String| SyncError::RawManifest {
            session: s.session.clone(),
            reason,
        };
        let (bucket, prefix) = match s.raw_prefix.as_deref().and_then(split_s3_uri) {
            Some(bp) => bp,
            None => match fallback_bucket {
                Some(b) => (b.to_string(), labpipe_core::layout::raw_session_prefix(&s.session)),
                None => return Err(bad("the catalog entry has no raw_prefix; pass --raw-bucket or set LABPIPE_RAW_BUCKET".into())),
            },
        };
        let current = s.revision.unwrap_or(1);
        // Another revision than the cataloged one: its own folder beside the current one
        // (`raw/<session>[.r<N>]/`); its manifest is the one written there (raw objects are
        // write-once), and it must say it is that revision.
        let other = revision.filter(|n| *n != current);
        let prefix = match other {
            Some(n) => labpipe_core::layout::raw_session_prefix(
                &labpipe_core::layout::revision_folder(&s.session, n),
            ),
            None => prefix,
        };
        let key = format!("{prefix}{}", labpipe_core::layout::MANIFEST_NAME);
        // The manifest version the catalog pins (when it has one), then each file at the version
        // that manifest pins: exactly what ingest verified, whatever was written since.
        let read = labpipe_aws::ManifestRead::key(&bucket, &key)
            .version(if other.is_some() {
                None
            } else {
                s.manifest_version_id.as_deref()
            })
            .read(s3)
            .await
            .map_err(|e| match (other, e.class()) {
                (
                    Some(n),
                    labpipe_aws::ErrorClass::NotFound | labpipe_aws::ErrorClass::AccessDenied,
                ) => bad(format!(
                    "it has no revision {n} (s3://{bucket}/{key} cannot be read); its current revision is {current}"
                )),
                _ => gateway_error(&bucket, &key, e),
            })?;
        if let Some(n) = other {
            if read.manifest.revision_number() != n {
                return Err(bad(format!(
                    "s3://{bucket}/{key} is a manifest of revision {}, not {n}",
                    read.manifest.revision_number()
                )));
            }
        } else if let Some(expected) = &s.manifest_sha256 {
            if !read.sha256.eq_ignore_ascii_case(expected) {
                return Err(SyncError::ChecksumMismatch {
                    bucket,
                    key,
                    expected: expected.clone(),
                    actual: read.sha256,
                });
            }
        }
        let manifest = read.manifest;
        for f in &manifest.files {
            let object = format!("{prefix}{}", f.path);
            let inner = labpipe_core::layout::synced_raw_path(&f.path);
            let path = match safe_relative(&s.session, &inner, &object) {
                Ok(path) => path,
                Err(e) => {
                    refused.push(refusal(
                        &s.session,
                        FileKind::Raw,
                        &bucket,
                        &object,
                        &inner,
                        e,
                    ));
                    continue;
                }
            };
            files.push(RemoteFile {
                session: s.session.clone(),
                kind: FileKind::Raw,
                bucket: bucket.clone(),
                path,
                key: object,
                size: f.size,
                sha256: f.sha256.to_ascii_lowercase(),
                version: None,
                version_id: f.version_id.clone(),
            });
        }
    }
    Ok((files, refused))
}

/// Runs the filter and turns the matching sessions into files to fetch. Errors when nothing
/// would be synced, saying why (no match, nothing processed, nothing passes `--include`).
pub async fn select(
    catalog: &Catalog,
    s3: &aws_sdk_s3::Client,
    filter: &Filter,
    opts: &SelectOptions,
) -> Result<Selection, SyncError> {
    let matched = catalog.query(filter, opts.limit).await?;
    if matched.is_empty() {
        return Err(SyncError::NothingMatched {
            filter: filter.source.clone(),
        });
    }
    let ProcessedFiles {
        mut files,
        unprocessed,
        mut refused,
    } = processed_files(catalog, &matched, opts.version, opts.revision).await?;
    if files.is_empty() && refused.is_empty() {
        let mut names: Vec<String> = unprocessed
            .iter()
            .take(5)
            .map(|u| format!("{} ({})", u.session, u.status.as_str()))
            .collect();
        if unprocessed.len() > 5 {
            names.push(format!("and {} more", unprocessed.len() - 5));
        }
        return Err(SyncError::NotProcessed {
            count: matched.len(),
            sessions: names.join(", "),
            version: opts
                .version
                .map(|v| format!(" of pipeline version {v}"))
                .unwrap_or_default(),
        });
    }
    let sessions: Vec<SessionItem> = matched
        .into_iter()
        .filter(|s| !unprocessed.iter().any(|u| u.session == s.session))
        .collect();
    if opts.raw {
        let (raw, raw_refused) = raw_files(
            s3,
            &sessions,
            opts.raw_bucket.as_deref(),
            opts.raw_revision.or(opts.revision),
        )
        .await?;
        files.extend(raw);
        refused.extend(raw_refused);
    }
    if !opts.include.is_empty() {
        files.retain(|f| opts.include.iter().any(|g| g.matches(f.path_in_session())));
        refused.retain(|f| opts.include.iter().any(|g| g.matches(f.path_in_session())));
        if files.is_empty() && refused.is_empty() {
            return Err(SyncError::NothingIncluded {
                sessions: sessions.len(),
                patterns: opts
                    .include
                    .iter()
                    .map(|g| format!("'{}'", g.as_str()))
                    .collect::<Vec<_>>()
                    .join(" "),
            });
        }
    }
    Ok(Selection {
        sessions,
        files,
        unprocessed,
        refused,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_prefixes_parse() {
        assert_eq!(
            split_s3_uri("s3://raw/raw/2021/"),
            Some(("raw".into(), "raw/2021/".into()))
        );
        assert_eq!(
            split_s3_uri("s3://raw/raw/2021"),
            Some(("raw".into(), "raw/2021/".into()))
        );
        assert_eq!(split_s3_uri("https://x"), None);
    }
}
