//! Reading a local file once: every block feeds the SHA-256 (for the manifest) and its own
//! CRC64NVME (for S3) and becomes a request body, and after every block the file is checked to
//! still be the one the checks saw — a recording that is still being written must not be
//! uploaded half-way.

use bytes::Bytes;
use labpipe_core::check::ReportFile;
use labpipe_core::units::unix_seconds;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use crate::digest::{crc64nvme, CrcChain};
use crate::UploadError;

/// What one complete read of a file gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileDigest {
    /// Hex SHA-256 of the whole file.
    pub sha256: String,
    /// Full-object CRC64NVME.
    pub crc: u64,
}

/// One block read from the file.
pub(crate) struct Block {
    pub bytes: Bytes,
    pub crc: u64,
}

/// Compares a file's current size and mtime with what the checks saw.
pub(crate) fn unchanged(
    path: &str,
    meta: &std::fs::Metadata,
    file: &ReportFile,
) -> Result<(), UploadError> {
    let mtime = unix_seconds(meta.modified().unwrap_or(SystemTime::UNIX_EPOCH));
    if meta.len() != file.size {
        return Err(UploadError::FileChanged {
            path: path.into(),
            what: format!("size {} → {} bytes", file.size, meta.len()),
        });
    }
    if mtime != file.modified_unix {
        return Err(UploadError::FileChanged {
            path: path.into(),
            what: "modification time changed".into(),
        });
    }
    Ok(())
}

/// Checks the file at `local` against what the checks saw, by its metadata only.
pub(crate) fn still_unchanged(local: &Path, file: &ReportFile) -> Result<(), UploadError> {
    let meta = std::fs::metadata(local).map_err(|source| UploadError::Io {
        path: local.into(),
        source,
    })?;
    unchanged(&file.path, &meta, file)
}

/// Reads one file front to back exactly once, feeding SHA-256 as it goes.
pub(crate) struct FileReader {
    file: File,
    path: PathBuf,
    report: ReportFile,
    sha: Sha256,
}

impl FileReader {
    pub(crate) fn open(path: &Path, report: &ReportFile) -> Result<Self, UploadError> {
        let file = File::open(path).map_err(|source| UploadError::Io {
            path: path.into(),
            source,
        })?;
        Ok(Self {
            file,
            path: path.into(),
            report: report.clone(),
            sha: Sha256::new(),
        })
    }

    fn io(&self, source: std::io::Error) -> UploadError {
        UploadError::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// The next `len` bytes, with their CRC.
    pub(crate) fn block(&mut self, len: u64) -> Result<Block, UploadError> {
        let mut buf = vec![0u8; len as usize];
        if let Err(e) = self.file.read_exact(&mut buf) {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                return Err(UploadError::FileChanged {
                    path: self.report.path.clone(),
                    what: "file shrank".into(),
                });
            }
            return Err(self.io(e));
        }
        self.sha.update(&buf);
        let crc = crc64nvme(&buf);
        let meta = self.file.metadata().map_err(|e| self.io(e))?;
        unchanged(&self.report.path, &meta, &self.report)?;
        Ok(Block {
            bytes: Bytes::from(buf),
            crc,
        })
    }

    /// The SHA-256, once every byte was read and nothing follows them.
    pub(crate) fn finish(&mut self) -> Result<String, UploadError> {
        let mut extra = [0u8; 1];
        let n = self.file.read(&mut extra).map_err(|e| self.io(e))?;
        if n != 0 {
            return Err(UploadError::FileChanged {
                path: self.report.path.clone(),
                what: "file grew".into(),
            });
        }
        let meta = self.file.metadata().map_err(|e| self.io(e))?;
        unchanged(&self.report.path, &meta, &self.report)?;
        Ok(hex::encode(std::mem::take(&mut self.sha).finalize()))
    }
}

/// A [`FileReader`] shared by one file's part tasks; reads run on the blocking pool.
#[derive(Clone)]
pub(crate) struct SharedReader(Arc<Mutex<FileReader>>);

impl SharedReader {
    pub(crate) fn open(path: &Path, report: &ReportFile) -> Result<Self, UploadError> {
        Ok(Self(Arc::new(Mutex::new(FileReader::open(path, report)?))))
    }

    pub(crate) async fn block(&self, len: u64) -> Result<Block, UploadError> {
        let r = self.0.clone();
        blocking(move || r.lock().unwrap_or_else(|e| e.into_inner()).block(len)).await
    }

    pub(crate) async fn finish(&self) -> Result<String, UploadError> {
        let r = self.0.clone();
        blocking(move || r.lock().unwrap_or_else(|e| e.into_inner()).finish()).await
    }
}

/// Reads a whole file only to digest it (its object is already in S3).
pub(crate) async fn digest_whole(
    path: &Path,
    report: &ReportFile,
) -> Result<FileDigest, UploadError> {
    let mut reader = FileReader::open(path, report)?;
    blocking(move || {
        let mut chain = CrcChain::default();
        let mut left = reader.report.size;
        while left > 0 {
            let len = left.min(8 << 20);
            let b = reader.block(len)?;
            chain.push(b.crc, len);
            left -= len;
        }
        Ok(FileDigest {
            sha256: reader.finish()?,
            crc: chain.value(),
        })
    })
    .await
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, UploadError> + Send + 'static,
) -> Result<T, UploadError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| UploadError::Task {
            detail: format!("file read: {e}"),
        })?
}

#[cfg(test)]
mod tests {
    use super::*;
    use labpipe_core::check::FileRole;

    fn report_for(path: &Path, name: &str) -> ReportFile {
        let meta = std::fs::metadata(path).unwrap();
        ReportFile {
            path: name.into(),
            size: meta.len(),
            role: FileRole::Data,
            modified_unix: unix_seconds(meta.modified().unwrap()),
        }
    }

    #[tokio::test]
    async fn one_read_gives_sha256_and_full_object_crc() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.bin");
        let data: Vec<u8> = (0..20_000_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let d = digest_whole(&path, &report_for(&path, "a.bin"))
            .await
            .unwrap();
        assert_eq!(d.sha256, hex::encode(Sha256::digest(&data)));
        assert_eq!(d.crc, crc64nvme(&data));
    }

    #[tokio::test]
    async fn a_file_that_grew_since_the_checks_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.bin");
        std::fs::write(&path, b"0123456789").unwrap();
        let report = report_for(&path, "a.bin");
        std::fs::write(&path, b"0123456789more").unwrap();
        let e = digest_whole(&path, &report).await.unwrap_err();
        assert_eq!(e.code(), "file_changed", "{e}");
        assert!(still_unchanged(&path, &report).is_err());
    }
}
