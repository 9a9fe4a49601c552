//! Where every object lives, defined once: the raw bucket's `raw/<session>/<relative path>` with
//! `manifest.json` as the commit marker, corrections (revision R ≥ 2) beside it in
//! `raw/<session>.r<R>/`, and the processed bucket's `v<N>/<session>/<name>` for revision 1 and
//! `v<N>/<session>.r<R>/<name>` for revision R ≥ 2.
//!
//! A revision has a folder of its own rather than new objects at the old keys because raw objects
//! are write-once (AWS enforces it, `docs/security.md`): a correction can only add objects, and
//! every earlier revision stays readable exactly as it was cataloged. Its outputs get a folder of
//! their own for the same reason: a later revision's run never overwrites an earlier revision's
//! outputs. The processed folder is the raw one ([`revision_folder`]) under `v<N>/`, so revision
//! 1's keys are those written before revisions existed, and two revisions' prefixes never contain
//! one another (`v1/<session>/` does not list `v1/<session>.r2/…`).
//!
//! The upload writes these keys, ingest and preprocess read them back from S3 events, sync and
//! the app derive them from catalog entries. A second copy of the layout (`"raw"` here, `"raw/"`
//! there) is how a key that one side writes stops being found by the other, so every key is
//! built and parsed through this module.

use crate::session_id::SessionId;

/// The top-level folder of raw session objects, without its separator.
pub const RAW_ROOT: &str = "raw";
/// Prefix of every raw object: `raw/<session id>/<relative path>`.
pub const RAW_PREFIX: &str = "raw/";
/// The manifest's file name inside a session's raw prefix; the upload writes it last.
pub const MANIFEST_NAME: &str = "manifest.json";

/// Separates a session id from its revision number in a raw folder name: `<session>.r<N>`.
pub const REVISION_MARK: &str = ".r";

/// The raw folder of a session's revision: the session id for revision 1 (the first upload),
/// `<session>.r<N>` for a correction N ≥ 2.
pub fn revision_folder(session: &str, revision: u32) -> String {
    if revision <= 1 {
        session.to_string()
    } else {
        format!("{session}{REVISION_MARK}{revision}")
    }
}

/// A raw folder name → session and revision (`20210301_161221.r2` → (`20210301_161221`, 2));
/// a folder without a revision mark is revision 1.
pub fn split_revision(folder: &str) -> (&str, u32) {
    match folder.rsplit_once(REVISION_MARK) {
        Some((session, n))
            if !session.is_empty()
                && !n.is_empty()
                && n.bytes().all(|b| b.is_ascii_digit())
                && !n.starts_with('0') =>
        {
            match n.parse::<u32>() {
                Ok(n) if n >= 2 => (session, n),
                _ => (folder, 1),
            }
        }
        _ => (folder, 1),
    }
}

/// `raw/<session>/`: everything one session uploaded.
pub fn raw_session_prefix(session: &str) -> String {
    format!("{RAW_PREFIX}{session}/")
}

/// `raw/<session>`: what every raw folder of the session's name starts with — its first upload
/// (`raw/<session>/`) and its corrections (`raw/<session>.r<N>/`), but also other rigs' sessions
/// of the same second (`raw/<session>_<rig>/`), which a reader of this listing tells apart with
/// [`parse_raw_key`] and [`split_revision`].
pub fn raw_name_prefix(session: &str) -> String {
    format!("{RAW_PREFIX}{session}")
}

/// `raw/<session>.r`: what every correction's folder of `session` starts with (a listing of it
/// finds each revision's manifest, [`manifest_revision`]).
pub fn raw_revisions_prefix(session: &str) -> String {
    format!("{RAW_PREFIX}{session}{REVISION_MARK}")
}

/// `raw/<session>/<rel_path>`, `rel_path` being `/`-separated and relative to the session folder.
pub fn raw_key(session: &str, rel_path: &str) -> String {
    format!("{RAW_PREFIX}{session}/{rel_path}")
}

/// `raw/<session>/manifest.json`.
pub fn manifest_key(session: &str) -> String {
    raw_key(session, MANIFEST_NAME)
}

/// The manifest of one revision: `raw/<session>/manifest.json` for revision 1,
/// `raw/<session>.r<R>/manifest.json` for a correction.
pub fn revision_manifest_key(session: &str, revision: u32) -> String {
    manifest_key(&revision_folder(session, revision))
}

/// `v<version>/<session>/` (revision 1) or `v<version>/<session>.r<R>/`: one pipeline version's
/// outputs of one revision of a session in the processed bucket.
pub fn processed_prefix(version: u32, session: &str, revision: u32) -> String {
    format!("v{version}/{}/", revision_folder(session, revision))
}

/// `v<version>/<session>[.r<R>]/<name>`.
pub fn processed_key(version: u32, session: &str, revision: u32, name: &str) -> String {
    format!("{}{name}", processed_prefix(version, session, revision))
}

/// Where `labpipe sync --raw` puts a raw file inside the session's local folder
/// (`DIR/<session>/raw/<rel_path>`), beside the processed outputs.
pub fn synced_raw_path(rel_path: &str) -> String {
    format!("{RAW_PREFIX}{rel_path}")
}

/// A raw key taken apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawKey<'a> {
    /// The session folder name (not necessarily a valid [`SessionId`]).
    pub session: &'a str,
    /// The path inside the session folder; `None` for the session prefix itself.
    pub path: Option<&'a str>,
}

impl RawKey<'_> {
    /// True for `raw/<session>/manifest.json` (and not for a `manifest.json` in a subfolder).
    pub fn is_manifest(&self) -> bool {
        self.path == Some(MANIFEST_NAME)
    }
}

/// `raw/<session>/<path>` → session and path; `raw/<session>/` → session alone; `None` for keys
/// outside a session folder (`raw/.labpipe-preflight`, processed keys).
pub fn parse_raw_key(key: &str) -> Option<RawKey<'_>> {
    let rest = key.strip_prefix(RAW_PREFIX)?;
    let (session, path) = rest.split_once('/')?;
    if session.is_empty() {
        return None;
    }
    Some(RawKey {
        session,
        path: (!path.is_empty()).then_some(path),
    })
}

/// The session of `raw/<session>/manifest.json` (or of a revision's,
/// `raw/<session>.r<N>/manifest.json`) when the folder names a valid session id; `None` for any
/// other key.
pub fn manifest_session(key: &str) -> Option<SessionId> {
    manifest_revision(key).map(|(session, _)| session)
}

/// The session and revision of a manifest key: `raw/<session>/manifest.json` is revision 1,
/// `raw/<session>.r<N>/manifest.json` revision N.
pub fn manifest_revision(key: &str) -> Option<(SessionId, u32)> {
    let raw = parse_raw_key(key).filter(RawKey::is_manifest)?;
    let (session, revision) = split_revision(raw.session);
    Some((SessionId::parse(session).ok()?, revision))
}

/// A processed key taken apart: `v<version>/<session>[.r<R>]/<name>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessedKey<'a> {
    pub version: u32,
    pub session: &'a str,
    /// 1 for `v<N>/<session>/…`, R for `v<N>/<session>.r<R>/…`.
    pub revision: u32,
    pub name: &'a str,
}

/// `v<version>/<session>[.r<R>]/<name>` → its parts; `None` for anything else.
pub fn parse_processed_key(key: &str) -> Option<ProcessedKey<'_>> {
    let rest = key.strip_prefix('v')?;
    let (version, rest) = rest.split_once('/')?;
    if version.is_empty() || !version.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let version = version.parse().ok()?;
    let (folder, name) = rest.split_once('/')?;
    let (session, revision) = split_revision(folder);
    (!session.is_empty() && !name.is_empty()).then_some(ProcessedKey {
        version,
        session,
        revision,
        name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_keys_round_trip() {
        let key = raw_key("20210301_161221", "sub/a.bin");
        assert_eq!(key, "raw/20210301_161221/sub/a.bin");
        assert_eq!(
            parse_raw_key(&key),
            Some(RawKey {
                session: "20210301_161221",
                path: Some("sub/a.bin")
            })
        );
        assert_eq!(
            parse_raw_key(&raw_session_prefix("20210301_161221")),
            Some(RawKey {
                session: "20210301_161221",
                path: None
            })
        );
        for other in [
            "raw/.labpipe-preflight",
            "raw//a.bin",
            "processed/x/y",
            "rawx/a/b",
        ] {
            assert_eq!(parse_raw_key(other), None, "{other}");
        }
    }

    #[test]
    fn only_session_manifests_name_a_session() {
        let key = manifest_key("20210301_161221");
        assert_eq!(key, "raw/20210301_161221/manifest.json");
        assert_eq!(
            manifest_session(&key).unwrap().to_string(),
            "20210301_161221"
        );
        for key in [
            "raw/20210301_161221/rec_000.bin",
            "raw/20210301_161221/aux/manifest.json",
            "raw/20210229_101010/manifest.json",
            "other/20210301_161221/manifest.json",
            "raw/manifest.json",
        ] {
            assert!(manifest_session(key).is_none(), "{key}");
        }
    }

    #[test]
    fn processed_keys_round_trip() {
        assert_eq!(
            processed_prefix(3, "20210301_161221", 1),
            "v3/20210301_161221/"
        );
        let key = processed_key(12, "20210301_161221", 1, "summary.json");
        assert_eq!(
            parse_processed_key(&key),
            Some(ProcessedKey {
                version: 12,
                session: "20210301_161221",
                revision: 1,
                name: "summary.json"
            })
        );
        for other in ["v/x/y", "vx/s/n", "v1/s/", "v1//n", "raw/s/n", "v-1/s/n"] {
            assert_eq!(parse_processed_key(other), None, "{other}");
        }
    }

    #[test]
    fn revisions_have_folders_of_their_own() {
        assert_eq!(revision_folder("20210301_161221", 1), "20210301_161221");
        assert_eq!(revision_folder("20210301_161221", 3), "20210301_161221.r3");
        for (folder, want) in [
            ("20210301_161221", ("20210301_161221", 1)),
            ("20210301_161221.r2", ("20210301_161221", 2)),
            ("20210301_161221.r12", ("20210301_161221", 12)),
            ("20210301_161221.r1", ("20210301_161221.r1", 1)),
            ("20210301_161221.r02", ("20210301_161221.r02", 1)),
            ("20210301_161221.rx", ("20210301_161221.rx", 1)),
            (".r2", (".r2", 1)),
        ] {
            assert_eq!(split_revision(folder), want, "{folder}");
        }
        let key = manifest_key(&revision_folder("20210301_161221", 2));
        assert_eq!(key, "raw/20210301_161221.r2/manifest.json");
        let (session, n) = manifest_revision(&key).unwrap();
        assert_eq!((session.to_string().as_str(), n), ("20210301_161221", 2));
        assert_eq!(
            manifest_session("raw/20210301_161221/manifest.json").map(|s| s.to_string()),
            Some("20210301_161221".into())
        );
        assert!(manifest_revision("raw/20210301_161221.r2/a.bin").is_none());
        assert!(key.starts_with(&raw_revisions_prefix("20210301_161221")));
        assert_eq!(
            revision_manifest_key("20210301_161221", 1),
            "raw/20210301_161221/manifest.json"
        );
        assert_eq!(
            revision_manifest_key("20210301_161221", 3),
            "raw/20210301_161221.r3/manifest.json"
        );
        let corrections = raw_revisions_prefix("20210301_161221");
        assert_eq!(corrections, "raw/20210301_161221.r");
        assert!(revision_manifest_key("20210301_161221", 3).starts_with(&corrections));
        assert!(!manifest_key("20210301_161221").starts_with(&corrections));
    }

    /// Revision 1's outputs keep the keys they had before revisions existed; a correction's are
    /// beside them, never inside them, so no run of one revision writes or lists another's.
    #[test]
    fn each_revision_has_its_own_outputs() {
        let first = processed_prefix(1, "20210301_161221", 1);
        let second = processed_prefix(1, "20210301_161221", 2);
        assert_eq!(first, "v1/20210301_161221/");
        assert_eq!(second, "v1/20210301_161221.r2/");
        assert!(!second.starts_with(&first) && !first.starts_with(&second));
        let key = processed_key(2, "20210301_161221", 3, "features.parquet");
        assert_eq!(key, "v2/20210301_161221.r3/features.parquet");
        assert_eq!(
            parse_processed_key(&key),
            Some(ProcessedKey {
                version: 2,
                session: "20210301_161221",
                revision: 3,
                name: "features.parquet"
            })
        );
    }
}
