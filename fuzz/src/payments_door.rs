//! The payments door (`tally.node.v1.PaymentsLedger`): payloads a gateway sends a node, and the
//! answers a node sends back, decoded by the one codec both ends use.

use tally_proto::node as pb;
use tally_proto::payments_node_codec as codec;

/// The first byte picks the message, the rest is its payload in the current encoding.
pub fn payments_door(data: &[u8]) {
    let Some((&kind, payload)) = data.split_first() else {
        return;
    };
    let payload = payload.to_vec();
    let encoding = codec::ENCODING;
    match kind % 6 {
        0 => {
            let _ = codec::commands_of(&pb::EncodedCommands {
                encoding,
                commands: payload,
            });
        }
        1 => {
            let _ = codec::idempotency_commands_of(&pb::EncodedCommands {
                encoding,
                commands: payload,
            });
        }
        2 => {
            let _ = codec::query_of(&pb::EncodedQuery {
                encoding,
                query: payload,
            });
        }
        3 => {
            let _ = codec::results_of(&pb::EncodedResults {
                encoding,
                results: payload,
            });
        }
        4 => {
            let _ = codec::idempotency_results_of(&pb::EncodedResults {
                encoding,
                results: payload,
            });
        }
        _ => {
            let _ = codec::query_result_of(&pb::EncodedQueryResult {
                encoding,
                result: payload,
            });
        }
    }
}
