//! Window statistics shared by the feature builders.

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
    fn sample_std() {
        let (m, s) = mean_std(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]);
        assert!((m - 5.0).abs() < 1e-12);
        assert!((s - 2.138_089_935_299_395).abs() < 1e-12, "{s}");
        assert!(mean_std(&[1.0]).1.is_nan());
    }
}
