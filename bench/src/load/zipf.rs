//! Key choice: uniform, or zipfian with YCSB's defaults (theta 0.99, scrambled).
//!
//! The zipfian generator follows Gray et al., "Quickly Generating Billion-Record
//! Synthetic Databases" (SIGMOD 1994), the method YCSB's `ZipfianGenerator` uses: with
//! `zeta(n) = sum_{i=1..n} 1/i^theta`, rank 0 is drawn with probability `1/zeta(n)`,
//! rank 1 with `1/(2^theta zeta(n))`, and the other ranks by inverting an approximation
//! of the distribution's cumulative function. Ranks are popularity ranks (0 is the most
//! popular item); "scrambled" maps them to items through a keyed pseudo-random
//! permutation of `[0, n)`, so that the popular items are spread over the key space
//! instead of being the first keys (YCSB hashes ranks with FNV for the same purpose; a
//! permutation keeps every item's probability exactly that of its rank).

use rand::Rng;

/// How keys are chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Distribution {
    /// Every key equally likely.
    Uniform,
    /// Zipfian popularity.
    Zipfian {
        /// The skew, in `(0, 1)`; YCSB uses 0.99.
        theta: f64,
        /// Whether popular keys are spread over the key space (else key 0 is the most
        /// popular, key 1 the next, ...).
        scrambled: bool,
    },
}

impl std::fmt::Display for Distribution {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Distribution::Uniform => write!(f, "uniform"),
            Distribution::Zipfian { theta, scrambled } => write!(
                f,
                "zipfian(theta {theta}{})",
                if *scrambled { ", scrambled" } else { "" }
            ),
        }
    }
}

/// Below this many items `zeta` is summed term by term; above it, the tail is summed
/// with the Euler-Maclaurin formula (the error is far below f64 precision there).
const ZETA_EXACT_TERMS: u64 = 1_000_000;

/// `sum_{i=1..n} 1/i^theta`.
pub fn zeta(n: u64, theta: f64) -> f64 {
    let exact = n.min(ZETA_EXACT_TERMS);
    // Smallest terms first, for precision.
    let mut sum: f64 = (1..=exact).rev().map(|i| (i as f64).powf(-theta)).sum();
    if n > exact {
        // sum_{i=m..n} f(i) ~ integral_m^n f + (f(m) + f(n)) / 2 + (f'(n) - f'(m)) / 12
        // with f(x) = x^-theta, from m = exact + 1.
        let m = (exact + 1) as f64;
        let n = n as f64;
        let f = |x: f64| x.powf(-theta);
        let df = |x: f64| -theta * x.powf(-theta - 1.0);
        let integral = (n.powf(1.0 - theta) - m.powf(1.0 - theta)) / (1.0 - theta);
        sum += integral + (f(m) + f(n)) / 2.0 + (df(n) - df(m)) / 12.0;
    }
    sum
}

/// Zipfian popularity ranks in `[0, items)`.
#[derive(Debug, Clone)]
pub struct Zipfian {
    items: u64,
    theta: f64,
    alpha: f64,
    zetan: f64,
    eta: f64,
    /// `1 + 0.5^theta`: below it (in units of `u * zeta(n)`) the rank is 1.
    rank1_bound: f64,
}

impl Zipfian {
    /// A generator over `items` ranks (at least 1) with skew `theta` in `(0, 1)`.
    pub fn new(items: u64, theta: f64) -> Result<Zipfian, String> {
        if items == 0 {
            return Err("a zipfian distribution needs at least one item".into());
        }
        if !(theta > 0.0 && theta < 1.0) {
            return Err(format!("zipfian theta {theta} is outside (0, 1)"));
        }
        let zetan = zeta(items, theta);
        let zeta2 = zeta(2.min(items), theta);
        let eta = if items > 2 {
            (1.0 - (2.0 / items as f64).powf(1.0 - theta)) / (1.0 - zeta2 / zetan)
        } else {
            0.0 // unused: with two items or fewer every draw is rank 0 or 1
        };
        Ok(Zipfian {
            items,
            theta,
            alpha: 1.0 / (1.0 - theta),
            zetan,
            eta,
            rank1_bound: 1.0 + 0.5f64.powf(theta),
        })
    }

    /// The number of ranks.
    pub fn items(&self) -> u64 {
        self.items
    }

    /// The exact probability of `rank` under the zipfian law.
    pub fn probability(&self, rank: u64) -> f64 {
        if rank >= self.items {
            return 0.0;
        }
        1.0 / ((rank + 1) as f64).powf(self.theta) / self.zetan
    }

    /// The next rank.
    pub fn next_rank<R: Rng + ?Sized>(&self, rng: &mut R) -> u64 {
        let u: f64 = rng.random();
        let uz = u * self.zetan;
        if uz < 1.0 || self.items == 1 {
            return 0;
        }
        if uz < self.rank1_bound || self.items == 2 {
            return 1;
        }
        let rank = (self.items as f64 * (self.eta * u - self.eta + 1.0).powf(self.alpha)) as u64;
        rank.min(self.items - 1)
    }
}

/// SplitMix64's finalizer: a good 64-bit mixing function.
fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A keyed pseudo-random permutation of `[0, n)`: a balanced Feistel network on the
/// smallest even number of bits covering `n`, with cycle walking to stay below `n`
/// (the domain is less than four times `n`, so under four rounds of walking on average).
#[derive(Debug, Clone)]
pub struct Permutation {
    n: u64,
    half_bits: u32,
    keys: [u64; 4],
}

impl Permutation {
    /// The permutation of `[0, n)` (`n` at least 1) keyed by `seed`.
    pub fn new(n: u64, seed: u64) -> Permutation {
        assert!(n > 0, "an empty domain");
        let bits = (64 - (n - 1).leading_zeros()).max(2);
        let bits = bits + bits % 2;
        let mut k = seed;
        let keys = [0; 4].map(|_: u64| {
            k = mix64(k);
            k
        });
        Permutation {
            n,
            half_bits: bits / 2,
            keys,
        }
    }

    fn encrypt(&self, x: u64) -> u64 {
        let mask = (1u64 << self.half_bits) - 1;
        let (mut left, mut right) = (x >> self.half_bits, x & mask);
        for key in self.keys {
            let next = left ^ (mix64(right ^ key) & mask);
            left = right;
            right = next;
        }
        (left << self.half_bits) | right
    }

    /// The image of `i` (`i < n`).
    pub fn apply(&self, i: u64) -> u64 {
        debug_assert!(i < self.n);
        let mut x = self.encrypt(i);
        while x >= self.n {
            x = self.encrypt(x);
        }
        x
    }
}

/// Chooses key indices in `[0, keys)` by a [`Distribution`]. Cheap to clone (each
/// client keeps its own copy; the random source is the caller's).
#[derive(Debug, Clone)]
pub struct KeyChooser {
    keys: u64,
    zipf: Option<(Zipfian, Option<Permutation>)>,
}

impl KeyChooser {
    /// A chooser over `keys` keys (at least 1); `seed` keys the scrambling permutation.
    pub fn new(keys: u64, distribution: Distribution, seed: u64) -> Result<KeyChooser, String> {
        if keys == 0 {
            return Err("the key space is empty".into());
        }
        let zipf = match distribution {
            Distribution::Uniform => None,
            Distribution::Zipfian { theta, scrambled } => Some((
                Zipfian::new(keys, theta)?,
                scrambled.then(|| Permutation::new(keys, seed)),
            )),
        };
        Ok(KeyChooser { keys, zipf })
    }

    /// The next key index.
    pub fn next_index<R: Rng + ?Sized>(&self, rng: &mut R) -> u64 {
        match &self.zipf {
            None => rng.random_range(0..self.keys),
            Some((zipf, None)) => zipf.next_rank(rng),
            Some((zipf, Some(permutation))) => permutation.apply(zipf.next_rank(rng)),
        }
    }

    /// The key index of popularity rank `rank` (the identity for uniform and
    /// unscrambled choices).
    pub fn index_of_rank(&self, rank: u64) -> u64 {
        match &self.zipf {
            Some((_, Some(permutation))) => permutation.apply(rank),
            _ => rank,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn counts(chooser: &KeyChooser, keys: u64, samples: usize, seed: u64) -> Vec<u64> {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut counts = vec![0u64; keys as usize];
        for _ in 0..samples {
            let i = chooser.next_index(&mut rng);
            assert!(i < keys, "{i} out of range");
            counts[i as usize] += 1;
        }
        counts
    }

    #[test]
    fn zeta_tail_approximation_matches_the_exact_sum() {
        let n = 3 * ZETA_EXACT_TERMS;
        let exact: f64 = (1..=n).rev().map(|i| (i as f64).powf(-0.99)).sum();
        let approx = zeta(n, 0.99);
        assert!(
            (exact - approx).abs() / exact < 1e-12,
            "{exact} vs {approx}"
        );
        assert_eq!(zeta(1, 0.99), 1.0);
    }

    #[test]
    fn the_most_popular_keys_get_their_zipfian_share() {
        let keys = 1000;
        let samples = 400_000;
        let z = Zipfian::new(keys, 0.99).unwrap();
        // 1/zeta(1000, 0.99): about 13% of all draws go to the top key.
        let p0 = z.probability(0);
        assert!((0.12..0.14).contains(&p0), "p0 = {p0}");
        for scrambled in [false, true] {
            let chooser = KeyChooser::new(
                keys,
                Distribution::Zipfian {
                    theta: 0.99,
                    scrambled,
                },
                7,
            )
            .unwrap();
            let c = counts(&chooser, keys, samples, 1);
            for rank in 0..2 {
                let share = c[chooser.index_of_rank(rank) as usize] as f64 / samples as f64;
                let want = z.probability(rank);
                assert!(
                    (share - want).abs() / want < 0.03,
                    "scrambled {scrambled}: rank {rank} share {share}, want {want}"
                );
            }
            let hottest = *c.iter().max().unwrap();
            assert_eq!(hottest, c[chooser.index_of_rank(0) as usize]);
            // The 10 most popular ranks: about 38% of the draws (Gray's approximation
            // is exact for ranks 0 and 1 only, hence the looser bound).
            let top10: u64 = (0..10).map(|r| c[chooser.index_of_rank(r) as usize]).sum();
            let want: f64 = (0..10).map(|r| z.probability(r)).sum();
            let share = top10 as f64 / samples as f64;
            assert!((share - want).abs() / want < 0.1, "top10 {share} vs {want}");
            // And the tail is reached.
            assert!(c.iter().filter(|&&n| n > 0).count() > 900);
        }
        // Unscrambled: the popular keys are the first ones; scrambled: they are not.
        let scrambled = KeyChooser::new(
            keys,
            Distribution::Zipfian {
                theta: 0.99,
                scrambled: true,
            },
            7,
        )
        .unwrap();
        let firsts: Vec<u64> = (0..5).map(|r| scrambled.index_of_rank(r)).collect();
        assert_ne!(firsts, vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn uniform_choice_is_flat() {
        let keys = 100;
        let c = counts(
            &KeyChooser::new(keys, Distribution::Uniform, 0).unwrap(),
            keys,
            100_000,
            3,
        );
        assert!(c.iter().all(|&n| (800..1200).contains(&n)), "{c:?}");
    }

    #[test]
    fn choices_are_deterministic_for_a_seed() {
        let d = Distribution::Zipfian {
            theta: 0.99,
            scrambled: true,
        };
        let a = KeyChooser::new(10_000, d, 42).unwrap();
        let b = KeyChooser::new(10_000, d, 42).unwrap();
        let draw = |c: &KeyChooser, seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            (0..1000)
                .map(|_| c.next_index(&mut rng))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(&a, 5), draw(&b, 5));
        assert_ne!(draw(&a, 5), draw(&a, 6));
        let other = KeyChooser::new(10_000, d, 43).unwrap();
        assert_ne!(draw(&a, 5), draw(&other, 5));
    }

    #[test]
    fn permutations_are_bijections() {
        for n in [1u64, 2, 3, 4, 5, 17, 1000, 1024, 1025, 4099] {
            let p = Permutation::new(n, 99);
            let mut seen = vec![false; n as usize];
            for i in 0..n {
                let j = p.apply(i);
                assert!(j < n && !seen[j as usize], "n {n}: {i} -> {j}");
                seen[j as usize] = true;
            }
        }
    }

    #[test]
    fn tiny_and_invalid_parameters() {
        let mut rng = StdRng::seed_from_u64(0);
        let one = Zipfian::new(1, 0.99).unwrap();
        assert!((0..100).all(|_| one.next_rank(&mut rng) == 0));
        let two = Zipfian::new(2, 0.99).unwrap();
        let ones = (0..10_000).filter(|_| two.next_rank(&mut rng) == 1).count();
        // P(rank 1) = 0.5^0.99 / (1 + 0.5^0.99), about 0.335.
        assert!((3200..3500).contains(&ones), "{ones}");
        assert!(Zipfian::new(0, 0.99).is_err());
        assert!(Zipfian::new(10, 1.0).is_err());
        assert!(Zipfian::new(10, 0.0).is_err());
        assert!(Zipfian::new(10, f64::NAN).is_err());
        assert!(KeyChooser::new(0, Distribution::Uniform, 0).is_err());
    }
}
