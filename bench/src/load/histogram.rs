//! A log-linear latency histogram in the manner of HdrHistogram: values below 256 are
//! counted exactly; above, every power-of-two range is split into 128 equal buckets, so
//! a recorded value is known to within 1/128 (0.8%) of itself. Recording is an index
//! computation and an increment; histograms of different clients merge by adding counts.

/// Sub-buckets per power of two, as a power of two.
const SUB_BITS: u32 = 7;
const SUB: u64 = 1 << SUB_BITS;
/// Values below this are their own bucket.
const EXACT: u64 = 2 * SUB;
/// Enough buckets for any `u64`.
const BUCKETS: usize = (EXACT + (63 - SUB_BITS as u64) * SUB) as usize;

/// Counts of `u64` values (the load generator records nanoseconds).
#[derive(Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    min: u64,
    max: u64,
    sum: u128,
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("total", &self.total)
            .field("min", &self.min)
            .field("max", &self.max)
            .finish()
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new()
    }
}

fn index_of(v: u64) -> usize {
    if v < EXACT {
        return v as usize;
    }
    let msb = 63 - v.leading_zeros(); // at least SUB_BITS + 1
    let shift = msb - SUB_BITS;
    let top = v >> shift; // in [SUB, 2 SUB)
    (EXACT + u64::from(shift - 1) * SUB + (top - SUB)) as usize
}

/// The largest value counted in bucket `index`.
fn highest_in(index: usize) -> u64 {
    let index = index as u64;
    if index < EXACT {
        return index;
    }
    let shift = (index - EXACT) / SUB + 1;
    let top = (index - EXACT) % SUB + SUB;
    // ((top + 1) << shift) - 1, without overflowing at the very top.
    (top << shift) + ((1u64 << shift) - 1)
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Histogram {
        Histogram {
            counts: vec![0; BUCKETS],
            total: 0,
            min: u64::MAX,
            max: 0,
            sum: 0,
        }
    }

    /// Counts `value` once.
    pub fn record(&mut self, value: u64) {
        self.counts[index_of(value)] += 1;
        self.total += 1;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        self.sum += u128::from(value);
    }

    /// Adds `other`'s counts to this one.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.sum += other.sum;
    }

    /// How many values were recorded.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The smallest value recorded (0 when empty).
    pub fn min(&self) -> u64 {
        if self.total == 0 {
            0
        } else {
            self.min
        }
    }

    /// The largest value recorded (0 when empty).
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The mean (0 when empty).
    pub fn mean(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.sum as f64 / self.total as f64
        }
    }

    /// The value at `percentile` (in `[0, 100]`): the smallest bucket bound that at
    /// least that share of the values do not exceed, clamped to the recorded range
    /// (the minimum for 0; 0 when empty). Like HdrHistogram, it reports the top of the bucket, so it
    /// over-states by at most 1/128.
    pub fn percentile(&self, percentile: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let p = percentile.clamp(0.0, 100.0);
        if p == 0.0 {
            return self.min;
        }
        // The rank rounded to the nearest integer, not up: 99.9% of 1000 computes as
        // 999.0000000000001, which must be rank 999.
        let rank = ((p / 100.0) * self.total as f64).round().max(1.0) as u64;
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return highest_in(i).clamp(self.min, self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_value_in_order() {
        let mut last = 0;
        for v in (0..100_000u64).chain([u64::MAX / 3, u64::MAX - 1, u64::MAX]) {
            let i = index_of(v);
            assert!(i < BUCKETS, "{v}");
            assert!(i >= last, "{v}");
            last = i;
            assert!(highest_in(i) >= v, "{v} above its bucket's top");
            assert!(highest_in(i) - v <= v / SUB, "{v}: bucket too wide");
            if i > 0 {
                assert!(highest_in(i - 1) < v, "{v} belongs to an earlier bucket");
            }
        }
        assert_eq!(index_of(u64::MAX), BUCKETS - 1);
        assert_eq!(highest_in(BUCKETS - 1), u64::MAX);
    }

    #[test]
    fn percentiles_of_a_uniform_range() {
        let mut h = Histogram::new();
        for v in 1..=100_000u64 {
            h.record(v * 1000); // 1 µs .. 100 ms in ns
        }
        let close = |got: u64, want: u64| {
            let err = (got as f64 - want as f64).abs() / want as f64;
            assert!(err <= 1.0 / SUB as f64, "got {got}, want {want}");
        };
        close(h.percentile(50.0), 50_000_000);
        close(h.percentile(99.0), 99_000_000);
        close(h.percentile(99.9), 99_900_000);
        assert_eq!(h.percentile(100.0), 100_000_000);
        assert_eq!(h.percentile(0.0), 1000);
        assert_eq!(h.count(), 100_000);
        assert_eq!(h.min(), 1000);
        assert_eq!(h.max(), 100_000_000);
        assert!((h.mean() - 50_000_500.0).abs() < 1.0);
    }

    #[test]
    fn small_values_are_exact_and_outliers_show_in_the_tail() {
        let mut h = Histogram::new();
        for v in 1..=100 {
            h.record(v);
        }
        assert_eq!(h.percentile(50.0), 50);
        assert_eq!(h.percentile(99.0), 99);
        // 1000 fast values and one slow one: p99.9 stays fast, the max does not.
        let mut h = Histogram::new();
        for _ in 0..999 {
            h.record(1_000_000);
        }
        h.record(5_000_000_000);
        assert!(h.percentile(99.9) <= 1_000_000 + 1_000_000 / SUB);
        assert_eq!(h.percentile(99.99), 5_000_000_000);
    }

    #[test]
    fn merging_equals_recording_everything_in_one() {
        let (mut a, mut b, mut all) = (Histogram::new(), Histogram::new(), Histogram::new());
        for v in 0..10_000u64 {
            let v = v * v;
            if v % 3 == 0 {
                a.record(v);
            } else {
                b.record(v);
            }
            all.record(v);
        }
        a.merge(&b);
        for p in [0.0, 10.0, 50.0, 90.0, 99.0, 99.9, 100.0] {
            assert_eq!(a.percentile(p), all.percentile(p), "p{p}");
        }
        assert_eq!(
            (a.count(), a.min(), a.max()),
            (all.count(), all.min(), all.max())
        );
        let empty = Histogram::new();
        assert_eq!(
            (empty.percentile(99.0), empty.min(), empty.max()),
            (0, 0, 0)
        );
        assert_eq!(empty.mean(), 0.0);
    }
}
