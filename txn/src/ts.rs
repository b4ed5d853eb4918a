//! Hybrid-logical timestamps (TXN.md 1): `(physical_millis << 16) | logical`.
//!
//! The 48 high bits hold wall-clock milliseconds, the 16 low bits a logical counter, so a
//! timestamp is a plain `u64` that sorts like (time, counter) and can be compared with
//! other timestamps without decoding.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

pub use elastickv_engine_api::Timestamp;

/// Bits of the logical counter.
pub const LOGICAL_BITS: u32 = 16;
/// The largest physical part a timestamp can hold (48 bits of milliseconds).
pub const MAX_PHYSICAL_MILLIS: u64 = (1 << (64 - LOGICAL_BITS)) - 1;
const LOGICAL_MASK: u64 = (1 << LOGICAL_BITS) - 1;

/// Builds a timestamp from milliseconds since the Unix epoch and a logical counter.
/// Physical values above 48 bits saturate at [`MAX_PHYSICAL_MILLIS`].
pub fn compose(physical_millis: u64, logical: u16) -> Timestamp {
    (physical_millis.min(MAX_PHYSICAL_MILLIS) << LOGICAL_BITS) | u64::from(logical)
}

/// The physical part (milliseconds since the Unix epoch).
pub fn physical_millis(ts: Timestamp) -> u64 {
    ts >> LOGICAL_BITS
}

/// The logical counter.
pub fn logical(ts: Timestamp) -> u16 {
    // The mask keeps 16 bits, so the conversion cannot fail.
    u16::try_from(ts & LOGICAL_MASK).unwrap_or(u16::MAX)
}

/// `ts` moved `millis` milliseconds later (saturating), keeping its logical part.
pub fn add_millis(ts: Timestamp, millis: u64) -> Timestamp {
    ts.saturating_add(millis.saturating_mul(1 << LOGICAL_BITS))
}

/// `ts` moved `millis` milliseconds earlier (saturating at 0).
pub fn sub_millis(ts: Timestamp, millis: u64) -> Timestamp {
    ts.saturating_sub(millis.saturating_mul(1 << LOGICAL_BITS))
}

/// A source of wall-clock milliseconds. Only timestamp *producers* read a clock; the
/// state machine never does (it applies timestamps carried in commands).
pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    /// Milliseconds since the Unix epoch.
    fn now_millis(&self) -> u64;

    /// The current time as a timestamp with logical part 0.
    fn now_ts(&self) -> Timestamp {
        compose(self.now_millis(), 0)
    }
}

/// The system wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_millis(&self) -> u64 {
        // A clock before 1970 reads as the epoch: timestamps stay monotonic through the
        // oracle's `max(last + 1, now)` anyway.
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(MAX_PHYSICAL_MILLIS))
            .unwrap_or(0)
    }
}

/// A clock that only moves when told to: for tests and simulations.
#[derive(Debug, Default)]
pub struct ManualClock {
    millis: AtomicU64,
}

impl ManualClock {
    /// A clock reading `millis`.
    pub fn new(millis: u64) -> Self {
        ManualClock {
            millis: AtomicU64::new(millis),
        }
    }

    /// Moves the clock forward by `millis`.
    pub fn advance(&self, millis: u64) {
        self.millis.fetch_add(millis, Ordering::SeqCst);
    }

    /// Sets the clock (it may go backwards: the oracle must cope).
    pub fn set(&self, millis: u64) {
        self.millis.store(millis, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_millis(&self) -> u64 {
        self.millis.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_layout_round_trips() {
        let ts = compose(1_700_000_000_123, 42);
        assert_eq!(physical_millis(ts), 1_700_000_000_123);
        assert_eq!(logical(ts), 42);
        assert!(compose(5, u16::MAX) < compose(6, 0));
        assert_eq!(physical_millis(add_millis(ts, 10)), 1_700_000_000_133);
        assert_eq!(logical(add_millis(ts, 10)), 42);
        assert_eq!(sub_millis(add_millis(ts, 7), 7), ts);
        assert_eq!(physical_millis(compose(u64::MAX, 0)), MAX_PHYSICAL_MILLIS);
        assert_eq!(add_millis(u64::MAX - 1, 1), u64::MAX);
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(10);
        assert_eq!(clock.now_ts(), compose(10, 0));
        clock.advance(5);
        assert_eq!(clock.now_millis(), 15);
        assert!(SystemClock.now_millis() > 0);
    }
}
