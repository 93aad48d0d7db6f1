use super::*;
use tally_ledger::limits::{
    METADATA_ENTRIES_MAX, METADATA_KEY_BYTES_MAX, METADATA_VALUE_BYTES_MAX,
};
use tally_ledger::{format_amount, CloseAccountError, TransferError};

fn uid(value: u128) -> Option<pb::Uint128> {
    Some(value.into())
}

fn pb_account() -> pb::NewAccount {
    pb::NewAccount {
        id: uid(7),
        currency: "USD".into(),
        code: 10,
        debits_must_not_exceed_credits: true,
        credits_must_not_exceed_debits: false,
        metadata: BTreeMap::from([("owner".into(), "alice".into())]),
        linked: false,
    }
}

fn pb_single(amount: &str) -> pb::NewTransfer {
    pb::NewTransfer {
        id: uid(100),
        kind: Some(pb::new_transfer::Kind::Single(pb::Single {
            debit_account_id: uid(1),
            credit_account_id: uid(2),
            amount: amount.into(),
            currency: "USD".into(),
        })),
        code: 1,
        metadata: BTreeMap::new(),
        linked: false,
    }
}

fn pb_post(id: u128, pending_id: u128, amount: Option<&str>) -> pb::NewTransfer {
    pb::NewTransfer {
        id: uid(id),
        kind: Some(pb::new_transfer::Kind::PostPending(pb::PostPending {
            pending_id: uid(pending_id),
            amount: amount.map(str::to_owned),
        })),
        code: 3,
        metadata: BTreeMap::new(),
        linked: false,
    }
}

fn pb_pending(id: u128, currency: &str, amount: &str) -> pb::NewTransfer {
    pb::NewTransfer {
        id: uid(id),
        kind: Some(pb::new_transfer::Kind::Pending(pb::Pending {
            debit_account_id: uid(1),
            credit_account_id: uid(2),
            amount: amount.into(),
            currency: currency.into(),
            timeout_s: 60,
        })),
        code: 2,
        metadata: BTreeMap::new(),
        linked: false,
    }
}

fn ready(transfer: pb::NewTransfer) -> NewTransfer {
    match TransferDraft::try_from(transfer) {
        Ok(TransferDraft::Ready(transfer)) => transfer,
        other => panic!("expected a ready transfer, got {other:?}"),
    }
}

fn err_code<T: std::fmt::Debug>(result: Result<T, ConvertError>) -> &'static str {
    result.expect_err("conversion must fail").code()
}

// ---- Each conversion error ----

#[test]
fn missing_ids_are_refused_with_the_field_name() {
    let error = NewAccount::try_from(pb::NewAccount {
        id: None,
        ..pb_account()
    })
    .unwrap_err();
    assert_eq!(error.code(), "id_missing");
    assert!(error.to_string().starts_with("id is missing"), "{error}");

    let mut transfer = pb_single("1.00");
    if let Some(pb::new_transfer::Kind::Single(single)) = &mut transfer.kind {
        single.credit_account_id = None;
    }
    let error = TransferDraft::try_from(transfer).unwrap_err();
    assert_eq!(error.code(), "id_missing");
    assert!(error.to_string().contains("single.credit_account_id"));

    assert_eq!(
        err_code(CloseAccount::try_from(pb::CloseAccount {
            id: None,
            linked: false
        })),
        "id_missing"
    );
    assert_eq!(
        err_code(TransferDraft::try_from(pb::NewTransfer {
            kind: Some(pb::new_transfer::Kind::VoidPending(pb::VoidPending {
                pending_id: None
            })),
            ..pb_single("1")
        })),
        "id_missing"
    );
    assert_eq!(
        err_code(HistoryQuery::try_from(pb::HistoryRequest::default())),
        "id_missing"
    );
    assert_eq!(
        err_code(BalanceQuery::try_from(pb::BalanceRequest::default())),
        "id_missing"
    );
}

#[test]
fn unknown_currencies_are_refused() {
    for bad in ["usd", "XXX", "", " USD"] {
        let error = NewAccount::try_from(pb::NewAccount {
            currency: bad.into(),
            ..pb_account()
        })
        .unwrap_err();
        assert_eq!(error.code(), "currency_unknown", "{bad:?}");
        assert!(error.to_string().contains("ISO 4217"), "{error}");
    }
    let mut transfer = pb_single("1.00");
    if let Some(pb::new_transfer::Kind::Single(single)) = &mut transfer.kind {
        single.currency = "EURO".into();
    }
    let error = TransferDraft::try_from(transfer).unwrap_err();
    assert_eq!(error.code(), "currency_unknown");
    assert!(error.to_string().starts_with("single.currency:"), "{error}");
}

#[test]
fn amounts_are_refused_with_the_ledger_codes() {
    let max = format_amount(u64::MAX, Currency::USD);
    let cases = [
        ("12,50", "amount_malformed"),
        ("1e3", "amount_malformed"),
        ("", "amount_malformed"),
        ("1.005", "amount_too_many_decimals"),
        ("-1.00", "amount_negative"),
        ("0.00", "amount_zero"),
        ("184467440737095516.16", "amount_overflow"),
    ];
    for (amount, expected) in cases {
        let error = TransferDraft::try_from(pb_single(amount)).unwrap_err();
        assert_eq!(error.code(), expected, "{amount:?}");
        assert!(error.to_string().starts_with("single.amount:"), "{error}");
    }
    assert!(TransferDraft::try_from(pb_single(&max)).is_ok());
    assert_eq!(
        err_code(TransferDraft::try_from(pb_pending(5, "JPY", "1.5"))),
        "amount_too_many_decimals"
    );
}

#[test]
fn partial_post_amounts_are_checked_early_where_possible_and_in_the_hold_currency() {
    // Malformed and negative: refused at once, without knowing the hold.
    assert_eq!(
        err_code(TransferDraft::try_from(pb_post(9, 5, Some("abc")))),
        "amount_malformed"
    );
    assert_eq!(
        err_code(TransferDraft::try_from(pb_post(9, 5, Some("-1")))),
        "amount_negative"
    );
    // Decimals and zero depend on the hold's currency.
    let draft = TransferDraft::try_from(pb_post(9, 5, Some("1.5"))).unwrap();
    assert_eq!(draft.pending_id_to_resolve(), Some(TransferId(5)));
    let error = draft.clone().resolve(|_| Some(Currency::JPY)).unwrap_err();
    assert_eq!(error.code(), "amount_too_many_decimals");
    assert!(error.to_string().starts_with("post_pending.amount:"));
    let resolved = draft.clone().resolve(|_| Some(Currency::USD)).unwrap();
    assert_eq!(
        resolved.kind,
        TransferKind::PostPending {
            pending_id: TransferId(5),
            amount_minor: Some(150)
        }
    );
    assert_eq!(
        err_code(draft.resolve(|_| None)),
        "pending_transfer_not_found"
    );
    let zero = TransferDraft::try_from(pb_post(9, 5, Some("0.00"))).unwrap();
    assert_eq!(
        err_code(zero.resolve(|_| Some(Currency::USD))),
        "amount_zero"
    );
}

#[test]
fn metadata_is_refused_with_the_ledger_codes() {
    let too_many: BTreeMap<String, String> = (0..=METADATA_ENTRIES_MAX)
        .map(|i| (format!("k{i}"), String::new()))
        .collect();
    let cases = [
        (too_many, "metadata_too_many_entries"),
        (
            BTreeMap::from([(String::new(), "v".to_owned())]),
            "metadata_key_length",
        ),
        (
            BTreeMap::from([("k".repeat(METADATA_KEY_BYTES_MAX + 1), "v".to_owned())]),
            "metadata_key_length",
        ),
        (
            BTreeMap::from([("k".to_owned(), "v".repeat(METADATA_VALUE_BYTES_MAX + 1))]),
            "metadata_value_too_long",
        ),
    ];
    for (metadata, expected) in cases {
        assert_eq!(
            err_code(NewAccount::try_from(pb::NewAccount {
                metadata: metadata.clone(),
                ..pb_account()
            })),
            expected
        );
        assert_eq!(
            err_code(TransferDraft::try_from(pb::NewTransfer {
                metadata,
                ..pb_single("1.00")
            })),
            expected
        );
    }
}

#[test]
fn a_transfer_needs_a_kind() {
    let error = TransferDraft::try_from(pb::NewTransfer {
        kind: None,
        ..pb_single("1.00")
    })
    .unwrap_err();
    assert_eq!(error.code(), "kind_missing");
    assert!(error
        .to_string()
        .contains("single, pending, post_pending or void_pending"));
}

#[test]
fn codes_must_fit_16_bits() {
    let limit = u32::from(u16::MAX);
    assert!(NewAccount::try_from(pb::NewAccount {
        code: limit,
        ..pb_account()
    })
    .is_ok());
    let error = NewAccount::try_from(pb::NewAccount {
        code: limit + 1,
        ..pb_account()
    })
    .unwrap_err();
    assert_eq!(error.code(), "code_out_of_range");
    assert!(error.to_string().contains("0..=65535"));
    assert_eq!(
        err_code(TransferDraft::try_from(pb::NewTransfer {
            code: u32::MAX,
            ..pb_single("1.00")
        })),
        "code_out_of_range"
    );
}

#[test]
fn history_limits_default_and_are_bounded() {
    let request = |limit| pb::HistoryRequest {
        account_id: uid(1),
        cursor_ns: Some(5),
        limit,
    };
    assert_eq!(
        HistoryQuery::try_from(request(0)).unwrap().limit,
        HISTORY_PAGE_ENTRIES_DEFAULT
    );
    let max = u32::try_from(HISTORY_PAGE_ENTRIES_MAX).unwrap();
    assert_eq!(
        HistoryQuery::try_from(request(max)).unwrap().limit,
        HISTORY_PAGE_ENTRIES_MAX
    );
    assert_eq!(
        err_code(HistoryQuery::try_from(request(max + 1))),
        "limit_out_of_range"
    );
}

#[test]
fn batches_and_lookups_are_bounded() {
    let ids = vec![pb::Uint128::default(); BATCH_COMMANDS_MAX + 1];
    let request = pb::LookupRequest { ids };
    assert_eq!(err_code(lookup_account_ids(&request)), "batch_too_large");
    assert_eq!(err_code(lookup_transfer_ids(&request)), "batch_too_large");
    let accounts = vec![pb_account(); BATCH_COMMANDS_MAX + 1];
    assert_eq!(err_code(accounts_from_pb(accounts)), "batch_too_large");
    assert!(accounts_from_pb(vec![pb_account(); BATCH_COMMANDS_MAX]).is_ok());
}

#[test]
fn response_read_back_errors() {
    let account = pb::Account {
        balances: None,
        ..pb::Account::from(&sample_account())
    };
    assert_eq!(err_code(Account::try_from(account)), "field_missing");

    let mut entry = history_entry_to_pb(&sample_entry(), Currency::USD);
    entry.side = 0;
    assert_eq!(
        err_code(history_entry_from_pb(entry.clone(), Currency::USD)),
        "enum_unknown"
    );
    entry.side = 99;
    assert_eq!(
        err_code(history_entry_from_pb(entry, Currency::USD)),
        "enum_unknown"
    );

    let failed = pb::Transfer::from(&failed_record());
    let error = Transfer::try_from(failed).unwrap_err();
    assert_eq!(error.code(), "transfer_not_applied");
    assert!(error.to_string().contains("exceeds_credits"));

    let mut balances = balances_to_pb(&sample_balances(), Currency::USD);
    balances.credits_posted = "1.001".into();
    assert_eq!(
        err_code(balances_from_pb(&balances, Currency::USD)),
        "amount_too_many_decimals"
    );
}

#[test]
fn errors_become_statuses_with_their_code() {
    let status = tonic::Status::from(ConvertError::KindMissing);
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(
        status.metadata().get(ERROR_CODE_METADATA_KEY).unwrap(),
        "kind_missing"
    );
    let status = query_error_status(&QueryError::AccountNotFound(AccountId(3)));
    assert_eq!(status.code(), tonic::Code::NotFound);
    assert_eq!(
        status.metadata().get(ERROR_CODE_METADATA_KEY).unwrap(),
        "account_not_found"
    );
    let status = query_error_status(&QueryError::AccountNotCreatedYet {
        account_id: AccountId(3),
        at_ns: 1,
        created_at_ns: 2,
    });
    assert_eq!(status.code(), tonic::Code::OutOfRange);
}

// ---- Round trips ----

fn sample_balances() -> Balances {
    Balances {
        debits_pending: 5,
        debits_posted: 1_250,
        credits_pending: 0,
        credits_posted: u128::MAX,
    }
}

fn sample_account() -> Account {
    Account {
        id: AccountId(u128::MAX - 1),
        currency: Currency::BHD,
        code: 65_535,
        flags: AccountFlags::NO_OVERDRAFT,
        metadata: Metadata::from_pairs([("a", "1"), ("b", "2")]).unwrap(),
        balances: sample_balances(),
        created_at_ns: 10,
        closed_at_ns: Some(20),
    }
}

fn sample_entry() -> HistoryEntry {
    HistoryEntry {
        account_id: AccountId(1 << 64 | 3),
        timestamp_ns: 42,
        transfer_id: TransferId(9),
        event: HistoryEvent::PostPending,
        side: Side::Credit,
        amount_minor: 1_234,
        balances: sample_balances(),
    }
}

fn failed_record() -> TransferRecord {
    TransferRecord::Failed {
        request: ready(pb_single("1.00")),
        error: TransferError::ExceedsCredits,
        timestamp_ns: 77,
    }
}

#[test]
fn uint128_round_trips() {
    for value in [
        0,
        1,
        u128::from(u64::MAX),
        1 << 64,
        u128::MAX,
        0xdead_beef << 70,
    ] {
        let wire = pb::Uint128::from(value);
        assert_eq!(u128::from(wire), value);
    }
    assert_eq!(
        pb::Uint128::from((3u128 << 64) | 4),
        pb::Uint128 { hi: 3, lo: 4 }
    );
}

#[test]
fn new_account_round_trips() {
    let wire = pb_account();
    let account = NewAccount::try_from(wire.clone()).unwrap();
    assert_eq!(account.id, AccountId(7));
    assert_eq!(account.currency, Currency::USD);
    assert_eq!(account.flags, AccountFlags::NO_OVERDRAFT);
    assert_eq!(account.metadata.get("owner"), Some("alice"));
    assert_eq!(pb::NewAccount::from(&account), wire);
}

#[test]
fn close_account_round_trips() {
    let wire = pb::CloseAccount {
        id: uid(12),
        linked: true,
    };
    let close = CloseAccount::try_from(wire).unwrap();
    assert_eq!(
        close,
        CloseAccount {
            id: AccountId(12),
            linked: true
        }
    );
    assert_eq!(pb::CloseAccount::from(close), wire);
}

#[test]
fn every_transfer_kind_round_trips() {
    let void = pb::NewTransfer {
        id: uid(200),
        kind: Some(pb::new_transfer::Kind::VoidPending(pb::VoidPending {
            pending_id: uid(5),
        })),
        code: 0,
        metadata: BTreeMap::from([("why".into(), "customer left".into())]),
        linked: true,
    };
    let cases = [
        pb_single("12.50"),
        pb_pending(5, "JPY", "1500"),
        pb_pending(6, "BHD", "0.001"),
        pb_post(7, 5, None),
        void,
    ];
    for wire in cases {
        let transfer = ready(wire.clone());
        assert_eq!(new_transfer_to_pb(&transfer, None), wire);
        assert_eq!(pb::NewTransfer::from(TransferDraft::from(transfer)), wire);
    }
    let single = ready(pb_single("12.50"));
    assert_eq!(
        single.kind,
        TransferKind::Single {
            debit_account_id: AccountId(1),
            credit_account_id: AccountId(2),
            amount_minor: 1_250,
            currency: Currency::USD,
        }
    );
}

#[test]
fn partial_post_round_trips_as_draft_and_once_resolved() {
    let wire = pb_post(7, 5, Some("0.50"));
    let draft = TransferDraft::try_from(wire.clone()).unwrap();
    assert!(matches!(&draft, TransferDraft::PartialPost(post) if post.amount == "0.50"));
    assert_eq!(pb::NewTransfer::from(draft.clone()), wire);
    let transfer = draft.resolve(|_| Some(Currency::EUR)).unwrap();
    assert_eq!(new_transfer_to_pb(&transfer, Some(Currency::EUR)), wire);
    // Without the hold's currency the amount is printed so that no parser accepts it.
    let blind = new_transfer_to_pb(&transfer, None);
    let Some(pb::new_transfer::Kind::PostPending(post)) = blind.kind else {
        panic!("post expected")
    };
    assert_eq!(post.amount.as_deref(), Some("50 minor units"));
    assert!(parse_amount("50 minor units", Currency::EUR, ZeroAmount::Allowed).is_err());
}

#[test]
fn balances_print_exactly_and_round_trip() {
    for currency in [Currency::USD, Currency::JPY, Currency::BHD] {
        for value in [0u64, 1, 5, 99, 100, 1_250, u64::MAX] {
            assert_eq!(
                format_balance(u128::from(value), currency),
                format_amount(value, currency)
            );
        }
        for value in [0u128, 7, u128::from(u64::MAX) + 1, u128::MAX] {
            let printed = format_balance(value, currency);
            assert_eq!(parse_balance(&printed, currency), Ok(value), "{printed}");
        }
        let balances = sample_balances();
        assert_eq!(
            balances_from_pb(&balances_to_pb(&balances, currency), currency),
            Ok(balances)
        );
    }
    assert_eq!(format_balance(1_250, Currency::USD), "12.50");
    assert_eq!(format_balance(1, Currency::BHD), "0.001");
    assert_eq!(format_signed_balance(-1_250, Currency::USD), "-12.50");
    assert_eq!(
        format_signed_balance(i128::MIN, Currency::JPY),
        format!("-{}", i128::MIN.unsigned_abs())
    );
    assert_eq!(parse_balance("12.5", Currency::USD), Ok(1_250));
    assert_eq!(
        parse_balance("-1", Currency::USD).unwrap_err().code(),
        "amount_negative"
    );
    let too_big = format!("{}0", u128::MAX);
    assert_eq!(
        parse_balance(&too_big, Currency::JPY).unwrap_err().code(),
        "amount_overflow"
    );
    assert_eq!(
        parse_balance(
            &format_balance(u128::MAX, Currency::USD).replace('.', ""),
            Currency::USD
        )
        .unwrap_err()
        .code(),
        "amount_overflow"
    );
}

#[test]
fn account_round_trips() {
    let account = sample_account();
    let wire = pb::Account::from(&account);
    assert_eq!(wire.currency, "BHD");
    assert_eq!(wire.balances.as_ref().unwrap().debits_posted, "1.250");
    assert_eq!(Account::try_from(wire), Ok(account));
}

#[test]
fn history_entry_and_page_round_trip() {
    let entry = sample_entry();
    let wire = history_entry_to_pb(&entry, Currency::USD);
    assert_eq!(wire.amount, "12.34");
    assert_eq!(wire.event(), pb::HistoryEvent::PostPending);
    assert_eq!(wire.side(), pb::Side::Credit);
    assert_eq!(
        history_entry_from_pb(wire, Currency::USD),
        Ok(entry.clone())
    );
    for (event, side) in [
        (HistoryEvent::Single, Side::Debit),
        (HistoryEvent::Pending, Side::Credit),
        (HistoryEvent::VoidPending, Side::Debit),
        (HistoryEvent::Expired, Side::Credit),
    ] {
        let entry = HistoryEntry {
            event,
            side,
            ..entry.clone()
        };
        let wire = history_entry_to_pb(&entry, Currency::JPY);
        assert_eq!(history_entry_from_pb(wire, Currency::JPY), Ok(entry));
    }
    let page = HistoryPage {
        entries: vec![entry.clone()],
        next_cursor_ns: Some(43),
    };
    let response = history_response(&page, Currency::USD);
    assert_eq!(response.next_cursor_ns, Some(43));
    assert_eq!(response.currency, "USD");
    assert_eq!(
        history_entry_from_pb(response.entries[0].clone(), Currency::USD),
        Ok(entry)
    );
}

#[test]
fn applied_transfers_round_trip() {
    let post = TransferDraft::try_from(pb_post(8, 5, Some("0.250")))
        .unwrap()
        .resolve(|_| Some(Currency::KWD))
        .unwrap();
    let cases = [
        (
            ready(pb_single("12.50")),
            Currency::USD,
            EntryPhase::Single,
            1_250,
        ),
        (
            ready(pb_pending(5, "KWD", "1.000")),
            Currency::KWD,
            EntryPhase::Pending,
            1_000,
        ),
        (post, Currency::KWD, EntryPhase::PostPending, 250),
        (
            ready(pb_post(9, 5, None)),
            Currency::KWD,
            EntryPhase::PostPending,
            1_000,
        ),
    ];
    for (request, currency, phase, amount_minor) in cases {
        let transfer = Transfer {
            request,
            debit_account_id: AccountId(1),
            credit_account_id: AccountId(2),
            amount_minor,
            currency,
            phase,
            timestamp_ns: 99,
        };
        let wire = pb::Transfer::from(TransferRecord::Applied(transfer.clone()));
        assert_eq!(wire.id, Some(transfer.request.id.into()));
        assert_eq!(Transfer::try_from(wire), Ok(transfer));
    }
}

#[test]
fn failed_transfers_carry_code_and_message() {
    let wire = pb::Transfer::from(&failed_record());
    assert_eq!(wire.timestamp_ns, 77);
    assert_eq!(wire.request, Some(pb_single("1.00")));
    let Some(pb::transfer::Outcome::Failed(failed)) = wire.outcome else {
        panic!("failed outcome expected")
    };
    assert_eq!(failed.code, "exceeds_credits");
    assert_eq!(failed.message, TransferError::ExceedsCredits.to_string());

    // A refused partial post prints its amount in the hold's currency when given.
    let post = TransferDraft::try_from(pb_post(8, 5, Some("3.00")))
        .unwrap()
        .resolve(|_| Some(Currency::USD))
        .unwrap();
    let record = TransferRecord::Failed {
        request: post,
        error: TransferError::ExceedsPendingTransferAmount {
            requested_minor: 300,
            pending_minor: 200,
        },
        timestamp_ns: 5,
    };
    let wire = transfer_record_to_pb(&record, Some(Currency::USD));
    assert_eq!(wire.request, Some(pb_post(8, 5, Some("3.00"))));
}

#[test]
fn balance_response_uses_the_account_side() {
    let mut account = sample_account();
    account.currency = Currency::USD;
    let balances = Balances {
        debits_pending: 100,
        debits_posted: 300,
        credits_pending: 50,
        credits_posted: 1_000,
    };
    let response = balance_response(&account, &balances);
    assert_eq!(response.currency, "USD");
    assert_eq!(response.available, "6.00");
    assert_eq!(
        response.balances,
        Some(balances_to_pb(&balances, Currency::USD))
    );
    account.flags = AccountFlags {
        debits_must_not_exceed_credits: false,
        credits_must_not_exceed_debits: true,
    };
    assert_eq!(balance_response(&account, &balances).available, "-7.50");
}

#[test]
fn queries_round_trip() {
    let history = HistoryQuery {
        account_id: AccountId(5),
        cursor_ns: Some(10),
        limit: 20,
    };
    assert_eq!(
        HistoryQuery::try_from(pb::HistoryRequest::from(history)),
        Ok(history)
    );
    let balance = BalanceQuery {
        account_id: AccountId(5),
        as_of_ns: None,
    };
    assert_eq!(
        BalanceQuery::try_from(pb::BalanceRequest::from(balance)),
        Ok(balance)
    );
    let request = pb::LookupRequest {
        ids: vec![1u128.into(), u128::MAX.into()],
    };
    assert_eq!(
        lookup_account_ids(&request),
        Ok(vec![AccountId(1), AccountId(u128::MAX)])
    );
    assert_eq!(
        lookup_transfer_ids(&request),
        Ok(vec![TransferId(1), TransferId(u128::MAX)])
    );
}

// ---- Results and batches ----

#[test]
fn command_results_become_item_results() {
    let cases = [
        (
            CommandResult::CreateAccount(Ok(AccountCreated::Created { timestamp_ns: 5 })),
            "ok",
            5,
        ),
        (
            CommandResult::CreateTransfer(Ok(TransferCreated::Exists { timestamp_ns: 6 })),
            "exists",
            6,
        ),
        (
            CommandResult::CloseAccount(Ok(AccountClosed::AlreadyClosed { timestamp_ns: 7 })),
            "already_closed",
            7,
        ),
        (
            CommandResult::CreateTransfer(Err(TransferError::ExceedsCredits)),
            "exceeds_credits",
            0,
        ),
        (
            CommandResult::CloseAccount(Err(CloseAccountError::AccountNotFound)),
            "account_not_found",
            0,
        ),
    ];
    for (result, code, timestamp_ns) in cases {
        let item = item_result(3, &result);
        assert_eq!(item.index, 3);
        assert_eq!(item.code, code);
        assert_eq!(item.timestamp_ns, timestamp_ns);
        assert_eq!(item.message.is_empty(), result.is_ok());
    }
    let item = item_result(
        0,
        &CommandResult::CreateTransfer(Err(TransferError::ExceedsCredits)),
    );
    assert_eq!(item.message, TransferError::ExceedsCredits.to_string());
}

#[test]
fn refused_items_take_their_linked_chain_with_them() {
    // 0: ok alone | 1,2,3: chain with a refused middle | 4: ok alone | 5,6: open chain, ok.
    let mut accounts = vec![pb_account(); 7];
    for (i, account) in accounts.iter_mut().enumerate() {
        account.id = uid(i as u128 + 1);
    }
    accounts[1].linked = true;
    accounts[2].linked = true;
    accounts[2].currency = "???".into();
    accounts[5].linked = true;
    accounts[6].linked = true;
    let prepared = accounts_from_pb(accounts).unwrap();
    let ids: Vec<u128> = prepared
        .commands
        .iter()
        .map(|command| match command {
            Command::CreateAccount(account) => account.id.0,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(ids, vec![1, 5, 6, 7]);
    assert_eq!(prepared.responder.proposed(), 4);

    let results = [
        CommandResult::CreateAccount(Ok(AccountCreated::Created { timestamp_ns: 10 })),
        CommandResult::CreateAccount(Ok(AccountCreated::Created { timestamp_ns: 11 })),
        CommandResult::CreateAccount(Err(AccountError::LinkedEventFailed)),
        CommandResult::CreateAccount(Err(AccountError::LinkedEventChainOpen)),
    ];
    let response = prepared.responder.respond(&results);
    let summary: Vec<(u32, &str)> = response
        .results
        .iter()
        .map(|r| (r.index, r.code.as_str()))
        .collect();
    assert_eq!(
        summary,
        vec![
            (0, "ok"),
            (1, "linked_event_failed"),
            (2, "currency_unknown"),
            (3, "linked_event_failed"),
            (4, "ok"),
            (5, "linked_event_failed"),
            (6, "linked_event_chain_open"),
        ]
    );
    assert_eq!(response.results[4].timestamp_ns, 11);
}

#[test]
fn an_all_refused_batch_proposes_nothing() {
    let prepared = close_accounts_from_pb(vec![pb::CloseAccount {
        id: None,
        linked: false,
    }])
    .unwrap();
    assert!(prepared.commands.is_empty());
    let response = prepared.responder.respond(&[]);
    assert_eq!(response.results.len(), 1);
    assert_eq!(response.results[0].code, "id_missing");
}

#[test]
fn partial_posts_resolve_from_state_or_from_earlier_items() {
    let transfers = vec![
        pb_post(20, 1, Some("1.5")), // hold 1 in the store, JPY: too many decimals
        pb_post(21, 1, Some("15")),  // ok
        pb_pending(30, "USD", "10.00"), // creates hold 30 in this request
        pb_post(31, 30, Some("2.50")), // resolved from item 2
        pb_post(32, 40, Some("1.00")), // no such hold
    ];
    let prepared = transfers_from_pb(transfers, |pending_id| {
        (pending_id == TransferId(1)).then_some(Currency::JPY)
    })
    .unwrap();
    let kinds: Vec<&TransferKind> = prepared
        .commands
        .iter()
        .map(|command| match command {
            Command::CreateTransfer(transfer) => &transfer.kind,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(kinds.len(), 3);
    assert_eq!(
        kinds[0],
        &TransferKind::PostPending {
            pending_id: TransferId(1),
            amount_minor: Some(15)
        }
    );
    assert_eq!(
        kinds[2],
        &TransferKind::PostPending {
            pending_id: TransferId(30),
            amount_minor: Some(250)
        }
    );
    let results =
        vec![CommandResult::CreateTransfer(Ok(TransferCreated::Created { timestamp_ns: 1 })); 3];
    let codes: Vec<String> = prepared
        .responder
        .respond(&results)
        .results
        .into_iter()
        .map(|r| r.code)
        .collect();
    assert_eq!(
        codes,
        vec![
            "amount_too_many_decimals",
            "ok",
            "ok",
            "ok",
            "pending_transfer_not_found"
        ]
    );
}
