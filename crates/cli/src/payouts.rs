//! `tally payouts` and `tally dlq`: sellers' payouts and the dead-letter queue, through the
//! gateway. Payout commands with --merchant use the operator token (any merchant); without it,
//! the merchant's API key (its own payouts). The dead-letter queue is the operator's.

use crate::output::{print_record, print_rows};
use crate::payments::{acting_credential, authed, channel, refused, GatewayArgs};
use anyhow::Result;
use clap::Subcommand;
use tally_proto::payments as pb;
use tally_proto::payments::dead_letters_client::DeadLettersClient;
use tally_proto::payments::payouts_client::PayoutsClient;

#[derive(Subcommand, Debug)]
pub enum PayoutCommand {
    /// Pay out a seller's available balance (all of it without --amount).
    Create {
        #[arg(long)]
        payout: String,
        /// The seller (required with the operator token).
        #[arg(long)]
        merchant: Option<String>,
        #[arg(long)]
        currency: String,
        #[arg(long)]
        amount: Option<String>,
    },
    Show {
        payout: String,
        /// Look as the operator (any merchant's payout).
        #[arg(long)]
        merchant: Option<String>,
    },
    /// Newest first.
    List {
        #[arg(long)]
        merchant: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[arg(long)]
        page_token: Option<String>,
    },
    /// Cancel a payout no worker has sent yet; its funds return to available.
    Cancel {
        payout: String,
        #[arg(long)]
        merchant: Option<String>,
    },
    /// Pay out a currency's available balance on a schedule (daily, weekly, monthly,
    /// every_<n>s), when it reaches --minimum; --interval none removes it.
    Schedule {
        #[arg(long)]
        merchant: Option<String>,
        #[arg(long)]
        currency: String,
        #[arg(long)]
        interval: String,
        #[arg(long)]
        minimum: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum DlqCommand {
    /// Dead letters, oldest first.
    List {
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(long)]
        page_token: Option<String>,
    },
    /// One dead letter with its attempt history (WORK is charge:<order> or payout:<payout>).
    Show { work: String },
    /// Put it back in its retry queue, due now.
    Redrive { work: String },
    /// Give up on it for good, with a reason kept on the record.
    Discard {
        work: String,
        #[arg(long)]
        reason: String,
    },
}

fn payout_fields(payout: &pb::Payout) -> Vec<(&'static str, String)> {
    vec![
        ("payout_id", payout.payout_id.clone()),
        ("merchant_id", payout.merchant_id.clone()),
        ("amount", format!("{} {}", payout.amount, payout.currency)),
        ("status", payout.status.clone()),
        ("dead_lettered", payout.dead_lettered.to_string()),
        ("attempt", payout.attempt.to_string()),
        ("psp_payout_id", payout.psp_payout_id.clone()),
        (
            "last_error",
            if payout.last_error_code.is_empty() {
                String::new()
            } else {
                format!("{}: {}", payout.last_error_code, payout.last_error_message)
            },
        ),
        ("scheduled", payout.scheduled.to_string()),
    ]
}

pub async fn payouts(json: bool, args: &GatewayArgs, command: PayoutCommand) -> Result<()> {
    let mut client = PayoutsClient::new(channel(args).await?);
    // The operator token when given, else the merchant's key.
    let named = match &command {
        PayoutCommand::Create { merchant, .. }
        | PayoutCommand::List { merchant, .. }
        | PayoutCommand::Schedule { merchant, .. }
        | PayoutCommand::Show { merchant, .. }
        | PayoutCommand::Cancel { merchant, .. } => merchant.is_some(),
    };
    let (token, what) = acting_credential(args, named);
    let payout = match command {
        PayoutCommand::Create {
            payout,
            merchant,
            currency,
            amount,
        } => client
            .create_payout(authed(
                pb::CreatePayoutRequest {
                    payout_id: payout,
                    merchant_id: merchant.unwrap_or_default(),
                    currency,
                    amount: amount.unwrap_or_default(),
                },
                token,
                what,
            )?)
            .await
            .map_err(refused)?
            .into_inner(),
        PayoutCommand::Show { payout, merchant } => client
            .get_payout(authed(
                pb::GetPayoutRequest {
                    payout_id: payout,
                    merchant_id: merchant.unwrap_or_default(),
                },
                token,
                what,
            )?)
            .await
            .map_err(refused)?
            .into_inner(),
        PayoutCommand::Cancel { payout, merchant } => client
            .cancel_payout(authed(
                pb::CancelPayoutRequest {
                    payout_id: payout,
                    merchant_id: merchant.unwrap_or_default(),
                },
                token,
                what,
            )?)
            .await
            .map_err(refused)?
            .into_inner(),
        PayoutCommand::List {
            merchant,
            limit,
            page_token,
        } => {
            let page = client
                .list_payouts(authed(
                    pb::ListPayoutsRequest {
                        merchant_id: merchant.unwrap_or_default(),
                        page_size: limit,
                        page_token: page_token.unwrap_or_default(),
                    },
                    token,
                    what,
                )?)
                .await
                .map_err(refused)?
                .into_inner();
            let rows = page
                .payouts
                .iter()
                .map(|p| {
                    vec![
                        p.payout_id.clone(),
                        p.merchant_id.clone(),
                        format!("{} {}", p.amount, p.currency),
                        p.status.clone(),
                        p.dead_lettered.to_string(),
                        p.scheduled.to_string(),
                    ]
                })
                .collect();
            print_rows(
                json,
                &[
                    "payout_id",
                    "merchant_id",
                    "amount",
                    "status",
                    "dead_lettered",
                    "scheduled",
                ],
                rows,
            );
            if !page.next_page_token.is_empty() && !json {
                eprintln!("more: --page-token {}", page.next_page_token);
            }
            return Ok(());
        }
        PayoutCommand::Schedule {
            merchant,
            currency,
            interval,
            minimum,
        } => {
            let schedules = client
                .set_payout_schedule(authed(
                    pb::SetPayoutScheduleRequest {
                        merchant_id: merchant.unwrap_or_default(),
                        currency,
                        interval: if interval == "none" {
                            String::new()
                        } else {
                            interval
                        },
                        minimum_amount: minimum.unwrap_or_default(),
                    },
                    token,
                    what,
                )?)
                .await
                .map_err(refused)?
                .into_inner();
            let rows = schedules
                .schedules
                .iter()
                .map(|s| {
                    vec![
                        s.currency.clone(),
                        s.interval.clone(),
                        s.minimum_amount.clone(),
                        s.next_run_unix_ns.to_string(),
                    ]
                })
                .collect();
            print_rows(
                json,
                &["currency", "interval", "minimum", "next_run_unix_ns"],
                rows,
            );
            return Ok(());
        }
    };
    print_record(json, payout_fields(&payout));
    Ok(())
}

pub async fn dlq(json: bool, args: &GatewayArgs, command: DlqCommand) -> Result<()> {
    let mut client = DeadLettersClient::new(channel(args).await?);
    let token = args.admin_token.as_ref();
    let what = "admin token (--admin-token, TALLY_ADMIN_TOKEN)";
    match command {
        DlqCommand::List { limit, page_token } => {
            let page = client
                .list_dead_letters(authed(
                    pb::ListDeadLettersRequest {
                        page_size: limit,
                        page_token: page_token.unwrap_or_default(),
                    },
                    token,
                    what,
                )?)
                .await
                .map_err(refused)?
                .into_inner();
            let rows = page
                .dead_letters
                .iter()
                .map(|l| {
                    vec![
                        l.work.clone(),
                        l.merchant_id.clone(),
                        format!("{} {}", l.amount, l.currency),
                        l.attempt.to_string(),
                        l.last_error_code.clone(),
                        l.dead_at_unix_ns.to_string(),
                    ]
                })
                .collect();
            print_rows(
                json,
                &[
                    "work",
                    "merchant_id",
                    "amount",
                    "attempts",
                    "last_error",
                    "dead_at_unix_ns",
                ],
                rows,
            );
            if !page.next_page_token.is_empty() && !json {
                eprintln!("more: --page-token {}", page.next_page_token);
            }
        }
        DlqCommand::Show { work } => {
            let letter = client
                .get_dead_letter(authed(pb::GetDeadLetterRequest { work }, token, what)?)
                .await
                .map_err(refused)?
                .into_inner();
            if json {
                // The history is an array, which a flat record cannot carry.
                let history: Vec<serde_json::Value> = letter
                    .history
                    .iter()
                    .map(|a| {
                        serde_json::json!({
                            "attempt": a.attempt, "at_unix_ns": a.at_unix_ns,
                            "code": a.code, "message": a.message,
                        })
                    })
                    .collect();
                crate::output::emit!(
                    "{}",
                    serde_json::json!({
                        "work": letter.work, "merchant_id": letter.merchant_id,
                        "amount": letter.amount, "currency": letter.currency,
                        "attempts": letter.attempt, "last_error_code": letter.last_error_code,
                        "last_error_message": letter.last_error_message,
                        "dead_at_unix_ns": letter.dead_at_unix_ns, "history": history,
                    })
                );
                return Ok(());
            }
            let mut fields = vec![
                ("work", letter.work.clone()),
                ("merchant_id", letter.merchant_id.clone()),
                ("amount", format!("{} {}", letter.amount, letter.currency)),
                ("attempts", letter.attempt.to_string()),
                (
                    "last_error",
                    format!("{}: {}", letter.last_error_code, letter.last_error_message),
                ),
                ("dead_at_unix_ns", letter.dead_at_unix_ns.to_string()),
            ];
            for attempt in &letter.history {
                fields.push((
                    "attempt",
                    format!(
                        "#{} at {} ns: {}: {}",
                        attempt.attempt, attempt.at_unix_ns, attempt.code, attempt.message
                    ),
                ));
            }
            print_record(false, fields);
        }
        DlqCommand::Redrive { work } => {
            let status = client
                .redrive_dead_letter(authed(pb::RedriveDeadLetterRequest { work }, token, what)?)
                .await
                .map_err(refused)?
                .into_inner();
            print_record(json, vec![("work", status.work), ("state", status.state)]);
        }
        DlqCommand::Discard { work, reason } => {
            let status = client
                .discard_dead_letter(authed(
                    pb::DiscardDeadLetterRequest { work, reason },
                    token,
                    what,
                )?)
                .await
                .map_err(refused)?
                .into_inner();
            print_record(json, vec![("work", status.work), ("state", status.state)]);
        }
    }
    Ok(())
}
