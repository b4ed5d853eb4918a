//! The system under test, behind a small async trait so that other systems can be
//! driven by the same workloads: elastickv's gRPC services here, etcd in
//! [`super::etcd`].

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
    /// Single-key reads and writes go to the key's leader ([`Client::with_leader_routing`]) rather than
    /// to the connection's node, which would forward them.
    pub leader_routing: bool,
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
        let client = if self.leader_routing {
            client.with_leader_routing()
        } else {
            client
        };
        Ok(Box::new(ElasticKv {
            client,
            raw: self.raw,
        }))
    }
}

/// One elastickv connection (a [`Client`]: a tonic channel, HTTP/2), and with leader
/// routing one more to each leader ([`Client::with_leader_routing`]).
#[derive(Debug, Clone)]
pub struct ElasticKv {
    client: Client,
    raw: bool,
}

impl ElasticKv {
    /// A target over an existing client.
    pub fn new(client: Client, raw: bool) -> ElasticKv {
        ElasticKv { client, raw }
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
        if self.raw {
            self.client.raw_get(key).await.map_err(op_error)
        } else {
            self.client.get(key).await.map_err(op_error)
        }
    }

    async fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), OpError> {
        if self.raw {
            self.client.raw_put(key, value).await.map_err(op_error)?;
        } else {
            self.client.put(key, value).await.map_err(op_error)?;
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
