//! The local upload journal: what survives a crash, a kill -9 or a power cut of the client.
//!
//! S3 holds the truth about parts (`ListParts`), but only the journal knows *which* multipart
//! upload belongs to which local file, with which part size, so a later run can continue it
//! instead of starting over. It also remembers verified files (size, mtime, SHA-256, CRC) so a
//! re-run of an uploaded session needs no re-read. Writes are single-row SQLite transactions in
//! WAL mode: a row is either there or not after a crash.
//!
//! `synchronous=NORMAL`, not `FULL`: in WAL mode NORMAL never corrupts the database and loses no
//! committed row when the *program* crashes or is killed; only a power cut or an OS crash may
//! roll back the last rows committed before it (<https://www.sqlite.org/pragma.html#pragma_synchronous>,
//! <https://www.sqlite.org/wal.html>). Every row here can be lost safely: a lost part row sends
//! that part again, a lost `done` row makes the next run compare the file with S3 by checksum,
//! and a lost upload row leaves that multipart upload to the bucket's abort rule, as below. FULL
//! cost an fsync per row: 3.7 ms each on this project's test machine, ~5 s of a 1,400-object
//! backlog, serialised behind the journal's lock.
//!
//! There is **one journal per machine user**, shared by the CLI and the desktop app
//! ([`Journal::default_path`]), so an upload interrupted in one is resumed by the other. Both may
//! have it open at once: WAL mode lets readers and one writer work together and the busy timeout
//! makes a writer wait for the other's transaction instead of failing. Two uploaders of the same
//! session are kept apart by the session lock ([`crate::lock`]), which lives beside the journal.
//!
//! The schema is numbered in the file's `PRAGMA user_version`; opening a journal of an earlier
//! release adds what it lacks (`SCHEMA`, one step per change), journals from before the
//! numbering included.
//!
//! Invariant: a part row is written only after S3 acknowledged the part; an upload row is
//! written right after `CreateMultipartUpload`. Only uploads recorded here are ever aborted by
//! the engine: an upload created but not recorded (a kill between the two) is left to the
//! bucket's `AbortIncompleteMultipartUpload` lifecycle rule, as is any other writer's.

use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::UploadError;
use labpipe_core::session_id::Rig;

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
    /// The object's ETag when it was verified: a listing showing the same ETag proves the
    /// object is still this one without reading it back (absent in journals of older versions).
    pub etag: Option<String>,
    /// The object version holding the file, for the manifest (absent in journals of older
    /// versions and on unversioned buckets).
    pub version_id: Option<String>,
}

/// File name of the journal inside the user's data folder.
const FILE_NAME: &str = "upload-journal.sqlite3";

/// The upload locks of every process sharing the journal at `journal`: `upload-locks/` beside it.
/// For readers that must respect the locks without opening the journal (`labpipe clean`).
pub fn locks_dir_beside(journal: &Path) -> PathBuf {
    journal
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .join("upload-locks")
}

impl Journal {
    /// The one journal of this machine user, used by the CLI and the desktop app alike:
    /// `LABPIPE_JOURNAL` if set, else `upload-journal.sqlite3` in the user's local data folder —
    /// `$XDG_DATA_HOME/labpipe` (default `~/.local/share/labpipe`) on Linux,
    /// `~/Library/Application Support/labpipe` on macOS, `%LOCALAPPDATA%\labpipe` on Windows.
    /// Local, not roaming: resume state describes files on this machine.
    pub fn default_path() -> PathBuf {
        if let Some(p) = std::env::var_os("LABPIPE_JOURNAL").filter(|p| !p.is_empty()) {
            return PathBuf::from(p);
        }
        let dir = dirs::data_local_dir()
            .map(|d| d.join("labpipe"))
            .or_else(|| dirs::home_dir().map(|h| h.join(".labpipe")))
            .unwrap_or_else(|| std::env::temp_dir().join("labpipe"));
        dir.join(FILE_NAME)
    }

    /// Where the per-session upload locks live: `upload-locks/` beside the journal, so every
    /// process that shares the journal also shares the locks.
    pub fn locks_dir(&self) -> PathBuf {
        locks_dir_beside(&self.path)
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
        // The busy timeout first: switching to WAL and creating tables need a write lock that
        // another process (the CLI next to the app) may hold for a moment.
        conn.busy_timeout(std::time::Duration::from_secs(30))
            .map_err(|e| err(&e))?;
        // Two processes opening a new journal at the same moment (the app and the CLI) can meet
        // SQLITE_BUSY without the busy handler being called: SQLite returns it at once while
        // another connection switches the file to WAL or runs WAL recovery, to avoid a deadlock
        // (https://www.sqlite.org/wal.html#sometimes_queries_return_sqlite_busy_in_wal_mode).
        // Setting the journal up is idempotent, so it is simply tried again, for a bounded time.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            match Self::set_up(&conn) {
                Ok(()) => break,
                Err(e) if is_busy(&e) && std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => return Err(err(&e)),
            }
        }
        Ok(Self {
            path: path.to_path_buf(),
            conn: Mutex::new(conn),
        })
    }

    /// Puts the file in WAL mode and brings its schema to the latest version; safe to run again.
    fn set_up(conn: &Connection) -> rusqlite::Result<()> {
        conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;")?;
        migrate(conn)
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

    pub fn done_file(&self, bucket: &str, key: &str) -> Result<Option<DoneFile>, UploadError> {
        self.with(|c| {
            c.query_row(
                "SELECT size, mtime, sha256, crc64nvme, etag, version_id FROM done WHERE bucket=?1 AND key=?2",
                params![bucket, key],
                |r| {
                    Ok(DoneFile {
                        size: r.get::<_, i64>(0)? as u64,
                        mtime: r.get(1)?,
                        sha256: r.get(2)?,
                        crc64nvme: r.get(3)?,
                        etag: r.get(4)?,
                        version_id: r.get(5)?,
                    })
                },
            )
            .optional()
        })
    }

    pub fn record_done(&self, bucket: &str, key: &str, d: &DoneFile) -> Result<(), UploadError> {
        self.with(|c| {
            c.execute(
                "INSERT OR REPLACE INTO done (bucket, key, size, mtime, sha256, crc64nvme, etag, version_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![bucket, key, d.size as i64, d.mtime, d.sha256, d.crc64nvme, d.etag, d.version_id],
            )
            .map(drop)
        })
    }
}

/// The journal's schema, in the order releases changed it. A journal whose `PRAGMA user_version`
/// is N has had the first N steps; opening it runs the others and sets the version, in one
/// transaction (<https://www.sqlite.org/pragma.html#pragma_user_version>). A step is never
/// changed once released: a change is a new step at the end.
const SCHEMA: &[&str] = &[
    // 1: the first release.
    "CREATE TABLE IF NOT EXISTS uploads (
         bucket TEXT NOT NULL, key TEXT NOT NULL, upload_id TEXT NOT NULL,
         size INTEGER NOT NULL, mtime INTEGER NOT NULL, part_size INTEGER NOT NULL,
         created_at TEXT NOT NULL, PRIMARY KEY (bucket, key));
     CREATE TABLE IF NOT EXISTS parts (
         upload_id TEXT NOT NULL, number INTEGER NOT NULL, etag TEXT NOT NULL,
         crc64nvme TEXT NOT NULL, size INTEGER NOT NULL, PRIMARY KEY (upload_id, number));
     CREATE TABLE IF NOT EXISTS done (
         bucket TEXT NOT NULL, key TEXT NOT NULL, size INTEGER NOT NULL, mtime INTEGER NOT NULL,
         sha256 TEXT NOT NULL, crc64nvme TEXT NOT NULL, PRIMARY KEY (bucket, key));",
    // 2: the ETag a file was verified with. Rows of earlier journals have none: a re-run
    // compares checksums once, then records it.
    "ALTER TABLE done ADD COLUMN etag TEXT",
    // 3: the object version holding the file. Rows of earlier journals have none: their
    // manifest names no version for those files.
    "ALTER TABLE done ADD COLUMN version_id TEXT",
    // 4: rows by key in any bucket, for whether this PC uploaded a session folder
    // (`Journal::has_uploaded`).
    "CREATE INDEX IF NOT EXISTS done_by_key ON done (key);
     CREATE INDEX IF NOT EXISTS uploads_by_key ON uploads (key);",
];

/// Runs the steps of [`SCHEMA`] the journal lacks. The transaction is `IMMEDIATE`: of two
/// processes opening one journal at once (the app and the CLI), the second waits for the first
/// and then finds nothing left to do. A journal of a newer release (a higher version) is used as
/// it is: steps only add, so what this release reads and writes is there.
fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    let recorded: usize = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if recorded >= SCHEMA.len() {
        return Ok(());
    }
    let version = match recorded {
        0 => version_before_numbering(&tx)?,
        n => n,
    };
    for step in SCHEMA.iter().skip(version) {
        tx.execute_batch(step)?;
    }
    tx.pragma_update(None, "user_version", SCHEMA.len())?;
    tx.commit()
}

/// The version of a journal written before the schema was numbered (`user_version` 0), read
/// from what it holds: 0 without tables (a new file), then one more for each step of [`SCHEMA`]
/// whose column is there, in the order they were added.
fn version_before_numbering(conn: &Connection) -> rusqlite::Result<usize> {
    let has = |table: &str, column: &str| -> rusqlite::Result<bool> {
        conn.query_row(
            "SELECT COUNT(*) FROM pragma_table_info(?1) WHERE name=?2",
            [table, column],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n > 0)
    };
    if !has("done", "sha256")? {
        return Ok(0);
    }
    let mut version = 1;
    for column in ["etag", "version_id"] {
        if !has("done", column)? {
            break;
        }
        version += 1;
    }
    Ok(version)
}

impl Journal {
    /// Whether this PC uploaded, or started to upload, a file of the session folder `folder`'s
    /// first upload (`raw/<folder>/…`) to any bucket: a file verified there, or a multipart
    /// upload in progress.
    pub fn has_uploaded(&self, folder: &str) -> Result<bool, UploadError> {
        // Every key of `raw/<folder>/` sorts between that prefix and the same with the `/`
        // replaced by the next character (`0`): a range, not LIKE, whose `_` is a wildcard.
        let prefix = labpipe_core::layout::raw_session_prefix(folder);
        let end = format!("{}0", &prefix[..prefix.len() - 1]);
        self.with(|c| {
            c.query_row(
                "SELECT EXISTS (SELECT 1 FROM done WHERE key >= ?1 AND key < ?2)
                     OR EXISTS (SELECT 1 FROM uploads WHERE key >= ?1 AND key < ?2)",
                params![prefix, end],
                |r| r.get(0),
            )
        })
    }
}

/// The rig id the session folder named `folder` is uploaded with on this PC, whose rig id is
/// `rig` and whose upload journal is at `journal`: the one rule of `labpipe upload`, `check` and
/// `clean` and of the app's Pending, uploads and Free disk space. A folder named by its date-time
/// alone is uploaded as `<date-time>_<rig>` ([`SessionId::on_rig`]) unless this PC already
/// uploaded it, or started to, under its bare name ([`Journal::has_uploaded`]): then it keeps
/// that name, so a rig id set after a month of uploads uploads none of them a second time. A
/// journal that cannot be read keeps the bare name too: under a name another rig's recording
/// holds, the upload is refused, never duplicated.
///
/// [`SessionId::on_rig`]: labpipe_core::SessionId::on_rig
pub fn folder_rig(journal: &Path, folder: &str, rig: Option<Rig>) -> Option<Rig> {
    let rig = rig?;
    match labpipe_core::SessionId::parse(folder) {
        Ok(id) if id.rig().is_none() => {}
        _ => return Some(rig),
    }
    if !journal.exists() {
        return Some(rig);
    }
    match Journal::open(journal).and_then(|j| j.has_uploaded(folder)) {
        Ok(false) => Some(rig),
        Ok(true) => None,
        Err(e) => {
            tracing::warn!(folder, error = %e, "keeping the folder's bare session name");
            None
        }
    }
}

/// The session the folder at `path` is uploaded as: its name, with the rig id [`folder_rig`]
/// gives it.
pub fn folder_session(journal: &Path, path: &Path, rig: Option<Rig>) -> String {
    let name = labpipe_core::scan::folder_name(path);
    match (
        labpipe_core::SessionId::parse(&name),
        folder_rig(journal, &name, rig),
    ) {
        (Ok(id), Some(rig)) => id.on_rig(rig).to_string(),
        _ => name,
    }
}

/// SQLITE_BUSY or SQLITE_LOCKED: another connection holds the lock for now.
fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
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
        j.end_upload("b", "k", "u1").unwrap();
        assert_eq!(j.open_upload("b", "k").unwrap(), None);
        assert!(j.parts("u1").unwrap().is_empty());
    }

    /// The journal's schema version, as the file says.
    fn user_version(path: &Path) -> usize {
        Connection::open(path)
            .unwrap()
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn a_new_journal_records_the_latest_schema_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new.sqlite3");
        drop(Journal::open(&path).unwrap());
        assert_eq!(user_version(&path), SCHEMA.len());
        // Opening it again changes nothing.
        drop(Journal::open(&path).unwrap());
        assert_eq!(user_version(&path), SCHEMA.len());
    }

    /// Journals written before the schema was numbered (`user_version` 0), as each earlier
    /// release left them — the first one's table, then with `etag`, then with `version_id` too —
    /// open with their rows, gain the columns they lack and record the latest version, also when
    /// two processes open one at the same moment.
    #[test]
    fn journals_written_before_the_schema_was_numbered_are_migrated() {
        let releases = [
            "",
            "ALTER TABLE done ADD COLUMN etag TEXT;",
            "ALTER TABLE done ADD COLUMN etag TEXT; ALTER TABLE done ADD COLUMN version_id TEXT;",
        ];
        for (release, columns) in releases.iter().enumerate() {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("old.sqlite3");
            {
                let c = Connection::open(&path).unwrap();
                c.execute_batch(&format!(
                    "CREATE TABLE uploads (bucket TEXT NOT NULL, key TEXT NOT NULL,
                     upload_id TEXT NOT NULL, size INTEGER NOT NULL, mtime INTEGER NOT NULL,
                     part_size INTEGER NOT NULL, created_at TEXT NOT NULL, PRIMARY KEY (bucket, key));
                     CREATE TABLE parts (upload_id TEXT NOT NULL, number INTEGER NOT NULL,
                     etag TEXT NOT NULL, crc64nvme TEXT NOT NULL, size INTEGER NOT NULL,
                     PRIMARY KEY (upload_id, number));
                     CREATE TABLE done (bucket TEXT NOT NULL, key TEXT NOT NULL, size INTEGER NOT NULL,
                     mtime INTEGER NOT NULL, sha256 TEXT NOT NULL, crc64nvme TEXT NOT NULL,
                     PRIMARY KEY (bucket, key));
                     {columns}
                     INSERT INTO done (bucket, key, size, mtime, sha256, crc64nvme)
                     VALUES ('b', 'k', 1, 2, 's', 'c');"
                ))
                .unwrap();
            }
            assert_eq!(user_version(&path), 0);
            let openers: Vec<_> = (0..2)
                .map(|_| {
                    let path = path.clone();
                    std::thread::spawn(move || Journal::open(&path).map(drop))
                })
                .collect();
            for opener in openers {
                opener.join().unwrap().unwrap();
            }
            assert_eq!(user_version(&path), SCHEMA.len(), "release {release}");
            let j = Journal::open(&path).unwrap();
            let old = j.done_file("b", "k").unwrap().unwrap();
            assert_eq!(
                (old.size, old.etag.clone(), old.version_id.clone()),
                (1, None, None),
                "release {release}"
            );
            let d = DoneFile {
                etag: Some("e".into()),
                version_id: Some("3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY".into()),
                ..old
            };
            j.record_done("b", "k", &d).unwrap();
            assert_eq!(j.done_file("b", "k").unwrap(), Some(d));
        }
    }

    #[test]
    fn two_connections_write_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shared.sqlite3");
        let writers: Vec<_> = (0..2)
            .map(|w| {
                let path = path.clone();
                std::thread::spawn(move || {
                    let j = Journal::open(&path).unwrap();
                    for n in 0..200 {
                        j.record_part(
                            &format!("u{w}"),
                            &JournalPart {
                                number: n,
                                etag: "e".into(),
                                crc64nvme: "c".into(),
                                size: 1,
                            },
                        )
                        .unwrap();
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        let j = Journal::open(&path).unwrap();
        assert_eq!(
            j.parts("u0").unwrap().len() + j.parts("u1").unwrap().len(),
            400
        );
    }

    /// A folder this PC uploaded (or started to) under its bare name keeps it when a rig id is
    /// set; one never uploaded under it gets `_<rig>`.
    #[test]
    fn a_rig_id_renames_only_folders_never_uploaded_under_their_bare_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.sqlite3");
        let rig = Some(Rig::parse("rigB").unwrap());
        let session = |folder: &str| folder_session(&path, Path::new(folder), rig);
        // No journal yet: nothing uploaded from this PC.
        assert_eq!(session("20210301_090000"), "20210301_090000_rigB");
        assert!(!path.exists(), "a lookup creates no journal");
        let j = Journal::open(&path).unwrap();
        let done = DoneFile {
            size: 1,
            mtime: 2,
            sha256: "s".into(),
            crc64nvme: "c".into(),
            etag: None,
            version_id: None,
        };
        j.record_done("raw", "raw/20210301_090000/rec_000.bin", &done)
            .unwrap();
        let started = OpenUpload {
            upload_id: "u".into(),
            size: 10,
            mtime: 5,
            part_size: 5,
        };
        j.begin_upload("other", "raw/20210301_100000/big.bin", &started)
            .unwrap();
        // Committed or started under the bare name, in any bucket: kept.
        assert_eq!(session("20210301_090000"), "20210301_090000");
        assert_eq!(session("20210301_100000"), "20210301_100000");
        // Never uploaded under the bare name: the rig id. `_` in the name is no wildcard, and a
        // correction's or another rig's folder of the same second is not the bare name's.
        j.record_done("raw", "raw/20210301_110000.r2/a.bin", &done)
            .unwrap();
        j.record_done("raw", "raw/20210301_120000_rigA/a.bin", &done)
            .unwrap();
        j.record_done("raw", "raw/20210301x130000/a.bin", &done)
            .unwrap();
        for bare in ["20210301_110000", "20210301_120000", "20210301_130000"] {
            assert_eq!(session(bare), format!("{bare}_rigB"));
        }
        // A name that carries a rig, or is no session id, or no rig id set: as it is.
        assert_eq!(session("20210301_090000_rigC"), "20210301_090000_rigC");
        assert_eq!(session("notes"), "notes");
        assert_eq!(
            folder_session(&path, Path::new("20210301_140000"), None),
            "20210301_140000"
        );
        assert_eq!(folder_rig(&path, "20210301_090000", rig), None);
        assert_eq!(folder_rig(&path, "20210301_110000", rig), rig);
    }

    #[test]
    fn the_default_path_is_in_the_users_data_folder_and_locks_sit_beside_it() {
        // LABPIPE_JOURNAL may be set by whoever runs the tests; only check the shape.
        let p = Journal::default_path();
        assert!(
            p.is_absolute() || std::env::var_os("LABPIPE_JOURNAL").is_some(),
            "{p:?}"
        );
        if std::env::var_os("LABPIPE_JOURNAL").is_none() {
            assert_eq!(p.file_name().unwrap(), FILE_NAME);
            assert_eq!(p.parent().unwrap().file_name().unwrap(), "labpipe");
        }
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(&dir.path().join("j.sqlite3")).unwrap();
        assert_eq!(j.locks_dir(), dir.path().join("upload-locks"));
    }
}
