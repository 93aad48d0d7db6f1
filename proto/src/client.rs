//! [`LedgerClient`]: the Rust client of a Tally cluster's Ledger and Admin services.
//!
//! Writes must reach the Raft leader. A follower answers them with `FAILED_PRECONDITION` and the
//! ASCII metadata [`LEADER_API_METADATA_KEY`] naming the leader's API address (`host:port`);
//! during an election a node answers `UNAVAILABLE` without a hint. The client then moves to the
//! hinted leader, or to the next configured endpoint, and retries with exponential backoff
//! (20 ms doubling to 250 ms: an election takes well under a second, so a longer wait would
//! only delay the first write to the new leader), for at most `retry_attempts_max` attempts and `request_timeout_ms`
//! overall; each attempt has its own deadline of `rpc_timeout_ms`. Connection failures and
//! timeouts also move on to the next endpoint. The policy is the pure function [`decide`].
//!
//! Retrying a write is safe because every item carries its client-chosen id, which is its
//! idempotency key: if an earlier attempt was applied after all (its answer was lost to a timeout
//! or a leader change), the retry answers `exists` (or `already_closed`) with the original
//! timestamp instead of applying twice. Callers should treat `exists` as success.
//!
//! Plain `http://` only; an endpoint without a scheme gets `http://`. The client is cheap to
//! clone and shares its connections and its idea of the leader between clones. It needs a tokio
//! runtime.

use crate::admin as admin_pb;
use crate::convert::ERROR_CODE_METADATA_KEY;
use crate::ledger as pb;
use crate::payments_node_codec::{self, PaymentResult};
use crate::MESSAGE_BYTES_MAX;
use std::collections::BTreeMap;
use std::error::Error as _;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
// tokio's clock, not std's: under a simulation's paused time the deadlines follow simulated time.
use crate::dial::Dialer;
use tally_ledger::payment::{PaymentCommand, PaymentQuery, PaymentQueryResult};
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

/// ASCII metadata key of a follower's answer that names the leader's API address, `host:port`.
pub const LEADER_API_METADATA_KEY: &str = "tally-leader-api";

/// Timeouts and retry budget of a [`LedgerClient`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientConfig {
    /// Deadline of each attempt (sent as `grpc-timeout` and enforced locally); also the connect
    /// timeout.
    pub rpc_timeout_ms: u64,
    /// Deadline of a whole call, retries and backoff included.
    pub request_timeout_ms: u64,
    /// Attempts per call, the first included.
    pub retry_attempts_max: u32,
    /// First backoff; each later one doubles, up to `backoff_max_ms`.
    pub backoff_initial_ms: u64,
    pub backoff_max_ms: u64,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            rpc_timeout_ms: 5_000,
            request_timeout_ms: 10_000,
            retry_attempts_max: 50,
            backoff_initial_ms: 20,
            backoff_max_ms: 250,
        }
    }
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no endpoints given: pass at least one node API address such as \"127.0.0.1:7000\"")]
    NoEndpoints,
    #[error("invalid endpoint {endpoint:?}: {reason}; use host:port or http://host:port")]
    InvalidEndpoint { endpoint: String, reason: String },
    #[error("no node reachable at {endpoints}: {last_error}; check the addresses and that the nodes run")]
    NoNodeReachable {
        endpoints: String,
        last_error: String,
    },
    #[error("cluster has no leader after {attempts} attempts in {elapsed_ms} ms (last answer: {last_error}); check that a majority of nodes runs and can reach each other")]
    NoLeader {
        attempts: u32,
        elapsed_ms: u128,
        last_error: String,
    },
    /// The node answered with an error that retrying cannot fix (invalid argument, not found...).
    #[error("{}", describe(.0))]
    Rpc(Status),
}

impl ClientError {
    /// The stable snake_case code a node attached to its refusal (e.g. `"id_missing"`,
    /// `"account_not_found"`), if any.
    pub fn error_code(&self) -> Option<&str> {
        match self {
            ClientError::Rpc(status) => status
                .metadata()
                .get(ERROR_CODE_METADATA_KEY)
                .and_then(|value| value.to_str().ok()),
            _ => None,
        }
    }

    /// The gRPC status of a refusal, if the error is one.
    pub fn status(&self) -> Option<&Status> {
        match self {
            ClientError::Rpc(status) => Some(status),
            _ => None,
        }
    }
}

fn describe(status: &Status) -> String {
    format!(
        "{:?}: {}{}",
        status.code(),
        status.message(),
        tally_net::http_client::causes(status)
    )
}

// ---------------------------------------------------------------------------------------------
// The retry policy, as pure functions.

/// The status a node that is not the leader answers a leader-only call with: `FAILED_PRECONDITION`
/// carrying the leader's API address under [`LEADER_API_METADATA_KEY`], or `UNAVAILABLE` without
/// a hint when no leader is known (an election). Servers should build it here, so that server
/// and client agree on the contract.
pub fn not_leader_status(leader_api_addr: Option<&str>) -> Status {
    // Only printable ASCII makes a hint clients can read; anything else counts as no hint.
    let readable = |addr: &&str| !addr.is_empty() && addr.bytes().all(|b| b.is_ascii_graphic());
    let hint = leader_api_addr
        .filter(readable)
        .and_then(|addr| Some((addr, tonic::metadata::MetadataValue::try_from(addr).ok()?)));
    match hint {
        Some((addr, value)) => {
            let mut status = Status::failed_precondition(format!(
                "this node is not the leader: send the request to the leader at {addr}"
            ));
            status.metadata_mut().insert(LEADER_API_METADATA_KEY, value);
            status
        }
        None => {
            Status::unavailable("no leader is known (an election is in progress): retry shortly")
        }
    }
}

/// The leader address a node hinted in `status`, if any.
pub fn leader_hint(status: &Status) -> Option<String> {
    status
        .metadata()
        .get(LEADER_API_METADATA_KEY)
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .filter(|addr| !addr.is_empty())
        .map(str::to_owned)
}

/// Where the next attempt goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// The leader a node named (`host:port`).
    Leader(String),
    /// The next configured endpoint, round robin.
    NextEndpoint,
}

/// What to do after a failed attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Retry {
        target: Target,
        delay: Duration,
    },
    /// The answer is final: return it to the caller.
    Fail,
    /// `retry_attempts_max` attempts were made.
    AttemptsExhausted,
    /// Waiting for the next attempt would pass `request_timeout_ms`.
    OutOfTime,
}

/// Whether `status` is worth another attempt, and where.
///
/// - `FAILED_PRECONDITION` or `UNAVAILABLE` with a leader hint: that leader.
/// - `UNAVAILABLE` (election, node down, connection refused), `DEADLINE_EXCEEDED`, `CANCELLED`
///   (a connection dropped mid-call) and transport failures surfacing as `UNKNOWN` with a cause:
///   the next endpoint.
/// - Everything else, including `FAILED_PRECONDITION` without a hint: final.
pub fn classify(status: &Status) -> Option<Target> {
    if let Some(leader) = leader_hint(status) {
        if matches!(status.code(), Code::FailedPrecondition | Code::Unavailable) {
            return Some(Target::Leader(leader));
        }
    }
    match status.code() {
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled => Some(Target::NextEndpoint),
        Code::Unknown if status.source().is_some() => Some(Target::NextEndpoint),
        _ => None,
    }
}

/// The pause before retry number `retry` (0-based): `backoff_initial_ms * 2^retry`, at most
/// `backoff_max_ms`.
pub fn backoff(config: &ClientConfig, retry: u32) -> Duration {
    let factor = 1u64.checked_shl(retry).unwrap_or(u64::MAX);
    Duration::from_millis(
        config
            .backoff_initial_ms
            .saturating_mul(factor)
            .min(config.backoff_max_ms),
    )
}

/// The retry policy. `attempts_made` counts attempts so far (the failed one included), `elapsed`
/// is the time since the call began, `followed_hint_before` whether an earlier attempt of this
/// call already followed a leader hint.
///
/// The first leader hint of a call is followed at once: it is the common case of a client that
/// talks to a follower. Every other retry waits [`backoff`] of the retries so far, so a stale
/// hint or an election cannot make the client spin.
pub fn decide(
    config: &ClientConfig,
    attempts_made: u32,
    elapsed: Duration,
    status: &Status,
    followed_hint_before: bool,
) -> Decision {
    let Some(target) = classify(status) else {
        return Decision::Fail;
    };
    if attempts_made >= config.retry_attempts_max {
        return Decision::AttemptsExhausted;
    }
    let delay = match target {
        Target::Leader(_) if !followed_hint_before => Duration::ZERO,
        _ => backoff(config, attempts_made.saturating_sub(1)),
    };
    if elapsed.saturating_add(delay) >= Duration::from_millis(config.request_timeout_ms) {
        return Decision::OutOfTime;
    }
    Decision::Retry { target, delay }
}

// ---------------------------------------------------------------------------------------------
// The client.

/// A leader-following client of a Tally cluster. See the module documentation.
#[derive(Clone, Debug)]
pub struct LedgerClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: ClientConfig,
    /// The endpoints as given, for messages.
    given: Vec<String>,
    /// The endpoints as URIs.
    endpoints: Vec<String>,
    /// How channels connect: OS TCP (with TLS when configured), or a simulation's sockets.
    dialer: Dialer,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// URI of the node the next call goes to: the last known leader, or an endpoint.
    current: String,
    /// Index in `endpoints` of the endpoint last moved to.
    cursor: usize,
    /// One lazily connected channel per URI ever used (endpoints and hinted leaders). Ordered:
    /// dropping the client closes them in key order, which a simulation's trace depends on.
    channels: BTreeMap<String, Channel>,
}

/// `addr` as a URI: `host:port` becomes `http://host:port`.
fn endpoint_uri(addr: &str) -> Result<String, ClientError> {
    let addr = addr.trim();
    if addr.is_empty() {
        return Err(ClientError::InvalidEndpoint {
            endpoint: addr.to_owned(),
            reason: "it is empty".to_owned(),
        });
    }
    let uri = if addr.contains("://") {
        addr.to_owned()
    } else {
        format!("http://{addr}")
    };
    Endpoint::from_shared(uri.clone()).map_err(|e| ClientError::InvalidEndpoint {
        endpoint: addr.to_owned(),
        reason: e.to_string(),
    })?;
    Ok(uri)
}

fn endpoint(uri: &str, config: &ClientConfig) -> Result<Endpoint, ClientError> {
    let rpc_timeout = Duration::from_millis(config.rpc_timeout_ms);
    Ok(Endpoint::from_shared(uri.to_owned())
        .map_err(|e| ClientError::InvalidEndpoint {
            endpoint: uri.to_owned(),
            reason: e.to_string(),
        })?
        .connect_timeout(rpc_timeout)
        .timeout(rpc_timeout)
        .tcp_nodelay(true)
        // Pings find a connection whose packets silently vanish, so the channel reconnects
        // instead of timing out every call on it.
        .http2_keep_alive_interval(rpc_timeout)
        .keep_alive_timeout(rpc_timeout)
        .keep_alive_while_idle(true))
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // The state is valid after any panic of a holder (each update is one assignment).
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl LedgerClient {
    /// Connects to the first reachable of `endpoints` (`host:port` or `http://host:port`), with
    /// the default [`ClientConfig`]. Fails with [`ClientError::NoNodeReachable`] if none answers.
    pub async fn connect(endpoints: Vec<String>) -> Result<Self, ClientError> {
        Self::connect_with(endpoints, ClientConfig::default()).await
    }

    /// [`LedgerClient::connect`] with `config`.
    pub async fn connect_with(
        endpoints: Vec<String>,
        config: ClientConfig,
    ) -> Result<Self, ClientError> {
        Self::connect_via(endpoints, config, Dialer::tcp()).await
    }

    /// [`LedgerClient::connect_with`] whose connections go through `dialer` (TLS, or a
    /// simulation's sockets).
    pub async fn connect_via(
        endpoints: Vec<String>,
        config: ClientConfig,
        dialer: Dialer,
    ) -> Result<Self, ClientError> {
        let client = Self::connect_lazy_with_dialer(endpoints, config, dialer)?;
        let inner = &client.inner;
        let rpc_timeout = Duration::from_millis(inner.config.rpc_timeout_ms);
        let mut last_error = String::new();
        for (index, uri) in inner.endpoints.iter().enumerate() {
            let endpoint = endpoint(uri, &inner.config)?;
            let connect = endpoint.connect_with_connector(inner.dialer.connector());
            match tokio::time::timeout(rpc_timeout, connect).await {
                Ok(Ok(channel)) => {
                    let mut state = lock(&inner.state);
                    state.current = uri.clone();
                    state.cursor = index;
                    state.channels.insert(uri.clone(), channel);
                    drop(state);
                    return Ok(client);
                }
                Ok(Err(error)) => {
                    let text = tally_net::http_client::error_chain(&error);
                    last_error = format!("{uri}: {text}");
                }
                Err(_) => {
                    last_error =
                        format!("{uri}: no connection within {} ms", rpc_timeout.as_millis())
                }
            }
        }
        Err(ClientError::NoNodeReachable {
            endpoints: inner.given.join(", "),
            last_error,
        })
    }

    /// A client that connects on first use, for clusters that may still be starting. Only checks
    /// that the endpoints parse.
    pub fn connect_lazy(endpoints: Vec<String>, config: ClientConfig) -> Result<Self, ClientError> {
        Self::connect_lazy_with_dialer(endpoints, config, Dialer::tcp())
    }

    /// [`LedgerClient::connect_lazy`] whose connections go through `dialer`.
    pub fn connect_lazy_with_dialer(
        endpoints: Vec<String>,
        config: ClientConfig,
        dialer: Dialer,
    ) -> Result<Self, ClientError> {
        if endpoints.is_empty() {
            return Err(ClientError::NoEndpoints);
        }
        let uris = endpoints
            .iter()
            .map(|addr| endpoint_uri(addr))
            .collect::<Result<Vec<_>, _>>()?;
        let state = State {
            current: uris[0].clone(),
            cursor: 0,
            channels: BTreeMap::new(),
        };
        Ok(LedgerClient {
            inner: Arc::new(Inner {
                config,
                given: endpoints,
                endpoints: uris,
                dialer,
                state: Mutex::new(state),
            }),
        })
    }

    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// The URI the next call goes to (the last known leader once a write succeeded).
    pub fn current_endpoint(&self) -> String {
        lock(&self.inner.state).current.clone()
    }

    /// The Admin service, through the same leader following and retries.
    pub fn admin(&self) -> Admin {
        Admin {
            client: self.clone(),
        }
    }

    /// The raw Admin client of one node (`host:port`), for node-local operations on a chosen node
    /// (its `Status`, `Initialize`, `TriggerSnapshot`, `Backup`). No retries.
    pub async fn node_admin(
        &self,
        addr: &str,
    ) -> Result<admin_pb::admin_client::AdminClient<Channel>, ClientError> {
        let uri = endpoint_uri(addr)?;
        let endpoint = endpoint(&uri, &self.inner.config)?;
        let channel = endpoint
            .connect_with_connector(self.inner.dialer.connector())
            .await
            .map_err(|error| ClientError::NoNodeReachable {
                endpoints: addr.to_owned(),
                last_error: describe(&Status::from_error(Box::new(error))),
            })?;
        Ok(admin_pb::admin_client::AdminClient::new(channel)
            .max_decoding_message_size(MESSAGE_BYTES_MAX)
            .max_encoding_message_size(MESSAGE_BYTES_MAX))
    }

    fn current_channel(&self) -> Result<(String, Channel), ClientError> {
        let mut state = lock(&self.inner.state);
        let uri = state.current.clone();
        if let Some(channel) = state.channels.get(&uri) {
            return Ok((uri, channel.clone()));
        }
        let endpoint = endpoint(&uri, &self.inner.config)?;
        let channel = crate::dial::channel(&self.inner.dialer, endpoint);
        state.channels.insert(uri.clone(), channel.clone());
        Ok((uri, channel))
    }

    /// Moves from `from` to the next endpoint, unless a concurrent call already moved elsewhere.
    fn move_to_next(&self, from: &str) {
        let mut state = lock(&self.inner.state);
        if state.current != from {
            return;
        }
        let endpoints = &self.inner.endpoints;
        // From a hinted leader that is not an endpoint, the cursor's own endpoint comes next.
        let next = if endpoints.get(state.cursor).is_some_and(|e| e == from) {
            (state.cursor + 1) % endpoints.len()
        } else {
            state.cursor % endpoints.len()
        };
        state.cursor = next;
        state.current = endpoints[next].clone();
    }

    fn move_to_leader(&self, from: &str, leader: &str) {
        match endpoint_uri(leader) {
            Ok(uri) => {
                let mut state = lock(&self.inner.state);
                if let Some(index) = self.inner.endpoints.iter().position(|e| *e == uri) {
                    state.cursor = index;
                }
                state.current = uri;
            }
            // A hint the client cannot use is no better than none.
            Err(_) => self.move_to_next(from),
        }
    }

    /// Runs `rpc` under the retry policy: see [`decide`].
    async fn call<Req, Resp, F, Fut>(&self, request: Req, rpc: F) -> Result<Resp, ClientError>
    where
        Req: Clone,
        F: Fn(Channel, tonic::Request<Req>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<Resp>, Status>>,
    {
        let config = &self.inner.config;
        let started = Instant::now();
        let request_timeout = Duration::from_millis(config.request_timeout_ms);
        let rpc_timeout = Duration::from_millis(config.rpc_timeout_ms);
        let mut attempts = 0u32;
        let mut followed_hint = false;
        let mut reached_a_node = false;
        loop {
            attempts += 1;
            let (uri, channel) = self.current_channel()?;
            let deadline = rpc_timeout.min(request_timeout.saturating_sub(started.elapsed()));
            let mut attempt = tonic::Request::new(request.clone());
            attempt.set_timeout(deadline);
            let status = match tokio::time::timeout(deadline, rpc(channel, attempt)).await {
                Ok(Ok(response)) => return Ok(response.into_inner()),
                Ok(Err(status)) => {
                    // A status with a cause was made on this side from a transport failure; one
                    // without came from a node.
                    if status.source().is_none() {
                        reached_a_node = true;
                    }
                    status
                }
                Err(_) => Status::deadline_exceeded(format!(
                    "{uri} did not answer within {} ms",
                    deadline.as_millis()
                )),
            };
            match decide(config, attempts, started.elapsed(), &status, followed_hint) {
                Decision::Retry { target, delay } => {
                    match target {
                        Target::Leader(leader) => {
                            followed_hint = true;
                            self.move_to_leader(&uri, &leader);
                        }
                        Target::NextEndpoint => self.move_to_next(&uri),
                    }
                    tokio::time::sleep(delay).await;
                }
                Decision::Fail => return Err(ClientError::Rpc(status)),
                Decision::AttemptsExhausted | Decision::OutOfTime => {
                    let last_error = format!("{uri}: {}", describe(&status));
                    return Err(if reached_a_node {
                        ClientError::NoLeader {
                            attempts,
                            elapsed_ms: started.elapsed().as_millis(),
                            last_error,
                        }
                    } else {
                        ClientError::NoNodeReachable {
                            endpoints: self.inner.given.join(", "),
                            last_error,
                        }
                    });
                }
            }
        }
    }

    fn payments(
        channel: Channel,
    ) -> crate::node::payments_ledger_client::PaymentsLedgerClient<Channel> {
        crate::node::payments_ledger_client::PaymentsLedgerClient::new(channel)
            .max_decoding_message_size(MESSAGE_BYTES_MAX)
            .max_encoding_message_size(MESSAGE_BYTES_MAX)
    }

    /// `PaymentsLedger.Execute`: one result per payment command, in order. Every payment
    /// command is safe to resend (ids and forward-only states make retries no-ops), except that
    /// a resent `ClaimOrder` whose first answer was lost finds its own lease held; it then waits
    /// out the lease like any other executor.
    pub async fn execute_payments(
        &self,
        commands: &[PaymentCommand],
    ) -> Result<Vec<PaymentResult>, ClientError> {
        let request = payments_node_codec::commands_request(commands);
        let response = self
            .call(request, |channel, request| async move {
                Self::payments(channel).execute(request).await
            })
            .await?;
        payments_node_codec::results_of(&response).map_err(ClientError::Rpc)
    }

    /// `PaymentsLedger.Idempotency`: begins or completes client idempotency keys, one result
    /// per command, in order.
    pub async fn execute_idempotency(
        &self,
        commands: &[payments_node_codec::IdempotencyCommand],
    ) -> Result<Vec<payments_node_codec::IdempotencyResult>, ClientError> {
        let request = payments_node_codec::idempotency_request(commands);
        let response = self
            .call(request, |channel, request| async move {
                Self::payments(channel).idempotency(request).await
            })
            .await?;
        payments_node_codec::idempotency_results_of(&response).map_err(ClientError::Rpc)
    }

    /// `PaymentsLedger.Query`, answered linearizably by the leader.
    pub async fn query_payments(
        &self,
        query: &PaymentQuery,
    ) -> Result<PaymentQueryResult, ClientError> {
        let request = payments_node_codec::query_request(query);
        let response = self
            .call(request, |channel, request| async move {
                Self::payments(channel).query(request).await
            })
            .await?;
        payments_node_codec::query_result_of(&response).map_err(ClientError::Rpc)
    }

    fn ledger(channel: Channel) -> pb::ledger_client::LedgerClient<Channel> {
        pb::ledger_client::LedgerClient::new(channel)
            .max_decoding_message_size(MESSAGE_BYTES_MAX)
            .max_encoding_message_size(MESSAGE_BYTES_MAX)
    }

    /// `CreateAccounts`: one result per account, by index.
    pub async fn create_accounts<A: Into<pb::NewAccount>>(
        &self,
        accounts: impl IntoIterator<Item = A>,
    ) -> Result<pb::BatchResponse, ClientError> {
        let request = pb::CreateAccountsRequest {
            accounts: accounts.into_iter().map(Into::into).collect(),
        };
        self.call(request, |channel, request| async move {
            Self::ledger(channel).create_accounts(request).await
        })
        .await
    }

    /// `CreateTransfers`: one result per transfer, by index. Items can be `pb::NewTransfer`s or
    /// `convert::TransferDraft`s.
    pub async fn create_transfers<T: Into<pb::NewTransfer>>(
        &self,
        transfers: impl IntoIterator<Item = T>,
    ) -> Result<pb::BatchResponse, ClientError> {
        let request = pb::CreateTransfersRequest {
            transfers: transfers.into_iter().map(Into::into).collect(),
        };
        self.call(request, |channel, request| async move {
            Self::ledger(channel).create_transfers(request).await
        })
        .await
    }

    /// `CloseAccounts`: one result per account, by index.
    pub async fn close_accounts<C: Into<pb::CloseAccount>>(
        &self,
        accounts: impl IntoIterator<Item = C>,
    ) -> Result<pb::BatchResponse, ClientError> {
        let request = pb::CloseAccountsRequest {
            accounts: accounts.into_iter().map(Into::into).collect(),
        };
        self.call(request, |channel, request| async move {
            Self::ledger(channel).close_accounts(request).await
        })
        .await
    }

    /// `LookupAccounts`: the accounts that exist, in request order.
    pub async fn lookup_accounts<I: Into<pb::Uint128>>(
        &self,
        ids: impl IntoIterator<Item = I>,
    ) -> Result<Vec<pb::Account>, ClientError> {
        let request = pb::LookupRequest {
            ids: ids.into_iter().map(Into::into).collect(),
        };
        let response = self
            .call(request, |channel, request| async move {
                Self::ledger(channel).lookup_accounts(request).await
            })
            .await?;
        Ok(response.accounts)
    }

    /// `LookupTransfers`: the transfers that exist (applied or refused), in request order.
    pub async fn lookup_transfers<I: Into<pb::Uint128>>(
        &self,
        ids: impl IntoIterator<Item = I>,
    ) -> Result<Vec<pb::Transfer>, ClientError> {
        let request = pb::LookupRequest {
            ids: ids.into_iter().map(Into::into).collect(),
        };
        let response = self
            .call(request, |channel, request| async move {
                Self::ledger(channel).lookup_transfers(request).await
            })
            .await?;
        Ok(response.transfers)
    }

    /// `GetAccountHistory`: one page; pass `next_cursor_ns` back as `cursor_ns` for the next.
    pub async fn get_account_history(
        &self,
        request: impl Into<pb::HistoryRequest>,
    ) -> Result<pb::HistoryResponse, ClientError> {
        self.call(request.into(), |channel, request| async move {
            Self::ledger(channel).get_account_history(request).await
        })
        .await
    }

    /// `GetBalance`: now, or as of `as_of_ns`.
    pub async fn get_balance(
        &self,
        account_id: impl Into<pb::Uint128>,
        as_of_ns: Option<u64>,
    ) -> Result<pb::BalanceResponse, ClientError> {
        let request = pb::BalanceRequest {
            account_id: Some(account_id.into()),
            as_of_ns,
        };
        self.call(request, |channel, request| async move {
            Self::ledger(channel).get_balance(request).await
        })
        .await
    }
}

/// The Admin service through a [`LedgerClient`]'s leader following and retries.
///
/// Leader-only operations (`add_learner`, `change_membership`) follow the leader like writes.
/// Node-local ones (`status`, `initialize`, `trigger_snapshot`, `backup`) act on whichever node the
/// client currently talks to (the leader once found); use [`LedgerClient::node_admin`] to pick
/// the node.
#[derive(Clone, Debug)]
pub struct Admin {
    client: LedgerClient,
}

impl Admin {
    fn admin(channel: Channel) -> admin_pb::admin_client::AdminClient<Channel> {
        admin_pb::admin_client::AdminClient::new(channel)
            .max_decoding_message_size(MESSAGE_BYTES_MAX)
            .max_encoding_message_size(MESSAGE_BYTES_MAX)
    }

    pub async fn status(&self) -> Result<admin_pb::StatusResponse, ClientError> {
        self.client
            .call(admin_pb::StatusRequest {}, |channel, request| async move {
                Self::admin(channel).status(request).await
            })
            .await
    }

    pub async fn initialize(
        &self,
        members: Vec<admin_pb::Member>,
    ) -> Result<admin_pb::InitializeResponse, ClientError> {
        let request = admin_pb::InitializeRequest { members };
        self.client
            .call(request, |channel, request| async move {
                Self::admin(channel).initialize(request).await
            })
            .await
    }

    pub async fn add_learner(
        &self,
        member: admin_pb::Member,
    ) -> Result<admin_pb::AddLearnerResponse, ClientError> {
        let request = admin_pb::AddLearnerRequest {
            member: Some(member),
        };
        self.client
            .call(request, |channel, request| async move {
                Self::admin(channel).add_learner(request).await
            })
            .await
    }

    pub async fn change_membership(
        &self,
        voters: Vec<u64>,
        retain: bool,
    ) -> Result<admin_pb::ChangeMembershipResponse, ClientError> {
        let request = admin_pb::ChangeMembershipRequest { voters, retain };
        self.client
            .call(request, |channel, request| async move {
                Self::admin(channel).change_membership(request).await
            })
            .await
    }

    pub async fn trigger_snapshot(&self) -> Result<admin_pb::SnapshotResponse, ClientError> {
        self.client
            .call(admin_pb::Empty {}, |channel, request| async move {
                Self::admin(channel).trigger_snapshot(request).await
            })
            .await
    }

    pub async fn backup(
        &self,
        dir: impl Into<String>,
    ) -> Result<admin_pb::BackupResponse, ClientError> {
        let request = admin_pb::BackupRequest { dir: dir.into() };
        self.client
            .call(request, |channel, request| async move {
                Self::admin(channel).backup(request).await
            })
            .await
    }
}

#[cfg(test)]
mod tests;
