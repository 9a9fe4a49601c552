//! The checksums computed from the single read of each byte.
//!
//! CRC64NVME is S3's full-object checksum for multipart uploads: each part's CRC is computed on
//! its own (so parts can be checked by `ListParts` on resume) and the file's CRC is *combined*
//! from them, never computed by a second pass. SHA-256 has no combine, so it runs sequentially
//! over the same buffers in file order.

use base64::Engine as _;
use crc_fast::CrcAlgorithm;

/// CRC64NVME of one buffer.
pub fn crc64nvme(bytes: &[u8]) -> u64 {
    crc_fast::checksum(CrcAlgorithm::Crc64Nvme, bytes)
}

/// CRC of `a ‖ b` from the CRC of `a`, the CRC of `b` and the length of `b`.
pub fn crc64nvme_combine(a: u64, b: u64, b_len: u64) -> u64 {
    crc_fast::checksum_combine(CrcAlgorithm::Crc64Nvme, a, b, b_len)
}

/// The base64 of the big-endian CRC, as S3 sends and expects it.
pub fn crc_to_base64(crc: u64) -> String {
    base64::engine::general_purpose::STANDARD.encode(crc.to_be_bytes())
}

/// The CRC from S3's base64 form; `None` if it is not one.
pub fn crc_from_base64(b64: &str) -> Option<u64> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    Some(u64::from_be_bytes(bytes.try_into().ok()?))
}

/// A running full-object CRC built from consecutive parts.
#[derive(Debug, Clone, Copy, Default)]
pub struct CrcChain {
    crc: Option<u64>,
}

impl CrcChain {
    pub fn push(&mut self, part_crc: u64, part_len: u64) {
        self.crc = Some(match self.crc {
            None => part_crc,
            Some(prev) => crc64nvme_combine(prev, part_crc, part_len),
        });
    }
    /// The CRC of everything pushed; the CRC of no bytes is that of the empty buffer.
    pub fn value(&self) -> u64 {
        self.crc.unwrap_or_else(|| crc64nvme(&[]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combined_parts_equal_the_whole() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 31 % 251) as u8).collect();
        let mut chain = CrcChain::default();
        for part in data.chunks(7_777) {
            chain.push(crc64nvme(part), part.len() as u64);
        }
        assert_eq!(chain.value(), crc64nvme(&data));
    }

    #[test]
    fn known_vector() {
        // CRC-64/NVME check value of "123456789".
        assert_eq!(crc64nvme(b"123456789"), 0xae8b_1486_0a79_9888);
        assert_eq!(crc_to_base64(0), "AAAAAAAAAAA=");
    }

    #[test]
    fn crc_base64_round_trips() {
        let c = crc64nvme(b"abc");
        assert_eq!(crc_from_base64(&crc_to_base64(c)), Some(c));
        assert_eq!(crc_from_base64("nope"), None);
    }
}
