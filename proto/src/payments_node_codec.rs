//! The one encoding of `tally.node.v1.PaymentsLedger` payloads: postcard over the shared
//! `tally_ledger::payment` types, versioned by `ENCODING`. Both ends use these functions, so
//! the version check and the error a client sees are defined once.

use crate::convert::status_with_code;
use crate::node as pb;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tally_ledger::limits::BATCH_COMMANDS_MAX;
use tally_ledger::payment::{
    PaymentCommand, PaymentError, PaymentOutcome, PaymentQuery, PaymentQueryResult,
};
use tally_ledger::{
    BeginIdempotent, CompleteIdempotent, IdempotencyBegun, IdempotencyCompleted, IdempotencyError,
};
use tonic::{Code, Status};

/// Version 2: postcard 1.x of the `tally-ledger` types of this workspace version (version 1
/// lacked API keys' signing secrets).
pub const ENCODING: u32 = 2;

pub type PaymentResult = Result<PaymentOutcome, PaymentError>;

fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    // The payment types are plain data (no maps with non-string keys, no custom serializers
    // that can fail), so encoding into a Vec cannot fail.
    postcard::to_allocvec(value).expect("payment values encode")
}

fn decode<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T, Status> {
    postcard::from_bytes(bytes).map_err(|error| {
        status_with_code(
            Code::InvalidArgument,
            "payload_undecodable",
            format!("{what} is not a valid encoding-{ENCODING} payload: {error}"),
        )
    })
}

/// Checks the encoding of an answer (client side): a node of another release answers in its own.
fn check_answer_encoding(encoding: u32) -> Result<(), Status> {
    if encoding != ENCODING {
        return Err(status_with_code(
            Code::Internal,
            "encoding_unsupported",
            format!("the node answered in payload encoding {encoding}; this gateway speaks {ENCODING}: run gateways and nodes of one release"),
        ));
    }
    Ok(())
}

fn check_encoding(encoding: u32) -> Result<(), Status> {
    if encoding != ENCODING {
        // Not FAILED_PRECONDITION: clients read that code as "not the leader" and retry.
        return Err(status_with_code(
            Code::InvalidArgument,
            "encoding_unsupported",
            format!("payload encoding {encoding} is not supported: this node speaks {ENCODING}; upgrade the nodes before the gateways"),
        ));
    }
    Ok(())
}

pub fn commands_request(commands: &[PaymentCommand]) -> pb::EncodedCommands {
    pb::EncodedCommands {
        encoding: ENCODING,
        commands: encode(commands),
    }
}

/// Decodes and bounds a command request (server side).
pub fn commands_of(request: &pb::EncodedCommands) -> Result<Vec<PaymentCommand>, Status> {
    check_encoding(request.encoding)?;
    let commands: Vec<PaymentCommand> = decode("commands", &request.commands)?;
    if commands.len() > BATCH_COMMANDS_MAX {
        return Err(status_with_code(
            Code::InvalidArgument,
            "batch_too_large",
            format!(
                "{} commands in one request: send at most {BATCH_COMMANDS_MAX}",
                commands.len()
            ),
        ));
    }
    Ok(commands)
}

pub fn results_response(results: &[PaymentResult]) -> pb::EncodedResults {
    pb::EncodedResults {
        results: encode(results),
        encoding: ENCODING,
    }
}

pub fn results_of(response: &pb::EncodedResults) -> Result<Vec<PaymentResult>, Status> {
    check_answer_encoding(response.encoding)?;
    decode("results", &response.results)
}

/// A gateway's idempotency-key command (see `tally_ledger::idempotency`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub enum IdempotencyCommand {
    Begin(BeginIdempotent),
    Complete(CompleteIdempotent),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub enum IdempotencyAnswer {
    Begun(IdempotencyBegun),
    Completed(IdempotencyCompleted),
}

pub type IdempotencyResult = Result<IdempotencyAnswer, IdempotencyError>;

pub fn idempotency_request(commands: &[IdempotencyCommand]) -> pb::EncodedCommands {
    pb::EncodedCommands {
        encoding: ENCODING,
        commands: encode(commands),
    }
}

/// Decodes and bounds an idempotency request (server side).
pub fn idempotency_commands_of(
    request: &pb::EncodedCommands,
) -> Result<Vec<IdempotencyCommand>, Status> {
    check_encoding(request.encoding)?;
    let commands: Vec<IdempotencyCommand> = decode("idempotency commands", &request.commands)?;
    if commands.len() > BATCH_COMMANDS_MAX {
        return Err(status_with_code(
            Code::InvalidArgument,
            "batch_too_large",
            format!(
                "{} commands in one request: send at most {BATCH_COMMANDS_MAX}",
                commands.len()
            ),
        ));
    }
    Ok(commands)
}

pub fn idempotency_results_response(results: &[IdempotencyResult]) -> pb::EncodedResults {
    pb::EncodedResults {
        results: encode(results),
        encoding: ENCODING,
    }
}

pub fn idempotency_results_of(
    response: &pb::EncodedResults,
) -> Result<Vec<IdempotencyResult>, Status> {
    check_answer_encoding(response.encoding)?;
    decode("idempotency results", &response.results)
}

pub fn query_request(query: &PaymentQuery) -> pb::EncodedQuery {
    pb::EncodedQuery {
        encoding: ENCODING,
        query: encode(query),
    }
}

pub fn query_of(request: &pb::EncodedQuery) -> Result<PaymentQuery, Status> {
    check_encoding(request.encoding)?;
    decode("query", &request.query)
}

pub fn query_response(result: &PaymentQueryResult) -> pb::EncodedQueryResult {
    pb::EncodedQueryResult {
        result: encode(result),
        encoding: ENCODING,
    }
}

pub fn query_result_of(response: &pb::EncodedQueryResult) -> Result<PaymentQueryResult, Status> {
    check_answer_encoding(response.encoding)?;
    decode("query result", &response.result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_ledger::payment::{CheckoutId, OrderId};

    #[test]
    fn commands_round_trip_and_a_foreign_encoding_is_refused() {
        let commands = vec![PaymentCommand::ClaimOrder {
            order_id: OrderId::new("o1").unwrap(),
            lease_ms: 5_000,
        }];
        let request = commands_request(&commands);
        assert_eq!(commands_of(&request).unwrap(), commands);
        let foreign = pb::EncodedCommands {
            encoding: ENCODING + 1,
            ..request
        };
        let status = commands_of(&foreign).unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        let both = format!(
            "payload encoding {} is not supported: this node speaks {ENCODING}",
            ENCODING + 1
        );
        assert!(status.message().contains(&both), "{}", status.message());
    }

    #[test]
    fn an_answer_in_a_future_encoding_is_refused_naming_both_versions() {
        let answer = results_response(&[]);
        assert_eq!(results_of(&answer).unwrap(), vec![]);
        let foreign = pb::EncodedResults {
            encoding: ENCODING + 1,
            ..answer
        };
        let status = results_of(&foreign).unwrap_err();
        let both = format!(
            "payload encoding {}; this gateway speaks {ENCODING}",
            ENCODING + 1
        );
        assert!(status.message().contains(&both), "{}", status.message());
        let query_answer = pb::EncodedQueryResult {
            encoding: ENCODING + 1,
            result: Vec::new(),
        };
        assert!(query_result_of(&query_answer).is_err());
    }

    #[test]
    fn garbage_and_invalid_ids_are_refused_as_invalid_arguments() {
        let garbage = pb::EncodedQuery {
            encoding: ENCODING,
            query: vec![0xff, 0xff, 0xff],
        };
        assert_eq!(
            query_of(&garbage).unwrap_err().code(),
            tonic::Code::InvalidArgument
        );
        // A checkout id with a space decodes as a string but fails the id's own check.
        let bad_id = pb::EncodedQuery {
            encoding: ENCODING,
            query: postcard::to_allocvec(&(0u8, "bad id")).unwrap(),
        };
        assert_eq!(
            query_of(&bad_id).unwrap_err().code(),
            tonic::Code::InvalidArgument
        );
        let good = query_request(&PaymentQuery::Payment {
            checkout_id: CheckoutId::new("c1").unwrap(),
        });
        assert!(query_of(&good).is_ok());
    }
}
