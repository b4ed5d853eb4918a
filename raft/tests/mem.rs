//! The replication suite on the in-memory engine. A "restart" keeps the engine
//! instance (the process's memory survives, only Raft restarts), since the engine has
//! no files to reopen.

mod harness;
#[macro_use]
mod scenarios;

use std::path::Path;

use elastickv_engine_api::EngineError;
use elastickv_engine_mem::MemEngine;
use harness::EngineKind;

struct Mem;

impl EngineKind for Mem {
    type Engine = MemEngine;
    const PERSISTENT: bool = false;
    fn open(_dir: &Path) -> Result<MemEngine, EngineError> {
        Ok(MemEngine::new())
    }
}

scenarios!(Mem);
