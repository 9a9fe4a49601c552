//! Units shared by every crate: human-readable byte sizes, so every message and table says
//! "600.0 MB" alike, and file times as whole Unix seconds, the form the checks record and the
//! upload compares before it reads a file.

use std::time::SystemTime;

/// Decimal megabytes/gigabytes, as storage vendors and the brief ("600 MB") count them.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    if bytes < 1000 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A span in hours and minutes, as messages say it: `45 min`, `2 h`, `1 h 35 min`.
pub fn human_duration(secs: u64) -> String {
    let (h, m) = (secs / 3600, secs % 3600 / 60);
    match (h, m) {
        (0, m) => format!("{m} min"),
        (h, 0) => format!("{h} h"),
        (h, m) => format!("{h} h {m} min"),
    }
}

/// Whole seconds since the Unix epoch; negative for times before it.
pub fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

#[cfg(test)]
mod tests {
    use super::{human_bytes, unix_seconds};
    use std::time::{Duration, SystemTime};

    #[test]
    fn file_times_are_whole_unix_seconds() {
        let epoch = SystemTime::UNIX_EPOCH;
        assert_eq!(
            unix_seconds(epoch + Duration::from_millis(1_600_000_000_900)),
            1_600_000_000
        );
        assert_eq!(unix_seconds(epoch - Duration::from_secs(5)), -5);
    }

    #[test]
    fn sizes_read_like_the_brief() {
        for (input, expect) in [
            (0, "0 B"),
            (999, "999 B"),
            (1000, "1.0 kB"),
            (600_000_000, "600.0 MB"),
            (6_000_000_000, "6.0 GB"),
        ] {
            assert_eq!(human_bytes(input), expect, "{input}");
        }
    }
}
