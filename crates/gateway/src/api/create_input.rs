//! What a create-payment request says, parsed and checked without touching the ledger: the
//! card-number scan, metadata bounds, ids, method, capture mode and orders. Pure, so the JSON
//! facade's and gRPC's inputs reach it alike and the fuzz targets (`fuzz/`) run it directly.

use super::convert::{self, id};
use super::error::ApiError;
use crate::card_number::refuse_card_numbers;
use tally_ledger::payment::{BuyerId, CaptureMode, CheckoutId, NewOrder, PaymentMethod};
use tally_ledger::Currency;
use tally_proto::payments as pb;

/// Metadata entries a payment request may carry.
pub const METADATA_ENTRIES_MAX: usize = 16;
/// Bytes of one metadata key or value.
pub const METADATA_VALUE_BYTES_MAX: usize = 512;

/// A create request's contents, every field valid on its own; whether the checkout exists, the
/// risk check and the ledger's own rules come after.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateInput {
    pub checkout_id: CheckoutId,
    pub buyer_id: BuyerId,
    /// `None`: an intent, confirmed with a method later.
    pub method: Option<PaymentMethod>,
    pub capture: CaptureMode,
    /// At least one, all in `currency`.
    pub orders: Vec<NewOrder>,
    pub currency: Currency,
    /// The orders' amounts added up (checked, never wrapping).
    pub total_minor: u64,
}

pub fn parse_create(request: &pb::CreatePaymentRequest) -> Result<CreateInput, ApiError> {
    refuse_cards_in_create(request)?;
    if request.metadata.len() > METADATA_ENTRIES_MAX
        || request
            .metadata
            .iter()
            .any(|(k, v)| k.len() > METADATA_VALUE_BYTES_MAX || v.len() > METADATA_VALUE_BYTES_MAX)
    {
        return Err(ApiError::invalid(
            "metadata_too_large",
            format!("metadata holds at most {METADATA_ENTRIES_MAX} entries of at most {METADATA_VALUE_BYTES_MAX} bytes each"),
        ));
    }
    let checkout_id: CheckoutId = id("checkout_id", &request.checkout_id)?;
    let buyer_id: BuyerId = id("buyer_id", &request.buyer_id)?;
    let method = convert::method_from_pb(request.payment_method.as_ref())?;
    let capture = convert::capture_from_pb(request.capture_method)?;
    if request.orders.is_empty() {
        return Err(ApiError::invalid(
            "order_count",
            "orders is empty: a checkout needs at least one order",
        ));
    }
    let mut orders: Vec<NewOrder> = Vec::with_capacity(request.orders.len());
    for (index, order) in request.orders.iter().enumerate() {
        let field = |name: &str| format!("orders[{index}].{name}");
        let currency = convert::currency(&field("currency"), &order.currency)?;
        if orders
            .first()
            .is_some_and(|first| first.currency != currency)
        {
            return Err(ApiError::invalid(
                "mixed_currencies",
                "all orders of a checkout must be in one currency: split it into several checkouts",
            ));
        }
        orders.push(NewOrder {
            order_id: id(&field("order_id"), &order.order_id)?,
            seller_id: id(&field("seller_id"), &order.seller_id)?,
            amount_minor: convert::amount(&field("amount"), &order.amount, currency)?,
            currency,
        });
    }
    let currency = orders[0].currency;
    let total_minor = orders
        .iter()
        .try_fold(0u64, |sum, order| sum.checked_add(order.amount_minor))
        .ok_or_else(|| ApiError::invalid("amount_overflow", "the orders' total is too large"))?;
    Ok(CreateInput {
        checkout_id,
        buyer_id,
        method,
        capture,
        orders,
        currency,
        total_minor,
    })
}

/// Every free-text field of a create request, scanned before anything else is looked at.
fn refuse_cards_in_create(request: &pb::CreatePaymentRequest) -> Result<(), ApiError> {
    let mut fields: Vec<(String, &str)> = vec![
        ("checkout_id".to_string(), request.checkout_id.as_str()),
        ("buyer_id".to_string(), request.buyer_id.as_str()),
    ];
    match request
        .payment_method
        .as_ref()
        .and_then(|m| m.method.as_ref())
    {
        Some(pb::payment_method::Method::CardToken(token)) => {
            fields.push(("payment_method.card_token".to_string(), token.as_str()));
        }
        Some(pb::payment_method::Method::Hosted(hosted)) => {
            fields.push((
                "payment_method.return_url".to_string(),
                hosted.return_url.as_str(),
            ));
        }
        _ => {}
    }
    for (index, order) in request.orders.iter().enumerate() {
        fields.push((format!("orders[{index}].order_id"), order.order_id.as_str()));
        fields.push((
            format!("orders[{index}].seller_id"),
            order.seller_id.as_str(),
        ));
    }
    for (key, value) in &request.metadata {
        fields.push(("metadata key".to_string(), key.as_str()));
        fields.push((format!("metadata[{key}]"), value.as_str()));
    }
    refuse_cards(fields.iter().map(|(field, value)| (field.as_str(), *value)))
}

/// A card number in any of `fields` (named by the first field it is found in) as an API error.
pub fn refuse_cards<'a>(
    fields: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<(), ApiError> {
    refuse_card_numbers(fields).map_err(|found| {
        ApiError::invalid(
            found.code(),
            format!(
                "{} looks like a card number; send cards as PSP tokens only, never their numbers",
                found.field
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(id: &str, amount: &str, currency: &str) -> pb::NewOrder {
        pb::NewOrder {
            order_id: id.to_string(),
            seller_id: "seller-1".to_string(),
            amount: amount.to_string(),
            currency: currency.to_string(),
        }
    }

    fn request(orders: Vec<pb::NewOrder>) -> pb::CreatePaymentRequest {
        pb::CreatePaymentRequest {
            checkout_id: "c1".to_string(),
            buyer_id: "b1".to_string(),
            orders,
            ..Default::default()
        }
    }

    #[test]
    fn a_valid_request_parses_with_its_total() {
        let input = parse_create(&request(vec![
            order("o1", "1.50", "USD"),
            order("o2", "2", "USD"),
        ]))
        .unwrap();
        assert_eq!(input.total_minor, 350);
        assert_eq!(input.currency, Currency::USD);
        assert_eq!(input.method, None);
    }

    #[test]
    fn mixed_currencies_empty_orders_and_overflowing_totals_are_refused() {
        let mixed = parse_create(&request(vec![
            order("o1", "1", "USD"),
            order("o2", "1", "EUR"),
        ]));
        assert_eq!(mixed.unwrap_err().code, "mixed_currencies");
        assert_eq!(
            parse_create(&request(vec![])).unwrap_err().code,
            "order_count"
        );
        let huge = "184467440737095516.15";
        let overflow = parse_create(&request(vec![
            order("o1", huge, "USD"),
            order("o2", huge, "USD"),
        ]));
        assert_eq!(overflow.unwrap_err().code, "amount_overflow");
    }

    #[test]
    fn a_card_number_in_metadata_is_refused_before_the_ids_are_read() {
        let mut bad = request(vec![]);
        bad.checkout_id = "not a valid id!".to_string();
        bad.metadata
            .insert("note".to_string(), "4242424242424242".to_string());
        assert_eq!(parse_create(&bad).unwrap_err().code, "card_number_refused");
    }
}
