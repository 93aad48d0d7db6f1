//! Work that talks to the outside world (charges at the PSP, payouts) and may have to be tried
//! again: its attempts, and the dead-letter queue where work ends when retries ran out or a
//! retry cannot help (a poison message). Each kind keeps its retry state on its own record (an
//! order's `RetryScheduled`, a payout's `WorkState::Due`), all in the replicated state; the
//! dead-letter queue is one index over every kind, so an operator lists, inspects, re-drives or
//! discards them in one place.

use super::ids::{OrderId, PayoutId, RefundId};
use super::model::OrderError;
use crate::limits::ATTEMPTS_KEPT_MAX;
use serde::{Deserialize, Serialize};
use std::fmt;

/// One unit of work, by kind and id. Its text form (`charge:<order>`, `payout:<payout>`) is
/// what the API and the CLI take.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum WorkRef {
    Charge(OrderId),
    Payout(PayoutId),
    /// A webhook delivery, `<event id>/<endpoint id>`.
    Delivery(String),
    /// A refund of an order (`refund:<order>/<refund>`).
    Refund(OrderId, RefundId),
}

impl WorkRef {
    pub fn kind(&self) -> &'static str {
        match self {
            WorkRef::Charge(_) => "charge",
            WorkRef::Payout(_) => "payout",
            WorkRef::Delivery(_) => "delivery",
            WorkRef::Refund(..) => "refund",
        }
    }

    pub fn id(&self) -> String {
        match self {
            WorkRef::Charge(order) => order.to_string(),
            WorkRef::Payout(payout) => payout.to_string(),
            WorkRef::Delivery(delivery) => delivery.clone(),
            WorkRef::Refund(order, refund) => format!("{order}/{refund}"),
        }
    }

    /// Parses `charge:<order id>` or `payout:<payout id>`.
    pub fn parse(text: &str) -> Option<WorkRef> {
        let (kind, id) = text.split_once(':')?;
        match kind {
            "charge" => OrderId::new(id).ok().map(WorkRef::Charge),
            "payout" => PayoutId::new(id).ok().map(WorkRef::Payout),
            "delivery" if valid_delivery_id(id) => Some(WorkRef::Delivery(id.to_string())),
            "refund" => {
                let (order, refund) = id.split_once('/')?;
                Some(WorkRef::Refund(
                    OrderId::new(order).ok()?,
                    RefundId::new(refund).ok()?,
                ))
            }
            _ => None,
        }
    }
}

/// `<event id>/<endpoint id>`, both of safe characters.
pub fn valid_delivery_id(id: &str) -> bool {
    let Some((event, endpoint)) = id.split_once('/') else {
        return false;
    };
    let safe = |part: &str| {
        !part.is_empty()
            && part.len() <= 64
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
    };
    safe(event) && safe(endpoint)
}

impl fmt::Display for WorkRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind(), self.id())
    }
}

/// One failed attempt, kept with the work so a dead letter shows how it got there.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptRecord {
    pub attempt: u64,
    pub at_ns: u64,
    pub code: String,
    pub message: String,
}

/// Appends an attempt, keeping only the newest `ATTEMPTS_KEPT_MAX`.
pub(crate) fn log_attempt<T>(log: &mut Vec<T>, record: T) {
    log.push(record);
    if log.len() > ATTEMPTS_KEPT_MAX {
        let excess = log.len() - ATTEMPTS_KEPT_MAX;
        log.drain(..excess);
    }
}

/// A dead letter as the API shows it: the work, when it died, and its history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub work: WorkRef,
    pub dead_at_ns: u64,
    pub attempt: u64,
    pub last_error: Option<OrderError>,
    pub history: Vec<AttemptRecord>,
    /// Who the money belongs to, what and how much (for the operator's list).
    pub merchant_id: String,
    pub amount_minor: u64,
    pub currency: String,
}

/// The ordered indexes the state keeps beside the records, each a set of `(owner, at_ns, id)`.
/// Backends store them as keys, so "what is due by now" and "newest first" are range scans.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum TimedIndex {
    /// Payouts due for the payout worker (`Due` at, or `Leased` until), owner "".
    PayoutDue,
    /// Every dead letter by the time it died, owner "", id `WorkRef` text.
    DeadLetter,
    /// Payout schedules by next run, owner "", id `<merchant>/<currency>`.
    PayoutScheduleDue,
    /// A merchant's payouts by creation time, owner the merchant id.
    MerchantPayouts,
    /// Webhook deliveries due (`Due` at, or `Leased` until), owner "".
    DeliveryDue,
    /// Open deliveries of one payment to one endpoint, owner `<endpoint>/<checkout>`, time 0,
    /// id the delivery id: event-id order, so the first is the one to send next.
    DeliveryQueue,
    /// A merchant's deliveries by event time, owner the merchant id.
    MerchantDeliveries,
    /// Pending refunds by check time, owner "", id `<order>/<refund>`.
    RefundDue,
}

impl TimedIndex {
    pub fn tag(self) -> u8 {
        match self {
            TimedIndex::PayoutDue => 1,
            TimedIndex::DeadLetter => 2,
            TimedIndex::PayoutScheduleDue => 3,
            TimedIndex::MerchantPayouts => 4,
            TimedIndex::DeliveryDue => 5,
            TimedIndex::DeliveryQueue => 6,
            TimedIndex::MerchantDeliveries => 7,
            TimedIndex::RefundDue => 8,
        }
    }
}

/// One entry of a `TimedIndex`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct IndexEntry {
    pub index: TimedIndex,
    pub owner: String,
    pub at_ns: u64,
    pub id: String,
}

/// Why work dead-lettered directly or after retries; kept on the error.
pub fn error(code: &str, message: &str) -> OrderError {
    OrderError {
        code: code.to_string(),
        message: message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_refs_round_trip_through_text() {
        let charge = WorkRef::Charge(OrderId::new("o:1").unwrap());
        assert_eq!(charge.to_string(), "charge:o:1");
        assert_eq!(WorkRef::parse("charge:o:1"), Some(charge));
        let payout = WorkRef::Payout(PayoutId::new("po_1").unwrap());
        assert_eq!(WorkRef::parse(&payout.to_string()), Some(payout));
        assert_eq!(WorkRef::parse("refund:x"), None);
        assert_eq!(WorkRef::parse("charge"), None);
        assert_eq!(WorkRef::parse("charge:bad id"), None);
    }

    #[test]
    fn the_attempt_log_keeps_the_newest() {
        let mut log = Vec::new();
        for attempt in 1..=(ATTEMPTS_KEPT_MAX as u64 + 3) {
            log_attempt(
                &mut log,
                AttemptRecord {
                    attempt,
                    at_ns: attempt,
                    code: "timeout".into(),
                    message: String::new(),
                },
            );
        }
        assert_eq!(log.len(), ATTEMPTS_KEPT_MAX);
        assert_eq!(log[0].attempt, 4);
        assert_eq!(log.last().unwrap().attempt, ATTEMPTS_KEPT_MAX as u64 + 3);
    }
}
