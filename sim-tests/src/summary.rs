//! Many runs. Each seed runs in a child process (`tally-sim --child-seed N`): a panic inside a
//! simulated host unwinds through turmoil's runtime and can abort the process, and one seed's
//! abort must not take the others' results with it. The summary table of a long run.

use crate::config::{PlantedBug, SimConfig};
use crate::run::Report;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};

/// The line a child prints its report on.
pub const REPORT_PREFIX: &str = "SIM-REPORT ";
/// Lines of a crashed child's stderr kept in its report.
const STDERR_LINES_KEPT: usize = 12;

/// Runs one seed in a child process of `binary` (the `tally-sim` executable).
pub fn run_in_child(binary: &Path, seed: u64, bug: Option<PlantedBug>) -> Report {
    let mut command = Command::new(binary);
    command.arg("--child-seed").arg(seed.to_string());
    if let Some(bug) = bug {
        command.arg("--bug").arg(bug.name());
    }
    let crashed = |why: String| Report {
        seed,
        nodes: SimConfig::for_seed(seed).nodes,
        failures: vec![why],
        ..Report::default()
    };
    let output = match command.output() {
        Ok(output) => output,
        Err(e) => return crashed(format!("could not start {}: {e}", binary.display())),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    if let Some(json) = stdout.lines().find_map(|l| l.strip_prefix(REPORT_PREFIX)) {
        return serde_json::from_str(json)
            .unwrap_or_else(|e| crashed(format!("unreadable report from the child: {e}")));
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let panic = stderr
        .lines()
        .filter(|line| line.contains("panicked at") || !line.starts_with(' '))
        .take(STDERR_LINES_KEPT)
        .collect::<Vec<_>>()
        .join(" | ");
    crashed(format!("the process died ({}): {panic}", output.status))
}

/// Runs `seeds` on `jobs` threads, each seed in its own child process of `binary`; `on_done` sees
/// each report as it arrives (progress). With `stop_at_first_failure`, seeds not yet started are
/// skipped once one fails. Reports come back in seed order.
pub fn run_many(
    binary: &Path,
    seeds: Vec<u64>,
    bug: Option<PlantedBug>,
    jobs: usize,
    stop_at_first_failure: bool,
    mut on_done: impl FnMut(&Report),
) -> Vec<Report> {
    let binary: Arc<PathBuf> = Arc::new(binary.to_path_buf());
    let seeds = Arc::new(seeds);
    let next = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let workers: Vec<_> = (0..jobs.max(1))
        .map(|_| {
            let (binary, seeds, next, stop, tx) = (
                binary.clone(),
                seeds.clone(),
                next.clone(),
                stop.clone(),
                tx.clone(),
            );
            std::thread::spawn(move || loop {
                let at = next.fetch_add(1, Ordering::Relaxed) as usize;
                let Some(seed) = seeds.get(at) else {
                    return;
                };
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let report = run_in_child(&binary, *seed, bug);
                if !report.passed() && stop_at_first_failure {
                    stop.store(true, Ordering::Relaxed);
                }
                if tx.send((at, report)).is_err() {
                    return;
                }
            })
        })
        .collect();
    drop(tx);
    let mut reports: Vec<Option<Report>> = vec![None; seeds.len()];
    for (at, report) in rx {
        on_done(&report);
        reports[at] = Some(report);
    }
    for worker in workers {
        let _ = worker.join();
    }
    reports.into_iter().flatten().collect()
}

/// The summary table: seeds, simulated time, faults by kind, operations, failures by seed.
pub fn table(reports: &[Report], wall_s: f64) -> String {
    let failed: Vec<&Report> = reports.iter().filter(|r| !r.passed()).collect();
    let sim_s: f64 = reports.iter().map(|r| r.sim_time_ms as f64 / 1_000.0).sum();
    let mut faults: BTreeMap<&str, u64> = BTreeMap::new();
    for report in reports {
        for (kind, count) in &report.faults {
            *faults.entry(kind.as_str()).or_default() += count;
        }
    }
    let sum = |f: fn(&Report) -> u64| reports.iter().map(f).sum::<u64>();
    let mut table = Table::new();
    table.load_style(UTF8_FULL_CONDENSED);
    table.set_header(vec!["", "value"]);
    let three = reports.iter().filter(|r| r.nodes == 3).count();
    let five = reports.iter().filter(|r| r.nodes == 5).count();
    table.add_row(vec![
        "seeds".to_owned(),
        format!("{} ({three} with 3 nodes, {five} with 5)", reports.len()),
    ]);
    table.add_row(vec![
        "passed".to_owned(),
        (reports.len() - failed.len()).to_string(),
    ]);
    table.add_row(vec!["failed".to_owned(), failed.len().to_string()]);
    table.add_row(vec![
        "simulated time".to_owned(),
        format!("{:.0} s ({:.1} h)", sim_s, sim_s / 3_600.0),
    ]);
    table.add_row(vec!["wall time".to_owned(), format!("{wall_s:.0} s")]);
    for (kind, count) in &faults {
        table.add_row(vec![format!("faults: {kind}"), count.to_string()]);
    }
    table.add_row(vec![
        "operations answered".to_owned(),
        sum(|r| r.ops_answered).to_string(),
    ]);
    table.add_row(vec![
        "transfers acknowledged".to_owned(),
        sum(|r| r.transfers_applied).to_string(),
    ]);
    table.add_row(vec![
        "balance reads".to_owned(),
        sum(|r| r.reads).to_string(),
    ]);
    table.add_row(vec![
        "leader changes".to_owned(),
        sum(|r| r.leader_changes).to_string(),
    ]);
    table.add_row(vec![
        "checkouts created".to_owned(),
        sum(|r| r.checkouts).to_string(),
    ]);
    table.add_row(vec![
        "orders captured (PSP charges)".to_owned(),
        sum(|r| r.psp_captures).to_string(),
    ]);
    table.add_row(vec![
        "manual captures / refunds / payouts paid".to_owned(),
        format!(
            "{} / {} / {}",
            sum(|r| r.captures),
            sum(|r| r.refunds),
            sum(|r| r.payouts_paid)
        ),
    ]);
    table.add_row(vec![
        "gateway charge calls".to_owned(),
        sum(|r| r.charge_calls).to_string(),
    ]);
    let mut out = table.to_string();
    if !failed.is_empty() {
        out.push_str("\nfailures:\n");
        for report in failed {
            out.push_str(&format!(
                "  seed {}: {}\n",
                report.seed,
                report.failures.first().map(String::as_str).unwrap_or("?")
            ));
        }
    }
    out
}
