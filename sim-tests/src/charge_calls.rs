//! Watches the gateways' charge calls to the PSP, for the lease checker.
//!
//! An executor calls the PSP for an order only under a claim, and a claim is granted only when
//! no other claim's lease is running. The simulation's lease (`LEASE_MS`) is longer than a PSP
//! call's deadline plus twice the largest clock skew between leaders, so with leases honoured no
//! two charge calls for one order are ever in flight at once, whichever gateways make them. Each
//! gateway's PSP adapter — the real one — is wrapped here; a second call for an order while one
//! is open is recorded as a violation the moment it starts. A call ends when it returns, times
//! out, or its gateway crashes (its future is dropped).

use async_trait::async_trait;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tally_psp::{
    Charge, ChargeRequest, Payout, PayoutRequest, Psp, PspError, Refund, RefundRequest,
    WebhookError, WebhookEvent,
};

#[derive(Default)]
struct Calls {
    /// Open charge calls by order (the PSP idempotency key): the gateway and when it began.
    open: BTreeMap<String, (usize, u64)>,
    violations: Vec<String>,
    calls: u64,
}

/// Shared by every gateway's wrapped adapter. Cheap to clone.
#[derive(Clone, Default)]
pub struct ChargeCalls(Arc<Mutex<Calls>>);

impl ChargeCalls {
    fn lock(&self) -> std::sync::MutexGuard<'_, Calls> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Overlapping charge calls seen so far.
    pub fn violations(&self) -> Vec<String> {
        self.lock().violations.clone()
    }

    pub fn calls(&self) -> u64 {
        self.lock().calls
    }

    /// Marks a call for `key` open; a violation if another is open for the same order.
    fn begin(&self, key: &str, gateway: usize) -> OpenCall {
        let now_ms = turmoil::elapsed().as_millis() as u64;
        let mut calls = self.lock();
        calls.calls += 1;
        if let Some((other, since_ms)) = calls.open.get(key).copied() {
            calls.violations.push(format!(
                "lease: gateway{} charges order {key} at {now_ms} ms while gateway{}'s charge call \
                 for it (begun at {since_ms} ms) is still open",
                gateway + 1,
                other + 1
            ));
        }
        calls.open.insert(key.to_string(), (gateway, now_ms));
        OpenCall {
            calls: self.clone(),
            key: key.to_string(),
            gateway,
        }
    }

    /// The real adapter `inner` of `gateway`, watched.
    pub fn wrap(&self, gateway: usize, inner: Arc<dyn Psp>) -> Arc<dyn Psp> {
        Arc::new(WatchedPsp {
            inner,
            gateway,
            calls: self.clone(),
        })
    }
}

/// Closes its call when dropped: on return, on timeout, or with its crashed gateway.
struct OpenCall {
    calls: ChargeCalls,
    key: String,
    gateway: usize,
}

impl Drop for OpenCall {
    fn drop(&mut self) {
        let mut calls = self.calls.lock();
        if calls.open.get(&self.key).map(|(g, _)| *g) == Some(self.gateway) {
            calls.open.remove(&self.key);
        }
    }
}

struct WatchedPsp {
    inner: Arc<dyn Psp>,
    gateway: usize,
    calls: ChargeCalls,
}

#[async_trait]
impl Psp for WatchedPsp {
    async fn charge(&self, request: ChargeRequest) -> Result<Charge, PspError> {
        let _open = self.calls.begin(&request.idempotency_key, self.gateway);
        self.inner.charge(request).await
    }

    async fn capture(
        &self,
        charge_id: &str,
        amount_minor: u64,
        idempotency_key: &str,
    ) -> Result<Charge, PspError> {
        self.inner
            .capture(charge_id, amount_minor, idempotency_key)
            .await
    }

    async fn cancel(&self, charge_id: &str, idempotency_key: &str) -> Result<Charge, PspError> {
        self.inner.cancel(charge_id, idempotency_key).await
    }

    async fn refund(&self, request: RefundRequest) -> Result<Refund, PspError> {
        self.inner.refund(request).await
    }

    async fn charge_status(&self, idempotency_key: &str) -> Result<Option<Charge>, PspError> {
        self.inner.charge_status(idempotency_key).await
    }

    async fn payout(&self, request: PayoutRequest) -> Result<Payout, PspError> {
        self.inner.payout(request).await
    }

    async fn payout_status(&self, idempotency_key: &str) -> Result<Option<Payout>, PspError> {
        self.inner.payout_status(idempotency_key).await
    }

    fn verify_webhook(
        &self,
        raw_body: &[u8],
        signature_header: &str,
        now_unix_s: u64,
    ) -> Result<WebhookEvent, WebhookError> {
        self.inner
            .verify_webhook(raw_body, signature_header, now_unix_s)
    }
}
