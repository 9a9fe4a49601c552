//! What a session's name already holds in the bucket, learned before a byte is sent: the
//! revision a correction takes, and the comparison of the folder with the name's committed (or
//! cut-off) upload that ends in [`NameCheck`] or one of the two refusals of [`crate::refusal`]
//! (`docs/upload.md`, "A name already taken"). [`Upload::name_check`] runs the same comparison
//! for the app's Pending view without sending or locking.

use super::*;

impl Upload {
    /// The revision a correction of `session` is uploaded as: one above the highest committed
    /// revision (a manifest in `raw/<session>.r<N>/`), 2 when only the first upload exists or was
    /// cut off before its manifest, so an interrupted correction is resumed where it stopped and a
    /// committed one is never written to again ([`Upload::correction`] moves past a cut-off
    /// correction whose objects differ from the folder). Fails only when nothing of the session
    /// was ever uploaded (then a plain upload is the way).
    pub async fn next_revision(&self, session: &str) -> Result<u32, UploadError> {
        let bucket = &self.inner.bucket;
        let first = bucket.survey(&raw_session_prefix(session), false).await?;
        if first.objects.is_empty() {
            return Err(UploadError::Invalid {
                session: session.to_string(),
                detail: format!(
                    "nothing of it was ever uploaded to s3://{}/ ({} is empty), so there is nothing to correct; upload it without --revise",
                    bucket.name(),
                    raw_session_prefix(session)
                ),
            });
        }
        Ok(self.latest_revision(session).await?.map_or(2, |n| n + 1))
    }

    /// The highest committed correction (N ≥ 2) of `session`, from one listing of
    /// `raw/<session>.r`.
    pub(super) async fn latest_revision(&self, session: &str) -> Result<Option<u32>, UploadError> {
        let revisions = self
            .inner
            .bucket
            .survey(&raw_revisions_prefix(session), false)
            .await?;
        Ok(revisions
            .objects
            .keys()
            .filter_map(|k| manifest_revision(k))
            .filter(|(id, _)| id.to_string() == session)
            .map(|(_, n)| n)
            .max())
    }

    /// What the session's name holds in the bucket, compared with the folder exactly as an
    /// upload compares it before sending (`docs/upload.md`, "A name already taken"): one listing
    /// of `raw/<session>` (its corrections included), the latest committed manifest, and the
    /// folder's files hashed only where this PC's journal does not vouch for them
    /// ([`plan::hash_for_compare`]). Sends nothing, takes no lock: what the app's Pending view
    /// shows for a folder whose name the catalog knows.
    pub async fn name_check(&self, report: &SessionReport) -> Result<NameCheck, UploadError> {
        let folder = revision_folder(&report.session, 1);
        let survey = self
            .inner
            .bucket
            .survey(&raw_name_prefix(&folder), false)
            .await?;
        if survey.objects.is_empty() {
            return Ok(NameCheck::Free);
        }
        let plans = self.plan(report, &folder, &survey)?;
        match self
            .before_sending(report, None, &folder, &survey, &plans)
            .await
        {
            Ok(_) => Ok(NameCheck::Same),
            Err(UploadError::NameTaken(t)) => Ok(NameCheck::Taken(t)),
            Err(UploadError::ChangedSinceUpload(c)) => Ok(NameCheck::Changed(c)),
            Err(e) => Err(e),
        }
    }

    /// What the name holds before anything is sent, compared with the folder (`docs/upload.md`,
    /// "A name already taken"):
    ///
    /// - a committed upload (the session's latest revision for a plain upload; this revision's
    ///   own manifest for a correction): the folder must be exactly what it lists — the same
    ///   files, sizes and SHA-256 (hashed unless this PC verified the file as it is,
    ///   [`plan::hash_for_compare`]) — else [`NameTaken`] (no data file in common: another
    ///   recording) or [`ChangedSinceUpload`];
    /// - objects without a manifest (an upload cut off, or running elsewhere): each one at a key of
    ///   the folder is compared now (not while other files are sent); one that differs, or
    ///   objects this PC's journal never wrote that the folder does not have, refuse the same way.
    pub(super) async fn before_sending(
        &self,
        report: &SessionReport,
        revision: Option<&Revision>,
        folder: &str,
        survey: &crate::bucket::Survey,
        plans: &[FilePlan],
    ) -> Result<Before, UploadError> {
        let i = &self.inner;
        let session = &report.session;
        let mut presettled: Vec<Option<Settled>> = (0..report.files.len()).map(|_| None).collect();
        let prefix = raw_session_prefix(folder);
        let files_here: Vec<&String> = survey
            .objects
            .keys()
            .filter(|k| k.starts_with(&prefix) && **k != manifest_key(folder))
            .collect();
        let committed_here = survey.objects.contains_key(&manifest_key(folder));
        // The upload to compare with: for a plain upload the session's latest committed revision
        // (its listing covered the corrections' folders too).
        let latest = match revision {
            None => survey
                .objects
                .keys()
                .filter_map(|k| manifest_revision(k))
                .filter(|(id, n)| *n >= 2 && id.to_string() == *session)
                .map(|(_, n)| n)
                .max(),
            Some(_) => None,
        };
        if files_here.is_empty() && !committed_here && latest.is_none() {
            return Ok(Before::Send {
                presettled,
                manifest_proven: false,
            });
        }
        let target = match (latest, committed_here) {
            (Some(n), _) => Some((n, revision_folder(session, n))),
            (None, true) => Some((revision.map_or(1, |r| r.number), folder.to_string())),
            (None, false) => None,
        };
        let rig_for_command = report
            .id
            .and_then(|id| id.rig())
            .map(|r| r.to_string())
            .filter(|r| !labpipe_core::scan::folder_name(&report.path).ends_with(r.as_str()));
        let command = |c: &FolderChanges| {
            correction_command(
                &report.path,
                rig_for_command.as_deref(),
                &i.opts.command_flags,
                c,
            )
        };
        let this_rig = report.id.and_then(|id| id.rig()).map(|r| r.to_string());

        if let Some((number, there)) = target {
            let key = manifest_key(&there);
            let manifest = Manifest::from_json(&i.bucket.get(&key).await?).map_err(|e| {
                UploadError::Invalid {
                    session: session.clone(),
                    detail: format!("s3://{}/{key} cannot be read ({e}); nothing was sent — ask an admin to look at it", i.bucket.name()),
                }
            })?;
            let mut local = Vec::with_capacity(report.files.len());
            for file in &report.files {
                let listed = manifest.files.iter().find(|m| m.path == file.path);
                let recorded = i
                    .journal
                    .done_file(i.bucket.name(), &object_key(&there, &file.path))?;
                let at = LocalFile {
                    size: file.size,
                    mtime: file.modified_unix,
                };
                let sha256 =
                    match plan::hash_for_compare(at, listed.map(|m| m.size), recorded.as_ref()) {
                        Hash::NotNeeded => None,
                        Hash::Trusted(sha) => Some(sha),
                        Hash::Read => Some(
                            crate::files::digest_whole(&report.path.join(&file.path), file)
                                .await?
                                .sha256,
                        ),
                    };
                local.push(LocalEntry {
                    path: file.path.clone(),
                    size: file.size,
                    sha256,
                    data: file.role == FileRole::Data,
                });
            }
            let uploaded: Vec<UploadedEntry> = manifest
                .files
                .iter()
                .map(|m| UploadedEntry {
                    path: m.path.clone(),
                    size: m.size,
                    sha256: Some(m.sha256.clone()),
                })
                .collect();
            let changes = plan::changes(&local, &uploaded);
            let holder = Holder {
                uploaded_at: Some(manifest.created_at),
                uploaded_by: manifest.uploaded_by.clone(),
                files: manifest.files.len(),
                bytes: manifest.total_bytes,
                revision: number,
            };
            if changes.is_empty() {
                if there == folder {
                    return Ok(Before::Send {
                        presettled,
                        manifest_proven: true,
                    });
                }
                for file in &report.files {
                    self.already_there(session, file);
                }
                return Ok(Before::AlreadyThere(there));
            }
            return Err(self.refusal(report, holder, changes, &command, this_rig));
        }

        // Objects without a manifest: compare every one at a key of the folder now.
        let mut changed = Vec::new();
        let mut same_data = 0;
        for (index, (file, p)) in report.files.iter().zip(plans).enumerate() {
            let key = object_key(folder, &file.path);
            let same = match &p.action {
                Action::Conflict { .. } => false,
                Action::Compare => {
                    match self
                        .compare(session, &report.path.join(&file.path), &key, file)
                        .await
                    {
                        Ok(s) => {
                            presettled[index] = Some(s);
                            true
                        }
                        Err(UploadError::Conflict { .. }) => false,
                        Err(e) => return Err(e),
                    }
                }
                Action::Skip { .. } => true,
                _ => continue,
            };
            if !same {
                changed.push(file.path.clone());
            } else if file.role == FileRole::Data {
                same_data += 1;
            }
        }
        let mut removed: Vec<String> = files_here
            .iter()
            .filter_map(|k| k.strip_prefix(prefix.as_str()))
            .filter(|p| !report.files.iter().any(|f| f.path == *p))
            .map(String::from)
            .collect();
        removed.sort();
        let mut ours = false;
        for key in &files_here {
            ours |= i.journal.done_file(i.bucket.name(), key)?.is_some();
        }
        for file in &report.files {
            ours |= i
                .journal
                .open_upload(i.bucket.name(), &object_key(folder, &file.path))?
                .is_some();
        }
        if changed.is_empty() && (ours || removed.is_empty()) {
            return Ok(Before::Send {
                presettled,
                manifest_proven: false,
            });
        }
        let changes = FolderChanges {
            added: vec![],
            removed,
            changed,
            same_data: if ours { same_data.max(1) } else { same_data },
        };
        let holder = Holder {
            uploaded_at: None,
            uploaded_by: None,
            files: files_here.len(),
            bytes: files_here
                .iter()
                .filter_map(|k| survey.objects.get(*k))
                .map(|o| o.size)
                .sum(),
            revision: revision.map_or(1, |r| r.number),
        };
        Err(self.refusal(report, holder, changes, &command, this_rig))
    }

    /// The refusal for a folder that differs from what its name holds: the same recording
    /// changed, or another recording.
    pub(super) fn refusal(
        &self,
        report: &SessionReport,
        holder: Holder,
        changes: FolderChanges,
        command: &dyn Fn(&FolderChanges) -> String,
        rig: Option<String>,
    ) -> UploadError {
        let command = command(&changes);
        if changes.same_recording() {
            UploadError::ChangedSinceUpload(Box::new(ChangedSinceUpload {
                session: report.session.clone(),
                folder: report.path.clone(),
                holder,
                changes,
                command,
            }))
        } else {
            UploadError::NameTaken(Box::new(NameTaken {
                session: report.session.clone(),
                folder: report.path.clone(),
                bucket: self.bucket().into(),
                holder,
                files: report.files.len(),
                bytes: report.total_bytes,
                changes,
                rig,
                command,
            }))
        }
    }
}
