use super::*;
use crate::ledger::ledger_server::{Ledger, LedgerServer};
use std::sync::atomic::{AtomicU32, Ordering};
use tonic::{Request, Response};

fn config() -> ClientConfig {
    ClientConfig::default()
}

fn hinted(code: Code, leader: &str) -> Status {
    let mut status = Status::new(code, "not the leader");
    status
        .metadata_mut()
        .insert(LEADER_API_METADATA_KEY, leader.parse().unwrap());
    status
}

// ---- The pure retry policy ----

#[test]
fn backoff_doubles_from_20_ms_to_250_ms() {
    let config = config();
    let delays: Vec<u64> = (0..9)
        .map(|retry| backoff(&config, retry).as_millis() as u64)
        .collect();
    assert_eq!(delays, vec![20, 40, 80, 160, 250, 250, 250, 250, 250]);
    assert_eq!(backoff(&config, u32::MAX), Duration::from_millis(250));
}

#[test]
fn statuses_are_classified() {
    assert_eq!(
        classify(&hinted(Code::FailedPrecondition, "10.0.0.2:7000")),
        Some(Target::Leader("10.0.0.2:7000".into()))
    );
    assert_eq!(
        classify(&hinted(Code::Unavailable, "10.0.0.2:7000")),
        Some(Target::Leader("10.0.0.2:7000".into()))
    );
    for code in [Code::Unavailable, Code::DeadlineExceeded, Code::Cancelled] {
        assert_eq!(classify(&Status::new(code, "")), Some(Target::NextEndpoint));
    }
    // A refusal is final, even with a (meaningless) hint.
    for code in [
        Code::FailedPrecondition,
        Code::InvalidArgument,
        Code::NotFound,
        Code::OutOfRange,
        Code::Internal,
        Code::Unknown,
    ] {
        assert_eq!(classify(&Status::new(code, "")), None, "{code:?}");
    }
    assert_eq!(classify(&hinted(Code::InvalidArgument, "a:1")), None);
    // A transport failure surfacing as UNKNOWN carries its cause.
    let transport = Status::from_error(Box::new(std::io::Error::other("connection reset")));
    assert_eq!(transport.code(), Code::Unknown);
    assert_eq!(classify(&transport), Some(Target::NextEndpoint));
}

#[test]
fn the_not_leader_status_follows_the_contract() {
    let status = not_leader_status(Some("10.0.0.2:7000"));
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(leader_hint(&status).as_deref(), Some("10.0.0.2:7000"));
    let status = not_leader_status(None);
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(leader_hint(&status), None);
    assert_eq!(not_leader_status(Some("")).code(), Code::Unavailable);
    assert_eq!(not_leader_status(Some("nœud:1")).code(), Code::Unavailable);
    assert_eq!(not_leader_status(Some("a b:1")).code(), Code::Unavailable);
}

#[test]
fn the_first_hint_is_followed_at_once_later_ones_back_off() {
    let config = config();
    let status = hinted(Code::FailedPrecondition, "b:1");
    let leader = Target::Leader("b:1".into());
    assert_eq!(
        decide(&config, 1, Duration::ZERO, &status, false),
        Decision::Retry {
            target: leader.clone(),
            delay: Duration::ZERO
        }
    );
    assert_eq!(
        decide(&config, 2, Duration::ZERO, &status, true),
        Decision::Retry {
            target: leader,
            delay: Duration::from_millis(40)
        }
    );
}

#[test]
fn elections_back_off_and_give_up_after_the_attempt_budget() {
    let config = config();
    let election = Status::unavailable("election");
    let mut total = Duration::ZERO;
    for attempt in 1..config.retry_attempts_max {
        match decide(&config, attempt, Duration::ZERO, &election, false) {
            Decision::Retry {
                target: Target::NextEndpoint,
                delay,
            } => {
                assert_eq!(delay, backoff(&config, attempt - 1));
                total += delay;
            }
            other => panic!("attempt {attempt}: {other:?}"),
        }
    }
    assert_eq!(
        decide(
            &config,
            config.retry_attempts_max,
            Duration::ZERO,
            &election,
            false
        ),
        Decision::AttemptsExhausted
    );
    // 20 + 40 + 80 + 160 + 45 x 250 ms of waiting over 49 retries: more than the default
    // request timeout, which therefore usually ends an election wait first.
    assert_eq!(total, Duration::from_millis(300 + 45 * 250));
}

#[test]
fn the_request_timeout_bounds_the_wait() {
    let config = config();
    let election = Status::unavailable("election");
    assert_eq!(
        decide(&config, 10, Duration::from_millis(9_800), &election, false),
        Decision::OutOfTime
    );
    assert!(matches!(
        decide(&config, 10, Duration::from_millis(8_000), &election, false),
        Decision::Retry { .. }
    ));
}

#[test]
fn final_answers_are_not_retried() {
    let config = config();
    let refusal = Status::invalid_argument("kind_missing");
    assert_eq!(
        decide(&config, 1, Duration::ZERO, &refusal, false),
        Decision::Fail
    );
    // Even past the budget, a final answer is returned as it is.
    assert_eq!(
        decide(&config, 99, Duration::from_secs(99), &refusal, false),
        Decision::Fail
    );
}

#[test]
fn endpoints_are_validated() {
    assert!(matches!(
        LedgerClient::connect_lazy(vec![], config()),
        Err(ClientError::NoEndpoints)
    ));
    assert!(matches!(
        LedgerClient::connect_lazy(vec!["".into()], config()),
        Err(ClientError::InvalidEndpoint { .. })
    ));
    assert!(matches!(
        LedgerClient::connect_lazy(vec!["a b:1".into()], config()),
        Err(ClientError::InvalidEndpoint { .. })
    ));
    let client =
        LedgerClient::connect_lazy(vec!["127.0.0.1:7000".into(), "http://b:1".into()], config())
            .unwrap();
    assert_eq!(client.current_endpoint(), "http://127.0.0.1:7000");
}

#[test]
fn moving_on_cycles_through_the_endpoints_and_returns_from_a_hinted_leader() {
    let client =
        LedgerClient::connect_lazy(vec!["a:1".into(), "b:1".into(), "c:1".into()], config())
            .unwrap();
    client.move_to_next("http://a:1");
    assert_eq!(client.current_endpoint(), "http://b:1");
    // A stale caller that still thinks it talks to a:1 does not move the client again.
    client.move_to_next("http://a:1");
    assert_eq!(client.current_endpoint(), "http://b:1");
    client.move_to_leader("http://b:1", "x:9");
    assert_eq!(client.current_endpoint(), "http://x:9");
    client.move_to_next("http://x:9");
    assert_eq!(client.current_endpoint(), "http://b:1");
    client.move_to_leader("http://b:1", "c:1");
    client.move_to_next("http://c:1");
    assert_eq!(client.current_endpoint(), "http://a:1");
    client.move_to_leader("http://a:1", "not a host");
    assert_eq!(client.current_endpoint(), "http://b:1");
}

// ---- Against in-process servers ----

#[derive(Clone)]
enum Role {
    Leader,
    /// Answers FAILED_PRECONDITION with this hint.
    Follower(String),
    /// Answers UNAVAILABLE without a hint, this many times, then leads.
    Electing(u32),
    /// Answers FAILED_PRECONDITION without a hint.
    Confused,
}

#[derive(Clone)]
struct FakeNode {
    role: Role,
    calls: Arc<AtomicU32>,
}

impl FakeNode {
    fn answer(&self) -> Result<(), Status> {
        let calls = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        match &self.role {
            Role::Leader => Ok(()),
            Role::Follower(leader) => Err(not_leader_status(Some(leader))),
            Role::Electing(until) if calls <= *until => Err(not_leader_status(None)),
            Role::Electing(_) => Ok(()),
            Role::Confused => Err(Status::failed_precondition("confused")),
        }
    }

    fn batch(&self, items: usize) -> Result<Response<pb::BatchResponse>, Status> {
        self.answer()?;
        Ok(Response::new(pb::BatchResponse {
            results: (0..items)
                .map(|index| pb::ItemResult {
                    index: index as u32,
                    code: "ok".into(),
                    message: String::new(),
                    timestamp_ns: 1,
                })
                .collect(),
        }))
    }
}

#[tonic::async_trait]
impl Ledger for FakeNode {
    async fn create_accounts(
        &self,
        request: Request<pb::CreateAccountsRequest>,
    ) -> Result<Response<pb::BatchResponse>, Status> {
        self.batch(request.into_inner().accounts.len())
    }

    async fn create_transfers(
        &self,
        request: Request<pb::CreateTransfersRequest>,
    ) -> Result<Response<pb::BatchResponse>, Status> {
        self.batch(request.into_inner().transfers.len())
    }

    async fn close_accounts(
        &self,
        request: Request<pb::CloseAccountsRequest>,
    ) -> Result<Response<pb::BatchResponse>, Status> {
        self.batch(request.into_inner().accounts.len())
    }

    async fn lookup_accounts(
        &self,
        _: Request<pb::LookupRequest>,
    ) -> Result<Response<pb::LookupAccountsResponse>, Status> {
        self.answer()?;
        Ok(Response::new(pb::LookupAccountsResponse::default()))
    }

    async fn lookup_transfers(
        &self,
        _: Request<pb::LookupRequest>,
    ) -> Result<Response<pb::LookupTransfersResponse>, Status> {
        self.answer()?;
        Ok(Response::new(pb::LookupTransfersResponse::default()))
    }

    async fn get_account_history(
        &self,
        _: Request<pb::HistoryRequest>,
    ) -> Result<Response<pb::HistoryResponse>, Status> {
        self.answer()?;
        Ok(Response::new(pb::HistoryResponse::default()))
    }

    async fn get_balance(
        &self,
        _: Request<pb::BalanceRequest>,
    ) -> Result<Response<pb::BalanceResponse>, Status> {
        self.answer()?;
        Ok(Response::new(pb::BalanceResponse {
            currency: "USD".into(),
            ..Default::default()
        }))
    }
}

/// Serves `role` on 127.0.0.1; returns the address and the call counter.
async fn serve(role: Role) -> (String, Arc<AtomicU32>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let calls = Arc::new(AtomicU32::new(0));
    let node = FakeNode {
        role,
        calls: calls.clone(),
    };
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(LedgerServer::new(node))
            .serve_with_incoming(incoming),
    );
    (addr, calls)
}

/// An address nothing listens on.
async fn dead_addr() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().to_string()
}

fn fast() -> ClientConfig {
    ClientConfig {
        rpc_timeout_ms: 1_000,
        request_timeout_ms: 5_000,
        retry_attempts_max: 5,
        backoff_initial_ms: 1,
        backoff_max_ms: 5,
    }
}

fn new_account(id: u128) -> pb::NewAccount {
    pb::NewAccount {
        id: Some(id.into()),
        currency: "USD".into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn writes_follow_the_leader_hint_and_stay_with_the_leader() {
    let (leader, leader_calls) = serve(Role::Leader).await;
    let (follower, follower_calls) = serve(Role::Follower(leader.clone())).await;
    let client = LedgerClient::connect_with(vec![follower], fast())
        .await
        .unwrap();

    let response = client
        .create_accounts([new_account(1), new_account(2)])
        .await
        .unwrap();
    assert_eq!(response.results.len(), 2);
    assert_eq!(follower_calls.load(Ordering::SeqCst), 1);
    assert_eq!(leader_calls.load(Ordering::SeqCst), 1);
    assert_eq!(client.current_endpoint(), format!("http://{leader}"));

    // The next call goes straight to the leader.
    let balance = client.get_balance(1u128, None).await.unwrap();
    assert_eq!(balance.currency, "USD");
    assert_eq!(follower_calls.load(Ordering::SeqCst), 1);
    assert_eq!(leader_calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn connect_skips_unreachable_endpoints() {
    let dead = dead_addr().await;
    let (leader, leader_calls) = serve(Role::Leader).await;
    let client = LedgerClient::connect_with(vec![dead, leader.clone()], fast())
        .await
        .unwrap();
    assert_eq!(client.current_endpoint(), format!("http://{leader}"));
    client.lookup_accounts([1u128]).await.unwrap();
    assert_eq!(leader_calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn calls_move_past_a_node_that_went_down() {
    let dead = dead_addr().await;
    let (leader, leader_calls) = serve(Role::Leader).await;
    let client = LedgerClient::connect_lazy(vec![dead, leader], fast()).unwrap();
    client.lookup_transfers([7u128]).await.unwrap();
    assert_eq!(leader_calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_election_is_waited_out() {
    let (node, calls) = serve(Role::Electing(2)).await;
    let client = LedgerClient::connect_with(vec![node], fast())
        .await
        .unwrap();
    let response = client
        .close_accounts([pb::CloseAccount {
            id: Some(1u128.into()),
            linked: false,
        }])
        .await
        .unwrap();
    assert_eq!(response.results[0].code, "ok");
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn no_leader_after_the_attempt_budget() {
    let (node, calls) = serve(Role::Electing(u32::MAX)).await;
    let client = LedgerClient::connect_with(vec![node], fast())
        .await
        .unwrap();
    let error = client.create_accounts([new_account(1)]).await.unwrap_err();
    assert!(
        matches!(error, ClientError::NoLeader { attempts: 5, .. }),
        "{error:?}"
    );
    assert!(error
        .to_string()
        .starts_with("cluster has no leader after 5 attempts"));
    assert_eq!(calls.load(Ordering::SeqCst), 5);
}

#[tokio::test]
async fn no_node_reachable() {
    let endpoints = vec![dead_addr().await, dead_addr().await];
    let error = LedgerClient::connect_with(endpoints.clone(), fast())
        .await
        .unwrap_err();
    assert!(
        matches!(error, ClientError::NoNodeReachable { .. }),
        "{error:?}"
    );
    assert!(error.to_string().starts_with(&format!(
        "no node reachable at {}, {}",
        endpoints[0], endpoints[1]
    )));

    let client = LedgerClient::connect_lazy(endpoints, fast()).unwrap();
    let error = client.get_balance(1u128, None).await.unwrap_err();
    assert!(
        matches!(error, ClientError::NoNodeReachable { .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_refusal_without_a_hint_is_returned_at_once() {
    let (node, calls) = serve(Role::Confused).await;
    let client = LedgerClient::connect_with(vec![node], fast())
        .await
        .unwrap();
    let error = client
        .create_transfers([pb::NewTransfer::default()])
        .await
        .unwrap_err();
    assert_eq!(
        error.status().map(Status::code),
        Some(Code::FailedPrecondition)
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn refusals_carry_their_error_code() {
    struct Refusing;
    #[tonic::async_trait]
    impl Ledger for Refusing {
        async fn create_accounts(
            &self,
            _: Request<pb::CreateAccountsRequest>,
        ) -> Result<Response<pb::BatchResponse>, Status> {
            Err(crate::convert::ConvertError::BatchTooLarge { items: 9_000 }.into())
        }
        async fn create_transfers(
            &self,
            _: Request<pb::CreateTransfersRequest>,
        ) -> Result<Response<pb::BatchResponse>, Status> {
            Err(Status::unimplemented(""))
        }
        async fn close_accounts(
            &self,
            _: Request<pb::CloseAccountsRequest>,
        ) -> Result<Response<pb::BatchResponse>, Status> {
            Err(Status::unimplemented(""))
        }
        async fn lookup_accounts(
            &self,
            _: Request<pb::LookupRequest>,
        ) -> Result<Response<pb::LookupAccountsResponse>, Status> {
            Err(Status::unimplemented(""))
        }
        async fn lookup_transfers(
            &self,
            _: Request<pb::LookupRequest>,
        ) -> Result<Response<pb::LookupTransfersResponse>, Status> {
            Err(Status::unimplemented(""))
        }
        async fn get_account_history(
            &self,
            _: Request<pb::HistoryRequest>,
        ) -> Result<Response<pb::HistoryResponse>, Status> {
            Err(Status::unimplemented(""))
        }
        async fn get_balance(
            &self,
            _: Request<pb::BalanceRequest>,
        ) -> Result<Response<pb::BalanceResponse>, Status> {
            Err(Status::unimplemented(""))
        }
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(LedgerServer::new(Refusing))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    let client = LedgerClient::connect_with(vec![addr], fast())
        .await
        .unwrap();
    let error = client.create_accounts([new_account(1)]).await.unwrap_err();
    assert_eq!(error.error_code(), Some("batch_too_large"));
    assert!(error.to_string().contains("split it"), "{error}");
}
