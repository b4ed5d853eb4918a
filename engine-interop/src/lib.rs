//! Cross-engine interoperability checks. The tests in `tests/` restore a snapshot
//! taken from each engine into each engine (16 pairs) and compare every read; this
//! library holds the comparison they share.
#![deny(missing_docs)]

use elastickv_engine_api::{EngineSnapshot, KeyRange, MvccEngine, Result, Timestamp, Version};

/// Everything an engine's snapshot holds: two engines with equal images answer every
/// read identically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// `last_commit_ts` of the snapshot.
    pub last_commit_ts: Timestamp,
    /// The retention watermark of the snapshot.
    pub min_retained_ts: Timestamp,
    /// Every (key, version) pair in stream order.
    pub versions: Vec<(Vec<u8>, Version)>,
}

/// Reads `engine`'s whole image through its snapshot.
pub fn image<E: MvccEngine>(engine: &E) -> Result<Image> {
    let snapshot = engine.snapshot()?;
    let mut versions = Vec::new();
    snapshot.for_each_version(&mut |key, version| {
        versions.push((key.to_vec(), version.clone()));
        Ok(true)
    })?;
    Ok(Image {
        last_commit_ts: snapshot.last_commit_ts(),
        min_retained_ts: snapshot.min_retained_ts(),
        versions,
    })
}

/// The reads a client could make at `ts`: a full forward scan, a full reverse scan,
/// and the latest commit ts of every key in the image.
pub fn reads_at<E: MvccEngine>(engine: &E, keys: &[Vec<u8>], ts: Timestamp) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let all = KeyRange::all();
    out.push(format!("{:?}", engine.scan_at(&all, usize::MAX, ts)?));
    out.push(format!(
        "{:?}",
        engine.reverse_scan_at(&all, usize::MAX, ts)?
    ));
    for key in keys {
        out.push(format!(
            "{:?} {:?}",
            engine.get_at(key, ts)?,
            engine.latest_commit_ts(key)?
        ));
    }
    Ok(out)
}
