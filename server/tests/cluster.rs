//! Real `elastickv` processes on loopback ports: bootstrap, writes through any node,
//! kill -9 of each group's leader, restart and catch-up, a fourth node, range splits,
//! cross-group transactions, bad input.

mod common;

use std::collections::BTreeMap;

use common::{bounded, code_of, retrying, TestCluster};
use elastickv_server::pb::api;
use elastickv_server::pb::api::raw_kv_client::RawKvClient;
use elastickv_server::pb::api::transactional_kv_client::TransactionalKvClient;
use elastickv_server::pb::cluster::admin_client::AdminClient;
use elastickv_server::pb::cluster::TransferLeaderRequest;
use tonic::Code;

const ENGINE: &str = "redb";

/// Keys spread over the three default ranges ("" .. "i" .. "r" ..).
fn key(i: usize) -> String {
    let prefix = ["apple", "kiwi", "tomato"][i % 3];
    format!("{prefix}-{i:04}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_serve_writes_and_reads_through_any_node() {
    bounded(async {
        let mut cluster = TestCluster::start(3, ENGINE).await;
        for i in 0..12 {
            let writer = (i % 3) as u64 + 1;
            let mut c = cluster.client(writer).await;
            c.put(key(i).as_bytes(), format!("v{i}").as_bytes())
                .await
                .expect("put");
        }
        for reader in 1..=3 {
            let mut c = cluster.client(reader).await;
            for i in 0..12 {
                assert_eq!(
                    c.get(key(i).as_bytes()).await.expect("get"),
                    Some(format!("v{i}").into_bytes()),
                    "node {reader} reads {}",
                    key(i)
                );
            }
            let all = c.scan(b"", b"", 100).await.expect("scan");
            assert_eq!(all.len(), 12, "a scan across the three groups");
            assert!(all.windows(2).all(|w| w[0].0 < w[1].0), "ascending");
            let few = c.scan(b"b", b"z", 5).await.expect("scan");
            assert_eq!(few.len(), 5);
        }
        // Deletes, and the raw API beside the transactional one.
        let mut c = cluster.client(2).await;
        c.delete(key(0).as_bytes()).await.expect("delete");
        assert_eq!(
            cluster
                .client(3)
                .await
                .get(key(0).as_bytes())
                .await
                .unwrap(),
            None
        );
        let mut raw = RawKvClient::connect(format!("http://{}", cluster.addr(3)))
            .await
            .unwrap();
        let put = raw
            .raw_put(api::RawPutRequest {
                key: b"raw-k".to_vec(),
                value: b"raw-v".to_vec(),
                ttl_ms: 0,
            })
            .await
            .unwrap()
            .into_inner();
        assert!(put.success && put.commit_index > 0 && put.commit_ts > 0);
        let got = raw
            .raw_get(api::RawGetRequest {
                key: b"raw-k".to_vec(),
                ts: 0,
            })
            .await
            .unwrap()
            .into_inner();
        assert!(got.exists);
        assert_eq!(got.value, b"raw-v");
        let latest = raw
            .raw_latest_commit_ts(api::RawLatestCommitTsRequest {
                key: b"raw-k".to_vec(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!((latest.ts, latest.exists), (put.commit_ts, true));
        // A read at a timestamp before the write does not see it.
        let before = raw
            .raw_get(api::RawGetRequest {
                key: b"raw-k".to_vec(),
                ts: put.commit_ts - 1,
            })
            .await
            .unwrap()
            .into_inner();
        assert!(!before.exists);
        let reversed = raw
            .raw_scan_at(api::RawScanAtRequest {
                start_key: Vec::new(),
                end_key: Vec::new(),
                limit: 3,
                ts: 0,
                reverse: true,
            })
            .await
            .unwrap()
            .into_inner()
            .kv;
        assert_eq!(reversed.len(), 3);
        assert!(
            reversed.windows(2).all(|w| w[0].key > w[1].key),
            "descending"
        );
        assert!(
            reversed[0].key.starts_with(b"tomato"),
            "the last group first"
        );
        // A raw batch is split by group, each part applied atomically.
        let batch = raw
            .raw_batch(api::RawBatchRequest {
                mutations: ["apple-b", "kiwi-b", "tomato-b", "raw-k"]
                    .iter()
                    .map(|k| api::RawMutation {
                        key: k.as_bytes().to_vec(),
                        value: b"batched".to_vec(),
                        delete: *k == "raw-k",
                        ttl_ms: 0,
                    })
                    .collect(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(batch.results.len(), 4);
        assert!(
            batch.results.iter().all(|r| r.error.is_empty()),
            "{:?}",
            batch.results
        );
        let groups: std::collections::BTreeSet<u64> =
            batch.results.iter().map(|r| r.group_id).collect();
        assert_eq!(groups.len(), 3, "three groups took part");
        for (k, exists) in [("apple-b", true), ("tomato-b", true), ("raw-k", false)] {
            let got = raw
                .raw_get(api::RawGetRequest {
                    key: k.as_bytes().to_vec(),
                    ts: 0,
                })
                .await
                .unwrap()
                .into_inner();
            assert_eq!(got.exists, exists, "{k}");
        }
        let e = raw
            .raw_batch(api::RawBatchRequest { mutations: vec![] })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument);
        let status = cluster.client(1).await.status().await.unwrap();
        assert_eq!(status.groups.len(), 3);
        assert_eq!(status.nodes.len(), 3);
        assert!(status
            .groups
            .iter()
            .all(|g| g.leader_id != 0 && g.voters.len() == 3));

        // A routing client: single-key requests go to each key's leader, learned
        // through the node it connected to.
        let mut routed = cluster.client(2).await.with_leader_routing();
        for i in 0..12 {
            routed
                .put(key(i).as_bytes(), format!("routed{i}").as_bytes())
                .await
                .expect("routed put");
        }
        let mut plain = cluster.client(3).await;
        for i in 0..12 {
            let k = key(i);
            assert_eq!(
                plain.get(k.as_bytes()).await.unwrap(),
                Some(format!("routed{i}").into_bytes())
            );
            let route = plain.route(k.as_bytes()).await.unwrap();
            assert_eq!(
                routed.routed_leader(k.as_bytes()).await,
                Some(route.leader_addr),
                "the client knows {k}'s leader"
            );
        }
        // Every single-key request of a routing client goes through its key's leader
        // and does what it does through any node.
        for i in 0..6 {
            let k = format!("{}-raw", key(i)); // in each group, as `key` spreads them
            routed
                .raw_put(k.as_bytes(), format!("raw{i}").as_bytes())
                .await
                .expect("routed raw put");
            assert_eq!(
                routed.raw_get(k.as_bytes()).await.expect("routed raw get"),
                Some(format!("raw{i}").into_bytes())
            );
            assert_eq!(
                plain.raw_get(k.as_bytes()).await.expect("raw get"),
                Some(format!("raw{i}").into_bytes())
            );
        }
        for i in 0..6 {
            let k = key(i);
            assert_eq!(
                routed.get(k.as_bytes()).await.expect("routed get"),
                Some(format!("routed{i}").into_bytes())
            );
        }
        routed
            .delete(key(11).as_bytes())
            .await
            .expect("routed delete");
        assert_eq!(plain.get(key(11).as_bytes()).await.unwrap(), None);
        assert_eq!(routed.get(key(11).as_bytes()).await.unwrap(), None);
        // The leader of the first key's group crashes: a routing client that knew it
        // finds it unreachable, and its request goes through its own node instead.
        let route = plain.route(key(0).as_bytes()).await.unwrap();
        let group = route.route.expect("a route").group_id;
        let old = cluster.leader_of(group).await;
        let via = (1..=3).find(|&n| n != old).expect("another node");
        let mut routed = cluster.client(via).await.with_leader_routing();
        routed.put(key(0).as_bytes(), b"before").await.unwrap();
        assert_eq!(
            routed.routed_leader(key(0).as_bytes()).await,
            Some(cluster.addr(old))
        );
        cluster.kill(old);
        // Until a new leader is elected the put is refused (Unavailable), as through
        // any client; then it succeeds.
        retrying(|| {
            let mut c = routed.clone();
            async move { c.put(key(0).as_bytes(), b"after the crash").await }
        })
        .await
        .expect("a put whose leader is gone");
        let value = retrying(|| {
            let mut c = routed.clone();
            async move { c.get(key(0).as_bytes()).await }
        })
        .await
        .expect("a get");
        assert_eq!(value, Some(b"after the crash".to_vec()));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_each_groups_leader_loses_no_acknowledged_write() {
    bounded(async {
        // Node 3 sends its Raft messages as unary calls, the others on streams: both
        // kinds meet, and the streams to a killed node break and are opened again.
        let mut cluster = TestCluster::start_with(3, ENGINE, |id| {
            if id == 3 {
                vec!["--raft-transport".into(), "unary".into()]
            } else {
                Vec::new()
            }
        })
        .await;
        let mut acked: BTreeMap<String, String> = BTreeMap::new();
        let mut next = 0usize;
        for group in 0..3u64 {
            let leader = cluster.leader_of(group).await;
            // Acknowledged writes before the crash...
            let mut c = cluster.client(cluster.live_other_than(leader)).await;
            for _ in 0..9 {
                let (k, v) = (key(next), format!("g{group}-{next}"));
                c.put(k.as_bytes(), v.as_bytes()).await.expect("put");
                acked.insert(k, v);
                next += 1;
            }
            cluster.kill(leader);
            // ... survive it, and the cluster keeps taking writes.
            let survivor = cluster.live_other_than(leader);
            for _ in 0..6 {
                let (k, v) = (key(next), format!("after-{next}"));
                let mut c = cluster.client(survivor).await;
                retrying(|| {
                    let (k, v) = (k.clone(), v.clone());
                    let mut c = c.clone();
                    async move { c.put(k.as_bytes(), v.as_bytes()).await }
                })
                .await
                .expect("a write while a node is down");
                acked.insert(k, v);
                next += 1;
                let _ = &mut c;
            }
            let mut c = cluster.client(survivor).await;
            for (k, v) in &acked {
                let got = retrying(|| {
                    let mut c = c.clone();
                    let k = k.clone();
                    async move { c.get(k.as_bytes()).await }
                })
                .await
                .expect("read");
                assert_eq!(
                    got.as_deref(),
                    Some(v.as_bytes()),
                    "{k} after killing node {leader}"
                );
            }
            let _ = &mut c;
            // The killed node restarts with the same command and catches up.
            cluster.restart(leader);
            cluster.wait_serving(leader).await;
            let mut back = cluster.client(leader).await;
            for (k, v) in &acked {
                let got = retrying(|| {
                    let mut c = back.clone();
                    let k = k.clone();
                    async move { c.get(k.as_bytes()).await }
                })
                .await
                .expect("read through the restarted node");
                assert_eq!(
                    got.as_deref(),
                    Some(v.as_bytes()),
                    "{k} through restarted node {leader}"
                );
            }
            let _ = &mut back;
        }
    })
    .await;
}

/// What node `id` reports of `group`.
async fn group_status(
    cluster: &TestCluster,
    id: u64,
    group: u64,
) -> elastickv_server::pb::cluster::GroupStatus {
    let mut c = cluster.client(id).await;
    let status = c.status().await.expect("status");
    status
        .groups
        .into_iter()
        .find(|g| g.group_id == group)
        .expect("the group")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leadership_moves_on_request_sent_to_any_node() {
    bounded(async {
        let cluster = TestCluster::start(3, ENGINE).await;
        let group = 1;
        let old = cluster.leader_of(group).await;
        let others: Vec<u64> = (1..=3).filter(|&n| n != old).collect();
        let (target, relay) = (others[0], others[1]);
        let admin = |id: u64| AdminClient::connect(format!("http://{}", cluster.addr(id)));

        // Sent to a node that neither leads nor is named: it passes the request on.
        admin(relay)
            .await
            .expect("connect")
            .transfer_leader(TransferLeaderRequest {
                group_id: group,
                node_id: target,
            })
            .await
            .expect("leadership moves to the named node");
        // The old leader answered once it saw the target lead.
        let seen = group_status(&cluster, old, group).await;
        assert_eq!(seen.leader_id, target, "{seen:?}");
        assert_eq!(seen.role, "follower", "{seen:?}");

        // Sent to the node that should lead (node_id 0): it answers once it leads.
        admin(old)
            .await
            .expect("connect")
            .transfer_leader(TransferLeaderRequest {
                group_id: group,
                node_id: 0,
            })
            .await
            .expect("leadership moves back");
        assert_eq!(group_status(&cluster, old, group).await.role, "leader");

        // A node that is not a voter cannot lead.
        let e = admin(target)
            .await
            .expect("connect")
            .transfer_leader(TransferLeaderRequest {
                group_id: group,
                node_id: 42,
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{}", e.message());
        assert!(e.message().contains("not a voter"), "{}", e.message());

        // The group takes writes through any node afterwards.
        for id in 1..=3 {
            let mut c = cluster.client(id).await;
            let k = format!("kiwi-moved-{id}");
            retrying(|| {
                let mut c = c.clone();
                let k = k.clone();
                async move { c.put(k.as_bytes(), b"v").await }
            })
            .await
            .expect("a write after the transfers");
            let _ = &mut c;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_group_transactions_are_atomic_and_conflicts_abort() {
    bounded(async {
        let cluster = TestCluster::start(3, ENGINE).await;
        let mut c = cluster.client(1).await;
        c.put(b"alice", b"100").await.unwrap();
        c.put(b"zed", b"0").await.unwrap();
        // A transfer across groups 0 and 2.
        let mut t = c.begin().await.unwrap();
        let a: u64 = String::from_utf8(t.get(b"alice").await.unwrap().unwrap())
            .unwrap()
            .parse()
            .unwrap();
        t.put(b"alice", (a - 30).to_string().as_bytes());
        t.put(b"zed", b"30");
        t.commit().await.expect("commit across groups");
        let mut other = cluster.client(3).await;
        assert_eq!(other.get(b"alice").await.unwrap(), Some(b"70".to_vec()));
        assert_eq!(other.get(b"zed").await.unwrap(), Some(b"30".to_vec()));

        // Two transactions writing the same keys: the second to commit aborts.
        let mut t1 = c.begin().await.unwrap();
        let mut t2 = other.begin().await.unwrap();
        t1.put(b"alice", b"1");
        t1.put(b"zed", b"1");
        t2.put(b"alice", b"2");
        t2.put(b"zed", b"2");
        t1.commit().await.expect("first commit");
        let e = t2.commit().await.expect_err("the second must abort");
        assert_eq!(code_of(&e), Code::Aborted, "{e}");
        assert_eq!(other.get(b"alice").await.unwrap(), Some(b"1".to_vec()));
        assert_eq!(other.get(b"zed").await.unwrap(), Some(b"1".to_vec()));

        // Serializable: a read key written by someone else after our start aborts us.
        let mut reader = c.begin_with(api::Isolation::Serializable).await.unwrap();
        let _ = reader.get(b"alice").await.unwrap();
        other.put(b"alice", b"changed").await.unwrap();
        reader.put(b"kiwi-audit", b"saw alice");
        let e = reader.commit().await.expect_err("read-write conflict");
        assert_eq!(code_of(&e), Code::Aborted, "{e}");
        assert_eq!(
            other.get(b"kiwi-audit").await.unwrap(),
            None,
            "nothing half-written"
        );

        // Client-driven Percolator: PreWrite, Commit, Rollback.
        let mut txn = TransactionalKvClient::connect(format!("http://{}", cluster.addr(2)))
            .await
            .unwrap();
        let start_ts = c.timestamp().await.unwrap();
        let prewrite = txn
            .pre_write(api::PreWriteRequest {
                mutations: vec![
                    api::Kv {
                        error: None,
                        key: b"book".to_vec(),
                        value: b"b1".to_vec(),
                    },
                    api::Kv {
                        error: None,
                        key: b"shelf".to_vec(),
                        value: b"s1".to_vec(),
                    },
                ],
                start_ts,
                lock_ttl: 10_000,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(prewrite.errors.is_empty(), "{:?}", prewrite.errors);
        // Locked, not yet visible: a read waits or reports the lock, never the value.
        let mut quick = cluster.client(3).await;
        let seen = quick.get(b"shelf").await;
        assert!(
            matches!(&seen, Ok(None)) || seen.as_ref().is_err_and(|e| code_of(e) == Code::Aborted),
            "{seen:?}"
        );
        let commit = txn
            .commit(api::CommitRequest {
                start_ts,
                keys: vec![b"book".to_vec(), b"shelf".to_vec()],
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(commit.success, "{:?}", commit.errors);
        assert!(commit.commit_ts > start_ts);
        assert_eq!(quick.get(b"book").await.unwrap(), Some(b"b1".to_vec()));
        assert_eq!(quick.get(b"shelf").await.unwrap(), Some(b"s1".to_vec()));

        let start_ts = c.timestamp().await.unwrap();
        let prewrite = txn
            .pre_write(api::PreWriteRequest {
                mutations: vec![api::Kv {
                    error: None,
                    key: b"book".to_vec(),
                    value: b"b2".to_vec(),
                }],
                delete_keys: vec![b"shelf".to_vec()],
                start_ts,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(prewrite.errors.is_empty(), "{:?}", prewrite.errors);
        // Rollback finds the transaction's locks itself when given only start_ts.
        let rolled = txn
            .rollback(api::RollbackRequest {
                start_ts,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(rolled.success);
        assert_eq!(quick.get(b"book").await.unwrap(), Some(b"b1".to_vec()));
        assert_eq!(quick.get(b"shelf").await.unwrap(), Some(b"s1".to_vec()));
        // A commit after the rollback fails in-band.
        let late = txn
            .commit(api::CommitRequest {
                start_ts,
                keys: vec![b"book".to_vec(), b"shelf".to_vec()],
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(!late.success && !late.errors.is_empty());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_status_and_the_server_keeps_serving() {
    bounded(async {
        let cluster = TestCluster::start(3, ENGINE).await;
        let url = format!("http://{}", cluster.addr(1));
        let mut raw = RawKvClient::connect(url.clone()).await.unwrap();
        let mut txn = TransactionalKvClient::connect(url.clone()).await.unwrap();

        let big_key = raw
            .raw_put(api::RawPutRequest {
                key: vec![b'k'; 5000],
                value: b"v".to_vec(),
                ttl_ms: 0,
            })
            .await
            .unwrap_err();
        assert_eq!(big_key.code(), Code::InvalidArgument);
        assert!(
            big_key.message().contains("key size limit"),
            "{}",
            big_key.message()
        );
        let empty_key = txn
            .put(api::PutRequest {
                key: Vec::new(),
                value: b"v".to_vec(),
            })
            .await
            .unwrap_err();
        assert_eq!(empty_key.code(), Code::InvalidArgument);
        let big_value = txn
            .put(api::PutRequest {
                key: b"k".to_vec(),
                value: vec![0; 17 * 1024 * 1024],
            })
            .await
            .unwrap_err();
        assert_eq!(
            big_value.code(),
            Code::InvalidArgument,
            "{}",
            big_value.message()
        );
        for limit in [-1i64, 1025, i64::MAX] {
            let e = raw
                .raw_scan_at(api::RawScanAtRequest {
                    limit,
                    ..Default::default()
                })
                .await
                .unwrap_err();
            assert_eq!(e.code(), Code::InvalidArgument, "limit {limit}");
            assert!(e.message().contains("scan limit"), "{}", e.message());
        }
        let zero = raw
            .raw_scan_at(api::RawScanAtRequest {
                limit: 0,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(zero.kv.is_empty(), "limit 0 returns nothing");
        let e = txn
            .scan(api::ScanRequest {
                limit: 5000,
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument);
        let e = txn
            .txn_get(api::TxnGetRequest {
                start_ts: u64::MAX,
                key: b"k".to_vec(),
            })
            .await
            .unwrap_err();
        assert_eq!(
            e.code(),
            Code::InvalidArgument,
            "a read timestamp in the future"
        );
        let e = txn
            .pre_write(api::PreWriteRequest {
                start_ts: 5,
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "a prewrite of nothing");
        let mut admin = AdminClient::connect(url.clone()).await.unwrap();
        let e = admin
            .transfer_leader(TransferLeaderRequest {
                group_id: 99,
                node_id: 0,
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::NotFound, "an unknown group");

        // Garbage bytes where a protobuf message should be.
        let channel = tonic::transport::Endpoint::from_shared(url.clone())
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut grpc = tonic::client::Grpc::new(channel);
        grpc.ready().await.unwrap();
        let e = grpc
            .unary(
                tonic::Request::new(vec![0xff, 0xff, 0xff, 0xff, 0x0f]),
                tonic::codegen::http::uri::PathAndQuery::from_static("/RawKV/RawPut"),
                RawBytes,
            )
            .await
            .unwrap_err();
        // gRPC's status code table maps undecodable messages to INTERNAL.
        assert_eq!(e.code(), Code::Internal, "{}", e.message());
        assert!(e.message().contains("decode"), "{}", e.message());

        // Still serving, nothing half-written.
        let mut c = cluster.client(1).await;
        c.put(b"still", b"here").await.unwrap();
        assert_eq!(c.get(b"still").await.unwrap(), Some(b"here".to_vec()));
        assert_eq!(c.get(b"k").await.unwrap(), None);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_split_and_a_fourth_node_joins() {
    bounded(async {
        let mut cluster = TestCluster::start(3, ENGINE).await;
        let mut c = cluster.client(1).await;
        for i in 0..9 {
            c.put(key(i).as_bytes(), b"x").await.unwrap();
        }
        let split = c.split(b"kiwi-0005").await.expect("split");
        assert_eq!(split.routes.len(), 4);
        assert_eq!(split.version, 2);
        let e = c
            .split(b"kiwi-0005")
            .await
            .expect_err("split at a boundary");
        assert_eq!(code_of(&e), Code::FailedPrecondition, "{e}");
        // Every node learns the new table and keeps serving both halves.
        for id in 1..=3 {
            let mut n = cluster.client(id).await;
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while n.routes().await.unwrap().version < 2 {
                assert!(
                    std::time::Instant::now() < deadline,
                    "node {id} keeps the old table"
                );
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            assert_eq!(n.scan(b"", b"", 100).await.unwrap().len(), 9);
            n.put(b"kiwi-0007", b"y").await.unwrap();
        }

        cluster.join(4, 2).await;
        cluster.wait_serving(4).await;
        let mut four = cluster.client(4).await;
        assert_eq!(four.get(b"kiwi-0007").await.unwrap(), Some(b"y".to_vec()));
        four.put(b"tomato-new", b"from four").await.unwrap();
        let status = four.status().await.unwrap();
        assert_eq!(status.nodes.len(), 4);
        for g in &status.groups {
            assert_eq!(
                g.voters.len(),
                4,
                "group {} voters {:?}",
                g.group_id,
                g.voters
            );
        }
        assert_eq!(
            c.get(b"tomato-new").await.unwrap(),
            Some(b"from four".to_vec())
        );
    })
    .await;
}

/// Sends bytes as they are.
#[derive(Debug, Clone, Copy)]
struct RawBytes;

impl tonic::codec::Codec for RawBytes {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawBytes;
    type Decoder = RawBytes;

    fn encoder(&mut self) -> Self::Encoder {
        RawBytes
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawBytes
    }
}

impl tonic::codec::Encoder for RawBytes {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        bytes::BufMut::put_slice(dst, &item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawBytes {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Vec<u8>>, tonic::Status> {
        let n = bytes::Buf::remaining(src);
        Ok(Some(bytes::Buf::copy_to_bytes(src, n).to_vec()))
    }
}
