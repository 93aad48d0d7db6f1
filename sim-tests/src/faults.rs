//! Faults drawn from the seed: partitions (symmetric, one-way, isolating the leader), message
//! loss, latency, slow disks, single-node power loss, the loss of a majority at once (with or
//! without the leader); a gateway's crash,
//! a gateway cut off from the cluster or from the PSP; PSP faults (timeouts, 500s, responses
//! lost after the PSP acted, slow answers) for the next few money calls. Each heals after a
//! drawn duration; everything heals by the end of the fault window. The clock skew of each node
//! is drawn once at the start, and so is the PSP's webhook misbehaviour (`gateways`).

use crate::cluster::{node_name, Cluster};
use crate::gateways::{gateway_name, Gateways, PSP_HOST};
use crate::trace::Trace;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::time::Duration;
use turmoil::Sim;

/// Largest clock skew drawn for a node, either way.
pub const CLOCK_SKEW_MS_MAX: i64 = 3_000;
/// Link latency outside latency faults.
pub const LATENCY_MS_NORMAL: u64 = 5;
/// Faults at once, crashes included; two crashes never overlap.
const FAULTS_ACTIVE_MAX: usize = 2;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    Partition {
        a: usize,
        b: usize,
    },
    PartitionOneWay {
        from: usize,
        to: usize,
    },
    /// Cut the node that leads when the fault fires off from every other node.
    IsolateLeader,
    Loss {
        a: usize,
        b: usize,
        percent: u32,
    },
    Latency {
        max_ms: u64,
    },
    Crash {
        node: usize,
    },
    CrashMajority,
    /// A majority of followers loses power while the leader runs on without a quorum: its
    /// writes and reads must be answered in bounded time and resume once they return.
    CrashMajoritySparingLeader,
    /// Every synced write (log append, vote) of `node` takes `latency_ms` longer.
    SlowDisk {
        node: usize,
        latency_ms: u64,
    },
    GatewayCrash {
        gateway: usize,
    },
    /// A gateway loses every node (its ledger calls fail; its leases run out).
    GatewayCutOff {
        gateway: usize,
    },
    /// A gateway cannot reach the PSP (nor the PSP it, for webhooks).
    PspUnreachable {
        gateway: usize,
    },
    /// The PSP's next `count` money calls meet `fault` (`tally_psp::sim::Fault` names).
    Psp {
        fault: &'static str,
        count: u32,
    },
}

impl Fault {
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::Partition { .. } => "partition",
            Fault::PartitionOneWay { .. } => "one-way partition",
            Fault::IsolateLeader => "leader isolated",
            Fault::Loss { .. } => "message loss",
            Fault::Latency { .. } => "latency",
            Fault::Crash { .. } => "node crash",
            Fault::CrashMajority => "majority crash",
            Fault::CrashMajoritySparingLeader => "majority crash sparing the leader",
            Fault::SlowDisk { .. } => "slow disk",
            Fault::GatewayCrash { .. } => "gateway crash",
            Fault::GatewayCutOff { .. } => "gateway cut off",
            Fault::PspUnreachable { .. } => "psp unreachable",
            Fault::Psp { fault, .. } => match *fault {
                "timeout" => "psp timeout",
                "error_500" => "psp 500",
                "lost_response" => "psp lost response",
                _ => "psp slow",
            },
        }
    }

    fn is_crash(&self) -> bool {
        matches!(
            self,
            Fault::Crash { .. } | Fault::CrashMajority | Fault::CrashMajoritySparingLeader
        )
    }
}

struct Planned {
    at_ms: u64,
    lasts_ms: u64,
    fault: Fault,
}

/// A fault in force and what undoes it.
struct Active {
    heal_at_ms: u64,
    heal: Heal,
    crash: bool,
}

enum Heal {
    /// Host names on each side.
    Repair(Vec<String>, Vec<String>),
    RepairOneWay(String, String),
    Loss(String, String),
    Latency,
    Restart(Vec<usize>),
    RestartGateway(usize),
    HealthyDisk(usize),
    /// PSP faults are used up by the calls that meet them; what is left is cleared at the end.
    Nothing,
}

pub struct FaultPlan {
    planned: Vec<Planned>,
    next: usize,
    active: Vec<Active>,
    /// Faults injected, by kind (the clock skew counts once per skewed node).
    pub injected: BTreeMap<&'static str, u64>,
}

/// The clock skew of each node, in ms.
pub fn draw_skews(seed: u64, nodes: usize) -> Vec<i64> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed_c10c);
    (0..nodes)
        .map(|_| rng.random_range(-CLOCK_SKEW_MS_MAX..=CLOCK_SKEW_MS_MAX))
        .collect()
}

impl FaultPlan {
    /// No faults (baseline runs).
    pub fn none() -> Self {
        FaultPlan {
            planned: Vec::new(),
            next: 0,
            active: Vec::new(),
            injected: BTreeMap::new(),
        }
    }

    /// Faults for `seed` between 1 s and `window_ms`, on a cluster of `nodes` with `gateways`
    /// gateways in front.
    pub fn draw(seed: u64, nodes: usize, gateways: usize, window_ms: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed ^ 0xfa17_5eed);
        let mut planned = Vec::new();
        let mut at_ms = 1_000 + rng.random_range(0..1_000);
        while at_ms < window_ms {
            let two = |rng: &mut StdRng| {
                let a = rng.random_range(0..nodes);
                let b = (a + rng.random_range(1..nodes)) % nodes;
                (a, b)
            };
            let payments_fault = gateways > 0 && rng.random_range(0..100) < 30;
            let fault = if payments_fault {
                let gateway = rng.random_range(0..gateways);
                match rng.random_range(0..100) {
                    0..=29 => Fault::GatewayCrash { gateway },
                    30..=44 => Fault::GatewayCutOff { gateway },
                    45..=54 => Fault::PspUnreachable { gateway },
                    roll => Fault::Psp {
                        fault: match roll {
                            55..=66 => "timeout",
                            67..=77 => "error_500",
                            78..=90 => "lost_response",
                            _ => "latency=800",
                        },
                        count: rng.random_range(1..=4),
                    },
                }
            } else {
                match rng.random_range(0..100) {
                    0..=16 => {
                        let (a, b) = two(&mut rng);
                        Fault::Partition { a, b }
                    }
                    17..=29 => {
                        let (from, to) = two(&mut rng);
                        Fault::PartitionOneWay { from, to }
                    }
                    30..=42 => Fault::IsolateLeader,
                    43..=51 => {
                        let (a, b) = two(&mut rng);
                        Fault::Loss {
                            a,
                            b,
                            percent: rng.random_range(1..=20),
                        }
                    }
                    52..=59 => Fault::Latency {
                        max_ms: rng.random_range(20..=400),
                    },
                    60..=79 => Fault::Crash {
                        node: rng.random_range(0..nodes),
                    },
                    80..=86 => Fault::CrashMajority,
                    87..=93 => Fault::CrashMajoritySparingLeader,
                    _ => Fault::SlowDisk {
                        node: rng.random_range(0..nodes),
                        latency_ms: rng.random_range(20..=300),
                    },
                }
            };
            // A leader cut off, or left without its quorum, for longer than the election
            // timeout (400-800 ms) half of the time: the old leader must not hold its writes.
            let lasts_ms = match fault {
                Fault::IsolateLeader | Fault::CrashMajoritySparingLeader => {
                    rng.random_range(200..8_000)
                }
                _ => rng.random_range(200..4_000),
            };
            planned.push(Planned {
                at_ms,
                lasts_ms: lasts_ms.min(window_ms.saturating_sub(at_ms)),
                fault,
            });
            at_ms += rng.random_range(300..3_000);
        }
        FaultPlan {
            planned,
            next: 0,
            active: Vec::new(),
            injected: BTreeMap::new(),
        }
    }

    pub fn count_skews(&mut self, skews_ms: &[i64]) {
        let skewed = skews_ms.iter().filter(|ms| **ms != 0).count() as u64;
        if skewed > 0 {
            *self.injected.entry("clock skew").or_default() += skewed;
        }
    }

    /// Whether every planned fault has fired and healed.
    pub fn finished(&self) -> bool {
        self.next == self.planned.len() && self.active.is_empty()
    }

    /// Heals what is due and fires what is due, at simulated time `now`.
    pub fn tick(
        &mut self,
        sim: &mut Sim<'_>,
        cluster: &mut Cluster,
        gateways: &mut Gateways,
        trace: &mut Trace,
        now: Duration,
    ) {
        let now_ms = now.as_millis() as u64;
        let mut still = Vec::with_capacity(self.active.len());
        for active in std::mem::take(&mut self.active) {
            if active.heal_at_ms <= now_ms {
                heal(sim, cluster, gateways, trace, now, active.heal);
            } else {
                still.push(active);
            }
        }
        self.active = still;
        while let Some(planned) = self.planned.get(self.next) {
            if planned.at_ms > now_ms {
                break;
            }
            self.next += 1;
            let crash_active = self.active.iter().any(|a| a.crash);
            if self.active.len() >= FAULTS_ACTIVE_MAX || (planned.fault.is_crash() && crash_active)
            {
                trace.record(
                    now,
                    &format!("skip {:?} (too many faults in force)", planned.fault),
                );
                continue;
            }
            let Some(heal) = fire(sim, cluster, gateways, trace, now, &planned.fault) else {
                continue;
            };
            *self.injected.entry(planned.fault.kind()).or_default() += 1;
            self.active.push(Active {
                heal_at_ms: now_ms + planned.lasts_ms,
                heal,
                crash: planned.fault.is_crash(),
            });
        }
    }

    /// Heals everything at once (the end of a run).
    pub fn heal_all(
        &mut self,
        sim: &mut Sim<'_>,
        cluster: &mut Cluster,
        gateways: &mut Gateways,
        trace: &mut Trace,
        now: Duration,
    ) {
        self.next = self.planned.len();
        for active in std::mem::take(&mut self.active) {
            heal(sim, cluster, gateways, trace, now, active.heal);
        }
        gateways.psp.clear_faults();
    }
}

fn names(nodes: &[usize]) -> Vec<String> {
    nodes.iter().map(|i| node_name(*i)).collect()
}

fn fire(
    sim: &mut Sim<'_>,
    cluster: &mut Cluster,
    gateways: &mut Gateways,
    trace: &mut Trace,
    now: Duration,
    fault: &Fault,
) -> Option<Heal> {
    let heal = match *fault {
        Fault::Partition { a, b } => {
            sim.partition(node_name(a), node_name(b));
            Heal::Repair(vec![node_name(a)], vec![node_name(b)])
        }
        Fault::PartitionOneWay { from, to } => {
            sim.partition_oneway(node_name(from), node_name(to));
            Heal::RepairOneWay(node_name(from), node_name(to))
        }
        Fault::IsolateLeader => {
            let (leader, _term) = cluster.leader()?;
            if !cluster.is_running(leader) {
                return None;
            }
            let others: Vec<usize> = (0..cluster.size).filter(|i| *i != leader).collect();
            for other in &others {
                sim.partition(node_name(leader), node_name(*other));
            }
            trace.record(now, &format!("fault: isolate leader {}", node_name(leader)));
            return Some(Heal::Repair(vec![node_name(leader)], names(&others)));
        }
        Fault::Loss { a, b, percent } => {
            sim.set_link_fail_rate(node_name(a), node_name(b), f64::from(percent) / 100.0);
            Heal::Loss(node_name(a), node_name(b))
        }
        Fault::Latency { max_ms } => {
            sim.set_max_message_latency(Duration::from_millis(max_ms));
            Heal::Latency
        }
        Fault::Crash { node } => {
            if !cluster.is_running(node) {
                return None;
            }
            cluster.crash(sim, node);
            Heal::Restart(vec![node])
        }
        Fault::CrashMajority => {
            let majority = cluster.size / 2 + 1;
            // The leader and the nodes after it: the ones most likely to hold unsynced entries.
            let first = cluster.leader().map(|(leader, _)| leader).unwrap_or(0);
            let victims: Vec<usize> = (0..majority)
                .map(|k| (first + k) % cluster.size)
                .filter(|node| cluster.is_running(*node))
                .collect();
            for node in &victims {
                cluster.crash(sim, *node);
            }
            trace.record(now, &format!("fault: crash {:?}", names(&victims)));
            return Some(Heal::Restart(victims));
        }
        Fault::CrashMajoritySparingLeader => {
            let (leader, _term) = cluster.leader()?;
            let victims: Vec<usize> = (1..cluster.size)
                .map(|k| (leader + k) % cluster.size)
                .filter(|node| cluster.is_running(*node))
                .take(cluster.size / 2 + 1)
                .collect();
            if victims.len() < cluster.size / 2 + 1 {
                return None;
            }
            for node in &victims {
                cluster.crash(sim, *node);
            }
            trace.record(
                now,
                &format!(
                    "fault: crash {:?}, sparing leader {}",
                    names(&victims),
                    node_name(leader)
                ),
            );
            return Some(Heal::Restart(victims));
        }
        Fault::SlowDisk { node, latency_ms } => {
            cluster.set_disk_latency(node, latency_ms);
            Heal::HealthyDisk(node)
        }
        Fault::GatewayCrash { gateway } => {
            if !gateways.is_running(gateway) {
                return None;
            }
            gateways.crash(sim, gateway);
            Heal::RestartGateway(gateway)
        }
        Fault::GatewayCutOff { gateway } => {
            let nodes = names(&(0..cluster.size).collect::<Vec<_>>());
            for node in &nodes {
                sim.partition(gateway_name(gateway), node.as_str());
            }
            Heal::Repair(vec![gateway_name(gateway)], nodes)
        }
        Fault::PspUnreachable { gateway } => {
            sim.partition(gateway_name(gateway), PSP_HOST);
            Heal::Repair(vec![gateway_name(gateway)], vec![PSP_HOST.to_string()])
        }
        Fault::Psp { fault, count } => {
            let parsed = tally_psp::sim::Fault::parse(fault)?;
            gateways.psp.queue_faults(parsed, count).ok()?;
            Heal::Nothing
        }
    };
    trace.record(now, &format!("fault: {fault:?}"));
    Some(heal)
}

fn heal(
    sim: &mut Sim<'_>,
    cluster: &mut Cluster,
    gateways: &mut Gateways,
    trace: &mut Trace,
    now: Duration,
    heal: Heal,
) {
    match heal {
        Heal::Repair(a, b) => {
            for x in &a {
                for y in &b {
                    sim.repair(x.as_str(), y.as_str());
                }
            }
            trace.record(now, &format!("heal: repair {a:?} <-> {b:?}"));
        }
        Heal::RepairOneWay(from, to) => {
            sim.repair_oneway(from.as_str(), to.as_str());
            trace.record(now, &format!("heal: repair {from} -> {to}"));
        }
        Heal::Loss(a, b) => {
            sim.set_link_fail_rate(a.as_str(), b.as_str(), 0.0);
            trace.record(now, &format!("heal: no loss {a} <-> {b}"));
        }
        Heal::Latency => {
            sim.set_max_message_latency(Duration::from_millis(LATENCY_MS_NORMAL));
            trace.record(now, "heal: latency normal");
        }
        Heal::Restart(nodes) => {
            for node in &nodes {
                cluster.restart(sim, *node);
            }
            trace.record(now, &format!("heal: restart {:?}", names(&nodes)));
        }
        Heal::RestartGateway(gateway) => {
            gateways.restart(sim, gateway);
            trace.record(now, &format!("heal: restart {}", gateway_name(gateway)));
        }
        Heal::HealthyDisk(node) => {
            cluster.set_disk_latency(node, 0);
            trace.record(now, &format!("heal: disk of {} healthy", node_name(node)));
        }
        Heal::Nothing => {}
    }
}
