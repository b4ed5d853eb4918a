//! The portable snapshot stream (ENGINE.md section 7): one engine-neutral, versioned,
//! checksummed format, written and read here for every engine.
//!
//! ```text
//! header  := magic "EKVSNAP\0" | version u16 | flags u16 (0)
//!            | last_commit_ts u64 | min_retained_ts u64 | crc32 u32 (of the above)
//! block*  := payload_len u32 (> 0) | crc32 u32 (of payload) | payload
//! end     := 0u32 | keys u64 | versions u64 | crc32 u32 (of the two counts)
//! payload := record+
//! record  := 0x01 key_len u32 key | 0x02         (new key | same key as before)
//!            ts u64 | kind u8 (0 value, 1 tombstone) | expire_at u64
//!            | value_len u32 value                (value_len is 0 for a tombstone)
//! ```
//!
//! All integers are big-endian. Versions appear in (key ascending, ts descending)
//! order, which the reader verifies, together with every checksum, the engine's limits
//! and the final counts. Each block begins with a new-key record, so a reader needs to
//! hold only one block (about [`BLOCK_TARGET`] bytes, or one large value) at a time.

use std::io::{ErrorKind, Read, Write};

use crate::{EngineError, Limits, Result, SnapshotStats, Timestamp, Version, VersionKind};

/// The stream's magic bytes.
pub const MAGIC: &[u8; 8] = b"EKVSNAP\0";
/// The format version this crate writes and reads.
pub const FORMAT_VERSION: u16 = 1;
/// The payload size at which the writer closes a block.
pub const BLOCK_TARGET: usize = 256 * 1024;

const HEADER_LEN: usize = 8 + 2 + 2 + 8 + 8;
const TAG_NEW_KEY: u8 = 0x01;
const TAG_SAME_KEY: u8 = 0x02;
const KIND_VALUE: u8 = 0;
const KIND_TOMBSTONE: u8 = 1;
/// Fixed bytes of one record besides key and value: tag, ts, kind, expire_at, value_len.
const RECORD_FIXED: usize = 1 + 8 + 1 + 8 + 4;

/// The header values of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamHeader {
    /// `last_commit_ts` of the image.
    pub last_commit_ts: Timestamp,
    /// The retention watermark of the image.
    pub min_retained_ts: Timestamp,
}

/// Writes a snapshot stream, one version at a time, in (key asc, ts desc) order.
#[derive(Debug)]
pub struct SnapshotWriter<W: Write> {
    out: W,
    block: Vec<u8>,
    last_key: Option<Vec<u8>>,
    last_ts: Timestamp,
    key_in_block: bool,
    header: StreamHeader,
    stats: SnapshotStats,
}

impl<W: Write> SnapshotWriter<W> {
    /// Starts a stream and writes its header.
    pub fn new(mut out: W, last_commit_ts: Timestamp, min_retained_ts: Timestamp) -> Result<Self> {
        let mut header = Vec::with_capacity(HEADER_LEN + 4);
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(&FORMAT_VERSION.to_be_bytes());
        header.extend_from_slice(&0u16.to_be_bytes());
        header.extend_from_slice(&last_commit_ts.to_be_bytes());
        header.extend_from_slice(&min_retained_ts.to_be_bytes());
        let crc = crc32fast::hash(&header);
        header.extend_from_slice(&crc.to_be_bytes());
        out.write_all(&header)?;
        Ok(SnapshotWriter {
            out,
            block: Vec::with_capacity(BLOCK_TARGET + 1024),
            last_key: None,
            last_ts: 0,
            key_in_block: false,
            header: StreamHeader {
                last_commit_ts,
                min_retained_ts,
            },
            stats: SnapshotStats {
                bytes: header.len() as u64,
                ..SnapshotStats::default()
            },
        })
    }

    /// Appends one version. Fails (writing nothing more) if the order is violated.
    pub fn push(&mut self, key: &[u8], version: &Version) -> Result<()> {
        let value = match &version.kind {
            VersionKind::Value(v) => Some(v.as_slice()),
            VersionKind::Tombstone => None,
        };
        self.push_parts(key, version.ts, value, version.expire_at)
    }

    /// Appends one version given as parts (`value == None` is a tombstone), avoiding a
    /// copy of the value.
    pub fn push_parts(
        &mut self,
        key: &[u8],
        ts: Timestamp,
        value: Option<&[u8]>,
        expire_at: Timestamp,
    ) -> Result<()> {
        let same_key = match &self.last_key {
            Some(last) if last.as_slice() == key => {
                if ts >= self.last_ts {
                    return Err(EngineError::InvalidArgument(format!(
                        "snapshot versions out of order: ts {ts} after {} for the same key",
                        self.last_ts
                    )));
                }
                true
            }
            Some(last) if last.as_slice() > key => {
                return Err(EngineError::InvalidArgument(
                    "snapshot keys out of order".into(),
                ))
            }
            _ => false,
        };
        if key.len() > u32::MAX as usize || value.is_some_and(|v| v.len() > u32::MAX as usize) {
            return Err(EngineError::InvalidArgument(
                "record too large for the stream".into(),
            ));
        }
        if same_key && self.key_in_block {
            self.block.push(TAG_SAME_KEY);
        } else {
            self.block.push(TAG_NEW_KEY);
            self.block
                .extend_from_slice(&(key.len() as u32).to_be_bytes());
            self.block.extend_from_slice(key);
            self.key_in_block = true;
        }
        self.block.extend_from_slice(&ts.to_be_bytes());
        match value {
            Some(v) => {
                self.block.push(KIND_VALUE);
                self.block.extend_from_slice(&expire_at.to_be_bytes());
                self.block
                    .extend_from_slice(&(v.len() as u32).to_be_bytes());
                self.block.extend_from_slice(v);
            }
            None => {
                self.block.push(KIND_TOMBSTONE);
                self.block.extend_from_slice(&0u64.to_be_bytes());
                self.block.extend_from_slice(&0u32.to_be_bytes());
            }
        }
        if !same_key {
            self.stats.keys += 1;
            match &mut self.last_key {
                Some(last) => {
                    last.clear();
                    last.extend_from_slice(key);
                }
                None => self.last_key = Some(key.to_vec()),
            }
        }
        self.last_ts = ts;
        self.stats.versions += 1;
        if self.block.len() >= BLOCK_TARGET {
            self.flush_block()?;
        }
        Ok(())
    }

    fn flush_block(&mut self) -> Result<()> {
        if self.block.is_empty() {
            return Ok(());
        }
        let len = u32::try_from(self.block.len())
            .map_err(|_| EngineError::InvalidArgument("snapshot block too large".into()))?;
        self.out.write_all(&len.to_be_bytes())?;
        self.out
            .write_all(&crc32fast::hash(&self.block).to_be_bytes())?;
        self.out.write_all(&self.block)?;
        self.stats.bytes += 8 + self.block.len() as u64;
        self.block.clear();
        self.key_in_block = false;
        Ok(())
    }

    /// The header this writer wrote.
    pub fn header(&self) -> StreamHeader {
        self.header
    }

    /// Writes the last block and the end marker, flushes, and returns the counts.
    pub fn finish(mut self) -> Result<SnapshotStats> {
        self.flush_block()?;
        let mut end = Vec::with_capacity(24);
        end.extend_from_slice(&0u32.to_be_bytes());
        let mut counts = Vec::with_capacity(16);
        counts.extend_from_slice(&self.stats.keys.to_be_bytes());
        counts.extend_from_slice(&self.stats.versions.to_be_bytes());
        end.extend_from_slice(&counts);
        end.extend_from_slice(&crc32fast::hash(&counts).to_be_bytes());
        self.out.write_all(&end)?;
        self.out.flush()?;
        self.stats.bytes += end.len() as u64;
        Ok(self.stats)
    }
}

/// Reads and verifies a snapshot stream, one version at a time.
///
/// Every problem (bad magic, unknown version, checksum mismatch, truncation, bad order,
/// over-limit key or value, wrong counts, trailing bytes) is reported as
/// [`EngineError::Corrupted`] or the limit's own error; nothing panics.
#[derive(Debug)]
pub struct SnapshotReader<R: Read> {
    input: R,
    limits: Limits,
    header: StreamHeader,
    block: Vec<u8>,
    pos: usize,
    key: Vec<u8>,
    have_key: bool,
    key_in_block: bool,
    last_ts: Timestamp,
    keys: u64,
    versions: u64,
    bytes: u64,
    done: bool,
}

impl<R: Read> SnapshotReader<R> {
    /// Reads and checks the header.
    pub fn new(mut input: R, limits: Limits) -> Result<Self> {
        let mut header = [0u8; HEADER_LEN + 4];
        read_exact_or_truncated(&mut input, &mut header, "header")?;
        if &header[..8] != MAGIC {
            return Err(EngineError::corrupted(
                "not a snapshot stream: bad magic bytes",
            ));
        }
        let crc = u32::from_be_bytes(header[HEADER_LEN..].try_into().expect("4 bytes"));
        if crc32fast::hash(&header[..HEADER_LEN]) != crc {
            return Err(EngineError::corrupted("snapshot header checksum mismatch"));
        }
        let version = u16::from_be_bytes([header[8], header[9]]);
        if version != FORMAT_VERSION {
            return Err(EngineError::Incompatible(format!(
                "snapshot format version {version} is not supported (this build reads {FORMAT_VERSION})"
            )));
        }
        let flags = u16::from_be_bytes([header[10], header[11]]);
        if flags != 0 {
            return Err(EngineError::Incompatible(format!(
                "snapshot uses unknown flags {flags:#06x}"
            )));
        }
        let last_commit_ts = u64::from_be_bytes(header[12..20].try_into().expect("8 bytes"));
        let min_retained_ts = u64::from_be_bytes(header[20..28].try_into().expect("8 bytes"));
        Ok(SnapshotReader {
            input,
            limits,
            header: StreamHeader {
                last_commit_ts,
                min_retained_ts,
            },
            block: Vec::new(),
            pos: 0,
            key: Vec::new(),
            have_key: false,
            key_in_block: false,
            last_ts: 0,
            keys: 0,
            versions: 0,
            bytes: header.len() as u64,
            done: false,
        })
    }

    /// The header's values.
    pub fn header(&self) -> StreamHeader {
        self.header
    }

    /// Stream bytes consumed so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes
    }

    /// Keys and versions read so far.
    pub fn counts(&self) -> (u64, u64) {
        (self.keys, self.versions)
    }

    /// The next version as (key, version), or `None` after the verified end marker.
    /// The key and value borrow the reader's buffers until the next call.
    pub fn next_version(&mut self) -> Result<Option<(&[u8], ReadVersion<'_>)>> {
        if self.done {
            return Ok(None);
        }
        if self.pos == self.block.len() && !self.next_block()? {
            return Ok(None);
        }
        let mut cur = Cursor {
            buf: &self.block,
            pos: self.pos,
        };
        let tag = cur.u8()?;
        let new_key = match tag {
            TAG_NEW_KEY => true,
            TAG_SAME_KEY if self.key_in_block => false,
            TAG_SAME_KEY => {
                return Err(EngineError::corrupted(
                    "same-key record at the start of a block",
                ))
            }
            other => {
                return Err(EngineError::corrupted(format!(
                    "unknown record tag {other}"
                )))
            }
        };
        let mut key_range = None;
        if new_key {
            let len = cur.u32()? as usize;
            if len == 0 {
                return Err(EngineError::corrupted("empty key in snapshot stream"));
            }
            if len > self.limits.max_key_size {
                return Err(EngineError::KeyTooLarge {
                    size: len,
                    limit: self.limits.max_key_size,
                });
            }
            let start = cur.pos;
            cur.skip(len)?;
            key_range = Some(start..cur.pos);
        }
        let ts = cur.u64()?;
        let kind = cur.u8()?;
        let expire_at = cur.u64()?;
        let value_len = cur.u32()? as usize;
        if value_len > self.limits.max_value_size {
            return Err(EngineError::ValueTooLarge {
                size: value_len,
                limit: self.limits.max_value_size,
            });
        }
        let value_start = cur.pos;
        cur.skip(value_len)?;
        let value_range = value_start..cur.pos;
        self.pos = cur.pos;

        if ts == 0 || ts > self.header.last_commit_ts {
            return Err(EngineError::corrupted(format!(
                "version ts {ts} outside 1..={}",
                self.header.last_commit_ts
            )));
        }
        match kind {
            KIND_VALUE => {}
            KIND_TOMBSTONE if value_len == 0 && expire_at == 0 => {}
            KIND_TOMBSTONE => return Err(EngineError::corrupted("tombstone with payload")),
            other => {
                return Err(EngineError::corrupted(format!(
                    "unknown version kind {other}"
                )))
            }
        }
        // A new-key record repeating the previous key continues that key's versions
        // across a block boundary; otherwise keys must strictly ascend.
        let continues = match &key_range {
            Some(range) => self.have_key && self.block[range.clone()] == self.key[..],
            None => true,
        };
        if let (Some(range), false) = (key_range, continues) {
            let key = &self.block[range];
            if self.have_key && key < self.key.as_slice() {
                return Err(EngineError::corrupted("snapshot keys out of order"));
            }
            self.key.clear();
            self.key.extend_from_slice(key);
            self.have_key = true;
            self.keys += 1;
        } else if ts >= self.last_ts {
            return Err(EngineError::corrupted(
                "snapshot versions of one key out of order",
            ));
        }
        self.key_in_block = true;
        self.last_ts = ts;
        self.versions += 1;
        let value = (kind == KIND_VALUE).then(|| &self.block[value_range]);
        Ok(Some((
            &self.key,
            ReadVersion {
                ts,
                value,
                expire_at,
            },
        )))
    }

    fn next_block(&mut self) -> Result<bool> {
        let mut len = [0u8; 4];
        read_exact_or_truncated(&mut self.input, &mut len, "block length")?;
        let len = u32::from_be_bytes(len) as usize;
        if len == 0 {
            self.finish_stream()?;
            return Ok(false);
        }
        let max_block =
            BLOCK_TARGET + RECORD_FIXED + 4 + self.limits.max_key_size + self.limits.max_value_size;
        if len > max_block {
            return Err(EngineError::corrupted(format!(
                "snapshot block of {len} bytes exceeds the {max_block}-byte maximum"
            )));
        }
        let mut crc = [0u8; 4];
        read_exact_or_truncated(&mut self.input, &mut crc, "block checksum")?;
        self.block.clear();
        self.block.resize(len, 0);
        read_exact_or_truncated(&mut self.input, &mut self.block, "block")?;
        if crc32fast::hash(&self.block) != u32::from_be_bytes(crc) {
            return Err(EngineError::corrupted("snapshot block checksum mismatch"));
        }
        self.bytes += 8 + len as u64;
        self.pos = 0;
        self.key_in_block = false;
        if self.block.first() != Some(&TAG_NEW_KEY) {
            return Err(EngineError::corrupted(
                "snapshot block does not start with a key",
            ));
        }
        Ok(true)
    }

    fn finish_stream(&mut self) -> Result<()> {
        let mut end = [0u8; 20];
        read_exact_or_truncated(&mut self.input, &mut end, "end marker")?;
        let crc = u32::from_be_bytes(end[16..].try_into().expect("4 bytes"));
        if crc32fast::hash(&end[..16]) != crc {
            return Err(EngineError::corrupted(
                "snapshot end-marker checksum mismatch",
            ));
        }
        let keys = u64::from_be_bytes(end[..8].try_into().expect("8 bytes"));
        let versions = u64::from_be_bytes(end[8..16].try_into().expect("8 bytes"));
        if keys != self.keys || versions != self.versions {
            return Err(EngineError::corrupted(format!(
                "snapshot end marker counts {keys} keys / {versions} versions, stream held {} / {}",
                self.keys, self.versions
            )));
        }
        let mut probe = [0u8; 1];
        loop {
            match self.input.read(&mut probe) {
                Ok(0) => break,
                Ok(_) => return Err(EngineError::corrupted("trailing bytes after snapshot end")),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            }
        }
        self.bytes += 24;
        self.done = true;
        Ok(())
    }
}

/// A version as read from a stream, borrowing the reader's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadVersion<'a> {
    /// Its timestamp.
    pub ts: Timestamp,
    /// The value, `None` for a tombstone.
    pub value: Option<&'a [u8]>,
    /// The TTL, `0` for none.
    pub expire_at: Timestamp,
}

impl ReadVersion<'_> {
    /// An owned [`Version`].
    pub fn to_version(&self) -> Version {
        Version {
            ts: self.ts,
            kind: match self.value {
                Some(v) => VersionKind::Value(v.to_vec()),
                None => VersionKind::Tombstone,
            },
            expire_at: self.expire_at,
        }
    }
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn skip(&mut self, n: usize) -> Result<()> {
        if self.buf.len() - self.pos < n {
            return Err(EngineError::corrupted(
                "snapshot record runs past its block",
            ));
        }
        self.pos += n;
        Ok(())
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N]> {
        let start = self.pos;
        self.skip(N)?;
        Ok(self.buf[start..self.pos].try_into().expect("N bytes"))
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take::<1>()?[0])
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_be_bytes(self.take()?))
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_be_bytes(self.take()?))
    }
}

fn read_exact_or_truncated(input: &mut impl Read, buf: &mut [u8], what: &str) -> Result<()> {
    input.read_exact(buf).map_err(|e| {
        if e.kind() == ErrorKind::UnexpectedEof {
            EngineError::corrupted(format!("snapshot stream truncated in its {what}"))
        } else {
            EngineError::Io(e)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut out = Vec::new();
        let mut w = SnapshotWriter::new(&mut out, 30, 5).unwrap();
        w.push(b"a", &Version::value(30, "a30")).unwrap();
        w.push(b"a", &Version::tombstone(20)).unwrap();
        w.push(
            b"b",
            &Version {
                ts: 10,
                kind: VersionKind::Value(b"b10".to_vec()),
                expire_at: 99,
            },
        )
        .unwrap();
        w.finish().unwrap();
        out
    }

    fn read_all(bytes: &[u8]) -> Result<Vec<(Vec<u8>, Version)>> {
        let mut r = SnapshotReader::new(bytes, Limits::DEFAULT)?;
        let mut out = Vec::new();
        while let Some((k, v)) = r.next_version()? {
            out.push((k.to_vec(), v.to_version()));
        }
        Ok(out)
    }

    #[test]
    fn stream_round_trips() {
        let bytes = sample();
        let r = SnapshotReader::new(&bytes[..], Limits::DEFAULT).unwrap();
        assert_eq!(
            r.header(),
            StreamHeader {
                last_commit_ts: 30,
                min_retained_ts: 5
            }
        );
        let all = read_all(&bytes).unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(all[1], (b"a".to_vec(), Version::tombstone(20)));
        assert_eq!(all[2].1.expire_at, 99);
    }

    #[test]
    fn every_truncation_and_every_flipped_byte_is_detected() {
        let bytes = sample();
        for cut in 0..bytes.len() {
            assert!(
                read_all(&bytes[..cut]).is_err(),
                "truncation at {cut} accepted"
            );
        }
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x40;
            assert!(read_all(&bad).is_err(), "flipped byte {i} accepted");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(read_all(&longer).is_err());
    }

    #[test]
    fn writer_refuses_out_of_order_versions() {
        let mut w = SnapshotWriter::new(Vec::new(), 30, 0).unwrap();
        w.push(b"b", &Version::value(3, "x")).unwrap();
        assert!(w.push(b"b", &Version::value(3, "y")).is_err());
        assert!(w.push(b"a", &Version::value(1, "y")).is_err());
    }

    #[test]
    fn large_stores_span_many_blocks() {
        let mut out = Vec::new();
        let mut w = SnapshotWriter::new(&mut out, 1000, 0).unwrap();
        let value = vec![7u8; 1000];
        for i in 0..2000u32 {
            w.push_parts(&i.to_be_bytes(), 1000 - (i % 7) as u64, Some(&value), 0)
                .unwrap();
            w.push_parts(&i.to_be_bytes(), 1, None, 0).unwrap();
        }
        let stats = w.finish().unwrap();
        assert_eq!(stats.versions, 4000);
        assert_eq!(stats.bytes as usize, out.len());
        assert_eq!(read_all(&out).unwrap().len(), 4000);
    }
}
