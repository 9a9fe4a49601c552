//! The durable, bounded spool: every record is written here first, and leaves only once
//! CloudWatch Logs accepted it. A lab PC offline for a week loses nothing but what the cap drops.
//!
//! One SQLite file per machine user beside the upload journal (`client-log.sqlite3`), shared by
//! the CLI and the app the way the journal is: WAL mode and a busy timeout let both write at
//! once. The cap counts records (each at most a few KB, see [`crate::record::MAX_REASON_BYTES`]);
//! when it is reached the oldest records go and the number dropped is kept, and shipped later as
//! one DROPPED record, so an operator knows something is missing.
//!
//! Shipping is at least once: a crash after CloudWatch accepted a batch and before its rows are
//! deleted sends that batch again. Two shippers (the app and a CLI run) are kept apart by a lease
//! row, so they do not send the same records twice in the normal case.

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use crate::error::ClientLogError;
use crate::record::Record;

/// The spool's file name, beside the upload journal.
pub const FILE_NAME: &str = "client-log.sqlite3";
/// Records kept while offline before the oldest are dropped: at the usual few hundred bytes a
/// record, about 5 MB; weeks of a busy lab's status changes.
pub const DEFAULT_MAX_RECORDS: u64 = 20_000;

pub struct Spool {
    path: PathBuf,
    max_records: u64,
    conn: Mutex<Connection>,
}

/// A spooled record: its row id and its JSON text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spooled {
    pub id: i64,
    pub time_ms: i64,
    pub message: String,
}

impl Spool {
    /// The spool beside a journal file: `<journal folder>/client-log.sqlite3`.
    pub fn path_beside(journal: &Path) -> PathBuf {
        journal
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .join(FILE_NAME)
    }

    /// Opens (or creates) the spool at `path`, keeping at most `max_records` records.
    pub fn open(path: &Path, max_records: u64) -> Result<Self, ClientLogError> {
        let err = |e: &dyn std::fmt::Display| ClientLogError::Spool {
            path: path.to_path_buf(),
            reason: e.to_string(),
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| err(&e))?;
        }
        let conn = Connection::open(path).map_err(|e| err(&e))?;
        conn.busy_timeout(Duration::from_secs(10))
            .map_err(|e| err(&e))?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             PRAGMA synchronous=NORMAL;
             CREATE TABLE IF NOT EXISTS record (
                 id INTEGER PRIMARY KEY AUTOINCREMENT,
                 time_ms INTEGER NOT NULL,
                 message TEXT NOT NULL
             );
             CREATE TABLE IF NOT EXISTS meta (
                 name TEXT PRIMARY KEY,
                 value INTEGER NOT NULL
             );
             INSERT OR IGNORE INTO meta (name, value) VALUES ('dropped', 0), ('lease_until_ms', 0);",
        )
        .map_err(|e| err(&e))?;
        Ok(Spool {
            path: path.to_path_buf(),
            max_records: max_records.max(1),
            conn: Mutex::new(conn),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, e: impl std::fmt::Display) -> ClientLogError {
        ClientLogError::Spool {
            path: self.path.clone(),
            reason: e.to_string(),
        }
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds records, then drops the oldest beyond the cap (counting them), in one transaction.
    pub fn push(&self, records: &[Record]) -> Result<(), ClientLogError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.err(e))?;
        {
            let mut insert = tx
                .prepare_cached("INSERT INTO record (time_ms, message) VALUES (?1, ?2)")
                .map_err(|e| self.err(e))?;
            for r in records {
                insert
                    .execute(params![r.timestamp_millis(), r.to_json()])
                    .map_err(|e| self.err(e))?;
            }
        }
        let count: i64 = tx
            .query_row("SELECT COUNT(*) FROM record", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        let excess = count.saturating_sub(i64::try_from(self.max_records).unwrap_or(i64::MAX));
        if excess > 0 {
            tx.execute(
                "DELETE FROM record WHERE id IN (SELECT id FROM record ORDER BY id LIMIT ?1)",
                params![excess],
            )
            .map_err(|e| self.err(e))?;
            tx.execute(
                "UPDATE meta SET value = value + ?1 WHERE name = 'dropped'",
                params![excess],
            )
            .map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))
    }

    /// The oldest `limit` records, oldest first.
    pub fn oldest(&self, limit: usize) -> Result<Vec<Spooled>, ClientLogError> {
        let conn = self.conn();
        let mut q = conn
            .prepare_cached("SELECT id, time_ms, message FROM record ORDER BY id LIMIT ?1")
            .map_err(|e| self.err(e))?;
        let rows = q
            .query_map(params![limit as i64], |r| {
                Ok(Spooled {
                    id: r.get(0)?,
                    time_ms: r.get(1)?,
                    message: r.get(2)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Removes records CloudWatch accepted (or refused for good).
    pub fn remove(&self, ids: &[i64]) -> Result<(), ClientLogError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        {
            let mut del = tx
                .prepare_cached("DELETE FROM record WHERE id = ?1")
                .map_err(|e| self.err(e))?;
            for id in ids {
                del.execute(params![id]).map_err(|e| self.err(e))?;
            }
        }
        tx.commit().map_err(|e| self.err(e))
    }

    /// Records waiting to be sent.
    pub fn len(&self) -> Result<u64, ClientLogError> {
        self.conn()
            .query_row("SELECT COUNT(*) FROM record", [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(|e| self.err(e))
    }

    pub fn is_empty(&self) -> Result<bool, ClientLogError> {
        Ok(self.len()? == 0)
    }

    /// Records dropped (cap reached, or refused for good) and not yet reported.
    pub fn dropped(&self) -> Result<u64, ClientLogError> {
        self.meta("dropped").map(|n| n.max(0) as u64)
    }

    /// Counts `n` more dropped records.
    pub fn add_dropped(&self, n: u64) -> Result<(), ClientLogError> {
        self.conn()
            .execute(
                "UPDATE meta SET value = value + ?1 WHERE name = 'dropped'",
                params![n as i64],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// After a DROPPED record for `n` was accepted: those are reported.
    pub fn reported_dropped(&self, n: u64) -> Result<(), ClientLogError> {
        self.conn()
            .execute(
                "UPDATE meta SET value = MAX(0, value - ?1) WHERE name = 'dropped'",
                params![n as i64],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Takes the shipping lease until `now_ms + hold`, unless another shipper holds it.
    pub fn take_lease(&self, now_ms: i64, hold: Duration) -> Result<bool, ClientLogError> {
        let until = now_ms + hold.as_millis() as i64;
        let changed = self
            .conn()
            .execute(
                "UPDATE meta SET value = ?1 WHERE name = 'lease_until_ms' AND value <= ?2",
                params![until, now_ms],
            )
            .map_err(|e| self.err(e))?;
        Ok(changed == 1)
    }

    pub fn release_lease(&self) -> Result<(), ClientLogError> {
        self.conn()
            .execute(
                "UPDATE meta SET value = 0 WHERE name = 'lease_until_ms'",
                [],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    fn meta(&self, name: &str) -> Result<i64, ClientLogError> {
        self.conn()
            .query_row("SELECT value FROM meta WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()
            .map(|v| v.unwrap_or(0))
            .map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Kind, Origin};
    use chrono::Utc;

    fn rec(i: usize) -> Record {
        let o = Origin {
            host: "h".into(),
            user: "u".into(),
            program: "labpipe".into(),
        };
        Record::new(&o, Kind::Detected, Utc::now()).session(format!("s{i}"))
    }

    #[test]
    fn the_cap_drops_the_oldest_and_counts_them() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(&dir.path().join("x/spool.sqlite3"), 5).unwrap();
        spool.push(&(0..3).map(rec).collect::<Vec<_>>()).unwrap();
        spool.push(&(3..8).map(rec).collect::<Vec<_>>()).unwrap();
        assert_eq!(spool.len().unwrap(), 5);
        assert_eq!(spool.dropped().unwrap(), 3);
        let kept = spool.oldest(100).unwrap();
        assert!(kept[0].message.contains("\"s3\""), "{:?}", kept[0]);
        assert!(kept[4].message.contains("\"s7\""));
        spool.reported_dropped(3).unwrap();
        assert_eq!(spool.dropped().unwrap(), 0);
    }

    #[test]
    fn records_survive_reopening_and_leave_only_when_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool.sqlite3");
        {
            let spool = Spool::open(&path, 100).unwrap();
            spool.push(&[rec(1), rec(2)]).unwrap();
        }
        let spool = Spool::open(&path, 100).unwrap();
        let rows = spool.oldest(10).unwrap();
        assert_eq!(rows.len(), 2);
        spool.remove(&[rows[0].id]).unwrap();
        assert_eq!(spool.oldest(10).unwrap(), vec![rows[1].clone()]);
    }

    #[test]
    fn one_shipper_holds_the_lease_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool.sqlite3");
        let a = Spool::open(&path, 10).unwrap();
        let b = Spool::open(&path, 10).unwrap();
        assert!(a.take_lease(1_000, Duration::from_secs(60)).unwrap());
        assert!(!b.take_lease(2_000, Duration::from_secs(60)).unwrap());
        // An abandoned lease expires.
        assert!(b.take_lease(62_000, Duration::from_secs(60)).unwrap());
        b.release_lease().unwrap();
        assert!(a.take_lease(62_001, Duration::from_secs(60)).unwrap());
    }
}
