//! The preprocessing engine: streams a session's raw objects once and feeds the steps.
//!
//! One pass over the bytes does everything that needs the raw data: SHA-256 of every file
//! (checked against the manifest — the end-to-end proof that what is processed is what the lab
//! checked), decoding, raw channel statistics and anti-alias decimation. Memory is bounded by the
//! SDK's body chunks plus one block of decimated frames; nothing holds a whole file.

use aws_sdk_s3::Client as S3;
use labpipe_core::check::FileRole;
use labpipe_core::sample_format::MAX_CHANNELS;
use labpipe_core::{Manifest, MetaValue};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::path::Path;
use tracing::info;

use super::decode::{FrameDecoder, SampleFormat};
use super::filter::{Decimator, CUTOFF_FRACTION};
use super::step::{Artifact, ChannelStats, SignalLayout, Step};
use crate::failure::Failure;
use labpipe_aws::{ErrorClass, S3Error};
use labpipe_core::layout::raw_session_prefix as session_prefix;

/// Decimated frames handed to the steps at a time.
const BLOCK_FRAMES: usize = 8192;
/// The most decimated samples (frames × channels) one run writes: `signals.npy` holds them as
/// float32, and with the parquet beside it they must fit the function's 2 GiB of ephemeral
/// storage (`EphemeralStorage` in `infra/template.yaml`). 384 Mi samples = 1.5 GiB.
pub const MAX_OUTPUT_SAMPLES: u64 = 384 << 20;

/// An ordered list of steps.
pub struct Pipeline {
    steps: Vec<Box<dyn Step>>,
}

impl Pipeline {
    /// The standard steps: `signals.npy` and `features.parquet`.
    pub fn standard() -> Self {
        Pipeline {
            steps: vec![
                Box::new(super::clean::CleanSignals::new()),
                Box::new(super::features::FeatureTable::new()),
            ],
        }
    }

    pub fn empty() -> Self {
        Pipeline { steps: Vec::new() }
    }

    /// Adds a lab's own step after the others.
    pub fn with_step(mut self, step: Box<dyn Step>) -> Self {
        self.steps.push(step);
        self
    }
}

/// What a successful run produced, before upload.
#[derive(Debug)]
pub struct RunOutput {
    pub artifacts: Vec<Artifact>,
    pub summary: serde_json::Value,
    /// Things worth a look that do not fail the run (flat channels).
    pub warnings: Vec<String>,
}

/// Running raw statistics of one channel, shifted by the first sample for numerical stability.
#[derive(Debug, Clone, Copy)]
struct Accumulator {
    n: u64,
    shift: f64,
    sum: f64,
    sum_sq: f64,
    min: f64,
    max: f64,
}

impl Accumulator {
    fn new() -> Self {
        Accumulator {
            n: 0,
            shift: 0.0,
            sum: 0.0,
            sum_sq: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }

    #[inline]
    fn add(&mut self, x: f64) {
        if self.n == 0 {
            self.shift = x;
        }
        self.n += 1;
        let d = x - self.shift;
        self.sum += d;
        self.sum_sq += d * d;
        self.min = self.min.min(x);
        self.max = self.max.max(x);
    }

    fn stats(&self, channel: usize) -> ChannelStats {
        let n = self.n.max(1) as f64;
        let mean_d = self.sum / n;
        let var = (self.sum_sq / n - mean_d * mean_d).max(0.0);
        let mean = self.shift + mean_d;
        ChannelStats {
            channel,
            samples: self.n,
            mean,
            std: var.sqrt(),
            rms: (var + mean * mean).sqrt(),
            min: self.min,
            max: self.max,
            flat: self.n > 0 && self.min == self.max,
        }
    }
}

fn number(manifest: &Manifest, key: &str) -> Option<f64> {
    manifest.metadata.get(key).and_then(MetaValue::as_number)
}

/// The signal layout a manifest declares, or a reason naming what to fix.
pub fn layout_of(
    manifest: &Manifest,
    pipeline_version: u32,
) -> Result<(SignalLayout, SampleFormat), Failure> {
    let fix = "fix metadata.txt and upload the session again";
    let channels = number(manifest, "channels")
        .filter(|c| *c >= 1.0 && c.fract() == 0.0)
        .ok_or_else(|| {
            Failure::session(format!(
                "metadata.txt has no usable 'channels' (a whole number ≥ 1); {fix}"
            ))
        })?;
    if channels > f64::from(MAX_CHANNELS) {
        return Err(Failure::session(format!(
            "metadata.txt declares {channels} channels, more than the {MAX_CHANNELS} LabPipe processes; {fix}"
        )));
    }
    let channels = channels as usize;
    let format = manifest
        .metadata
        .get("sample_format")
        .and_then(MetaValue::as_text)
        .and_then(SampleFormat::parse)
        .ok_or_else(|| {
            Failure::session(format!(
                "metadata.txt has no usable 'sample_format' (int16, int32 or float32); {fix}"
            ))
        })?;
    let rate = number(manifest, "sample_rate_hz")
        .filter(|r| *r > 0.0 && r.is_finite())
        .ok_or_else(|| {
            Failure::session(format!(
                "metadata.txt has no usable 'sample_rate_hz' (a number > 0); {fix}"
            ))
        })?;
    let frame_bytes = (channels * format.bytes()) as u64;
    let mut input_frames = 0u64;
    let signal: Vec<_> = signal_files(manifest).collect();
    if signal.is_empty() {
        return Err(Failure::session(
            "manifest.json lists no data files at the top of the session folder; nothing to process — check the session's files",
        ));
    }
    for f in signal {
        if !f.size.is_multiple_of(frame_bytes) {
            return Err(Failure::session(format!(
                "{} is {} bytes, not a whole number of {frame_bytes}-byte frames ({channels} channels × {}): the file is truncated or channels / sample_format are wrong; {fix}",
                f.path,
                f.size,
                format.name()
            )));
        }
        input_frames += f.size / frame_bytes;
    }
    let decimation = super::filter::decimation_for(rate);
    let output_samples = input_frames.div_ceil(decimation as u64) * channels as u64;
    if output_samples > MAX_OUTPUT_SAMPLES {
        return Err(Failure::session(format!(
            "the session would produce {output_samples} output samples ({channels} channels at {} Hz after decimation), more than the {MAX_OUTPUT_SAMPLES} one run can hold; split the recording into shorter sessions",
            rate / decimation as f64
        )));
    }
    Ok((
        SignalLayout {
            session: manifest.session.to_string(),
            pipeline_version,
            channels,
            input_rate_hz: rate,
            output_rate_hz: rate / decimation as f64,
            decimation,
            input_frames,
            output_frames: input_frames.div_ceil(decimation as u64),
        },
        format,
    ))
}

/// Recording files: data files at the top of the session folder, in path order (the recorder
/// rolls over `rec_000.bin`, `rec_001.bin`, …, so path order is time order). Files in
/// subfolders (event logs and the like) are verified but not decoded.
pub fn signal_files(manifest: &Manifest) -> impl Iterator<Item = &labpipe_core::ManifestFile> {
    manifest
        .files
        .iter()
        .filter(|f| f.role == FileRole::Data && !f.path.contains('/'))
}

/// Streams every file of the session once and runs the pipeline.
pub async fn run(
    s3: &S3,
    raw_bucket: &str,
    manifest: &Manifest,
    pipeline_version: u32,
    mut pipeline: Pipeline,
    workdir: &Path,
) -> Result<RunOutput, Failure> {
    let (layout, format) = layout_of(manifest, pipeline_version)?;
    let channels = layout.channels;
    for step in &mut pipeline.steps {
        step.start(&layout, workdir)?;
    }
    let mut decoder = FrameDecoder::new(format, channels);
    let mut decimator = Decimator::new(channels, layout.input_rate_hz);
    let mut acc = vec![Accumulator::new(); channels];
    let mut out_frame = vec![0f32; channels];
    let mut block: Vec<f32> = Vec::with_capacity(BLOCK_FRAMES * channels);
    let mut emitted = 0u64;
    // The files of the manifest's own revision (`raw/<session>.r<N>/` for a correction).
    let folder = labpipe_core::layout::revision_folder(
        &manifest.session.to_string(),
        manifest.revision_number(),
    );
    let prefix = session_prefix(&folder);
    let is_signal = |path: &str| signal_files(manifest).any(|f| f.path == path);

    for file in &manifest.files {
        let key = labpipe_core::layout::raw_key(&folder, &file.path);
        let decode = is_signal(&file.path);
        // The version the manifest pins, when it names one: what ingest verified, whatever was
        // written at the key since.
        let mut object = s3
            .get_object()
            .bucket(raw_bucket)
            .key(&key)
            .set_version_id(file.version_id.clone())
            .send()
            .await
            .map_err(|e| {
            let e = S3Error::call("GetObject", raw_bucket, &key, &e);
            match e.class() {
                // To a role without unconditional s3:ListBucket a missing key reads as access
                // denied (see labpipe_aws::error): either way the file cannot be processed.
                ErrorClass::NotFound | ErrorClass::AccessDenied => Failure::session(format!(
                    "{} is missing from or not readable in s3://{raw_bucket}/{prefix} ({e}); run `labpipe upload` for this session again",
                    file.path
                )),
                _ => Failure::transient(e.to_string()),
            }
        })?;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        while let Some(chunk) = object.body.try_next().await.map_err(|e| {
            Failure::transient(format!(
                "reading s3://{raw_bucket}/{key} was interrupted: {e}"
            ))
        })? {
            hasher.update(&chunk);
            size += chunk.len() as u64;
            if decode {
                decoder.push(&chunk, |frame| {
                    for (a, &x) in acc.iter_mut().zip(frame) {
                        a.add(x);
                    }
                    if decimator.push(frame, &mut out_frame) {
                        block.extend_from_slice(&out_frame);
                    }
                });
                if block.len() >= BLOCK_FRAMES * channels {
                    emitted += (block.len() / channels) as u64;
                    for step in &mut pipeline.steps {
                        step.consume(&block)?;
                    }
                    block.clear();
                }
            }
        }
        if decode {
            decoder.end_file(&file.path)?;
        }
        let sha = hex::encode(hasher.finalize());
        if size != file.size || sha != file.sha256 {
            return Err(Failure::session(format!(
                "{} in s3://{raw_bucket}/{prefix} does not match manifest.json (S3: {size} bytes, SHA-256 {sha}; manifest: {} bytes, SHA-256 {}): the object is not the file checked in the lab; upload the session again from the lab PC",
                file.path, file.size, file.sha256
            )));
        }
        info!(file = %file.path, bytes = size, decoded = decode, "raw file verified");
    }
    if !block.is_empty() {
        emitted += (block.len() / channels) as u64;
        for step in &mut pipeline.steps {
            step.consume(&block)?;
        }
    }

    let raw: Vec<ChannelStats> = acc.iter().enumerate().map(|(i, a)| a.stats(i)).collect();
    let mut problems = Vec::new();
    if emitted != layout.output_frames {
        problems.push(format!(
            "the engine produced {emitted} frames but {} were expected; this is a pipeline bug — report it with the session id",
            layout.output_frames
        ));
    }
    let decoded_frames = raw.first().map_or(0, |s| s.samples);
    if decoded_frames != layout.input_frames {
        problems.push(format!(
            "decoded {decoded_frames} frames but the manifest's file sizes give {}",
            layout.input_frames
        ));
    }
    let mut artifacts = Vec::new();
    let mut steps_summary = serde_json::Map::new();
    for step in &mut pipeline.steps {
        let out = step.finish(&raw)?;
        problems.extend(out.problems);
        artifacts.extend(out.artifacts);
        steps_summary.insert(step.name().to_string(), out.summary);
    }
    if !problems.is_empty() {
        return Err(Failure::session(format!(
            "output sanity checks failed: {}",
            problems.join("; ")
        )));
    }
    let warnings: Vec<String> = raw
        .iter()
        .filter(|s| s.flat)
        .map(|s| {
            format!(
                "channel {} is flat (every sample is {}): check its electrode or cable",
                s.channel, s.min
            )
        })
        .collect();
    let summary = json!({
        "format": "labpipe-summary/1",
        "session": layout.session,
        "recorded_at": manifest.recorded_at,
        "pipeline_version": pipeline_version,
        "tool_version": env!("CARGO_PKG_VERSION"),
        "input": {
            "channels": channels,
            "sample_format": format.name(),
            "sample_rate_hz": layout.input_rate_hz,
            "frames": layout.input_frames,
            "duration_s": layout.input_frames as f64 / layout.input_rate_hz,
            "files": manifest.files.iter().map(|f| json!({
                "path": f.path, "size": f.size, "sha256": f.sha256, "decoded": is_signal(&f.path),
            })).collect::<Vec<_>>(),
        },
        "output": {
            "sample_rate_hz": layout.output_rate_hz,
            "decimation": layout.decimation,
            "lowpass_hz": if layout.decimation > 1 { Some(CUTOFF_FRACTION * layout.output_rate_hz) } else { None },
            "frames": layout.output_frames,
        },
        "channels": raw,
        "flat_channels": raw.iter().filter(|s| s.flat).map(|s| s.channel).collect::<Vec<_>>(),
        "warnings": warnings,
        "steps": steps_summary,
    });
    Ok(RunOutput {
        artifacts,
        summary,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One run's bound, written out: 384 Mi float32 samples, 1.5 GiB in `signals.npy`.
    const BOUND: u64 = 402_653_184;

    /// A manifest of one int16 data file of `frames` frames of `channels` channels at 250 Hz (kept
    /// as it is: no decimation), as ingest catalogs it. No object is read: the bound is applied
    /// to what the manifest declares, before a byte is fetched.
    fn manifest(channels: u64, frames: u64) -> Manifest {
        let text = json!({
            "format": labpipe_core::manifest::MANIFEST_FORMAT,
            "session": "20210301_161221",
            "recorded_at": "2021-03-01T16:12:21",
            "created_at": "2021-03-01T17:00:00Z",
            "tool_version": "t",
            "verdict": "pass",
            "total_bytes": frames * channels * 2,
            "metadata": {"channels": channels, "sample_format": "int16", "sample_rate_hz": 250},
            "files": [{"path": "rec_000.bin", "size": frames * channels * 2, "role": "data", "sha256": "00"}],
            "findings": [],
        });
        Manifest::from_json(text.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn a_session_with_more_output_samples_than_one_run_holds_fails_naming_the_bound() {
        let channels = 64;
        let frames = BOUND / channels;
        // Exactly the bound: processed.
        let (layout, _) = layout_of(&manifest(channels, frames), 1).expect("the bound itself fits");
        assert_eq!(layout.output_frames * channels, BOUND);
        // One frame more: the session fails (not retried) and the reason names the bound and what
        // to do.
        match layout_of(&manifest(channels, frames + 1), 1) {
            Err(Failure::Session(reason)) => {
                assert!(
                    reason.contains(&format!("more than the {BOUND} one run can hold")),
                    "{reason}"
                );
                assert!(
                    reason.contains(&format!("{} output samples", BOUND + channels)),
                    "{reason}"
                );
                assert!(
                    reason.contains("split the recording into shorter sessions"),
                    "{reason}"
                );
            }
            Err(Failure::Transient(reason)) => panic!("retried instead of failed: {reason}"),
            Ok((layout, _)) => panic!(
                "{} output samples accepted, over the bound {BOUND}",
                layout.output_frames * channels
            ),
        }
    }
}
