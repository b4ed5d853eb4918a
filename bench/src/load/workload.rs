//! The workloads: which operations each one issues, in what proportions, on which keys.

use rand::Rng;

/// A workload (`--workload`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Workload {
    /// Single-key writes (etcd's `benchmark put`: 8-byte keys, 256-byte values).
    Put,
    /// Linearizable single-key reads.
    Get,
    /// YCSB A: 50% reads, 50% updates.
    A,
    /// YCSB B: 95% reads, 5% updates.
    B,
    /// YCSB C: reads only.
    C,
    /// YCSB E: 95% short scans, 5% inserts of new keys.
    E,
    /// YCSB F: 50% reads, 50% read-modify-writes (each one transaction).
    F,
    /// Transfers: a transaction reads two keys (in different shards when the target is
    /// sharded) and moves one unit from one to the other.
    Txn,
}

/// An operation type; the report has one row per type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    /// A write of the `put` workload.
    Put,
    /// A read of the `get` workload.
    Get,
    /// A YCSB read.
    Read,
    /// A YCSB update (a single-key write of an existing key).
    Update,
    /// A YCSB scan.
    Scan,
    /// A YCSB insert (a single-key write of a new key).
    Insert,
    /// A read-modify-write transaction.
    Rmw,
    /// A two-key transfer transaction.
    Transfer,
}

impl Op {
    /// The name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Op::Put => "put",
            Op::Get => "get",
            Op::Read => "read",
            Op::Update => "update",
            Op::Scan => "scan",
            Op::Insert => "insert",
            Op::Rmw => "read-modify-write",
            Op::Transfer => "transfer",
        }
    }
}

impl Workload {
    /// The name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Put => "put",
            Workload::Get => "get",
            Workload::A => "a",
            Workload::B => "b",
            Workload::C => "c",
            Workload::E => "e",
            Workload::F => "f",
            Workload::Txn => "txn",
        }
    }

    /// The operation types it issues.
    pub fn ops(self) -> &'static [Op] {
        match self {
            Workload::Put => &[Op::Put],
            Workload::Get => &[Op::Get],
            Workload::A | Workload::B => &[Op::Read, Op::Update],
            Workload::C => &[Op::Read],
            Workload::E => &[Op::Scan, Op::Insert],
            Workload::F => &[Op::Read, Op::Rmw],
            Workload::Txn => &[Op::Transfer],
        }
    }

    /// Whether it reads keys it expects to exist (and so wants `--preload`).
    pub fn reads(self) -> bool {
        !matches!(self, Workload::Put)
    }

    /// Whether it needs transactions or scans (which `--raw` does not offer).
    pub fn needs_transactional_api(self) -> bool {
        matches!(self, Workload::E | Workload::F | Workload::Txn)
    }

    /// The next operation's type.
    pub fn next_op<R: Rng + ?Sized>(self, rng: &mut R) -> Op {
        let percent = rng.random_range(0..100u32);
        match self {
            Workload::Put => Op::Put,
            Workload::Get => Op::Get,
            Workload::A => {
                if percent < 50 {
                    Op::Read
                } else {
                    Op::Update
                }
            }
            Workload::B => {
                if percent < 95 {
                    Op::Read
                } else {
                    Op::Update
                }
            }
            Workload::C => Op::Read,
            Workload::E => {
                if percent < 95 {
                    Op::Scan
                } else {
                    Op::Insert
                }
            }
            Workload::F => {
                if percent < 50 {
                    Op::Read
                } else {
                    Op::Rmw
                }
            }
            Workload::Txn => Op::Transfer,
        }
    }
}

/// The key of index `i`: a lowercase letter (`a` + `i % 26`) and `i / 26` as 7 decimal
/// digits, 8 bytes below 260 million keys (more digits above). The letters spread the
/// keys evenly over elastickv's default ranges (3 groups split at `i` and `r`), and
/// consecutive numbers under one letter make short scans read existing keys.
pub fn key(i: u64) -> Vec<u8> {
    let letter = char::from(b'a' + (i % 26) as u8);
    format!("{letter}{:07}", i / 26).into_bytes()
}

/// The shards of the key space, for choosing keys in different shards.
#[derive(Debug, Clone, Default)]
pub struct Shards {
    starts: Vec<(Vec<u8>, u64)>,
}

impl Shards {
    /// From ascending `(start key, shard id)` pairs (empty: one shard).
    pub fn new(mut starts: Vec<(Vec<u8>, u64)>) -> Shards {
        starts.sort();
        Shards { starts }
    }

    /// The shard holding `key` (0 when unsharded).
    pub fn shard_of(&self, key: &[u8]) -> u64 {
        let after = self
            .starts
            .partition_point(|(start, _)| start.as_slice() <= key);
        after.checked_sub(1).map(|i| self.starts[i].1).unwrap_or(0)
    }

    /// Whether there was no layout at all (a target that is not sharded).
    pub fn is_unsharded(&self) -> bool {
        self.starts.is_empty()
    }

    /// How many different shards there are.
    pub fn count(&self) -> usize {
        let mut ids: Vec<u64> = self.starts.iter().map(|(_, id)| *id).collect();
        ids.sort_unstable();
        ids.dedup();
        ids.len().max(1)
    }

    /// Whether the first `keys` keys fall in more than one shard.
    pub fn spans(&self, keys: u64) -> bool {
        let first = self.shard_of(&key(0));
        // Every letter appears among the first 26 keys; the numbers only grow under a
        // letter, so the letters and the last key bound the shards reached.
        (0..keys.min(26))
            .chain(keys.checked_sub(1))
            .any(|i| self.shard_of(&key(i)) != first)
    }
}

/// An account balance: the first 8 bytes of a value, little-endian (shorter values are
/// zero-padded; a missing key is 0).
pub fn balance(value: Option<&[u8]>) -> u64 {
    let mut bytes = [0u8; 8];
    if let Some(v) = value {
        let n = v.len().min(8);
        bytes[..n].copy_from_slice(&v[..n]);
    }
    u64::from_le_bytes(bytes)
}

/// `value` (or `size` zero bytes when missing) with its balance set to `balance`.
pub fn with_balance(value: Option<&[u8]>, size: usize, balance: u64) -> Vec<u8> {
    let mut v = value.map(<[u8]>::to_vec).unwrap_or_else(|| vec![0; size]);
    if v.len() < 8 {
        v.resize(8, 0);
    }
    v[..8].copy_from_slice(&balance.to_le_bytes());
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn keys_are_eight_bytes_and_spread_over_the_default_groups() {
        assert_eq!(key(0), b"a0000000");
        assert_eq!(key(27), b"b0000001");
        assert_eq!(key(259_999_999).len(), 8);
        assert_eq!(key(260_000_000).len(), 9);
        let shards = Shards::new(vec![(vec![], 0), (b"i".to_vec(), 1), (b"r".to_vec(), 2)]);
        assert_eq!(shards.shard_of(b"a0000000"), 0);
        assert_eq!(shards.shard_of(b"i"), 1);
        assert_eq!(shards.shard_of(b"t0000003"), 2);
        assert_eq!(shards.count(), 3);
        assert!(shards.spans(1000));
        assert!(!shards.spans(8)); // a..h: all in the first group
        assert!(shards.spans(9));
        let mut per_shard = [0; 3];
        for i in 0..2600 {
            per_shard[shards.shard_of(&key(i)) as usize] += 1;
        }
        assert_eq!(per_shard, [800, 900, 900]);
        assert_eq!(Shards::default().shard_of(b"x"), 0);
        assert_eq!(Shards::default().count(), 1);
    }

    #[test]
    fn mixes_have_their_proportions() {
        let mut rng = StdRng::seed_from_u64(1);
        let count = |w: Workload, op: Op, rng: &mut StdRng| {
            (0..10_000).filter(|_| w.next_op(rng) == op).count()
        };
        assert!((4700..5300).contains(&count(Workload::A, Op::Read, &mut rng)));
        assert!((9300..9700).contains(&count(Workload::B, Op::Read, &mut rng)));
        assert_eq!(count(Workload::C, Op::Read, &mut rng), 10_000);
        assert!((300..700).contains(&count(Workload::E, Op::Insert, &mut rng)));
        assert!((4700..5300).contains(&count(Workload::F, Op::Rmw, &mut rng)));
        for w in [Workload::Put, Workload::A, Workload::E, Workload::Txn] {
            assert!(w.ops().contains(&w.next_op(&mut rng)));
        }
    }

    #[test]
    fn balances_round_trip() {
        assert_eq!(balance(None), 0);
        assert_eq!(balance(Some(&[1])), 1);
        let v = with_balance(None, 16, 7);
        assert_eq!((v.len(), balance(Some(&v))), (16, 7));
        let w = with_balance(Some(&v), 16, u64::MAX);
        assert_eq!(balance(Some(&w)), u64::MAX);
        assert_eq!(with_balance(Some(b"ab"), 0, 1).len(), 8);
    }
}
