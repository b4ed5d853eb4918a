//! The closed-loop driver: N clients, each issuing its next operation when the previous
//! one returns, for a duration or an operation count; an optional preload of the key
//! space first.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::histogram::Histogram;
use super::report::{OpReport, PreloadReport, Report};
use super::target::{Connector, OpError, Target};
use super::workload::{balance, key, with_balance, Op, Shards, Workload};
use super::zipf::{Distribution, KeyChooser};

/// When a run ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// After this long (operations in flight then still complete).
    Duration(Duration),
    /// After this many operations in all (successful or not).
    Ops(u64),
}

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct Config {
    /// What to run.
    pub workload: Workload,
    /// The nodes (`host:port`); connections are spread over them in turn.
    pub endpoints: Vec<String>,
    /// Concurrent closed-loop clients.
    pub clients: usize,
    /// Connections (at most `clients`); client `i` uses connection `i % conns`.
    pub conns: usize,
    /// When to stop.
    pub limit: Limit,
    /// The key space: keys `0..keys` (see [`key`]).
    pub keys: u64,
    /// How keys are chosen.
    pub distribution: Distribution,
    /// Bytes per written value.
    pub value_size: usize,
    /// Write every key of the key space before the run.
    pub preload: bool,
    /// Use RawKV for single-key reads and writes (elastickv).
    pub raw: bool,
    /// Send single-key reads and writes to their key's leader (elastickv).
    pub leader_routing: bool,
    /// Scans read 1 to this many keys (uniformly).
    pub max_scan: usize,
    /// How many times an operation that conflicted (`Aborted`) is retried as a whole.
    pub retries: u32,
    /// Client-side limit on one attempt of an operation (`DeadlineExceeded` after it).
    pub timeout: Duration,
    /// Seeds the clients' random choices and the key scrambling.
    pub seed: u64,
    /// Print a progress line on stderr every second.
    pub progress: bool,
}

/// The default seed.
pub const DEFAULT_SEED: u64 = 0x00e1_a571_c4a7;

impl Default for Config {
    fn default() -> Self {
        Config {
            workload: Workload::Put,
            endpoints: vec!["127.0.0.1:50051".into()],
            clients: 16,
            conns: 16,
            limit: Limit::Duration(Duration::from_secs(10)),
            keys: 100_000,
            distribution: Distribution::Uniform,
            value_size: 256,
            preload: false,
            raw: false,
            leader_routing: false,
            max_scan: 10,
            retries: 5,
            timeout: Duration::from_secs(5),
            seed: DEFAULT_SEED,
            progress: false,
        }
    }
}

impl Config {
    /// Checks the combination of settings.
    pub fn validate(&self) -> Result<(), String> {
        if self.endpoints.is_empty() {
            return Err("--endpoints: no endpoint given".into());
        }
        for e in &self.endpoints {
            let port = e
                .rsplit_once(':')
                .map(|(host, port)| (host, port.parse::<u16>()));
            if !matches!(port, Some((host, Ok(p))) if !host.is_empty() && p != 0) {
                return Err(format!("--endpoints: {e:?} is not HOST:PORT"));
            }
        }
        if self.clients == 0 || self.clients > 100_000 {
            return Err(format!("--clients {} is outside [1, 100000]", self.clients));
        }
        if self.conns == 0 || self.conns > self.clients {
            return Err(format!(
                "--conns {} is outside [1, --clients {}]",
                self.conns, self.clients
            ));
        }
        match self.limit {
            Limit::Duration(d) if d.is_zero() => return Err("--duration must be above 0".into()),
            Limit::Ops(0) => return Err("--ops must be above 0".into()),
            _ => {}
        }
        if self.keys == 0 {
            return Err("--keys must be at least 1".into());
        }
        if self.workload == Workload::Txn && self.keys < 2 {
            return Err("the txn workload needs --keys 2 or more".into());
        }
        if let Distribution::Zipfian { theta, .. } = self.distribution {
            if !(theta > 0.0 && theta < 1.0) {
                return Err(format!("--zipf-theta {theta} is outside (0, 1)"));
            }
        }
        if self.value_size > 16 << 20 {
            return Err(format!(
                "--value-size {} is above 16 MiB (the server's default limit)",
                self.value_size
            ));
        }
        if self.workload == Workload::Txn && self.value_size < 8 {
            return Err("the txn workload keeps an 8-byte balance in each value: --value-size must be at least 8".into());
        }
        if self.raw && self.workload.needs_transactional_api() {
            return Err(format!(
                "--raw applies to single-key reads and writes (workloads put, get, a, b, c); workload {} needs {}",
                self.workload.name(),
                if self.workload == Workload::E { "scans" } else { "transactions" }
            ));
        }
        if self.max_scan == 0 || self.max_scan > 1024 {
            return Err(format!("--max-scan {} is outside [1, 1024]", self.max_scan));
        }
        if self.timeout.is_zero() {
            return Err("--timeout must be above 0".into());
        }
        Ok(())
    }
}

/// Per operation type, per client; merged at the end.
#[derive(Debug, Clone, Default)]
struct OpStats {
    latency: Histogram,
    errors: BTreeMap<String, u64>,
    retries: u64,
    not_found: u64,
}

impl OpStats {
    fn merge(&mut self, other: &OpStats) {
        self.latency.merge(&other.latency);
        for (code, n) in &other.errors {
            *self.errors.entry(code.clone()).or_default() += n;
        }
        self.retries += other.retries;
        self.not_found += other.not_found;
    }
}

/// Counters shared by the clients and the progress line.
#[derive(Debug, Default)]
struct Shared {
    claimed: AtomicU64,
    done: AtomicU64,
    errors: AtomicU64,
    retries: AtomicU64,
    inserted: AtomicU64,
}

/// One operation with its keys and values chosen (a retry repeats it as is).
#[derive(Debug)]
enum Action {
    Get(Vec<u8>),
    Put(Vec<u8>, Vec<u8>),
    Scan(Vec<u8>, usize),
    Rmw(Vec<u8>, Vec<u8>),
    Transfer(Vec<u8>, Vec<u8>),
}

impl Action {
    /// Runs it once: `Ok(false)` for a read that found nothing.
    async fn execute(&self, target: &mut dyn Target, value_size: usize) -> Result<bool, OpError> {
        match self {
            Action::Get(k) => Ok(target.get(k).await?.is_some()),
            Action::Put(k, v) => target.put(k, v).await.map(|()| true),
            Action::Scan(start, limit) => Ok(target.scan(start, *limit).await? > 0),
            Action::Rmw(k, v) => {
                let write = |_: &[Option<Vec<u8>>]| vec![(k.clone(), v.clone())];
                target
                    .txn(std::slice::from_ref(k), &write)
                    .await
                    .map(|()| true)
            }
            Action::Transfer(from, to) => {
                let keys = [from.clone(), to.clone()];
                let transfer = |values: &[Option<Vec<u8>>]| {
                    let (a, b) = (values[0].as_deref(), values[1].as_deref());
                    vec![
                        (
                            from.clone(),
                            with_balance(a, value_size, balance(a).wrapping_sub(1)),
                        ),
                        (
                            to.clone(),
                            with_balance(b, value_size, balance(b).wrapping_add(1)),
                        ),
                    ]
                };
                target.txn(&keys, &transfer).await.map(|()| true)
            }
        }
    }
}

struct Client {
    target: Box<dyn Target>,
    config: Arc<Config>,
    chooser: KeyChooser,
    shards: Arc<Shards>,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    rng: SmallRng,
    stats: BTreeMap<Op, OpStats>,
}

impl Client {
    fn value(&mut self) -> Vec<u8> {
        let mut v = vec![0u8; self.config.value_size];
        self.rng.fill(&mut v[..]);
        v
    }

    fn choose_key(&mut self) -> (u64, Vec<u8>) {
        let i = self.chooser.next_index(&mut self.rng);
        (i, key(i))
    }

    fn action(&mut self, op: Op) -> Action {
        match op {
            Op::Get | Op::Read => Action::Get(self.choose_key().1),
            Op::Put | Op::Update => {
                let k = self.choose_key().1;
                Action::Put(k, self.value())
            }
            Op::Insert => {
                let i = self.config.keys + self.shared.inserted.fetch_add(1, Ordering::Relaxed);
                Action::Put(key(i), self.value())
            }
            Op::Scan => {
                let start = self.choose_key().1;
                let len = self.rng.random_range(1..=self.config.max_scan);
                Action::Scan(start, len)
            }
            Op::Rmw => {
                let k = self.choose_key().1;
                Action::Rmw(k, self.value())
            }
            Op::Transfer => {
                let (a, ka) = self.choose_key();
                let sharded = self.shards.count() > 1;
                let shard = self.shards.shard_of(&ka);
                let mut pick = None;
                for _ in 0..100 {
                    let (b, kb) = self.choose_key();
                    if b != a && (!sharded || self.shards.shard_of(&kb) != shard) {
                        pick = Some(kb);
                        break;
                    }
                }
                // A key space within one shard (or an extreme skew): any other key.
                let kb = pick.unwrap_or_else(|| key((a + 1) % self.config.keys));
                Action::Transfer(ka, kb)
            }
        }
    }

    async fn run(mut self, deadline: Option<Instant>) -> BTreeMap<Op, OpStats> {
        let config = Arc::clone(&self.config);
        loop {
            if self.stop.load(Ordering::Relaxed) {
                break;
            }
            match config.limit {
                Limit::Duration(_) => {
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        break;
                    }
                }
                Limit::Ops(n) => {
                    if self.shared.claimed.fetch_add(1, Ordering::Relaxed) >= n {
                        break;
                    }
                }
            }
            let op = config.workload.next_op(&mut self.rng);
            let action = self.action(op);
            let started = Instant::now();
            let mut retries = 0;
            let outcome = loop {
                let attempt = tokio::time::timeout(
                    config.timeout,
                    action.execute(self.target.as_mut(), config.value_size),
                )
                .await
                .unwrap_or_else(|_| {
                    Err(OpError::new(
                        "DeadlineExceeded",
                        format!("no answer within --timeout {:?}", config.timeout),
                    ))
                });
                match attempt {
                    Err(e) if e.is_conflict() && retries < config.retries => {
                        retries += 1;
                        let backoff_us = self.rng.random_range(0..(500u64 << retries.min(6)));
                        tokio::time::sleep(Duration::from_micros(backoff_us)).await;
                    }
                    other => break other,
                }
            };
            let elapsed = started.elapsed();
            let stats = self.stats.entry(op).or_default();
            stats.retries += u64::from(retries);
            self.shared
                .retries
                .fetch_add(u64::from(retries), Ordering::Relaxed);
            match outcome {
                Ok(found) => {
                    stats.latency.record(elapsed.as_nanos() as u64);
                    if !found {
                        stats.not_found += 1;
                    }
                    self.shared.done.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    *stats.errors.entry(e.code).or_default() += 1;
                    self.shared.errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        self.stats
    }
}

fn fatal(what: &str, e: OpError) -> String {
    format!("{what}: {e}")
}

/// Writes keys `0..keys` with `clients` concurrent writers (retrying a conflict or an
/// unavailable group a few times); any other error stops it.
async fn preload(
    config: &Config,
    targets: Vec<Box<dyn Target>>,
    stop: &Arc<AtomicBool>,
) -> Result<PreloadReport, String> {
    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicBool::new(false));
    let mut tasks = tokio::task::JoinSet::new();
    for (c, mut target) in targets.into_iter().enumerate() {
        let (next, done, failed, stop) = (
            Arc::clone(&next),
            Arc::clone(&done),
            Arc::clone(&failed),
            Arc::clone(stop),
        );
        let (keys, value_size, timeout) = (config.keys, config.value_size, config.timeout);
        let mut rng = SmallRng::seed_from_u64(config.seed ^ 0x9e10_ad00 ^ c as u64);
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= keys || failed.load(Ordering::Relaxed) || stop.load(Ordering::Relaxed) {
                    return Ok(());
                }
                let k = key(i);
                let mut v = vec![0u8; value_size];
                rng.fill(&mut v[..]);
                let mut attempt = 0;
                loop {
                    let r = tokio::time::timeout(timeout, target.put(&k, &v))
                        .await
                        .unwrap_or_else(|_| Err(OpError::new("DeadlineExceeded", "timeout")));
                    match r {
                        Ok(()) => break,
                        Err(e)
                            if attempt < 20
                                && matches!(
                                    e.code.as_str(),
                                    "Aborted" | "Unavailable" | "DeadlineExceeded"
                                ) =>
                        {
                            attempt += 1;
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        Err(e) => {
                            failed.store(true, Ordering::Relaxed);
                            return Err(fatal(&format!("preloading key {i}"), e));
                        }
                    }
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    let progress = config.progress.then(|| {
        let done = Arc::clone(&done);
        let keys = config.keys;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            loop {
                tick.tick().await;
                eprintln!(
                    "[{:6.1}s] preload: {}/{keys} keys",
                    started.elapsed().as_secs_f64(),
                    done.load(Ordering::Relaxed)
                );
            }
        })
    });
    let mut result = Ok(());
    while let Some(joined) = tasks.join_next().await {
        let r = joined.map_err(|e| format!("a preload task failed: {e}"))?;
        if result.is_ok() {
            result = r;
        }
    }
    if let Some(p) = progress {
        p.abort();
    }
    result?;
    let elapsed = started.elapsed().as_secs_f64();
    let keys = done.load(Ordering::Relaxed);
    Ok(PreloadReport {
        keys,
        elapsed_s: elapsed,
        keys_per_s: keys as f64 / elapsed.max(1e-9),
    })
}

/// Runs `config` against the system `connector` reaches and returns the report.
pub async fn run(config: &Config, connector: &dyn Connector) -> Result<Report, String> {
    run_until(config, connector, Arc::new(AtomicBool::new(false))).await
}

/// [`run`], ending early (with a report of what was done) once `stop` is set.
pub async fn run_until(
    config: &Config,
    connector: &dyn Connector,
    stop: Arc<AtomicBool>,
) -> Result<Report, String> {
    config.validate()?;
    let config = Arc::new(config.clone());
    let mut notes = Vec::new();

    let mut conns: Vec<Box<dyn Target>> = Vec::with_capacity(config.conns);
    for c in 0..config.conns {
        let endpoint = &config.endpoints[c % config.endpoints.len()];
        conns.push(
            connector
                .connect(endpoint)
                .await
                .map_err(|e| fatal(&format!("connecting to {endpoint}"), e))?,
        );
    }
    let targets: Vec<Box<dyn Target>> = (0..config.clients)
        .map(|i| conns[i % conns.len()].share())
        .collect();

    let shards = if config.workload == Workload::Txn {
        let shards = Shards::new(
            conns[0]
                .shards()
                .await
                .map_err(|e| fatal("reading the shard layout", e))?,
        );
        if shards.is_unsharded() {
            notes.push("the target is not sharded: every transfer is within one shard".into());
        } else if !shards.spans(config.keys) {
            notes.push(format!(
                "the key space lies in one shard ({} in all): transfers are single-shard",
                shards.count()
            ));
        }
        shards
    } else {
        Shards::default()
    };

    let preload_report = if config.preload {
        let writers = targets.iter().map(|t| t.share()).collect();
        Some(preload(&config, writers, &stop).await?)
    } else {
        if config.workload.reads() {
            notes.push("no --preload: reads of keys never written count as not found".to_string());
        }
        None
    };

    let chooser = KeyChooser::new(config.keys, config.distribution, config.seed)?;
    let shared = Arc::new(Shared::default());
    let shards = Arc::new(shards);
    let started = Instant::now();
    let deadline = match config.limit {
        Limit::Duration(d) => Some(started + d),
        Limit::Ops(_) => None,
    };
    let mut tasks = tokio::task::JoinSet::new();
    for (i, target) in targets.into_iter().enumerate() {
        let mut stats = BTreeMap::new();
        for op in config.workload.ops() {
            stats.insert(*op, OpStats::default());
        }
        let client = Client {
            target,
            config: Arc::clone(&config),
            chooser: chooser.clone(),
            shards: Arc::clone(&shards),
            shared: Arc::clone(&shared),
            stop: Arc::clone(&stop),
            rng: SmallRng::seed_from_u64(
                config.seed ^ (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15),
            ),
            stats,
        };
        tasks.spawn(client.run(deadline));
    }
    let progress = config.progress.then(|| {
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            let mut last = 0;
            loop {
                tick.tick().await;
                let done = shared.done.load(Ordering::Relaxed);
                eprintln!(
                    "[{:6.1}s] {done} ops, {} ops/s in the last second, {} errors, {} retries",
                    started.elapsed().as_secs_f64(),
                    done - last,
                    shared.errors.load(Ordering::Relaxed),
                    shared.retries.load(Ordering::Relaxed),
                );
                last = done;
            }
        })
    });
    let mut merged: BTreeMap<Op, OpStats> = BTreeMap::new();
    while let Some(joined) = tasks.join_next().await {
        let stats = joined.map_err(|e| format!("a client task failed: {e}"))?;
        for (op, s) in stats {
            merged.entry(op).or_default().merge(&s);
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    if let Some(p) = progress {
        p.abort();
    }
    if stop.load(Ordering::Relaxed) {
        notes.push("stopped early".into());
    }

    let rows: Vec<OpReport> = merged
        .iter()
        .map(|(op, s)| op_report(op.name(), s, elapsed))
        .collect();
    let mut all = OpStats::default();
    for s in merged.values() {
        all.merge(s);
    }
    Ok(Report {
        tool: "elastickv-load".into(),
        target: connector.describe(),
        workload: config.workload.name().into(),
        endpoints: config.endpoints.clone(),
        clients: config.clients,
        conns: config.conns,
        keys: config.keys,
        distribution: config.distribution.to_string(),
        value_size: config.value_size,
        duration_limit_s: match config.limit {
            Limit::Duration(d) => Some(d.as_secs_f64()),
            Limit::Ops(_) => None,
        },
        ops_limit: match config.limit {
            Limit::Ops(n) => Some(n),
            Limit::Duration(_) => None,
        },
        seed: config.seed,
        elapsed_s: elapsed,
        preload: preload_report,
        ops: rows,
        total: op_report("total", &all, elapsed),
        notes,
    })
}

fn op_report(name: &str, s: &OpStats, elapsed: f64) -> OpReport {
    let us = |ns: u64| ns as f64 / 1000.0;
    OpReport {
        op: name.to_string(),
        ops: s.latency.count(),
        ops_per_s: s.latency.count() as f64 / elapsed.max(1e-9),
        p50_us: us(s.latency.percentile(50.0)),
        p99_us: us(s.latency.percentile(99.0)),
        p999_us: us(s.latency.percentile(99.9)),
        mean_us: s.latency.mean() / 1000.0,
        max_us: us(s.latency.max()),
        errors_total: s.errors.values().sum(),
        errors: s.errors.clone(),
        retries: s.retries,
        not_found: s.not_found,
    }
}
