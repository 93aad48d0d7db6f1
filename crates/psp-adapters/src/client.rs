//! `SimPsp`: the `Psp` adapter for `tally-psp-sim` over HTTP. Errors are classified here, once:
//! connect failures, timeouts, 5xx, 429 and "request in progress" are retryable; other 4xx are
//! terminal.

use crate::error::{PspError, WebhookError};
use crate::model::{
    Charge, ChargeRequest, Payout, PayoutRequest, Refund, RefundRequest, SimLedgerRow, WebhookEvent,
};
use crate::Psp;
use bytes::Bytes;
use http::Method;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tally_net::{Dialer, HttpClient, HttpError, HttpResponse};

#[derive(Clone)]
pub struct SimPspConfig {
    /// e.g. `http://127.0.0.1:7300`.
    pub base_url: String,
    /// Deadline of each call.
    pub timeout_ms: u64,
    /// The secrets webhooks may be signed with: the current one and, while rotating, the
    /// previous ones.
    pub webhook_secrets: Vec<Vec<u8>>,
}

/// By hand: the webhook secrets must never reach a log.
impl std::fmt::Debug for SimPspConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimPspConfig")
            .field("base_url", &self.base_url)
            .field("timeout_ms", &self.timeout_ms)
            .field(
                "webhook_secrets",
                &format_args!("[{} masked]", self.webhook_secrets.len()),
            )
            .finish()
    }
}

pub struct SimPsp {
    config: SimPspConfig,
    http: HttpClient,
}

#[derive(serde::Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(serde::Deserialize)]
struct ErrorDetail {
    code: String,
    message: String,
}

impl SimPsp {
    /// Reaches the PSP over OS TCP.
    pub fn new(config: SimPspConfig) -> Self {
        SimPsp::with_dialer(config, &Dialer::tcp())
    }

    /// Reaches the PSP through `dialer` (a simulation's sockets).
    pub fn with_dialer(config: SimPspConfig, dialer: &Dialer) -> Self {
        let http = HttpClient::new(dialer, config.timeout_ms);
        SimPsp { config, http }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.config.base_url.trim_end_matches('/'))
    }

    fn read<T: DeserializeOwned>(answer: Result<HttpResponse, HttpError>) -> Result<T, PspError> {
        let response = answer.map_err(|e| match e {
            HttpError::Timeout { .. } => {
                PspError::retryable("timeout", format!("the PSP did not answer in time: {e}"))
            }
            HttpError::Send(_) => {
                PspError::retryable("psp_unavailable", format!("the PSP is unreachable: {e}"))
            }
            HttpError::Body(_) => PspError::retryable(
                "psp_unavailable",
                format!("the PSP's answer broke off: {e}"),
            ),
        })?;
        let status = response.status.as_u16();
        if response.status.is_success() {
            return serde_json::from_slice(&response.body).map_err(|e| {
                PspError::retryable("psp_bad_response", format!("unreadable PSP answer: {e}"))
            });
        }
        match serde_json::from_slice::<ErrorBody>(&response.body) {
            Ok(error) => Err(PspError::from_http(
                status,
                &error.error.code,
                error.error.message,
            )),
            Err(_) => Err(PspError::from_http(
                status,
                "psp_error",
                format!("PSP answered HTTP {status}"),
            )),
        }
    }

    async fn get<T: DeserializeOwned>(&self, path_and_query: &str) -> Result<T, PspError> {
        Self::read(
            self.http
                .request(Method::GET, &self.url(path_and_query), &[], Bytes::new())
                .await,
        )
    }

    /// POSTs `body` as JSON, under `idempotency_key` when there is one.
    async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        idempotency_key: Option<&str>,
        body: &B,
    ) -> Result<T, PspError> {
        let body = serde_json::to_vec(body).map_err(|e| {
            PspError::terminal("invalid_request", format!("unencodable request: {e}"))
        })?;
        let mut headers = vec![("content-type", "application/json")];
        if let Some(key) = idempotency_key {
            headers.push(("idempotency-key", key));
        }
        Self::read(
            self.http
                .request(Method::POST, &self.url(path), &headers, Bytes::from(body))
                .await,
        )
    }

    /// `GET path?idempotency_key=key`: `None` when the PSP knows no such key.
    async fn by_key<T: DeserializeOwned>(
        &self,
        path: &str,
        key: &str,
    ) -> Result<Option<T>, PspError> {
        let query = serde_urlencoded::to_string([("idempotency_key", key)]).map_err(|e| {
            PspError::terminal("invalid_request", format!("unencodable key {key:?}: {e}"))
        })?;
        match self.get::<T>(&format!("{path}?{query}")).await {
            Ok(found) => Ok(Some(found)),
            Err(error) if error.code == "not_found" => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// The simulator's own record of every money movement (tests and reconciliation).
    pub async fn sim_ledger(&self) -> Result<Vec<SimLedgerRow>, PspError> {
        self.get("/v1/sim/ledger").await
    }

    /// Makes the next `count` money calls fail with `fault` (`timeout`, `error_500`,
    /// `lost_response`, `invalid_request`, `latency=<ms>`).
    pub async fn inject_faults(&self, fault: &str, count: u32) -> Result<(), PspError> {
        let body = serde_json::json!({ "fault": fault, "count": count });
        let _: serde_json::Value = self.post("/v1/sim/faults", None, &body).await?;
        Ok(())
    }

    /// Completes a pending (3-D Secure or QR) charge, as the buyer would; the simulator then
    /// sends the signed webhook.
    pub async fn complete_pending(
        &self,
        charge_id: &str,
        succeed: bool,
    ) -> Result<Charge, PspError> {
        let body = serde_json::json!({ "succeed": succeed });
        self.post(
            &format!("/v1/sim/charges/{charge_id}/complete"),
            None,
            &body,
        )
        .await
    }
}

#[async_trait::async_trait]
impl Psp for SimPsp {
    async fn charge(&self, request: ChargeRequest) -> Result<Charge, PspError> {
        let key = request.idempotency_key.clone();
        self.post("/v1/charges", Some(&key), &request).await
    }

    async fn capture(
        &self,
        charge_id: &str,
        amount_minor: u64,
        idempotency_key: &str,
    ) -> Result<Charge, PspError> {
        let body = serde_json::json!({ "amount_minor": amount_minor });
        self.post(
            &format!("/v1/charges/{charge_id}/capture"),
            Some(idempotency_key),
            &body,
        )
        .await
    }

    async fn cancel(&self, charge_id: &str, idempotency_key: &str) -> Result<Charge, PspError> {
        let body = serde_json::json!({});
        self.post(
            &format!("/v1/charges/{charge_id}/cancel"),
            Some(idempotency_key),
            &body,
        )
        .await
    }

    async fn refund(&self, request: RefundRequest) -> Result<Refund, PspError> {
        let key = request.idempotency_key.clone();
        self.post("/v1/refunds", Some(&key), &request).await
    }

    async fn charge_status(&self, idempotency_key: &str) -> Result<Option<Charge>, PspError> {
        self.by_key("/v1/charges", idempotency_key).await
    }

    async fn payout(&self, request: PayoutRequest) -> Result<Payout, PspError> {
        let key = request.idempotency_key.clone();
        self.post("/v1/payouts", Some(&key), &request).await
    }

    async fn payout_status(&self, idempotency_key: &str) -> Result<Option<Payout>, PspError> {
        self.by_key("/v1/payouts", idempotency_key).await
    }

    fn verify_webhook(
        &self,
        raw_body: &[u8],
        signature_header: &str,
        now_unix_s: u64,
    ) -> Result<WebhookEvent, WebhookError> {
        crate::webhook::verify_any(
            &self.config.webhook_secrets,
            raw_body,
            signature_header,
            now_unix_s,
        )
    }
}
