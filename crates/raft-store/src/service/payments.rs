//! `tally.node.v1.PaymentsLedger` on a node: the gateway's door to the payments state. Payment
//! commands ride the same group commit as transfers; queries wait for the shared read barrier.

use super::status_of;
use crate::batcher::Batcher;
use crate::kv::Kv;
use crate::ledger_state::KvLedger;
use crate::reads::ReadGate;
use std::sync::Arc;
use tally_ledger::payment::query_payments;
use tally_ledger::{Command, CommandResult};
use tally_proto::node::payments_ledger_server::{PaymentsLedger, PaymentsLedgerServer};
use tally_proto::node::{EncodedCommands, EncodedQuery, EncodedQueryResult, EncodedResults};
use tally_proto::payments_node_codec::{
    self as codec, IdempotencyAnswer, IdempotencyCommand, IdempotencyResult, PaymentResult,
};
use tonic::{Request, Response, Status};

pub struct PaymentsService<K: Kv> {
    kv: Arc<K>,
    batcher: Batcher,
    reads: ReadGate,
}

impl<K: Kv> PaymentsService<K> {
    pub fn new(kv: Arc<K>, batcher: Batcher, reads: ReadGate) -> Self {
        PaymentsService { kv, batcher, reads }
    }

    pub fn into_service(self) -> PaymentsLedgerServer<Self> {
        PaymentsLedgerServer::new(self)
            .max_decoding_message_size(tally_proto::MESSAGE_BYTES_MAX)
            .max_encoding_message_size(tally_proto::MESSAGE_BYTES_MAX)
    }
}

#[tonic::async_trait]
impl<K: Kv> PaymentsLedger for PaymentsService<K> {
    async fn execute(
        &self,
        request: Request<EncodedCommands>,
    ) -> Result<Response<EncodedResults>, Status> {
        let commands = codec::commands_of(request.get_ref())?;
        if commands.is_empty() {
            return Ok(Response::new(codec::results_response(&[])));
        }
        let commands: Vec<Command> = commands
            .into_iter()
            .map(|command| Command::Payment(Box::new(command)))
            .collect();
        let results = self.batcher.submit(commands).await.map_err(status_of)?;
        let results: Vec<PaymentResult> = results
            .into_iter()
            .map(|result| match result {
                CommandResult::Payment(result) => *result,
                // `apply` answers each command with a result of its own kind.
                other => unreachable!("a payment command answered {other:?}"),
            })
            .collect();
        Ok(Response::new(codec::results_response(&results)))
    }

    async fn idempotency(
        &self,
        request: Request<EncodedCommands>,
    ) -> Result<Response<EncodedResults>, Status> {
        let commands = codec::idempotency_commands_of(request.get_ref())?;
        if commands.is_empty() {
            return Ok(Response::new(codec::idempotency_results_response(&[])));
        }
        let commands: Vec<Command> = commands
            .into_iter()
            .map(|command| match command {
                IdempotencyCommand::Begin(begin) => Command::BeginIdempotent(begin),
                IdempotencyCommand::Complete(complete) => Command::CompleteIdempotent(complete),
            })
            .collect();
        let results = self.batcher.submit(commands).await.map_err(status_of)?;
        let results: Vec<IdempotencyResult> = results
            .into_iter()
            .map(|result| match result {
                CommandResult::BeginIdempotent(result) => result.map(IdempotencyAnswer::Begun),
                CommandResult::CompleteIdempotent(result) => {
                    result.map(IdempotencyAnswer::Completed)
                }
                // `apply` answers each command with a result of its own kind.
                other => unreachable!("an idempotency command answered {other:?}"),
            })
            .collect();
        Ok(Response::new(codec::idempotency_results_response(&results)))
    }

    async fn query(
        &self,
        request: Request<EncodedQuery>,
    ) -> Result<Response<EncodedQueryResult>, Status> {
        let query = codec::query_of(request.get_ref())?;
        self.reads.linearize().await.map_err(status_of)?;
        let result = query_payments(&KvLedger::snapshot(&*self.kv), &query);
        Ok(Response::new(codec::query_response(&result)))
    }
}
