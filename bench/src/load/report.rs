//! The run's report: a table for people, the same figures as JSON for scripts.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

/// One operation type's figures (or the total over all types).
#[derive(Debug, Clone, Serialize)]
pub struct OpReport {
    /// The operation type (`read`, `update`, ..., or `total`).
    pub op: String,
    /// Operations that succeeded.
    pub ops: u64,
    /// Successful operations per second of the run.
    pub ops_per_s: f64,
    /// Latency percentiles of the successful operations, in microseconds (a retried
    /// operation counts once, with its retries' time).
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Mean.
    pub mean_us: f64,
    /// Maximum.
    pub max_us: f64,
    /// Operations that failed, by gRPC status code (after their retries).
    pub errors: BTreeMap<String, u64>,
    /// All failed operations.
    pub errors_total: u64,
    /// Conflicts (`Aborted`) retried.
    pub retries: u64,
    /// Reads that found no value (scans that found no key).
    pub not_found: u64,
}

/// How long the preload took.
#[derive(Debug, Clone, Serialize)]
pub struct PreloadReport {
    /// Keys written.
    pub keys: u64,
    /// Seconds.
    pub elapsed_s: f64,
    /// Keys per second.
    pub keys_per_s: f64,
}

/// A run's settings and results.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `elastickv-load`.
    pub tool: String,
    /// The system and API driven.
    pub target: String,
    /// The workload's name.
    pub workload: String,
    /// The nodes driven.
    pub endpoints: Vec<String>,
    /// Concurrent clients.
    pub clients: usize,
    /// Connections they shared.
    pub conns: usize,
    /// The key space's size.
    pub keys: u64,
    /// How keys were chosen.
    pub distribution: String,
    /// Bytes per written value.
    pub value_size: usize,
    /// The run's time limit, if it had one.
    pub duration_limit_s: Option<f64>,
    /// The run's operation limit, if it had one.
    pub ops_limit: Option<u64>,
    /// The seed.
    pub seed: u64,
    /// How long the run took (the preload excluded).
    pub elapsed_s: f64,
    /// The preload, if there was one.
    pub preload: Option<PreloadReport>,
    /// One row per operation type.
    pub ops: Vec<OpReport>,
    /// All operation types together.
    pub total: OpReport,
    /// Remarks on the run (a key space within one shard, no preload, ...).
    pub notes: Vec<String>,
}

fn ms(us: f64) -> String {
    format!("{:.3}", us / 1000.0)
}

impl Report {
    /// The report as a plain-text table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let limit = match (self.duration_limit_s, self.ops_limit) {
            (_, Some(n)) => format!("{n} ops"),
            (Some(d), None) => format!("{d} s"),
            (None, None) => String::new(),
        };
        let _ = writeln!(
            out,
            "workload {} on {} ({}), {} clients over {} connections, {} over {} keys, {}-byte values, limit {limit}, ran {:.2} s",
            self.workload,
            self.target,
            self.endpoints.join(","),
            self.clients,
            self.conns,
            self.distribution,
            self.keys,
            self.value_size,
            self.elapsed_s,
        );
        if let Some(p) = &self.preload {
            let _ = writeln!(
                out,
                "preload: {} keys in {:.2} s ({:.0} keys/s)",
                p.keys, p.elapsed_s, p.keys_per_s
            );
        }
        let header = [
            "op",
            "ops",
            "ops/s",
            "p50 ms",
            "p99 ms",
            "p99.9 ms",
            "max ms",
            "retries",
            "not found",
            "errors",
        ];
        let mut rows: Vec<[String; 10]> = Vec::new();
        for r in self.ops.iter().chain(std::iter::once(&self.total)) {
            let errors = if r.errors.is_empty() {
                "0".to_string()
            } else {
                r.errors
                    .iter()
                    .map(|(code, n)| format!("{code}={n}"))
                    .collect::<Vec<_>>()
                    .join(",")
            };
            rows.push([
                r.op.clone(),
                r.ops.to_string(),
                format!("{:.1}", r.ops_per_s),
                ms(r.p50_us),
                ms(r.p99_us),
                ms(r.p999_us),
                ms(r.max_us),
                r.retries.to_string(),
                r.not_found.to_string(),
                errors,
            ]);
        }
        let mut widths = header.map(str::len);
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.len());
            }
        }
        let line = |cells: &[&str]| {
            let mut s = String::new();
            for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
                if i == 0 || i == cells.len() - 1 {
                    let _ = write!(s, "{cell:<w$}");
                } else {
                    let _ = write!(s, "{cell:>w$}");
                }
                if i + 1 < cells.len() {
                    s.push_str("  ");
                }
            }
            s.trim_end().to_string()
        };
        let _ = writeln!(out, "{}", line(&header));
        for row in &rows {
            let cells: Vec<&str> = row.iter().map(String::as_str).collect();
            let _ = writeln!(out, "{}", line(&cells));
        }
        for note in &self.notes {
            let _ = writeln!(out, "note: {note}");
        }
        out
    }

    /// The report as pretty-printed JSON.
    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report serializes")
    }
}
