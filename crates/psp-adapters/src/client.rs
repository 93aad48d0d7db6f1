//! `SimPsp`: the `Psp` adapter for `tally-psp-sim` over HTTP. Errors are classified here, once:
//! connect failures, timeouts, 5xx, 429 and "request in progress" are retryable; other 4xx are
//! terminal.

use crate::error::{PspError, WebhookError};
use crate::model::{
    Charge, ChargeRequest, Payout, PayoutRequest, Refund, RefundRequest, SimLedgerRow, WebhookEvent,
};
use crate::Psp;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct SimPspConfig {
    /// e.g. `http://127.0.0.1:7300`.
    pub base_url: String,
    /// Deadline of each call.
    pub timeout_ms: u64,
    /// The secrets webhooks may be signed with: the current one and, while rotating, the
    /// previous ones.
    pub webhook_secrets: Vec<Vec<u8>>,
}

pub struct SimPsp {
    config: SimPspConfig,
    http: reqwest::Client,
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
    pub fn new(config: SimPspConfig) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.timeout_ms))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        SimPsp { config, http }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.config.base_url.trim_end_matches('/'))
    }

    async fn send<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, PspError> {
        let response = request.send().await.map_err(|e| {
            if e.is_timeout() {
                PspError::retryable("timeout", format!("the PSP did not answer in time: {e}"))
            } else {
                PspError::retryable("psp_unavailable", format!("the PSP is unreachable: {e}"))
            }
        })?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(|e| {
            PspError::retryable(
                "psp_unavailable",
                format!("the PSP's answer broke off: {e}"),
            )
        })?;
        if (200..300).contains(&status) {
            return serde_json::from_slice(&body).map_err(|e| {
                PspError::retryable("psp_bad_response", format!("unreadable PSP answer: {e}"))
            });
        }
        match serde_json::from_slice::<ErrorBody>(&body) {
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

    async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        idempotency_key: &str,
        body: &B,
    ) -> Result<T, PspError> {
        let request = self
            .http
            .post(self.url(path))
            .header("idempotency-key", idempotency_key)
            .json(body);
        self.send(request).await
    }

    /// The simulator's own record of every money movement (tests and reconciliation).
    pub async fn sim_ledger(&self) -> Result<Vec<SimLedgerRow>, PspError> {
        self.send(self.http.get(self.url("/v1/sim/ledger"))).await
    }

    /// Makes the next `count` money calls fail with `fault` (`timeout`, `error_500`,
    /// `lost_response`, `invalid_request`, `latency=<ms>`).
    pub async fn inject_faults(&self, fault: &str, count: u32) -> Result<(), PspError> {
        let body = serde_json::json!({ "fault": fault, "count": count });
        let _: serde_json::Value = self
            .send(self.http.post(self.url("/v1/sim/faults")).json(&body))
            .await?;
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
        self.send(
            self.http
                .post(self.url(&format!("/v1/sim/charges/{charge_id}/complete")))
                .json(&body),
        )
        .await
    }
}

#[async_trait::async_trait]
impl Psp for SimPsp {
    async fn charge(&self, request: ChargeRequest) -> Result<Charge, PspError> {
        let key = request.idempotency_key.clone();
        self.post("/v1/charges", &key, &request).await
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
            idempotency_key,
            &body,
        )
        .await
    }

    async fn cancel(&self, charge_id: &str, idempotency_key: &str) -> Result<Charge, PspError> {
        let body = serde_json::json!({});
        self.post(
            &format!("/v1/charges/{charge_id}/cancel"),
            idempotency_key,
            &body,
        )
        .await
    }

    async fn refund(&self, request: RefundRequest) -> Result<Refund, PspError> {
        let key = request.idempotency_key.clone();
        self.post("/v1/refunds", &key, &request).await
    }

    async fn charge_status(&self, idempotency_key: &str) -> Result<Option<Charge>, PspError> {
        let request = self
            .http
            .get(self.url("/v1/charges"))
            .query(&[("idempotency_key", idempotency_key)]);
        match self.send::<Charge>(request).await {
            Ok(charge) => Ok(Some(charge)),
            Err(error) if error.code == "not_found" => Ok(None),
            Err(error) => Err(error),
        }
    }

    async fn payout(&self, request: PayoutRequest) -> Result<Payout, PspError> {
        let key = request.idempotency_key.clone();
        self.post("/v1/payouts", &key, &request).await
    }

    async fn payout_status(&self, idempotency_key: &str) -> Result<Option<Payout>, PspError> {
        let request = self
            .http
            .get(self.url("/v1/payouts"))
            .query(&[("idempotency_key", idempotency_key)]);
        match self.send::<Payout>(request).await {
            Ok(payout) => Ok(Some(payout)),
            Err(error) if error.code == "not_found" => Ok(None),
            Err(error) => Err(error),
        }
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
