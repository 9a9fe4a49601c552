//! Sample synthesis: plausible multichannel recordings, fast enough that a 600 MB session is
//! written at disk speed rather than CPU speed.
//!
//! Each channel is two sine oscillators (a rhythm around 10 Hz and a slow drift or 50 Hz mains
//! hum), near-Gaussian noise and occasional decaying spikes. Speed comes from three choices:
//! no transcendental function runs per sample (oscillators advance by rotating a unit vector,
//! noise is a sum of uniforms from a xorshift generator seeded by the session's ChaCha
//! stream); channels are computed eight at a time in fixed-size arrays the compiler turns
//! into SIMD instructions; and spikes, being rare, are added afterwards only where they fall
//! instead of costing every sample a branch. Only additions, multiplications and bit
//! operations touch samples, and the few sines needed for set-up come from [`sin_cos`] rather
//! than the platform's maths library, so the bytes do not depend on which maths library a
//! platform ships.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::metadata::{SampleFormat, Setup};

/// Channels computed together; a multiple of every SIMD width in use.
const LANES: usize = 8;

/// Frames computed per pass; oscillators are renormalised after each. Rotation in `f32`
/// drifts off the unit circle by about one ulp per step, so a few hundred steps are harmless.
const BLOCK_FRAMES: usize = 256;

/// Noise is the sum of three 10-bit uniforms (Irwin–Hall, close enough to Gaussian).
const NOISE_BITS: u32 = 10;
const NOISE_MASK: u32 = (1 << NOISE_BITS) - 1;

/// Mean spacing of spikes per channel, in seconds.
const SPIKE_EVERY_SECS: u64 = 10;

/// Spikes decay geometrically until they fall below this, in units of the signal.
const SPIKE_CUTOFF: f32 = 1e-3;

/// Eight channels' state, one array per field so each step is a handful of vector operations.
/// Padding lanes beyond the session's channel count are computed and never stored.
#[derive(Debug, Clone, Default)]
struct Lanes {
    // Oscillators 1 and 2: current unit vector (c, s), per-sample rotation (cr, sr), amplitude.
    c1: [f32; LANES],
    s1: [f32; LANES],
    cr1: [f32; LANES],
    sr1: [f32; LANES],
    a1: [f32; LANES],
    c2: [f32; LANES],
    s2: [f32; LANES],
    cr2: [f32; LANES],
    sr2: [f32; LANES],
    a2: [f32; LANES],
    noise: [f32; LANES],
    offset: [f32; LANES],
    /// Per-lane xorshift32 state; never zero.
    rng: [u32; LANES],
    spike_amp: [f32; LANES],
    spike_decay: [f32; LANES],
    /// The tail of the last spike, carried into the next block.
    spike: [f32; LANES],
    /// Frames from the start of the next block to the next spike.
    until_spike: [u64; LANES],
    /// [`SPIKE_CUTOFF`] in stored units.
    cutoff: f32,
}

impl Lanes {
    /// Writes the next `out.len()` frames of this group's lanes.
    ///
    /// Kept out of line on purpose: as a function of its own, `self` and `out` are known not
    /// to overlap, which is what lets the compiler vectorise the loops.
    #[inline(never)]
    fn generate(&mut self, out: &mut [[f32; LANES]], spikes: &mut SpikeGaps) {
        for frame in out.iter_mut() {
            let mut x = self.rng;
            for x in &mut x {
                *x ^= *x << 13;
                *x ^= *x >> 17;
                *x ^= *x << 5;
            }
            self.rng = x;
            for i in 0..LANES {
                let u = (x[i] & NOISE_MASK)
                    + ((x[i] >> NOISE_BITS) & NOISE_MASK)
                    + ((x[i] >> (2 * NOISE_BITS)) & NOISE_MASK);
                // Three uniforms on [0, 1) have mean 1.5 and variance 1/4: scale to unit spread.
                let noise = u as i32 as f32 * (2.0 / NOISE_MASK as f32) - 3.0;
                frame[i] = self.a1[i] * self.s1[i]
                    + self.a2[i] * self.s2[i]
                    + self.noise[i] * noise
                    + self.offset[i];
            }
            for i in 0..LANES {
                let (c, s) = (self.c1[i], self.s1[i]);
                self.c1[i] = c * self.cr1[i] - s * self.sr1[i];
                self.s1[i] = s * self.cr1[i] + c * self.sr1[i];
                let (c, s) = (self.c2[i], self.s2[i]);
                self.c2[i] = c * self.cr2[i] - s * self.sr2[i];
                self.s2[i] = s * self.cr2[i] + c * self.sr2[i];
            }
        }
        for i in 0..LANES {
            // One Newton step towards length 1 is plenty for the tiny drift of a block.
            let k = 1.5 - 0.5 * (self.c1[i] * self.c1[i] + self.s1[i] * self.s1[i]);
            self.c1[i] *= k;
            self.s1[i] *= k;
            let k = 1.5 - 0.5 * (self.c2[i] * self.c2[i] + self.s2[i] * self.s2[i]);
            self.c2[i] *= k;
            self.s2[i] *= k;
        }
        self.add_spikes(out, spikes);
    }

    /// Adds the spikes, and tails of earlier ones, that fall within `out`.
    #[allow(
        clippy::needless_range_loop,
        reason = "`i` is a lane index into several arrays, not a position in `out`"
    )]
    fn add_spikes(&mut self, out: &mut [[f32; LANES]], gaps: &mut SpikeGaps) {
        let n = out.len() as u64;
        for i in 0..LANES {
            let mut t = 0;
            loop {
                let stop = self.until_spike[i].min(n);
                while t < stop && self.spike[i] != 0.0 {
                    out[t as usize][i] += self.spike[i];
                    self.spike[i] *= self.spike_decay[i];
                    if self.spike[i].abs() < self.cutoff {
                        // Also keeps the decay from reaching subnormals, which are slow on x86.
                        self.spike[i] = 0.0;
                    }
                    t += 1;
                }
                if self.until_spike[i] >= n {
                    self.until_spike[i] -= n;
                    break;
                }
                t = self.until_spike[i];
                self.spike[i] = self.spike_amp[i];
                self.until_spike[i] += gaps.next();
            }
        }
    }
}

/// Random spacing between spikes: `base + uniform(0..=mask)` samples, a mean of 0.75 to 1
/// times the intended spacing and never closer than half of it.
#[derive(Debug, Clone)]
struct SpikeGaps {
    base: u64,
    mask: u64,
    rng: WyRand,
}

impl SpikeGaps {
    fn next(&mut self) -> u64 {
        self.base + (self.rng.next() & self.mask)
    }
}

/// The continuous signal of one session; data files are consecutive pieces of it.
#[derive(Debug, Clone)]
pub(crate) struct Signal {
    format: SampleFormat,
    frame: usize,
    channels: usize,
    groups: Vec<Lanes>,
    gaps: SpikeGaps,
    scratch: Vec<[f32; LANES]>,
}

impl Signal {
    pub(crate) fn new(setup: &Setup, rng: &mut ChaCha8Rng) -> Self {
        // One unit of the synthetic signal in stored units: counts of a 16-bit ADC, counts
        // of a 24-bit ADC left in 32 bits, or microvolts.
        let unit: f32 = match setup.format {
            SampleFormat::Int16 => 1500.0,
            SampleFormat::Int32 => 400_000.0,
            SampleFormat::Float32 => 40.0,
        };
        let rate = f64::from(setup.rate_hz);
        let half_gap = SPIKE_EVERY_SECS * u64::from(setup.rate_hz) / 2;
        let mut gaps = SpikeGaps {
            base: half_gap,
            mask: half_gap.next_power_of_two() - 1,
            rng: WyRand(rng.gen()),
        };
        let mut groups = vec![Lanes::default(); setup.channels.div_ceil(LANES)];
        for ch in 0..groups.len() * LANES {
            let g = &mut groups[ch / LANES];
            let i = ch % LANES;
            let freq = rng.gen_range(7.0..13.0);
            (g.c1[i], g.s1[i], g.cr1[i], g.sr1[i]) = oscillator(rng, freq, rate);
            let (second, a2) = if rng.gen_bool(0.25) {
                (50.0, rng.gen_range(0.05..0.2))
            } else {
                (rng.gen_range(0.3..2.5), rng.gen_range(0.3..0.8))
            };
            (g.c2[i], g.s2[i], g.cr2[i], g.sr2[i]) = oscillator(rng, second, rate);
            g.a1[i] = unit * rng.gen_range(0.5..1.0);
            g.a2[i] = unit * a2;
            g.noise[i] = unit * rng.gen_range(0.1..0.3);
            g.offset[i] = unit * rng.gen_range(-0.2..0.2);
            g.rng[i] = rng.gen_range(1..=u32::MAX);
            let polarity = if rng.gen_bool(0.5) { 1.0 } else { -1.0 };
            g.spike_amp[i] = unit * polarity * rng.gen_range(4.0..8.0);
            g.spike_decay[i] = rng.gen_range(0.6..0.8);
            g.until_spike[i] = gaps.next() / 2;
            g.cutoff = unit * SPIKE_CUTOFF;
        }
        Self {
            format: setup.format,
            frame: setup.frame_bytes(),
            channels: setup.channels,
            groups,
            gaps,
            scratch: vec![[0.0; LANES]; BLOCK_FRAMES],
        }
    }

    pub(crate) fn frame_bytes(&self) -> usize {
        self.frame
    }

    /// Fills `out`, whose length is a whole number of frames, with the next samples.
    pub(crate) fn fill(&mut self, out: &mut [u8]) {
        debug_assert_eq!(out.len() % self.frame, 0);
        match self.format {
            SampleFormat::Int16 => self.fill_as::<I16>(out),
            SampleFormat::Int32 => self.fill_as::<I32>(out),
            SampleFormat::Float32 => self.fill_as::<F32>(out),
        }
    }

    fn fill_as<E: Encode>(&mut self, out: &mut [u8]) {
        for block in out.chunks_mut(BLOCK_FRAMES * self.frame) {
            let values = &mut self.scratch[..block.len() / self.frame];
            for (g, lanes) in self.groups.iter_mut().enumerate() {
                lanes.generate(values, &mut self.gaps);
                let used = (self.channels - g * LANES).min(LANES);
                encode::<E>(values, block, self.frame, g * LANES * E::BYTES, used);
            }
        }
    }
}

/// Stores the first `used` lanes of each frame's values `offset` bytes into that frame.
#[inline(never)]
fn encode<E: Encode>(
    values: &[[f32; LANES]],
    block: &mut [u8],
    frame: usize,
    offset: usize,
    used: usize,
) {
    for (dst, values) in block.chunks_exact_mut(frame).zip(values) {
        let dst = &mut dst[offset..offset + used * E::BYTES];
        for (d, v) in dst.chunks_exact_mut(E::BYTES).zip(values) {
            E::put(d, *v);
        }
    }
}

/// A small generator (wyrand) for the timing of spikes and events; ChaCha stays in charge of
/// every structural choice.
#[derive(Debug, Clone)]
struct WyRand(u64);

impl WyRand {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0xa076_1d64_78bd_642f);
        let t = u128::from(self.0) * u128::from(self.0 ^ 0xe703_7ed1_a0b4_28db);
        ((t >> 64) as u64) ^ (t as u64)
    }
}

/// The event channel of `auxiliary/events.bin`: silence with an event code in the first channel
/// every few seconds, stored in the session's frame layout so it too is whole frames.
#[derive(Debug, Clone)]
pub(crate) struct Events {
    format: SampleFormat,
    frame: usize,
    mean_gap: u64,
    until_next: u64,
    rng: WyRand,
}

impl Events {
    pub(crate) fn new(setup: &Setup, rng: &mut ChaCha8Rng) -> Self {
        let mean_gap = 3 * u64::from(setup.rate_hz);
        Self {
            format: setup.format,
            frame: setup.frame_bytes(),
            mean_gap,
            until_next: rng.gen_range(0..mean_gap),
            rng: WyRand(rng.gen()),
        }
    }

    pub(crate) fn fill(&mut self, out: &mut [u8]) {
        debug_assert_eq!(out.len() % self.frame, 0);
        out.fill(0);
        let frames = (out.len() / self.frame) as u64;
        let mut at = self.until_next;
        while at < frames {
            let code = (1 + self.rng.next() % 8) as f32;
            let start = at as usize * self.frame;
            let dst = &mut out[start..start + self.format.bytes()];
            match self.format {
                SampleFormat::Int16 => I16::put(dst, code),
                SampleFormat::Int32 => I32::put(dst, code),
                SampleFormat::Float32 => F32::put(dst, code),
            }
            at += self.mean_gap / 2 + self.rng.next() % self.mean_gap;
        }
        self.until_next = at - frames;
    }
}

/// A unit vector at a random phase and the rotation that advances it by one sample of a
/// `freq` Hz sine: `(cos, sin, rotation cos, rotation sin)`.
fn oscillator(rng: &mut ChaCha8Rng, freq: f64, rate: f64) -> (f32, f32, f32, f32) {
    let (sr, cr) = sin_cos(std::f64::consts::TAU * freq / rate);
    let (s, c) = sin_cos(rng.gen_range(0.0..std::f64::consts::TAU));
    (c as f32, s as f32, cr as f32, sr as f32)
}

/// Little-endian storage of one sample. Float-to-integer `as` casts saturate, which is what
/// an ADC does at full scale.
trait Encode {
    const BYTES: usize;
    fn put(dst: &mut [u8], v: f32);
}

struct I16;
struct I32;
struct F32;

impl Encode for I16 {
    const BYTES: usize = 2;
    #[inline(always)]
    fn put(dst: &mut [u8], v: f32) {
        dst.copy_from_slice(&(v as i16).to_le_bytes());
    }
}

impl Encode for I32 {
    const BYTES: usize = 4;
    #[inline(always)]
    fn put(dst: &mut [u8], v: f32) {
        dst.copy_from_slice(&(v as i32).to_le_bytes());
    }
}

impl Encode for F32 {
    const BYTES: usize = 4;
    #[inline(always)]
    fn put(dst: &mut [u8], v: f32) {
        dst.copy_from_slice(&v.to_le_bytes());
    }
}

/// Sine and cosine from a Taylor series after reduction to [-π, π]: only additions and
/// multiplications, so every platform computes identical set-up values.
fn sin_cos(x: f64) -> (f64, f64) {
    let tau = std::f64::consts::TAU;
    let r = x - (x / tau).round() * tau;
    let r2 = r * r;
    let (mut sin, mut cos) = (0.0, 0.0);
    let (mut ts, mut tc) = (r, 1.0);
    for n in 0..16 {
        sin += ts;
        cos += tc;
        let n = f64::from(n);
        ts *= -r2 / ((2.0 * n + 2.0) * (2.0 * n + 3.0));
        tc *= -r2 / ((2.0 * n + 1.0) * (2.0 * n + 2.0));
    }
    (sin, cos)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn setup(format: SampleFormat, channels: usize) -> Setup {
        Setup {
            hardware: "X200",
            channels,
            format,
            rate_hz: 1000,
        }
    }

    #[test]
    fn sin_cos_matches_std() {
        for i in -40..=40 {
            let x = f64::from(i) * 0.37;
            let (s, c) = sin_cos(x);
            assert!((s - x.sin()).abs() < 1e-12, "{x}");
            assert!((c - x.cos()).abs() < 1e-12, "{x}");
        }
    }

    fn samples_i16(bytes: &[u8]) -> Vec<i16> {
        bytes
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect()
    }

    #[test]
    fn signal_is_plausible() {
        let setup = setup(SampleFormat::Int16, 8);
        let mut signal = Signal::new(&setup, &mut ChaCha8Rng::seed_from_u64(5));
        // Two minutes, so spikes (about one per channel per ten seconds) must appear.
        let mut buf = vec![0u8; 120 * 1000 * setup.frame_bytes()];
        signal.fill(&mut buf);
        let samples = samples_i16(&buf);
        for ch in 0..8 {
            let values: Vec<f64> = samples
                .iter()
                .skip(ch)
                .step_by(8)
                .map(|&v| f64::from(v))
                .collect();
            let mean = values.iter().sum::<f64>() / values.len() as f64;
            let sd = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64)
                .sqrt();
            assert!((300.0..3000.0).contains(&sd), "channel {ch}: sd {sd}");
            let spikes = values.iter().filter(|v| (*v - mean).abs() > 3000.0).count();
            assert!(spikes > 0, "channel {ch} has no spikes");
            assert!(
                spikes < values.len() / 100,
                "channel {ch} has {spikes} spikes"
            );
            assert!(
                values.iter().all(|v| v.abs() < 32767.0),
                "channel {ch} clips"
            );
        }
    }

    #[test]
    fn oscillators_keep_their_amplitude() {
        let setup = setup(SampleFormat::Float32, 1);
        let mut signal = Signal::new(&setup, &mut ChaCha8Rng::seed_from_u64(9));
        let mut buf = vec![0u8; 4 * 1_000_000];
        signal.fill(&mut buf);
        for g in &signal.groups {
            for i in 0..LANES {
                assert!((g.c1[i] * g.c1[i] + g.s1[i] * g.s1[i] - 1.0).abs() < 1e-4);
                assert!((g.c2[i] * g.c2[i] + g.s2[i] * g.s2[i] - 1.0).abs() < 1e-4);
            }
        }
    }

    #[test]
    fn chunking_does_not_change_the_signal() {
        let setup = setup(SampleFormat::Int32, 3);
        let frame = setup.frame_bytes();
        let mut whole = vec![0u8; 1000 * frame];
        Signal::new(&setup, &mut ChaCha8Rng::seed_from_u64(2)).fill(&mut whole);
        let mut pieces = vec![0u8; 1000 * frame];
        let mut signal = Signal::new(&setup, &mut ChaCha8Rng::seed_from_u64(2));
        // Renormalisation happens per block of a fill call, so only split on block borders.
        let (a, b) = pieces.split_at_mut(BLOCK_FRAMES * frame);
        signal.fill(a);
        signal.fill(b);
        assert_eq!(whole, pieces);
    }

    #[test]
    fn events_are_sparse_codes_in_the_first_channel() {
        let setup = setup(SampleFormat::Int16, 4);
        let mut events = Events::new(&setup, &mut ChaCha8Rng::seed_from_u64(4));
        let mut buf = vec![0u8; 60 * 1000 * setup.frame_bytes()];
        events.fill(&mut buf);
        let samples = samples_i16(&buf);
        let codes: Vec<(usize, i16)> = samples
            .iter()
            .enumerate()
            .filter(|(_, v)| **v != 0)
            .map(|(i, v)| (i, *v))
            .collect();
        assert!((10..=60).contains(&codes.len()), "{} events", codes.len());
        assert!(codes
            .iter()
            .all(|(i, v)| i.is_multiple_of(4) && (1..=8).contains(v)));
    }
}
