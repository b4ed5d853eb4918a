//! `cargo bench -p elastickv-bench --bench engines`: the same workloads on every engine
//! compiled in, plus each persistent backend's raw operations on the same encoded keys,
//! so the report can show what the MVCC layer costs (ours / raw) from one run.
//!
//! `EKV_BENCH_QUICK=1` shrinks data sets and measurement times (a full run of all the
//! engines in roughly a quarter of an hour on 2 cores). `EKV_BENCH_ENGINES=redb,lmdb`
//! restricts the engines.

use std::hint::black_box;
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use elastickv_bench::dataset::{self, Scale, Values};
use elastickv_bench::engines::{self, EngineUnderTest};
use elastickv_engine_api::encoding::{encode_live_value, encode_user_key, encode_version_key};
use elastickv_engine_api::ordered::{
    Direction, OrderedMvcc, OrderedRead, OrderedStore, OrderedWrite, Table,
};
use elastickv_engine_api::{
    CompactionScope, Durability, EngineSnapshot, KeyRange, Mutation, MvccEngine, Timestamp,
    WriteBatch,
};

const LOAD_BATCH: usize = 1000;
const UPDATE_KEYS: usize = 10_000;

/// The loaded engine plus what the benchmarks need to address its data.
struct Loaded<E> {
    engine: E,
    keys: Vec<Vec<u8>>,
    versioned: Vec<Vec<u8>>,
    missing: Vec<Vec<u8>>,
    lookup_order: Vec<usize>,
    /// commit ts of the single-version data set.
    load_ts: Timestamp,
    next_ts: Timestamp,
}

fn versioned_key(i: usize) -> Vec<u8> {
    let mut k = dataset::key(i);
    k[..4].copy_from_slice(b"ver:");
    k
}

fn update_key(i: usize) -> Vec<u8> {
    let mut k = dataset::key(i);
    k[..4].copy_from_slice(b"upd:");
    k
}

fn load<E: MvccEngine>(engine: E, scale: Scale) -> Loaded<E> {
    let keys: Vec<Vec<u8>> = (0..scale.keys).map(dataset::key).collect();
    let versioned: Vec<Vec<u8>> = (0..scale.versioned_keys).map(versioned_key).collect();
    let missing: Vec<Vec<u8>> = (0..scale.keys).map(dataset::missing_key).collect();
    let mut values = Values::new(1);
    let mut ts: Timestamp = 1;
    let write_all = |engine: &E,
                     order: &[usize],
                     make: &dyn Fn(usize) -> Vec<u8>,
                     ts: Timestamp,
                     values: &mut Values| {
        for chunk in order.chunks(LOAD_BATCH) {
            let muts: Vec<Mutation> = chunk
                .iter()
                .map(|&i| Mutation::put(make(i), values.next_value()))
                .collect();
            engine
                .write(&WriteBatch::new(&muts, ts).with_durability(Durability::Buffered))
                .expect("load batch");
        }
    };
    let load_ts = ts;
    write_all(
        &engine,
        &dataset::shuffled(scale.keys, 11),
        &dataset::key,
        ts,
        &mut values,
    );
    for _ in 0..scale.versions {
        ts += 1;
        write_all(
            &engine,
            &dataset::shuffled(scale.versioned_keys, ts),
            &versioned_key,
            ts,
            &mut values,
        );
    }
    ts += 1;
    let upd: Vec<usize> = (0..UPDATE_KEYS).collect();
    write_all(&engine, &upd, &update_key, ts, &mut values);
    // One synced write so everything loaded is durable before measuring.
    engine
        .put_at(b"loaded", b"1", ts + 1, 0)
        .expect("sync marker");
    Loaded {
        engine,
        keys,
        versioned,
        missing,
        lookup_order: dataset::shuffled(scale.keys, 99),
        load_ts,
        next_ts: ts + 2,
    }
}

fn configure(c: &mut Criterion) -> Criterion {
    let quick = std::env::var_os("EKV_BENCH_QUICK").is_some_and(|v| v != "0");
    let (warm, measure) = if quick { (1, 2) } else { (2, 5) };
    std::mem::take(c)
        .warm_up_time(Duration::from_secs(warm))
        .measurement_time(Duration::from_secs(measure))
        .sample_size(20)
}

/// One phase of a backend's raw benchmarks, run against the loaded engine's store.
type RawPhase<E> = Box<dyn Fn(&mut Criterion, &mut Loaded<E>)>;

/// A backend's raw benchmarks: the reads run beside the MVCC reads, the writes right
/// before the MVCC writes.
struct RawBenches<E> {
    reads: RawPhase<E>,
    writes: RawPhase<E>,
}

fn bench_reads<E: MvccEngine>(c: &mut Criterion, name: &str, l: &Loaded<E>) {
    let read_ts = l.next_ts;
    let n = l.keys.len();
    let mut i = 0usize;
    let mut next = || {
        i = (i + 1) % n;
        l.lookup_order[i]
    };
    c.benchmark_group("get_at_hit_1v")
        .bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| black_box(l.engine.get_at(&l.keys[next()], read_ts).expect("get")))
        });
    let nv = l.versioned.len();
    c.benchmark_group("get_at_hit_10v")
        .bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                black_box(
                    l.engine
                        .get_at(&l.versioned[next() % nv], read_ts)
                        .expect("get"),
                )
            })
        });
    c.benchmark_group("get_at_miss")
        .bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| black_box(l.engine.get_at(&l.missing[next()], read_ts).expect("get")))
        });
    c.benchmark_group("exists_at")
        .bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                black_box(
                    l.engine
                        .exists_at(&l.keys[next()], read_ts)
                        .expect("exists"),
                )
            })
        });
    c.benchmark_group("latest_commit_ts")
        .bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| black_box(l.engine.latest_commit_ts(&l.keys[next()]).expect("latest")))
        });
    for limit in [10usize, 100] {
        let mut g = c.benchmark_group(format!("scan_at_{limit}"));
        g.throughput(Throughput::Elements(limit as u64));
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                let start = &l.keys[next() % (n - limit)];
                let range = KeyRange::from(start.clone());
                black_box(l.engine.scan_at(&range, limit, read_ts).expect("scan"))
            })
        });
    }
    let mut g = c.benchmark_group("reverse_scan_at_100");
    g.throughput(Throughput::Elements(100));
    g.bench_function(BenchmarkId::from_parameter(name), |b| {
        b.iter(|| {
            let end = &l.keys[100 + next() % (n - 100)];
            let range = KeyRange::new(dataset::key(0), end.clone());
            black_box(
                l.engine
                    .reverse_scan_at(&range, 100, read_ts)
                    .expect("scan"),
            )
        })
    });
}

fn bench_writes<E: MvccEngine>(c: &mut Criterion, name: &str, l: &mut Loaded<E>) {
    let mut values = Values::new(7);
    let pool: Vec<Vec<u8>> = (0..64).map(|_| values.next_value()).collect();
    for per_call in [1usize, 10, 100] {
        for durability in [Durability::Buffered, Durability::Sync] {
            let label = match durability {
                Durability::Buffered => "buffered",
                Durability::Sync => "synced",
            };
            let mut g = c.benchmark_group(format!("apply_mutations_{per_call}_{label}"));
            g.throughput(Throughput::Elements(per_call as u64));
            let mut ts = l.next_ts;
            let mut cursor = 0usize;
            g.bench_function(BenchmarkId::from_parameter(name), |b| {
                b.iter(|| {
                    let muts: Vec<Mutation> = (0..per_call)
                        .map(|j| {
                            cursor = (cursor + 7919) % UPDATE_KEYS;
                            Mutation::put(
                                update_key(cursor),
                                pool[(cursor + j) % pool.len()].clone(),
                            )
                        })
                        .collect();
                    ts += 1;
                    l.engine
                        .write(
                            &WriteBatch::new(&muts, ts)
                                .with_conflict_check(ts - 1)
                                .with_durability(durability),
                        )
                        .expect("apply")
                })
            });
            g.finish();
            l.next_ts = ts + 1;
        }
    }
    for durability in [Durability::Buffered, Durability::Sync] {
        let label = if durability == Durability::Sync {
            "synced"
        } else {
            "buffered"
        };
        let mut ts = l.next_ts;
        let mut cursor = 0usize;
        c.benchmark_group(format!("put_at_{label}")).bench_function(
            BenchmarkId::from_parameter(name),
            |b| {
                b.iter(|| {
                    cursor = (cursor + 7919) % UPDATE_KEYS;
                    ts += 1;
                    let m = [Mutation::put(
                        update_key(cursor),
                        pool[cursor % pool.len()].clone(),
                    )];
                    l.engine
                        .write(&WriteBatch::new(&m, ts).with_durability(durability))
                        .expect("put")
                })
            },
        );
        l.next_ts = ts + 1;
    }
}

fn bench_compact<E: MvccEngine>(c: &mut Criterion, name: &str, l: &mut Loaded<E>) {
    const GC_KEYS: usize = 2000;
    const GC_VERSIONS: u64 = 10;
    let scope = CompactionScope::Only(vec![KeyRange::prefix(b"gc:")]);
    let gc_keys: Vec<Vec<u8>> = (0..GC_KEYS)
        .map(|i| {
            let mut k = dataset::key(i);
            k[..3].copy_from_slice(b"gc:");
            k
        })
        .collect();
    let mut values = Values::new(5);
    let value = values.next_value();
    let mut ts = l.next_ts;
    let mut g = c.benchmark_group("compact_10v");
    // Each compaction removes all but the newest of each key's 10 versions.
    g.throughput(Throughput::Elements(GC_KEYS as u64 * (GC_VERSIONS - 1)));
    g.sample_size(10);
    g.bench_function(BenchmarkId::from_parameter(name), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                for _ in 0..GC_VERSIONS {
                    ts += 1;
                    let muts: Vec<Mutation> = gc_keys
                        .iter()
                        .map(|k| Mutation::put(k.clone(), value.clone()))
                        .collect();
                    l.engine
                        .write(&WriteBatch::new(&muts, ts).with_durability(Durability::Buffered))
                        .expect("garbage");
                }
                let start = Instant::now();
                let stats = l.engine.compact(ts, &scope).expect("compact");
                total += start.elapsed();
                assert!(stats.versions_removed >= GC_KEYS as u64 * (GC_VERSIONS - 1));
            }
            total
        })
    });
    g.finish();
    l.next_ts = ts + 1;
}

fn bench_snapshots<E: MvccEngine>(c: &mut Criterion, name: &str, l: &Loaded<E>, target: &E) {
    let mut stream = Vec::new();
    l.engine
        .snapshot()
        .expect("snapshot")
        .write_to(&mut stream)
        .expect("stream");
    let mut g = c.benchmark_group("snapshot_stream");
    g.throughput(Throughput::Bytes(stream.len() as u64));
    g.sample_size(10);
    let mut buf = Vec::with_capacity(stream.len());
    g.bench_function(BenchmarkId::from_parameter(name), |b| {
        b.iter(|| {
            buf.clear();
            l.engine
                .snapshot()
                .expect("snapshot")
                .write_to(&mut buf)
                .expect("stream");
        })
    });
    g.finish();
    let mut g = c.benchmark_group("restore");
    g.throughput(Throughput::Bytes(stream.len() as u64));
    g.sample_size(10);
    g.bench_function(BenchmarkId::from_parameter(name), |b| {
        b.iter(|| target.restore(&mut stream.as_slice()).expect("restore"))
    });
    g.finish();
}

fn bench_concurrent<E: MvccEngine>(c: &mut Criterion, name: &str, l: &mut Loaded<E>) {
    let read_ts = l.load_ts;
    let n = l.keys.len();
    let mut g = c.benchmark_group("get_at_2_readers_1_writer");
    g.throughput(Throughput::Elements(1));
    let mut write_ts = l.next_ts;
    g.bench_function(BenchmarkId::from_parameter(name), |b| {
        b.iter_custom(|iters| {
            let stop = Arc::new(AtomicBool::new(false));
            std::thread::scope(|s| {
                let stop_w = Arc::clone(&stop);
                let engine = &l.engine;
                let writer_start = write_ts;
                let writer = s.spawn(move || {
                    let mut ts = writer_start;
                    let mut i = 0usize;
                    while !stop_w.load(Ordering::Relaxed) {
                        ts += 1;
                        i = (i + 7919) % UPDATE_KEYS;
                        let m = [Mutation::put(update_key(i), b"concurrent".to_vec())];
                        engine
                            .write(&WriteBatch::new(&m, ts).with_durability(Durability::Buffered))
                            .expect("writer");
                    }
                    ts
                });
                let start = Instant::now();
                let readers: Vec<_> = (0..2u64)
                    .map(|r| {
                        let order = &l.lookup_order;
                        let keys = &l.keys;
                        s.spawn(move || {
                            for j in 0..iters / 2 {
                                let k = &keys[order[((j * 2 + r) as usize) % n]];
                                black_box(engine.get_at(k, read_ts).expect("get"));
                            }
                        })
                    })
                    .collect();
                for r in readers {
                    r.join().expect("reader");
                }
                let elapsed = start.elapsed();
                stop.store(true, Ordering::Relaxed);
                write_ts = writer.join().expect("writer") + 1;
                elapsed
            })
        })
    });
    g.finish();
    // Later write benchmarks continue above everything the writer thread wrote.
    l.next_ts = write_ts + 1;
}

/// The backend's own reads of the same encoded keys, without the MVCC layer.
#[cfg_attr(
    not(any(
        feature = "engine-redb",
        feature = "engine-lmdb",
        feature = "engine-rocks"
    )),
    allow(dead_code)
)]
fn bench_raw_reads<S: OrderedStore>(
    c: &mut Criterion,
    name: &str,
    store: &S,
    l_keys: &[Vec<u8>],
    order: &[usize],
    load_ts: Timestamp,
) {
    let encoded: Vec<Vec<u8>> = l_keys
        .iter()
        .map(|k| encode_version_key(k, load_ts))
        .collect();
    let n = encoded.len();
    let raw_name = format!("{name}-raw");
    let mut i = 0usize;
    c.benchmark_group("get_at_hit_1v").bench_function(
        BenchmarkId::from_parameter(&raw_name),
        |b| {
            b.iter(|| {
                i = (i + 1) % n;
                black_box(
                    store
                        .read()
                        .expect("view")
                        .get(Table::Versions, &encoded[order[i]])
                        .expect("get"),
                )
            })
        },
    );
    let limit = 100;
    let mut g = c.benchmark_group("scan_at_100");
    g.throughput(Throughput::Elements(limit as u64));
    g.bench_function(BenchmarkId::from_parameter(&raw_name), |b| {
        b.iter(|| {
            i = (i + 1) % n;
            let start = encode_user_key(&l_keys[order[i] % (n - limit)]);
            let mut out = Vec::with_capacity(limit);
            store
                .read()
                .expect("view")
                .scan(
                    Table::Versions,
                    Bound::Included(&start),
                    Bound::Unbounded,
                    Direction::Forward,
                    &mut |k, v| {
                        out.push((k.to_vec(), v.to_vec()));
                        Ok(out.len() < limit)
                    },
                )
                .expect("scan");
            black_box(out)
        })
    });
    g.finish();
}

/// The backend's own single-key write (see `bench_raw_reads`), measured right before
/// the MVCC writes so that both meet the store in the same state.
#[cfg_attr(
    not(any(
        feature = "engine-redb",
        feature = "engine-lmdb",
        feature = "engine-rocks"
    )),
    allow(dead_code)
)]
fn bench_raw_writes<S: OrderedStore>(
    c: &mut Criterion,
    name: &str,
    store: &S,
    next_ts: &mut Timestamp,
) {
    let raw_name = format!("{name}-raw");
    // The raw write is what an MVCC write of one key stores, without the rest: one put
    // of a new version of an update key into the same versions table (a valid encoded
    // value at a fresh timestamp, so the MVCC benchmarks that follow read it as a normal
    // version), committed alone.
    let value = encode_live_value(&Values::new(9).next_value(), 0);
    let mut ts = *next_ts;
    let mut cursor = 0usize;
    for (durability, label) in [
        (Durability::Sync, "synced"),
        (Durability::Buffered, "buffered"),
    ] {
        c.benchmark_group(format!("apply_mutations_1_{label}"))
            .bench_function(BenchmarkId::from_parameter(&raw_name), |b| {
                b.iter(|| {
                    cursor = (cursor + 7919) % UPDATE_KEYS;
                    ts += 1;
                    let mut txn = store.begin_write().expect("txn");
                    txn.put(
                        Table::Versions,
                        &encode_version_key(&update_key(cursor), ts),
                        &value,
                    )
                    .expect("put");
                    txn.commit(durability).expect("commit")
                })
            });
    }
    *next_ts = ts + 1;
}

fn run_engine<E: MvccEngine>(
    c: &mut Criterion,
    engine: &EngineUnderTest<E>,
    raw: Option<&RawBenches<E>>,
) {
    let scale = Scale::from_env();
    let dir = tempfile::tempdir().expect("tempdir");
    let target_dir = tempfile::tempdir().expect("tempdir");
    eprintln!(
        "loading {} ({} keys + {} x {} versions)...",
        engine.name, scale.keys, scale.versioned_keys, scale.versions
    );
    let mut loaded = load((engine.open)(dir.path()), scale);
    let settle = |l: &Loaded<E>| (engine.settle)(&l.engine);
    settle(&loaded);
    bench_reads(c, engine.name, &loaded);
    if let Some(raw) = raw {
        (raw.reads)(c, &mut loaded);
    }
    settle(&loaded);
    bench_concurrent(c, engine.name, &mut loaded);
    settle(&loaded);
    let target = (engine.open)(target_dir.path());
    bench_snapshots(c, engine.name, &loaded, &target);
    drop(target);
    settle(&loaded);
    if let Some(raw) = raw {
        (raw.writes)(c, &mut loaded);
    }
    bench_writes(c, engine.name, &mut loaded);
    settle(&loaded);
    bench_compact(c, engine.name, &mut loaded);
}

#[cfg_attr(
    not(any(
        feature = "engine-redb",
        feature = "engine-lmdb",
        feature = "engine-rocks"
    )),
    allow(dead_code)
)]
fn raw_for<S: OrderedStore>(name: &'static str) -> RawBenches<OrderedMvcc<S>> {
    RawBenches {
        reads: Box::new(move |c, l| {
            bench_raw_reads(
                c,
                name,
                l.engine.store(),
                &l.keys,
                &l.lookup_order,
                l.load_ts,
            )
        }),
        writes: Box::new(move |c, l| bench_raw_writes(c, name, l.engine.store(), &mut l.next_ts)),
    }
}

fn engines(c: &mut Criterion) {
    let mut c = configure(c);
    let wanted = |name: &str| {
        std::env::var("EKV_BENCH_ENGINES")
            .map_or(true, |list| list.split(',').any(|e| e.trim() == name))
    };
    #[cfg(feature = "engine-mem")]
    if wanted("mem") {
        run_engine(&mut c, &engines::mem(), None);
    }
    #[cfg(feature = "engine-redb")]
    if wanted("redb") {
        run_engine(&mut c, &engines::redb(), Some(&raw_for("redb")));
    }
    #[cfg(feature = "engine-lmdb")]
    if wanted("lmdb") {
        run_engine(&mut c, &engines::lmdb(), Some(&raw_for("lmdb")));
    }
    #[cfg(feature = "engine-rocks")]
    if wanted("rocks") {
        run_engine(&mut c, &engines::rocks(), Some(&raw_for("rocks")));
    }
    c.final_summary();
}

criterion_group!(benches, engines);
criterion_main!(benches);
