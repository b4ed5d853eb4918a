//! The kit's reference model runs the kit too: the model the differential test trusts
//! must itself obey every rule the kit checks.

use std::path::Path;

use elastickv_engine_api::testkit::model::ModelEngine;
use elastickv_engine_api::testkit::Harness;
use elastickv_engine_api::Result;

struct ModelHarness;

impl Harness for ModelHarness {
    type Engine = ModelEngine;

    fn open(&self, _dir: &Path) -> Result<ModelEngine> {
        Ok(ModelEngine::new())
    }

    fn persistent(&self) -> bool {
        false
    }
}

elastickv_engine_api::conformance_tests!(ModelHarness);
