//! The local upload journal: what survives a crash, a kill -9 or a power cut of the client.
//!
//! S3 holds the truth about parts (`ListParts`), but only the journal knows *which* multipart
//! upload belongs to which local file, with which part size, so a later run can continue it
//! instead of starting over. It also remembers verified files (size, mtime, SHA-256, CRC) so a
//! re-run of an uploaded session needs no re-read. Writes are single-row SQLite transactions in
//! WAL mode: a row is either there or not after a crash.
//!
//! Invariant: a part row is written only after S3 acknowledged the part; an upload row is
//! written right after `CreateMultipartUpload` (an upload created but not recorded is an orphan
//! that the next run aborts).

use rusqlite::{params, Connection, OptionalExtension};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::UploadError;

pub struct Journal {
    path: PathBuf,
    conn: Mutex<Connection>,
}

/// A multipart upload in progress for one local file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenUpload {
    pub upload_id: String,
    pub size: u64,
    pub mtime: i64,
    pub part_size: u64,
}

/// A part S3 acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalPart {
    pub number: i32,
    pub etag: String,
    pub crc64nvme: String,
    pub size: u64,
}

/// A file that was uploaded and verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoneFile {
    pub size: u64,
    pub mtime: i64,
    pub sha256: String,
    pub crc64nvme: String,
}

impl Journal {
    /// The default location: `<data dir>/labpipe/upload-journal.sqlite3`, unless
    /// `LABPIPE_JOURNAL` names another file.
    pub fn default_path() -> PathBuf {
        if let Some(p) = std::env::var_os("LABPIPE_JOURNAL").filter(|p| !p.is_empty()) {
            return PathBuf::from(p);
        }
        dirs::data_local_dir()
            .unwrap_or_else(std::env::temp_dir)
            .join("labpipe")
            .join("upload-journal.sqlite3")
    }

    pub fn open(path: &Path) -> Result<Self, UploadError> {
        let err = |e: &dyn std::fmt::Display| UploadError::Journal {
            path: path.to_path_buf(),
            detail: e.to_string(),
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| err(&e))?;
        }
        let conn = Connection::open(path).map_err(|e| err(&e))?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             PRAGMA synchronous=FULL;
             PRAGMA busy_timeout=10000;
             CREATE TABLE IF NOT EXISTS uploads (
                 bucket TEXT NOT NULL, key TEXT NOT NULL, upload_id TEXT NOT NULL,
                 size INTEGER NOT NULL, mtime INTEGER NOT NULL, part_size INTEGER NOT NULL,
                 created_at TEXT NOT NULL, PRIMARY KEY (bucket, key));
             CREATE TABLE IF NOT EXISTS parts (
                 upload_id TEXT NOT NULL, number INTEGER NOT NULL, etag TEXT NOT NULL,
                 crc64nvme TEXT NOT NULL, size INTEGER NOT NULL, PRIMARY KEY (upload_id, number));
             CREATE TABLE IF NOT EXISTS done (
                 bucket TEXT NOT NULL, key TEXT NOT NULL, size INTEGER NOT NULL, mtime INTEGER NOT NULL,
                 sha256 TEXT NOT NULL, crc64nvme TEXT NOT NULL, PRIMARY KEY (bucket, key));",
        )
        .map_err(|e| err(&e))?;
        Ok(Self {
            path: path.to_path_buf(),
            conn: Mutex::new(conn),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, UploadError> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        f(&conn).map_err(|e| UploadError::Journal {
            path: self.path.clone(),
            detail: e.to_string(),
        })
    }

    pub fn open_upload(&self, bucket: &str, key: &str) -> Result<Option<OpenUpload>, UploadError> {
        self.with(|c| {
            c.query_row(
                "SELECT upload_id, size, mtime, part_size FROM uploads WHERE bucket=?1 AND key=?2",
                params![bucket, key],
                |r| {
                    Ok(OpenUpload {
                        upload_id: r.get(0)?,
                        size: r.get::<_, i64>(1)? as u64,
                        mtime: r.get(2)?,
                        part_size: r.get::<_, i64>(3)? as u64,
                    })
                },
            )
            .optional()
        })
    }

    pub fn begin_upload(&self, bucket: &str, key: &str, u: &OpenUpload) -> Result<(), UploadError> {
        self.with(|c| {
            c.execute(
                "INSERT OR REPLACE INTO uploads (bucket, key, upload_id, size, mtime, part_size, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![bucket, key, u.upload_id, u.size as i64, u.mtime, u.part_size as i64, chrono::Utc::now().to_rfc3339()],
            )
            .map(drop)
        })
    }

    pub fn record_part(&self, upload_id: &str, p: &JournalPart) -> Result<(), UploadError> {
        self.with(|c| {
            c.execute(
                "INSERT OR REPLACE INTO parts (upload_id, number, etag, crc64nvme, size) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![upload_id, p.number, p.etag, p.crc64nvme, p.size as i64],
            )
            .map(drop)
        })
    }

    pub fn parts(&self, upload_id: &str) -> Result<Vec<JournalPart>, UploadError> {
        self.with(|c| {
            let mut st = c.prepare("SELECT number, etag, crc64nvme, size FROM parts WHERE upload_id=?1 ORDER BY number")?;
            let rows = st.query_map(params![upload_id], |r| {
                Ok(JournalPart { number: r.get(0)?, etag: r.get(1)?, crc64nvme: r.get(2)?, size: r.get::<_, i64>(3)? as u64 })
            })?;
            rows.collect()
        })
    }

    /// Forgets an upload (completed or aborted) and its parts.
    pub fn end_upload(&self, bucket: &str, key: &str, upload_id: &str) -> Result<(), UploadError> {
        self.with(|c| {
            let tx = c.unchecked_transaction()?;
            tx.execute("DELETE FROM parts WHERE upload_id=?1", params![upload_id])?;
            tx.execute(
                "DELETE FROM uploads WHERE bucket=?1 AND key=?2 AND upload_id=?3",
                params![bucket, key, upload_id],
            )?;
            tx.commit()
        })
    }

    /// Every upload id the journal knows, for telling orphans apart.
    pub fn known_upload_ids(&self) -> Result<Vec<String>, UploadError> {
        self.with(|c| {
            let mut st = c.prepare("SELECT upload_id FROM uploads")?;
            let rows = st.query_map([], |r| r.get(0))?;
            rows.collect()
        })
    }

    pub fn done_file(&self, bucket: &str, key: &str) -> Result<Option<DoneFile>, UploadError> {
        self.with(|c| {
            c.query_row(
                "SELECT size, mtime, sha256, crc64nvme FROM done WHERE bucket=?1 AND key=?2",
                params![bucket, key],
                |r| {
                    Ok(DoneFile {
                        size: r.get::<_, i64>(0)? as u64,
                        mtime: r.get(1)?,
                        sha256: r.get(2)?,
                        crc64nvme: r.get(3)?,
                    })
                },
            )
            .optional()
        })
    }

    pub fn record_done(&self, bucket: &str, key: &str, d: &DoneFile) -> Result<(), UploadError> {
        self.with(|c| {
            c.execute(
                "INSERT OR REPLACE INTO done (bucket, key, size, mtime, sha256, crc64nvme) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![bucket, key, d.size as i64, d.mtime, d.sha256, d.crc64nvme],
            )
            .map(drop)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.sqlite3");
        let up = OpenUpload {
            upload_id: "u1".into(),
            size: 10,
            mtime: 5,
            part_size: 5,
        };
        {
            let j = Journal::open(&path).unwrap();
            j.begin_upload("b", "k", &up).unwrap();
            j.record_part(
                "u1",
                &JournalPart {
                    number: 1,
                    etag: "e".into(),
                    crc64nvme: "c".into(),
                    size: 5,
                },
            )
            .unwrap();
        }
        let j = Journal::open(&path).unwrap();
        assert_eq!(j.open_upload("b", "k").unwrap(), Some(up));
        assert_eq!(j.parts("u1").unwrap().len(), 1);
        assert_eq!(j.known_upload_ids().unwrap(), ["u1"]);
        j.end_upload("b", "k", "u1").unwrap();
        assert_eq!(j.open_upload("b", "k").unwrap(), None);
        assert!(j.parts("u1").unwrap().is_empty());
    }
}
