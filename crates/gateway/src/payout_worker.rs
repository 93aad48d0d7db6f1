//! The payout worker: runs due payout schedules, and turns payouts the ledger says are due into
//! PSP payout calls and their answers into ledger commands.
//!
//! The same exactly-once rules as the charge executor: a payout is claimed with a lease in the
//! replicated state before any PSP call; the payout id is the PSP idempotency key; any attempt
//! after the first, and every payout already in transit, starts with a status check. Retryable
//! errors come back with exponential backoff and full jitter; when the attempts run out, or the
//! PSP refuses the request itself (a poison message), the payout goes to the dead-letter queue
//! with its funds still held, for an operator to re-drive or discard.

use crate::backoff::Backoff;
use crate::config::{check_lease, ConfigError};
use crate::executor::Clock;
use crate::metrics::Metrics;
use crate::worker::{run_sweeps, RetrySchedule};
use futures::StreamExt;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tally_ledger::limits::NANOS_PER_MILLISECOND;
use tally_ledger::payment::{
    PaymentCommand, PaymentOutcome, PaymentQuery, PaymentQueryResult, Payout, PayoutId,
    PayoutOutcome, PayoutState,
};
use tally_proto::client::{ClientError, LedgerClient};
use tally_psp::{ErrorKind, PayoutRequest, PayoutStatus, Psp, PspError};

#[derive(Clone, Debug)]
pub struct PayoutWorkerConfig {
    /// How long a claim keeps other workers off a payout; a PSP call must fit in it.
    pub lease_ms: u64,
    pub idle_poll_ms: u64,
    /// Payouts (and schedules) taken per sweep.
    pub payouts_per_sweep_max: u32,
    pub payouts_in_flight_max: usize,
    pub psp_call_timeout_ms: u64,
    /// How long after the PSP accepted a payout (in transit) the worker asks for its status.
    pub in_transit_check_ms: u64,
    pub retry: Backoff,
}

impl PayoutWorkerConfig {
    /// Refuses settings under which two gateways could call the PSP for one item at once.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_lease(
            "payout_worker.lease_ms",
            self.lease_ms,
            "payout_worker.psp_call_timeout_ms",
            self.psp_call_timeout_ms,
        )
    }

    pub fn new(retry: Backoff) -> Self {
        PayoutWorkerConfig {
            lease_ms: 30_000,
            idle_poll_ms: 500,
            payouts_per_sweep_max: 256,
            payouts_in_flight_max: 16,
            psp_call_timeout_ms: 10_000,
            in_transit_check_ms: 60_000,
            retry,
        }
    }

    /// Payout retries: 5 s doubling to an hour, 16 attempts, so a bank API down for several
    /// hours (maintenance windows are common) is waited out before a human is asked.
    pub fn default_retry() -> Backoff {
        Backoff::new(5_000, 3_600_000, 16).expect("the default payout backoff is valid")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PayoutWorkerError {
    #[error("ledger unreachable: {0}")]
    Ledger(#[from] ClientError),
    #[error("the ledger answered a query with the wrong kind of result")]
    UnexpectedAnswer,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PayoutSweepReport {
    pub schedules_run: usize,
    pub payouts_due: usize,
    /// PSP outcomes recorded, by kind (`in_transit`, `paid`, `failed`, `retry_scheduled`,
    /// `exhausted`, `poison`).
    pub outcomes: BTreeMap<&'static str, u64>,
    pub skipped: u64,
}

pub struct PayoutWorker {
    ledger: LedgerClient,
    psp: Arc<dyn Psp>,
    config: PayoutWorkerConfig,
    clock: Clock,
    retries: RetrySchedule,
    metrics: Option<Arc<Metrics>>,
}

impl PayoutWorker {
    pub fn new(
        ledger: LedgerClient,
        psp: Arc<dyn Psp>,
        config: PayoutWorkerConfig,
        clock: Clock,
        seed: u64,
    ) -> Self {
        PayoutWorker {
            ledger,
            psp,
            retries: RetrySchedule::new(config.retry, seed, clock.clone()),
            config,
            clock,
            metrics: None,
        }
    }

    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    pub async fn run(&self, shutdown: impl std::future::Future<Output = ()>) {
        run_sweeps("payouts", self.config.idle_poll_ms, shutdown, || async {
            self.sweep()
                .await
                .map(|report| report.payouts_due > 0 || report.schedules_run > 0)
        })
        .await;
    }

    async fn query(&self, query: PaymentQuery) -> Result<PaymentQueryResult, PayoutWorkerError> {
        Ok(self.ledger.query_payments(&query).await?)
    }

    /// Runs due schedules, then works every payout due now, once.
    pub async fn sweep(&self) -> Result<PayoutSweepReport, PayoutWorkerError> {
        let now_ns = (self.clock)();
        let limit = self.config.payouts_per_sweep_max;
        let schedules = match self
            .query(PaymentQuery::PayoutSchedulesDue {
                up_to_ns: now_ns,
                limit,
            })
            .await?
        {
            PaymentQueryResult::PayoutSchedulesDue(due) => due,
            _ => return Err(PayoutWorkerError::UnexpectedAnswer),
        };
        let mut report = PayoutSweepReport::default();
        if !schedules.is_empty() {
            let commands: Vec<PaymentCommand> = schedules
                .into_iter()
                .map(
                    |(_, merchant_id, currency)| PaymentCommand::RunPayoutSchedule {
                        merchant_id,
                        currency,
                    },
                )
                .collect();
            for result in self.ledger.execute_payments(&commands).await? {
                match result {
                    Ok(PaymentOutcome::ScheduleRan { ran: true, .. }) => report.schedules_run += 1,
                    Ok(_) => {}
                    Err(error) => {
                        tracing::warn!(code = error.code(), %error, "payout schedule did not run")
                    }
                }
            }
        }
        let due = match self
            .query(PaymentQuery::PayoutsDue {
                up_to_ns: now_ns,
                limit,
            })
            .await?
        {
            PaymentQueryResult::PayoutsDue(due) => due,
            _ => return Err(PayoutWorkerError::UnexpectedAnswer),
        };
        report.payouts_due = due.len();
        if let Some(metrics) = &self.metrics {
            metrics.set_work_due("payout", due.len());
        }
        let mut worked = futures::stream::iter(due)
            .map(|(_, payout_id)| async move { self.work(&payout_id).await })
            .buffer_unordered(self.config.payouts_in_flight_max.max(1));
        let mut failed = None;
        while let Some(result) = worked.next().await {
            match result {
                Ok(Some(kind)) => *report.outcomes.entry(kind).or_default() += 1,
                Ok(None) => report.skipped += 1,
                Err(error) => failed = Some(error),
            }
        }
        if let Some(error) = failed {
            return Err(error);
        }
        if let Some(metrics) = &self.metrics {
            for (kind, count) in &report.outcomes {
                metrics.count_work_outcome("payout", kind, *count);
            }
        }
        Ok(report)
    }

    async fn work(&self, payout_id: &PayoutId) -> Result<Option<&'static str>, PayoutWorkerError> {
        let claim = self
            .ledger
            .execute_payments(&[PaymentCommand::ClaimPayout {
                payout_id: payout_id.clone(),
                lease_ms: self.config.lease_ms,
            }])
            .await?;
        let (attempt, payout) = match claim.into_iter().next() {
            Some(Ok(PaymentOutcome::PayoutClaimed {
                attempt, payout, ..
            })) => (attempt, payout),
            // Another worker holds it, or it moved on.
            Some(Ok(_)) | Some(Err(_)) | None => return Ok(None),
        };
        let outcome = self.attempt(&payout, attempt).await;
        let kind = outcome_kind(&outcome);
        let results = self
            .ledger
            .execute_payments(&[PaymentCommand::RecordPayoutOutcome {
                payout_id: payout_id.clone(),
                outcome,
            }])
            .await?;
        match results.into_iter().next() {
            Some(Ok(_)) => Ok(Some(kind)),
            Some(Err(error)) => {
                tracing::error!(payout = %payout_id, code = error.code(), %error, "ledger refused a PSP payout outcome");
                Ok(None)
            }
            None => Err(PayoutWorkerError::UnexpectedAnswer),
        }
    }

    async fn attempt(&self, payout: &Payout, attempt: u64) -> PayoutOutcome {
        let key = payout.payout_id.as_str();
        let timeout = Duration::from_millis(self.config.psp_call_timeout_ms);
        if attempt > 1 || payout.state == PayoutState::InTransit {
            // A previous call may have reached the PSP and lost its answer: ask before sending.
            match tokio::time::timeout(timeout, self.psp.payout_status(key)).await {
                Ok(Ok(Some(found))) => return self.outcome_of(&found),
                Ok(Ok(None)) if payout.state == PayoutState::InTransit => {
                    return self.retry_or_give_up(
                        attempt,
                        payout.retry_base,
                        &PspError::retryable(
                            "payout_unknown",
                            "the PSP no longer knows a payout it accepted",
                        ),
                    )
                }
                Ok(Ok(None)) => {}
                // Only the PSP's own answer may fail a payout (and free its funds): a refused
                // status check says nothing about the payout, so it never becomes `Failed`.
                Ok(Err(error)) if error.kind == ErrorKind::Retryable => {
                    return self.retry_or_give_up(attempt, payout.retry_base, &error)
                }
                Ok(Err(error)) => {
                    return PayoutOutcome::Poison {
                        attempt,
                        code: error.code.clone(),
                        message: format!(
                            "the payout's status check was refused: {}",
                            error.message
                        ),
                    }
                }
                Err(_) => {
                    return self.retry_or_give_up(
                        attempt,
                        payout.retry_base,
                        &timeout_error(timeout),
                    )
                }
            }
        }
        let request = PayoutRequest {
            idempotency_key: key.to_string(),
            amount_minor: payout.amount_minor,
            currency: payout.currency.code().to_string(),
            destination: payout.merchant_id.to_string(),
        };
        match tokio::time::timeout(timeout, self.psp.payout(request)).await {
            Ok(Ok(sent)) => self.outcome_of(&sent),
            Ok(Err(error)) => self.classify(attempt, payout.retry_base, &error),
            Err(_) => self.retry_or_give_up(attempt, payout.retry_base, &timeout_error(timeout)),
        }
    }

    fn classify(&self, attempt: u64, retry_base: u64, error: &PspError) -> PayoutOutcome {
        if error.is_poison() {
            return PayoutOutcome::Poison {
                attempt,
                code: error.code.clone(),
                message: error.message.clone(),
            };
        }
        match error.kind {
            ErrorKind::Terminal => PayoutOutcome::Failed {
                code: error.code.clone(),
                message: error.message.clone(),
            },
            ErrorKind::Retryable => self.retry_or_give_up(attempt, retry_base, error),
        }
    }

    fn outcome_of(&self, payout: &tally_psp::Payout) -> PayoutOutcome {
        match &payout.status {
            PayoutStatus::InTransit => PayoutOutcome::InTransit {
                psp_payout_id: payout.payout_id.clone(),
                check_at_ns: (self.clock)()
                    + self.config.in_transit_check_ms * NANOS_PER_MILLISECOND,
            },
            PayoutStatus::Paid => PayoutOutcome::Paid {
                psp_payout_id: payout.payout_id.clone(),
            },
            PayoutStatus::Failed { code, message } => PayoutOutcome::Failed {
                code: code.clone(),
                message: message.clone(),
            },
        }
    }

    /// `retry_base` is the attempt an operator re-drove the payout at: retries count afresh.
    fn retry_or_give_up(&self, attempt: u64, retry_base: u64, error: &PspError) -> PayoutOutcome {
        match self.retries.retry_at_ns(attempt.saturating_sub(retry_base)) {
            Some(retry_at_ns) => PayoutOutcome::Retryable {
                attempt,
                code: error.code.clone(),
                message: error.message.clone(),
                retry_at_ns,
            },
            None => PayoutOutcome::Exhausted {
                attempt,
                code: "retries_exhausted".to_string(),
                message: format!(
                    "gave up after {attempt} attempts; last error {}: {}",
                    error.code, error.message
                ),
            },
        }
    }
}

fn timeout_error(timeout: Duration) -> PspError {
    PspError::retryable(
        "timeout",
        format!("no PSP answer within {} ms", timeout.as_millis()),
    )
}

fn outcome_kind(outcome: &PayoutOutcome) -> &'static str {
    match outcome {
        PayoutOutcome::InTransit { .. } => "in_transit",
        PayoutOutcome::Paid { .. } => "paid",
        PayoutOutcome::Failed { .. } => "failed",
        PayoutOutcome::Retryable { .. } => "retry_scheduled",
        PayoutOutcome::Exhausted { .. } => "exhausted",
        PayoutOutcome::Poison { .. } => "poison",
    }
}
