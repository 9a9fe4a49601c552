//! What may be in flight at once across a run: **bytes, not requests**.
//!
//! `--concurrency N` promises memory of about `N × part size` (each request's body is held while
//! it is sent). Counting requests kept that promise but starved a backlog of small files: eight
//! 1 MB files in flight use 8 MB of a 128 MB budget, and on a link with a 40 ms round trip eight
//! requests at a time cap a backlog at ~200 objects a second whatever the bandwidth. So each
//! request takes a share of the budget in proportion to its size: a full part takes one whole
//! slot (N parts at once, as before), a small file takes [`SHARES_PER_SLOT`]-ths of a slot, never
//! less than one share. Bytes in flight still never exceed `N × part size`; requests in flight are
//! at most `N × SHARES_PER_SLOT` (128 with the defaults, like the usual S3 copy tools' worker
//! pools).

use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Shares one slot is cut into: the most small requests that may stand in for one part.
pub const SHARES_PER_SLOT: u64 = 16;

/// The run's budget of bytes in flight, in shares of a part.
#[derive(Clone)]
pub struct Slots {
    shares: Arc<Semaphore>,
    part_size: u64,
}

impl Slots {
    /// `concurrency` parts of `part_size` bytes (each at least one share).
    pub fn new(concurrency: usize, part_size: u64) -> Self {
        let total = (concurrency.max(1) as u64) * SHARES_PER_SLOT;
        Slots {
            shares: Arc::new(Semaphore::new(total as usize)),
            part_size: part_size.max(1),
        }
    }

    /// The shares a request body of `bytes` takes: its part of a slot, rounded up, at least one
    /// and at most a whole slot.
    pub fn shares_for(&self, bytes: u64) -> u32 {
        let shares =
            (u128::from(bytes) * u128::from(SHARES_PER_SLOT)).div_ceil(u128::from(self.part_size));
        shares.clamp(1, u128::from(SHARES_PER_SLOT)) as u32
    }

    /// Waits until a request of `bytes` fits in the budget; the budget comes back when the
    /// returned permit is dropped.
    pub async fn acquire(&self, bytes: u64) -> OwnedSemaphorePermit {
        self.shares
            .clone()
            .acquire_many_owned(self.shares_for(bytes))
            .await
            .expect("the slots' semaphore is never closed")
    }

    /// Shares free now (for tests).
    #[cfg(test)]
    fn free(&self) -> usize {
        self.shares.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    #[test]
    fn a_part_takes_a_slot_and_a_small_file_a_share_of_one() {
        let s = Slots::new(8, 16 * MIB);
        assert_eq!(s.shares_for(16 * MIB), 16);
        assert_eq!(s.shares_for(16 * MIB - 1), 16);
        assert_eq!(s.shares_for(MIB), 1);
        assert_eq!(s.shares_for(MIB + 1), 2);
        assert_eq!(s.shares_for(0), 1, "an empty file still takes one share");
        assert_eq!(s.shares_for(40 * MIB), 16, "never more than a whole slot");
    }

    #[tokio::test]
    async fn bytes_in_flight_stay_within_concurrency_times_part_size() {
        let s = Slots::new(2, 16 * MIB);
        // Two parts fill the budget; a third request of any size waits.
        let a = s.acquire(16 * MIB).await;
        let b = s.acquire(16 * MIB).await;
        assert_eq!(s.free(), 0);
        let waiting =
            tokio::time::timeout(std::time::Duration::from_millis(50), s.acquire(1)).await;
        assert!(
            waiting.is_err(),
            "a full budget must make the next request wait"
        );
        drop(a);
        // The freed slot holds sixteen 1 MiB files at once, not one.
        let small: Vec<_> = futures_small(&s, 16).await;
        assert_eq!(s.free(), 0);
        drop(small);
        drop(b);
        assert_eq!(s.free(), 32);
    }

    async fn futures_small(s: &Slots, n: usize) -> Vec<OwnedSemaphorePermit> {
        let mut held = Vec::new();
        for _ in 0..n {
            held.push(s.acquire(MIB).await);
        }
        held
    }
}
