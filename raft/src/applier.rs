//! [`Applier`]: the deterministic command logic a group replicates.
//!
//! The Raft layer knows nothing about commands: it hands each committed payload to the
//! group's applier together with the raw operations that record "this entry is
//! applied". The applier must put those operations into the same atomic engine write as
//! the entry's effects ([`elastickv_engine_api::WriteBatch::with_raw`]), so that a crash
//! never separates data from the applied log id. `txn`'s state machine is adapted to
//! this trait; the tests use a small key-value applier.

use elastickv_engine_api::{EngineError, MvccEngine, RawOp};

/// One committed entry handed to an [`Applier`].
#[derive(Debug, Clone, Copy)]
pub struct ApplyEntry<'a> {
    /// The entry's log index (increasing within the group). Commands proposed
    /// concurrently may share an entry; `(index, position)` is unique.
    pub index: u64,
    /// The command's position inside its entry (0 for the first).
    pub position: u32,
    /// The term in which the entry was proposed.
    pub term: u64,
    /// The command bytes given to [`crate::Group::propose`].
    pub payload: &'a [u8],
    /// Raw operations recording the apply state; write them atomically with the
    /// entry's effects (they may use [`elastickv_engine_api::Durability::Buffered`]:
    /// the log is durable and replays anything lost).
    pub apply_state: &'a [RawOp],
}

/// What applying one entry produced.
#[derive(Debug)]
pub struct Applied<R> {
    /// The result handed to the proposer.
    pub response: R,
    /// Whether the applier wrote `apply_state` (in its atomic write). When `false` (for
    /// example the command was refused and nothing was written) the Raft layer writes
    /// the apply state on its own.
    pub wrote_apply_state: bool,
}

/// Deterministic command logic over an engine: the same entries applied in the same
/// order to the same state give byte-identical state on every replica (no clocks, no
/// randomness, no reads outside `engine`).
pub trait Applier<E: MvccEngine>: Send + Sync + 'static {
    /// The result of one command, handed back in process to its proposer. Refusals
    /// (conflicts, bad input) belong here, not in the error.
    type Response: Send + Sync + 'static;

    /// Applies one command. An `Err` is an engine failure (I/O, corruption): it stops the
    /// group, because a replica cannot skip an entry. A command that is refused must
    /// answer `Ok` with the refusal in its response and leave the engine unchanged.
    fn apply(
        &self,
        engine: &E,
        entry: ApplyEntry<'_>,
    ) -> Result<Applied<Self::Response>, EngineError>;

    /// Applies several commands, in order, with the outcome of calling
    /// [`apply`](Self::apply) on each in turn (the same responses, the same engine state
    /// afterwards), but free to commit them together: one engine write for many
    /// commands is the point. Each entry's `apply_state` records the state after that
    /// command; a crash must keep a prefix of the commands, each with its own apply
    /// state or a later one. The default applies them one by one.
    fn apply_many(
        &self,
        engine: &E,
        entries: &[ApplyEntry<'_>],
    ) -> Result<Vec<Applied<Self::Response>>, EngineError> {
        entries
            .iter()
            .map(|entry| self.apply(engine, *entry))
            .collect()
    }

    /// Called after a snapshot replaced the engine's content, so the applier can drop
    /// caches derived from the old content.
    fn restored(&self, engine: &E) -> Result<(), EngineError> {
        let _ = engine;
        Ok(())
    }
}
