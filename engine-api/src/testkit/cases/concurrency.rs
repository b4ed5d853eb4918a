//! Concurrency (ENGINE.md section 11): many threads on one engine. Every case asserts
//! outcomes only; none waits for time to pass.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;

use crate::testkit::fixture::{dump, dump_snapshot, stream_of, Fixture};
use crate::testkit::model::ModelEngine;
use crate::testkit::Harness;
use crate::{
    CompactionScope, EngineError, EngineSnapshot, KeyRange, Mutation, MvccEngine,
    RetentionController, WriteBatch,
};

const THREADS: u64 = 4;

/// Sets its flag when dropped, also while a panic unwinds, so that threads waiting for
/// the flag stop (and the case ends) even when the thread that owns it fails.
struct SetOnDrop<'a>(&'a AtomicBool);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Writers on distinct keys, in parallel, all land; `last_commit_ts` is the maximum.
pub fn parallel_writers_on_distinct_keys_all_land<H: Harness>(harness: &H) {
    let fx = Fixture::new(harness);
    let e = fx.engine();
    let per_thread = 150u64;
    thread::scope(|s| {
        for t in 0..THREADS {
            s.spawn(move || {
                for i in 0..per_thread {
                    let key = format!("t{t}-{i:04}");
                    let ts = 1 + t * per_thread + i;
                    e.put_at(key.as_bytes(), &ts.to_be_bytes(), ts, 0).unwrap();
                }
            });
        }
    });
    let all = e.scan_at(&KeyRange::all(), 10_000, u64::MAX).unwrap();
    assert_eq!(all.len() as u64, THREADS * per_thread);
    assert_eq!(e.last_commit_ts().unwrap(), THREADS * per_thread);
    for t in 0..THREADS {
        let key = format!("t{t}-0007");
        let ts = 1 + t * per_thread + 7;
        assert_eq!(
            e.get_at(key.as_bytes(), ts).unwrap(),
            Some(ts.to_be_bytes().to_vec())
        );
    }
}

/// Writers on the same key at distinct timestamps keep every version.
pub fn parallel_writers_on_one_key_keep_every_version<H: Harness>(harness: &H) {
    let fx = Fixture::new(harness);
    let e = fx.engine();
    let per_thread = 100u64;
    thread::scope(|s| {
        for t in 0..THREADS {
            s.spawn(move || {
                for i in 0..per_thread {
                    let ts = 1 + i * THREADS + t;
                    e.put_at(b"hot", &ts.to_be_bytes(), ts, 0).unwrap();
                }
            });
        }
    });
    let versions = &dump(e)[&b"hot".to_vec()];
    assert_eq!(versions.len() as u64, THREADS * per_thread);
    for ts in [1, 2, 77, THREADS * per_thread] {
        assert_eq!(
            e.get_at(b"hot", ts).unwrap(),
            Some(ts.to_be_bytes().to_vec())
        );
    }
    assert_eq!(
        e.latest_commit_ts(b"hot").unwrap(),
        Some(THREADS * per_thread)
    );
}

/// Scans in both directions, taken while a writer commits whole generations, always
/// see one generation for every key.
pub fn scans_during_writes_see_one_consistent_state<H: Harness>(harness: &H) {
    let fx = Fixture::new(harness);
    let e = fx.engine();
    let keys = 20u32;
    let generations = 150u64;
    let write_generation = |gen: u64| {
        let muts: Vec<Mutation> = (0..keys)
            .map(|k| Mutation::put(format!("key{k:02}"), gen.to_be_bytes()))
            .collect();
        e.write(&WriteBatch::new(&muts, gen)).unwrap();
    };
    write_generation(1);
    let done = AtomicBool::new(false);
    thread::scope(|s| {
        s.spawn(|| {
            let _done = SetOnDrop(&done);
            for gen in 2..=generations {
                write_generation(gen);
            }
        });
        for reverse in [false, true] {
            let done = &done;
            s.spawn(move || {
                let mut last_seen = 0u64;
                loop {
                    let finished = done.load(Ordering::SeqCst);
                    let scan = if reverse {
                        e.reverse_scan_at(&KeyRange::all(), 100, u64::MAX)
                    } else {
                        e.scan_at(&KeyRange::all(), 100, u64::MAX)
                    }
                    .unwrap();
                    assert_eq!(scan.len(), keys as usize);
                    let gens: BTreeSet<&Vec<u8>> = scan.iter().map(|p| &p.value).collect();
                    assert_eq!(gens.len(), 1, "a scan mixed generations: {gens:?}");
                    let gen = u64::from_be_bytes(scan[0].value.as_slice().try_into().unwrap());
                    assert!(gen >= last_seen, "a later scan saw an older state");
                    last_seen = gen;
                    // A read at a fixed past ts never changes while writers go on.
                    let past = e.scan_at(&KeyRange::all(), 100, 1).unwrap();
                    assert!(past.iter().all(|p| p.value == 1u64.to_be_bytes()));
                    if finished {
                        break;
                    }
                }
                assert_eq!(last_seen, generations);
            });
        }
    });
}

/// Concurrent read-modify-write transactions on one key: every call either commits or
/// fails with `WriteConflict`, and exactly the committed increments are visible.
pub fn concurrent_apply_mutations_each_commit_or_conflict<H: Harness>(harness: &H) {
    let fx = Fixture::new(harness);
    let e = fx.engine();
    e.put_at(b"counter", &0u64.to_be_bytes(), 1, 0).unwrap();
    let clock = AtomicU64::new(2);
    let attempts = 60;
    let winners: Vec<Vec<u64>> = thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                let clock = &clock;
                s.spawn(move || {
                    let mut won = Vec::new();
                    for _ in 0..attempts {
                        let start_ts = e.latest_commit_ts(b"counter").unwrap().unwrap();
                        let value = e.get_at(b"counter", start_ts).unwrap().unwrap();
                        let n = u64::from_be_bytes(value.as_slice().try_into().unwrap());
                        let commit_ts = clock.fetch_add(1, Ordering::SeqCst);
                        let put = [Mutation::put("counter", (n + 1).to_be_bytes())];
                        match e.apply_mutations(&put, start_ts, commit_ts) {
                            Ok(()) => won.push(commit_ts),
                            Err(EngineError::WriteConflict { key, start_ts: s }) => {
                                assert_eq!((key.as_slice(), s), (&b"counter"[..], start_ts));
                            }
                            Err(other) => panic!("neither commit nor conflict: {other}"),
                        }
                    }
                    won
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut won: Vec<u64> = winners.into_iter().flatten().collect();
    won.sort_unstable();
    assert!(!won.is_empty());
    let final_value = e.get_at(b"counter", u64::MAX).unwrap().unwrap();
    assert_eq!(
        u64::from_be_bytes(final_value.as_slice().try_into().unwrap()),
        won.len() as u64
    );
    let versions: Vec<u64> = dump(e)[&b"counter".to_vec()]
        .iter()
        .rev()
        .map(|v| v.ts)
        .collect();
    assert_eq!(
        versions,
        [vec![1], won.clone()].concat(),
        "exactly the winners are visible"
    );
    for (i, ts) in won.iter().enumerate() {
        let value = e.get_at(b"counter", *ts).unwrap().unwrap();
        assert_eq!(value, (i as u64 + 1).to_be_bytes());
    }
}

/// A snapshot streams its own point-in-time image while writers and a compaction keep
/// changing the engine.
pub fn snapshot_streams_while_writers_keep_going<H: Harness>(harness: &H) {
    let fx = Fixture::new(harness);
    let e = fx.engine();
    let muts: Vec<Mutation> = (0..3000u32)
        .map(|i| Mutation::put(format!("key{i:05}"), vec![(i % 251) as u8; 100]))
        .collect();
    e.write(&WriteBatch::new(&muts, 10)).unwrap();
    let expected = dump(e);
    let snapshot = e.snapshot().unwrap();
    let mut bytes = Vec::new();
    thread::scope(|s| {
        s.spawn(|| {
            for round in 0..30u64 {
                let muts: Vec<Mutation> = (0..3000u32)
                    .step_by(7)
                    .map(|i| {
                        if round % 2 == 0 {
                            Mutation::delete(format!("key{i:05}"))
                        } else {
                            Mutation::put(format!("key{i:05}"), round.to_be_bytes())
                        }
                    })
                    .chain([Mutation::put(format!("new{round}"), "x")])
                    .collect();
                e.write(&WriteBatch::new(&muts, 20 + round)).unwrap();
            }
            e.compact(45, &CompactionScope::All).unwrap();
        });
        snapshot.write_to(&mut bytes).unwrap();
    });
    assert_eq!(dump_snapshot(&snapshot), expected);
    let model = ModelEngine::with_limits(e.limits());
    model.restore(&mut bytes.as_slice()).unwrap();
    assert_eq!(dump(&model), expected);
    assert_eq!(model.last_commit_ts().unwrap(), 10);
}

/// Compaction runs alongside writers and readers: reads at the latest state stay
/// consistent and the final state is the last one written.
pub fn compaction_runs_alongside_writers_and_readers<H: Harness>(harness: &H) {
    let fx = Fixture::new(harness);
    let e = fx.engine();
    let keys = 50u32;
    let generations = 60u64;
    let published = AtomicU64::new(0);
    let write_generation = |gen: u64| {
        let muts: Vec<Mutation> = (0..keys)
            .map(|k| Mutation::put(format!("key{k:02}"), gen.to_be_bytes()))
            .collect();
        e.write(&WriteBatch::new(&muts, gen * 10)).unwrap();
        published.store(gen, Ordering::SeqCst);
    };
    write_generation(1);
    let done = AtomicBool::new(false);
    thread::scope(|s| {
        s.spawn(|| {
            let _done = SetOnDrop(&done);
            for gen in 2..=generations {
                write_generation(gen);
            }
        });
        s.spawn(|| loop {
            let finished = done.load(Ordering::SeqCst);
            let gen = published.load(Ordering::SeqCst);
            e.compact(gen * 10 - 5, &CompactionScope::All).unwrap();
            if finished {
                break;
            }
        });
        s.spawn(|| loop {
            let finished = done.load(Ordering::SeqCst);
            let scan = e.reverse_scan_at(&KeyRange::all(), 100, u64::MAX).unwrap();
            assert_eq!(scan.len(), keys as usize);
            let gens: BTreeSet<&Vec<u8>> = scan.iter().map(|p| &p.value).collect();
            assert_eq!(gens.len(), 1, "a scan mixed generations: {gens:?}");
            if finished {
                break;
            }
        });
    });
    let scan = e.scan_at(&KeyRange::all(), 100, u64::MAX).unwrap();
    assert!(scan.iter().all(|p| p.value == generations.to_be_bytes()));
    e.compact(generations * 10, &CompactionScope::All).unwrap();
    assert_eq!(dump(e).values().map(Vec::len).sum::<usize>(), keys as usize);
}

/// Restores racing with writers never leave the counters behind the data:
/// `last_commit_ts` stays at or above every version's ts and the watermark at or
/// above the one of the last restored image.
pub fn restores_racing_with_writers_keep_counters_consistent<H: Harness>(harness: &H) {
    let fx = Fixture::new(harness);
    let e = fx.engine();
    let image = ModelEngine::with_limits(e.limits());
    image.put_at(b"image", b"i", 5, 0).unwrap();
    image.set_min_retained_ts(3).unwrap();
    let stream = stream_of(&image);
    let done = AtomicBool::new(false);
    thread::scope(|s| {
        s.spawn(|| {
            let mut ts = 1000;
            while !done.load(Ordering::SeqCst) {
                ts += 1;
                e.put_at(format!("w{}", ts % 16).as_bytes(), b"w", ts, 0)
                    .unwrap();
                e.set_min_retained_ts(4).unwrap();
            }
        });
        let _done = SetOnDrop(&done);
        // Each restore is a synced write: 300 keep the case to a few seconds on disk
        // engines while still interleaving many restores with the writer.
        for _ in 0..300 {
            e.restore(&mut stream.as_slice()).unwrap();
        }
    });
    let newest = dump(e).values().flatten().map(|v| v.ts).max().unwrap_or(0);
    assert!(
        e.last_commit_ts().unwrap() >= newest,
        "last_commit_ts fell behind the data"
    );
    assert!(e.min_retained_ts().unwrap() >= 3);
    let snapshot = e.snapshot().unwrap();
    assert_eq!(snapshot.last_commit_ts(), e.last_commit_ts().unwrap());
    assert_eq!(snapshot.min_retained_ts(), e.min_retained_ts().unwrap());
}

/// A compaction racing with a restore never removes what the restored image still lets
/// readers see: every read at or above the final watermark matches the image.
pub fn compaction_racing_with_restore_keeps_the_restored_image_readable<H: Harness>(harness: &H) {
    let fx = Fixture::new(harness);
    let e = fx.engine();
    for ts in [10, 20] {
        let muts: Vec<Mutation> = (0..3000u32)
            .map(|i| Mutation::put(format!("before{i:05}"), ts.to_string()))
            .collect();
        e.write(&WriteBatch::new(&muts, ts)).unwrap();
    }
    let image = ModelEngine::with_limits(e.limits());
    for ts in [10u64, 20, 30] {
        let muts: Vec<Mutation> = (0..200u32)
            // After the old keys, so they lie ahead of an interrupted compaction's cursor.
            .map(|i| Mutation::put(format!("image{i:03}"), ts.to_string()))
            .collect();
        image.write(&WriteBatch::new(&muts, ts)).unwrap();
    }
    image.set_min_retained_ts(3).unwrap();
    let stream = stream_of(&image);
    let compaction_over = AtomicBool::new(false);
    thread::scope(|s| {
        s.spawn(|| {
            let _over = SetOnDrop(&compaction_over);
            e.compact(25, &CompactionScope::All).unwrap();
        });
        // Compaction raises the watermark before it removes anything; restoring as soon
        // as it shows lands the restore in the middle of the compaction.
        while e.min_retained_ts().unwrap() < 25 && !compaction_over.load(Ordering::SeqCst) {
            thread::yield_now();
        }
        e.restore(&mut stream.as_slice()).unwrap();
    });
    let watermark = e.min_retained_ts().unwrap();
    assert!(watermark == 3 || watermark == 25, "watermark {watermark}");
    for ts in [watermark, 15, 25, 35, u64::MAX]
        .into_iter()
        .filter(|ts| *ts >= watermark)
    {
        let all = KeyRange::all();
        assert_eq!(
            e.scan_at(&all, 10_000, ts).unwrap(),
            image.scan_at(&all, 10_000, ts).unwrap(),
            "ts {ts}"
        );
    }
}
