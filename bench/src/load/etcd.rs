//! etcd as a system under test, over its v3 gRPC KV service (`etcdserverpb.KV`): the
//! same workloads as elastickv, through a client generated from `proto/etcd_kv.proto`.
//!
//! - get: `Range` of one key, linearizable (`serializable` off: etcd confirms its
//!   leadership with a ReadIndex round before answering);
//! - put: `Put`;
//! - scan: `Range` from the start key to the end of the key space with a limit;
//! - transaction: optimistic, the way etcd's own STM does it: `Range` each key and note
//!   its `mod_revision` (0 when absent), compute the writes, then one `Txn` whose
//!   comparisons require every key's `mod_revision` unchanged and whose success branch
//!   holds the puts. A failed comparison is a conflict (`Aborted`): nothing was written
//!   and the driver may retry.
//!
//! etcd is not sharded, so [`Target::shards`] keeps its default (empty).

use async_trait::async_trait;
use elastickv_server::one_write::OneWriteChannel;

use super::target::{status_error, Connector, OpError, Target, TxnUpdate};

/// The generated etcd KV messages and client.
#[allow(
    missing_docs,
    clippy::all,
    clippy::pedantic,
    missing_debug_implementations
)]
pub mod pb {
    tonic::include_proto!("etcdserverpb");
}

use pb::compare::{CompareResult, CompareTarget, TargetUnion};
use pb::kv_client::KvClient;
use pb::request_op::Request;

/// Opens connections to etcd members (any member: followers forward writes to the
/// leader, and linearizable reads confirm with it).
#[derive(Debug, Clone, Copy, Default)]
pub struct EtcdConnector;

#[async_trait]
impl Connector for EtcdConnector {
    fn describe(&self) -> String {
        "etcd KV".into()
    }

    async fn connect(&self, endpoint: &str) -> Result<Box<dyn Target>, OpError> {
        let channel = OneWriteChannel::connect(endpoint)
            .await
            .map_err(|e| OpError::new("Connect", e.message()))?;
        Ok(Box::new(Etcd::new(channel)))
    }
}

/// One etcd connection (HTTP/2; each request in one write, as for elastickv: see
/// `elastickv_server::one_write`).
#[derive(Debug, Clone)]
pub struct Etcd {
    kv: KvClient<OneWriteChannel>,
}

impl Etcd {
    /// A target over an open channel to an etcd member.
    pub fn new(channel: OneWriteChannel) -> Etcd {
        Etcd {
            kv: KvClient::new(channel),
        }
    }

    /// A linearizable read of `key`: its value and `mod_revision`, if it exists.
    async fn read(&mut self, key: &[u8]) -> Result<Option<pb::KeyValue>, OpError> {
        let response = self
            .kv
            .range(pb::RangeRequest {
                key: key.to_vec(),
                serializable: false,
                ..Default::default()
            })
            .await
            .map_err(status_error)?;
        Ok(response.into_inner().kvs.into_iter().next())
    }
}

/// The comparison "`key` was last written at revision `mod_revision`" (0: absent).
fn unchanged_since(key: Vec<u8>, mod_revision: i64) -> pb::Compare {
    pb::Compare {
        result: CompareResult::Equal as i32,
        target: CompareTarget::Mod as i32,
        key,
        target_union: Some(TargetUnion::ModRevision(mod_revision)),
        range_end: Vec::new(),
    }
}

fn put_op(key: Vec<u8>, value: Vec<u8>) -> pb::RequestOp {
    pb::RequestOp {
        request: Some(Request::RequestPut(pb::PutRequest {
            key,
            value,
            lease: 0,
        })),
    }
}

#[async_trait]
impl Target for Etcd {
    async fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, OpError> {
        Ok(self.read(key).await?.map(|kv| kv.value))
    }

    async fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), OpError> {
        self.kv
            .put(pb::PutRequest {
                key: key.to_vec(),
                value: value.to_vec(),
                lease: 0,
            })
            .await
            .map_err(status_error)?;
        Ok(())
    }

    async fn scan(&mut self, start: &[u8], limit: usize) -> Result<usize, OpError> {
        let response = self
            .kv
            .range(pb::RangeRequest {
                key: start.to_vec(),
                // "\0": every key from `start` on.
                range_end: vec![0],
                limit: i64::try_from(limit).unwrap_or(i64::MAX),
                serializable: false,
                ..Default::default()
            })
            .await
            .map_err(status_error)?;
        Ok(response.into_inner().kvs.len())
    }

    async fn txn(&mut self, keys: &[Vec<u8>], update: TxnUpdate<'_>) -> Result<(), OpError> {
        let mut values = Vec::with_capacity(keys.len());
        let mut compare = Vec::with_capacity(keys.len());
        for key in keys {
            let kv = self.read(key).await?;
            compare.push(unchanged_since(
                key.clone(),
                kv.as_ref().map_or(0, |kv| kv.mod_revision),
            ));
            values.push(kv.map(|kv| kv.value));
        }
        let success = update(&values)
            .into_iter()
            .map(|(key, value)| put_op(key, value))
            .collect();
        let response = self
            .kv
            .txn(pb::TxnRequest {
                compare,
                success,
                failure: Vec::new(),
            })
            .await
            .map_err(status_error)?;
        if response.into_inner().succeeded {
            Ok(())
        } else {
            Err(OpError::new(
                "Aborted",
                "a key was written between the transaction's reads and its commit",
            ))
        }
    }

    fn share(&self) -> Box<dyn Target> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    /// The bytes etcd expects, written out by hand from its field numbers: a mismatch
    /// in `proto/etcd_kv.proto` would make etcd read other fields than the ones sent.
    #[test]
    fn messages_use_etcds_field_numbers() {
        let range = pb::RangeRequest {
            key: b"k".to_vec(),
            range_end: vec![0],
            limit: 3,
            revision: 4,
            serializable: true,
        };
        // key=1 (bytes), range_end=2 (bytes), limit=3, revision=4, serializable=7.
        assert_eq!(
            range.encode_to_vec(),
            [0x0a, 1, b'k', 0x12, 1, 0, 0x18, 3, 0x20, 4, 0x38, 1]
        );

        let compare = unchanged_since(b"k".to_vec(), 9);
        // result=1 (EQUAL is 0, not sent), target=2 (MOD = 2), key=3, mod_revision=6.
        assert_eq!(compare.encode_to_vec(), [0x10, 2, 0x1a, 1, b'k', 0x30, 9]);
        let not_equal = pb::Compare {
            result: CompareResult::NotEqual as i32,
            target: CompareTarget::Value as i32,
            key: Vec::new(),
            target_union: Some(TargetUnion::Value(b"v".to_vec())),
            range_end: b"z".to_vec(),
        };
        // result=1 (NOT_EQUAL = 3), target=2 (VALUE = 3), value=7, range_end=64.
        assert_eq!(
            not_equal.encode_to_vec(),
            [0x08, 3, 0x10, 3, 0x3a, 1, b'v', 0x82, 0x04, 1, b'z']
        );

        let txn = pb::TxnRequest {
            compare: vec![unchanged_since(Vec::new(), 0)],
            success: vec![put_op(b"k".to_vec(), b"v".to_vec())],
            failure: vec![pb::RequestOp {
                request: Some(Request::RequestRange(pb::RangeRequest::default())),
            }],
        };
        // compare=1 {target=MOD, mod_revision=0}, success=2 {request_put=2 {key=1,
        // value=2}}, failure=3 {request_range=1 {}}.
        assert_eq!(
            txn.encode_to_vec(),
            [
                0x0a, 4, 0x10, 2, 0x30, 0, 0x12, 8, 0x12, 6, 0x0a, 1, b'k', 0x12, 1, b'v', 0x1a, 2,
                0x0a, 0
            ]
        );
    }

    #[test]
    fn responses_decode_from_etcds_field_numbers() {
        // RangeResponse: header=1 {revision=3: 7}, kvs=2 {key=1 "k", create_revision=2:
        // 5, mod_revision=3: 6, version=4: 2, value=5 "v"}, more=3, count=4.
        let bytes = [
            0x0a, 2, 0x18, 7, 0x12, 12, 0x0a, 1, b'k', 0x10, 5, 0x18, 6, 0x20, 2, 0x2a, 1, b'v',
            0x18, 1, 0x20, 9,
        ];
        let r = pb::RangeResponse::decode(&bytes[..]).expect("decodes");
        assert_eq!(r.header.expect("header").revision, 7);
        assert!(r.more);
        assert_eq!(r.count, 9);
        let kv = &r.kvs[0];
        assert_eq!(
            (
                kv.key.as_slice(),
                kv.create_revision,
                kv.mod_revision,
                kv.version,
                kv.value.as_slice()
            ),
            (&b"k"[..], 5, 6, 2, &b"v"[..])
        );

        // TxnResponse: succeeded=2, responses=3 {response_put=2 {}}.
        let r = pb::TxnResponse::decode(&[0x10, 1, 0x1a, 2, 0x12, 0][..]).expect("decodes");
        assert!(r.succeeded);
        assert!(matches!(
            r.responses[0].response,
            Some(pb::response_op::Response::ResponsePut(_))
        ));
    }

    #[test]
    fn the_client_calls_etcds_method_paths() {
        let generated = include_str!(concat!(env!("OUT_DIR"), "/etcdserverpb.rs"));
        for method in ["Range", "Put", "Txn"] {
            assert!(
                generated.contains(&format!("\"/etcdserverpb.KV/{method}\"")),
                "no /etcdserverpb.KV/{method} in the generated client"
            );
        }
    }
}
