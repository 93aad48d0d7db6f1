//! The state machine's input (`Command`) and output (`CommandResult`), one result per command.

use crate::account::{CloseAccount, NewAccount};
use crate::errors::{AccountError, CloseAccountError, IdempotencyError, TransferError};
use crate::idempotency::{BeginIdempotent, CompleteIdempotent};
use crate::payment::{PaymentCommand, PaymentError, PaymentOutcome};
use crate::transfer::NewTransfer;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    CreateAccount(NewAccount),
    CreateTransfer(NewTransfer),
    CloseAccount(CloseAccount),
    BeginIdempotent(BeginIdempotent),
    CompleteIdempotent(CompleteIdempotent),
    /// A payments command (merchants, checkouts, order execution, refunds). Never linked: each
    /// applies all-or-nothing on its own.
    Payment(Box<PaymentCommand>),
}

impl Command {
    /// Whether this command is linked with the next: a chain is a run of linked commands plus the
    /// first unlinked one after them, and applies all-or-nothing. Idempotency commands cannot open
    /// a chain but may end one.
    pub fn linked(&self) -> bool {
        match self {
            Command::CreateAccount(a) => a.linked,
            Command::CreateTransfer(t) => t.linked,
            Command::CloseAccount(c) => c.linked,
            Command::BeginIdempotent(_) | Command::CompleteIdempotent(_) | Command::Payment(_) => {
                false
            }
        }
    }

    /// The command's kind, for logs and fault reports.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Command::CreateAccount(_) => "create_account",
            Command::CreateTransfer(_) => "create_transfer",
            Command::CloseAccount(_) => "close_account",
            Command::BeginIdempotent(_) => "begin_idempotent",
            Command::CompleteIdempotent(_) => "complete_idempotent",
            Command::Payment(_) => "payment",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccountCreated {
    Created {
        timestamp_ns: u64,
    },
    /// The same account already existed: a retry, answered with the original creation.
    Exists {
        timestamp_ns: u64,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TransferCreated {
    Created {
        timestamp_ns: u64,
    },
    /// The same transfer was already applied: a retry, answered with the original result.
    Exists {
        timestamp_ns: u64,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccountClosed {
    Closed { timestamp_ns: u64 },
    AlreadyClosed { timestamp_ns: u64 },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum IdempotencyBegun {
    /// The caller holds the key's lease for this attempt and must complete it.
    Started { attempt: u64, lease_until_ns: u64 },
    /// The request already ran; here is its stored response.
    Completed { response: Vec<u8> },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum IdempotencyCompleted {
    Completed,
    AlreadyCompleted,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandResult {
    CreateAccount(Result<AccountCreated, AccountError>),
    CreateTransfer(Result<TransferCreated, TransferError>),
    CloseAccount(Result<AccountClosed, CloseAccountError>),
    BeginIdempotent(Result<IdempotencyBegun, IdempotencyError>),
    CompleteIdempotent(Result<IdempotencyCompleted, IdempotencyError>),
    /// Boxed: payment results are large and rare next to transfer results.
    Payment(Box<Result<PaymentOutcome, PaymentError>>),
}

impl CommandResult {
    pub fn is_ok(&self) -> bool {
        match self {
            CommandResult::CreateAccount(r) => r.is_ok(),
            CommandResult::CreateTransfer(r) => r.is_ok(),
            CommandResult::CloseAccount(r) => r.is_ok(),
            CommandResult::BeginIdempotent(r) => r.is_ok(),
            CommandResult::CompleteIdempotent(r) => r.is_ok(),
            CommandResult::Payment(r) => r.is_ok(),
        }
    }

    /// The stable code of this result: `ok`, `exists` and friends for successes, the error's code
    /// otherwise.
    pub fn code(&self) -> &'static str {
        match self {
            CommandResult::CreateAccount(Ok(AccountCreated::Created { .. }))
            | CommandResult::CreateTransfer(Ok(TransferCreated::Created { .. }))
            | CommandResult::CloseAccount(Ok(AccountClosed::Closed { .. }))
            | CommandResult::CompleteIdempotent(Ok(IdempotencyCompleted::Completed)) => "ok",
            CommandResult::CreateAccount(Ok(AccountCreated::Exists { .. }))
            | CommandResult::CreateTransfer(Ok(TransferCreated::Exists { .. })) => "exists",
            CommandResult::CloseAccount(Ok(AccountClosed::AlreadyClosed { .. })) => {
                "already_closed"
            }
            CommandResult::BeginIdempotent(Ok(IdempotencyBegun::Started { .. })) => "started",
            CommandResult::BeginIdempotent(Ok(IdempotencyBegun::Completed { .. })) => "completed",
            CommandResult::CompleteIdempotent(Ok(IdempotencyCompleted::AlreadyCompleted)) => {
                "already_completed"
            }
            CommandResult::CreateAccount(Err(e)) => e.code(),
            CommandResult::CreateTransfer(Err(e)) => e.code(),
            CommandResult::CloseAccount(Err(e)) => e.code(),
            CommandResult::BeginIdempotent(Err(e)) | CommandResult::CompleteIdempotent(Err(e)) => {
                e.code()
            }
            CommandResult::Payment(result) => match result.as_ref() {
                Ok(outcome) => outcome.code(),
                Err(e) => e.code(),
            },
        }
    }

    /// The result of a command whose apply hit a bug (a caught panic): nothing of it applied.
    pub fn internal_error(command: &Command) -> CommandResult {
        match command {
            Command::CreateAccount(_) => CommandResult::CreateAccount(Err(AccountError::Internal)),
            Command::CreateTransfer(_) => {
                CommandResult::CreateTransfer(Err(TransferError::Internal))
            }
            Command::CloseAccount(_) => {
                CommandResult::CloseAccount(Err(CloseAccountError::Internal))
            }
            Command::BeginIdempotent(_) => {
                CommandResult::BeginIdempotent(Err(IdempotencyError::Internal))
            }
            Command::CompleteIdempotent(_) => {
                CommandResult::CompleteIdempotent(Err(IdempotencyError::Internal))
            }
            Command::Payment(_) => CommandResult::Payment(Box::new(Err(PaymentError::Internal))),
        }
    }

    /// Whether this is the answer to a command whose apply hit a bug.
    pub fn is_internal_error(&self) -> bool {
        self.code() == "internal_error"
    }

    /// The result a command gets when another member of its chain failed.
    pub(crate) fn linked_event_failed(command: &Command) -> CommandResult {
        match command {
            Command::CreateAccount(_) => {
                CommandResult::CreateAccount(Err(AccountError::LinkedEventFailed))
            }
            Command::CreateTransfer(_) => {
                CommandResult::CreateTransfer(Err(TransferError::LinkedEventFailed))
            }
            Command::CloseAccount(_) => {
                CommandResult::CloseAccount(Err(CloseAccountError::LinkedEventFailed))
            }
            Command::BeginIdempotent(_) => {
                CommandResult::BeginIdempotent(Err(IdempotencyError::LinkedEventFailed))
            }
            Command::CompleteIdempotent(_) => {
                CommandResult::CompleteIdempotent(Err(IdempotencyError::LinkedEventFailed))
            }
            Command::Payment(_) => {
                CommandResult::Payment(Box::new(Err(PaymentError::CannotBeLinked)))
            }
        }
    }

    /// The result the last command of a batch gets when it is still linked.
    pub(crate) fn linked_event_chain_open(command: &Command) -> CommandResult {
        match command {
            Command::CreateAccount(_) => {
                CommandResult::CreateAccount(Err(AccountError::LinkedEventChainOpen))
            }
            Command::CreateTransfer(_) => {
                CommandResult::CreateTransfer(Err(TransferError::LinkedEventChainOpen))
            }
            Command::CloseAccount(_) => {
                CommandResult::CloseAccount(Err(CloseAccountError::LinkedEventChainOpen))
            }
            // Idempotency commands are never linked, so they never end a batch inside a chain.
            Command::BeginIdempotent(_) | Command::CompleteIdempotent(_) | Command::Payment(_) => {
                unreachable!("an unlinked command cannot leave its chain open")
            }
        }
    }
}
