//! `tally merchant|buyer|payment`: the payments API of a `tally-gateway`, over gRPC.
//! Merchant and buyer commands use the operator token; payment commands a merchant's API key.

use crate::output::{print_record, print_rows};
use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use std::collections::BTreeMap;
use tally_proto::payments as pb;
use tally_proto::payments::merchants_client::MerchantsClient;
use tally_proto::payments::payments_client::PaymentsClient;
use tonic::transport::Channel;

#[derive(Args)]
pub struct GatewayArgs {
    /// The gateway's gRPC address.
    #[arg(
        long,
        env = "TALLY_GATEWAY",
        default_value = "http://127.0.0.1:7200",
        global = true
    )]
    pub(crate) gateway: String,
    /// A merchant API key (`tk_…`), for payment commands.
    #[arg(long, env = "TALLY_API_KEY", global = true, hide_env_values = true)]
    pub(crate) api_key: Option<String>,
    /// The operator token, for merchant and buyer commands.
    #[arg(long, env = "TALLY_ADMIN_TOKEN", global = true, hide_env_values = true)]
    pub(crate) admin_token: Option<String>,
    /// TLS to the gateway and the nodes: `--ca` to trust, `--cert`/`--key` to show (the nodes
    /// require an `operator-…` certificate for cluster commands and a `client-…`, `gateway-…` or
    /// `operator-…` one for the ledger commands).
    #[command(flatten)]
    pub(crate) tls: tally_net::tls::TlsArgs,
}

/// By hand: the API key and the operator token never reach a log or an error.
impl std::fmt::Debug for GatewayArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let masked = |set: bool| if set { "Some(***)" } else { "None" };
        f.debug_struct("GatewayArgs")
            .field("gateway", &self.gateway)
            .field("api_key", &masked(self.api_key.is_some()))
            .field("admin_token", &masked(self.admin_token.is_some()))
            .field("tls", &self.tls)
            .finish()
    }
}

impl GatewayArgs {
    /// The dialer every connection of this command goes through.
    pub(crate) fn dialer(&self) -> Result<tally_net::Dialer> {
        self.tls
            .dialer(tally_net::Dialer::tcp())
            .context("setting up TLS (see --ca, --cert, --key, --insecure-dev)")
    }
}

#[derive(Subcommand, Debug)]
pub enum MerchantCommand {
    /// Register a merchant (a platform or a seller).
    Create {
        #[arg(long)]
        id: String,
        #[arg(long)]
        name: String,
        /// Platform fee in basis points (250 = 2.5%).
        #[arg(long, default_value_t = 0)]
        fee_bps: u32,
        /// Fixed fee per order, CUR=AMOUNT (repeatable).
        #[arg(long = "fee-fixed")]
        fee_fixed: Vec<String>,
        /// Seconds funds stay held after capture unless fulfilled; 0 = until fulfilled.
        #[arg(long, default_value_t = 0)]
        hold_period_s: u32,
    },
    Show {
        id: String,
    },
    /// Create an API key; it is shown once.
    ApiKey {
        id: String,
        /// Print `export TALLY_API_KEY=…` for `eval`.
        #[arg(long)]
        export: bool,
    },
    RevokeKey {
        id: String,
        key_id: String,
    },
    /// Give an API key a new request-signing secret; it is shown once.
    RotateSigningSecret {
        id: String,
        key_id: String,
        /// Keep the old secret valid too until the next rotation.
        #[arg(long)]
        keep_previous: bool,
    },
    /// The ledger accounts the payments ledger keeps for a seller in one currency (held,
    /// available, payout in transit), for `tally balance`. They belong to the ledger: a client
    /// cannot close them or move money on them.
    Accounts {
        id: String,
        #[arg(long, default_value = "USD")]
        currency: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum BuyerCommand {
    /// Register a buyer, with wallets in the given currencies.
    Create {
        #[arg(long)]
        id: String,
        #[arg(long = "wallet")]
        wallets: Vec<String>,
    },
}

#[derive(Args, Debug)]
pub struct MethodArgs {
    /// Pay by card, given as the PSP's token (e.g. tok_visa).
    #[arg(long, group = "method")]
    card: Option<String>,
    /// Pay from the buyer's wallet.
    #[arg(long, group = "method")]
    wallet: bool,
    /// Pay by QR code through the PSP.
    #[arg(long, group = "method")]
    qr: bool,
    /// Pay on the PSP's hosted page; the buyer comes back to this URL.
    #[arg(long, group = "method", value_name = "RETURN_URL")]
    hosted: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum PaymentCommand {
    /// Take a checkout; without a method it is an intent, confirmed later.
    Create {
        #[arg(long)]
        checkout: String,
        #[arg(long)]
        buyer: String,
        /// ORDER_ID:SELLER:AMOUNT:CURRENCY (repeatable).
        #[arg(long = "order", required = true)]
        orders: Vec<String>,
        #[command(flatten)]
        method: MethodArgs,
        /// Authorize only; capture later with `tally payment capture`.
        #[arg(long)]
        manual_capture: bool,
        /// KEY=VALUE (repeatable).
        #[arg(long = "meta")]
        metadata: Vec<String>,
    },
    /// Give an intent its payment method.
    Confirm {
        checkout: String,
        #[command(flatten)]
        method: MethodArgs,
    },
    Show {
        checkout: String,
    },
    /// One order's real-time status.
    Order {
        order: String,
    },
    List {
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[arg(long)]
        page_token: Option<String>,
        #[arg(long)]
        status: Option<String>,
    },
    /// Capture an authorized order, all of it or --amount.
    Capture {
        order: String,
        #[arg(long)]
        amount: Option<String>,
    },
    Cancel {
        checkout: String,
    },
    Refund {
        order: String,
        #[arg(long)]
        refund: String,
        #[arg(long)]
        amount: String,
    },
    /// The seller delivered: release its held funds.
    Fulfill {
        order: String,
    },
}

pub(crate) async fn channel(args: &GatewayArgs) -> Result<Channel> {
    let dialer = args.dialer()?;
    tonic::transport::Endpoint::from_shared(args.gateway.clone())
        .with_context(|| format!("gateway address {:?}", args.gateway))?
        .connect_with_connector(dialer.connector())
        .await
        .with_context(|| {
            format!(
                "cannot reach the gateway at {} (is it running? see --gateway)",
                args.gateway
            )
        })
}

/// The credential of a call that acts for a merchant: the operator token when it names another
/// merchant (`--merchant`), else the merchant's own API key (the operator token if no key).
pub(crate) fn acting_credential(
    args: &GatewayArgs,
    for_named_merchant: bool,
) -> (Option<&String>, &'static str) {
    if for_named_merchant || args.api_key.is_none() {
        (
            args.admin_token.as_ref(),
            "admin token (--admin-token, TALLY_ADMIN_TOKEN): --merchant acts for any merchant",
        )
    } else {
        (args.api_key.as_ref(), "API key (--api-key, TALLY_API_KEY)")
    }
}

pub(crate) fn authed<T>(
    message: T,
    token: Option<&String>,
    what: &str,
) -> Result<tonic::Request<T>> {
    let token = token.ok_or_else(|| {
        anyhow!("no {what}: pass it or set its environment variable (see --help)")
    })?;
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}")
            .parse()
            .map_err(|_| anyhow!("the {what} has characters a header cannot carry"))?,
    );
    Ok(request)
}

/// A refusal as one line: the stable code, then the message.
pub(crate) fn refused(status: tonic::Status) -> anyhow::Error {
    let code = status
        .metadata()
        .get("tally-error-code")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if code.is_empty() {
        anyhow!("{:?}: {}", status.code(), status.message())
    } else {
        anyhow!("{code}: {}", status.message())
    }
}

fn method(args: &MethodArgs) -> Option<pb::PaymentMethod> {
    use pb::payment_method::Method;
    let method = if let Some(token) = &args.card {
        Method::CardToken(token.clone())
    } else if args.wallet {
        Method::Wallet(pb::WalletMethod {})
    } else if args.qr {
        Method::Qr(pb::QrMethod {})
    } else if let Some(return_url) = &args.hosted {
        Method::Hosted(pb::HostedMethod {
            return_url: return_url.clone(),
        })
    } else {
        return None;
    };
    Some(pb::PaymentMethod {
        method: Some(method),
    })
}

fn pairs(flag: &str, given: &[String]) -> Result<BTreeMap<String, String>> {
    given
        .iter()
        .map(|entry| {
            entry
                .split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| anyhow!("--{flag} {entry:?}: write KEY=VALUE"))
        })
        .collect()
}

pub async fn merchant(json: bool, args: &GatewayArgs, command: MerchantCommand) -> Result<()> {
    if let MerchantCommand::Accounts { id, currency } = &command {
        return merchant_accounts(json, id, currency);
    }
    let mut client = MerchantsClient::new(channel(args).await?);
    let token = args.admin_token.as_ref();
    let what = "admin token (--admin-token, TALLY_ADMIN_TOKEN)";
    let merchant = match command {
        MerchantCommand::Create {
            id,
            name,
            fee_bps,
            fee_fixed,
            hold_period_s,
        } => client
            .create_merchant(authed(
                pb::CreateMerchantRequest {
                    merchant_id: id,
                    name,
                    fees: Some(pb::FeeSchedule {
                        bps: fee_bps,
                        fixed: pairs("fee-fixed", &fee_fixed)?,
                    }),
                    hold_period_s,
                },
                token,
                what,
            )?)
            .await
            .map_err(refused)?
            .into_inner(),
        MerchantCommand::Accounts { .. } => unreachable!("answered without the gateway above"),
        MerchantCommand::Show { id } => client
            .get_merchant(authed(
                pb::GetMerchantRequest { merchant_id: id },
                token,
                what,
            )?)
            .await
            .map_err(refused)?
            .into_inner(),
        MerchantCommand::ApiKey { id, export } => {
            let key = client
                .create_api_key(authed(
                    pb::CreateApiKeyRequest { merchant_id: id },
                    token,
                    what,
                )?)
                .await
                .map_err(refused)?
                .into_inner();
            if export {
                crate::output::emit!(
                    "export TALLY_API_KEY={} TALLY_SIGNING_SECRET={}",
                    key.api_key,
                    key.signing_secret
                );
            } else {
                print_record(
                    json,
                    vec![
                        ("merchant_id", key.merchant_id),
                        ("key_id", key.key_id),
                        ("api_key (shown once)", key.api_key),
                        ("signing_secret (shown once)", key.signing_secret),
                    ],
                );
            }
            return Ok(());
        }
        MerchantCommand::RotateSigningSecret {
            id,
            key_id,
            keep_previous,
        } => {
            let rotated = client
                .rotate_signing_secret(authed(
                    pb::RotateSigningSecretRequest {
                        merchant_id: id,
                        key_id,
                        keep_previous,
                    },
                    token,
                    what,
                )?)
                .await
                .map_err(refused)?
                .into_inner();
            print_record(
                json,
                vec![
                    ("merchant_id", rotated.merchant_id),
                    ("key_id", rotated.key_id),
                    ("signing_secret (shown once)", rotated.signing_secret),
                ],
            );
            return Ok(());
        }
        MerchantCommand::RevokeKey { id, key_id } => client
            .revoke_api_key(authed(
                pb::RevokeApiKeyRequest {
                    merchant_id: id,
                    key_id,
                },
                token,
                what,
            )?)
            .await
            .map_err(refused)?
            .into_inner(),
    };
    let fees = merchant.fees.unwrap_or_default();
    print_record(
        json,
        vec![
            ("merchant_id", merchant.merchant_id),
            ("name", merchant.name),
            ("status", merchant.status),
            ("fee_bps", fees.bps.to_string()),
            (
                "fee_fixed",
                fees.fixed
                    .iter()
                    .map(|(c, a)| format!("{a} {c}"))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            ("hold_period_s", merchant.hold_period_s.to_string()),
            (
                "api_keys",
                merchant
                    .api_keys
                    .iter()
                    .map(|k| format!("{}{}", k.key_id, if k.revoked { " (revoked)" } else { "" }))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
        ],
    );
    Ok(())
}

pub async fn buyer(json: bool, args: &GatewayArgs, command: BuyerCommand) -> Result<()> {
    let mut client = MerchantsClient::new(channel(args).await?);
    let BuyerCommand::Create { id, wallets } = command;
    let buyer = client
        .create_buyer(authed(
            pb::CreateBuyerRequest {
                buyer_id: id,
                wallet_currencies: wallets,
            },
            args.admin_token.as_ref(),
            "admin token (--admin-token, TALLY_ADMIN_TOKEN)",
        )?)
        .await
        .map_err(refused)?
        .into_inner();
    print_record(
        json,
        vec![
            ("buyer_id", buyer.buyer_id),
            (
                "wallet_accounts",
                buyer
                    .wallet_accounts
                    .iter()
                    .map(|(c, id)| format!("{c}: {id}"))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
        ],
    );
    Ok(())
}

pub async fn payment(json: bool, args: &GatewayArgs, command: PaymentCommand) -> Result<()> {
    let mut client = PaymentsClient::new(channel(args).await?);
    let key = args.api_key.as_ref();
    let what = "API key (--api-key, TALLY_API_KEY)";
    let payment = match command {
        PaymentCommand::Create {
            checkout,
            buyer,
            orders,
            method: method_args,
            manual_capture,
            metadata,
        } => {
            let mut new_orders = Vec::with_capacity(orders.len());
            for order in &orders {
                let parts: Vec<&str> = order.split(':').collect();
                let [order_id, seller_id, amount, currency] = parts[..] else {
                    bail!("--order {order:?}: write ORDER_ID:SELLER:AMOUNT:CURRENCY, e.g. o1:seller1:25.00:USD");
                };
                new_orders.push(pb::NewOrder {
                    order_id: order_id.to_string(),
                    seller_id: seller_id.to_string(),
                    amount: amount.to_string(),
                    currency: currency.to_string(),
                });
            }
            let capture_method = if manual_capture {
                pb::CaptureMethod::Manual
            } else {
                pb::CaptureMethod::Automatic
            };
            client
                .create_payment(authed(
                    pb::CreatePaymentRequest {
                        checkout_id: checkout,
                        buyer_id: buyer,
                        orders: new_orders,
                        payment_method: method(&method_args),
                        capture_method: capture_method as i32,
                        metadata: pairs("meta", &metadata)?,
                    },
                    key,
                    what,
                )?)
                .await
        }
        PaymentCommand::Confirm {
            checkout,
            method: method_args,
        } => {
            client
                .confirm_payment(authed(
                    pb::ConfirmPaymentRequest {
                        checkout_id: checkout,
                        payment_method: method(&method_args),
                    },
                    key,
                    what,
                )?)
                .await
        }
        PaymentCommand::Show { checkout } => {
            client
                .get_payment(authed(pb::GetPaymentRequest { checkout_id: checkout }, key, what)?)
                .await
        }
        PaymentCommand::Order { order } => {
            let order = client
                .get_payment_order(authed(pb::GetPaymentOrderRequest { order_id: order }, key, what)?)
                .await
                .map_err(refused)?
                .into_inner();
            print_rows(json, ORDER_HEADER, vec![order_row(&order)]);
            if !json {
                print_next_action(&order);
            }
            return Ok(());
        }
        PaymentCommand::List {
            limit,
            page_token,
            status,
        } => {
            let page = client
                .list_payments(authed(
                    pb::ListPaymentsRequest {
                        page_size: limit,
                        page_token: page_token.unwrap_or_default(),
                        status: status.unwrap_or_default(),
                    },
                    key,
                    what,
                )?)
                .await
                .map_err(refused)?
                .into_inner();
            let rows = page
                .payments
                .iter()
                .map(|p| {
                    vec![
                        p.checkout_id.clone(),
                        p.buyer_id.clone(),
                        p.status.clone(),
                        p.payment_method.clone(),
                        p.orders.len().to_string(),
                    ]
                })
                .collect();
            print_rows(json, &["checkout", "buyer", "status", "method", "orders"], rows);
            if !page.next_page_token.is_empty() && !json {
                crate::output::emit!("next page: --page-token {}", page.next_page_token);
            }
            return Ok(());
        }
        PaymentCommand::Capture { order, amount } => {
            client
                .capture_payment(authed(
                    pb::CapturePaymentRequest {
                        order_id: order,
                        amount: amount.unwrap_or_default(),
                    },
                    key,
                    what,
                )?)
                .await
        }
        PaymentCommand::Cancel { checkout } => {
            client
                .cancel_payment(authed(pb::CancelPaymentRequest { checkout_id: checkout }, key, what)?)
                .await
        }
        PaymentCommand::Refund {
            order,
            refund,
            amount,
        } => {
            client
                .refund_payment(authed(
                    pb::RefundPaymentRequest {
                        order_id: order,
                        refund_id: refund,
                        amount,
                    },
                    key,
                    what,
                )?)
                .await
        }
        PaymentCommand::Fulfill { order } => {
            client
                .fulfill_order(authed(pb::FulfillOrderRequest { order_id: order }, key, what)?)
                .await
        }
    }
    .map_err(refused)?
    .into_inner();
    print_payment(json, &payment);
    Ok(())
}

const ORDER_HEADER: &[&str] = &[
    "order", "seller", "amount", "currency", "state", "attempt", "captured", "fee", "refunded",
    "held", "error",
];

fn order_row(order: &pb::PaymentOrder) -> Vec<String> {
    vec![
        order.order_id.clone(),
        order.seller_id.clone(),
        order.amount.clone(),
        order.currency.clone(),
        order.state.clone(),
        order.attempt.to_string(),
        order.captured.clone(),
        order.fee.clone(),
        order.refunded.clone(),
        order.held.clone(),
        order.last_error_code.clone(),
    ]
}

fn print_payment(json: bool, payment: &pb::Payment) {
    if !json {
        let risk = payment.risk.clone().unwrap_or_default();
        crate::output::emit!(
            "payment {}  status {}  method {}  risk {}{}",
            payment.checkout_id,
            payment.status,
            if payment.payment_method.is_empty() {
                "(intent)"
            } else {
                &payment.payment_method
            },
            risk.outcome,
            if risk.flagged { " (flagged)" } else { "" }
        );
    }
    print_rows(
        json,
        ORDER_HEADER,
        payment.orders.iter().map(order_row).collect(),
    );
    if !json {
        payment.orders.iter().for_each(print_next_action);
    }
}

/// What the buyer must do for a pending order, under the table.
fn print_next_action(order: &pb::PaymentOrder) {
    if !order.next_action_url.is_empty() {
        crate::output::emit!(
            "{}: send the buyer to {}",
            order.order_id,
            order.next_action_url
        );
    }
    if !order.qr_payload.is_empty() {
        crate::output::emit!("{}: show the QR code {}", order.order_id, order.qr_payload);
    }
}

/// Derived from the merchant id and currency alone (`tally_ledger::payment::chart`): no call.
fn merchant_accounts(json: bool, id: &str, currency: &str) -> Result<()> {
    use tally_ledger::payment::{chart, MerchantId};
    let merchant = MerchantId::new(id).map_err(|e| anyhow!("merchant id {id:?}: {e}"))?;
    let currency: tally_ledger::Currency = currency
        .parse()
        .map_err(|e| anyhow!("--currency {currency:?}: {e}"))?;
    print_record(
        json,
        vec![
            ("merchant_id", id.to_string()),
            ("currency", currency.code().to_string()),
            (
                "held",
                chart::merchant_held(&merchant, currency).0.to_string(),
            ),
            (
                "available",
                chart::merchant_available(&merchant, currency).0.to_string(),
            ),
            (
                "payout_in_transit",
                chart::merchant_payout_in_transit(&merchant, currency)
                    .0
                    .to_string(),
            ),
        ],
    );
    Ok(())
}
