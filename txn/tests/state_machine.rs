//! The state-machine suite (tests/suite), once per engine: adding an engine is one line.

mod suite;

use std::path::Path;

use elastickv_engine_api::{KeyRange, MvccEngine};
use elastickv_engine_lmdb::{open_lmdb, LmdbOptions};
use elastickv_engine_mem::MemEngine;
use elastickv_engine_redb::{open_redb, RedbOptions};

state_machine_tests!(mem, |_dir: &Path| Ok(MemEngine::new()));
state_machine_tests!(redb, |dir: &Path| open_redb(dir, RedbOptions::default()));
state_machine_tests!(lmdb, |dir: &Path| open_lmdb(dir, LmdbOptions::default()));

/// Everything a client can observe of a state machine, as text.
fn observable<E: MvccEngine>(env: &suite::Env<E>, results: &[String]) -> Vec<String> {
    let mut out = results.to_vec();
    for ts in [1, 4, 6, 7, 9, 10, 30, 60, u64::MAX - 1] {
        out.push(format!(
            "{ts}: {:?}",
            env.sm.read_scan(&KeyRange::all(), 1_000, ts)
        ));
    }
    out.push(format!("{:?}", env.sm.scan_locks(&KeyRange::all(), 1_000)));
    out.push(format!(
        "{:?} {:?} {:?}",
        env.sm.meta(b"routes"),
        env.sm.tso_ceiling(),
        env.sm.gc_fence()
    ));
    out
}

#[test]
fn same_log_on_different_engines_gives_identical_reads() {
    let log = suite::sample_log();
    let mem = suite::env(&|_dir: &Path| Ok(MemEngine::new()));
    let redb = suite::env(&|dir: &Path| open_redb(dir, RedbOptions::default()));
    let lmdb = suite::env(&|dir: &Path| open_lmdb(dir, LmdbOptions::default()));
    let expected = observable(&mem, &suite::apply_log(&mem.sm, &log));
    assert_eq!(
        observable(&redb, &suite::apply_log(&redb.sm, &log)),
        expected
    );
    assert_eq!(
        observable(&lmdb, &suite::apply_log(&lmdb.sm, &log)),
        expected
    );
}

/// A command the engine refuses although its plan passed (here: more entries than the
/// engine takes in one batch) answers, in a group, what it answers alone, and its raw
/// operations are still written, in order with the other commands' (redb, whose groups
/// are one engine write).
#[test]
fn a_command_the_engine_refuses_in_a_group_answers_as_alone() {
    use elastickv_engine_api::Limits;
    let open = |dir: &Path| {
        open_redb(dir, RedbOptions::default())?.with_limits(Limits {
            max_batch_entries: 4,
            ..Limits::DEFAULT
        })
    };
    let log = vec![
        suite::one_phase(1, 2, vec![suite::put("a", "1")]),
        // 3 mutations and 2 raw operations: 5 entries.
        suite::one_phase(
            3,
            4,
            vec![
                suite::put("b", "2"),
                suite::put("c", "2"),
                suite::put("d", "2"),
            ],
        ),
        suite::one_phase(5, 6, vec![suite::put("e", "3")]),
        suite::one_phase(7, 8, vec![suite::put("f", "4"), suite::put("g", "4")]),
    ];
    for group in [2, 3, 4] {
        suite::check_groups_against_one_by_one(&open, &log, group);
    }
}
