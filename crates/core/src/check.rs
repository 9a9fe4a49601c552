//! The sanity checks run on the lab PC before anything leaves it.
//!
//! Every check is a pure function of a [`SessionListing`], the metadata bytes, the schema and the
//! clock, so the same rules run in the CLI, the desktop app and the backend, and are table-tested
//! without a filesystem. Each problem becomes a [`Finding`] that names the file (and line) and says
//! what to do; the [`Verdict`] is derived from them:
//!
//! | verdict | meaning | when |
//! |---|---|---|
//! | `pass` | upload | no errors, no warnings |
//! | `warn` | upload, but look | warnings only |
//! | `wait` | not yet | something is still writing (temp file, recent change); re-checked later |
//! | `fail` | blocked until fixed | any error (a bad folder name fails even while writing) |

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::units::unix_seconds;

use crate::finding::{Finding, Severity};
use crate::metadata::{self, Metadata};
use crate::scan::{self, EntryKind, ScanError, SessionListing};
use crate::schema::LabSchema;
use crate::session_id::SessionId;
use crate::units::human_bytes;

/// The outcome of checking one session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(
    feature = "ts",
    derive(ts_rs::TS),
    ts(export_to = "../../ui/src/lib/bindings/")
)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Warn,
    Wait,
    Fail,
}

impl Verdict {
    /// `pass` and `warn` sessions may be uploaded.
    pub fn is_uploadable(self) -> bool {
        matches!(self, Verdict::Pass | Verdict::Warn)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Warn => "warn",
            Verdict::Wait => "wait",
            Verdict::Fail => "fail",
        }
    }
}

/// A file that will be uploaded, as the checks saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportFile {
    pub path: String,
    pub size: u64,
    pub role: FileRole,
    /// Modification time as seconds since the Unix epoch (for change detection at upload).
    pub modified_unix: i64,
}

/// Why a file is in the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileRole {
    Metadata,
    Data,
}

/// Everything known about one session after checking it.
#[derive(Debug, Clone, Serialize)]
pub struct SessionReport {
    /// The folder name (the session id when valid).
    pub session: String,
    pub path: PathBuf,
    pub verdict: Verdict,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recorded_at: Option<NaiveDateTime>,
    pub total_bytes: u64,
    pub findings: Vec<Finding>,
    pub metadata: Metadata,
    /// Files to upload (metadata + data), sorted by path; litter and temp files excluded.
    pub files: Vec<ReportFile>,
    #[serde(skip)]
    pub id: Option<SessionId>,
}

impl SessionReport {
    /// The report as a lab PC configured with `rig` uploads it: a folder named by its date-time
    /// alone becomes session `<date-time>_<rig>` ([`SessionId::on_rig`]); a folder whose name
    /// already carries a rig, and a folder that is not a session id, stay as they are.
    pub fn on_rig(mut self, rig: Option<crate::session_id::Rig>) -> Self {
        if let (Some(id), Some(rig)) = (self.id, rig) {
            let id = id.on_rig(rig);
            self.session = id.to_string();
            self.id = Some(id);
        }
        self
    }

    pub fn errors(&self) -> impl Iterator<Item = &Finding> {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
    }
}

/// The inputs of [`check_session`]; everything that is not pure is in here.
pub struct CheckInput<'a> {
    pub listing: &'a SessionListing,
    /// The metadata file's bytes when the listing has one (`Err` = could not read it).
    pub metadata_bytes: Option<Result<Vec<u8>, String>>,
    pub schema: &'a LabSchema,
    /// Lab-local wall clock, compared with recording times.
    pub now_local: NaiveDateTime,
    /// System clock, compared with file modification times.
    pub now: SystemTime,
}

/// Checks one session folder on disk: list it, read its metadata file, run [`check_session`].
pub fn check_folder(folder: &Path, schema: &LabSchema) -> Result<SessionReport, ScanError> {
    let listing = scan::list_session(folder, &schema.session.metadata_file)?;
    let metadata_bytes = listing
        .entries_of(EntryKind::Metadata)
        .next()
        .map(|e| scan::read_small(&folder.join(&e.path), 1 << 20).map_err(|e| e.to_string()));
    Ok(check_session(CheckInput {
        listing: &listing,
        metadata_bytes,
        schema,
        now_local: chrono::Local::now().naive_local(),
        now: SystemTime::now(),
    }))
}

/// Runs every check on one listed session.
pub fn check_session(input: CheckInput<'_>) -> SessionReport {
    let CheckInput {
        listing,
        metadata_bytes,
        schema,
        now_local,
        now,
    } = input;
    let rules = &schema.session;
    let mut findings = Vec::new();

    // 1. The folder name is the recording time.
    let id = match SessionId::parse_at(&listing.name, now_local) {
        Ok(id) => Some(id),
        Err(e) => {
            findings.push(Finding::error("session_id", e.to_string()));
            None
        }
    };

    // 2. Folder contents: litter, symlinks, unreadable entries.
    for e in &listing.entries {
        match e.kind {
            EntryKind::Litter => findings.push(
                Finding::info("folder", format!("{} is an operating-system file; it is ignored and not uploaded", e.path))
                    .in_file(&e.path),
            ),
            EntryKind::Symlink { target_inside: false } => findings.push(
                Finding::error("folder", format!("{} is a link to something outside the session folder; links are never followed — copy the real file into the folder instead", e.path))
                    .in_file(&e.path),
            ),
            EntryKind::Symlink { target_inside: true } => findings.push(
                Finding::warning("folder", format!("{} is a link to another file of this session; it is ignored and not uploaded — remove it to silence this warning", e.path))
                    .in_file(&e.path),
            ),
            _ => {}
        }
    }
    for (path, why) in &listing.unreadable {
        let shown = if path.is_empty() {
            "the session folder"
        } else {
            path.as_str()
        };
        findings.push(
            Finding::error(
                "folder",
                format!("cannot read {shown} ({why}); check the file permissions"),
            )
            .in_file(path.clone()),
        );
    }

    // 2b. File names every OS a lab uses can hold (each file and folder of what is uploaded).
    findings.extend(name_findings(listing));

    // 3. Stability: is something still writing?
    let mut unstable = false;
    for e in listing.entries_of(EntryKind::Temporary) {
        unstable = true;
        findings.push(
            Finding::warning("stability", format!("{} is a temporary or lock file: something is still writing into this folder; wait for it to finish (it is re-checked once the file is gone), or remove the file if nothing writes it any more", e.path))
                .in_file(&e.path),
        );
    }
    let quiet = Duration::from_secs(rules.quiet_period_secs);
    let newest = listing
        .entries
        .iter()
        .filter(|e| matches!(e.kind, EntryKind::Data | EntryKind::Metadata))
        .max_by_key(|e| e.modified);
    if let Some(e) = newest {
        let age = now.duration_since(e.modified);
        let recent = match &age {
            Ok(age) => *age < quiet,
            // Modified "in the future": the file system clock is ahead, or it is being written now.
            Err(ahead) => ahead.duration() < Duration::from_secs(300),
        };
        if recent {
            unstable = true;
            let ago = age
                .map(|a| format!("{} s ago", a.as_secs()))
                .unwrap_or_else(|_| "just now".into());
            findings.push(
                Finding::warning("stability", format!("{} changed {ago}; waiting until nothing in the folder has changed for {} s", e.path, rules.quiet_period_secs))
                    .in_file(&e.path),
            );
        }
    }

    // 4. Metadata.
    let metadata_name = rules.metadata_file.as_str();
    let lookalikes: Vec<&str> = listing
        .entries
        .iter()
        .filter(|e| e.kind == EntryKind::Data && is_metadata_lookalike(&e.path, metadata_name))
        .map(|e| e.path.as_str())
        .collect();
    let mut metadata = Metadata::new();
    let has_metadata = listing.entries_of(EntryKind::Metadata).next().is_some();
    match metadata_bytes {
        Some(Ok(bytes)) => {
            let (parsed, found) = metadata::parse(&bytes, metadata_name, schema);
            metadata = parsed;
            findings.extend(found);
        }
        Some(Err(why)) => findings.push(
            Finding::error(
                "metadata",
                format!("cannot read {metadata_name} ({why}); check the file"),
            )
            .in_file(metadata_name),
        ),
        None if has_metadata => {}
        None => {
            let msg = match lookalikes.first() {
                Some(found) if found.contains('/') => format!("{metadata_name} is not at the top of the session folder but at {found}; move it up next to the data files"),
                Some(found) => format!("no {metadata_name} in the session folder, but there is {found}; rename it to {metadata_name}"),
                None => format!(
                    "no {metadata_name} in the session folder; add it with one `key: value` line for each of: {}",
                    schema.fields.iter().filter(|(_, f)| f.required).map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(", ")
                ),
            };
            findings.push(Finding::error("metadata", msg).in_file(metadata_name));
        }
    }
    if has_metadata {
        for other in &lookalikes {
            findings.push(
                Finding::error("metadata", format!("{other} looks like a second metadata file next to {metadata_name}; keep exactly one and remove or rename the other"))
                    .in_file(*other),
            );
        }
    }

    // 5. Data files.
    let data: Vec<_> = listing
        .entries_of(EntryKind::Data)
        .filter(|e| !lookalikes.contains(&e.path.as_str()))
        .collect();
    if data.is_empty() {
        findings.push(Finding::error(
            "data_files",
            format!("the folder has no data files (only {metadata_name} or nothing at all); copy the recording's data files into it"),
        ));
    }
    let frame = frame_layout(&metadata);
    for e in &data {
        if e.size == 0 {
            findings.push(
                Finding::error("data_files", format!("{} is empty (0 bytes): the recording was not saved; export it again from the recorder, or remove the file", e.path))
                    .in_file(&e.path),
            );
        } else if let Some((frame_bytes, ref what)) = frame {
            if !e.size.is_multiple_of(frame_bytes) {
                findings.push(
                    Finding::error(
                        "data_files",
                        format!(
                            "{} is {} bytes, not a whole number of {frame_bytes}-byte frames ({what}): it is probably truncated; copy it again from the recorder, or fix channels / sample_format in {metadata_name}",
                            e.path,
                            group_digits(e.size)
                        ),
                    )
                    .in_file(&e.path),
                );
            }
        }
    }

    // 6. Total size against the lab's usual session size.
    let files: Vec<ReportFile> = listing
        .entries
        .iter()
        .filter(|e| matches!(e.kind, EntryKind::Data | EntryKind::Metadata))
        .map(|e| ReportFile {
            path: e.path.clone(),
            size: e.size,
            role: if e.kind == EntryKind::Metadata {
                FileRole::Metadata
            } else {
                FileRole::Data
            },
            modified_unix: unix_seconds(e.modified),
        })
        .collect();
    let total_bytes: u64 = files.iter().map(|f| f.size).sum();
    if !data.is_empty() {
        let expected = rules.expected_size_mb * 1e6;
        let [lo, hi] = rules.size_band;
        let (low, high) = ((expected * lo) as u64, (expected * hi) as u64);
        if total_bytes < low || total_bytes > high {
            let advice = if total_bytes < low {
                "check that every data file was copied"
            } else {
                "check that no unrelated files were copied into the folder"
            };
            findings.push(Finding::warning(
                "size",
                format!(
                    "the session holds {}, unusual for this lab (usually {}, accepted without warning {}–{}); {advice}",
                    human_bytes(total_bytes),
                    human_bytes(expected as u64),
                    human_bytes(low),
                    human_bytes(high)
                ),
            ));
        }
    }

    // 7. What the catalog and the pipeline can hold.
    findings.extend(catalog_findings(&metadata, metadata_name, files.len()));

    let has = |s: Severity| findings.iter().any(|f| f.severity == s);
    let verdict = if id.is_none() {
        Verdict::Fail
    } else if unstable {
        Verdict::Wait
    } else if has(Severity::Error) {
        Verdict::Fail
    } else if has(Severity::Warning) {
        Verdict::Warn
    } else {
        Verdict::Pass
    };
    let mut report = SessionReport {
        session: listing.name.clone(),
        path: listing.path.clone(),
        verdict,
        recorded_at: id.map(|i| i.recorded_at()),
        total_bytes,
        findings,
        metadata,
        files,
        id,
    };
    if let Some(f) = manifest_size_finding(&report) {
        report.findings.push(f);
        if report.verdict != Verdict::Wait {
            report.verdict = Verdict::Fail;
        }
    }
    report
}

/// One error per file or folder name that some OS a lab uses cannot hold, with the name to use
/// instead (unique among its siblings).
fn name_findings(listing: &SessionListing) -> Vec<Finding> {
    use std::collections::BTreeSet;
    let uploaded: Vec<&str> = listing
        .entries
        .iter()
        .filter(|e| matches!(e.kind, EntryKind::Data | EntryKind::Metadata))
        .map(|e| e.path.as_str())
        .collect();
    // Every path (file or folder) of the listing, to pick a new name nothing else has.
    let taken: BTreeSet<String> = listing
        .entries
        .iter()
        .flat_map(|e| {
            let parts: Vec<&str> = e.path.split('/').collect();
            (1..=parts.len())
                .map(|n| parts[..n].join("/").to_lowercase())
                .collect::<Vec<_>>()
        })
        .collect();
    let mut reported = BTreeSet::new();
    let mut findings = Vec::new();
    for path in uploaded {
        let parts: Vec<&str> = path.split('/').collect();
        for (i, name) in parts.iter().enumerate() {
            let Some(problem) = crate::file_name::problem(name) else {
                continue;
            };
            let shown = parts[..=i].join("/");
            if !reported.insert(shown.clone()) {
                break;
            }
            let parent = parts[..i].join("/");
            let fixed = free_name(&crate::file_name::portable(name), &parent, &taken);
            let what = if i + 1 < parts.len() {
                "folder"
            } else {
                "file"
            };
            findings.push(
                Finding::error(
                    "file_name",
                    format!(
                        "the {what} name '{}' cannot be used on every computer of the lab: {problem}; rename it to '{fixed}'",
                        shown_name(name)
                    ),
                )
                .in_file(shown),
            );
            break;
        }
    }
    findings
}

/// A name as a message shows it: control characters escaped (`\t`), everything else as is.
fn shown_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// `name`, or `name` with `_2`, `_3`, … before its extension, whichever no sibling in `parent`
/// has (compared without case: Windows and macOS do).
fn free_name(name: &str, parent: &str, taken: &std::collections::BTreeSet<String>) -> String {
    let full = |n: &str| {
        if parent.is_empty() {
            n.to_lowercase()
        } else {
            format!("{parent}/{n}").to_lowercase()
        }
    };
    if !taken.contains(&full(name)) {
        return name.to_string();
    }
    let (stem, ext) = match name.rfind('.') {
        Some(i) if i > 0 => name.split_at(i),
        _ => (name, ""),
    };
    (2..)
        .map(|n| format!("{stem}_{n}{ext}"))
        .find(|c| !taken.contains(&full(c)))
        .expect("some suffix is free")
}

/// The session's catalog entry must fit one DynamoDB item, its numbers DynamoDB's range, and
/// its manifest the ingest bound on files ([`crate::catalog_size`], [`crate::manifest`]).
fn catalog_findings(metadata: &Metadata, metadata_name: &str, file_count: usize) -> Vec<Finding> {
    use crate::catalog_size::{
        metadata_field_bytes, number_fits, session_item_bytes, ITEM_LIMIT_BYTES, RESERVED_BYTES,
        SESSION_ITEM_BUDGET,
    };
    use crate::manifest::MAX_MANIFEST_FILES;
    let mut findings = Vec::new();
    for (key, value) in metadata {
        if let Some(x) = value.as_number().filter(|x| !number_fits(*x)) {
            findings.push(
                Finding::error(
                    "catalog",
                    format!("metadata field '{key}' is {x:e}, outside the numbers the catalog can store (magnitudes 1e-130 to 1e125, or 0); fix the value in {metadata_name}"),
                )
                .in_file(metadata_name),
            );
        }
    }
    let item = session_item_bytes(metadata);
    if item > SESSION_ITEM_BUDGET {
        let mut fields: Vec<(u64, &str)> = metadata
            .iter()
            .map(|(k, v)| (metadata_field_bytes(k, v), k.as_str()))
            .collect();
        fields.sort_by(|a, b| b.cmp(a));
        let largest: Vec<String> = fields
            .iter()
            .take(3)
            .map(|(n, k)| format!("'{k}' {} bytes", group_digits(*n)))
            .collect();
        let (n, key) = fields[0];
        let subject = if n > SESSION_ITEM_BUDGET / 2 {
            format!("metadata field '{key}' takes {} bytes", group_digits(n))
        } else {
            format!(
                "the {} metadata fields take {} bytes (largest: {})",
                fields.len(),
                group_digits(item),
                largest.join(", ")
            )
        };
        findings.push(
            Finding::error(
                "catalog",
                format!(
                    "{subject}: the session's catalog entry would be {} bytes, more than the {} bytes one entry may hold (DynamoDB's 400 KB item limit of {} bytes, less {} kept for status messages); shorten '{key}' in {metadata_name}, or move long text into a file of the session folder",
                    group_digits(item),
                    group_digits(SESSION_ITEM_BUDGET),
                    group_digits(ITEM_LIMIT_BYTES),
                    group_digits(RESERVED_BYTES),
                ),
            )
            .in_file(metadata_name),
        );
    }
    if file_count > MAX_MANIFEST_FILES {
        findings.push(Finding::error(
            "catalog",
            format!(
                "the session has {} files, more than the {} one session may have (ingest refuses a longer manifest); move some into a session folder of their own, or remove those that are not part of the recording",
                group_digits(file_count as u64),
                group_digits(MAX_MANIFEST_FILES as u64)
            ),
        ));
    }
    findings
}

/// The manifest an upload would write must stay under the bound every reader applies
/// ([`crate::manifest::MAX_MANIFEST_BYTES`]).
fn manifest_size_finding(report: &SessionReport) -> Option<Finding> {
    use crate::manifest::{Manifest, MANIFEST_RESERVED_BYTES, MAX_MANIFEST_BYTES};
    let bytes = Manifest::largest_json_bytes(report)?;
    let limit = MAX_MANIFEST_BYTES - MANIFEST_RESERVED_BYTES;
    (bytes > limit).then(|| {
        Finding::error(
            "catalog",
            format!(
                "the manifest of this session would be up to {} bytes ({} files, their paths and the metadata), more than the {} bytes the pipeline reads ({} MiB less {} kept for a correction's reason); remove files that are not part of the recording, shorten long paths, or move some files into a session folder of their own",
                group_digits(bytes),
                group_digits(report.files.len() as u64),
                group_digits(limit),
                MAX_MANIFEST_BYTES >> 20,
                group_digits(MANIFEST_RESERVED_BYTES),
            ),
        )
    })
}

/// `(frame size in bytes, "8 channels × int16")` when the metadata declares a usable layout.
pub fn frame_layout(metadata: &Metadata) -> Option<(u64, String)> {
    let channels = metadata.get("channels")?.as_number()?;
    let format = metadata.get("sample_format")?.as_text()?;
    let bytes = sample_bytes(format)?;
    (channels >= 1.0 && channels.fract() == 0.0).then(|| {
        (
            channels as u64 * bytes,
            format!("{} channels × {format}", channels as u64),
        )
    })
}

/// Bytes per sample of a `sample_format`.
pub fn sample_bytes(format: &str) -> Option<u64> {
    crate::sample_format::bytes_per_sample(format).map(|b| b as u64)
}

fn is_metadata_lookalike(path: &str, metadata_name: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path).to_ascii_lowercase();
    let want = metadata_name.to_ascii_lowercase();
    let stem = want.rsplit_once('.').map(|(s, _)| s).unwrap_or(&want);
    name == want || (name.starts_with(stem) && name.ends_with(".txt"))
}

/// `1000003` → `1,000,003`.
pub fn group_digits(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests;
