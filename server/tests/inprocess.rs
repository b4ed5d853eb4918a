//! In-process nodes (mem engine), where a test can look at a node's counters: the
//! timestamp path coalesces concurrent requests into few oracle calls, every request
//! still getting its own fresh range; single-key writes sent to a follower are served
//! whole by the key's leader.

use std::time::{Duration, Instant};

use elastickv_engine_api::EngineError;
use elastickv_engine_mem::MemEngine;
use elastickv_server::client::Client;
use elastickv_server::config::NodeOptions;
use elastickv_server::pb::api;
use elastickv_server::pb::api::transactional_kv_client::TransactionalKvClient;
use elastickv_server::run::{start_node, RunningNode};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_timestamp_requests_share_oracle_calls_and_never_overlap() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let dir = tempfile::tempdir().expect("tempdir");
        let addr = format!("127.0.0.1:{}", free_port());
        let node = start_mem_node(1, &addr, dir.path(), None).await;
        let cluster = node.cluster().clone();
        // The first timestamp once the node leads the default group.
        cluster
            .node()
            .group(0)
            .expect("the default group")
            .wait_for(Duration::from_secs(60), "a leader", |s| {
                s.role == elastickv_raft::Role::Leader
            })
            .await
            .expect("the node elects itself");
        let mut previous = cluster.timestamps(1).await.expect("a timestamp");

        // Sequential requests: strictly increasing, and a range of `count` is reserved.
        for count in [1u32, 2, 5, 1000] {
            let first = cluster.timestamps(count).await.expect("timestamps");
            assert!(first > previous, "{first} after {previous}");
            previous = first + u64::from(count) - 1;
        }

        // Concurrent requests: disjoint ranges, all above what came before, in fewer
        // oracle calls than requests.
        let before = cluster.counters();
        let requests = 512u32;
        let tasks: Vec<_> = (0..requests)
            .map(|i| {
                let cluster = cluster.clone();
                let count = 1 + i % 3;
                tokio::spawn(async move { (cluster.timestamps(count).await, count) })
            })
            .collect();
        let mut ranges = Vec::new();
        for task in tasks {
            let (first, count) = task.await.expect("task");
            let first = first.expect("timestamps");
            assert!(first > previous, "a fresh range: {first} after {previous}");
            ranges.push((first, first + u64::from(count) - 1));
        }
        ranges.sort_unstable();
        for pair in ranges.windows(2) {
            assert!(pair[0].1 < pair[1].0, "overlapping ranges {pair:?}");
        }
        let after = cluster.counters();
        let made = after.tso_requests - before.tso_requests;
        let calls = after.tso_calls - before.tso_calls;
        assert_eq!(made, u64::from(requests));
        assert!(
            calls < made,
            "{made} concurrent requests took {calls} oracle calls"
        );
        println!("{made} concurrent requests, {calls} oracle calls");
        node.shutdown().await;
    })
    .await
    .expect("the test exceeded its time limit");
}

/// The oracle confirms its leadership with a quorum round once per half lease, not once
/// per call: many calls in a row make one round, and a call after the lease ran out
/// makes another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_oracle_confirms_its_leadership_once_per_lease() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let dir = tempfile::tempdir().expect("tempdir");
        let nodes = start_three(dir.path()).await;
        // The node that serves timestamps: the default group's leader.
        let status = nodes[0]
            .cluster()
            .node()
            .group(0)
            .expect("the default group")
            .wait_for(Duration::from_secs(60), "a leader", |s| s.leader.is_some())
            .await
            .expect("the nodes elect a leader");
        let leader = nodes
            .iter()
            .map(|n| n.cluster().clone())
            .find(|c| Some(c.config().node_id) == status.leader)
            .expect("the leader is one of the nodes");
        // Background tasks of every node (lock resolution, GC) take timestamps too and
        // may renew the lease meanwhile: the counts below allow for that.
        let lease = leader
            .node()
            .group(0)
            .expect("the default group")
            .leader_lease();
        // 200 calls one after another: a round when the lease runs out, not one a call.
        let before = leader.counters();
        let mut previous = 0;
        for _ in 0..200 {
            let ts = leader.local_timestamp(1).await.expect("a timestamp");
            assert!(ts > previous);
            previous = ts;
        }
        let checks = leader.counters().tso_leadership_checks - before.tso_leadership_checks;
        assert!(checks <= 2, "200 calls made {checks} quorum rounds");
        // Once the lease runs out, the next call confirms leadership again: one round
        // (or two, should a background task's call come at the same moment).
        let until = leader.tso_lease_until().expect("a lease after those calls");
        let before = leader.counters();
        tokio::time::sleep_until(until.into()).await;
        let ts = leader.local_timestamp(1).await.expect("a timestamp");
        assert!(ts > previous);
        let checks = leader.counters().tso_leadership_checks - before.tso_leadership_checks;
        assert!(
            (1..=2).contains(&checks),
            "a call after the lease ran out made {checks} quorum rounds"
        );
        let renewed = leader.tso_lease_until().expect("a renewed lease");
        assert!(renewed > until, "the lease was renewed");
        assert!(renewed - until <= lease, "by half a lease from the renewal");
        for node in nodes {
            node.shutdown().await;
        }
    })
    .await
    .expect("the test exceeded its time limit");
}

async fn start_three(dir: &std::path::Path) -> Vec<RunningNode<MemEngine>> {
    let addrs: Vec<String> = (0..3)
        .map(|_| format!("127.0.0.1:{}", free_port()))
        .collect();
    let initial = addrs
        .iter()
        .enumerate()
        .map(|(i, a)| format!("{}={a}", i + 1))
        .collect::<Vec<_>>()
        .join(",");
    let mut nodes = Vec::new();
    for (i, addr) in addrs.iter().enumerate() {
        let id = i as u64 + 1;
        let data = dir.join(format!("n{id}"));
        nodes.push(start_mem_node(id, addr, &data, Some(initial.clone())).await);
    }
    nodes
}

/// Starts node `id` on the mem engine with one group and fast Raft timers; alone, or
/// as one of `initial_cluster`.
async fn start_mem_node(
    id: u64,
    addr: &str,
    dir: &std::path::Path,
    initial_cluster: Option<String>,
) -> RunningNode<MemEngine> {
    let settings = NodeOptions {
        id: Some(id),
        listen: Some(addr.parse().expect("addr")),
        data_dir: Some(dir.to_path_buf()),
        engine: Some("mem".into()),
        initial_cluster,
        groups: Some(1),
        heartbeat_ms: Some(50),
        election_timeout_ms: Some(300),
        ..NodeOptions::default()
    }
    .settings()
    .expect("settings");
    start_node(settings, |_: &std::path::Path| {
        Ok::<_, EngineError>(MemEngine::new())
    })
    .await
    .expect("start a node")
}

/// The index in `nodes` of a follower that knows the leader of group 0, once there is
/// one and every node serves reads.
async fn a_follower(nodes: &[RunningNode<MemEngine>]) -> usize {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let statuses: Vec<_> = nodes
            .iter()
            .map(|n| n.cluster().node().group(0).expect("group 0").status())
            .collect();
        let leader = statuses
            .iter()
            .find(|s| s.role == elastickv_raft::Role::Leader)
            .map(|s| s.node);
        if let Some(leader) = leader {
            let mut serving = true;
            for n in nodes {
                let addr = n.local_addr().to_string();
                serving &= match Client::connect(&addr).await {
                    Ok(mut c) => c.get(b"probe").await.is_ok(),
                    Err(_) => false,
                };
            }
            let follower = statuses
                .iter()
                .position(|s| s.node != leader && s.leader == Some(leader));
            if let (true, Some(i)) = (serving, follower) {
                return i;
            }
        }
        assert!(Instant::now() < deadline, "the cluster did not form");
        // Poll interval while the cluster forms.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_hands_single_key_writes_whole_to_the_leader() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let dir = tempfile::tempdir().expect("tempdir");
        let nodes = start_three(dir.path()).await;
        let f = a_follower(&nodes).await;
        let follower = &nodes[f];
        let addr = follower.local_addr().to_string();
        let mut client = Client::connect(&addr).await.expect("connect");

        let before = follower.cluster().counters();
        let commit_ts = client.put(b"k", b"v1").await.expect("put via a follower");
        assert_eq!(
            client.get(b"k").await.expect("get").as_deref(),
            Some(&b"v1"[..])
        );
        let delete_ts = client.delete(b"k").await.expect("delete via a follower");
        assert!(delete_ts > commit_ts);
        assert_eq!(client.get(b"k").await.expect("get"), None);
        let after = follower.cluster().counters();
        // The two gets took a timestamp each here; the put and the delete took none
        // (they ran on the leader).
        assert_eq!(
            after.tso_requests - before.tso_requests,
            2,
            "only the reads took timestamps on the follower"
        );

        // A request already forwarded once is served where it lands, never sent on
        // again: here the follower runs it, forwarding its parts.
        let mut raw = TransactionalKvClient::connect(format!("http://{addr}"))
            .await
            .expect("connect");
        let mut request = tonic::Request::new(api::PutRequest {
            key: b"k2".to_vec(),
            value: b"v2".to_vec(),
        });
        request
            .metadata_mut()
            .insert("x-elastickv-forwarded", "1".parse().expect("header"));
        let before = follower.cluster().counters();
        raw.put(request)
            .await
            .expect("a forwarded put served locally");
        let after = follower.cluster().counters();
        assert!(
            after.tso_requests > before.tso_requests,
            "the follower ran it itself"
        );
        assert_eq!(
            client.get(b"k2").await.expect("get").as_deref(),
            Some(&b"v2"[..])
        );
        for node in nodes {
            node.shutdown().await;
        }
    })
    .await
    .expect("the test exceeded its time limit");
}

/// A response larger than HTTP/2's windows (here a 6 MiB scan; the client's stream
/// window is 2 MiB) comes back whole through the Rust client: it hands the window back
/// as it reads (`one_write`), or the server would stop sending halfway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_larger_than_the_windows_arrives_whole() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let dir = tempfile::tempdir().expect("tempdir");
        let addr = format!("127.0.0.1:{}", free_port());
        let node = start_mem_node(1, &addr, &dir.path().join("n1"), None).await;
        // Returns once the node serves: it leads its group and knows the route table.
        node.cluster()
            .ensure_routes()
            .await
            .expect("the node serves");
        let mut client = Client::connect(&addr).await.expect("connect");
        let value = |i: u8| vec![i; 1024 * 1024];
        for i in 0..6u8 {
            client
                .put(format!("big-{i}").as_bytes(), &value(i))
                .await
                .expect("put");
        }
        let pairs = client.scan(b"big-", b"big.", 100).await.expect("scan");
        assert_eq!(pairs.len(), 6);
        for (i, (key, got)) in pairs.iter().enumerate() {
            assert_eq!(key, format!("big-{i}").as_bytes());
            assert!(*got == value(i as u8), "value {i} came back whole");
        }
        node.shutdown().await;
    })
    .await
    .expect("the test exceeded its time limit");
}
