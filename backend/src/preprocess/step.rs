//! The extension point of preprocessing: a [`Step`] sees the cleaned, decimated signal frame by
//! frame and produces output files plus a summary section.
//!
//! The engine ([`super::engine`]) owns everything that must be done exactly once and right —
//! streaming the raw objects, verifying their SHA-256, decoding, anti-alias filtering, raw
//! statistics — and hands each step a block of frames at a time, so a step never holds a whole
//! recording in memory. A lab adds its own analysis by implementing `Step` and adding it to the
//! [`super::Pipeline`]; its files land next to the standard ones under `v<N>/<session>/`.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::failure::Failure;

/// What a step knows before the first frame.
#[derive(Debug, Clone, Serialize)]
pub struct SignalLayout {
    pub session: String,
    pub pipeline_version: u32,
    pub channels: usize,
    pub input_rate_hz: f64,
    /// Rate of the frames steps receive.
    pub output_rate_hz: f64,
    pub decimation: usize,
    /// Raw frames in the whole recording (all signal files).
    pub input_frames: u64,
    /// Frames steps will receive in total: `ceil(input_frames / decimation)`.
    pub output_frames: u64,
}

/// Statistics of one raw channel over the whole recording, in raw sample units.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ChannelStats {
    pub channel: usize,
    pub samples: u64,
    pub mean: f64,
    pub std: f64,
    pub rms: f64,
    pub min: f64,
    pub max: f64,
    /// Every sample has the same value: a disconnected or dead electrode.
    pub flat: bool,
}

/// A file a step wrote into the work directory, uploaded as `v<N>/<session>/<name>`.
#[derive(Debug, Clone)]
pub struct Artifact {
    pub name: String,
    pub path: PathBuf,
}

/// The result of one step.
#[derive(Debug, Default)]
pub struct StepOutput {
    pub artifacts: Vec<Artifact>,
    /// This step's section of `summary.json`.
    pub summary: serde_json::Value,
    /// Output sanity problems: any one fails the run (`FAILED`, nothing recorded as processed).
    pub problems: Vec<String>,
}

/// One preprocessing step.
pub trait Step: Send {
    /// Stable name, used as the step's key in `summary.json`.
    fn name(&self) -> &'static str;
    /// Called once before any frame; `workdir` is private to this run.
    fn start(&mut self, layout: &SignalLayout, workdir: &Path) -> Result<(), Failure>;
    /// A block of interleaved frames (`channels` values each), low-passed and decimated.
    fn consume(&mut self, frames: &[f32]) -> Result<(), Failure>;
    /// Called once after the last frame, with the raw channel statistics.
    fn finish(&mut self, raw: &[ChannelStats]) -> Result<StepOutput, Failure>;
}

/// An I/O error in the work directory: the run is retried (a full `/tmp`, say, may be transient).
pub fn io_failure(what: &str, e: std::io::Error) -> Failure {
    Failure::transient(format!("{what}: {e}"))
}
