//! The clients' workload: each simulated client owns a bank account and a few wallets (no
//! overdraft) and sends, through the real leader-following `LedgerClient` over simulated gRPC,
//! a seeded mix of deposits, wallet-to-wallet transfers, two-phase holds later posted (fully or
//! partly) or voided or left to expire, linked chains that apply all-or-nothing, batches, and
//! linearizable balance reads. Every answer is written to the shared [`History`]; an operation
//! whose answer was lost is sent again, with the same ids, once the faults are over.

use crate::cluster::api_endpoints;
use crate::config::SimConfig;
use crate::trace::Trace;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;
use tally_ledger::{
    format_amount, parse_amount, AccountFlags, AccountId, Currency, Metadata, NewAccount,
    NewTransfer, TransferId, TransferKind, ZeroAmount,
};
use tally_proto::client::{ClientConfig, LedgerClient};
use tally_proto::convert::{PartialPost, TransferDraft};

/// Wallets per client, besides its bank account.
const WALLETS_PER_CLIENT: u128 = 4;
/// Holds a client keeps open at most before it only settles.
const HOLDS_OPEN_MAX: usize = 6;
const CURRENCY: Currency = Currency::USD;

/// One operation as sent, and its answer: a code per item, or `None` while nobody knows whether
/// it applied (its answer was lost).
#[derive(Clone, Debug)]
pub struct SentOp {
    pub client: usize,
    pub index: usize,
    pub items: Vec<NewTransfer>,
    pub codes: Option<Vec<String>>,
}

impl SentOp {
    /// Whether the ledger answered that item `i` applied (now or on an earlier attempt).
    pub fn applied(&self, i: usize) -> Option<bool> {
        self.codes
            .as_ref()
            .map(|codes| matches!(codes[i].as_str(), "ok" | "exists"))
    }
}

/// Everything the clients saw, for the checkers.
#[derive(Default)]
pub struct History {
    pub ops: Vec<SentOp>,
    pub accounts: Vec<AccountId>,
    /// Operations and items with a definite answer.
    pub ops_answered: u64,
    pub items_applied: u64,
    pub reads: u64,
    /// Operations still without an answer when the liveness bound ran out.
    pub unresolved: Vec<String>,
    /// What a client saw that a correct cluster never shows.
    pub violations: Vec<String>,
    pub clients_done: usize,
}

/// A ledger client over the simulated network, with deadlines short enough for the faults'
/// durations. The workload and the scenario tests use the same one.
pub fn sim_client(
    endpoints: Vec<String>,
) -> Result<LedgerClient, tally_proto::client::ClientError> {
    LedgerClient::connect_lazy_with_dialer(endpoints, client_config(), crate::net::dialer())
}

fn client_config() -> ClientConfig {
    ClientConfig {
        rpc_timeout_ms: 1_000,
        request_timeout_ms: 5_000,
        retry_attempts_max: 30,
        backoff_initial_ms: 20,
        backoff_max_ms: 250,
    }
}

fn bank_id(client: usize) -> AccountId {
    AccountId(((client as u128 + 1) << 96) | 1)
}

fn wallet_id(client: usize, k: u128) -> AccountId {
    AccountId(((client as u128 + 1) << 96) | (2 + k))
}

fn transfer_id(client: usize, op: usize, item: usize) -> TransferId {
    TransferId(((client as u128 + 1) << 64) | ((op as u128 + 1) << 8) | item as u128)
}

/// A USD account: a wallet (no overdraft) or a bank account (no balance rule).
pub fn new_account(id: AccountId, wallet: bool) -> NewAccount {
    NewAccount {
        id,
        currency: CURRENCY,
        code: if wallet { 2 } else { 1 },
        flags: AccountFlags {
            debits_must_not_exceed_credits: wallet,
            credits_must_not_exceed_debits: false,
        },
        metadata: Metadata::default(),
        linked: false,
    }
}

fn single(id: TransferId, from: AccountId, to: AccountId, amount_minor: u64) -> NewTransfer {
    NewTransfer {
        id,
        kind: TransferKind::Single {
            debit_account_id: from,
            credit_account_id: to,
            amount_minor,
            currency: CURRENCY,
        },
        code: 1,
        metadata: Metadata::default(),
        linked: false,
    }
}

/// The item as a client sends it: a partial post carries its amount as a decimal string of the
/// hold's currency, like any API client's.
fn draft(item: &NewTransfer) -> TransferDraft {
    match item.kind {
        TransferKind::PostPending {
            pending_id,
            amount_minor: Some(amount_minor),
        } => TransferDraft::PartialPost(PartialPost {
            id: item.id,
            pending_id,
            amount: format_amount(amount_minor, CURRENCY),
            code: item.code,
            metadata: item.metadata.clone(),
            linked: item.linked,
        }),
        _ => TransferDraft::Ready(item.clone()),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum OpKind {
    /// Bank to a wallet.
    Deposit,
    /// Wallet to wallet (may lack funds).
    Move,
    /// A pending transfer between wallets, some with a timeout.
    Hold,
    /// Post (all or part) or void an open hold.
    Settle,
    /// Two or three linked wallet transfers: all or none.
    Chain,
    /// Several independent transfers in one request.
    Batch,
}

struct OpenHold {
    id: TransferId,
    amount_minor: u64,
}

struct Client {
    index: usize,
    rng: StdRng,
    ledger: LedgerClient,
    history: Rc<RefCell<History>>,
    trace: Rc<RefCell<Trace>>,
    holds: Vec<OpenHold>,
    /// Per wallet: posted credits this client's acknowledged transfers put there (a read must
    /// show at least this), and the most a read showed so far (posted totals never shrink).
    credits_acked: BTreeMap<AccountId, u64>,
    credits_seen: BTreeMap<AccountId, u64>,
}

/// Runs client `index` to the end: accounts, `ops_per_client` operations spread over the fault
/// window, then the resolution of every operation whose answer was lost.
pub async fn run_client(
    index: usize,
    config: SimConfig,
    history: Rc<RefCell<History>>,
    trace: Rc<RefCell<Trace>>,
) -> turmoil::Result {
    let ledger = sim_client(api_endpoints(config.nodes))?;
    let mut client = Client {
        index,
        rng: StdRng::seed_from_u64(config.seed ^ (0xc11e_0000 + index as u64)),
        ledger,
        history,
        trace,
        holds: Vec::new(),
        credits_acked: BTreeMap::new(),
        credits_seen: BTreeMap::new(),
    };
    let deadline = Duration::from_millis(config.fault_window_ms + config.liveness_bound_ms);
    client.create_accounts(deadline).await;
    let pause_ms_max = (2 * config.fault_window_ms / config.ops_per_client.max(1) as u64).max(1);
    for op in 0..config.ops_per_client {
        let pause = client.rng.random_range(0..pause_ms_max);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        if client.rng.random_range(0..100) < 15 {
            client.read_balance().await;
        } else {
            let items = client.next_op(op);
            client.send(op, items).await;
        }
    }
    // Faults stop at the end of the window: from then on every lost answer must be recovered.
    let window_end = Duration::from_millis(config.fault_window_ms);
    let now = turmoil::elapsed();
    if now < window_end {
        tokio::time::sleep(window_end - now).await;
    }
    client.resolve_lost(deadline).await;
    client.history.borrow_mut().clients_done += 1;
    Ok(())
}

impl Client {
    fn record(&self, what: &str) {
        self.trace.borrow_mut().record(
            turmoil::elapsed(),
            &format!("client{} {what}", self.index + 1),
        );
    }

    fn violation(&self, what: String) {
        self.record(&format!("VIOLATION {what}"));
        self.history.borrow_mut().violations.push(what);
    }

    async fn create_accounts(&mut self, deadline: Duration) {
        let mut accounts = vec![new_account(bank_id(self.index), false)];
        accounts
            .extend((0..WALLETS_PER_CLIENT).map(|k| new_account(wallet_id(self.index, k), true)));
        self.history
            .borrow_mut()
            .accounts
            .extend(accounts.iter().map(|a| a.id));
        while turmoil::elapsed() < deadline {
            match self.ledger.create_accounts(accounts.iter().cloned()).await {
                Ok(response)
                    if response
                        .results
                        .iter()
                        .all(|r| r.code == "ok" || r.code == "exists") =>
                {
                    self.record("accounts created");
                    return;
                }
                Ok(response) => {
                    let codes: Vec<_> = response.results.iter().map(|r| r.code.clone()).collect();
                    self.violation(format!("accounts refused: {codes:?}"));
                    return;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
        self.history
            .borrow_mut()
            .unresolved
            .push(format!("client{}: accounts never created", self.index + 1));
    }

    fn wallet(&mut self) -> AccountId {
        wallet_id(self.index, self.rng.random_range(0..WALLETS_PER_CLIENT))
    }

    fn two_wallets(&mut self) -> (AccountId, AccountId) {
        let a = self.rng.random_range(0..WALLETS_PER_CLIENT);
        let b = (a + self.rng.random_range(1..WALLETS_PER_CLIENT)) % WALLETS_PER_CLIENT;
        (wallet_id(self.index, a), wallet_id(self.index, b))
    }

    /// The items of operation `op`, drawn from the seed.
    fn next_op(&mut self, op: usize) -> Vec<NewTransfer> {
        let client = self.index;
        let id = move |item: usize| transfer_id(client, op, item);
        let kind = match self.rng.random_range(0..100) {
            0..=24 => OpKind::Deposit,
            25..=44 => OpKind::Move,
            45..=59 => OpKind::Hold,
            60..=74 => OpKind::Settle,
            75..=84 => OpKind::Chain,
            _ => OpKind::Batch,
        };
        // Too many open holds: settle one instead; none open: send a chain instead.
        let kind = match kind {
            OpKind::Hold if self.holds.len() >= HOLDS_OPEN_MAX => OpKind::Settle,
            kind => kind,
        };
        let kind = match kind {
            OpKind::Settle if self.holds.is_empty() => OpKind::Chain,
            kind => kind,
        };
        match kind {
            OpKind::Deposit => {
                let to = self.wallet();
                let amount = self.rng.random_range(100..2_000);
                vec![single(id(0), bank_id(self.index), to, amount)]
            }
            OpKind::Move => {
                let (from, to) = self.two_wallets();
                let amount = self.rng.random_range(1..800);
                vec![single(id(0), from, to, amount)]
            }
            OpKind::Hold => {
                let (from, to) = self.two_wallets();
                let amount_minor = self.rng.random_range(1..600);
                // Some holds expire on their own (ledger time), racing the post or void.
                let timeout_s = if self.rng.random_bool(0.3) {
                    self.rng.random_range(1..6)
                } else {
                    0
                };
                self.holds.push(OpenHold {
                    id: id(0),
                    amount_minor,
                });
                vec![NewTransfer {
                    id: id(0),
                    kind: TransferKind::Pending {
                        debit_account_id: from,
                        credit_account_id: to,
                        amount_minor,
                        currency: CURRENCY,
                        timeout_s,
                    },
                    code: 2,
                    metadata: Metadata::default(),
                    linked: false,
                }]
            }
            OpKind::Settle => {
                let hold = self
                    .holds
                    .remove(self.rng.random_range(0..self.holds.len()));
                let kind = match self.rng.random_range(0..3) {
                    0 => TransferKind::VoidPending {
                        pending_id: hold.id,
                    },
                    1 => TransferKind::PostPending {
                        pending_id: hold.id,
                        amount_minor: None,
                    },
                    _ => TransferKind::PostPending {
                        pending_id: hold.id,
                        amount_minor: Some(self.rng.random_range(1..=hold.amount_minor)),
                    },
                };
                vec![NewTransfer {
                    id: id(0),
                    kind,
                    code: 3,
                    metadata: Metadata::default(),
                    linked: false,
                }]
            }
            OpKind::Chain => {
                // A linked chain: all of it applies or none (a wallet may lack the funds).
                let legs = self.rng.random_range(2..=3);
                (0..legs)
                    .map(|leg| {
                        let (from, to) = self.two_wallets();
                        let amount = self.rng.random_range(1..500);
                        let mut transfer = single(id(leg), from, to, amount);
                        transfer.linked = leg + 1 < legs;
                        transfer
                    })
                    .collect()
            }
            OpKind::Batch => {
                let count = self.rng.random_range(2..=5);
                (0..count)
                    .map(|item| {
                        let (from, to) = self.two_wallets();
                        if self.rng.random_bool(0.5) {
                            let amount = self.rng.random_range(1..1_000);
                            single(id(item), bank_id(self.index), to, amount)
                        } else {
                            let amount = self.rng.random_range(1..300);
                            single(id(item), from, to, amount)
                        }
                    })
                    .collect()
            }
        }
    }

    /// Posted credits an applied item puts on one of this client's wallets.
    fn credit_of(&self, item: &NewTransfer) -> Option<(AccountId, u64)> {
        match &item.kind {
            TransferKind::Single {
                credit_account_id,
                amount_minor,
                ..
            } => Some((*credit_account_id, *amount_minor)),
            TransferKind::PostPending {
                pending_id,
                amount_minor,
            } => {
                // The hold was removed from `holds` when the post was drawn; find it in history.
                let history = self.history.borrow();
                history.ops.iter().rev().find_map(|op| {
                    op.items
                        .iter()
                        .find(|t| t.id == *pending_id)
                        .and_then(|t| match t.kind {
                            TransferKind::Pending {
                                credit_account_id,
                                amount_minor: held,
                                ..
                            } => Some((credit_account_id, amount_minor.unwrap_or(held).min(held))),
                            _ => None,
                        })
                })
            }
            _ => None,
        }
    }

    async fn send(&mut self, op: usize, items: Vec<NewTransfer>) {
        let answer = self.ledger.create_transfers(items.iter().map(draft)).await;
        let codes = match answer {
            Ok(response) => {
                let mut results = response.results;
                results.sort_by_key(|r| r.index);
                Some(results.into_iter().map(|r| r.code).collect::<Vec<_>>())
            }
            Err(_) => None,
        };
        let sent = SentOp {
            client: self.index,
            index: op,
            items,
            codes,
        };
        self.note_answer(&sent);
        self.history.borrow_mut().ops.push(sent);
    }

    fn note_answer(&mut self, sent: &SentOp) {
        match &sent.codes {
            None => self.record(&format!("op {} lost", sent.index)),
            Some(codes) => {
                self.record(&format!("op {} {}", sent.index, codes.join(",")));
                let mut history = self.history.borrow_mut();
                history.ops_answered += 1;
                drop(history);
                for (i, item) in sent.items.iter().enumerate() {
                    if sent.applied(i) == Some(true) {
                        self.history.borrow_mut().items_applied += 1;
                        if let Some((account, amount)) = self.credit_of(item) {
                            *self.credits_acked.entry(account).or_default() += amount;
                        }
                    }
                }
            }
        }
    }

    /// A linearizable read must show every credit this client had acknowledged, and posted
    /// credits never shrink.
    async fn read_balance(&mut self) {
        let account = self.wallet();
        let Ok(balance) = self.ledger.get_balance(account.0, None).await else {
            return;
        };
        self.history.borrow_mut().reads += 1;
        let credits = balance
            .balances
            .as_ref()
            .and_then(|b| parse_amount(&b.credits_posted, CURRENCY, ZeroAmount::Allowed).ok());
        let Some(credits) = credits else {
            self.violation(format!("unreadable balance of {account}: {balance:?}"));
            return;
        };
        self.record(&format!("read {account} credits_posted={credits}"));
        let acked = self.credits_acked.get(&account).copied().unwrap_or(0);
        if credits < acked {
            self.violation(format!(
                "read of {account} shows credits_posted {credits}, below the {acked} this client had acknowledged"
            ));
        }
        let before = self.credits_seen.get(&account).copied().unwrap_or(0);
        if credits < before {
            self.violation(format!(
                "read of {account} went backwards: credits_posted {before} then {credits}"
            ));
        }
        self.credits_seen.insert(account, credits.max(before));
    }

    /// Sends every operation whose answer was lost again (same ids) until it gets an answer or
    /// the liveness bound runs out.
    async fn resolve_lost(&mut self, deadline: Duration) {
        let lost: Vec<usize> = {
            let history = self.history.borrow();
            history
                .ops
                .iter()
                .enumerate()
                .filter(|(_, op)| op.client == self.index && op.codes.is_none())
                .map(|(at, _)| at)
                .collect()
        };
        for at in lost {
            let (op, items) = {
                let history = self.history.borrow();
                (history.ops[at].index, history.ops[at].items.clone())
            };
            loop {
                if turmoil::elapsed() >= deadline {
                    self.history
                        .borrow_mut()
                        .unresolved
                        .push(format!("client{} op {op}", self.index + 1));
                    break;
                }
                let answer = self.ledger.create_transfers(items.iter().map(draft)).await;
                if let Ok(response) = answer {
                    let mut results = response.results;
                    results.sort_by_key(|r| r.index);
                    let resolved = SentOp {
                        client: self.index,
                        index: op,
                        items: items.clone(),
                        codes: Some(results.into_iter().map(|r| r.code).collect()),
                    };
                    self.note_answer(&resolved);
                    self.history.borrow_mut().ops[at] = resolved;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
}
