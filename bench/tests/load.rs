//! The load generator against a real node: one in-process elastickv node on the mem
//! engine (3 groups, split at "i" and "r"), every workload for about a second with 4
//! clients, and the binary once with `--json`.

use std::time::{Duration, Instant};

use elastickv_bench::load::{self, Config, Distribution, ElasticKvConnector, Limit, Workload};
use elastickv_engine_api::EngineError;
use elastickv_engine_mem::MemEngine;
use elastickv_server::client::Client;
use elastickv_server::config::NodeOptions;
use elastickv_server::run::start_node;

mod common;

use common::{config, free_port, KEYS};

/// Waits until the route table is known and every range answers a read.
async fn wait_serving(addr: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(mut c) = Client::connect(addr).await {
            if let Ok(table) = c.routes().await {
                let mut ok = !table.routes.is_empty();
                for route in table.routes {
                    let probe = if route.start.is_empty() {
                        vec![1]
                    } else {
                        route.start
                    };
                    ok &= c.raw_get(&probe).await.is_ok();
                }
                if ok {
                    return;
                }
            }
        }
        assert!(Instant::now() < deadline, "the node did not start serving");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn check(name: &str, report: &load::Report, reads_existing: bool) {
    print!("{name}:\n{}", report.table());
    assert!(report.total.ops > 0, "{name}: no operation completed");
    assert_eq!(
        report.total.errors_total, 0,
        "{name}: {:?}",
        report.total.errors
    );
    for row in &report.ops {
        assert!(row.ops > 0, "{name}: no {} completed", row.op);
        assert!(row.p50_us > 0.0 && row.p50_us <= row.p99_us && row.p99_us <= row.p999_us);
        assert!(row.p999_us <= row.max_us);
    }
    if reads_existing {
        assert_eq!(
            report.total.not_found, 0,
            "{name}: reads missed preloaded keys"
        );
    }
    let json = serde_json::to_value(report).expect("json");
    for field in ["workload", "target", "clients", "elapsed_s", "ops", "total"] {
        assert!(json.get(field).is_some(), "{name}: no {field} in the JSON");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_workload_runs_without_errors_against_one_node() {
    tokio::time::timeout(Duration::from_secs(240), every_workload())
        .await
        .expect("the test exceeded its time limit");
}

async fn every_workload() {
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = format!("127.0.0.1:{}", free_port());
    let settings = NodeOptions {
        id: Some(1),
        listen: Some(addr.parse().expect("addr")),
        data_dir: Some(dir.path().to_path_buf()),
        engine: Some("mem".into()),
        groups: Some(3),
        heartbeat_ms: Some(50),
        election_timeout_ms: Some(300),
        ..NodeOptions::default()
    }
    .settings()
    .expect("settings");
    let node = start_node(settings, |_: &std::path::Path| {
        Ok::<_, EngineError>(MemEngine::new())
    })
    .await
    .expect("start the node");
    wait_serving(&addr).await;

    let txn = ElasticKvConnector::default();
    let raw = ElasticKvConnector {
        raw: true,
        ..ElasticKvConnector::default()
    };
    let routed = ElasticKvConnector {
        leader_routing: true,
        ..ElasticKvConnector::default()
    };
    let zipfian = Distribution::Zipfian {
        theta: 0.99,
        scrambled: true,
    };

    let report = load::run(&config(&addr, Workload::Put), &txn)
        .await
        .unwrap();
    check("put", &report, false);
    assert_eq!(report.ops[0].op, "put");
    assert_eq!(report.target, "elastickv TransactionalKV");

    // Writes every key once; the later workloads read them.
    let get = Config {
        preload: true,
        ..config(&addr, Workload::Get)
    };
    let report = load::run(&get, &txn).await.unwrap();
    check("get (preloaded)", &report, true);
    let preload = report.preload.as_ref().expect("a preload report");
    assert_eq!(preload.keys, KEYS);

    for (workload, distribution) in [
        (Workload::A, Distribution::Uniform),
        (Workload::B, zipfian),
        (
            Workload::C,
            Distribution::Zipfian {
                theta: 0.99,
                scrambled: false,
            },
        ),
        (Workload::E, Distribution::Uniform),
        (Workload::F, Distribution::Uniform),
        (Workload::Txn, Distribution::Uniform),
    ] {
        let c = Config {
            distribution,
            ..config(&addr, workload)
        };
        let report = load::run(&c, &txn).await.unwrap();
        check(workload.name(), &report, true);
        let ops: Vec<&str> = report.ops.iter().map(|r| r.op.as_str()).collect();
        let want: Vec<&str> = workload.ops().iter().map(|o| o.name()).collect();
        assert_eq!(ops, want);
        if workload == Workload::Txn {
            // The keys span the 3 groups, so transfers are cross-group (two-phase).
            assert!(
                !report.notes.iter().any(|n| n.contains("one shard")),
                "{:?}",
                report.notes
            );
        }
    }

    let report = load::run(&config(&addr, Workload::Put), &raw)
        .await
        .unwrap();
    check("put --raw", &report, false);
    assert_eq!(report.target, "elastickv RawKV");
    let get = Config {
        preload: true,
        raw: true,
        limit: Limit::Ops(200),
        ..config(&addr, Workload::Get)
    };
    let report = load::run(&get, &raw).await.unwrap();
    check("get --raw", &report, true);
    assert_eq!(report.total.ops, 200);

    // Reads and writes sent to their keys' leaders (all on this one node).
    let report = load::run(&config(&addr, Workload::A), &routed)
        .await
        .unwrap();
    check("a --leader-routing", &report, true);

    // The binary, end to end, with its JSON file.
    let json = dir.path().join("report.json");
    let args: Vec<String> = [
        "--workload",
        "a",
        "--endpoints",
        &addr,
        "--clients",
        "4",
        "--conns",
        "2",
        "--ops",
        "300",
        "--keys",
        "1000",
        "--distribution",
        "zipfian",
        "--quiet",
        "--json",
        json.to_str().expect("utf-8 path"),
    ]
    .map(String::from)
    .to_vec();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_elastickv-load"))
            .args(args)
            .output()
            .expect("run elastickv-load")
    })
    .await
    .expect("join");
    let stdout = String::from_utf8_lossy(&output.stdout);
    print!("binary:\n{stdout}");
    assert!(
        output.status.success(),
        "elastickv-load failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("p99.9 ms"), "{stdout}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("the JSON file"))
            .expect("the JSON parses");
    assert_eq!(report["workload"], "a");
    assert_eq!(report["ops_limit"], 300);
    assert_eq!(report["conns"], 2);
    assert_eq!(report["total"]["ops"], 300);
    assert_eq!(report["total"]["errors_total"], 0);
    let rows = report["ops"].as_array().expect("ops rows");
    assert_eq!(rows.len(), 2);
    for row in rows {
        for field in [
            "op",
            "ops",
            "ops_per_s",
            "p50_us",
            "p99_us",
            "p999_us",
            "max_us",
            "errors",
            "retries",
        ] {
            assert!(row.get(field).is_some(), "no {field} in {row}");
        }
    }

    node.shutdown().await;
}
