//! Counting bytes as S3 acknowledges them: per session (sent, resumed) and per file (done, rate,
//! time left), turned into [`Event::FileProgress`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::event::Event;

/// Bytes of one session: sent in this run, and found already in S3 from an earlier one.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    sent: AtomicU64,
    resumed: AtomicU64,
}

impl Tally {
    pub(crate) fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }
    pub(crate) fn resumed(&self) -> u64 {
        self.resumed.load(Ordering::Relaxed)
    }
}

/// Progress of one file, shared by its part tasks.
pub(crate) struct FileProgress {
    session: String,
    path: String,
    total: u64,
    started: Instant,
    done: AtomicU64,
    sent: AtomicU64,
    resumed: AtomicU64,
}

impl FileProgress {
    pub(crate) fn new(session: &str, path: &str, total: u64) -> Self {
        Self {
            session: session.into(),
            path: path.into(),
            total,
            started: Instant::now(),
            done: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            resumed: AtomicU64::new(0),
        }
    }

    /// `bytes` were acknowledged by S3 in this run; counts them for the session too.
    pub(crate) fn sent(&self, tally: &Tally, bytes: u64) -> Event {
        tally.sent.fetch_add(bytes, Ordering::Relaxed);
        self.sent.fetch_add(bytes, Ordering::Relaxed);
        self.done.fetch_add(bytes, Ordering::Relaxed);
        self.event()
    }

    /// `bytes` were found in S3 from an earlier run.
    pub(crate) fn resumed(&self, tally: &Tally, bytes: u64) -> Event {
        tally.resumed.fetch_add(bytes, Ordering::Relaxed);
        self.resumed.fetch_add(bytes, Ordering::Relaxed);
        self.done.fetch_add(bytes, Ordering::Relaxed);
        self.event()
    }

    /// (sent, resumed) bytes of this file so far.
    pub(crate) fn counts(&self) -> (u64, u64) {
        (
            self.sent.load(Ordering::Relaxed),
            self.resumed.load(Ordering::Relaxed),
        )
    }

    fn event(&self) -> Event {
        let done = self.done.load(Ordering::Relaxed);
        let sent = self.sent.load(Ordering::Relaxed);
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        let rate = sent as f64 / secs;
        let eta_secs = (rate > 0.0).then(|| (self.total.saturating_sub(done)) as f64 / rate);
        Event::FileProgress {
            session: self.session.clone(),
            path: self.path.clone(),
            bytes_done: done,
            bytes_total: self.total,
            rate,
            eta_secs,
        }
    }
}
