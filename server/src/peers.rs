//! Connections to other nodes (one lazily connected gRPC channel per address, shared by
//! every group and every kind of call) and the gRPC Raft transport built on them.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use async_trait::async_trait;
use elastickv_raft::{NodeId, RaftRequest, Transport, TransportError};
use parking_lot::RwLock;
use tonic::transport::Endpoint;

use crate::pb::cluster::internal_client::InternalClient;
use crate::pb::cluster::RaftMessage;
use crate::whole_body::{whole_body, WholeBodyChannel};

/// The largest message exchanged between nodes (snapshot chunks, big values).
pub const MAX_INTERNAL_MESSAGE: usize = 128 * 1024 * 1024;

/// Cached channels to other nodes, by address.
#[derive(Debug, Default)]
pub struct Peers {
    channels: RwLock<HashMap<String, WholeBodyChannel>>,
    source_ip: Option<IpAddr>,
}

impl Peers {
    /// No connections yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// No connections yet; those made later leave from `source_ip` (`None`: the OS
    /// chooses).
    pub fn from_ip(source_ip: Option<IpAddr>) -> Self {
        Peers {
            channels: RwLock::default(),
            source_ip,
        }
    }

    /// A client of the `Internal` service at `addr` (`host:port`).
    pub fn internal(&self, addr: &str) -> Result<InternalClient<WholeBodyChannel>, String> {
        self.channel(addr).map(client)
    }

    /// The channel to `addr` (`host:port`), for any of the node's services (each
    /// request written at once: see [`crate::whole_body`]).
    pub fn channel(&self, addr: &str) -> Result<WholeBodyChannel, String> {
        if let Some(channel) = self.channels.read().get(addr) {
            return Ok(channel.clone());
        }
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| format!("bad node address {addr:?}: {e}"))?
            .connect_timeout(Duration::from_secs(2))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5))
            .local_address(self.source_ip);
        let channel = whole_body(endpoint.connect_lazy());
        Ok(self
            .channels
            .write()
            .entry(addr.to_string())
            .or_insert(channel)
            .clone())
    }
}

fn client(channel: WholeBodyChannel) -> InternalClient<WholeBodyChannel> {
    InternalClient::new(channel)
        .max_decoding_message_size(MAX_INTERNAL_MESSAGE)
        .max_encoding_message_size(MAX_INTERNAL_MESSAGE)
}

/// The Raft transport over gRPC: every Raft RPC of every group is one unary
/// `Internal.Raft` call carrying the group id, its kind and the encoded body.
#[derive(Debug)]
pub struct GrpcTransport {
    peers: std::sync::Arc<Peers>,
}

impl GrpcTransport {
    /// A transport over these connections.
    pub fn new(peers: std::sync::Arc<Peers>) -> Self {
        GrpcTransport { peers }
    }
}

#[async_trait]
impl Transport for GrpcTransport {
    async fn send(
        &self,
        target: NodeId,
        addr: &str,
        request: RaftRequest,
    ) -> Result<Vec<u8>, TransportError> {
        let mut client =
            self.peers
                .internal(addr)
                .map_err(|reason| TransportError::Unreachable {
                    node: target,
                    reason,
                })?;
        let message = RaftMessage {
            from: request.from,
            group_id: request.group,
            kind: request.kind.code(),
            body: request.body,
        };
        match client.raft(message).await {
            Ok(reply) => Ok(reply.into_inner().body),
            Err(status) if status.code() == tonic::Code::Unavailable => {
                Err(TransportError::Unreachable {
                    node: target,
                    reason: status.message().to_string(),
                })
            }
            Err(status) => Err(TransportError::Network(format!(
                "{}: {}",
                status.code(),
                status.message()
            ))),
        }
    }
}
