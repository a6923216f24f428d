//! The [`MetricStore`] seam: write batches, read series back by selector and time range.

use serde::{Deserialize, Serialize};

use crate::{Batch, CoreError, Selector, Series, SeriesKey, Timestamp};

/// A half-open time range `[start, end)` in ms since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeRange {
    /// Inclusive start.
    pub start: Timestamp,
    /// Exclusive end.
    pub end: Timestamp,
}

impl TimeRange {
    /// A range; fails when `end < start`.
    pub fn new(start: Timestamp, end: Timestamp) -> Result<Self, CoreError> {
        if end < start {
            return Err(CoreError::EmptyRange { start, end });
        }
        Ok(Self { start, end })
    }

    /// Every timestamp.
    pub const fn all() -> Self {
        Self {
            start: Timestamp::MIN,
            end: Timestamp::MAX,
        }
    }

    /// Whether `ts` lies in the range.
    pub const fn contains(&self, ts: Timestamp) -> bool {
        ts >= self.start && ts < self.end
    }
}

/// How points in one step are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Aggregation {
    /// Arithmetic mean.
    Avg,
    /// Minimum.
    Min,
    /// Maximum.
    Max,
    /// The latest point in the step.
    Last,
}

/// Step aggregation: points are grouped into buckets `[start + k·step, start + (k+1)·step)` of the
/// query range and each bucket becomes one point stamped at the bucket start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepSpec {
    /// Bucket width in ms, > 0.
    pub step_ms: i64,
    /// How points in a bucket are combined.
    pub agg: Aggregation,
}

impl StepSpec {
    /// A step spec; fails for a step ≤ 0.
    pub fn new(step_ms: i64, agg: Aggregation) -> Result<Self, CoreError> {
        if step_ms <= 0 {
            return Err(CoreError::InvalidStep { step_ms });
        }
        Ok(Self { step_ms, agg })
    }

    /// Aggregates the sorted points a query over `range` found: buckets aligned at the range's
    /// start, or at the first point when the range has none ([`TimeRange::all`]). Every store
    /// buckets this way.
    pub fn apply_in(&self, range: TimeRange, points: &[crate::Point]) -> Vec<crate::Point> {
        let origin = match points.first() {
            Some(p) if range.start == Timestamp::MIN => p.ts,
            _ => range.start,
        };
        self.apply(origin, points)
    }

    /// Aggregates sorted points into buckets aligned at `origin`.
    pub fn apply(&self, origin: Timestamp, points: &[crate::Point]) -> Vec<crate::Point> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < points.len() {
            let bucket = (points[i].ts - origin).div_euclid(self.step_ms);
            let mut j = i;
            let (mut sum, mut min, mut max) = (0.0, f64::INFINITY, f64::NEG_INFINITY);
            while j < points.len() && (points[j].ts - origin).div_euclid(self.step_ms) == bucket {
                let v = points[j].value;
                sum += v;
                min = min.min(v);
                max = max.max(v);
                j += 1;
            }
            let value = match self.agg {
                Aggregation::Avg => sum / (j - i) as f64,
                Aggregation::Min => min,
                Aggregation::Max => max,
                Aggregation::Last => points[j - 1].value,
            };
            out.push(crate::Point::new(origin + bucket * self.step_ms, value));
            i = j;
        }
        out
    }
}

/// Where metrics are kept.
///
/// Writes are upserts: a second point for the same `(series, ts)` replaces the first. A batch,
/// with its source cursor, is written atomically: all of it or none.
pub trait MetricStore: Send {
    /// The implementation's error.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Writes a batch and its cursor in one transaction; returns the number of points written.
    fn write(&mut self, batch: &Batch) -> Result<usize, Self::Error>;

    /// Whether `err`, from [`write`](Self::write), says the store refuses that batch for good
    /// (a remote TSDB's 4xx: samples older than its head, a label it rejects), so writing it
    /// again cannot succeed. Every other failure is worth retrying. Default: never.
    fn refuses(err: &Self::Error) -> bool {
        let _ = err;
        false
    }

    /// Series matching `selector` with their points in `range`, sorted by time, optionally
    /// aggregated by step. Series with no points in the range are left out.
    fn query(
        &self,
        selector: &Selector,
        range: TimeRange,
        step: Option<StepSpec>,
    ) -> Result<Vec<Series>, Self::Error>;

    /// The one series whose key is exactly `key` (no more labels, no fewer), if it has points in
    /// `range`.
    fn query_key(
        &self,
        key: &SeriesKey,
        range: TimeRange,
        step: Option<StepSpec>,
    ) -> Result<Option<Series>, Self::Error> {
        Ok(self
            .query(&Selector::exact(key), range, step)?
            .into_iter()
            .find(|s| &s.key == key))
    }

    /// The persisted cursor of a source, if it has written one.
    fn cursor(&self, source: &str) -> Result<Option<Timestamp>, Self::Error>;

    /// Deletes points older than `cutoff` (and series left empty); returns the points deleted.
    fn delete_before(&mut self, cutoff: Timestamp) -> Result<usize, Self::Error>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Point;

    #[test]
    fn step_aggregation_buckets_from_origin() {
        let pts: Vec<Point> = [(0, 1.0), (5, 3.0), (10, 10.0), (25, 7.0), (29, 1.0)]
            .into_iter()
            .map(|(t, v)| Point::new(t, v))
            .collect();
        let cases = [
            (Aggregation::Avg, vec![(0, 2.0), (10, 10.0), (20, 4.0)]),
            (Aggregation::Min, vec![(0, 1.0), (10, 10.0), (20, 1.0)]),
            (Aggregation::Max, vec![(0, 3.0), (10, 10.0), (20, 7.0)]),
            (Aggregation::Last, vec![(0, 3.0), (10, 10.0), (20, 1.0)]),
        ];
        for (agg, want) in cases {
            let got = StepSpec::new(10, agg).expect("valid").apply(0, &pts);
            let got: Vec<(i64, f64)> = got.iter().map(|p| (p.ts, p.value)).collect();
            assert_eq!(got, want, "{agg:?}");
        }
        assert!(StepSpec::new(0, Aggregation::Avg).is_err());
        assert!(TimeRange::new(5, 4).is_err());
    }
}
