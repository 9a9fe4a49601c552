//! Which sessions may be uploaded, decided once: the check verdict, what this PC's uploads are
//! doing and what the catalog knows.
//!
//! Raw data is write-once, so a session the pipeline knows is never offered again as a plain
//! upload, whatever its folder looks like now. But the pipeline's status is that of what was
//! uploaded under the name, so it is shown only when the folder *is* that recording
//! ([`crate::names`]): a folder changed since its upload says so (a correction is the way), and a
//! different recording under a taken name is a name conflict, never the other recording's status.
//! A session already queued, running, held or uploaded here is on its way.
//! Otherwise the verdict decides: `pass` and `warn` may go (automatic uploads take `pass` only),
//! `wait` and `fail` may not. The reason comes with the answer so every screen can say *why*.

use labpipe_catalog::Status;
use labpipe_core::Verdict;
use serde::Serialize;
use std::collections::BTreeMap;

use crate::names::NameCheck;
use crate::pending::PendingSession;
use crate::pipeline::PipelineState;
use crate::progress::{TransferState, TransferView};
use crate::LabError;

/// Whether a session may be uploaded now, and if not, why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(
    feature = "ts",
    derive(ts_rs::TS),
    ts(export_to = "../../ui/src/lib/bindings/")
)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Eligibility {
    /// May be queued; `again` when an earlier upload of it failed or was cancelled.
    Ready { again: bool },
    /// The checks hold it back (`wait` or `fail`).
    Blocked { verdict: Verdict },
    /// Already queued, uploading, held or uploaded from this PC.
    OnItsWay { state: TransferState },
    /// The pipeline knows it: uploaded before, from here or elsewhere.
    Uploaded { status: Status },
    /// Another recording was uploaded under this session name: never uploaded under it, never
    /// shown with that recording's status. `reason`: who uploaded it, when, what differs;
    /// `advice`: a rig id in Settings.
    NameConflict { reason: String, advice: String },
    /// Uploaded, then changed (files added, removed or changed): `status` is the upload's, the
    /// way forward a correction.
    ChangedSinceUpload {
        status: Status,
        reason: String,
        advice: String,
    },
}

impl Eligibility {
    pub fn is_ready(&self) -> bool {
        matches!(self, Eligibility::Ready { .. })
    }
}

/// Which verdicts a caller takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accept {
    /// A person asked: `pass` and `warn`.
    PassOrWarn,
    /// Automatic uploads: only sessions whose every check passed.
    PassOnly,
}

/// The rule, for one session. `name`: the folder compared with what its session name holds,
/// when it was ([`crate::names`]).
pub fn eligibility(
    verdict: Verdict,
    transfer: Option<TransferState>,
    pipeline: Option<&PipelineState>,
    name: Option<&NameCheck>,
    accept: Accept,
) -> Eligibility {
    if let Some(p) = pipeline {
        return match name {
            Some(NameCheck::Taken { reason, advice }) => Eligibility::NameConflict {
                reason: reason.clone(),
                advice: advice.clone(),
            },
            Some(NameCheck::Changed { reason, advice }) => Eligibility::ChangedSinceUpload {
                status: p.status,
                reason: reason.clone(),
                advice: advice.clone(),
            },
            Some(NameCheck::Same) | None => Eligibility::Uploaded { status: p.status },
        };
    }
    if let Some(state) = transfer.filter(|s| s.is_active() || *s == TransferState::Done) {
        return Eligibility::OnItsWay { state };
    }
    let takes = match accept {
        Accept::PassOrWarn => verdict.is_uploadable(),
        Accept::PassOnly => verdict == Verdict::Pass,
    };
    if !takes {
        return Eligibility::Blocked { verdict };
    }
    Eligibility::Ready {
        again: matches!(
            transfer,
            Some(TransferState::Failed | TransferState::Cancelled)
        ),
    }
}

/// Every pending session's eligibility (what a person may do), by session; `names`: the
/// folders compared with what their session name holds.
pub fn eligibilities(
    pending: &BTreeMap<String, PendingSession>,
    transfers: &[TransferView],
    pipeline: &BTreeMap<String, PipelineState>,
    names: &BTreeMap<String, NameCheck>,
) -> BTreeMap<String, Eligibility> {
    let states = crate::pipeline::transfer_states(transfers);
    pending
        .values()
        .map(|r| {
            (
                r.session.clone(),
                eligibility(
                    r.verdict,
                    states.get(&r.session).copied(),
                    pipeline.get(&r.session),
                    names.get(&r.session),
                    Accept::PassOrWarn,
                ),
            )
        })
        .collect()
}

/// The pending sessions that may be queued, oldest recording first.
pub fn ready_to_upload<'a>(
    pending: impl IntoIterator<Item = &'a PendingSession>,
    transfers: &BTreeMap<String, TransferState>,
    pipeline: &BTreeMap<String, PipelineState>,
    accept: Accept,
) -> Vec<&'a PendingSession> {
    let mut ready: Vec<&PendingSession> = pending
        .into_iter()
        .filter(|r| {
            eligibility(
                r.verdict,
                transfers.get(&r.session).copied(),
                pipeline.get(&r.session),
                None,
                accept,
            )
            .is_ready()
        })
        .collect();
    ready.sort_by(|a, b| a.session.cmp(&b.session));
    ready
}

/// A person asked to upload `row`: Ok when it may be queued (or is on its way already, which
/// is not an error: queueing it again changes nothing), else why not.
pub fn check_request(
    row: &PendingSession,
    transfer: Option<TransferState>,
    pipeline: Option<&PipelineState>,
    name: Option<&NameCheck>,
) -> Result<(), LabError> {
    match eligibility(row.verdict, transfer, pipeline, name, Accept::PassOrWarn) {
        Eligibility::Ready { .. } | Eligibility::OnItsWay { .. } => Ok(()),
        Eligibility::Blocked { verdict } => Err(LabError::Blocked {
            session: row.session.clone(),
            verdict,
        }),
        Eligibility::Uploaded { .. } => Err(LabError::AlreadyUploaded {
            session: row.session.clone(),
        }),
        Eligibility::NameConflict { reason, advice } => Err(LabError::NameTaken {
            session: row.session.clone(),
            reason,
            advice,
        }),
        Eligibility::ChangedSinceUpload { reason, advice, .. } => {
            Err(LabError::ChangedSinceUpload {
                session: row.session.clone(),
                reason,
                advice,
            })
        }
    }
}

/// Whether a correction of `row` may be queued now (`labpipe upload --revise` in the app): its
/// checks allow an upload, a reason is given, and it is not being uploaded. Unlike
/// [`check_request`], a session the catalog already knows is exactly what a correction is for.
pub fn check_revision(
    row: &PendingSession,
    transfer: Option<TransferState>,
    reason: &str,
) -> Result<(), LabError> {
    if !row.verdict.is_uploadable() {
        return Err(LabError::Blocked {
            session: row.session.clone(),
            verdict: row.verdict,
        });
    }
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(LabError::NoReason {
            session: row.session.clone(),
        });
    }
    if transfer.is_some_and(|t| t.is_active()) {
        return Err(LabError::Busy {
            session: row.session.clone(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use Eligibility::*;
    use TransferState as T;
    use Verdict::*;

    fn pipe(status: Status) -> PipelineState {
        PipelineState {
            status,
            step: None,
            message: None,
            pipeline_version: None,
            stuck: None,
            manifest: None,
        }
    }

    /// verdict, this PC's transfer, the catalog, who asks → the answer.
    type Case<'a> = (
        Verdict,
        Option<T>,
        Option<&'a PipelineState>,
        Accept,
        Eligibility,
    );

    /// the catalog, the folder compared with what its name holds → the answer.
    type NamedCase<'a> = (
        Option<&'a PipelineState>,
        Option<&'a NameCheck>,
        Eligibility,
    );

    #[test]
    fn a_known_name_shows_its_status_only_when_the_folder_is_that_recording() {
        let processed = pipe(Status::Processed);
        let taken = NameCheck::Taken {
            reason: "a different recording already uses the name".into(),
            advice: "rig id".into(),
        };
        let changed = NameCheck::Changed {
            reason: "changed since upload: added b.bin.".into(),
            advice: "a correction".into(),
        };
        let table: &[NamedCase] = &[
            (
                Some(&processed),
                None,
                Uploaded {
                    status: Status::Processed,
                },
            ),
            (
                Some(&processed),
                Some(&NameCheck::Same),
                Uploaded {
                    status: Status::Processed,
                },
            ),
            (
                Some(&processed),
                Some(&taken),
                NameConflict {
                    reason: "a different recording already uses the name".into(),
                    advice: "rig id".into(),
                },
            ),
            (
                Some(&processed),
                Some(&changed),
                ChangedSinceUpload {
                    status: Status::Processed,
                    reason: "changed since upload: added b.bin.".into(),
                    advice: "a correction".into(),
                },
            ),
            // An answer about a name the pipeline no longer knows changes nothing.
            (None, Some(&taken), Ready { again: false }),
        ];
        for (i, (pipeline, name, want)) in table.iter().enumerate() {
            for verdict in [Pass, Fail] {
                let got = eligibility(verdict, None, *pipeline, *name, Accept::PassOrWarn);
                if pipeline.is_none() && verdict == Fail {
                    assert_eq!(got, Blocked { verdict: Fail }, "row {i}");
                } else {
                    assert_eq!(got, *want, "row {i}: {verdict:?} {name:?}");
                }
            }
        }
        let row = pending("20210301_161221", Pass);
        let err = check_request(&row, None, Some(&processed), Some(&taken)).unwrap_err();
        assert_eq!(err.code(), "name_taken");
        assert!(
            err.to_string().contains("not uploaded under this name"),
            "{err}"
        );
        let err = check_request(&row, None, Some(&processed), Some(&changed)).unwrap_err();
        assert_eq!(err.code(), "changed_since_upload");
        let json = serde_json::to_value(Eligibility::NameConflict {
            reason: "r".into(),
            advice: "a".into(),
        })
        .unwrap();
        assert_eq!(
            json,
            serde_json::json!({"kind": "name_conflict", "reason": "r", "advice": "a"})
        );
    }

    #[test]
    fn the_rule_over_verdict_transfer_and_catalog() {
        let processed = pipe(Status::Processed);
        let uploaded = pipe(Status::Uploaded);
        let table: &[Case] = &[
            (Pass, None, None, Accept::PassOrWarn, Ready { again: false }),
            (Warn, None, None, Accept::PassOrWarn, Ready { again: false }),
            (
                Warn,
                None,
                None,
                Accept::PassOnly,
                Blocked { verdict: Warn },
            ),
            (
                Wait,
                None,
                None,
                Accept::PassOrWarn,
                Blocked { verdict: Wait },
            ),
            (
                Fail,
                None,
                None,
                Accept::PassOrWarn,
                Blocked { verdict: Fail },
            ),
            (
                Pass,
                Some(T::Failed),
                None,
                Accept::PassOrWarn,
                Ready { again: true },
            ),
            (
                Pass,
                Some(T::Cancelled),
                None,
                Accept::PassOnly,
                Ready { again: true },
            ),
            (
                Fail,
                Some(T::Failed),
                None,
                Accept::PassOrWarn,
                Blocked { verdict: Fail },
            ),
            (
                Pass,
                Some(T::Queued),
                None,
                Accept::PassOrWarn,
                OnItsWay { state: T::Queued },
            ),
            (
                Pass,
                Some(T::Running),
                None,
                Accept::PassOrWarn,
                OnItsWay { state: T::Running },
            ),
            (
                Pass,
                Some(T::Paused),
                None,
                Accept::PassOrWarn,
                OnItsWay { state: T::Paused },
            ),
            (
                Pass,
                Some(T::Interrupted),
                None,
                Accept::PassOrWarn,
                OnItsWay {
                    state: T::Interrupted,
                },
            ),
            (
                Pass,
                Some(T::Done),
                None,
                Accept::PassOrWarn,
                OnItsWay { state: T::Done },
            ),
            // Raw data is write-once: the catalog's word beats everything local.
            (
                Pass,
                None,
                Some(&processed),
                Accept::PassOrWarn,
                Uploaded {
                    status: Status::Processed,
                },
            ),
            (
                Fail,
                Some(T::Failed),
                Some(&processed),
                Accept::PassOrWarn,
                Uploaded {
                    status: Status::Processed,
                },
            ),
            (
                Pass,
                Some(T::Done),
                Some(&uploaded),
                Accept::PassOrWarn,
                Uploaded {
                    status: Status::Uploaded,
                },
            ),
        ];
        for (i, (verdict, transfer, pipeline, accept, want)) in table.iter().enumerate() {
            assert_eq!(
                eligibility(*verdict, *transfer, *pipeline, None, *accept),
                *want,
                "row {i}: {verdict:?} {transfer:?} {pipeline:?} {accept:?}"
            );
        }
    }

    fn pending(session: &str, verdict: Verdict) -> PendingSession {
        let mut p = PendingSession::unreadable(std::path::Path::new(session), "x");
        p.verdict = verdict;
        p.findings.clear();
        p
    }

    #[test]
    fn ready_to_upload_skips_what_is_on_its_way_or_in_the_catalog() {
        let rows = [
            pending("20210301_000007", Pass),
            pending("20210301_000001", Pass),
            pending("20210301_000002", Warn),
            pending("20210301_000003", Fail),
            pending("20210301_000004", Wait),
            pending("20210301_000005", Pass),
            pending("20210301_000006", Pass),
        ];
        let transfers = BTreeMap::from([
            ("20210301_000005".to_string(), T::Running),
            ("20210301_000007".to_string(), T::Failed),
        ]);
        let pipeline = BTreeMap::from([("20210301_000006".to_string(), pipe(Status::Processed))]);
        let names =
            |v: Vec<&PendingSession>| v.iter().map(|r| r.session.clone()).collect::<Vec<_>>();
        assert_eq!(
            names(ready_to_upload(
                &rows,
                &transfers,
                &pipeline,
                Accept::PassOrWarn
            )),
            ["20210301_000001", "20210301_000002", "20210301_000007"],
            "oldest first"
        );
        assert_eq!(
            names(ready_to_upload(
                &rows,
                &transfers,
                &pipeline,
                Accept::PassOnly
            )),
            ["20210301_000001", "20210301_000007"]
        );
    }

    #[test]
    fn a_request_is_refused_with_the_reason() {
        let fail = pending("20210301_000003", Fail);
        let err = check_request(&fail, None, None, None).unwrap_err();
        assert_eq!(err.code(), "not_uploadable");
        assert!(err.to_string().contains("verdict is fail"), "{err}");
        let pass = pending("20210301_000001", Pass);
        let err = check_request(&pass, None, Some(&pipe(Status::Cataloged)), None).unwrap_err();
        assert!(err.to_string().contains("already uploaded"), "{err}");
        assert!(check_request(&pass, Some(T::Running), None, None).is_ok());
        assert!(check_request(&pass, Some(T::Failed), None, None).is_ok());
    }

    #[test]
    fn eligibility_reaches_the_front_end_tagged() {
        let json = serde_json::to_value(Blocked { verdict: Wait }).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"kind": "blocked", "verdict": "wait"})
        );
        let json = serde_json::to_value(OnItsWay { state: T::Paused }).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"kind": "on_its_way", "state": "paused"})
        );
    }

    #[test]
    fn a_correction_needs_good_checks_a_reason_and_no_upload_running() {
        let ok = pending("20210301_161221", Pass);
        check_revision(&ok, Some(T::Done), "gain fixed").unwrap();
        check_revision(&ok, None, "gain fixed").unwrap();
        check_revision(&ok, Some(T::Failed), "gain fixed").unwrap();
        for (row, transfer, reason, code) in [
            (
                pending("20210301_161221", Fail),
                None,
                "gain fixed",
                "Blocked",
            ),
            (ok.clone(), None, "  ", "NoReason"),
            (ok.clone(), None, &*"x".repeat(501), "NoReason"),
            (ok.clone(), Some(T::Running), "gain fixed", "Busy"),
            (ok.clone(), Some(T::Queued), "gain fixed", "Busy"),
        ] {
            let err = check_revision(&row, transfer, reason).unwrap_err();
            assert!(format!("{err:?}").starts_with(code), "{err:?}");
        }
    }
}
