//! A client generated from `tests/fixtures/seed_wire.proto` (the seed system's messages
//! exactly as WIRE.md lists them) works against elastickv unchanged.

mod common;

use common::{bounded, TestCluster};

#[allow(clippy::all, missing_docs, missing_debug_implementations)]
mod seed {
    include!(concat!(env!("OUT_DIR"), "/seed_fixture/_.rs"));
}

use seed::raw_kv_client::RawKvClient;
use seed::transactional_kv_client::TransactionalKvClient;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_built_from_the_seed_contract_works_unchanged() {
    bounded(async {
        let cluster = TestCluster::start(3, "redb").await;
        let url = format!("http://{}", cluster.addr(2));
        let mut raw = RawKvClient::connect(url.clone()).await.unwrap();
        let put = raw
            .raw_put(seed::RawPutRequest {
                key: b"seed-raw".to_vec(),
                value: b"1".to_vec(),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(put.success && put.commit_index > 0);
        let got = raw
            .raw_get(seed::RawGetRequest {
                key: b"seed-raw".to_vec(),
                ts: 0,
            })
            .await
            .unwrap()
            .into_inner();
        assert!(got.exists && got.value == b"1" && got.read_at_index > 0);
        let latest = raw
            .raw_latest_commit_ts(seed::RawLatestCommitTsRequest {
                key: b"seed-raw".to_vec(),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(latest.exists && latest.ts > 0);
        let scan = raw
            .raw_scan_at(seed::RawScanAtRequest {
                start_key: b"seed".to_vec(),
                end_key: Vec::new(),
                limit: 10,
                ts: 0,
                reverse: false,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(scan.kv.len(), 1);
        let deleted = raw
            .raw_delete(seed::RawDeleteRequest {
                key: b"seed-raw".to_vec(),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(deleted.success);

        let mut txn = TransactionalKvClient::connect(url).await.unwrap();
        assert!(
            txn.put(seed::PutRequest {
                key: b"seed-t".to_vec(),
                value: b"2".to_vec(),
            })
            .await
            .unwrap()
            .into_inner()
            .success
        );
        let got = txn
            .get(seed::GetRequest {
                key: b"seed-t".to_vec(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(got.value, b"2");
        let scan = txn
            .scan(seed::ScanRequest {
                start_key: b"seed".to_vec(),
                end_key: b"seee".to_vec(),
                limit: 10,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(scan.kv.len(), 1);
        assert_eq!(scan.kv[0].key, b"seed-t");

        // The seed declared PreWrite/Commit/Rollback but never implemented them.
        let start_ts = cluster.client(1).await.timestamp().await.unwrap();
        let pre = txn
            .pre_write(seed::PreWriteRequest {
                mutations: vec![
                    seed::Kv {
                        error: None,
                        key: b"seed-a".to_vec(),
                        value: b"a".to_vec(),
                    },
                    seed::Kv {
                        error: None,
                        key: b"zz-seed".to_vec(),
                        value: b"z".to_vec(),
                    },
                ],
                start_ts,
                lock_ttl: 5_000,
            })
            .await
            .unwrap()
            .into_inner();
        assert!(pre.errors.is_empty(), "{:?}", pre.errors);
        let commit = txn
            .commit(seed::CommitRequest {
                start_ts,
                keys: vec![b"seed-a".to_vec(), b"zz-seed".to_vec()],
            })
            .await
            .unwrap()
            .into_inner();
        assert!(commit.success, "{:?}", commit.errors);
        let got = txn
            .get(seed::GetRequest {
                key: b"zz-seed".to_vec(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(got.value, b"z");

        let start_ts = cluster.client(1).await.timestamp().await.unwrap();
        let pre = txn
            .pre_write(seed::PreWriteRequest {
                mutations: vec![seed::Kv {
                    error: None,
                    key: b"seed-a".to_vec(),
                    value: b"never".to_vec(),
                }],
                start_ts,
                lock_ttl: 5_000,
            })
            .await
            .unwrap()
            .into_inner();
        assert!(pre.errors.is_empty());
        let rolled = txn
            .rollback(seed::RollbackRequest { start_ts })
            .await
            .unwrap()
            .into_inner();
        assert!(rolled.success);
        let got = txn
            .get(seed::GetRequest {
                key: b"seed-a".to_vec(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(got.value, b"a");
    })
    .await;
}
