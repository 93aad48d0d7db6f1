//! The seed corpus, written from real values of each input type so the fuzzers start from inputs
//! that get deep (`tests/seeds.rs` checks `corpus/` holds exactly these, and rewrites it with
//! `TALLY_WRITE_SEEDS=1` after a format change).

use crate::frame::frame;
use prost::Message;
use std::collections::BTreeMap;
use tally_ledger::payment::{
    BuyerId, CaptureMode, ChargeOutcome, CheckoutId, FeeSchedule, MerchantId, NewBuyer,
    NewMerchant, NewOrder, NewPayment, OrderId, PaymentCommand, PaymentMethod, PaymentQuery,
    PspName, RefundId, RiskOutcome, RiskRecord,
};
use tally_ledger::{
    AccountFlags, AccountId, Command, Currency, Metadata, NewAccount, NewTransfer, TransferId,
    TransferKind,
};
use tally_proto::ledger as pb;
use tally_proto::payments as payments_pb;
use tally_proto::payments_node_codec as door;
use tally_raft_store::fuzzing::{encode_value, raft_message_seeds};
use tally_raft_store::LedgerRequest;

/// A seed: its target, its file name and its bytes.
pub struct Seed {
    pub target: &'static str,
    pub name: String,
    pub bytes: Vec<u8>,
}

fn seed(target: &'static str, name: impl Into<String>, bytes: Vec<u8>) -> Seed {
    Seed {
        target,
        name: name.into(),
        bytes,
    }
}

const CREATE_BODY: &[u8] = br#"{"checkout_id":"c1","buyer_info":{"buyer_id":"b1"},
"payment_method":{"type":"card","token":"tok_visa"},"capture_method":"manual",
"payment_orders":[{"payment_order_id":"o1","seller_account":"m1","amount":"10.00","currency":"USD"},
{"payment_order_id":"o2","seller_account":"m1","amount":"0.05","currency":"USD"}],
"metadata":{"note":"gift"}}"#;

pub fn seeds() -> Vec<Seed> {
    let mut out = Vec::new();
    http_facade(&mut out);
    grpc(&mut out);
    psp_webhook(&mut out);
    for (index, (kind, payload)) in raft_message_seeds(&ledger_requests())
        .into_iter()
        .enumerate()
    {
        let mut bytes = vec![kind];
        bytes.extend(payload);
        out.push(seed("raft_message", format!("message-{index}"), bytes));
    }
    snapshot(&mut out);
    payments_door(&mut out);
    apply(&mut out);
    out
}

fn http_facade(out: &mut Vec<Seed>) {
    let key = format!("Bearer tk_{}_{}", "0123456789abcdef", "ab".repeat(32));
    let signature = format!(
        "t=1800000000000,nonce={},v1={}",
        "01".repeat(16),
        "cd".repeat(32)
    );
    let nonce = [7u8; 16];
    let headers = |body: &[u8]| {
        frame(
            &[
                key.as_bytes(),
                signature.as_bytes(),
                b"order-o1-try-1",
                b"o1",
                &nonce,
            ],
            body,
        )
    };
    out.push(seed("http_facade", "create", headers(CREATE_BODY)));
    out.push(seed(
        "http_facade",
        "card-in-metadata",
        headers(br#"{"checkout_id":"c1","buyer_info":{"buyer_id":"b1"},"payment_orders":[],"metadata":{"n":"4242 4242 4242 4242"}}"#),
    ));
    out.push(seed(
        "http_facade",
        "truncated",
        headers(b"{\"checkout_id\":"),
    ));
}

fn id(n: u128) -> Option<pb::Uint128> {
    Some(pb::Uint128 {
        hi: (n >> 64) as u64,
        lo: n as u64,
    })
}

fn grpc(out: &mut Vec<Seed>) {
    let mut with_kind = |target: &'static str, name: &str, kind: u8, message: Vec<u8>| {
        let mut bytes = vec![kind];
        bytes.extend(message);
        out.push(seed(target, name, bytes));
    };
    let account = |n, flags: bool| pb::NewAccount {
        id: id(n),
        currency: "USD".to_string(),
        code: 10,
        debits_must_not_exceed_credits: flags,
        metadata: [("owner".to_string(), "fuzz".to_string())].into(),
        ..Default::default()
    };
    let accounts = pb::CreateAccountsRequest {
        accounts: vec![account(1, true), account(2, false)],
    };
    with_kind(
        "grpc_ledger",
        "create-accounts",
        0,
        accounts.encode_to_vec(),
    );
    use pb::new_transfer::Kind;
    let transfers = pb::CreateTransfersRequest {
        transfers: vec![
            pb::NewTransfer {
                id: id(10),
                kind: Some(Kind::Single(pb::Single {
                    debit_account_id: id(2),
                    credit_account_id: id(1),
                    amount: "12.34".to_string(),
                    currency: "USD".to_string(),
                })),
                code: 1,
                linked: true,
                ..Default::default()
            },
            pb::NewTransfer {
                id: id(11),
                kind: Some(Kind::Pending(pb::Pending {
                    debit_account_id: id(1),
                    credit_account_id: id(2),
                    amount: "5".to_string(),
                    currency: "USD".to_string(),
                    timeout_s: 60,
                })),
                ..Default::default()
            },
            pb::NewTransfer {
                id: id(12),
                kind: Some(Kind::PostPending(pb::PostPending {
                    pending_id: id(11),
                    amount: Some("2.50".to_string()),
                })),
                ..Default::default()
            },
            pb::NewTransfer {
                id: id(13),
                kind: Some(Kind::VoidPending(pb::VoidPending { pending_id: id(4) })),
                ..Default::default()
            },
        ],
    };
    with_kind(
        "grpc_ledger",
        "create-transfers",
        1,
        transfers.encode_to_vec(),
    );
    let close = pb::CloseAccountsRequest {
        accounts: vec![pb::CloseAccount {
            id: id(2),
            linked: false,
        }],
    };
    with_kind("grpc_ledger", "close-accounts", 2, close.encode_to_vec());
    let lookup = pb::LookupRequest {
        ids: vec![id(1).unwrap(), id(u128::MAX).unwrap()],
    };
    with_kind("grpc_ledger", "lookup", 3, lookup.encode_to_vec());
    let history = pb::HistoryRequest {
        account_id: id(1),
        cursor_ns: Some(5),
        limit: 10,
    };
    with_kind("grpc_ledger", "history", 4, history.encode_to_vec());
    let balance = pb::BalanceRequest {
        account_id: id(1),
        as_of_ns: Some(1),
    };
    with_kind("grpc_ledger", "balance", 5, balance.encode_to_vec());

    let create =
        tally_gateway::api::facade::parse_create_body(CREATE_BODY).expect("the seed body parses");
    with_kind("grpc_payments", "create", 0, create.encode_to_vec());
    let confirm = payments_pb::ConfirmPaymentRequest {
        checkout_id: "c1".to_string(),
        payment_method: create.payment_method.clone(),
    };
    with_kind("grpc_payments", "confirm", 1, confirm.encode_to_vec());
    let fees = payments_pb::UpdateFeesRequest {
        merchant_id: "m1".to_string(),
        fees: Some(payments_pb::FeeSchedule {
            bps: 290,
            fixed: [("USD".to_string(), "0.30".to_string())].into(),
        }),
        hold_period_s: 86_400,
    };
    with_kind("grpc_payments", "fees", 2, fees.encode_to_vec());
    let capture = payments_pb::CapturePaymentRequest {
        order_id: "o1".to_string(),
        amount: "9.99".to_string(),
    };
    with_kind("grpc_payments", "capture", 3, capture.encode_to_vec());
}

fn psp_webhook(out: &mut Vec<Seed>) {
    let event = tally_psp::WebhookEvent {
        event_id: "evt_1".to_string(),
        kind: "charge.succeeded".to_string(),
        created_unix_s: 1_800_000_000,
        idempotency_key: "o1".to_string(),
        charge: tally_psp::Charge {
            charge_id: "ch_1".to_string(),
            idempotency_key: "o1".to_string(),
            amount_minor: 1_000,
            currency: "USD".to_string(),
            status: tally_psp::ChargeStatus::Captured,
            captured_minor: 1_000,
            refunded_minor: 0,
        },
    };
    let body = serde_json::to_vec(&event).expect("an event serializes");
    let header = tally_psp::webhook::sign(crate::psp_webhook::SECRET, 1_800_000_000, &body);
    out.push(seed(
        "psp_webhook",
        "charge-succeeded",
        frame(&[header.as_bytes()], &body),
    ));
    out.push(seed("psp_webhook", "stale", frame(&[b"t=1,v1=00"], &body)));
}

fn snapshot(out: &mut Vec<Seed>) {
    let rows = tally_raft_store::fuzzing::snapshot_seed_rows(&ledger_requests());
    let mut framed: Vec<&[u8]> = Vec::new();
    for (key, value) in &rows {
        framed.push(key);
        framed.push(value);
    }
    let mut as_rows = vec![1u8];
    as_rows.extend(frame(&framed, b""));
    out.push(seed("snapshot", "rows", as_rows));
    let mut as_stream = vec![0u8];
    as_stream.extend(tally_raft_store::fuzzing::snapshot_seed_stream(
        &ledger_requests(),
    ));
    out.push(seed("snapshot", "stream", as_stream));
}

fn payments_door(out: &mut Vec<Seed>) {
    let commands = door::commands_request(&payment_commands());
    out.push(seed(
        "payments_door",
        "commands",
        [vec![0], commands.commands].concat(),
    ));
    let query = door::query_request(&PaymentQuery::Payment {
        checkout_id: CheckoutId::new("c1").expect("a valid id"),
    });
    out.push(seed(
        "payments_door",
        "query",
        [vec![2], query.query].concat(),
    ));
}

fn apply(out: &mut Vec<Seed>) {
    let requests: Vec<Vec<u8>> = ledger_requests().iter().map(encode_value).collect();
    let fields: Vec<&[u8]> = requests.iter().map(Vec::as_slice).collect();
    out.push(seed("apply", "ledger-and-payments", frame(&fields, b"")));
}

fn usd_account(n: u128, wallet: bool) -> Command {
    Command::CreateAccount(NewAccount {
        id: AccountId(n),
        currency: Currency::USD,
        code: 10,
        flags: AccountFlags {
            debits_must_not_exceed_credits: wallet,
            credits_must_not_exceed_debits: false,
        },
        metadata: Metadata::default(),
        linked: false,
    })
}

fn transfer(n: u128, kind: TransferKind) -> Command {
    Command::CreateTransfer(NewTransfer {
        id: TransferId(n),
        kind,
        code: 1,
        metadata: Metadata::default(),
        linked: false,
    })
}

fn payment_commands() -> Vec<PaymentCommand> {
    let merchant = MerchantId::new("m1").expect("a valid id");
    let order = OrderId::new("o1").expect("a valid id");
    vec![
        PaymentCommand::CreateMerchant(NewMerchant {
            id: merchant.clone(),
            name: "Fuzz Shop".to_string(),
            fees: FeeSchedule {
                bps: 290,
                fixed_minor: BTreeMap::from([(Currency::USD, 30)]),
            },
            hold_period_s: 0,
        }),
        PaymentCommand::CreateBuyer(NewBuyer {
            id: BuyerId::new("b1").expect("a valid id"),
            wallet_currencies: vec![Currency::USD],
        }),
        PaymentCommand::CreatePayment(NewPayment {
            checkout_id: CheckoutId::new("c1").expect("a valid id"),
            merchant_id: merchant.clone(),
            buyer_id: BuyerId::new("b1").expect("a valid id"),
            method: Some(PaymentMethod::Card {
                token: "tok_visa".to_string(),
            }),
            capture: CaptureMode::Automatic,
            psp: PspName::new("sim").expect("a valid name"),
            risk: RiskRecord {
                outcome: RiskOutcome::Approve,
                flagged: false,
                reasons: Vec::new(),
            },
            request_hash: [3; 32],
            orders: vec![NewOrder {
                order_id: order.clone(),
                seller_id: merchant,
                amount_minor: 1_000,
                currency: Currency::USD,
            }],
        }),
        PaymentCommand::ClaimOrder {
            order_id: order.clone(),
            lease_ms: 30_000,
        },
        PaymentCommand::RecordChargeOutcome {
            order_id: order.clone(),
            outcome: ChargeOutcome::Captured {
                psp_charge_id: "ch_1".to_string(),
                amount_minor: 1_000,
            },
            event_id: Some("evt_1".to_string()),
        },
        PaymentCommand::FulfillOrder {
            order_id: order.clone(),
        },
        PaymentCommand::BeginRefund {
            order_id: order.clone(),
            refund_id: RefundId::new("r1").expect("a valid id"),
            amount_minor: 400,
            check_after_ms: 60_000,
        },
        PaymentCommand::CompleteRefund {
            order_id: order,
            refund_id: RefundId::new("r1").expect("a valid id"),
            succeeded: true,
        },
    ]
}

/// A ledger session and a payment's life, one command batch per entry.
pub fn ledger_requests() -> Vec<LedgerRequest> {
    let second_ns = 1_000_000_000;
    let mut requests = vec![
        LedgerRequest {
            timestamp_ns: 1_800_000_000 * second_ns,
            commands: vec![usd_account(1, true), usd_account(2, false)],
        },
        LedgerRequest {
            timestamp_ns: 1_800_000_001 * second_ns,
            commands: vec![
                transfer(
                    10,
                    TransferKind::Single {
                        debit_account_id: AccountId(2),
                        credit_account_id: AccountId(1),
                        amount_minor: 1_234,
                        currency: Currency::USD,
                    },
                ),
                transfer(
                    11,
                    TransferKind::Pending {
                        debit_account_id: AccountId(1),
                        credit_account_id: AccountId(2),
                        amount_minor: 500,
                        currency: Currency::USD,
                        timeout_s: 60,
                    },
                ),
                transfer(
                    12,
                    TransferKind::PostPending {
                        pending_id: TransferId(11),
                        amount_minor: Some(250),
                    },
                ),
            ],
        },
    ];
    for (step, command) in payment_commands().into_iter().enumerate() {
        requests.push(LedgerRequest {
            timestamp_ns: (1_800_000_010 + step as u64) * second_ns,
            commands: vec![Command::Payment(Box::new(command))],
        });
    }
    requests
}
