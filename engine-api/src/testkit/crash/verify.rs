//! Checking a recovered store against the workload's model.

use crate::{display_key, EngineError, KeyRange, KvPair, MvccEngine, Timestamp};

use super::workload::{describe, group_key, value, Model, Step, GROUPS, MEMBERS};

/// Checks the recovered `engine` against the model of steps `1..=last` and returns
/// every discrepancy as a sentence. `watermark` is the store's `min_retained_ts`.
pub(super) fn verify<E: MvccEngine>(
    engine: &E,
    model: &Model,
    last: Timestamp,
    watermark: Timestamp,
    extra_read_ts: Timestamp,
) -> Vec<String> {
    let mut problems = Vec::new();
    let mut note = |p: String| {
        if problems.len() < 40 {
            problems.push(p);
        }
    };
    let first_readable = watermark.max(1);

    // Every write of every step at or above the watermark is there with its exact
    // value (below it, compaction may have legitimately removed superseded versions).
    for ts in first_readable..=last {
        let Step::Batch { mutations, .. } = Step::at(ts) else {
            continue;
        };
        for m in mutations.iter().take(MEMBERS.len()) {
            let expected = value(ts);
            match engine.get_at(m.key(), ts) {
                Ok(found) if found.as_deref() == Some(expected.as_slice()) => {}
                Ok(found) => note(format!(
                    "write of step {ts} lost: get_at({}, {ts}) = {}, expected {}",
                    display_key(m.key()),
                    describe(found.as_deref()),
                    describe(Some(&expected))
                )),
                Err(e) => note(format!(
                    "get_at({}, {ts}) failed: {e}",
                    display_key(m.key())
                )),
            }
        }
    }

    // Reads below the watermark are refused, not answered from a half-compacted store.
    if watermark > 1 {
        match engine.get_at(b"g/0/a", watermark - 1) {
            Err(EngineError::ReadTsCompacted { .. }) => {}
            other => note(format!(
                "read at {} below the watermark {watermark} returned {other:?}",
                watermark - 1
            )),
        }
    }

    let mut read_points = vec![
        last.max(first_readable),
        u64::MAX,
        first_readable,
        extra_read_ts,
    ];
    read_points.dedup();
    for ts in read_points {
        check_state_at(engine, model, ts, &mut note);
    }
    check_groups(engine, model, last, &mut note);
    check_raw(engine, model, &mut note);
    problems
}

/// The whole visible state at `ts` against the model, and the read invariants: scans
/// agree with point reads, and the reverse scan is the forward scan reversed.
fn check_state_at<E: MvccEngine>(
    engine: &E,
    model: &Model,
    ts: Timestamp,
    note: &mut dyn FnMut(String),
) {
    let expected = model.visible_pairs(ts);
    let forward = match engine.scan_at(&KeyRange::all(), usize::MAX, ts) {
        Ok(pairs) => pairs,
        Err(e) => return note(format!("scan_at(all, {ts}) failed: {e}")),
    };
    if forward != expected {
        let shown = |pairs: &[KvPair]| {
            pairs
                .iter()
                .map(|p| format!("{}={}", display_key(&p.key), describe(Some(&p.value))))
                .collect::<Vec<_>>()
        };
        let (want, got) = (shown(&expected), shown(&forward));
        let missing: Vec<_> = want.iter().filter(|p| !got.contains(p)).take(8).collect();
        let unexpected: Vec<_> = got.iter().filter(|p| !want.contains(p)).take(8).collect();
        note(format!(
            "scan_at(all, {ts}) differs from the acknowledged writes: missing {missing:?}, unexpected {unexpected:?}"
        ));
    }
    match engine.reverse_scan_at(&KeyRange::all(), usize::MAX, ts) {
        Ok(mut reverse) => {
            reverse.reverse();
            if reverse != forward {
                note(format!(
                    "reverse_scan_at(all, {ts}) is not the forward scan reversed ({} vs {} pairs)",
                    reverse.len(),
                    forward.len()
                ));
            }
        }
        Err(e) => note(format!("reverse_scan_at(all, {ts}) failed: {e}")),
    }
    for key in model.versions.keys() {
        let want = model.visible(key, ts);
        match engine.get_at(key, ts) {
            Ok(found) if found.as_deref() == want => {}
            Ok(found) => note(format!(
                "get_at({}, {ts}) = {}, expected {}",
                display_key(key),
                describe(found.as_deref()),
                describe(want)
            )),
            Err(e) => note(format!("get_at({}, {ts}) failed: {e}", display_key(key))),
        }
        let in_scan = forward.iter().any(|p| &p.key == key);
        match engine.exists_at(key, ts) {
            Ok(exists) if exists == in_scan => {}
            Ok(exists) => note(format!(
                "exists_at({}, {ts}) = {exists} but the scan {} it",
                display_key(key),
                if in_scan { "returns" } else { "omits" }
            )),
            Err(e) => note(format!("exists_at({}, {ts}) failed: {e}", display_key(key))),
        }
    }
}

/// No batch is half-applied: the members of each group carry the same newest version.
fn check_groups<E: MvccEngine>(
    engine: &E,
    model: &Model,
    last: Timestamp,
    note: &mut dyn FnMut(String),
) {
    for group in 0..GROUPS {
        let mut seen: Vec<(String, Option<Timestamp>, Option<Vec<u8>>)> = Vec::new();
        for member in MEMBERS {
            let key = group_key(group, member);
            let newest = engine.latest_commit_ts(&key).unwrap_or_else(|e| {
                note(format!(
                    "latest_commit_ts({}) failed: {e}",
                    display_key(&key)
                ));
                None
            });
            let expected = model
                .versions
                .get(&key)
                .and_then(|v| v.keys().next_back().copied());
            if newest != expected {
                note(format!(
                    "latest_commit_ts({}) = {newest:?}, expected {expected:?} (last step {last})",
                    display_key(&key)
                ));
            }
            let current = engine.get_at(&key, u64::MAX).ok().flatten();
            seen.push((String::from_utf8_lossy(&key).into_owned(), newest, current));
        }
        if seen
            .windows(2)
            .any(|w| w[0].1 != w[1].1 || w[0].2 != w[1].2)
        {
            let shown: Vec<String> = seen
                .iter()
                .map(|(k, ts, v)| format!("{k}@{ts:?}={}", describe(v.as_deref())))
                .collect();
            note(format!(
                "batch half-applied in group {group}: {}",
                shown.join(", ")
            ));
        }
    }
}

/// The raw keyspace equals the model, and its scans agree with each other.
fn check_raw<E: MvccEngine>(engine: &E, model: &Model, note: &mut dyn FnMut(String)) {
    let expected: Vec<KvPair> = model
        .raw
        .iter()
        .map(|(k, v)| KvPair {
            key: k.clone(),
            value: v.clone(),
        })
        .collect();
    match engine.raw_scan(&KeyRange::all(), usize::MAX) {
        Ok(found) if found == expected => {}
        Ok(found) => note(format!(
            "raw keyspace differs: {} keys {:?}, expected {} keys {:?}",
            found.len(),
            found
                .iter()
                .map(|p| format!("{}={}", display_key(&p.key), describe(Some(&p.value))))
                .collect::<Vec<_>>(),
            expected.len(),
            expected
                .iter()
                .map(|p| format!("{}={}", display_key(&p.key), describe(Some(&p.value))))
                .collect::<Vec<_>>(),
        )),
        Err(e) => note(format!("raw_scan failed: {e}")),
    }
    match engine.raw_reverse_scan(&KeyRange::all(), usize::MAX) {
        Ok(mut reverse) => {
            reverse.reverse();
            if reverse != expected {
                note("raw_reverse_scan is not the reverse of the raw keyspace".to_string());
            }
        }
        Err(e) => note(format!("raw_reverse_scan failed: {e}")),
    }
    for (key, value) in &model.raw {
        match engine.raw_get(key) {
            Ok(Some(found)) if &found == value => {}
            other => note(format!(
                "raw_get({}) = {:?}, expected {}",
                display_key(key),
                other.map(|v| describe(v.as_deref())),
                describe(Some(value))
            )),
        }
    }
}
