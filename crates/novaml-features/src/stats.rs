//! Window statistics shared by the feature builders.

/// The `q`-quantile of sorted data with linear interpolation between closest ranks
/// (Hyndman & Fan type 7, the default of NumPy and R): position `q·(n−1)`.
/// `NaN` for empty data or `q` outside `[0, 1]`.
pub fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() || !(0.0..=1.0).contains(&q) {
        return f64::NAN;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// Mean and sample standard deviation (n − 1 in the denominator, as pandas' `rolling().std()`),
/// computed in two passes for accuracy. Std is `NaN` for fewer than 2 values.
pub(crate) fn mean_std(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    if xs.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let mean = xs.iter().sum::<f64>() / n;
    if xs.len() < 2 {
        return (mean, f64::NAN);
    }
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_match_numpy_linear() {
        // numpy.quantile([1, 2, 3, 4, 10], q) with the default method.
        let s = [1.0, 2.0, 3.0, 4.0, 10.0];
        for (q, want) in [
            (0.0, 1.0),
            (0.25, 2.0),
            (0.5, 3.0),
            (0.9, 7.6),
            (0.95, 8.8),
            (1.0, 10.0),
        ] {
            assert!(
                (quantile_sorted(&s, q) - want).abs() < 1e-12,
                "q={q}: {}",
                quantile_sorted(&s, q)
            );
        }
        assert_eq!(quantile_sorted(&[5.0], 0.3), 5.0);
        assert!(quantile_sorted(&[], 0.5).is_nan());
        assert!(quantile_sorted(&s, 1.5).is_nan());
    }

    #[test]
    fn sample_std() {
        let (m, s) = mean_std(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]);
        assert!((m - 5.0).abs() < 1e-12);
        assert!((s - 2.138_089_935_299_395).abs() < 1e-12, "{s}");
        assert!(mean_std(&[1.0]).1.is_nan());
    }
}
