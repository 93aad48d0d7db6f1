//! `tally.ledger.v1.Ledger` on a node.

use super::status_of;
use crate::batcher::Batcher;
use crate::kv::Kv;
use crate::ledger_state::KvLedger;
use crate::reads::ReadGate;
use crate::timekeeper::Timekeeper;
use std::sync::Arc;
use tally_ledger::{Command, Currency, LedgerRead, TransferId, TransferRecord};
use tally_proto::convert::{self, BalanceQuery, HistoryQuery, PreparedBatch};
use tally_proto::ledger::ledger_server::{Ledger, LedgerServer};
use tally_proto::ledger::{self as pb};
use tonic::{Request, Response, Status};

pub struct LedgerService<K: Kv> {
    kv: Arc<K>,
    batcher: Batcher,
    reads: ReadGate,
    timekeeper: Timekeeper<K>,
}

impl<K: Kv> LedgerService<K> {
    pub fn new(kv: Arc<K>, batcher: Batcher, reads: ReadGate, timekeeper: Timekeeper<K>) -> Self {
        LedgerService {
            kv,
            batcher,
            reads,
            timekeeper,
        }
    }

    /// A linearizable read of balances: every hold past its timeout is expired first.
    async fn linearize_balances(&self) -> Result<(), Status> {
        self.reads.linearize().await.map_err(status_of)?;
        self.timekeeper.settle_due().await.map_err(status_of)
    }

    pub fn into_service(self) -> LedgerServer<Self> {
        LedgerServer::new(self)
            .max_decoding_message_size(tally_proto::MESSAGE_BYTES_MAX)
            .max_encoding_message_size(tally_proto::MESSAGE_BYTES_MAX)
    }

    /// One consistent view per read request (a snapshot): balances of many accounts come from
    /// one state, never from both sides of a concurrent apply.
    fn view(&self) -> KvLedger<'_> {
        KvLedger::snapshot(&*self.kv)
    }

    /// Proposes the converted commands (refused chains never reach the log) and answers one
    /// result per request item.
    async fn submit(
        &self,
        batch: PreparedBatch<Command>,
    ) -> Result<Response<pb::BatchResponse>, Status> {
        let PreparedBatch {
            commands,
            responder,
        } = batch;
        if commands.is_empty() {
            return Ok(Response::new(responder.respond(&[])));
        }
        let results = self.batcher.submit(commands).await.map_err(status_of)?;
        Ok(Response::new(responder.respond(&results)))
    }

    /// The currency of a hold (or of the transfer under that id). A hold's currency never changes
    /// once written, so the local replica's copy answers right without a leadership round.
    fn hold_currency(&self, pending_id: TransferId) -> Option<Currency> {
        let view = self.view();
        match view.hold(pending_id) {
            Some(hold) => Some(hold.currency),
            None => match view.transfer(pending_id) {
                Some(TransferRecord::Applied(transfer)) => Some(transfer.currency),
                _ => None,
            },
        }
    }
}

#[tonic::async_trait]
impl<K: Kv> Ledger for LedgerService<K> {
    async fn create_accounts(
        &self,
        request: Request<pb::CreateAccountsRequest>,
    ) -> Result<Response<pb::BatchResponse>, Status> {
        let batch = convert::accounts_from_pb(request.into_inner().accounts)?;
        self.submit(batch).await
    }

    async fn create_transfers(
        &self,
        request: Request<pb::CreateTransfersRequest>,
    ) -> Result<Response<pb::BatchResponse>, Status> {
        let transfers = request.into_inner().transfers;
        // A hold this replica lacks may still exist: the replica may lag the leader, or have lost
        // its unsynced applies in a crash. Refusing a partial post as `pending_transfer_not_found`
        // from such a view would refuse a retry whose first attempt applied (found by the
        // simulation). Decide "not found" only from a linearizable view (on a follower this
        // answers with the leader's address instead).
        let lacks_a_hold = transfers.iter().any(|transfer| match &transfer.kind {
            Some(pb::new_transfer::Kind::PostPending(post)) if post.amount.is_some() => post
                .pending_id
                .is_some_and(|id| self.hold_currency(TransferId(id.into())).is_none()),
            _ => false,
        });
        if lacks_a_hold {
            self.reads.linearize().await.map_err(status_of)?;
        }
        let batch =
            convert::transfers_from_pb(transfers, |pending_id| self.hold_currency(pending_id))?;
        self.submit(batch).await
    }

    async fn close_accounts(
        &self,
        request: Request<pb::CloseAccountsRequest>,
    ) -> Result<Response<pb::BatchResponse>, Status> {
        let batch = convert::close_accounts_from_pb(request.into_inner().accounts)?;
        self.submit(batch).await
    }

    async fn lookup_accounts(
        &self,
        request: Request<pb::LookupRequest>,
    ) -> Result<Response<pb::LookupAccountsResponse>, Status> {
        let ids = convert::lookup_account_ids(&request.into_inner())?;
        self.linearize_balances().await?;
        let view = self.view();
        let accounts = ids
            .into_iter()
            .filter_map(|id| view.account(id))
            .map(|account| pb::Account::from(&account))
            .collect();
        Ok(Response::new(pb::LookupAccountsResponse { accounts }))
    }

    async fn lookup_transfers(
        &self,
        request: Request<pb::LookupRequest>,
    ) -> Result<Response<pb::LookupTransfersResponse>, Status> {
        let ids = convert::lookup_transfer_ids(&request.into_inner())?;
        self.reads.linearize().await.map_err(status_of)?;
        let view = self.view();
        let transfers = ids
            .into_iter()
            .filter_map(|id| view.transfer(id))
            .map(|record| {
                let hold_currency = match &record {
                    TransferRecord::Failed { request, .. } => match request.kind {
                        tally_ledger::TransferKind::PostPending { pending_id, .. } => {
                            self.hold_currency(pending_id)
                        }
                        _ => None,
                    },
                    TransferRecord::Applied(_) => None,
                };
                convert::transfer_record_to_pb(&record, hold_currency)
            })
            .collect();
        Ok(Response::new(pb::LookupTransfersResponse { transfers }))
    }

    async fn get_account_history(
        &self,
        request: Request<pb::HistoryRequest>,
    ) -> Result<Response<pb::HistoryResponse>, Status> {
        let query = HistoryQuery::try_from(request.into_inner())?;
        self.reads.linearize().await.map_err(status_of)?;
        let view = self.view();
        let page =
            tally_ledger::account_history(&view, query.account_id, query.cursor_ns, query.limit)
                .map_err(|e| convert::query_error_status(&e))?;
        let currency = view
            .account(query.account_id)
            .map(|account| account.currency)
            .ok_or_else(|| {
                convert::query_error_status(&tally_ledger::QueryError::AccountNotFound(
                    query.account_id,
                ))
            })?;
        Ok(Response::new(convert::history_response(&page, currency)))
    }

    async fn get_balance(
        &self,
        request: Request<pb::BalanceRequest>,
    ) -> Result<Response<pb::BalanceResponse>, Status> {
        let query = BalanceQuery::try_from(request.into_inner())?;
        self.linearize_balances().await?;
        let view = self.view();
        let account = view.account(query.account_id).ok_or_else(|| {
            convert::query_error_status(&tally_ledger::QueryError::AccountNotFound(
                query.account_id,
            ))
        })?;
        let balances = match query.as_of_ns {
            None => account.balances,
            Some(at_ns) => tally_ledger::balance_as_of(&view, query.account_id, at_ns)
                .map_err(|e| convert::query_error_status(&e))?,
        };
        Ok(Response::new(convert::balance_response(
            &account, &balances,
        )))
    }
}
