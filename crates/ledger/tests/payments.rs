//! The payments domain through `apply`: checkouts, the order state machine, captures, refunds,
//! wallets, fees and hold releases, each test named after the behaviour it proves. After every
//! batch the fixture runs the full audit, which includes "seller held accounts match orders".

mod fixture;

use fixture::*;
use std::collections::BTreeMap;
use tally_ledger::limits::NANOS_PER_SECOND;
use tally_ledger::payment::chart;
use tally_ledger::payment::{
    BuyerId, CaptureMode, ChargeOutcome, FeeSchedule, NewBuyer, NextAction, OrderId, OrderState,
    PaymentCommand, PaymentMethod, PaymentStatus, PspName, RefundId, RiskOutcome, RiskRecord,
};
use tally_ledger::{
    audit, AccountFlags, AccountId, Command, CommandResult, Currency, LedgerRead, Metadata,
    NewAccount, NewTransfer, TransferId, TransferKind,
};

fn fee(amount_minor: u64) -> u64 {
    amount_minor * 250 / 10_000 + 30
}

#[test]
fn checkout_with_three_orders_is_held_then_fulfilled_net_of_fees() {
    let mut f = Fixture::new();
    let new = f.new_payment(
        "c1",
        card(),
        CaptureMode::Automatic,
        &[
            ("o1", "s1", 10_000),
            ("o2", "s2", 20_000),
            ("o3", "s3", 5_000),
        ],
    );
    let payment = f.create(new);
    assert_eq!(payment.status(), PaymentStatus::Processing);
    for (order, amount) in [("o1", 10_000), ("o2", 20_000), ("o3", 5_000)] {
        assert_eq!(f.claim(order), 1);
        f.captured(order, amount);
    }
    assert_eq!(f.payment_record("c1").status(), PaymentStatus::Succeeded);
    assert_eq!(f.held("s1"), i128::from(10_000 - fee(10_000)));
    assert_eq!(f.held("s2"), i128::from(20_000 - fee(20_000)));
    assert_eq!(f.fees(), i128::from(fee(10_000) + fee(20_000) + fee(5_000)));
    let receivable = chart::psp_receivable(&PspName::new("sim").unwrap(), USD);
    assert_eq!(f.net(receivable), -35_000);

    for order in ["o1", "o2", "o3"] {
        f.payment_ok(PaymentCommand::FulfillOrder {
            order_id: order_id(order),
        });
    }
    for (seller, amount) in [("s1", 10_000), ("s2", 20_000), ("s3", 5_000)] {
        assert_eq!(f.held(seller), 0);
        assert_eq!(f.available(seller), i128::from(amount - fee(amount)));
    }
    // Fulfilling twice changes nothing.
    let again = f.payment_ok(PaymentCommand::FulfillOrder {
        order_id: order_id("o1"),
    });
    assert_eq!(again.code(), "unchanged");
}

/// Found by the `snapshot` fuzz target: a stored order that breaks its own accounting (as a
/// damaged or forged snapshot row may) made the audit panic instead of reporting it.
#[test]
fn the_audit_reports_an_inconsistent_stored_order_instead_of_panicking() {
    let mut f = Fixture::new();
    let new = f.new_payment(
        "c1",
        card(),
        CaptureMode::Automatic,
        &[("o1", "s1", 10_000)],
    );
    f.create(new);
    assert_eq!(f.claim("o1"), 1);
    f.captured("o1", 10_000);
    let mut damaged = f.payment_record("c1");
    damaged.orders[0].fee_minor = damaged.orders[0].captured_minor + 1;
    f.store.commit(tally_ledger::ChangeSet {
        payments: vec![damaged],
        ..Default::default()
    });
    let violation = audit(&f.store).expect_err("the damaged order is reported");
    assert!(
        violation
            .to_string()
            .contains("order o1: fee above captured"),
        "{violation}"
    );
}

#[test]
fn hold_period_releases_held_funds_without_fulfilment() {
    let mut f = Fixture::new();
    let new = f.new_payment(
        "c1",
        card(),
        CaptureMode::Automatic,
        &[("o1", "s1", 10_000)],
    );
    f.create(new);
    f.claim("o1");
    f.captured("o1", 10_000);
    assert_eq!(f.available("s1"), 0);
    f.now_ns += 86_400 * NANOS_PER_SECOND;
    let applied = f.store.apply(&[], f.now_ns + NANOS_PER_SECOND).unwrap();
    assert_eq!(applied.released, vec![order_id("o1")]);
    audit(&f.store).unwrap();
    assert_eq!(f.available("s1"), i128::from(10_000 - fee(10_000)));
    assert_eq!(f.held("s1"), 0);
}

#[test]
fn intent_is_confirmed_later_and_cannot_execute_before() {
    let mut f = Fixture::new();
    let new = f.new_payment("c1", None, CaptureMode::Automatic, &[("o1", "s1", 1_000)]);
    let payment = f.create(new);
    assert_eq!(payment.status(), PaymentStatus::RequiresPaymentMethod);
    let code = f.payment_err(PaymentCommand::ClaimOrder {
        order_id: order_id("o1"),
        lease_ms: 1_000,
    });
    assert_eq!(code, "not_confirmed");
    f.payment_ok(PaymentCommand::ConfirmPayment {
        checkout_id: checkout_id("c1"),
        method: PaymentMethod::Qr,
    });
    // Confirming again with the same method is a retry; another method is refused.
    let again = f.payment_ok(PaymentCommand::ConfirmPayment {
        checkout_id: checkout_id("c1"),
        method: PaymentMethod::Qr,
    });
    assert_eq!(again.code(), "unchanged");
    let code = f.payment_err(PaymentCommand::ConfirmPayment {
        checkout_id: checkout_id("c1"),
        method: card().unwrap(),
    });
    assert_eq!(code, "already_confirmed");
    assert_eq!(f.claim("o1"), 1);
}

#[test]
fn qr_payment_is_pending_until_the_webhook_captures_it() {
    let mut f = Fixture::new();
    let new = f.new_payment(
        "c1",
        Some(PaymentMethod::Qr),
        CaptureMode::Automatic,
        &[("o1", "s1", 1_000)],
    );
    f.create(new);
    f.claim("o1");
    let qr = NextAction::ShowQr {
        payload: "qr:ch_1".to_string(),
    };
    f.record(
        "o1",
        ChargeOutcome::Pending {
            psp_charge_id: "ch_1".to_string(),
            next_action: Some(qr.clone()),
        },
    );
    let OrderState::Pending { check_at_ns: first } = f.order_state("c1", "o1") else {
        panic!("not pending")
    };
    assert_eq!(f.held("s1"), 0);
    // A status check that finds it still pending moves the next check later and keeps the
    // buyer's action.
    f.record(
        "o1",
        ChargeOutcome::Pending {
            psp_charge_id: "ch_1".to_string(),
            next_action: None,
        },
    );
    assert_eq!(f.payment_record("c1").orders[0].next_action, Some(qr));
    let OrderState::Pending {
        check_at_ns: second,
    } = f.order_state("c1", "o1")
    else {
        panic!("not pending")
    };
    assert!(second > first);
    let counts = |f: &Fixture| f.store.meta().orders_by_state;
    assert_eq!(
        counts(&f),
        std::collections::BTreeMap::from([("pending".to_string(), 1)])
    );
    f.captured("o1", 1_000);
    assert_eq!(f.order_state("c1", "o1"), OrderState::Succeeded);
    assert_eq!(
        counts(&f),
        std::collections::BTreeMap::from([("succeeded".to_string(), 1)]),
        "the meta counts each order once, in its current state"
    );
    assert_eq!(f.payment_record("c1").orders[0].next_action, None);
    assert_eq!(f.held("s1"), i128::from(1_000 - fee(1_000)));
}

#[test]
fn manual_capture_takes_part_of_the_authorization_once() {
    let mut f = Fixture::new();
    let new = f.new_payment("c1", card(), CaptureMode::Manual, &[("o1", "s1", 10_000)]);
    f.create(new);
    f.claim("o1");
    f.record(
        "o1",
        ChargeOutcome::Authorized {
            psp_charge_id: "ch_1".to_string(),
            amount_minor: 10_000,
        },
    );
    assert_eq!(
        f.payment_record("c1").status(),
        PaymentStatus::RequiresCapture
    );
    let code = f.payment_err(PaymentCommand::RecordCapture {
        order_id: order_id("o1"),
        amount_minor: 10_001,
    });
    assert_eq!(code, "amount_too_large");
    f.payment_ok(PaymentCommand::RecordCapture {
        order_id: order_id("o1"),
        amount_minor: 6_000,
    });
    assert_eq!(f.held("s1"), i128::from(6_000 - fee(6_000)));
    let retry = f.payment_ok(PaymentCommand::RecordCapture {
        order_id: order_id("o1"),
        amount_minor: 6_000,
    });
    assert_eq!(retry.code(), "unchanged");
    let code = f.payment_err(PaymentCommand::RecordCapture {
        order_id: order_id("o1"),
        amount_minor: 1_000,
    });
    assert_eq!(code, "invalid_transition");
    assert_eq!(f.held("s1"), i128::from(6_000 - fee(6_000)));
}

#[test]
fn partial_refunds_add_up_and_an_over_refund_is_refused() {
    let mut f = Fixture::new();
    let new = f.new_payment(
        "c1",
        card(),
        CaptureMode::Automatic,
        &[("o1", "s1", 10_000)],
    );
    f.create(new);
    f.claim("o1");
    f.captured("o1", 10_000);
    let fee_total = fee(10_000);
    for (refund, amount) in [("r1", 3_000u64), ("r2", 7_000)] {
        f.payment_ok(PaymentCommand::BeginRefund {
            order_id: order_id("o1"),
            refund_id: RefundId::new(refund).unwrap(),
            amount_minor: amount,
            check_after_ms: 30_000,
        });
        f.payment_ok(PaymentCommand::CompleteRefund {
            order_id: order_id("o1"),
            refund_id: RefundId::new(refund).unwrap(),
            succeeded: true,
        });
    }
    let code = f.payment_err(PaymentCommand::BeginRefund {
        order_id: order_id("o1"),
        refund_id: RefundId::new("r3").unwrap(),
        amount_minor: 1,
        check_after_ms: 30_000,
    });
    assert_eq!(code, "refund_exceeds_captured");
    // Everything went back: the seller and the platform fee are at zero.
    assert_eq!(f.held("s1"), 0);
    assert_eq!(f.fees(), 0);
    let order = f
        .payment_record("c1")
        .order(&order_id("o1"))
        .unwrap()
        .clone();
    assert_eq!(order.refunded_minor(), 10_000);
    assert_eq!(
        order.refunds.iter().map(|r| r.fee_share_minor).sum::<u64>(),
        fee_total
    );
}

#[test]
fn a_failed_refund_gives_the_seller_its_funds_back() {
    let mut f = Fixture::new();
    let new = f.new_payment(
        "c1",
        card(),
        CaptureMode::Automatic,
        &[("o1", "s1", 10_000)],
    );
    f.create(new);
    f.claim("o1");
    f.captured("o1", 10_000);
    let refund = RefundId::new("r1").unwrap();
    f.payment_ok(PaymentCommand::BeginRefund {
        order_id: order_id("o1"),
        refund_id: refund.clone(),
        amount_minor: 4_000,
        check_after_ms: 30_000,
    });
    // The refund's funds are reserved while the PSP works on it.
    let code = f.payment_err(PaymentCommand::BeginRefund {
        order_id: order_id("o1"),
        refund_id: RefundId::new("r2").unwrap(),
        amount_minor: 6_001,
        check_after_ms: 30_000,
    });
    assert_eq!(code, "refund_exceeds_captured");
    f.payment_ok(PaymentCommand::CompleteRefund {
        order_id: order_id("o1"),
        refund_id: refund.clone(),
        succeeded: false,
    });
    assert_eq!(f.held("s1"), i128::from(10_000 - fee(10_000)));
    let code = f.payment_err(PaymentCommand::CompleteRefund {
        order_id: order_id("o1"),
        refund_id: refund,
        succeeded: true,
    });
    assert_eq!(code, "invalid_transition");
}

#[test]
fn refund_after_release_draws_on_available_funds() {
    let mut f = Fixture::new();
    let new = f.new_payment(
        "c1",
        card(),
        CaptureMode::Automatic,
        &[("o1", "s1", 10_000)],
    );
    f.create(new);
    f.claim("o1");
    f.captured("o1", 10_000);
    f.payment_ok(PaymentCommand::FulfillOrder {
        order_id: order_id("o1"),
    });
    f.payment_ok(PaymentCommand::BeginRefund {
        order_id: order_id("o1"),
        refund_id: RefundId::new("r1").unwrap(),
        amount_minor: 5_000,
        check_after_ms: 30_000,
    });
    f.payment_ok(PaymentCommand::CompleteRefund {
        order_id: order_id("o1"),
        refund_id: RefundId::new("r1").unwrap(),
        succeeded: true,
    });
    let fee_share = fee(10_000) * 5_000 / 10_000;
    assert_eq!(
        f.available("s1"),
        i128::from(10_000 - fee(10_000)) - i128::from(5_000 - fee_share)
    );
}

#[test]
fn wallet_payment_settles_at_once_and_insufficient_funds_fail_it_whole() {
    let mut f = Fixture::new();
    f.fund_wallet(5_000);
    let new = f.new_payment(
        "c1",
        Some(PaymentMethod::Wallet),
        CaptureMode::Automatic,
        &[("o1", "s1", 3_000), ("o2", "s2", 2_000)],
    );
    let payment = f.create(new);
    assert_eq!(payment.status(), PaymentStatus::Succeeded);
    assert_eq!(f.held("s1"), i128::from(3_000 - fee(3_000)));
    let wallet = chart::buyer_wallet(&BuyerId::new("b1").unwrap(), USD);
    assert_eq!(f.net(wallet), 0);

    let new = f.new_payment(
        "c2",
        Some(PaymentMethod::Wallet),
        CaptureMode::Automatic,
        &[("o3", "s1", 1)],
    );
    let payment = f.create(new);
    assert_eq!(payment.status(), PaymentStatus::Failed);
    let order = payment.order(&order_id("o3")).unwrap();
    assert_eq!(
        order.last_error.as_ref().unwrap().code,
        "insufficient_funds"
    );
    assert_eq!(f.held("s1"), i128::from(3_000 - fee(3_000)));
    // A wallet order has no PSP leg, so no executor may claim it.
    let code = f.payment_err(PaymentCommand::ClaimOrder {
        order_id: order_id("o1"),
        lease_ms: 1_000,
    });
    assert_eq!(code, "not_claimable");
}

#[test]
fn late_and_duplicate_events_never_move_an_order_backwards() {
    let mut f = Fixture::new();
    let new = f.new_payment("c1", card(), CaptureMode::Automatic, &[("o1", "s1", 1_000)]);
    f.create(new);
    let attempt = f.claim("o1");
    f.captured("o1", 1_000);
    let held = f.held("s1");
    for late in [
        ChargeOutcome::Pending {
            psp_charge_id: "ch_o1".to_string(),
            next_action: None,
        },
        ChargeOutcome::Authorized {
            psp_charge_id: "ch_o1".to_string(),
            amount_minor: 1_000,
        },
        ChargeOutcome::Declined {
            code: "card_declined".to_string(),
            message: "declined".to_string(),
        },
        ChargeOutcome::Retryable {
            attempt,
            code: "timeout".to_string(),
            message: "timed out".to_string(),
            retry_at_ns: f.now_ns,
        },
        ChargeOutcome::Captured {
            psp_charge_id: "ch_o1".to_string(),
            amount_minor: 1_000,
        },
    ] {
        assert_eq!(f.record("o1", late).code(), "unchanged");
    }
    assert_eq!(f.order_state("c1", "o1"), OrderState::Succeeded);
    assert_eq!(
        f.held("s1"),
        held,
        "a duplicate capture must not post twice"
    );
}

#[test]
fn a_live_lease_keeps_other_executors_out_and_a_stale_attempt_cannot_schedule_a_retry() {
    let mut f = Fixture::new();
    let new = f.new_payment("c1", card(), CaptureMode::Automatic, &[("o1", "s1", 1_000)]);
    f.create(new);
    assert_eq!(f.claim("o1"), 1);
    let code = f.payment_err(PaymentCommand::ClaimOrder {
        order_id: order_id("o1"),
        lease_ms: 30_000,
    });
    assert_eq!(code, "lease_held");
    f.now_ns += 31 * NANOS_PER_SECOND;
    assert_eq!(
        f.claim("o1"),
        2,
        "an expired lease passes to the next executor"
    );
    let stale = f.record(
        "o1",
        ChargeOutcome::Retryable {
            attempt: 1,
            code: "timeout".to_string(),
            message: "timed out".to_string(),
            retry_at_ns: f.now_ns,
        },
    );
    assert_eq!(stale.code(), "unchanged");
    let current = f.record(
        "o1",
        ChargeOutcome::Retryable {
            attempt: 2,
            code: "timeout".to_string(),
            message: "timed out".to_string(),
            retry_at_ns: f.now_ns + 5 * NANOS_PER_SECOND,
        },
    );
    assert_eq!(current.code(), "ok");
    assert!(matches!(
        f.order_state("c1", "o1"),
        OrderState::RetryScheduled { .. }
    ));
    let code = f.payment_err(PaymentCommand::ClaimOrder {
        order_id: order_id("o1"),
        lease_ms: 30_000,
    });
    assert_eq!(code, "lease_held", "a retry waits for its backoff");
    f.now_ns += 5 * NANOS_PER_SECOND;
    assert_eq!(f.claim("o1"), 3);
}

#[test]
fn orders_due_lists_work_for_executors_and_the_sweeper() {
    let mut f = Fixture::new();
    let new = f.new_payment(
        "c1",
        card(),
        CaptureMode::Automatic,
        &[("o1", "s1", 1_000), ("o2", "s2", 1_000)],
    );
    f.create(new);
    let due = f.store.orders_due(f.now_ns, 10);
    assert_eq!(due.len(), 2);
    f.claim("o1");
    let due: Vec<OrderId> = f
        .store
        .orders_due(f.now_ns, 10)
        .into_iter()
        .map(|(_, o)| o)
        .collect();
    assert_eq!(due, vec![order_id("o2")], "a live lease is not due");
    let later: Vec<OrderId> = f
        .store
        .orders_due(f.now_ns + 60 * NANOS_PER_SECOND, 10)
        .into_iter()
        .map(|(_, o)| o)
        .collect();
    assert!(
        later.contains(&order_id("o1")),
        "an expired lease is due for the sweeper"
    );
    f.captured("o1", 1_000);
    let later = f.store.orders_due(u64::MAX, 10);
    assert!(
        later.iter().all(|(_, o)| o != &order_id("o1")),
        "a final order is never due"
    );
}

#[test]
fn risk_declined_checkout_is_recorded_as_failed_and_moves_no_money() {
    let mut f = Fixture::new();
    let mut new = f.new_payment("c1", card(), CaptureMode::Automatic, &[("o1", "s1", 1_000)]);
    new.risk = RiskRecord {
        outcome: RiskOutcome::Decline,
        flagged: false,
        reasons: vec!["velocity_buyer".to_string()],
    };
    let payment = f.create(new);
    assert_eq!(payment.status(), PaymentStatus::Failed);
    assert_eq!(payment.risk.reasons, vec!["velocity_buyer".to_string()]);
    let code = f.payment_err(PaymentCommand::ClaimOrder {
        order_id: order_id("o1"),
        lease_ms: 1_000,
    });
    assert_eq!(code, "not_claimable");
}

#[test]
fn risk_review_checkout_is_recorded_as_failed_for_review_and_never_charged() {
    let mut f = Fixture::new();
    let mut new = f.new_payment("c1", card(), CaptureMode::Automatic, &[("o1", "s1", 1_000)]);
    new.risk = RiskRecord {
        outcome: RiskOutcome::Review,
        flagged: true,
        reasons: vec!["velocity_buyer".to_string()],
    };
    let payment = f.create(new);
    assert_eq!(payment.status(), PaymentStatus::Failed);
    let order = &payment.orders[0];
    assert_eq!(
        order.last_error.as_ref().map(|e| e.code.as_str()),
        Some("risk_review")
    );
    let code = f.payment_err(PaymentCommand::ClaimOrder {
        order_id: order_id("o1"),
        lease_ms: 1_000,
    });
    assert_eq!(code, "not_claimable");
}

#[test]
fn create_payment_is_idempotent_by_checkout_and_checks_its_parties() {
    let mut f = Fixture::new();
    let new = f.new_payment("c1", card(), CaptureMode::Automatic, &[("o1", "s1", 1_000)]);
    f.create(new.clone());
    let retry = f.payment_ok(PaymentCommand::CreatePayment(new.clone()));
    assert_eq!(retry.code(), "unchanged");
    let mut different = new.clone();
    different.request_hash = [9; 32];
    assert_eq!(
        f.payment_err(PaymentCommand::CreatePayment(different)),
        "checkout_exists_with_different_request"
    );
    let taken = f.new_payment("c2", card(), CaptureMode::Automatic, &[("o1", "s1", 1_000)]);
    assert_eq!(
        f.payment_err(PaymentCommand::CreatePayment(taken)),
        "order_id_taken"
    );
    let twice = f.new_payment(
        "c3",
        card(),
        CaptureMode::Automatic,
        &[("o5", "s1", 1), ("o5", "s2", 1)],
    );
    assert_eq!(
        f.payment_err(PaymentCommand::CreatePayment(twice)),
        "duplicate_order_id"
    );
    let unknown = f.new_payment("c4", card(), CaptureMode::Automatic, &[("o6", "nobody", 1)]);
    assert_eq!(
        f.payment_err(PaymentCommand::CreatePayment(unknown)),
        "seller_not_found"
    );
    let zero = f.new_payment("c5", card(), CaptureMode::Automatic, &[("o7", "s1", 0)]);
    assert_eq!(
        f.payment_err(PaymentCommand::CreatePayment(zero)),
        "amount_must_not_be_zero"
    );
    let none = f.new_payment("c6", card(), CaptureMode::Automatic, &[]);
    assert_eq!(
        f.payment_err(PaymentCommand::CreatePayment(none)),
        "order_count"
    );
    let wallet_manual = f.new_payment(
        "c7",
        Some(PaymentMethod::Wallet),
        CaptureMode::Manual,
        &[("o8", "s1", 1)],
    );
    assert_eq!(
        f.payment_err(PaymentCommand::CreatePayment(wallet_manual)),
        "wallet_payments_capture_automatically"
    );
    assert!(
        f.store.payment(&checkout_id("c4")).is_none(),
        "a refused checkout leaves nothing"
    );
}

#[test]
fn cancel_is_allowed_before_execution_and_after_authorization_only() {
    let mut f = Fixture::new();
    let new = f.new_payment(
        "c1",
        card(),
        CaptureMode::Manual,
        &[
            ("o1", "s1", 1_000),
            ("o2", "s2", 1_000),
            ("o3", "s3", 1_000),
        ],
    );
    f.create(new);
    f.payment_ok(PaymentCommand::CancelOrder {
        order_id: order_id("o1"),
    });
    f.claim("o2");
    assert_eq!(
        f.payment_err(PaymentCommand::CancelOrder {
            order_id: order_id("o2")
        }),
        "invalid_transition",
        "an executing order may already be charged"
    );
    f.claim("o3");
    f.record(
        "o3",
        ChargeOutcome::Authorized {
            psp_charge_id: "ch_3".to_string(),
            amount_minor: 1_000,
        },
    );
    f.payment_ok(PaymentCommand::CancelOrder {
        order_id: order_id("o3"),
    });
    assert_eq!(f.order_state("c1", "o3"), OrderState::Canceled);
}

#[test]
fn derived_ids_are_reserved_for_the_ledger() {
    let mut f = Fixture::new();
    let reserved = chart::RESERVED_ID_MIN + 5;
    let results = f.run(vec![
        Command::CreateAccount(NewAccount {
            id: AccountId(reserved),
            currency: USD,
            code: 1,
            flags: AccountFlags::NONE,
            metadata: Metadata::default(),
            linked: false,
        }),
        Command::CreateTransfer(NewTransfer {
            id: TransferId(reserved),
            kind: TransferKind::Single {
                debit_account_id: AccountId(1),
                credit_account_id: AccountId(2),
                amount_minor: 1,
                currency: USD,
            },
            code: 1,
            metadata: Metadata::default(),
            linked: false,
        }),
    ]);
    let codes: Vec<&str> = results.iter().map(CommandResult::code).collect();
    assert_eq!(codes, vec!["id_reserved", "id_reserved"]);
}

#[test]
fn a_payment_command_cannot_join_a_linked_chain() {
    let mut f = Fixture::new();
    let results = f.run(vec![
        Command::CreateAccount(NewAccount {
            id: AccountId(5),
            currency: USD,
            code: 1,
            flags: AccountFlags::NONE,
            metadata: Metadata::default(),
            linked: true,
        }),
        Command::Payment(Box::new(PaymentCommand::CreateBuyer(NewBuyer {
            id: BuyerId::new("b2").unwrap(),
            wallet_currencies: vec![],
        }))),
    ]);
    let codes: Vec<&str> = results.iter().map(CommandResult::code).collect();
    assert_eq!(codes, vec!["linked_event_failed", "cannot_be_linked"]);
    assert!(f.store.account(AccountId(5)).is_none());
}

#[test]
fn fees_are_basis_points_plus_fixed_and_never_above_the_amount() {
    let fees = FeeSchedule {
        bps: 290,
        fixed_minor: BTreeMap::from([(USD, 30)]),
    };
    assert_eq!(fees.fee_minor(10_000, USD), 290 + 30);
    assert_eq!(fees.fee_minor(10, USD), 10, "capped at the amount");
    assert_eq!(
        fees.fee_minor(10_000, Currency::EUR),
        290,
        "no fixed fee set for EUR"
    );
    let mut f = Fixture::new();
    let code = f.payment_err(PaymentCommand::UpdateMerchantFees {
        merchant_id: merchant_id("s1"),
        fees: FeeSchedule {
            bps: 10_001,
            fixed_minor: BTreeMap::new(),
        },
        hold_period_s: 0,
    });
    assert_eq!(code, "fee_bps_too_high");
}

fn signing_secret(fill: u8) -> tally_ledger::payment::SigningSecret {
    tally_ledger::payment::SigningSecret::new(vec![fill; 32]).unwrap()
}

#[test]
fn a_signing_secret_rotation_keeps_the_previous_one_only_when_asked_and_never_on_a_revoked_key() {
    use tally_ledger::payment::{ApiKeyId, PaymentOutcome};
    let mut f = Fixture::new();
    let key_id = ApiKeyId::new("k1").unwrap();
    let secrets_of = |outcome: PaymentOutcome| match outcome {
        PaymentOutcome::Merchant { merchant, .. } => merchant.api_keys[0].signing_secrets.clone(),
        other => panic!("unexpected outcome {other:?}"),
    };
    let added = f.payment_ok(PaymentCommand::AddApiKey {
        merchant_id: merchant_id("platform"),
        key_id: key_id.clone(),
        secret_hash: [7; 32],
        signing_secret: signing_secret(1),
    });
    assert_eq!(secrets_of(added), vec![signing_secret(1)]);
    let rotate = |secret: u8, keep_previous: bool| PaymentCommand::RotateSigningSecret {
        merchant_id: merchant_id("platform"),
        key_id: key_id.clone(),
        signing_secret: signing_secret(secret),
        keep_previous,
    };
    let kept = f.payment_ok(rotate(2, true));
    assert_eq!(secrets_of(kept), vec![signing_secret(2), signing_secret(1)]);
    // A retry of the same rotation changes nothing.
    let retried = f.payment_ok(rotate(2, true));
    assert_eq!(
        secrets_of(retried),
        vec![signing_secret(2), signing_secret(1)]
    );
    let dropped = f.payment_ok(rotate(3, false));
    assert_eq!(secrets_of(dropped), vec![signing_secret(3)]);
    f.payment_ok(PaymentCommand::RevokeApiKey {
        merchant_id: merchant_id("platform"),
        key_id: key_id.clone(),
    });
    assert_eq!(f.payment_err(rotate(4, false)), "api_key_revoked");
    let unknown = PaymentCommand::RotateSigningSecret {
        merchant_id: merchant_id("platform"),
        key_id: ApiKeyId::new("k9").unwrap(),
        signing_secret: signing_secret(5),
        keep_previous: false,
    };
    assert_eq!(f.payment_err(unknown), "api_key_not_found");
}

#[test]
fn queries_find_payments_by_order_merchants_by_api_key_and_list_newest_first() {
    use tally_ledger::payment::{query_payments, ApiKeyId, PaymentQuery, PaymentQueryResult};
    let mut f = Fixture::new();
    f.payment_ok(PaymentCommand::AddApiKey {
        merchant_id: merchant_id("platform"),
        key_id: ApiKeyId::new("k1").unwrap(),
        secret_hash: [7; 32],
        signing_secret: signing_secret(1),
    });
    // A key id is global: another merchant cannot take it.
    let code = f.payment_err(PaymentCommand::AddApiKey {
        merchant_id: merchant_id("s1"),
        key_id: ApiKeyId::new("k1").unwrap(),
        secret_hash: [8; 32],
        signing_secret: signing_secret(2),
    });
    assert_eq!(code, "api_key_exists");
    for (checkout, order) in [("c1", "o1"), ("c2", "o2"), ("c3", "o3")] {
        let new = f.new_payment(
            checkout,
            card(),
            CaptureMode::Automatic,
            &[(order, "s1", 100)],
        );
        f.create(new);
    }
    let by_key = query_payments(
        &f.store,
        &PaymentQuery::MerchantByApiKey {
            key_id: ApiKeyId::new("k1").unwrap(),
        },
    );
    let PaymentQueryResult::Merchant(Some(merchant)) = by_key else {
        panic!("merchant by key: {by_key:?}")
    };
    assert_eq!(merchant.id, merchant_id("platform"));
    let of_order = query_payments(
        &f.store,
        &PaymentQuery::PaymentOfOrder {
            order_id: order_id("o2"),
        },
    );
    let PaymentQueryResult::Payment(Some(payment)) = of_order else {
        panic!("payment of order: {of_order:?}")
    };
    assert_eq!(payment.checkout_id, checkout_id("c2"));

    let mut seen = Vec::new();
    let mut before = None;
    for _ in 0..3 {
        let page = query_payments(
            &f.store,
            &PaymentQuery::MerchantPayments {
                merchant_id: merchant_id("platform"),
                before: before.clone(),
                limit: 2,
            },
        );
        let PaymentQueryResult::MerchantPayments { payments, next } = page else {
            panic!("list: {page:?}")
        };
        seen.extend(payments.into_iter().map(|p| p.checkout_id.to_string()));
        before = next;
        if before.is_none() {
            break;
        }
    }
    assert_eq!(seen, vec!["c3", "c2", "c1"]);
}
