//! A pending folder whose session name the pipeline already knows: is it the recording that was
//! uploaded under that name, that recording changed since, or *another* recording that happens
//! to carry the same name (two rigs that started in the same second, a PC whose clock was reset)?
//!
//! The comparison is the upload engine's own ([`labpipe_upload::Upload::name_check`]: what an
//! upload compares before it sends a byte), so the Pending row and the upload can never disagree.
//! This module decides *when* it runs and how the answer is said:
//!
//! - only for a folder the catalog knows by name (or this PC uploaded): a name nobody uploaded
//!   costs nothing;
//! - once per state of the folder (its files' paths, sizes and modification times as last checked)
//!   and of the catalog's entry (the manifest it was cataloged from), never on a timer;
//! - not while the folder is still being written (`wait`) or is being uploaded from here (the
//!   upload compares it itself);
//! - inside the comparison a file is read only where this PC's journal does not vouch for it with
//!   the same size and time (`docs/upload.md`, "When a file is read again"), so an unchanged
//!   folder uploaded from this PC costs one listing and one manifest read.

use labpipe_core::units::human_bytes;
use labpipe_core::Verdict;
use serde::Serialize;
use std::collections::BTreeMap;

use crate::pending::PendingSession;
use crate::pipeline::PipelineState;
use crate::progress::TransferState;

/// What a pending folder's name holds, compared with the folder, in a technician's words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(
    feature = "ts",
    derive(ts_rs::TS),
    ts(export_to = "../../ui/src/lib/bindings/")
)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NameCheck {
    /// The folder is what was uploaded under its name.
    Same,
    /// Another recording holds the name: `reason` says who uploaded it, when, and what differs;
    /// `advice` the way forward.
    Taken { reason: String, advice: String },
    /// This recording, changed after its upload: `reason` names each added, removed and changed
    /// file and the upload it differs from; `advice` the way forward (a correction).
    Changed { reason: String, advice: String },
}

impl NameCheck {
    /// The engine's answer for the app. `rig`: this PC's rig id, when Settings give one.
    pub fn from_engine(check: &labpipe_upload::NameCheck, rig: Option<&str>) -> Self {
        use labpipe_upload::NameCheck as E;
        match check {
            E::Free | E::Same => NameCheck::Same,
            E::Taken(t) => NameCheck::Taken {
                reason: format!(
                    "a different recording already uses the name {}: {}. This folder has {} files ({}) and none of its data files is in that upload ({}).",
                    t.session,
                    t.holder,
                    t.files,
                    human_bytes(t.bytes),
                    t.changes.summary(),
                ),
                advice: match rig {
                    None => format!(
                        "If this folder comes from another rig or lab PC, give each one its own rig id (Settings → Uploads → Rig id): its folders are then uploaded as {}_<rig id>. Nothing is uploaded under the taken name.",
                        t.session
                    ),
                    Some(rig) => format!(
                        "This PC's rig id is {rig}: if another PC uses the same id, give it its own; if this PC's clock was wrong when the folder was made, rename the folder to the time it was really recorded. Nothing is uploaded under the taken name."
                    ),
                },
            },
            E::Changed(c) => NameCheck::Changed {
                reason: match c.holder.uploaded_at {
                    Some(_) => format!(
                        "changed since upload: {}. It was {}.",
                        c.changes.summary(),
                        c.holder
                    ),
                    None => format!(
                        "changed since an upload from this PC was cut off: {}.",
                        c.changes.summary()
                    ),
                },
                advice: "The upload stays as it was. To upload the folder as it is now, upload it as a correction (kept beside the earlier upload) with what changed and why.".into(),
            },
        }
    }
}

/// What a comparison was made against: the folder as it was checked and the catalog's entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compared {
    /// [`PendingSession::folder_state`].
    pub folder: u64,
    /// The SHA-256 of the manifest the catalog's entry was made from (`None`: uploaded from here,
    /// not cataloged yet).
    pub manifest: Option<String>,
}

/// The pending sessions whose folder must be compared with what their name holds now, with what
/// the comparison is made against: the pipeline knows the name, the folder is settled and not
/// being uploaded from here, and nothing was compared for this state of folder and catalog yet.
pub fn to_compare(
    pending: &BTreeMap<String, PendingSession>,
    pipeline: &BTreeMap<String, PipelineState>,
    transfers: &BTreeMap<String, TransferState>,
    done: &BTreeMap<String, (Compared, NameCheck)>,
) -> Vec<(String, Compared)> {
    pending
        .values()
        .filter(|r| r.recorded_at.is_some() && r.verdict != Verdict::Wait && r.file_count > 0)
        .filter(|r| !transfers.get(&r.session).is_some_and(|t| t.is_active()))
        .filter_map(|r| {
            let p = pipeline.get(&r.session)?;
            let now = Compared {
                folder: r.folder_state,
                manifest: p.manifest.clone(),
            };
            match done.get(&r.session) {
                Some((was, _)) if *was == now => None,
                _ => Some((r.session.clone(), now)),
            }
        })
        .collect()
}

/// The comparisons that still matter: of sessions pending and known to the pipeline, and not
/// being uploaded from here (an upload — a correction — changes what the name holds: compared
/// again once it has ended). The last answer for a folder otherwise stays until the next
/// comparison replaces it (a folder being edited does not flicker back to the uploaded
/// recording's status).
pub fn retain_current(
    done: &mut BTreeMap<String, (Compared, NameCheck)>,
    pending: &BTreeMap<String, PendingSession>,
    pipeline: &BTreeMap<String, PipelineState>,
    transfers: &BTreeMap<String, TransferState>,
) {
    done.retain(|s, _| {
        pending.contains_key(s)
            && pipeline.contains_key(s)
            && !transfers.get(s).is_some_and(|t| t.is_active())
    });
}

/// The answers by session, as [`crate::ready::eligibilities`] takes them.
pub fn answers(done: &BTreeMap<String, (Compared, NameCheck)>) -> BTreeMap<String, NameCheck> {
    done.iter()
        .map(|(s, (_, check))| (s.clone(), check.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use labpipe_catalog::Status;
    use labpipe_upload::refusal::Holder;
    use labpipe_upload::{ChangedSinceUpload, FolderChanges, NameTaken};
    use TransferState as T;

    fn row(session: &str, verdict: Verdict, folder_state: u64) -> PendingSession {
        let mut p = PendingSession::unreadable(std::path::Path::new(session), "x");
        p.verdict = verdict;
        p.findings.clear();
        p.recorded_at = Some("2021-03-01 16:12:21".into());
        p.file_count = 3;
        p.folder_state = folder_state;
        p
    }

    fn known(manifest: Option<&str>) -> PipelineState {
        PipelineState {
            status: Status::Processed,
            step: None,
            message: None,
            pipeline_version: Some(1),
            stuck: None,
            manifest: manifest.map(String::from),
        }
    }

    #[test]
    fn compared_once_per_state_of_folder_and_catalog_and_only_when_the_name_is_known() {
        let pending: BTreeMap<String, PendingSession> = [
            row("20210301_000001", Verdict::Pass, 1), // known, never compared
            row("20210301_000002", Verdict::Pass, 2), // known, compared at this state
            row("20210301_000003", Verdict::Pass, 3), // known, folder changed since
            row("20210301_000004", Verdict::Pass, 4), // known, catalog entry changed since
            row("20210301_000005", Verdict::Pass, 5), // name unknown: nothing to compare
            row("20210301_000006", Verdict::Wait, 6), // still being written
            row("20210301_000007", Verdict::Fail, 7), // known, blocked by its checks: compared too
            row("20210301_000008", Verdict::Pass, 8), // being uploaded from here
        ]
        .into_iter()
        .map(|r| (r.session.clone(), r))
        .collect();
        let pipeline: BTreeMap<String, PipelineState> = [1, 2, 3, 4, 6, 7, 8]
            .iter()
            .map(|i| (format!("20210301_00000{i}"), known(Some("m1"))))
            .chain([("20210301_000004".to_string(), known(Some("m2")))])
            .collect();
        let transfers = BTreeMap::from([("20210301_000008".to_string(), T::Running)]);
        let at = |folder, m: &str| Compared {
            folder,
            manifest: Some(m.into()),
        };
        let done = BTreeMap::from([
            (
                "20210301_000002".to_string(),
                (at(2, "m1"), NameCheck::Same),
            ),
            (
                "20210301_000003".to_string(),
                (at(30, "m1"), NameCheck::Same),
            ),
            (
                "20210301_000004".to_string(),
                (at(4, "m1"), NameCheck::Same),
            ),
        ]);
        let due = to_compare(&pending, &pipeline, &transfers, &done);
        assert_eq!(
            due.iter().map(|(s, _)| s.as_str()).collect::<Vec<_>>(),
            [
                "20210301_000001",
                "20210301_000003",
                "20210301_000004",
                "20210301_000007"
            ]
        );
        assert_eq!(due[2].1, at(4, "m2"), "compared against the new entry");

        let mut done = done;
        done.insert("20210301_000009".into(), (at(9, "m1"), NameCheck::Same));
        done.insert("20210301_000008".into(), (at(8, "m1"), NameCheck::Same));
        retain_current(&mut done, &pending, &pipeline, &transfers);
        assert!(!done.contains_key("20210301_000009"), "no longer pending");
        assert!(
            !done.contains_key("20210301_000008"),
            "an upload (a correction) changes what the name holds"
        );
        assert_eq!(answers(&done).len(), 3);
    }

    fn holder() -> Holder {
        Holder {
            uploaded_at: Some(chrono::Utc.with_ymd_and_hms(2026, 12, 1, 9, 30, 0).unwrap()),
            uploaded_by: Some(labpipe_core::UploadedBy::new("RIG-A-PC", "lab", None)),
            files: 5,
            bytes: 200_000_000,
            revision: 1,
        }
    }

    #[test]
    fn the_engines_answer_in_words_with_the_way_forward() {
        let taken = labpipe_upload::NameCheck::Taken(Box::new(NameTaken {
            session: "20210301_161221".into(),
            folder: "/lab/20210301_161221".into(),
            bucket: "raw".into(),
            holder: holder(),
            files: 7,
            bytes: 60_000_000,
            changes: FolderChanges {
                added: vec!["rec_005.bin".into(), "rec_006.bin".into()],
                changed: vec!["rec_000.bin".into()],
                ..Default::default()
            },
            rig: None,
            command: "labpipe upload --revise …".into(),
        }));
        let NameCheck::Taken { reason, advice } = NameCheck::from_engine(&taken, None) else {
            panic!("a taken name")
        };
        for want in [
            "a different recording already uses the name 20210301_161221",
            "uploaded 2026-12-01 09:30:00 UTC from RIG-A-PC (user lab, no rig id)",
            "5 files (200.0 MB)",
            "This folder has 7 files (60.0 MB)",
            "added rec_005.bin, rec_006.bin; changed rec_000.bin",
        ] {
            assert!(reason.contains(want), "{want:?} not in {reason:?}");
        }
        assert!(advice.contains("Settings → Uploads → Rig id"), "{advice}");
        assert!(advice.contains("20210301_161221_<rig id>"), "{advice}");
        let NameCheck::Taken { advice, .. } = NameCheck::from_engine(&taken, Some("rigB")) else {
            panic!()
        };
        assert!(advice.contains("rig id is rigB"), "{advice}");

        let changed = labpipe_upload::NameCheck::Changed(Box::new(ChangedSinceUpload {
            session: "20210301_161221".into(),
            folder: "/lab/20210301_161221".into(),
            holder: holder(),
            changes: FolderChanges {
                removed: vec!["rec_002.bin".into()],
                same_data: 3,
                ..Default::default()
            },
            command: "labpipe upload --revise …".into(),
        }));
        let NameCheck::Changed { reason, advice } = NameCheck::from_engine(&changed, None) else {
            panic!("changed")
        };
        assert!(
            reason.starts_with("changed since upload: removed rec_002.bin."),
            "{reason}"
        );
        assert!(reason.contains("from RIG-A-PC"), "{reason}");
        assert!(advice.contains("as a correction"), "{advice}");
        assert_eq!(
            NameCheck::from_engine(&labpipe_upload::NameCheck::Same, None),
            NameCheck::Same
        );
        let json = serde_json::to_value(NameCheck::Same).unwrap();
        assert_eq!(json, serde_json::json!({"kind": "same"}));
    }
}
