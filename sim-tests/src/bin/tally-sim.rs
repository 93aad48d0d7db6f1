//! `tally-sim`: runs the deterministic simulation over a range of seeds (each in a child process)
//! with a progress bar and ends with a summary table; `SIM_SEED=N` replays one seed in this
//! process and prints its trace tail (all of the trace with `--verbose`). Exits non-zero if any
//! seed fails, after printing how to replay it.

use anyhow::{Context, Result};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use std::time::Instant;
use tally_sim_tests::summary::{run_many, table, REPORT_PREFIX};
use tally_sim_tests::{run, PlantedBug, SimConfig};

#[derive(Parser, Debug)]
#[command(
    name = "tally-sim",
    about = "Tally's deterministic simulation, seed by seed"
)]
struct Args {
    /// How many seeds to run.
    #[arg(long, default_value_t = 100)]
    seeds: u64,
    /// The first seed.
    #[arg(long, default_value_t = 0)]
    from: u64,
    /// Seeds run at once (each in its own process); default: one per core.
    #[arg(long)]
    jobs: Option<usize>,
    /// Plant a bug, to see the checkers find it.
    #[arg(long)]
    bug: Option<PlantedBug>,
    /// Stop starting seeds once one fails (how many seeds a planted bug needs).
    #[arg(long)]
    stop_at_first_failure: bool,
    /// Print the reports as JSON lines instead of the table (for tests and scripts).
    #[arg(long)]
    json: bool,
    /// No faults at all (a baseline).
    #[arg(long)]
    no_faults: bool,
    /// Print every trace line as it happens (with SIM_SEED).
    #[arg(long)]
    verbose: bool,
    /// Internal: run one seed and print its report as a JSON line.
    #[arg(long, hide = true)]
    child_seed: Option<u64>,
}

fn config(seed: u64, args: &Args) -> SimConfig {
    SimConfig {
        bug: args.bug,
        verbose: args.verbose,
        faults: !args.no_faults,
        ..SimConfig::for_seed(seed)
    }
}

fn replay(seed: u64, args: &Args) -> Result<()> {
    let config = config(seed, args);
    let started = Instant::now();
    let report = run(&config);
    if !args.verbose {
        for line in &report.trace_tail {
            println!("{line}");
        }
    }
    println!(
        "seed {seed}: {} nodes, {} ms simulated in {:.1} s, {} trace lines, trace hash {}",
        report.nodes,
        report.sim_time_ms,
        started.elapsed().as_secs_f64(),
        report.trace_lines,
        report.trace_hash_hex()
    );
    if report.passed() {
        println!("passed");
        return Ok(());
    }
    for failure in &report.failures {
        println!("FAILED: {failure}");
    }
    std::process::exit(1);
}

fn main() -> Result<()> {
    let args = Args::parse();
    // RUST_LOG (e.g. `turmoil=trace` for every simulated packet) for digging into one seed.
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .without_time()
            .with_writer(std::io::stderr)
            .init();
    }
    if let Some(seed) = args.child_seed {
        let report = run(&config(seed, &args));
        println!("{REPORT_PREFIX}{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    if let Ok(seed) = std::env::var("SIM_SEED") {
        let seed: u64 = seed
            .trim()
            .parse()
            .with_context(|| format!("SIM_SEED={seed:?} is not a seed number"))?;
        return replay(seed, &args);
    }
    let jobs = args.jobs.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let binary = std::env::current_exe().context("cannot find this program's path")?;
    let bar = if args.json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(args.seeds)
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{bar:40}] {pos}/{len} seeds, {msg} (eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let started = Instant::now();
    let mut failed = 0u64;
    let seeds: Vec<u64> = (args.from..args.from + args.seeds).collect();
    let reports = run_many(
        &binary,
        seeds,
        args.bug,
        jobs,
        args.stop_at_first_failure,
        |report| {
            if !report.passed() {
                failed += 1;
                // Printed even without a terminal (a hidden bar drops its own lines).
                bar.suspend(|| {
                    eprintln!(
                        "seed {} FAILED: {} — replay: {}",
                        report.seed,
                        report.failures[0],
                        report.replay_command(&config(report.seed, &args))
                    )
                });
            }
            bar.set_message(format!("{failed} failed"));
            bar.inc(1);
        },
    );
    bar.finish_and_clear();
    if args.json {
        for report in &reports {
            println!("{}", serde_json::to_string(report)?);
        }
    } else {
        println!("{}", table(&reports, started.elapsed().as_secs_f64()));
    }
    if failed > 0 {
        eprintln!("{failed} of {} seeds failed", reports.len());
        std::process::exit(1);
    }
    Ok(())
}
