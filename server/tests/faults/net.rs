//! Network partitions without root: every node's peers reach it through a TCP proxy run
//! by the test (the address the node advertises), and every node connects to its peers
//! from its own loopback IP (`--peer-source-ip 127.0.0.<10 + id>`), so a proxy knows who
//! is calling. Cutting a link refuses new connections between the two nodes and drops the
//! open ones, in both directions. Clients talk to the nodes directly.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

/// The loopback IP of node `id`.
pub fn node_ip(id: u64) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, 10 + u8::try_from(id).expect("a small node id"))
}

fn node_of(ip: IpAddr) -> Option<u64> {
    match ip {
        IpAddr::V4(v4) if v4.octets()[..3] == [127, 0, 0] && v4.octets()[3] > 10 => {
            Some(u64::from(v4.octets()[3] - 10))
        }
        _ => None,
    }
}

/// The links cut and the open proxied connections.
#[derive(Debug, Default)]
pub struct Net {
    cut: Mutex<BTreeSet<(u64, u64)>>,
    /// (caller, callee) -> the tasks copying their connections.
    open: Mutex<HashMap<(u64, u64), Vec<AbortHandle>>>,
}

fn link(a: u64, b: u64) -> (u64, u64) {
    (a.min(b), a.max(b))
}

impl Net {
    pub fn new() -> Arc<Net> {
        Arc::new(Net::default())
    }

    fn is_cut(&self, a: u64, b: u64) -> bool {
        self.cut.lock().contains(&link(a, b))
    }

    /// Cuts every link between a node of `side` and a node outside it (of `all`).
    pub fn isolate(&self, side: &[u64], all: &[u64]) {
        let mut cut = self.cut.lock();
        for a in side {
            for b in all.iter().filter(|b| !side.contains(b)) {
                cut.insert(link(*a, *b));
            }
        }
        drop(cut);
        let mut open = self.open.lock();
        open.retain(|(from, to), tasks| {
            if self.is_cut(*from, *to) {
                for t in tasks.drain(..) {
                    t.abort();
                }
                false
            } else {
                true
            }
        });
    }

    /// Restores every link.
    pub fn heal(&self) {
        self.cut.lock().clear();
    }

    /// Starts the proxy of node `id`: listens on its loopback IP (the returned address
    /// is what the node advertises) and forwards to `target`.
    pub async fn proxy(self: &Arc<Self>, id: u64, target: SocketAddr) -> SocketAddr {
        let listener = TcpListener::bind((node_ip(id), 0))
            .await
            .expect("bind a proxy");
        let addr = listener.local_addr().expect("proxy address");
        let net = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                let Ok((inbound, peer)) = listener.accept().await else {
                    continue;
                };
                let caller = node_of(peer.ip()).unwrap_or(0);
                if caller != 0 && net.is_cut(caller, id) {
                    drop(inbound);
                    continue;
                }
                let task = tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    let mut inbound = inbound;
                    let _ = inbound.set_nodelay(true);
                    let _ = outbound.set_nodelay(true);
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                });
                let mut open = net.open.lock();
                let tasks = open.entry((caller, id)).or_default();
                tasks.retain(|t| !t.is_finished());
                tasks.push(task.abort_handle());
                // A cut made while this connection was being set up.
                if caller != 0 && net.is_cut(caller, id) {
                    task.abort();
                }
            }
        });
        addr
    }
}
