//! A Rust client of elastickv's public services, and the CLI's commands built on it.
//!
//! ```no_run
//! # async fn demo() -> Result<(), elastickv_server::client::Error> {
//! let mut client = elastickv_server::client::Client::connect("127.0.0.1:50051").await?;
//! client.put(b"hello", b"world").await?;
//! assert_eq!(client.get(b"hello").await?, Some(b"world".to_vec()));
//! let mut txn = client.begin().await?;
//! let balance = txn.get(b"alice").await?;
//! txn.put(b"alice", b"10");
//! txn.commit().await?;
//! # let _ = balance; Ok(()) }
//! ```

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::one_write::OneWriteChannel;

use crate::pb::api::raw_kv_client::RawKvClient;
use crate::pb::api::transactional_kv_client::TransactionalKvClient;
use crate::pb::api::{self};
use crate::pb::cluster::admin_client::AdminClient;
use crate::pb::cluster::distribution_client::DistributionClient;
use crate::pb::cluster::{self as cpb};

/// What a client call can fail with.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// A connection to one node (any node: requests are forwarded to group leaders). With
/// [`Client::with_leader_routing`], single-key requests go straight to their key's
/// leader instead.
#[derive(Debug, Clone)]
pub struct Client {
    /// The connection the typed clients below share; single-key requests build their
    /// typed client on it (or on a leader's) per call, one handle clone each.
    channel: OneWriteChannel,
    txn: TransactionalKvClient<OneWriteChannel>,
    admin: AdminClient<OneWriteChannel>,
    distribution: DistributionClient<OneWriteChannel>,
    /// Shared by the clones of a routing client.
    router: Option<Arc<tokio::sync::Mutex<Router>>>,
}

/// Whether `e` says the node could not be reached or could not serve: a gRPC
/// `Unavailable` (also what a connection refused, or closed under the request as the
/// node went down, gives: see `one_write`).
fn is_unavailable(e: &Error) -> bool {
    e.downcast_ref::<tonic::Status>()
        .is_some_and(|s| s.code() == tonic::Code::Unavailable)
}

/// How often a [`Router`] asks again where the leaders are.
const ROUTES_MAX_AGE: Duration = Duration::from_secs(5);

/// Where each key range's leader is, as the cluster says (asked again every 5 seconds),
/// and a connection to each leader. A stale answer costs only speed: a node that is
/// not the key's leader forwards the request.
#[derive(Debug, Default)]
pub struct Router {
    /// `(start, end, leader address)`, ascending; an empty end is the end of the space.
    ranges: Vec<(Vec<u8>, Vec<u8>, String)>,
    asked: Option<Instant>,
    /// A connection to each leader met so far.
    leaders: HashMap<String, OneWriteChannel>,
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
    async fn refresh(&mut self, via: &mut Client) -> Result<(), Error> {
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

    /// Drops what it knows: the next request asks for the routes again.
    fn forget(&mut self) {
        self.ranges.clear();
        self.asked = None;
    }

    /// The connection to send `key`'s request on: its leader's, or `None` (the leader
    /// is not known or cannot be reached) for `via`'s own. Asks `via` for the routes
    /// when they are older than [`ROUTES_MAX_AGE`].
    async fn channel_for(&mut self, key: &[u8], via: &mut Client) -> Option<OneWriteChannel> {
        let stale = self.asked.is_none_or(|t| t.elapsed() > ROUTES_MAX_AGE);
        if stale && self.refresh(via).await.is_err() {
            // Keep the old answer (or none) and try again after the next period.
            self.asked = Some(Instant::now());
        }
        let leader = self.leader_of(key)?;
        if let Some(channel) = self.leaders.get(leader) {
            return Some(channel.clone());
        }
        let leader = leader.to_string();
        let channel = connect_channel(&leader).await.ok()?;
        self.leaders.insert(leader, channel.clone());
        Some(channel)
    }
}

/// The largest message a client sends or accepts.
const MAX_MESSAGE: usize = 64 * 1024 * 1024;

/// A connection to `addr` (`host:port`) whose unary requests each go out in one write
/// (see `one_write`).
async fn connect_channel(addr: &str) -> Result<OneWriteChannel, Error> {
    // The status's message alone ("cannot connect to ...: Connection refused"): what
    // the CLI prints.
    OneWriteChannel::connect(addr)
        .await
        .map_err(|status| status.message().into())
}

/// A `TransactionalKV` client on `channel`.
fn txn_client(channel: OneWriteChannel) -> TransactionalKvClient<OneWriteChannel> {
    TransactionalKvClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE)
}

/// A `RawKV` client on `channel`.
fn raw_client(channel: OneWriteChannel) -> RawKvClient<OneWriteChannel> {
    RawKvClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE)
}

impl Client {
    /// Connects to `addr` (`host:port`).
    pub async fn connect(addr: &str) -> Result<Client, Error> {
        let channel = connect_channel(addr).await?;
        Ok(Client {
            txn: txn_client(channel.clone()),
            admin: AdminClient::new(channel.clone()),
            distribution: DistributionClient::new(channel.clone()),
            channel,
            router: None,
        })
    }

    /// This client, sending each single-key request (`put`, `get`, `delete`,
    /// `raw_put`, `raw_get`) to its key's leader, with a connection of its own to each
    /// leader: the node this client connected to would otherwise hand the request on,
    /// one more request and response between nodes. The leaders are asked for through
    /// this client's node and asked again every 5 seconds; scans, transactions and
    /// administration still go to the node this client connected to.
    pub fn with_leader_routing(mut self) -> Client {
        self.router = Some(Arc::default());
        self
    }

    /// With leader routing, the address this client last learned for the leader of
    /// `key`'s range (`None`: not routing, or not known yet).
    pub async fn routed_leader(&self, key: &[u8]) -> Option<String> {
        let router = self.router.as_ref()?;
        router.lock().await.leader_of(key).map(str::to_string)
    }

    /// Runs a single-key request: on this client's node, or with leader routing on
    /// `key`'s leader. A routed request that finds its leader unreachable
    /// (`Unavailable`: it crashed, or lost the leadership and is shutting down) is sent
    /// once more through this client's node, which hands it to the current leader, and
    /// the routes are asked for again. Single-key writes are blind (the same value
    /// again), so sending one twice leaves what sending it once does.
    ///
    /// `call` gets the connection to send on (a handle: one clone per call, not one
    /// per service).
    async fn single<T, F, Fut>(&mut self, key: &[u8], call: F) -> Result<T, Error>
    where
        F: Fn(OneWriteChannel) -> Fut,
        Fut: std::future::Future<Output = Result<T, Error>>,
    {
        let Some(router) = self.router.clone() else {
            return call(self.channel.clone()).await;
        };
        let Some(leader) = router.lock().await.channel_for(key, self).await else {
            return call(self.channel.clone()).await;
        };
        match call(leader).await {
            Err(e) if is_unavailable(&e) => {
                router.lock().await.forget();
                call(self.channel.clone()).await
            }
            other => other,
        }
    }

    /// Writes `key` (a one-key transaction); returns the commit timestamp.
    pub async fn put(&mut self, key: &[u8], value: &[u8]) -> Result<u64, Error> {
        self.single(key, |channel| async move {
            let request = api::PutRequest {
                key: key.to_vec(),
                value: value.to_vec(),
            };
            Ok(txn_client(channel)
                .put(request)
                .await?
                .into_inner()
                .commit_ts)
        })
        .await
    }

    /// Reads the latest committed value of `key`.
    pub async fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        self.single(key, |channel| async move {
            let request = api::GetRequest { key: key.to_vec() };
            let r = txn_client(channel).get(request).await?.into_inner();
            Ok(r.exists.then_some(r.value))
        })
        .await
    }

    /// Deletes `key` (a one-key transaction); returns the commit timestamp.
    pub async fn delete(&mut self, key: &[u8]) -> Result<u64, Error> {
        self.single(key, |channel| async move {
            let request = api::DeleteRequest { key: key.to_vec() };
            Ok(txn_client(channel)
                .delete(request)
                .await?
                .into_inner()
                .commit_ts)
        })
        .await
    }

    /// Up to `limit` pairs of `[start, end)` (`end` empty: to the end), ascending.
    pub async fn scan(
        &mut self,
        start: &[u8],
        end: &[u8],
        limit: u64,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, Error> {
        let r = self
            .txn
            .scan(api::ScanRequest {
                start_key: start.to_vec(),
                end_key: end.to_vec(),
                limit,
            })
            .await?;
        Ok(r.into_inner()
            .kv
            .into_iter()
            .map(|kv| (kv.key, kv.value))
            .collect())
    }

    /// A raw (non-transactional) write.
    pub async fn raw_put(&mut self, key: &[u8], value: &[u8]) -> Result<u64, Error> {
        self.single(key, |channel| async move {
            let request = api::RawPutRequest {
                key: key.to_vec(),
                value: value.to_vec(),
                ttl_ms: 0,
            };
            Ok(raw_client(channel)
                .raw_put(request)
                .await?
                .into_inner()
                .commit_ts)
        })
        .await
    }

    /// A raw read of the latest value.
    pub async fn raw_get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        self.single(key, |channel| async move {
            let request = api::RawGetRequest {
                key: key.to_vec(),
                ts: 0,
            };
            let r = raw_client(channel).raw_get(request).await?.into_inner();
            Ok(r.exists.then_some(r.value))
        })
        .await
    }

    /// Starts an interactive snapshot-isolation transaction.
    pub async fn begin(&mut self) -> Result<Txn, Error> {
        self.begin_with(api::Isolation::Snapshot).await
    }

    /// Starts an interactive transaction at the given isolation level.
    pub async fn begin_with(&mut self, isolation: api::Isolation) -> Result<Txn, Error> {
        let r = self
            .txn
            .begin(api::BeginRequest {
                isolation: isolation as i32,
            })
            .await?;
        Ok(Txn {
            client: self.txn.clone(),
            start_ts: r.into_inner().start_ts,
            isolation,
            writes: BTreeMap::new(),
            reads: Vec::new(),
        })
    }

    /// The node's view of the cluster.
    pub async fn status(&mut self) -> Result<cpb::StatusResponse, Error> {
        Ok(self.admin.status(cpb::StatusRequest {}).await?.into_inner())
    }

    /// The route table.
    pub async fn routes(&mut self) -> Result<cpb::ListRoutesResponse, Error> {
        Ok(self
            .distribution
            .list_routes(cpb::ListRoutesRequest {})
            .await?
            .into_inner())
    }

    /// The route of `key` and its group's leader as this node sees it.
    pub async fn route(&mut self, key: &[u8]) -> Result<cpb::GetRouteResponse, Error> {
        Ok(self
            .distribution
            .get_route(cpb::GetRouteRequest { key: key.to_vec() })
            .await?
            .into_inner())
    }

    /// A timestamp from the cluster's oracle.
    pub async fn timestamp(&mut self) -> Result<u64, Error> {
        Ok(self
            .distribution
            .get_timestamp(cpb::GetTimestampRequest { count: 1 })
            .await?
            .into_inner()
            .timestamp)
    }

    /// Splits the range holding `key` at `key`.
    pub async fn split(&mut self, key: &[u8]) -> Result<cpb::SplitRangeResponse, Error> {
        Ok(self
            .distribution
            .split_range(cpb::SplitRangeRequest {
                split_key: key.to_vec(),
                group_id: 0,
            })
            .await?
            .into_inner())
    }

    /// Adds a node (as a voter of every group).
    pub async fn add_node(&mut self, id: u64, addr: &str) -> Result<(), Error> {
        self.admin
            .add_node(cpb::AddNodeRequest {
                node_id: id,
                addr: addr.to_string(),
            })
            .await?;
        Ok(())
    }
}

/// An interactive transaction: reads at its start timestamp, writes buffered here and
/// sent with the commit.
#[derive(Debug)]
pub struct Txn {
    client: TransactionalKvClient<OneWriteChannel>,
    start_ts: u64,
    isolation: api::Isolation,
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    reads: Vec<Vec<u8>>,
}

impl Txn {
    /// The snapshot timestamp.
    pub fn start_ts(&self) -> u64 {
        self.start_ts
    }

    /// Reads `key` (this transaction's own write if any).
    pub async fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        if let Some(w) = self.writes.get(key) {
            return Ok(w.clone());
        }
        let r = self
            .client
            .txn_get(api::TxnGetRequest {
                start_ts: self.start_ts,
                key: key.to_vec(),
            })
            .await?
            .into_inner();
        self.reads.push(key.to_vec());
        Ok(r.exists.then_some(r.value))
    }

    /// Up to `limit` pairs of `[start, end)` at the snapshot (not including this
    /// transaction's own writes).
    pub async fn scan(
        &mut self,
        start: &[u8],
        end: &[u8],
        limit: u64,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, Error> {
        let r = self
            .client
            .txn_scan(api::TxnScanRequest {
                start_ts: self.start_ts,
                start_key: start.to_vec(),
                end_key: end.to_vec(),
                limit,
            })
            .await?;
        Ok(r.into_inner()
            .kv
            .into_iter()
            .map(|kv| (kv.key, kv.value))
            .collect())
    }

    /// Buffers a put.
    pub fn put(&mut self, key: &[u8], value: &[u8]) {
        self.writes.insert(key.to_vec(), Some(value.to_vec()));
    }

    /// Buffers a delete.
    pub fn delete(&mut self, key: &[u8]) {
        self.writes.insert(key.to_vec(), None);
    }

    /// Commits; returns the commit timestamp. A conflict is an `Aborted` status.
    pub async fn commit(mut self) -> Result<u64, Error> {
        let mutations = std::mem::take(&mut self.writes)
            .into_iter()
            .map(|(key, value)| api::TxnMutation {
                delete: value.is_none(),
                value: value.unwrap_or_default(),
                key,
            })
            .collect();
        let r = self
            .client
            .txn_commit(api::TxnCommitRequest {
                start_ts: self.start_ts,
                mutations,
                read_keys: std::mem::take(&mut self.reads),
                isolation: self.isolation as i32,
            })
            .await?;
        Ok(r.into_inner().commit_ts)
    }
}

/// Runs a transaction script (one command per line: `get KEY`, `put KEY VALUE`,
/// `delete KEY`, `scan START END LIMIT`; `#` starts a comment) and commits it. Returns
/// the lines to print.
pub async fn run_script(
    client: &mut Client,
    script: &str,
    serializable: bool,
) -> Result<Vec<String>, Error> {
    let isolation = if serializable {
        api::Isolation::Serializable
    } else {
        api::Isolation::Snapshot
    };
    let mut txn = client.begin_with(isolation).await?;
    let mut out = vec![format!("begin start_ts={}", txn.start_ts())];
    for (n, line) in script.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["get", key] => {
                let v = txn.get(key.as_bytes()).await?;
                out.push(format!("{key} = {}", show(v.as_deref())));
            }
            ["put", key, value] => txn.put(key.as_bytes(), value.as_bytes()),
            ["delete", key] => txn.delete(key.as_bytes()),
            ["scan", start, end, limit] => {
                let limit: u64 = limit
                    .parse()
                    .map_err(|_| format!("line {}: {limit:?} is not a number", n + 1))?;
                for (k, v) in txn.scan(start.as_bytes(), end.as_bytes(), limit).await? {
                    out.push(format!("{} = {}", String::from_utf8_lossy(&k), show(Some(&v))));
                }
            }
            _ => {
                return Err(format!(
                    "line {}: {line:?} is not one of: get KEY | put KEY VALUE | delete KEY | scan START END LIMIT",
                    n + 1
                )
                .into())
            }
        }
    }
    let commit_ts = txn.commit().await?;
    out.push(format!("committed commit_ts={commit_ts}"));
    Ok(out)
}

/// A value for people: UTF-8 as is, else hex; `(not found)` for none.
pub fn show(value: Option<&[u8]>) -> String {
    match value {
        None => "(not found)".into(),
        Some(v) => match std::str::from_utf8(v) {
            Ok(s) => format!("{s:?}"),
            Err(_) => format!(
                "0x{}",
                v.iter().map(|b| format!("{b:02x}")).collect::<String>()
            ),
        },
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
