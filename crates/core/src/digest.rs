//! SHA-256 as every part of LabPipe writes it: lowercase hex, of a whole file read once in
//! blocks, or of bytes in memory. The manifest records these digests on the lab PC; the backend,
//! sync and the app compare against them, so they must all be computed the same way.

use sha2::{Digest, Sha256};
use std::io::{self, Read};
use std::path::Path;

/// Block size for hashing a file: large enough to keep the disk streaming, small enough to sit in
/// cache.
pub const HASH_BLOCK: usize = 1 << 20;

/// Size and lowercase hex SHA-256 of a file, reading it once in [`HASH_BLOCK`] blocks.
pub fn sha256_file(path: &Path) -> io::Result<(u64, String)> {
    let file = std::fs::File::open(path)?;
    sha256_reader(file)
}

/// Size and lowercase hex SHA-256 of everything `reader` yields.
pub fn sha256_reader(mut reader: impl Read) -> io::Result<(u64, String)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; HASH_BLOCK];
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((total, hex::encode(hasher.finalize())))
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn sha256_of_a_known_file() {
        let tmp = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(tmp.path(), b"abc").unwrap();
        assert_eq!(sha256_file(tmp.path()).unwrap(), (3, ABC.to_string()));
        assert_eq!(sha256_hex(b"abc"), ABC);
    }

    #[test]
    fn files_larger_than_a_block_hash_like_their_bytes() {
        let bytes: Vec<u8> = (0..HASH_BLOCK * 2 + 17).map(|i| (i % 251) as u8).collect();
        let tmp = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(tmp.path(), &bytes).unwrap();
        assert_eq!(
            sha256_file(tmp.path()).unwrap(),
            (bytes.len() as u64, sha256_hex(&bytes))
        );
    }
}
