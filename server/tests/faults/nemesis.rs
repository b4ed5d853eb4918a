//! The nemesis: one fault at a time on a random schedule, each healed before the next.

use std::collections::BTreeMap;
use std::time::Duration;

use elastickv_server::pb::cluster::admin_client::AdminClient;
use elastickv_server::pb::cluster::TransferLeaderRequest;
use tokio::time::Instant;

use super::cluster::Cluster;
use super::workload::Rng;

/// The kinds of faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    /// SIGKILL a random node, restart it a few seconds later.
    Kill,
    /// SIGKILL the leader of a random group, restart it later.
    KillLeader,
    /// SIGSTOP a random node or a group's leader, SIGCONT it later.
    Pause,
    /// Cut a random node, or a group's leader, alone or with others (a minority), off
    /// from the other nodes; heal later.
    Partition,
    /// Ask a random node to take over a random group.
    TransferLeader,
    /// Split the range holding a random workload key.
    Split,
}

impl Fault {
    pub fn parse(name: &str) -> Option<Fault> {
        Some(match name {
            "kill" => Fault::Kill,
            "kill-leader" => Fault::KillLeader,
            "pause" => Fault::Pause,
            "partition" => Fault::Partition,
            "transfer-leader" => Fault::TransferLeader,
            "split" => Fault::Split,
            _ => return None,
        })
    }

    pub fn all() -> Vec<Fault> {
        vec![
            Fault::Kill,
            Fault::KillLeader,
            Fault::Pause,
            Fault::Partition,
            Fault::TransferLeader,
            Fault::Split,
        ]
    }
}

/// What the nemesis did.
#[derive(Debug, Default)]
pub struct FaultLog {
    pub counts: BTreeMap<Fault, usize>,
    pub events: Vec<String>,
}

impl FaultLog {
    pub fn total(&self) -> usize {
        self.counts.values().sum()
    }
}

/// The leader of `group` as a healthy node sees it.
pub async fn leader_of(cluster: &Cluster, group: u64) -> Option<u64> {
    for id in cluster.ids() {
        if !cluster.healthy(id) {
            continue;
        }
        let status = tokio::time::timeout(Duration::from_secs(2), async {
            cluster.client(id).await?.status().await.ok()
        })
        .await
        .ok()
        .flatten();
        if let Some(g) = status.and_then(|s| s.groups.into_iter().find(|g| g.group_id == group)) {
            if g.leader_id != 0 {
                return Some(g.leader_id);
            }
        }
    }
    None
}

/// Asks node `id` to campaign for `group`.
pub async fn transfer_leader(cluster: &Cluster, group: u64, id: u64) -> Result<(), String> {
    let addr = format!("http://{}", cluster.addr(id));
    // The node answers once it leads, or after 10 s.
    tokio::time::timeout(Duration::from_secs(12), async {
        let mut admin = AdminClient::connect(addr)
            .await
            .map_err(|e| e.to_string())?;
        admin
            .transfer_leader(TransferLeaderRequest {
                group_id: group,
                node_id: 0,
            })
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    })
    .await
    .map_err(|_| "timed out".to_string())?
}

async fn sleep_until_or(deadline: Instant, d: Duration) {
    tokio::time::sleep_until(deadline.min(Instant::now() + d)).await;
}

/// Injects faults from `kinds` until `until`, then heals everything.
pub async fn run(
    cluster: &mut Cluster,
    kinds: &[Fault],
    split_keys: &[String],
    mut rng: Rng,
    until: Instant,
) -> FaultLog {
    let mut log = FaultLog::default();
    let started = Instant::now();
    let ids = cluster.ids();
    let mut splits_done = std::collections::BTreeSet::new();
    while !kinds.is_empty() && Instant::now() + Duration::from_secs(3) < until {
        sleep_until_or(until, Duration::from_millis(1000 + rng.below(3000))).await;
        if Instant::now() + Duration::from_secs(2) >= until {
            break;
        }
        let fault = kinds[rng.below(kinds.len() as u64) as usize];
        let group = rng.below(cluster.groups);
        let random = ids[rng.below(ids.len() as u64) as usize];
        let on_leader = matches!(fault, Fault::KillLeader) || rng.below(2) == 0;
        let aims = matches!(fault, Fault::KillLeader | Fault::Pause | Fault::Partition);
        let target = if on_leader && aims {
            leader_of(cluster, group).await.unwrap_or(random)
        } else {
            random
        };
        let hold = Duration::from_millis(1000 + rng.below(4000));
        let at = started.elapsed().as_secs_f64();
        let what = match fault {
            Fault::Kill | Fault::KillLeader => {
                cluster.kill(target);
                sleep_until_or(until, hold).await;
                cluster.restart(target);
                format!("kill -9 node {target}, restarted after {hold:?}")
            }
            Fault::Pause => {
                cluster.pause(target);
                sleep_until_or(until, hold).await;
                cluster.resume(target);
                format!("SIGSTOP node {target}, SIGCONT after {hold:?}")
            }
            Fault::Partition => {
                // The target alone, or with others up to a minority.
                let mut side = vec![target];
                let size = 1 + rng.below((ids.len() as u64 - 1) / 2) as usize;
                while side.len() < size {
                    let other = ids[rng.below(ids.len() as u64) as usize];
                    if !side.contains(&other) {
                        side.push(other);
                    }
                }
                cluster.net.isolate(&side, &ids);
                sleep_until_or(until, hold).await;
                cluster.net.heal();
                format!("cut nodes {side:?} off from the others for {hold:?}")
            }
            Fault::TransferLeader => {
                let r = transfer_leader(cluster, group, random).await;
                format!("transfer group {group} to node {random}: {r:?}")
            }
            Fault::Split => {
                let key = &split_keys[rng.below(split_keys.len() as u64) as usize];
                if !splits_done.insert(key.clone()) {
                    continue;
                }
                let r = tokio::time::timeout(Duration::from_secs(5), async {
                    let mut c = cluster
                        .client(random)
                        .await
                        .ok_or_else(|| "no connection".to_string())?;
                    c.split(key.as_bytes())
                        .await
                        .map(|r| r.version)
                        .map_err(|e| e.to_string())
                })
                .await;
                format!("split at {key:?} through node {random}: {r:?}")
            }
        };
        *log.counts.entry(fault).or_default() += 1;
        log.events.push(format!("{at:7.1}s {what}"));
    }
    cluster.heal_all();
    log
}
