//! Reading LMDB: the read view and snapshot type, and the bounds LMDB accepts.

use std::fmt;
use std::ops::Bound;

use elastickv_engine_api::ordered::{Direction, OrderedRead, Table, Visitor};
use elastickv_engine_api::Result;
use heed::{RoTxn, WithoutTls};

use crate::error::from_heed;
use crate::map::GatePass;
use crate::store::{Db, Tables};

/// True when no key can lie between `lower` and `upper`.
pub(crate) fn range_is_empty(lower: Bound<&[u8]>, upper: Bound<&[u8]>) -> bool {
    match (lower, upper) {
        (Bound::Included(l), Bound::Included(u)) => l > u,
        (Bound::Included(l) | Bound::Excluded(l), Bound::Excluded(u))
        | (Bound::Excluded(l), Bound::Included(u)) => l >= u,
        _ => false,
    }
}

/// A lower and an upper bound over stored keys.
pub(crate) type KeyBounds<'k> = (Bound<&'k [u8]>, Bound<&'k [u8]>);

/// Rewrites range bounds into ones LMDB accepts, selecting the same stored keys, or
/// `None` for a range that selects none.
///
/// LMDB refuses (`MDB_BAD_VALSIZE`) to position a cursor on an empty key or on one
/// longer than its key limit, but callers may pass either as a bound: the empty key
/// means "from the start", and the MVCC layer's seek keys can exceed the longest
/// storable key by a byte. No stored key is empty or longer than `max`, so for a bound
/// `k` longer than `max` with prefix `p = k[..max]`, a stored key `s` is above `k`
/// exactly when it is above `p`, and below `k` exactly when it is at most `p`.
pub(crate) fn storable_bounds<'k>(
    lower: Bound<&'k [u8]>,
    upper: Bound<&'k [u8]>,
    max: usize,
) -> Option<KeyBounds<'k>> {
    let lower = match lower {
        Bound::Included([]) | Bound::Excluded([]) | Bound::Unbounded => Bound::Unbounded,
        Bound::Included(k) | Bound::Excluded(k) if k.len() > max => Bound::Excluded(&k[..max]),
        other => other,
    };
    let upper = match upper {
        Bound::Included([]) | Bound::Excluded([]) => return None,
        Bound::Included(k) | Bound::Excluded(k) if k.len() > max => Bound::Included(&k[..max]),
        other => other,
    };
    (!range_is_empty(lower, upper)).then_some((lower, upper))
}

/// True when `key` could be stored, so LMDB accepts it in a point lookup.
fn storable(key: &[u8], max: usize) -> bool {
    !key.is_empty() && key.len() <= max
}

pub(crate) fn get_in(txn: &RoTxn<'_>, db: Db, key: &[u8], max: usize) -> Result<Option<Vec<u8>>> {
    if !storable(key, max) {
        return Ok(None);
    }
    Ok(db.get(txn, key).map_err(from_heed)?.map(<[u8]>::to_vec))
}

pub(crate) fn scan_in(
    txn: &RoTxn<'_>,
    db: Db,
    lower: Bound<&[u8]>,
    upper: Bound<&[u8]>,
    direction: Direction,
    visit: &mut Visitor<'_>,
    max: usize,
) -> Result<()> {
    let Some(range) = storable_bounds(lower, upper, max) else {
        return Ok(());
    };
    match direction {
        Direction::Forward => {
            for entry in db.range(txn, &range).map_err(from_heed)? {
                let (key, value) = entry.map_err(from_heed)?;
                if !visit(key, value)? {
                    break;
                }
            }
        }
        Direction::Reverse => {
            for entry in db.rev_range(txn, &range).map_err(from_heed)? {
                let (key, value) = entry.map_err(from_heed)?;
                if !visit(key, value)? {
                    break;
                }
            }
        }
    }
    Ok(())
}

/// An LMDB read transaction: the read view (`'e` borrows the store) and, with
/// `'e = 'static`, the snapshot, which owns a handle on the environment and can move
/// to another thread (the environment is opened without thread-local reader slots).
pub struct LmdbRead<'e> {
    pub(crate) txn: RoTxn<'e, WithoutTls>,
    pub(crate) tables: Tables,
    pub(crate) max_key: usize,
    // Dropped after the transaction: the map may not be resized while it is open.
    pub(crate) _pass: GatePass,
}

impl fmt::Debug for LmdbRead<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LmdbRead")
            .field("txn_id", &self.txn.id())
            .finish_non_exhaustive()
    }
}

impl OrderedRead for LmdbRead<'_> {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>> {
        get_in(&self.txn, self.tables.db(table), key, self.max_key)
    }

    fn scan(
        &self,
        table: Table,
        lower: Bound<&[u8]>,
        upper: Bound<&[u8]>,
        direction: Direction,
        visit: &mut Visitor<'_>,
    ) -> Result<()> {
        scan_in(
            &self.txn,
            self.tables.db(table),
            lower,
            upper,
            direction,
            visit,
            self.max_key,
        )
    }
}

#[cfg(test)]
mod tests {
    use std::ops::RangeBounds;

    use super::*;

    #[test]
    fn bounds_lmdb_cannot_seek_to_select_the_same_keys() {
        use Bound::{Excluded, Included, Unbounded};
        let b = |k: &'static [u8]| k;
        assert_eq!(
            storable_bounds(Included(b""), Unbounded, 4),
            Some((Unbounded, Unbounded))
        );
        assert_eq!(
            storable_bounds(Excluded(b""), Excluded(b"b"), 4),
            Some((Unbounded, Excluded(b(b"b"))))
        );
        assert_eq!(storable_bounds(Unbounded, Excluded(b""), 4), None);
        assert_eq!(
            storable_bounds(Included(b"abcdef"), Excluded(b"abcz\xff\xff"), 4),
            Some((Excluded(b(b"abcd")), Included(b(b"abcz"))))
        );
        assert_eq!(
            storable_bounds(Included(b"abcdef"), Included(b"abcdzz"), 4),
            None
        );
        // Every stored key (non-empty, at most 4 bytes) is selected exactly as before.
        let keys: [&[u8]; 7] = [
            b"a",
            b"abc",
            b"abcd",
            b"abce",
            b"abcz",
            b"b",
            b"\xff\xff\xff\xff",
        ];
        let bounds: [Bound<&[u8]>; 5] = [
            Unbounded,
            Included(b"abcdef"),
            Excluded(b"abcdef"),
            Included(b"abcd"),
            Excluded(b""),
        ];
        for lower in bounds {
            for upper in bounds {
                let selected = |k: &[u8]| (lower, upper).contains(k);
                let clamped = storable_bounds(lower, upper, 4);
                for key in keys {
                    let now = clamped.is_some_and(|r| r.contains(key));
                    assert_eq!(now, selected(key), "{key:?} in {lower:?}..{upper:?}");
                }
            }
        }
    }

    #[test]
    fn inverted_and_touching_bounds_are_empty() {
        use Bound::{Excluded, Included, Unbounded};
        assert!(range_is_empty(Included(b"b"), Excluded(b"a")));
        assert!(range_is_empty(Included(b"a"), Excluded(b"a")));
        assert!(range_is_empty(Excluded(b"a"), Included(b"a")));
        assert!(!range_is_empty(Included(b"a"), Included(b"a")));
        assert!(!range_is_empty(Unbounded, Excluded(b"a")));
    }
}
