//! An independent reference model of the ledger, written from the specification rather than from
//! `src/apply`: plain `BTreeMap`s, no overlay (a linked chain clones the whole model and restores
//! it on failure), expiry by scanning every hold. It reuses the crate's plain data types
//! (`Account`, `Hold`, `TransferRecord`, the result enums) so that its state and answers can be
//! compared with the real ledger's field by field, but none of its logic.

use std::collections::BTreeMap;
use tally_ledger::limits::{BATCH_COMMANDS_MAX, NANOS_PER_SECOND, TIMESTAMP_NS_MAX};
use tally_ledger::{
    Account, AccountClosed, AccountCreated, AccountError, AccountId, Balances, BatchError,
    CloseAccount, CloseAccountError, Command, CommandResult, EntryPhase, Hold, HoldStatus,
    NewAccount, NewTransfer, Transfer, TransferCreated, TransferError, TransferId, TransferKind,
    TransferRecord,
};

/// What the model answers for one batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelApplied {
    pub results: Vec<CommandResult>,
    pub expired: Vec<TransferId>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Model {
    /// Timestamp of the last event applied; 0 before the first.
    pub last_event_ns: u64,
    pub accounts: BTreeMap<AccountId, Account>,
    pub transfers: BTreeMap<TransferId, TransferRecord>,
    pub holds: BTreeMap<TransferId, Hold>,
}

impl Model {
    pub fn new() -> Self {
        Model::default()
    }

    pub fn apply(
        &mut self,
        commands: &[Command],
        batch_ts: u64,
    ) -> Result<ModelApplied, BatchError> {
        if commands.len() > BATCH_COMMANDS_MAX {
            return Err(BatchError::TooManyCommands {
                commands: commands.len(),
            });
        }
        if batch_ts == 0 || batch_ts > TIMESTAMP_NS_MAX {
            return Err(BatchError::TimestampOutOfRange {
                timestamp_ns: batch_ts,
            });
        }
        let mut next_ts = batch_ts.max(self.last_event_ns + 1);
        let mut tick = || {
            let ts = next_ts;
            next_ts += 1;
            ts
        };
        let mut last_ts = None;

        // 1. Expire every pending hold due at the batch timestamp, earliest first, ties by id.
        let mut due: Vec<(u64, TransferId)> = self
            .holds
            .values()
            .filter(|h| h.status == HoldStatus::Pending)
            .filter_map(|h| h.expires_at_ns.map(|at| (at, h.pending_id)))
            .filter(|&(at, _)| at <= batch_ts)
            .collect();
        due.sort();
        let mut expired = Vec::new();
        for (_, id) in due {
            let ts = tick();
            last_ts = Some(ts);
            let hold = self.holds.get_mut(&id).unwrap();
            hold.status = HoldStatus::Expired { at_ns: ts };
            let hold = hold.clone();
            self.release(&hold);
            expired.push(id);
        }

        // 2. Commands, chain by chain.
        let mut results = Vec::with_capacity(commands.len());
        let mut start = 0;
        while start < commands.len() {
            let mut end = start;
            while end < commands.len() && commands[end].linked() {
                end += 1;
            }
            if end == commands.len() {
                // The batch ends inside a chain: nothing of it runs.
                for (i, command) in commands.iter().enumerate().skip(start) {
                    last_ts = Some(tick());
                    results.push(if i + 1 == commands.len() {
                        chain_open(command)
                    } else {
                        linked_failed(command)
                    });
                }
                break;
            }
            let chain = &commands[start..=end];
            if chain.len() == 1 {
                let ts = tick();
                last_ts = Some(ts);
                results.push(self.execute(&chain[0], ts));
            } else {
                let saved = self.clone();
                let mut chain_results = Vec::new();
                let mut failed = None;
                for command in chain {
                    let ts = tick();
                    last_ts = Some(ts);
                    if failed.is_some() {
                        chain_results.push(linked_failed(command));
                        continue;
                    }
                    let result = self.execute(command, ts);
                    if !result.is_ok() {
                        failed = Some(chain_results.len());
                    }
                    chain_results.push(result);
                }
                if let Some(failed) = failed {
                    *self = saved;
                    for (i, command) in chain.iter().enumerate() {
                        if i != failed {
                            chain_results[i] = linked_failed(command);
                        }
                    }
                }
                results.extend(chain_results);
            }
            start = end + 1;
        }
        if let Some(ts) = last_ts {
            self.last_event_ns = ts;
        }
        Ok(ModelApplied { results, expired })
    }

    fn execute(&mut self, command: &Command, ts: u64) -> CommandResult {
        match command {
            Command::CreateAccount(new) => {
                CommandResult::CreateAccount(self.create_account(new, ts))
            }
            Command::CloseAccount(close) => {
                CommandResult::CloseAccount(self.close_account(close, ts))
            }
            Command::CreateTransfer(new) => {
                CommandResult::CreateTransfer(self.create_transfer(new, ts))
            }
            Command::BeginIdempotent(_) | Command::CompleteIdempotent(_) | Command::Payment(_) => {
                unimplemented!("the model covers accounts and transfers only")
            }
        }
    }

    fn create_account(
        &mut self,
        new: &NewAccount,
        ts: u64,
    ) -> Result<AccountCreated, AccountError> {
        if new.id.0 == 0 {
            return Err(AccountError::IdMustNotBeZero);
        }
        if new.id.0 == u128::MAX {
            return Err(AccountError::IdMustNotBeIntMax);
        }
        if new.flags.debits_must_not_exceed_credits && new.flags.credits_must_not_exceed_debits {
            return Err(AccountError::FlagsAreMutuallyExclusive);
        }
        if let Some(existing) = self.accounts.get(&new.id) {
            return if existing.currency != new.currency {
                Err(AccountError::ExistsWithDifferentCurrency)
            } else if existing.code != new.code {
                Err(AccountError::ExistsWithDifferentCode)
            } else if existing.flags != new.flags {
                Err(AccountError::ExistsWithDifferentFlags)
            } else if existing.metadata != new.metadata {
                Err(AccountError::ExistsWithDifferentMetadata)
            } else {
                Ok(AccountCreated::Exists {
                    timestamp_ns: existing.created_at_ns,
                })
            };
        }
        self.accounts.insert(
            new.id,
            Account {
                id: new.id,
                currency: new.currency,
                code: new.code,
                flags: new.flags,
                metadata: new.metadata.clone(),
                balances: Balances::ZERO,
                created_at_ns: ts,
                closed_at_ns: None,
            },
        );
        Ok(AccountCreated::Created { timestamp_ns: ts })
    }

    fn close_account(
        &mut self,
        close: &CloseAccount,
        ts: u64,
    ) -> Result<AccountClosed, CloseAccountError> {
        let account = self
            .accounts
            .get_mut(&close.id)
            .ok_or(CloseAccountError::AccountNotFound)?;
        match account.closed_at_ns {
            Some(at) => Ok(AccountClosed::AlreadyClosed { timestamp_ns: at }),
            None => {
                account.closed_at_ns = Some(ts);
                Ok(AccountClosed::Closed { timestamp_ns: ts })
            }
        }
    }

    fn create_transfer(
        &mut self,
        new: &NewTransfer,
        ts: u64,
    ) -> Result<TransferCreated, TransferError> {
        validate(new)?;
        if let Some(record) = self.transfers.get(&new.id) {
            return match record {
                TransferRecord::Applied(t) if same_body(&t.request, new) => {
                    Ok(TransferCreated::Exists {
                        timestamp_ns: t.timestamp_ns,
                    })
                }
                TransferRecord::Applied(_) => Err(TransferError::ExistsWithDifferentFields),
                TransferRecord::Failed { request, error, .. } if same_body(request, new) => {
                    Err(error.clone())
                }
                TransferRecord::Failed { .. } => Err(TransferError::IdAlreadyFailed),
            };
        }
        let outcome = match &new.kind {
            TransferKind::Single {
                debit_account_id,
                credit_account_id,
                amount_minor,
                currency,
            } => self.move_funds(
                new,
                ts,
                (*debit_account_id, *credit_account_id),
                *amount_minor,
                *currency,
                None,
            ),
            TransferKind::Pending {
                debit_account_id,
                credit_account_id,
                amount_minor,
                currency,
                timeout_s,
            } => self.move_funds(
                new,
                ts,
                (*debit_account_id, *credit_account_id),
                *amount_minor,
                *currency,
                Some(*timeout_s),
            ),
            TransferKind::PostPending {
                pending_id,
                amount_minor,
            } => self.settle(new, ts, *pending_id, Some(*amount_minor)),
            TransferKind::VoidPending { pending_id } => self.settle(new, ts, *pending_id, None),
        };
        match outcome {
            Ok(transfer) => {
                self.transfers
                    .insert(new.id, TransferRecord::Applied(transfer));
                Ok(TransferCreated::Created { timestamp_ns: ts })
            }
            Err(error) => {
                self.transfers.insert(
                    new.id,
                    TransferRecord::Failed {
                        request: new.clone(),
                        error: error.clone(),
                        timestamp_ns: ts,
                    },
                );
                Err(error)
            }
        }
    }

    /// A single transfer (`timeout_s == None`) or a pending one that opens a hold.
    fn move_funds(
        &mut self,
        new: &NewTransfer,
        ts: u64,
        (debit_id, credit_id): (AccountId, AccountId),
        amount: u64,
        currency: tally_ledger::Currency,
        timeout_s: Option<u32>,
    ) -> Result<Transfer, TransferError> {
        let debit = self
            .accounts
            .get(&debit_id)
            .ok_or(TransferError::DebitAccountNotFound)?;
        let credit = self
            .accounts
            .get(&credit_id)
            .ok_or(TransferError::CreditAccountNotFound)?;
        if debit.currency != credit.currency {
            return Err(TransferError::AccountsMustHaveTheSameCurrency {
                debit: debit.currency,
                credit: credit.currency,
            });
        }
        if currency != debit.currency {
            return Err(TransferError::TransferCurrencyMustMatchAccounts {
                transfer: currency,
                accounts: debit.currency,
            });
        }
        if debit.is_closed() {
            return Err(TransferError::DebitAccountClosed);
        }
        if credit.is_closed() {
            return Err(TransferError::CreditAccountClosed);
        }
        let mut d = debit.balances;
        let mut c = credit.balances;
        let amount128 = u128::from(amount);
        if timeout_s.is_some() {
            d.debits_pending += amount128;
            c.credits_pending += amount128;
        } else {
            d.debits_posted += amount128;
            c.credits_posted += amount128;
        }
        if debit.flags.debits_must_not_exceed_credits
            && d.debits_pending + d.debits_posted > d.credits_posted
        {
            return Err(TransferError::ExceedsCredits);
        }
        if credit.flags.credits_must_not_exceed_debits
            && c.credits_pending + c.credits_posted > c.debits_posted
        {
            return Err(TransferError::ExceedsDebits);
        }
        self.accounts.get_mut(&debit_id).unwrap().balances = d;
        self.accounts.get_mut(&credit_id).unwrap().balances = c;
        if let Some(timeout_s) = timeout_s {
            self.holds.insert(
                new.id,
                Hold {
                    pending_id: new.id,
                    debit_account_id: debit_id,
                    credit_account_id: credit_id,
                    amount_minor: amount,
                    currency,
                    expires_at_ns: (timeout_s != 0)
                        .then(|| ts + u64::from(timeout_s) * NANOS_PER_SECOND),
                    status: HoldStatus::Pending,
                },
            );
        }
        Ok(Transfer {
            request: new.clone(),
            debit_account_id: debit_id,
            credit_account_id: credit_id,
            amount_minor: amount,
            currency,
            phase: if timeout_s.is_some() {
                EntryPhase::Pending
            } else {
                EntryPhase::Single
            },
            timestamp_ns: ts,
        })
    }

    /// Posts (`post == Some(requested)`) or voids (`post == None`) the hold `pending_id`.
    fn settle(
        &mut self,
        new: &NewTransfer,
        ts: u64,
        pending_id: TransferId,
        post: Option<Option<u64>>,
    ) -> Result<Transfer, TransferError> {
        let Some(hold) = self.holds.get(&pending_id).cloned() else {
            return Err(match self.transfers.get(&pending_id) {
                Some(TransferRecord::Applied(_)) => {
                    TransferError::PendingTransferNotPending { pending_id }
                }
                _ => TransferError::PendingTransferNotFound { pending_id },
            });
        };
        match hold.status {
            HoldStatus::Posted { .. } => {
                return Err(TransferError::PendingTransferAlreadyPosted { pending_id })
            }
            HoldStatus::Voided { .. } => {
                return Err(TransferError::PendingTransferAlreadyVoided { pending_id })
            }
            HoldStatus::Expired { .. } => {
                return Err(TransferError::PendingTransferExpired { pending_id })
            }
            HoldStatus::Pending => {
                if hold.expires_at_ns.is_some_and(|at| at <= ts) {
                    return Err(TransferError::PendingTransferExpired { pending_id });
                }
            }
        }
        let (amount, phase, status) = match post {
            Some(requested) => {
                let amount = requested.unwrap_or(hold.amount_minor);
                if amount > hold.amount_minor {
                    return Err(TransferError::ExceedsPendingTransferAmount {
                        requested_minor: amount,
                        pending_minor: hold.amount_minor,
                    });
                }
                if self.accounts[&hold.debit_account_id].is_closed() {
                    return Err(TransferError::DebitAccountClosed);
                }
                if self.accounts[&hold.credit_account_id].is_closed() {
                    return Err(TransferError::CreditAccountClosed);
                }
                (
                    amount,
                    EntryPhase::PostPending,
                    HoldStatus::Posted {
                        by: new.id,
                        amount_minor: amount,
                        at_ns: ts,
                    },
                )
            }
            None => (
                hold.amount_minor,
                EntryPhase::VoidPending,
                HoldStatus::Voided {
                    by: new.id,
                    at_ns: ts,
                },
            ),
        };
        self.release(&hold);
        if phase == EntryPhase::PostPending {
            let posted = u128::from(amount);
            self.balances(hold.debit_account_id).debits_posted += posted;
            self.balances(hold.credit_account_id).credits_posted += posted;
        }
        self.holds.get_mut(&pending_id).unwrap().status = status;
        Ok(Transfer {
            request: new.clone(),
            debit_account_id: hold.debit_account_id,
            credit_account_id: hold.credit_account_id,
            amount_minor: amount,
            currency: hold.currency,
            phase,
            timestamp_ns: ts,
        })
    }

    /// Takes a hold's amount off both pending balances.
    fn release(&mut self, hold: &Hold) {
        let amount = u128::from(hold.amount_minor);
        self.balances(hold.debit_account_id).debits_pending -= amount;
        self.balances(hold.credit_account_id).credits_pending -= amount;
    }

    fn balances(&mut self, id: AccountId) -> &mut Balances {
        &mut self.accounts.get_mut(&id).unwrap().balances
    }
}

/// Checks that depend on the request alone, in the specified order.
fn validate(new: &NewTransfer) -> Result<(), TransferError> {
    use TransferError::*;
    if new.id.0 == 0 {
        return Err(IdMustNotBeZero);
    }
    if new.id.0 == u128::MAX {
        return Err(IdMustNotBeIntMax);
    }
    match &new.kind {
        TransferKind::Single {
            debit_account_id: d,
            credit_account_id: c,
            amount_minor,
            ..
        }
        | TransferKind::Pending {
            debit_account_id: d,
            credit_account_id: c,
            amount_minor,
            ..
        } => {
            if d.0 == 0 {
                return Err(DebitAccountIdMustNotBeZero);
            }
            if d.0 == u128::MAX {
                return Err(DebitAccountIdMustNotBeIntMax);
            }
            if c.0 == 0 {
                return Err(CreditAccountIdMustNotBeZero);
            }
            if c.0 == u128::MAX {
                return Err(CreditAccountIdMustNotBeIntMax);
            }
            if d == c {
                return Err(AccountsMustBeDifferent);
            }
            if *amount_minor == 0 {
                return Err(AmountMustNotBeZero);
            }
        }
        TransferKind::PostPending { pending_id: p, .. }
        | TransferKind::VoidPending { pending_id: p } => {
            if p.0 == 0 {
                return Err(PendingIdMustNotBeZero);
            }
            if p.0 == u128::MAX {
                return Err(PendingIdMustNotBeIntMax);
            }
            if *p == new.id {
                return Err(PendingIdMustBeDifferent);
            }
            if let TransferKind::PostPending {
                amount_minor: Some(0),
                ..
            } = new.kind
            {
                return Err(AmountMustNotBeZero);
            }
        }
    }
    Ok(())
}

/// Same id, kind, code and metadata; `linked` describes the batch, not the transfer.
fn same_body(a: &NewTransfer, b: &NewTransfer) -> bool {
    a.id == b.id && a.kind == b.kind && a.code == b.code && a.metadata == b.metadata
}

fn linked_failed(command: &Command) -> CommandResult {
    match command {
        Command::CreateAccount(_) => {
            CommandResult::CreateAccount(Err(AccountError::LinkedEventFailed))
        }
        Command::CloseAccount(_) => {
            CommandResult::CloseAccount(Err(CloseAccountError::LinkedEventFailed))
        }
        Command::CreateTransfer(_) => {
            CommandResult::CreateTransfer(Err(TransferError::LinkedEventFailed))
        }
        Command::BeginIdempotent(_) | Command::CompleteIdempotent(_) | Command::Payment(_) => {
            unimplemented!("the model covers accounts and transfers only")
        }
    }
}

fn chain_open(command: &Command) -> CommandResult {
    match command {
        Command::CreateAccount(_) => {
            CommandResult::CreateAccount(Err(AccountError::LinkedEventChainOpen))
        }
        Command::CloseAccount(_) => {
            CommandResult::CloseAccount(Err(CloseAccountError::LinkedEventChainOpen))
        }
        Command::CreateTransfer(_) => {
            CommandResult::CreateTransfer(Err(TransferError::LinkedEventChainOpen))
        }
        Command::BeginIdempotent(_) | Command::CompleteIdempotent(_) | Command::Payment(_) => {
            unreachable!("idempotency and payment commands are never linked")
        }
    }
}
