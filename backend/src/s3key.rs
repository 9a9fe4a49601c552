//! Object keys as S3 events carry them. The raw bucket's layout itself is defined once in
//! [`labpipe_core::layout`]; this module adds what only events need.
//!
//! S3 event notifications URL-encode keys the way HTML forms do (`raw%2F2021…`, `+` for a space),
//! so a key must be decoded before it is used; the emulator does the same
//! (<https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html>:
//! "The s3 key provides information about the bucket and object involved in the event. The object
//! key name value is URL encoded.").

pub use labpipe_core::layout::{
    manifest_session, raw_session_prefix as session_prefix, MANIFEST_NAME, RAW_PREFIX,
};
use percent_encoding::percent_decode_str;

/// Decodes a key from an S3 event (`+` is a space, `%XX` a byte).
pub fn decode_event_key(key: &str) -> String {
    let plus_as_space = key.replace('+', " ");
    percent_decode_str(&plus_as_space)
        .decode_utf8_lossy()
        .into_owned()
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
    fn decoded_event_keys_name_their_session() {
        let key = decode_event_key("raw%2F20210301_161221%2Fmanifest.json");
        assert_eq!(
            manifest_session(&key).unwrap().to_string(),
            "20210301_161221"
        );
        assert!(manifest_session(&decode_event_key("raw%2F20210301_161221%2Fa.bin")).is_none());
    }
}
