//! The node's settings: command-line flags, the same settings from a TOML file
//! (`--config`), and their defaults. A flag given on the command line wins over the file.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use elastickv_raft::{GroupConfig, LogStorage, NodeId};
use serde::Deserialize;

use crate::api::ApiLimits;
use crate::cluster::ClusterConfig;
use crate::run::{BackgroundConfig, NodeSettings};

/// The settings of `elastickv node`, as flags or TOML keys (`data_dir = "..."`).
#[derive(Debug, Clone, Default, clap::Args, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeOptions {
    /// This node's id: a non-zero integer, unique in the cluster.
    #[arg(long)]
    pub id: Option<NodeId>,
    /// Where the gRPC server listens.
    #[arg(long, value_name = "HOST:PORT")]
    pub listen: Option<SocketAddr>,
    /// The address other nodes and clients use to reach this node [default: --listen].
    #[arg(long, value_name = "HOST:PORT")]
    pub advertise: Option<String>,
    /// The local IP that connections to other nodes are made from [default: chosen by
    /// the OS]. Lets a fault-injecting proxy in front of each node tell the callers apart.
    #[arg(long, value_name = "IP")]
    pub peer_source_ip: Option<std::net::IpAddr>,
    /// Where this node keeps its data.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// The storage engine (see `elastickv engines`).
    #[arg(long)]
    pub engine: Option<String>,
    /// The cluster's voters when it is first formed: `1=host:port,2=host:port,...`.
    /// Give every initial node the same list; the node with the smallest id forms the
    /// cluster. Restarting with the same flags later is fine.
    #[arg(long, value_name = "ID=HOST:PORT,...")]
    pub initial_cluster: Option<String>,
    /// Join a running cluster through this member (`host:port`) instead.
    #[arg(long, value_name = "HOST:PORT")]
    pub join: Option<String>,
    /// How many Raft groups (shards) the key space is split into (same on every node).
    #[arg(long)]
    pub groups: Option<u64>,
    /// Where the initial ranges split, comma-separated (one fewer than groups)
    /// [default: evenly spaced lowercase letters].
    #[arg(long, value_name = "KEY,...")]
    pub split_keys: Option<String>,
    /// Where Prometheus metrics are served (`GET /metrics`); off when not given.
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics_listen: Option<SocketAddr>,
    /// Raft heartbeat interval in milliseconds.
    #[arg(long)]
    pub heartbeat_ms: Option<u64>,
    /// Smallest Raft election timeout in milliseconds (the largest is twice this).
    #[arg(long)]
    pub election_timeout_ms: Option<u64>,
    /// Longest key accepted, in bytes.
    #[arg(long)]
    pub max_key_bytes: Option<usize>,
    /// Longest value accepted, in bytes.
    #[arg(long)]
    pub max_value_bytes: Option<usize>,
    /// Largest scan limit accepted.
    #[arg(long)]
    pub max_scan_limit: Option<usize>,
    /// How long old versions stay readable, in seconds (the GC retention).
    #[arg(long)]
    pub gc_retention_secs: Option<u64>,
    /// Where the Raft log is kept: `shared` (one log per node shared by its groups, one
    /// sync for all of them), `group` (each group's own files) or `engine` (the engine's
    /// raw keyspace) [default: shared; always `engine` with `--engine mem`]. A change
    /// moves each group's log when the node next starts.
    #[arg(long, value_name = "shared|group|engine")]
    pub raft_log: Option<String>,
    /// How Raft messages travel to other nodes: `stream` (one long-lived gRPC stream
    /// per peer for every group's messages; snapshot chunks and requests over 256 KiB
    /// go as unary calls) or `unary` (one gRPC call per message) [default: stream].
    #[arg(long, value_name = "stream|unary")]
    pub raft_transport: Option<String>,
}

macro_rules! merge_fields {
    ($flags:ident, $file:ident, $($field:ident),*) => {
        NodeOptions { $($field: $flags.$field.or($file.$field)),* }
    };
}

impl NodeOptions {
    /// Reads a TOML file of the same settings.
    pub fn from_file(path: &std::path::Path) -> Result<NodeOptions, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// These flags over the file's settings.
    pub fn over(self, file: NodeOptions) -> NodeOptions {
        let flags = self;
        merge_fields!(
            flags,
            file,
            id,
            listen,
            advertise,
            peer_source_ip,
            data_dir,
            engine,
            initial_cluster,
            join,
            groups,
            split_keys,
            metrics_listen,
            heartbeat_ms,
            election_timeout_ms,
            max_key_bytes,
            max_value_bytes,
            max_scan_limit,
            gc_retention_secs,
            raft_log,
            raft_transport
        )
    }

    /// The engine name (default: [`crate::engines::default_engine`]).
    pub fn engine_name(&self) -> String {
        self.engine
            .clone()
            .unwrap_or_else(|| crate::engines::default_engine().to_string())
    }

    /// The node's settings, with defaults filled in and everything checked.
    pub fn settings(&self) -> Result<NodeSettings, String> {
        let id = self.id.ok_or("--id is required (a non-zero integer)")?;
        if id == 0 {
            return Err("--id must not be 0".into());
        }
        let listen = self
            .listen
            .unwrap_or_else(|| "127.0.0.1:50051".parse().expect("a valid address"));
        let advertise = self.advertise.clone().unwrap_or_else(|| listen.to_string());
        let data_dir = self
            .data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("elastickv-data"));
        let initial_members = match &self.initial_cluster {
            Some(list) => parse_members(list)?,
            None => BTreeMap::new(),
        };
        if !initial_members.is_empty() && !initial_members.contains_key(&id) {
            return Err(format!(
                "--initial-cluster does not list this node's id {id}"
            ));
        }
        if let Some(addr) = initial_members.get(&id) {
            if *addr != advertise {
                return Err(format!(
                    "--initial-cluster gives node {id} the address {addr} but it advertises {advertise}"
                ));
            }
        }
        if initial_members.is_empty() && self.join.is_none() {
            // A single node that forms a cluster of its own.
            return self
                .clone()
                .with_initial(format!("{id}={advertise}"))
                .settings();
        }
        if !initial_members.is_empty() && self.join.is_some() {
            return Err("give either --initial-cluster or --join, not both".into());
        }
        let groups = self.groups.unwrap_or(3);
        if groups == 0 || groups > 1024 {
            return Err(format!("--groups {groups} is outside [1, 1024]"));
        }
        let split_keys = match &self.split_keys {
            Some(list) => list
                .split(',')
                .map(|k| k.trim().as_bytes().to_vec())
                .filter(|k| !k.is_empty())
                .collect(),
            None => default_split_keys(groups),
        };
        let heartbeat = Duration::from_millis(self.heartbeat_ms.unwrap_or(100).max(10));
        let election = Duration::from_millis(
            self.election_timeout_ms
                .unwrap_or(1000)
                .max(heartbeat.as_millis() as u64 * 3),
        );
        let log_storage = match self.raft_log.as_deref() {
            None | Some("shared") => LogStorage::Shared,
            Some("group") => LogStorage::Files,
            Some("engine") => LogStorage::Engine,
            Some(other) => {
                return Err(format!(
                    "--raft-log {other:?} is not one of shared, group, engine"
                ))
            }
        };
        if self.engine_name() == "mem"
            && log_storage != LogStorage::Engine
            && self.raft_log.is_some()
        {
            return Err(
                "--engine mem keeps the Raft log in memory with the state (--raft-log engine)"
                    .into(),
            );
        }
        let raft_stream = match self.raft_transport.as_deref() {
            None | Some("stream") => true,
            Some("unary") => false,
            Some(other) => {
                return Err(format!(
                    "--raft-transport {other:?} is not one of stream, unary"
                ))
            }
        };
        let raft = GroupConfig {
            log_storage,
            heartbeat_interval: heartbeat,
            election_timeout_min: election,
            election_timeout_max: election * 2,
            rpc_timeout: (heartbeat * 5).max(Duration::from_millis(500)),
            ..GroupConfig::default()
        };
        let defaults = ApiLimits::default();
        let limits = ApiLimits {
            max_key_bytes: self.max_key_bytes.unwrap_or(defaults.max_key_bytes),
            max_value_bytes: self.max_value_bytes.unwrap_or(defaults.max_value_bytes),
            max_scan_limit: self.max_scan_limit.unwrap_or(defaults.max_scan_limit),
            ..defaults
        };
        let engine_limits = elastickv_engine_api::Limits::DEFAULT;
        if limits.max_key_bytes == 0 || limits.max_key_bytes + 64 > engine_limits.max_key_size {
            return Err(format!(
                "--max-key-bytes must be in [1, {}]",
                engine_limits.max_key_size - 64
            ));
        }
        if limits.max_value_bytes > engine_limits.max_value_size {
            return Err(format!(
                "--max-value-bytes must be at most {}",
                engine_limits.max_value_size
            ));
        }
        let background = BackgroundConfig {
            gc_retention: Duration::from_secs(self.gc_retention_secs.unwrap_or(600)),
            ..BackgroundConfig::default()
        };
        Ok(NodeSettings {
            cluster: ClusterConfig {
                node_id: id,
                advertise,
                peer_source_ip: self.peer_source_ip,
                data_dir,
                groups: (0..groups).collect(),
                split_keys,
                initial_members,
                raft,
                raft_stream,
                forward_attempts: 3,
                forward_timeout: Duration::from_secs(5),
                forward_backoff: Duration::from_millis(50),
                engine_name: self.engine_name(),
            },
            listen,
            metrics_listen: self.metrics_listen,
            join: self.join.clone(),
            limits,
            background,
            // Room above the value limit, so that a too-large value gets the API's own
            // InvalidArgument naming the limit rather than a transport error.
            max_message_bytes: limits.max_value_bytes * 2 + limits.max_key_bytes + (1 << 20),
        })
    }

    fn with_initial(mut self, list: String) -> NodeOptions {
        self.initial_cluster = Some(list);
        self
    }
}

/// Parses `1=host:port,2=host:port`.
pub fn parse_members(list: &str) -> Result<BTreeMap<NodeId, String>, String> {
    let mut members = BTreeMap::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (id, addr) = item
            .split_once('=')
            .ok_or_else(|| format!("{item:?} is not ID=HOST:PORT"))?;
        let id: NodeId = id
            .trim()
            .parse()
            .map_err(|_| format!("{id:?} is not a node id"))?;
        if id == 0 {
            return Err("node ids must not be 0".into());
        }
        if members.insert(id, addr.trim().to_string()).is_some() {
            return Err(format!("node {id} is listed twice"));
        }
    }
    if members.is_empty() {
        return Err("the member list is empty".into());
    }
    Ok(members)
}

/// `groups - 1` lowercase letters spread evenly over `a..z`.
pub fn default_split_keys(groups: u64) -> Vec<Vec<u8>> {
    if groups > 26 {
        // Beyond 26 groups: two-byte keys spread over the whole byte range.
        return (1..groups)
            .map(|i| {
                let v = (i * 65536 / groups) as u16;
                v.to_be_bytes().to_vec()
            })
            .collect();
    }
    (1..groups)
        .map(|i| vec![b'a' + (i * 26 / groups) as u8])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_parse_and_bad_lists_are_explained() {
        let m = parse_members("1=127.0.0.1:1, 2=127.0.0.1:2").unwrap();
        assert_eq!(m[&2], "127.0.0.1:2");
        assert!(parse_members("1=a,1=b").unwrap_err().contains("twice"));
        assert!(parse_members("x=a").unwrap_err().contains("node id"));
        assert!(parse_members("0=a").is_err());
        assert!(parse_members("").is_err());
    }

    #[test]
    fn defaults_make_a_single_node_cluster_and_flags_win_over_the_file() {
        let flags = NodeOptions {
            id: Some(1),
            ..NodeOptions::default()
        };
        let file: NodeOptions =
            toml::from_str("id = 7\ngroups = 2\ndata_dir = \"/tmp/x\"").unwrap();
        let s = flags.over(file).settings().unwrap();
        assert_eq!(s.cluster.node_id, 1);
        assert_eq!(s.cluster.groups, vec![0, 1]);
        assert_eq!(s.cluster.split_keys, vec![b"n".to_vec()]);
        assert_eq!(s.cluster.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(s.cluster.initial_members.len(), 1);
        assert!(toml::from_str::<NodeOptions>("nosuch = 1").is_err());
    }

    #[test]
    fn inconsistent_settings_are_refused() {
        let base = NodeOptions {
            id: Some(1),
            ..NodeOptions::default()
        };
        let mut o = base.clone();
        o.initial_cluster = Some("2=127.0.0.1:5".into());
        assert!(o.settings().unwrap_err().contains("does not list"));
        let mut o = base.clone();
        o.groups = Some(0);
        assert!(o.settings().is_err());
        let mut o = base.clone();
        o.max_key_bytes = Some(1 << 30);
        assert!(o.settings().is_err());
        let mut o = base;
        o.id = Some(0);
        assert!(o.settings().is_err());
    }

    #[test]
    fn the_raft_log_placement_is_chosen_by_name_and_checked() {
        let storage = |text: &str| {
            let o: NodeOptions = toml::from_str(&format!("id = 1\n{text}")).unwrap();
            o.settings().map(|s| s.cluster.raft.log_storage)
        };
        assert_eq!(storage(""), Ok(LogStorage::Shared), "the default");
        assert_eq!(storage("raft_log = \"shared\""), Ok(LogStorage::Shared));
        assert_eq!(storage("raft_log = \"group\""), Ok(LogStorage::Files));
        assert_eq!(storage("raft_log = \"engine\""), Ok(LogStorage::Engine));
        let e = storage("raft_log = \"disk\"").unwrap_err();
        assert!(
            e.contains("\"disk\"") && e.contains("shared, group, engine"),
            "{e}"
        );
        let e = storage("engine = \"mem\"\nraft_log = \"group\"").unwrap_err();
        assert!(e.contains("--engine mem"), "{e}");
        assert!(storage("engine = \"mem\"\nraft_log = \"engine\"").is_ok());
    }

    #[test]
    fn the_raft_transport_is_chosen_by_name_and_checked() {
        let streams = |text: &str| {
            let o: NodeOptions = toml::from_str(&format!("id = 1\n{text}")).unwrap();
            o.settings().map(|s| s.cluster.raft_stream)
        };
        assert_eq!(streams(""), Ok(true), "the default");
        assert_eq!(streams("raft_transport = \"stream\""), Ok(true));
        assert_eq!(streams("raft_transport = \"unary\""), Ok(false));
        let e = streams("raft_transport = \"udp\"").unwrap_err();
        assert!(e.contains("\"udp\"") && e.contains("stream, unary"), "{e}");
    }

    #[test]
    fn peer_connections_leave_from_the_given_ip() {
        let o: NodeOptions = toml::from_str("id = 2\npeer_source_ip = \"127.0.0.12\"").unwrap();
        let s = o.settings().unwrap();
        assert_eq!(
            s.cluster.peer_source_ip,
            Some("127.0.0.12".parse().unwrap())
        );
        let s = NodeOptions {
            id: Some(1),
            ..NodeOptions::default()
        }
        .settings()
        .unwrap();
        assert_eq!(s.cluster.peer_source_ip, None, "the OS chooses by default");
    }

    #[test]
    fn default_split_keys_are_ascending() {
        for groups in [1, 2, 3, 10, 26, 27, 100] {
            let keys = default_split_keys(groups);
            assert_eq!(keys.len() as u64, groups - 1);
            assert!(keys.windows(2).all(|w| w[0] < w[1]), "{groups}");
        }
    }
}
