//! `apply`: the deterministic state-machine step. Commands in, one result per command out, plus
//! the change set the caller persists atomically. No clock, randomness, I/O or hash-map order:
//! the same store and batch give byte-identical results and changes on every replica.

mod account;
mod client_checks;
mod expiry;
mod guard;
mod idempotency;
mod payment;
mod transfer;
mod txn;

use crate::command::{Command, CommandResult};
use crate::errors::BatchError;
use crate::idempotency::IdempotencyKey;
use crate::ids::TransferId;
use crate::limits::{BATCH_COMMANDS_MAX, TIMESTAMP_NS_MAX};
use crate::payment::OrderId;
use crate::store::{ChangeSet, LedgerRead};
pub use guard::{panic_text, ApplyFault};
use txn::Txn;

/// What one batch did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// One per command, in order.
    pub results: Vec<CommandResult>,
    /// Holds the batch expired before its commands ran.
    pub expired: Vec<TransferId>,
    /// Orders whose hold period ended, released to their sellers before the commands ran.
    pub released: Vec<OrderId>,
    /// Idempotency records whose retention ended, forgotten before the commands ran.
    pub forgotten: Vec<IdempotencyKey>,
    /// Every write of the batch, to be persisted in one atomic write.
    pub changes: ChangeSet,
    /// Bugs caught and contained in this batch (a command that panicked answers
    /// `internal_error`, with nothing of it applied). Empty unless the ledger has a bug: the
    /// caller logs each loudly and counts them.
    pub faults: Vec<ApplyFault>,
}

/// Hands out event timestamps. Each expiry and each command gets its own, strictly larger than
/// the last one the ledger applied, even if the batch timestamp went backwards (a new leader with
/// a slower clock): time in the ledger never goes backwards.
pub(crate) struct EventClock {
    next_ns: u64,
}

impl EventClock {
    fn tick(&mut self) -> u64 {
        let now = self.next_ns;
        self.next_ns += 1;
        now
    }
}

/// Applies `commands` stamped with `batch_timestamp_ns` (the leader's stamp on the log entry) to
/// the state `store` holds, and returns the results and changes without writing anything.
///
/// First, pending transfers whose timeout has passed are expired (at most
/// `EXPIRIES_PER_BATCH_MAX`). Then each command runs in order; a linked chain runs
/// all-or-nothing. A whole batch is refused only when it breaks the batch bounds.
pub fn apply<S: LedgerRead>(
    store: &S,
    commands: &[Command],
    batch_timestamp_ns: u64,
) -> Result<Applied, BatchError> {
    apply_with_bugs(store, commands, batch_timestamp_ns, PlantedBugs::NONE)
}

/// Bugs planted on purpose, for the tests that prove the simulation's checkers find them.
/// Production never sets one; `apply` is `apply_with_bugs(.., PlantedBugs::NONE)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PlantedBugs {
    /// A retried transfer (its id already taken) applies again instead of answering `exists`.
    pub transfer_applies_twice: bool,
    /// A PSP webhook reporting a capture posts the money again for an order already captured
    /// (no dedupe by event or by state), under a transfer id of its event.
    pub webhook_applied_without_dedupe: bool,
    /// `ClaimOrder` ignores its lease: it adds the lease's milliseconds to the nanosecond clock,
    /// so the claim lapses within microseconds and other executors find the order due and claim
    /// it while the first one's PSP call is still open.
    pub lease_ignored: bool,
    /// A transfer with code [`PLANTED_PANIC_CODE`] panics after it has been applied to the
    /// overlay: the containment must roll it back and answer `internal_error`.
    pub panic_in_apply: bool,
}

/// The transfer code that panics when [`PlantedBugs::panic_in_apply`] is planted.
pub const PLANTED_PANIC_CODE: u16 = 0xDEAD;

impl PlantedBugs {
    pub const NONE: PlantedBugs = PlantedBugs {
        transfer_applies_twice: false,
        webhook_applied_without_dedupe: false,
        lease_ignored: false,
        panic_in_apply: false,
    };
}

/// [`apply`] with `bugs` planted.
pub fn apply_with_bugs<S: LedgerRead>(
    store: &S,
    commands: &[Command],
    batch_timestamp_ns: u64,
    bugs: PlantedBugs,
) -> Result<Applied, BatchError> {
    if commands.len() > BATCH_COMMANDS_MAX {
        return Err(BatchError::TooManyCommands {
            commands: commands.len(),
        });
    }
    if batch_timestamp_ns == 0 || batch_timestamp_ns > TIMESTAMP_NS_MAX {
        return Err(BatchError::TimestampOutOfRange {
            timestamp_ns: batch_timestamp_ns,
        });
    }
    let mut meta = store.meta();
    let mut clock = EventClock {
        next_ns: batch_timestamp_ns.max(meta.last_timestamp_ns + 1),
    };
    let first_event_ns = clock.next_ns;
    let mut txn = Txn::with_capacity(store, commands.len());
    txn.bugs = bugs;

    let mut faults = Vec::new();
    let expired = expiry::expire_holds(&mut txn, batch_timestamp_ns, &mut clock, &mut faults);
    let released =
        payment::release_due_holds(&mut txn, batch_timestamp_ns, &mut clock, &mut faults);
    let forgotten =
        idempotency::forget_expired(&mut txn, batch_timestamp_ns, &mut clock, &mut faults);
    let results = apply_commands(&mut txn, commands, &mut clock, &mut faults);
    assert_eq!(results.len(), commands.len(), "one result per command");

    if clock.next_ns > first_event_ns {
        meta.last_timestamp_ns = clock.next_ns - 1;
    }
    meta.batches_applied += 1;
    meta.hash_chain = chain_hash(
        &meta.hash_chain,
        batch_timestamp_ns,
        commands,
        &results,
        &expired,
        &released,
        &forgotten,
    );
    let changes = txn.finish(meta);
    Ok(Applied {
        results,
        expired,
        released,
        forgotten,
        changes,
        faults,
    })
}

fn apply_commands<S: LedgerRead>(
    txn: &mut Txn<'_, S>,
    commands: &[Command],
    clock: &mut EventClock,
    faults: &mut Vec<ApplyFault>,
) -> Vec<CommandResult> {
    let mut results = Vec::with_capacity(commands.len());
    let mut start = 0;
    while start < commands.len() {
        let chain_end = commands[start..]
            .iter()
            .position(|command| !command.linked())
            .map(|offset| start + offset);
        match chain_end {
            None => {
                // The batch ends inside a chain: nothing of it runs.
                let last = commands.len() - 1;
                for command in &commands[start..last] {
                    clock.tick();
                    results.push(CommandResult::linked_event_failed(command));
                }
                clock.tick();
                results.push(CommandResult::linked_event_chain_open(&commands[last]));
                start = commands.len();
            }
            Some(end) if end == start => {
                let command = &commands[start];
                let name = || format!("command {start} ({})", command.kind_name());
                let result = guard::contained(txn, clock, faults, name, |txn, clock| {
                    match command {
                        // A payment command opens its own all-or-nothing scope.
                        Command::Payment(command) => {
                            CommandResult::Payment(Box::new(payment::execute(txn, command, clock)))
                        }
                        command => {
                            let timestamp_ns = clock.tick();
                            // The scope gives the containment an undo log to roll back.
                            txn.begin_chain();
                            let result = execute(txn, command, timestamp_ns);
                            txn.commit_chain();
                            result
                        }
                    }
                });
                results.push(result.unwrap_or_else(|| CommandResult::internal_error(command)));
                start += 1;
            }
            Some(end) => {
                let chain = &commands[start..=end];
                let name = || format!("linked chain of commands {start}..={end}");
                match guard::contained(txn, clock, faults, name, |txn, clock| {
                    apply_chain(txn, chain, clock)
                }) {
                    Some(chain_results) => results.extend(chain_results),
                    None => results.extend(chain.iter().map(CommandResult::internal_error)),
                }
                start = end + 1;
            }
        }
    }
    results
}

/// Runs a linked chain all-or-nothing: on the first failure the overlay rolls back, the failing
/// command keeps its own result and every other member answers `linked_event_failed`.
fn apply_chain<S: LedgerRead>(
    txn: &mut Txn<'_, S>,
    chain: &[Command],
    clock: &mut EventClock,
) -> Vec<CommandResult> {
    let mut results = Vec::with_capacity(chain.len());
    if chain
        .iter()
        .any(|command| matches!(command, Command::Payment(_)))
    {
        // A payment command is its own all-or-nothing scope; it cannot join a chain.
        for command in chain {
            clock.tick();
            results.push(CommandResult::linked_event_failed(command));
        }
        return results;
    }
    txn.begin_chain();
    let mut failed = None;
    for command in chain {
        let timestamp_ns = clock.tick();
        if failed.is_some() {
            results.push(CommandResult::linked_event_failed(command));
            continue;
        }
        let result = execute(txn, command, timestamp_ns);
        if !result.is_ok() {
            failed = Some(results.len());
        }
        results.push(result);
    }
    match failed {
        None => txn.commit_chain(),
        Some(failed_index) => {
            txn.rollback_chain();
            for (index, command) in chain.iter().enumerate().take(failed_index) {
                results[index] = CommandResult::linked_event_failed(command);
            }
        }
    }
    results
}

fn execute<S: LedgerRead>(
    txn: &mut Txn<'_, S>,
    command: &Command,
    timestamp_ns: u64,
) -> CommandResult {
    // Client commands never touch what the payments ledger derives (`client_checks`); payment
    // commands reach those accounts and transfers through `transfer::create` directly.
    match command {
        Command::CreateAccount(new) => CommandResult::CreateAccount(
            client_checks::account(new).and_then(|()| account::create(txn, new, timestamp_ns)),
        ),
        Command::CloseAccount(close) => CommandResult::CloseAccount(
            client_checks::close(close).and_then(|()| account::close(txn, close, timestamp_ns)),
        ),
        Command::CreateTransfer(new) => {
            let result = client_checks::transfer(txn, new)
                .and_then(|()| transfer::create(txn, new, timestamp_ns));
            if txn.bugs.panic_in_apply && new.code == PLANTED_PANIC_CODE {
                panic!("planted panic in apply after transfer {}", new.id);
            }
            CommandResult::CreateTransfer(result)
        }
        Command::BeginIdempotent(begin) => {
            CommandResult::BeginIdempotent(idempotency::begin(txn, begin, timestamp_ns))
        }
        Command::CompleteIdempotent(complete) => {
            CommandResult::CompleteIdempotent(idempotency::complete(txn, complete, timestamp_ns))
        }
        Command::Payment(_) => {
            unreachable!("payment commands run on their own, never through a chain")
        }
    }
}

/// Extends the hash chain with everything that determines the batch's effect and outcome.
fn chain_hash(
    previous: &[u8; 32],
    batch_timestamp_ns: u64,
    commands: &[Command],
    results: &[CommandResult],
    expired: &[TransferId],
    released: &[OrderId],
    forgotten: &[IdempotencyKey],
) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(previous);
    hasher.update(&batch_timestamp_ns.to_le_bytes());
    // Writing into a hasher cannot fail, and every value here is serializable by construction.
    postcard::to_io(commands, &mut hasher).expect("commands serialize");
    postcard::to_io(results, &mut hasher).expect("results serialize");
    postcard::to_io(expired, &mut hasher).expect("expired ids serialize");
    postcard::to_io(released, &mut hasher).expect("released ids serialize");
    postcard::to_io(forgotten, &mut hasher).expect("forgotten keys serialize");
    *hasher.finalize().as_bytes()
}
