//! When sessions were recorded, and the folder names that follow from that.
//!
//! The lab records about ten sessions a day, one to two hours apart from the morning into the
//! evening, so generated names exercise day boundaries and sorting the way real folders do.
//! Times are drawn one after the other from a single stream, so the first `n` times never
//! depend on how many follow: the broken examples take the slots after the good sessions
//! without moving them.

use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::SampleError;

/// Sessions of one day fall within this many seconds after the day's start time.
const DAY_WINDOW_SECS: i64 = 16 * 3600;

/// `n` strictly increasing recording times; the first is `start` itself.
pub(crate) fn recording_times(
    start: NaiveDateTime,
    rng: &mut ChaCha8Rng,
    n: usize,
) -> Result<Vec<NaiveDateTime>, SampleError> {
    // Capacity is capped: an absurd count must end in `TimeOutOfRange`, not an allocation
    // failure.
    let mut times = Vec::with_capacity(n.min(1 << 16));
    let mut day = 0;
    while times.len() < n {
        let per_day: i64 = rng.gen_range(9..=11);
        let slot = DAY_WINDOW_SECS / per_day;
        for i in 0..per_day {
            if times.len() == n {
                break;
            }
            let jitter = if day == 0 && i == 0 {
                0
            } else {
                rng.gen_range(0..slot / 3)
            };
            let offset = Duration::days(day) + Duration::seconds(i * slot + jitter);
            let time = start
                .checked_add_signed(offset)
                .ok_or(SampleError::TimeOutOfRange(start))?;
            if !(1..=9999).contains(&time.year()) {
                return Err(SampleError::TimeOutOfRange(time));
            }
            times.push(time);
        }
        day += 1;
    }
    Ok(times)
}

/// The folder name of a session recorded at `time`.
pub(crate) fn folder_name(time: NaiveDateTime) -> String {
    time.format("%Y%m%d_%H%M%S").to_string()
}

/// 29 February of `time`'s year, or of the year before when that one is a leap year.
pub(crate) fn bad_calendar_date_name(time: NaiveDateTime) -> String {
    let year = time.year();
    let year = if NaiveDate::from_ymd_opt(year, 2, 29).is_some() {
        year - 1
    } else {
        year
    };
    format!("{year:04}0229_{}", time.format("%H%M%S"))
}

pub(crate) fn month_13_name(time: NaiveDateTime) -> String {
    format!("{:04}13{}", time.year(), time.format("%d_%H%M%S"))
}

pub(crate) fn hour_25_name(time: NaiveDateTime) -> String {
    format!("{}_25{}", time.format("%Y%m%d"), time.format("%M%S"))
}

/// What someone renaming a folder by hand might call it, e.g. `session_march`.
pub(crate) fn free_text_name(time: NaiveDateTime) -> String {
    format!("session_{}", time.format("%B").to_string().to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, mo, d)
            .unwrap()
            .and_hms_opt(h, mi, s)
            .unwrap()
    }

    #[test]
    fn about_ten_a_day_hours_apart_and_increasing() {
        let start = crate::default_start();
        let times = recording_times(start, &mut ChaCha8Rng::seed_from_u64(7), 60).unwrap();
        assert_eq!(times[0], start);
        for pair in times.windows(2) {
            let gap = pair[1] - pair[0];
            assert!(gap >= Duration::minutes(50), "{pair:?}");
            assert!(gap <= Duration::hours(16), "{pair:?}");
        }
        let days = times.last().unwrap().date() - start.date();
        assert!((5..=7).contains(&days.num_days()), "{days}");
    }

    #[test]
    fn prefix_does_not_depend_on_count() {
        let start = crate::default_start();
        let short = recording_times(start, &mut ChaCha8Rng::seed_from_u64(3), 5).unwrap();
        let long = recording_times(start, &mut ChaCha8Rng::seed_from_u64(3), 40).unwrap();
        assert_eq!(short[..], long[..5]);
    }

    #[test]
    fn refuses_years_that_do_not_fit_a_name() {
        let start = at(9999, 12, 31, 9, 0, 0);
        let err = recording_times(start, &mut ChaCha8Rng::seed_from_u64(1), 30).unwrap_err();
        assert!(matches!(err, SampleError::TimeOutOfRange(_)));
    }

    #[test]
    fn broken_names() {
        let t = at(2021, 3, 1, 16, 12, 21);
        assert_eq!(folder_name(t), "20210301_161221");
        assert_eq!(bad_calendar_date_name(t), "20210229_161221");
        assert_eq!(
            bad_calendar_date_name(at(2024, 5, 1, 16, 12, 21)),
            "20230229_161221"
        );
        assert_eq!(month_13_name(t), "20211301_161221");
        assert_eq!(hour_25_name(t), "20210301_251221");
        assert_eq!(free_text_name(t), "session_march");
    }
}
