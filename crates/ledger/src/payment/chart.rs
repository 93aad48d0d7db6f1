//! The payments chart of accounts and the ids of the transfers payments post.
//!
//! Payments create and post to ledger accounts whose ids are derived from their role, owner and
//! currency (`merchant:<id>:held` in USD, say), and post transfers whose ids are derived from
//! the order or refund they belong to, so a replayed command finds the same ids. Derived ids
//! have the top bit set; that half of the id space is reserved, so a client can never take one
//! first (`CreateAccount` and `CreateTransfer` refuse it).

use super::ids::{BuyerId, MerchantId, OrderId, PayoutId, PspName, RefundId};
use crate::account::AccountFlags;
use crate::ids::{AccountId, TransferId};
use crate::money::Currency;

/// Ids at or above this are derived by the ledger, never chosen by a client.
pub const RESERVED_ID_MIN: u128 = 1 << 127;

pub fn is_reserved_id(id: u128) -> bool {
    id >= RESERVED_ID_MIN
}

/// A payments account's role. Each role has one `code` (the ledger account code) and flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// What the PSP owes the platform for captured charges (asset).
    PspReceivable,
    /// A seller's paid but not yet released funds (liability, never negative).
    MerchantHeld,
    /// A seller's wallet (liability, never negative).
    MerchantAvailable,
    /// Money on its way to a seller's bank (issue 5).
    MerchantPayoutInTransit,
    /// The platform's fee revenue.
    PlatformFees,
    /// A buyer's stored value (liability, never negative).
    BuyerWallet,
}

impl Role {
    pub fn code(self) -> u16 {
        match self {
            Role::PspReceivable => 1_000,
            Role::MerchantHeld => 2_000,
            Role::MerchantAvailable => 2_001,
            Role::MerchantPayoutInTransit => 2_002,
            Role::PlatformFees => 3_000,
            Role::BuyerWallet => 4_000,
        }
    }

    pub fn flags(self) -> AccountFlags {
        match self {
            Role::MerchantHeld | Role::MerchantAvailable | Role::BuyerWallet => {
                AccountFlags::NO_OVERDRAFT
            }
            Role::PspReceivable | Role::MerchantPayoutInTransit | Role::PlatformFees => {
                AccountFlags::NONE
            }
        }
    }

    fn tag(self) -> &'static str {
        match self {
            Role::PspReceivable => "psp:receivable",
            Role::MerchantHeld => "merchant:held",
            Role::MerchantAvailable => "merchant:available",
            Role::MerchantPayoutInTransit => "merchant:payout_in_transit",
            Role::PlatformFees => "platform:fees",
            Role::BuyerWallet => "buyer:wallet",
        }
    }
}

/// Transfer codes of the transfers payments post, so history reads as what happened.
pub mod transfer_code {
    pub const CHARGE: u16 = 100;
    pub const FEE: u16 = 101;
    pub const RELEASE: u16 = 102;
    pub const REFUND: u16 = 103;
    pub const FEE_REFUND: u16 = 104;
    pub const WALLET_CHARGE: u16 = 105;
    /// Available → payout in transit (the hold, then its post or void).
    pub const PAYOUT: u16 = 106;
    /// Payout in transit → PSP receivable: the PSP paid the bank out of what it owed us.
    pub const PAYOUT_SETTLE: u16 = 107;
}

fn derive(kind: &str, parts: &[&[u8]]) -> u128 {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"tally/derived-id/v1");
    for part in std::iter::once(kind.as_bytes()).chain(parts.iter().copied()) {
        hasher.update(&(part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    let digest = hasher.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest.as_bytes()[..16]);
    let id = u128::from_le_bytes(bytes) | RESERVED_ID_MIN;
    // `u128::MAX` is reserved as a sentinel everywhere; a 2^-127 chance, but keep it impossible.
    if id == u128::MAX {
        id - 1
    } else {
        id
    }
}

fn account(role: Role, owner: &str, currency: Currency) -> AccountId {
    AccountId(derive(
        role.tag(),
        &[owner.as_bytes(), currency.code().as_bytes()],
    ))
}

pub fn psp_receivable(psp: &PspName, currency: Currency) -> AccountId {
    account(Role::PspReceivable, psp.as_str(), currency)
}

pub fn merchant_held(merchant: &MerchantId, currency: Currency) -> AccountId {
    account(Role::MerchantHeld, merchant.as_str(), currency)
}

pub fn merchant_available(merchant: &MerchantId, currency: Currency) -> AccountId {
    account(Role::MerchantAvailable, merchant.as_str(), currency)
}

pub fn merchant_payout_in_transit(merchant: &MerchantId, currency: Currency) -> AccountId {
    account(Role::MerchantPayoutInTransit, merchant.as_str(), currency)
}

pub fn platform_fees(currency: Currency) -> AccountId {
    account(Role::PlatformFees, "platform", currency)
}

pub fn buyer_wallet(buyer: &BuyerId, currency: Currency) -> AccountId {
    account(Role::BuyerWallet, buyer.as_str(), currency)
}

/// The transfers of one order, by purpose.
pub fn order_transfer(purpose: &str, order: &OrderId) -> TransferId {
    TransferId(derive(
        "order-transfer",
        &[purpose.as_bytes(), order.as_str().as_bytes()],
    ))
}

/// The transfers of one refund, by purpose (`refund` and `fee` holds, their settlements).
pub fn refund_transfer(purpose: &str, order: &OrderId, refund: &RefundId) -> TransferId {
    TransferId(derive(
        "refund-transfer",
        &[
            purpose.as_bytes(),
            order.as_str().as_bytes(),
            refund.as_str().as_bytes(),
        ],
    ))
}

/// The transfers of one payout, by purpose (`hold`, `post`, `void`, `settle`).
pub fn payout_transfer(purpose: &str, payout: &PayoutId) -> TransferId {
    TransferId(derive(
        "payout-transfer",
        &[purpose.as_bytes(), payout.as_str().as_bytes()],
    ))
}

/// Payout ids with this prefix are derived by schedules; clients cannot take them.
pub const SCHEDULED_PAYOUT_PREFIX: &str = "po_sched_";

/// The payout id a schedule run derives, so racing workers and replays find the same one.
pub fn scheduled_payout_id(merchant: &MerchantId, currency: Currency, run_at_ns: u64) -> PayoutId {
    let digest = derive(
        "scheduled-payout",
        &[
            merchant.as_str().as_bytes(),
            currency.code().as_bytes(),
            &run_at_ns.to_be_bytes(),
        ],
    );
    PayoutId::new(format!(
        "{SCHEDULED_PAYOUT_PREFIX}{:024x}",
        digest & ((1u128 << 96) - 1)
    ))
    .expect("a hex payout id is valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_ids_are_reserved_distinct_and_stable() {
        let seller = MerchantId::new("s1").unwrap();
        let held = merchant_held(&seller, Currency::USD);
        let available = merchant_available(&seller, Currency::USD);
        let held_eur = merchant_held(&seller, Currency::EUR);
        assert!(is_reserved_id(held.0) && is_reserved_id(available.0));
        assert_ne!(held, available);
        assert_ne!(held, held_eur);
        assert_eq!(
            held,
            merchant_held(&MerchantId::new("s1").unwrap(), Currency::USD)
        );
        // Length prefixes keep ("ab","c") and ("a","bc") apart.
        let order = OrderId::new("o1").unwrap();
        assert_ne!(
            order_transfer("ab", &order),
            order_transfer("a", &OrderId::new("bo1").unwrap())
        );
        assert!(!is_reserved_id(RESERVED_ID_MIN - 1));
    }
}
