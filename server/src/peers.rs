//! Connections to other nodes (one lazily connected gRPC channel per address, shared by
//! every group and every kind of call) and the gRPC Raft transport built on them (one
//! Raft stream per peer, [`crate::raft_stream`], over the same connection).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use elastickv_raft::{NodeId, RaftRequest, Transport, TransportError};
use parking_lot::RwLock;
use tonic::transport::Endpoint;

use crate::pb::cluster::internal_client::InternalClient;
use crate::raft_stream::{streamable, to_message, RaftStream, Sent};
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

/// The Raft transport over gRPC: every Raft RPC of every group goes to its target node
/// on the node's Raft stream ([`crate::raft_stream`]), or as one unary `Internal.Raft`
/// call (snapshot chunks, large requests, peers without streams, or streams turned off).
/// Either way the call carries the group id, its kind and the encoded body.
#[derive(Debug)]
pub struct GrpcTransport {
    peers: Arc<Peers>,
    /// The stream to each peer address; `None`: every call is unary.
    streams: Option<parking_lot::Mutex<HashMap<String, Arc<RaftStream>>>>,
}

impl GrpcTransport {
    /// A transport over these connections, with a Raft stream to each peer.
    pub fn new(peers: Arc<Peers>) -> Self {
        GrpcTransport {
            peers,
            streams: Some(parking_lot::Mutex::default()),
        }
    }

    /// A transport that sends every Raft RPC as a unary call.
    pub fn unary(peers: Arc<Peers>) -> Self {
        GrpcTransport {
            peers,
            streams: None,
        }
    }

    /// The usable stream to `addr`, opened when there is none.
    fn stream(&self, target: NodeId, addr: &str) -> Result<Option<Arc<RaftStream>>, String> {
        let Some(streams) = &self.streams else {
            return Ok(None);
        };
        let mut streams = streams.lock();
        if let Some(stream) = streams.get(addr).filter(|s| !s.is_spent()) {
            return Ok(Some(Arc::clone(stream)));
        }
        let channel = self.peers.channel(addr)?.into_inner();
        let stream = Arc::new(RaftStream::open(target, channel));
        streams.insert(addr.to_string(), Arc::clone(&stream));
        Ok(Some(stream))
    }

    async fn unary_call(
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
        match client.raft(to_message(request)).await {
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

#[async_trait]
impl Transport for GrpcTransport {
    async fn send(
        &self,
        target: NodeId,
        addr: &str,
        request: RaftRequest,
    ) -> Result<Vec<u8>, TransportError> {
        if !streamable(&request) {
            return self.unary_call(target, addr, request).await;
        }
        let stream = self
            .stream(target, addr)
            .map_err(|reason| TransportError::Unreachable {
                node: target,
                reason,
            })?;
        let Some(stream) = stream else {
            return self.unary_call(target, addr, request).await;
        };
        match stream.call(request).await {
            Sent::Answered(answer) => answer,
            Sent::Unsupported(request) => self.unary_call(target, addr, request).await,
        }
    }
}
