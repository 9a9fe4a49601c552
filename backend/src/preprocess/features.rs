//! The standard feature table: `features.parquet`, one row per channel.
//!
//! Columns: `channel`, raw-unit statistics (`samples`, `mean`, `std`, `rms`, `min`, `max`, `flat`)
//! from the engine, and band powers of the cleaned signal (`band_delta` 0.5–4 Hz, `band_theta`
//! 4–8, `band_alpha` 8–13, `band_beta` 13–30, `band_gamma` 30–100 (capped at Nyquist; 30–45 from
//! pipeline version 2 on, see [`bands`]),
//! `total_power` 0.5 Hz–Nyquist) from Welch's method: 256-sample Hann segments, 50 % overlap,
//! each segment's mean removed, one-sided density integrated over the band. Computed as frames
//! stream in, so memory is one segment per channel.
//!
//! Written with Parquet's low-level column writer (no Arrow): a handful of plain columns in one
//! row group, readable by pyarrow, pandas, polars and DuckDB.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parquet::data_type::{BoolType, DoubleType, Int32Type, Int64Type};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use rustfft::num_complex::Complex;
use rustfft::{Fft, FftPlanner};
use serde_json::json;

use super::step::{Artifact, ChannelStats, SignalLayout, Step, StepOutput};
use crate::failure::Failure;

pub const FILE_NAME: &str = "features.parquet";
/// Welch segment length in samples of the cleaned signal (about 1 s at 250 Hz).
pub const SEGMENT: usize = 256;

/// `(column name, low Hz, high Hz)` of pipeline version 1; high is capped at the Nyquist frequency.
pub const BANDS: [(&str, f64, f64); 5] = [
    ("band_delta", 0.5, 4.0),
    ("band_theta", 4.0, 8.0),
    ("band_alpha", 8.0, 13.0),
    ("band_beta", 13.0, 30.0),
    ("band_gamma", 30.0, 100.0),
];

/// Pipeline version 2: gamma stops at 45 Hz, below the 50/60 Hz mains frequency, whose
/// interference dominated version 1's 30–100 Hz gamma power in unshielded rooms.
pub const BANDS_V2: [(&str, f64, f64); 5] = [
    ("band_delta", 0.5, 4.0),
    ("band_theta", 4.0, 8.0),
    ("band_alpha", 8.0, 13.0),
    ("band_beta", 13.0, 30.0),
    ("band_gamma", 30.0, 45.0),
];

/// The bands of a pipeline version.
pub fn bands(pipeline_version: u32) -> &'static [(&'static str, f64, f64); 5] {
    if pipeline_version >= 2 {
        &BANDS_V2
    } else {
        &BANDS
    }
}

const SCHEMA: &str = "message features {
  required int32 channel;
  required int64 samples;
  required double mean;
  required double std;
  required double rms;
  required double min;
  required double max;
  required boolean flat;
  required double band_delta;
  required double band_theta;
  required double band_alpha;
  required double band_beta;
  required double band_gamma;
  required double total_power;
}";

/// Welch power spectral density, accumulated segment by segment for one channel.
struct Welch {
    buf: Vec<f64>,
    fill: usize,
    psd_sum: Vec<f64>,
    segments: u64,
}

pub struct FeatureTable {
    path: PathBuf,
    layout: Option<SignalLayout>,
    channels: Vec<Welch>,
    window: Vec<f64>,
    fft: Option<Arc<dyn Fft<f64>>>,
    scratch: Vec<Complex<f64>>,
}

impl Default for FeatureTable {
    fn default() -> Self {
        Self::new()
    }
}

impl FeatureTable {
    pub fn new() -> Self {
        FeatureTable {
            path: PathBuf::new(),
            layout: None,
            channels: Vec::new(),
            window: hann(SEGMENT),
            fft: None,
            scratch: Vec::new(),
        }
    }
}

fn hann(n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos())
        .collect()
}

/// `|FFT|²` of one mean-removed, windowed segment, bins 0..=n/2.
fn power(
    samples: &[f64],
    window: &[f64],
    fft: &dyn Fft<f64>,
    scratch: &mut Vec<Complex<f64>>,
) -> Vec<f64> {
    let mean = samples.iter().sum::<f64>() / samples.len() as f64;
    scratch.clear();
    scratch.extend(
        samples
            .iter()
            .zip(window)
            .map(|(x, w)| Complex::new((x - mean) * w, 0.0)),
    );
    fft.process(scratch);
    scratch[..=samples.len() / 2]
        .iter()
        .map(|c| c.norm_sqr())
        .collect()
}

/// One-sided density from summed `|FFT|²` of `segments` segments of length `n`.
fn density(psd_sum: &[f64], n: usize, segments: u64, fs: f64, window: &[f64]) -> Vec<f64> {
    let wss: f64 = window.iter().map(|w| w * w).sum();
    let scale = 1.0 / (fs * wss * segments as f64);
    psd_sum
        .iter()
        .enumerate()
        .map(|(k, p)| {
            let one_sided = if k == 0 || (n.is_multiple_of(2) && k == n / 2) {
                1.0
            } else {
                2.0
            };
            p * scale * one_sided
        })
        .collect()
}

fn band_power(psd: &[f64], n: usize, fs: f64, lo: f64, hi: f64) -> f64 {
    let df = fs / n as f64;
    psd.iter()
        .enumerate()
        .filter(|(k, _)| {
            let f = *k as f64 * df;
            f >= lo && f < hi
        })
        .map(|(_, p)| p * df)
        .sum()
}

impl Step for FeatureTable {
    fn name(&self) -> &'static str {
        "feature_table"
    }

    fn start(&mut self, layout: &SignalLayout, workdir: &Path) -> Result<(), Failure> {
        self.path = workdir.join(FILE_NAME);
        self.channels = (0..layout.channels)
            .map(|_| Welch {
                buf: vec![0.0; SEGMENT],
                fill: 0,
                psd_sum: vec![0.0; SEGMENT / 2 + 1],
                segments: 0,
            })
            .collect();
        self.fft = Some(FftPlanner::new().plan_fft_forward(SEGMENT));
        self.layout = Some(layout.clone());
        Ok(())
    }

    fn consume(&mut self, frames: &[f32]) -> Result<(), Failure> {
        let n = self.channels.len();
        let fft = self.fft.clone().expect("start is called before consume");
        for frame in frames.chunks_exact(n) {
            for (w, &x) in self.channels.iter_mut().zip(frame) {
                w.buf[w.fill] = f64::from(x);
                w.fill += 1;
                if w.fill == SEGMENT {
                    let p = power(&w.buf, &self.window, fft.as_ref(), &mut self.scratch);
                    for (acc, v) in w.psd_sum.iter_mut().zip(p) {
                        *acc += v;
                    }
                    w.segments += 1;
                    w.buf.copy_within(SEGMENT / 2.., 0);
                    w.fill = SEGMENT / 2;
                }
            }
        }
        Ok(())
    }

    fn finish(&mut self, raw: &[ChannelStats]) -> Result<StepOutput, Failure> {
        let layout = self.layout.clone().expect("start is called before finish");
        let fs = layout.output_rate_hz;
        let nyquist = fs / 2.0;
        let mut powers: Vec<[f64; 6]> = Vec::with_capacity(self.channels.len());
        let mut short = false;
        for w in &self.channels {
            let (psd, n) = if w.segments > 0 {
                (
                    density(&w.psd_sum, SEGMENT, w.segments, fs, &self.window),
                    SEGMENT,
                )
            } else {
                // Shorter than one segment: one periodogram over what there is.
                short = true;
                let n = w.fill.max(2);
                let window = hann(n);
                let fft = FftPlanner::new().plan_fft_forward(n);
                let mut samples = w.buf[..w.fill].to_vec();
                samples.resize(n, 0.0);
                let p = power(&samples, &window, fft.as_ref(), &mut self.scratch);
                (density(&p, n, 1, fs, &window), n)
            };
            let mut row = [0.0; 6];
            for (i, (_, lo, hi)) in bands(layout.pipeline_version).iter().enumerate() {
                row[i] = band_power(&psd, n, fs, *lo, hi.min(nyquist + 1e-9));
            }
            row[5] = band_power(&psd, n, fs, 0.5, nyquist + 1e-9);
            powers.push(row);
        }

        let mut problems = Vec::new();
        for (s, b) in raw.iter().zip(&powers) {
            let values = [s.mean, s.std, s.rms, s.min, s.max]
                .into_iter()
                .chain(b.iter().copied());
            if values.into_iter().any(|v| !v.is_finite()) {
                problems.push(format!(
                    "features of channel {} are not finite (NaN or infinity): the raw recording contains NaN/infinite samples; check the recorder's export settings and upload the corrected session as a new revision (labpipe upload --revise --reason TEXT FOLDER)",
                    s.channel
                ));
            }
        }
        write_table(&self.path, &layout, raw, &powers)
            .map_err(|e| Failure::transient(format!("cannot write {FILE_NAME}: {e}")))?;
        Ok(StepOutput {
            artifacts: vec![Artifact {
                name: FILE_NAME.to_string(),
                path: self.path.clone(),
            }],
            summary: json!({
                "file": FILE_NAME,
                "rows": raw.len(),
                "welch_segment": SEGMENT,
                "shorter_than_one_segment": short,
                "bands_hz": bands(layout.pipeline_version).iter().map(|(name, lo, hi)| json!({"column": name, "low": lo, "high": hi.min(nyquist)})).collect::<Vec<_>>(),
            }),
            problems,
        })
    }
}

fn write_table(
    path: &Path,
    layout: &SignalLayout,
    raw: &[ChannelStats],
    bands: &[[f64; 6]],
) -> parquet::errors::Result<()> {
    let schema = Arc::new(parse_message_type(SCHEMA)?);
    let props = Arc::new(
        WriterProperties::builder()
            .set_key_value_metadata(Some(vec![
                KeyValue::new("labpipe.session".to_string(), layout.session.clone()),
                KeyValue::new(
                    "labpipe.pipeline_version".to_string(),
                    layout.pipeline_version.to_string(),
                ),
            ]))
            .build(),
    );
    let file =
        File::create(path).map_err(|e| parquet::errors::ParquetError::External(Box::new(e)))?;
    let mut writer = SerializedFileWriter::new(file, schema, props)?;
    let mut group = writer.next_row_group()?;
    let doubles = |f: &dyn Fn(usize) -> f64| (0..raw.len()).map(f).collect::<Vec<f64>>();
    let mut column = 0usize;
    while let Some(mut col) = group.next_column()? {
        match column {
            0 => {
                let v: Vec<i32> = raw.iter().map(|s| s.channel as i32).collect();
                col.typed::<Int32Type>().write_batch(&v, None, None)?;
            }
            1 => {
                let v: Vec<i64> = raw.iter().map(|s| s.samples as i64).collect();
                col.typed::<Int64Type>().write_batch(&v, None, None)?;
            }
            7 => {
                let v: Vec<bool> = raw.iter().map(|s| s.flat).collect();
                col.typed::<BoolType>().write_batch(&v, None, None)?;
            }
            c => {
                let v = match c {
                    2 => doubles(&|i| raw[i].mean),
                    3 => doubles(&|i| raw[i].std),
                    4 => doubles(&|i| raw[i].rms),
                    5 => doubles(&|i| raw[i].min),
                    6 => doubles(&|i| raw[i].max),
                    8..=13 => doubles(&|i| bands[i][c - 8]),
                    _ => unreachable!("the schema has 14 columns"),
                };
                col.typed::<DoubleType>().write_batch(&v, None, None)?;
            }
        }
        col.close()?;
        column += 1;
    }
    group.close()?;
    writer.close()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn band_power_of_a_sine_lands_in_its_band() {
        let fs = 250.0;
        let mut table = FeatureTable::new();
        let dir = tempfile::tempdir().unwrap();
        let layout = SignalLayout {
            session: "20210301_161221".into(),
            pipeline_version: 1,
            channels: 1,
            input_rate_hz: fs,
            output_rate_hz: fs,
            decimation: 1,
            input_frames: 2500,
            output_frames: 2500,
        };
        table.start(&layout, dir.path()).unwrap();
        // 10 Hz sine of amplitude 2: power 2 (A²/2), all of it alpha.
        let frames: Vec<f32> = (0..2500)
            .map(|i| 5.0 + 2.0 * (2.0 * std::f64::consts::PI * 10.0 * i as f64 / fs).sin() as f32)
            .collect();
        table.consume(&frames).unwrap();
        let stats = ChannelStats {
            channel: 0,
            samples: 2500,
            mean: 5.0,
            std: 1.4,
            rms: 5.2,
            min: 3.0,
            max: 7.0,
            flat: false,
        };
        let out = table.finish(&[stats]).unwrap();
        assert!(out.problems.is_empty(), "{:?}", out.problems);
        assert!(dir.path().join(FILE_NAME).is_file());
        let w = &table.channels[0];
        let psd = density(&w.psd_sum, SEGMENT, w.segments, fs, &table.window);
        let alpha = band_power(&psd, SEGMENT, fs, 8.0, 13.0);
        let total = band_power(&psd, SEGMENT, fs, 0.5, 125.1);
        assert!((alpha - 2.0).abs() < 0.1, "alpha {alpha}");
        assert!(alpha / total > 0.98, "alpha share {}", alpha / total);
    }

    #[test]
    fn version_2_measures_gamma_below_the_mains_frequency() {
        let fs = 250.0;
        // 60 Hz mains hum of amplitude 2 (power 2) on top of a 10 Hz rhythm.
        let frames: Vec<f32> = (0..5000)
            .map(|i| {
                let t = i as f64 / fs;
                (2.0 * (2.0 * std::f64::consts::PI * 60.0 * t).sin()
                    + (2.0 * std::f64::consts::PI * 10.0 * t).sin()) as f32
            })
            .collect();
        let mut gamma = Vec::new();
        let mut files = Vec::new();
        for version in [1, 2] {
            let dir = tempfile::tempdir().unwrap();
            let mut table = FeatureTable::new();
            let layout = SignalLayout {
                session: "20210301_161221".into(),
                pipeline_version: version,
                channels: 1,
                input_rate_hz: fs,
                output_rate_hz: fs,
                decimation: 1,
                input_frames: 5000,
                output_frames: 5000,
            };
            table.start(&layout, dir.path()).unwrap();
            table.consume(&frames).unwrap();
            let stats = ChannelStats {
                channel: 0,
                samples: 5000,
                mean: 0.0,
                std: 1.6,
                rms: 1.6,
                min: -3.0,
                max: 3.0,
                flat: false,
            };
            let out = table.finish(&[stats]).unwrap();
            assert_eq!(out.summary["bands_hz"][4]["column"], "band_gamma");
            let high = out.summary["bands_hz"][4]["high"].as_f64().unwrap();
            let w = &table.channels[0];
            let psd = density(&w.psd_sum, SEGMENT, w.segments, fs, &table.window);
            gamma.push(band_power(&psd, SEGMENT, fs, 30.0, high));
            files.push(std::fs::read(dir.path().join(FILE_NAME)).unwrap());
        }
        assert!(
            (gamma[0] - 2.0).abs() < 0.15,
            "v1 gamma holds the hum: {}",
            gamma[0]
        );
        assert!(gamma[1] < 0.05, "v2 gamma leaves the hum out: {}", gamma[1]);
        assert_ne!(
            files[0], files[1],
            "the two versions write different tables"
        );
    }
}
