//! Group commit: the leader packs concurrent write requests into one Raft entry, so a batch costs
//! one fsync per replica instead of one per request, and stamps each entry with a timestamp that
//! never goes backwards, across leader changes too.

use crate::codec::decode;
use crate::kv::{Cf, Kv, Order};
use crate::supervisor::Supervisor;
use crate::types::{Entry, LedgerRequest, LedgerResponse, Raft};
use crate::write_error::ServeError;
use openraft::EntryPayload;
use std::sync::Arc;
use std::time::Duration;
use tally_ledger::limits::BATCH_COMMANDS_MAX;
use tally_ledger::{Command, CommandResult};
use tokio::sync::{mpsc, oneshot, Semaphore};

/// Requests waiting for a batch; beyond this, submitters get `Overloaded`.
pub const PROPOSALS_QUEUED_MAX: usize = 8_192;
/// Entries proposed and not yet applied. While they replicate, new requests pile up and make the
/// next entry bigger, which is what turns concurrency into throughput.
pub const ENTRIES_IN_FLIGHT_MAX: usize = 8;
/// Estimated encoded bytes per entry (commands carry bounded metadata, see `tally_ledger::limits`).
pub const ENTRY_BYTES_MAX: usize = 16 * 1024 * 1024;
/// How long a proposed entry may take to commit and apply before its clients are answered
/// `OutcomeUnknown` and its permit is released. A leader that lost its quorum does not step
/// down (openraft 0.9) and answers an uncommitted entry only once a new leader truncates it: without
/// this bound, `ENTRIES_IN_FLIGHT_MAX` such entries stop every write of the node for good.
pub const COMMIT_WAIT_MS: u64 = 5_000;
/// A leader that has not heard from a quorum for this long proposes nothing: its proposals
/// would pile up uncommitted (each up to `ENTRY_BYTES_MAX`) while clients retry them.
pub const QUORUM_SILENCE_MS_MAX: u64 = 3_000;
/// Log entries read back (newest first) to find the last stamped entry after a leader change.
const STAMP_LOOKBACK_ENTRIES_MAX: usize = 64;

type Reply = oneshot::Sender<Result<Vec<CommandResult>, ServeError>>;

struct Proposal {
    commands: Vec<Command>,
    reply: Reply,
}

/// The wall clock, in Unix nanoseconds; injected so simulations control time.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

#[derive(Clone)]
pub struct Batcher {
    tx: mpsc::Sender<Proposal>,
}

impl Batcher {
    pub fn spawn<K: Kv>(raft: Raft, kv: Arc<K>, clock: Clock, supervisor: &Supervisor) -> Self {
        let (tx, rx) = mpsc::channel(PROPOSALS_QUEUED_MAX);
        supervisor.spawn("batcher", run(raft, kv, clock, rx, supervisor.clone()));
        Batcher { tx }
    }

    /// Proposes `commands` (at most `BATCH_COMMANDS_MAX`) and waits for their results.
    pub async fn submit(&self, commands: Vec<Command>) -> Result<Vec<CommandResult>, ServeError> {
        assert!(
            commands.len() <= BATCH_COMMANDS_MAX,
            "callers check the batch bound"
        );
        let (reply, answer) = oneshot::channel();
        self.tx
            .try_send(Proposal { commands, reply })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => ServeError::Overloaded,
                mpsc::error::TrySendError::Closed(_) => {
                    ServeError::Stopped("batcher stopped".into())
                }
            })?;
        answer
            .await
            .map_err(|_| ServeError::Stopped("batcher dropped the request".into()))?
    }
}

fn estimated_bytes(command: &Command) -> usize {
    const FIXED_BYTES: usize = 160;
    let metadata = match command {
        Command::CreateAccount(a) => &a.metadata,
        Command::CreateTransfer(t) => &t.metadata,
        Command::CloseAccount(_) | Command::BeginIdempotent(_) => return FIXED_BYTES + 300,
        Command::CompleteIdempotent(c) => return FIXED_BYTES + 300 + c.response.len(),
        // Payment commands are few and vary in size (a checkout carries up to 16 orders):
        // measure them exactly.
        Command::Payment(p) => return FIXED_BYTES + crate::codec::encode(p).len(),
    };
    FIXED_BYTES
        + metadata
            .iter()
            .map(|(k, v)| k.len() + v.len() + 2)
            .sum::<usize>()
}

/// The stamp of the newest normal entry in the local log. A new leader's log holds every
/// committed entry, so stamping above this keeps stamps monotonic across leader changes.
fn last_logged_stamp<K: Kv>(kv: &K) -> u64 {
    // Newest first, one entry at a time: entries are whole batches, so read only what is needed.
    let mut end: Option<Vec<u8>> = None;
    for _ in 0..STAMP_LOOKBACK_ENTRIES_MAX {
        let rows = kv
            .range(Cf::Log, &[], end.as_deref(), Order::Descending, 1)
            .unwrap_or_else(|e| panic!("raft log unreadable: {e}"));
        let Some((key, value)) = rows.into_iter().next() else {
            return 0;
        };
        let entry: Entry =
            decode(&value).unwrap_or_else(|e| panic!("raft log corrupt at {key:?}: {e}"));
        if let EntryPayload::Normal(request) = entry.payload {
            return request.timestamp_ns;
        }
        end = Some(key);
    }
    0
}

async fn run<K: Kv>(
    raft: Raft,
    kv: Arc<K>,
    clock: Clock,
    mut rx: mpsc::Receiver<Proposal>,
    supervisor: Supervisor,
) {
    let in_flight = Arc::new(Semaphore::new(ENTRIES_IN_FLIGHT_MAX));
    let mut carried: Option<Proposal> = None;
    let mut last_stamp_ns = 0u64;
    let mut stamped_term = u64::MAX;
    loop {
        let first = match carried.take() {
            Some(proposal) => proposal,
            None => match rx.recv().await {
                Some(proposal) => proposal,
                None => return,
            },
        };
        let permit = in_flight
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore never closes");
        let mut commands_total = first.commands.len();
        let mut bytes_total: usize = first.commands.iter().map(estimated_bytes).sum();
        let mut batch = vec![first];
        while let Ok(next) = rx.try_recv() {
            let bytes: usize = next.commands.iter().map(estimated_bytes).sum();
            if commands_total + next.commands.len() > BATCH_COMMANDS_MAX
                || bytes_total + bytes > ENTRY_BYTES_MAX
            {
                carried = Some(next);
                break;
            }
            commands_total += next.commands.len();
            bytes_total += bytes;
            batch.push(next);
        }

        let (term, quorum_silence_ms) = {
            let metrics = raft.metrics();
            let metrics = metrics.borrow();
            (metrics.current_term, metrics.millis_since_quorum_ack)
        };
        if quorum_silence_ms.is_some_and(|ms| ms > QUORUM_SILENCE_MS_MAX) {
            for proposal in batch {
                let _ = proposal.reply.send(Err(ServeError::NoQuorum));
            }
            drop(permit);
            continue;
        }
        // Only a new term can follow another leader's entries: only then consult the log.
        if term != stamped_term {
            last_stamp_ns = last_stamp_ns.max(last_logged_stamp(&*kv));
            stamped_term = term;
        }
        let stamp_ns = clock().max(last_stamp_ns + 1);
        last_stamp_ns = stamp_ns;
        let mut commands = Vec::with_capacity(commands_total);
        let mut waiters = Vec::with_capacity(batch.len());
        for proposal in batch {
            waiters.push((proposal.commands.len(), proposal.reply));
            commands.extend(proposal.commands);
        }
        let request = LedgerRequest {
            timestamp_ns: stamp_ns,
            commands,
        };
        // Enqueued here, in order, so entries reach the log in stamp order; the wait for the
        // result happens in its own task.
        let receiver = raft.client_write_ff(request).await;
        supervisor.spawn("batcher entry wait", async move {
            let _permit = permit;
            let outcome = match receiver {
                Err(fatal) => Err(ServeError::Stopped(fatal.to_string())),
                Ok(receiver) => {
                    match tokio::time::timeout(Duration::from_millis(COMMIT_WAIT_MS), receiver)
                        .await
                    {
                        Err(_) => Err(ServeError::OutcomeUnknown {
                            waited_ms: COMMIT_WAIT_MS,
                        }),
                        Ok(Err(_)) => Err(ServeError::Stopped("raft dropped the write".into())),
                        Ok(Ok(Err(error))) => Err(ServeError::from(
                            openraft::error::RaftError::APIError(error),
                        )),
                        Ok(Ok(Ok(response))) => match response.data {
                            LedgerResponse::Applied { results } => Ok(results),
                            LedgerResponse::Refused { code, message } => {
                                Err(ServeError::Refused { code, message })
                            }
                            LedgerResponse::NoOp => {
                                unreachable!("a normal entry always gets a ledger answer")
                            }
                        },
                    }
                }
            };
            split_results(outcome, waiters);
        });
    }
}

/// Hands each waiter its own slice of the entry's results, in submission order.
fn split_results(outcome: Result<Vec<CommandResult>, ServeError>, waiters: Vec<(usize, Reply)>) {
    match outcome {
        Ok(results) => {
            let expected: usize = waiters.iter().map(|(count, _)| count).sum();
            assert_eq!(results.len(), expected, "one result per command");
            let mut results = results.into_iter();
            for (count, reply) in waiters {
                // A waiter that gave up (client cancelled) is fine: its commands still applied.
                let _ = reply.send(Ok(results.by_ref().take(count).collect()));
            }
        }
        Err(error) => {
            for (_, reply) in waiters {
                let _ = reply.send(Err(error.clone()));
            }
        }
    }
}
