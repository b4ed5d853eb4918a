//! Growing LMDB's memory map safely.
//!
//! LMDB allocates pages inside a fixed-size memory map and fails a write with
//! `MDB_MAP_FULL` when it is used up. `mdb_env_set_mapsize` can enlarge it, but only
//! while no transaction of this process is open: it unmaps and remaps the file, so any
//! open transaction would read through a stale mapping. [`MapGate`] makes that rule
//! hold: every transaction holds a [`GatePass`] for its whole life, and growing waits
//! until no pass is out.
//!
//! Two kinds of passes are told apart because they live for very different times. Read
//! views and write transactions last one call; snapshots may be streamed for minutes.
//! A pending growth first waits for snapshots to end while short reads keep flowing
//! (blocking them behind a long snapshot would stall every reader), then stops new
//! short reads, lets the open ones drain, and resizes. New snapshots wait while growth
//! is pending, so they cannot starve it. The wait is bounded: a writer that cannot grow
//! in time fails instead of hanging (for example when the thread that would release the
//! snapshot is the one writing).

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Counts the open transactions of one environment and lets the map grow between them.
#[derive(Debug, Default)]
pub(crate) struct MapGate {
    state: Mutex<GateState>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct GateState {
    /// Open read views and write transactions (short-lived).
    views: usize,
    /// Open snapshots (possibly long-lived).
    snapshots: usize,
    /// A growth is waiting: new snapshots wait.
    grow_pending: bool,
    /// A growth is draining the short-lived passes: new views wait too.
    draining: bool,
}

/// What a pass counts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PassKind {
    /// A read view or a write transaction: open for the length of one call.
    View,
    /// A snapshot: open as long as its owner keeps it.
    Snapshot,
}

/// Proof that the map will not be resized while it is held. Every LMDB transaction of
/// the engine is created after its pass and dropped before it.
#[derive(Debug)]
pub(crate) struct GatePass {
    gate: Arc<MapGate>,
    kind: PassKind,
}

impl Drop for GatePass {
    fn drop(&mut self) {
        let mut state = self.gate.lock();
        match self.kind {
            PassKind::View => state.views -= 1,
            PassKind::Snapshot => state.snapshots -= 1,
        }
        // Only a pending growth waits for passes to be returned; waking nobody on
        // every read keeps the common path free of a futex wake-up.
        let growth_waits = state.grow_pending;
        drop(state);
        if growth_waits {
            self.gate.changed.notify_all();
        }
    }
}

impl MapGate {
    fn lock(&self) -> MutexGuard<'_, GateState> {
        // The state is two counters and two flags, each updated in one statement:
        // a panic elsewhere cannot leave it half-changed.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes a pass, waiting while a growth needs the map to itself.
    pub(crate) fn enter(self: &Arc<Self>, kind: PassKind) -> GatePass {
        let mut state = self.lock();
        loop {
            let blocked = match kind {
                PassKind::View => state.draining,
                PassKind::Snapshot => state.grow_pending,
            };
            if !blocked {
                break;
            }
            state = self
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        match kind {
            PassKind::View => state.views += 1,
            PassKind::Snapshot => state.snapshots += 1,
        }
        GatePass {
            gate: Arc::clone(self),
            kind,
        }
    }

    /// Runs `resize` once no pass is out, waiting at most `wait` for the open ones to
    /// be dropped. Returns `None` (without running it) on timeout. The caller must hold
    /// no pass itself.
    pub(crate) fn exclusive<R>(&self, wait: Duration, resize: impl FnOnce() -> R) -> Option<R> {
        let deadline = Instant::now() + wait;
        let mut state = self.lock();
        state.grow_pending = true;
        let mut result = None;
        loop {
            if state.snapshots == 0 {
                state.draining = true;
                if state.views == 0 {
                    result = Some(resize());
                    break;
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            state = self
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        state.grow_pending = false;
        state.draining = false;
        drop(state);
        self.changed.notify_all();
        result
    }

    /// Runs `resize` only if no pass is out right now; never waits.
    pub(crate) fn try_exclusive<R>(&self, resize: impl FnOnce() -> R) -> Option<R> {
        let state = self.lock();
        if state.views == 0 && state.snapshots == 0 {
            // Holding the lock keeps new passes out while the map is remapped.
            let result = resize();
            drop(state);
            return Some(result);
        }
        None
    }
}

/// The map size to grow to from `current` when at least `needed` more bytes are
/// wanted: double, or more if `needed` calls for it, rounded up to `page` and capped at
/// `max`. `None` when the map is already at `max`.
pub(crate) fn grown_size(current: usize, needed: usize, max: usize, page: usize) -> Option<usize> {
    let wanted = current
        .saturating_mul(2)
        .max(current.saturating_add(needed.saturating_mul(2)));
    let capped = wanted.min(max);
    let rounded = capped.div_ceil(page).saturating_mul(page);
    let rounded = if rounded > max {
        capped - capped % page
    } else {
        rounded
    };
    (rounded > current).then_some(rounded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_doubles_covers_big_needs_and_stops_at_the_cap() {
        assert_eq!(grown_size(1 << 20, 10, 1 << 30, 4096), Some(2 << 20));
        assert_eq!(grown_size(1 << 20, 4 << 20, 1 << 30, 4096), Some(9 << 20));
        assert_eq!(grown_size(1 << 20, 10, 1536 << 10, 4096), Some(1536 << 10));
        assert_eq!(grown_size(1 << 20, 10, 1 << 20, 4096), None);
        assert_eq!(grown_size(4096, 1, 10_000, 4096), Some(8192));
    }

    #[test]
    fn growth_waits_for_snapshots_and_views_and_gives_up_in_time() {
        let gate = Arc::new(MapGate::default());
        let snapshot = gate.enter(PassKind::Snapshot);
        assert_eq!(gate.try_exclusive(|| ()), None);
        assert_eq!(gate.exclusive(Duration::from_millis(20), || ()), None);
        // A view still enters while a snapshot holds growth back.
        let view = gate.enter(PassKind::View);
        drop(view);
        let releaser = std::thread::spawn(move || drop(snapshot));
        assert_eq!(gate.exclusive(Duration::from_secs(60), || 7), Some(7));
        releaser.join().unwrap();
        assert_eq!(gate.try_exclusive(|| 8), Some(8));
    }
}
