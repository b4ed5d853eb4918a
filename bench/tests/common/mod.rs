//! What the load generator's tests against elastickv and against etcd share.

use std::time::Duration;

use elastickv_bench::load::{Config, Limit, Workload};

/// The key space every test run uses.
pub const KEYS: u64 = 1000;

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// `workload` against `addr`: 4 clients for about a second over [`KEYS`] keys.
pub fn config(addr: &str, workload: Workload) -> Config {
    Config {
        workload,
        endpoints: vec![addr.to_string()],
        clients: 4,
        conns: 4,
        limit: Limit::Duration(Duration::from_secs(1)),
        keys: KEYS,
        progress: false,
        ..Config::default()
    }
}
