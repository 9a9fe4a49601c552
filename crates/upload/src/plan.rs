//! The resume planner: what to do with each file, decided from three facts and nothing else —
//! the local file as the checks saw it, what the journal recorded, and what one listing of the
//! session prefix showed. It makes no request and reads no byte, so every combination is a table
//! test below.
//!
//! Rules that keep raw data safe:
//! - an object at the key is never overwritten: same size → compared by checksum, other size →
//!   conflict;
//! - a multipart upload is continued only when the journal recorded it (ours) *and* the listing
//!   shows it alive *and* the local file is the one it was started for;
//! - the only uploads aborted are ours (recorded in the journal for this key) that can no longer
//!   be completed: the file changed, the part size no longer fits, or an object now holds the key.
//!   An upload the journal does not know belongs to someone else (another machine, another
//!   journal) or to a run killed between create and record; it is left alone and the bucket's
//!   `AbortIncompleteMultipartUpload` lifecycle rule removes it if nobody completes it.

use std::collections::BTreeMap;

use crate::bucket::{ListedObject, RemotePart};
use crate::journal::{DoneFile, JournalPart, OpenUpload};
use crate::{MAX_PARTS, MIN_PART_SIZE};

/// The local file as the checks saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LocalFile {
    pub size: u64,
    pub mtime: i64,
}

/// What the journal recorded for the file's key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Recorded {
    pub open: Option<OpenUpload>,
    pub done: Option<DoneFile>,
}

/// What the session listing showed at the file's key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Listed {
    pub object: Option<ListedObject>,
    /// Ids of multipart uploads in progress for the key, anyone's.
    pub uploads: Vec<String>,
}

/// How one file gets to S3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// The object is the one the journal recorded as uploaded and verified from this very file
    /// (same size and mtime, same ETag and size in the listing): nothing to read or send.
    Skip { done: DoneFile },
    /// An object of the same size holds the key: compare its checksum with the file's.
    Compare,
    /// An object of another size holds the key: never overwritten.
    Conflict { remote_size: u64 },
    /// One `PutObject` (the file fits in one part).
    Put,
    /// Continue our multipart upload; parts S3 holds are kept when their checksum matches.
    Resume { upload: OpenUpload },
    /// A new multipart upload with this part size.
    Start { part_size: u64 },
}

/// The plan for one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FilePlan {
    pub action: Action,
    /// Our own upload that can no longer be completed: abort it and forget it.
    pub abort: Option<String>,
    /// Our own upload that S3 no longer lists (completed, aborted or expired): forget it.
    pub forget: Option<String>,
}

/// Decides one file. `part_size` is the run's configured part size.
pub(crate) fn file(
    local: LocalFile,
    recorded: &Recorded,
    listed: &Listed,
    part_size: u64,
) -> FilePlan {
    let (ours_alive, forget) = match &recorded.open {
        Some(o) if listed.uploads.contains(&o.upload_id) => (Some(o), None),
        Some(o) => (None, Some(o.upload_id.clone())),
        None => (None, None),
    };
    let stale = |o: &OpenUpload| Some(o.upload_id.clone());
    if let Some(object) = &listed.object {
        // An object holds the key: our upload (if any) could never complete over it.
        let abort = ours_alive.and_then(stale);
        let action = match &recorded.done {
            Some(d)
                if d.size == local.size
                    && d.mtime == local.mtime
                    && object.size == local.size
                    && d.etag
                        .as_deref()
                        .is_some_and(|e| same_etag(e, &object.etag)) =>
            {
                Action::Skip { done: d.clone() }
            }
            _ if object.size != local.size => Action::Conflict {
                remote_size: object.size,
            },
            _ => Action::Compare,
        };
        return FilePlan {
            action,
            abort,
            forget,
        };
    }
    if local.size <= part_size {
        return FilePlan {
            action: Action::Put,
            abort: ours_alive.and_then(stale),
            forget,
        };
    }
    match ours_alive {
        Some(o) if resumable(o, local) => FilePlan {
            action: Action::Resume { upload: o.clone() },
            abort: None,
            forget,
        },
        other => FilePlan {
            action: Action::Start {
                part_size: part_size_for(local.size, part_size),
            },
            abort: other.and_then(stale),
            forget,
        },
    }
}

/// Our upload still describes the file: same size and mtime, and its part size is one S3 takes.
fn resumable(o: &OpenUpload, local: LocalFile) -> bool {
    o.size == local.size
        && o.mtime == local.mtime
        && o.part_size >= MIN_PART_SIZE
        && local.size.div_ceil(o.part_size) <= MAX_PARTS
}

/// The configured part size, raised so the file fits in S3's 10,000 parts.
pub(crate) fn part_size_for(size: u64, configured: u64) -> u64 {
    configured.max(size.div_ceil(MAX_PARTS))
}

/// ETags as listed and as returned by a write may differ in quoting only.
pub(crate) fn same_etag(a: &str, b: &str) -> bool {
    a.trim_matches('"') == b.trim_matches('"')
}

/// A part S3 holds that may be kept, if the local bytes of that part have this checksum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HeldPart {
    pub etag: String,
    pub crc64nvme: String,
}

/// Which parts of a resumed upload S3 already holds. `remote` is the `ListParts` answer, `None`
/// when S3 gave none that could be read (then the journal's parts, acknowledged by S3 earlier,
/// stand in). A part counts only with the right size and a checksum to hold the local bytes
/// against: the one S3 lists, or the journal's when S3 lists the same ETag.
pub(crate) fn held_parts(
    size: u64,
    part_size: u64,
    remote: Option<&BTreeMap<i32, RemotePart>>,
    journal: &[JournalPart],
) -> BTreeMap<i32, HeldPart> {
    let expected_len = |n: i32| -> Option<u64> {
        let offset = (n as u64).checked_sub(1)?.checked_mul(part_size)?;
        (n >= 1 && offset < size).then(|| part_size.min(size - offset))
    };
    let recorded: BTreeMap<i32, &JournalPart> = journal.iter().map(|p| (p.number, p)).collect();
    let mut held = BTreeMap::new();
    match remote {
        Some(remote) => {
            for (&n, rp) in remote {
                if expected_len(n) != Some(rp.size) {
                    continue;
                }
                let crc = match &rp.crc64nvme {
                    Some(c) => Some(c.clone()),
                    None => recorded
                        .get(&n)
                        .filter(|jp| jp.etag == rp.etag)
                        .map(|jp| jp.crc64nvme.clone()),
                };
                if let Some(crc64nvme) = crc {
                    held.insert(
                        n,
                        HeldPart {
                            etag: rp.etag.clone(),
                            crc64nvme,
                        },
                    );
                }
            }
        }
        None => {
            for (&n, jp) in &recorded {
                if expected_len(n) == Some(jp.size) {
                    held.insert(
                        n,
                        HeldPart {
                            etag: jp.etag.clone(),
                            crc64nvme: jp.crc64nvme.clone(),
                        },
                    );
                }
            }
        }
    }
    held
}

/// How a local file's content is learned when the folder is compared with an earlier upload's
/// manifest (before anything is sent under a name that is already taken).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Hash {
    /// Not needed: the manifest does not list the path, or lists it with another size (then the
    /// file differs whatever its bytes).
    NotNeeded,
    /// This PC's journal verified this very file at this key (same size and mtime): its SHA-256
    /// is trusted without a read.
    Trusted(String),
    /// Read the file and hash it.
    Read,
}

/// Whether to read a local file to compare it with the manifest's entry for its path:
/// size + mtime are trusted only against this PC's own record of the same key; anything else
/// (no record, another size or mtime, an upload from another PC) is hashed.
pub(crate) fn hash_for_compare(
    local: LocalFile,
    uploaded_size: Option<u64>,
    recorded: Option<&DoneFile>,
) -> Hash {
    match (uploaded_size, recorded) {
        (Some(size), _) if size != local.size => Hash::NotNeeded,
        (None, _) => Hash::NotNeeded,
        (Some(_), Some(d)) if d.size == local.size && d.mtime == local.mtime => {
            Hash::Trusted(d.sha256.clone())
        }
        (Some(_), _) => Hash::Read,
    }
}

/// A local file as compared with an earlier upload: its SHA-256 when it was learned (a file
/// the manifest does not list, or lists with another size, is not read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LocalEntry {
    pub path: String,
    pub size: u64,
    pub sha256: Option<String>,
    /// A data file (not the metadata file).
    pub data: bool,
}

/// An earlier upload's file, as its manifest lists it (or as its object was compared).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UploadedEntry {
    pub path: String,
    pub size: u64,
    /// `None`: the object exists but its content is unknown (compared by checksum elsewhere).
    pub sha256: Option<String>,
}

/// How a folder differs from an earlier upload under the same name: files only here, files only
/// there, files at the same path with other bytes, and how many data files are identical.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct FolderChanges {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
    /// Data files (not the metadata file) byte-identical in both.
    pub same_data: usize,
}

impl FolderChanges {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }

    /// The folder is the same recording, changed: at least one data file is byte-identical. Two
    /// rigs (or a reset clock) never produce the same recorded bytes, so no data file in common
    /// means another recording took the name.
    pub fn same_recording(&self) -> bool {
        self.same_data > 0
    }

    /// `added a, b; removed c; changed d` (at most `MAX_NAMED` names per kind, then a count).
    pub fn summary(&self) -> String {
        const MAX_NAMED: usize = 5;
        let mut parts = Vec::new();
        for (what, names) in [
            ("added", &self.added),
            ("removed", &self.removed),
            ("changed", &self.changed),
        ] {
            if names.is_empty() {
                continue;
            }
            let shown: Vec<&str> = names.iter().take(MAX_NAMED).map(String::as_str).collect();
            let more = match names.len().saturating_sub(MAX_NAMED) {
                0 => String::new(),
                n => format!(" and {n} more"),
            };
            parts.push(format!("{what} {}{more}", shown.join(", ")));
        }
        if parts.is_empty() {
            "no file differs".into()
        } else {
            parts.join("; ")
        }
    }
}

/// Compares the folder with an earlier upload, path by path. A local file whose SHA-256 was not
/// learned differs when its size does; a remote file of unknown content (`sha256: None`) is
/// taken as equal only when the caller compared it (then it passes the local hash).
pub(crate) fn changes(local: &[LocalEntry], uploaded: &[UploadedEntry]) -> FolderChanges {
    let theirs: BTreeMap<&str, &UploadedEntry> =
        uploaded.iter().map(|u| (u.path.as_str(), u)).collect();
    let mut c = FolderChanges::default();
    for l in local {
        match theirs.get(l.path.as_str()) {
            None => c.added.push(l.path.clone()),
            Some(u) => {
                let same = u.size == l.size
                    && l.sha256.is_some()
                    && (u.sha256.is_none() || u.sha256 == l.sha256);
                if !same {
                    c.changed.push(l.path.clone());
                } else if l.data {
                    c.same_data += 1;
                }
            }
        }
    }
    let ours: std::collections::BTreeSet<&str> = local.iter().map(|l| l.path.as_str()).collect();
    c.removed = uploaded
        .iter()
        .filter(|u| !ours.contains(u.path.as_str()))
        .map(|u| u.path.clone())
        .collect();
    c.added.sort();
    c.changed.sort();
    c.removed.sort();
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;
    const PART: u64 = 8 * MIB;
    const BIG: u64 = 20 * MIB;
    const SMALL: u64 = 3 * MIB;
    const MTIME: i64 = 1_600_000_000;
    const OURS: &str = "ours";
    const THEIRS: &str = "theirs";
    const ETAG: &str = "\"e-1\"";

    #[derive(Debug, Clone, Copy)]
    enum Journal {
        None,
        /// Our upload, started for the file as it was (how many parts it holds is
        /// [`held_parts`]'s business, tested below).
        Open,
        /// Our upload, started with a part size S3 would refuse (an older, broken run).
        OpenBadPartSize,
        /// Uploaded and verified, with the ETag S3 returned.
        Done,
    }

    #[derive(Debug, Clone, Copy)]
    enum Local {
        Same,
        SizeChanged,
        MtimeChanged,
    }

    #[derive(Debug, Clone, Copy)]
    enum Remote {
        Absent,
        /// The object the journal recorded (same ETag, same size).
        PresentSame,
        /// An object of the same size with another ETag (content unknown).
        PresentOther,
        /// An object of another size.
        PresentOtherSize,
        /// Our recorded upload is in progress.
        MultipartOurs,
        /// Somebody else's upload is in progress (not in our journal).
        MultipartTheirs,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Want {
        Skip,
        Compare,
        Conflict,
        Put,
        Resume,
        Start,
    }

    fn journal(j: Journal, size: u64) -> Recorded {
        let open = |part_size| OpenUpload {
            upload_id: OURS.into(),
            size,
            mtime: MTIME,
            part_size,
        };
        match j {
            Journal::None => Recorded::default(),
            Journal::Open => Recorded {
                open: Some(open(PART)),
                done: None,
            },
            Journal::OpenBadPartSize => Recorded {
                open: Some(open(MIB)),
                done: None,
            },
            Journal::Done => Recorded {
                open: None,
                done: Some(DoneFile {
                    size,
                    mtime: MTIME,
                    sha256: "s".into(),
                    crc64nvme: "c".into(),
                    etag: Some(ETAG.trim_matches('"').into()),
                    version_id: None,
                }),
            },
        }
    }

    fn local(l: Local, size: u64) -> LocalFile {
        match l {
            Local::Same => LocalFile { size, mtime: MTIME },
            Local::SizeChanged => LocalFile {
                size: size + 1,
                mtime: MTIME,
            },
            Local::MtimeChanged => LocalFile {
                size,
                mtime: MTIME + 60,
            },
        }
    }

    /// The listing; objects have the *local* file's size unless the case says otherwise.
    fn listed(r: Remote, local_size: u64) -> Listed {
        let object = |size, etag: &str| ListedObject {
            size,
            etag: etag.into(),
        };
        match r {
            Remote::Absent => Listed::default(),
            Remote::PresentSame => Listed {
                object: Some(object(local_size, ETAG)),
                uploads: vec![],
            },
            Remote::PresentOther => Listed {
                object: Some(object(local_size, "\"other\"")),
                uploads: vec![],
            },
            Remote::PresentOtherSize => Listed {
                object: Some(object(local_size + 7, "\"other\"")),
                uploads: vec![],
            },
            Remote::MultipartOurs => Listed {
                object: None,
                uploads: vec![OURS.into()],
            },
            Remote::MultipartTheirs => Listed {
                object: None,
                uploads: vec![THEIRS.into()],
            },
        }
    }

    /// Every combination of journal state × local change × remote state, for a file that needs
    /// parts, with what must happen: the action, whether our upload is aborted (never theirs),
    /// and whether a journal row S3 no longer lists is forgotten.
    use Journal as J;
    use Local as L;
    use Remote as R;
    use Want as W;

    #[rustfmt::skip]
    const TABLE: &[(Journal, Local, Remote, Want, bool, bool)] = &[
            // journal           local            remote                 action        abort  forget
            (J::None,            L::Same,         R::Absent,             W::Start,     false, false),
            (J::None,            L::Same,         R::PresentSame,        W::Compare,   false, false),
            (J::None,            L::Same,         R::PresentOther,       W::Compare,   false, false),
            (J::None,            L::Same,         R::PresentOtherSize,   W::Conflict,  false, false),
            (J::None,            L::Same,         R::MultipartOurs,      W::Start,     false, false),
            (J::None,            L::Same,         R::MultipartTheirs,    W::Start,     false, false),
            (J::None,            L::SizeChanged,  R::Absent,             W::Start,     false, false),
            (J::None,            L::SizeChanged,  R::PresentSame,        W::Conflict,  false, false),
            (J::None,            L::SizeChanged,  R::PresentOtherSize,   W::Conflict,  false, false),
            (J::None,            L::SizeChanged,  R::MultipartTheirs,    W::Start,     false, false),
            (J::None,            L::MtimeChanged, R::PresentSame,        W::Compare,   false, false),
            (J::None,            L::MtimeChanged, R::MultipartTheirs,    W::Start,     false, false),

            (J::Open,            L::Same,         R::Absent,             W::Start,     false, true),
            (J::Open,            L::Same,         R::PresentSame,        W::Compare,   false, true),
            (J::Open,            L::Same,         R::PresentOther,       W::Compare,   false, true),
            (J::Open,            L::Same,         R::PresentOtherSize,   W::Conflict,  false, true),
            (J::Open,            L::Same,         R::MultipartOurs,      W::Resume,    false, false),
            (J::Open,            L::Same,         R::MultipartTheirs,    W::Start,     false, true),
            (J::Open,            L::SizeChanged,  R::Absent,             W::Start,     false, true),
            (J::Open,            L::SizeChanged,  R::PresentOtherSize,   W::Conflict,  false, true),
            (J::Open,            L::SizeChanged,  R::MultipartOurs,      W::Start,     true,  false),
            (J::Open,            L::SizeChanged,  R::MultipartTheirs,    W::Start,     false, true),
            (J::Open,            L::MtimeChanged, R::Absent,             W::Start,     false, true),
            (J::Open,            L::MtimeChanged, R::PresentSame,        W::Compare,   false, true),
            (J::Open,            L::MtimeChanged, R::MultipartOurs,      W::Start,     true,  false),
            (J::Open,            L::MtimeChanged, R::MultipartTheirs,    W::Start,     false, true),
            (J::OpenBadPartSize, L::Same,         R::Absent,             W::Start,     false, true),
            (J::OpenBadPartSize, L::Same,         R::PresentSame,        W::Compare,   false, true),
            (J::OpenBadPartSize, L::Same,         R::PresentOther,       W::Compare,   false, true),
            (J::OpenBadPartSize, L::Same,         R::PresentOtherSize,   W::Conflict,  false, true),
            (J::OpenBadPartSize, L::Same,         R::MultipartOurs,      W::Start,     true,  false),
            (J::OpenBadPartSize, L::Same,         R::MultipartTheirs,    W::Start,     false, true),

            (J::Done,            L::Same,         R::Absent,             W::Start,     false, false),
            (J::Done,            L::Same,         R::PresentSame,        W::Skip,      false, false),
            (J::Done,            L::Same,         R::PresentOther,       W::Compare,   false, false),
            (J::Done,            L::Same,         R::PresentOtherSize,   W::Conflict,  false, false),
            (J::Done,            L::Same,         R::MultipartOurs,      W::Start,     false, false),
            (J::Done,            L::Same,         R::MultipartTheirs,    W::Start,     false, false),
            (J::Done,            L::SizeChanged,  R::PresentSame,        W::Conflict,  false, false),
            (J::Done,            L::SizeChanged,  R::Absent,             W::Start,     false, false),
            (J::Done,            L::MtimeChanged, R::PresentSame,        W::Compare,   false, false),
            (J::Done,            L::MtimeChanged, R::PresentOther,       W::Compare,   false, false),
            (J::Done,            L::MtimeChanged, R::MultipartTheirs,    W::Start,     false, false),
    ];

    fn kind(a: &Action) -> Want {
        match a {
            Action::Skip { .. } => Want::Skip,
            Action::Compare => Want::Compare,
            Action::Conflict { .. } => Want::Conflict,
            Action::Put => Want::Put,
            Action::Resume { .. } => Want::Resume,
            Action::Start { .. } => Want::Start,
        }
    }

    #[test]
    fn every_combination_of_journal_local_and_remote() {
        for (row, &(j, l, r, want, abort, forget)) in TABLE.iter().enumerate() {
            let recorded = journal(j, BIG);
            let local = local(l, BIG);
            // "Same"/"other size" are about the object versus the local file as it is now;
            // "present same" means the object the journal recorded, sized as recorded.
            let remote_size = match r {
                Remote::PresentSame => BIG,
                _ => local.size,
            };
            let plan = file(local, &recorded, &listed(r, remote_size), PART);
            let case = format!("row {row}: {j:?} × {l:?} × {r:?} → {plan:?}");
            assert_eq!(kind(&plan.action), want, "{case}");
            assert_eq!(plan.abort.is_some(), abort, "abort: {case}");
            assert_eq!(plan.forget.is_some(), forget, "forget: {case}");
            // Never abort an upload the journal does not hold, never forget one S3 still lists.
            if let Some(id) = &plan.abort {
                assert_eq!(id, OURS, "{case}");
            }
            if let Some(id) = &plan.forget {
                assert_eq!(id, OURS, "{case}");
            }
            if let Action::Resume { upload } = &plan.action {
                assert_eq!(upload.upload_id, OURS, "{case}");
            }
        }
    }

    #[test]
    fn the_table_covers_every_remote_state_for_every_journal_state() {
        use std::collections::BTreeSet;
        let seen: BTreeSet<String> = TABLE
            .iter()
            .map(|(j, _, r, ..)| format!("{:?}/{r:?}", std::mem::discriminant(j)))
            .collect();
        // 4 journal states × 6 remote states.
        assert_eq!(seen.len(), 4 * 6, "{seen:?}");
    }

    #[test]
    fn small_files_go_in_one_put_and_abort_only_our_stale_upload() {
        let l = LocalFile {
            size: SMALL,
            mtime: MTIME,
        };
        let p = file(
            l,
            &Recorded::default(),
            &listed(Remote::MultipartTheirs, SMALL),
            PART,
        );
        assert_eq!((p.action, p.abort), (Action::Put, None));
        // Part size raised since the last run: our multipart upload of the file is stale.
        let p = file(
            l,
            &journal(Journal::Open, SMALL),
            &listed(Remote::MultipartOurs, SMALL),
            PART,
        );
        assert_eq!((p.action, p.abort), (Action::Put, Some(OURS.into())));
        let p = file(
            l,
            &journal(Journal::Done, SMALL),
            &listed(Remote::PresentSame, SMALL),
            PART,
        );
        assert!(matches!(p.action, Action::Skip { .. }), "{p:?}");
    }

    #[test]
    fn part_size_grows_to_fit_ten_thousand_parts() {
        assert_eq!(part_size_for(BIG, PART), PART);
        let huge = 200 * 1024 * MIB;
        assert!(huge.div_ceil(part_size_for(huge, PART)) <= MAX_PARTS);
    }

    fn rp(size: u64, etag: &str, crc: Option<&str>) -> RemotePart {
        RemotePart {
            etag: etag.into(),
            crc64nvme: crc.map(String::from),
            size,
        }
    }

    fn jp(number: i32, size: u64, etag: &str, crc: &str) -> JournalPart {
        JournalPart {
            number,
            etag: etag.into(),
            crc64nvme: crc.into(),
            size,
        }
    }

    #[test]
    fn held_parts_need_the_right_size_and_a_checksum() {
        // 20 MiB in 8 MiB parts: 8, 8, 4.
        let remote: BTreeMap<i32, RemotePart> = [
            (1, rp(PART, "a", Some("c1"))),
            (2, rp(PART, "b", None)), // no checksum listed: the journal's, if same ETag
            (3, rp(PART, "c", Some("c3"))), // wrong size for the last part
            (4, rp(MIB, "d", Some("c4"))), // beyond the file
        ]
        .into();
        let journal = [jp(2, PART, "b", "c2")];
        let held = held_parts(BIG, PART, Some(&remote), &journal);
        assert_eq!(held.keys().copied().collect::<Vec<_>>(), [1, 2]);
        assert_eq!(held[&2].crc64nvme, "c2");
        // Journal ETag differs from S3's: no checksum to trust, part 2 is sent again.
        let journal = [jp(2, PART, "other", "c2")];
        let held = held_parts(BIG, PART, Some(&remote), &journal);
        assert_eq!(held.keys().copied().collect::<Vec<_>>(), [1]);
    }

    #[test]
    fn held_parts_fall_back_to_the_journal_when_s3_gives_no_readable_list() {
        let journal = [
            jp(1, PART, "a", "c1"),
            jp(3, 4 * MIB, "c", "c3"),
            jp(2, 1, "b", "c2"),
        ];
        let held = held_parts(BIG, PART, None, &journal);
        assert_eq!(held.keys().copied().collect::<Vec<_>>(), [1, 3]);
        assert!(held_parts(BIG, PART, Some(&BTreeMap::new()), &journal).is_empty());
    }

    fn done(size: u64, mtime: i64) -> DoneFile {
        DoneFile {
            size,
            mtime,
            sha256: "recorded".into(),
            crc64nvme: "c".into(),
            etag: None,
            version_id: None,
        }
    }

    /// When a file is read to compare it with an earlier upload, and when size + mtime are
    /// trusted: only this PC's record of the same key, same size and mtime.
    #[test]
    fn a_file_is_rehashed_unless_this_pc_verified_it_as_it_is() {
        let l = LocalFile {
            size: 10,
            mtime: MTIME,
        };
        let trusted = Hash::Trusted("recorded".into());
        for (uploaded, recorded, want) in [
            (None, None, Hash::NotNeeded),                      // only here
            (None, Some(done(10, MTIME)), Hash::NotNeeded),     // only here, old record
            (Some(11), None, Hash::NotNeeded),                  // other size: changed
            (Some(11), Some(done(10, MTIME)), Hash::NotNeeded), // other size: changed
            (Some(10), None, Hash::Read),                       // uploaded elsewhere
            (Some(10), Some(done(10, MTIME)), trusted),         // verified here, untouched
            (Some(10), Some(done(10, MTIME + 1)), Hash::Read),  // touched since
            (Some(10), Some(done(9, MTIME)), Hash::Read),       // record of another size
        ] {
            assert_eq!(
                hash_for_compare(l, uploaded, recorded.as_ref()),
                want,
                "{uploaded:?} {recorded:?}"
            );
        }
    }

    fn le(path: &str, size: u64, sha: Option<&str>, data: bool) -> LocalEntry {
        LocalEntry {
            path: path.into(),
            size,
            sha256: sha.map(String::from),
            data,
        }
    }

    fn ue(path: &str, size: u64, sha: Option<&str>) -> UploadedEntry {
        UploadedEntry {
            path: path.into(),
            size,
            sha256: sha.map(String::from),
        }
    }

    #[test]
    fn changes_name_every_added_removed_and_changed_file() {
        let uploaded = [
            ue("metadata.txt", 5, Some("m")),
            ue("rec_000.bin", 100, Some("a")),
            ue("rec_001.bin", 100, Some("b")),
            ue("rec_002.bin", 100, Some("c")),
        ];
        // The same folder: nothing differs.
        let same = [
            le("metadata.txt", 5, Some("m"), false),
            le("rec_000.bin", 100, Some("a"), true),
            le("rec_001.bin", 100, Some("b"), true),
            le("rec_002.bin", 100, Some("c"), true),
        ];
        let c = changes(&same, &uploaded);
        assert!(c.is_empty() && c.same_recording(), "{c:?}");
        assert_eq!(c.summary(), "no file differs");
        // A fix, a removal and an addition after the upload: the same recording, changed.
        let fixed = [
            le("metadata.txt", 6, None, false),
            le("rec_000.bin", 100, Some("a"), true),
            le("rec_002.bin", 100, Some("c2"), true),
            le("rec_003.bin", 100, None, true),
        ];
        let c = changes(&fixed, &uploaded);
        assert_eq!(c.added, ["rec_003.bin"]);
        assert_eq!(c.removed, ["rec_001.bin"]);
        assert_eq!(c.changed, ["metadata.txt", "rec_002.bin"]);
        assert!(c.same_recording());
        assert_eq!(
            c.summary(),
            "added rec_003.bin; removed rec_001.bin; changed metadata.txt, rec_002.bin"
        );
        // Another rig's recording of the same second: same names and sizes, other bytes; an
        // identical metadata file does not make it the same recording.
        let other = [
            le("metadata.txt", 5, Some("m"), false),
            le("rec_000.bin", 100, Some("x"), true),
            le("rec_001.bin", 100, Some("y"), true),
        ];
        let c = changes(&other, &uploaded);
        assert!(!c.same_recording(), "{c:?}");
        assert_eq!(c.changed, ["rec_000.bin", "rec_001.bin"]);
        assert_eq!(c.removed, ["rec_002.bin"]);
        // An object of unknown content compared equal by the caller counts as the same.
        let c = changes(
            &[le("rec_000.bin", 100, Some("a"), true)],
            &[ue("rec_000.bin", 100, None)],
        );
        assert!(c.is_empty() && c.same_recording());
    }

    #[test]
    fn a_long_list_of_changes_is_cut_with_a_count() {
        let c = FolderChanges {
            added: (0..8).map(|i| format!("f{i}")).collect(),
            ..Default::default()
        };
        assert_eq!(c.summary(), "added f0, f1, f2, f3, f4 and 3 more");
    }
}
