//! Deterministic data sets, shaped like common engine benchmarks: 24-byte keys and
//! 150-byte values, generated from a fixed seed so every engine and every run sees the
//! same bytes.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

/// Key length in bytes.
pub const KEY_LEN: usize = 24;
/// Value length in bytes.
pub const VALUE_LEN: usize = 150;
/// The seed every data set derives from.
pub const SEED: u64 = 0x00e1_a571_c4a7;

/// The size of a benchmark run, from the environment: `EKV_BENCH_QUICK=1` shrinks the
/// data sets so that a full run of every engine finishes in a few minutes.
#[derive(Debug, Clone, Copy)]
pub struct Scale {
    /// Keys in the main data set (one version each).
    pub keys: usize,
    /// Keys in the multi-version data set (`versions` versions each).
    pub versioned_keys: usize,
    /// Versions per key in the multi-version data set.
    pub versions: usize,
}

impl Scale {
    /// Reads `EKV_BENCH_QUICK`.
    pub fn from_env() -> Self {
        if std::env::var_os("EKV_BENCH_QUICK").is_some_and(|v| v != "0") {
            Scale {
                keys: 100_000,
                versioned_keys: 20_000,
                versions: 10,
            }
        } else {
            Scale {
                keys: 200_000,
                versioned_keys: 100_000,
                versions: 10,
            }
        }
    }
}

/// The `i`-th key: `key:` and a zero-padded 19-digit number, 24 bytes.
pub fn key(i: usize) -> Vec<u8> {
    let k = format!("key:{i:020}").into_bytes();
    debug_assert_eq!(k.len(), KEY_LEN);
    k
}

/// A key that sorts among the data set's keys but is never written.
pub fn missing_key(i: usize) -> Vec<u8> {
    let mut k = key(i);
    k[KEY_LEN - 1] = b'x';
    k
}

/// `n` indices in a fixed pseudo-random order (the write order of data sets and the
/// lookup order of point reads).
pub fn shuffled(n: usize, salt: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut StdRng::seed_from_u64(SEED ^ salt));
    order
}

/// A deterministic generator of 150-byte values.
#[derive(Debug)]
pub struct Values(StdRng);

impl Values {
    /// A generator with its own salt.
    pub fn new(salt: u64) -> Self {
        Values(StdRng::seed_from_u64(SEED.wrapping_add(salt)))
    }

    /// The next value.
    pub fn next_value(&mut self) -> Vec<u8> {
        let mut v = vec![0u8; VALUE_LEN];
        self.0.fill(&mut v[..]);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_the_advertised_shape_and_order() {
        assert_eq!(key(7).len(), KEY_LEN);
        assert!(key(9) < key(10));
        assert!(key(9) < missing_key(9) && missing_key(9) < key(10));
        assert_eq!(shuffled(100, 1), shuffled(100, 1));
        assert_ne!(shuffled(100, 1), shuffled(100, 2));
        assert_eq!(Values::new(3).next_value(), Values::new(3).next_value());
    }
}
