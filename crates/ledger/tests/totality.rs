//! `apply` is total: client-reachable sequences that once stopped every replica (a panic in
//! apply, replayed after every restart) now get a coded refusal, and a bug that does panic
//! inside one command costs that command only.

mod fixture;

use fixture::*;
use tally_ledger::limits::NANOS_PER_SECOND;
use tally_ledger::payment::chart;
use tally_ledger::payment::{
    BuyerId, CaptureMode, PaymentCommand, PaymentStatus, PspName, RefundId,
};
use tally_ledger::{
    apply_with_bugs, audit, AccountFlags, AccountId, CloseAccount, Command, CommandResult,
    LedgerRead, MemStore, Metadata, NewAccount, NewTransfer, PlantedBugs, TransferId, TransferKind,
    PLANTED_PANIC_CODE,
};

fn close(id: AccountId) -> Command {
    Command::CloseAccount(CloseAccount { id, linked: false })
}

fn single(id: u128, debit: AccountId, credit: AccountId, amount_minor: u64) -> Command {
    transfer(
        id,
        TransferKind::Single {
            debit_account_id: debit,
            credit_account_id: credit,
            amount_minor,
            currency: USD,
        },
    )
}

fn transfer(id: u128, kind: TransferKind) -> Command {
    Command::CreateTransfer(NewTransfer {
        id: TransferId(id),
        kind,
        code: 9,
        metadata: Metadata::default(),
        linked: false,
    })
}

fn account(id: u128) -> Command {
    Command::CreateAccount(NewAccount {
        id: AccountId(id),
        currency: USD,
        code: 9,
        flags: AccountFlags::NONE,
        metadata: Metadata::default(),
        linked: false,
    })
}

/// The ledger goes on: an ordinary transfer between new accounts applies.
fn assert_still_applies(f: &mut Fixture) {
    let results = f.run(vec![
        account(1),
        account(2),
        single(10, AccountId(1), AccountId(2), 5),
    ]);
    assert_eq!(codes(&results), ["ok", "ok", "ok"]);
}

fn codes(results: &[CommandResult]) -> Vec<&'static str> {
    results.iter().map(CommandResult::code).collect()
}

/// Issue 16, reproduction 1: a client closed a seller's derived held account; when the hold
/// period ended, the release panicked on every replica, after every restart.
#[test]
fn closing_a_sellers_held_account_is_refused_and_the_hold_period_still_releases() {
    let mut f = Fixture::new();
    f.captured_card_payment("c1", "o1", "s1", 10_000);
    let held = chart::merchant_held(&merchant_id("s1"), USD);
    let results = f.run(vec![close(held)]);
    assert_eq!(codes(&results), ["id_reserved"]);
    assert!(f.store.account(held).unwrap().closed_at_ns.is_none());

    f.now_ns += 86_400 * NANOS_PER_SECOND;
    let applied = f.store.apply(&[], f.now_ns + NANOS_PER_SECOND).unwrap();
    assert_eq!(applied.released, vec![order_id("o1")]);
    assert!(applied.faults.is_empty(), "{:?}", applied.faults);
    audit(&f.store).unwrap();
    assert_eq!(f.held("s1"), 0);
    // The cluster goes on: an ordinary transfer applies afterwards.
    assert_still_applies(&mut f);
}

/// Issue 16, reproduction 2: an intent canceled, then confirmed, panicked in apply.
#[test]
fn a_canceled_intent_is_canceled_and_cannot_be_confirmed() {
    let mut f = Fixture::new();
    let new = f.new_payment("c1", None, CaptureMode::Automatic, &[("o1", "s1", 1_000)]);
    f.create(new);
    f.payment_ok(PaymentCommand::CancelOrder {
        order_id: order_id("o1"),
    });
    assert_eq!(f.payment_record("c1").status(), PaymentStatus::Canceled);
    let code = f.payment_err(PaymentCommand::ConfirmPayment {
        checkout_id: checkout_id("c1"),
        method: card().unwrap(),
    });
    assert_eq!(code, "payment_invalid_transition");
    assert_eq!(f.payment_record("c1").status(), PaymentStatus::Canceled);
    assert_still_applies(&mut f);
}

#[test]
fn a_charge_outcome_for_an_unconfirmed_intent_is_refused() {
    let mut f = Fixture::new();
    let new = f.new_payment("c1", None, CaptureMode::Automatic, &[("o1", "s1", 1_000)]);
    f.create(new);
    let code = f.payment_err(PaymentCommand::RecordChargeOutcome {
        order_id: order_id("o1"),
        outcome: tally_ledger::payment::ChargeOutcome::Captured {
            psp_charge_id: "ch_1".to_string(),
            amount_minor: 1_000,
        },
        event_id: None,
    });
    assert_eq!(code, "not_confirmed");
    assert_eq!(f.held("s1"), 0);
}

#[test]
fn client_transfers_cannot_touch_derived_accounts_but_may_top_up_a_wallet() {
    let mut f = Fixture::new();
    f.captured_card_payment("c1", "o1", "s1", 10_000);
    let held = chart::merchant_held(&merchant_id("s1"), USD);
    let receivable = chart::psp_receivable(&PspName::new("sim").unwrap(), USD);
    let fees = chart::platform_fees(USD);
    let wallet = chart::buyer_wallet(&BuyerId::new("b1").unwrap(), USD);
    let mine = AccountId(1);
    f.run(vec![account(1)]);
    let results = f.run(vec![
        single(10, held, mine, 100),
        single(11, receivable, mine, 100),
        single(12, mine, held, 100),
        single(13, mine, fees, 100),
        transfer(
            14,
            TransferKind::Pending {
                debit_account_id: held,
                credit_account_id: mine,
                amount_minor: 100,
                currency: USD,
                timeout_s: 0,
            },
        ),
        close(fees),
        close(wallet),
        single(15, mine, wallet, 100),
    ]);
    assert_eq!(
        codes(&results),
        [
            "debit_account_reserved",
            "debit_account_reserved",
            "credit_account_reserved",
            "credit_account_reserved",
            "debit_account_reserved",
            "id_reserved",
            "id_reserved",
            "ok",
        ]
    );
    // Refused for the request alone, not recorded: the ids stay free.
    assert!(f.store.transfer(TransferId(10)).is_none());
}

#[test]
fn client_cannot_post_or_void_a_refunds_hold() {
    let mut f = Fixture::new();
    f.captured_card_payment("c1", "o1", "s1", 10_000);
    f.begin_refund("o1", "r1", 1_000);
    let refund = RefundId::new("r1").unwrap();
    let hold = chart::refund_transfer("refund", &order_id("o1"), &refund);
    let results = f.run(vec![
        transfer(20, TransferKind::VoidPending { pending_id: hold }),
        transfer(
            21,
            TransferKind::PostPending {
                pending_id: hold,
                amount_minor: None,
            },
        ),
    ]);
    assert_eq!(
        codes(&results),
        ["pending_id_reserved", "pending_id_reserved"]
    );
    assert_eq!(f.complete_refund("o1", "r1", true).code(), "ok");
}

/// A failed refund gives its fee share back, after which the proportional share of the next
/// refund can fall below what is already committed: a u64 underflow in apply (found by the
/// fuzzer, `fuzz_apply.rs`).
#[test]
fn refund_fee_shares_stay_in_range_after_a_failed_refund() {
    let mut f = Fixture::new();
    // 2.5% + 30 cents of 10.00 is a fee of 55.
    f.captured_card_payment("c1", "o1", "s1", 1_000);
    f.begin_refund("o1", "a", 10); // share of the fee: 55 * 10 / 1000 = 0
    f.begin_refund("o1", "b", 15); // 55 * 25 / 1000 = 1, so 1
    f.complete_refund("o1", "a", false);
    // 55 * 16 / 1000 = 0, below the 1 already committed.
    f.begin_refund("o1", "d", 1);
    f.begin_refund("o1", "e", 3);
    let order = f
        .payment_record("c1")
        .order(&order_id("o1"))
        .unwrap()
        .clone();
    for refund in &order.refunds {
        assert!(refund.fee_share_minor <= refund.amount_minor, "{refund:?}");
    }
    // Refund the rest: the seller's held funds and the fee cover it exactly.
    let left = 1_000 - order.refund_committed_minor();
    f.begin_refund("o1", "rest", left);
    for id in ["b", "d", "e", "rest"] {
        assert_eq!(f.complete_refund("o1", id, true).code(), "ok");
    }
    assert_eq!(f.held("s1"), 0);
    assert_eq!(f.fees(), 0);
}

/// Defense in depth: a command that panics in apply is rolled back and answers
/// `internal_error`; the rest of the batch applies, invariants hold, and two replicas applying
/// the same batch end with the same hash chain.
#[test]
fn a_panicking_command_costs_only_itself() {
    let bugs = PlantedBugs {
        panic_in_apply: true,
        ..PlantedBugs::NONE
    };
    let setup = [
        account(1),
        account(2),
        single(10, AccountId(1), AccountId(2), 7),
    ];
    let mut panicking = single(11, AccountId(1), AccountId(2), 500);
    if let Command::CreateTransfer(new) = &mut panicking {
        new.code = PLANTED_PANIC_CODE;
    }
    let batch = [panicking.clone(), single(12, AccountId(2), AccountId(1), 3)];
    let mut replicas = [MemStore::new(), MemStore::new()];
    let mut chains = Vec::new();
    for store in &mut replicas {
        let applied = apply_with_bugs(&*store, &setup, T0, bugs).unwrap();
        store.commit(applied.changes);
        let applied = apply_with_bugs(&*store, &batch, T0 + 1, bugs).unwrap();
        assert_eq!(codes(&applied.results), ["internal_error", "ok"]);
        assert_eq!(applied.faults.len(), 1);
        assert!(applied.faults[0].message.contains("planted panic"));
        store.commit(applied.changes);
        audit(&*store).unwrap();
        // Nothing of the panicking transfer: no record, balances from the others only.
        assert!(store.transfer(TransferId(11)).is_none());
        let one = store.account(AccountId(1)).unwrap().balances;
        assert_eq!((one.debits_posted, one.credits_posted), (7, 3));
        chains.push(store.meta().hash_chain);
    }
    assert_eq!(chains[0], chains[1]);

    // The same panic inside a linked chain rolls back the whole chain.
    let mut linked = single(13, AccountId(1), AccountId(2), 1);
    if let Command::CreateTransfer(new) = &mut linked {
        new.linked = true;
    }
    let store = &mut replicas[0];
    let applied = apply_with_bugs(&*store, &[linked, panicking], T0 + 2, bugs).unwrap();
    assert_eq!(
        codes(&applied.results),
        ["internal_error", "internal_error"]
    );
    store.commit(applied.changes);
    audit(&*store).unwrap();
    assert!(store.transfer(TransferId(13)).is_none());
}
