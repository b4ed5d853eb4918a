//! Prometheus metrics over HTTP (`GET /metrics`, text format 0.0.4): request counts,
//! errors and latency per RPC, Raft state per group, engine activity of the background
//! tasks. A tiny HTTP/1.1 responder on its own listener: no web framework needed for one
//! read-only page.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Upper bounds of the latency histogram buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Debug, Default)]
struct Rpc {
    requests: u64,
    errors: BTreeMap<String, u64>,
    buckets: [u64; BUCKETS.len()],
    sum_seconds: f64,
}

/// The node's counters. Cheap to share.
#[derive(Debug, Default)]
pub struct Metrics {
    rpcs: Mutex<BTreeMap<String, Rpc>>,
    /// Lock resolver rounds run.
    pub resolver_rounds: AtomicU64,
    /// Locks the resolver resolved.
    pub locks_resolved: AtomicU64,
    /// GC rounds run.
    pub gc_rounds: AtomicU64,
    /// Engine compactions run by GC.
    pub compactions: AtomicU64,
    /// Versions removed by those compactions.
    pub versions_removed: AtomicU64,
}

/// A per-group gauge: name, help text, how to read it.
type Gauge = (&'static str, &'static str, fn(&GroupGauges) -> u64);

/// Raft state of one group, for the page.
#[derive(Debug, Clone)]
pub struct GroupGauges {
    /// The group.
    pub group: u64,
    /// 1 when this node leads the group.
    pub is_leader: bool,
    /// The current term.
    pub term: u64,
    /// The last log index.
    pub last_log_index: u64,
    /// The committed index.
    pub committed_index: u64,
    /// The applied index.
    pub applied_index: u64,
    /// Synced log writes so far.
    pub log_syncs: u64,
}

/// Counters the cluster layer keeps, for the page.
#[derive(Debug, Clone, Copy, Default)]
pub struct NodeCounters {
    /// Timestamp requests this node made (its own and forwarded ones it served).
    pub tso_requests: u64,
    /// Oracle calls those requests were coalesced into.
    pub tso_calls: u64,
    /// Quorum rounds the oracle made to confirm its leadership (one per half lease
    /// under steady use).
    pub tso_leadership_checks: u64,
    /// Syncs of the node's shared Raft log (each covers every group's appends queued
    /// meanwhile); 0 when the groups keep their logs elsewhere.
    pub shared_log_syncs: u64,
}

impl Metrics {
    /// Records one finished RPC (`code` is the gRPC status code name, "OK" on success).
    pub fn observe(&self, method: &str, code: &str, elapsed: Duration) {
        let mut rpcs = self.rpcs.lock();
        // Every call after a method's first finds its entry without allocating.
        let rpc = match rpcs.get_mut(method) {
            Some(rpc) => rpc,
            None => rpcs.entry(method.to_string()).or_default(),
        };
        rpc.requests += 1;
        if code != "OK" {
            match rpc.errors.get_mut(code) {
                Some(n) => *n += 1,
                None => {
                    rpc.errors.insert(code.to_string(), 1);
                }
            }
        }
        let secs = elapsed.as_secs_f64();
        rpc.sum_seconds += secs;
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                rpc.buckets[i] += 1;
            }
        }
    }

    /// The page, with the groups' current state and the cluster layer's counters.
    pub fn render(&self, groups: &[GroupGauges], node: &NodeCounters) -> String {
        let mut out = String::new();
        let rpcs = self.rpcs.lock();
        out.push_str("# HELP elastickv_rpc_requests_total gRPC requests served, by method.\n");
        out.push_str("# TYPE elastickv_rpc_requests_total counter\n");
        for (method, rpc) in rpcs.iter() {
            let _ = writeln!(
                out,
                "elastickv_rpc_requests_total{{method=\"{method}\"}} {}",
                rpc.requests
            );
        }
        out.push_str("# HELP elastickv_rpc_errors_total gRPC requests that failed, by method and status code.\n");
        out.push_str("# TYPE elastickv_rpc_errors_total counter\n");
        for (method, rpc) in rpcs.iter() {
            for (code, n) in &rpc.errors {
                let _ = writeln!(
                    out,
                    "elastickv_rpc_errors_total{{method=\"{method}\",code=\"{code}\"}} {n}"
                );
            }
        }
        out.push_str("# HELP elastickv_rpc_duration_seconds gRPC request latency, by method.\n");
        out.push_str("# TYPE elastickv_rpc_duration_seconds histogram\n");
        for (method, rpc) in rpcs.iter() {
            for (i, bound) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "elastickv_rpc_duration_seconds_bucket{{method=\"{method}\",le=\"{bound}\"}} {}",
                    rpc.buckets[i]
                );
            }
            let _ = writeln!(
                out,
                "elastickv_rpc_duration_seconds_bucket{{method=\"{method}\",le=\"+Inf\"}} {}",
                rpc.requests
            );
            let _ = writeln!(
                out,
                "elastickv_rpc_duration_seconds_sum{{method=\"{method}\"}} {}",
                rpc.sum_seconds
            );
            let _ = writeln!(
                out,
                "elastickv_rpc_duration_seconds_count{{method=\"{method}\"}} {}",
                rpc.requests
            );
        }
        drop(rpcs);
        let gauges: [Gauge; 6] = [
            (
                "elastickv_raft_is_leader",
                "1 when this node leads the group.",
                |g| u64::from(g.is_leader),
            ),
            ("elastickv_raft_term", "The group's current term.", |g| {
                g.term
            }),
            (
                "elastickv_raft_last_log_index",
                "The last log index.",
                |g| g.last_log_index,
            ),
            (
                "elastickv_raft_committed_index",
                "The committed log index.",
                |g| g.committed_index,
            ),
            (
                "elastickv_raft_applied_index",
                "The applied log index.",
                |g| g.applied_index,
            ),
            (
                "elastickv_raft_log_syncs_total",
                "Synced log writes that carried this group's appends (with the shared log, one sync may count for several groups).",
                |g| g.log_syncs,
            ),
        ];
        for (name, help, value) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}");
            let kind = if name.ends_with("_total") {
                "counter"
            } else {
                "gauge"
            };
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for g in groups {
                let _ = writeln!(out, "{name}{{group=\"{}\"}} {}", g.group, value(g));
            }
        }
        let counters = [
            (
                "elastickv_lock_resolver_rounds_total",
                "Lock resolver rounds.",
                &self.resolver_rounds,
            ),
            (
                "elastickv_locks_resolved_total",
                "Expired locks resolved.",
                &self.locks_resolved,
            ),
            ("elastickv_gc_rounds_total", "GC rounds.", &self.gc_rounds),
            (
                "elastickv_compactions_total",
                "Engine compactions run by GC.",
                &self.compactions,
            ),
            (
                "elastickv_compaction_versions_removed_total",
                "Versions removed by compaction.",
                &self.versions_removed,
            ),
        ];
        let node_counters = [
            (
                "elastickv_tso_requests_total",
                "Timestamp requests made on this node.",
                node.tso_requests,
            ),
            (
                "elastickv_tso_calls_total",
                "Calls to the timestamp oracle those requests were coalesced into.",
                node.tso_calls,
            ),
            (
                "elastickv_tso_leadership_checks_total",
                "Quorum rounds the timestamp oracle made to confirm its leadership.",
                node.tso_leadership_checks,
            ),
            (
                "elastickv_raft_shared_log_syncs_total",
                "Syncs of the node's shared Raft log (each covers every group's appends).",
                node.shared_log_syncs,
            ),
        ];
        let counters = counters
            .into_iter()
            .map(|(name, help, value)| (name, help, value.load(Ordering::Relaxed)))
            .chain(node_counters);
        for (name, help, value) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        }
        out
    }
}

/// Serves `GET /metrics` on `listener` until `shutdown` fires.
pub async fn serve(
    listener: TcpListener,
    page: Arc<dyn Fn() -> String + Send + Sync>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.changed() => return,
        };
        let Ok((mut stream, _)) = accepted else {
            continue;
        };
        let page = Arc::clone(&page);
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let n = match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await
            {
                Ok(Ok(n)) => n,
                _ => return,
            };
            let head = String::from_utf8_lossy(&buf[..n]);
            let (status, body, kind) = if head.starts_with("GET /metrics") {
                ("200 OK", page(), "text/plain; version=0.0.4")
            } else if head.starts_with("GET /") {
                ("404 Not Found", "see /metrics\n".to_string(), "text/plain")
            } else {
                (
                    "405 Method Not Allowed",
                    "only GET\n".to_string(),
                    "text/plain",
                )
            };
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_has_counts_histograms_and_groups() {
        let m = Metrics::default();
        m.observe("/RawKV/RawPut", "OK", Duration::from_millis(2));
        m.observe(
            "/RawKV/RawPut",
            "InvalidArgument",
            Duration::from_millis(20),
        );
        let page = m.render(
            &[GroupGauges {
                group: 1,
                is_leader: true,
                term: 3,
                last_log_index: 9,
                committed_index: 9,
                applied_index: 8,
                log_syncs: 4,
            }],
            &NodeCounters {
                tso_requests: 10,
                tso_calls: 3,
                tso_leadership_checks: 2,
                shared_log_syncs: 7,
            },
        );
        assert!(page.contains("elastickv_tso_leadership_checks_total 2\n"));
        assert!(page.contains("elastickv_rpc_requests_total{method=\"/RawKV/RawPut\"} 2"));
        assert!(page.contains(
            "elastickv_rpc_errors_total{method=\"/RawKV/RawPut\",code=\"InvalidArgument\"} 1"
        ));
        assert!(page.contains(
            "elastickv_rpc_duration_seconds_bucket{method=\"/RawKV/RawPut\",le=\"0.0025\"} 1"
        ));
        assert!(page.contains(
            "elastickv_rpc_duration_seconds_bucket{method=\"/RawKV/RawPut\",le=\"+Inf\"} 2"
        ));
        assert!(page.contains("elastickv_raft_applied_index{group=\"1\"} 8"));
        assert!(page.contains("elastickv_raft_is_leader{group=\"1\"} 1"));
        assert!(page.contains("elastickv_tso_requests_total 10\n"));
        assert!(page.contains("elastickv_tso_calls_total 3\n"));
        assert!(page.contains("elastickv_raft_shared_log_syncs_total 7\n"));
    }
}
