//! A small key-value applier: the test stand-in for `txn`'s state machine.
//!
//! Command: `op u8 | key_len u32 BE | key | value` with op 1 = put, 2 = delete. Each
//! command writes at commit timestamp = its log index (deterministic), together with
//! the apply state in one engine write. A malformed command is refused (nothing
//! written) with an error response.

use elastickv_engine_api::{Durability, EngineError, Mutation, MvccEngine, WriteBatch};
use elastickv_raft::{Applied, Applier, ApplyEntry};

/// The test applier.
#[derive(Debug, Default)]
pub struct KvApplier;

/// Encodes a put.
pub fn put(key: &[u8], value: &[u8]) -> Vec<u8> {
    encode(1, key, value)
}

/// Encodes a delete.
#[allow(dead_code)]
pub fn delete(key: &[u8]) -> Vec<u8> {
    encode(2, key, &[])
}

fn encode(op: u8, key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut out = vec![op];
    out.extend_from_slice(&(key.len() as u32).to_be_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(value);
    out
}

fn decode(payload: &[u8]) -> Result<Mutation, String> {
    let (&op, rest) = payload.split_first().ok_or("empty command")?;
    if rest.len() < 4 {
        return Err("short command".into());
    }
    let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
    let rest = &rest[4..];
    if rest.len() < len || len == 0 {
        return Err("bad key length".into());
    }
    let (key, value) = rest.split_at(len);
    match op {
        1 => Ok(Mutation::put(key, value)),
        2 => Ok(Mutation::delete(key)),
        other => Err(format!("unknown op {other}")),
    }
}

impl<E: MvccEngine> Applier<E> for KvApplier {
    type Response = Result<(), String>;

    fn apply(
        &self,
        engine: &E,
        entry: ApplyEntry<'_>,
    ) -> Result<Applied<Self::Response>, EngineError> {
        let mutation = match decode(entry.payload) {
            Ok(m) => m,
            Err(refusal) => {
                return Ok(Applied {
                    response: Err(refusal),
                    wrote_apply_state: false,
                })
            }
        };
        let mutations = [mutation];
        // Unique and increasing per command: (log index, position in the entry).
        let commit_ts = (entry.index << 16) | u64::from(entry.position);
        let batch = WriteBatch::new(&mutations, commit_ts)
            .with_raw(entry.apply_state)
            .with_durability(Durability::Buffered);
        engine.write(&batch)?;
        Ok(Applied {
            response: Ok(()),
            wrote_apply_state: true,
        })
    }
}
