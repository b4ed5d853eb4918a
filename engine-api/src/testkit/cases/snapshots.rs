//! Snapshots and restore (ENGINE.md section 7), including streams exchanged with a
//! different engine (the reference model).

use crate::stream::SnapshotWriter;
use crate::testkit::fixture::{dump, dump_snapshot, expect_err, stream_of, Fixture};
use crate::testkit::model::ModelEngine;
use crate::testkit::Harness;
use crate::{
    CompactionScope, EngineError, EngineSnapshot, KeyRange, Mutation, MvccEngine, RawKeyspace,
    RawOp, RetentionController, Version, VersionKind, WriteBatch,
};

/// Writes a store with every kind of version: values, tombstones, TTLs, several
/// versions per key, prefix-related keys, a watermark.
fn populate<E: MvccEngine>(e: &E) {
    for (i, key) in super::PREFIX_KEYS.iter().enumerate() {
        e.put_at(key, format!("v{i}").as_bytes(), 10 + i as u64, 0)
            .unwrap();
    }
    e.delete_at(b"k1", 30).unwrap();
    e.put_at(b"ttl", b"t", 20, 40).unwrap();
    e.put_at(b"empty", b"", 21, 0).unwrap();
    e.put_at(b"k10", b"newer", 35, 0).unwrap();
    e.set_min_retained_ts(12).unwrap();
}

/// A snapshot restored into a fresh engine reproduces every version, `last_commit_ts`
/// and the watermark; restore replaces what was there.
pub fn snapshot_round_trip_restores_versions_and_counters<H: Harness>(harness: &H) {
    let fx = Fixture::new(harness);
    let source = fx.engine();
    populate(source);
    let snapshot = source.snapshot().unwrap();
    assert_eq!(snapshot.last_commit_ts(), 35);
    assert_eq!(snapshot.min_retained_ts(), 12);
    let mut bytes = Vec::new();
    let stats = snapshot.write_to(&mut bytes).unwrap();
    assert_eq!(stats.bytes as usize, bytes.len());
    assert_eq!(stats.versions, 9);
    assert_eq!(stats.keys, 7);

    let other = fx.another();
    let target = other.engine();
    target.put_at(b"stale", b"x", 99, 0).unwrap();
    target.set_min_retained_ts(50).unwrap();
    let restored = target.restore(&mut bytes.as_slice()).unwrap();
    assert_eq!((restored.keys, restored.versions), (7, 9));
    assert_eq!(restored.bytes as usize, bytes.len());
    assert_eq!(dump(target), dump(source));
    assert_eq!(target.last_commit_ts().unwrap(), 35, "restore replaces it");
    assert_eq!(target.min_retained_ts().unwrap(), 12, "restore replaces it");
    assert_eq!(target.latest_commit_ts(b"stale").unwrap(), None);
    assert_eq!(target.get_at(b"ttl", 39).unwrap(), Some(b"t".to_vec()));
    assert_eq!(target.get_at(b"ttl", 40).unwrap(), None);
    assert_eq!(target.get_at(b"empty", 21).unwrap(), Some(Vec::new()));
    assert_eq!(target.get_at(b"k1", 30).unwrap(), None);
    assert_eq!(target.get_at(b"k1", 29).unwrap(), Some(b"v2".to_vec()));
}

/// An empty store snapshots to a valid stream that restores to an empty store.
pub fn empty_store_snapshot_restores_to_an_empty_store<H: Harness>(harness: &H) {
    let fx = Fixture::new(harness);
    let bytes = stream_of(fx.engine());
    let other = fx.another();
    let target = other.engine();
    populate(target);
    let stats = target.restore(&mut bytes.as_slice()).unwrap();
    assert_eq!((stats.keys, stats.versions), (0, 0));
    assert!(dump(target).is_empty());
    assert_eq!(target.last_commit_ts().unwrap(), 0);
    assert_eq!(target.min_retained_ts().unwrap(), 0);
    assert!(target
        .scan_at(&KeyRange::all(), 10, u64::MAX)
        .unwrap()
        .is_empty());
    let model = ModelEngine::new();
    model.restore(&mut bytes.as_slice()).unwrap();
    assert_eq!(model.last_commit_ts().unwrap(), 0);
}

/// Values of several MiB survive the stream intact.
pub fn large_values_round_trip<H: Harness>(harness: &H) {
    let fx = Fixture::new(harness);
    let e = fx.engine();
    let size = (5 << 20).min(e.limits().max_value_size);
    let big: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
    e.put_at(b"big", &big, 10, 0).unwrap();
    e.put_at(b"big", &big[..size / 2], 20, 0).unwrap();
    e.put_at(b"small", b"s", 15, 0).unwrap();
    let bytes = stream_of(e);
    let other = fx.another();
    other.engine().restore(&mut bytes.as_slice()).unwrap();
    assert_eq!(
        other.engine().get_at(b"big", 10).unwrap(),
        Some(big.clone())
    );
    assert_eq!(
        other.engine().get_at(b"big", 20).unwrap().map(|v| v.len()),
        Some(size / 2)
    );
    assert_eq!(
        other.engine().get_at(b"small", 20).unwrap(),
        Some(b"s".to_vec())
    );
}

/// Many keys with many versions (spanning many stream blocks) round-trip exactly.
pub fn many_versions_round_trip<H: Harness>(harness: &H) {
    let fx = Fixture::new(harness);
    let e = fx.engine();
    for ts in 1..=8u64 {
        let muts: Vec<Mutation> = (0..1500u32)
            .map(|i| {
                if (i as u64 + ts) % 5 == 0 {
                    Mutation::delete(format!("key{i:05}"))
                } else {
                    Mutation::put(format!("key{i:05}"), vec![ts as u8; 200])
                }
            })
            .collect();
        e.write(&WriteBatch::new(&muts, ts * 10)).unwrap();
    }
    let bytes = stream_of(e);
    let other = fx.another();
    let stats = other.engine().restore(&mut bytes.as_slice()).unwrap();
    assert_eq!((stats.keys, stats.versions), (1500, 12_000));
    assert_eq!(dump(other.engine()), dump(e));
}

/// A snapshot is a point-in-time image: writes after it are not in its stream.
pub fn snapshot_is_a_point_in_time_image<H: Harness>(harness: &H) {
    let fx = Fixture::new(harness);
    let e = fx.engine();
    populate(e);
    let expected = dump(e);
    let snapshot = e.snapshot().unwrap();
    e.put_at(b"after", b"x", 100, 0).unwrap();
    e.delete_at(b"k", 101).unwrap();
    e.compact(36, &CompactionScope::All).unwrap();
    let bytes = {
        let mut out = Vec::new();
        snapshot.write_to(&mut out).unwrap();
        out
    };
    assert_eq!(dump_snapshot(&snapshot), expected);
    let mut visited = 0;
    snapshot
        .for_each_version(&mut |_, _| {
            visited += 1;
            Ok(visited < 3)
        })
        .unwrap();
    assert_eq!(visited, 3, "a visitor returning false stops the walk");
    assert_eq!(snapshot.last_commit_ts(), 35);
    assert_eq!(snapshot.min_retained_ts(), 12);
    let model = ModelEngine::with_limits(e.limits());
    model.restore(&mut bytes.as_slice()).unwrap();
    assert_eq!(dump(&model), expected);
}

/// A stream written by this engine restores into a different engine (the reference
/// model), and the model's stream restores back into this engine.
pub fn streams_move_between_this_engine_and_another<H: Harness>(harness: &H) {
    let fx = Fixture::new(harness);
    let e = fx.engine();
    populate(e);
    let model = ModelEngine::with_limits(e.limits());
    model.restore(&mut stream_of(e).as_slice()).unwrap();
    assert_eq!(dump(&model), dump(e));
    assert_eq!(model.last_commit_ts().unwrap(), 35);
    assert_eq!(model.min_retained_ts().unwrap(), 12);
    // Change the model, then send it back.
    model.put_at(b"from-model", b"m", 50, 7).unwrap();
    model.delete_at(b"k", 51).unwrap();
    let other = fx.another();
    let target = other.engine();
    target.restore(&mut stream_of(&model).as_slice()).unwrap();
    assert_eq!(dump(target), dump(&model));
    assert_eq!(target.last_commit_ts().unwrap(), 51);
    assert_eq!(target.get_at(b"from-model", 49).unwrap(), None);
    assert_eq!(
        target.get_at(b"from-model", 50).unwrap(),
        None,
        "expired at 7"
    );
    // A stream built by hand with the shared writer restores as well.
    let mut bytes = Vec::new();
    let mut writer = SnapshotWriter::new(&mut bytes, 9, 3).unwrap();
    writer.push(b"a", &Version::value(9, "a9")).unwrap();
    writer.push(b"a", &Version::tombstone(4)).unwrap();
    writer
        .push(
            b"b",
            &Version {
                ts: 5,
                kind: VersionKind::Value(b"b".to_vec()),
                expire_at: 8,
            },
        )
        .unwrap();
    writer.finish().unwrap();
    target.restore(&mut bytes.as_slice()).unwrap();
    assert_eq!(target.get_at(b"a", 8).unwrap(), None);
    assert_eq!(target.get_at(b"a", 9).unwrap(), Some(b"a9".to_vec()));
    assert_eq!(target.get_at(b"b", 7).unwrap(), Some(b"b".to_vec()));
    assert_eq!(target.last_commit_ts().unwrap(), 9);
    assert_eq!(target.min_retained_ts().unwrap(), 3);
}

/// Corrupt, truncated and garbage streams fail with `Corrupted` and leave the previous
/// content, counters and raw keyspace intact.
pub fn corrupt_streams_leave_the_previous_content_intact<H: Harness>(harness: &H) {
    let fx = Fixture::new(harness);
    let source = fx.engine();
    populate(source);
    let good = stream_of(source);
    let other = fx.another();
    let target = other.engine();
    target.put_at(b"mine", b"kept", 77, 0).unwrap();
    target.set_min_retained_ts(5).unwrap();
    let before = dump(target);
    let mut bad_streams: Vec<(String, Vec<u8>)> = vec![
        ("empty".into(), Vec::new()),
        (
            "garbage".into(),
            b"this is not a snapshot stream at all, sorry".to_vec(),
        ),
        ("trailing byte".into(), [good.clone(), vec![0]].concat()),
    ];
    for cut in [1, 8, good.len() / 2, good.len() - 1] {
        bad_streams.push((format!("truncated at {cut}"), good[..cut].to_vec()));
    }
    for at in [0, 13, good.len() / 2, good.len() - 3] {
        let mut flipped = good.clone();
        flipped[at] ^= 0x20;
        bad_streams.push((format!("byte {at} flipped"), flipped));
    }
    let raw = [RawOp::put("applied", "1")];
    for (what, bytes) in &bad_streams {
        let err = expect_err(target.restore_with(&mut bytes.as_slice(), &raw));
        assert!(matches!(err, EngineError::Corrupted(_)), "{what}: {err:?}");
        assert_eq!(dump(target), before, "{what}");
        assert_eq!(target.last_commit_ts().unwrap(), 77, "{what}");
        assert_eq!(target.min_retained_ts().unwrap(), 5, "{what}");
        assert_eq!(target.raw_get(b"applied").unwrap(), None, "{what}");
        assert_eq!(target.get_at(b"mine", 77).unwrap(), Some(b"kept".to_vec()));
    }
    target.restore(&mut good.as_slice()).unwrap();
    assert_eq!(
        dump(target),
        dump(source),
        "the engine still works afterwards"
    );
}

/// `restore_with` applies its raw operations in the same atomic step and keeps the rest
/// of the raw keyspace.
pub fn restore_with_applies_raw_ops_atomically<H: Harness>(harness: &H) {
    let fx = Fixture::new(harness);
    let source = fx.engine();
    populate(source);
    source
        .raw_write(&[RawOp::put("source-raw", "s")], crate::Durability::Sync)
        .unwrap();
    let good = stream_of(source);
    let other = fx.another();
    let target = other.engine();
    target
        .raw_write(
            &[
                RawOp::put("log/1", "a"),
                RawOp::put("log/2", "b"),
                RawOp::put("vote", "v"),
            ],
            crate::Durability::Sync,
        )
        .unwrap();
    let raw = [
        RawOp::put("applied", 42u64.to_be_bytes()),
        RawOp::DeleteRange {
            range: KeyRange::prefix(b"log/"),
        },
    ];
    target.restore_with(&mut good.as_slice(), &raw).unwrap();
    assert_eq!(dump(target), dump(source));
    assert_eq!(
        target.raw_get(b"applied").unwrap(),
        Some(42u64.to_be_bytes().to_vec())
    );
    assert_eq!(target.raw_get(b"log/1").unwrap(), None);
    assert_eq!(
        target.raw_get(b"vote").unwrap(),
        Some(b"v".to_vec()),
        "raw keyspace kept"
    );
    assert_eq!(
        target.raw_get(b"source-raw").unwrap(),
        None,
        "raw data is not streamed"
    );
    let bad_raw = [RawOp::put("ok", "1"), RawOp::put("", "empty key")];
    let err = expect_err(target.restore_with(&mut good.as_slice(), &bad_raw));
    assert!(matches!(err, EngineError::EmptyKey { .. }), "{err:?}");
    assert_eq!(target.raw_get(b"ok").unwrap(), None);
}
