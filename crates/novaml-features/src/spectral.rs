//! Spectral features of a window from a real FFT (`realfft`): dominant period, spectral entropy
//! and the share of energy in low, mid and high frequency bands.
//!
//! The window is demeaned and multiplied by a Hann window before the transform, so a constant
//! offset does not dominate and edges do not leak energy into every bin.

use std::sync::Arc;

use realfft::{RealFftPlanner, RealToComplex};

/// Spectral summary of one window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpectralFeatures {
    /// Period of the strongest non-zero frequency, in rows (`N / k`).
    pub dominant_period: f64,
    /// Shannon entropy of the normalised power spectrum over bins `1..=N/2`, divided by its
    /// maximum `ln(N/2)`: 0 for a pure tone, 1 for white noise. `NaN` for a flat window.
    pub entropy: f64,
    /// Share of power in the lowest third of the bins.
    pub band_low: f64,
    /// Share in the middle third.
    pub band_mid: f64,
    /// Share in the highest third.
    pub band_high: f64,
}

/// A reusable transform for windows of one length.
pub(crate) struct Spectrum {
    fft: Arc<dyn RealToComplex<f64>>,
    hann: Vec<f64>,
    input: Vec<f64>,
    output: Vec<realfft::num_complex::Complex<f64>>,
    scratch: Vec<realfft::num_complex::Complex<f64>>,
}

impl Spectrum {
    pub(crate) fn new(n: usize) -> Self {
        let fft = RealFftPlanner::<f64>::new().plan_fft_forward(n);
        let hann = (0..n)
            .map(|i| 0.5 - 0.5 * (std::f64::consts::TAU * i as f64 / n as f64).cos())
            .collect();
        Self {
            input: fft.make_input_vec(),
            output: fft.make_output_vec(),
            scratch: fft.make_scratch_vec(),
            fft,
            hann,
        }
    }

    pub(crate) fn features(&mut self, window: &[f64]) -> SpectralFeatures {
        let n = window.len();
        let mean = window.iter().sum::<f64>() / n as f64;
        for ((dst, &x), &w) in self.input.iter_mut().zip(window).zip(&self.hann) {
            *dst = (x - mean) * w;
        }
        // Lengths always match the plan (the caller passes windows of the planned length), so
        // this cannot fail; a failure would only mean NaN features, never a panic.
        if self
            .fft
            .process_with_scratch(&mut self.input, &mut self.output, &mut self.scratch)
            .is_err()
        {
            return SpectralFeatures {
                dominant_period: f64::NAN,
                entropy: f64::NAN,
                band_low: f64::NAN,
                band_mid: f64::NAN,
                band_high: f64::NAN,
            };
        }
        let power: Vec<f64> = self.output[1..].iter().map(|c| c.norm_sqr()).collect();
        let total: f64 = power.iter().sum();
        let k = power.len();
        if total <= f64::EPSILON * n as f64 || k == 0 {
            return SpectralFeatures {
                dominant_period: f64::NAN,
                entropy: f64::NAN,
                band_low: 0.0,
                band_mid: 0.0,
                band_high: 0.0,
            };
        }
        let (kmax, _) =
            power.iter().enumerate().fold(
                (0, f64::MIN),
                |best, (i, &p)| if p > best.1 { (i, p) } else { best },
            );
        let entropy = if k > 1 {
            -power
                .iter()
                .map(|p| p / total)
                .filter(|&p| p > 0.0)
                .map(|p| p * p.ln())
                .sum::<f64>()
                / (k as f64).ln()
        } else {
            0.0
        };
        let third = k.div_ceil(3);
        let band = |r: std::ops::Range<usize>| {
            power[r.start.min(k)..r.end.min(k)].iter().sum::<f64>() / total
        };
        SpectralFeatures {
            dominant_period: n as f64 / (kmax + 1) as f64,
            entropy,
            band_low: band(0..third),
            band_mid: band(third..2 * third),
            band_high: band(2 * third..k),
        }
    }
}

/// Spectral features of one window (plans a transform each call; the feature builder reuses one).
pub fn spectral_features(window: &[f64]) -> SpectralFeatures {
    Spectrum::new(window.len().max(2)).features(window)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pure_tone_has_its_period_and_low_entropy() {
        let w: Vec<f64> = (0..128)
            .map(|i| 3.0 + (std::f64::consts::TAU * i as f64 / 16.0).sin())
            .collect();
        let f = spectral_features(&w);
        assert!((f.dominant_period - 16.0).abs() < 1e-9, "{f:?}");
        assert!(f.entropy < 0.3, "{f:?}");
        assert!(
            f.band_low > 0.9,
            "period 16 of 128 is bin 8 of 64: the low band {f:?}"
        );
        assert!((f.band_low + f.band_mid + f.band_high - 1.0).abs() < 1e-9);
    }

    #[test]
    fn noise_has_high_entropy_and_flat_window_is_nan() {
        let mut x = 1u64;
        let w: Vec<f64> = (0..256)
            .map(|_| {
                x = x
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                (x >> 11) as f64 / (1u64 << 53) as f64
            })
            .collect();
        assert!(spectral_features(&w).entropy > 0.8);
        assert!(spectral_features(&[5.0; 64]).entropy.is_nan());
    }
}
