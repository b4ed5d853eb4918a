//! An in-process transport with fault injection, for tests and single-process
//! clusters: messages are handed directly to the target node's [`RaftService`].
//!
//! Faults: isolate a node (no message to or from it), partition the nodes into sides
//! (no message crosses), drop a fraction of messages at random, and delay every
//! message. A fault applied while a request is in flight also loses its reply.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::{Mutex, RwLock};

use crate::transport::{RaftRequest, RaftService, Transport, TransportError};
use crate::NodeId;

#[derive(Debug, Default)]
struct Faults {
    isolated: HashSet<NodeId>,
    blocked: HashSet<(NodeId, NodeId)>,
    drop_rate: f64,
    delay: Duration,
}

impl Faults {
    fn cut(&self, from: NodeId, to: NodeId) -> bool {
        self.isolated.contains(&from)
            || self.isolated.contains(&to)
            || self.blocked.contains(&(from, to))
    }
}

/// The registry of in-process nodes and the faults in force between them.
#[derive(Default)]
pub struct InProcessNetwork {
    nodes: RwLock<HashMap<NodeId, Weak<dyn RaftService>>>,
    faults: Mutex<Faults>,
    delivered: AtomicU64,
    lost: AtomicU64,
}

impl std::fmt::Debug for InProcessNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcessNetwork")
            .field("nodes", &self.nodes.read().keys().collect::<Vec<_>>())
            .field("faults", &*self.faults.lock())
            .finish()
    }
}

impl InProcessNetwork {
    /// An empty network without faults.
    pub fn new() -> Arc<Self> {
        Arc::new(InProcessNetwork::default())
    }

    /// Makes `node` reachable, answered by `service` (held weakly: dropping the service
    /// makes the node unreachable).
    pub fn register<S: RaftService>(&self, node: NodeId, service: &Arc<S>) {
        let service: Arc<dyn RaftService> = Arc::clone(service) as Arc<dyn RaftService>;
        self.nodes.write().insert(node, Arc::downgrade(&service));
    }

    /// Makes `node` unreachable (as if its process stopped).
    pub fn unregister(&self, node: NodeId) {
        self.nodes.write().remove(&node);
    }

    /// The transport used by node `from`.
    pub fn transport(self: &Arc<Self>, from: NodeId) -> Arc<dyn Transport> {
        Arc::new(InProcessTransport {
            from,
            network: Arc::clone(self),
        })
    }

    /// Cuts every message to and from `node`.
    pub fn isolate(&self, node: NodeId) {
        self.faults.lock().isolated.insert(node);
    }

    /// Undoes [`InProcessNetwork::isolate`] for `node`.
    pub fn reconnect(&self, node: NodeId) {
        self.faults.lock().isolated.remove(&node);
    }

    /// Cuts every message between a node of `side_a` and a node of `side_b`.
    pub fn partition(&self, side_a: &[NodeId], side_b: &[NodeId]) {
        let mut faults = self.faults.lock();
        for &a in side_a {
            for &b in side_b {
                faults.blocked.insert((a, b));
                faults.blocked.insert((b, a));
            }
        }
    }

    /// Loses each message with probability `rate` (0.0 to 1.0).
    pub fn set_drop_rate(&self, rate: f64) {
        self.faults.lock().drop_rate = rate.clamp(0.0, 1.0);
    }

    /// Delays every message by `delay`.
    pub fn set_delay(&self, delay: Duration) {
        self.faults.lock().delay = delay;
    }

    /// Removes every fault.
    pub fn heal(&self) {
        *self.faults.lock() = Faults::default();
    }

    /// Messages delivered and messages lost so far.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.delivered.load(Ordering::Relaxed),
            self.lost.load(Ordering::Relaxed),
        )
    }

    fn lose(&self, node: NodeId, reason: &str) -> TransportError {
        self.lost.fetch_add(1, Ordering::Relaxed);
        TransportError::Unreachable {
            node,
            reason: reason.to_string(),
        }
    }
}

/// The transport of one node over an [`InProcessNetwork`].
#[derive(Debug)]
pub struct InProcessTransport {
    from: NodeId,
    network: Arc<InProcessNetwork>,
}

#[async_trait]
impl Transport for InProcessTransport {
    async fn send(
        &self,
        target: NodeId,
        _addr: &str,
        request: RaftRequest,
    ) -> Result<Vec<u8>, TransportError> {
        let net = &self.network;
        let (delay, drop) = {
            let faults = net.faults.lock();
            if faults.cut(self.from, target) {
                return Err(net.lose(target, "link cut by fault injection"));
            }
            let drop = faults.drop_rate > 0.0 && rand::random::<f64>() < faults.drop_rate;
            (faults.delay, drop)
        };
        if drop {
            net.lost.fetch_add(1, Ordering::Relaxed);
            return Err(TransportError::Network(
                "message dropped by fault injection".into(),
            ));
        }
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let service = net.nodes.read().get(&target).and_then(Weak::upgrade);
        let Some(service) = service else {
            return Err(net.lose(target, "node is not running"));
        };
        let reply = service.handle(request).await;
        if net.faults.lock().cut(self.from, target) {
            return Err(net.lose(target, "reply lost: link cut by fault injection"));
        }
        net.delivered.fetch_add(1, Ordering::Relaxed);
        Ok(reply)
    }
}
