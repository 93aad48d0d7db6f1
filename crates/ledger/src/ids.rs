//! Client-chosen 128-bit identifiers. Zero and `u128::MAX` are reserved (zero is what an unset
//! protobuf field decodes to; the maximum is kept as a sentinel), so neither names an object.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub u128);

        impl $name {
            pub fn is_zero(self) -> bool {
                self.0 == 0
            }
            pub fn is_int_max(self) -> bool {
                self.0 == u128::MAX
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

id_type!(
    /// An account's id, chosen by the client and unique for the ledger's lifetime.
    AccountId
);
id_type!(
    /// A transfer's id. It is the transfer's idempotency key: it applies at most once.
    TransferId
);
