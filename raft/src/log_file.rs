//! A Raft log in its own append-only files ("segments"), synced with `fdatasync`.
//!
//! ```text
//! <group dir>/log/<first index, 20 digits>.seg
//!   header:  b"EKVLOG\0\x01"                         (8 bytes: magic + format)
//!   records: len u32 LE | crc32 u32 LE | index u64 LE | payload (len bytes)
//! ```
//!
//! The crc covers the index and the payload. A segment holds consecutive indexes; a new
//! segment starts when the active one passed [`SEGMENT_BYTES`], and also when an append
//! does not follow the last entry (openraft appends past a gap only after a snapshot
//! covered everything before it, so the entries before the gap are dead and their
//! segments are removed).
//!
//! Durability: [`FileLog::append`] returns once the records are written and the segment
//! is synced (`sync_data`; a new segment's file and directory entry with `sync_all`).
//! [`FileLog::truncate`] cuts the segment holding the first removed entry
//! (`set_len` + `sync_all`) and removes the later segments before it returns.
//! [`FileLog::purge`] only forgets entries and removes segments every entry of which is
//! purged; the caller makes the purge marker durable first, so segments a crash brings
//! back are dropped again by [`FileLog::open`].
//!
//! Crash recovery ([`FileLog::open`]): a record cut short or failing its crc in the last
//! segment is a write the crash interrupted (never acknowledged, since the sync had not
//! returned): the segment is cut back to the last whole record. The same in an earlier
//! segment is corruption of acknowledged data and an error.

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::segment::{self, invalid, segment_name, sync_dir, Scanned};

/// Segment header: magic and format version.
const MAGIC: &[u8; 8] = b"EKVLOG\0\x01";
/// Bytes before a record's payload: length, crc, index.
const RECORD_HEADER: usize = 16;
/// A segment stops taking new batches once it holds this many bytes.
pub(crate) const SEGMENT_BYTES: u64 = 64 * 1024 * 1024;
/// Largest payload accepted (a record longer than this is treated as garbage).
const MAX_RECORD: u32 = 1 << 30;

fn record_crc(index: u64, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&index.to_le_bytes());
    hasher.update(payload);
    hasher.finalize()
}

/// Where an entry's record is.
#[derive(Debug, Clone, Copy)]
struct Position {
    /// The segment's start (its key in [`Index::segments`]).
    segment: u64,
    /// Offset of the record header in the segment.
    offset: u64,
    /// Payload length.
    len: u32,
}

#[derive(Debug)]
struct Segment {
    path: PathBuf,
    file: Arc<File>,
    /// Bytes written (header included).
    len: u64,
    /// The last index it holds, if any.
    last: Option<u64>,
}

/// What readers consult: the live entries and the segments.
#[derive(Debug, Default)]
struct Index {
    /// Index of `positions[0]`; when empty, the index the next append is expected at
    /// (0 = anything).
    first: u64,
    positions: VecDeque<Position>,
    segments: BTreeMap<u64, Segment>,
}

impl Index {
    fn last(&self) -> Option<u64> {
        (!self.positions.is_empty()).then(|| self.first + self.positions.len() as u64 - 1)
    }

    fn position(&self, index: u64) -> Option<Position> {
        let offset = index.checked_sub(self.first)?;
        self.positions.get(usize::try_from(offset).ok()?).copied()
    }
}

/// One group's log files. Appends, truncations and purges are serialized (they take
/// `writer`); readers take the `index` lock only, never while a sync runs.
#[derive(Debug)]
pub(crate) struct FileLog {
    dir: PathBuf,
    segment_bytes: u64,
    writer: Mutex<()>,
    index: RwLock<Index>,
}

/// Scans one segment: `(index, position)` of each whole record.
fn scan_segment(path: &Path, start: u64) -> io::Result<Scanned<(u64, Position)>> {
    segment::scan(
        path,
        MAGIC,
        RECORD_HEADER,
        MAX_RECORD,
        |header, payload, offset| {
            let crc = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes"));
            let index = u64::from_le_bytes(header[8..16].try_into().expect("8 bytes"));
            if record_crc(index, payload) != crc {
                return Err("fails its checksum".to_string());
            }
            let len = u32::try_from(payload.len()).expect("at most MAX_RECORD");
            Ok((
                index,
                Position {
                    segment: start,
                    offset,
                    len,
                },
            ))
        },
    )
}

impl FileLog {
    /// Opens (or creates) the log in `dir`, forgetting entries up to `purged` (the
    /// durable purge marker) and removing segments that hold nothing else.
    pub(crate) fn open(dir: &Path, purged: Option<u64>) -> io::Result<FileLog> {
        Self::open_with(dir, purged, SEGMENT_BYTES)
    }

    pub(crate) fn open_with(
        dir: &Path,
        purged: Option<u64>,
        segment_bytes: u64,
    ) -> io::Result<FileLog> {
        let starts = segment::list_segments(dir)?;
        let mut index = Index::default();
        let mut dead: Vec<PathBuf> = Vec::new();
        for (i, &start) in starts.iter().enumerate() {
            let path = dir.join(segment_name(start));
            let scanned = scan_segment(&path, start)?;
            let is_last = i + 1 == starts.len();
            let damage = scanned.damage.as_deref();
            let Some(file) = segment::open_scanned(dir, &path, scanned.valid_len, damage, is_last)?
            else {
                continue;
            };
            let mut last = None;
            for (entry_index, position) in scanned.records {
                match index.last() {
                    Some(prev) if entry_index == prev + 1 => {}
                    Some(prev) if entry_index > prev + 1 => {
                        // A gap: everything before it was covered by a snapshot.
                        index.positions.clear();
                        dead.extend(
                            std::mem::take(&mut index.segments)
                                .into_values()
                                .map(|s| s.path),
                        );
                    }
                    Some(prev) => {
                        return Err(invalid(format!(
                            "log segment {} holds entry {entry_index} after entry {prev}",
                            path.display()
                        )))
                    }
                    None => {}
                }
                if index.positions.is_empty() {
                    index.first = entry_index;
                }
                index.positions.push_back(position);
                last = Some(entry_index);
            }
            index.segments.insert(
                start,
                Segment {
                    path,
                    file: Arc::new(file),
                    len: scanned.valid_len,
                    last,
                },
            );
        }
        for path in dead {
            std::fs::remove_file(path)?;
        }
        let log = FileLog {
            dir: dir.to_path_buf(),
            segment_bytes,
            writer: Mutex::new(()),
            index: RwLock::new(index),
        };
        if let Some(purged) = purged {
            log.forget_upto(purged)?;
        }
        Ok(log)
    }

    /// The first and last index held, if any.
    pub(crate) fn bounds(&self) -> Option<(u64, u64)> {
        let index = self.index.read();
        index.last().map(|last| (index.first, last))
    }

    /// Appends consecutive entries (`(index, payload)`) and syncs them.
    pub(crate) fn append(&self, entries: &[(u64, Arc<[u8]>)]) -> io::Result<()> {
        let Some(&(first, _)) = entries.first() else {
            return Ok(());
        };
        if let Some(pair) = entries.windows(2).find(|w| w[1].0 != w[0].0 + 1) {
            return Err(invalid(format!(
                "log append is not consecutive: entry {} after {}",
                pair[1].0, pair[0].0
            )));
        }
        let _writer = self.writer.lock();
        let (active, restart) = {
            let index = self.index.read();
            match index.last() {
                Some(last) if first <= last => {
                    return Err(invalid(format!(
                        "log append at entry {first} but the log ends at {last} (truncate first)"
                    )))
                }
                Some(last) => (
                    index
                        .segments
                        .iter()
                        .next_back()
                        .map(|(s, seg)| (*s, seg.len)),
                    first > last + 1,
                ),
                None => (
                    index
                        .segments
                        .iter()
                        .next_back()
                        .map(|(s, seg)| (*s, seg.len)),
                    false,
                ),
            }
        };
        if restart {
            // Entries before a gap were covered by a snapshot: drop them.
            self.forget_upto(first - 1)?;
        }
        let mut buf = Vec::with_capacity(
            entries
                .iter()
                .map(|(_, p)| p.len() + RECORD_HEADER)
                .sum::<usize>(),
        );
        let mut lens = Vec::with_capacity(entries.len());
        for (entry_index, payload) in entries {
            let len = u32::try_from(payload.len())
                .ok()
                .filter(|l| *l <= MAX_RECORD)
                .ok_or_else(|| {
                    invalid(format!(
                        "log entry {entry_index} is {} bytes, over the {MAX_RECORD}-byte limit",
                        payload.len()
                    ))
                })?;
            buf.extend_from_slice(&len.to_le_bytes());
            buf.extend_from_slice(&record_crc(*entry_index, payload).to_le_bytes());
            buf.extend_from_slice(&entry_index.to_le_bytes());
            buf.extend_from_slice(payload);
            lens.push(len);
        }
        let active = if restart { None } else { active };
        let (segment, offset, file) = match active {
            Some((start, len)) if len < self.segment_bytes => {
                let file = Arc::clone(&self.index.read().segments[&start].file);
                (start, len, file)
            }
            _ => self.new_segment(first)?,
        };
        file.write_all_at(&buf, offset)?;
        if offset == MAGIC.len() as u64 {
            // The segment's first records: its size and directory entry become durable too.
            file.sync_all()?;
        } else {
            file.sync_data()?;
        }
        let mut index = self.index.write();
        if index.positions.is_empty() {
            index.first = first;
        }
        let mut at = offset;
        for len in lens {
            index.positions.push_back(Position {
                segment,
                offset: at,
                len,
            });
            at += RECORD_HEADER as u64 + u64::from(len);
        }
        let seg = index
            .segments
            .get_mut(&segment)
            .expect("the active segment is indexed");
        seg.len = at;
        seg.last = Some(entries[entries.len() - 1].0);
        Ok(())
    }

    /// Creates segment `start` with its header and makes its name durable.
    fn new_segment(&self, start: u64) -> io::Result<(u64, u64, Arc<File>)> {
        let (path, file) = segment::create(&self.dir, start, MAGIC)?;
        let file = Arc::new(file);
        self.index.write().segments.insert(
            start,
            Segment {
                path,
                file: Arc::clone(&file),
                len: MAGIC.len() as u64,
                last: None,
            },
        );
        Ok((start, MAGIC.len() as u64, file))
    }

    /// The payloads of the consecutive entries from `start` (or from the first held
    /// entry, if `start` was purged) up to `end` (exclusive), at most `limit`.
    pub(crate) fn read(&self, start: u64, end: u64, limit: usize) -> io::Result<Vec<Vec<u8>>> {
        // Held while reading: a truncation cannot cut a file under this read.
        let index = self.index.read();
        let Some(last) = index.last() else {
            return Ok(Vec::new());
        };
        let start = start.max(index.first);
        let end = end.min(last + 1);
        if start >= end || limit == 0 {
            return Ok(Vec::new());
        }
        let count = usize::try_from(end - start)
            .unwrap_or(usize::MAX)
            .min(limit);
        let mut out = Vec::with_capacity(count);
        let mut run: Vec<(u64, Position)> = Vec::new();
        for entry_index in start..start + count as u64 {
            let position = index.position(entry_index).expect("inside the bounds");
            if run.last().is_some_and(|(_, p)| {
                p.segment != position.segment
                    || p.offset + RECORD_HEADER as u64 + u64::from(p.len) != position.offset
            }) {
                read_run(&index, &run, &mut out)?;
                run.clear();
            }
            run.push((entry_index, position));
        }
        read_run(&index, &run, &mut out)?;
        Ok(out)
    }

    /// Removes the entries from `from` on, durably.
    pub(crate) fn truncate(&self, from: u64) -> io::Result<()> {
        let _writer = self.writer.lock();
        let mut index = self.index.write();
        let Some(last) = index.last() else {
            return Ok(());
        };
        if from > last {
            return Ok(());
        }
        let from = from.max(index.first);
        let cut = index.position(from).expect("inside the bounds");
        let keep = usize::try_from(from - index.first).expect("inside the bounds");
        index.positions.truncate(keep);
        // Newest first: a crash midway leaves a shorter but gap-free log.
        let later: Vec<u64> = index
            .segments
            .range(cut.segment + 1..)
            .rev()
            .map(|(s, _)| *s)
            .collect();
        for start in later {
            let segment = index.segments.remove(&start).expect("listed");
            std::fs::remove_file(&segment.path)?;
        }
        let segment = index.segments.get_mut(&cut.segment).expect("indexed");
        segment.file.set_len(cut.offset)?;
        segment.len = cut.offset;
        segment.last = from.checked_sub(1).filter(|l| *l >= cut.segment);
        let file = Arc::clone(&segment.file);
        drop(index);
        file.sync_all()?;
        sync_dir(&self.dir)
    }

    /// Forgets the entries up to `upto` and removes segments holding nothing else (the
    /// caller has made the purge marker durable).
    pub(crate) fn purge(&self, upto: u64) -> io::Result<()> {
        let _writer = self.writer.lock();
        self.forget_upto(upto)
    }

    fn forget_upto(&self, upto: u64) -> io::Result<()> {
        let mut index = self.index.write();
        match index.last() {
            Some(last) if upto >= last => index.positions.clear(),
            Some(_) if upto >= index.first => {
                let drop_count = usize::try_from(upto + 1 - index.first).expect("in bounds");
                index.positions.drain(..drop_count);
            }
            _ => {}
        }
        if index.positions.is_empty() || upto >= index.first {
            index.first = index.first.max(upto.saturating_add(1));
        }
        let live_from = index.positions.front().map(|p| p.segment);
        let dead: Vec<u64> = index
            .segments
            .iter()
            .filter(|(start, segment)| match live_from {
                Some(live) => **start < live,
                None => segment.last.is_none_or(|l| l <= upto),
            })
            .map(|(start, _)| *start)
            .collect();
        for start in dead {
            let segment = index.segments.remove(&start).expect("listed");
            std::fs::remove_file(&segment.path)?;
        }
        Ok(())
    }
}

/// A log kept in files: one group's own ([`FileLog`]) or its part of the node's shared
/// log ([`crate::shared_log::GroupLog`]). Entries are `(index, encoded entry)`.
pub(crate) trait LogFiles: Send + Sync + std::fmt::Debug {
    /// The first and last index held, if any.
    fn bounds(&self) -> Option<(u64, u64)>;
    /// Appends consecutive entries and returns once they are durable.
    fn append(&self, entries: &[(u64, Arc<[u8]>)]) -> io::Result<()>;
    /// The payloads of the consecutive entries from `start` (or the first held, if
    /// `start` was purged) up to `end` (exclusive), at most `limit`.
    fn read(&self, start: u64, end: u64, limit: usize) -> io::Result<Vec<Vec<u8>>>;
    /// Removes the entries from `from` on, durably.
    fn truncate(&self, from: u64) -> io::Result<()>;
    /// Forgets the entries up to `upto` (the caller made the purge marker durable).
    fn purge(&self, upto: u64) -> io::Result<()>;
    /// The node's shared log and the group, when these files are a group's part of it
    /// (its appends are then written together with the other groups').
    fn shared(&self) -> Option<(Arc<crate::shared_log::SharedLog>, crate::GroupId)> {
        None
    }
}

impl LogFiles for FileLog {
    fn bounds(&self) -> Option<(u64, u64)> {
        FileLog::bounds(self)
    }

    fn append(&self, entries: &[(u64, Arc<[u8]>)]) -> io::Result<()> {
        FileLog::append(self, entries)
    }

    fn read(&self, start: u64, end: u64, limit: usize) -> io::Result<Vec<Vec<u8>>> {
        FileLog::read(self, start, end, limit)
    }

    fn truncate(&self, from: u64) -> io::Result<()> {
        FileLog::truncate(self, from)
    }

    fn purge(&self, upto: u64) -> io::Result<()> {
        FileLog::purge(self, upto)
    }
}

/// Reads the records of `run` (adjacent in one segment) with one read and checks them.
fn read_run(index: &Index, run: &[(u64, Position)], out: &mut Vec<Vec<u8>>) -> io::Result<()> {
    let Some((_, first)) = run.first() else {
        return Ok(());
    };
    let segment = &index.segments[&first.segment];
    let records: Vec<(u64, u32)> = run.iter().map(|(_, p)| (p.offset, p.len)).collect();
    segment::read_adjacent(
        &segment.file,
        &segment.path,
        RECORD_HEADER,
        &records,
        |i, header, payload| {
            let wanted = run[i].0;
            let crc = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes"));
            let stored = u64::from_le_bytes(header[8..16].try_into().expect("8 bytes"));
            if stored == wanted && record_crc(stored, payload) == crc {
                Ok(())
            } else {
                Err(format!("log entry {wanted}"))
            }
        },
        out,
    )
}

#[cfg(test)]
mod tests {
    use std::fs::OpenOptions;

    use super::*;

    fn payload(index: u64) -> Arc<[u8]> {
        Arc::from(format!("entry-{index}-{}", "x".repeat((index % 7) as usize)).into_bytes())
    }

    fn entries(range: std::ops::RangeInclusive<u64>) -> Vec<(u64, Arc<[u8]>)> {
        range.map(|i| (i, payload(i))).collect()
    }

    fn expect_entries(log: &FileLog, range: std::ops::RangeInclusive<u64>) {
        let (start, end) = (*range.start(), *range.end());
        let read = log.read(start, end + 1, usize::MAX).expect("read");
        let want: Vec<Vec<u8>> = range.map(|i| payload(i).to_vec()).collect();
        assert_eq!(read, want);
        assert_eq!(log.bounds(), Some((start, end)));
    }

    fn segments(dir: &Path) -> Vec<u64> {
        segment::list_segments(dir).expect("list")
    }

    /// Small segments, so that a few batches span several files.
    fn open_small(dir: &Path, purged: Option<u64>) -> io::Result<FileLog> {
        FileLog::open_with(dir, purged, 256)
    }

    /// A new log with small segments in a new directory.
    fn fresh() -> (tempfile::TempDir, FileLog) {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = open_small(dir.path(), None).expect("open");
        (dir, log)
    }

    #[test]
    fn entries_survive_reopening_across_several_segments() {
        let (dir, log) = fresh();
        assert_eq!(log.bounds(), None);
        for batch in [1..=5, 6..=6, 7..=20, 21..=30, 31..=40] {
            log.append(&entries(batch)).expect("append");
        }
        expect_entries(&log, 1..=40);
        assert_eq!(log.read(10, 13, 2).expect("read").len(), 2, "limit");
        assert!(segments(dir.path()).len() > 2, "{:?}", segments(dir.path()));
        drop(log);
        let log = open_small(dir.path(), None).expect("reopen");
        expect_entries(&log, 1..=40);
        log.append(&entries(41..=45))
            .expect("append after reopening");
        expect_entries(&log, 1..=45);
    }

    #[test]
    fn appends_that_do_not_follow_the_log_are_refused() {
        let (_dir, log) = fresh();
        log.append(&entries(1..=5)).expect("append");
        let overlap = log.append(&entries(5..=6)).unwrap_err();
        assert!(overlap.to_string().contains("truncate first"), "{overlap}");
        let holes = log.append(&[(6, payload(6)), (8, payload(8))]).unwrap_err();
        assert!(holes.to_string().contains("not consecutive"), "{holes}");
        expect_entries(&log, 1..=5);
    }

    #[test]
    fn an_append_past_a_gap_drops_the_entries_before_it() {
        let (dir, log) = fresh();
        log.append(&entries(1..=30)).expect("append");
        // As after installing a snapshot that covers up to 99.
        log.append(&entries(100..=104)).expect("append past a gap");
        expect_entries(&log, 100..=104);
        assert_eq!(segments(dir.path()), vec![100]);
        drop(log);
        expect_entries(&open_small(dir.path(), None).expect("reopen"), 100..=104);
    }

    #[test]
    fn truncation_is_durable_and_the_log_continues_from_the_cut() {
        let (dir, log) = fresh();
        log.append(&entries(1..=40)).expect("append");
        log.append(&entries(41..=60)).expect("append");
        log.append(&entries(61..=80)).expect("append");
        log.truncate(50).expect("truncate");
        expect_entries(&log, 1..=49);
        log.truncate(90)
            .expect("truncating past the end does nothing");
        expect_entries(&log, 1..=49);
        assert_eq!(
            segments(dir.path()),
            vec![1, 41],
            "the later segment is gone"
        );
        drop(log);
        let log = open_small(dir.path(), None).expect("reopen");
        expect_entries(&log, 1..=49);
        log.append(&entries(50..=55)).expect("append at the cut");
        expect_entries(&log, 1..=55);
        log.truncate(1).expect("truncate everything");
        assert_eq!(log.bounds(), None);
        log.append(&entries(1..=3)).expect("append again");
        drop(log);
        expect_entries(&open_small(dir.path(), None).expect("reopen"), 1..=3);
    }

    #[test]
    fn purging_forgets_entries_and_removes_whole_segments_only() {
        let (dir, log) = fresh();
        for batch in [1..=10, 11..=20, 21..=30] {
            log.append(&entries(batch)).expect("append");
        }
        let before = segments(dir.path());
        assert_eq!(before.len(), 3, "{before:?}");
        log.purge(15).expect("purge");
        expect_entries(&log, 16..=30);
        // A read from a purged index starts at the first entry held.
        assert_eq!(log.read(1, 20, usize::MAX).expect("read").len(), 4);
        assert_eq!(segments(dir.path()), vec![11, 21]);
        // A segment the crash brought back, or the purged head of a kept one, is
        // dropped again on opening with the durable marker.
        drop(log);
        let log = open_small(dir.path(), Some(15)).expect("reopen");
        expect_entries(&log, 16..=30);
        log.purge(40).expect("purge past the end");
        assert_eq!(log.bounds(), None);
        assert!(segments(dir.path()).is_empty());
        log.append(&entries(41..=42))
            .expect("append after purging everything");
        drop(log);
        expect_entries(&open_small(dir.path(), Some(40)).expect("reopen"), 41..=42);
    }

    #[test]
    fn a_torn_write_at_the_end_is_cut_back_to_the_last_whole_record() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = FileLog::open(dir.path(), None).expect("open");
        log.append(&entries(1..=10)).expect("append");
        drop(log);
        let path = dir.path().join(segment_name(1));
        let whole = std::fs::metadata(&path).expect("stat").len();
        // Half of a record header and then half of a record: the crash interrupted
        // the write of entry 11 before its sync returned.
        for garbage in [vec![7u8; 6], {
            let mut torn = 30u32.to_le_bytes().to_vec();
            torn.extend_from_slice(&[0; 12]);
            torn.extend_from_slice(b"only part of the");
            torn
        }] {
            let file = OpenOptions::new().append(true).open(&path).expect("open");
            std::io::Write::write_all(&mut &file, &garbage).expect("write");
            drop(file);
            let log = FileLog::open(dir.path(), None).expect("reopen");
            expect_entries(&log, 1..=10);
            assert_eq!(std::fs::metadata(&path).expect("stat").len(), whole);
            log.append(&entries(11..=11))
                .expect("append after the repair");
            log.truncate(11).expect("truncate");
        }
    }

    #[test]
    fn a_damaged_record_is_an_error_unless_it_is_the_unsynced_tail() {
        let (dir, log) = fresh();
        for batch in [1..=10, 11..=20, 21..=30] {
            log.append(&entries(batch)).expect("append");
        }
        // Flip one payload byte of entry 3 (first segment).
        let path = dir.path().join(segment_name(1));
        let offset = MAGIC.len() as u64 + 2 * (RECORD_HEADER as u64) + 2 * 10 + 20;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .expect("open");
        let mut byte = [0u8];
        file.read_exact_at(&mut byte, offset).expect("read");
        file.write_all_at(&[byte[0] ^ 0xff], offset).expect("write");
        let e = log.read(1, 11, usize::MAX).unwrap_err();
        assert!(e.to_string().contains("damaged"), "{e}");
        drop(log);
        let e = open_small(dir.path(), None).unwrap_err();
        assert!(
            e.to_string().contains("later segments exist"),
            "opening names the damage: {e}"
        );
    }

    #[test]
    fn a_segment_that_is_not_ours_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(segment_name(1)), b"something else entirely")
            .expect("write");
        let e = FileLog::open(dir.path(), None).unwrap_err();
        assert!(e.to_string().contains("bad magic"), "{e}");
    }

    /// The child side of [`acknowledged_appends_survive_kill_9`]: appends batches to the
    /// log in `dir` forever, printing the last index of each after its append returned.
    fn append_until_killed(dir: &Path) -> ! {
        use std::io::Write as _;
        let log = FileLog::open_with(dir, None, 64 * 1024).expect("child: open");
        let mut next = log.bounds().map_or(1, |(_, last)| last + 1);
        let mut out = std::io::stdout().lock();
        loop {
            let size = 1 + next % 17;
            let batch: Vec<(u64, Arc<[u8]>)> = (next..next + size).map(|i| (i, big(i))).collect();
            log.append(&batch).expect("child: append");
            next += size;
            writeln!(out, "acked {}", next - 1).expect("child: stdout");
            out.flush().expect("child: flush");
        }
    }

    /// Payloads of 100 bytes to 3 KiB, so that segments fill up and roll over.
    fn big(index: u64) -> Arc<[u8]> {
        let len = 100 + (index * 977 % 3000) as usize;
        Arc::from(
            (0..len)
                .map(|j| (index as usize + j) as u8)
                .collect::<Vec<u8>>(),
        )
    }

    #[test]
    fn acknowledged_appends_survive_kill_9() {
        const CHILD: &str = "ELASTICKV_LOG_FILE_CRASH_CHILD";
        if let Some(dir) = std::env::var_os(CHILD) {
            append_until_killed(Path::new(&dir));
        }
        use std::io::BufRead as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let mut acked = 0u64;
        for round in 0..4 {
            let mut child = std::process::Command::new(std::env::current_exe().expect("exe"))
                .args([
                    "--exact",
                    "log_file::tests::acknowledged_appends_survive_kill_9",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD, dir.path())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("spawn the appender");
            let stdout = child.stdout.take().expect("stdout");
            let mut lines = std::io::BufReader::new(stdout).lines();
            let target = acked + 300 + round * 97;
            while acked < target {
                let line = lines
                    .next()
                    .expect("the appender stopped early")
                    .expect("read");
                if let Some(n) = line.strip_prefix("acked ") {
                    acked = n.parse().expect("index");
                }
            }
            child.kill().expect("kill -9");
            child.wait().expect("wait");
            // A line printed after the last one read may also have been acknowledged.
            for line in lines.map_while(Result::ok) {
                if let Some(n) = line.strip_prefix("acked ") {
                    acked = n.parse().expect("index");
                }
            }
            let log = FileLog::open_with(dir.path(), None, 64 * 1024).expect("reopen");
            let (first, last) = log.bounds().expect("entries");
            assert_eq!(first, 1);
            assert!(
                last >= acked,
                "round {round}: acknowledged {acked}, found {last}"
            );
            let read = log.read(1, last + 1, usize::MAX).expect("read back");
            assert_eq!(read.len() as u64, last);
            for (i, payload) in read.iter().enumerate() {
                assert_eq!(payload[..], big(i as u64 + 1)[..], "entry {}", i + 1);
            }
            acked = last;
        }
        assert!(segments(dir.path()).len() > 3, "segments rolled over");
    }
}
