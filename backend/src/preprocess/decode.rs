//! Raw sample decoding: little-endian interleaved frames, streamed in chunks of any size.

pub use labpipe_core::SampleFormat;

use crate::failure::Failure;

/// Turns byte chunks into frames, carrying a partial frame from one chunk to the next. Memory is
/// one frame, whatever the file size.
#[derive(Debug)]
pub struct FrameDecoder {
    format: SampleFormat,
    channels: usize,
    frame_bytes: usize,
    carry: Vec<u8>,
    frame: Vec<f64>,
}

impl FrameDecoder {
    pub fn new(format: SampleFormat, channels: usize) -> Self {
        FrameDecoder {
            format,
            channels,
            frame_bytes: format.bytes() * channels,
            carry: Vec::with_capacity(format.bytes() * channels),
            frame: vec![0.0; channels],
        }
    }

    pub fn frame_bytes(&self) -> usize {
        self.frame_bytes
    }

    /// Decodes every whole frame in `carry + chunk`, calling `on_frame` with each.
    pub fn push(&mut self, mut chunk: &[u8], mut on_frame: impl FnMut(&[f64])) {
        if !self.carry.is_empty() {
            let need = self.frame_bytes - self.carry.len();
            let take = need.min(chunk.len());
            self.carry.extend_from_slice(&chunk[..take]);
            chunk = &chunk[take..];
            if self.carry.len() < self.frame_bytes {
                return;
            }
            let carry = std::mem::take(&mut self.carry);
            self.decode_frame(&carry);
            on_frame(&self.frame);
            self.carry = carry;
            self.carry.clear();
        }
        let whole = chunk.len() / self.frame_bytes * self.frame_bytes;
        for frame in chunk[..whole].chunks_exact(self.frame_bytes) {
            self.decode_frame(frame);
            on_frame(&self.frame);
        }
        self.carry.extend_from_slice(&chunk[whole..]);
    }

    /// Ends one file: a partial frame left over means the file is truncated.
    pub fn end_file(&mut self, file: &str) -> Result<(), Failure> {
        if self.carry.is_empty() {
            return Ok(());
        }
        let left = self.carry.len();
        self.carry.clear();
        Err(Failure::session(format!(
            "{file} ends with {left} bytes that are not a whole {}-byte frame ({} channels × {}): the file is truncated or channels / sample_format in metadata.txt are wrong; fix metadata.txt or upload the file again",
            self.frame_bytes,
            self.channels,
            self.format.name()
        )))
    }

    #[inline]
    fn decode_frame(&mut self, bytes: &[u8]) {
        let w = self.format.bytes();
        for (value, b) in self.frame.iter_mut().zip(bytes.chunks_exact(w)) {
            *value = self.format.read_le(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_anywhere_decode_the_same() {
        let samples: Vec<i16> = (0..30).map(|i| i * 100 - 1500).collect();
        let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        for split in [1, 3, 5, 7, 60] {
            let mut d = FrameDecoder::new(SampleFormat::Int16, 3);
            let mut out = Vec::new();
            for chunk in bytes.chunks(split) {
                d.push(chunk, |f| out.extend_from_slice(f));
            }
            d.end_file("x.bin").unwrap();
            assert_eq!(
                out,
                samples.iter().map(|&s| f64::from(s)).collect::<Vec<_>>(),
                "split {split}"
            );
        }
    }

    #[test]
    fn formats_are_little_endian() {
        let mut d = FrameDecoder::new(SampleFormat::Int32, 1);
        let mut out = Vec::new();
        d.push(&(-70000i32).to_le_bytes(), |f| out.push(f[0]));
        let mut d = FrameDecoder::new(SampleFormat::Float32, 1);
        d.push(&1.5f32.to_le_bytes(), |f| out.push(f[0]));
        assert_eq!(out, [-70000.0, 1.5]);
    }

    #[test]
    fn a_partial_frame_names_the_file() {
        let mut d = FrameDecoder::new(SampleFormat::Int16, 2);
        d.push(&[0u8; 6], |_| {});
        let err = d.end_file("rec_003.bin").unwrap_err().to_string();
        assert!(err.contains("rec_003.bin ends with 2 bytes"), "{err}");
    }
}
