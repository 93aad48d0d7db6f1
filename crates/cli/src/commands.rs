//! The command tree and what each command does.

use crate::bench::{self, BenchArgs};
use crate::bench_payments::{self, BenchPaymentsArgs};
use crate::certs::{self, CertsArgs};
use crate::output::{print_record, print_rows};
use crate::payments::{self, BuyerCommand, GatewayArgs, MerchantCommand, PaymentCommand};
use crate::payouts::{self, DlqCommand, PayoutCommand};
use crate::webhooks::{self, WebhookCommand};
use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use std::collections::BTreeMap;
use std::path::PathBuf;
use tally_proto::admin as admin_pb;
use tally_proto::client::LedgerClient;
use tally_proto::ledger as pb;

#[derive(Parser, Debug)]
#[command(
    name = "tally",
    version,
    about = "Operate and use a Tally ledger cluster"
)]
pub struct Cli {
    /// Client API addresses of the cluster's nodes (host:port, comma-separated); writes follow the
    /// leader from any of them.
    #[arg(
        long,
        env = "TALLY_ENDPOINTS",
        value_delimiter = ',',
        default_value = "127.0.0.1:7100",
        global = true
    )]
    endpoints: Vec<String>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(flatten)]
    gateway: GatewayArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Cluster bootstrap, status and membership.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Build a snapshot on the node at the first endpoint now.
    Snapshot,
    /// Write a consistent copy of the first endpoint's store to DIR on that node's machine: a
    /// new directory under the node's --backup-dir (relative to it, or absolute inside it).
    Backup { dir: String },
    /// Check a backup and copy it into a new data dir for a node to start from.
    Restore {
        /// The backup directory (as written by `tally backup`).
        backup: PathBuf,
        /// The data dir to create; it must not exist.
        data_dir: PathBuf,
    },
    /// Make a CA and the node, gateway, operator and client certificates for TLS (with no role
    /// flags: a development set for one node, one gateway and the PSP simulator).
    Certs(CertsArgs),
    /// Accounts.
    #[command(subcommand)]
    Account(AccountCommand),
    /// Create a transfer, or post/void/show one.
    Transfer(TransferArgs),
    /// An account's balances, now or as of a timestamp.
    Balance {
        id: u128,
        #[arg(long)]
        as_of_ns: Option<u64>,
    },
    /// An account's history, oldest first, one page at a time.
    History {
        id: u128,
        #[arg(long)]
        cursor_ns: Option<u64>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Drive the cluster with concurrent transfer batches and report throughput and latency.
    Bench(BenchArgs),
    /// Merchants (platforms and sellers), their fees and API keys, through the gateway.
    #[command(subcommand)]
    Merchant(MerchantCommand),
    /// Buyers and their wallets, through the gateway.
    #[command(subcommand)]
    Buyer(BuyerCommand),
    /// Payments: create, confirm, capture, cancel, refund, fulfil, status, through the gateway.
    #[command(subcommand)]
    Payment(PaymentCommand),
    /// Drive a gateway with concurrent card payments and report payments/s and latency.
    BenchPayments(BenchPaymentsArgs),
    /// Sellers' payouts and payout schedules, through the gateway.
    #[command(subcommand)]
    Payouts(PayoutCommand),
    /// The dead-letter queue (operator): list, show, redrive, discard.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// Webhook endpoints, delivery attempts and redelivery, through the gateway.
    #[command(subcommand)]
    Webhooks(WebhookCommand),
}

#[derive(Subcommand, Debug)]
enum ClusterCommand {
    /// Initialize a new cluster with its first members (ID=RAFT_ADDR,API_ADDR, repeatable).
    Init {
        #[arg(long = "member", required = true)]
        members: Vec<String>,
    },
    /// Show each reachable node's view: role, leader, term, log and applied index, hash chain.
    Status,
    /// Add a node as a learner: it replicates but does not vote yet.
    AddLearner {
        #[arg(long)]
        id: u64,
        #[arg(long)]
        raft_addr: String,
        #[arg(long)]
        api_addr: String,
    },
    /// Make a learner a voter.
    Promote { id: u64 },
    /// Remove a node from the voters (and the cluster).
    Remove { id: u64 },
}

#[derive(Subcommand, Debug)]
enum AccountCommand {
    /// Open an account.
    Create {
        #[arg(long)]
        id: u128,
        #[arg(long)]
        currency: String,
        #[arg(long, default_value_t = 1)]
        code: u32,
        /// A wallet or liability: debits may never exceed credits.
        #[arg(long)]
        no_overdraft: bool,
        /// An asset: credits may never exceed debits.
        #[arg(long, conflicts_with = "no_overdraft")]
        credits_must_not_exceed_debits: bool,
        /// Metadata, KEY=VALUE (repeatable).
        #[arg(long = "meta")]
        metadata: Vec<String>,
    },
    /// Show accounts by id.
    Show { ids: Vec<u128> },
    /// Close an account for good.
    Close { id: u128 },
}

#[derive(Args, Debug)]
struct TransferArgs {
    #[command(subcommand)]
    action: Option<TransferAction>,
    #[arg(long)]
    id: Option<u128>,
    #[arg(long)]
    debit: Option<u128>,
    #[arg(long)]
    credit: Option<u128>,
    /// Decimal amount, e.g. 12.50.
    #[arg(long)]
    amount: Option<String>,
    #[arg(long)]
    currency: Option<String>,
    #[arg(long, default_value_t = 1)]
    code: u32,
    /// Reserve the amount (two-phase) instead of moving it now.
    #[arg(long)]
    pending: bool,
    /// With --pending: void automatically after this many seconds (0 = never).
    #[arg(long, default_value_t = 0)]
    timeout_s: u32,
    /// Metadata, KEY=VALUE (repeatable).
    #[arg(long = "meta")]
    metadata: Vec<String>,
}

#[derive(Subcommand, Debug)]
enum TransferAction {
    /// Settle a pending transfer: post all of it, or --amount of it.
    Post {
        #[arg(long)]
        id: u128,
        #[arg(long)]
        pending_id: u128,
        #[arg(long)]
        amount: Option<String>,
    },
    /// Release a pending transfer.
    Void {
        #[arg(long)]
        id: u128,
        #[arg(long)]
        pending_id: u128,
    },
    /// Show transfers by id.
    Show { ids: Vec<u128> },
}

pub fn uint128(value: u128) -> Option<pb::Uint128> {
    Some(pb::Uint128 {
        hi: (value >> 64) as u64,
        lo: value as u64,
    })
}

fn from_uint128(value: &Option<pb::Uint128>) -> u128 {
    value
        .as_ref()
        .map_or(0, |v| (u128::from(v.hi) << 64) | u128::from(v.lo))
}

fn metadata(pairs: &[String]) -> Result<BTreeMap<String, String>> {
    pairs
        .iter()
        .map(|pair| {
            pair.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| anyhow!("metadata {pair:?} is not KEY=VALUE"))
        })
        .collect()
}

fn print_batch(json: bool, response: &pb::BatchResponse) -> Result<()> {
    let rows = response
        .results
        .iter()
        .map(|r| {
            vec![
                r.index.to_string(),
                r.code.clone(),
                r.message.clone(),
                r.timestamp_ns.to_string(),
            ]
        })
        .collect();
    print_rows(json, &["index", "code", "message", "timestamp_ns"], rows);
    if response
        .results
        .iter()
        .any(|r| r.code != "ok" && r.code != "exists" && r.code != "already_closed")
    {
        bail!("some items were refused (see codes above)");
    }
    Ok(())
}

pub async fn run(cli: Cli) -> Result<()> {
    let json = cli.json;
    // Commands that need no connection to the cluster's nodes.
    let command = match cli.command {
        Command::Restore { backup, data_dir } => return restore(json, &backup, &data_dir),
        Command::Certs(args) => return certs::run(args),
        Command::Merchant(command) => return payments::merchant(json, &cli.gateway, command).await,
        Command::Buyer(command) => return payments::buyer(json, &cli.gateway, command).await,
        Command::Payment(command) => return payments::payment(json, &cli.gateway, command).await,
        Command::BenchPayments(args) => return bench_payments::run(json, &cli.gateway, args).await,
        Command::Payouts(command) => return payouts::payouts(json, &cli.gateway, command).await,
        Command::Dlq(command) => return payouts::dlq(json, &cli.gateway, command).await,
        Command::Webhooks(command) => return webhooks::webhooks(json, &cli.gateway, command).await,
        other => other,
    };
    let client = LedgerClient::connect_via(
        cli.endpoints.clone(),
        tally_proto::client::ClientConfig::default(),
        cli.gateway.dialer()?,
    )
    .await
    .with_context(|| format!("connecting to {}", cli.endpoints.join(",")))?;
    match command {
        Command::Cluster(command) => cluster(json, &client, &cli.endpoints, command).await,
        Command::Snapshot => {
            let response = client.admin().trigger_snapshot().await?;
            print_record(
                json,
                vec![("snapshot_last_log_index", opt(response.last_log_index))],
            );
            Ok(())
        }
        Command::Backup { dir } => {
            let response = client.admin().backup(dir).await?;
            print_record(
                json,
                vec![
                    ("dir", response.dir),
                    ("last_applied_index", opt(response.last_applied_index)),
                ],
            );
            Ok(())
        }
        Command::Restore { .. }
        | Command::Certs(_)
        | Command::Merchant(_)
        | Command::Buyer(_)
        | Command::Payment(_)
        | Command::BenchPayments(_)
        | Command::Payouts(_)
        | Command::Dlq(_)
        | Command::Webhooks(_) => unreachable!("handled before connecting"),
        Command::Account(command) => account(json, &client, command).await,
        Command::Transfer(args) => transfer(json, &client, args).await,
        Command::Balance { id, as_of_ns } => {
            let response = client.get_balance(id, as_of_ns).await?;
            let balances = response.balances.unwrap_or_default();
            print_record(
                json,
                vec![
                    ("account", id.to_string()),
                    ("currency", response.currency),
                    ("available", response.available),
                    ("debits_posted", balances.debits_posted),
                    ("credits_posted", balances.credits_posted),
                    ("debits_pending", balances.debits_pending),
                    ("credits_pending", balances.credits_pending),
                ],
            );
            Ok(())
        }
        Command::History {
            id,
            cursor_ns,
            limit,
        } => {
            let response = client
                .get_account_history(pb::HistoryRequest {
                    account_id: uint128(id),
                    cursor_ns,
                    limit,
                })
                .await?;
            let rows = response
                .entries
                .iter()
                .map(|e| {
                    let b = e.balances.clone().unwrap_or_default();
                    vec![
                        e.timestamp_ns.to_string(),
                        from_uint128(&e.transfer_id).to_string(),
                        format!(
                            "{:?}",
                            pb::HistoryEvent::try_from(e.event).unwrap_or_default()
                        ),
                        format!("{:?}", pb::Side::try_from(e.side).unwrap_or_default()),
                        e.amount.clone(),
                        b.debits_posted,
                        b.credits_posted,
                        b.debits_pending,
                        b.credits_pending,
                    ]
                })
                .collect();
            print_rows(
                json,
                &[
                    "timestamp_ns",
                    "transfer",
                    "event",
                    "side",
                    "amount",
                    "debits_posted",
                    "credits_posted",
                    "debits_pending",
                    "credits_pending",
                ],
                rows,
            );
            if let (Some(next), false) = (response.next_cursor_ns, json) {
                crate::output::emit!("more: tally history {id} --cursor-ns {next}");
            }
            Ok(())
        }
        Command::Bench(args) => bench::run(json, client, args).await,
    }
}

fn opt(value: Option<u64>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

async fn cluster(
    json: bool,
    client: &LedgerClient,
    endpoints: &[String],
    command: ClusterCommand,
) -> Result<()> {
    match command {
        ClusterCommand::Init { members } => {
            let members = members
                .iter()
                .map(|m| parse_member(m))
                .collect::<Result<Vec<_>>>()?;
            client
                .admin()
                .initialize(members)
                .await
                .context("initializing (a cluster is initialized once, on one node)")?;
            print_record(json, vec![("initialized", "true".to_owned())]);
            Ok(())
        }
        ClusterCommand::Status => {
            let mut rows = Vec::new();
            for endpoint in endpoints {
                match client.node_admin(endpoint).await {
                    Ok(mut node) => match node
                        .status(admin_pb::StatusRequest {})
                        .await
                        .map(|r| r.into_inner())
                    {
                        Ok(s) => rows.push(vec![
                            endpoint.clone(),
                            s.node_id.to_string(),
                            s.state,
                            opt(s.leader_id),
                            s.term.to_string(),
                            opt(s.last_log_index),
                            opt(s.last_applied_index),
                            s.members
                                .iter()
                                .map(|m| {
                                    format!(
                                        "{}{}",
                                        m.node_id,
                                        if m.voter { "" } else { "(learner)" }
                                    )
                                })
                                .collect::<Vec<_>>()
                                .join(" "),
                            s.hash_chain_hex.chars().take(16).collect(),
                            s.apply_faults_total.to_string(),
                        ]),
                        Err(e) => rows.push(unreachable_row(endpoint, &e.to_string())),
                    },
                    Err(e) => rows.push(unreachable_row(endpoint, &e.to_string())),
                }
            }
            print_rows(
                json,
                &[
                    "endpoint",
                    "node",
                    "state",
                    "leader",
                    "term",
                    "last_log",
                    "applied",
                    "members",
                    "hash_chain",
                    "apply_faults",
                ],
                rows,
            );
            Ok(())
        }
        ClusterCommand::AddLearner {
            id,
            raft_addr,
            api_addr,
        } => {
            let response = client
                .admin()
                .add_learner(admin_pb::Member {
                    node_id: id,
                    raft_addr,
                    api_addr,
                    voter: false,
                })
                .await?;
            print_record(
                json,
                vec![
                    ("learner", id.to_string()),
                    ("log_index", opt(response.log_index)),
                ],
            );
            Ok(())
        }
        ClusterCommand::Promote { id } | ClusterCommand::Remove { id } => {
            let promote = matches!(command, ClusterCommand::Promote { .. });
            let status = client.admin().status().await?;
            let mut voters: Vec<u64> = status
                .members
                .iter()
                .filter(|m| m.voter)
                .map(|m| m.node_id)
                .collect();
            if promote {
                if !status.members.iter().any(|m| m.node_id == id) {
                    bail!(
                        "node {id} is not a member: add it with `tally cluster add-learner` first"
                    );
                }
                voters.push(id);
            } else {
                voters.retain(|v| *v != id);
            }
            voters.sort_unstable();
            voters.dedup();
            let response = client
                .admin()
                .change_membership(voters.clone(), false)
                .await?;
            print_record(
                json,
                vec![
                    (
                        "voters",
                        voters
                            .iter()
                            .map(u64::to_string)
                            .collect::<Vec<_>>()
                            .join(","),
                    ),
                    ("log_index", opt(response.log_index)),
                ],
            );
            Ok(())
        }
    }
}

fn unreachable_row(endpoint: &str, error: &str) -> Vec<String> {
    let mut row = vec![
        endpoint.to_owned(),
        "-".to_owned(),
        format!("unreachable: {error}"),
    ];
    row.extend(std::iter::repeat_n("-".to_owned(), 7));
    row
}

/// `ID=RAFT_ADDR,API_ADDR`.
fn parse_member(text: &str) -> Result<admin_pb::Member> {
    let (id, addrs) = text
        .split_once('=')
        .ok_or_else(|| anyhow!("member {text:?} is not ID=RAFT_ADDR,API_ADDR"))?;
    let (raft_addr, api_addr) = addrs
        .split_once(',')
        .ok_or_else(|| anyhow!("member {text:?} is not ID=RAFT_ADDR,API_ADDR"))?;
    Ok(admin_pb::Member {
        node_id: id
            .parse()
            .with_context(|| format!("member id {id:?} is not a number"))?,
        raft_addr: raft_addr.to_owned(),
        api_addr: api_addr.to_owned(),
        voter: true,
    })
}

async fn account(json: bool, client: &LedgerClient, command: AccountCommand) -> Result<()> {
    match command {
        AccountCommand::Create {
            id,
            currency,
            code,
            no_overdraft,
            credits_must_not_exceed_debits,
            metadata: meta,
        } => {
            let response = client
                .create_accounts(vec![pb::NewAccount {
                    id: uint128(id),
                    currency,
                    code,
                    debits_must_not_exceed_credits: no_overdraft,
                    credits_must_not_exceed_debits,
                    metadata: metadata(&meta)?,
                    linked: false,
                }])
                .await?;
            print_batch(json, &response)
        }
        AccountCommand::Close { id } => {
            let response = client
                .close_accounts(vec![pb::CloseAccount {
                    id: uint128(id),
                    linked: false,
                }])
                .await?;
            print_batch(json, &response)
        }
        AccountCommand::Show { ids } => {
            let accounts = client.lookup_accounts(ids.iter().copied()).await?;
            let rows = accounts
                .iter()
                .map(|a| {
                    let b = a.balances.clone().unwrap_or_default();
                    vec![
                        from_uint128(&a.id).to_string(),
                        a.currency.clone(),
                        a.code.to_string(),
                        flags(a),
                        b.debits_posted,
                        b.credits_posted,
                        b.debits_pending,
                        b.credits_pending,
                        if a.closed_at_ns.is_some() {
                            "closed"
                        } else {
                            "open"
                        }
                        .to_owned(),
                    ]
                })
                .collect();
            print_rows(
                json,
                &[
                    "id",
                    "currency",
                    "code",
                    "flags",
                    "debits_posted",
                    "credits_posted",
                    "debits_pending",
                    "credits_pending",
                    "status",
                ],
                rows,
            );
            if accounts.len() < ids.len() {
                bail!(
                    "{} of {} accounts not found",
                    ids.len() - accounts.len(),
                    ids.len()
                );
            }
            Ok(())
        }
    }
}

fn flags(account: &pb::Account) -> String {
    match (
        account.debits_must_not_exceed_credits,
        account.credits_must_not_exceed_debits,
    ) {
        (true, _) => "no_overdraft".to_owned(),
        (_, true) => "credits_must_not_exceed_debits".to_owned(),
        _ => "-".to_owned(),
    }
}

async fn transfer(json: bool, client: &LedgerClient, args: TransferArgs) -> Result<()> {
    let transfer = match args.action {
        Some(TransferAction::Show { ids }) => {
            let transfers = client.lookup_transfers(ids.iter().copied()).await?;
            let rows = transfers
                .iter()
                .map(|t| match &t.outcome {
                    Some(pb::transfer::Outcome::Applied(a)) => vec![
                        from_uint128(&t.id).to_string(),
                        format!(
                            "{:?}",
                            pb::EntryPhase::try_from(a.phase).unwrap_or_default()
                        ),
                        from_uint128(&a.debit_account_id).to_string(),
                        from_uint128(&a.credit_account_id).to_string(),
                        a.amount.clone(),
                        a.currency.clone(),
                        t.timestamp_ns.to_string(),
                    ],
                    Some(pb::transfer::Outcome::Failed(f)) => vec![
                        from_uint128(&t.id).to_string(),
                        format!("failed: {}", f.code),
                        "-".into(),
                        "-".into(),
                        "-".into(),
                        "-".into(),
                        t.timestamp_ns.to_string(),
                    ],
                    None => vec![
                        from_uint128(&t.id).to_string(),
                        "?".into(),
                        "-".into(),
                        "-".into(),
                        "-".into(),
                        "-".into(),
                        "-".into(),
                    ],
                })
                .collect();
            print_rows(
                json,
                &[
                    "id",
                    "phase",
                    "debit",
                    "credit",
                    "amount",
                    "currency",
                    "timestamp_ns",
                ],
                rows,
            );
            return Ok(());
        }
        Some(TransferAction::Post {
            id,
            pending_id,
            amount,
        }) => pb::NewTransfer {
            id: uint128(id),
            kind: Some(pb::new_transfer::Kind::PostPending(pb::PostPending {
                pending_id: uint128(pending_id),
                amount,
            })),
            code: args.code,
            metadata: metadata(&args.metadata)?,
            linked: false,
        },
        Some(TransferAction::Void { id, pending_id }) => pb::NewTransfer {
            id: uint128(id),
            kind: Some(pb::new_transfer::Kind::VoidPending(pb::VoidPending {
                pending_id: uint128(pending_id),
            })),
            code: args.code,
            metadata: metadata(&args.metadata)?,
            linked: false,
        },
        None => {
            let missing = |what: &str| anyhow!("a transfer needs --{what}");
            let id = args.id.ok_or_else(|| missing("id"))?;
            let debit_account_id = uint128(args.debit.ok_or_else(|| missing("debit"))?);
            let credit_account_id = uint128(args.credit.ok_or_else(|| missing("credit"))?);
            let amount = args.amount.ok_or_else(|| missing("amount"))?;
            let currency = args.currency.ok_or_else(|| missing("currency"))?;
            let kind = if args.pending {
                pb::new_transfer::Kind::Pending(pb::Pending {
                    debit_account_id,
                    credit_account_id,
                    amount,
                    currency,
                    timeout_s: args.timeout_s,
                })
            } else {
                pb::new_transfer::Kind::Single(pb::Single {
                    debit_account_id,
                    credit_account_id,
                    amount,
                    currency,
                })
            };
            pb::NewTransfer {
                id: uint128(id),
                kind: Some(kind),
                code: args.code,
                metadata: metadata(&args.metadata)?,
                linked: false,
            }
        }
    };
    let response = client.create_transfers(vec![transfer]).await?;
    print_batch(json, &response)
}

/// Validates a backup offline (it opens, its ledger passes a full audit) and copies it into a
/// fresh data dir.
fn restore(json: bool, backup: &std::path::Path, data_dir: &std::path::Path) -> Result<()> {
    use tally_ledger::LedgerRead;
    if data_dir.exists() {
        bail!(
            "{} already exists: restore into a new directory",
            data_dir.display()
        );
    }
    let view = tally_raft_store::kv::RocksKv::open_read_only(backup)
        .with_context(|| format!("{} is not a readable Tally backup", backup.display()))?;
    let ledger = tally_raft_store::KvLedger::new(view.as_ref());
    let report = tally_ledger::audit(&ledger)
        .map_err(|v| anyhow!("the backup breaks a ledger invariant: {v}"))?;
    let meta = ledger.meta();
    drop(ledger);
    drop(view);
    copy_dir(backup, data_dir)?;
    print_record(
        json,
        vec![
            ("restored_to", data_dir.display().to_string()),
            ("accounts", report.accounts.to_string()),
            ("holds_pending", report.holds_pending.to_string()),
            ("batches_applied", meta.batches_applied.to_string()),
            (
                "hash_chain",
                meta.hash_chain.iter().map(|b| format!("{b:02x}")).collect(),
            ),
        ],
    );
    Ok(())
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)
                .with_context(|| format!("copying {}", entry.path().display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsed_commands_debug_print_no_key_token_or_webhook_secret() {
        let cli = Cli::try_parse_from([
            "tally",
            "--api-key",
            "tk_0011223344556677_feedc0de",
            "--admin-token",
            "adm_77aa",
            "webhooks",
            "rotate-secret",
            "ep1",
            "--secret",
            "whsec_9f8e",
        ])
        .expect("the flags parse");
        let shown = format!("{cli:?}");
        for secret in ["feedc0de", "adm_77aa", "whsec_9f8e"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
    }
}
