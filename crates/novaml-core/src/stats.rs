//! Small numerics several crates share: the standard normal distribution and empirical
//! quantiles. One implementation each, so a tail probability or a percentile means the same in
//! anomaly scores, prediction risk, Bayesian optimisation and forecast intervals.

/// Upper tail `P(Z > z)` of the standard normal: `erfc(z/√2)/2`, with libm's `erfc` (accurate to
/// a few ulps, also far in the tails where `1 − Φ(z)` would cancel to 0).
pub fn normal_sf(z: f64) -> f64 {
    0.5 * libm::erfc(z / std::f64::consts::SQRT_2)
}

/// The standard normal CDF `Φ(z)`.
pub fn normal_cdf(z: f64) -> f64 {
    0.5 * libm::erfc(-z / std::f64::consts::SQRT_2)
}

/// The standard normal density.
pub fn normal_pdf(z: f64) -> f64 {
    (-0.5 * z * z).exp() / (2.0 * std::f64::consts::PI).sqrt()
}

/// The standard normal quantile `Φ⁻¹(p)` by bisection on [`normal_cdf`] (80 halvings of
/// `[−10, 10]`: exact to the CDF's precision); ±10 outside `(0, 1)`.
pub fn normal_quantile(p: f64) -> f64 {
    let (mut lo, mut hi) = (-10.0, 10.0);
    for _ in 0..80 {
        let mid = 0.5 * (lo + hi);
        if normal_cdf(mid) < p {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

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

/// The `q`-quantile (type 7) of the finite values of unsorted data; `None` when none is finite
/// or `q` is outside `[0, 1]`.
pub fn quantile(values: &[f64], q: f64) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    Some(quantile_sorted(&v, q)).filter(|x| !x.is_nan())
}

/// The median of the non-NaN values (mean of the middle two for an even count); `None` when
/// there are none.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_distribution() {
        assert!((normal_cdf(0.0) - 0.5).abs() < 1e-15);
        assert!((normal_cdf(1.959_964) - 0.975).abs() < 1e-6);
        assert!((normal_cdf(-1.0) - 0.158_655_253_931_457).abs() < 1e-12);
        assert!((normal_sf(1.0) - 0.158_655_253_931_457).abs() < 1e-12);
        // Far in the tail the survival function keeps its precision.
        assert!((normal_sf(10.0) / 7.619_853_024_160_527e-24 - 1.0).abs() < 1e-9);
        assert!((normal_quantile(0.9) - 1.281_551_565_545).abs() < 1e-9);
        assert!((normal_quantile(0.5)).abs() < 1e-12);
        assert!((normal_pdf(0.0) - 0.398_942_280_401_433).abs() < 1e-12);
    }

    #[test]
    fn quantiles_match_numpy_linear() {
        let v = [1.0, 2.0, 3.0, 4.0, 10.0];
        // numpy.quantile(v, [0, .25, .5, .9, 1]) = [1, 2, 3, 7.6, 10]
        for (q, want) in [(0.0, 1.0), (0.25, 2.0), (0.5, 3.0), (0.9, 7.6), (1.0, 10.0)] {
            assert!((quantile_sorted(&v, q) - want).abs() < 1e-12, "{q}");
        }
        assert!(quantile_sorted(&[], 0.5).is_nan());
        assert!(quantile_sorted(&v, 1.5).is_nan());
        assert_eq!(quantile(&[3.0, f64::NAN, 1.0, 2.0], 0.5), Some(2.0));
        assert_eq!(quantile(&[f64::NAN], 0.5), None);
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[f64::NAN, 5.0]), Some(5.0));
        assert_eq!(median(&[]), None);
    }
}
