//! The conformance kit (feature `testkit`): the suite every engine runs
//! (ENGINE.md section 12).
//!
//! An engine crate implements [`Harness`] and calls
//! [`conformance_tests!`](crate::conformance_tests) once from an integration test; the
//! macro generates one `#[test]` per case, each of which calls the public function of
//! the same name in [`cases`] (so a failing case can also be called on its own). Every case opens its engine in a fresh temporary directory through a
//! [`fixture::Fixture`].
//!
//! The kit encodes the rules of the contract, not the behaviour of any one engine: where
//! the contract leaves a choice (for example whether compaction removes a tombstone
//! anchor), the cases accept every allowed outcome. The differential test compares the
//! engine with [`model::ModelEngine`], a deliberately plain reference implementation
//! that is itself an [`MvccEngine`], so snapshot streams are also exchanged between the
//! engine under test and a different engine.

use std::path::Path;

use crate::{MvccEngine, Result};

pub mod cases;
pub mod fixture;
pub mod model;

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

/// Generates the whole conformance suite for a harness: one `#[test]` per case of
/// [`testkit::cases`](crate::testkit::cases), inside a module named `conformance`.
///
/// The argument is an expression building the [`Harness`](crate::testkit::Harness);
/// it is evaluated once per test.
///
/// ```
/// use std::path::Path;
/// use elastickv_engine_api::testkit::{model::ModelEngine, Harness};
///
/// // Any engine works; the kit's own reference model stands in for yours here.
/// struct MyHarness;
///
/// impl Harness for MyHarness {
///     type Engine = ModelEngine;
///     fn open(&self, _dir: &Path) -> elastickv_engine_api::Result<ModelEngine> {
///         Ok(ModelEngine::new())
///     }
///     fn persistent(&self) -> bool {
///         false
///     }
/// }
///
/// elastickv_engine_api::conformance_tests!(MyHarness);
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! conformance_tests {
    ($harness:expr) => {
        $crate::__conformance_every_case!($harness);
    };
}

/// Expands to one `#[test]` per listed case. Internal to [`conformance_tests!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_test_fns {
    ($harness:expr; $($case:ident),* $(,)?) => {
        mod conformance {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[test]
                fn $case() {
                    let harness = $harness;
                    $crate::testkit::cases::$case(&harness);
                }
            )*
        }
    };
}

pub mod crash;
