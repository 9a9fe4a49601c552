//! Uploading one checked session, start to end: refuse what the checks block, take the
//! session's lock, learn what S3 already holds from one listing, plan every file
//! ([`crate::plan`]), send the files in parallel, and write the manifest last.

use labpipe_aws::RequestCounter;
use labpipe_core::check::FileRole;
use labpipe_core::check::ReportFile;
use labpipe_core::layout::{
    manifest_revision, raw_name_prefix, raw_revisions_prefix, raw_session_prefix, revision_folder,
};
use labpipe_core::{Manifest, Revision, SessionReport, UploadedBy};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinSet;

use crate::bucket::{Parts, RawBucket, RemotePart, Stored};
use crate::digest::crc_to_base64;
use crate::event::{Event, FileOutcome, SessionOutcome};
use crate::files::{still_unchanged, FileDigest};
use crate::journal::Journal;
use crate::lock::SessionLock;
use crate::plan::{
    self, Action, FilePlan, Hash, Listed, LocalEntry, LocalFile, Recorded, UploadedEntry,
};
use crate::progress::{FileProgress, Tally};
use crate::refusal::{correction_command, ChangedSinceUpload, FolderChanges, Holder, NameTaken};
use crate::slots::Slots;
use crate::throttle::Throttle;
use crate::{manifest_key, object_key, UploadError, MANIFEST_NAME, MIN_PART_SIZE};

mod names;

/// How many revision numbers a correction tries past the first free one when each holds the
/// objects of another cut-off correction that differ from the folder.
const MAX_REVISION_TRIES: u32 = 20;

/// How an upload run behaves; the defaults were measured against a local emulator (see
/// `docs/upload.md`).
#[derive(Debug, Clone)]
pub struct UploadOptions {
    /// Files at most this large go in one `PutObject`; larger ones are sent in parts of this size.
    pub part_size: u64,
    /// Parts in flight at once across the whole run (small files take a share of a part's slot,
    /// [`crate::slots`]); memory use is at most about `concurrency × part_size`.
    pub concurrency: usize,
    /// Average cap on bytes sent per second.
    pub max_bandwidth: Option<u64>,
    /// Flags a printed correction command repeats so that it runs as the caller ran
    /// (`labpipe upload` passes its `--bucket` and `--journal`).
    pub command_flags: Vec<String>,
}

impl Default for UploadOptions {
    fn default() -> Self {
        Self {
            part_size: 16 * 1024 * 1024,
            concurrency: 8,
            max_bandwidth: None,
            command_flags: Vec::new(),
        }
    }
}

/// What [`Upload::before_sending`] found.
enum Before {
    /// Send what the plan says; files already proven in S3 are settled (by index), and the
    /// folder's manifest is proven to list exactly these files (then it is not read again).
    Send {
        presettled: Vec<Option<Settled>>,
        manifest_proven: bool,
    },
    /// The folder is exactly a committed revision in another raw folder (named): nothing to do.
    AlreadyThere(String),
}

/// The machine writing a manifest: this host, this user (the OS's, [`labpipe_core::machine`]),
/// and the session's rig id.
fn this_machine(report: &SessionReport) -> UploadedBy {
    labpipe_core::machine::uploaded_by(report.id.and_then(|id| id.rig()).map(|r| r.to_string()))
}

/// What a session's name holds, compared with its folder ([`Upload::name_check`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameCheck {
    /// Nothing is stored under the name.
    Free,
    /// What is stored is this folder (all of it, or the part a cut-off upload sent).
    Same,
    /// Another recording holds the name.
    Taken(Box<NameTaken>),
    /// This recording, changed after (part of) it was uploaded.
    Changed(Box<ChangedSinceUpload>),
}

/// What happened to one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionResult {
    pub outcome: SessionOutcome,
    pub bytes_total: u64,
    pub bytes_sent: u64,
    pub bytes_resumed: u64,
}

/// An upload run against one bucket; cheap to clone.
#[derive(Clone)]
pub struct Upload {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub bucket: RawBucket,
    pub opts: UploadOptions,
    pub journal: Arc<Journal>,
    events: Option<UnboundedSender<Event>>,
    /// Bytes in flight across the run ([`Slots`]: a part takes a slot, a small file a share).
    pub slots: Slots,
    pub throttle: Option<Throttle>,
    /// Every request the run's client sends (an interceptor on it).
    requests: RequestCounter,
    /// Objects settled (files proven in S3, and manifests).
    objects: AtomicU64,
}

/// What a run cost in requests so far: every attempt its client sent, and the objects (files and
/// manifests) it settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RequestTally {
    pub requests: u64,
    pub objects: u64,
}

impl RequestTally {
    /// Requests per settled object (0 when none settled).
    pub fn per_object(&self) -> f64 {
        if self.objects == 0 {
            0.0
        } else {
            self.requests as f64 / self.objects as f64
        }
    }
}

/// How one file ended up in S3.
pub(crate) struct Settled {
    pub digest: FileDigest,
    pub outcome: FileOutcome,
    /// The object version holding the file, when the bucket returned one.
    pub version_id: Option<String>,
}

impl Upload {
    /// Prepares a run and checks once that the bucket exists and the credentials work, so a
    /// wrong bucket or key fails before any session is touched.
    pub async fn connect(
        s3: aws_sdk_s3::Client,
        bucket: impl Into<String>,
        opts: UploadOptions,
        journal: Arc<Journal>,
        events: Option<UnboundedSender<Event>>,
    ) -> Result<Self, UploadError> {
        if opts.part_size < MIN_PART_SIZE {
            return Err(UploadError::Options {
                detail: format!(
                    "part size {} is below the S3 minimum of 5 MiB; choose a larger --part-size",
                    opts.part_size
                ),
            });
        }
        let requests = RequestCounter::default();
        let s3 = requests.attach(&s3);
        let upload = Upload {
            inner: Arc::new(Inner {
                requests,
                objects: AtomicU64::new(0),
                bucket: RawBucket::new(s3, bucket.into(), events.clone()),
                slots: Slots::new(opts.concurrency, opts.part_size),
                throttle: opts.max_bandwidth.map(Throttle::new),
                opts,
                journal,
                events,
            }),
        };
        upload.inner.bucket.preflight().await?;
        Ok(upload)
    }

    pub fn bucket(&self) -> &str {
        self.inner.bucket.name()
    }

    /// Requests sent and objects settled by this run so far (the preflight included).
    pub fn request_tally(&self) -> RequestTally {
        RequestTally {
            requests: self.inner.requests.sent(),
            objects: self.inner.objects.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn emit(&self, e: Event) {
        if let Some(tx) = &self.inner.events {
            let _ = tx.send(e);
        }
    }

    /// Uploads one checked session; emits events and returns what happened.
    ///
    /// Sessions whose verdict is `fail` or `wait` are refused with their findings. A session
    /// another uploader on this machine is sending fails at once with
    /// [`UploadError::Locked`] naming it.
    pub async fn session(&self, report: &SessionReport) -> Result<SessionResult, UploadError> {
        self.upload_session(report, None, false).await
    }

    /// Uploads a corrected session as `revision` (number ≥ 2, see [`Upload::next_revision`])
    /// into `raw/<session>.r<N>/`, beside the earlier revisions, which stay as they are. The
    /// manifest records the revision and its reason; ingest makes it the session's current one.
    pub async fn revision(
        &self,
        report: &SessionReport,
        revision: &Revision,
    ) -> Result<SessionResult, UploadError> {
        if revision.number < 2 || revision.reason.trim().is_empty() {
            return Err(UploadError::Invalid {
                session: report.session.clone(),
                detail: "a revision needs a number of 2 or more and a reason (--reason)".into(),
            });
        }
        self.upload_session(report, Some(revision), false).await
    }

    /// Uploads a corrected session as its next revision ([`Upload::next_revision`]: an
    /// interrupted correction resumes; one whose objects differ from the folder now is left
    /// unused and the next number taken) with `reason`. What `labpipe upload --revise` and the
    /// app's *Upload as a correction* both call.
    pub async fn correction(
        &self,
        report: &SessionReport,
        reason: &str,
    ) -> Result<SessionResult, UploadError> {
        let number = self.next_revision(&report.session).await?;
        let revision = Revision {
            number,
            reason: reason.to_string(),
        };
        if reason.trim().is_empty() {
            return self.revision(report, &revision).await;
        }
        self.upload_session(report, Some(&revision), true).await
    }

    /// `next_number`: a correction that may move to the next revision number when the one it
    /// was given holds a cut-off correction's differing objects.
    async fn upload_session(
        &self,
        report: &SessionReport,
        revision: Option<&Revision>,
        next_number: bool,
    ) -> Result<SessionResult, UploadError> {
        let session = report.session.clone();
        if report.id.is_none() || !report.verdict.is_uploadable() {
            let findings: Vec<String> = report
                .findings
                .iter()
                .filter(|f| f.severity >= labpipe_core::Severity::Warning)
                .map(|f| match &f.file {
                    Some(file) => format!("{file}: {}", f.message),
                    None => f.message.clone(),
                })
                .collect();
            self.emit(Event::SessionRefused {
                session: session.clone(),
                verdict: report.verdict.as_str().into(),
                findings: findings.clone(),
            });
            return Err(UploadError::NotUploadable {
                session,
                verdict: report.verdict.as_str(),
                findings,
            });
        }
        let tally = Arc::new(Tally::default());
        self.emit(Event::SessionStarted {
            session: session.clone(),
            files: report.files.len(),
            bytes_total: report.total_bytes,
        });
        let result = self
            .locked_session(report, revision, next_number, &tally)
            .await;
        let (sent, resumed) = (tally.sent(), tally.resumed());
        match result {
            Ok((outcome, folder)) => {
                self.emit(Event::SessionDone {
                    session: session.clone(),
                    outcome,
                    bytes_total: report.total_bytes,
                    bytes_sent: sent,
                    bytes_resumed: resumed,
                    manifest_key: manifest_key(&folder),
                });
                Ok(SessionResult {
                    outcome,
                    bytes_total: report.total_bytes,
                    bytes_sent: sent,
                    bytes_resumed: resumed,
                })
            }
            Err(e) => {
                tracing::warn!(session = %session, error = %e, "session failed");
                self.emit(Event::SessionFailed {
                    session,
                    code: e.code().into(),
                    reason: e.to_string(),
                    bytes_sent: sent,
                });
                Err(e)
            }
        }
    }

    /// Under the session's lock: the folder, then (for a correction allowed to) the next
    /// revision numbers while each refuses before sending. Returns the outcome and the raw folder
    /// that holds the session now.
    async fn locked_session(
        &self,
        report: &SessionReport,
        revision: Option<&Revision>,
        next_number: bool,
        tally: &Arc<Tally>,
    ) -> Result<(SessionOutcome, String), UploadError> {
        let session = &report.session;
        if report.files.iter().any(|f| f.path == MANIFEST_NAME) {
            return Err(UploadError::Invalid {
                session: session.clone(),
                detail: format!("a file named {MANIFEST_NAME} would collide with the upload's manifest; rename it"),
            });
        }
        // Held until the manifest is written (or the session fails): nothing below runs twice
        // at once for one session on this machine.
        let _lock = SessionLock::acquire(&self.inner.journal.locks_dir(), session)?;
        let mut revision = revision.cloned();
        let mut tries = 0;
        loop {
            let folder = revision_folder(session, revision.as_ref().map_or(1, |r| r.number));
            match self
                .in_folder(report, revision.as_ref(), &folder, tally)
                .await
            {
                Err(UploadError::NameTaken(_) | UploadError::ChangedSinceUpload(_))
                    if next_number && tries < MAX_REVISION_TRIES =>
                {
                    let r = revision.as_mut().expect("only corrections move on");
                    tracing::info!(session = %session, folder, "a cut-off correction's objects differ from the folder; taking the next revision number");
                    r.number += 1;
                    tries += 1;
                }
                other => return other,
            }
        }
    }

    /// The session into `folder` (`<session>`, or `<session>.r<N>` for a revision): what is
    /// there already, compared before anything is sent; then the files and the manifest.
    async fn in_folder(
        &self,
        report: &SessionReport,
        revision: Option<&Revision>,
        folder: &str,
        tally: &Arc<Tally>,
    ) -> Result<(SessionOutcome, String), UploadError> {
        let i = &self.inner;
        let session = &report.session;
        // In-progress multipart uploads are listed only when the journal has one of ours to
        // resume in this session: the planner ignores every other upload.
        let mut resumable = false;
        for file in &report.files {
            resumable |= i
                .journal
                .open_upload(i.bucket.name(), &object_key(folder, &file.path))?
                .is_some();
        }
        // A first upload lists every folder of its name at once (`raw/<session>`: its own and its
        // corrections'), so a re-run also learns the latest revision from this one listing.
        let prefix = match revision {
            None => raw_name_prefix(folder),
            Some(_) => raw_session_prefix(folder),
        };
        let survey = i.bucket.survey(&prefix, resumable).await?;
        let plans = self.plan(report, folder, &survey)?;
        // Before any byte is sent: the name's earlier upload, if any, must be this folder.
        let (mut presettled, manifest_proven) = match self
            .before_sending(report, revision, folder, &survey, &plans)
            .await?
        {
            Before::Send {
                presettled,
                manifest_proven,
            } => (presettled, manifest_proven),
            Before::AlreadyThere(there) => return Ok((SessionOutcome::AlreadyUploaded, there)),
        };
        for (file, p) in report.files.iter().zip(&plans) {
            let key = object_key(folder, &file.path);
            if let Some(id) = &p.abort {
                tracing::info!(key, upload_id = %id, "aborting our own multipart upload that can no longer complete");
                i.bucket.abort(&key, id).await?;
                i.journal.end_upload(i.bucket.name(), &key, id)?;
            }
            if let Some(id) = &p.forget {
                i.journal.end_upload(i.bucket.name(), &key, id)?;
            }
        }

        let mut set = JoinSet::new();
        let mut settled: Vec<Option<Settled>> = (0..report.files.len()).map(|_| None).collect();
        for (index, (file, p)) in report.files.iter().zip(plans).enumerate() {
            if let Some(done) = presettled[index].take() {
                settled[index] = Some(done);
                continue;
            }
            let me = self.clone();
            let file = file.clone();
            let folder_path = report.path.clone();
            let session = session.clone();
            let key_folder = folder.to_string();
            let tally = tally.clone();
            set.spawn(async move {
                let vanished = p.forget.is_some();
                let settled = me
                    .file(
                        &session,
                        &key_folder,
                        &folder_path,
                        &file,
                        p.action,
                        vanished,
                        &tally,
                    )
                    .await;
                (index, settled)
            });
        }
        while let Some(joined) = set.join_next().await {
            let (index, result) = joined.map_err(|e| UploadError::Task {
                detail: format!("file upload: {e}"),
            })?;
            match result {
                Ok(s) => settled[index] = Some(s),
                Err(e) => {
                    set.abort_all();
                    while set.join_next().await.is_some() {}
                    return Err(e);
                }
            }
        }
        let settled: Vec<Settled> = settled
            .into_iter()
            .map(|s| s.expect("every file task reported"))
            .collect();
        let all_there = settled
            .iter()
            .all(|s| s.outcome == FileOutcome::AlreadyUploaded);
        let hashes = settled
            .iter()
            .map(|s| (s.digest.sha256.clone(), Some(crc_to_base64(s.digest.crc))))
            .collect();
        let mut manifest = Manifest::new(report, hashes, chrono::Utc::now()).map_err(|e| {
            UploadError::Invalid {
                session: session.clone(),
                detail: e.to_string(),
            }
        })?;
        manifest.revision = revision.cloned();
        manifest.uploaded_by = Some(this_machine(report));
        // Readers fetch exactly these versions, so a later write at a key changes nothing
        // downstream.
        manifest.pin_versions(
            report
                .files
                .iter()
                .zip(&settled)
                .map(|(f, s)| (f.path.as_str(), s.version_id.clone())),
        );
        // The manifest vouches for the local files as they are now: one last look at each.
        for file in &report.files {
            still_unchanged(&report.path.join(&file.path), file)?;
        }
        let listed = survey.objects.contains_key(&manifest_key(folder));
        let manifest_there =
            manifest_proven || self.put_manifest(folder, &manifest, listed).await?;
        i.objects
            .fetch_add(settled.len() as u64 + 1, Ordering::Relaxed);
        let outcome = if all_there && manifest_there {
            SessionOutcome::AlreadyUploaded
        } else {
            SessionOutcome::Uploaded
        };
        Ok((outcome, folder.to_string()))
    }

    /// The plan of every file from the journal and the survey.
    fn plan(
        &self,
        report: &SessionReport,
        folder: &str,
        survey: &crate::bucket::Survey,
    ) -> Result<Vec<FilePlan>, UploadError> {
        let i = &self.inner;
        let bucket = i.bucket.name();
        report
            .files
            .iter()
            .map(|file| {
                let key = object_key(folder, &file.path);
                let recorded = Recorded {
                    open: i.journal.open_upload(bucket, &key)?,
                    done: i.journal.done_file(bucket, &key)?,
                };
                let listed = Listed {
                    object: survey.objects.get(&key).cloned(),
                    uploads: survey.uploads.get(&key).cloned().unwrap_or_default(),
                };
                let local = LocalFile {
                    size: file.size,
                    mtime: file.modified_unix,
                };
                Ok(plan::file(local, &recorded, &listed, i.opts.part_size))
            })
            .collect()
    }

    /// One file, as planned. `vanished`: the journal recorded an upload of ours for its key that
    /// the survey no longer showed.
    #[allow(clippy::too_many_arguments)]
    async fn file(
        &self,
        session: &str,
        key_folder: &str,
        folder: &Path,
        file: &ReportFile,
        action: Action,
        vanished: bool,
        tally: &Arc<Tally>,
    ) -> Result<Settled, UploadError> {
        let local = folder.join(&file.path);
        let key = object_key(key_folder, &file.path);
        still_unchanged(&local, file)?;
        let progress = Arc::new(FileProgress::new(session, &file.path, file.size));
        let (action, remote_parts) = self.look_again(&key, file, action, vanished).await?;
        match action {
            Action::Skip { done } => {
                let digest = FileDigest {
                    sha256: done.sha256.clone(),
                    crc: crate::digest::crc_from_base64(&done.crc64nvme).unwrap_or_default(),
                };
                self.already_there(session, file);
                let stored = Stored {
                    etag: done.etag.unwrap_or_default(),
                    version_id: done.version_id,
                };
                self.verified(session, file, &key, &digest, &stored)?;
                Ok(Settled {
                    digest,
                    outcome: FileOutcome::AlreadyUploaded,
                    version_id: stored.version_id,
                })
            }
            Action::Compare => self.compare(session, &local, &key, file).await,
            Action::Conflict { remote_size } => Err(UploadError::Conflict {
                bucket: self.bucket().into(),
                key,
                detail: format!("remote {remote_size} bytes, local {} bytes", file.size),
            }),
            Action::Put => {
                let written = self.put_small(&local, &key, file, tally, &progress).await?;
                self.sent(session, file, &key, &progress, written)
            }
            Action::Resume { upload } => {
                let resume = Ok((upload, remote_parts));
                let written = self
                    .multipart(&local, &key, file, resume, tally, &progress)
                    .await?;
                self.sent(session, file, &key, &progress, written)
            }
            Action::Start { part_size } => {
                let written = self
                    .multipart(&local, &key, file, Err(part_size), tally, &progress)
                    .await?;
                self.sent(session, file, &key, &progress, written)
            }
        }
    }

    /// Where the plan rests on an upload of ours, what S3 says of it now. A resumed upload comes
    /// back with the parts `ListParts` shows (`None`: an answer that could not be read, so the
    /// journal's parts stand in). An upload that has ended since it was recorded (`vanished`) or
    /// since the survey (`ListParts` says it is gone) may have been completed by a run that died
    /// before it heard the answer, so the file goes to [`Upload::after_vanished`].
    async fn look_again(
        &self,
        key: &str,
        file: &ReportFile,
        action: Action,
        vanished: bool,
    ) -> Result<(Action, Option<BTreeMap<i32, RemotePart>>), UploadError> {
        let i = &self.inner;
        match action {
            a @ (Action::Put | Action::Start { .. }) if vanished => {
                Ok((self.after_vanished(key, file, a).await?, None))
            }
            Action::Resume { upload } => match i.bucket.parts(key, &upload.upload_id).await? {
                Parts::Listed(parts) => Ok((Action::Resume { upload }, Some(parts))),
                Parts::Unreadable => Ok((Action::Resume { upload }, None)),
                Parts::Gone => {
                    i.journal
                        .end_upload(i.bucket.name(), key, &upload.upload_id)?;
                    let start = Action::Start {
                        part_size: upload.part_size,
                    };
                    Ok((self.after_vanished(key, file, start).await?, None))
                }
            },
            a => Ok((a, None)),
        }
    }

    /// Our upload of `key` has ended and the survey showed no object there. A run killed while S3
    /// completed the upload leaves exactly that for a moment, so the key is looked at again
    /// ([`Upload::object_soon`]) before the whole file is sent again: an object that appears is
    /// compared (never written over), and `fallback` goes ahead only when none does. Its
    /// conditional write is the last guard: a completion that lands later still makes it fail as
    /// "exists", and the object is compared then.
    async fn after_vanished(
        &self,
        key: &str,
        file: &ReportFile,
        fallback: Action,
    ) -> Result<Action, UploadError> {
        tracing::info!(
            key,
            "our upload has ended with no object at its key; looking again"
        );
        Ok(match self.object_soon(key).await? {
            None => fallback,
            Some(found) if found.size == file.size => Action::Compare,
            Some(found) => Action::Conflict {
                remote_size: found.size,
            },
        })
    }

    /// A file this run wrote, and S3 confirmed: say so and record it.
    fn sent(
        &self,
        session: &str,
        file: &ReportFile,
        key: &str,
        progress: &FileProgress,
        (digest, stored): (FileDigest, Stored),
    ) -> Result<Settled, UploadError> {
        self.uploaded(session, file, progress);
        self.verified(session, file, key, &digest, &stored)?;
        Ok(Settled {
            digest,
            outcome: FileOutcome::Uploaded,
            version_id: stored.version_id,
        })
    }

    fn uploaded(&self, session: &str, file: &ReportFile, progress: &FileProgress) {
        let (sent, resumed) = progress.counts();
        self.emit(Event::FileDone {
            session: session.into(),
            path: file.path.clone(),
            outcome: FileOutcome::Uploaded,
            bytes_sent: sent,
            bytes_resumed: resumed,
        });
    }

    /// The object already holds exactly this file: report it as done with nothing sent.
    pub(crate) fn already_there(&self, session: &str, file: &ReportFile) {
        self.emit(Event::FileProgress {
            session: session.into(),
            path: file.path.clone(),
            bytes_done: file.size,
            bytes_total: file.size,
            rate: 0.0,
            eta_secs: Some(0.0),
        });
        self.emit(Event::FileDone {
            session: session.into(),
            path: file.path.clone(),
            outcome: FileOutcome::AlreadyUploaded,
            bytes_sent: 0,
            bytes_resumed: 0,
        });
    }

    /// A file's object is proven equal to the local file: say so, and remember it in the journal
    /// (with the object's ETag and version id) so a re-run needs neither a read nor a request for
    /// it, and its manifest can still name the version.
    pub(crate) fn verified(
        &self,
        session: &str,
        file: &ReportFile,
        key: &str,
        digest: &FileDigest,
        stored: &Stored,
    ) -> Result<(), UploadError> {
        let i = &self.inner;
        let crc_b64 = crc_to_base64(digest.crc);
        // Recorded before it is announced: whoever sees the event may rely on the record.
        i.journal.record_done(
            i.bucket.name(),
            key,
            &crate::journal::DoneFile {
                size: file.size,
                mtime: file.modified_unix,
                sha256: digest.sha256.clone(),
                crc64nvme: crc_b64.clone(),
                etag: Some(stored.etag.clone()).filter(|e| !e.is_empty()),
                version_id: stored.version_id.clone(),
            },
        )?;
        self.emit(Event::FileVerified {
            session: session.into(),
            path: file.path.clone(),
            key: key.into(),
            crc64nvme: crc_b64,
        });
        Ok(())
    }
}
