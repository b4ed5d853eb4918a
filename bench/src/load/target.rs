//! The system under test, behind a small async trait so that other systems can be
//! driven by the same workloads: elastickv's gRPC services here, etcd in
//! [`super::etcd`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use elastickv_server::client::{self, Client};

/// A failed operation: the gRPC status code's name (`Aborted`, `Unavailable`, ...) or,
/// for failures that are not a gRPC status, a name of the load generator's own
/// (`Connect`, `Client`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpError {
    /// The code errors are counted by.
    pub code: String,
    /// What happened.
    pub message: String,
}

impl OpError {
    /// An error with this code and message.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> OpError {
        OpError {
            code: code.into(),
            message: message.into(),
        }
    }

    /// A write conflict or a lock held by another transaction: the operation may be
    /// retried as a whole.
    pub fn is_conflict(&self) -> bool {
        self.code == "Aborted"
    }
}

impl std::fmt::Display for OpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for OpError {}

/// What a transaction writes, given the values of the keys it read (in the order they
/// were given; `None` for a missing key): `(key, value)` pairs.
pub type TxnUpdate<'a> = &'a (dyn Fn(&[Option<Vec<u8>>]) -> Vec<(Vec<u8>, Vec<u8>)> + Sync);

/// One client's handle on the system under test (a connection, or a share of one).
#[async_trait]
pub trait Target: Send {
    /// A linearizable read of the latest value of `key`.
    async fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, OpError>;

    /// Writes `key`.
    async fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), OpError>;

    /// Reads up to `limit` consecutive pairs from `start` on, in key order; returns how
    /// many were read.
    async fn scan(&mut self, start: &[u8], limit: usize) -> Result<usize, OpError>;

    /// One transaction: reads `keys` at one snapshot, writes what `update` returns for
    /// the values read, and commits atomically. A conflict with another transaction is
    /// an error with the code `Aborted` (nothing was written; it may be retried).
    async fn txn(&mut self, keys: &[Vec<u8>], update: TxnUpdate<'_>) -> Result<(), OpError>;

    /// Where the key space is split between independent shards (Raft groups for
    /// elastickv): the ascending start keys with a shard id each, the first one empty.
    /// Empty when the system is not sharded.
    async fn shards(&mut self) -> Result<Vec<(Vec<u8>, u64)>, OpError> {
        Ok(Vec::new())
    }

    /// Another handle on the same connection (for clients sharing connections).
    fn share(&self) -> Box<dyn Target>;
}

/// Opens connections to a system under test.
#[async_trait]
pub trait Connector: Send + Sync + std::fmt::Debug {
    /// The system and API, for the report ("elastickv TransactionalKV").
    fn describe(&self) -> String;

    /// A new connection to `endpoint` (`host:port`).
    async fn connect(&self, endpoint: &str) -> Result<Box<dyn Target>, OpError>;
}

/// elastickv over gRPC: `TransactionalKV` (Put, Get, Scan; Begin, TxnGet, TxnCommit for
/// transactions), or `RawKV` (RawPut, RawGet) for single-key operations when `raw`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ElasticKvConnector {
    /// Single-key reads and writes go through RawKV instead of TransactionalKV.
    pub raw: bool,
    /// Single-key reads and writes go to the key's leader (see [`Router`]) rather than
    /// to the connection's node, which would forward them.
    pub leader_routing: bool,
}

/// How often a [`Router`] asks again where the leaders are.
const ROUTES_MAX_AGE: Duration = Duration::from_secs(5);

/// Where each key range's leader is, as the cluster says (refreshed every
/// [`ROUTES_MAX_AGE`]), and a connection to each leader. A stale answer costs only
/// speed: a node that is not the key's leader forwards the request.
#[derive(Debug, Default)]
pub struct Router {
    /// `(start, end, leader address)`, ascending; an empty end is the end of the space.
    ranges: Vec<(Vec<u8>, Vec<u8>, String)>,
    asked: Option<Instant>,
    clients: HashMap<String, Client>,
}

impl Router {
    /// The leader address of `key`'s range, if known.
    pub fn leader_of(&self, key: &[u8]) -> Option<&str> {
        let at = self
            .ranges
            .partition_point(|(start, _, _)| start.as_slice() <= key);
        let (_, end, leader) = self.ranges.get(at.checked_sub(1)?)?;
        (end.is_empty() || key < end.as_slice()).then_some(leader.as_str())
    }

    /// Asks `via` for the routes and their leaders.
    async fn refresh(&mut self, via: &mut Client) -> Result<(), client::Error> {
        let mut ranges = Vec::new();
        for route in via.routes().await?.routes {
            let answer = via.route(&route.start).await?;
            if !answer.leader_addr.is_empty() {
                ranges.push((route.start, route.end, answer.leader_addr));
            }
        }
        ranges.sort();
        self.ranges = ranges;
        self.asked = Some(Instant::now());
        Ok(())
    }

    /// The client to send `key`'s request to: its leader's, or `fallback`.
    async fn client_for(&mut self, key: &[u8], fallback: &mut Client) -> Client {
        let stale = self.asked.is_none_or(|t| t.elapsed() > ROUTES_MAX_AGE);
        if stale && self.refresh(fallback).await.is_err() {
            // Keep the old answer (or none) and try again after the next period.
            self.asked = Some(Instant::now());
        }
        let Some(leader) = self.leader_of(key).map(str::to_string) else {
            return fallback.clone();
        };
        if let Some(client) = self.clients.get(&leader) {
            return client.clone();
        }
        match Client::connect(&leader).await {
            Ok(client) => {
                self.clients.insert(leader, client.clone());
                client
            }
            Err(_) => fallback.clone(),
        }
    }
}

#[async_trait]
impl Connector for ElasticKvConnector {
    fn describe(&self) -> String {
        if self.raw {
            "elastickv RawKV".into()
        } else {
            "elastickv TransactionalKV".into()
        }
    }

    async fn connect(&self, endpoint: &str) -> Result<Box<dyn Target>, OpError> {
        let client = Client::connect(endpoint)
            .await
            .map_err(|e| OpError::new("Connect", e.to_string()))?;
        Ok(Box::new(ElasticKv {
            client,
            raw: self.raw,
            router: self
                .leader_routing
                .then(|| Arc::new(tokio::sync::Mutex::new(Router::default()))),
        }))
    }
}

/// One elastickv connection (a [`Client`]: a tonic channel, HTTP/2), and with leader
/// routing one more to each leader.
#[derive(Debug, Clone)]
pub struct ElasticKv {
    client: Client,
    raw: bool,
    router: Option<Arc<tokio::sync::Mutex<Router>>>,
}

impl ElasticKv {
    /// A target over an existing client.
    pub fn new(client: Client, raw: bool) -> ElasticKv {
        ElasticKv {
            client,
            raw,
            router: None,
        }
    }

    /// The client for a single-key request on `key`.
    async fn single(&mut self, key: &[u8]) -> Client {
        match &self.router {
            Some(router) => router.lock().await.client_for(key, &mut self.client).await,
            None => self.client.clone(),
        }
    }
}

/// The gRPC status code of a client error, by name.
pub fn op_error(e: client::Error) -> OpError {
    match e.downcast_ref::<tonic::Status>() {
        Some(status) => status_error(status.clone()),
        None => OpError::new("Client", e.to_string()),
    }
}

/// A gRPC status as an error counted by its code's name (`Unavailable`, ...).
pub fn status_error(status: tonic::Status) -> OpError {
    OpError::new(format!("{:?}", status.code()), status.message())
}

#[async_trait]
impl Target for ElasticKv {
    async fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, OpError> {
        let mut client = self.single(key).await;
        if self.raw {
            client.raw_get(key).await.map_err(op_error)
        } else {
            client.get(key).await.map_err(op_error)
        }
    }

    async fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), OpError> {
        let mut client = self.single(key).await;
        if self.raw {
            client.raw_put(key, value).await.map_err(op_error)?;
        } else {
            client.put(key, value).await.map_err(op_error)?;
        }
        Ok(())
    }

    async fn scan(&mut self, start: &[u8], limit: usize) -> Result<usize, OpError> {
        // TransactionalKV Scan: one snapshot across groups. (RawKV's RawScanAt is not in
        // the Rust client; the load generator refuses `--raw` with scans.)
        let pairs = self
            .client
            .scan(start, b"", limit as u64)
            .await
            .map_err(op_error)?;
        Ok(pairs.len())
    }

    async fn txn(&mut self, keys: &[Vec<u8>], update: TxnUpdate<'_>) -> Result<(), OpError> {
        let mut txn = self.client.begin().await.map_err(op_error)?;
        let mut values = Vec::with_capacity(keys.len());
        for key in keys {
            values.push(txn.get(key).await.map_err(op_error)?);
        }
        for (key, value) in update(&values) {
            txn.put(&key, &value);
        }
        txn.commit().await.map_err(op_error)?;
        Ok(())
    }

    async fn shards(&mut self) -> Result<Vec<(Vec<u8>, u64)>, OpError> {
        let table = self.client.routes().await.map_err(op_error)?;
        let mut shards: Vec<(Vec<u8>, u64)> = table
            .routes
            .into_iter()
            .map(|r| (r.start, r.group_id))
            .collect();
        shards.sort();
        Ok(shards)
    }

    fn share(&self) -> Box<dyn Target> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_router_finds_the_leader_of_a_key_range() {
        let router = Router {
            ranges: vec![
                (Vec::new(), b"i".to_vec(), "a:1".into()),
                (b"i".to_vec(), b"r".to_vec(), "b:2".into()),
                (b"r".to_vec(), Vec::new(), "c:3".into()),
            ],
            ..Router::default()
        };
        assert_eq!(router.leader_of(b""), Some("a:1"));
        assert_eq!(router.leader_of(b"hzz"), Some("a:1"));
        assert_eq!(router.leader_of(b"i"), Some("b:2"));
        assert_eq!(router.leader_of(b"q\xff"), Some("b:2"));
        assert_eq!(router.leader_of(b"r"), Some("c:3"));
        assert_eq!(router.leader_of(b"\xff\xff"), Some("c:3"));
        let gap = Router {
            ranges: vec![(b"m".to_vec(), b"p".to_vec(), "b:2".into())],
            ..Router::default()
        };
        assert_eq!(gap.leader_of(b"a"), None, "before every range");
        assert_eq!(gap.leader_of(b"p"), None, "after the last range's end");
        assert_eq!(Router::default().leader_of(b"k"), None);
    }
}
