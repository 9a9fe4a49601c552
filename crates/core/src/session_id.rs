//! The session id: a folder name `YYYYMMDD_HHMMSS` that must be a real recording time, optionally
//! followed by the rig that recorded it (`YYYYMMDD_HHMMSS_<rig>`, e.g. `20210301_161221_rigB`).
//!
//! The rig suffix is how a lab with several rigs (or a PC whose clock was reset) keeps two
//! recordings of the same second apart: each lab PC configured with a rig id (`labpipe upload
//! --rig`, `LABPIPE_RIG`, the app's Settings) uploads its folders under `<date-time>_<rig>`, so
//! keys, catalog entries and readers stay one per recording without any other change. The
//! recording time still comes from the date-time part alone ([`SessionId::recorded_at`],
//! [`SessionId::month`]); sessions sort by time, then by rig.
//!
//! The name is the only record of *when* a session was recorded, and it becomes the session's key
//! in S3 and in the catalog, so it is parsed strictly: a calendar date that does not exist
//! (`20210229` — 2021 is not a leap year), an hour 25 or a minute 60 is rejected with a message
//! that says which part is wrong, instead of being silently normalised by a date library.

use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A valid session id. Recording times are lab-local wall-clock times (the lab PC's clock);
/// they carry no time zone, exactly like the folder names they come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SessionId {
    recorded_at: NaiveDateTime,
    rig: Option<Rig>,
}

/// The most characters a rig id may have.
pub const MAX_RIG_LEN: usize = 16;

/// A rig (lab PC) id: 1–16 ASCII letters, digits or `-`, starting with a letter (`rigB`,
/// `ephys-2`). No `_` or `.`, so `<date-time>_<rig>` and a revision's `<session>.r<N>` folder
/// always split back unambiguously. Stored inline so [`SessionId`] stays `Copy`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rig {
    len: u8,
    bytes: [u8; MAX_RIG_LEN],
}

impl Rig {
    /// Parses a rig id; the message says what is allowed.
    pub fn parse(text: &str) -> Result<Self, SessionIdError> {
        let b = text.as_bytes();
        let ok = !b.is_empty()
            && b.len() <= MAX_RIG_LEN
            && b[0].is_ascii_alphabetic()
            && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-');
        if !ok {
            return Err(SessionIdError::Rig {
                rig: text.to_string(),
            });
        }
        let mut bytes = [0u8; MAX_RIG_LEN];
        bytes[..b.len()].copy_from_slice(b);
        Ok(Rig {
            len: b.len() as u8,
            bytes,
        })
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len as usize]).expect("checked: ascii")
    }
}

impl fmt::Display for Rig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Rig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Rig({})", self.as_str())
    }
}

impl std::str::FromStr for Rig {
    type Err = SessionIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Rig::parse(s)
    }
}

/// Why a folder name is not a session id. Each message names the folder and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionIdError {
    #[error("folder name '{name}' is not a recording time: expected YYYYMMDD_HHMMSS (e.g. 20210301_161221){}; rename the folder to the date and time the session was recorded", suggestion(.name))]
    Pattern { name: String },
    #[error("folder name '{name}': month {month:02} does not exist (months are 01–12); fix the date in the folder name")]
    Month { name: String, month: u32 },
    #[error("folder name '{name}': {year}-{month:02} has no day {day:02} ({detail}); fix the date in the folder name")]
    Day {
        name: String,
        year: i32,
        month: u32,
        day: u32,
        detail: String,
    },
    #[error("folder name '{name}': {part} {value:02} does not exist ({range}); fix the time in the folder name")]
    Time {
        name: String,
        part: &'static str,
        value: u32,
        range: &'static str,
    },
    #[error("folder name '{name}' says the session was recorded {when}, more than one day in the future; check the lab PC's clock or the folder name")]
    Future { name: String, when: String },
    #[error("rig id '{rig}' is not valid: use 1–16 letters, digits or '-', starting with a letter (e.g. rigB); fix --rig / LABPIPE_RIG / the app's Settings")]
    Rig { rig: String },
}

impl SessionId {
    /// Parses a folder name without judging it against the clock: `YYYYMMDD_HHMMSS`, or
    /// `YYYYMMDD_HHMMSS_<rig>` ([`Rig`]).
    pub fn parse(name: &str) -> Result<Self, SessionIdError> {
        let pattern = || SessionIdError::Pattern {
            name: name.to_string(),
        };
        let (stamp, rig) = match name.get(15..) {
            Some(rest) if !rest.is_empty() => match rest.strip_prefix('_') {
                Some(rig) => (&name[..15], Some(Rig::parse(rig).map_err(|_| pattern())?)),
                None => return Err(pattern()),
            },
            _ => (name, None),
        };
        let mut id = Self::parse_stamp(name, stamp)?;
        id.rig = rig;
        Ok(id)
    }

    /// The date-time part; `name` is the whole folder name, for messages.
    fn parse_stamp(name: &str, stamp: &str) -> Result<Self, SessionIdError> {
        let pattern = || SessionIdError::Pattern {
            name: name.to_string(),
        };
        let bytes = stamp.as_bytes();
        if bytes.len() != 15
            || bytes[8] != b'_'
            || !bytes[..8].iter().all(u8::is_ascii_digit)
            || !bytes[9..].iter().all(u8::is_ascii_digit)
        {
            return Err(pattern());
        }
        let num = |range: std::ops::Range<usize>| -> u32 {
            stamp[range].parse().expect("checked: ascii digits")
        };
        let (year, month, day) = (num(0..4) as i32, num(4..6), num(6..8));
        let (hour, minute, second) = (num(9..11), num(11..13), num(13..15));
        if !(1..=12).contains(&month) {
            return Err(SessionIdError::Month {
                name: name.to_string(),
                month,
            });
        }
        let date = NaiveDate::from_ymd_opt(year, month, day).ok_or_else(|| {
            let days = days_in_month(year, month);
            let detail = if month == 2 && day == 29 {
                format!("{year} is not a leap year")
            } else {
                format!("that month has {days} days")
            };
            SessionIdError::Day {
                name: name.to_string(),
                year,
                month,
                day,
                detail,
            }
        })?;
        for (part, value, limit, range) in [
            ("hour", hour, 24, "hours are 00–23"),
            ("minute", minute, 60, "minutes are 00–59"),
            ("second", second, 60, "seconds are 00–59"),
        ] {
            if value >= limit {
                return Err(SessionIdError::Time {
                    name: name.to_string(),
                    part,
                    value,
                    range,
                });
            }
        }
        let time = NaiveTime::from_hms_opt(hour, minute, second).expect("checked ranges");
        Ok(SessionId {
            recorded_at: date.and_time(time),
            rig: None,
        })
    }

    /// Parses and also rejects recording times more than one day after `now` (lab-local time).
    /// One day of slack absorbs time zones and a lab PC clock that is a little off.
    pub fn parse_at(name: &str, now: NaiveDateTime) -> Result<Self, SessionIdError> {
        let id = Self::parse(name)?;
        if id.recorded_at > now + Duration::days(1) {
            return Err(SessionIdError::Future {
                name: name.to_string(),
                when: id.recorded_at.format("%Y-%m-%d %H:%M:%S").to_string(),
            });
        }
        Ok(id)
    }

    /// True when `name` has the shape of a session id (valid or not): used by the folder scan to
    /// tell a session folder from a root of session folders.
    pub fn looks_like(name: &str) -> bool {
        let b = name.as_bytes();
        let stamp = b.len() >= 15
            && b[8] == b'_'
            && b[..8].iter().all(u8::is_ascii_digit)
            && b[9..15].iter().all(u8::is_ascii_digit);
        stamp && (b.len() == 15 || (b[15] == b'_' && Rig::parse(&name[16..]).is_ok()))
    }

    pub fn recorded_at(&self) -> NaiveDateTime {
        self.recorded_at
    }

    /// The rig that recorded the session, when its id carries one.
    pub fn rig(&self) -> Option<Rig> {
        self.rig
    }

    /// This recording time on `rig`: the id a lab PC configured with a rig id uploads a folder
    /// named by its date-time alone under. An id that already names a rig keeps it.
    pub fn on_rig(self, rig: Rig) -> Self {
        SessionId {
            rig: self.rig.or(Some(rig)),
            ..self
        }
    }

    /// `YYYY-MM`, the catalog's partition for browsing by month.
    pub fn month(&self) -> String {
        format!(
            "{:04}-{:02}",
            self.recorded_at.year(),
            self.recorded_at.month()
        )
    }
}

/// For names that hold the right digits in another layout (`2021-03-01_16-12-21`), the intended
/// id — but only when that id is itself valid.
fn suggestion(name: &str) -> String {
    let digits: String = name.chars().filter(char::is_ascii_digit).collect();
    if digits.len() != 14 {
        return String::new();
    }
    let candidate = format!("{}_{}", &digits[..8], &digits[8..]);
    match SessionId::parse(&candidate) {
        Ok(_) => format!(" — did you mean {candidate}?"),
        Err(_) => String::new(),
    }
}

fn days_in_month(year: i32, month: u32) -> u32 {
    let (ny, nm) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    NaiveDate::from_ymd_opt(ny, nm, 1)
        .and_then(|d| d.pred_opt())
        .map(|d| d.day())
        .unwrap_or(31)
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.recorded_at.format("%Y%m%d_%H%M%S"))?;
        match &self.rig {
            Some(rig) => write!(f, "_{rig}"),
            None => Ok(()),
        }
    }
}

impl From<SessionId> for String {
    fn from(id: SessionId) -> String {
        id.to_string()
    }
}

impl TryFrom<String> for SessionId {
    type Error = SessionIdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        SessionId::parse(&s)
    }
}

impl std::str::FromStr for SessionId {
    type Err = SessionIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SessionId::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn now() -> NaiveDateTime {
        NaiveDate::from_ymd_opt(2021, 3, 10)
            .unwrap()
            .and_hms_opt(12, 0, 0)
            .unwrap()
    }

    /// `check(input, expect)`: Ok(display) or Err(substring of the message).
    fn check(input: &str, expect: Result<&str, &str>) {
        match (SessionId::parse_at(input, now()), expect) {
            (Ok(id), Ok(want)) => assert_eq!(id.to_string(), want, "{input}"),
            (Err(e), Err(want)) => assert!(
                e.to_string().contains(want),
                "{input}: message {:?} lacks {want:?}",
                e.to_string()
            ),
            (got, want) => panic!("{input}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn valid_and_invalid_names() {
        check("20210301_161221", Ok("20210301_161221"));
        check("20200229_000000", Ok("20200229_000000")); // 2020 is a leap year
        check("20210311_115959", Ok("20210311_115959")); // within one day ahead
        check("20210229_161221", Err("2021 is not a leap year"));
        check("20210431_161221", Err("that month has 30 days"));
        check("20211301_161221", Err("month 13 does not exist"));
        check("20210001_161221", Err("month 00 does not exist"));
        check("20210300_161221", Err("has no day 00"));
        check("20210301_251221", Err("hour 25 does not exist"));
        check("20210301_166021", Err("minute 60 does not exist"));
        check("20210301_161260", Err("second 60 does not exist"));
        check("session_march", Err("expected YYYYMMDD_HHMMSS"));
        check("2021-03-01_161221", Err("expected YYYYMMDD_HHMMSS"));
        check("2021-03-01_16-12-21", Err("did you mean 20210301_161221?"));
        check(
            "20210301_161221 (copy)",
            Err("did you mean 20210301_161221?"),
        );
        check("20210301161221", Err("expected YYYYMMDD_HHMMSS"));
        check("20210301_16122", Err("expected YYYYMMDD_HHMMSS"));
        check("２０２１0301_161221", Err("expected YYYYMMDD_HHMMSS"));
        check("20210312_120001", Err("more than one day in the future"));
    }

    #[test]
    fn recorded_at_and_month() {
        let id = SessionId::parse("20210301_161221").unwrap();
        assert_eq!(id.recorded_at().to_string(), "2021-03-01 16:12:21");
        assert_eq!(id.month(), "2021-03");
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"20210301_161221\"");
        let back: SessionId = serde_json::from_str(&json).unwrap();
        assert_eq!(back, id);
        assert!(serde_json::from_str::<SessionId>("\"20210229_161221\"").is_err());
    }

    #[test]
    fn a_rig_suffix_keeps_the_recording_time_and_sorts_after_the_bare_id() {
        check("20210301_161221_rigB", Ok("20210301_161221_rigB"));
        check("20210301_161221_ephys-2", Ok("20210301_161221_ephys-2"));
        for bad in [
            "20210301_161221_",
            "20210301_161221_2rig",
            "20210301_161221_rig_B",
            "20210301_161221_rig.r2",
            "20210301_161221_abcdefghijklmnopq",
            "20210301_161221x",
            "20210301_161221_rig B",
        ] {
            check(bad, Err("expected YYYYMMDD_HHMMSS"));
        }
        check("20210229_161221_rigB", Err("2021 is not a leap year"));
        let bare = SessionId::parse("20210301_161221").unwrap();
        let b = SessionId::parse("20210301_161221_rigB").unwrap();
        let a = bare.on_rig(Rig::parse("rigA").unwrap());
        assert_eq!(a.to_string(), "20210301_161221_rigA");
        assert_eq!(
            b.on_rig(Rig::parse("rigA").unwrap()),
            b,
            "a named rig stays"
        );
        assert_eq!(b.recorded_at(), bare.recorded_at());
        assert_eq!(b.month(), "2021-03");
        assert_eq!(b.rig().unwrap().as_str(), "rigB");
        let mut all = [b, bare, a];
        all.sort();
        let names: Vec<String> = all.iter().map(ToString::to_string).collect();
        assert_eq!(
            names,
            [
                "20210301_161221",
                "20210301_161221_rigA",
                "20210301_161221_rigB"
            ]
        );
        assert!(SessionId::looks_like("20210301_161221_rigB"));
        assert!(!SessionId::looks_like("20210301_161221_"));
        assert!(!SessionId::looks_like("20210301_161221 (copy)"));
        let json = serde_json::to_string(&b).unwrap();
        assert_eq!(serde_json::from_str::<SessionId>(&json).unwrap(), b);
        assert!(Rig::parse("rig_B")
            .unwrap_err()
            .to_string()
            .contains("--rig"));
        // A revision folder of a rig's session splits back.
        let folder = crate::layout::revision_folder(&b.to_string(), 2);
        assert_eq!(
            crate::layout::split_revision(&folder),
            ("20210301_161221_rigB", 2)
        );
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC*") {
            let _ = SessionId::parse_at(&s, now());
            let _ = SessionId::looks_like(&s);
        }

        #[test]
        fn digit_shaped_names_never_panic(s in "[0-9]{8}_[0-9]{6}") {
            if let Ok(id) = SessionId::parse(&s) {
                prop_assert_eq!(id.to_string(), s);
            }
        }
    }
}
