//! [`MemSnapshot`]: a published state, held.

use std::io::Write;
use std::sync::Arc;

use elastickv_engine_api::stream::SnapshotWriter;
use elastickv_engine_api::{
    EngineSnapshot, Result, SnapshotStats, Timestamp, Version, VersionKind,
};

use crate::State;

/// A point-in-time image of a [`MemEngine`](crate::MemEngine): the engine's immutable
/// state at the moment it was taken. Taking it is O(1); writers publish new states and
/// never touch this one.
pub struct MemSnapshot {
    state: Arc<State>,
}

impl MemSnapshot {
    pub(crate) fn new(state: Arc<State>) -> Self {
        MemSnapshot { state }
    }
}

impl std::fmt::Debug for MemSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemSnapshot")
            .field("keys", &self.state.data.len())
            .field("last_commit_ts", &self.state.last_commit_ts)
            .field("min_retained_ts", &self.state.min_retained)
            .finish()
    }
}

impl EngineSnapshot for MemSnapshot {
    fn last_commit_ts(&self) -> Timestamp {
        self.state.last_commit_ts
    }

    fn min_retained_ts(&self) -> Timestamp {
        self.state.min_retained
    }

    fn for_each_version(
        &self,
        visit: &mut dyn FnMut(&[u8], &Version) -> Result<bool>,
    ) -> Result<()> {
        for (key, history) in self.state.data.iter() {
            for v in history.versions() {
                let version = Version {
                    ts: v.ts,
                    kind: match &v.value {
                        Some(value) => VersionKind::Value(value.to_vec()),
                        None => VersionKind::Tombstone,
                    },
                    expire_at: v.expire_at,
                };
                if !visit(key, &version)? {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Streams straight from the shared values, without copying them into [`Version`]s.
    fn write_to(&self, out: &mut dyn Write) -> Result<SnapshotStats> {
        let mut writer = SnapshotWriter::new(out, self.last_commit_ts(), self.min_retained_ts())?;
        for (key, history) in self.state.data.iter() {
            for v in history.versions() {
                writer.push_parts(key, v.ts, v.value.as_deref(), v.expire_at)?;
            }
        }
        writer.finish()
    }
}
