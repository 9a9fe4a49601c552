//! An optional bandwidth cap shared by every request of a run: a reservation clock that spaces
//! request bodies so that the average rate stays at or below the cap.

use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;

#[derive(Debug)]
pub struct Throttle {
    bytes_per_sec: u64,
    next: Mutex<Option<Instant>>,
}

impl Throttle {
    pub fn new(bytes_per_sec: u64) -> Self {
        Self {
            bytes_per_sec: bytes_per_sec.max(1),
            next: Mutex::new(None),
        }
    }

    /// Waits until `bytes` more may be sent without exceeding the cap on average.
    pub async fn reserve(&self, bytes: u64) {
        let start = {
            let mut next = self.next.lock().await;
            let now = Instant::now();
            let start = next.map_or(now, |n| n.max(now));
            *next = Some(start + Duration::from_secs_f64(bytes as f64 / self.bytes_per_sec as f64));
            start
        };
        tokio::time::sleep_until(start).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn spaces_reservations_at_the_cap() {
        // Real time, not a paused clock: tokio's `test-util` feature would change tokio's feature
        // set for every test build and make cargo compile the whole dependency tree twice.
        let t = Throttle::new(10_000);
        let begin = Instant::now();
        for _ in 0..4 {
            t.reserve(500).await;
        }
        // Four reservations of 50 ms: the fourth may start after 150 ms, and not before.
        let elapsed = begin.elapsed();
        assert!(
            elapsed >= Duration::from_millis(150),
            "the cap was exceeded: {elapsed:?}"
        );
        assert!(
            elapsed < Duration::from_secs(5),
            "reservations waited far too long: {elapsed:?}"
        );
    }
}
