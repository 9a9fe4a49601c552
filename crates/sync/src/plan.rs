//! The sync planner: for each selected file, what the run must do, decided from what the catalog
//! says (the [`RemoteFile`]), what earlier runs recorded ([`StateEntry`]) and what is on disk
//! ([`OnDisk`]). Pure — no I/O, no clock — so every combination is table-tested below; the run
//! gathers the inputs and carries out the answer.
//!
//! Hashing a local file is the one expensive input, so it is asked for only when needed: a file of
//! the right size that no record vouches for (or every file, with `--verify`) first gets
//! [`FileAction::Hash`]; the run hashes it and plans it again with the hash.

use std::collections::BTreeSet;

use crate::destination::{part_len, unsafe_reason, PartialRecord};
use crate::remote::RemoteFile;
use crate::state::{LocalFile, StateEntry};

/// The run's settings that change the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Planning {
    /// Hash every local file, even those the state file vouches for.
    pub verify: bool,
    /// Files larger than this are fetched in ranged parts of this size.
    pub part_size: u64,
}

/// What the destination holds for one selected file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OnDisk {
    /// The file under its real name, if any.
    pub file: Option<LocalFile>,
    /// Its SHA-256, once hashed.
    pub sha256: Option<String>,
    /// The record of an interrupted ranged download whose `.part` file is still there.
    pub partial: Option<PartialRecord>,
}

/// Why a file is kept as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// The state file vouches for it (same object, same size and mtime as when verified).
    UpToDate,
    /// Not vouched for, but it has the right size and its bytes hash to the catalog's SHA-256.
    AlreadyPresent,
    /// `--verify`: re-hashed and right.
    Verified,
}

impl SkipReason {
    /// The stable name in `file_skipped` events.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::UpToDate => "up_to_date",
            SkipReason::AlreadyPresent => "already_present",
            SkipReason::Verified => "verified",
        }
    }
}

/// Why a file is downloaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchReason {
    /// Nothing under its name.
    Missing,
    /// The catalog now names another object or content than the one recorded as synced.
    RemoteChanged,
    /// The local file is not the catalog's (edited, truncated, or never synced by us).
    LocalDiffers,
}

/// Parts of a ranged download already on disk, from an interrupted run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resume {
    pub done: BTreeSet<u64>,
    pub bytes: u64,
    /// The object version (ETag) the parts were read from.
    pub etag: Option<String>,
}

impl Resume {
    /// The resume still applies when the object is the one the parts came from (`etag` from a
    /// HEAD just now); otherwise the download starts over rather than stitch two versions.
    pub fn against(self, etag: Option<&str>) -> Option<Resume> {
        (self.etag.as_deref() == etag).then_some(self)
    }
}

/// How a file is downloaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchMode {
    /// One GET (files up to the part size).
    Whole,
    /// Parallel ranged GETs, continuing `resume` when there is one.
    Ranged { resume: Option<Resume> },
}

/// What the run does with one selected file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileAction {
    /// The local copy is right; `record` is what the state file must now say, when it changed.
    Keep {
        reason: SkipReason,
        record: Option<StateEntry>,
    },
    /// Hash the local file and plan again with [`OnDisk::sha256`] set.
    Hash,
    Fetch {
        because: FetchReason,
        mode: FetchMode,
    },
    /// Never written: its path could land outside the destination or on a reserved name.
    Refuse { reason: &'static str },
}

/// Plans one file; see the module docs.
pub fn plan_file(
    remote: &RemoteFile,
    recorded: Option<&StateEntry>,
    on_disk: &OnDisk,
    planning: Planning,
) -> FileAction {
    if let Some(reason) = unsafe_reason(&remote.path) {
        return FileAction::Refuse { reason };
    }
    if !planning.verify
        && recorded.is_some_and(|e| e.describes(&remote.key, &remote.sha256, on_disk.file))
    {
        return FileAction::Keep {
            reason: SkipReason::UpToDate,
            record: None,
        };
    }
    if let Some(local) = on_disk.file.filter(|l| l.size == remote.size) {
        match &on_disk.sha256 {
            None => return FileAction::Hash,
            Some(sha) if sha.eq_ignore_ascii_case(&remote.sha256) => {
                // The recorded ETag names the object only if the record is of this content.
                let etag = recorded
                    .filter(|e| e.key == remote.key && e.sha256 == remote.sha256)
                    .and_then(|e| e.etag.clone());
                return FileAction::Keep {
                    reason: if planning.verify {
                        SkipReason::Verified
                    } else {
                        SkipReason::AlreadyPresent
                    },
                    record: Some(StateEntry {
                        bucket: remote.bucket.clone(),
                        key: remote.key.clone(),
                        etag,
                        size: local.size,
                        sha256: remote.sha256.clone(),
                        mtime_ns: local.mtime_ns,
                    }),
                };
            }
            Some(_) => {}
        }
    }
    let because = if recorded.is_some_and(|e| e.key != remote.key || e.sha256 != remote.sha256) {
        FetchReason::RemoteChanged
    } else if on_disk.file.is_none() {
        FetchReason::Missing
    } else {
        FetchReason::LocalDiffers
    };
    FileAction::Fetch {
        because,
        mode: fetch_mode(remote, on_disk.partial.as_ref(), planning.part_size),
    }
}

/// Whole or ranged, and which parts an interrupted ranged download already has. A partial
/// record is continued only when it was made for the same object content, size and part size.
pub fn fetch_mode(
    remote: &RemoteFile,
    partial: Option<&PartialRecord>,
    part_size: u64,
) -> FetchMode {
    if remote.size <= part_size {
        return FetchMode::Whole;
    }
    let parts = remote.size.div_ceil(part_size);
    let resume = partial
        .filter(|p| {
            p.key == remote.key
                && p.sha256 == remote.sha256
                && p.size == remote.size
                && p.part_size == part_size
                && !p.done.is_empty()
                && p.done.iter().all(|i| *i < parts)
        })
        .map(|p| Resume {
            done: p.done.clone(),
            bytes: p.done_bytes(),
            etag: p.etag.clone(),
        });
    FetchMode::Ranged { resume }
}

/// One ranged GET: part `index` covers `start..start + len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub index: u64,
    pub start: u64,
    pub len: u64,
}

impl Range {
    /// The HTTP `Range` header value (inclusive end).
    pub fn header(&self) -> String {
        format!("bytes={}-{}", self.start, self.start + self.len - 1)
    }
}

/// The parts of a `size`-byte object still to fetch, in order.
pub fn missing_ranges(size: u64, part_size: u64, done: &BTreeSet<u64>) -> Vec<Range> {
    (0..size.div_ceil(part_size))
        .filter(|i| !done.contains(i))
        .map(|index| Range {
            index,
            start: index * part_size,
            len: part_len(size, part_size, index),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::FileKind;

    const PART: u64 = 100;
    const SHA: &str = "aaaa";
    const OTHER_SHA: &str = "bbbb";
    const MTIME: i128 = 1_000;

    fn remote(size: u64, sha: &str) -> RemoteFile {
        RemoteFile {
            session: "s".into(),
            kind: FileKind::Processed,
            bucket: "b".into(),
            key: "v1/s/f.bin".into(),
            path: "s/f.bin".into(),
            size,
            sha256: sha.into(),
            version: Some(1),
            version_id: None,
        }
    }

    fn record(size: u64, sha: &str) -> StateEntry {
        StateEntry {
            bucket: "b".into(),
            key: "v1/s/f.bin".into(),
            etag: Some("\"e1\"".into()),
            size,
            sha256: sha.into(),
            mtime_ns: MTIME,
        }
    }

    fn file(size: u64, mtime_ns: i128) -> Option<LocalFile> {
        Some(LocalFile { size, mtime_ns })
    }

    fn partial(size: u64, sha: &str, part_size: u64, done: &[u64]) -> Option<PartialRecord> {
        Some(PartialRecord {
            key: "v1/s/f.bin".into(),
            sha256: sha.into(),
            size,
            part_size,
            etag: Some("\"e1\"".into()),
            done: done.iter().copied().collect(),
        })
    }

    fn keep(reason: SkipReason, record: Option<StateEntry>) -> FileAction {
        FileAction::Keep { reason, record }
    }

    fn fetch(because: FetchReason, mode: FetchMode) -> FileAction {
        FileAction::Fetch { because, mode }
    }

    fn ranged(done: &[u64], bytes: u64) -> FetchMode {
        FetchMode::Ranged {
            resume: (!done.is_empty()).then(|| Resume {
                done: done.iter().copied().collect(),
                bytes,
                etag: Some("\"e1\"".into()),
            }),
        }
    }

    /// A fresh record of the local file as the planner builds it after a matching hash.
    fn adopted(size: u64, sha: &str, mtime_ns: i128, etag: bool) -> Option<StateEntry> {
        Some(StateEntry {
            etag: etag.then(|| "\"e1\"".to_string()),
            mtime_ns,
            ..record(size, sha)
        })
    }

    struct Case {
        name: &'static str,
        remote: RemoteFile,
        recorded: Option<StateEntry>,
        on_disk: OnDisk,
        verify: bool,
        expect: FileAction,
    }

    fn on_disk(file: Option<LocalFile>, sha: Option<&str>, p: Option<PartialRecord>) -> OnDisk {
        OnDisk {
            file,
            sha256: sha.map(str::to_string),
            partial: p,
        }
    }

    #[test]
    fn every_combination_of_local_and_remote_state() {
        use FetchReason::*;
        use SkipReason::*;
        let small = 50;
        let big = 250; // three parts: 100 + 100 + 50
                       // One line per case: the table reads as a table.
        #[rustfmt::skip]
        let cases = [
            // --- nothing local
            Case { name: "no record, no file, small", remote: remote(small, SHA), recorded: None,
                on_disk: on_disk(None, None, None), verify: false, expect: fetch(Missing, FetchMode::Whole) },
            Case { name: "no record, no file, big", remote: remote(big, SHA), recorded: None,
                on_disk: on_disk(None, None, None), verify: false, expect: fetch(Missing, ranged(&[], 0)) },
            // --- recorded with the same SHA
            Case { name: "recorded same sha, file unchanged", remote: remote(small, SHA), recorded: Some(record(small, SHA)),
                on_disk: on_disk(file(small, MTIME), None, None), verify: false, expect: keep(UpToDate, None) },
            Case { name: "recorded same sha, file unchanged, --verify asks for a hash", remote: remote(small, SHA), recorded: Some(record(small, SHA)),
                on_disk: on_disk(file(small, MTIME), None, None), verify: true, expect: FileAction::Hash },
            Case { name: "--verify, hash right", remote: remote(small, SHA), recorded: Some(record(small, SHA)),
                on_disk: on_disk(file(small, MTIME), Some(SHA), None), verify: true, expect: keep(Verified, adopted(small, SHA, MTIME, true)) },
            Case { name: "--verify, hash wrong (edited in place, size and mtime kept)", remote: remote(small, SHA), recorded: Some(record(small, SHA)),
                on_disk: on_disk(file(small, MTIME), Some(OTHER_SHA), None), verify: true, expect: fetch(LocalDiffers, FetchMode::Whole) },
            Case { name: "recorded same sha, file missing", remote: remote(small, SHA), recorded: Some(record(small, SHA)),
                on_disk: on_disk(None, None, None), verify: false, expect: fetch(Missing, FetchMode::Whole) },
            Case { name: "recorded same sha, file size changed", remote: remote(small, SHA), recorded: Some(record(small, SHA)),
                on_disk: on_disk(file(small - 1, MTIME), None, None), verify: false, expect: fetch(LocalDiffers, FetchMode::Whole) },
            Case { name: "recorded same sha, mtime changed: hash first", remote: remote(small, SHA), recorded: Some(record(small, SHA)),
                on_disk: on_disk(file(small, MTIME + 1), None, None), verify: false, expect: FileAction::Hash },
            Case { name: "mtime changed, hash still right: re-recorded", remote: remote(small, SHA), recorded: Some(record(small, SHA)),
                on_disk: on_disk(file(small, MTIME + 1), Some(SHA), None), verify: false, expect: keep(AlreadyPresent, adopted(small, SHA, MTIME + 1, true)) },
            Case { name: "mtime changed, hash wrong", remote: remote(small, SHA), recorded: Some(record(small, SHA)),
                on_disk: on_disk(file(small, MTIME + 1), Some(OTHER_SHA), None), verify: false, expect: fetch(LocalDiffers, FetchMode::Whole) },
            Case { name: "a hash in upper case is the same hash", remote: remote(small, SHA), recorded: None,
                on_disk: on_disk(file(small, MTIME), Some("AAAA"), None), verify: false, expect: keep(AlreadyPresent, adopted(small, SHA, MTIME, false)) },
            // --- recorded with a different SHA: the catalog changed
            Case { name: "recorded other sha, same size: hash first", remote: remote(small, SHA), recorded: Some(record(small, OTHER_SHA)),
                on_disk: on_disk(file(small, MTIME), None, None), verify: false, expect: FileAction::Hash },
            Case { name: "recorded other sha, hash is the old content", remote: remote(small, SHA), recorded: Some(record(small, OTHER_SHA)),
                on_disk: on_disk(file(small, MTIME), Some(OTHER_SHA), None), verify: false, expect: fetch(RemoteChanged, FetchMode::Whole) },
            Case { name: "recorded other sha, local already has the new content", remote: remote(small, SHA), recorded: Some(record(small, OTHER_SHA)),
                on_disk: on_disk(file(small, MTIME), Some(SHA), None), verify: false, expect: keep(AlreadyPresent, adopted(small, SHA, MTIME, false)) },
            Case { name: "recorded other sha and size", remote: remote(big, SHA), recorded: Some(record(small, OTHER_SHA)),
                on_disk: on_disk(file(small, MTIME), None, None), verify: false, expect: fetch(RemoteChanged, ranged(&[], 0)) },
            Case { name: "recorded other sha, file missing", remote: remote(small, SHA), recorded: Some(record(small, OTHER_SHA)),
                on_disk: on_disk(None, None, None), verify: false, expect: fetch(RemoteChanged, FetchMode::Whole) },
            Case { name: "recorded another key (new pipeline version)", remote: remote(small, SHA),
                recorded: Some(StateEntry { key: "v0/s/f.bin".into(), ..record(small, SHA) }),
                on_disk: on_disk(file(small, MTIME), Some(SHA), None), verify: false, expect: keep(AlreadyPresent, adopted(small, SHA, MTIME, false)) },
            // --- no record, a file we did not put there
            Case { name: "unrecorded file of another size", remote: remote(small, SHA), recorded: None,
                on_disk: on_disk(file(7, MTIME), None, None), verify: false, expect: fetch(LocalDiffers, FetchMode::Whole) },
            Case { name: "unrecorded file of the right size: hash first", remote: remote(small, SHA), recorded: None,
                on_disk: on_disk(file(small, MTIME), None, None), verify: false, expect: FileAction::Hash },
            // --- partial downloads
            Case { name: "partial with ranges: resume", remote: remote(big, SHA), recorded: None,
                on_disk: on_disk(None, None, partial(big, SHA, PART, &[0, 2])), verify: false, expect: fetch(Missing, ranged(&[0, 2], 150)) },
            Case { name: "partial for other content: start over", remote: remote(big, SHA), recorded: None,
                on_disk: on_disk(None, None, partial(big, OTHER_SHA, PART, &[0])), verify: false, expect: fetch(Missing, ranged(&[], 0)) },
            Case { name: "partial with another part size: start over", remote: remote(big, SHA), recorded: None,
                on_disk: on_disk(None, None, partial(big, SHA, 50, &[0])), verify: false, expect: fetch(Missing, ranged(&[], 0)) },
            Case { name: "partial with another size: start over", remote: remote(big, SHA), recorded: None,
                on_disk: on_disk(None, None, partial(big + 1, SHA, PART, &[0])), verify: false, expect: fetch(Missing, ranged(&[], 0)) },
            Case { name: "partial naming a part past the end: start over", remote: remote(big, SHA), recorded: None,
                on_disk: on_disk(None, None, partial(big, SHA, PART, &[0, 3])), verify: false, expect: fetch(Missing, ranged(&[], 0)) },
            Case { name: "partial with no part done", remote: remote(big, SHA), recorded: None,
                on_disk: on_disk(None, None, partial(big, SHA, PART, &[])), verify: false, expect: fetch(Missing, ranged(&[], 0)) },
            Case { name: "partial of the new content while the old file is there", remote: remote(big, SHA), recorded: Some(record(big, OTHER_SHA)),
                on_disk: on_disk(file(big, MTIME), Some(OTHER_SHA), partial(big, SHA, PART, &[1])), verify: false, expect: fetch(RemoteChanged, ranged(&[1], 100)) },
            Case { name: "small file ignores a partial record", remote: remote(small, SHA), recorded: None,
                on_disk: on_disk(None, None, partial(small, SHA, PART, &[0])), verify: false, expect: fetch(Missing, FetchMode::Whole) },
            Case { name: "exactly one part is whole", remote: remote(PART, SHA), recorded: None,
                on_disk: on_disk(None, None, None), verify: false, expect: fetch(Missing, FetchMode::Whole) },
            // --- unsafe paths, whatever else holds
            Case { name: "'..' refused", remote: RemoteFile { path: "s/../../etc/x".into(), ..remote(small, SHA) }, recorded: None,
                on_disk: on_disk(None, None, None), verify: false, expect: FileAction::Refuse { reason: "'..' component" } },
            Case { name: "absolute refused even when recorded", remote: RemoteFile { path: "/etc/x".into(), ..remote(small, SHA) }, recorded: Some(record(small, SHA)),
                on_disk: on_disk(file(small, MTIME), None, None), verify: false, expect: FileAction::Refuse { reason: "absolute path" } },
            Case { name: "the state folder is reserved", remote: RemoteFile { path: ".labpipe-sync/state.json".into(), ..remote(small, SHA) }, recorded: None,
                on_disk: on_disk(None, None, None), verify: false, expect: FileAction::Refuse { reason: "reserved name" } },
        ];
        let mut failures = Vec::new();
        for c in &cases {
            let got = plan_file(
                &c.remote,
                c.recorded.as_ref(),
                &c.on_disk,
                Planning {
                    verify: c.verify,
                    part_size: PART,
                },
            );
            if got != c.expect {
                failures.push(format!(
                    "{}:\n  expected {:?}\n  got      {:?}",
                    c.name, c.expect, got
                ));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn a_resume_holds_only_against_the_same_object_version() {
        let resume = Resume {
            done: BTreeSet::from([0]),
            bytes: 100,
            etag: Some("\"e1\"".into()),
        };
        assert_eq!(resume.clone().against(Some("\"e1\"")), Some(resume.clone()));
        assert_eq!(resume.clone().against(Some("\"e2\"")), None);
        assert_eq!(resume.against(None), None);
    }

    #[test]
    fn missing_ranges_cover_exactly_what_is_not_done() {
        let ranges = missing_ranges(250, PART, &BTreeSet::from([1]));
        assert_eq!(
            ranges,
            [
                Range {
                    index: 0,
                    start: 0,
                    len: 100
                },
                Range {
                    index: 2,
                    start: 200,
                    len: 50
                },
            ]
        );
        assert_eq!(ranges[1].header(), "bytes=200-249");
        assert!(missing_ranges(250, PART, &BTreeSet::from([0, 1, 2])).is_empty());
        assert_eq!(missing_ranges(200, PART, &BTreeSet::new()).len(), 2);
    }
}
