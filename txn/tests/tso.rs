//! The timestamp oracle persisting its ceiling through the state machine, as the Raft
//! layer does with the default group: fail-over never makes timestamps go backwards.

use std::sync::Arc;

use async_trait::async_trait;
use elastickv_engine_api::testkit::fixture::stream_of;
use elastickv_engine_api::MvccEngine;
use elastickv_engine_mem::MemEngine;
use elastickv_txn::ts::ManualClock;
use elastickv_txn::tso::{CeilingStore, TimestampOracle, TimestampSource, TsoConfig, TsoError};
use elastickv_txn::{Command, TxnStateMachine};

/// The ceiling kept in a (default-group) state machine through `TsoCeiling` commands.
#[derive(Debug)]
struct GroupCeiling {
    machine: TxnStateMachine<MemEngine>,
}

#[async_trait]
impl CeilingStore for GroupCeiling {
    async fn load(&self) -> Result<u64, TsoError> {
        self.machine
            .tso_ceiling()
            .map_err(|e| TsoError::Store(e.to_string()))
    }

    async fn persist(&self, ceiling: u64) -> Result<(), TsoError> {
        let command = Command::decode(&Command::TsoCeiling { ceiling }.encode())
            .map_err(|e| TsoError::Store(e.to_string()))?;
        self.machine
            .apply(&command)
            .map(|_| ())
            .map_err(|e| TsoError::Store(e.to_string()))
    }
}

#[tokio::test]
async fn timestamps_stay_monotonic_across_failover_through_the_state_machine() {
    let store = Arc::new(GroupCeiling {
        machine: TxnStateMachine::new(Arc::new(MemEngine::new())),
    });
    let leader_clock = Arc::new(ManualClock::new(1_700_000_000_000));
    let old = TimestampOracle::start(store.clone(), leader_clock.clone(), TsoConfig::default())
        .await
        .expect("start");
    let mut last = 0;
    for _ in 0..1_000 {
        let ts = old.timestamp().await.expect("ts");
        assert!(ts > last);
        last = ts;
    }
    leader_clock.advance(10_000); // forces further ceiling extensions
    last = last.max(old.timestamp().await.expect("ts"));
    assert!(store.machine.tso_ceiling().expect("ceiling") >= last);

    // The new leader's replica got the state through a snapshot, and its clock lags.
    let replica = TxnStateMachine::new(Arc::new(MemEngine::new()));
    let stream = stream_of(store.machine.engine().as_ref());
    replica
        .engine()
        .restore(&mut stream.as_slice())
        .expect("restore");
    let new_store = Arc::new(GroupCeiling { machine: replica });
    let new = TimestampOracle::start(
        new_store,
        Arc::new(ManualClock::new(1)),
        TsoConfig::default(),
    )
    .await
    .expect("start");
    assert!(new.timestamp().await.expect("ts") > last);
}
