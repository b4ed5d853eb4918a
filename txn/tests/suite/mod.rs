//! The state-machine suite, generic over the engine. `tests/state_machine.rs` runs it
//! once per engine with one line each:
//!
//! ```ignore
//! state_machine_tests!(mem, |_dir| Ok(MemEngine::new()));
//! ```

#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use elastickv_engine_api::{KeyRange, Mutation, MvccEngine, Result as EngineResult, Timestamp};
use elastickv_txn::{Command, CommandOutput, PointRead, TxnError, TxnStateMachine, TxnStatus};

mod commands;
mod determinism;
mod reads;
mod two_phase;

pub use commands::*;
pub use determinism::*;
pub use reads::*;
pub use two_phase::*;

/// Generates one `#[test]` per case inside `mod $name`, opening engines with `$open`
/// (a closure `|dir: &Path| -> elastickv_engine_api::Result<E>`).
#[macro_export]
macro_rules! state_machine_tests {
    ($name:ident, $open:expr) => {
        $crate::state_machine_tests!(@cases $name, $open;
            one_phase_writes_everything_at_commit_ts_and_leaves_no_records,
            one_phase_conflicts_with_a_newer_version,
            one_phase_checks_read_keys,
            one_phase_refuses_locked_keys,
            prewrite_then_commit_makes_values_visible,
            prewrite_is_idempotent,
            prewrite_conflicts_with_a_newer_version,
            prewrite_refuses_a_key_locked_by_another_txn,
            commit_of_rolled_back_primary_fails,
            repeated_commit_succeeds,
            commit_without_primary_lock_fails,
            rollback_of_committed_txn_fails,
            rollback_is_idempotent_and_removes_intents,
            missing_primary_lock_writes_rollback_record,
            expired_primary_lock_is_rolled_back_by_status_check,
            status_check_reports_commit,
            younger_locks_do_not_block_older_readers,
            readers_see_locks_of_older_pending_txns,
            scan_sees_locks_on_keys_without_committed_versions,
            scan_sees_locks_inside_the_returned_range_beyond_the_limit,
            lock_only_locks_block_writers_not_readers,
            deletes_commit_as_tombstones,
            large_values_are_staged_in_intents,
            raw_batch_reports_per_item_results,
            batch_validation_happens_before_any_write,
            extra_raw_ops_are_written_with_every_command,
            prefix_related_user_keys_stay_independent_and_ordered,
            tso_ceiling_only_grows,
            meta_put_sets_and_deletes_entries,
            purge_drops_finished_records_and_fences_old_prewrites,
            compaction_keeps_reads_at_the_safe_point,
            state_machine_is_deterministic,
            malformed_stored_records_are_errors_not_panics,
            apply_group_matches_applying_one_by_one,
            recent_writes_never_change_an_answer,
        );
    };
    (@cases $name:ident, $open:expr; $($case:ident),* $(,)?) => {
        mod $name {
            // The opener may name items imported next to the macro call.
            #[allow(unused_imports)]
            use super::*;

            $(
                #[test]
                fn $case() {
                    super::suite::$case(&$open);
                }
            )*
        }
    };
}

/// A state machine over a fresh engine in its own temporary directory.
pub struct Env<E: MvccEngine> {
    pub sm: TxnStateMachine<E>,
    // Dropped after the engine.
    _dir: tempfile::TempDir,
}

/// Opens a fresh engine.
pub fn env<E: MvccEngine, O: Fn(&Path) -> EngineResult<E>>(open: &O) -> Env<E> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let engine = open(dir.path()).expect("open the engine");
    Env {
        sm: TxnStateMachine::new(Arc::new(engine)),
        _dir: dir,
    }
}

pub fn put(key: &str, value: &str) -> Mutation {
    Mutation::put(key.as_bytes().to_vec(), value.as_bytes().to_vec())
}

pub fn del(key: &str) -> Mutation {
    Mutation::delete(key.as_bytes().to_vec())
}

pub fn k(key: &str) -> Vec<u8> {
    key.as_bytes().to_vec()
}

pub fn prewrite(primary: &str, start_ts: Timestamp, mutations: Vec<Mutation>) -> Command {
    Command::Prewrite {
        primary: k(primary),
        start_ts,
        lock_expiry: start_ts + 1_000,
        txn_size: mutations.len() as u64,
        mutations,
        read_keys: vec![],
    }
}

pub fn commit(primary: &str, start_ts: Timestamp, commit_ts: Timestamp, keys: &[&str]) -> Command {
    Command::Commit {
        primary: k(primary),
        start_ts,
        commit_ts,
        keys: keys.iter().map(|s| k(s)).collect(),
    }
}

pub fn rollback(primary: &str, start_ts: Timestamp, keys: &[&str]) -> Command {
    Command::Rollback {
        primary: k(primary),
        start_ts,
        keys: keys.iter().map(|s| k(s)).collect(),
    }
}

pub fn check(primary: &str, start_ts: Timestamp, caller_ts: Timestamp) -> Command {
    Command::CheckTxnStatus {
        primary: k(primary),
        start_ts,
        caller_ts,
    }
}

pub fn one_phase(start_ts: Timestamp, commit_ts: Timestamp, mutations: Vec<Mutation>) -> Command {
    Command::OnePhase {
        start_ts,
        commit_ts,
        mutations,
        read_keys: vec![],
    }
}

/// Applies a command that must succeed.
#[track_caller]
pub fn ok<E: MvccEngine>(sm: &TxnStateMachine<E>, command: Command) -> CommandOutput {
    match sm.apply(&command) {
        Ok(out) => out,
        Err(e) => panic!("{command:?} failed: {e}"),
    }
}

/// Applies a command that must fail.
#[track_caller]
pub fn refused<E: MvccEngine>(sm: &TxnStateMachine<E>, command: Command) -> TxnError {
    match sm.apply(&command) {
        Ok(out) => panic!("{command:?} succeeded: {out:?}"),
        Err(e) => e,
    }
}

/// The status answered by a CheckTxnStatus.
#[track_caller]
pub fn status<E: MvccEngine>(sm: &TxnStateMachine<E>, command: Command) -> TxnStatus {
    match ok(sm, command) {
        CommandOutput::Status(s) => s,
        other => panic!("expected a status, got {other:?}"),
    }
}

/// The committed value of `key` at `ts`; fails if a lock blocks the read.
#[track_caller]
pub fn value<E: MvccEngine>(sm: &TxnStateMachine<E>, key: &str, ts: Timestamp) -> Option<String> {
    match sm.read_point(key.as_bytes(), ts).expect("read") {
        PointRead::Value(v) => v.map(|v| String::from_utf8(v).expect("utf-8 value")),
        PointRead::Locked(lock) => panic!("{key} is locked: {lock:?}"),
    }
}

/// Every engine key with a live version at the latest timestamp.
pub fn live_engine_keys<E: MvccEngine>(sm: &TxnStateMachine<E>) -> Vec<Vec<u8>> {
    sm.engine()
        .scan_at(&KeyRange::all(), usize::MAX, u64::MAX)
        .expect("scan")
        .into_iter()
        .map(|p| p.key)
        .collect()
}

/// Every live engine key starting with `prefix`.
pub fn live_with_prefix<E: MvccEngine>(sm: &TxnStateMachine<E>, prefix: u8) -> usize {
    live_engine_keys(sm)
        .iter()
        .filter(|k| k.first() == Some(&prefix))
        .count()
}
