//! The whole conformance kit of `elastickv-engine-api`, run against the RocksDB engine.

mod harness;

use harness::Rocks;

elastickv_engine_api::conformance_tests!(Rocks);
