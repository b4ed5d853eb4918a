//! The public gRPC services: `RawKV` and `TransactionalKV` (wire-compatible with the
//! seed system, extended with new fields and RPCs).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use elastickv_engine_api::{KeyRange, Mutation, MvccEngine, Timestamp};
use elastickv_txn::ts::{add_millis, physical_millis};
use elastickv_txn::tso::TimestampSource;
use elastickv_txn::{
    Command, CommandOutput, Coordinator, GroupId, Isolation, LockAwareReader, ShardClient,
    ShardError, TransactionError, TxnError,
};
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status};

use crate::cluster::Cluster;
use crate::pb::api::transactional_kv_client::TransactionalKvClient;
use crate::pb::api::{self, raw_kv_server::RawKv, transactional_kv_server::TransactionalKv};
use crate::status;
use crate::whole_body::WholeBodyChannel;

/// Marks a request one node forwarded to another, which then serves it itself.
const FORWARDED_HEADER: &str = "x-elastickv-forwarded";

fn is_forwarded<T>(request: &Request<T>) -> bool {
    request.metadata().contains_key(FORWARDED_HEADER)
}

/// Request limits of the public API (CLUSTER.md 6). Every violation is an
/// InvalidArgument naming the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiLimits {
    /// Longest key, in bytes.
    pub max_key_bytes: usize,
    /// Longest value, in bytes.
    pub max_value_bytes: usize,
    /// Largest scan limit.
    pub max_scan_limit: usize,
    /// Most mutations (plus read keys) in one transaction.
    pub max_txn_keys: usize,
    /// Longest lock TTL a client may ask for, in milliseconds.
    pub max_lock_ttl_ms: u64,
    /// The lock TTL used when a client gives none, in milliseconds.
    pub default_lock_ttl_ms: u64,
    /// How far in the future (by the node's clock) a client-chosen read timestamp may be.
    pub max_clock_lead_ms: u64,
}

impl Default for ApiLimits {
    fn default() -> Self {
        ApiLimits {
            max_key_bytes: 4096,
            max_value_bytes: 16 * 1024 * 1024,
            max_scan_limit: 1024,
            max_txn_keys: 10_000,
            max_lock_ttl_ms: 600_000,
            default_lock_ttl_ms: 3_000,
            max_clock_lead_ms: 1_000,
        }
    }
}

impl ApiLimits {
    fn key(&self, key: &[u8], what: &str) -> Result<(), Status> {
        if key.is_empty() {
            return Err(Status::invalid_argument(format!(
                "{what} must not be empty"
            )));
        }
        if key.len() > self.max_key_bytes {
            return Err(Status::invalid_argument(format!(
                "{what} of {} bytes exceeds the key size limit of {} bytes",
                key.len(),
                self.max_key_bytes
            )));
        }
        Ok(())
    }

    fn value(&self, value: &[u8]) -> Result<(), Status> {
        if value.len() > self.max_value_bytes {
            return Err(Status::invalid_argument(format!(
                "value of {} bytes exceeds the value size limit of {} bytes",
                value.len(),
                self.max_value_bytes
            )));
        }
        Ok(())
    }

    fn bound(&self, key: &[u8], what: &str) -> Result<(), Status> {
        if key.len() > self.max_key_bytes {
            return Err(Status::invalid_argument(format!(
                "{what} of {} bytes exceeds the key size limit of {} bytes",
                key.len(),
                self.max_key_bytes
            )));
        }
        Ok(())
    }

    fn scan_limit(&self, limit: i128) -> Result<usize, Status> {
        if limit < 0 || limit > self.max_scan_limit as i128 {
            return Err(Status::invalid_argument(format!(
                "scan limit {limit} is outside [0, {}] (the scan limit)",
                self.max_scan_limit
            )));
        }
        Ok(limit as usize)
    }

    fn txn_size(&self, n: usize) -> Result<(), Status> {
        if n > self.max_txn_keys {
            return Err(Status::invalid_argument(format!(
                "transaction of {n} keys exceeds the limit of {} keys per transaction",
                self.max_txn_keys
            )));
        }
        Ok(())
    }

    /// A client-chosen read timestamp must be non-zero and not ahead of the clock by
    /// more than `max_clock_lead_ms` (a read far in the future would block commits).
    fn read_ts(&self, ts: Timestamp, what: &str) -> Result<(), Status> {
        if ts == 0 {
            return Err(Status::invalid_argument(format!("{what} must not be 0")));
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        if physical_millis(ts) > now + self.max_clock_lead_ms {
            return Err(Status::invalid_argument(format!(
                "{what} {ts} is in the future; take timestamps from Begin or GetTimestamp"
            )));
        }
        Ok(())
    }
}

fn range_of(start: Vec<u8>, end: Vec<u8>) -> KeyRange {
    KeyRange {
        start,
        end: (!end.is_empty()).then_some(end),
    }
}

/// The public services of one node.
pub struct PublicApi<E: MvccEngine> {
    cluster: Arc<Cluster<E>>,
    coordinator: Coordinator<Cluster<E>>,
    limits: ApiLimits,
}

impl<E: MvccEngine> std::fmt::Debug for PublicApi<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublicApi")
            .field("limits", &self.limits)
            .finish()
    }
}

impl<E: MvccEngine> Clone for PublicApi<E> {
    fn clone(&self) -> Self {
        PublicApi {
            cluster: Arc::clone(&self.cluster),
            coordinator: self.coordinator.clone(),
            limits: self.limits,
        }
    }
}

impl<E: MvccEngine> PublicApi<E> {
    /// The services over `cluster`, coordinating transactions with `coordinator`.
    pub fn new(
        cluster: Arc<Cluster<E>>,
        coordinator: Coordinator<Cluster<E>>,
        limits: ApiLimits,
    ) -> Self {
        PublicApi {
            cluster,
            coordinator,
            limits,
        }
    }

    async fn now(&self) -> Result<Timestamp, Status> {
        self.cluster
            .timestamps(1)
            .await
            .map_err(|e| status::tso(&e))
    }

    fn reader(&self) -> LockAwareReader<'_, Cluster<E>> {
        LockAwareReader::new(
            self.cluster.as_ref(),
            self.coordinator.tso().as_ref(),
            self.coordinator.config().read_backoff,
        )
    }

    /// One raw write; returns (log index, ts).
    async fn raw_write(&self, mutation: Mutation, ttl_ms: u64) -> Result<(u64, Timestamp), Status> {
        let ts = self.now().await?;
        let mutation = match mutation {
            Mutation::Put { key, value, .. } if ttl_ms > 0 => Mutation::Put {
                key,
                value,
                expire_at: add_millis(ts, ttl_ms),
            },
            other => other,
        };
        let group = self
            .cluster
            .routes()
            .map_err(|e| status::shard(&e))?
            .route_of(mutation.key())
            .group;
        let command = Command::RawBatch {
            ts,
            writes: vec![mutation],
        };
        let reply = self
            .cluster
            .apply_indexed(group, &command)
            .await
            .map_err(|e| status::shard(&e))?;
        match reply.value {
            CommandOutput::Raw(results) => match results.into_iter().next() {
                Some(Ok(())) => Ok((reply.index, ts)),
                Some(Err(e)) => Err(status::txn(&e)),
                None => Err(Status::internal("a raw write produced no result")),
            },
            other => Err(Status::internal(format!(
                "unexpected result of a raw write: {other:?}"
            ))),
        }
    }

    /// Sends a single-key request whole to the leader of the key's group, which runs it
    /// there: one hop, instead of a timestamp request and a forwarded commit from here.
    /// The leader serves it without forwarding it again (it forwards only the parts, as
    /// any node does, should it have lost the leadership meanwhile). Its answer, error
    /// or not, is the answer.
    async fn forward<Req, Resp, F, Fut>(
        &self,
        (leader, addr): (u64, String),
        request: Req,
        call: F,
    ) -> Result<Response<Resp>, Status>
    where
        F: FnOnce(TransactionalKvClient<WholeBodyChannel>, Request<Req>) -> Fut,
        Fut: std::future::Future<Output = Result<Response<Resp>, Status>>,
    {
        let channel = self
            .cluster
            .peers()
            .channel(&addr)
            .map_err(Status::unavailable)?;
        let client = TransactionalKvClient::new(channel)
            .max_decoding_message_size(crate::peers::MAX_INTERNAL_MESSAGE)
            .max_encoding_message_size(crate::peers::MAX_INTERNAL_MESSAGE);
        let mut request = Request::new(request);
        request
            .metadata_mut()
            .insert(FORWARDED_HEADER, MetadataValue::from_static("1"));
        // The leader retries internally (each part within the forwarding timeout), so
        // this bound only guards against a leader that stopped answering.
        let config = self.cluster.config();
        let limit = config.forward_timeout * (config.forward_attempts.max(1) + 2);
        match tokio::time::timeout(limit, call(client, request)).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(status)) => Err(forwarded_write_failure(leader, &status)),
            Err(_) => Err(Status::unknown(format!(
                "node {leader}, the key's leader, did not answer within {limit:?}; \
                 the write may or may not have been applied"
            ))),
        }
    }

    async fn one_op_txn(&self, key: Vec<u8>, value: Option<Vec<u8>>) -> Result<Timestamp, Status> {
        let mut txn = self
            .coordinator
            .begin_short(Isolation::Snapshot)
            .await
            .map_err(|e| status::transaction(&e))?;
        let buffered = match value {
            Some(v) => txn.put(key, v),
            None => txn.delete(key),
        };
        buffered.map_err(|e| status::transaction(&e))?;
        txn.commit().await.map_err(|e| status::transaction(&e))
    }

    fn key_error(e: &ShardError) -> api::KeyError {
        let retryable = match e {
            ShardError::Rejected(t) => t.is_retryable(),
            ShardError::Unavailable(_) | ShardError::CommitTsTooOld { .. } => true,
            ShardError::Ambiguous(_) => false,
        };
        api::KeyError {
            message: e.to_string(),
            retryable,
        }
    }

    /// Groups `keys` by their group.
    fn by_group<T>(
        &self,
        items: impl IntoIterator<Item = T>,
        key_of: impl Fn(&T) -> &[u8],
    ) -> Result<BTreeMap<GroupId, Vec<T>>, Status> {
        let routes = self.cluster.routes().map_err(|e| status::shard(&e))?;
        let mut out: BTreeMap<GroupId, Vec<T>> = BTreeMap::new();
        for item in items {
            out.entry(routes.route_of(key_of(&item)).group)
                .or_default()
                .push(item);
        }
        Ok(out)
    }

    /// Every lock of the transaction `start_ts`, across groups.
    async fn locks_of(&self, start_ts: Timestamp) -> Result<Vec<elastickv_txn::LockInfo>, Status> {
        let mut found = Vec::new();
        let page = 256;
        for group in ShardClient::groups(self.cluster.as_ref()) {
            let mut cursor = Vec::new();
            loop {
                let locks = self
                    .cluster
                    .scan_locks(group, KeyRange::from(cursor.clone()), page)
                    .await
                    .map_err(|e| status::shard(&e))?;
                found.extend(locks.iter().filter(|l| l.start_ts == start_ts).cloned());
                match locks.last() {
                    Some(last) if locks.len() == page => {
                        cursor = last.key.clone();
                        cursor.push(0);
                    }
                    _ => break,
                }
            }
        }
        Ok(found)
    }
}

#[tonic::async_trait]
impl<E: MvccEngine> RawKv for PublicApi<E> {
    async fn raw_put(
        &self,
        request: Request<api::RawPutRequest>,
    ) -> Result<Response<api::RawPutResponse>, Status> {
        let r = request.into_inner();
        self.limits.key(&r.key, "key")?;
        self.limits.value(&r.value)?;
        let (index, ts) = self
            .raw_write(Mutation::put(r.key, r.value), r.ttl_ms)
            .await?;
        Ok(Response::new(api::RawPutResponse {
            commit_index: index,
            success: true,
            commit_ts: ts,
        }))
    }

    async fn raw_get(
        &self,
        request: Request<api::RawGetRequest>,
    ) -> Result<Response<api::RawGetResponse>, Status> {
        let r = request.into_inner();
        self.limits.key(&r.key, "key")?;
        let reply = self
            .cluster
            .raw_get(&r.key, r.ts)
            .await
            .map_err(|e| status::shard(&e))?;
        Ok(Response::new(api::RawGetResponse {
            read_at_index: reply.index,
            exists: reply.value.is_some(),
            value: reply.value.unwrap_or_default(),
        }))
    }

    async fn raw_delete(
        &self,
        request: Request<api::RawDeleteRequest>,
    ) -> Result<Response<api::RawDeleteResponse>, Status> {
        let r = request.into_inner();
        self.limits.key(&r.key, "key")?;
        let (index, ts) = self.raw_write(Mutation::Delete { key: r.key }, 0).await?;
        Ok(Response::new(api::RawDeleteResponse {
            commit_index: index,
            success: true,
            commit_ts: ts,
        }))
    }

    async fn raw_latest_commit_ts(
        &self,
        request: Request<api::RawLatestCommitTsRequest>,
    ) -> Result<Response<api::RawLatestCommitTsResponse>, Status> {
        let r = request.into_inner();
        self.limits.key(&r.key, "key")?;
        let ts = self
            .cluster
            .raw_latest_ts(&r.key)
            .await
            .map_err(|e| status::shard(&e))?;
        Ok(Response::new(api::RawLatestCommitTsResponse {
            ts: ts.unwrap_or(0),
            exists: ts.is_some(),
        }))
    }

    async fn raw_batch(
        &self,
        request: Request<api::RawBatchRequest>,
    ) -> Result<Response<api::RawBatchResponse>, Status> {
        let r = request.into_inner();
        if r.mutations.is_empty() {
            return Err(Status::invalid_argument(
                "RawBatch needs at least one mutation",
            ));
        }
        self.limits.txn_size(r.mutations.len())?;
        for m in &r.mutations {
            self.limits.key(&m.key, "key")?;
            self.limits.value(&m.value)?;
        }
        let ts = self.now().await?;
        let indexed = r.mutations.into_iter().enumerate().map(|(i, m)| {
            let mutation = if m.delete {
                Mutation::Delete { key: m.key }
            } else {
                Mutation::Put {
                    key: m.key,
                    value: m.value,
                    expire_at: if m.ttl_ms > 0 {
                        add_millis(ts, m.ttl_ms)
                    } else {
                        0
                    },
                }
            };
            (i, mutation)
        });
        let parts = self.by_group(indexed, |(_, m)| m.key())?;
        let total: usize = parts.values().map(Vec::len).sum();
        let mut results = vec![api::RawWriteResult::default(); total];
        for (group, part) in parts {
            let (positions, writes): (Vec<usize>, Vec<Mutation>) = part.into_iter().unzip();
            let outcome = self
                .cluster
                .apply_indexed(group, &Command::RawBatch { ts, writes })
                .await;
            let per_write: Vec<String> = match outcome {
                Ok(reply) => match reply.value {
                    CommandOutput::Raw(each) => each
                        .into_iter()
                        .map(|r| r.err().map(|e| e.to_string()).unwrap_or_default())
                        .collect(),
                    other => vec![format!("unexpected result {other:?}"); positions.len()],
                },
                Err(e) => vec![e.to_string(); positions.len()],
            };
            for (position, error) in positions.into_iter().zip(per_write) {
                results[position] = api::RawWriteResult {
                    error,
                    group_id: group,
                };
            }
        }
        Ok(Response::new(api::RawBatchResponse {
            results,
            commit_ts: ts,
        }))
    }

    async fn raw_scan_at(
        &self,
        request: Request<api::RawScanAtRequest>,
    ) -> Result<Response<api::RawScanAtResponse>, Status> {
        let r = request.into_inner();
        let limit = self.limits.scan_limit(i128::from(r.limit))?;
        self.limits.bound(&r.start_key, "start_key")?;
        self.limits.bound(&r.end_key, "end_key")?;
        let range = range_of(r.start_key, r.end_key);
        if limit == 0 || range.is_empty() {
            return Ok(Response::new(api::RawScanAtResponse { kv: Vec::new() }));
        }
        let pairs = self
            .cluster
            .raw_scan(&range, limit, r.ts, r.reverse)
            .await
            .map_err(|e| status::shard(&e))?;
        Ok(Response::new(api::RawScanAtResponse {
            kv: pairs
                .into_iter()
                .map(|p| api::RawKvPair {
                    key: p.key,
                    value: p.value,
                })
                .collect(),
        }))
    }
}

fn isolation_of(value: i32) -> Result<Isolation, Status> {
    match api::Isolation::try_from(value) {
        Ok(api::Isolation::Snapshot) => Ok(Isolation::Snapshot),
        Ok(api::Isolation::Serializable) => Ok(Isolation::Serializable),
        Err(_) => Err(Status::invalid_argument(format!(
            "unknown isolation level {value}"
        ))),
    }
}

#[tonic::async_trait]
impl<E: MvccEngine> TransactionalKv for PublicApi<E> {
    async fn put(
        &self,
        request: Request<api::PutRequest>,
    ) -> Result<Response<api::PutResponse>, Status> {
        let forwarded = is_forwarded(&request);
        let r = request.into_inner();
        self.limits.key(&r.key, "key")?;
        self.limits.value(&r.value)?;
        if let (false, Some(leader)) = (forwarded, self.cluster.remote_leader_of(&r.key)) {
            return self
                .forward(leader, r, |mut c, req| async move { c.put(req).await })
                .await;
        }
        let commit_ts = self.one_op_txn(r.key, Some(r.value)).await?;
        Ok(Response::new(api::PutResponse {
            commit_index: 0,
            success: true,
            commit_ts,
        }))
    }

    async fn get(
        &self,
        request: Request<api::GetRequest>,
    ) -> Result<Response<api::GetResponse>, Status> {
        let r = request.into_inner();
        self.limits.key(&r.key, "key")?;
        let read_ts = self.now().await?;
        let value = self
            .reader()
            .get(&r.key, read_ts)
            .await
            .map_err(|e| status::transaction(&e))?;
        Ok(Response::new(api::GetResponse {
            read_at_index: 0,
            exists: value.is_some(),
            value: value.unwrap_or_default(),
            read_ts,
        }))
    }

    async fn delete(
        &self,
        request: Request<api::DeleteRequest>,
    ) -> Result<Response<api::DeleteResponse>, Status> {
        let forwarded = is_forwarded(&request);
        let r = request.into_inner();
        self.limits.key(&r.key, "key")?;
        if let (false, Some(leader)) = (forwarded, self.cluster.remote_leader_of(&r.key)) {
            return self
                .forward(leader, r, |mut c, req| async move { c.delete(req).await })
                .await;
        }
        let commit_ts = self.one_op_txn(r.key, None).await?;
        Ok(Response::new(api::DeleteResponse {
            commit_index: 0,
            success: true,
            commit_ts,
        }))
    }

    async fn scan(
        &self,
        request: Request<api::ScanRequest>,
    ) -> Result<Response<api::ScanResponse>, Status> {
        let r = request.into_inner();
        let limit = self.limits.scan_limit(i128::from(r.limit))?;
        self.limits.bound(&r.start_key, "start_key")?;
        self.limits.bound(&r.end_key, "end_key")?;
        let range = range_of(r.start_key, r.end_key);
        if limit == 0 || range.is_empty() {
            return Ok(Response::new(api::ScanResponse { kv: Vec::new() }));
        }
        let read_ts = self.now().await?;
        let pairs = self
            .reader()
            .scan(&range, limit, read_ts)
            .await
            .map_err(|e| status::transaction(&e))?;
        Ok(Response::new(scan_response(pairs)))
    }

    async fn pre_write(
        &self,
        request: Request<api::PreWriteRequest>,
    ) -> Result<Response<api::PreCommitResponse>, Status> {
        let r = request.into_inner();
        self.limits.read_ts(r.start_ts, "start_ts")?;
        if r.lock_ttl > self.limits.max_lock_ttl_ms {
            return Err(Status::invalid_argument(format!(
                "lock_ttl {} ms exceeds the limit of {} ms",
                r.lock_ttl, self.limits.max_lock_ttl_ms
            )));
        }
        let ttl = if r.lock_ttl == 0 {
            self.limits.default_lock_ttl_ms
        } else {
            r.lock_ttl
        };
        let mut mutations = Vec::new();
        for kv in r.mutations {
            self.limits.key(&kv.key, "mutation key")?;
            self.limits.value(&kv.value)?;
            mutations.push(Mutation::put(kv.key, kv.value));
        }
        for key in r.delete_keys {
            self.limits.key(&key, "delete key")?;
            mutations.push(Mutation::Delete { key });
        }
        if mutations.is_empty() {
            return Err(Status::invalid_argument(
                "PreWrite needs at least one mutation",
            ));
        }
        self.limits.txn_size(mutations.len())?;
        let distinct: BTreeSet<&[u8]> = mutations.iter().map(Mutation::key).collect();
        if distinct.len() != mutations.len() {
            return Err(Status::invalid_argument(
                "a key appears more than once in the mutations",
            ));
        }
        let primary = if r.primary_key.is_empty() {
            distinct.first().map(|k| k.to_vec()).unwrap_or_default()
        } else if distinct.contains(r.primary_key.as_slice()) {
            r.primary_key
        } else {
            return Err(Status::invalid_argument(
                "primary_key must be one of the keys written",
            ));
        };
        let txn_size = mutations.len() as u64;
        let lock_expiry = add_millis(self.now().await?, ttl);
        let mut parts = self.by_group(mutations, |m| m.key())?;
        let primary_group = self
            .cluster
            .routes()
            .map_err(|e| status::shard(&e))?
            .route_of(&primary)
            .group;
        // The primary's group first: its lock is what others check.
        let mut order: Vec<GroupId> = vec![primary_group];
        order.extend(parts.keys().copied().filter(|g| *g != primary_group));
        let mut done: Vec<(GroupId, Vec<Vec<u8>>)> = Vec::new();
        for group in order {
            let Some(group_mutations) = parts.remove(&group) else {
                continue;
            };
            let keys: Vec<Vec<u8>> = group_mutations.iter().map(|m| m.key().to_vec()).collect();
            let command = Command::Prewrite {
                primary: primary.clone(),
                start_ts: r.start_ts,
                lock_expiry,
                txn_size,
                mutations: group_mutations,
                read_keys: Vec::new(),
            };
            if let Err(e) = self.cluster.apply(group, command).await {
                // Undo what this call prewrote so no lock is left behind; the client
                // retries the transaction with a new start_ts.
                for (g, keys) in done {
                    let rollback = Command::Rollback {
                        primary: primary.clone(),
                        start_ts: r.start_ts,
                        keys,
                    };
                    if let Err(re) = self.cluster.apply(g, rollback).await {
                        tracing::warn!(error = %re, group = g, "rollback after a failed prewrite failed; the lock resolver will clean up");
                    }
                }
                return Ok(Response::new(api::PreCommitResponse {
                    errors: vec![Self::key_error(&e)],
                }));
            }
            done.push((group, keys));
        }
        Ok(Response::new(api::PreCommitResponse { errors: Vec::new() }))
    }

    async fn commit(
        &self,
        request: Request<api::CommitRequest>,
    ) -> Result<Response<api::CommitResponse>, Status> {
        let r = request.into_inner();
        self.limits.read_ts(r.start_ts, "start_ts")?;
        if r.keys.is_empty() {
            return Err(Status::invalid_argument(
                "Commit needs the transaction's keys",
            ));
        }
        self.limits.txn_size(r.keys.len())?;
        for key in &r.keys {
            self.limits.key(key, "key")?;
        }
        let mut keys: Vec<Vec<u8>> = r.keys;
        keys.sort();
        keys.dedup();
        let primary = if r.primary_key.is_empty() {
            keys[0].clone()
        } else if keys.contains(&r.primary_key) {
            r.primary_key
        } else {
            return Err(Status::invalid_argument(
                "primary_key must be one of the keys",
            ));
        };
        let commit_ts = self.now().await?;
        let mut parts = self.by_group(keys, |k| k.as_slice())?;
        let routes = self.cluster.routes().map_err(|e| status::shard(&e))?;
        let primary_group = routes.route_of(&primary).group;
        let primary_keys = parts.remove(&primary_group).unwrap_or_default();
        let command = Command::Commit {
            primary: primary.clone(),
            start_ts: r.start_ts,
            commit_ts,
            keys: primary_keys,
        };
        // The commit point: the primary's commit record.
        let reply = match self.cluster.apply_indexed(primary_group, &command).await {
            Ok(reply) => reply,
            Err(e @ ShardError::Rejected(_)) => {
                return Ok(Response::new(api::CommitResponse {
                    commit_index: 0,
                    success: false,
                    errors: vec![Self::key_error(&e)],
                    commit_ts: 0,
                }))
            }
            Err(e) => return Err(status::shard(&e)),
        };
        // Secondaries: the transaction is committed; failures here are repaired by
        // readers and the lock resolver (they find the primary's commit record).
        for (group, keys) in parts {
            let command = Command::Commit {
                primary: primary.clone(),
                start_ts: r.start_ts,
                commit_ts,
                keys,
            };
            if let Err(e) = self.cluster.apply(group, command).await {
                tracing::warn!(error = %e, group, "committing secondaries failed; locks resolve later");
            }
        }
        Ok(Response::new(api::CommitResponse {
            commit_index: reply.index,
            success: true,
            errors: Vec::new(),
            commit_ts,
        }))
    }

    async fn rollback(
        &self,
        request: Request<api::RollbackRequest>,
    ) -> Result<Response<api::RollbackResponse>, Status> {
        let r = request.into_inner();
        self.limits.read_ts(r.start_ts, "start_ts")?;
        self.limits.txn_size(r.keys.len())?;
        for key in &r.keys {
            self.limits.key(key, "key")?;
        }
        let (primary, keys) = if r.keys.is_empty() {
            let locks = self.locks_of(r.start_ts).await?;
            let Some(first) = locks.first() else {
                return Ok(Response::new(api::RollbackResponse { success: true }));
            };
            let primary = if r.primary_key.is_empty() {
                first.primary.clone()
            } else {
                r.primary_key
            };
            let mut keys: Vec<Vec<u8>> = locks.into_iter().map(|l| l.key).collect();
            keys.push(primary.clone());
            (primary, keys)
        } else {
            let mut keys = r.keys;
            keys.sort();
            keys.dedup();
            let primary = if r.primary_key.is_empty() {
                keys[0].clone()
            } else {
                r.primary_key
            };
            if !keys.contains(&primary) {
                keys.push(primary.clone());
            }
            (primary, keys)
        };
        let mut keys = keys;
        keys.sort();
        keys.dedup();
        for (group, keys) in self.by_group(keys, |k| k.as_slice())? {
            let command = Command::Rollback {
                primary: primary.clone(),
                start_ts: r.start_ts,
                keys,
            };
            match self.cluster.apply(group, command).await {
                Ok(_) => {}
                Err(ShardError::Rejected(e @ TxnError::AlreadyCommitted { .. })) => {
                    return Err(Status::failed_precondition(format!(
                        "cannot roll back: {e}"
                    )))
                }
                Err(e) => return Err(status::shard(&e)),
            }
        }
        Ok(Response::new(api::RollbackResponse { success: true }))
    }

    async fn begin(
        &self,
        request: Request<api::BeginRequest>,
    ) -> Result<Response<api::BeginResponse>, Status> {
        isolation_of(request.into_inner().isolation)?;
        Ok(Response::new(api::BeginResponse {
            start_ts: self.now().await?,
        }))
    }

    async fn txn_get(
        &self,
        request: Request<api::TxnGetRequest>,
    ) -> Result<Response<api::TxnGetResponse>, Status> {
        let r = request.into_inner();
        self.limits.read_ts(r.start_ts, "start_ts")?;
        self.limits.key(&r.key, "key")?;
        let value = self
            .reader()
            .get(&r.key, r.start_ts)
            .await
            .map_err(|e| status::transaction(&e))?;
        Ok(Response::new(api::TxnGetResponse {
            exists: value.is_some(),
            value: value.unwrap_or_default(),
        }))
    }

    async fn txn_scan(
        &self,
        request: Request<api::TxnScanRequest>,
    ) -> Result<Response<api::ScanResponse>, Status> {
        let r = request.into_inner();
        self.limits.read_ts(r.start_ts, "start_ts")?;
        let limit = self.limits.scan_limit(i128::from(r.limit))?;
        self.limits.bound(&r.start_key, "start_key")?;
        self.limits.bound(&r.end_key, "end_key")?;
        let range = range_of(r.start_key, r.end_key);
        if limit == 0 || range.is_empty() {
            return Ok(Response::new(api::ScanResponse { kv: Vec::new() }));
        }
        let pairs = self
            .reader()
            .scan(&range, limit, r.start_ts)
            .await
            .map_err(|e| status::transaction(&e))?;
        Ok(Response::new(scan_response(pairs)))
    }

    async fn txn_commit(
        &self,
        request: Request<api::TxnCommitRequest>,
    ) -> Result<Response<api::TxnCommitResponse>, Status> {
        let r = request.into_inner();
        self.limits.read_ts(r.start_ts, "start_ts")?;
        let isolation = isolation_of(r.isolation)?;
        self.limits
            .txn_size(r.mutations.len() + r.read_keys.len())?;
        for key in &r.read_keys {
            self.limits.key(key, "read key")?;
        }
        let mut txn = self.coordinator.resume(r.start_ts, isolation, r.read_keys);
        for m in r.mutations {
            self.limits.key(&m.key, "mutation key")?;
            let buffered = if m.delete {
                txn.delete(m.key)
            } else {
                self.limits.value(&m.value)?;
                txn.put(m.key, m.value)
            };
            buffered.map_err(|e| status::transaction(&e))?;
        }
        let commit_ts = txn.commit().await.map_err(|e| match e {
            TransactionError::Rejected(TxnError::StartTsTooOld { .. }) => {
                Status::failed_precondition(format!(
                    "{e}; the transaction ran longer than the GC retention, restart it"
                ))
            }
            other => status::transaction(&other),
        })?;
        Ok(Response::new(api::TxnCommitResponse { commit_ts }))
    }
}

fn scan_response(pairs: Vec<elastickv_engine_api::KvPair>) -> api::ScanResponse {
    api::ScanResponse {
        kv: pairs
            .into_iter()
            .map(|p| api::Kv {
                error: None,
                key: p.key,
                value: p.value,
            })
            .collect(),
    }
}

/// How long a transaction may run before the lock resolver may roll it back.
pub fn lock_ttl(limits: &ApiLimits) -> Duration {
    Duration::from_millis(limits.default_lock_ttl_ms)
}

/// The coordinator's timestamp source, as the trait object it wants.
pub fn tso_of<E: MvccEngine>(cluster: &Arc<Cluster<E>>) -> Arc<dyn TimestampSource> {
    Arc::clone(cluster) as Arc<dyn TimestampSource>
}

/// What a client is told when the key's leader failed a forwarded write. The leader's
/// own answer keeps its code. A `Cancelled` comes from the connection instead (the
/// leader went down with the request in flight, hyper's "operation was canceled"):
/// the leader may have applied the write before it died, so the outcome is unknown,
/// which a client may retry as it does any `Unknown`.
fn forwarded_write_failure(leader: u64, status: &Status) -> Status {
    if status.code() == tonic::Code::Cancelled {
        Status::unknown(format!(
            "the connection to node {leader}, the key's leader, closed before it \
             answered ({}); the write may or may not have been applied",
            status.message()
        ))
    } else {
        Status::new(
            status.code(),
            format!("(served by node {leader}) {}", status.message()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_lost_mid_write_is_an_unknown_outcome() {
        let lost = forwarded_write_failure(1, &Status::cancelled("operation was canceled"));
        assert_eq!(lost.code(), tonic::Code::Unknown);
        assert!(lost.message().contains("node 1"), "{}", lost.message());
        assert!(
            lost.message().contains("may or may not"),
            "{}",
            lost.message()
        );

        let refused = forwarded_write_failure(2, &Status::failed_precondition("write conflict"));
        assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
        assert_eq!(refused.message(), "(served by node 2) write conflict");
    }
}
