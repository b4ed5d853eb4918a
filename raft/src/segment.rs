//! What the two file logs ([`crate::log_file`], [`crate::shared_log`]) share: segment
//! file names, scanning a segment's records, and what opening does with a damaged one.
//!
//! A segment is an 8-byte magic header, then records, each a header that starts with the
//! payload's length (u32 LE) followed by the payload.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

pub(crate) fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// `<n, 20 digits>.seg`
pub(crate) fn segment_name(n: u64) -> String {
    format!("{n:020}.seg")
}

pub(crate) fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".seg")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The numbers of the segments in `dir` (created if missing), ascending.
pub(crate) fn list_segments(dir: &Path) -> io::Result<Vec<u64>> {
    std::fs::create_dir_all(dir)?;
    let mut numbers = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        if let Some(n) = entry?.file_name().to_str().and_then(parse_segment_name) {
            numbers.push(n);
        }
    }
    numbers.sort_unstable();
    Ok(numbers)
}

/// Creates segment `n` in `dir` holding only `magic`, and makes it and its name
/// durable.
pub(crate) fn create(dir: &Path, n: u64, magic: &[u8; 8]) -> io::Result<(PathBuf, File)> {
    let path = dir.join(segment_name(n));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)?;
    file.write_all_at(magic, 0)?;
    file.sync_all()?;
    sync_dir(dir)?;
    Ok((path, file))
}

/// Reads records that lie back to back in one segment (`records`: each one's offset and
/// payload length) with one `pread` and appends their payloads to `out`.
/// `check(i, header, payload)` verifies record `i` (its checksum, and that it is the
/// entry wanted) and on failure names it ("log entry 7 of group 2"), for the error.
pub(crate) fn read_adjacent(
    file: &File,
    path: &Path,
    header_len: usize,
    records: &[(u64, u32)],
    mut check: impl FnMut(usize, &[u8], &[u8]) -> Result<(), String>,
    out: &mut Vec<Vec<u8>>,
) -> io::Result<()> {
    let (Some(&(first, _)), Some(&(last, last_len))) = (records.first(), records.last()) else {
        return Ok(());
    };
    let end = last + header_len as u64 + u64::from(last_len);
    let mut buf = vec![0u8; usize::try_from(end - first).expect("fits in memory")];
    file.read_exact_at(&mut buf, first)?;
    let mut at = 0usize;
    for (i, &(offset, len)) in records.iter().enumerate() {
        let header = &buf[at..at + header_len];
        let payload = &buf[at + header_len..at + header_len + len as usize];
        if let Err(what) = check(i, header, payload) {
            return Err(invalid(format!(
                "{what} in {} at offset {offset} is damaged",
                path.display()
            )));
        }
        out.push(payload.to_vec());
        at += header_len + len as usize;
    }
    Ok(())
}

/// What scanning one segment found.
pub(crate) struct Scanned<R> {
    /// What the caller's check made of each whole record, in order.
    pub(crate) records: Vec<R>,
    /// Length of the valid prefix.
    pub(crate) valid_len: u64,
    /// Why the scan stopped before the end of the file, if it did.
    pub(crate) damage: Option<String>,
}

/// Scans the segment at `path`: `magic`, then records with `header_len`-byte headers
/// and payloads of at most `max_record` bytes. `check(header, payload, offset)` verifies
/// one record (its checksum) and returns what the caller keeps of it; an `Err` ends the
/// scan there, as damage. A file with other magic bytes is refused.
pub(crate) fn scan<R>(
    path: &Path,
    magic: &[u8; 8],
    header_len: usize,
    max_record: u32,
    mut check: impl FnMut(&[u8], &[u8], u64) -> Result<R, String>,
) -> io::Result<Scanned<R>> {
    let file = File::open(path)?;
    let file_len = file.metadata()?.len();
    let mut reader = BufReader::with_capacity(1 << 20, file);
    if file_len < magic.len() as u64 {
        return Ok(Scanned {
            records: Vec::new(),
            valid_len: 0,
            damage: Some(format!("segment header cut short ({file_len} bytes)")),
        });
    }
    let mut found = [0u8; 8];
    reader.read_exact(&mut found)?;
    if &found != magic {
        return Err(invalid(format!(
            "{} is not a segment of this elastickv log (bad magic bytes)",
            path.display()
        )));
    }
    let mut records = Vec::new();
    let mut offset = magic.len() as u64;
    let mut header = vec![0u8; header_len];
    let mut payload = Vec::new();
    let damage = loop {
        if offset == file_len {
            break None;
        }
        if file_len - offset < header_len as u64 {
            break Some(format!("record header cut short at offset {offset}"));
        }
        reader.read_exact(&mut header)?;
        let len = u32::from_le_bytes(header[0..4].try_into().expect("4 bytes"));
        let end = offset + header_len as u64 + u64::from(len);
        if len > max_record || end > file_len {
            break Some(format!("record at offset {offset} cut short"));
        }
        payload.resize(len as usize, 0);
        reader.read_exact(&mut payload)?;
        match check(&header, &payload, offset) {
            Ok(record) => records.push(record),
            Err(why) => break Some(format!("record at offset {offset} {why}")),
        }
        offset = end;
    };
    Ok(Scanned {
        records,
        valid_len: offset,
        damage,
    })
}

/// Opens scanned segment `path` of the log in `dir` for reading and writing, after
/// dealing with any `damage` the scan found. In the last segment that is a write a
/// crash interrupted (never acknowledged: its sync had not returned): the segment is
/// cut back to its `valid_len` bytes, or removed (`None`) when not even its header is
/// whole. In an earlier segment it is damage to acknowledged data: an error.
pub(crate) fn open_scanned(
    dir: &Path,
    path: &Path,
    valid_len: u64,
    damage: Option<&str>,
    is_last: bool,
) -> io::Result<Option<File>> {
    if let Some(damage) = damage {
        if !is_last {
            return Err(invalid(format!(
                "log segment {} is damaged ({damage}) and later segments exist",
                path.display()
            )));
        }
        if valid_len == 0 {
            tracing::warn!(segment = %path.display(), %damage, "removing a log segment a crash left unfinished");
            std::fs::remove_file(path)?;
            sync_dir(dir)?;
            return Ok(None);
        }
        tracing::warn!(
            segment = %path.display(),
            %damage,
            kept_bytes = valid_len,
            "cutting the log back to its last whole record (a write a crash interrupted)"
        );
        let file = OpenOptions::new().write(true).open(path)?;
        file.set_len(valid_len)?;
        file.sync_all()?;
    }
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_round_trip_and_other_files_are_ignored() {
        assert_eq!(segment_name(42), "00000000000000000042.seg");
        assert_eq!(parse_segment_name(&segment_name(u64::MAX)), Some(u64::MAX));
        for other in [
            "42.seg",
            "0000000000000000004x.seg",
            "00000000000000000042.tmp",
        ] {
            assert_eq!(parse_segment_name(other), None, "{other}");
        }
        let dir = tempfile::tempdir().expect("tempdir");
        for name in [segment_name(7), segment_name(3), "notes.txt".to_string()] {
            std::fs::write(dir.path().join(name), b"").expect("write");
        }
        assert_eq!(list_segments(dir.path()).expect("list"), vec![3, 7]);
    }
}
