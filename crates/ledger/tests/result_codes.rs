//! One test per result code `apply` can answer, each named after the rule it proves.

use tally_ledger::limits::{
    BATCH_COMMANDS_MAX, IDEMPOTENCY_LEASE_MS_MAX, IDEMPOTENCY_RESPONSE_BYTES_MAX,
    IDEMPOTENCY_RETAIN_MS_MAX, NANOS_PER_SECOND,
};
use tally_ledger::{
    audit, AccountFlags, AccountId, BeginIdempotent, CloseAccount, Command, CommandResult,
    CompleteIdempotent, Currency, IdempotencyBegun, IdempotencyKey, LedgerRead, MemStore, Metadata,
    NewAccount, NewTransfer, TransferId, TransferKind, TransferRecord,
};

const T0: u64 = 1_700_000_000 * NANOS_PER_SECOND;

const BANK: u128 = 1;
const WALLET: u128 = 2;
const SHOP: u128 = 3;
const YEN: u128 = 4;
const ASSET: u128 = 5;

fn account(id: u128, currency: Currency, flags: AccountFlags) -> NewAccount {
    NewAccount {
        id: AccountId(id),
        currency,
        code: 1,
        flags,
        metadata: Metadata::default(),
        linked: false,
    }
}

fn single(id: u128, debit: u128, credit: u128, amount_minor: u64) -> NewTransfer {
    NewTransfer {
        id: TransferId(id),
        kind: TransferKind::Single {
            debit_account_id: AccountId(debit),
            credit_account_id: AccountId(credit),
            amount_minor,
            currency: Currency::USD,
        },
        code: 1,
        metadata: Metadata::default(),
        linked: false,
    }
}

fn pending(id: u128, debit: u128, credit: u128, amount_minor: u64, timeout_s: u32) -> NewTransfer {
    NewTransfer {
        kind: TransferKind::Pending {
            debit_account_id: AccountId(debit),
            credit_account_id: AccountId(credit),
            amount_minor,
            currency: Currency::USD,
            timeout_s,
        },
        ..single(id, debit, credit, amount_minor)
    }
}

fn post(id: u128, pending_id: u128, amount_minor: Option<u64>) -> NewTransfer {
    NewTransfer {
        kind: TransferKind::PostPending {
            pending_id: TransferId(pending_id),
            amount_minor,
        },
        ..single(id, 0, 0, 0)
    }
}

fn void(id: u128, pending_id: u128) -> NewTransfer {
    NewTransfer {
        kind: TransferKind::VoidPending {
            pending_id: TransferId(pending_id),
        },
        ..single(id, 0, 0, 0)
    }
}

fn linked(mut transfer: NewTransfer) -> NewTransfer {
    transfer.linked = true;
    transfer
}

/// A ledger with a USD bank (no limits), a USD wallet and shop that cannot be overdrawn, a JPY
/// account, and a USD asset whose credits may not exceed its debits. The wallet holds 100.00.
struct Fixture {
    store: MemStore,
    now_ns: u64,
}

impl Fixture {
    fn new() -> Self {
        let mut fixture = Fixture {
            store: MemStore::new(),
            now_ns: T0,
        };
        let asset_flags = AccountFlags {
            debits_must_not_exceed_credits: false,
            credits_must_not_exceed_debits: true,
        };
        fixture.ok(vec![
            Command::CreateAccount(account(BANK, Currency::USD, AccountFlags::NONE)),
            Command::CreateAccount(account(WALLET, Currency::USD, AccountFlags::NO_OVERDRAFT)),
            Command::CreateAccount(account(SHOP, Currency::USD, AccountFlags::NO_OVERDRAFT)),
            Command::CreateAccount(account(YEN, Currency::JPY, AccountFlags::NONE)),
            Command::CreateAccount(account(ASSET, Currency::USD, asset_flags)),
            Command::CreateTransfer(single(100, BANK, WALLET, 10_000)),
        ]);
        fixture
    }

    fn run_at(&mut self, commands: Vec<Command>, timestamp_ns: u64) -> Vec<CommandResult> {
        let applied = self
            .store
            .apply(&commands, timestamp_ns)
            .expect("batch within bounds");
        audit(&self.store).expect("invariants hold after every batch");
        applied.results
    }

    fn run(&mut self, commands: Vec<Command>) -> Vec<CommandResult> {
        self.now_ns += NANOS_PER_SECOND;
        self.run_at(commands, self.now_ns)
    }

    fn ok(&mut self, commands: Vec<Command>) {
        for result in self.run(commands) {
            assert!(result.is_ok(), "expected success, got {result:?}");
        }
    }

    fn code(&mut self, command: Command) -> &'static str {
        self.run(vec![command])[0].code()
    }

    fn transfer_code(&mut self, transfer: NewTransfer) -> &'static str {
        self.code(Command::CreateTransfer(transfer))
    }

    fn account_code(&mut self, account: NewAccount) -> &'static str {
        self.code(Command::CreateAccount(account))
    }

    fn balances(&self, id: u128) -> tally_ledger::Balances {
        self.store
            .account(AccountId(id))
            .expect("account exists")
            .balances
    }
}

// ---- accounts -------------------------------------------------------------------------------

#[test]
fn account_is_created_with_zero_balances() {
    let mut f = Fixture::new();
    assert_eq!(
        f.account_code(account(10, Currency::EUR, AccountFlags::NONE)),
        "ok"
    );
    assert_eq!(f.balances(10), tally_ledger::Balances::ZERO);
}

#[test]
fn account_created_twice_with_same_fields_answers_exists() {
    let mut f = Fixture::new();
    assert_eq!(
        f.account_code(account(BANK, Currency::USD, AccountFlags::NONE)),
        "exists"
    );
}

#[test]
fn account_id_must_not_be_zero() {
    assert_eq!(
        Fixture::new().account_code(account(0, Currency::USD, AccountFlags::NONE)),
        "id_must_not_be_zero"
    );
}

#[test]
fn account_id_must_not_be_int_max() {
    let code = Fixture::new().account_code(account(u128::MAX, Currency::USD, AccountFlags::NONE));
    assert_eq!(code, "id_must_not_be_int_max");
}

#[test]
fn account_flags_are_mutually_exclusive() {
    let both = AccountFlags {
        debits_must_not_exceed_credits: true,
        credits_must_not_exceed_debits: true,
    };
    assert_eq!(
        Fixture::new().account_code(account(10, Currency::USD, both)),
        "flags_are_mutually_exclusive"
    );
}

#[test]
fn account_exists_with_different_currency() {
    let code = Fixture::new().account_code(account(BANK, Currency::EUR, AccountFlags::NONE));
    assert_eq!(code, "exists_with_different_currency");
}

#[test]
fn account_exists_with_different_code() {
    let code = Fixture::new().account_code(NewAccount {
        code: 2,
        ..account(BANK, Currency::USD, AccountFlags::NONE)
    });
    assert_eq!(code, "exists_with_different_code");
}

#[test]
fn account_exists_with_different_flags() {
    let code =
        Fixture::new().account_code(account(BANK, Currency::USD, AccountFlags::NO_OVERDRAFT));
    assert_eq!(code, "exists_with_different_flags");
}

#[test]
fn account_exists_with_different_metadata() {
    let code = Fixture::new().account_code(NewAccount {
        metadata: Metadata::from_pairs([("owner", "x")]).unwrap(),
        ..account(BANK, Currency::USD, AccountFlags::NONE)
    });
    assert_eq!(code, "exists_with_different_metadata");
}

#[test]
fn closing_an_account_is_final_and_idempotent() {
    let mut f = Fixture::new();
    assert_eq!(
        f.code(Command::CloseAccount(CloseAccount {
            id: AccountId(SHOP),
            linked: false
        })),
        "ok"
    );
    assert_eq!(
        f.code(Command::CloseAccount(CloseAccount {
            id: AccountId(SHOP),
            linked: false
        })),
        "already_closed"
    );
}

#[test]
fn closing_an_unknown_account_is_account_not_found() {
    let code = Fixture::new().code(Command::CloseAccount(CloseAccount {
        id: AccountId(99),
        linked: false,
    }));
    assert_eq!(code, "account_not_found");
}

// ---- transfers: validation ------------------------------------------------------------------

#[test]
fn transfer_moves_money_from_debit_to_credit() {
    let mut f = Fixture::new();
    assert_eq!(f.transfer_code(single(1, WALLET, SHOP, 2_500)), "ok");
    assert_eq!(f.balances(WALLET).credit_available(), 7_500);
    assert_eq!(f.balances(SHOP).credits_posted, 2_500);
}

#[test]
fn transfer_id_must_not_be_zero() {
    assert_eq!(
        Fixture::new().transfer_code(single(0, BANK, SHOP, 1)),
        "id_must_not_be_zero"
    );
}

#[test]
fn transfer_id_must_not_be_int_max() {
    assert_eq!(
        Fixture::new().transfer_code(single(u128::MAX, BANK, SHOP, 1)),
        "id_must_not_be_int_max"
    );
}

#[test]
fn debit_account_id_must_not_be_zero() {
    assert_eq!(
        Fixture::new().transfer_code(single(1, 0, SHOP, 1)),
        "debit_account_id_must_not_be_zero"
    );
}

#[test]
fn debit_account_id_must_not_be_int_max() {
    let code = Fixture::new().transfer_code(single(1, u128::MAX, SHOP, 1));
    assert_eq!(code, "debit_account_id_must_not_be_int_max");
}

#[test]
fn credit_account_id_must_not_be_zero() {
    assert_eq!(
        Fixture::new().transfer_code(single(1, BANK, 0, 1)),
        "credit_account_id_must_not_be_zero"
    );
}

#[test]
fn credit_account_id_must_not_be_int_max() {
    let code = Fixture::new().transfer_code(single(1, BANK, u128::MAX, 1));
    assert_eq!(code, "credit_account_id_must_not_be_int_max");
}

#[test]
fn accounts_must_be_different() {
    assert_eq!(
        Fixture::new().transfer_code(single(1, BANK, BANK, 1)),
        "accounts_must_be_different"
    );
}

#[test]
fn amount_must_not_be_zero() {
    let mut f = Fixture::new();
    assert_eq!(
        f.transfer_code(single(1, BANK, SHOP, 0)),
        "amount_must_not_be_zero"
    );
    assert_eq!(f.transfer_code(pending(2, BANK, SHOP, 5, 0)), "ok");
    assert_eq!(
        f.transfer_code(post(3, 2, Some(0))),
        "amount_must_not_be_zero"
    );
}

#[test]
fn pending_id_must_not_be_zero() {
    assert_eq!(
        Fixture::new().transfer_code(void(1, 0)),
        "pending_id_must_not_be_zero"
    );
}

#[test]
fn pending_id_must_not_be_int_max() {
    assert_eq!(
        Fixture::new().transfer_code(post(1, u128::MAX, None)),
        "pending_id_must_not_be_int_max"
    );
}

#[test]
fn pending_id_must_be_different() {
    assert_eq!(
        Fixture::new().transfer_code(post(7, 7, None)),
        "pending_id_must_be_different"
    );
}

// ---- transfers: against state ----------------------------------------------------------------

#[test]
fn debit_account_not_found() {
    assert_eq!(
        Fixture::new().transfer_code(single(1, 99, SHOP, 1)),
        "debit_account_not_found"
    );
}

#[test]
fn credit_account_not_found() {
    assert_eq!(
        Fixture::new().transfer_code(single(1, BANK, 99, 1)),
        "credit_account_not_found"
    );
}

#[test]
fn accounts_must_have_the_same_currency() {
    assert_eq!(
        Fixture::new().transfer_code(single(1, BANK, YEN, 1)),
        "accounts_must_have_the_same_currency"
    );
}

#[test]
fn transfer_currency_must_match_accounts() {
    let mut transfer = single(1, BANK, SHOP, 1);
    if let TransferKind::Single { currency, .. } = &mut transfer.kind {
        *currency = Currency::EUR;
    }
    assert_eq!(
        Fixture::new().transfer_code(transfer),
        "transfer_currency_must_match_accounts"
    );
}

#[test]
fn debit_account_closed() {
    let mut f = Fixture::new();
    f.ok(vec![Command::CloseAccount(CloseAccount {
        id: AccountId(WALLET),
        linked: false,
    })]);
    assert_eq!(
        f.transfer_code(single(1, WALLET, SHOP, 1)),
        "debit_account_closed"
    );
}

#[test]
fn credit_account_closed() {
    let mut f = Fixture::new();
    f.ok(vec![Command::CloseAccount(CloseAccount {
        id: AccountId(SHOP),
        linked: false,
    })]);
    assert_eq!(
        f.transfer_code(single(1, WALLET, SHOP, 1)),
        "credit_account_closed"
    );
}

#[test]
fn exceeds_credits_refuses_an_overdraft_including_holds() {
    let mut f = Fixture::new();
    assert_eq!(
        f.transfer_code(single(1, WALLET, SHOP, 10_001)),
        "exceeds_credits"
    );
    assert_eq!(f.transfer_code(pending(2, WALLET, SHOP, 6_000, 0)), "ok");
    // The hold reduces what the wallet can spend: 100.00 - 60.00 held leaves 40.00.
    assert_eq!(
        f.transfer_code(single(3, WALLET, SHOP, 4_001)),
        "exceeds_credits"
    );
    assert_eq!(f.transfer_code(single(4, WALLET, SHOP, 4_000)), "ok");
    assert_eq!(f.balances(WALLET).credit_available(), 0);
}

#[test]
fn exceeds_debits_refuses_credits_beyond_debits() {
    let mut f = Fixture::new();
    assert_eq!(f.transfer_code(single(1, BANK, ASSET, 1)), "exceeds_debits");
    assert_eq!(f.transfer_code(single(2, ASSET, BANK, 50)), "ok");
    assert_eq!(f.transfer_code(single(3, BANK, ASSET, 50)), "ok");
}

#[test]
fn overflows_debits_and_credits_are_refused() {
    let mut store = MemStore::new();
    let (full_debits, full_credits, empty) = near_full_store(&mut store);
    let debit_side = store
        .apply(
            &[Command::CreateTransfer(single(
                9_001,
                full_debits,
                empty,
                2,
            ))],
            T0 + 10,
        )
        .unwrap();
    assert_eq!(debit_side.results[0].code(), "overflows_debits");
    let credit_side = store
        .apply(
            &[Command::CreateTransfer(single(
                9_002,
                empty,
                full_credits,
                2,
            ))],
            T0 + 20,
        )
        .unwrap();
    assert_eq!(credit_side.results[0].code(), "overflows_credits");
    audit(&store).unwrap();
}

/// Returns `(a, b, c)`: `a` has posted debits of `u128::MAX - 1`, `b` posted credits of the same,
/// `c` is empty. Built by committing a crafted change set, since reaching 2^128 through 2^64
/// maximal transfers is not feasible in a test.
fn near_full_store(store: &mut MemStore) -> (u128, u128, u128) {
    let applied = store
        .apply(
            &[
                Command::CreateAccount(account(30, Currency::USD, AccountFlags::NONE)),
                Command::CreateAccount(account(31, Currency::USD, AccountFlags::NONE)),
                Command::CreateAccount(account(32, Currency::USD, AccountFlags::NONE)),
            ],
            T0,
        )
        .unwrap();
    assert!(applied.results.iter().all(CommandResult::is_ok));
    let mut changes = tally_ledger::ChangeSet {
        meta: store.meta(),
        ..Default::default()
    };
    let near_max = u128::MAX - 1;
    for (id, debits, credits) in [(30, near_max, 0), (31, 0, near_max)] {
        let mut acc = store.account(AccountId(id)).unwrap();
        acc.balances.debits_posted = debits;
        acc.balances.credits_posted = credits;
        changes.accounts.push(acc);
    }
    let total = changes.meta.totals.entry(Currency::USD).or_default();
    total.debits_posted = near_max;
    total.credits_posted = near_max;
    store.commit(changes);
    audit(&*store).expect("crafted state is balanced");
    (30, 31, 32)
}

// ---- idempotency of transfers ------------------------------------------------------------------

#[test]
fn transfer_retried_with_same_body_answers_exists_and_applies_once() {
    let mut f = Fixture::new();
    assert_eq!(f.transfer_code(single(1, WALLET, SHOP, 1_000)), "ok");
    assert_eq!(f.transfer_code(single(1, WALLET, SHOP, 1_000)), "exists");
    // A retry that travels linked in another batch is the same request.
    let results = f.run(vec![
        Command::CreateTransfer(linked(single(1, WALLET, SHOP, 1_000))),
        Command::CreateTransfer(single(2, WALLET, SHOP, 1)),
    ]);
    assert_eq!(results[0].code(), "exists");
    assert_eq!(f.balances(SHOP).credits_posted, 1_001);
}

#[test]
fn exists_with_different_fields() {
    let mut f = Fixture::new();
    assert_eq!(f.transfer_code(single(1, WALLET, SHOP, 1_000)), "ok");
    assert_eq!(
        f.transfer_code(single(1, WALLET, SHOP, 1_001)),
        "exists_with_different_fields"
    );
    assert_eq!(f.balances(SHOP).credits_posted, 1_000);
}

#[test]
fn refused_transfer_retried_returns_the_original_refusal_even_after_funding() {
    let mut f = Fixture::new();
    assert_eq!(
        f.transfer_code(single(1, WALLET, SHOP, 20_000)),
        "exceeds_credits"
    );
    f.ok(vec![Command::CreateTransfer(single(
        2, BANK, WALLET, 50_000,
    ))]);
    assert_eq!(
        f.transfer_code(single(1, WALLET, SHOP, 20_000)),
        "exceeds_credits"
    );
    assert_eq!(f.balances(SHOP).credits_posted, 0);
}

#[test]
fn id_already_failed() {
    let mut f = Fixture::new();
    assert_eq!(
        f.transfer_code(single(1, WALLET, SHOP, 20_000)),
        "exceeds_credits"
    );
    assert_eq!(
        f.transfer_code(single(1, WALLET, SHOP, 100)),
        "id_already_failed"
    );
}

// ---- two-phase ---------------------------------------------------------------------------------

#[test]
fn pending_transfer_reserves_and_full_post_settles() {
    let mut f = Fixture::new();
    assert_eq!(f.transfer_code(pending(1, WALLET, SHOP, 3_000, 0)), "ok");
    assert_eq!(f.balances(WALLET).debits_pending, 3_000);
    assert_eq!(f.balances(SHOP).credits_pending, 3_000);
    assert_eq!(f.transfer_code(post(2, 1, None)), "ok");
    assert_eq!(f.balances(WALLET).debits_pending, 0);
    assert_eq!(f.balances(WALLET).debits_posted, 3_000);
    assert_eq!(f.balances(SHOP).credits_posted, 3_000);
}

#[test]
fn partial_post_posts_part_and_releases_the_rest() {
    let mut f = Fixture::new();
    assert_eq!(f.transfer_code(pending(1, WALLET, SHOP, 3_000, 0)), "ok");
    assert_eq!(f.transfer_code(post(2, 1, Some(1_200))), "ok");
    let wallet = f.balances(WALLET);
    assert_eq!((wallet.debits_pending, wallet.debits_posted), (0, 1_200));
    assert_eq!(wallet.credit_available(), 8_800);
}

#[test]
fn void_releases_the_hold() {
    let mut f = Fixture::new();
    assert_eq!(f.transfer_code(pending(1, WALLET, SHOP, 3_000, 0)), "ok");
    assert_eq!(f.transfer_code(void(2, 1)), "ok");
    assert_eq!(f.balances(WALLET).credit_available(), 10_000);
    assert_eq!(f.balances(SHOP), tally_ledger::Balances::ZERO);
}

#[test]
fn pending_transfer_not_found() {
    assert_eq!(
        Fixture::new().transfer_code(post(2, 77, None)),
        "pending_transfer_not_found"
    );
}

#[test]
fn pending_transfer_not_pending() {
    let mut f = Fixture::new();
    assert_eq!(
        f.transfer_code(post(2, 100, None)),
        "pending_transfer_not_pending"
    );
}

#[test]
fn pending_transfer_already_posted() {
    let mut f = Fixture::new();
    f.ok(vec![
        Command::CreateTransfer(pending(1, WALLET, SHOP, 10, 0)),
        Command::CreateTransfer(post(2, 1, None)),
    ]);
    assert_eq!(
        f.transfer_code(post(3, 1, None)),
        "pending_transfer_already_posted"
    );
    assert_eq!(
        f.transfer_code(void(4, 1)),
        "pending_transfer_already_posted"
    );
}

#[test]
fn pending_transfer_already_voided() {
    let mut f = Fixture::new();
    f.ok(vec![
        Command::CreateTransfer(pending(1, WALLET, SHOP, 10, 0)),
        Command::CreateTransfer(void(2, 1)),
    ]);
    assert_eq!(
        f.transfer_code(post(3, 1, None)),
        "pending_transfer_already_voided"
    );
}

#[test]
fn pending_transfer_expired_by_the_batch_timestamp() {
    let mut f = Fixture::new();
    f.ok(vec![Command::CreateTransfer(pending(
        1, WALLET, SHOP, 4_000, 5,
    ))]);
    assert_eq!(f.balances(WALLET).debits_pending, 4_000);
    let due = f.now_ns + 5 * NANOS_PER_SECOND;
    let applied = f
        .store
        .apply(&[Command::CreateTransfer(post(2, 1, None))], due)
        .unwrap();
    assert_eq!(applied.expired, vec![TransferId(1)]);
    assert_eq!(applied.results[0].code(), "pending_transfer_expired");
    assert_eq!(f.balances(WALLET).debits_pending, 0);
    assert_eq!(f.balances(WALLET).credit_available(), 10_000);
    audit(&f.store).unwrap();
}

#[test]
fn hold_past_its_deadline_cannot_be_posted_even_before_the_sweep() {
    let mut f = Fixture::new();
    f.ok(vec![Command::CreateTransfer(pending(
        1, WALLET, SHOP, 4_000, 1,
    ))]);
    // Same batch timestamp as the deadline minus one: the sweep does not expire it, but the
    // post's own event timestamp is past the deadline once enough events precede it.
    let deadline = f.now_ns + NANOS_PER_SECOND;
    let mut commands: Vec<Command> = (0..3)
        .map(|i| Command::CreateTransfer(single(50 + i, BANK, SHOP, 1)))
        .collect();
    commands.push(Command::CreateTransfer(post(2, 1, None)));
    let applied = f.store.apply(&commands, deadline - 2).unwrap();
    assert!(applied.expired.is_empty());
    assert_eq!(applied.results[3].code(), "pending_transfer_expired");
}

#[test]
fn exceeds_pending_transfer_amount() {
    let mut f = Fixture::new();
    f.ok(vec![Command::CreateTransfer(pending(
        1, WALLET, SHOP, 10, 0,
    ))]);
    assert_eq!(
        f.transfer_code(post(2, 1, Some(11))),
        "exceeds_pending_transfer_amount"
    );
}

#[test]
fn post_to_a_closed_account_is_refused_but_void_releases() {
    let mut f = Fixture::new();
    f.ok(vec![
        Command::CreateTransfer(pending(1, WALLET, SHOP, 10, 0)),
        Command::CloseAccount(CloseAccount {
            id: AccountId(SHOP),
            linked: false,
        }),
    ]);
    assert_eq!(f.transfer_code(post(2, 1, None)), "credit_account_closed");
    assert_eq!(f.transfer_code(void(3, 1)), "ok");
    assert_eq!(f.balances(SHOP), tally_ledger::Balances::ZERO);
}

// ---- linked chains -----------------------------------------------------------------------------

#[test]
fn linked_chain_applies_all_or_nothing() {
    let mut f = Fixture::new();
    let before = f.store.clone();
    let results = f.run(vec![
        Command::CreateAccount(NewAccount {
            linked: true,
            ..account(10, Currency::USD, AccountFlags::NONE)
        }),
        Command::CreateTransfer(linked(single(1, WALLET, 10, 500))),
        Command::CreateTransfer(single(2, WALLET, SHOP, 1_000_000)),
        Command::CreateTransfer(single(3, WALLET, SHOP, 1)),
    ]);
    let codes: Vec<_> = results.iter().map(CommandResult::code).collect();
    assert_eq!(
        codes,
        [
            "linked_event_failed",
            "linked_event_failed",
            "exceeds_credits",
            "ok"
        ]
    );
    assert!(f.store.account(AccountId(10)).is_none());
    assert_eq!(f.balances(WALLET).debits_posted, 1);
    // The failed chain left no trace: its ids are free for a corrected retry.
    assert!(f.store.transfer(TransferId(2)).is_none());
    assert_ne!(before, f.store);
    assert_eq!(f.transfer_code(single(2, WALLET, SHOP, 1_000)), "ok");
}

#[test]
fn linked_event_chain_open() {
    let mut f = Fixture::new();
    let results = f.run(vec![
        Command::CreateTransfer(single(1, WALLET, SHOP, 1)),
        Command::CreateTransfer(linked(single(2, WALLET, SHOP, 1))),
        Command::CreateTransfer(linked(single(3, WALLET, SHOP, 1))),
    ]);
    let codes: Vec<_> = results.iter().map(CommandResult::code).collect();
    assert_eq!(
        codes,
        ["ok", "linked_event_failed", "linked_event_chain_open"]
    );
    assert_eq!(f.balances(SHOP).credits_posted, 1);
}

#[test]
fn linked_account_creation_fails_with_its_chain() {
    let mut f = Fixture::new();
    let results = f.run(vec![
        Command::CreateAccount(NewAccount {
            linked: true,
            ..account(11, Currency::USD, AccountFlags::NONE)
        }),
        Command::CreateAccount(account(0, Currency::USD, AccountFlags::NONE)),
    ]);
    assert_eq!(results[0].code(), "linked_event_failed");
    assert_eq!(results[1].code(), "id_must_not_be_zero");
    assert!(f.store.account(AccountId(11)).is_none());
}

#[test]
fn linked_close_fails_with_its_chain() {
    let mut f = Fixture::new();
    let results = f.run(vec![
        Command::CloseAccount(CloseAccount {
            id: AccountId(SHOP),
            linked: true,
        }),
        Command::CloseAccount(CloseAccount {
            id: AccountId(99),
            linked: false,
        }),
    ]);
    assert_eq!(results[0].code(), "linked_event_failed");
    assert_eq!(results[1].code(), "account_not_found");
    assert!(!f.store.account(AccountId(SHOP)).unwrap().is_closed());
}

// ---- idempotency records -----------------------------------------------------------------------

fn begin(key: &str, hash: u8, lease_ms: u64) -> Command {
    Command::BeginIdempotent(BeginIdempotent {
        key: IdempotencyKey::new(key).unwrap(),
        request_hash: [hash; 32],
        lease_ms,
        retain_ms: 24 * 60 * 60 * 1_000,
    })
}

fn complete(key: &str, hash: u8, attempt: u64, response: &[u8]) -> Command {
    Command::CompleteIdempotent(CompleteIdempotent {
        key: IdempotencyKey::new(key).unwrap(),
        request_hash: [hash; 32],
        attempt,
        response: response.to_vec(),
    })
}

#[test]
fn idempotency_key_runs_once_and_replays_its_response() {
    let mut f = Fixture::new();
    assert_eq!(f.code(begin("m1:k1", 7, 30_000)), "started");
    assert_eq!(f.code(complete("m1:k1", 7, 1, b"{\"id\":1}")), "ok");
    let replay = f.run(vec![begin("m1:k1", 7, 30_000)]);
    match &replay[0] {
        CommandResult::BeginIdempotent(Ok(IdempotencyBegun::Completed { response })) => {
            assert_eq!(response, b"{\"id\":1}")
        }
        other => panic!("expected the stored response, got {other:?}"),
    }
    assert_eq!(
        f.code(complete("m1:k1", 7, 1, b"{\"id\":1}")),
        "already_completed"
    );
}

#[test]
fn idempotency_request_mismatch() {
    let mut f = Fixture::new();
    assert_eq!(f.code(begin("k", 1, 30_000)), "started");
    assert_eq!(
        f.code(begin("k", 2, 30_000)),
        "idempotency_request_mismatch"
    );
    assert_eq!(
        f.code(complete("k", 2, 1, b"")),
        "idempotency_request_mismatch"
    );
}

#[test]
fn idempotency_in_progress_until_the_lease_ends_then_taken_over() {
    let mut f = Fixture::new();
    assert_eq!(f.code(begin("k", 1, 1_500)), "started");
    assert_eq!(f.code(begin("k", 1, 1_500)), "idempotency_in_progress");
    // Two more seconds: the first lease (1.5 s) ran out, a second attempt takes over.
    f.now_ns += NANOS_PER_SECOND;
    let results = f.run(vec![begin("k", 1, 1_500)]);
    assert!(matches!(
        results[0],
        CommandResult::BeginIdempotent(Ok(IdempotencyBegun::Started { attempt: 2, .. }))
    ));
}

#[test]
fn idempotency_lease_lost() {
    let mut f = Fixture::new();
    assert_eq!(f.code(begin("k", 1, 1)), "started");
    assert_eq!(f.code(begin("k", 1, 30_000)), "started");
    assert_eq!(
        f.code(complete("k", 1, 1, b"late")),
        "idempotency_lease_lost"
    );
    assert_eq!(f.code(complete("k", 1, 2, b"fresh")), "ok");
}

#[test]
fn idempotency_key_not_found() {
    assert_eq!(
        Fixture::new().code(complete("nope", 1, 1, b"")),
        "idempotency_key_not_found"
    );
}

#[test]
fn idempotency_completed_with_different_response() {
    let mut f = Fixture::new();
    f.ok(vec![begin("k", 1, 30_000), complete("k", 1, 1, b"a")]);
    assert_eq!(
        f.code(complete("k", 1, 1, b"b")),
        "idempotency_completed_with_different_response"
    );
}

#[test]
fn idempotency_lease_out_of_range() {
    let mut f = Fixture::new();
    assert_eq!(f.code(begin("k", 1, 0)), "idempotency_lease_out_of_range");
    assert_eq!(
        f.code(begin("k", 1, IDEMPOTENCY_LEASE_MS_MAX + 1)),
        "idempotency_lease_out_of_range"
    );
}

#[test]
fn idempotency_retention_out_of_range() {
    let mut f = Fixture::new();
    for retain_ms in [0, IDEMPOTENCY_RETAIN_MS_MAX + 1] {
        let command = Command::BeginIdempotent(BeginIdempotent {
            retain_ms,
            ..match begin("k", 1, 30_000) {
                Command::BeginIdempotent(begin) => begin,
                _ => unreachable!(),
            }
        });
        assert_eq!(f.code(command), "idempotency_retention_out_of_range");
    }
}

#[test]
fn idempotency_response_too_large() {
    let mut f = Fixture::new();
    f.ok(vec![begin("k", 1, 30_000)]);
    let huge = vec![0u8; IDEMPOTENCY_RESPONSE_BYTES_MAX + 1];
    assert_eq!(
        f.code(complete("k", 1, 1, &huge)),
        "idempotency_response_too_large"
    );
}

#[test]
fn idempotency_command_fails_with_its_chain() {
    let mut f = Fixture::new();
    let results = f.run(vec![
        Command::CreateTransfer(linked(single(1, WALLET, SHOP, 1_000_000))),
        begin("k", 1, 30_000),
    ]);
    assert_eq!(results[0].code(), "exceeds_credits");
    assert_eq!(results[1].code(), "linked_event_failed");
    assert_eq!(f.code(begin("k", 1, 30_000)), "started");
}

#[test]
fn idempotency_key_length_is_bounded() {
    assert!(IdempotencyKey::new("").is_err());
    assert!(IdempotencyKey::new("k".repeat(256)).is_err());
    assert!(IdempotencyKey::new("k".repeat(255)).is_ok());
}

// ---- batches -----------------------------------------------------------------------------------

#[test]
fn batch_too_large_is_refused_whole() {
    let mut store = MemStore::new();
    let commands = vec![
        Command::CreateAccount(account(1, Currency::USD, AccountFlags::NONE));
        BATCH_COMMANDS_MAX + 1
    ];
    let err = store.apply(&commands, T0).unwrap_err();
    assert_eq!(err.code(), "batch_too_large");
    assert_eq!(store, MemStore::new());
    let commands = &commands[..BATCH_COMMANDS_MAX];
    assert!(store.apply(commands, T0).is_ok());
}

#[test]
fn batch_timestamp_out_of_range_is_refused_whole() {
    let mut store = MemStore::new();
    let commands = [Command::CreateAccount(account(
        1,
        Currency::USD,
        AccountFlags::NONE,
    ))];
    assert_eq!(
        store.apply(&commands, 0).unwrap_err().code(),
        "batch_timestamp_out_of_range"
    );
    assert_eq!(
        store.apply(&commands, u64::MAX).unwrap_err().code(),
        "batch_timestamp_out_of_range"
    );
    assert_eq!(store, MemStore::new());
}

#[test]
fn event_timestamps_never_go_backwards_even_if_the_batch_stamp_does() {
    let mut store = MemStore::new();
    store
        .apply(
            &[Command::CreateAccount(account(
                1,
                Currency::USD,
                AccountFlags::NONE,
            ))],
            T0,
        )
        .unwrap();
    let applied = store
        .apply(
            &[Command::CreateAccount(account(
                2,
                Currency::USD,
                AccountFlags::NONE,
            ))],
            T0 - 1_000,
        )
        .unwrap();
    match applied.results[0] {
        CommandResult::CreateAccount(Ok(tally_ledger::AccountCreated::Created {
            timestamp_ns,
        })) => {
            assert_eq!(timestamp_ns, T0 + 1)
        }
        ref other => panic!("unexpected {other:?}"),
    }
    assert_eq!(store.meta().last_timestamp_ns, T0 + 1);
}

#[test]
fn applied_transfer_record_keeps_the_request_and_resolved_fields() {
    let mut f = Fixture::new();
    f.ok(vec![
        Command::CreateTransfer(pending(1, WALLET, SHOP, 900, 0)),
        Command::CreateTransfer(post(2, 1, Some(400))),
    ]);
    match f.store.transfer(TransferId(2)) {
        Some(TransferRecord::Applied(t)) => {
            assert_eq!(
                (t.debit_account_id, t.credit_account_id),
                (AccountId(WALLET), AccountId(SHOP))
            );
            assert_eq!(t.amount_minor, 400);
            assert_eq!(t.request, post(2, 1, Some(400)));
        }
        other => panic!("unexpected {other:?}"),
    }
}
