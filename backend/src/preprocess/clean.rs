//! The standard cleaned-signal output: `signals.npy`, float32, shape `(frames, channels)`, the
//! anti-alias filtered and decimated signal with each channel's mean removed.
//!
//! Written in two passes over a work file so memory stays bounded: frames are appended as they
//! come (the NPY header is written first, as the frame count is known in advance), then the
//! channel means are subtracted in place, block by block, checking every value is finite.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde_json::json;

use super::npy::header_f32;
use super::step::{io_failure, Artifact, ChannelStats, SignalLayout, Step, StepOutput};
use crate::failure::Failure;

pub const FILE_NAME: &str = "signals.npy";

#[derive(Debug, Default)]
pub struct CleanSignals {
    path: PathBuf,
    out: Option<BufWriter<File>>,
    header_len: u64,
    channels: usize,
    expected_frames: u64,
    output_rate_hz: f64,
    frames: u64,
    sums: Vec<f64>,
}

impl CleanSignals {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Step for CleanSignals {
    fn name(&self) -> &'static str {
        "clean_signals"
    }

    fn start(&mut self, layout: &SignalLayout, workdir: &Path) -> Result<(), Failure> {
        self.path = workdir.join(FILE_NAME);
        self.channels = layout.channels;
        self.expected_frames = layout.output_frames;
        self.output_rate_hz = layout.output_rate_hz;
        self.sums = vec![0.0; layout.channels];
        let header = header_f32(&[layout.output_frames, layout.channels as u64]);
        self.header_len = header.len() as u64;
        let file = File::create(&self.path)
            .map_err(|e| io_failure("cannot create the cleaned-signal work file", e))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        out.write_all(&header)
            .map_err(|e| io_failure("cannot write the cleaned-signal work file", e))?;
        self.out = Some(out);
        Ok(())
    }

    fn consume(&mut self, frames: &[f32]) -> Result<(), Failure> {
        let out = self.out.as_mut().expect("start is called before consume");
        let mut bytes = Vec::with_capacity(frames.len() * 4);
        for (i, v) in frames.iter().enumerate() {
            self.sums[i % self.channels] += f64::from(*v);
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        self.frames += (frames.len() / self.channels) as u64;
        out.write_all(&bytes)
            .map_err(|e| io_failure("cannot write the cleaned-signal work file", e))
    }

    fn finish(&mut self, _raw: &[ChannelStats]) -> Result<StepOutput, Failure> {
        let out = self.out.take().expect("start is called before finish");
        out.into_inner()
            .map_err(|e| io_failure("cannot flush the cleaned-signal work file", e.into_error()))?;
        let means: Vec<f64> = self
            .sums
            .iter()
            .map(|s| s / self.frames.max(1) as f64)
            .collect();
        let non_finite = subtract_means(&self.path, self.header_len, &means)
            .map_err(|e| io_failure("cannot rewrite the cleaned-signal work file", e))?;

        let mut problems = Vec::new();
        if self.frames != self.expected_frames {
            problems.push(format!(
                "{FILE_NAME} has {} frames but {} were expected from the raw data; this is a pipeline bug — report it with the session id",
                self.frames, self.expected_frames
            ));
        }
        for (channel, count) in non_finite.iter().enumerate().filter(|(_, c)| **c > 0) {
            problems.push(format!(
                "channel {channel} has {count} non-finite values (NaN or infinity) after cleaning: the raw recording contains NaN/infinite samples; check the recorder's export settings and upload the corrected session as a new revision (labpipe upload --revise --reason TEXT FOLDER)"
            ));
        }
        Ok(StepOutput {
            artifacts: vec![Artifact {
                name: FILE_NAME.to_string(),
                path: self.path.clone(),
            }],
            summary: json!({
                "file": FILE_NAME,
                "dtype": "float32",
                "shape": [self.frames, self.channels],
                "sample_rate_hz": self.output_rate_hz,
                "removed_means": means,
            }),
            problems,
        })
    }
}

/// Subtracts each channel's mean in place; returns the count of non-finite values per channel.
fn subtract_means(path: &Path, data_offset: u64, means: &[f64]) -> std::io::Result<Vec<u64>> {
    let channels = means.len();
    let mut file = OpenOptions::new().read(true).write(true).open(path)?;
    let block_frames = 16_384;
    let mut buf = vec![0u8; block_frames * channels * 4];
    let mut non_finite = vec![0u64; channels];
    let mut offset = data_offset;
    loop {
        file.seek(SeekFrom::Start(offset))?;
        let mut filled = 0;
        while filled < buf.len() {
            let n = file.read(&mut buf[filled..])?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        if filled == 0 {
            break;
        }
        for (i, b) in buf[..filled].chunks_exact_mut(4).enumerate() {
            let ch = i % channels;
            let v = (f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])) - means[ch]) as f32;
            if !v.is_finite() {
                non_finite[ch] += 1;
            }
            b.copy_from_slice(&v.to_le_bytes());
        }
        file.seek(SeekFrom::Start(offset))?;
        file.write_all(&buf[..filled])?;
        offset += filled as u64;
    }
    file.sync_all()?;
    Ok(non_finite)
}
