//! Raft entries of ledger commands, shared by the storage tests that drive a state machine
//! directly.

#![allow(dead_code)]

use openraft::testing::log_id;
use openraft::{Entry, EntryPayload, Membership};
use std::collections::BTreeMap;
use tally_ledger::limits::NANOS_PER_SECOND;
use tally_ledger::{
    AccountFlags, AccountId, Command, Currency, Metadata, NewAccount, NewTransfer, TransferId,
    TransferKind,
};
use tally_raft_store::{LedgerRequest, NodeInfo, TypeConfig};

pub const T0: u64 = 1_700_000_000 * NANOS_PER_SECOND;

pub fn account(id: u128) -> Command {
    Command::CreateAccount(NewAccount {
        id: AccountId(id),
        currency: Currency::USD,
        code: 1,
        flags: AccountFlags::NONE,
        metadata: Metadata::default(),
        linked: false,
    })
}

pub fn transfer(id: u128, debit: u128, credit: u128, amount_minor: u64) -> Command {
    Command::CreateTransfer(NewTransfer {
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
    })
}

pub fn normal(index: u64, commands: Vec<Command>) -> Entry<TypeConfig> {
    Entry {
        log_id: log_id(1, 1, index),
        payload: EntryPayload::Normal(LedgerRequest {
            timestamp_ns: T0 + index,
            commands,
        }),
    }
}

pub fn membership_entry(index: u64) -> Entry<TypeConfig> {
    let nodes = BTreeMap::from([(1u64, NodeInfo::default())]);
    Entry {
        log_id: log_id(1, 1, index),
        payload: EntryPayload::Membership(Membership::from(nodes)),
    }
}
