//! `tally`: the command line for operators (cluster status and membership, snapshots, backups)
//! and developers (accounts, transfers, balances, history, `tally bench`), and the payments API
//! of a gateway (`tally merchant|buyer|payment|payouts|dlq|webhooks`).

mod bench;
mod bench_payments;
mod certs;
mod commands;
mod output;
mod payments;
mod payouts;
mod webhooks;

use clap::Parser;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = commands::Cli::parse();
    match commands::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // One line a person can act on; the causes follow after colons.
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
