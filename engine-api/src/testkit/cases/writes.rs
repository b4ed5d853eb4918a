//! Writes: batches, duplicate keys, `last_commit_ts`, raw operations in the same atomic
//! write (ENGINE.md sections 4 and 5).

use crate::testkit::fixture::{dump, expect_err, Fixture};
use crate::testkit::Harness;
use crate::{
    Durability, EngineError, KeyRange, Mutation, MvccEngine, RawKeyspace, RawOp, WriteBatch,
};

/// `last_commit_ts` is the highest commit ts ever written; older writes do not lower it.
pub fn last_commit_ts_is_the_highest_commit_ts_written<H: Harness>(harness: &H) {
    let fx = Fixture::new(harness);
    let e = fx.engine();
    assert_eq!(e.last_commit_ts().unwrap(), 0, "a new store");
    e.put_at(b"a", b"1", 30, 0).unwrap();
    assert_eq!(e.last_commit_ts().unwrap(), 30);
    e.put_at(b"b", b"1", 20, 0).unwrap();
    assert_eq!(e.last_commit_ts().unwrap(), 30);
    e.delete_at(b"c", 40).unwrap();
    assert_eq!(e.last_commit_ts().unwrap(), 40);
    e.apply_mutations(&[Mutation::put("d", "1")], 0, 50)
        .unwrap();
    assert_eq!(e.last_commit_ts().unwrap(), 50);
    e.raw_write(&[RawOp::put("r", "1")], Durability::Sync)
        .unwrap();
    assert_eq!(
        e.last_commit_ts().unwrap(),
        50,
        "raw writes carry no commit ts"
    );
}

/// `apply_mutations` writes every mutation at `commit_ts`.
pub fn apply_mutations_writes_every_mutation_at_commit_ts<H: Harness>(harness: &H) {
    let fx = Fixture::new(harness);
    let e = fx.engine();
    e.put_at(b"c", b"old", 5, 0).unwrap();
    let muts = [
        Mutation::put("a", "A"),
        Mutation::put("b", "B"),
        Mutation::delete("c"),
    ];
    e.apply_mutations(&muts, 5, 10).unwrap();
    for key in [&b"a"[..], b"b", b"c"] {
        assert_eq!(e.latest_commit_ts(key).unwrap(), Some(10));
    }
    assert_eq!(e.get_at(b"a", 9).unwrap(), None);
    assert_eq!(e.get_at(b"a", 10).unwrap(), Some(b"A".to_vec()));
    assert_eq!(e.get_at(b"c", 9).unwrap(), Some(b"old".to_vec()));
    assert_eq!(e.get_at(b"c", 10).unwrap(), None);
    assert_eq!(e.last_commit_ts().unwrap(), 10);
}

/// Duplicate keys in one batch: the last mutation wins, in every direction.
pub fn duplicate_keys_in_one_batch_last_wins<H: Harness>(harness: &H) {
    let fx = Fixture::new(harness);
    let e = fx.engine();
    let muts = [
        Mutation::put("a", "1"),
        Mutation::put("b", "1"),
        Mutation::delete("a"),
        Mutation::put("a", "3"),
        Mutation::put("b", "2"),
        Mutation::delete("b"),
    ];
    e.apply_mutations(&muts, 0, 10).unwrap();
    assert_eq!(e.get_at(b"a", 10).unwrap(), Some(b"3".to_vec()));
    assert_eq!(e.get_at(b"b", 10).unwrap(), None);
    let versions = dump(e);
    assert_eq!(versions[&b"a".to_vec()].len(), 1);
    assert_eq!(versions[&b"b".to_vec()].len(), 1);
    let ttl = [
        Mutation::Put {
            key: b"t".to_vec(),
            value: b"x".to_vec(),
            expire_at: 12,
        },
        Mutation::put("t", "y"),
    ];
    e.write(&WriteBatch::new(&ttl, 11)).unwrap();
    assert_eq!(
        e.get_at(b"t", 12).unwrap(),
        Some(b"y".to_vec()),
        "the TTL went too"
    );
}

/// Raw operations in a write batch are applied together with its mutations.
pub fn raw_ops_commit_in_the_same_batch_as_mutations<H: Harness>(harness: &H) {
    let fx = Fixture::new(harness);
    let e = fx.engine();
    e.raw_write(&[RawOp::put("stale", "x")], Durability::Sync)
        .unwrap();
    let muts = [Mutation::put("k", "v")];
    let raw = [
        RawOp::put("applied", 7u64.to_be_bytes()),
        RawOp::delete("stale"),
    ];
    e.write(
        &WriteBatch::new(&muts, 20)
            .with_conflict_check(10)
            .with_raw(&raw),
    )
    .unwrap();
    assert_eq!(e.get_at(b"k", 20).unwrap(), Some(b"v".to_vec()));
    assert_eq!(
        e.raw_get(b"applied").unwrap(),
        Some(7u64.to_be_bytes().to_vec())
    );
    assert_eq!(e.raw_get(b"stale").unwrap(), None);
    assert_eq!(
        e.get_at(b"applied", u64::MAX).unwrap(),
        None,
        "keyspaces are apart"
    );
}

/// Buffered writes are readable as soon as the call returns, like synced ones.
pub fn buffered_writes_are_visible_immediately<H: Harness>(harness: &H) {
    let fx = Fixture::new(harness);
    let e = fx.engine();
    let muts = [Mutation::put("k", "v")];
    let raw = [RawOp::put("r", "1")];
    e.write(
        &WriteBatch::new(&muts, 5)
            .with_raw(&raw)
            .with_durability(Durability::Buffered),
    )
    .unwrap();
    assert_eq!(e.get_at(b"k", 5).unwrap(), Some(b"v".to_vec()));
    assert_eq!(e.raw_get(b"r").unwrap(), Some(b"1".to_vec()));
    assert_eq!(e.last_commit_ts().unwrap(), 5);
}

/// An empty batch succeeds and changes nothing.
pub fn empty_batch_changes_nothing<H: Harness>(harness: &H) {
    let fx = Fixture::new(harness);
    let e = fx.engine();
    e.put_at(b"k", b"v", 5, 0).unwrap();
    e.write(&WriteBatch::new(&[], 9)).unwrap();
    e.apply_mutations(&[], 0, 10).unwrap();
    assert_eq!(e.last_commit_ts().unwrap(), 5);
    assert_eq!(dump(e).len(), 1);
}

/// A bad mutation late in a batch rejects the whole batch: earlier mutations and the
/// raw operations are not written, and `last_commit_ts` does not move.
pub fn bad_mutation_late_in_batch_rejects_the_whole_batch<H: Harness>(harness: &H) {
    let fx = Fixture::new(harness);
    let e = fx.engine();
    e.put_at(b"a", b"old", 5, 0).unwrap();
    let limits = e.limits();
    let raw = [RawOp::put("applied", "1")];
    let bad_batches: Vec<Vec<Mutation>> = vec![
        vec![Mutation::put("a", "new"), Mutation::put("", "x")],
        vec![Mutation::put("a", "new"), Mutation::delete("")],
        vec![
            Mutation::put("a", "new"),
            Mutation::put(vec![b'k'; limits.max_key_size + 1], "x"),
        ],
        vec![
            Mutation::put("a", "new"),
            Mutation::put("b", "new"),
            Mutation::put("c", vec![0u8; limits.max_value_size + 1]),
        ],
    ];
    for muts in &bad_batches {
        let err = expect_err(e.write(&WriteBatch::new(muts, 10).with_raw(&raw)));
        assert!(
            matches!(
                err,
                EngineError::EmptyKey { .. }
                    | EngineError::KeyTooLarge { .. }
                    | EngineError::ValueTooLarge { .. }
            ),
            "{err:?}"
        );
    }
    let raw_bad = [RawOp::put("applied", "1"), RawOp::put("", "x")];
    let muts = [Mutation::put("a", "new")];
    let err = expect_err(e.write(&WriteBatch::new(&muts, 10).with_raw(&raw_bad)));
    assert!(matches!(err, EngineError::EmptyKey { .. }), "{err:?}");
    assert_eq!(e.get_at(b"a", u64::MAX).unwrap(), Some(b"old".to_vec()));
    assert_eq!(e.get_at(b"b", u64::MAX).unwrap(), None);
    assert_eq!(e.latest_commit_ts(b"a").unwrap(), Some(5));
    assert_eq!(e.last_commit_ts().unwrap(), 5);
    assert_eq!(e.raw_get(b"applied").unwrap(), None);
    assert_eq!(dump(e).len(), 1);
    assert!(e.raw_scan(&KeyRange::all(), 10).unwrap().is_empty());
}

/// The batches of the group used by the `write_group` cases (the store holds `a` at 5
/// first): accepted, refused by a conflict with the store, accepted, refused by a
/// conflict with an earlier batch of the same group, refused by validation, raw only.
fn group_batches<'a>(
    muts: &'a [Vec<Mutation>; 5],
    raws: &'a [Vec<RawOp>; 6],
    read_sets: &'a [Vec<Vec<u8>>; 2],
) -> Vec<WriteBatch<'a>> {
    vec![
        WriteBatch::new(&muts[0], 10)
            .with_raw(&raws[0])
            .with_durability(Durability::Buffered),
        WriteBatch::new(&muts[1], 12)
            .with_conflict_check(4)
            .with_raw(&raws[1])
            .with_durability(Durability::Buffered),
        WriteBatch::new(&muts[2], 11)
            .with_conflict_check(10)
            .with_read_set(&read_sets[0])
            .with_raw(&raws[2])
            .with_durability(Durability::Buffered),
        WriteBatch::new(&muts[3], 30)
            .with_conflict_check(10)
            .with_read_set(&read_sets[1])
            .with_raw(&raws[3]),
        WriteBatch::new(&muts[4], 40).with_raw(&raws[4]),
        WriteBatch::raw_only(&raws[5]).with_durability(Durability::Buffered),
    ]
}

/// `write_group` has exactly the outcome of writing each batch in turn: the same
/// answers, batch by batch (a refused batch writes nothing and the others go on, and a
/// batch is checked against what the earlier batches of the group wrote), and the same
/// data, raw keyspace and `last_commit_ts` afterwards.
pub fn write_group_matches_writing_each_batch_in_turn<H: Harness>(harness: &H) {
    let muts = [
        vec![Mutation::put("x", "X")],
        vec![Mutation::put("a", "new")],
        vec![Mutation::put("y", "Y"), Mutation::delete("w")],
        vec![Mutation::put("z", "Z")],
        vec![Mutation::put("v", "V"), Mutation::put("", "empty key")],
    ];
    let raws = [
        vec![RawOp::put("applied", "1")],
        vec![RawOp::put("applied", "2")],
        vec![RawOp::put("applied", "3"), RawOp::put("seen", "3")],
        vec![RawOp::put("applied", "4")],
        vec![RawOp::put("applied", "5")],
        vec![RawOp::put("raw", "6"), RawOp::delete("seen")],
    ];
    let read_sets = [vec![b"x".to_vec()], vec![b"y".to_vec()]];
    let batches = group_batches(&muts, &raws, &read_sets);

    let grouped = Fixture::new(harness);
    let g = grouped.engine();
    g.put_at(b"a", b"old", 5, 0).unwrap();
    let outcomes = g.write_group(&batches).unwrap();
    let each = grouped.another();
    let s = each.engine();
    s.put_at(b"a", b"old", 5, 0).unwrap();
    let expected: Vec<_> = batches.iter().map(|b| s.write(b)).collect();

    assert_eq!(outcomes.len(), batches.len());
    for (i, (got, want)) in outcomes.iter().zip(&expected).enumerate() {
        assert_eq!(
            format!("{got:?}"),
            format!("{want:?}"),
            "batch {i}: write_group and write answer alike"
        );
    }
    assert!(outcomes[0].is_ok() && outcomes[2].is_ok() && outcomes[5].is_ok());
    match &outcomes[1] {
        Err(EngineError::WriteConflict { key, start_ts }) => {
            assert_eq!((key.as_slice(), *start_ts), (&b"a"[..], 4));
        }
        other => panic!("batch 1: expected a conflict with the store, got {other:?}"),
    }
    match &outcomes[3] {
        Err(EngineError::WriteConflict { key, start_ts }) => {
            assert_eq!((key.as_slice(), *start_ts), (&b"y"[..], 10));
        }
        other => panic!("batch 3: expected a conflict with batch 2, got {other:?}"),
    }
    assert!(
        matches!(outcomes[4], Err(EngineError::EmptyKey { .. })),
        "{:?}",
        outcomes[4]
    );

    assert_eq!(dump(g), dump(s), "the same versions");
    let all = KeyRange::all();
    assert_eq!(
        g.raw_scan(&all, 100).unwrap(),
        s.raw_scan(&all, 100).unwrap()
    );
    assert_eq!(g.raw_get(b"applied").unwrap(), Some(b"3".to_vec()));
    assert_eq!(g.raw_get(b"seen").unwrap(), None);
    assert_eq!(g.raw_get(b"raw").unwrap(), Some(b"6".to_vec()));
    assert_eq!(g.get_at(b"a", u64::MAX).unwrap(), Some(b"old".to_vec()));
    assert_eq!(g.get_at(b"x", 10).unwrap(), Some(b"X".to_vec()));
    assert_eq!(g.get_at(b"y", 11).unwrap(), Some(b"Y".to_vec()));
    assert_eq!(g.latest_commit_ts(b"w").unwrap(), Some(11));
    assert_eq!(g.get_at(b"z", u64::MAX).unwrap(), None);
    assert_eq!(g.get_at(b"v", u64::MAX).unwrap(), None);
    assert_eq!(g.last_commit_ts().unwrap(), 11);
    assert_eq!(g.last_commit_ts().unwrap(), s.last_commit_ts().unwrap());
}

/// `write_group` of no batches writes nothing; of one batch, it is `write`.
pub fn write_group_of_none_or_one_batch<H: Harness>(harness: &H) {
    let fx = Fixture::new(harness);
    let e = fx.engine();
    assert!(e.write_group(&[]).unwrap().is_empty());
    assert_eq!(e.last_commit_ts().unwrap(), 0);
    let muts = [Mutation::put("k", "v")];
    let outcomes = e.write_group(&[WriteBatch::new(&muts, 7)]).unwrap();
    assert!(matches!(outcomes.as_slice(), [Ok(())]), "{outcomes:?}");
    assert_eq!(e.get_at(b"k", 7).unwrap(), Some(b"v".to_vec()));
    let conflicting = [WriteBatch::new(&muts, 9).with_conflict_check(6)];
    let outcomes = e.write_group(&conflicting).unwrap();
    assert!(
        matches!(
            outcomes.as_slice(),
            [Err(EngineError::WriteConflict { .. })]
        ),
        "{outcomes:?}"
    );
    assert_eq!(e.last_commit_ts().unwrap(), 7);
}

/// Accepted batches of a group survive a reopen together (a persistent engine).
pub fn write_group_survives_reopen<H: Harness>(harness: &H) {
    let mut fx = Fixture::new(harness);
    if !fx.persistent() {
        return;
    }
    let muts = [vec![Mutation::put("p", "1")], vec![Mutation::put("q", "2")]];
    let raw = [RawOp::put("applied", "2")];
    let batches = [
        WriteBatch::new(&muts[0], 3).with_durability(Durability::Buffered),
        WriteBatch::new(&muts[1], 4).with_raw(&raw),
    ];
    let outcomes = fx.engine().write_group(&batches).unwrap();
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    let e = fx.reopen();
    assert_eq!(e.get_at(b"p", 3).unwrap(), Some(b"1".to_vec()));
    assert_eq!(e.get_at(b"q", 4).unwrap(), Some(b"2".to_vec()));
    assert_eq!(e.raw_get(b"applied").unwrap(), Some(b"2".to_vec()));
    assert_eq!(e.last_commit_ts().unwrap(), 4);
}
