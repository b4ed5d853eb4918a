//! Key ranges used by scans, compaction scopes and raw range deletes.

use std::ops::Bound;

/// A half-open range of keys `[start, end)`; `end == None` means unbounded above.
///
/// A range whose `end` is at or below its `start` is empty: scans over it return nothing
/// and deletes over it remove nothing. It is never an error.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyRange {
    /// The smallest key included. The empty key means "from the beginning".
    pub start: Vec<u8>,
    /// The first key excluded, or `None` for no upper bound.
    pub end: Option<Vec<u8>>,
}

impl KeyRange {
    /// Every key.
    pub fn all() -> Self {
        KeyRange {
            start: Vec::new(),
            end: None,
        }
    }

    /// `[start, end)`.
    pub fn new(start: impl Into<Vec<u8>>, end: impl Into<Vec<u8>>) -> Self {
        KeyRange {
            start: start.into(),
            end: Some(end.into()),
        }
    }

    /// `[start, ∞)`.
    pub fn from(start: impl Into<Vec<u8>>) -> Self {
        KeyRange {
            start: start.into(),
            end: None,
        }
    }

    /// Every key that starts with `prefix`.
    pub fn prefix(prefix: &[u8]) -> Self {
        KeyRange {
            start: prefix.to_vec(),
            end: prefix_successor(prefix),
        }
    }

    /// True when no key can fall in the range.
    pub fn is_empty(&self) -> bool {
        matches!(&self.end, Some(end) if end.as_slice() <= self.start.as_slice())
    }

    /// True when `key` falls in the range.
    pub fn contains(&self, key: &[u8]) -> bool {
        key >= self.start.as_slice() && self.end.as_deref().is_none_or(|end| key < end)
    }

    /// The range as a pair of bounds, for `BTreeMap::range` and similar APIs.
    pub fn bounds(&self) -> (Bound<&[u8]>, Bound<&[u8]>) {
        (
            Bound::Included(self.start.as_slice()),
            match &self.end {
                Some(end) => Bound::Excluded(end.as_slice()),
                None => Bound::Unbounded,
            },
        )
    }
}

/// The smallest key greater than every key with this prefix, or `None` when there is
/// none (the prefix is empty or all `0xff`).
pub fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last != 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverted_and_equal_ranges_are_empty() {
        assert!(KeyRange::new("b", "a").is_empty());
        assert!(KeyRange::new("a", "a").is_empty());
        assert!(!KeyRange::new("a", "b").is_empty());
        assert!(!KeyRange::all().is_empty());
    }

    #[test]
    fn prefix_range_covers_exactly_the_prefixed_keys() {
        let r = KeyRange::prefix(b"k\xff");
        assert_eq!(r.end.as_deref(), Some(&b"l"[..]));
        assert!(r.contains(b"k\xff"));
        assert!(r.contains(b"k\xff\xff\x00"));
        assert!(!r.contains(b"k\xfe"));
        assert!(!r.contains(b"l"));
        assert_eq!(prefix_successor(b"\xff\xff"), None);
        assert_eq!(KeyRange::prefix(b"").end, None);
    }
}
