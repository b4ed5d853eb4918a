//! The conformance kit (feature `testkit`): the suite every engine runs
//! (ENGINE.md section 12).
//!
//! An engine crate implements [`Harness`] and calls [`conformance_tests!`] once from an
//! integration test; the macro generates one `#[test]` per case.

use std::path::Path;

use crate::{MvccEngine, Result};

/// How the kit opens the engine under test.
pub trait Harness: Send + Sync + 'static {
    /// The engine under test.
    type Engine: MvccEngine;

    /// Opens the engine stored in `dir`: an empty directory the first time, and the
    /// same directory again (after the previous instance was dropped) in reopen tests.
    /// Engines that keep nothing on disk ignore `dir`.
    fn open(&self, dir: &Path) -> Result<Self::Engine>;

    /// True when data written before a drop is there after `open` of the same `dir`.
    /// The reopen tests run only for persistent engines.
    fn persistent(&self) -> bool;
}
