//! Anti-alias low-pass and decimation, streaming, per channel.
//!
//! A 4th-order Butterworth low-pass (two biquad sections, bilinear transform) at 40 % of the
//! output rate, then every D-th sample is kept, where D is the smallest integer bringing the rate
//! to at most [`MAX_OUTPUT_RATE_HZ`]. Simple, causal, O(1) memory per channel; good enough for
//! summary signals and band powers up to the gamma band. A lab that needs zero-phase filtering
//! adds its own [`super::step::Step`].

/// Cleaned signals are written at this rate or below.
pub const MAX_OUTPUT_RATE_HZ: f64 = 250.0;
/// Low-pass corner as a fraction of the output rate (below its Nyquist frequency, 0.5).
pub const CUTOFF_FRACTION: f64 = 0.4;

/// The decimation factor for an input rate.
pub fn decimation_for(rate_hz: f64) -> usize {
    (rate_hz / MAX_OUTPUT_RATE_HZ).ceil().max(1.0) as usize
}

#[derive(Debug, Clone, Copy)]
struct Biquad {
    b0: f64,
    b1: f64,
    b2: f64,
    a1: f64,
    a2: f64,
    s1: f64,
    s2: f64,
}

impl Biquad {
    fn lowpass(fs: f64, fc: f64, q: f64) -> Self {
        let w0 = 2.0 * std::f64::consts::PI * fc / fs;
        let (sin, cos) = w0.sin_cos();
        let alpha = sin / (2.0 * q);
        let a0 = 1.0 + alpha;
        Biquad {
            b0: (1.0 - cos) / 2.0 / a0,
            b1: (1.0 - cos) / a0,
            b2: (1.0 - cos) / 2.0 / a0,
            a1: -2.0 * cos / a0,
            a2: (1.0 - alpha) / a0,
            s1: 0.0,
            s2: 0.0,
        }
    }

    /// Starts in the steady state of a constant input `x` (unity DC gain), so a recording's
    /// DC offset does not ring through the first samples.
    fn settle(&mut self, x: f64) {
        self.s2 = self.b2 * x - self.a2 * x;
        self.s1 = self.b1 * x - self.a1 * x + self.s2;
    }

    #[inline]
    fn step(&mut self, x: f64) -> f64 {
        let y = self.b0 * x + self.s1;
        self.s1 = self.b1 * x - self.a1 * y + self.s2;
        self.s2 = self.b2 * x - self.a2 * y;
        y
    }
}

/// Low-pass + decimation for all channels of one recording.
#[derive(Debug, Clone)]
pub struct Decimator {
    sections: Vec<[Biquad; 2]>,
    factor: usize,
    phase: usize,
    started: bool,
}

impl Decimator {
    pub fn new(channels: usize, rate_hz: f64) -> Self {
        let factor = decimation_for(rate_hz);
        let fc = CUTOFF_FRACTION * rate_hz / factor as f64;
        // Butterworth 4th order = sections with Q 0.5412 and 1.3066.
        let pair = [
            Biquad::lowpass(rate_hz, fc, 0.541_196_1),
            Biquad::lowpass(rate_hz, fc, 1.306_563),
        ];
        Decimator {
            sections: vec![pair; channels],
            factor,
            phase: 0,
            started: false,
        }
    }

    pub fn factor(&self) -> usize {
        self.factor
    }

    /// Feeds one frame; writes the filtered frame into `out` and returns true when it is one of
    /// the kept frames.
    #[inline]
    pub fn push(&mut self, frame: &[f64], out: &mut [f32]) -> bool {
        if self.factor == 1 {
            for (o, &x) in out.iter_mut().zip(frame) {
                *o = x as f32;
            }
            return true;
        }
        if !self.started {
            for (sec, &x) in self.sections.iter_mut().zip(frame) {
                sec[0].settle(x);
                sec[1].settle(x);
            }
            self.started = true;
        }
        let keep = self.phase == 0;
        for ((sec, &x), o) in self.sections.iter_mut().zip(frame).zip(out.iter_mut()) {
            let first = sec[0].step(x);
            let y = sec[1].step(first);
            if keep {
                *o = y as f32;
            }
        }
        self.phase += 1;
        if self.phase == self.factor {
            self.phase = 0;
        }
        keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(rate: f64, freq: f64, secs: f64) -> (usize, Vec<f32>) {
        let mut d = Decimator::new(1, rate);
        let mut out = Vec::new();
        let mut y = [0f32];
        for i in 0..(rate * secs) as usize {
            let x = 100.0 + (2.0 * std::f64::consts::PI * freq * i as f64 / rate).sin();
            if d.push(&[x], &mut y) {
                out.push(y[0]);
            }
        }
        (d.factor(), out)
    }

    fn amplitude(v: &[f32]) -> f32 {
        let tail = &v[v.len() / 2..];
        let max = tail.iter().cloned().fold(f32::MIN, f32::max);
        let min = tail.iter().cloned().fold(f32::MAX, f32::min);
        (max - min) / 2.0
    }

    #[test]
    fn passes_the_band_and_stops_aliases() {
        assert_eq!(decimation_for(2000.0), 8);
        assert_eq!(decimation_for(1000.0), 4);
        assert_eq!(decimation_for(4000.0), 16);
        assert_eq!(decimation_for(200.0), 1);
        let (factor, slow) = run(2000.0, 10.0, 4.0);
        assert_eq!(factor, 8);
        assert_eq!(slow.len(), 1000);
        assert!(
            (amplitude(&slow) - 1.0).abs() < 0.05,
            "10 Hz passes: {}",
            amplitude(&slow)
        );
        assert!(
            (slow[0] - 100.0).abs() < 1.0,
            "no start-up ringing from the DC offset: {}",
            slow[0]
        );
        let (_, fast) = run(2000.0, 400.0, 4.0);
        assert!(
            amplitude(&fast) < 0.01,
            "400 Hz is removed: {}",
            amplitude(&fast)
        );
    }
}
