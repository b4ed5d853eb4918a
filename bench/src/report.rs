//! Turns criterion's saved estimates (`<target>/criterion/<group>/<engine>/new/
//! estimates.json`) into the markdown table of `docs/benchmarks.md`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

/// One measured benchmark: its median time per iteration and, where the benchmark
/// declared one, the work per iteration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measurement {
    /// Median nanoseconds per iteration.
    pub median_ns: f64,
    /// Elements or bytes per iteration (from `benchmark.json`), if declared.
    pub throughput: Option<Throughput>,
}

/// Work per iteration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Throughput {
    /// Elements (keys, versions) per iteration.
    Elements(u64),
    /// Bytes per iteration.
    Bytes(u64),
}

/// Measurements by group (operation) and then by engine id.
pub type Results = BTreeMap<String, BTreeMap<String, Measurement>>;

/// Reads every `<group>/<id>/new/estimates.json` under `criterion_dir`.
pub fn load(criterion_dir: &Path) -> std::io::Result<Results> {
    let mut results = Results::new();
    for group in std::fs::read_dir(criterion_dir)? {
        let group = group?;
        if !group.file_type()?.is_dir() || group.file_name() == "report" {
            continue;
        }
        for id in std::fs::read_dir(group.path())? {
            let id = id?;
            let new = id.path().join("new");
            let Ok(estimates) = std::fs::read_to_string(new.join("estimates.json")) else {
                continue;
            };
            let Some(median_ns) = serde_json::from_str::<serde_json::Value>(&estimates)
                .ok()
                .and_then(|v| v["median"]["point_estimate"].as_f64())
            else {
                continue;
            };
            let throughput = std::fs::read_to_string(new.join("benchmark.json"))
                .ok()
                .and_then(|b| serde_json::from_str::<serde_json::Value>(&b).ok())
                .and_then(|b| {
                    let t = &b["throughput"];
                    if let Some(n) = t["Elements"].as_u64() {
                        Some(Throughput::Elements(n))
                    } else {
                        t["Bytes"].as_u64().map(Throughput::Bytes)
                    }
                });
            results
                .entry(group.file_name().to_string_lossy().into_owned())
                .or_default()
                .insert(
                    id.file_name().to_string_lossy().into_owned(),
                    Measurement {
                        median_ns,
                        throughput,
                    },
                );
        }
    }
    Ok(results)
}

fn human_time(ns: f64) -> String {
    if ns >= 1e9 {
        format!("{:.2} s", ns / 1e9)
    } else if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

fn cell(m: &Measurement) -> String {
    match m.throughput {
        Some(Throughput::Bytes(b)) => {
            format!("{:.0} MB/s", b as f64 / (m.median_ns / 1e9) / 1e6)
        }
        _ => human_time(m.median_ns),
    }
}

/// The operations table (medians; MB/s for byte throughputs) and the MVCC-overhead
/// ratios (ours / raw backend) for every engine with `-raw` measurements.
pub fn render(results: &Results) -> String {
    let mut engines: Vec<String> = results
        .values()
        .flat_map(|m| m.keys().cloned())
        .filter(|id| !id.ends_with("-raw"))
        .collect();
    engines.sort();
    engines.dedup();
    let order = ["mem", "redb", "lmdb", "rocks"];
    engines.sort_by_key(|e| order.iter().position(|o| o == e).unwrap_or(order.len()));

    let mut out = String::new();
    let _ = writeln!(out, "| operation | {} |", engines.join(" | "));
    let _ = writeln!(out, "|---|{}", "---:|".repeat(engines.len()));
    for (group, by_engine) in results {
        let cells: Vec<String> = engines
            .iter()
            .map(|e| by_engine.get(e).map_or_else(|| "–".to_string(), cell))
            .collect();
        let _ = writeln!(out, "| {group} | {} |", cells.join(" | "));
    }
    let ratios = [
        ("get_at hit (1 version) / raw get", "get_at_hit_1v"),
        (
            "apply_mutations 1 key synced / raw synced put",
            "apply_mutations_1_synced",
        ),
        (
            "apply_mutations 1 key buffered / raw buffered put",
            "apply_mutations_1_buffered",
        ),
        ("scan_at 100 / raw range read of 100", "scan_at_100"),
    ];
    let with_raw: Vec<&String> = engines
        .iter()
        .filter(|e| {
            results
                .values()
                .any(|m| m.contains_key(&format!("{e}-raw")))
        })
        .collect();
    if !with_raw.is_empty() {
        let _ = writeln!(out);
        let names: Vec<&str> = with_raw.iter().map(|e| e.as_str()).collect();
        let _ = writeln!(
            out,
            "| MVCC overhead (ours / raw) | {} |",
            names.join(" | ")
        );
        let _ = writeln!(out, "|---|{}", "---:|".repeat(with_raw.len()));
        for (label, group) in ratios {
            let cells: Vec<String> = with_raw
                .iter()
                .map(|e| {
                    let m = results.get(group);
                    match (
                        m.and_then(|m| m.get(*e)),
                        m.and_then(|m| m.get(&format!("{e}-raw"))),
                    ) {
                        (Some(ours), Some(raw)) => {
                            format!("{:.2}x", ours.median_ns / raw.median_ns)
                        }
                        _ => "–".to_string(),
                    }
                })
                .collect();
            let _ = writeln!(out, "| {label} | {} |", cells.join(" | "));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_medians_throughputs_and_ratios() {
        let mut r = Results::new();
        let m = |ns, t| Measurement {
            median_ns: ns,
            throughput: t,
        };
        r.entry("get_at_hit_1v".into())
            .or_default()
            .insert("redb".into(), m(300.0, None));
        r.entry("get_at_hit_1v".into())
            .or_default()
            .insert("redb-raw".into(), m(200.0, None));
        r.entry("restore".into())
            .or_default()
            .insert("redb".into(), m(1e9, Some(Throughput::Bytes(200_000_000))));
        let table = render(&r);
        assert!(table.contains("| get_at_hit_1v | 300 ns |"), "{table}");
        assert!(table.contains("| restore | 200 MB/s |"), "{table}");
        assert!(
            table.contains("| get_at hit (1 version) / raw get | 1.50x |"),
            "{table}"
        );
    }
}
