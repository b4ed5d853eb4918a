//! A linearizability checker for one register (read, write, compare-and-set), after
//! Wing & Gong's search with Lowe's memoization: walk the history's call and return
//! events in real-time order, try to linearize any pending call before the next return,
//! remember every (set of linearized ops, register value) already explored, and backtrack
//! when a return is reached whose call could not be placed.
//!
//! Failed operations took no effect and are dropped; unknown reads are dropped; unknown
//! writes and compare-and-sets may take effect at any time after their invocation, or
//! never.

use std::collections::HashSet;

use super::history::{Op, Outcome};

/// A register operation; `None` is the absent key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegOp {
    Read(Option<u64>),
    Write(u64),
    Cas(u64, u64),
}

/// The register's next value, or `None` if `op` cannot happen in `state`.
fn step(state: Option<u64>, op: RegOp) -> Option<Option<u64>> {
    match op {
        RegOp::Read(v) => (state == v).then_some(state),
        RegOp::Write(v) => Some(Some(v)),
        RegOp::Cas(from, to) => (state == Some(from)).then_some(Some(to)),
    }
}

/// How many states the search may visit before giving up (an inconclusive check fails).
const MAX_STATES: usize = 20_000_000;

#[derive(Debug, Clone, Copy)]
struct Event {
    op: usize,
    call: bool,
    time: u64,
}

/// Checks one key's history, starting from the absent value. The error names the
/// operation that could not be linearized.
pub fn check_register(history: &[Op<RegOp>]) -> Result<(), String> {
    let ops: Vec<&Op<RegOp>> = history
        .iter()
        .filter(|op| match op.outcome {
            Outcome::Ok => true,
            Outcome::Fail => false,
            Outcome::Info => !matches!(op.f, RegOp::Read(_)),
        })
        .collect();
    let n = ops.len();
    let mut events: Vec<Event> = Vec::with_capacity(2 * n);
    for (i, op) in ops.iter().enumerate() {
        events.push(Event {
            op: i,
            call: true,
            time: op.invoke,
        });
        events.push(Event {
            op: i,
            call: false,
            time: op.complete,
        });
    }
    // At equal instants calls go first: the two operations are then concurrent.
    events.sort_by_key(|e| (e.time, !e.call));
    // A doubly linked list over the events, with sentinels HEAD = 0 and TAIL = m + 1.
    let m = events.len();
    let (head, tail) = (0usize, m + 1);
    let mut next: Vec<usize> = (1..=m + 2).collect();
    let mut prev: Vec<usize> = (0..m + 2).map(|i| i.wrapping_sub(1)).collect();
    next[tail] = tail;
    let mut ret_of = vec![0usize; n];
    for (i, e) in events.iter().enumerate() {
        if !e.call {
            ret_of[e.op] = i + 1;
        }
    }
    let event = |i: usize| events[i - 1];
    let lift = |next: &mut Vec<usize>, prev: &mut Vec<usize>, i: usize| {
        let (p, nx) = (prev[i], next[i]);
        next[p] = nx;
        prev[nx] = p;
    };
    let unlift = |next: &mut Vec<usize>, prev: &mut Vec<usize>, i: usize| {
        let (p, nx) = (prev[i], next[i]);
        next[p] = i;
        prev[nx] = i;
    };

    let words = n.div_ceil(64).max(1);
    let mut linearized = vec![0u64; words];
    let mut state: Option<u64> = None;
    let mut cache: HashSet<(Vec<u64>, Option<u64>)> = HashSet::new();
    let mut stack: Vec<(usize, Option<u64>)> = Vec::new();
    let mut deepest = (0usize, None::<usize>);
    let mut entry = next[head];
    loop {
        if entry == tail {
            return Ok(());
        }
        let e = event(entry);
        if e.call {
            if let Some(after) = step(state, ops[e.op].f) {
                linearized[e.op / 64] |= 1 << (e.op % 64);
                if cache.insert((linearized.clone(), after)) {
                    if cache.len() > MAX_STATES {
                        return Err(format!(
                            "inconclusive: more than {MAX_STATES} states explored"
                        ));
                    }
                    stack.push((entry, state));
                    state = after;
                    lift(&mut next, &mut prev, entry);
                    lift(&mut next, &mut prev, ret_of[e.op]);
                    if stack.len() > deepest.0 {
                        deepest = (stack.len(), None);
                    }
                    entry = next[head];
                    continue;
                }
                linearized[e.op / 64] &= !(1 << (e.op % 64));
            }
            entry = next[entry];
        } else {
            if ops[e.op].outcome == Outcome::Info {
                // Every operation that completed is linearized; the unknown ones left
                // never took effect.
                return Ok(());
            }
            if deepest.1.is_none() && stack.len() == deepest.0 {
                deepest.1 = Some(e.op);
            }
            let Some((call, before)) = stack.pop() else {
                let op = ops[deepest.1.unwrap_or(e.op)];
                return Err(format!(
                    "not linearizable: after {} linearized operations, no order explains \
                     {:?} by process {} ({:?}, invoked at {} ns, completed at {} ns)",
                    deepest.0, op.f, op.process, op.outcome, op.invoke, op.complete
                ));
            };
            let op = event(call).op;
            state = before;
            linearized[op / 64] &= !(1 << (op % 64));
            unlift(&mut next, &mut prev, ret_of[op]);
            unlift(&mut next, &mut prev, call);
            entry = next[call];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(process: usize, invoke: u64, complete: u64, outcome: Outcome, f: RegOp) -> Op<RegOp> {
        Op::new(process, invoke, complete, outcome, f)
    }
    use Outcome::{Fail, Info, Ok as Done};
    use RegOp::{Cas, Read, Write};

    #[test]
    fn sequential_and_concurrent_valid_histories_are_linearizable() {
        let h = vec![
            op(0, 0, 10, Done, Read(None)),
            op(0, 20, 30, Done, Write(1)),
            op(1, 25, 60, Done, Write(2)),
            // Concurrent with the write of 2: may see either.
            op(2, 35, 50, Done, Read(Some(1))),
            op(2, 70, 80, Done, Read(Some(2))),
            op(0, 90, 100, Done, Cas(2, 3)),
            op(1, 110, 120, Fail, Cas(2, 4)),
            op(1, 130, 140, Done, Read(Some(3))),
        ];
        check_register(&h).unwrap();
    }

    #[test]
    fn a_stale_read_is_caught() {
        let h = vec![
            op(0, 0, 10, Done, Write(1)),
            op(0, 20, 30, Done, Write(2)),
            op(1, 40, 50, Done, Read(Some(1))),
        ];
        let e = check_register(&h).unwrap_err();
        assert!(e.contains("not linearizable"), "{e}");
    }

    #[test]
    fn a_read_of_a_value_never_written_is_caught() {
        let h = vec![
            op(0, 0, 10, Done, Write(1)),
            op(1, 5, 15, Done, Read(Some(7))),
        ];
        check_register(&h).unwrap_err();
    }

    #[test]
    fn a_lost_compare_and_set_is_caught() {
        // Two successful CAS from the same value: only one can have happened.
        let h = vec![
            op(0, 0, 10, Done, Write(1)),
            op(1, 20, 40, Done, Cas(1, 2)),
            op(2, 25, 45, Done, Cas(1, 3)),
        ];
        check_register(&h).unwrap_err();
    }

    #[test]
    fn unknown_writes_may_apply_late_or_never() {
        let late = vec![
            op(0, 0, 10, Info, Write(5)),
            op(1, 20, 30, Done, Read(None)),
            op(1, 40, 50, Done, Read(Some(5))),
        ];
        check_register(&late).unwrap();
        let never = vec![
            op(0, 0, 10, Info, Cas(1, 2)),
            op(1, 20, 30, Done, Read(None)),
        ];
        check_register(&never).unwrap();
        // But not before it was invoked.
        let early = vec![
            op(1, 0, 10, Done, Read(Some(5))),
            op(0, 20, 30, Info, Write(5)),
        ];
        check_register(&early).unwrap_err();
    }

    #[test]
    fn a_failed_write_must_not_be_seen() {
        let h = vec![
            op(0, 0, 10, Fail, Write(9)),
            op(1, 20, 30, Done, Read(Some(9))),
        ];
        check_register(&h).unwrap_err();
    }

    #[test]
    fn many_concurrent_operations_are_checked_quickly() {
        // 8 processes, 400 operations, every read returns the latest write: valid.
        let mut h = Vec::new();
        let mut t = 0u64;
        let mut last = None;
        for i in 0..400u64 {
            let p = (i % 8) as usize;
            if i % 3 == 0 {
                h.push(op(p, t, t + 25, Done, Write(i % 5)));
                last = Some(i % 5);
            } else {
                h.push(op(p, t + 1, t + 2, Done, Read(last)));
            }
            t += 30;
        }
        check_register(&h).unwrap();
    }
}
