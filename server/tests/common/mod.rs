//! Real `elastickv node` processes on loopback ports, for the integration tests.
#![allow(dead_code)]

#[path = "../support/process.rs"]
mod process;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

use elastickv_server::client::Client;

/// The longest any single test may run.
pub const TEST_LIMIT: Duration = Duration::from_secs(150);

/// Runs a test body with the global limit.
pub async fn bounded<F: Future<Output = ()>>(body: F) {
    tokio::time::timeout(TEST_LIMIT, body)
        .await
        .expect("the test exceeded its time limit");
}

/// A free loopback port (bound then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// One node process.
#[derive(Debug)]
pub struct Proc {
    pub id: u64,
    pub addr: String,
    child: Option<Child>,
    args: Vec<String>,
    log: PathBuf,
}

impl Proc {
    fn spawn(&mut self) {
        let child = process::spawn_elastickv(&self.args, &self.log);
        self.child = Some(child);
    }

    pub fn alive(&self) -> bool {
        self.child.is_some()
    }

    /// kill -9.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A cluster of node processes in a temporary directory.
#[derive(Debug)]
pub struct TestCluster {
    pub nodes: BTreeMap<u64, Proc>,
    pub dir: tempfile::TempDir,
    pub engine: String,
    members: String,
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for node in self.nodes.values_mut() {
            node.kill();
        }
        if std::thread::panicking() {
            for node in self.nodes.values() {
                if let Ok(log) = std::fs::read_to_string(&node.log) {
                    let tail: Vec<&str> = log.lines().rev().take(30).collect();
                    eprintln!("--- node {} log (last lines) ---", node.id);
                    for line in tail.into_iter().rev() {
                        eprintln!("{line}");
                    }
                }
            }
        }
    }
}

fn node_args(id: u64, addr: &str, dir: &std::path::Path, engine: &str) -> Vec<String> {
    vec![
        "node".into(),
        "--id".into(),
        id.to_string(),
        "--listen".into(),
        addr.into(),
        "--data-dir".into(),
        dir.join(format!("node-{id}")).display().to_string(),
        "--engine".into(),
        engine.into(),
        "--groups".into(),
        "3".into(),
        "--heartbeat-ms".into(),
        "50".into(),
        "--election-timeout-ms".into(),
        "400".into(),
    ]
}

impl TestCluster {
    /// Starts `n` nodes forming a cluster and waits until every group serves.
    pub async fn start(n: u64, engine: &str) -> TestCluster {
        Self::start_with(n, engine, |_| Vec::new()).await
    }

    /// Like [`TestCluster::start`], node `id` with the flags `extra(id)` added.
    pub async fn start_with(
        n: u64,
        engine: &str,
        extra: impl Fn(u64) -> Vec<String>,
    ) -> TestCluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let addrs: BTreeMap<u64, String> = (1..=n)
            .map(|id| (id, format!("127.0.0.1:{}", free_port())))
            .collect();
        let members = addrs
            .iter()
            .map(|(id, a)| format!("{id}={a}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut nodes = BTreeMap::new();
        for (id, addr) in &addrs {
            let mut args = node_args(*id, addr, dir.path(), engine);
            args.extend(["--initial-cluster".into(), members.clone()]);
            args.extend(extra(*id));
            let mut proc = Proc {
                id: *id,
                addr: addr.clone(),
                child: None,
                args,
                log: dir.path().join(format!("node-{id}.log")),
            };
            proc.spawn();
            nodes.insert(*id, proc);
        }
        let cluster = TestCluster {
            nodes,
            dir,
            engine: engine.to_string(),
            members,
        };
        for id in cluster.nodes.keys() {
            cluster.wait_serving(*id).await;
        }
        cluster
    }

    /// Starts node `id` as a new member joining through node `via`.
    pub async fn join(&mut self, id: u64, via: u64) {
        let addr = format!("127.0.0.1:{}", free_port());
        let mut args = node_args(id, &addr, self.dir.path(), &self.engine);
        args.extend(["--join".into(), self.nodes[&via].addr.clone()]);
        let mut proc = Proc {
            id,
            addr,
            child: None,
            args,
            log: self.dir.path().join(format!("node-{id}.log")),
        };
        proc.spawn();
        self.nodes.insert(id, proc);
    }

    pub fn addr(&self, id: u64) -> String {
        self.nodes[&id].addr.clone()
    }

    pub async fn client(&self, id: u64) -> Client {
        let addr = self.addr(id);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match Client::connect(&addr).await {
                Ok(c) => return c,
                Err(e) if Instant::now() > deadline => panic!("cannot connect to node {id}: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// Waits until node `id` knows the routes and every range answers a read through it.
    pub async fn wait_serving(&self, id: u64) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut client = self.client(id).await;
        loop {
            let mut ok = false;
            if let Ok(table) = client.routes().await {
                ok = true;
                for route in table.routes {
                    let probe = if route.start.is_empty() {
                        vec![1]
                    } else {
                        route.start
                    };
                    ok &= client.raw_get(&probe).await.is_ok();
                }
            }
            if ok {
                return;
            }
            assert!(Instant::now() < deadline, "node {id} did not start serving");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The leader of `group` as seen by a live node, waiting for one to be elected
    /// among the live nodes.
    pub async fn leader_of(&self, group: u64) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            for (id, node) in &self.nodes {
                if !node.alive() {
                    continue;
                }
                let Ok(mut c) = Client::connect(&node.addr).await else {
                    continue;
                };
                let Ok(status) = c.status().await else {
                    continue;
                };
                let _ = id;
                if let Some(g) = status.groups.iter().find(|g| g.group_id == group) {
                    let leader = g.leader_id;
                    if leader != 0 && self.nodes.get(&leader).is_some_and(|n| n.alive()) {
                        return leader;
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "group {group} elects no live leader"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn kill(&mut self, id: u64) {
        self.nodes.get_mut(&id).expect("node").kill();
    }

    pub fn restart(&mut self, id: u64) {
        let node = self.nodes.get_mut(&id).expect("node");
        assert!(!node.alive(), "node {id} is running");
        node.spawn();
    }

    /// Some live node other than `not`.
    pub fn live_other_than(&self, not: u64) -> u64 {
        *self
            .nodes
            .iter()
            .find(|(id, n)| **id != not && n.alive())
            .expect("a live node")
            .0
    }
}

/// Retries `op` while it fails with a retryable status (Unavailable, Unknown,
/// Aborted by a lock), up to 30 s; the final result is returned.
pub async fn retrying<T, F, Fut>(mut op: F) -> Result<T, tonic::Status>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, elastickv_server::client::Error>>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) => {
                let status = match e.downcast::<tonic::Status>() {
                    Ok(s) => *s,
                    Err(other) => tonic::Status::unavailable(other.to_string()),
                };
                let retry = matches!(
                    status.code(),
                    tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Aborted
                );
                if !retry || Instant::now() > deadline {
                    return Err(status);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// The gRPC status code of a failed client call.
pub fn code_of(e: &elastickv_server::client::Error) -> tonic::Code {
    e.downcast_ref::<tonic::Status>()
        .map(|s| s.code())
        .unwrap_or(tonic::Code::Unknown)
}
