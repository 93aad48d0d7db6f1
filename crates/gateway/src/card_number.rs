//! Refusal of card numbers in request fields. Tally stores PSP tokens only; a PAN that reaches
//! the ledger or a log would put the whole system in PCI scope, so the gateway refuses any field
//! that looks like one before the request goes further.
//!
//! "Looks like one": 13 to 19 digits, written together or grouped by single spaces or dashes
//! (`4242 4242 4242 4242`, `3782-822463-10005`), that pass the Luhn check. Candidates are whole
//! digit groups, so a PAN typed next to other numbers (`order 17 4242 4242 4242 4242`) is still
//! found, while a run of 20 or more digits with no separator is a longer number, not a PAN.
//! About one arbitrary 13–19 digit number in ten passes Luhn (a millisecond timestamp, a long
//! order id); refusing those is the price of never letting a real PAN through.

/// Fewest digits in a card number (ISO/IEC 7812 allows 8, but no major network issues fewer
/// than 13, and shorter runs would refuse too many ordinary numbers).
pub const CARD_NUMBER_DIGITS_MIN: usize = 13;
/// Most digits in a card number (ISO/IEC 7812).
pub const CARD_NUMBER_DIGITS_MAX: usize = 19;

/// Where a card-number-like value sits in a string: byte offsets, half-open, from its first
/// digit to its last (inner separators included). Always on `char` boundaries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

/// A request field holds something that looks like a card number. Names the field only: the
/// digits are never echoed, not even in the error.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("field `{field}` looks like a card number; send the PSP's payment token instead and never a card number")]
pub struct CardNumberFound {
    /// The field path as given by the caller, with any card-number-like digits in it masked.
    pub field: String,
}

impl CardNumberFound {
    /// The stable, machine-readable code of this refusal.
    pub fn code(&self) -> &'static str {
        "card_number_refused"
    }
}

/// The first (leftmost) card-number-like value in `text`, if any.
pub fn find_card_number(text: &str) -> Option<Span> {
    let bytes = text.as_bytes();
    (0..bytes.len())
        .filter(|&i| is_group_start(bytes, i))
        .find_map(|start| candidate_from(bytes, start))
}

/// Refuses the first field whose value looks like a card number. Callers pass every free-text
/// field of a request (metadata values and keys, descriptions, references) with its path.
pub fn refuse_card_numbers<'a>(
    fields: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<(), CardNumberFound> {
    for (field, value) in fields {
        if find_card_number(value).is_some() {
            return Err(CardNumberFound {
                field: mask_card_numbers(field),
            });
        }
    }
    Ok(())
}

fn is_separator(byte: u8) -> bool {
    byte == b' ' || byte == b'-'
}

fn is_group_start(bytes: &[u8], i: usize) -> bool {
    bytes[i].is_ascii_digit() && (i == 0 || !bytes[i - 1].is_ascii_digit())
}

/// The shortest run of whole digit groups starting at `start` that is a Luhn-valid 13–19 digit
/// number. Reads at most 19 digits and 18 separators, so the scan of a text stays linear.
fn candidate_from(bytes: &[u8], start: usize) -> Option<Span> {
    let mut digits = [0u8; CARD_NUMBER_DIGITS_MAX];
    let mut count = 0;
    let mut i = start;
    loop {
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            if count == CARD_NUMBER_DIGITS_MAX {
                return None;
            }
            digits[count] = bytes[i] - b'0';
            count += 1;
            i += 1;
        }
        if count >= CARD_NUMBER_DIGITS_MIN && luhn_valid(&digits[..count]) {
            return Some(Span { start, end: i });
        }
        let grouped_further =
            i + 1 < bytes.len() && is_separator(bytes[i]) && bytes[i + 1].is_ascii_digit();
        if !grouped_further {
            return None;
        }
        i += 1;
    }
}

/// The Luhn (mod 10) check every card network uses for its check digit.
fn luhn_valid(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(position, &digit)| {
            let digit = u32::from(digit);
            if position % 2 == 1 {
                let doubled = digit * 2;
                if doubled > 9 {
                    doubled - 9
                } else {
                    doubled
                }
            } else {
                digit
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// A field path can itself carry a PAN (a metadata key); mask its digits so the error, which
/// may be logged and is returned to the client, never carries one.
fn mask_card_numbers(text: &str) -> String {
    let mut masked = text.to_owned();
    while let Some(span) = find_card_number(&masked) {
        let stars: String = masked[span.start..span.end]
            .chars()
            .map(|c| if c.is_ascii_digit() { '*' } else { c })
            .collect();
        masked.replace_range(span.start..span.end, &stars);
    }
    masked
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `payload` followed by the digit that makes it pass Luhn.
    fn with_check_digit(payload: &str) -> String {
        (0..=9)
            .map(|d| format!("{payload}{d}"))
            .find(|candidate| {
                let digits: Vec<u8> = candidate.bytes().map(|b| b - b'0').collect();
                luhn_valid(&digits)
            })
            .expect("exactly one check digit fits")
    }

    fn found(text: &str) -> Option<&str> {
        find_card_number(text).map(|span| &text[span.start..span.end])
    }

    #[test]
    fn finds_network_test_card_numbers() {
        assert_eq!(found("4242424242424242"), Some("4242424242424242"));
        assert_eq!(found("5555 5555 5555 4444"), Some("5555 5555 5555 4444"));
        assert_eq!(found("378282246310005"), Some("378282246310005"));
        assert_eq!(found("3782-822463-10005"), Some("3782-822463-10005"));
        assert_eq!(found("4000-0566 5566-5556"), Some("4000-0566 5566-5556"));
    }

    #[test]
    fn finds_card_numbers_inside_longer_text() {
        let text = "please charge card 4242 4242 4242 4242, exp 12/34";
        assert_eq!(found(text), Some("4242 4242 4242 4242"));
        assert_eq!(found("pan:4242424242424242;"), Some("4242424242424242"));
        assert_eq!(found("x4242424242424242y"), Some("4242424242424242"));
        assert_eq!(
            found("carte n° 5555555555554444 €"),
            Some("5555555555554444")
        );
    }

    #[test]
    fn finds_a_card_number_grouped_next_to_other_numbers() {
        assert_eq!(
            found("order 17 4242 4242 4242 4242"),
            Some("4242 4242 4242 4242")
        );
        assert_eq!(found("1-4242424242424242"), Some("4242424242424242"));
    }

    #[test]
    fn ignores_luhn_invalid_runs() {
        assert_eq!(found("4242424242424241"), None);
        assert_eq!(found("5555 5555 5555 4445"), None);
        assert_eq!(found("378282246310006"), None);
    }

    #[test]
    fn ignores_runs_shorter_than_thirteen_digits() {
        let twelve = with_check_digit("42424242424");
        assert_eq!(twelve.len(), 12);
        assert_eq!(found(&twelve), None);
        let thirteen = with_check_digit("424242424242");
        assert_eq!(found(&thirteen), Some(thirteen.as_str()));
    }

    #[test]
    fn ignores_digits_joined_by_anything_but_single_spaces_or_dashes() {
        assert_eq!(found("4242  4242 4242 4242"), None);
        assert_eq!(found("4242--4242-4242-4242"), None);
        assert_eq!(found("4242.4242.4242.4242"), None);
        assert_eq!(found("4242/4242/4242/4242"), None);
    }

    #[test]
    fn ignores_a_longer_number_with_no_separator() {
        // 4242424242424242 with four more digits in front is a 20-digit number, not a PAN.
        assert_eq!(found("12344242424242424242"), None);
    }

    #[test]
    fn ignores_phone_numbers_and_order_ids_that_fail_luhn() {
        for text in [
            "+1 415-555-0132",
            "+44 20 7946 0958",
            "+49 30 1234567890",
            "order ORD-2024-000123456781",
            "invoice 20240611-0000123",
            "ts 1718000000001",
            "amount 1234567.89 EUR",
        ] {
            assert_eq!(found(text), None, "{text}");
        }
    }

    #[test]
    fn refusal_names_the_field_and_never_the_digits() {
        let err = refuse_card_numbers([
            ("description", "two mugs"),
            ("metadata.note", "card 4242 4242 4242 4242"),
            ("metadata.other", "5555555555554444"),
        ])
        .unwrap_err();
        assert_eq!(err.field, "metadata.note");
        assert_eq!(err.code(), "card_number_refused");
        let message = err.to_string();
        assert!(message.contains("metadata.note"), "{message}");
        assert!(!message.contains("4242"), "{message}");
    }

    #[test]
    fn refusal_masks_a_card_number_in_the_field_path() {
        let err =
            refuse_card_numbers([("metadata.4242424242424242", "4242424242424242")]).unwrap_err();
        assert_eq!(err.field, "metadata.****************");
        assert!(!err.to_string().contains("4242"));
    }

    #[test]
    fn fields_without_card_numbers_pass() {
        assert_eq!(
            refuse_card_numbers([("a", "hello"), ("b", "+1 415-555-0132"), ("c", "")]),
            Ok(())
        );
        assert_eq!(refuse_card_numbers(std::iter::empty()), Ok(()));
    }

    fn luhn_valid_number() -> impl Strategy<Value = String> {
        proptest::string::string_regex("[0-9]{12,18}")
            .expect("valid regex")
            .prop_map(|payload| with_check_digit(&payload))
    }

    proptest! {
        #[test]
        fn any_luhn_valid_13_to_19_digit_string_is_found(number in luhn_valid_number()) {
            prop_assert_eq!(find_card_number(&number), Some(Span { start: 0, end: number.len() }));
        }

        #[test]
        fn any_luhn_valid_number_is_found_grouped_and_embedded(
            number in luhn_valid_number(),
            separators in proptest::collection::vec(prop_oneof![Just(""), Just(" "), Just("-")], 19),
            prefix in "[a-zA-Z:=]{0,8}( |[a-z]{1,3} )?",
            suffix in "( |,)?[a-zA-Z]{0,8}",
        ) {
            let mut grouped = String::new();
            for (i, digit) in number.chars().enumerate() {
                if i > 0 {
                    grouped.push_str(separators[i]);
                }
                grouped.push(digit);
            }
            let text = format!("{prefix}{grouped}{suffix}");
            // Found from its first digit; the match may stop at an earlier group boundary
            // when a shorter prefix of the groups is itself Luhn-valid.
            let span = find_card_number(&text);
            prop_assert!(span.is_some(), "not found in {:?}", text);
            let span = span.unwrap();
            prop_assert_eq!(span.start, prefix.len());
            prop_assert!(span.end <= prefix.len() + grouped.len());
        }

        #[test]
        fn any_match_is_a_luhn_valid_grouped_13_to_19_digit_number(text in "[0-9 a-z-]{0,80}") {
            if let Some(span) = find_card_number(&text) {
                let matched = &text[span.start..span.end];
                prop_assert!(!matched.contains("  ") && !matched.contains("--"));
                let digits: Vec<u8> = matched.bytes().filter(u8::is_ascii_digit).map(|b| b - b'0').collect();
                prop_assert!((CARD_NUMBER_DIGITS_MIN..=CARD_NUMBER_DIGITS_MAX).contains(&digits.len()));
                prop_assert!(luhn_valid(&digits));
            }
        }
    }
}
