//! Human-readable byte sizes, shared by messages and tables so every place says "600.0 MB" alike.

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

#[cfg(test)]
mod tests {
    use super::human_bytes;

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
