//! A tour of the engine contract on the in-memory engine: versions, reads in the past,
//! TTL, a transactional write that conflicts, compaction and its watermark, and a
//! snapshot restored into a second engine.
//!
//! Run with `cargo run -p elastickv-engine-mem --example tour`.

use elastickv_engine_api::{
    CompactionScope, EngineError, EngineSnapshot, KeyRange, Mutation, MvccEngine,
    RetentionController,
};
use elastickv_engine_mem::MemEngine;

fn show(value: Option<Vec<u8>>) -> String {
    match value {
        Some(v) => format!("{:?}", String::from_utf8_lossy(&v)),
        None => "(not found)".to_string(),
    }
}

fn main() -> Result<(), EngineError> {
    let engine = MemEngine::new();

    println!("== writing three versions of `greeting` and a key with a TTL");
    engine.put_at(b"greeting", b"hello", 10, 0)?;
    engine.put_at(b"greeting", b"hi", 20, 0)?;
    engine.put_at(b"greeting", b"hey", 30, 0)?;
    engine.put_at(b"session", b"token", 12, 25)?;
    println!("last_commit_ts = {}", engine.last_commit_ts()?);

    println!("\n== reading the past: the newest version at or below the read ts");
    for ts in [5, 10, 15, 20, 30, 99] {
        println!(
            "greeting @ {ts:>2} -> {}",
            show(engine.get_at(b"greeting", ts)?)
        );
    }
    for ts in [24, 25] {
        println!(
            "session  @ {ts:>2} -> {}",
            show(engine.get_at(b"session", ts)?)
        );
    }

    println!("\n== a transaction that started at ts 25 conflicts with the version at 30");
    match engine.apply_mutations(&[Mutation::put("greeting", "yo")], 25, 40) {
        Err(EngineError::WriteConflict { key, start_ts }) => println!(
            "write conflict on {:?} (start_ts {start_ts}): nothing written",
            String::from_utf8_lossy(&key)
        ),
        other => println!("unexpected: {other:?}"),
    }
    engine.apply_mutations(&[Mutation::put("greeting", "yo")], 30, 40)?;
    println!(
        "started at 30 instead: committed at 40 -> {}",
        show(engine.get_at(b"greeting", 40)?)
    );

    println!("\n== compacting at 25: versions older than the anchor (ts 20) go away");
    let stats = engine.compact(25, &CompactionScope::All)?;
    println!(
        "examined {} keys, removed {} versions; watermark is now {}",
        stats.keys_examined,
        stats.versions_removed,
        engine.min_retained_ts()?
    );
    println!("greeting @ 25 -> {}", show(engine.get_at(b"greeting", 25)?));
    match engine.get_at(b"greeting", 15) {
        Err(err @ EngineError::ReadTsCompacted { .. }) => println!("greeting @ 15 -> error: {err}"),
        other => println!("greeting @ 15 -> unexpected: {other:?}"),
    }

    println!("\n== a snapshot keeps its point in time while writes go on");
    let snapshot = engine.snapshot()?;
    engine.delete_at(b"greeting", 50)?;
    let mut stream = Vec::new();
    let written = snapshot.write_to(&mut stream)?;
    println!(
        "snapshot at last_commit_ts {}: {} keys, {} versions, {} bytes",
        snapshot.last_commit_ts(),
        written.keys,
        written.versions,
        written.bytes
    );
    let replica = MemEngine::new();
    replica.restore(&mut stream.as_slice())?;
    println!(
        "live engine: greeting @ 60 -> {}",
        show(engine.get_at(b"greeting", 60)?)
    );
    println!(
        "restored   : greeting @ 60 -> {}",
        show(replica.get_at(b"greeting", 60)?)
    );
    for pair in replica.scan_at(&KeyRange::all(), 10, 40)? {
        println!(
            "restored scan @ 40: {:?} = {:?}",
            String::from_utf8_lossy(&pair.key),
            String::from_utf8_lossy(&pair.value)
        );
    }
    Ok(())
}
