//! One simulated run: builds the world for a seed, steps it while injecting faults and checking,
//! heals everything, waits for the replicas to converge, runs the final checks and reports.

use crate::check::{self, StepChecker};
use crate::cluster::{node_name, Cluster};
use crate::config::SimConfig;
use crate::faults::{self, FaultPlan, LATENCY_MS_NORMAL};
use crate::gateways::Gateways;
use crate::payments_check::{self, PaymentStepChecker};
use crate::shop::{self, PaymentHistory};
use crate::trace::Trace;
use crate::workload::{self, History};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;
use std::rc::Rc;
use std::time::{Duration, SystemTime};
use tally_ledger::LedgerRead;

/// Simulated time per step. Timers inside a step stay exact (the paused clock advances to
/// each); only message delivery is rounded to steps, so the tick stays below the links' 5 ms.
pub const TICK_MS: u64 = 4;
/// Steps between two full audits of every replica: one simulated second.
const AUDIT_EVERY_STEPS: u64 = 1_000 / TICK_MS;
/// A fixed epoch: the same seed sees the same wall-clock times.
const EPOCH_S: u64 = 1_767_225_600; // 2026-01-01T00:00:00Z

/// What one run did and found.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Report {
    pub seed: u64,
    pub nodes: usize,
    pub sim_time_ms: u64,
    pub steps: u64,
    pub faults: BTreeMap<String, u64>,
    pub ops_answered: u64,
    pub transfers_applied: u64,
    pub reads: u64,
    pub leader_changes: u64,
    /// Checkouts the shops created, and what became of them.
    pub checkouts: u64,
    pub psp_captures: u64,
    pub captures: u64,
    pub refunds: u64,
    pub payouts_paid: u64,
    /// Charge calls the gateways made to the PSP.
    pub charge_calls: u64,
    pub trace_lines: u64,
    pub trace_hash: [u8; 32],
    /// Empty when every check passed.
    pub failures: Vec<String>,
    /// The last trace lines, for a failure report.
    pub trace_tail: Vec<String>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }

    pub fn trace_hash_hex(&self) -> String {
        self.trace_hash.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The command that replays this run.
    pub fn replay_command(&self, config: &SimConfig) -> String {
        let bug = config
            .bug
            .map(|bug| format!(" --bug {bug}"))
            .unwrap_or_default();
        format!(
            "SIM_SEED={} cargo run -p tally-sim-tests --bin tally-sim -- --verbose{bug}",
            self.seed
        )
    }
}

thread_local! {
    /// Panics of tasks on this thread (a host's code runs on the simulation's thread).
    static PANICS: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
    /// The seed this thread runs, for the replay hint of a panic that takes the process down.
    static SEED: std::cell::Cell<Option<u64>> = const { std::cell::Cell::new(None) };
}

/// Records every panic's message on the panicking thread, then reports it as before: a task that
/// panics inside a simulated host must fail the run even if the host carries on.
fn watch_panics() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.with(|panics| panics.borrow_mut().push(info.to_string()));
            previous(info);
            // A panic inside a simulated host unwinds through turmoil's runtime, which may abort
            // the process: say which seed it was first.
            if let Some(seed) = SEED.with(|seed| seed.get()) {
                eprintln!("(simulation seed {seed} panicked: replay with SIM_SEED={seed})");
            }
        }));
    });
}

/// Runs `config` and returns what happened. Never panics on a failed check: failures are in
/// the report.
pub fn run(config: &SimConfig) -> Report {
    watch_panics();
    PANICS.with(|panics| panics.borrow_mut().clear());
    // openraft's election timeouts come from this thread's seeded generator.
    tally_raft_store::runtime::seed_thread_rng(Some(config.seed));
    SEED.with(|seed| seed.set(Some(config.seed)));
    let report = run_seeded(config);
    SEED.with(|seed| seed.set(None));
    tally_raft_store::runtime::seed_thread_rng(None);
    report
}

/// The simulated world every run (and every scenario test) uses: seeded, a fixed epoch,
/// `TICK_MS` steps, 1-5 ms links.
pub fn world(seed: u64, duration: Duration) -> turmoil::Builder {
    let mut builder = turmoil::Builder::new();
    builder
        .rng_seed(seed)
        .epoch(SystemTime::UNIX_EPOCH + Duration::from_secs(EPOCH_S))
        .simulation_duration(duration)
        .tick_duration(Duration::from_millis(TICK_MS))
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(Duration::from_millis(LATENCY_MS_NORMAL))
        .tcp_capacity(4_096)
        // Wider than turmoil's default, so a host that reconnects often (to a crashed peer)
        // takes long to wrap around to a port a peer may still hold a stale connection on.
        .ephemeral_ports(10_000..=65_535);
    builder
}

/// Each replica's progress goes into the trace: two runs that apply at different instants
/// differ.
/// Registers `count` client hosts named `{prefix}1`, `{prefix}2`, ..., each running `body` with
/// its index and the run's shared record.
fn add_clients<R, F, Fut>(
    sim: &mut turmoil::Sim<'_>,
    prefix: &str,
    count: usize,
    config: &SimConfig,
    record: &Rc<RefCell<R>>,
    trace: &Rc<RefCell<Trace>>,
    body: F,
) where
    F: Fn(usize, SimConfig, Rc<RefCell<R>>, Rc<RefCell<Trace>>) -> Fut,
    Fut: Future<Output = turmoil::Result> + 'static,
{
    for index in 0..count {
        sim.client(
            format!("{prefix}{}", index + 1),
            body(index, config.clone(), record.clone(), trace.clone()),
        );
    }
}

/// The cheap checks after every step: replicas agree and only move forward (and the trace notes
/// what each applied), and no order's state moves backwards.
#[derive(Default)]
struct StepChecks {
    ledger: StepChecker,
    payments: PaymentStepChecker,
}

impl StepChecks {
    fn after_step(
        &mut self,
        cluster: &Cluster,
        payments: &PaymentHistory,
        trace: &RefCell<Trace>,
        now: Duration,
    ) -> Result<(), String> {
        let changed = self.ledger.after_step(cluster)?;
        {
            let mut trace = trace.borrow_mut();
            for (node, batches) in &changed {
                trace.record(now, &format!("{} applied {batches}", node_name(*node)));
            }
        }
        self.payments
            .after_step(cluster, &changed, &payments.checkouts)
    }
}

fn run_seeded(config: &SimConfig) -> Report {
    let time_limit = Duration::from_millis(config.time_limit_ms());
    let mut sim = world(config.seed, time_limit + Duration::from_secs(60)).build();
    let trace = Rc::new(RefCell::new(Trace::new(config.verbose)));
    let history = Rc::new(RefCell::new(History::default()));
    let payments = Rc::new(RefCell::new(PaymentHistory::default()));

    let skews_ms = if config.faults {
        faults::draw_skews(config.seed, config.nodes)
    } else {
        vec![0; config.nodes]
    };
    let mut plan = if config.faults {
        FaultPlan::draw(
            config.seed,
            config.nodes,
            config.gateways,
            config.fault_window_ms,
        )
    } else {
        FaultPlan::none()
    };
    plan.count_skews(&skews_ms);
    let mut cluster = Cluster::start(&mut sim, config, &skews_ms);
    let mut gateways = Gateways::start(&mut sim, config);
    if config.faults && config.gateways > 0 {
        *plan.injected.entry("psp webhook chaos").or_default() += 1;
    }
    let shops = if config.gateways > 0 { config.shops } else { 0 };
    add_clients(
        &mut sim,
        "shop",
        shops,
        config,
        &payments,
        &trace,
        shop::run_shop,
    );
    add_clients(
        &mut sim,
        "client",
        config.clients,
        config,
        &history,
        &trace,
        workload::run_client,
    );

    let mut report = Report {
        seed: config.seed,
        nodes: config.nodes,
        ..Report::default()
    };
    let mut checks = StepChecks::default();
    let mut leader: Option<(usize, u64)> = None;
    let mut clients_done = false;
    // Phase 1: the workload under faults, until every client is done (or time runs out).
    while sim.elapsed() < time_limit {
        let now = sim.elapsed();
        plan.tick(
            &mut sim,
            &mut cluster,
            &mut gateways,
            &mut trace.borrow_mut(),
            now,
        );
        match sim.step() {
            Ok(done) => clients_done = done,
            Err(error) => {
                report.failures.push(format!("a host failed: {error}"));
                break;
            }
        }
        report.steps += 1;
        let checked = checks.after_step(&cluster, &payments.borrow(), &trace, sim.elapsed());
        if let Err(failure) = checked {
            report.failures.push(failure);
            break;
        }
        if let Some(failure) = gateways.charge_calls.violations().into_iter().next() {
            report.failures.push(failure);
            break;
        }
        if report.steps.is_multiple_of(AUDIT_EVERY_STEPS) {
            if let Err(failure) = check::audit_all(&cluster) {
                report.failures.push(failure);
                break;
            }
        }
        let now_leader = cluster.leader();
        if now_leader != leader && now_leader.is_some() {
            if let Some((node, term)) = now_leader {
                trace.borrow_mut().record(
                    sim.elapsed(),
                    &format!("leader {} term {term}", node_name(node)),
                );
            }
            report.leader_changes += 1;
            leader = now_leader;
        }
        if clients_done && plan.finished() {
            break;
        }
    }
    if !clients_done && report.failures.is_empty() {
        report.failures.push(format!(
            "liveness: clients not done {} ms into the run",
            time_limit.as_millis()
        ));
    }

    // Phase 2: heal everything and let every replica catch up.
    let now = sim.elapsed();
    plan.heal_all(
        &mut sim,
        &mut cluster,
        &mut gateways,
        &mut trace.borrow_mut(),
        now,
    );
    let converge_by = sim.elapsed() + Duration::from_millis(config.liveness_bound_ms);
    while report.failures.is_empty() && !check::converged(&cluster) {
        if sim.elapsed() >= converge_by {
            report.failures.push(format!(
                "liveness: replicas did not converge within {} ms after the faults healed",
                config.liveness_bound_ms
            ));
            break;
        }
        if let Err(error) = sim.step() {
            report.failures.push(format!("a host failed: {error}"));
            break;
        }
        report.steps += 1;
        let checked = checks.after_step(&cluster, &payments.borrow(), &trace, sim.elapsed());
        if let Err(failure) = checked {
            report.failures.push(failure);
        }
    }

    // Phase 3: the final checks.
    let history = history.borrow();
    let payments = payments.borrow();
    if report.failures.is_empty() {
        if let Err(failure) = check::audit_all(&cluster) {
            report.failures.push(failure);
        }
        let psp_charges = gateways.psp.charges();
        let psp_money = gateways.psp.money_record();
        let payouts: Vec<(String, bool)> = payments
            .payouts_sent
            .iter()
            .map(|id| (id.clone(), payments.payouts.contains_key(id)))
            .collect();
        for (node, store) in cluster.stores.iter().enumerate() {
            report
                .failures
                .extend(check::check_replica(node, store, &history));
            report.failures.extend(payments_check::check_replica(
                node,
                store,
                &payments.checkouts,
                &payouts,
                &psp_charges,
                &psp_money,
            ));
        }
        report.psp_captures = psp_charges
            .iter()
            .filter(|c| c.status == tally_psp::ChargeStatus::Captured)
            .count() as u64;
        trace.borrow_mut().record(
            sim.elapsed(),
            &format!(
                "psp charges={} movements={}",
                psp_charges.len(),
                psp_money.len()
            ),
        );
    }
    report.failures.extend(gateways.charge_calls.violations());
    report
        .failures
        .extend(payments.violations.iter().map(|v| format!("shop saw: {v}")));
    report.failures.extend(
        payments
            .unresolved
            .iter()
            .map(|what| format!("liveness: {what}")),
    );
    report.failures.extend(
        history
            .violations
            .iter()
            .map(|v| format!("client saw: {v}")),
    );
    report.failures.extend(
        history
            .unresolved
            .iter()
            .map(|what| format!("liveness: no answer for {what} within the bound")),
    );
    PANICS.with(|panics| {
        report
            .failures
            .extend(panics.borrow().iter().map(|p| format!("panic: {p}")))
    });
    {
        let mut trace = trace.borrow_mut();
        for (node, store) in cluster.stores.iter().enumerate() {
            let meta = tally_raft_store::ledger_view(store).meta();
            let chain: String = meta.hash_chain[..8]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            trace.record(
                sim.elapsed(),
                &format!(
                    "final {} batches={} chain={chain}",
                    node_name(node),
                    meta.batches_applied
                ),
            );
        }
        report.trace_lines = trace.lines();
        report.trace_hash = trace.hash();
        report.trace_tail = trace.tail().cloned().collect();
    }
    report.sim_time_ms = sim.elapsed().as_millis() as u64;
    report.faults = plan
        .injected
        .iter()
        .map(|(kind, count)| (kind.to_string(), *count))
        .collect();
    report.ops_answered = history.ops_answered;
    report.transfers_applied = history.items_applied;
    report.reads = history.reads;
    report.checkouts = payments.checkouts_created;
    report.captures = payments.captures;
    report.refunds = payments.refunds;
    report.payouts_paid = payments.payouts_paid;
    report.charge_calls = gateways.charge_calls.calls();
    report
}
