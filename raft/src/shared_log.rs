//! One Raft log per node, shared by every group the node hosts: one `fdatasync` makes
//! the appends of all groups queued meanwhile durable.
//!
//! ```text
//! <data dir>/log/<sequence number, 20 digits>.seg
//!   header:  b"EKVLOG\0\x02"                                  (magic + format 2)
//!   records: len u32 LE | crc32 u32 LE | kind u8 | group u64 LE | index u64 LE | payload
//! ```
//!
//! The crc covers kind, group, index and payload. Records are replayed in file order,
//! oldest segment first, and mean:
//!
//! * `Append (1)`: entry `index` of `group` is `payload`; the group's entries from `index`
//!   on are gone (the append that replaced them happened after them).
//! * `Copy (2)`: entry `index` of `group` is `payload`, the group's other entries stay
//!   (an entry moved forward out of an old segment, see below).
//! * `Truncate (3)`: the group's entries from `index` on are gone (no payload). Written for
//!   a truncation, and with `index` 0 before an append that does not follow the group's
//!   last entry (after a snapshot install, or to a group with no live entries).
//!
//! A group's purge point is not recorded here: its durable purge marker stays in the
//! group's engine, and [`SharedLog::attach`] drops what it covers.
//!
//! **Group commit.** Callers ([`SharedLog::append_groups`], [`GroupLog::append`],
//! [`GroupLog::truncate`]) queue their operations and block. The groups' appends come
//! from one thread ([`crate::log_sync`]), which writes every group's parked entries at
//! once. The first caller that finds no commit running becomes the committer: it takes
//! every queued operation, checks each against the group's log,
//! encodes their records into one buffer, writes it with one `pwrite` and syncs once
//! (`sync_data`; `sync_all` for a segment's first records), then updates the in-memory
//! index and wakes the callers. A failed write or sync poisons the log: every later
//! operation fails until the node restarts and recovery decides what is on disk.
//!
//! **Space.** Segments are removed oldest first and only once none of their records is
//! live (purged, truncated or replaced entries are dead): the segments left are always
//! a suffix of the history, so replaying them gives the live entries exactly (any record
//! that killed an entry follows it). So that a quiet group cannot pin old segments, a
//! rollover to a new segment also copies the live entries of the oldest segment into the
//! new one (`Copy` records), after which the oldest goes. Every removal is followed by a
//! directory sync before the next one, so a crash never brings back an older segment
//! without the later ones.
//!
//! **Crash recovery** ([`SharedLog::open`]): a record cut short or failing its crc in the
//! last segment is a write the crash interrupted (never acknowledged: the sync had not
//! returned): the segment is cut back to its last whole record. The same in an earlier
//! segment is damage to acknowledged data and an error.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Condvar, Mutex, RwLock};

use crate::log_file::LogFiles;
use crate::log_sync::SharedSyncer;
use crate::segment::{self, invalid, segment_name, sync_dir, Scanned};
use crate::GroupId;

/// Segment header: magic and format version (2: the shared log).
const MAGIC: &[u8; 8] = b"EKVLOG\0\x02";
/// Bytes before a record's payload: length, crc, kind, group, index.
const RECORD_HEADER: usize = 25;
/// A segment stops taking new batches once it holds this many bytes.
const SEGMENT_BYTES: u64 = 64 * 1024 * 1024;
/// The committer keeps its write buffer for the next batch up to this capacity. A new
/// buffer per batch, grown record by record, cost about 8% of a follower's CPU at 256
/// clients (reallocations, and the allocator looking for free pages on the committing
/// thread).
const SPARE_BUFFER_MAX: usize = 16 * 1024 * 1024;
/// Largest payload accepted (a longer record is treated as garbage).
const MAX_RECORD: u32 = 1 << 30;

const APPEND: u8 = 1;
const COPY: u8 = 2;
const TRUNCATE: u8 = 3;

fn record_crc(kind: u8, group: GroupId, index: u64, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&[kind]);
    hasher.update(&group.to_le_bytes());
    hasher.update(&index.to_le_bytes());
    hasher.update(payload);
    hasher.finalize()
}

/// Appends one record to `buf`; returns its payload length.
fn encode_record(
    buf: &mut Vec<u8>,
    kind: u8,
    group: GroupId,
    index: u64,
    payload: &[u8],
) -> io::Result<u32> {
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|l| *l <= MAX_RECORD)
        .ok_or_else(|| {
            invalid(format!(
                "log entry {index} of group {group} is {} bytes, over the {MAX_RECORD}-byte limit",
                payload.len()
            ))
        })?;
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(&record_crc(kind, group, index, payload).to_le_bytes());
    buf.push(kind);
    buf.extend_from_slice(&group.to_le_bytes());
    buf.extend_from_slice(&index.to_le_bytes());
    buf.extend_from_slice(payload);
    Ok(len)
}

/// Where an entry's record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Position {
    /// The segment's sequence number.
    segment: u64,
    /// Offset of the record header in the segment.
    offset: u64,
    /// Payload length.
    len: u32,
}

impl Position {
    fn end(&self) -> u64 {
        self.offset + RECORD_HEADER as u64 + u64::from(self.len)
    }
}

#[derive(Debug)]
struct Segment {
    path: PathBuf,
    file: Arc<File>,
    /// Bytes written (header included).
    len: u64,
    /// Live entries whose record is here.
    live: u64,
    /// Their payload bytes.
    live_bytes: u64,
}

/// The live entries of every group and the segments.
#[derive(Debug, Default)]
struct Index {
    groups: HashMap<GroupId, BTreeMap<u64, Position>>,
    segments: BTreeMap<u64, Segment>,
}

impl Index {
    fn bounds(&self, group: GroupId) -> Option<(u64, u64)> {
        let entries = self.groups.get(&group)?;
        Some((*entries.first_key_value()?.0, *entries.last_key_value()?.0))
    }

    fn count(&mut self, position: Position, sign: i64) {
        if let Some(segment) = self.segments.get_mut(&position.segment) {
            if sign > 0 {
                segment.live += 1;
                segment.live_bytes += u64::from(position.len);
            } else {
                segment.live -= 1;
                segment.live_bytes -= u64::from(position.len);
            }
        }
    }

    /// Sets entry `index` of `group`; with `replace_later`, its later entries go too.
    fn insert(&mut self, group: GroupId, index: u64, position: Position, replace_later: bool) {
        if replace_later {
            self.remove_from(group, index);
        }
        let old = self
            .groups
            .entry(group)
            .or_default()
            .insert(index, position);
        if let Some(old) = old {
            self.count(old, -1);
        }
        self.count(position, 1);
    }

    /// Removes the entries of `group` from `index` on.
    fn remove_from(&mut self, group: GroupId, index: u64) {
        let Some(entries) = self.groups.get_mut(&group) else {
            return;
        };
        let removed = entries.split_off(&index);
        for position in removed.into_values() {
            self.count(position, -1);
        }
    }

    /// Removes the entries of `group` up to `upto` (inclusive).
    fn remove_upto(&mut self, group: GroupId, upto: u64) {
        let Some(entries) = self.groups.get_mut(&group) else {
            return;
        };
        let kept = match upto.checked_add(1) {
            Some(from) => entries.split_off(&from),
            None => BTreeMap::new(),
        };
        let removed = std::mem::replace(entries, kept);
        for position in removed.into_values() {
            self.count(position, -1);
        }
    }
}

/// What a queued operation asks for.
enum OpKind {
    /// Consecutive entries to append after the group's last one (or past a gap).
    Append(Vec<(u64, Arc<[u8]>)>),
    /// Remove the entries from this index on.
    Truncate(u64),
}

/// Consecutive encoded entries `(index, bytes)` of one group, in index order.
pub(crate) type GroupEntries = Vec<(u64, Arc<[u8]>)>;

type Outcome = Arc<Mutex<Option<Result<(), (io::ErrorKind, String)>>>>;

struct Op {
    group: GroupId,
    kind: OpKind,
    outcome: Outcome,
}

#[derive(Default)]
struct Queue {
    ops: Vec<Op>,
    committing: bool,
    /// Set after a failed write or sync: the reason every later operation fails.
    poisoned: Option<String>,
}

/// A change to the index that a written record makes.
enum Effect {
    /// Entry `index` of `group` is at `offset` (relative to the batch) with `len`;
    /// `copied_from`: only if the entry is still there (a copy forward).
    Insert {
        group: GroupId,
        index: u64,
        offset: u64,
        len: u32,
        copied_from: Option<Position>,
    },
    /// The group's entries from `index` on are gone.
    Truncate { group: GroupId, index: u64 },
}

/// What a committer plans to write.
#[derive(Default)]
struct Plan {
    buf: Vec<u8>,
    effects: Vec<Effect>,
    /// Per operation: why it was refused, if it was.
    refused: Vec<Option<io::Error>>,
}

impl Plan {
    fn record(&mut self, kind: u8, group: GroupId, index: u64, payload: &[u8]) -> io::Result<()> {
        let offset = self.buf.len() as u64;
        let len = encode_record(&mut self.buf, kind, group, index, payload)?;
        self.effects.push(match kind {
            TRUNCATE => Effect::Truncate { group, index },
            _ => Effect::Insert {
                group,
                index,
                offset,
                len,
                copied_from: None,
            },
        });
        Ok(())
    }
}

/// The node's shared Raft log. Open it once per data directory ([`SharedLog::open`]);
/// each group attaches to it ([`crate::RaftNode`] does this for groups with
/// [`crate::LogStorage::Shared`]).
#[derive(Debug)]
pub struct SharedLog {
    dir: PathBuf,
    segment_bytes: u64,
    queue: Mutex<QueueState>,
    wake: Condvar,
    index: RwLock<Index>,
    /// Held while segments are removed, so removals happen oldest first.
    removing: Mutex<()>,
    syncs: AtomicU64,
    /// The committer's write buffer, kept between batches (see [`SPARE_BUFFER_MAX`]).
    spare: Mutex<Vec<u8>>,
    /// The thread writing the groups' appends, started by the first group that asks.
    syncer: Mutex<Option<SharedSyncer>>,
}

/// [`Queue`] behind a `Debug` that does not print the operations.
#[derive(Default)]
struct QueueState(Queue);

impl std::fmt::Debug for QueueState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("queued", &self.0.ops.len())
            .field("committing", &self.0.committing)
            .finish()
    }
}

/// A record found by a scan: kind, group, index and where it is.
type Found = (u8, GroupId, u64, Position);

/// Scans one segment.
fn scan_segment(path: &Path, seq: u64) -> io::Result<Scanned<Found>> {
    segment::scan(
        path,
        MAGIC,
        RECORD_HEADER,
        MAX_RECORD,
        |header, payload, offset| {
            let header: &[u8; RECORD_HEADER] = header.try_into().expect("header bytes");
            let (len, crc, kind, group, index) = parse_header(header);
            if record_crc(kind, group, index, payload) != crc {
                return Err("fails its checksum".to_string());
            }
            if !matches!(kind, APPEND | COPY | TRUNCATE) {
                return Err(format!("has unknown kind {kind}"));
            }
            let position = Position {
                segment: seq,
                offset,
                len,
            };
            Ok((kind, group, index, position))
        },
    )
}

fn parse_header(header: &[u8; RECORD_HEADER]) -> (u32, u32, u8, GroupId, u64) {
    let u32_at = |at: usize| u32::from_le_bytes(header[at..at + 4].try_into().expect("4 bytes"));
    let u64_at = |at: usize| u64::from_le_bytes(header[at..at + 8].try_into().expect("8 bytes"));
    (u32_at(0), u32_at(4), header[8], u64_at(9), u64_at(17))
}

impl SharedLog {
    /// Opens (or creates) the shared log in `dir`, replaying its segments.
    pub fn open(dir: &Path) -> io::Result<Arc<SharedLog>> {
        Self::open_with(dir, SEGMENT_BYTES)
    }

    pub(crate) fn open_with(dir: &Path, segment_bytes: u64) -> io::Result<Arc<SharedLog>> {
        let seqs = segment::list_segments(dir)?;
        let mut index = Index::default();
        for (i, &seq) in seqs.iter().enumerate() {
            let path = dir.join(segment_name(seq));
            let scanned = scan_segment(&path, seq)?;
            let is_last = i + 1 == seqs.len();
            let damage = scanned.damage.as_deref();
            let Some(file) = segment::open_scanned(dir, &path, scanned.valid_len, damage, is_last)?
            else {
                continue;
            };
            index.segments.insert(
                seq,
                Segment {
                    path,
                    file: Arc::new(file),
                    len: scanned.valid_len,
                    live: 0,
                    live_bytes: 0,
                },
            );
            for (kind, group, entry_index, position) in scanned.records {
                match kind {
                    APPEND => index.insert(group, entry_index, position, true),
                    COPY => index.insert(group, entry_index, position, false),
                    _ => index.remove_from(group, entry_index),
                }
            }
        }
        let log = Arc::new(SharedLog {
            dir: dir.to_path_buf(),
            segment_bytes,
            queue: Mutex::new(QueueState::default()),
            wake: Condvar::new(),
            index: RwLock::new(index),
            removing: Mutex::new(()),
            spare: Mutex::new(Vec::new()),
            syncer: Mutex::new(None),
            syncs: AtomicU64::new(0),
        });
        log.remove_dead_segments()?;
        Ok(log)
    }

    /// The directory the segments are in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Syncs made since the log was opened (each covers the writes of every group
    /// queued meanwhile).
    pub fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }

    /// The segments on disk (sequence numbers, oldest first).
    #[cfg(test)]
    pub(crate) fn segment_seqs(&self) -> Vec<u64> {
        self.index.read().segments.keys().copied().collect()
    }

    /// Group `group`'s view of the log: forgets its entries up to `purged` (its durable
    /// purge marker), checks that what remains has no holes, and returns the handle.
    pub(crate) fn attach(
        self: &Arc<Self>,
        group: GroupId,
        purged: Option<u64>,
    ) -> io::Result<GroupLog> {
        {
            let mut index = self.index.write();
            if let Some(purged) = purged {
                index.remove_upto(group, purged);
            }
            if let Some(entries) = index.groups.get(&group) {
                let mut expected = None;
                for &entry_index in entries.keys() {
                    if expected.is_some_and(|e| e != entry_index) {
                        return Err(invalid(format!(
                            "the shared log in {} lacks entry {} of group {group} (it holds {})",
                            self.dir.display(),
                            expected.unwrap_or_default(),
                            entry_index
                        )));
                    }
                    expected = Some(entry_index + 1);
                }
            }
        }
        self.remove_dead_segments()?;
        Ok(GroupLog {
            log: Arc::clone(self),
            group,
        })
    }

    /// The thread that writes the appends of every group in this log
    /// ([`crate::log_sync`]); started on the first call.
    pub(crate) fn syncer(self: &Arc<Self>) -> SharedSyncer {
        self.syncer
            .lock()
            .get_or_insert_with(|| SharedSyncer::start(Arc::downgrade(self)))
            .clone()
    }

    /// Appends each group's consecutive entries (a group at most once) and returns once
    /// they are durable, with each group's outcome: all in one synced write unless a
    /// commit already running takes some of them.
    pub(crate) fn append_groups(
        &self,
        appends: Vec<(GroupId, GroupEntries)>,
    ) -> Vec<io::Result<()>> {
        self.submit_all(
            appends
                .into_iter()
                .map(|(group, entries)| (group, OpKind::Append(entries)))
                .collect(),
        )
    }

    /// Queues `kind` for `group` and returns once it is durable (or refused).
    fn submit(&self, group: GroupId, kind: OpKind) -> io::Result<()> {
        self.submit_all(vec![(group, kind)])
            .pop()
            .unwrap_or_else(|| Err(io::Error::other("the shared log lost an operation")))
    }

    /// Queues every operation (in order: one group's are applied as listed) and returns
    /// once all are durable or refused, with each one's outcome. They join one batch
    /// unless a commit runs meanwhile that takes only some of them.
    fn submit_all(&self, ops: Vec<(GroupId, OpKind)>) -> Vec<io::Result<()>> {
        let outcomes: Vec<Outcome> = ops.iter().map(|_| Outcome::default()).collect();
        let mut queue = self.queue.lock();
        if let Some(reason) = &queue.0.poisoned {
            let reason = reason.clone();
            return outcomes
                .iter()
                .map(|_| {
                    Err(io::Error::other(format!(
                        "the shared log failed earlier and takes no more writes ({reason}); restart the node"
                    )))
                })
                .collect();
        }
        for ((group, kind), outcome) in ops.into_iter().zip(&outcomes) {
            queue.0.ops.push(Op {
                group,
                kind,
                outcome: Arc::clone(outcome),
            });
        }
        loop {
            // Operations are committed in queue order, so the last one done means all
            // of them are.
            if outcomes.last().is_none_or(|o| o.lock().is_some()) {
                return outcomes
                    .iter()
                    .map(|outcome| match outcome.lock().take() {
                        Some(result) => {
                            result.map_err(|(kind, message)| io::Error::new(kind, message))
                        }
                        None => Err(io::Error::other("the shared log lost an operation")),
                    })
                    .collect();
            }
            if queue.0.committing {
                self.wake.wait(&mut queue);
                continue;
            }
            queue.0.committing = true;
            drop(queue);
            let ops = std::mem::take(&mut self.queue.lock().0.ops);
            self.commit(ops);
            queue = self.queue.lock();
            queue.0.committing = false;
            self.wake.notify_all();
        }
    }

    /// Writes and syncs the records of `ops`, updates the index, reports every outcome.
    fn commit(&self, ops: Vec<Op>) {
        let report = |op: &Op, result: io::Result<()>| {
            *op.outcome.lock() = Some(result.map_err(|e| (e.kind(), e.to_string())));
        };
        let poisoned = self.queue.lock().0.poisoned.clone();
        let written = match poisoned {
            Some(reason) => Err(io::Error::other(format!(
                "the shared log failed earlier and takes no more writes ({reason}); restart the node"
            ))),
            None => self.write_batch(&ops),
        };
        match written {
            Ok(refused) => {
                for (op, refused) in ops.iter().zip(refused) {
                    report(op, refused.map_or(Ok(()), Err));
                }
            }
            Err(e) => {
                let reason = e.to_string();
                let mut queue = self.queue.lock();
                if queue.0.poisoned.is_none() {
                    tracing::error!(dir = %self.dir.display(), error = %reason, "the shared log's write failed; it takes no more writes");
                    queue.0.poisoned = Some(reason);
                }
                drop(queue);
                for op in &ops {
                    report(op, Err(io::Error::new(e.kind(), e.to_string())));
                }
            }
        }
        if let Err(e) = self.remove_dead_segments() {
            tracing::warn!(dir = %self.dir.display(), error = %e, "could not remove a dead log segment");
        }
    }

    /// Plans, writes and syncs one batch; returns per operation why it was refused.
    fn write_batch(&self, ops: &[Op]) -> io::Result<Vec<Option<io::Error>>> {
        // Only the committer adds records or changes a group's last entry, so the plan
        // made under the read lock still holds when it is applied (a concurrent purge
        // only forgets entries at the front, and copies check their source).
        let (plan, target) = {
            let index = self.index.read();
            let target = match index.segments.last_key_value() {
                Some((seq, segment)) if segment.len < self.segment_bytes => Target::Append {
                    seq: *seq,
                    offset: segment.len,
                    file: Arc::clone(&segment.file),
                },
                Some((seq, _)) => Target::New { seq: seq + 1 },
                None => Target::New { seq: 1 },
            };
            let mut plan = Plan {
                buf: std::mem::take(&mut *self.spare.lock()),
                ..Plan::default()
            };
            if matches!(target, Target::New { .. }) {
                self.plan_copies(&index, &mut plan)?;
            }
            plan_ops(&index, ops, &mut plan);
            (plan, target)
        };
        if plan.buf.is_empty() {
            self.recycle(plan.buf);
            return Ok(plan.refused);
        }
        let (seq, offset, file) = match target {
            Target::Append { seq, offset, file } => (seq, offset, file),
            Target::New { seq } => self.new_segment(seq)?,
        };
        file.write_all_at(&plan.buf, offset)?;
        if offset == MAGIC.len() as u64 {
            // The segment's first records: its size becomes durable with them.
            file.sync_all()?;
        } else {
            file.sync_data()?;
        }
        self.syncs.fetch_add(1, Ordering::Relaxed);
        let mut index = self.index.write();
        for effect in plan.effects {
            match effect {
                Effect::Insert {
                    group,
                    index: entry_index,
                    offset: at,
                    len,
                    copied_from,
                } => {
                    let position = Position {
                        segment: seq,
                        offset: offset + at,
                        len,
                    };
                    match copied_from {
                        None => index.insert(group, entry_index, position, true),
                        Some(source) => {
                            let still_there = index
                                .groups
                                .get(&group)
                                .and_then(|entries| entries.get(&entry_index))
                                == Some(&source);
                            if still_there {
                                index.insert(group, entry_index, position, false);
                            }
                        }
                    }
                }
                Effect::Truncate { group, index: from } => index.remove_from(group, from),
            }
        }
        if let Some(segment) = index.segments.get_mut(&seq) {
            segment.len = offset + plan.buf.len() as u64;
        }
        drop(index);
        self.recycle(plan.buf);
        Ok(plan.refused)
    }

    /// Keeps `buf` (emptied) for the next batch, unless it grew past
    /// [`SPARE_BUFFER_MAX`].
    fn recycle(&self, mut buf: Vec<u8>) {
        if buf.capacity() <= SPARE_BUFFER_MAX {
            buf.clear();
            *self.spare.lock() = buf;
        }
    }

    /// At a rollover: copies of the live entries of the oldest segment (unless it is the
    /// one just filled, or holds more live bytes than half a segment), so it can go.
    fn plan_copies(&self, index: &Index, plan: &mut Plan) -> io::Result<()> {
        if index.segments.len() < 2 {
            return Ok(());
        }
        let Some((&oldest, segment)) = index.segments.first_key_value() else {
            return Ok(());
        };
        if segment.live == 0 || segment.live_bytes > self.segment_bytes / 2 {
            return Ok(());
        }
        let mut groups: Vec<GroupId> = index.groups.keys().copied().collect();
        groups.sort_unstable();
        for group in groups {
            let moving: Vec<(u64, Position)> = index.groups[&group]
                .iter()
                .filter(|(_, p)| p.segment == oldest)
                .map(|(i, p)| (*i, *p))
                .collect();
            for (entry_index, position) in moving {
                let payload = read_record(index, group, entry_index, position)?;
                let offset = plan.buf.len() as u64;
                let len = encode_record(&mut plan.buf, COPY, group, entry_index, &payload)?;
                plan.effects.push(Effect::Insert {
                    group,
                    index: entry_index,
                    offset,
                    len,
                    copied_from: Some(position),
                });
            }
        }
        Ok(())
    }

    /// Creates segment `seq` with its header and makes its name durable.
    fn new_segment(&self, seq: u64) -> io::Result<(u64, u64, Arc<File>)> {
        let (path, file) = segment::create(&self.dir, seq, MAGIC)?;
        let file = Arc::new(file);
        self.index.write().segments.insert(
            seq,
            Segment {
                path,
                file: Arc::clone(&file),
                len: MAGIC.len() as u64,
                live: 0,
                live_bytes: 0,
            },
        );
        Ok((seq, MAGIC.len() as u64, file))
    }

    /// Removes the oldest segments while none of their records is live (never the
    /// newest), syncing the directory after each.
    fn remove_dead_segments(&self) -> io::Result<()> {
        let _removing = self.removing.lock();
        loop {
            let dead = {
                let mut index = self.index.write();
                let newest = index.segments.last_key_value().map(|(s, _)| *s);
                match index.segments.first_key_value() {
                    Some((&seq, segment)) if segment.live == 0 && Some(seq) != newest => {
                        index.segments.remove(&seq).map(|s| (seq, s))
                    }
                    _ => None,
                }
            };
            let Some((seq, segment)) = dead else {
                return Ok(());
            };
            let removed = std::fs::remove_file(&segment.path).and_then(|()| sync_dir(&self.dir));
            if let Err(e) = removed {
                // Keep it indexed: a later removal must not overtake it.
                self.index.write().segments.insert(seq, segment);
                return Err(e);
            }
        }
    }

    fn bounds(&self, group: GroupId) -> Option<(u64, u64)> {
        self.index.read().bounds(group)
    }

    fn read(&self, group: GroupId, start: u64, end: u64, limit: usize) -> io::Result<Vec<Vec<u8>>> {
        // Held while reading: no segment is cut or removed under this read.
        let index = self.index.read();
        let Some(entries) = index.groups.get(&group) else {
            return Ok(Vec::new());
        };
        if start >= end || limit == 0 {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        let mut run: Vec<(u64, Position)> = Vec::new();
        for (&entry_index, &position) in entries.range(start..end).take(limit) {
            if let Some((last_index, last)) = run.last() {
                if *last_index + 1 != entry_index {
                    // A group's entries are consecutive; a hole is a concurrent purge.
                    break;
                }
                if last.segment != position.segment || last.end() != position.offset {
                    read_run(&index, group, &run, &mut out)?;
                    run.clear();
                }
            }
            run.push((entry_index, position));
        }
        read_run(&index, group, &run, &mut out)?;
        Ok(out)
    }

    fn purge(&self, group: GroupId, upto: u64) -> io::Result<()> {
        self.index.write().remove_upto(group, upto);
        self.remove_dead_segments()
    }
}

enum Target {
    Append {
        seq: u64,
        offset: u64,
        file: Arc<File>,
    },
    New {
        seq: u64,
    },
}

/// Checks each operation against the group's log (as the batch leaves it so far) and
/// plans its records.
fn plan_ops(index: &Index, ops: &[Op], plan: &mut Plan) {
    // Room for every record at once, not grown (and copied) record by record.
    let bytes: usize = ops
        .iter()
        .map(|op| match &op.kind {
            OpKind::Append(entries) => {
                RECORD_HEADER
                    + entries
                        .iter()
                        .map(|(_, payload)| RECORD_HEADER + payload.len())
                        .sum::<usize>()
            }
            OpKind::Truncate(_) => RECORD_HEADER,
        })
        .sum();
    plan.buf.reserve(bytes);
    // Each group's (first, last) entry as the batch leaves it.
    let mut shadow: HashMap<GroupId, Option<(u64, u64)>> = HashMap::new();
    for op in ops {
        let bounds = *shadow
            .entry(op.group)
            .or_insert_with(|| index.bounds(op.group));
        let checkpoint = (plan.buf.len(), plan.effects.len());
        let result = plan_op(op, bounds, plan);
        match result {
            Ok(after) => {
                shadow.insert(op.group, after);
                plan.refused.push(None);
            }
            Err(e) => {
                plan.buf.truncate(checkpoint.0);
                plan.effects.truncate(checkpoint.1);
                plan.refused.push(Some(e));
            }
        }
    }
}

fn check_consecutive(entries: &[(u64, Arc<[u8]>)]) -> io::Result<()> {
    match entries.windows(2).find(|w| w[1].0 != w[0].0 + 1) {
        Some(pair) => Err(invalid(format!(
            "log append is not consecutive: entry {} after {}",
            pair[1].0, pair[0].0
        ))),
        None => Ok(()),
    }
}

/// Plans one operation on a group whose log spans `bounds`; returns the span after it.
fn plan_op(op: &Op, bounds: Option<(u64, u64)>, plan: &mut Plan) -> io::Result<Option<(u64, u64)>> {
    let group = op.group;
    match &op.kind {
        OpKind::Append(entries) => {
            check_consecutive(entries)?;
            let (Some(&(first, _)), Some(&(last, _))) = (entries.first(), entries.last()) else {
                return Ok(bounds);
            };
            let follows = match bounds {
                Some((_, held)) if first <= held => {
                    return Err(invalid(format!(
                        "log append at entry {first} of group {group} but its log ends at {held} (truncate first)"
                    )))
                }
                Some((_, held)) => first == held + 1,
                None => false,
            };
            if !follows {
                // Past a gap (a snapshot covered what came before) or to an empty log:
                // nothing earlier of this group stays.
                plan.record(TRUNCATE, group, 0, &[])?;
            }
            for (entry_index, payload) in entries {
                plan.record(APPEND, group, *entry_index, payload)?;
            }
            let start = match bounds {
                Some((held_first, _)) if follows => held_first,
                _ => first,
            };
            Ok(Some((start, last)))
        }
        OpKind::Truncate(from) => match bounds {
            Some((held_first, held_last)) if *from <= held_last => {
                plan.record(TRUNCATE, group, *from, &[])?;
                Ok((*from > held_first).then(|| (held_first, from - 1)))
            }
            _ => Ok(bounds),
        },
    }
}

/// Reads one record and checks it is entry `entry_index` of `group`.
fn read_record(
    index: &Index,
    group: GroupId,
    entry_index: u64,
    position: Position,
) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(1);
    read_run(index, group, &[(entry_index, position)], &mut out)?;
    Ok(out.pop().unwrap_or_default())
}

/// Reads the records of `run` (adjacent in one segment) with one read and checks them.
fn read_run(
    index: &Index,
    group: GroupId,
    run: &[(u64, Position)],
    out: &mut Vec<Vec<u8>>,
) -> io::Result<()> {
    let Some((_, first)) = run.first() else {
        return Ok(());
    };
    let segment = index.segments.get(&first.segment).ok_or_else(|| {
        invalid(format!(
            "log segment {} of group {group}'s entries is gone",
            first.segment
        ))
    })?;
    let records: Vec<(u64, u32)> = run.iter().map(|(_, p)| (p.offset, p.len)).collect();
    segment::read_adjacent(
        &segment.file,
        &segment.path,
        RECORD_HEADER,
        &records,
        |i, header, payload| {
            let wanted = run[i].0;
            let header: &[u8; RECORD_HEADER] = header.try_into().expect("header bytes");
            let (_, crc, kind, stored_group, stored_index) = parse_header(header);
            if stored_group == group
                && stored_index == wanted
                && record_crc(kind, stored_group, stored_index, payload) == crc
            {
                Ok(())
            } else {
                Err(format!("log entry {wanted} of group {group}"))
            }
        },
        out,
    )
}

/// One group's handle on the node's shared log.
#[derive(Debug)]
pub(crate) struct GroupLog {
    log: Arc<SharedLog>,
    group: GroupId,
}

impl LogFiles for GroupLog {
    fn bounds(&self) -> Option<(u64, u64)> {
        self.log.bounds(self.group)
    }

    fn append(&self, entries: &[(u64, Arc<[u8]>)]) -> io::Result<()> {
        self.log
            .submit(self.group, OpKind::Append(entries.to_vec()))
    }

    fn read(&self, start: u64, end: u64, limit: usize) -> io::Result<Vec<Vec<u8>>> {
        self.log.read(self.group, start, end, limit)
    }

    fn truncate(&self, from: u64) -> io::Result<()> {
        self.log.submit(self.group, OpKind::Truncate(from))
    }

    fn purge(&self, upto: u64) -> io::Result<()> {
        self.log.purge(self.group, upto)
    }

    fn shared(&self) -> Option<(Arc<SharedLog>, GroupId)> {
        Some((Arc::clone(&self.log), self.group))
    }
}

#[cfg(test)]
mod tests {
    use std::fs::OpenOptions;

    use super::*;

    fn payload(group: GroupId, index: u64) -> Arc<[u8]> {
        Arc::from(
            format!(
                "group-{group}-entry-{index}-{}",
                "x".repeat((index % 7) as usize)
            )
            .into_bytes(),
        )
    }

    fn entries(group: GroupId, range: std::ops::RangeInclusive<u64>) -> Vec<(u64, Arc<[u8]>)> {
        range.map(|i| (i, payload(group, i))).collect()
    }

    fn expect_entries(log: &GroupLog, range: std::ops::RangeInclusive<u64>) {
        let (start, end) = (*range.start(), *range.end());
        let read = log.read(start, end + 1, usize::MAX).expect("read");
        let want: Vec<Vec<u8>> = range.map(|i| payload(log.group, i).to_vec()).collect();
        assert_eq!(read, want, "group {}", log.group);
        assert_eq!(log.bounds(), Some((start, end)), "group {}", log.group);
    }

    /// Small segments, so that a few batches span several files.
    fn open_small(dir: &Path) -> io::Result<Arc<SharedLog>> {
        SharedLog::open_with(dir, 512)
    }

    fn segments_on_disk(dir: &Path) -> Vec<u64> {
        segment::list_segments(dir).expect("list")
    }

    #[test]
    fn groups_interleave_in_one_log_and_survive_reopening() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = open_small(dir.path()).expect("open");
        let groups: Vec<GroupLog> = (0..3)
            .map(|g| log.attach(g, None).expect("attach"))
            .collect();
        for round in 0..10u64 {
            for group in &groups {
                let from = round * 4 + 1;
                group
                    .append(&entries(group.group, from..=from + 3))
                    .expect("append");
            }
        }
        for group in &groups {
            expect_entries(group, 1..=40);
            assert_eq!(group.read(10, 20, 3).expect("read").len(), 3, "limit");
            assert_eq!(
                group.read(0, 3, 10).expect("read").len(),
                2,
                "from the start"
            );
        }
        assert!(log.segment_seqs().len() > 3, "{:?}", log.segment_seqs());
        let unknown = log.attach(7, None).expect("attach");
        assert_eq!(unknown.bounds(), None);
        drop((groups, unknown, log));
        let log = open_small(dir.path()).expect("reopen");
        for g in 0..3 {
            let group = log.attach(g, None).expect("attach");
            expect_entries(&group, 1..=40);
            group
                .append(&entries(g, 41..=42))
                .expect("append after reopening");
            expect_entries(&group, 1..=42);
        }
    }

    #[test]
    fn concurrent_appends_of_several_groups_share_syncs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = SharedLog::open(dir.path()).expect("open");
        let threads: Vec<_> = (0..4)
            .map(|g| {
                let group = log.attach(g, None).expect("attach");
                std::thread::spawn(move || {
                    for i in 1..=100 {
                        group.append(&entries(g, i..=i)).expect("append");
                    }
                    group
                })
            })
            .collect();
        for thread in threads {
            expect_entries(&thread.join().expect("appender"), 1..=100);
        }
        assert!(
            log.syncs() < 400,
            "400 appends of 4 groups took {} syncs",
            log.syncs()
        );
    }

    #[test]
    fn appends_that_do_not_follow_the_log_are_refused_and_leave_others_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = open_small(dir.path()).expect("open");
        let (a, b) = (
            log.attach(1, None).expect("a"),
            log.attach(2, None).expect("b"),
        );
        a.append(&entries(1, 1..=5)).expect("append");
        b.append(&entries(2, 1..=2)).expect("append");
        let overlap = a.append(&entries(1, 5..=6)).unwrap_err();
        assert!(overlap.to_string().contains("truncate first"), "{overlap}");
        let holes = a
            .append(&[(6, payload(1, 6)), (8, payload(1, 8))])
            .unwrap_err();
        assert!(holes.to_string().contains("not consecutive"), "{holes}");
        b.append(&entries(2, 3..=4))
            .expect("the other group goes on");
        expect_entries(&a, 1..=5);
        expect_entries(&b, 1..=4);
    }

    #[test]
    fn truncation_and_appends_past_a_gap_are_durable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = open_small(dir.path()).expect("open");
        let (a, b) = (
            log.attach(1, None).expect("a"),
            log.attach(2, None).expect("b"),
        );
        a.append(&entries(1, 1..=30)).expect("append");
        b.append(&entries(2, 1..=30)).expect("append");
        a.truncate(20).expect("truncate");
        a.truncate(50)
            .expect("truncating past the end does nothing");
        expect_entries(&a, 1..=19);
        // As after installing a snapshot that covers up to 99.
        b.append(&entries(2, 100..=104)).expect("append past a gap");
        expect_entries(&b, 100..=104);
        drop((a, b, log));
        let log = open_small(dir.path()).expect("reopen");
        let (a, b) = (
            log.attach(1, None).expect("a"),
            log.attach(2, None).expect("b"),
        );
        expect_entries(&a, 1..=19);
        expect_entries(&b, 100..=104);
        a.append(&entries(1, 20..=22)).expect("append at the cut");
        a.truncate(1).expect("truncate everything");
        assert_eq!(a.bounds(), None);
        a.append(&entries(1, 7..=9)).expect("start again");
        drop((a, b, log));
        let log = open_small(dir.path()).expect("reopen");
        expect_entries(&log.attach(1, None).expect("a"), 7..=9);
    }

    #[test]
    fn a_quiet_group_does_not_pin_old_segments() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = open_small(dir.path()).expect("open");
        let (quiet, busy) = (
            log.attach(1, None).expect("quiet"),
            log.attach(2, None).expect("busy"),
        );
        quiet.append(&entries(1, 1..=3)).expect("append");
        let first_segment = log.segment_seqs()[0];
        for i in 1..=300u64 {
            busy.append(&entries(2, i..=i)).expect("append");
            if i % 10 == 0 {
                busy.purge(i - 5).expect("purge");
            }
        }
        let on_disk = segments_on_disk(dir.path());
        assert!(
            !on_disk.contains(&first_segment),
            "segment {first_segment} (the quiet group's) was copied and removed: {on_disk:?}"
        );
        assert!(on_disk.len() <= 4, "segments stay few: {on_disk:?}");
        assert_eq!(on_disk, log.segment_seqs());
        expect_entries(&quiet, 1..=3);
        expect_entries(&busy, 296..=300);
        // A truncation after the copy must win over the copy after a restart.
        quiet.truncate(3).expect("truncate");
        drop((quiet, busy, log));
        let log = open_small(dir.path()).expect("reopen");
        expect_entries(&log.attach(1, None).expect("quiet"), 1..=2);
        expect_entries(&log.attach(2, Some(295)).expect("busy"), 296..=300);
    }

    #[test]
    fn attaching_drops_what_the_purge_marker_covers_and_finds_holes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = open_small(dir.path()).expect("open");
        let a = log.attach(1, None).expect("attach");
        for i in 1..=30 {
            a.append(&entries(1, i..=i)).expect("append");
        }
        let seqs = log.segment_seqs();
        assert!(seqs.len() >= 3, "{seqs:?}");
        drop((a, log));
        let log = open_small(dir.path()).expect("reopen");
        expect_entries(&log.attach(1, Some(12)).expect("attach"), 13..=30);
        drop(log);
        // A segment in the middle goes missing: the group's log has a hole.
        let middle = seqs[seqs.len() / 2];
        std::fs::remove_file(dir.path().join(segment_name(middle))).expect("remove");
        let log = open_small(dir.path()).expect("reopen");
        let e = log.attach(1, None).unwrap_err();
        assert!(e.to_string().contains("lacks entry"), "{e}");
    }

    #[test]
    fn a_torn_write_at_the_end_is_cut_back_and_damage_earlier_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = open_small(dir.path()).expect("open");
        let a = log.attach(1, None).expect("attach");
        for i in 1..=20 {
            a.append(&entries(1, i..=i)).expect("append");
        }
        let seqs = log.segment_seqs();
        drop((a, log));
        let last = dir
            .path()
            .join(segment_name(*seqs.last().expect("segments")));
        let len = std::fs::metadata(&last).expect("stat").len();
        let file = OpenOptions::new().write(true).open(&last).expect("open");
        file.set_len(len - 3).expect("cut");
        let log = open_small(dir.path()).expect("reopen after a torn write");
        let a = log.attach(1, None).expect("attach");
        expect_entries(&a, 1..=19);
        a.append(&entries(1, 20..=21))
            .expect("append after the repair");
        drop((a, log));
        let first = dir.path().join(segment_name(seqs[0]));
        let mut bytes = std::fs::read(&first).expect("read");
        let at = MAGIC.len() + RECORD_HEADER + 2;
        bytes[at] ^= 0xff;
        std::fs::write(&first, bytes).expect("write");
        let e = open_small(dir.path()).unwrap_err();
        assert!(e.to_string().contains("damaged"), "{e}");
        let other = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            other.path().join(segment_name(1)),
            b"something else entirely",
        )
        .expect("write");
        let e = open_small(other.path()).unwrap_err();
        assert!(e.to_string().contains("bad magic"), "{e}");
    }

    /// Payloads of 100 bytes to 3 KiB, so that segments fill up and roll over.
    fn big(group: GroupId, index: u64) -> Arc<[u8]> {
        let len = 100 + ((index + group * 31) * 977 % 3000) as usize;
        Arc::from(
            (0..len)
                .map(|j| (index as usize + j + group as usize) as u8)
                .collect::<Vec<u8>>(),
        )
    }

    fn purge_marker(dir: &Path, group: GroupId) -> PathBuf {
        dir.join(format!("purged-{group}"))
    }

    fn read_marker(dir: &Path, group: GroupId) -> Option<u64> {
        std::fs::read_to_string(purge_marker(dir, group))
            .ok()
            .map(|s| s.trim().parse().expect("marker"))
    }

    /// The child side of [`acknowledged_appends_survive_kill_9`]: groups 1 and 3 append
    /// (3 in larger batches) and purge (the marker made durable first, as the log store
    /// does), group 2 appends rarely and never purges (its entries get copied forward);
    /// each prints `acked <group> <index>` once an append returned.
    fn append_until_killed(dir: &Path) -> ! {
        use std::io::Write as _;
        let log = SharedLog::open_with(dir, 64 * 1024).expect("child: open");
        let out = Arc::new(Mutex::new(std::io::stdout()));
        let threads: Vec<_> = (1..=3u64)
            .map(|g| {
                let group = log.attach(g, read_marker(dir, g)).expect("child: attach");
                let out = Arc::clone(&out);
                let dir = dir.to_path_buf();
                std::thread::spawn(move || {
                    let mut next = group.bounds().map_or(1, |(_, last)| last + 1);
                    loop {
                        let size = match g {
                            3 => 1 + next % 17,
                            _ => 1 + next % 3,
                        };
                        let batch: Vec<(u64, Arc<[u8]>)> =
                            (next..next + size).map(|i| (i, big(g, i))).collect();
                        group.append(&batch).expect("child: append");
                        next += size;
                        {
                            let mut out = out.lock();
                            writeln!(out, "acked {g} {}", next - 1).expect("child: stdout");
                            out.flush().expect("child: flush");
                        }
                        if g != 2 && next > 40 {
                            let upto = next - 20;
                            let tmp = dir.join(format!("purged-{g}.tmp"));
                            std::fs::write(&tmp, upto.to_string()).expect("child: marker");
                            File::open(&tmp)
                                .and_then(|f| f.sync_all())
                                .expect("child: sync");
                            std::fs::rename(&tmp, purge_marker(&dir, g)).expect("child: rename");
                            sync_dir(&dir).expect("child: sync dir");
                            group.purge(upto).expect("child: purge");
                        }
                        if g == 2 {
                            // The quiet group: a pace, not a wait for a condition. Its
                            // few entries stay behind in old segments, to be copied.
                            std::thread::sleep(std::time::Duration::from_millis(50));
                        }
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("child: appender");
        }
        unreachable!("the appenders never stop");
    }

    #[test]
    fn acknowledged_appends_survive_kill_9() {
        const CHILD: &str = "ELASTICKV_SHARED_LOG_CRASH_CHILD";
        if let Some(dir) = std::env::var_os(CHILD) {
            append_until_killed(Path::new(&dir));
        }
        use std::io::BufRead as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let mut acked = [0u64; 4];
        for round in 0..4u64 {
            let mut child = std::process::Command::new(std::env::current_exe().expect("exe"))
                .args([
                    "--exact",
                    "shared_log::tests::acknowledged_appends_survive_kill_9",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD, dir.path())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("spawn the appenders");
            let stdout = child.stdout.take().expect("stdout");
            let mut lines = std::io::BufReader::new(stdout).lines();
            let record = |line: &str, acked: &mut [u64; 4]| {
                if let Some(rest) = line.strip_prefix("acked ") {
                    let (g, i) = rest.split_once(' ').expect("group and index");
                    let g: usize = g.parse().expect("group");
                    acked[g] = acked[g].max(i.parse().expect("index"));
                }
            };
            let target = acked[3] + 400 + round * 97;
            while acked[3] < target {
                let line = lines
                    .next()
                    .expect("the appenders stopped early")
                    .expect("read");
                record(&line, &mut acked);
            }
            child.kill().expect("kill -9");
            child.wait().expect("wait");
            // A line printed after the last one read may also have been acknowledged.
            for line in lines.map_while(Result::ok) {
                record(&line, &mut acked);
            }
            let log = SharedLog::open_with(dir.path(), 64 * 1024).expect("reopen");
            for g in 1..=3u64 {
                let purged = read_marker(dir.path(), g);
                let group = log.attach(g, purged).expect("attach");
                let (first, last) = group.bounds().expect("entries");
                assert_eq!(
                    first,
                    purged.map_or(1, |p| p + 1),
                    "round {round}, group {g}"
                );
                assert!(
                    last >= acked[g as usize],
                    "round {round}, group {g}: acknowledged {}, found {last}",
                    acked[g as usize]
                );
                let read = group.read(first, last + 1, usize::MAX).expect("read back");
                assert_eq!(read.len() as u64, last - first + 1);
                for (i, payload) in (first..).zip(&read) {
                    assert_eq!(payload[..], big(g, i)[..], "group {g}, entry {i}");
                }
                acked[g as usize] = last;
            }
            // The busy groups keep up to a few segments' worth of entries live (20 to
            // 37 entries of up to 3 KiB each), and an oldest segment with more than half
            // a segment live is not copied; so a handful of segments is expected. Were
            // the quiet group pinning its first segment, every segment written since
            // would still be here (tens of them by the last round).
            let on_disk = segments_on_disk(dir.path());
            assert!(
                on_disk.len() <= 10,
                "round {round}: the quiet group pins no segments: {on_disk:?}"
            );
        }
        let on_disk = segments_on_disk(dir.path());
        assert!(
            on_disk.last().is_some_and(|newest| *newest >= 30),
            "enough segments were written for pinning to show: {on_disk:?}"
        );
    }
}
