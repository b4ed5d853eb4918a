//! The load generator against a real etcd: a single-member etcd (the `etcd` binary on
//! PATH, from Debian's `etcd-server` package; `scripts/test.sh` installs it) on free
//! loopback ports in a temporary directory, then put, get (preloaded), YCSB E and F and
//! transfers for about a second each with 4 clients, and the binary once.
//!
//! Without `etcd` on PATH the test fails: a skipped comparison target would go
//! unnoticed.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use elastickv_bench::load::etcd::pb;
use elastickv_bench::load::workload::{balance, key};
use elastickv_bench::load::{self, Config, Connector, EtcdConnector, Workload};

mod common;

use common::{config, free_port, KEYS};

/// A running single-member etcd, killed on drop.
struct Etcd {
    child: Child,
    client_addr: String,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Etcd {
    fn start() -> Etcd {
        let found = std::env::var_os("PATH")
            .map(|paths| std::env::split_paths(&paths).any(|p| p.join("etcd").is_file()))
            .unwrap_or(false);
        assert!(
            found,
            "`etcd` is not on PATH: this test needs it. Install Debian's etcd-server \
             package (`apt-get install -y etcd-server`; scripts/test.sh does it)."
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let client_addr = format!("127.0.0.1:{}", free_port());
        let peer_url = format!("http://127.0.0.1:{}", free_port());
        let log = dir.path().join("etcd.log");
        let child = Command::new("etcd")
            .args(["--name", "test"])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--listen-client-urls", &format!("http://{client_addr}")])
            .args(["--advertise-client-urls", &format!("http://{client_addr}")])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("test={peer_url}")])
            .args(["--logger", "zap", "--log-outputs", "stderr"])
            .args(["--log-level", "warn"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start etcd");
        Etcd {
            child,
            client_addr,
            log,
            _dir: dir,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until a write succeeds (a leader is elected and the client port is open).
    async fn wait_serving(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("etcd status") {
                panic!("etcd exited ({status}):\n{}", self.log());
            }
            if let Ok(mut target) = EtcdConnector.connect(&self.client_addr).await {
                if target.put(b"probe", b"1").await.is_ok() {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "etcd did not start serving:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The sum of the balances of keys `0..KEYS` (wrapping, as transfers do).
    async fn total_balance(&self) -> u64 {
        let channel =
            tonic::transport::Channel::from_shared(format!("http://{}", self.client_addr))
                .expect("uri")
                .connect()
                .await
                .expect("connect");
        let mut kv = pb::kv_client::KvClient::new(channel);
        let mut total = 0u64;
        for i in 0..KEYS {
            let r = kv
                .range(pb::RangeRequest {
                    key: key(i),
                    ..Default::default()
                })
                .await
                .expect("range")
                .into_inner();
            let value = r.kvs.first().map(|kv| kv.value.as_slice());
            total = total.wrapping_add(balance(value));
        }
        total
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn check(name: &str, report: &load::Report) {
    print!("{name}:\n{}", report.table());
    assert_eq!(report.target, "etcd KV");
    assert!(report.total.ops > 0, "{name}: no operation completed");
    assert_eq!(
        report.total.errors_total, 0,
        "{name}: {:?}",
        report.total.errors
    );
    for row in &report.ops {
        assert!(row.ops > 0, "{name}: no {} completed", row.op);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_workload_runs_against_etcd_and_transfers_conserve_the_total() {
    let mut etcd = Etcd::start();
    tokio::time::timeout(Duration::from_secs(120), async {
        etcd.wait_serving().await;
        every_workload(&etcd).await;
    })
    .await
    .expect("the test exceeded its time limit");
}

async fn every_workload(etcd: &Etcd) {
    let addr = etcd.client_addr.as_str();

    let report = load::run(&config(addr, Workload::Put), &EtcdConnector)
        .await
        .unwrap();
    check("put", &report);

    let get = Config {
        preload: true,
        ..config(addr, Workload::Get)
    };
    let report = load::run(&get, &EtcdConnector).await.unwrap();
    check("get (preloaded)", &report);
    assert_eq!(report.preload.as_ref().expect("a preload").keys, KEYS);
    assert_eq!(report.total.not_found, 0, "reads missed preloaded keys");

    for workload in [Workload::E, Workload::F] {
        let report = load::run(&config(addr, workload), &EtcdConnector)
            .await
            .unwrap();
        check(workload.name(), &report);
        if workload == Workload::E {
            let scans = report.ops.iter().find(|r| r.op == "scan").expect("scans");
            assert_eq!(scans.not_found, 0, "scans from existing keys found nothing");
        }
    }

    // Transfers on a small, skewed key space conflict often; every conflict is retried
    // and a transaction that committed moved exactly one unit.
    let before = etcd.total_balance().await;
    let transfers = Config {
        distribution: load::Distribution::Zipfian {
            theta: 0.99,
            scrambled: true,
        },
        retries: 50,
        ..config(addr, Workload::Txn)
    };
    let report = load::run(&transfers, &EtcdConnector).await.unwrap();
    check("txn", &report);
    assert!(
        report.notes.iter().any(|n| n.contains("not sharded")),
        "{:?}",
        report.notes
    );
    assert_eq!(
        etcd.total_balance().await,
        before,
        "transfers changed the total"
    );

    // The binary, end to end.
    let args: Vec<String> = [
        "--target",
        "etcd",
        "--endpoints",
        addr,
        "--workload",
        "put",
        "--clients",
        "2",
        "--ops",
        "100",
        "--quiet",
        "--json",
        "-",
    ]
    .map(String::from)
    .to_vec();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_elastickv-load"))
            .args(args)
            .output()
            .expect("run elastickv-load")
    })
    .await
    .expect("join");
    assert!(
        output.status.success(),
        "elastickv-load failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("the JSON report parses");
    assert_eq!(report["target"], "etcd KV");
    assert_eq!(report["total"]["ops"], 100);
    assert_eq!(report["total"]["errors_total"], 0);
}
