//! The property-based differential test: random operation sequences run against the
//! engine and the reference model, comparing every result (ENGINE.md section 12).
//!
//! Where the contract allows a choice (compaction may keep or drop an anchor that hides
//! its key), the test checks that the engine's choice is one of the allowed ones and
//! then brings the model to the engine's state by restoring the engine's stream into it.

use std::collections::BTreeSet;
use std::fmt::Debug;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};

use crate::testkit::fixture::{dump, stream_of, Fixture};
use crate::testkit::model::ModelEngine;
use crate::testkit::Harness;
use crate::{
    CompactionScope, Durability, EngineError, KeyRange, KvPair, Mutation, MvccEngine, RawKeyspace,
    RawOp, Result, RetentionController, WriteBatch,
};

/// Keys: index 0 is the (invalid) empty key, the rest include prefix-related keys.
const KEYS: [&[u8]; 9] = [
    b"", b"a", b"k", b"k\0", b"k1", b"k10", b"k\xff", b"l", b"z\0",
];
/// Scan bounds: keys plus points between them.
const BOUNDS: [&[u8]; 8] = [b"", b"a", b"k", b"k\0\0", b"k1", b"k2", b"k\xff\0", b"z"];

#[derive(Debug, Clone)]
enum Op {
    Put {
        key: usize,
        value: u8,
        ts: u64,
        expire_at: u64,
    },
    Delete {
        key: usize,
        ts: u64,
    },
    ExpireAt {
        key: usize,
        expire_at: u64,
        ts: u64,
    },
    Apply {
        muts: Vec<(usize, Option<u8>, u64)>,
        read_set: Vec<usize>,
        start_ts: Option<u64>,
        commit_ts: u64,
        raw: bool,
    },
    Compact {
        min_ts: u64,
        scope: usize,
    },
    SetWatermark {
        ts: u64,
    },
    Get {
        key: usize,
        ts: u64,
    },
    Exists {
        key: usize,
        ts: u64,
    },
    Scan {
        start: usize,
        end: Option<usize>,
        limit: usize,
        ts: u64,
        reverse: bool,
    },
    Latest {
        key: usize,
    },
    Raw {
        ops: Vec<(usize, Option<u8>)>,
        delete_range: Option<(usize, usize)>,
    },
    RawScan {
        start: usize,
        end: Option<usize>,
        limit: usize,
        reverse: bool,
    },
    SnapshotRestore {
        from_model: bool,
    },
}

fn key() -> impl Strategy<Value = usize> {
    prop_oneof![30 => 1..KEYS.len(), 1 => Just(0usize)]
}

fn write_ts() -> impl Strategy<Value = u64> {
    prop_oneof![30 => 1u64..40, 1 => Just(0u64)]
}

fn read_ts() -> impl Strategy<Value = u64> {
    prop_oneof![10 => 0u64..45, 1 => Just(u64::MAX)]
}

fn expire() -> impl Strategy<Value = u64> {
    prop_oneof![3 => Just(0u64), 2 => 1u64..45]
}

fn scopes() -> [CompactionScope; 4] {
    [
        CompactionScope::All,
        CompactionScope::Only(vec![KeyRange::prefix(b"k1")]),
        CompactionScope::AllExcept(vec![KeyRange::new("k", "k10")]),
        CompactionScope::Only(vec![KeyRange::new("a", "k\0"), KeyRange::from("l")]),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let mutation = (
        key(),
        proptest::option::weighted(0.8, any::<u8>()),
        expire(),
    );
    prop_oneof![
        6 => (key(), any::<u8>(), write_ts(), expire())
            .prop_map(|(key, value, ts, expire_at)| Op::Put { key, value, ts, expire_at }),
        2 => (key(), write_ts()).prop_map(|(key, ts)| Op::Delete { key, ts }),
        2 => (key(), expire(), write_ts())
            .prop_map(|(key, expire_at, ts)| Op::ExpireAt { key, expire_at, ts }),
        4 => (
            proptest::collection::vec(mutation, 0..4),
            proptest::collection::vec(key(), 0..2),
            proptest::option::weighted(0.8, 0u64..40),
            write_ts(),
            any::<bool>(),
        )
            .prop_map(|(muts, read_set, start_ts, commit_ts, raw)| Op::Apply { muts, read_set, start_ts, commit_ts, raw }),
        1 => (0u64..40, 0..scopes().len()).prop_map(|(min_ts, scope)| Op::Compact { min_ts, scope }),
        1 => (0u64..40).prop_map(|ts| Op::SetWatermark { ts }),
        4 => (key(), read_ts()).prop_map(|(key, ts)| Op::Get { key, ts }),
        1 => (key(), read_ts()).prop_map(|(key, ts)| Op::Exists { key, ts }),
        4 => (0..BOUNDS.len(), proptest::option::weighted(0.7, 0..BOUNDS.len()), 0usize..5, read_ts(), any::<bool>())
            .prop_map(|(start, end, limit, ts, reverse)| Op::Scan { start, end, limit, ts, reverse }),
        2 => key().prop_map(|key| Op::Latest { key }),
        1 => (
            proptest::collection::vec((key(), proptest::option::of(any::<u8>())), 0..3),
            proptest::option::weighted(0.3, (0..BOUNDS.len(), 0..BOUNDS.len())),
        )
            .prop_map(|(ops, delete_range)| Op::Raw { ops, delete_range }),
        1 => (0..BOUNDS.len(), proptest::option::of(0..BOUNDS.len()), 0usize..5, any::<bool>())
            .prop_map(|(start, end, limit, reverse)| Op::RawScan { start, end, limit, reverse }),
        1 => any::<bool>().prop_map(|from_model| Op::SnapshotRestore { from_model }),
    ]
}

/// An error reduced to what the contract fixes: its kind and the key or timestamps it
/// names (free-text messages and contexts may differ between engines).
fn kind(err: &EngineError) -> String {
    match err {
        EngineError::WriteConflict { key, start_ts } => {
            format!("WriteConflict({key:?}, {start_ts})")
        }
        EngineError::ReadTsCompacted {
            read_ts,
            min_retained,
        } => {
            format!("ReadTsCompacted({read_ts}, {min_retained})")
        }
        EngineError::EmptyKey { .. } => "EmptyKey".into(),
        EngineError::KeyTooLarge { size, limit } => format!("KeyTooLarge({size}, {limit})"),
        EngineError::ValueTooLarge { size, limit } => format!("ValueTooLarge({size}, {limit})"),
        EngineError::InvalidArgument(_) => "InvalidArgument".into(),
        EngineError::Corrupted(_) => "Corrupted".into(),
        other => format!("{other:?}"),
    }
}

fn same<T: PartialEq + Debug>(
    what: &str,
    engine: Result<T>,
    model: Result<T>,
) -> std::result::Result<(), TestCaseError> {
    let engine = engine.map_err(|e| kind(&e));
    let model = model.map_err(|e| kind(&e));
    if engine != model {
        return Err(TestCaseError::fail(format!(
            "{what}: engine {engine:?}, model {model:?}"
        )));
    }
    Ok(())
}

fn range(start: usize, end: Option<usize>) -> KeyRange {
    KeyRange {
        start: BOUNDS[start].to_vec(),
        end: end.map(|e| BOUNDS[e].to_vec()),
    }
}

fn scan<E: MvccEngine>(
    e: &E,
    range: &KeyRange,
    limit: usize,
    ts: u64,
    reverse: bool,
) -> Result<Vec<KvPair>> {
    if reverse {
        e.reverse_scan_at(range, limit, ts)
    } else {
        e.scan_at(range, limit, ts)
    }
}

fn raw_scan<E: MvccEngine>(
    e: &E,
    range: &KeyRange,
    limit: usize,
    reverse: bool,
) -> Result<Vec<KvPair>> {
    if reverse {
        e.raw_reverse_scan(range, limit)
    } else {
        e.raw_scan(range, limit)
    }
}

fn apply<E: MvccEngine>(e: &E, op: &Op) -> Result<()> {
    match op {
        Op::Put {
            key,
            value,
            ts,
            expire_at,
        } => e.put_at(KEYS[*key], &[*value], *ts, *expire_at),
        Op::Delete { key, ts } => e.delete_at(KEYS[*key], *ts),
        Op::Apply {
            muts,
            read_set,
            start_ts,
            commit_ts,
            raw,
        } => {
            let muts: Vec<Mutation> = muts
                .iter()
                .map(|(key, value, expire_at)| match value {
                    Some(v) => Mutation::Put {
                        key: KEYS[*key].to_vec(),
                        value: vec![*v],
                        expire_at: *expire_at,
                    },
                    None => Mutation::delete(KEYS[*key]),
                })
                .collect();
            let read_set: Vec<Vec<u8>> = read_set.iter().map(|k| KEYS[*k].to_vec()).collect();
            let raw_ops = [RawOp::put("applied", commit_ts.to_be_bytes())];
            let mut batch = WriteBatch::new(&muts, *commit_ts).with_read_set(&read_set);
            if let Some(start_ts) = start_ts {
                batch = batch.with_conflict_check(*start_ts);
            }
            if *raw {
                batch = batch.with_raw(&raw_ops);
            }
            e.write(&batch)
        }
        Op::Raw { ops, delete_range } => {
            let mut raw: Vec<RawOp> = ops
                .iter()
                .map(|(key, value)| match value {
                    Some(v) => RawOp::put(KEYS[*key], [*v]),
                    None => RawOp::delete(KEYS[*key]),
                })
                .collect();
            if let Some((start, end)) = delete_range {
                raw.push(RawOp::DeleteRange {
                    range: range(*start, Some(*end)),
                });
            }
            e.raw_write(&raw, Durability::Buffered)
        }
        Op::SetWatermark { ts } => e.set_min_retained_ts(*ts),
        _ => Ok(()),
    }
}

fn step<E: MvccEngine>(e: &E, m: &ModelEngine, op: &Op) -> std::result::Result<(), TestCaseError> {
    let what = format!("{op:?}");
    match op {
        Op::Put { .. }
        | Op::Delete { .. }
        | Op::Apply { .. }
        | Op::Raw { .. }
        | Op::SetWatermark { .. } => {
            same(&what, apply(e, op), apply(m, op))?;
            if matches!(op, Op::Apply { raw: true, .. }) {
                same(
                    &format!("{what} raw"),
                    e.raw_get(b"applied"),
                    m.raw_get(b"applied"),
                )?;
            }
        }
        Op::ExpireAt { key, expire_at, ts } => {
            same(
                &what,
                e.expire_at(KEYS[*key], *expire_at, *ts),
                m.expire_at(KEYS[*key], *expire_at, *ts),
            )?;
        }
        Op::Compact { min_ts, scope } => {
            let scope = &scopes()[*scope];
            let optional = m.optional_anchors(*min_ts, scope);
            same(
                &what,
                e.compact(*min_ts, scope).map(|_| ()),
                m.compact(*min_ts, scope).map(|_| ()),
            )?;
            let (got, want) = (dump(e), dump(m));
            for (key, versions) in &got {
                let wanted: BTreeSet<u64> = want
                    .get(key)
                    .map(|v| v.iter().map(|v| v.ts).collect())
                    .unwrap_or_default();
                for version in versions {
                    if !wanted.contains(&version.ts)
                        && !optional.contains(&(key.clone(), version.ts))
                    {
                        return Err(TestCaseError::fail(format!(
                            "{what}: {key:?}@{} should be removed",
                            version.ts
                        )));
                    }
                }
            }
            for (key, versions) in &want {
                let kept: Vec<_> = got
                    .get(key)
                    .map(|v| v.iter().filter(|v| versions.contains(v)).cloned().collect())
                    .unwrap_or_default();
                if &kept != versions {
                    return Err(TestCaseError::fail(format!(
                        "{what}: {key:?} must keep {versions:?}, has {:?}",
                        got.get(key)
                    )));
                }
            }
            // Adopt the engine's allowed choice.
            m.restore(&mut stream_of(e).as_slice())
                .map_err(|err| TestCaseError::fail(format!("{what}: {err}")))?;
        }
        Op::Get { key, ts } => same(&what, e.get_at(KEYS[*key], *ts), m.get_at(KEYS[*key], *ts))?,
        Op::Exists { key, ts } => same(
            &what,
            e.exists_at(KEYS[*key], *ts),
            m.exists_at(KEYS[*key], *ts),
        )?,
        Op::Scan {
            start,
            end,
            limit,
            ts,
            reverse,
        } => {
            let r = range(*start, *end);
            let (got, want) = (
                scan(e, &r, *limit, *ts, *reverse),
                scan(m, &r, *limit, *ts, *reverse),
            );
            // A scan that cannot return anything (limit 0, empty range) may skip the
            // watermark check: the contract fixes its result, not the order of checks.
            let trivially_empty = (*limit == 0 || r.is_empty())
                && matches!(&got, Ok(pairs) if pairs.is_empty())
                && matches!(&want, Err(EngineError::ReadTsCompacted { .. }));
            if !trivially_empty {
                same(&what, got, want)?;
            }
        }
        Op::Latest { key } => same(
            &what,
            e.latest_commit_ts(KEYS[*key]),
            m.latest_commit_ts(KEYS[*key]),
        )?,
        Op::RawScan {
            start,
            end,
            limit,
            reverse,
        } => {
            let r = range(*start, *end);
            same(
                &what,
                raw_scan(e, &r, *limit, *reverse),
                raw_scan(m, &r, *limit, *reverse),
            )?;
        }
        Op::SnapshotRestore { from_model } => {
            same(&what, Ok(dump(e)), Ok(dump(m)))?;
            let stream = if *from_model {
                stream_of(m)
            } else {
                stream_of(e)
            };
            let restored = e
                .restore(&mut stream.as_slice())
                .map(|s| (s.keys, s.versions));
            let expected = m
                .restore(&mut stream.as_slice())
                .map(|s| (s.keys, s.versions));
            same(&what, restored, expected)?;
            same(&format!("{what} after"), Ok(dump(e)), Ok(dump(m)))?;
        }
    }
    same(
        &format!("last_commit_ts after {what}"),
        e.last_commit_ts(),
        m.last_commit_ts(),
    )?;
    same(
        &format!("min_retained_ts after {what}"),
        e.min_retained_ts(),
        m.min_retained_ts(),
    )?;
    Ok(())
}

/// Random sequences of every operation give the same results on the engine and on the
/// reference model, and leave the same content.
pub fn random_operation_sequences_match_the_reference_model<H: Harness>(harness: &H) {
    // 64 cases keep the kit fast; PROPTEST_CASES asks for a deeper run.
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(64);
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let strategy = proptest::collection::vec(op(), 1..40);
    let result = runner.run(&strategy, |ops| {
        let fx = Fixture::new(harness);
        let e = fx.engine();
        let m = ModelEngine::with_limits(e.limits());
        for op in &ops {
            step(e, &m, op)?;
        }
        same("final content", Ok(dump(e)), Ok(dump(&m)))?;
        let all = KeyRange::all();
        same(
            "final raw keyspace",
            e.raw_scan(&all, 100),
            m.raw_scan(&all, 100),
        )?;
        Ok(())
    });
    match result {
        Ok(()) => {}
        Err(TestError::Fail(reason, ops)) => panic!("{reason}\nminimal failing sequence: {ops:#?}"),
        Err(TestError::Abort(reason)) => panic!("proptest aborted: {reason}"),
    }
}
