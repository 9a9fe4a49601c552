//! Cutting spooled records into `PutLogEvents` batches that CloudWatch Logs accepts, as a pure
//! function so every limit is table-tested without a network.
//!
//! AWS's limits for one `PutLogEvents` request
//! (<https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_PutLogEvents.html>):
//! - at most 1,048,576 bytes, counted as the sum of the messages in UTF-8 plus 26 bytes per event;
//! - at most 10,000 events;
//! - events in chronological order, and one batch spanning at most 24 hours;
//! - no event more than 2 hours in the future, none more than 14 days in the past (nor older
//!   than the log group's retention);
//! - each event at most 256 KB (our records are a few KB: see [`crate::record::MAX_REASON_BYTES`]).
//!
//! A record older than 14 days can never be accepted, so it is dropped (and counted) here rather
//! than blocking the spool. A lab PC whose clock runs ahead would have its records refused as
//! "too new": their timestamp is clamped to now (the record's own `time` field keeps the clock's
//! value).

use crate::spool::Spooled;

pub const MAX_BATCH_BYTES: usize = 1_048_576;
pub const EVENT_OVERHEAD_BYTES: usize = 26;
pub const MAX_BATCH_EVENTS: usize = 10_000;
pub const MAX_BATCH_SPAN_MS: i64 = 24 * 60 * 60 * 1000;
/// 14 days, less an hour so a record does not age out between the cut and the request.
pub const MAX_AGE_MS: i64 = (14 * 24 - 1) * 60 * 60 * 1000;

/// One request's events (timestamp, message), in chronological order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Batch {
    pub events: Vec<(i64, String)>,
    /// The spool rows these events came from.
    pub ids: Vec<i64>,
    /// Rows too old for CloudWatch ever to accept: drop and count them.
    pub expired: Vec<i64>,
}

impl Batch {
    pub fn bytes(&self) -> usize {
        self.events
            .iter()
            .map(|(_, m)| m.len() + EVENT_OVERHEAD_BYTES)
            .sum()
    }
}

/// The next batch from `rows` (the spool's oldest, oldest first) at time `now_ms`. `first` is an
/// extra message to lead the batch (the DROPPED record), stamped `now_ms`.
pub fn next_batch(rows: &[Spooled], now_ms: i64, first: Option<&str>) -> Batch {
    let mut batch = Batch::default();
    let mut candidates: Vec<(i64, Option<i64>, &str)> = Vec::with_capacity(rows.len() + 1);
    for row in rows {
        if row.time_ms < now_ms - MAX_AGE_MS {
            batch.expired.push(row.id);
        } else {
            candidates.push((row.time_ms.min(now_ms), Some(row.id), &row.message));
        }
    }
    // Stable: records of the same millisecond keep the spool's order.
    candidates.sort_by_key(|c| c.0);
    if let Some(m) = first {
        candidates.push((now_ms, None, m));
        // The DROPPED record is stamped now, so it sorts last; it is still in this batch unless a
        // limit cuts it off, in which case the next batch carries it.
    }
    let mut bytes = 0usize;
    let mut start: Option<i64> = None;
    for (ts, id, message) in candidates {
        let size = message.len() + EVENT_OVERHEAD_BYTES;
        let span_ok = start.is_none_or(|s| ts - s <= MAX_BATCH_SPAN_MS);
        if batch.events.len() == MAX_BATCH_EVENTS || bytes + size > MAX_BATCH_BYTES || !span_ok {
            break;
        }
        start.get_or_insert(ts);
        bytes += size;
        batch.events.push((ts, message.to_string()));
        if let Some(id) = id {
            batch.ids.push(id);
        }
    }
    batch
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i64, time_ms: i64, len: usize) -> Spooled {
        Spooled {
            id,
            time_ms,
            message: "x".repeat(len),
        }
    }

    const NOW: i64 = 1_800_000_000_000;

    #[test]
    fn a_batch_stops_at_ten_thousand_events() {
        let rows: Vec<_> = (0..10_005).map(|i| row(i, NOW - 1000, 10)).collect();
        let b = next_batch(&rows, NOW, None);
        assert_eq!(b.events.len(), MAX_BATCH_EVENTS);
        assert_eq!(b.ids.len(), MAX_BATCH_EVENTS);
        assert_eq!(b.ids.last(), Some(&9_999));
    }

    #[test]
    fn a_batch_stops_before_a_mebibyte_counting_26_bytes_an_event() {
        // 4 events of 262,118 bytes + 26 = 1,048,576 exactly; the fifth does not fit.
        let size = MAX_BATCH_BYTES / 4 - EVENT_OVERHEAD_BYTES;
        let rows: Vec<_> = (0..5).map(|i| row(i, NOW, size)).collect();
        let b = next_batch(&rows, NOW, None);
        assert_eq!(b.events.len(), 4);
        assert_eq!(b.bytes(), MAX_BATCH_BYTES);
        let rows: Vec<_> = (0..4).map(|i| row(i, NOW, size + 1)).collect();
        assert_eq!(next_batch(&rows, NOW, None).events.len(), 3);
    }

    #[test]
    fn a_batch_spans_at_most_a_day_and_is_chronological() {
        let day = MAX_BATCH_SPAN_MS;
        let rows = vec![
            row(1, NOW - 3 * day, 1),
            row(2, NOW - 4 * day - 1, 1), // older, written later (another process's clock)
            row(3, NOW - 3 * day + 10, 1),
            row(4, NOW - day, 1),
        ];
        let b = next_batch(&rows, NOW, None);
        assert_eq!(b.ids, vec![2]);
        let rest: Vec<_> = rows.iter().filter(|r| r.id != 2).cloned().collect();
        let b = next_batch(&rest, NOW, None);
        assert_eq!(b.ids, vec![1, 3]);
        let ts: Vec<i64> = b.events.iter().map(|e| e.0).collect();
        assert!(ts.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn expired_records_are_set_aside_and_future_ones_clamped() {
        let rows = vec![
            row(1, NOW - 15 * MAX_BATCH_SPAN_MS, 1),
            row(2, NOW - 1000, 1),
            row(3, NOW + 5 * 60 * 60 * 1000, 1),
        ];
        let b = next_batch(&rows, NOW, Some("dropped"));
        assert_eq!(b.expired, vec![1]);
        assert_eq!(b.ids, vec![2, 3]);
        assert_eq!(b.events.last().unwrap(), &(NOW, "dropped".to_string()));
        assert!(b.events.iter().all(|e| e.0 <= NOW));
    }
}
