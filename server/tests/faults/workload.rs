//! The clients: concurrent workers that run operations against random nodes until a
//! deadline and record every invocation and completion.
//!
//! * registers: read (`Get`, a fresh-timestamp read), write (`Put`), compare-and-set (a
//!   snapshot transaction: read, compare, write, commit) on a few keys at a time, each
//!   key retired after a fixed number of operations to keep the search small;
//! * list-append: transactions of 1-4 reads and appends over a dozen keys (an append is
//!   a read of the list and a write of the longer list), one namespace under
//!   SERIALIZABLE and one under SNAPSHOT isolation;
//! * bank: transfers between accounts and reads of every account, as transactions.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use elastickv_server::client::{Client, Error};
use elastickv_server::pb::api::Isolation;
use tokio::time::Instant;

use super::bank::BankOp;
use super::elle::Mop;
use super::history::{Clock, Op, Outcome};
use super::linearizable::RegOp;

/// Longest one operation may take before it is recorded as unknown.
pub const OP_TIMEOUT: Duration = Duration::from_secs(10);

/// Prefixes that spread keys over the default ranges of 3 groups ("", "i", "r").
const PREFIX: [&str; 3] = ["c", "m", "w"];

/// A small deterministic random generator (splitmix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// In `[0, n)`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// How a failed call ended: a call that may have written is unknown unless the error
/// says it certainly did not apply; a call that cannot write simply failed.
pub fn outcome_of(e: &Error, may_write: bool) -> Outcome {
    if !may_write {
        return Outcome::Fail;
    }
    match e.downcast_ref::<tonic::Status>().map(|s| s.code()) {
        Some(
            tonic::Code::Aborted
            | tonic::Code::InvalidArgument
            | tonic::Code::FailedPrecondition
            | tonic::Code::NotFound
            | tonic::Code::OutOfRange,
        ) => Outcome::Fail,
        // Unavailable is documented as "nothing was applied", but a connection lost
        // after the request left is reported the same way by the transport.
        _ => Outcome::Info,
    }
}

/// The nodes the workers talk to, and cached connections.
#[derive(Debug)]
pub struct Conns {
    addrs: Vec<String>,
    clients: HashMap<usize, Client>,
}

impl Conns {
    pub fn new(addrs: Vec<String>) -> Conns {
        Conns {
            addrs,
            clients: HashMap::new(),
        }
    }

    async fn get(&mut self, rng: &mut Rng) -> Option<(usize, Client)> {
        let i = rng.below(self.addrs.len() as u64) as usize;
        if let Some(c) = self.clients.get(&i) {
            return Some((i, c.clone()));
        }
        let c = tokio::time::timeout(Duration::from_secs(2), Client::connect(&self.addrs[i]))
            .await
            .ok()?
            .ok()?;
        self.clients.insert(i, c.clone());
        Some((i, c))
    }

    fn forget(&mut self, i: usize) {
        self.clients.remove(&i);
    }
}

/// Runs `op` with the operation timeout; a timeout is an `Unknown` status.
async fn timed<T>(op: impl std::future::Future<Output = Result<T, Error>>) -> Result<T, Error> {
    match tokio::time::timeout(OP_TIMEOUT, op).await {
        Ok(r) => r,
        Err(_) => Err(Box::new(tonic::Status::unknown("the client timed out"))),
    }
}

fn parse_u64(v: Option<Vec<u8>>) -> Result<Option<u64>, Error> {
    v.map(|b| String::from_utf8(b)?.parse::<u64>().map_err(Error::from))
        .transpose()
}

// ------------------------------------------------------------------ registers

/// The register key of `slot`, generation `generation`.
pub fn register_key(slot: u64, generation: u64) -> String {
    format!("{}reg{slot}-{generation}", PREFIX[(slot % 3) as usize])
}

/// Shared by the register workers.
#[derive(Debug)]
pub struct RegisterKeys {
    counters: Vec<AtomicU64>,
    per_key: u64,
}

impl RegisterKeys {
    pub fn new(slots: u64, per_key: u64) -> Arc<RegisterKeys> {
        Arc::new(RegisterKeys {
            counters: (0..slots).map(|_| AtomicU64::new(0)).collect(),
            per_key,
        })
    }

    fn pick(&self, rng: &mut Rng) -> String {
        let slot = rng.below(self.counters.len() as u64);
        let n = self.counters[slot as usize].fetch_add(1, Ordering::Relaxed);
        register_key(slot, n / self.per_key)
    }

    /// Every key used so far.
    pub fn used(&self) -> Vec<String> {
        let mut keys = Vec::new();
        for (slot, c) in self.counters.iter().enumerate() {
            let n = c.load(Ordering::Relaxed);
            for g in 0..=n / self.per_key {
                keys.push(register_key(slot as u64, g));
            }
        }
        keys
    }
}

/// One register worker.
pub async fn register_worker(
    process: usize,
    mut conns: Conns,
    keys: Arc<RegisterKeys>,
    mut rng: Rng,
    clock: Clock,
    until: Instant,
) -> Vec<(String, Op<RegOp>)> {
    let mut history = Vec::new();
    while Instant::now() < until {
        let Some((node, client)) = conns.get(&mut rng).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let key = keys.pick(&mut rng);
        let value = rng.below(5);
        let f = match rng.below(4) {
            0 | 1 => RegOp::Read(None),
            2 => RegOp::Write(value),
            _ => RegOp::Cas(rng.below(5), value),
        };
        let invoke = clock.now();
        let (outcome, f) = run_register(client, &key, f).await;
        if outcome != Outcome::Ok {
            conns.forget(node);
        }
        history.push((key, Op::new(process, invoke, clock.now(), outcome, f)));
    }
    history
}

async fn run_register(mut client: Client, key: &str, f: RegOp) -> (Outcome, RegOp) {
    let k = key.as_bytes();
    match f {
        RegOp::Read(_) => match timed(async { parse_u64(client.get(k).await?) }).await {
            Ok(v) => (Outcome::Ok, RegOp::Read(v)),
            Err(_) => (Outcome::Fail, f),
        },
        RegOp::Write(v) => match timed(client.put(k, v.to_string().as_bytes())).await {
            Ok(_) => (Outcome::Ok, f),
            Err(e) => (outcome_of(&e, true), f),
        },
        RegOp::Cas(from, to) => {
            let mut txn = match timed(client.begin()).await {
                Ok(t) => t,
                Err(_) => return (Outcome::Fail, f),
            };
            match timed(async { parse_u64(txn.get(k).await?) }).await {
                Ok(Some(current)) if current == from => {}
                _ => return (Outcome::Fail, f),
            }
            txn.put(k, to.to_string().as_bytes());
            match timed(txn.commit()).await {
                Ok(_) => (Outcome::Ok, f),
                Err(e) => (outcome_of(&e, true), f),
            }
        }
    }
}

// ------------------------------------------------------------------ list-append

/// The keys of one list-append namespace: `slots` active keys, each replaced by a new
/// one after `per_key` operations.
#[derive(Debug)]
pub struct ListKeys {
    pub namespace: &'static str,
    pub isolation: Isolation,
    counters: Vec<AtomicU64>,
    per_key: u64,
    values: AtomicU64,
}

impl ListKeys {
    pub fn new(
        namespace: &'static str,
        isolation: Isolation,
        slots: u64,
        per_key: u64,
    ) -> Arc<ListKeys> {
        Arc::new(ListKeys {
            namespace,
            isolation,
            counters: (0..slots).map(|_| AtomicU64::new(0)).collect(),
            per_key,
            values: AtomicU64::new(1),
        })
    }

    /// The key id's name.
    pub fn name(&self, id: u64) -> String {
        let slot = id % self.counters.len() as u64;
        format!("{}{}{id}", PREFIX[(slot % 3) as usize], self.namespace)
    }

    fn pick(&self, rng: &mut Rng) -> u64 {
        let slots = self.counters.len() as u64;
        let slot = rng.below(slots);
        let n = self.counters[slot as usize].fetch_add(1, Ordering::Relaxed);
        (n / self.per_key) * slots + slot
    }

    /// Every key id used so far.
    pub fn used(&self) -> Vec<u64> {
        let slots = self.counters.len() as u64;
        let mut ids = Vec::new();
        for (slot, c) in self.counters.iter().enumerate() {
            let n = c.load(Ordering::Relaxed);
            for g in 0..=n / self.per_key {
                ids.push(g * slots + slot as u64);
            }
        }
        ids.sort_unstable();
        ids
    }
}

fn parse_list(v: Option<Vec<u8>>) -> Result<Vec<u64>, Error> {
    let Some(bytes) = v else {
        return Ok(Vec::new());
    };
    let text = String::from_utf8(bytes)?;
    if text.is_empty() {
        return Ok(Vec::new());
    }
    text.split(',')
        .map(|s| s.parse::<u64>().map_err(Error::from))
        .collect()
}

fn show_list(list: &[u64]) -> String {
    list.iter()
        .map(|v| v.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// One list-append worker.
pub async fn list_worker(
    process: usize,
    mut conns: Conns,
    keys: Arc<ListKeys>,
    mut rng: Rng,
    clock: Clock,
    until: Instant,
) -> Vec<Op<Vec<Mop>>> {
    let mut history = Vec::new();
    while Instant::now() < until {
        let Some((node, client)) = conns.get(&mut rng).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let mops: Vec<Mop> = (0..1 + rng.below(4))
            .map(|_| {
                let k = keys.pick(&mut rng);
                if rng.below(2) == 0 {
                    Mop::Read(k, None)
                } else {
                    Mop::Append(k, keys.values.fetch_add(1, Ordering::Relaxed))
                }
            })
            .collect();
        let invoke = clock.now();
        let (outcome, done) = run_list_txn(client, &keys, &mops).await;
        if outcome != Outcome::Ok {
            conns.forget(node);
        }
        let f = done.unwrap_or(mops);
        history.push(Op::new(process, invoke, clock.now(), outcome, f));
    }
    history
}

/// Runs one transaction; the micro-operations with their reads when it committed.
pub async fn run_list_txn(
    mut client: Client,
    keys: &ListKeys,
    mops: &[Mop],
) -> (Outcome, Option<Vec<Mop>>) {
    let mut txn = match timed(client.begin_with(keys.isolation)).await {
        Ok(t) => t,
        Err(_) => return (Outcome::Fail, None),
    };
    let mut done = Vec::new();
    for mop in mops {
        match mop {
            Mop::Read(k, _) => match timed(txn.get(keys.name(*k).as_bytes())).await {
                Ok(v) => match parse_list(v) {
                    Ok(list) => done.push(Mop::Read(*k, Some(list))),
                    Err(e) => panic!("key {} holds a malformed list: {e}", keys.name(*k)),
                },
                Err(_) => return (Outcome::Fail, None),
            },
            Mop::Append(k, v) => {
                let name = keys.name(*k);
                let mut list = match timed(txn.get(name.as_bytes())).await {
                    Ok(v) => parse_list(v).expect("a well-formed list"),
                    Err(_) => return (Outcome::Fail, None),
                };
                list.push(*v);
                txn.put(name.as_bytes(), show_list(&list).as_bytes());
                done.push(mop.clone());
            }
        }
    }
    let writes = mops.iter().any(|m| matches!(m, Mop::Append(..)));
    match timed(txn.commit()).await {
        Ok(_) => (Outcome::Ok, Some(done)),
        Err(e) => (outcome_of(&e, writes), None),
    }
}

/// Reads every key of `ids` in one transaction through `client`.
pub async fn read_lists(
    client: Client,
    keys: &ListKeys,
    ids: &[u64],
) -> (Outcome, Option<Vec<Mop>>) {
    let mops: Vec<Mop> = ids.iter().map(|k| Mop::Read(*k, None)).collect();
    run_list_txn(client, keys, &mops).await
}

// ------------------------------------------------------------------ bank

/// The bank's accounts.
pub fn account(i: usize) -> String {
    format!("{}bank{i}", PREFIX[i % 3])
}

/// Opens every account with `balance`, retrying until it is acknowledged.
pub async fn open_accounts(addr: &str, accounts: usize, balance: i64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let done = async {
            let mut c = Client::connect(addr).await?;
            let mut txn = c.begin().await?;
            for i in 0..accounts {
                txn.put(account(i).as_bytes(), balance.to_string().as_bytes());
            }
            txn.commit().await
        };
        if timed(done).await.is_ok() {
            return;
        }
        assert!(Instant::now() < deadline, "cannot open the bank's accounts");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Reads every account in one snapshot transaction.
pub async fn read_accounts(mut client: Client, accounts: usize) -> Result<Vec<Option<i64>>, Error> {
    timed(async {
        let mut txn = client.begin().await?;
        let mut balances = Vec::new();
        for i in 0..accounts {
            let v = txn.get(account(i).as_bytes()).await?;
            balances.push(
                v.map(|b| String::from_utf8(b)?.parse::<i64>().map_err(Error::from))
                    .transpose()?,
            );
        }
        Ok(balances)
    })
    .await
}

/// One bank worker.
pub async fn bank_worker(
    process: usize,
    mut conns: Conns,
    accounts: usize,
    mut rng: Rng,
    clock: Clock,
    until: Instant,
) -> Vec<Op<BankOp>> {
    let mut history = Vec::new();
    while Instant::now() < until {
        let Some((node, mut client)) = conns.get(&mut rng).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let invoke = clock.now();
        let (outcome, f) = if rng.below(2) == 0 {
            match read_accounts(client, accounts).await {
                Ok(b) => (Outcome::Ok, BankOp::Read(Some(b))),
                Err(_) => (Outcome::Fail, BankOp::Read(None)),
            }
        } else {
            let from = rng.below(accounts as u64) as usize;
            let to = (from + 1 + rng.below(accounts as u64 - 1) as usize) % accounts;
            let amount = 1 + rng.below(5) as i64;
            let seen = std::sync::Mutex::new(None);
            let result = timed(async {
                let mut txn = client.begin().await?;
                let get = |v: Option<Vec<u8>>| -> Result<i64, Error> {
                    let b = v.ok_or("a missing account")?;
                    Ok(String::from_utf8(b)?.parse::<i64>()?)
                };
                let a = get(txn.get(account(from).as_bytes()).await?)?;
                let b = get(txn.get(account(to).as_bytes()).await?)?;
                *seen.lock().expect("not poisoned") = Some((a, b));
                if a < amount {
                    return Ok(false);
                }
                txn.put(
                    account(from).as_bytes(),
                    (a - amount).to_string().as_bytes(),
                );
                txn.put(account(to).as_bytes(), (b + amount).to_string().as_bytes());
                // Only the commit may write: an error before it is a failure.
                match txn.commit().await {
                    Ok(_) => Ok(true),
                    Err(e) => Err(Box::new(Committing(e)) as Error),
                }
            })
            .await;
            let f = BankOp::Transfer {
                from,
                to,
                amount,
                seen: *seen.lock().expect("not poisoned"),
            };
            match result {
                Ok(true) => (Outcome::Ok, f),
                Ok(false) => (Outcome::Fail, f),
                Err(e) => match e.downcast::<Committing>() {
                    Ok(c) => (outcome_of(&c.0, true), f),
                    Err(e) => {
                        let timed_out = e
                            .downcast_ref::<tonic::Status>()
                            .is_some_and(|s| s.message() == "the client timed out");
                        // A timeout may have interrupted the commit.
                        (
                            if timed_out {
                                Outcome::Info
                            } else {
                                Outcome::Fail
                            },
                            f,
                        )
                    }
                },
            }
        };
        if outcome != Outcome::Ok {
            conns.forget(node);
        }
        history.push(Op::new(process, invoke, clock.now(), outcome, f));
    }
    history
}

/// An error of the commit call itself.
#[derive(Debug)]
struct Committing(Error);

impl std::fmt::Display for Committing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "commit: {}", self.0)
    }
}

impl std::error::Error for Committing {}
