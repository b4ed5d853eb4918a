//! [`TxnStateMachine::apply_group`]: many commands applied with the outcome of applying
//! them one by one, in as few engine writes as their keys allow.
//!
//! A Raft group applies commands in batches; one engine commit per command costs far
//! more than the command's own writes (on redb, a copy-on-write commit of the tree's
//! path and its allocator state). Here the commands are planned in order and their
//! plans handed to [`MvccEngine::write_group`] together.
//!
//! A plan reads the store (locks, records, newest versions), and must see every earlier
//! command's writes. What a command's plan may read or write is fixed by its keys: the
//! user keys it names (their data, lock and intent keys, and for a primary its
//! transaction records), the metadata key it sets, the TSO ceiling. So a command whose
//! keys meet a pending command's keys first has the pending ones written, and is then
//! planned against the store they left; commands with disjoint keys cannot see each
//! other's writes, so planning them before either is written changes nothing. The GC
//! fence, read by prewrites and one-phase commits, is written only by
//! `PurgeTxnRecords`, which therefore goes alone (it also scans records by range); the
//! group's plans read the fence once, and again after a purge.

use std::collections::HashSet;

use elastickv_engine_api::{Durability, EngineError, MvccEngine, RawOp, WriteBatch};

use crate::command::{Command, CommandOutput};
use crate::error::TxnError;
use crate::state_machine::{Fence, Plan};
use crate::TxnStateMachine;

/// What a command's plan may read or write: `None` when that is not bounded by keys
/// (the command must be applied alone).
fn footprint(command: &Command) -> Option<Vec<Vec<u8>>> {
    // Tagged so that a user key, a metadata key and the ceiling never collide.
    let user = |key: &[u8]| {
        let mut token = Vec::with_capacity(key.len() + 1);
        token.push(b'u');
        token.extend_from_slice(key);
        token
    };
    let tokens = match command {
        Command::RawBatch { writes, .. } => writes.iter().map(|m| user(m.key())).collect(),
        Command::OnePhase {
            mutations,
            read_keys,
            ..
        } => mutations
            .iter()
            .map(|m| user(m.key()))
            .chain(read_keys.iter().map(|k| user(k)))
            .collect(),
        Command::Prewrite {
            primary,
            mutations,
            read_keys,
            ..
        } => std::iter::once(user(primary))
            .chain(mutations.iter().map(|m| user(m.key())))
            .chain(read_keys.iter().map(|k| user(k)))
            .collect(),
        Command::Commit { primary, keys, .. } | Command::Rollback { primary, keys, .. } => {
            std::iter::once(user(primary))
                .chain(keys.iter().map(|k| user(k)))
                .collect()
        }
        Command::CheckTxnStatus { primary, .. } => vec![user(primary)],
        Command::TsoCeiling { .. } => vec![b"t".to_vec()],
        Command::MetaPut { key, .. } => {
            let mut token = b"m".to_vec();
            token.extend_from_slice(key);
            vec![token]
        }
        Command::PurgeTxnRecords { .. } => return None,
    };
    Some(tokens)
}

/// A planned command waiting for the group's write.
struct Pending<'a> {
    /// Its position in the group.
    slot: usize,
    /// `None`: refused while planning (only its raw operations are written).
    plan: Option<Plan>,
    raw: &'a [RawOp],
}

impl<E: MvccEngine> TxnStateMachine<E> {
    /// Applies `commands` (each with raw operations to write atomically with it, as in
    /// [`apply_with`](Self::apply_with)) with the outcome of calling `apply_with` on each
    /// in turn: the same answers and the same store afterwards. Commands whose keys do
    /// not meet are committed together, in one engine write (see the module
    /// documentation); a crash keeps a prefix of the commands' effects, as it would
    /// one by one.
    ///
    /// `Err` is an engine failure of a whole write (the caller stops: a replica cannot
    /// skip a command); after it, any prefix of the commands may have been written.
    pub fn apply_group(
        &self,
        commands: &[(&Command, &[RawOp])],
        durability: Durability,
    ) -> Result<Vec<Result<CommandOutput, TxnError>>, EngineError> {
        let limits = self.engine().limits();
        let mut outcomes: Vec<Option<Result<CommandOutput, TxnError>>> =
            (0..commands.len()).map(|_| None).collect();
        let mut pending: Vec<Pending<'_>> = Vec::new();
        let mut touched: HashSet<Vec<u8>> = HashSet::new();
        let mut fence = Fence::default();
        for (slot, &(command, raw)) in commands.iter().enumerate() {
            let Some(tokens) = footprint(command) else {
                self.write_pending(&mut pending, &mut outcomes, durability)?;
                touched.clear();
                outcomes[slot] = Some(self.apply_with(command, raw, durability));
                fence = Fence::default();
                continue;
            };
            if tokens.iter().any(|t| touched.contains(t)) {
                self.write_pending(&mut pending, &mut outcomes, durability)?;
                touched.clear();
            }
            touched.extend(tokens);
            let plan = match self.plan(command, &limits, &fence) {
                Ok(plan) => Some(plan),
                Err(refusal) => {
                    outcomes[slot] = Some(Err(refusal));
                    None
                }
            };
            pending.push(Pending { slot, plan, raw });
        }
        self.write_pending(&mut pending, &mut outcomes, durability)?;
        Ok(outcomes
            .into_iter()
            .map(|o| o.unwrap_or_else(|| Err(TxnError::Decode("command not applied".into()))))
            .collect())
    }

    /// Writes the pending plans in one group and records their answers.
    fn write_pending(
        &self,
        pending: &mut Vec<Pending<'_>>,
        outcomes: &mut [Option<Result<CommandOutput, TxnError>>],
        durability: Durability,
    ) -> Result<(), EngineError> {
        if pending.is_empty() {
            return Ok(());
        }
        // Which pending command each batch belongs to: empty ones are not written.
        let mut owners = Vec::with_capacity(pending.len());
        let mut batches = Vec::with_capacity(pending.len());
        for (index, item) in pending.iter().enumerate() {
            let batch = match &item.plan {
                Some(plan) if plan.mutations.is_empty() && item.raw.is_empty() => continue,
                Some(plan) => WriteBatch::new(&plan.mutations, plan.ts)
                    .with_raw(item.raw)
                    .with_durability(durability),
                None if item.raw.is_empty() => continue,
                None => WriteBatch::raw_only(item.raw).with_durability(durability),
            };
            owners.push(index);
            batches.push(batch);
        }
        let written = match self.engine().write_group(&batches) {
            Ok(written) => written,
            Err(failure) => {
                // Any prefix of the group may be in the store.
                self.forget_recent_writes();
                return Err(failure);
            }
        };
        drop(batches);
        let mut results: Vec<Option<Result<(), EngineError>>> =
            (0..pending.len()).map(|_| None).collect();
        for (index, result) in owners.into_iter().zip(written) {
            results[index] = Some(result);
        }
        let first_refused = results.iter().position(|r| matches!(r, Some(Err(_))));
        let any_refused = first_refused.is_some();
        // One by one, a refused command still writes its raw operations. Those of
        // every command from the first refused one on are written again, in order, so
        // each raw key ends as the last command touching it left it.
        let rewrite: Vec<&[RawOp]> = first_refused
            .map(|first| {
                pending[first..]
                    .iter()
                    .map(|item| item.raw)
                    .filter(|raw| !raw.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        for (item, result) in pending.drain(..).zip(results) {
            let outcome = match (item.plan, result) {
                // Refused while planning: its answer is already there.
                (None, _) => continue,
                (Some(plan), None | Some(Ok(()))) => {
                    self.recent().record(&plan.mutations, plan.ts);
                    Ok(plan.output)
                }
                (Some(_), Some(Err(refused))) => Err(TxnError::from(refused)),
            };
            outcomes[item.slot] = Some(outcome);
        }
        if any_refused {
            // A refusal is usually a limit (nothing written), but a batch that failed
            // in the store may have been: read the store again when next needed.
            self.forget_recent_writes();
        }
        if !rewrite.is_empty() {
            // One batch per command (each within the engine's limits, as it was
            // alone), committed together.
            let batches: Vec<WriteBatch<'_>> = rewrite
                .iter()
                .map(|raw| WriteBatch::raw_only(raw).with_durability(durability))
                .collect();
            let rewritten = self.engine().write_group(&batches).inspect_err(|_| {
                self.forget_recent_writes();
            })?;
            for result in rewritten {
                result?;
            }
        }
        Ok(())
    }
}
