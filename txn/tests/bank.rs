//! The bank: concurrent clients move money between accounts on three shards while
//! faults strike between and inside commit phases. Money is never created or lost, at
//! any snapshot and at the end; no lock survives the resolver; every acknowledged commit
//! is visible and no commit reported as failed is.

mod cluster;

use std::collections::BTreeSet;
use std::sync::Arc;

use cluster::*;
use elastickv_engine_api::KeyRange;
use elastickv_txn::{Isolation, TransactionError};

const ACCOUNTS: [&str; 9] = ["a0", "a1", "a2", "i0", "i1", "i2", "q0", "q1", "q2"];
const INITIAL: u64 = 100;
const CLIENTS: u64 = 8;
const TRANSFERS: u64 = 30;

fn balance(v: Option<Vec<u8>>) -> u64 {
    let bytes = v.expect("an account exists");
    u64::from_be_bytes(bytes.as_slice().try_into().expect("8-byte balance"))
}

#[derive(Debug, Default)]
struct Outcomes {
    acknowledged: BTreeSet<String>,
    failed: BTreeSet<String>,
    undetermined: BTreeSet<String>,
    audits: usize,
}

/// A small deterministic generator per client.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

async fn audit(c: &Cluster) -> Option<u64> {
    let mut txn = c.coord.begin(Isolation::Snapshot).await.ok()?;
    let pairs = txn.scan(&KeyRange::all(), 1_000).await.ok()?;
    let accounts = pairs
        .into_iter()
        .filter(|p| ACCOUNTS.contains(&std::str::from_utf8(&p.key).unwrap_or("")));
    Some(accounts.map(|p| balance(Some(p.value))).sum())
}

async fn client(c: Arc<Cluster>, id: u64, outcomes: Arc<parking_lot::Mutex<Outcomes>>) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (id + 1));
    for n in 0..TRANSFERS {
        // Time passes: locks abandoned by failed transactions expire and get resolved.
        c.clock.advance(200);
        let from = ACCOUNTS[(rng.next() % 9) as usize];
        let to = ACCOUNTS[(rng.next() % 9) as usize];
        let amount = rng.next() % 30;
        let isolation = if rng.next() % 2 == 0 {
            Isolation::Snapshot
        } else {
            Isolation::Serializable
        };
        let marker = format!("t-{id}-{n}");
        let result: Result<bool, TransactionError> = async {
            let mut txn = c.coord.begin(isolation).await?;
            let from_balance = balance(txn.get(from.as_bytes()).await?);
            let to_balance = balance(txn.get(to.as_bytes()).await?);
            if from == to || from_balance < amount {
                return txn.rollback().await.map(|()| false);
            }
            txn.put(from, (from_balance - amount).to_be_bytes())?;
            txn.put(to, (to_balance + amount).to_be_bytes())?;
            txn.put(marker.clone(), "done")?;
            txn.commit().await.map(|_| true)
        }
        .await;
        {
            let mut o = outcomes.lock();
            match result {
                Ok(false) => false,
                Ok(true) => o.acknowledged.insert(marker),
                Err(TransactionError::Undetermined { .. }) => o.undetermined.insert(marker),
                Err(e) => {
                    assert!(e.is_retryable(), "unexpected error: {e}");
                    o.failed.insert(marker)
                }
            };
        }
        if n % 5 == 0 {
            if let Some(total) = audit(&c).await {
                assert_eq!(
                    total,
                    INITIAL * ACCOUNTS.len() as u64,
                    "a snapshot saw money created or lost"
                );
                outcomes.lock().audits += 1;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bank_transfers_preserve_the_total_under_faults() {
    let c = Arc::new(cluster().await);
    {
        let mut txn = c.coord.begin(Isolation::Snapshot).await.expect("begin");
        for a in ACCOUNTS {
            txn.put(a, INITIAL.to_be_bytes()).expect("put");
        }
        txn.commit().await.expect("initial deposit");
    }
    c.shards.set_random_faults(80, 0x5eed);
    let outcomes = Arc::new(parking_lot::Mutex::new(Outcomes::default()));
    let mut tasks = tokio::task::JoinSet::new();
    for id in 0..CLIENTS {
        tasks.spawn(client(c.clone(), id, outcomes.clone()));
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("client task");
    }
    c.shards.clear_faults();

    // Let every lock expire, then resolve everything.
    c.clock.advance(60_000);
    resolve_everything(c.client.clone(), c.tso.clone()).await;
    assert!(
        all_locks(&c.shards).is_empty(),
        "no lock survives the resolver"
    );

    let total = audit(&c).await.expect("final audit");
    assert_eq!(total, INITIAL * ACCOUNTS.len() as u64);
    let o = std::mem::take(&mut *outcomes.lock());
    println!(
        "acknowledged {}, failed {}, undetermined {}, audits {}",
        o.acknowledged.len(),
        o.failed.len(),
        o.undetermined.len(),
        o.audits
    );
    for marker in &o.acknowledged {
        let seen = c.coord.get_latest(marker.as_bytes()).await.expect("read");
        assert_eq!(
            seen,
            Some(b"done".to_vec()),
            "acknowledged commit {marker} is visible"
        );
    }
    for marker in &o.failed {
        let seen = c.coord.get_latest(marker.as_bytes()).await.expect("read");
        assert_eq!(seen, None, "{marker} was reported failed but committed");
    }
    assert!(
        !o.acknowledged.is_empty(),
        "some transfers commit despite faults"
    );
    assert!(
        !o.failed.is_empty() || !o.undetermined.is_empty(),
        "faults did strike"
    );
    assert!(o.audits > 0);
}
