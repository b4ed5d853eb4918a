//! elastickv's own services: `Distribution` (routes, timestamps), `Admin` (status,
//! membership, leadership) and `Internal` (node to node).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use elastickv_engine_api::MvccEngine;
use elastickv_raft::{RaftError, Role};
use elastickv_txn::GroupId;
use tonic::{Request, Response, Status};

use crate::cluster::{Cluster, Op};
use crate::pb::cluster::{
    self as pb, admin_server::Admin, distribution_server::Distribution, internal_server::Internal,
};
use crate::routes::Route;
use crate::status;

fn route_pb(route: &Route) -> pb::Route {
    pb::Route {
        start: route.start.clone(),
        end: route.end.clone().unwrap_or_default(),
        group_id: route.group,
    }
}

/// The cluster services of one node.
pub struct ClusterApi<E: MvccEngine> {
    cluster: Arc<Cluster<E>>,
    /// Turns true when the node stops: peers' Raft streams end then.
    stopping: tokio::sync::watch::Receiver<bool>,
}

impl<E: MvccEngine> std::fmt::Debug for ClusterApi<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterApi").finish_non_exhaustive()
    }
}

impl<E: MvccEngine> Clone for ClusterApi<E> {
    fn clone(&self) -> Self {
        ClusterApi {
            cluster: Arc::clone(&self.cluster),
            stopping: self.stopping.clone(),
        }
    }
}

impl<E: MvccEngine> ClusterApi<E> {
    /// The services over `cluster`; `stopping` turns true when the node stops.
    pub fn new(cluster: Arc<Cluster<E>>, stopping: tokio::sync::watch::Receiver<bool>) -> Self {
        ClusterApi { cluster, stopping }
    }

    fn group(
        &self,
        id: GroupId,
    ) -> Result<Arc<elastickv_raft::Group<E, elastickv_raft::TxnApplier<E>>>, Status> {
        self.cluster
            .node()
            .group(id)
            .ok_or_else(|| Status::not_found(format!("group {id} is not hosted on this node")))
    }

    /// Runs a membership change on `group`'s leader: here, or at the leader's
    /// `Admin` service.
    async fn on_leader(&self, group: GroupId, change: Change) -> Result<(), Status> {
        let g = self.group(group)?;
        let status = g.status();
        if status.role == Role::Leader {
            let result = match &change {
                Change::Add { node, addr } => {
                    if status.voters.contains(node) {
                        Ok(())
                    } else {
                        match g.add_learner(*node, addr).await {
                            Ok(()) => g.promote(*node).await,
                            Err(e) => Err(e),
                        }
                    }
                }
                Change::Remove { node } => {
                    let mut voters: BTreeSet<u64> = status.voters.clone();
                    if !voters.remove(node) {
                        return Ok(());
                    }
                    if voters.is_empty() {
                        return Err(Status::failed_precondition(
                            "cannot remove the last voter of a group",
                        ));
                    }
                    g.change_voters(voters).await
                }
            };
            return result.map_err(|e| Status::unavailable(format!("group {group}: {e}")));
        }
        let leader = status
            .leader
            .and_then(|l| status.addresses.get(&l).cloned())
            .ok_or_else(|| Status::unavailable(format!("group {group} has no leader; retry")))?;
        let mut client =
            crate::pb::cluster::admin_client::AdminClient::connect(format!("http://{leader}"))
                .await
                .map_err(|e| {
                    Status::unavailable(format!("cannot reach the leader at {leader}: {e}"))
                })?;
        match change {
            Change::Add { node, addr } => {
                client
                    .add_node(pb::AddNodeRequest {
                        node_id: node,
                        addr,
                    })
                    .await?;
            }
            Change::Remove { node } => {
                client
                    .remove_node(pb::RemoveNodeRequest { node_id: node })
                    .await?;
            }
        }
        Ok(())
    }
}

enum Change {
    Add { node: u64, addr: String },
    Remove { node: u64 },
}

#[tonic::async_trait]
impl<E: MvccEngine> Distribution for ClusterApi<E> {
    async fn get_route(
        &self,
        request: Request<pb::GetRouteRequest>,
    ) -> Result<Response<pb::GetRouteResponse>, Status> {
        let key = request.into_inner().key;
        let routes = self.cluster.routes().map_err(|e| status::shard(&e))?;
        let route = routes.route_of(&key);
        let status = self.group(route.group)?.status();
        let leader_id = status.leader.unwrap_or(0);
        Ok(Response::new(pb::GetRouteResponse {
            route: Some(route_pb(&route)),
            version: routes.version,
            leader_id,
            leader_addr: status
                .addresses
                .get(&leader_id)
                .cloned()
                .unwrap_or_default(),
        }))
    }

    async fn list_routes(
        &self,
        _request: Request<pb::ListRoutesRequest>,
    ) -> Result<Response<pb::ListRoutesResponse>, Status> {
        let routes = self.cluster.routes().map_err(|e| status::shard(&e))?;
        Ok(Response::new(pb::ListRoutesResponse {
            routes: routes.list().iter().map(route_pb).collect(),
            version: routes.version,
        }))
    }

    async fn split_range(
        &self,
        request: Request<pb::SplitRangeRequest>,
    ) -> Result<Response<pb::SplitRangeResponse>, Status> {
        let r = request.into_inner();
        let routes = self.cluster.routes().map_err(|e| status::shard(&e))?;
        if r.group_id != 0 && r.group_id != routes.route_of(&r.split_key).group {
            return Err(Status::failed_precondition(
                "moving a range to another group is not supported yet: split keeps both halves in their group (group_id 0)",
            ));
        }
        if r.split_key.is_empty() {
            return Err(Status::invalid_argument("split_key must not be empty"));
        }
        let routes = self
            .cluster
            .split_range(&r.split_key)
            .await
            .map_err(Status::failed_precondition)?;
        Ok(Response::new(pb::SplitRangeResponse {
            routes: routes.list().iter().map(route_pb).collect(),
            version: routes.version,
        }))
    }

    async fn get_timestamp(
        &self,
        request: Request<pb::GetTimestampRequest>,
    ) -> Result<Response<pb::GetTimestampResponse>, Status> {
        let count = request.into_inner().count.clamp(1, 1_000_000);
        let timestamp = self
            .cluster
            .timestamps(count)
            .await
            .map_err(|e| status::tso(&e))?;
        Ok(Response::new(pb::GetTimestampResponse { timestamp }))
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Leader => "leader",
        Role::Follower => "follower",
        Role::Candidate => "candidate",
        Role::Learner => "learner",
        _ => "shutdown",
    }
}

#[tonic::async_trait]
impl<E: MvccEngine> Admin for ClusterApi<E> {
    async fn status(
        &self,
        _request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let config = self.cluster.config();
        let groups = self
            .cluster
            .group_statuses()
            .into_iter()
            .map(|s| pb::GroupStatus {
                group_id: s.group,
                role: role_name(s.role).into(),
                leader_id: s.leader.unwrap_or(0),
                term: s.term,
                last_log_index: s.last_log_index,
                committed_index: s.committed_index,
                applied_index: s.applied_index,
                snapshot_index: s.snapshot_index,
                voters: s.voters.into_iter().collect(),
                learners: s.learners.into_iter().collect(),
            })
            .collect();
        Ok(Response::new(pb::StatusResponse {
            node_id: config.node_id,
            addr: config.advertise.clone(),
            engine: config.engine_name.clone(),
            groups,
            nodes: self
                .cluster
                .members()
                .into_iter()
                .map(|(id, addr)| pb::NodeInfo { id, addr })
                .collect(),
            route_version: self.cluster.routes().map(|r| r.version).unwrap_or(0),
        }))
    }

    async fn add_node(
        &self,
        request: Request<pb::AddNodeRequest>,
    ) -> Result<Response<pb::AddNodeResponse>, Status> {
        let r = request.into_inner();
        if r.node_id == 0 || r.addr.is_empty() {
            return Err(Status::invalid_argument("node_id and addr are required"));
        }
        for group in self.cluster.node().group_ids() {
            self.on_leader(
                group,
                Change::Add {
                    node: r.node_id,
                    addr: r.addr.clone(),
                },
            )
            .await?;
        }
        Ok(Response::new(pb::AddNodeResponse {}))
    }

    async fn remove_node(
        &self,
        request: Request<pb::RemoveNodeRequest>,
    ) -> Result<Response<pb::RemoveNodeResponse>, Status> {
        let node = request.into_inner().node_id;
        for group in self.cluster.node().group_ids() {
            self.on_leader(group, Change::Remove { node }).await?;
        }
        Ok(Response::new(pb::RemoveNodeResponse {}))
    }

    async fn transfer_leader(
        &self,
        request: Request<pb::TransferLeaderRequest>,
    ) -> Result<Response<pb::TransferLeaderResponse>, Status> {
        let r = request.into_inner();
        let me = self.cluster.config().node_id;
        let to = if r.node_id == 0 { me } else { r.node_id };
        self.move_leadership(r.group_id, to).await?;
        Ok(Response::new(pb::TransferLeaderResponse {}))
    }
}

/// How long a TransferLeader request may take, hops to the leader included.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(10);

impl<E: MvccEngine> ClusterApi<E> {
    /// Makes `to` the leader of `group`: the leader hands its leadership over; any other
    /// node passes the request to the leader it knows of. Returns once `to` leads (as
    /// the node that handed over leadership, or `to` itself, sees it).
    async fn move_leadership(&self, group: GroupId, to: u64) -> Result<(), Status> {
        let me = self.cluster.config().node_id;
        let g = self.group(group)?;
        let deadline = Instant::now() + TRANSFER_TIMEOUT;
        let late = || {
            Status::deadline_exceeded(format!(
                "group {group}: node {to} does not lead after {TRANSFER_TIMEOUT:?}"
            ))
        };
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(late());
            }
            let status = g.status();
            if status.role == Role::Leader {
                match g.transfer_leader(to, remaining).await {
                    Ok(()) => return Ok(()),
                    // Another node won the election: ask it.
                    Err(RaftError::NotLeader { .. }) => continue,
                    Err(e @ RaftError::NotAVoter { .. }) => {
                        return Err(Status::invalid_argument(e.to_string()))
                    }
                    Err(e @ RaftError::Timeout { .. }) => {
                        return Err(Status::deadline_exceeded(e.to_string()))
                    }
                    Err(e) => return Err(Status::unavailable(e.to_string())),
                }
            }
            let leader = status.leader.filter(|&l| l != me);
            let Some(leader) = leader else {
                // No leader known (an election is on): wait for one.
                let _ = g
                    .wait_for(remaining, "a leader", |s| {
                        s.role == Role::Leader || s.leader.is_some_and(|l| l != me)
                    })
                    .await;
                continue;
            };
            let addr = status.addresses.get(&leader).cloned().ok_or_else(|| {
                Status::unavailable(format!(
                    "group {group}: the leader {leader} has no address here"
                ))
            })?;
            match Self::ask_leader(&addr, group, to, remaining).await {
                Ok(()) => {
                    if to == me {
                        // Answer once this node knows it leads, as callers expect.
                        g.wait_for(remaining, "leadership", |s| s.role == Role::Leader)
                            .await
                            .map_err(|_| late())?;
                    }
                    return Ok(());
                }
                Err(s) if s.code() == tonic::Code::Unavailable => {
                    // The leader moved or is unreachable: retry once this node's view
                    // of the leadership changes.
                    let term = status.term;
                    let _ = g
                        .wait_for(remaining, "a leadership change", |s| {
                            s.term != term || s.leader != Some(leader)
                        })
                        .await;
                }
                Err(s) => return Err(s),
            }
        }
    }

    /// Passes a TransferLeader request for `to` to the leader at `addr`.
    async fn ask_leader(
        addr: &str,
        group: GroupId,
        to: u64,
        timeout: Duration,
    ) -> Result<(), Status> {
        let call = async {
            let mut client =
                crate::pb::cluster::admin_client::AdminClient::connect(format!("http://{addr}"))
                    .await
                    .map_err(|e| {
                        Status::unavailable(format!("cannot reach the leader at {addr}: {e}"))
                    })?;
            let mut request = Request::new(pb::TransferLeaderRequest {
                group_id: group,
                node_id: to,
            });
            request.set_timeout(timeout);
            client.transfer_leader(request).await.map(|_| ())
        };
        tokio::time::timeout(timeout, call)
            .await
            .unwrap_or_else(|_| {
                Err(Status::deadline_exceeded(format!(
                    "group {group}: the leader at {addr} did not answer in {timeout:?}"
                )))
            })
    }
}

#[tonic::async_trait]
impl<E: MvccEngine> Internal for ClusterApi<E> {
    type RaftStreamStream = crate::raft_stream::Answers;

    async fn raft_stream(
        &self,
        request: Request<tonic::Streaming<pb::RaftCall>>,
    ) -> Result<Response<Self::RaftStreamStream>, Status> {
        Ok(Response::new(crate::raft_stream::serve(
            Arc::clone(self.cluster.node()),
            request.into_inner(),
            self.stopping.clone(),
        )))
    }

    async fn raft(
        &self,
        request: Request<pb::RaftMessage>,
    ) -> Result<Response<pb::RaftReply>, Status> {
        let request = crate::raft_stream::from_message(request.into_inner())
            .map_err(Status::invalid_argument)?;
        let body = self.cluster.node().handle(request).await;
        Ok(Response::new(pb::RaftReply { body }))
    }

    async fn apply(
        &self,
        request: Request<pb::ApplyRequest>,
    ) -> Result<Response<pb::ApplyReply>, Status> {
        let r = request.into_inner();
        let command = elastickv_txn::Command::decode(&r.command)
            .map_err(|e| Status::invalid_argument(format!("bad command: {e}")))?;
        let one_phase_commit_ts = match command {
            elastickv_txn::Command::OnePhase { commit_ts, .. } => Some(commit_ts),
            _ => None,
        };
        let result = self
            .cluster
            .serve_forwarded(
                r.group_id,
                Op::Apply {
                    command: r.command,
                    one_phase_commit_ts,
                },
            )
            .await;
        Ok(Response::new(pb::ApplyReply { result }))
    }

    async fn read(
        &self,
        request: Request<pb::ReadRequest>,
    ) -> Result<Response<pb::ReadReply>, Status> {
        let r = request.into_inner();
        let group = r.group_id;
        let op = Op::from_read_request(r).map_err(Status::invalid_argument)?;
        let result = self.cluster.serve_forwarded(group, op).await;
        Ok(Response::new(pb::ReadReply { result }))
    }

    async fn timestamp(
        &self,
        request: Request<pb::GetTimestampRequest>,
    ) -> Result<Response<pb::GetTimestampResponse>, Status> {
        let count = request.into_inner().count.clamp(1, 1_000_000);
        let timestamp = self
            .cluster
            .local_timestamp(count)
            .await
            .map_err(|e| status::tso(&e))?;
        Ok(Response::new(pb::GetTimestampResponse { timestamp }))
    }

    async fn join(
        &self,
        request: Request<pb::AddNodeRequest>,
    ) -> Result<Response<pb::JoinReply>, Status> {
        self.add_node(Request::new(request.into_inner())).await?;
        Ok(Response::new(pb::JoinReply {
            nodes: self
                .cluster
                .members()
                .into_iter()
                .map(|(id, addr)| pb::NodeInfo { id, addr })
                .collect(),
        }))
    }
}
