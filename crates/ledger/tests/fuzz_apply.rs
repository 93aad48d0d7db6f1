//! A command-sequence fuzzer over `apply`: random batches of ledger and payment commands over a
//! small id space, including the ids of derived (payments) accounts and transfers, lifecycle
//! calls out of order (confirm after cancel, capture after refund, refund before capture,
//! payouts of drained sellers, ...), extreme amounts and large jumps in time (hold periods and
//! expiries, idempotency retention). After every batch: no command panicked (a contained panic answers
//! `internal_error` and is a bug), the full audit holds, and final states stayed final.
//!
//! CI runs `FUZZ_CASES_DEFAULT` sequences. A long run: `PROPTEST_CASES=200000` on this test
//! binary (`target/debug/deps/fuzz_apply-*`), which proptest reads from the environment.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use std::collections::BTreeMap;
use tally_ledger::limits::NANOS_PER_SECOND;
use tally_ledger::payment::chart;
use tally_ledger::payment::{
    BuyerId, CaptureMode, ChargeOutcome, CheckoutId, FeeSchedule, MerchantId, NewBuyer,
    NewMerchant, NewOrder, NewPayment, NewPayout, OrderId, PaymentCommand, PaymentMethod, PayoutId,
    PayoutInterval, PayoutOutcome, PspName, RefundId, RefundRetry, RiskOutcome, RiskRecord,
    ScheduleSpec, WorkRef,
};
use tally_ledger::{
    audit, AccountFlags, AccountId, BeginIdempotent, CloseAccount, Command, CompleteIdempotent,
    Currency, HoldStatus, IdempotencyKey, LedgerRead, MemStore, Metadata, NewAccount, NewTransfer,
    TransferId, TransferKind,
};

const FUZZ_CASES_DEFAULT: u32 = 48;
const USD: Currency = Currency::USD;
const T0: u64 = 1_700_000_000 * NANOS_PER_SECOND;
const SELLERS: [&str; 2] = ["s1", "s2"];
const CHECKOUTS: usize = 4;
const ORDERS_PER_CHECKOUT: usize = 2;
const REFUNDS: usize = 4;
const PAYOUTS: usize = 3;
const CLIENT_ACCOUNTS: u128 = 3;
const CLIENT_PENDING_IDS: u128 = 4;

fn merchant(id: &str) -> MerchantId {
    MerchantId::new(id).unwrap()
}
fn checkout(c: usize) -> CheckoutId {
    CheckoutId::new(format!("c{c}")).unwrap()
}
fn order(c: usize, k: usize) -> OrderId {
    OrderId::new(format!("o{c}_{k}")).unwrap()
}
fn refund(r: usize) -> RefundId {
    RefundId::new(format!("r{r}")).unwrap()
}
fn payout(p: usize) -> PayoutId {
    PayoutId::new(format!("po{p}")).unwrap()
}
fn psp() -> PspName {
    PspName::new("sim").unwrap()
}
fn buyer() -> BuyerId {
    BuyerId::new("b1").unwrap()
}

/// Amounts of money movements (captures, refunds, payouts, transfers): mostly below the
/// orders' amounts, so they apply; now and then zero or at the edge of `u64`.
fn amount() -> impl Strategy<Value = u64> {
    prop_oneof![
        16 => 1u64..=300,
        1 => Just(0),
        1 => Just(u64::MAX),
        1 => Just(u64::MAX / 2),
        1 => any::<u64>(),
    ]
}

/// Order amounts: mostly above the movements, so several refunds and partial captures fit.
fn order_amount() -> impl Strategy<Value = u64> {
    prop_oneof![
        16 => 300u64..=2_000,
        1 => Just(u64::MAX),
        1 => Just(u64::MAX / 2),
        1 => any::<u64>(),
    ]
}

fn lease_ms() -> impl Strategy<Value = u64> {
    prop_oneof![18 => 1u64..=60_000, 1 => Just(0), 1 => Just(u64::MAX)]
}

fn attempt() -> impl Strategy<Value = u64> {
    0u64..=3
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![Just("e".to_string()), Just("x".repeat(300))]
}

fn seller() -> impl Strategy<Value = MerchantId> {
    prop::sample::select(SELLERS.to_vec()).prop_map(merchant)
}

fn order_ref() -> impl Strategy<Value = OrderId> {
    (0..CHECKOUTS, 0..ORDERS_PER_CHECKOUT).prop_map(|(c, k)| order(c, k))
}

/// Client account ids, and the derived ids of every payments account.
fn account_ref() -> impl Strategy<Value = AccountId> {
    let derived = vec![
        chart::merchant_held(&merchant("s1"), USD),
        chart::merchant_available(&merchant("s1"), USD),
        chart::merchant_payout_in_transit(&merchant("s1"), USD),
        chart::platform_fees(USD),
        chart::psp_receivable(&psp(), USD),
        chart::buyer_wallet(&buyer(), USD),
    ];
    prop_oneof![
        3 => (1..=CLIENT_ACCOUNTS).prop_map(AccountId),
        2 => prop::sample::select(derived),
    ]
}

/// Client pending ids, and the derived ids of refund and payout holds.
fn pending_ref() -> impl Strategy<Value = TransferId> {
    prop_oneof![
        2 => (100..100 + CLIENT_PENDING_IDS).prop_map(TransferId),
        1 => (order_ref(), 0..REFUNDS)
            .prop_map(|(o, r)| chart::refund_transfer("refund", &o, &refund(r))),
        1 => (0..PAYOUTS).prop_map(|p| chart::payout_transfer("hold", &payout(p))),
        1 => order_ref().prop_map(|o| chart::order_transfer("charge", &o)),
    ]
}

fn method() -> impl Strategy<Value = PaymentMethod> {
    prop_oneof![
        Just(PaymentMethod::Card {
            token: "tok_ok".to_string()
        }),
        Just(PaymentMethod::Wallet),
        Just(PaymentMethod::Qr),
        Just(PaymentMethod::Hosted {
            return_url: "https://shop.example/back".to_string()
        }),
    ]
}

fn charge_outcome() -> impl Strategy<Value = ChargeOutcome> {
    prop_oneof![
        Just(ChargeOutcome::Pending {
            psp_charge_id: "ch".to_string(),
            next_action: None
        }),
        amount().prop_map(|amount_minor| ChargeOutcome::Authorized {
            psp_charge_id: "ch".to_string(),
            amount_minor
        }),
        amount().prop_map(|amount_minor| ChargeOutcome::Captured {
            psp_charge_id: "ch".to_string(),
            amount_minor
        }),
        text().prop_map(|code| ChargeOutcome::Declined {
            code,
            message: "m".to_string()
        }),
        (attempt(), any::<u64>()).prop_map(|(attempt, retry_at_ns)| ChargeOutcome::Retryable {
            attempt,
            code: "timeout".to_string(),
            message: "m".to_string(),
            retry_at_ns
        }),
        Just(ChargeOutcome::Exhausted {
            code: "e".to_string(),
            message: "m".to_string()
        }),
        Just(ChargeOutcome::Poison {
            code: "e".to_string(),
            message: "m".to_string()
        }),
    ]
}

fn payout_outcome() -> impl Strategy<Value = PayoutOutcome> {
    prop_oneof![
        any::<u64>().prop_map(|check_at_ns| PayoutOutcome::InTransit {
            psp_payout_id: "pp".to_string(),
            check_at_ns
        }),
        Just(PayoutOutcome::Paid {
            psp_payout_id: "pp".to_string()
        }),
        Just(PayoutOutcome::Failed {
            code: "closed".to_string(),
            message: "m".to_string()
        }),
        (attempt(), any::<u64>()).prop_map(|(attempt, retry_at_ns)| PayoutOutcome::Retryable {
            attempt,
            code: "e".to_string(),
            message: "m".to_string(),
            retry_at_ns
        }),
        attempt().prop_map(|attempt| PayoutOutcome::Exhausted {
            attempt,
            code: "e".to_string(),
            message: "m".to_string()
        }),
        attempt().prop_map(|attempt| PayoutOutcome::Poison {
            attempt,
            code: "e".to_string(),
            message: "m".to_string()
        }),
    ]
}

fn work_ref() -> impl Strategy<Value = WorkRef> {
    prop_oneof![
        order_ref().prop_map(WorkRef::Charge),
        (0..PAYOUTS).prop_map(|p| WorkRef::Payout(payout(p))),
        (order_ref(), 0..REFUNDS).prop_map(|(o, r)| WorkRef::Refund(o, refund(r))),
    ]
}

fn new_payment() -> impl Strategy<Value = PaymentCommand> {
    (
        0..CHECKOUTS,
        prop::option::weighted(0.8, method()),
        any::<bool>(),
        vec((seller(), order_amount()), 1..=ORDERS_PER_CHECKOUT),
    )
        .prop_map(|(c, method, manual, orders)| {
            PaymentCommand::CreatePayment(NewPayment {
                checkout_id: checkout(c),
                merchant_id: merchant("platform"),
                buyer_id: buyer(),
                method,
                capture: if manual {
                    CaptureMode::Manual
                } else {
                    CaptureMode::Automatic
                },
                psp: psp(),
                risk: RiskRecord {
                    outcome: RiskOutcome::Approve,
                    flagged: false,
                    reasons: Vec::new(),
                },
                request_hash: [c as u8; 32],
                orders: orders
                    .into_iter()
                    .enumerate()
                    .map(|(k, (seller_id, amount_minor))| NewOrder {
                        order_id: order(c, k),
                        seller_id,
                        amount_minor,
                        currency: USD,
                    })
                    .collect(),
            })
        })
}

fn payment_command() -> impl Strategy<Value = PaymentCommand> {
    prop_oneof![
        3 => new_payment(),
        1 => (0..CHECKOUTS, method())
            .prop_map(|(c, method)| PaymentCommand::ConfirmPayment { checkout_id: checkout(c), method }),
        3 => (order_ref(), lease_ms())
            .prop_map(|(order_id, lease_ms)| PaymentCommand::ClaimOrder { order_id, lease_ms }),
        4 => (order_ref(), charge_outcome(), prop::option::of(0u8..3)).prop_map(
            |(order_id, outcome, event)| PaymentCommand::RecordChargeOutcome {
                order_id,
                outcome,
                event_id: event.map(|e| format!("evt{e}")),
            }
        ),
        1 => (order_ref(), amount())
            .prop_map(|(order_id, amount_minor)| PaymentCommand::RecordCapture { order_id, amount_minor }),
        1 => order_ref().prop_map(|order_id| PaymentCommand::CancelOrder { order_id }),
        2 => (order_ref(), 0..REFUNDS, amount(), lease_ms()).prop_map(|(order_id, r, amount_minor, check_after_ms)| {
            PaymentCommand::BeginRefund { order_id, refund_id: refund(r), amount_minor, check_after_ms }
        }),
        1 => (order_ref(), 0..REFUNDS, lease_ms()).prop_map(|(order_id, r, lease_ms)| {
            PaymentCommand::ClaimRefund { order_id, refund_id: refund(r), lease_ms }
        }),
        1 => (order_ref(), 0..REFUNDS, attempt(), 0u8..3).prop_map(|(order_id, r, attempt, kind)| {
            let (code, message) = ("e".to_string(), "m".to_string());
            let outcome = match kind {
                0 => RefundRetry::Retryable { attempt, code, message, retry_at_ns: T0 },
                1 => RefundRetry::Exhausted { attempt, code, message },
                _ => RefundRetry::Poison { attempt, code, message },
            };
            PaymentCommand::RecordRefundRetry { order_id, refund_id: refund(r), outcome }
        }),
        2 => (order_ref(), 0..REFUNDS, any::<bool>()).prop_map(|(order_id, r, succeeded)| {
            PaymentCommand::CompleteRefund { order_id, refund_id: refund(r), succeeded }
        }),
        1 => order_ref().prop_map(|order_id| PaymentCommand::FulfillOrder { order_id }),
        2 => (0..PAYOUTS, seller(), prop::option::of(amount())).prop_map(|(p, merchant_id, amount_minor)| {
            PaymentCommand::CreatePayout(NewPayout {
                payout_id: payout(p),
                merchant_id,
                currency: USD,
                amount_minor,
                psp: psp(),
            })
        }),
        1 => (0..PAYOUTS, lease_ms())
            .prop_map(|(p, lease_ms)| PaymentCommand::ClaimPayout { payout_id: payout(p), lease_ms }),
        2 => (0..PAYOUTS, payout_outcome())
            .prop_map(|(p, outcome)| PaymentCommand::RecordPayoutOutcome { payout_id: payout(p), outcome }),
        1 => (0..PAYOUTS).prop_map(|p| PaymentCommand::CancelPayout { payout_id: payout(p) }),
        1 => (seller(), any::<bool>(), amount()).prop_map(|(merchant_id, set, minimum_minor)| {
            PaymentCommand::SetPayoutSchedule {
                merchant_id,
                currency: USD,
                schedule: set.then(|| ScheduleSpec {
                    interval: PayoutInterval::Seconds(2),
                    minimum_minor,
                    psp: psp(),
                }),
            }
        }),
        1 => seller().prop_map(|merchant_id| PaymentCommand::RunPayoutSchedule { merchant_id, currency: USD }),
        1 => work_ref().prop_map(|work| PaymentCommand::RedriveWork { work }),
        1 => (work_ref(), text()).prop_map(|(work, reason)| PaymentCommand::DiscardWork { work, reason }),
        1 => (seller(), 0u32..=10_000, amount(), 0u32..=3).prop_map(|(merchant_id, bps, fixed, hold_period_s)| {
            PaymentCommand::UpdateMerchantFees {
                merchant_id,
                fees: FeeSchedule { bps, fixed_minor: BTreeMap::from([(USD, fixed)]) },
                hold_period_s,
            }
        }),
    ]
}

fn ledger_command() -> impl Strategy<Value = Command> {
    let new_transfer = |id: u128, kind: TransferKind| {
        Command::CreateTransfer(NewTransfer {
            id: TransferId(id),
            kind,
            code: 1,
            metadata: Metadata::default(),
            linked: false,
        })
    };
    prop_oneof![
        1 => account_ref().prop_map(|id| Command::CreateAccount(NewAccount {
            id,
            currency: USD,
            code: 1,
            flags: AccountFlags::NONE,
            metadata: Metadata::default(),
            linked: false,
        })),
        1 => account_ref().prop_map(|id| Command::CloseAccount(CloseAccount { id, linked: false })),
        3 => (1_000u128..1_040, account_ref(), account_ref(), amount()).prop_map(
            move |(id, debit_account_id, credit_account_id, amount_minor)| new_transfer(id, TransferKind::Single {
                debit_account_id, credit_account_id, amount_minor, currency: USD,
            })
        ),
        2 => (100..100 + CLIENT_PENDING_IDS, account_ref(), account_ref(), amount(), 0u32..=3).prop_map(
            move |(id, debit_account_id, credit_account_id, amount_minor, timeout_s)| new_transfer(id, TransferKind::Pending {
                debit_account_id, credit_account_id, amount_minor, currency: USD, timeout_s,
            })
        ),
        2 => (2_000u128..2_040, pending_ref(), prop::option::of(amount())).prop_map(
            move |(id, pending_id, amount_minor)| new_transfer(id, TransferKind::PostPending { pending_id, amount_minor })
        ),
        1 => (3_000u128..3_040, pending_ref()).prop_map(
            move |(id, pending_id)| new_transfer(id, TransferKind::VoidPending { pending_id })
        ),
        1 => (idempotency_key(), 0u8..2, lease_ms(), retain_ms()).prop_map(
            |(key, hash, lease_ms, retain_ms)| Command::BeginIdempotent(BeginIdempotent {
                key, request_hash: [hash; 32], lease_ms, retain_ms,
            })
        ),
        1 => (idempotency_key(), 0u8..2, attempt(), text()).prop_map(
            |(key, hash, attempt, response)| Command::CompleteIdempotent(CompleteIdempotent {
                key, request_hash: [hash; 32], attempt, response: response.into_bytes(),
            })
        ),
    ]
}

fn idempotency_key() -> impl Strategy<Value = IdempotencyKey> {
    (0..3u8).prop_map(|k| IdempotencyKey::new(format!("m1:k{k}")).unwrap())
}

/// Retentions: mostly short enough that the fuzzer's jumps in time forget the records.
fn retain_ms() -> impl Strategy<Value = u64> {
    prop_oneof![18 => 1u64..=120_000, 1 => Just(0), 1 => Just(u64::MAX)]
}

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        3 => payment_command().prop_map(|c| Command::Payment(Box::new(c))),
        1 => ledger_command(),
    ]
}

/// One order's whole life in order (create, claim, capture, refunds, fulfilment, a payout),
/// sometimes shuffled: the deep states random commands rarely reach, and their calls out of
/// order.
fn lifecycle() -> impl Strategy<Value = Vec<Command>> {
    (
        new_payment(),
        amount(),
        vec((0..REFUNDS, amount(), any::<bool>()), 0..=REFUNDS),
        (0..PAYOUTS, seller(), prop::option::of(amount())),
        any::<bool>(),
    )
        .prop_flat_map(
            |(create, captured_minor, refunds, (p, payout_seller, payout_minor), shuffle)| {
                let PaymentCommand::CreatePayment(new) = &create else {
                    unreachable!("new_payment creates payments")
                };
                let order_id = new.orders[0].order_id.clone();
                let mut commands = vec![
                    create.clone(),
                    PaymentCommand::ClaimOrder {
                        order_id: order_id.clone(),
                        lease_ms: 30_000,
                    },
                    PaymentCommand::RecordChargeOutcome {
                        order_id: order_id.clone(),
                        outcome: ChargeOutcome::Captured {
                            psp_charge_id: "ch".to_string(),
                            amount_minor: captured_minor,
                        },
                        event_id: None,
                    },
                ];
                // Refunds overlap: some begin before earlier ones settle (and fail), which moves
                // the fee shares the later ones are computed from.
                let settles: Vec<_> = refunds
                    .iter()
                    .map(|(r, _, succeeded)| PaymentCommand::CompleteRefund {
                        order_id: order_id.clone(),
                        refund_id: refund(*r),
                        succeeded: *succeeded,
                    })
                    .collect();
                for (k, (r, amount_minor, _)) in refunds.iter().enumerate() {
                    commands.push(PaymentCommand::BeginRefund {
                        order_id: order_id.clone(),
                        refund_id: refund(*r),
                        amount_minor: amount_minor % 64 + 1,
                        check_after_ms: 30_000,
                    });
                    if k % 2 == 1 {
                        commands.push(settles[k - 1].clone());
                    }
                }
                commands.extend(settles);
                commands.push(PaymentCommand::FulfillOrder { order_id });
                commands.push(PaymentCommand::CreatePayout(NewPayout {
                    payout_id: payout(p),
                    merchant_id: payout_seller,
                    currency: USD,
                    amount_minor: payout_minor,
                    psp: psp(),
                }));
                let commands: Vec<Command> = commands
                    .into_iter()
                    .map(|c| Command::Payment(Box::new(c)))
                    .collect();
                if shuffle {
                    Just(commands).prop_shuffle().boxed()
                } else {
                    Just(commands).boxed()
                }
            },
        )
}

fn batch() -> impl Strategy<Value = Vec<Command>> {
    prop_oneof![3 => vec(command(), 1..6), 1 => lifecycle()]
}

/// Time between batches: often short, sometimes past a hold period, expiry or retry.
fn step_ns() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => Just(1_000_000u64),
        3 => Just(NANOS_PER_SECOND),
        2 => Just(3 * NANOS_PER_SECOND),
        1 => Just(3_600 * NANOS_PER_SECOND),
        1 => Just(2 * 86_400 * NANOS_PER_SECOND),
    ]
}

fn setup(store: &mut MemStore) {
    let mut commands = Vec::new();
    for (id, hold_period_s) in [("platform", 0), ("s1", 1), ("s2", 0)] {
        commands.push(PaymentCommand::CreateMerchant(NewMerchant {
            id: merchant(id),
            name: id.to_string(),
            fees: FeeSchedule {
                bps: 290,
                fixed_minor: BTreeMap::from([(USD, 30)]),
            },
            hold_period_s,
        }));
    }
    commands.push(PaymentCommand::CreateBuyer(NewBuyer {
        id: buyer(),
        wallet_currencies: vec![USD],
    }));
    let mut batch: Vec<Command> = commands
        .into_iter()
        .map(|c| Command::Payment(Box::new(c)))
        .collect();
    for id in 1..=CLIENT_ACCOUNTS {
        batch.push(Command::CreateAccount(NewAccount {
            id: AccountId(id),
            currency: USD,
            code: 1,
            flags: AccountFlags::NONE,
            metadata: Metadata::default(),
            linked: false,
        }));
    }
    // Stored value for wallet payments: a top-up from a client account.
    batch.push(Command::CreateTransfer(NewTransfer {
        id: TransferId(1),
        kind: TransferKind::Single {
            debit_account_id: AccountId(1),
            credit_account_id: chart::buyer_wallet(&buyer(), USD),
            amount_minor: 50_000,
            currency: USD,
        },
        code: 1,
        metadata: Metadata::default(),
        linked: false,
    }));
    let applied = store.apply(&batch, T0).expect("setup applies");
    assert!(applied.results.iter().all(|r| r.is_ok()), "{applied:?}");
}

/// Every state that must never change once final: orders, refunds, payouts, client holds.
fn final_states(store: &MemStore) -> BTreeMap<String, String> {
    let mut finals = BTreeMap::new();
    for c in 0..CHECKOUTS {
        let Some(payment) = store.payment(&checkout(c)) else {
            continue;
        };
        for order in &payment.orders {
            if order.state.is_final() {
                finals.insert(
                    format!("order {}", order.order_id),
                    format!("{:?}", order.state),
                );
            }
            for refund in &order.refunds {
                if refund.state != tally_ledger::payment::RefundState::Pending {
                    finals.insert(
                        format!("refund {}/{}", order.order_id, refund.refund_id),
                        format!("{:?}", refund.state),
                    );
                }
            }
        }
    }
    for p in 0..PAYOUTS {
        if let Some(payout) = store.payout(&payout(p)) {
            if payout.state.is_final() {
                finals.insert(format!("payout {p}"), format!("{:?}", payout.state));
            }
        }
    }
    for id in 100..100 + CLIENT_PENDING_IDS {
        if let Some(hold) = store.hold(TransferId(id)) {
            if hold.status != HoldStatus::Pending {
                finals.insert(format!("hold {id}"), format!("{:?}", hold.status));
            }
        }
    }
    finals
}

fn run(batches: Vec<(u64, Vec<Command>)>) -> Result<(), TestCaseError> {
    let mut store = MemStore::new();
    setup(&mut store);
    let mut now_ns = T0;
    for (step, commands) in batches {
        now_ns += step;
        let before = final_states(&store);
        let applied = store.apply(&commands, now_ns).expect("batch within bounds");
        prop_assert!(
            applied.faults.is_empty(),
            "a command panicked in apply: {:?}\ncommands: {commands:?}",
            applied.faults
        );
        for (command, result) in commands.iter().zip(&applied.results) {
            prop_assert!(!result.is_internal_error(), "{command:?} -> {result:?}");
        }
        if let Err(violation) = audit(&store) {
            return Err(TestCaseError::fail(format!(
                "audit: {violation}\ncommands: {commands:?}"
            )));
        }
        let after = final_states(&store);
        for (key, state) in &before {
            prop_assert_eq!(after.get(key), Some(state), "{} left a final state", key);
        }
    }
    Ok(())
}

/// `FUZZ_CASES_DEFAULT` cases, unless `PROPTEST_CASES` asks for a longer run.
fn fuzz_config() -> ProptestConfig {
    let default = ProptestConfig::default();
    let cases = match std::env::var_os("PROPTEST_CASES") {
        Some(_) => default.cases,
        None => FUZZ_CASES_DEFAULT,
    };
    ProptestConfig { cases, ..default }
}

proptest! {
    #![proptest_config(fuzz_config())]

    #[test]
    fn random_command_sequences_never_panic_and_keep_every_invariant(
        batches in vec((step_ns(), batch()), 1..40)
    ) {
        run(batches)?;
    }
}
