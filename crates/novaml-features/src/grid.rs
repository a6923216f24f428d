//! Regular grids from irregular points: bucket means, and linear interpolation of the empty
//! buckets. The one resampling step behind forecasting (hourly means, gaps interpolated) and
//! prediction (5-minute means, gaps kept as `NaN` so that windows touching them are left out).

use crate::FeatureError;

/// The mean of the finite values of `points` (time, value) in each bucket `[start + i·step,
/// start + (i+1)·step)`, `i < n`; `NaN` for an empty bucket. Points outside are ignored. Times
/// and `step` are in one unit (ms or s, the caller's).
pub fn bucket_mean_on(points: &[(i64, f64)], start: i64, step: i64, n: usize) -> Vec<f64> {
    let mut sum = vec![0.0; n];
    let mut cnt = vec![0u32; n];
    if step > 0 {
        for &(t, v) in points {
            if !v.is_finite() || t < start {
                continue;
            }
            let i = ((t - start) / step) as usize;
            if i < n {
                sum[i] += v;
                cnt[i] += 1;
            }
        }
    }
    sum.iter()
        .zip(&cnt)
        .map(|(s, &c)| if c == 0 { f64::NAN } else { s / f64::from(c) })
        .collect()
}

/// [`bucket_mean_on`] over the buckets from the first to the last finite point: the grid's
/// start (a multiple of `step`) and its values.
pub fn bucket_mean(points: &[(i64, f64)], step: i64) -> Result<(i64, Vec<f64>), FeatureError> {
    if step <= 0 {
        return Err(FeatureError::Config {
            field: "step",
            reason: "must be positive".into(),
        });
    }
    let finite = points.iter().filter(|p| p.1.is_finite());
    let (Some(lo), Some(hi)) = (finite.clone().map(|p| p.0).min(), finite.map(|p| p.0).max())
    else {
        return Err(FeatureError::Data("the series has no finite values".into()));
    };
    let start = lo.div_euclid(step) * step;
    let n = ((hi - start) / step + 1) as usize;
    Ok((start, bucket_mean_on(points, start, step, n)))
}

/// Fills each run of `NaN` between two values by linear interpolation; returns how many were
/// filled. Leading and trailing `NaN`s have no neighbour on one side and stay.
pub fn interpolate_gaps(y: &mut [f64]) -> usize {
    let mut filled = 0;
    let mut prev: Option<usize> = None;
    let mut i = 0;
    while i < y.len() {
        if y[i].is_nan() {
            let b = (i..y.len()).find(|&j| !y[j].is_nan());
            if let (Some(a), Some(b)) = (prev, b) {
                for j in i..b {
                    y[j] = y[a] + (y[b] - y[a]) * (j - a) as f64 / (b - a) as f64;
                    filled += 1;
                }
            }
            i = b.unwrap_or(y.len());
        } else {
            prev = Some(i);
            i += 1;
        }
    }
    filled
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_average_and_keep_gaps() {
        let pts = [
            (0, 1.0),
            (300, 2.0),
            (310, 4.0),
            (1_200, 5.0),
            (1_250, f64::NAN),
        ];
        let (start, y) = bucket_mean(&pts, 300).expect("grid");
        assert_eq!(start, 0);
        assert_eq!(y.len(), 5);
        assert_eq!((y[0], y[1], y[4]), (1.0, 3.0, 5.0));
        assert!(y[2].is_nan() && y[3].is_nan());
        // The start is a multiple of the step, also for negative times.
        assert_eq!(bucket_mean(&[(-10, 1.0)], 300).expect("grid").0, -300);
        assert!(bucket_mean(&[(0, f64::NAN)], 60).is_err());
        assert!(bucket_mean(&[], 60).is_err());
        assert!(bucket_mean(&pts, 0).is_err());
    }

    #[test]
    fn gaps_are_interpolated_between_neighbours_only() {
        let mut y = [f64::NAN, 1.0, f64::NAN, f64::NAN, 4.0, f64::NAN];
        assert_eq!(interpolate_gaps(&mut y), 2);
        assert_eq!(&y[1..5], &[1.0, 2.0, 3.0, 4.0]);
        assert!(y[0].is_nan() && y[5].is_nan());
    }
}
