//! The adapter to `txn`: its state machine as this crate's [`Applier`], and the
//! timestamp oracle's ceiling persisted through Raft in the default group.

use std::sync::Arc;

use async_trait::async_trait;
use elastickv_engine_api::{Durability, EngineError, MvccEngine};
use elastickv_txn::tso::{CeilingStore, TsoError};
use elastickv_txn::{Command, CommandOutput, Timestamp, TxnError, TxnStateMachine};

use crate::{Applied, Applier, ApplyEntry, Group};

/// `txn`'s deterministic state machine, applied by a Raft group. A command's payload is
/// [`Command::encode`]; its response is what [`TxnStateMachine::apply_with`] returns.
#[derive(Clone)]
pub struct TxnApplier<E: MvccEngine> {
    machine: TxnStateMachine<E>,
}

impl<E: MvccEngine> std::fmt::Debug for TxnApplier<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxnApplier")
            .field("machine", &self.machine)
            .finish()
    }
}

impl<E: MvccEngine> TxnApplier<E> {
    /// The applier of a group whose engine is `engine`.
    pub fn new(engine: Arc<E>) -> Self {
        TxnApplier {
            machine: TxnStateMachine::new(engine),
        }
    }

    /// The state machine (for lock-aware reads after a read barrier).
    pub fn machine(&self) -> &TxnStateMachine<E> {
        &self.machine
    }
}

/// Engine failures that stop a replica (it cannot skip an entry); every other error is
/// the command's refusal, answered to its proposer.
fn is_storage_failure(e: &EngineError) -> bool {
    matches!(
        e,
        EngineError::Io(_)
            | EngineError::Corrupted(_)
            | EngineError::Closed
            | EngineError::Backend { .. }
            | EngineError::Incompatible(_)
    )
}

impl<E: MvccEngine> Applier<E> for TxnApplier<E> {
    type Response = Result<CommandOutput, TxnError>;

    fn apply(
        &self,
        _engine: &E,
        entry: ApplyEntry<'_>,
    ) -> Result<Applied<Self::Response>, EngineError> {
        let command = match Command::decode(entry.payload) {
            Ok(command) => command,
            Err(refusal) => {
                return Ok(Applied {
                    response: Err(refusal),
                    wrote_apply_state: false,
                })
            }
        };
        // The state machine writes the apply state with the command's effects, or
        // alone when it refuses the command.
        match self
            .machine
            .apply_with(&command, entry.apply_state, Durability::Buffered)
        {
            Err(TxnError::Engine(e)) if is_storage_failure(&e) => Err(e),
            response => Ok(Applied {
                response,
                wrote_apply_state: true,
            }),
        }
    }

    /// The commands go to [`TxnStateMachine::apply_group`]: commands on different keys
    /// are committed in one engine write. A command that does not decode is refused, and
    /// its apply state written, in its place in the group.
    fn apply_many(
        &self,
        _engine: &E,
        entries: &[ApplyEntry<'_>],
    ) -> Result<Vec<Applied<Self::Response>>, EngineError> {
        let decoded: Vec<Result<Command, TxnError>> =
            entries.iter().map(|e| Command::decode(e.payload)).collect();
        // A command that does not decode is planned as a refusal: an empty `MetaPut`
        // stands in for it, and its answer is replaced below.
        let placeholder = Command::MetaPut {
            ts: 0,
            key: Vec::new(),
            value: None,
        };
        let commands: Vec<(&Command, &[elastickv_engine_api::RawOp])> = decoded
            .iter()
            .zip(entries)
            .map(|(command, entry)| (command.as_ref().unwrap_or(&placeholder), entry.apply_state))
            .collect();
        let outcomes = self.machine.apply_group(&commands, Durability::Buffered)?;
        decoded
            .into_iter()
            .zip(outcomes)
            .map(|(command, outcome)| {
                let response = match command {
                    Err(refusal) => Err(refusal),
                    Ok(_) => outcome,
                };
                match response {
                    Err(TxnError::Engine(e)) if is_storage_failure(&e) => Err(e),
                    response => Ok(Applied {
                        response,
                        wrote_apply_state: true,
                    }),
                }
            })
            .collect()
    }

    /// The state machine's memory of recent writes describes the old content.
    fn restored(&self, _engine: &E) -> Result<(), EngineError> {
        self.machine.forget_recent_writes();
        Ok(())
    }
}

/// The TSO's persisted ceiling, kept by the default group: `persist` replicates a
/// `TsoCeiling` command (acknowledged once committed and applied), `load` reads the
/// applied ceiling after a linearizable read barrier, so a new leader's oracle starts
/// above every ceiling a previous leader persisted.
pub struct RaftCeilingStore<E: MvccEngine> {
    group: Arc<Group<E, TxnApplier<E>>>,
}

impl<E: MvccEngine> std::fmt::Debug for RaftCeilingStore<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftCeilingStore")
            .field("group", &self.group.id())
            .finish()
    }
}

impl<E: MvccEngine> RaftCeilingStore<E> {
    /// The ceiling store over `group` (the default group).
    pub fn new(group: Arc<Group<E, TxnApplier<E>>>) -> Self {
        RaftCeilingStore { group }
    }
}

#[async_trait]
impl<E: MvccEngine> CeilingStore for RaftCeilingStore<E> {
    async fn load(&self) -> Result<Timestamp, TsoError> {
        self.group
            .read_barrier()
            .await
            .map_err(|e| TsoError::Store(e.to_string()))?;
        TxnStateMachine::new(Arc::clone(self.group.engine()))
            .tso_ceiling()
            .map_err(|e| TsoError::Store(e.to_string()))
    }

    async fn persist(&self, ceiling: Timestamp) -> Result<(), TsoError> {
        let command = Command::TsoCeiling { ceiling }.encode();
        let proposed = self
            .group
            .propose(command)
            .await
            .map_err(|e| TsoError::Store(e.to_string()))?;
        proposed
            .response
            .map(|_| ())
            .map_err(|e| TsoError::Store(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use elastickv_engine_api::{EngineSnapshot, Mutation, MvccEngine};
    use elastickv_engine_mem::MemEngine;

    use super::*;

    fn one_phase(start_ts: Timestamp, commit_ts: Timestamp) -> Vec<u8> {
        Command::OnePhase {
            start_ts,
            commit_ts,
            mutations: vec![Mutation::put(b"k".to_vec(), b"v".to_vec())],
            read_keys: vec![],
        }
        .encode()
    }

    fn apply(applier: &TxnApplier<MemEngine>, index: u64, payload: &[u8]) -> String {
        let entry = ApplyEntry {
            index,
            position: 0,
            term: 1,
            payload,
            apply_state: &[],
        };
        let engine = Arc::clone(applier.machine().engine());
        let applied = applier.apply(&engine, entry).expect("no storage failure");
        format!("{:?}", applied.response)
    }

    /// After a snapshot replaced the engine's content, planning answers from the new
    /// content, not from what the applier remembered of its own writes.
    #[test]
    fn a_restore_makes_planning_read_the_new_content() {
        let applier = TxnApplier::new(Arc::new(MemEngine::new()));
        assert_eq!(apply(&applier, 1, &one_phase(10, 20)), "Ok(Applied)");
        // The snapshot: the same key written at 50 on another replica.
        let other = TxnApplier::new(Arc::new(MemEngine::new()));
        assert_eq!(apply(&other, 1, &one_phase(40, 50)), "Ok(Applied)");
        let mut stream = Vec::new();
        other
            .machine()
            .engine()
            .snapshot()
            .expect("snapshot")
            .write_to(&mut stream)
            .expect("stream");
        let engine = Arc::clone(applier.machine().engine());
        engine
            .restore_with(&mut stream.as_slice(), &[])
            .expect("restore");
        applier.restored(&engine).expect("restored");
        // Started at 30, below the restored version at 50: a conflict.
        let answer = apply(&applier, 2, &one_phase(30, 60));
        assert!(answer.contains("WriteConflict"), "{answer}");
    }
}
