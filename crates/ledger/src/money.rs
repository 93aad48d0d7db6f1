//! Currencies and exact amounts.
//!
//! Inside the ledger an amount is a `u64` count of the currency's minor unit (cents for USD, yen
//! for JPY, fils for BHD). At the edges it is a decimal string, parsed with `rust_decimal` and
//! checked against the currency's ISO 4217 exponent. No float touches money anywhere.
//!
//! Amounts are `u64` while balances are `u128`: a balance can then only overflow after more than
//! 2^64 maximal transfers, yet every addition is still checked.

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

macro_rules! currencies {
    ($($code:ident = $numeric:literal, $exponent:literal;)*) => {
        /// An ISO 4217 currency the ledger accepts.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Currency {
            $($code,)*
        }

        impl Currency {
            pub const ALL: &'static [Currency] = &[$(Currency::$code,)*];

            /// The alphabetic ISO 4217 code, e.g. `"USD"`.
            pub fn code(self) -> &'static str {
                match self {
                    $(Currency::$code => stringify!($code),)*
                }
            }

            /// The ISO 4217 numeric code, e.g. 840 for USD.
            pub fn numeric(self) -> u16 {
                match self {
                    $(Currency::$code => $numeric,)*
                }
            }

            /// Digits after the decimal point of the minor unit: 2 for USD, 0 for JPY, 3 for BHD.
            pub fn exponent(self) -> u32 {
                match self {
                    $(Currency::$code => $exponent,)*
                }
            }
        }
    };
}

currencies! {
    USD = 840, 2; EUR = 978, 2; JPY = 392, 0; GBP = 826, 2; CNY = 156, 2; AUD = 36, 2;
    CAD = 124, 2; CHF = 756, 2; HKD = 344, 2; SGD = 702, 2; SEK = 752, 2; KRW = 410, 0;
    NOK = 578, 2; NZD = 554, 2; INR = 356, 2; MXN = 484, 2; TWD = 901, 2; ZAR = 710, 2;
    BRL = 986, 2; DKK = 208, 2; PLN = 985, 2; THB = 764, 2; ILS = 376, 2; IDR = 360, 2;
    CZK = 203, 2; AED = 784, 2; TRY = 949, 2; HUF = 348, 2; CLP = 152, 0; SAR = 682, 2;
    PHP = 608, 2; MYR = 458, 2; COP = 170, 2; RON = 946, 2; VND = 704, 0; ISK = 352, 0;
    UGX = 800, 0; XOF = 952, 0; EGP = 818, 2; NGN = 566, 2; PKR = 586, 2; KES = 404, 2;
    BHD = 48, 3; KWD = 414, 3; OMR = 512, 3; JOD = 400, 3; TND = 788, 3;
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown currency {given:?}: use an upper-case ISO 4217 code the ledger supports, e.g. \"USD\""
)]
pub struct UnknownCurrency {
    pub given: String,
}

impl FromStr for Currency {
    type Err = UnknownCurrency;

    fn from_str(code: &str) -> Result<Self, Self::Err> {
        Currency::ALL
            .iter()
            .copied()
            .find(|c| c.code() == code)
            .ok_or_else(|| UnknownCurrency {
                given: code.to_owned(),
            })
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.code())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        code.parse().map_err(serde::de::Error::custom)
    }
}

/// Why a decimal amount was refused. Each case has its own stable code.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("amount {given:?} is not a plain decimal number: write digits with at most one '.', e.g. \"12.50\"")]
    Malformed { given: String },
    #[error(
        "amount {given:?} has {scale} decimal places but {currency} allows at most {exponent}"
    )]
    TooManyDecimals {
        given: String,
        currency: Currency,
        scale: u32,
        exponent: u32,
    },
    #[error("amount {given:?} is negative: amounts are positive; the direction comes from debit and credit")]
    Negative { given: String },
    #[error("amount {given:?} is zero: send a positive amount")]
    Zero { given: String },
    #[error("amount {given:?} is too large: at most {max} {currency}")]
    Overflow {
        given: String,
        currency: Currency,
        max: String,
    },
}

impl AmountError {
    /// The stable, machine-readable code of this refusal.
    pub fn code(&self) -> &'static str {
        match self {
            AmountError::Malformed { .. } => "amount_malformed",
            AmountError::TooManyDecimals { .. } => "amount_too_many_decimals",
            AmountError::Negative { .. } => "amount_negative",
            AmountError::Zero { .. } => "amount_zero",
            AmountError::Overflow { .. } => "amount_overflow",
        }
    }
}

/// Whether zero is an acceptable amount where it is parsed (a partial post must not be zero; a
/// fee may be).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ZeroAmount {
    Allowed,
    Refused,
}

/// Parses an API amount such as `"12.50"` into minor units of `currency`.
///
/// Only `-?digits(.digits)?` is accepted: no exponent, sign `+`, separators or whitespace, so that
/// what a client sent and what the ledger books can never differ by interpretation. Trailing zeros
/// count as decimals (`"1.000"` is refused for USD), which catches unit mix-ups at the boundary.
pub fn parse_amount(given: &str, currency: Currency, zero: ZeroAmount) -> Result<u64, AmountError> {
    if !is_plain_decimal(given) {
        return Err(AmountError::Malformed {
            given: given.to_owned(),
        });
    }
    if given.starts_with('-') {
        return Err(AmountError::Negative {
            given: given.to_owned(),
        });
    }
    let overflow = || AmountError::Overflow {
        given: given.to_owned(),
        currency,
        max: format_amount(u64::MAX, currency),
    };
    // `from_str_exact` refuses rather than rounds values beyond 28 significant digits.
    let decimal = Decimal::from_str_exact(given).map_err(|_| overflow())?;
    let minor = amount_from_decimal(decimal, currency).map_err(|e| match e {
        AmountError::Overflow { .. } => overflow(),
        AmountError::TooManyDecimals {
            currency,
            scale,
            exponent,
            ..
        } => AmountError::TooManyDecimals {
            given: given.to_owned(),
            currency,
            scale,
            exponent,
        },
        other => other,
    })?;
    if minor == 0 && zero == ZeroAmount::Refused {
        return Err(AmountError::Zero {
            given: given.to_owned(),
        });
    }
    Ok(minor)
}

/// Converts an exact decimal into minor units of `currency`, refusing negatives, excess decimals
/// and values beyond `u64::MAX` minor units. Zero is returned as zero: callers decide on it.
pub fn amount_from_decimal(decimal: Decimal, currency: Currency) -> Result<u64, AmountError> {
    let given = || decimal.to_string();
    if decimal.is_sign_negative() && !decimal.is_zero() {
        return Err(AmountError::Negative { given: given() });
    }
    let exponent = currency.exponent();
    if decimal.scale() > exponent {
        return Err(AmountError::TooManyDecimals {
            given: given(),
            currency,
            scale: decimal.scale(),
            exponent,
        });
    }
    let overflow = || AmountError::Overflow {
        given: given(),
        currency,
        max: format_amount(u64::MAX, currency),
    };
    let mantissa = decimal.mantissa().unsigned_abs();
    let factor = 10u128.pow(exponent - decimal.scale());
    let minor = mantissa.checked_mul(factor).ok_or_else(overflow)?;
    u64::try_from(minor).map_err(|_| overflow())
}

/// The exact decimal value of `amount_minor` minor units of `currency`.
pub fn amount_to_decimal(amount_minor: u64, currency: Currency) -> Decimal {
    Decimal::from_i128_with_scale(i128::from(amount_minor), currency.exponent())
}

/// Formats minor units as the API's decimal string, always with the currency's full scale
/// (`1250` USD is `"12.50"`, `5` JPY is `"5"`, `1` BHD is `"0.001"`).
pub fn format_amount(amount_minor: u64, currency: Currency) -> String {
    amount_to_decimal(amount_minor, currency).to_string()
}

fn is_plain_decimal(s: &str) -> bool {
    let digits = s.strip_prefix('-').unwrap_or(s);
    let (whole, fraction) = match digits.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (digits, None),
    };
    let all_digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    all_digits(whole) && fraction.is_none_or(all_digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponents_follow_iso_4217() {
        assert_eq!(Currency::USD.exponent(), 2);
        assert_eq!(Currency::JPY.exponent(), 0);
        assert_eq!(Currency::KRW.exponent(), 0);
        assert_eq!(Currency::BHD.exponent(), 3);
        assert_eq!(Currency::KWD.exponent(), 3);
        assert!(Currency::ALL.len() >= 30);
    }

    #[test]
    fn codes_round_trip_and_are_unique() {
        for (i, c) in Currency::ALL.iter().enumerate() {
            assert_eq!(c.code().parse::<Currency>(), Ok(*c));
            for other in &Currency::ALL[i + 1..] {
                assert_ne!(c.code(), other.code());
                assert_ne!(c.numeric(), other.numeric());
            }
        }
        assert!("usd".parse::<Currency>().is_err());
        assert!("XXX".parse::<Currency>().is_err());
    }

    #[test]
    fn parses_amounts_into_minor_units() {
        let p = |s, c| parse_amount(s, c, ZeroAmount::Refused);
        assert_eq!(p("12.50", Currency::USD), Ok(1250));
        assert_eq!(p("12", Currency::USD), Ok(1200));
        assert_eq!(p("0.01", Currency::USD), Ok(1));
        assert_eq!(p("1500", Currency::JPY), Ok(1500));
        assert_eq!(p("1.234", Currency::BHD), Ok(1234));
        assert_eq!(p("0.001", Currency::KWD), Ok(1));
    }

    #[test]
    fn refuses_too_many_decimals() {
        let err = parse_amount("1.005", Currency::USD, ZeroAmount::Refused).unwrap_err();
        assert_eq!(err.code(), "amount_too_many_decimals");
        let err = parse_amount("1.5", Currency::JPY, ZeroAmount::Refused).unwrap_err();
        assert_eq!(err.code(), "amount_too_many_decimals");
        assert!(err.to_string().contains("JPY allows at most 0"));
    }

    #[test]
    fn refuses_negative_amounts() {
        let err = parse_amount("-1.00", Currency::USD, ZeroAmount::Allowed).unwrap_err();
        assert_eq!(err.code(), "amount_negative");
    }

    #[test]
    fn refuses_zero_only_where_not_allowed() {
        let err = parse_amount("0.00", Currency::USD, ZeroAmount::Refused).unwrap_err();
        assert_eq!(err.code(), "amount_zero");
        assert_eq!(parse_amount("0", Currency::USD, ZeroAmount::Allowed), Ok(0));
    }

    #[test]
    fn refuses_overflow() {
        let max = format_amount(u64::MAX, Currency::USD);
        assert_eq!(
            parse_amount(&max, Currency::USD, ZeroAmount::Refused),
            Ok(u64::MAX)
        );
        for too_big in [
            "184467440737095516.16",
            "99999999999999999999999999999999999",
        ] {
            let err = parse_amount(too_big, Currency::USD, ZeroAmount::Refused).unwrap_err();
            assert_eq!(err.code(), "amount_overflow", "{too_big}");
        }
    }

    #[test]
    fn refuses_anything_but_plain_decimals() {
        for bad in [
            "", ".", "1.", ".5", "+1", " 1", "1 ", "1e3", "1_000", "1,00", "0x10", "NaN", "--1",
        ] {
            let err = parse_amount(bad, Currency::USD, ZeroAmount::Allowed).unwrap_err();
            assert_eq!(err.code(), "amount_malformed", "{bad:?}");
        }
    }

    #[test]
    fn formats_with_the_currency_scale() {
        assert_eq!(format_amount(1250, Currency::USD), "12.50");
        assert_eq!(format_amount(5, Currency::JPY), "5");
        assert_eq!(format_amount(1, Currency::BHD), "0.001");
        assert_eq!(format_amount(0, Currency::USD), "0.00");
    }
}
