//! An Elle-style checker of list-append transactions (Kingsbury & Alvaro, "Elle:
//! inferring isolation anomalies from experimental observations").
//!
//! Every append writes a value unique to its key, so a read of a key (a list) names the
//! writes it saw, in order. The longest read of each key gives its version order, which
//! every other read must be a prefix of. Committed transactions are then linked by
//! write-write (ww: the next element of the order), write-read (wr: the writer of the
//! last element read) and read-write anti-dependencies (rw: the writer of the element
//! after the last one read), and, for strict serializability, real-time edges (one
//! transaction completed before the other was invoked). A cycle names an anomaly:
//! G0 (ww only), G1c (ww and wr), G-single (exactly one rw), G2 (several rw), with a
//! `-realtime` suffix when real-time edges are needed to close it. Aborted reads (G1a),
//! intermediate reads (G1b), duplicated elements, elements nobody appended and reads that
//! disagree on a key's order are found without a graph.

use std::collections::{BTreeMap, HashMap, VecDeque};

use super::history::{Op, Outcome};

/// A micro-operation: append `value` to the list at `key`, or read the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mop {
    Append(u64, u64),
    /// `None` until known (the read of a transaction that did not complete).
    Read(u64, Option<Vec<u64>>),
}

/// What consistency model the history must satisfy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Model {
    /// No G0, G1a, G1b, G1c, G-single, G2, also with real-time edges.
    StrictSerializable,
    /// No G0, G1a, G1b, G1c, G-single (G2, e.g. write skew, is allowed).
    SnapshotIsolation,
}

/// One anomaly, with a readable witness.
#[derive(Debug, Clone)]
pub struct Anomaly {
    pub kind: String,
    pub detail: String,
}

const WW: u8 = 1;
const WR: u8 = 2;
const RW: u8 = 4;
const RT: u8 = 8;

fn edge_names(mask: u8) -> String {
    let mut names = Vec::new();
    for (bit, name) in [(WW, "ww"), (WR, "wr"), (RW, "rw"), (RT, "rt")] {
        if mask & bit != 0 {
            names.push(name);
        }
    }
    names.join("+")
}

/// The anomalies of `history` that `model` forbids (empty: the history is valid).
pub fn check(history: &[Op<Vec<Mop>>], model: Model) -> Vec<Anomaly> {
    let all = analyse(history);
    all.into_iter()
        .filter(|a| {
            let base = a.kind.trim_end_matches("-realtime");
            match model {
                Model::StrictSerializable => true,
                Model::SnapshotIsolation => !a.kind.ends_with("-realtime") && base != "G2",
            }
        })
        .collect()
}

struct Writer {
    txn: usize,
    /// Whether this is the transaction's last append to the key.
    last: bool,
}

/// Every anomaly found, whatever the model.
pub fn analyse(history: &[Op<Vec<Mop>>]) -> Vec<Anomaly> {
    let mut found = Vec::new();
    let mut report = |kind: &str, detail: String| {
        found.push(Anomaly {
            kind: kind.to_string(),
            detail,
        })
    };
    let show = |t: usize| {
        let op = &history[t];
        format!(
            "txn {t} (process {}, {:?}, {:?})",
            op.process, op.outcome, op.f
        )
    };

    // Who appended what.
    let mut writers: HashMap<(u64, u64), Writer> = HashMap::new();
    for (t, op) in history.iter().enumerate() {
        let mut last_of_key: HashMap<u64, u64> = HashMap::new();
        for mop in &op.f {
            if let Mop::Append(k, v) = mop {
                last_of_key.insert(*k, *v);
            }
        }
        for mop in &op.f {
            if let Mop::Append(k, v) = mop {
                let w = Writer {
                    txn: t,
                    last: last_of_key[k] == *v,
                };
                assert!(
                    writers.insert((*k, *v), w).is_none(),
                    "the generator appended {v} to key {k} twice"
                );
            }
        }
    }

    // Reads of committed transactions, checked one by one.
    let mut reads: Vec<(usize, u64, &Vec<u64>)> = Vec::new();
    let mut observed = vec![false; history.len()];
    for (t, op) in history.iter().enumerate() {
        if op.outcome != Outcome::Ok {
            continue;
        }
        for mop in &op.f {
            let Mop::Read(k, Some(list)) = mop else {
                continue;
            };
            reads.push((t, *k, list));
            let mut seen = std::collections::HashSet::new();
            for v in list {
                if !seen.insert(*v) {
                    report(
                        "duplicate-elements",
                        format!("key {k}: {v} twice in {list:?} read by {}", show(t)),
                    );
                }
                match writers.get(&(*k, *v)) {
                    None => report(
                        "unknown-element",
                        format!("key {k}: {v} read by {} was never appended", show(t)),
                    ),
                    Some(w) => {
                        observed[w.txn] = true;
                        if history[w.txn].outcome == Outcome::Fail {
                            report(
                                "G1a",
                                format!(
                                    "key {k}: {} read {v}, written by the failed {}",
                                    show(t),
                                    show(w.txn)
                                ),
                            );
                        }
                    }
                }
            }
            if let Some(v) = list.last() {
                if let Some(w) = writers.get(&(*k, *v)) {
                    if w.txn != t && !w.last {
                        report(
                            "G1b",
                            format!(
                                "key {k}: {} read {list:?}, ending in an intermediate append of {}",
                                show(t),
                                show(w.txn)
                            ),
                        );
                    }
                }
            }
        }
    }

    // Version orders: the longest read of each key; every read must be a prefix of it.
    let mut orders: BTreeMap<u64, &Vec<u64>> = BTreeMap::new();
    for (_, k, list) in &reads {
        let longest = orders.entry(*k).or_insert(list);
        if list.len() > longest.len() {
            *longest = list;
        }
    }
    let mut consistent: BTreeMap<u64, bool> = orders.keys().map(|k| (*k, true)).collect();
    for (t, k, list) in &reads {
        let order = orders[k];
        if order[..list.len()] != list[..] {
            consistent.insert(*k, false);
            report(
                "incompatible-order",
                format!(
                    "key {k}: {} read {list:?}, not a prefix of {order:?}",
                    show(*t)
                ),
            );
        }
    }

    // The dependency graph over transactions that committed or whose writes were seen.
    let n = history.len();
    let visible: Vec<bool> = (0..n)
        .map(|t| history[t].outcome == Outcome::Ok || observed[t])
        .collect();
    let mut graph = Graph::new(n);
    for (k, order) in &orders {
        if !consistent[k] {
            continue;
        }
        for pair in order.windows(2) {
            let (Some(a), Some(b)) = (writers.get(&(*k, pair[0])), writers.get(&(*k, pair[1])))
            else {
                continue;
            };
            if a.txn != b.txn {
                graph.add(a.txn, b.txn, WW);
            }
        }
    }
    for (t, k, list) in &reads {
        if !consistent[k] {
            continue;
        }
        let order = orders[k];
        let last_writer = list
            .last()
            .and_then(|v| writers.get(&(*k, *v)))
            .map(|w| w.txn);
        if last_writer == Some(*t) {
            continue; // a read of its own write
        }
        if let Some(w) = last_writer {
            graph.add(w, *t, WR);
        }
        if let Some(w) = order.get(list.len()).and_then(|v| writers.get(&(*k, *v))) {
            if w.txn != *t {
                graph.add(*t, w.txn, RW);
            }
        }
    }
    // Real time: each transaction follows the frontier of those completed before it
    // was invoked (earlier ones are reached through the frontier).
    let mut events: Vec<(u64, bool, usize)> = Vec::new();
    for t in (0..n).filter(|t| visible[*t]) {
        events.push((history[t].invoke, true, t));
        if history[t].complete != u64::MAX {
            events.push((history[t].complete, false, t));
        }
    }
    // At equal instants invocations go first (concurrent, no edge).
    events.sort_by_key(|(time, invoke, _)| (*time, !*invoke));
    let mut frontier: Vec<usize> = Vec::new();
    let mut preds: HashMap<usize, Vec<usize>> = HashMap::new();
    for (_, invoke, t) in events {
        if invoke {
            for p in &frontier {
                graph.add(*p, t, RT);
            }
            preds.insert(t, frontier.clone());
        } else {
            let before = preds.remove(&t).unwrap_or_default();
            frontier.retain(|p| !before.contains(p));
            frontier.push(t);
        }
    }

    // Cycles, from the most restrictive edge set to the least.
    for realtime in [false, true] {
        let extra = if realtime { RT } else { 0 };
        let suffix = if realtime { "-realtime" } else { "" };
        let name = |base: &str| format!("{base}{suffix}");
        for (kind, mask) in [("G0", WW), ("G1c", WW | WR)] {
            for scc in graph.sccs(mask | extra) {
                if kind == "G1c" && !graph.has_inside(&scc, WR) {
                    continue;
                }
                if realtime && !graph.has_inside(&scc, RT) {
                    continue;
                }
                let cycle = graph.cycle(&scc, mask | extra);
                report(&name(kind), graph.explain(&cycle, mask | extra, &show));
            }
        }
        for scc in graph.sccs(WW | WR | RW | extra) {
            if !graph.has_inside(&scc, RW) || (realtime && !graph.has_inside(&scc, RT)) {
                continue;
            }
            match graph.single_rw_cycle(&scc, WW | WR | extra) {
                Some(cycle) => report(
                    &name("G-single"),
                    graph.explain(&cycle, WW | WR | RW | extra, &show),
                ),
                None => {
                    let cycle = graph.cycle(&scc, WW | WR | RW | extra);
                    report(
                        &name("G2"),
                        graph.explain(&cycle, WW | WR | RW | extra, &show),
                    );
                }
            }
        }
    }
    found
}

/// A directed graph whose edges carry a set of kinds.
struct Graph {
    out: Vec<BTreeMap<usize, u8>>,
}

impl Graph {
    fn new(n: usize) -> Graph {
        Graph {
            out: vec![BTreeMap::new(); n],
        }
    }

    fn add(&mut self, from: usize, to: usize, kind: u8) {
        *self.out[from].entry(to).or_insert(0) |= kind;
    }

    fn edges(&self, from: usize, mask: u8) -> impl Iterator<Item = usize> + '_ {
        self.out[from]
            .iter()
            .filter(move |(_, k)| **k & mask != 0)
            .map(|(to, _)| *to)
    }

    /// The strongly connected components of more than one node, over edges of `mask`
    /// (Tarjan's algorithm, iterative).
    fn sccs(&self, mask: u8) -> Vec<Vec<usize>> {
        let n = self.out.len();
        let mut index = vec![usize::MAX; n];
        let mut low = vec![0usize; n];
        let mut on_stack = vec![false; n];
        let mut stack = Vec::new();
        let mut next_index = 0;
        let mut result = Vec::new();
        for root in 0..n {
            if index[root] != usize::MAX || self.out[root].is_empty() {
                continue;
            }
            let mut work: Vec<(usize, Vec<usize>, usize)> = Vec::new();
            index[root] = next_index;
            low[root] = next_index;
            next_index += 1;
            stack.push(root);
            on_stack[root] = true;
            work.push((root, self.edges(root, mask).collect(), 0));
            while let Some((v, succ, i)) = work.last_mut() {
                let v = *v;
                if *i < succ.len() {
                    let w = succ[*i];
                    *i += 1;
                    if index[w] == usize::MAX {
                        index[w] = next_index;
                        low[w] = next_index;
                        next_index += 1;
                        stack.push(w);
                        on_stack[w] = true;
                        work.push((w, self.edges(w, mask).collect(), 0));
                    } else if on_stack[w] {
                        low[v] = low[v].min(index[w]);
                    }
                } else {
                    work.pop();
                    if let Some((parent, _, _)) = work.last() {
                        low[*parent] = low[*parent].min(low[v]);
                    }
                    if low[v] == index[v] {
                        let mut scc = Vec::new();
                        loop {
                            let w = stack.pop().expect("on the stack");
                            on_stack[w] = false;
                            scc.push(w);
                            if w == v {
                                break;
                            }
                        }
                        if scc.len() > 1 {
                            scc.sort_unstable();
                            result.push(scc);
                        }
                    }
                }
            }
        }
        result
    }

    fn has_inside(&self, scc: &[usize], kind: u8) -> bool {
        scc.iter().any(|a| {
            self.out[*a]
                .iter()
                .any(|(b, k)| *k & kind != 0 && scc.binary_search(b).is_ok())
        })
    }

    /// A shortest path from `from` to `to` inside `scc` over edges of `mask`.
    fn path(&self, scc: &[usize], from: usize, to: usize, mask: u8) -> Option<Vec<usize>> {
        let mut parent: HashMap<usize, usize> = HashMap::new();
        let mut queue = VecDeque::from([from]);
        while let Some(v) = queue.pop_front() {
            for w in self.edges(v, mask) {
                if scc.binary_search(&w).is_err() || parent.contains_key(&w) {
                    continue;
                }
                parent.insert(w, v);
                if w == to {
                    let mut path = vec![to];
                    let mut at = to;
                    while at != from || path.len() == 1 {
                        at = parent[&at];
                        path.push(at);
                        if at == from {
                            break;
                        }
                    }
                    path.reverse();
                    return Some(path);
                }
                queue.push_back(w);
            }
        }
        None
    }

    /// A cycle through the first node of `scc` (which is strongly connected over `mask`).
    fn cycle(&self, scc: &[usize], mask: u8) -> Vec<usize> {
        let start = scc[0];
        self.path(scc, start, start, mask)
            .unwrap_or_else(|| vec![start])
    }

    /// A cycle with exactly one rw edge: an rw edge a -> b and a path back from b to a
    /// over `rest`.
    fn single_rw_cycle(&self, scc: &[usize], rest: u8) -> Option<Vec<usize>> {
        let mut tried = 0;
        for a in scc {
            for (b, k) in &self.out[*a] {
                if k & RW == 0 || scc.binary_search(b).is_err() {
                    continue;
                }
                tried += 1;
                if tried > 10_000 {
                    return None;
                }
                if let Some(back) = self.path(scc, *b, *a, rest) {
                    let mut cycle = vec![*a];
                    cycle.extend(back);
                    return Some(cycle);
                }
            }
        }
        None
    }

    fn explain(&self, cycle: &[usize], mask: u8, show: &dyn Fn(usize) -> String) -> String {
        let mut text = String::new();
        for pair in cycle.windows(2) {
            let kinds = self.out[pair[0]].get(&pair[1]).copied().unwrap_or(0) & mask;
            text.push_str(&format!("{} -{}-> ", show(pair[0]), edge_names(kinds)));
        }
        if let Some(last) = cycle.last() {
            text.push_str(&show(*last));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Mop::{Append as A, Read as R};
    use Outcome::{Fail, Info, Ok as Done};

    fn t(
        process: usize,
        invoke: u64,
        complete: u64,
        outcome: Outcome,
        f: Vec<Mop>,
    ) -> Op<Vec<Mop>> {
        Op::new(process, invoke, complete, outcome, f)
    }

    fn r(k: u64, list: &[u64]) -> Mop {
        R(k, Some(list.to_vec()))
    }

    fn kinds(h: &[Op<Vec<Mop>>], model: Model) -> Vec<String> {
        let mut k: Vec<String> = check(h, model).into_iter().map(|a| a.kind).collect();
        k.sort();
        k.dedup();
        k
    }

    #[test]
    fn a_serial_history_is_valid() {
        let h = vec![
            t(0, 0, 10, Done, vec![A(1, 1), A(2, 1)]),
            t(1, 20, 30, Done, vec![r(1, &[1]), A(1, 2)]),
            t(0, 40, 50, Done, vec![r(1, &[1, 2]), r(2, &[1])]),
            t(1, 45, 55, Fail, vec![A(2, 9)]),
            t(2, 60, 70, Info, vec![A(2, 3)]),
            t(2, 80, 90, Done, vec![r(2, &[1, 3])]),
        ];
        assert!(kinds(&h, Model::StrictSerializable).is_empty());
        assert!(kinds(&h, Model::SnapshotIsolation).is_empty());
    }

    #[test]
    fn concurrent_transactions_may_commit_in_either_order() {
        let h = vec![
            t(0, 0, 100, Done, vec![A(1, 1)]),
            t(1, 10, 90, Done, vec![A(1, 2)]),
            t(2, 20, 80, Done, vec![r(1, &[2])]),
            t(2, 110, 120, Done, vec![r(1, &[2, 1])]),
        ];
        assert!(kinds(&h, Model::StrictSerializable).is_empty());
    }

    #[test]
    fn g0_write_cycle() {
        // T0 before T1 on key 1, T1 before T0 on key 2.
        let h = vec![
            t(0, 0, 10, Done, vec![A(1, 1), A(2, 2)]),
            t(1, 0, 10, Done, vec![A(1, 3), A(2, 4)]),
            t(2, 20, 30, Done, vec![r(1, &[1, 3]), r(2, &[4, 2])]),
        ];
        assert!(kinds(&h, Model::SnapshotIsolation).contains(&"G0".to_string()));
    }

    #[test]
    fn g1a_aborted_read() {
        let h = vec![
            t(0, 0, 10, Fail, vec![A(1, 1)]),
            t(1, 20, 30, Done, vec![r(1, &[1])]),
        ];
        assert_eq!(kinds(&h, Model::SnapshotIsolation), vec!["G1a"]);
    }

    #[test]
    fn g1b_intermediate_read() {
        let h = vec![
            t(0, 0, 10, Done, vec![A(1, 1), A(1, 2)]),
            t(1, 5, 8, Done, vec![r(1, &[1])]),
        ];
        assert!(kinds(&h, Model::SnapshotIsolation).contains(&"G1b".to_string()));
    }

    #[test]
    fn g1c_circular_information_flow() {
        // T0 reads T1's write and T1 reads T0's write.
        let h = vec![
            t(0, 0, 10, Done, vec![A(1, 1), r(2, &[2])]),
            t(1, 0, 10, Done, vec![A(2, 2), r(1, &[1])]),
        ];
        assert_eq!(kinds(&h, Model::SnapshotIsolation), vec!["G1c"]);
    }

    #[test]
    fn g_single_lost_update() {
        // Both read the empty list and append: one append is lost to the other's read.
        let h = vec![
            t(0, 0, 10, Done, vec![r(1, &[]), A(1, 1)]),
            t(1, 0, 10, Done, vec![r(1, &[]), A(1, 2)]),
            t(2, 20, 30, Done, vec![r(1, &[1, 2])]),
        ];
        assert_eq!(kinds(&h, Model::SnapshotIsolation), vec!["G-single"]);
        assert_eq!(kinds(&h, Model::StrictSerializable), vec!["G-single"]);
    }

    #[test]
    fn g2_write_skew_is_allowed_by_snapshot_isolation_only() {
        let h = vec![
            t(0, 0, 10, Done, vec![r(1, &[]), r(2, &[]), A(1, 1)]),
            t(1, 0, 10, Done, vec![r(1, &[]), r(2, &[]), A(2, 2)]),
            t(2, 20, 30, Done, vec![r(1, &[1]), r(2, &[2])]),
        ];
        assert!(kinds(&h, Model::SnapshotIsolation).is_empty());
        assert_eq!(kinds(&h, Model::StrictSerializable), vec!["G2"]);
    }

    #[test]
    fn a_stale_read_breaks_strict_serializability_only_in_real_time() {
        // T1 starts after T0 committed but does not see its append.
        let h = vec![
            t(0, 0, 10, Done, vec![A(1, 1)]),
            t(1, 20, 30, Done, vec![r(1, &[])]),
            t(2, 40, 50, Done, vec![r(1, &[1])]),
        ];
        assert_eq!(
            kinds(&h, Model::StrictSerializable),
            vec!["G-single-realtime"]
        );
        assert!(kinds(&h, Model::SnapshotIsolation).is_empty());
    }

    #[test]
    fn disagreeing_orders_duplicates_and_garbage_are_caught() {
        let h = vec![
            t(0, 0, 10, Done, vec![A(1, 1)]),
            t(1, 0, 10, Done, vec![A(1, 2)]),
            t(2, 20, 30, Done, vec![r(1, &[1, 2])]),
            t(3, 20, 30, Done, vec![r(1, &[2, 1])]),
            t(4, 20, 30, Done, vec![r(1, &[1, 1]), r(2, &[77])]),
        ];
        let k = kinds(&h, Model::SnapshotIsolation);
        for kind in [
            "incompatible-order",
            "duplicate-elements",
            "unknown-element",
        ] {
            assert!(k.contains(&kind.to_string()), "{kind} in {k:?}");
        }
    }

    #[test]
    fn an_unknown_transaction_seen_by_a_read_joins_the_graph() {
        // The unknown T0 was seen after T1's append, so it committed after T1; T1 read
        // T0's append: a cycle (G1c).
        let h = vec![
            t(0, 0, 10, Info, vec![A(1, 1), A(2, 5)]),
            t(1, 0, 10, Done, vec![A(1, 2), r(2, &[5])]),
            t(2, 20, 30, Done, vec![r(1, &[2, 1])]),
        ];
        assert_eq!(kinds(&h, Model::SnapshotIsolation), vec!["G1c"]);
    }
}
