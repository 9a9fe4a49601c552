//! Object keys as S3 events carry them, and the raw bucket's layout.
//!
//! S3 event notifications URL-encode keys the way HTML forms do (`raw%2F2021…`, `+` for a space),
//! so a key must be decoded before it is used; the emulator does the same.

use labpipe_core::SessionId;
use percent_encoding::percent_decode_str;

/// Prefix of raw session objects: `raw/<session>/<relative path>`.
pub const RAW_PREFIX: &str = "raw/";
/// The commit marker the upload writes last.
pub const MANIFEST_NAME: &str = "manifest.json";

/// Decodes a key from an S3 event (`+` is a space, `%XX` a byte).
pub fn decode_event_key(key: &str) -> String {
    let plus_as_space = key.replace('+', " ");
    percent_decode_str(&plus_as_space)
        .decode_utf8_lossy()
        .into_owned()
}

/// The session of `raw/<session>/manifest.json`, or `None` for any other key.
pub fn manifest_session(key: &str) -> Option<SessionId> {
    let rest = key.strip_prefix(RAW_PREFIX)?;
    let (session, name) = rest.split_once('/')?;
    if name != MANIFEST_NAME {
        return None;
    }
    SessionId::parse(session).ok()
}

/// `raw/<session>/`.
pub fn session_prefix(session: &str) -> String {
    format!("{RAW_PREFIX}{session}/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_keys_are_decoded() {
        for (raw, want) in [
            (
                "raw%2F20210301_161221%2Fmanifest.json",
                "raw/20210301_161221/manifest.json",
            ),
            (
                "raw/20210301_161221/manifest.json",
                "raw/20210301_161221/manifest.json",
            ),
            ("raw/x/my+file%281%29.bin", "raw/x/my file(1).bin"),
            ("raw/x/a%2Bb", "raw/x/a+b"),
        ] {
            assert_eq!(decode_event_key(raw), want, "{raw}");
        }
    }

    #[test]
    fn only_session_manifests_are_ingested() {
        let ok = manifest_session("raw/20210301_161221/manifest.json").unwrap();
        assert_eq!(ok.to_string(), "20210301_161221");
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
}
