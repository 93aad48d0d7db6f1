//! The PSP executor and sweeper: turns orders the ledger says are due into PSP calls, and PSP
//! answers into ledger commands.
//!
//! Exactly once, hop by hop: an order is claimed with a lease in the replicated state before any
//! PSP call, so two gateways never execute it at once, and a dead gateway's lease runs out so
//! another takes over. Every charge carries the order id as the PSP idempotency key, so a retry
//! can never charge twice; an attempt after the first asks the PSP for the charge's status before
//! charging again (the previous response may have been lost after the PSP charged). Retryable
//! errors schedule the next attempt with exponential backoff and full jitter, bounded in count;
//! terminal ones fail the order. Orders pending at the PSP (3-D Secure, QR) are settled by
//! webhook, or by the status check this sweeper runs when their check time comes.

use crate::backoff::Backoff;
use crate::config::{check_lease, ConfigError};
use crate::metrics::Metrics;
use crate::worker::{run_sweeps, RetrySchedule};
use futures::StreamExt;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tally_ledger::payment::{
    CaptureMode, ChargeOutcome, NextAction, Order, OrderId, OrderState, Payment, PaymentCommand,
    PaymentMethod, PaymentOutcome, PaymentQuery, PaymentQueryResult, RefundRetry,
};
use tally_proto::client::{ClientError, LedgerClient};
use tally_psp::{Charge, ChargeRequest, ChargeStatus, ErrorKind, Psp, PspError, RefundRequest};

/// Settings of one executor. Every wait and batch is bounded.
#[derive(Clone, Debug)]
pub struct ExecutorConfig {
    /// How long a claim keeps other executors off an order; a PSP call must fit in it.
    pub lease_ms: u64,
    /// Pause between sweeps when there was nothing to do.
    pub idle_poll_ms: u64,
    /// Orders taken per sweep.
    pub orders_per_sweep_max: u32,
    /// Orders of a sweep worked at once (each waits on the ledger and the PSP, so a sequential
    /// executor would be bound by their round trips, not by work).
    pub orders_in_flight_max: usize,
    /// Deadline of one PSP call, on top of the adapter's own.
    pub psp_call_timeout_ms: u64,
    /// A pending order (3-D Secure, QR, hosted page) whose buyer has not completed it this
    /// long after the order was created expires: at its next status check the charge is
    /// canceled at the PSP and the order fails with `expired`. If the buyer completed it in the
    /// meantime, the PSP refuses the cancel and the status check records the capture.
    pub pending_expiry_ms: u64,
    pub retry: Backoff,
}

/// Stripe keeps a 3-D Secure or QR session open for about this long.
pub const PENDING_EXPIRY_MS_DEFAULT: u64 = 30 * 60 * 1_000;

impl ExecutorConfig {
    /// Refuses settings under which two gateways could call the PSP for one item at once.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_lease(
            "executor.lease_ms",
            self.lease_ms,
            "executor.psp_call_timeout_ms",
            self.psp_call_timeout_ms,
        )
    }

    pub fn new(retry: Backoff) -> Self {
        ExecutorConfig {
            lease_ms: 30_000,
            idle_poll_ms: 100,
            orders_per_sweep_max: 256,
            orders_in_flight_max: 64,
            psp_call_timeout_ms: 10_000,
            pending_expiry_ms: PENDING_EXPIRY_MS_DEFAULT,
            retry,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    #[error("ledger unreachable: {0}")]
    Ledger(#[from] ClientError),
    #[error("the ledger answered a query with the wrong kind of result")]
    UnexpectedAnswer,
}

/// Wall-clock time in Unix nanoseconds. Injected so simulations can drive it.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// What one sweep did, for logs, metrics and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub orders_due: usize,
    /// PSP outcomes recorded, by kind (`captured`, `authorized`, `pending`, `declined`,
    /// `retry_scheduled`, `exhausted`).
    pub outcomes: BTreeMap<&'static str, u64>,
    /// Orders another executor held, or that moved on before this one got to them.
    pub skipped: u64,
    /// Pending refunds whose API call did not settle them in time, taken by this sweep.
    pub refunds_due: usize,
}

pub struct Executor {
    ledger: LedgerClient,
    psp: Arc<dyn Psp>,
    config: ExecutorConfig,
    clock: Clock,
    retries: RetrySchedule,
    metrics: Option<Arc<Metrics>>,
}

impl Executor {
    pub fn new(
        ledger: LedgerClient,
        psp: Arc<dyn Psp>,
        config: ExecutorConfig,
        clock: Clock,
        seed: u64,
    ) -> Self {
        Executor {
            ledger,
            psp,
            retries: RetrySchedule::new(config.retry, seed, clock.clone()),
            config,
            clock,
            metrics: None,
        }
    }

    /// Counts every recorded PSP outcome in `metrics` (retries as `retry_scheduled`).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Sweeps until `shutdown` resolves; a failed sweep (ledger unreachable) is logged and the
    /// next one retries after the idle pause.
    pub async fn run(&self, shutdown: impl std::future::Future<Output = ()>) {
        run_sweeps("executor", self.config.idle_poll_ms, shutdown, || async {
            self.sweep().await.map(|report| report.orders_due > 0)
        })
        .await;
    }

    /// Works every order due now, once.
    pub async fn sweep(&self) -> Result<SweepReport, ExecutorError> {
        let now_ns = (self.clock)();
        let due = match self
            .ledger
            .query_payments(&PaymentQuery::OrdersDue {
                up_to_ns: now_ns,
                limit: self.config.orders_per_sweep_max,
            })
            .await?
        {
            PaymentQueryResult::OrdersDue(due) => due,
            _ => return Err(ExecutorError::UnexpectedAnswer),
        };
        let mut report = SweepReport {
            orders_due: due.len(),
            ..SweepReport::default()
        };
        let mut worked = futures::stream::iter(due)
            .map(|(_, order_id)| async move { self.work(&order_id).await })
            .buffer_unordered(self.config.orders_in_flight_max.max(1));
        let mut failed = None;
        while let Some(result) = worked.next().await {
            match result {
                Ok(Some(kind)) => *report.outcomes.entry(kind).or_default() += 1,
                Ok(None) => report.skipped += 1,
                // Finish the others first: each is idempotent, and an abandoned claim only
                // waits for its lease.
                Err(error) => failed = Some(error),
            }
        }
        if let Some(error) = failed {
            return Err(error);
        }
        self.sweep_refunds(now_ns, &mut report).await?;
        if let Some(metrics) = &self.metrics {
            metrics.set_work_due("refund", report.refunds_due);
            metrics.set_orders_due(report.orders_due);
            metrics.set_work_due("charge", report.orders_due);
            for (kind, count) in &report.outcomes {
                metrics.count_outcome(kind, *count);
            }
        }
        Ok(report)
    }

    /// Refunds the API began but could not settle (a PSP timeout, a crashed gateway): asks the
    /// PSP again under the refund id (its idempotency key, so it refunds at most once) and
    /// settles the refund, or schedules a retry, or dead-letters it.
    async fn sweep_refunds(
        &self,
        now_ns: u64,
        report: &mut SweepReport,
    ) -> Result<(), ExecutorError> {
        let due = match self
            .ledger
            .query_payments(&PaymentQuery::RefundsDue {
                up_to_ns: now_ns,
                limit: self.config.orders_per_sweep_max,
            })
            .await?
        {
            PaymentQueryResult::RefundsDue(due) => due,
            _ => return Err(ExecutorError::UnexpectedAnswer),
        };
        report.refunds_due = due.len();
        for (_, order_id, refund_id) in due {
            let claim = self
                .ledger
                .execute_payments(&[PaymentCommand::ClaimRefund {
                    order_id: order_id.clone(),
                    refund_id: refund_id.clone(),
                    lease_ms: self.config.lease_ms,
                }])
                .await?;
            let (attempt, payment) = match claim.into_iter().next() {
                Some(Ok(PaymentOutcome::Claimed {
                    attempt, payment, ..
                })) => (attempt, payment),
                _ => continue,
            };
            let Some(order) = payment.order(&order_id) else {
                continue;
            };
            let Some(refund) = order.refunds.iter().find(|r| r.refund_id == refund_id) else {
                continue;
            };
            let request = RefundRequest {
                charge_id: order.psp_charge_id.clone().unwrap_or_default(),
                amount_minor: refund.amount_minor,
                idempotency_key: refund_id.to_string(),
            };
            let timeout = Duration::from_millis(self.config.psp_call_timeout_ms);
            let answer = match tokio::time::timeout(timeout, self.psp.refund(request)).await {
                Ok(answer) => answer,
                Err(_) => Err(PspError::retryable(
                    "timeout",
                    format!("no PSP answer within {} ms", timeout.as_millis()),
                )),
            };
            let command = match answer {
                Ok(_) => PaymentCommand::CompleteRefund {
                    order_id,
                    refund_id,
                    succeeded: true,
                },
                Err(error) if error.is_poison() => PaymentCommand::RecordRefundRetry {
                    order_id,
                    refund_id,
                    outcome: RefundRetry::Poison {
                        attempt,
                        code: error.code,
                        message: error.message,
                    },
                },
                // The PSP refused the refund itself: the held funds go back to the seller.
                Err(error) if error.kind == ErrorKind::Terminal => PaymentCommand::CompleteRefund {
                    order_id,
                    refund_id,
                    succeeded: false,
                },
                Err(error) => PaymentCommand::RecordRefundRetry {
                    order_id,
                    refund_id,
                    outcome: match self
                        .retries
                        .retry_at_ns(attempt.saturating_sub(refund.retry_base))
                    {
                        Some(retry_at_ns) => RefundRetry::Retryable {
                            attempt,
                            code: error.code,
                            message: error.message,
                            retry_at_ns,
                        },
                        None => RefundRetry::Exhausted {
                            attempt,
                            code: "retries_exhausted".to_string(),
                            message: format!(
                                "gave up after {attempt} attempts; last error {}: {}",
                                error.code, error.message
                            ),
                        },
                    },
                },
            };
            if let Some(Err(error)) = self.ledger.execute_payments(&[command]).await?.first() {
                tracing::error!(code = error.code(), %error, "ledger refused a refund outcome");
            }
        }
        Ok(())
    }

    async fn payment_of(&self, order_id: &OrderId) -> Result<Option<Payment>, ExecutorError> {
        match self
            .ledger
            .query_payments(&PaymentQuery::PaymentOfOrder {
                order_id: order_id.clone(),
            })
            .await?
        {
            PaymentQueryResult::Payment(payment) => Ok(payment),
            _ => Err(ExecutorError::UnexpectedAnswer),
        }
    }

    /// One order: a status check if it is pending at the PSP, else claim and execute.
    async fn work(&self, order_id: &OrderId) -> Result<Option<&'static str>, ExecutorError> {
        let Some(payment) = self.payment_of(order_id).await? else {
            return Ok(None);
        };
        let Some(order) = payment.order(order_id) else {
            return Ok(None);
        };
        if let OrderState::Pending { .. } = order.state {
            let outcome = match self.status(order_id).await {
                Ok(Some(charge)) if self.expired(order, &charge) => {
                    self.expire(order, &charge).await
                }
                Ok(Some(charge)) => outcome_of(&charge),
                // The PSP accepted it, so it knows it; an empty answer is a PSP fault: ask again.
                Ok(None) => ChargeOutcome::Pending {
                    psp_charge_id: order.psp_charge_id.clone().unwrap_or_default(),
                    next_action: None,
                },
                Err(_) => ChargeOutcome::Pending {
                    psp_charge_id: order.psp_charge_id.clone().unwrap_or_default(),
                    next_action: None,
                },
            };
            return self.record(order_id, outcome).await;
        }
        let claim = self
            .ledger
            .execute_payments(&[PaymentCommand::ClaimOrder {
                order_id: order_id.clone(),
                lease_ms: self.config.lease_ms,
            }])
            .await?;
        let (attempt, payment) = match claim.into_iter().next() {
            Some(Ok(PaymentOutcome::Claimed {
                attempt, payment, ..
            })) => (attempt, payment),
            // Someone else holds it, or it moved on: nothing to do here.
            Some(Ok(_)) | Some(Err(_)) | None => return Ok(None),
        };
        let order = payment
            .order(order_id)
            .expect("a claimed order is in its payment")
            .clone();
        let outcome = self.attempt(&payment, &order, attempt).await;
        self.record(order_id, outcome).await
    }

    async fn attempt(&self, payment: &Payment, order: &Order, attempt: u64) -> ChargeOutcome {
        if attempt > 1 {
            // A previous attempt may have charged and lost the answer: ask before charging.
            match self.status(&order.order_id).await {
                Ok(Some(charge)) => return outcome_of(&charge),
                Ok(None) => {}
                Err(error) => return self.retry_or_give_up(attempt, order.retry_base, &error),
            }
        }
        let method = match &payment.method {
            Some(PaymentMethod::Card { token }) => tally_psp::PaymentMethod::Card {
                token: token.clone(),
            },
            Some(PaymentMethod::Qr) => tally_psp::PaymentMethod::Qr,
            Some(PaymentMethod::Hosted { .. }) => tally_psp::PaymentMethod::Hosted,
            // The ledger refuses to hand out claims on intents and wallet orders.
            Some(PaymentMethod::Wallet) | None => {
                return ChargeOutcome::Declined {
                    code: "method_not_executable".to_string(),
                    message: "this order has no PSP payment method".to_string(),
                }
            }
        };
        let request = ChargeRequest {
            idempotency_key: order.order_id.to_string(),
            amount_minor: order.amount_minor,
            currency: order.currency.code().to_string(),
            method,
            capture: payment.capture == CaptureMode::Automatic,
            return_url: match &payment.method {
                Some(PaymentMethod::Hosted { return_url }) => Some(return_url.clone()),
                _ => None,
            },
            metadata: BTreeMap::from([
                ("checkout_id".to_string(), payment.checkout_id.to_string()),
                ("seller_id".to_string(), order.seller_id.to_string()),
            ]),
        };
        let timeout = Duration::from_millis(self.config.psp_call_timeout_ms);
        match tokio::time::timeout(timeout, self.psp.charge(request)).await {
            Ok(Ok(charge)) => outcome_of(&charge),
            Ok(Err(error)) if error.is_poison() => ChargeOutcome::Poison {
                code: error.code.clone(),
                message: error.message.clone(),
            },
            Ok(Err(error)) if error.kind == ErrorKind::Terminal => ChargeOutcome::Declined {
                code: error.code.clone(),
                message: error.message.clone(),
            },
            Ok(Err(error)) => self.retry_or_give_up(attempt, order.retry_base, &error),
            Err(_) => self.retry_or_give_up(
                attempt,
                order.retry_base,
                &PspError {
                    kind: ErrorKind::Retryable,
                    code: "timeout".to_string(),
                    message: format!("no PSP answer within {} ms", timeout.as_millis()),
                },
            ),
        }
    }

    async fn status(&self, order_id: &OrderId) -> Result<Option<Charge>, PspError> {
        let timeout = Duration::from_millis(self.config.psp_call_timeout_ms);
        match tokio::time::timeout(timeout, self.psp.charge_status(order_id.as_str())).await {
            Ok(answer) => answer,
            Err(_) => Err(PspError {
                kind: ErrorKind::Retryable,
                code: "timeout".to_string(),
                message: format!("no PSP answer within {} ms", timeout.as_millis()),
            }),
        }
    }

    /// Whether `order`, still pending at the PSP as `charge`, is past its expiry.
    fn expired(&self, order: &Order, charge: &Charge) -> bool {
        pending_expired(
            order.created_at_ns,
            (self.clock)(),
            self.config.pending_expiry_ms,
            &charge.status,
        )
    }

    /// Cancels an expired pending charge at the PSP (key `<order>:expire`). The order fails
    /// with `expired` only once the PSP confirms the cancel; otherwise it stays pending, or
    /// takes whatever the PSP now reports (the buyer may have just completed it).
    async fn expire(&self, order: &Order, charge: &Charge) -> ChargeOutcome {
        let key = format!("{}:expire", order.order_id);
        let timeout = Duration::from_millis(self.config.psp_call_timeout_ms);
        match tokio::time::timeout(timeout, self.psp.cancel(&charge.charge_id, &key)).await {
            Ok(Ok(canceled)) if canceled.status == ChargeStatus::Canceled => {
                ChargeOutcome::Declined {
                    code: "expired".to_string(),
                    message: format!(
                        "the buyer did not complete the payment within {} s; it was canceled at the PSP",
                        self.config.pending_expiry_ms / 1_000
                    ),
                }
            }
            Ok(Ok(other)) => outcome_of(&other),
            // Not canceled (PSP fault, or the buyer completed it just now): the next status
            // check decides.
            Ok(Err(_)) | Err(_) => outcome_of(charge),
        }
    }

    /// The next attempt's schedule, or the end of retries. `attempt` counts from 1.
    /// `retry_base` is the attempt an operator re-drove the order at: retries count afresh.
    fn retry_or_give_up(&self, attempt: u64, retry_base: u64, error: &PspError) -> ChargeOutcome {
        match self.retries.retry_at_ns(attempt.saturating_sub(retry_base)) {
            Some(retry_at_ns) => ChargeOutcome::Retryable {
                attempt,
                code: error.code.clone(),
                message: error.message.clone(),
                retry_at_ns,
            },
            None => ChargeOutcome::Exhausted {
                code: "retries_exhausted".to_string(),
                message: format!(
                    "gave up after {attempt} attempts; last error {}: {}",
                    error.code, error.message
                ),
            },
        }
    }

    async fn record(
        &self,
        order_id: &OrderId,
        outcome: ChargeOutcome,
    ) -> Result<Option<&'static str>, ExecutorError> {
        let kind = outcome_kind(&outcome);
        let results = self
            .ledger
            .execute_payments(&[PaymentCommand::RecordChargeOutcome {
                order_id: order_id.clone(),
                outcome,
                event_id: None,
            }])
            .await?;
        match results.into_iter().next() {
            Some(Ok(_)) => Ok(Some(kind)),
            Some(Err(error)) => {
                // The outcome is the PSP's truth; a refusal here needs an operator.
                tracing::error!(order = %order_id, code = error.code(), %error, "ledger refused a PSP outcome");
                Ok(None)
            }
            None => Err(ExecutorError::UnexpectedAnswer),
        }
    }
}

/// What the ledger should record for a charge as the PSP reports it.
pub fn outcome_of(charge: &Charge) -> ChargeOutcome {
    let psp_charge_id = charge.charge_id.clone();
    match &charge.status {
        ChargeStatus::Captured => ChargeOutcome::Captured {
            psp_charge_id,
            amount_minor: if charge.captured_minor > 0 {
                charge.captured_minor
            } else {
                charge.amount_minor
            },
        },
        ChargeStatus::Authorized => ChargeOutcome::Authorized {
            psp_charge_id,
            amount_minor: charge.amount_minor,
        },
        ChargeStatus::Pending { next_action } => ChargeOutcome::Pending {
            psp_charge_id,
            next_action: Some(match next_action {
                tally_psp::NextAction::RedirectToUrl { url } => {
                    NextAction::RedirectToUrl { url: url.clone() }
                }
                tally_psp::NextAction::ShowQr { payload } => NextAction::ShowQr {
                    payload: payload.clone(),
                },
            }),
        },
        ChargeStatus::Declined { code, message } => ChargeOutcome::Declined {
            code: code.clone(),
            message: message.clone(),
        },
        ChargeStatus::Canceled => ChargeOutcome::Declined {
            code: "canceled_at_psp".to_string(),
            message: "the PSP reports the charge canceled".to_string(),
        },
    }
}

/// A charge still waiting for its buyer `pending_expiry_ms` after its order was created.
fn pending_expired(
    created_at_ns: u64,
    now_ns: u64,
    pending_expiry_ms: u64,
    status: &ChargeStatus,
) -> bool {
    let age_ms = now_ns.saturating_sub(created_at_ns) / 1_000_000;
    matches!(status, ChargeStatus::Pending { .. }) && age_ms >= pending_expiry_ms
}

fn outcome_kind(outcome: &ChargeOutcome) -> &'static str {
    match outcome {
        ChargeOutcome::Pending { .. } => "pending",
        ChargeOutcome::Authorized { .. } => "authorized",
        ChargeOutcome::Captured { .. } => "captured",
        ChargeOutcome::Declined { .. } => "declined",
        ChargeOutcome::Retryable { .. } => "retry_scheduled",
        ChargeOutcome::Exhausted { .. } => "exhausted",
        ChargeOutcome::Poison { .. } => "poison",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pending_charge_expires_only_when_still_pending_past_its_age() {
        let pending = ChargeStatus::Pending {
            next_action: tally_psp::NextAction::ShowQr {
                payload: "qr".to_string(),
            },
        };
        let created_ns = 1_000_000_000;
        let expiry_ms = 30 * 60 * 1_000;
        let at = |ms: u64| created_ns + ms * 1_000_000;
        assert!(!pending_expired(
            created_ns,
            at(expiry_ms - 1),
            expiry_ms,
            &pending
        ));
        assert!(pending_expired(
            created_ns,
            at(expiry_ms),
            expiry_ms,
            &pending
        ));
        // A charge the buyer completed, or one already settled, never expires.
        for settled in [ChargeStatus::Captured, ChargeStatus::Canceled] {
            assert!(!pending_expired(
                created_ns,
                at(2 * expiry_ms),
                expiry_ms,
                &settled
            ));
        }
        // A clock behind the order's creation is no age at all.
        assert!(!pending_expired(
            created_ns,
            created_ns - 1,
            expiry_ms,
            &pending
        ));
    }
}
