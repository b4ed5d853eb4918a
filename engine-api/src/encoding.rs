//! The order-preserving on-disk encoding for byte-ordered backends (ENGINE.md
//! section 10), written once for every backend.
//!
//! A version of user key `k` at timestamp `ts` is stored under
//!
//! ```text
//! escape(k) ++ 0x00 0x01 ++ big_endian(u64::MAX - ts)
//! ```
//!
//! where `escape` replaces each `0x00` byte by `0x00 0xff`. The escaped key plus its
//! terminator `0x00 0x01` is *prefix-free* and sorts exactly like the user key, so the
//! backend's byte order is (user key ascending, ts descending). Plain concatenation of
//! key and ts is wrong when one key is a prefix of another (`a` < `ab`, but `a`+ts can
//! sort after `ab`+ts): the seed system shipped that bug.
//!
//! A stored value is one flags byte (bit 0: tombstone, bit 1: a TTL follows), then the
//! big-endian `expire_at` when bit 1 is set, then the value bytes.

use crate::{EngineError, Result, Timestamp, VersionKind};

const ESCAPE: u8 = 0x00;
const ESCAPED_ZERO: u8 = 0xff;
const TERMINATOR: u8 = 0x01;
const TS_LEN: usize = 8;

const FLAG_TOMBSTONE: u8 = 0b01;
const FLAG_TTL: u8 = 0b10;

/// The longest encoding of a user key of `len` bytes (all zero bytes), including the
/// timestamp suffix.
pub const fn max_encoded_len(len: usize) -> usize {
    2 * len + 2 + TS_LEN
}

/// The longest user key whose encoding always fits in `max_encoded` bytes.
pub const fn max_user_key_for(max_encoded: usize) -> usize {
    max_encoded.saturating_sub(2 + TS_LEN) / 2
}

/// Appends `escape(key) ++ terminator` to `out`: the prefix shared by every version of
/// `key`, and the lower bound of every key at or after `key`.
pub fn encode_user_key_into(key: &[u8], out: &mut Vec<u8>) {
    out.reserve(key.len() + 2 + TS_LEN);
    for chunk in key.split_inclusive(|b| *b == ESCAPE) {
        out.extend_from_slice(chunk);
        if chunk.last() == Some(&ESCAPE) {
            out.push(ESCAPED_ZERO);
        }
    }
    out.push(ESCAPE);
    out.push(TERMINATOR);
}

/// `escape(key) ++ terminator`: see [`encode_user_key_into`].
pub fn encode_user_key(key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + 2 + TS_LEN);
    encode_user_key_into(key, &mut out);
    out
}

/// The full encoded key of `key`'s version at `ts`.
pub fn encode_version_key(key: &[u8], ts: Timestamp) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + 2 + TS_LEN);
    encode_user_key_into(key, &mut out);
    out.extend_from_slice(&(u64::MAX - ts).to_be_bytes());
    out
}

/// The encoded key that sorts after every version of every key `<= key`: the exclusive
/// upper bound of `key`'s versions and the lower bound of the next key.
pub fn encode_key_successor(key: &[u8]) -> Vec<u8> {
    let mut out = encode_user_key(key);
    out.extend_from_slice(&[0xff; TS_LEN + 1]);
    out
}

/// Splits an encoded version key into (encoded user-key prefix, ts) without decoding
/// the user key. The prefix is what [`encode_user_key`] returns for that key.
pub fn split_version_key(encoded: &[u8]) -> Result<(&[u8], Timestamp)> {
    if encoded.len() < 2 + TS_LEN {
        return Err(EngineError::corrupted(format!(
            "encoded key of {} bytes is too short",
            encoded.len()
        )));
    }
    let (prefix, ts) = encoded.split_at(encoded.len() - TS_LEN);
    if !prefix.ends_with(&[ESCAPE, TERMINATOR]) {
        return Err(EngineError::corrupted("encoded key lacks its terminator"));
    }
    let inverted = u64::from_be_bytes(ts.try_into().expect("split at TS_LEN"));
    Ok((prefix, u64::MAX - inverted))
}

/// Decodes an encoded user-key prefix (as returned by [`split_version_key`]) back to
/// the user key.
pub fn decode_user_key(prefix: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(prefix.len());
    let mut bytes = prefix.iter();
    while let Some(&b) = bytes.next() {
        if b != ESCAPE {
            out.push(b);
            continue;
        }
        match bytes.next() {
            Some(&ESCAPED_ZERO) => out.push(0),
            Some(&TERMINATOR) if bytes.as_slice().is_empty() => return Ok(out),
            _ => return Err(EngineError::corrupted("bad escape sequence in encoded key")),
        }
    }
    Err(EngineError::corrupted("encoded key lacks its terminator"))
}

/// Decodes a full encoded version key into (user key, ts).
pub fn decode_version_key(encoded: &[u8]) -> Result<(Vec<u8>, Timestamp)> {
    let (prefix, ts) = split_version_key(encoded)?;
    Ok((decode_user_key(prefix)?, ts))
}

/// Encodes a stored value: flags, optional `expire_at`, value bytes.
pub fn encode_value(kind: &VersionKind, expire_at: Timestamp) -> Vec<u8> {
    match kind {
        VersionKind::Tombstone => vec![FLAG_TOMBSTONE],
        VersionKind::Value(v) => encode_live_value(v, expire_at),
    }
}

/// Encodes a live value without building a [`VersionKind`].
pub fn encode_live_value(value: &[u8], expire_at: Timestamp) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 9);
    if expire_at == 0 {
        out.push(0);
    } else {
        out.push(FLAG_TTL);
        out.extend_from_slice(&expire_at.to_be_bytes());
    }
    out.extend_from_slice(value);
    out
}

/// A decoded stored value that borrows the value bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredValue<'a> {
    /// `None` for a tombstone.
    pub value: Option<&'a [u8]>,
    /// The TTL, `0` for none.
    pub expire_at: Timestamp,
}

impl StoredValue<'_> {
    /// The value a read at `read_ts` sees when this is the newest version at or below
    /// it (the visibility rule of ENGINE.md section 2).
    pub fn visible_at(&self, read_ts: Timestamp) -> Option<&[u8]> {
        match self.value {
            Some(_) if self.expire_at != 0 && self.expire_at <= read_ts => None,
            v => v,
        }
    }

    /// True when this version hides the key from every read at `ts >= at`.
    pub fn hides_from(&self, at: Timestamp) -> bool {
        self.value.is_none() || (self.expire_at != 0 && self.expire_at <= at)
    }

    /// Converts to an owned [`VersionKind`].
    pub fn to_kind(&self) -> VersionKind {
        match self.value {
            None => VersionKind::Tombstone,
            Some(v) => VersionKind::Value(v.to_vec()),
        }
    }
}

/// Decodes a stored value.
pub fn decode_value(bytes: &[u8]) -> Result<StoredValue<'_>> {
    let (&flags, rest) = bytes
        .split_first()
        .ok_or_else(|| EngineError::corrupted("empty stored value"))?;
    if flags & !(FLAG_TOMBSTONE | FLAG_TTL) != 0 {
        return Err(EngineError::corrupted(format!(
            "unknown value flags {flags:#04x}"
        )));
    }
    if flags & FLAG_TOMBSTONE != 0 {
        if flags != FLAG_TOMBSTONE || !rest.is_empty() {
            return Err(EngineError::corrupted("tombstone with payload"));
        }
        return Ok(StoredValue {
            value: None,
            expire_at: 0,
        });
    }
    if flags & FLAG_TTL != 0 {
        if rest.len() < 8 {
            return Err(EngineError::corrupted("stored value truncated in its TTL"));
        }
        let (ttl, value) = rest.split_at(8);
        let expire_at = u64::from_be_bytes(ttl.try_into().expect("split at 8"));
        return Ok(StoredValue {
            value: Some(value),
            expire_at,
        });
    }
    Ok(StoredValue {
        value: Some(rest),
        expire_at: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn prefix_related_keys_sort_like_user_keys_at_every_ts() {
        let keys: [&[u8]; 8] = [b"", b"\0", b"k", b"k\0", b"k\0\0", b"k1", b"k10", b"k\xff"];
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                assert!(a < b, "test keys are listed in order");
                for (ta, tb) in [(0, u64::MAX), (u64::MAX, 0), (5, 5)] {
                    assert!(
                        encode_version_key(a, ta) < encode_version_key(b, tb),
                        "{a:?}@{ta} must sort before {b:?}@{tb}"
                    );
                }
                assert!(encode_key_successor(a) <= encode_user_key(b));
            }
        }
    }

    #[test]
    fn versions_of_a_key_sort_newest_first_within_its_bounds() {
        let lower = encode_user_key(b"k");
        let upper = encode_key_successor(b"k");
        let v1 = encode_version_key(b"k", 1);
        let v9 = encode_version_key(b"k", 9);
        assert!(lower < v9 && v9 < v1 && v1 < upper);
        assert!(encode_version_key(b"k", 0) < upper);
        assert!(lower < encode_version_key(b"k", u64::MAX));
    }

    #[test]
    fn values_round_trip_and_garbage_is_rejected() {
        let v = encode_value(&VersionKind::Value(b"abc".to_vec()), 42);
        assert_eq!(
            decode_value(&v).unwrap(),
            StoredValue {
                value: Some(b"abc"),
                expire_at: 42
            }
        );
        let t = encode_value(&VersionKind::Tombstone, 0);
        assert_eq!(decode_value(&t).unwrap().value, None);
        assert!(decode_value(&[]).is_err());
        assert!(decode_value(&[0x80]).is_err());
        assert!(decode_value(&[FLAG_TTL, 1, 2]).is_err());
        assert!(decode_value(&[FLAG_TOMBSTONE, 7]).is_err());
        assert!(decode_version_key(b"short").is_err());
        assert!(decode_user_key(b"a\x00\x02\x00\x01").is_err());
    }

    proptest! {
        #[test]
        fn encoding_round_trips_and_preserves_order(
            a in proptest::collection::vec(prop_oneof![Just(0u8), Just(1u8), Just(0xffu8), any::<u8>()], 0..12),
            b in proptest::collection::vec(prop_oneof![Just(0u8), Just(1u8), Just(0xffu8), any::<u8>()], 0..12),
            ta in any::<u64>(),
            tb in any::<u64>(),
        ) {
            let ea = encode_version_key(&a, ta);
            let eb = encode_version_key(&b, tb);
            prop_assert_eq!(decode_version_key(&ea).unwrap(), (a.clone(), ta));
            prop_assert!(ea.len() <= max_encoded_len(a.len()));
            let expected = a.cmp(&b).then(tb.cmp(&ta));
            prop_assert_eq!(ea.cmp(&eb), expected);
        }
    }
}
