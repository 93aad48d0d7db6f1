//! String identifiers of the payments domain. Merchants and clients choose them (a checkout id
//! from a shop's cart, an order id from its order system), so they are bounded and restricted to
//! characters that are safe in keys, URLs and logs.

use crate::limits::PAYMENT_ID_BYTES_MAX;
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{kind} {given:?} is invalid: use 1 to {PAYMENT_ID_BYTES_MAX} characters of A-Z, a-z, 0-9, '_', '-', '.', ':'")]
pub struct InvalidId {
    pub kind: &'static str,
    pub given: String,
}

impl InvalidId {
    pub fn code(&self) -> &'static str {
        "invalid_id"
    }
}

fn valid(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= PAYMENT_ID_BYTES_MAX
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'))
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String")]
        pub struct $name(String);

        impl $name {
            pub fn new(id: impl Into<String>) -> Result<Self, InvalidId> {
                let id = id.into();
                if valid(&id) {
                    Ok($name(id))
                } else {
                    Err(InvalidId { kind: $kind, given: id })
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidId;
            fn try_from(id: String) -> Result<Self, Self::Error> {
                $name::new(id)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

string_id!(
    /// A merchant (a seller, or the platform that sells for others).
    MerchantId,
    "merchant id"
);
string_id!(
    /// A buyer known to the platform; wallet payments draw on the buyer's wallet.
    BuyerId,
    "buyer id"
);
string_id!(
    /// A checkout: one payment of one buyer, with one or more orders. Its idempotency key.
    CheckoutId,
    "checkout id"
);
string_id!(
    /// One order of a checkout, for one seller. It is also the PSP idempotency key of its charge.
    OrderId,
    "order id"
);
string_id!(
    /// One refund of an order, chosen by the client; the refund's idempotency key.
    RefundId,
    "refund id"
);
string_id!(
    /// A payout to a seller's bank, chosen by the client (or derived by a schedule); the PSP
    /// idempotency key of the payout.
    PayoutId,
    "payout id"
);
string_id!(
    /// A payment service provider's name in the chart of accounts (`psp:<name>:receivable`).
    PspName,
    "psp name"
);
string_id!(
    /// An API key's public id (the part before the secret).
    ApiKeyId,
    "api key id"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_accept_safe_characters_and_refuse_the_rest() {
        assert!(OrderId::new("ord_2026-11:A.1").is_ok());
        assert!(OrderId::new("").is_err());
        assert!(OrderId::new("has space").is_err());
        assert!(OrderId::new("slash/").is_err());
        assert!(OrderId::new("x".repeat(PAYMENT_ID_BYTES_MAX)).is_ok());
        assert!(OrderId::new("x".repeat(PAYMENT_ID_BYTES_MAX + 1)).is_err());
        let error = CheckoutId::new("é").unwrap_err();
        assert_eq!(error.code(), "invalid_id");
        assert!(error.to_string().contains("checkout id"));
    }

    #[test]
    fn deserializing_checks_the_id() {
        let bytes = postcard::to_allocvec(&"bad id".to_string()).unwrap();
        assert!(postcard::from_bytes::<MerchantId>(&bytes).is_err());
    }
}
