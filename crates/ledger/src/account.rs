//! Accounts, their balances and the request that creates one.

use crate::ids::AccountId;
use crate::metadata::Metadata;
use crate::money::Currency;
use serde::{Deserialize, Serialize};

/// Balance rules an account enforces on every transfer that touches it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountFlags {
    /// A liability or wallet: debits (posted plus pending) may never exceed posted credits, so the
    /// account can never be overdrawn.
    pub debits_must_not_exceed_credits: bool,
    /// An asset that may never hold more credits (posted plus pending) than posted debits.
    pub credits_must_not_exceed_debits: bool,
}

impl AccountFlags {
    pub const NONE: AccountFlags = AccountFlags {
        debits_must_not_exceed_credits: false,
        credits_must_not_exceed_debits: false,
    };
    pub const NO_OVERDRAFT: AccountFlags = AccountFlags {
        debits_must_not_exceed_credits: true,
        credits_must_not_exceed_debits: false,
    };
}

/// The four running totals of an account, in minor units of its currency.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Balances {
    pub debits_pending: u128,
    pub debits_posted: u128,
    pub credits_pending: u128,
    pub credits_posted: u128,
}

impl Balances {
    pub const ZERO: Balances = Balances {
        debits_pending: 0,
        debits_posted: 0,
        credits_pending: 0,
        credits_posted: 0,
    };

    /// What a credit-normal account (a wallet, a merchant balance) can still spend: posted
    /// credits less posted debits less pending debits, since a hold reduces what can be spent.
    pub fn credit_available(&self) -> i128 {
        signed(self.credits_posted) - signed(self.debits_posted) - signed(self.debits_pending)
    }

    /// The mirror for a debit-normal account (an asset such as a PSP receivable).
    pub fn debit_available(&self) -> i128 {
        signed(self.debits_posted) - signed(self.credits_posted) - signed(self.credits_pending)
    }

    /// Whether these balances obey `flags`. Checked on every account a batch changes.
    pub fn obey(&self, flags: AccountFlags) -> bool {
        let debits_ok = !flags.debits_must_not_exceed_credits
            || self
                .debits_pending
                .checked_add(self.debits_posted)
                .is_some_and(|debits| debits <= self.credits_posted);
        let credits_ok = !flags.credits_must_not_exceed_debits
            || self
                .credits_pending
                .checked_add(self.credits_posted)
                .is_some_and(|credits| credits <= self.debits_posted);
        debits_ok && credits_ok
    }
}

/// Balances beyond `i128::MAX` would need 2^63 maximal transfers; saturate rather than wrap so a
/// display can never show a wrong sign.
fn signed(value: u128) -> i128 {
    i128::try_from(value).unwrap_or(i128::MAX)
}

/// A request to open an account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewAccount {
    pub id: AccountId,
    pub currency: Currency,
    /// The account's kind in the client's chart of accounts (e.g. receivable, wallet, fees).
    pub code: u16,
    pub flags: AccountFlags,
    pub metadata: Metadata,
    /// Links this command with the next one in the batch: they apply all-or-nothing.
    pub linked: bool,
}

/// An account as the ledger holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub id: AccountId,
    pub currency: Currency,
    pub code: u16,
    pub flags: AccountFlags,
    pub metadata: Metadata,
    pub balances: Balances,
    pub created_at_ns: u64,
    /// Set once by `CloseAccount`; a closed account takes no new postings, but its pending holds
    /// may still be voided or expire.
    pub closed_at_ns: Option<u64>,
}

impl Account {
    pub fn is_closed(&self) -> bool {
        self.closed_at_ns.is_some()
    }
}

/// A request to close an account. Closing is final.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloseAccount {
    pub id: AccountId,
    pub linked: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn available_balance_counts_pending_debits() {
        let b = Balances {
            credits_posted: 100,
            debits_posted: 30,
            debits_pending: 20,
            credits_pending: 50,
        };
        assert_eq!(b.credit_available(), 50);
        assert_eq!(b.debit_available(), -120);
    }

    #[test]
    fn flags_are_obeyed_or_not() {
        let b = Balances {
            credits_posted: 100,
            debits_posted: 80,
            debits_pending: 20,
            credits_pending: 0,
        };
        assert!(b.obey(AccountFlags::NO_OVERDRAFT));
        let over = Balances {
            debits_pending: 21,
            ..b
        };
        assert!(!over.obey(AccountFlags::NO_OVERDRAFT));
        assert!(over.obey(AccountFlags::NONE));
        let asset = AccountFlags {
            debits_must_not_exceed_credits: false,
            credits_must_not_exceed_debits: true,
        };
        let a = Balances {
            debits_posted: 100,
            credits_posted: 50,
            credits_pending: 50,
            debits_pending: 0,
        };
        assert!(a.obey(asset));
        assert!(!Balances {
            credits_pending: 51,
            ..a
        }
        .obey(asset));
    }
}
