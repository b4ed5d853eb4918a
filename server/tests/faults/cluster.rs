//! A cluster of real `elastickv node` processes on loopback, each behind its proxy (see
//! `net`), that the nemesis can kill, restart, pause and resume.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use elastickv_server::client::Client;

use super::net::{node_ip, Net};

/// One node process.
#[derive(Debug)]
pub struct Node {
    pub id: u64,
    /// Where clients reach it (directly).
    pub listen: String,
    child: Option<Child>,
    paused: bool,
    args: Vec<String>,
    log: PathBuf,
}

impl Node {
    fn spawn(&mut self) {
        let child = crate::process::spawn_elastickv(&self.args, &self.log);
        self.child = Some(child);
        self.paused = false;
    }

    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    pub fn paused(&self) -> bool {
        self.paused
    }

    fn signal(&self, signal: &str) {
        if let Some(child) = &self.child {
            let status = Command::new("kill")
                .args([signal, &child.id().to_string()])
                .status()
                .expect("run kill");
            assert!(status.success(), "kill {signal} node {}", self.id);
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.paused = false;
    }
}

/// The cluster.
#[derive(Debug)]
pub struct Cluster {
    pub nodes: BTreeMap<u64, Node>,
    pub net: Arc<Net>,
    pub groups: u64,
    dir: tempfile::TempDir,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in self.nodes.values_mut() {
            node.kill();
        }
        if std::thread::panicking() || std::env::var_os("EKV_FAULTS_KEEP").is_some() {
            let kept = self.dir.path().to_path_buf();
            eprintln!("node logs and data kept in {}", kept.display());
            // Keep the directory for the post-mortem.
            let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("tempdir"));
            let _ = dir.keep();
        }
    }
}

fn free_port(id: u64) -> u16 {
    std::net::TcpListener::bind((node_ip(id), 0))
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

impl Cluster {
    /// Starts `n` nodes with `groups` groups on `engine`, and waits until each serves.
    pub async fn start(n: u64, groups: u64, engine: &str) -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let net = Net::new();
        let mut listen = BTreeMap::new();
        let mut advertise = BTreeMap::new();
        for id in 1..=n {
            let addr: SocketAddr = format!("{}:{}", node_ip(id), free_port(id))
                .parse()
                .expect("addr");
            advertise.insert(id, net.proxy(id, addr).await);
            listen.insert(id, addr);
        }
        let members = advertise
            .iter()
            .map(|(id, a)| format!("{id}={a}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut nodes = BTreeMap::new();
        for id in 1..=n {
            let args: Vec<String> = [
                "node",
                "--id",
                &id.to_string(),
                "--listen",
                &listen[&id].to_string(),
                "--advertise",
                &advertise[&id].to_string(),
                "--peer-source-ip",
                &node_ip(id).to_string(),
                "--data-dir",
                &dir.path().join(format!("node-{id}")).display().to_string(),
                "--engine",
                engine,
                "--groups",
                &groups.to_string(),
                "--heartbeat-ms",
                "50",
                "--election-timeout-ms",
                "500",
                "--initial-cluster",
                &members,
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            let mut node = Node {
                id,
                listen: listen[&id].to_string(),
                child: None,
                paused: false,
                args,
                log: dir.path().join(format!("node-{id}.log")),
            };
            node.spawn();
            nodes.insert(id, node);
        }
        let cluster = Cluster {
            nodes,
            net,
            groups,
            dir,
        };
        for id in 1..=n {
            cluster.wait_serving(id).await;
        }
        cluster
    }

    pub fn ids(&self) -> Vec<u64> {
        self.nodes.keys().copied().collect()
    }

    pub fn addr(&self, id: u64) -> String {
        self.nodes[&id].listen.clone()
    }

    /// Whether node `id` runs, is not paused and is not cut off.
    pub fn healthy(&self, id: u64) -> bool {
        let n = &self.nodes[&id];
        n.running() && !n.paused()
    }

    /// A client of node `id`, within a bounded time.
    pub async fn client(&self, id: u64) -> Option<Client> {
        tokio::time::timeout(Duration::from_secs(3), Client::connect(&self.addr(id)))
            .await
            .ok()?
            .ok()
    }

    /// Waits until node `id` knows the routes and every range answers a read through it.
    pub async fn wait_serving(&self, id: u64) {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Some(mut c) = self.client(id).await {
                let ok = tokio::time::timeout(Duration::from_secs(5), async {
                    let table = c.routes().await.ok()?;
                    for route in table.routes {
                        let probe = if route.start.is_empty() {
                            vec![1]
                        } else {
                            route.start
                        };
                        c.get(&probe).await.ok()?;
                    }
                    Some(())
                })
                .await;
                if matches!(ok, Ok(Some(()))) {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "node {id} did not start serving");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// kill -9.
    pub fn kill(&mut self, id: u64) {
        self.nodes.get_mut(&id).expect("node").kill();
    }

    /// Restarts a killed node with the same command.
    pub fn restart(&mut self, id: u64) {
        let node = self.nodes.get_mut(&id).expect("node");
        if !node.running() {
            node.spawn();
        }
    }

    /// SIGSTOP.
    pub fn pause(&mut self, id: u64) {
        let node = self.nodes.get_mut(&id).expect("node");
        if node.running() && !node.paused {
            node.signal("-STOP");
            node.paused = true;
        }
    }

    /// SIGCONT.
    pub fn resume(&mut self, id: u64) {
        let node = self.nodes.get_mut(&id).expect("node");
        if node.paused {
            node.signal("-CONT");
            node.paused = false;
        }
    }

    /// Undoes every fault: resumes paused nodes, restarts killed ones, heals the network.
    pub fn heal_all(&mut self) {
        self.net.heal();
        for id in self.ids() {
            self.resume(id);
            self.restart(id);
        }
    }
}
