//! File names every OS a lab uses can hold, decided once for the check and for the sync.
//!
//! A session recorded on Linux or macOS can hold names Windows cannot (`CON.bin`, `a:b.bin`,
//! `notes.`), and any OS can hold a name an S3 key turns into something else (`a\b.bin` is one
//! file on Linux and a folder `a` on Windows). Such a name uploads fine and then breaks the one
//! researcher who syncs the session onto the other OS, so `labpipe check` refuses it on the lab
//! PC with the name to use instead ([`portable`]), and `labpipe sync` refuses such a key alone
//! (already-uploaded sessions keep their names: raw data is write-once).
//!
//! The rules, per path component (Microsoft, "Naming Files, Paths, and Namespaces",
//! <https://learn.microsoft.com/windows/win32/fileio/naming-a-file>; ext4/APFS/NTFS all cap a
//! name at 255 bytes or UTF-16 units):
//! - no control character (U+0000–U+001F, U+007F) and none of `< > : " / \ | ? *`;
//! - not a Windows device name — `CON`, `PRN`, `AUX`, `NUL`, `COM1`–`COM9`, `LPT1`–`LPT9` — in
//!   any case, also with an extension (`nul.txt`, `Com1.bin`);
//! - no trailing dot or space (Windows drops them, so `a.` and `a` are one file there);
//! - at most [`MAX_NAME_BYTES`] bytes of UTF-8;
//! - valid Unicode (a name the lab PC could not decode is listed with U+FFFD and cannot be read
//!   back under that name).

use std::fmt;

/// The longest file or folder name, in UTF-8 bytes.
pub const MAX_NAME_BYTES: usize = 255;

/// Characters Windows never allows in a name.
const RESERVED_CHARS: [char; 9] = ['<', '>', ':', '"', '/', '\\', '|', '?', '*'];

/// Windows device names, reserved with or without an extension.
const DEVICE_NAMES: [&str; 4] = ["CON", "PRN", "AUX", "NUL"];

/// Why one path component is not portable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameProblem {
    Empty,
    ControlCharacter(char),
    ReservedCharacter(char),
    /// The device name (`CON`, `com1`, …) as written.
    DeviceName(String),
    TrailingDotOrSpace,
    TooLong(usize),
    NotUnicode,
}

impl NameProblem {
    /// A short fixed reason (for the sync planner's refusals).
    pub fn reason(&self) -> &'static str {
        match self {
            NameProblem::Empty => "empty name",
            NameProblem::ControlCharacter(_) => "control character in a name",
            NameProblem::ReservedCharacter('\\') => "backslash in a name",
            NameProblem::ReservedCharacter(_) => "character Windows does not allow in a name",
            NameProblem::DeviceName(_) => "name reserved on Windows",
            NameProblem::TrailingDotOrSpace => "name ends with a dot or space",
            NameProblem::TooLong(_) => "name longer than 255 bytes",
            NameProblem::NotUnicode => "name is not valid Unicode",
        }
    }
}

impl fmt::Display for NameProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameProblem::Empty => f.write_str("it is empty"),
            NameProblem::ControlCharacter(c) => write!(
                f,
                "it contains the control character U+{:04X}, which Windows does not allow and most programs cannot show",
                *c as u32
            ),
            NameProblem::ReservedCharacter('\\') => f.write_str(
                "it contains a backslash, which Windows reads as a folder separator",
            ),
            NameProblem::ReservedCharacter(c) => {
                write!(f, "it contains '{c}', which Windows does not allow in names")
            }
            NameProblem::DeviceName(d) => write!(
                f,
                "'{d}' is a device name on Windows (CON, PRN, AUX, NUL, COM1–9, LPT1–9, with any extension), so no file can have it there"
            ),
            NameProblem::TrailingDotOrSpace => f.write_str(
                "it ends with a dot or a space, which Windows drops (two names would become one)",
            ),
            NameProblem::TooLong(n) => write!(
                f,
                "it is {n} bytes long, more than the {MAX_NAME_BYTES} a file name may have"
            ),
            NameProblem::NotUnicode => f.write_str(
                "it is not valid Unicode text (shown with �), so it cannot be read back under this name",
            ),
        }
    }
}

/// The first problem of one file or folder name (a path component, no `/`), or `None` when
/// every OS a lab uses can hold it.
pub fn problem(name: &str) -> Option<NameProblem> {
    if name.is_empty() {
        return Some(NameProblem::Empty);
    }
    for c in name.chars() {
        if c.is_control() && (c as u32) < 0x80 {
            return Some(NameProblem::ControlCharacter(c));
        }
        if RESERVED_CHARS.contains(&c) {
            return Some(NameProblem::ReservedCharacter(c));
        }
        if c == char::REPLACEMENT_CHARACTER {
            return Some(NameProblem::NotUnicode);
        }
    }
    if let Some(device) = device_name(name) {
        return Some(NameProblem::DeviceName(device.to_string()));
    }
    if name.ends_with(['.', ' ']) && name != "." && name != ".." {
        return Some(NameProblem::TrailingDotOrSpace);
    }
    if name.len() > MAX_NAME_BYTES {
        return Some(NameProblem::TooLong(name.len()));
    }
    None
}

/// The device-name part of `name` (`con` of `con.txt`), when it is one.
fn device_name(name: &str) -> Option<&str> {
    // Windows ignores what follows the first dot, and trailing spaces before it (`NUL .txt`).
    let stem = name.split('.').next().unwrap_or(name).trim_end_matches(' ');
    let upper = stem.to_ascii_uppercase();
    let device = DEVICE_NAMES.contains(&upper.as_str())
        || ((upper.starts_with("COM") || upper.starts_with("LPT"))
            && upper.len() == 4
            && matches!(upper.as_bytes()[3], b'1'..=b'9'));
    device.then_some(stem)
}

/// A name every OS can hold, as close to `name` as possible: forbidden and control characters
/// become `_`, a device name gets `_` after its stem (`CON.bin` → `CON_.bin`), trailing dots and
/// spaces go, a name too long is cut (keeping its extension) at a character boundary.
pub fn portable(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if (c.is_control() && (c as u32) < 0x80)
                || RESERVED_CHARS.contains(&c)
                || c == char::REPLACEMENT_CHARACTER
            {
                '_'
            } else {
                c
            }
        })
        .collect();
    let trimmed = out.trim_end_matches(['.', ' ']).len();
    out.truncate(trimmed);
    if out.is_empty() {
        out.push('_');
    }
    if let Some(stem) = device_name(&out) {
        let at = stem.len();
        out.insert(at, '_');
    }
    if out.len() > MAX_NAME_BYTES {
        let ext = match out.rfind('.') {
            Some(i) if i > 0 && out.len() - i <= 16 => out[i..].to_string(),
            _ => String::new(),
        };
        let mut keep = MAX_NAME_BYTES - ext.len();
        while !out.is_char_boundary(keep) {
            keep -= 1;
        }
        out = format!("{}{ext}", out[..keep].trim_end_matches(['.', ' ']));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_unsafe_name_is_named_and_given_a_portable_one() {
        let long = "a".repeat(300) + ".bin";
        let long_fixed = "a".repeat(MAX_NAME_BYTES - 4) + ".bin";
        let cases: [(&str, Option<NameProblem>, &str); 24] = [
            ("rec_000.bin", None, "rec_000.bin"),
            ("é è ü 测试.bin", None, "é è ü 测试.bin"),
            (".hidden", None, ".hidden"),
            ("console.bin", None, "console.bin"),
            ("COM0.bin", None, "COM0.bin"),
            (
                "a\\b.bin",
                Some(NameProblem::ReservedCharacter('\\')),
                "a_b.bin",
            ),
            (
                "a:b.bin",
                Some(NameProblem::ReservedCharacter(':')),
                "a_b.bin",
            ),
            (
                "<x>|y?*\".bin",
                Some(NameProblem::ReservedCharacter('<')),
                "_x__y___.bin",
            ),
            (
                "tab\there.bin",
                Some(NameProblem::ControlCharacter('\t')),
                "tab_here.bin",
            ),
            (
                "nul\0.bin",
                Some(NameProblem::ControlCharacter('\0')),
                "nul_.bin",
            ),
            (
                "del\u{7f}.bin",
                Some(NameProblem::ControlCharacter('\u{7f}')),
                "del_.bin",
            ),
            ("CON", Some(NameProblem::DeviceName("CON".into())), "CON_"),
            (
                "con.bin",
                Some(NameProblem::DeviceName("con".into())),
                "con_.bin",
            ),
            (
                "Nul.tar.gz",
                Some(NameProblem::DeviceName("Nul".into())),
                "Nul_.tar.gz",
            ),
            ("aux", Some(NameProblem::DeviceName("aux".into())), "aux_"),
            (
                "PRN.txt",
                Some(NameProblem::DeviceName("PRN".into())),
                "PRN_.txt",
            ),
            (
                "com1.bin",
                Some(NameProblem::DeviceName("com1".into())),
                "com1_.bin",
            ),
            (
                "LPT9",
                Some(NameProblem::DeviceName("LPT9".into())),
                "LPT9_",
            ),
            ("notes.", Some(NameProblem::TrailingDotOrSpace), "notes"),
            ("notes ", Some(NameProblem::TrailingDotOrSpace), "notes"),
            ("...", Some(NameProblem::TrailingDotOrSpace), "_"),
            (&long, Some(NameProblem::TooLong(304)), &long_fixed),
            ("bad\u{FFFD}.bin", Some(NameProblem::NotUnicode), "bad_.bin"),
            ("", Some(NameProblem::Empty), "_"),
        ];
        for (name, want, fixed) in cases {
            assert_eq!(problem(name), want, "{name:?}");
            assert_eq!(portable(name), fixed, "{name:?}");
            assert_eq!(
                problem(&portable(name)),
                None,
                "the fix of {name:?} is portable"
            );
            if let Some(p) = want {
                assert!(!p.to_string().is_empty() && !p.reason().is_empty());
            }
        }
    }

    #[test]
    fn a_long_name_is_cut_at_a_character_boundary() {
        let name = "测".repeat(100) + ".bin";
        assert!(matches!(problem(&name), Some(NameProblem::TooLong(304))));
        let fixed = portable(&name);
        assert!(
            fixed.len() <= MAX_NAME_BYTES && fixed.ends_with(".bin"),
            "{fixed}"
        );
        assert_eq!(problem(&fixed), None);
    }
}
