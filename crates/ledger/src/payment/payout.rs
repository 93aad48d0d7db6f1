//! Payouts: a seller's available balance sent to its bank through the PSP, on request or on a
//! schedule. Creating one holds the funds (a pending transfer available → payout in transit);
//! the PSP's answer posts the hold (paid) or voids it (failed, canceled: funds back to
//! available). The payout id is the PSP idempotency key, so a retried call never pays twice.

use super::ids::{MerchantId, PayoutId, PspName};
use super::model::OrderError;
use super::work::AttemptRecord;
use crate::limits::NANOS_PER_SECOND;
use crate::money::Currency;
use serde::{Deserialize, Serialize};

/// Where a payout stands for its owner. Forward only: pending → in_transit → paid | failed, or
/// pending → canceled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PayoutState {
    /// Funds held; the PSP has not (knowingly) accepted it yet.
    Pending,
    /// The PSP accepted it; the money is on its way to the bank.
    InTransit,
    Paid,
    Failed,
    Canceled,
}

impl PayoutState {
    pub fn rank(self) -> u8 {
        match self {
            PayoutState::Pending => 0,
            PayoutState::InTransit => 1,
            PayoutState::Paid | PayoutState::Failed | PayoutState::Canceled => 2,
        }
    }

    pub fn is_final(self) -> bool {
        self.rank() == 2
    }

    pub fn name(self) -> &'static str {
        match self {
            PayoutState::Pending => "pending",
            PayoutState::InTransit => "in_transit",
            PayoutState::Paid => "paid",
            PayoutState::Failed => "failed",
            PayoutState::Canceled => "canceled",
        }
    }
}

/// The payout worker's side of a payout: when it is next due, who holds it, or that it is dead.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WorkState {
    /// Nothing to do (final).
    Idle,
    /// A worker should take it at or after `at_ns` (first call, retry, or status check).
    Due { at_ns: u64 },
    /// A worker holds it until `until_ns` and may be talking to the PSP.
    Leased { until_ns: u64 },
    /// Retries ran out or no retry can help: in the dead-letter queue since `at_ns`.
    Dead { at_ns: u64 },
}

impl WorkState {
    /// When the worker index lists it, if at all.
    pub fn due_ns(self) -> Option<u64> {
        match self {
            WorkState::Due { at_ns } => Some(at_ns),
            WorkState::Leased { until_ns } => Some(until_ns),
            WorkState::Idle | WorkState::Dead { .. } => None,
        }
    }

    pub fn dead_ns(self) -> Option<u64> {
        match self {
            WorkState::Dead { at_ns } => Some(at_ns),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payout {
    pub payout_id: PayoutId,
    pub merchant_id: MerchantId,
    pub currency: Currency,
    pub amount_minor: u64,
    pub psp: PspName,
    pub state: PayoutState,
    pub work: WorkState,
    /// Claims so far; the current claim's number while leased.
    pub attempt: u64,
    pub psp_payout_id: Option<String>,
    pub last_error: Option<OrderError>,
    pub attempts: Vec<AttemptRecord>,
    /// The attempt count when an operator last re-drove it: the retry budget counts from here.
    pub retry_base: u64,
    /// Created by a payout schedule rather than by a request.
    pub scheduled: bool,
    pub created_at_ns: u64,
    pub updated_at_ns: u64,
}

impl Payout {
    /// The first rule of the payout's own record it breaks, if any.
    pub fn inconsistency(&self) -> Option<String> {
        let broken = if self.amount_minor == 0 {
            "payout of zero"
        } else if self.attempts.len() > crate::limits::ATTEMPTS_KEPT_MAX {
            "attempt log over its bound"
        } else if self.state.is_final() && self.work != WorkState::Idle {
            "final payout still has work"
        } else if !self.state.is_final() && self.work == WorkState::Idle {
            "open payout has no work scheduled"
        } else {
            return None;
        };
        Some(format!("payout {}: {broken}", self.payout_id))
    }

    /// Called on every payout a command writes: a broken rule there is a bug in the command.
    pub fn assert_consistent(&self) {
        if let Some(broken) = self.inconsistency() {
            panic!("{broken}");
        }
    }
}

/// How often a schedule pays out. Calendar intervals run at 00:00 UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PayoutInterval {
    /// Every `n` seconds from when the schedule was set (tests, and unusual contracts).
    Seconds(u32),
    Daily,
    /// Mondays.
    Weekly,
    /// The first day of each month.
    Monthly,
}

impl PayoutInterval {
    /// The first run strictly after `after_ns`.
    pub fn next_run_ns(self, after_ns: u64) -> u64 {
        const DAY_NS: u64 = 86_400 * NANOS_PER_SECOND;
        let day_start = after_ns - after_ns % DAY_NS;
        match self {
            PayoutInterval::Seconds(seconds) => {
                after_ns.saturating_add(u64::from(seconds.max(1)) * NANOS_PER_SECOND)
            }
            PayoutInterval::Daily => day_start + DAY_NS,
            PayoutInterval::Weekly => {
                // 1970-01-01 was a Thursday, day 3 of a week counted from Monday = 0.
                let days = after_ns / DAY_NS;
                let since_monday = (days + 3) % 7;
                day_start + (7 - since_monday) * DAY_NS
            }
            PayoutInterval::Monthly => {
                let seconds = i64::try_from(after_ns / NANOS_PER_SECOND).unwrap_or(i64::MAX);
                let Ok(now) = time::OffsetDateTime::from_unix_timestamp(seconds) else {
                    return u64::MAX;
                };
                let (year, month) = match now.month() {
                    time::Month::December => (now.year() + 1, time::Month::January),
                    month => (now.year(), month.next()),
                };
                time::Date::from_calendar_date(year, month, 1)
                    .map(|date| date.midnight().assume_utc().unix_timestamp())
                    .ok()
                    .and_then(|s| u64::try_from(s).ok())
                    .map_or(u64::MAX, |s| s.saturating_mul(NANOS_PER_SECOND))
            }
        }
    }

    pub fn name(self) -> String {
        match self {
            PayoutInterval::Seconds(seconds) => format!("every_{seconds}s"),
            PayoutInterval::Daily => "daily".to_string(),
            PayoutInterval::Weekly => "weekly".to_string(),
            PayoutInterval::Monthly => "monthly".to_string(),
        }
    }

    /// Parses `daily`, `weekly`, `monthly` or `every_<n>s`.
    pub fn parse(text: &str) -> Option<PayoutInterval> {
        match text {
            "daily" => Some(PayoutInterval::Daily),
            "weekly" => Some(PayoutInterval::Weekly),
            "monthly" => Some(PayoutInterval::Monthly),
            _ => text
                .strip_prefix("every_")
                .and_then(|rest| rest.strip_suffix('s'))
                .and_then(|n| n.parse::<u32>().ok())
                .filter(|n| *n >= crate::limits::PAYOUT_INTERVAL_S_MIN)
                .map(PayoutInterval::Seconds),
        }
    }
}

/// Pay out a currency's whole available balance every interval, when it reaches the minimum.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayoutSchedule {
    pub currency: Currency,
    pub interval: PayoutInterval,
    pub minimum_minor: u64,
    pub psp: PspName,
    pub next_run_at_ns: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY_NS: u64 = 86_400 * NANOS_PER_SECOND;

    #[test]
    fn calendar_intervals_land_on_utc_midnights() {
        // 2026-11-30 12:00 UTC is a Monday.
        let monday_midnight = 1_795_996_800 * NANOS_PER_SECOND;
        let monday_noon = monday_midnight + 12 * 3_600 * NANOS_PER_SECOND;
        assert_eq!(
            PayoutInterval::Daily.next_run_ns(monday_noon),
            monday_midnight + DAY_NS
        );
        assert_eq!(
            PayoutInterval::Weekly.next_run_ns(monday_noon),
            monday_midnight + 7 * DAY_NS
        );
        // 2026-12-01 00:00 UTC.
        assert_eq!(
            PayoutInterval::Monthly.next_run_ns(monday_noon),
            monday_midnight + DAY_NS
        );
        assert_eq!(
            PayoutInterval::Seconds(5).next_run_ns(monday_noon),
            monday_noon + 5 * NANOS_PER_SECOND
        );
    }

    #[test]
    fn intervals_parse_from_their_names() {
        for interval in [
            PayoutInterval::Daily,
            PayoutInterval::Weekly,
            PayoutInterval::Monthly,
            PayoutInterval::Seconds(30),
        ] {
            assert_eq!(PayoutInterval::parse(&interval.name()), Some(interval));
        }
        assert_eq!(PayoutInterval::parse("every_0s"), None);
        assert_eq!(PayoutInterval::parse("hourly"), None);
    }
}
