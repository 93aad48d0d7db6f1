//! `tally`: the command line for operators (cluster status and membership, snapshots, backups)
//! and developers (accounts, transfers, balances, history, `tally bench`).

mod bench;
mod commands;
mod output;

use anyhow::Result;
use clap::Parser;

#[tokio::main]
async fn main() -> Result<()> {
    let cli = commands::Cli::parse();
    commands::run(cli).await
}
