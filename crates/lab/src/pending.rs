//! One session folder of the watched lab folder as last checked: what the Pending view lists.
//! The verdict and findings are core's own types, sent to the front end as they are.

use labpipe_core::{Finding, SessionReport, Verdict};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Clone, Serialize, PartialEq)]
#[cfg_attr(
    feature = "ts",
    derive(ts_rs::TS),
    ts(export_to = "../../ui/src/lib/bindings/")
)]
pub struct PendingSession {
    pub session: String,
    pub path: String,
    pub verdict: Verdict,
    /// `YYYY-MM-DD HH:MM:SS` when the folder name is a valid session id.
    pub recorded_at: Option<String>,
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub total_bytes: u64,
    pub file_count: u32,
    pub findings: Vec<Finding>,
    pub metadata: BTreeMap<String, String>,
    pub checked_at: String,
    /// The folder's files as checked (paths, sizes, modification times), hashed: a comparison
    /// with what the session's name holds is made again only when it changes
    /// ([`crate::names`]). Not sent to the front end.
    #[serde(skip)]
    #[cfg_attr(feature = "ts", ts(skip))]
    pub folder_state: u64,
}

fn clock() -> String {
    chrono::Local::now().format("%H:%M:%S").to_string()
}

impl PendingSession {
    pub fn from_report(r: &SessionReport) -> Self {
        PendingSession {
            session: r.session.clone(),
            path: r.path.display().to_string(),
            verdict: r.verdict,
            recorded_at: r
                .recorded_at
                .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string()),
            total_bytes: r.total_bytes,
            file_count: r.files.len() as u32,
            findings: r.findings.clone(),
            metadata: r
                .metadata
                .iter()
                .map(|(k, v)| (k.clone(), v.to_string()))
                .collect(),
            checked_at: clock(),
            folder_state: folder_state(r),
        }
    }

    /// A folder that could not be checked: `fail`, with the reason as its one finding.
    pub fn unreadable(path: &Path, reason: &str) -> Self {
        PendingSession {
            session: labpipe_core::scan::folder_name(path),
            path: path.display().to_string(),
            verdict: Verdict::Fail,
            recorded_at: None,
            total_bytes: 0,
            file_count: 0,
            findings: vec![Finding::error("folder", reason)],
            metadata: BTreeMap::new(),
            checked_at: clock(),
            folder_state: 0,
        }
    }

    /// The same verdict and findings as `other`: a re-check that found nothing new.
    pub fn same_check(&self, other: &PendingSession) -> bool {
        self.verdict == other.verdict && self.findings == other.findings
    }
}

/// The files of a checked folder, hashed: paths, sizes and modification times.
fn folder_state(r: &SessionReport) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    r.session.hash(&mut h);
    for f in &r.files {
        (&f.path, f.size, f.modified_unix).hash(&mut h);
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreadable_folder_fails_and_says_why() {
        let p = PendingSession::unreadable(Path::new("/lab/20210301_161221"), "permission denied");
        assert_eq!(p.session, "20210301_161221");
        assert_eq!(p.verdict, Verdict::Fail);
        assert_eq!(p.findings[0].message, "permission denied");
        assert_eq!(
            p.findings[0].severity,
            labpipe_core::finding::Severity::Error
        );
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["verdict"], "fail");
        assert_eq!(json["findings"][0]["severity"], "error");
    }
}
