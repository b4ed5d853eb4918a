//! openraft's network over a [`Transport`]: encoding of the Raft RPCs, timeouts, and
//! the chunked snapshot sender.
//!
//! Snapshots are sent from their file in chunks of [`SnapshotTransfer::chunk_size`]
//! bytes, so memory use does not depend on the snapshot's size. Each chunk has its own
//! timeout ([`SnapshotTransfer::chunk_timeout`]); the last chunk's timeout
//! ([`SnapshotTransfer::install_timeout`]) also covers the receiver's restore, which for
//! a large snapshot takes far longer than a chunk (openraft's single 200 ms default is
//! used for neither).

use std::future::Future;
use std::io::SeekFrom;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{NetworkError, RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use openraft::{BasicNode, RaftNetworkFactory, RaftNetworkV2};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::snapshot_file::SnapshotFile;
use crate::transport::{RaftRequest, RpcKind, Transport, TransportError};
use crate::types::Snapshot;
use crate::{GroupId, NodeId, SnapshotMeta, TypeConfig, Vote};

/// How snapshots are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotTransfer {
    /// Bytes per chunk (the memory one transfer holds at a time).
    pub chunk_size: usize,
    /// Timeout of one chunk that is not the last.
    pub chunk_timeout: Duration,
    /// Timeout of the last chunk, which includes installing the snapshot on the
    /// receiver (restoring the whole engine).
    pub install_timeout: Duration,
    /// Consecutive failed attempts of one chunk before the transfer is abandoned (openraft
    /// starts a new one later).
    pub chunk_retries: u32,
}

impl Default for SnapshotTransfer {
    fn default() -> Self {
        SnapshotTransfer {
            chunk_size: 1024 * 1024,
            chunk_timeout: Duration::from_secs(10),
            install_timeout: Duration::from_secs(600),
            chunk_retries: 5,
        }
    }
}

/// One chunk of a snapshot transfer (the receiver reassembles them in a file and
/// installs the snapshot when the chunk with `done` arrives).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SnapshotChunk {
    /// The sender's vote.
    pub(crate) vote: Vote,
    /// The snapshot's metadata.
    pub(crate) meta: SnapshotMeta,
    /// Where in the snapshot this chunk's bytes start.
    pub(crate) offset: u64,
    /// The bytes.
    pub(crate) data: Vec<u8>,
    /// Whether this is the last chunk.
    pub(crate) done: bool,
    /// The transfer this chunk belongs to (chosen by the sender for each transfer).
    pub(crate) transfer: u64,
}

/// The receiver's answer to a chunk: its vote (higher than the sender's when the
/// sender is no longer leader).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct SnapshotChunkReply {
    /// The receiver's vote.
    pub(crate) vote: Vote,
}

/// A failure reported by the receiving node, encoded in its reply.
#[derive(Debug, Clone, Serialize, Deserialize, thiserror::Error)]
pub(crate) enum RemoteFailure {
    /// The target does not host the group (or it is shutting down).
    #[error("group {0} is not running on the target node")]
    NoSuchGroup(GroupId),
    /// The request could not be decoded.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The target's Raft instance failed to handle the request.
    #[error("raft error on the target: {0}")]
    Raft(String),
    /// A snapshot chunk did not continue the transfer the target is receiving.
    #[error("snapshot chunk does not continue the transfer in progress")]
    SnapshotMismatch,
}

/// Encodes a request body or reply.
pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing plain in-memory structs into a Vec cannot fail.
    bincode::serialize(value).unwrap_or_default()
}

/// Decodes a request body.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, RemoteFailure> {
    bincode::deserialize(bytes).map_err(|e| RemoteFailure::BadRequest(e.to_string()))
}

/// Why a call got no usable reply.
#[derive(Debug)]
enum CallError {
    Unreachable(String),
    Network(String),
    Remote(RemoteFailure),
}

impl CallError {
    fn io(message: &str) -> std::io::Error {
        std::io::Error::other(message.to_string())
    }

    fn into_rpc(self) -> RPCError<TypeConfig> {
        match self {
            CallError::Unreachable(m) => RPCError::Unreachable(Unreachable::new(&Self::io(&m))),
            CallError::Network(m) => RPCError::Network(NetworkError::new(&Self::io(&m))),
            CallError::Remote(RemoteFailure::BadRequest(m)) => {
                RPCError::Network(NetworkError::new(&Self::io(&m)))
            }
            CallError::Remote(other) => {
                RPCError::Unreachable(Unreachable::new(&Self::io(&other.to_string())))
            }
        }
    }

    fn into_streaming(self) -> StreamingError<TypeConfig> {
        match self {
            CallError::Network(m) => StreamingError::Network(NetworkError::new(&Self::io(&m))),
            other => {
                StreamingError::Unreachable(Unreachable::new(&Self::io(&format!("{other:?}"))))
            }
        }
    }
}

/// Creates one [`Network`] per target for a group.
#[derive(Clone)]
pub(crate) struct NetworkFactory {
    pub(crate) node: NodeId,
    pub(crate) group: GroupId,
    pub(crate) transport: Arc<dyn Transport>,
    pub(crate) snapshots: SnapshotTransfer,
    pub(crate) rpc_timeout: Duration,
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = Network;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Network {
        Network {
            factory: self.clone(),
            target,
            addr: node.addr.clone(),
        }
    }
}

/// openraft's connection to one target node for one group.
pub(crate) struct Network {
    factory: NetworkFactory,
    target: NodeId,
    addr: String,
}

impl Network {
    async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        kind: RpcKind,
        request: &Req,
        ttl: Duration,
    ) -> Result<Resp, CallError> {
        let request = RaftRequest {
            from: self.factory.node,
            group: self.factory.group,
            kind,
            body: encode(request),
        };
        let send = self
            .factory
            .transport
            .send(self.target, &self.addr, request);
        let reply = match tokio::time::timeout(ttl, send).await {
            Err(_) => {
                return Err(CallError::Network(format!(
                    "{kind:?} timed out after {ttl:?}"
                )))
            }
            Ok(Err(TransportError::Unreachable { reason, .. })) => {
                return Err(CallError::Unreachable(reason))
            }
            Ok(Err(TransportError::Network(m))) => return Err(CallError::Network(m)),
            Ok(Ok(reply)) => reply,
        };
        match bincode::deserialize::<Result<Resp, RemoteFailure>>(&reply) {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(failure)) => Err(CallError::Remote(failure)),
            Err(e) => Err(CallError::Network(format!(
                "undecodable {kind:?} reply: {e}"
            ))),
        }
    }
}

impl RaftNetworkV2<TypeConfig> for Network {
    type SnapshotData = SnapshotFile;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        let ttl = option.hard_ttl().max(self.factory.rpc_timeout);
        self.call(RpcKind::AppendEntries, &rpc, ttl)
            .await
            .map_err(CallError::into_rpc)
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        let ttl = option.hard_ttl().max(self.factory.rpc_timeout);
        self.call(RpcKind::Vote, &rpc, ttl)
            .await
            .map_err(CallError::into_rpc)
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        let ttl = option.hard_ttl().max(self.factory.rpc_timeout);
        self.call(RpcKind::TransferLeader, &req, ttl)
            .await
            .map_err(CallError::into_rpc)
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        mut snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let settings = self.factory.snapshots;
        let signature = snapshot.meta.signature();
        let io_failed = |e: std::io::Error| {
            StreamingError::StorageError(openraft::StorageError::from_io_error(
                openraft::ErrorSubject::Snapshot(Some(signature.clone())),
                openraft::ErrorVerb::Read,
                e,
            ))
        };
        let mut cancel = std::pin::pin!(cancel);
        let data = &mut snapshot.snapshot;
        let total = data.seek(SeekFrom::End(0)).await.map_err(io_failed)?;
        let mut offset = 0u64;
        let mut failures = 0u32;
        let mut buf = vec![0u8; settings.chunk_size.max(1)];
        let mut transfer: u64 = rand::random();
        loop {
            data.seek(SeekFrom::Start(offset))
                .await
                .map_err(io_failed)?;
            let mut filled = 0;
            while filled < buf.len() {
                let n = data.read(&mut buf[filled..]).await.map_err(io_failed)?;
                if n == 0 {
                    break;
                }
                filled += n;
            }
            let done = offset + filled as u64 >= total;
            let request = SnapshotChunk {
                vote,
                meta: snapshot.meta.clone(),
                offset,
                data: buf[..filled].to_vec(),
                done,
                transfer,
            };
            let ttl = if done {
                settings.install_timeout
            } else {
                settings.chunk_timeout
            };
            let reply = tokio::select! {
                closed = &mut cancel => return Err(StreamingError::Closed(closed)),
                reply = self.call::<_, SnapshotChunkReply>(RpcKind::InstallSnapshot, &request, ttl) => reply,
            };
            match reply {
                Ok(resp) => {
                    failures = 0;
                    if resp.vote > vote || done {
                        return Ok(SnapshotResponse::new(resp.vote));
                    }
                    offset += filled as u64;
                }
                Err(CallError::Remote(RemoteFailure::SnapshotMismatch)) => {
                    tracing::info!(
                        target = self.target,
                        "snapshot transfer restarts from the beginning"
                    );
                    offset = 0;
                    transfer = rand::random();
                    failures += 1;
                }
                Err(e) => {
                    failures += 1;
                    tracing::warn!(target = self.target, offset, error = ?e, "snapshot chunk failed");
                    if failures >= settings.chunk_retries {
                        return Err(e.into_streaming());
                    }
                    // A short, growing pause before retrying the same chunk.
                    tokio::time::sleep(Duration::from_millis(20 * u64::from(failures))).await;
                }
            }
            if failures >= settings.chunk_retries {
                return Err(
                    CallError::Network("snapshot transfer keeps restarting".into())
                        .into_streaming(),
                );
            }
        }
    }
}
