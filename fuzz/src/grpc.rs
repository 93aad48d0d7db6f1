//! gRPC requests: protobuf bytes as a client sends them, decoded by prost and converted into
//! the ledger's and the payments domain's types by the one conversion of each door. The ledger
//! client's conversions of a node's answers are fuzzed too.

use prost::Message;
use tally_gateway::api::{convert, parse_create};
use tally_ledger::payment::{CheckoutId, MerchantId};
use tally_ledger::Currency;
use tally_proto::convert::{self as ledger_convert, BalanceQuery, HistoryQuery};
use tally_proto::ledger as pb;
use tally_proto::payments as payments_pb;

/// The first byte picks the message; the rest is its protobuf encoding.
pub fn grpc_ledger(data: &[u8]) {
    let Some((&kind, bytes)) = data.split_first() else {
        return;
    };
    match kind % 9 {
        0 => {
            if let Ok(request) = pb::CreateAccountsRequest::decode(bytes) {
                let _ = ledger_convert::accounts_from_pb(request.accounts);
            }
        }
        1 => {
            if let Ok(request) = pb::CreateTransfersRequest::decode(bytes) {
                // Holds exist in some currency for even ids and not at all for odd ones.
                let _ = ledger_convert::transfers_from_pb(request.transfers, |id| {
                    (id.0 % 2 == 0).then_some(Currency::USD)
                });
            }
        }
        2 => {
            if let Ok(request) = pb::CloseAccountsRequest::decode(bytes) {
                let _ = ledger_convert::close_accounts_from_pb(request.accounts);
            }
        }
        3 => {
            if let Ok(request) = pb::LookupRequest::decode(bytes) {
                let _ = ledger_convert::lookup_account_ids(&request);
                let _ = ledger_convert::lookup_transfer_ids(&request);
            }
        }
        4 => {
            if let Ok(request) = pb::HistoryRequest::decode(bytes) {
                let _ = HistoryQuery::try_from(request);
            }
        }
        5 => {
            if let Ok(request) = pb::BalanceRequest::decode(bytes) {
                let _ = BalanceQuery::try_from(request);
            }
        }
        6 => {
            if let Ok(response) = pb::LookupAccountsResponse::decode(bytes) {
                for account in response.accounts {
                    let _ = tally_ledger::Account::try_from(account);
                }
            }
        }
        7 => {
            if let Ok(response) = pb::LookupTransfersResponse::decode(bytes) {
                for transfer in response.transfers {
                    let _ = tally_ledger::Transfer::try_from(transfer);
                }
            }
        }
        _ => {
            if let Ok(response) = pb::HistoryResponse::decode(bytes) {
                let currency = response
                    .currency
                    .parse::<Currency>()
                    .unwrap_or(Currency::USD);
                for entry in response.entries {
                    let _ = ledger_convert::history_entry_from_pb(entry, currency);
                }
            }
        }
    }
}

/// The payments API's requests whose conversion is pure (the rest read the ledger first).
pub fn grpc_payments(data: &[u8]) {
    let Some((&kind, bytes)) = data.split_first() else {
        return;
    };
    match kind % 4 {
        0 => {
            if let Ok(request) = payments_pb::CreatePaymentRequest::decode(bytes) {
                if let Ok(input) = parse_create(&request) {
                    let sum = input
                        .orders
                        .iter()
                        .map(|order| u128::from(order.amount_minor))
                        .sum::<u128>();
                    assert_eq!(sum, u128::from(input.total_minor));
                }
            }
        }
        1 => {
            if let Ok(request) = payments_pb::ConfirmPaymentRequest::decode(bytes) {
                let _ = convert::id::<CheckoutId>("checkout_id", &request.checkout_id);
                let _ = convert::method_from_pb(request.payment_method.as_ref());
            }
        }
        2 => {
            if let Ok(request) = payments_pb::UpdateFeesRequest::decode(bytes) {
                let _ = convert::id::<MerchantId>("merchant_id", &request.merchant_id);
                let _ = convert::fees_from_pb(request.fees.as_ref());
            }
        }
        _ => {
            if let Ok(request) = payments_pb::CapturePaymentRequest::decode(bytes) {
                // Currencies with 2, 0 and 3 decimal places.
                let code = ["USD", "JPY", "KWD"][usize::from(kind / 4) % 3];
                if let Ok(currency) = convert::currency("currency", code) {
                    let _ = convert::amount("amount", &request.amount, currency);
                }
                let _ = convert::capture_from_pb(i32::from(kind) - 128);
            }
        }
    }
}
