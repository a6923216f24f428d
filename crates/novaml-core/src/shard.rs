//! Sharding a fleet's series over workers: `novaml serve --shard K/N` owns the series whose
//! stable hash falls in bucket K of N.
//!
//! The hash must be the same in every build, on every platform and in every worker, so it is
//! written here rather than taken from `std` (whose `DefaultHasher` may change between Rust
//! releases): FNV-1a over the key's canonical bytes (name, then the sorted labels, separated by
//! bytes that never occur in UTF-8), finished with SplitMix64's mixer, then Lamping & Veach's
//! jump consistent hash (2014), so that going from N to N + 1 workers moves only 1/(N + 1) of
//! the series.

use std::fmt;
use std::str::FromStr;

use crate::SeriesKey;

/// One shard of N: the worker that owns the series hashed to `index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shard {
    index: u32,
    count: u32,
}

/// Why a shard spec was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    /// Not of the form `K/N`.
    #[error("{0:?} is not a shard: write K/N with 0 ≤ K < N, e.g. 0/3")]
    Syntax(String),
    /// `K ≥ N` or `N = 0`.
    #[error(
        "shard {index}/{count}: the index must be below the count (shards of 3 are 0/3, 1/3 and 2/3)"
    )]
    OutOfRange {
        /// K.
        index: u32,
        /// N.
        count: u32,
    },
}

impl Shard {
    /// The whole fleet in one worker (`0/1`).
    pub const ALL: Self = Self { index: 0, count: 1 };

    /// Shard `index` of `count`.
    pub fn new(index: u32, count: u32) -> Result<Self, ShardError> {
        if index >= count {
            return Err(ShardError::OutOfRange { index, count });
        }
        Ok(Self { index, count })
    }

    /// K.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// N.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Whether this worker runs the fleet-wide jobs (cluster capacity): shard 0.
    pub fn leads(&self) -> bool {
        self.index == 0
    }

    /// Whether this shard owns `key`.
    pub fn owns(&self, key: &SeriesKey) -> bool {
        self.count == 1 || bucket(stable_hash(key), self.count) == self.index
    }
}

impl Default for Shard {
    fn default() -> Self {
        Self::ALL
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = ShardError;

    fn from_str(s: &str) -> Result<Self, ShardError> {
        let syntax = || ShardError::Syntax(s.to_owned());
        let (k, n) = s.trim().split_once('/').ok_or_else(syntax)?;
        let k: u32 = k.trim().parse().map_err(|_| syntax())?;
        let n: u32 = n.trim().parse().map_err(|_| syntax())?;
        Self::new(k, n)
    }
}

/// The key's stable 64-bit hash (the same in every build and on every platform).
pub fn stable_hash(key: &SeriesKey) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = OFFSET;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(PRIME);
        }
    };
    eat(key.name.as_bytes());
    for (k, v) in &key.labels {
        // 0xff and 0xfe never occur in UTF-8: no two keys share their bytes.
        eat(&[0xff]);
        eat(k.as_bytes());
        eat(&[0xfe]);
        eat(v.as_bytes());
    }
    // SplitMix64's finaliser: FNV's high bits mix poorly for short keys.
    let mut z = h;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Jump consistent hash: the bucket in `0..buckets` of a 64-bit key.
fn bucket(mut key: u64, buckets: u32) -> u32 {
    let (mut b, mut j): (i64, i64) = (-1, 0);
    while j < i64::from(buckets) {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        j = ((b + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    b as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: usize) -> SeriesKey {
        SeriesKey::new("vm_cpu_usage_percent")
            .and_then(|k| k.with_label("vm", format!("vm-{i}")))
            .and_then(|k| k.with_label("host", format!("host-{}", i / 20)))
            .expect("key")
    }

    #[test]
    fn specs_parse_and_bad_ones_say_why() {
        assert_eq!("1/3".parse::<Shard>(), Shard::new(1, 3));
        assert_eq!(" 0 / 1 ".parse::<Shard>(), Ok(Shard::ALL));
        assert_eq!(Shard::new(2, 3).expect("shard").to_string(), "2/3");
        for bad in ["3/3", "0/0", "7/2"] {
            let e = bad.parse::<Shard>().expect_err(bad);
            assert!(matches!(e, ShardError::OutOfRange { .. }), "{bad}: {e}");
            assert!(e.to_string().contains("below the count"), "{e}");
        }
        for bad in ["a/b", "1", "", "1/3/4", "-1/3", "1/x"] {
            let e = bad.parse::<Shard>().expect_err(bad);
            assert!(matches!(e, ShardError::Syntax(_)), "{bad}: {e}");
        }
    }

    #[test]
    fn every_series_has_exactly_one_owner_and_shards_are_even() {
        let n = 30_000;
        let shards: Vec<Shard> = (0..3).map(|k| Shard::new(k, 3).expect("shard")).collect();
        let mut sizes = [0usize; 3];
        for i in 0..n {
            let owners: Vec<usize> = (0..3).filter(|&k| shards[k].owns(&key(i))).collect();
            assert_eq!(owners.len(), 1, "series {i}: {owners:?}");
            sizes[owners[0]] += 1;
        }
        for s in sizes {
            let share = s as f64 / n as f64;
            assert!((share - 1.0 / 3.0).abs() < 0.01, "{sizes:?}");
        }
        assert!((0..n).all(|i| Shard::ALL.owns(&key(i))));
    }

    #[test]
    fn a_fourth_worker_takes_a_quarter_and_moves_nothing_else() {
        let n = 20_000;
        let mut moved = 0;
        for i in 0..n {
            let h = stable_hash(&key(i));
            let (before, after) = (bucket(h, 3), bucket(h, 4));
            if before != after {
                assert_eq!(after, 3, "a series moves only to the new worker");
                moved += 1;
            }
        }
        let share = moved as f64 / n as f64;
        assert!((share - 0.25).abs() < 0.01, "{share}");
    }

    #[test]
    fn the_hash_is_the_same_in_every_build() {
        // Golden values: a change here re-shards every fleet, so it must be deliberate.
        let k = SeriesKey::new("cpu")
            .and_then(|k| k.with_label("host", "a"))
            .expect("key");
        assert_eq!(stable_hash(&k), GOLDEN_CPU_HOST_A);
        assert_eq!(
            stable_hash(&SeriesKey::new("cpu").expect("key")),
            GOLDEN_CPU
        );
        // Label boundaries count: {a="bc"} is not {ab="c"}.
        let x = SeriesKey::new("m").and_then(|k| k.with_label("a", "bc"));
        let y = SeriesKey::new("m").and_then(|k| k.with_label("ab", "c"));
        assert_ne!(stable_hash(&x.expect("key")), stable_hash(&y.expect("key")));
    }

    // Computed by an independent implementation (a few lines of Python over the same bytes).
    const GOLDEN_CPU_HOST_A: u64 = 387_204_154_325_248_307;
    const GOLDEN_CPU: u64 = 5_866_724_235_301_552_720;
}
