//! The risk check every payment passes before it is charged: amount limits, velocity limits and
//! blocklists, plus the policy for when the risk service cannot answer.
//!
//! `RiskService` is the seam: `RulesEngine` is the in-process implementation; a remote scoring
//! service can sit behind the same trait, which is why `assess` may return `RiskUnavailable`
//! and `RiskPolicy::decide_when_unavailable` exists.

use crate::config::{check_range, ConfigError};
use crate::lru::LruMap;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Mutex, PoisonError};

/// Longest velocity window a configuration may ask for: one week.
pub const RISK_VELOCITY_WINDOW_MS_MAX: u64 = 7 * 24 * 60 * 60 * 1000;
/// Largest per-key payment limit; it is also how many timestamps a key holds at most.
pub const RISK_VELOCITY_PAYMENTS_MAX: u32 = 1_000;
/// Most buyers (and, separately, payment tokens) whose windows are kept in memory.
pub const RISK_VELOCITY_KEYS_MAX: usize = 1_000_000;
/// Largest blocklist (buyer ids plus tokens) a configuration may load.
pub const RISK_BLOCKLIST_ENTRIES_MAX: usize = 1_000_000;
/// Largest per-payment order limit a configuration may set.
pub const RISK_ORDERS_PER_PAYMENT_MAX: u32 = 10_000;

/// What the gateway asks about one payment (a checkout, possibly split over several orders).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RiskRequest {
    pub buyer_id: String,
    /// The PSP's token for the payment method; `None` for wallet payments.
    pub payment_token: Option<String>,
    pub total_amount_minor: u64,
    /// ISO 4217 code, e.g. `EUR`.
    pub currency: String,
    pub order_count: u32,
}

/// Ordered by severity: the worst outcome of any rule is the decision's outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum RiskOutcome {
    Approve,
    /// Do not charge automatically: hold for a human or a step-up check.
    Review,
    Decline,
}

/// One rule that fired. `code` is stable and snake_case; `message` says what happened without
/// echoing tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RiskReason {
    pub code: &'static str,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RiskDecision {
    pub outcome: RiskOutcome,
    pub reasons: Vec<RiskReason>,
    /// Some rule fired or the check was skipped: the payment belongs in the after-the-fact
    /// review queue, whatever the outcome.
    pub flagged: bool,
}

impl RiskDecision {
    fn from_hits(hits: Vec<(RiskOutcome, RiskReason)>) -> Self {
        let outcome = hits
            .iter()
            .map(|(outcome, _)| *outcome)
            .max()
            .unwrap_or(RiskOutcome::Approve);
        let reasons: Vec<RiskReason> = hits.into_iter().map(|(_, reason)| reason).collect();
        RiskDecision {
            outcome,
            flagged: !reasons.is_empty(),
            reasons,
        }
    }

    /// The decision recorded when `RiskPolicy` lets a payment proceed without an assessment.
    pub fn proceed_unassessed(unavailable: &RiskUnavailable) -> Self {
        RiskDecision {
            outcome: RiskOutcome::Approve,
            reasons: vec![RiskReason {
                code: "risk_unavailable",
                message: format!(
                    "not assessed ({}); allowed under the fallback limit, review later",
                    unavailable.reason
                ),
            }],
            flagged: true,
        }
    }
}

/// The risk service could not give an answer (timeout, outage). Apply
/// `RiskPolicy::decide_when_unavailable`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the risk service could not assess the payment ({reason}); apply the fallback policy")]
pub struct RiskUnavailable {
    pub reason: String,
}

impl RiskUnavailable {
    /// The stable, machine-readable code of this failure.
    pub fn code(&self) -> &'static str {
        "risk_unavailable"
    }
}

/// Assesses a payment. Every call counts as one attempt for velocity, so call it once per
/// payment (retries of the same request are answered from the idempotency record, not here).
pub trait RiskService: Send + Sync {
    fn assess(&self, request: &RiskRequest, now_ms: u64) -> Result<RiskDecision, RiskUnavailable>;
}

/// The rules `RulesEngine` applies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RiskRules {
    /// Largest single payment per currency, in minor units. A currency absent here is declined:
    /// an unconfigured currency has no safe default.
    pub amount_minor_max_by_currency: BTreeMap<String, u64>,
    /// More orders than this in one payment goes to review.
    pub orders_per_payment_max: u32,
    pub velocity: VelocityRules,
    pub blocked_buyer_ids: BTreeSet<String>,
    pub blocked_payment_tokens: BTreeSet<String>,
}

/// "At most N payments per key within any `window_ms`": the N+1th goes to review.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VelocityRules {
    pub window_ms: u64,
    pub buyer_payments_max: u32,
    pub payment_token_payments_max: u32,
    /// Keys tracked per kind. Beyond it the key idle longest is forgotten: its history is lost,
    /// so size it above the number of buyers active within one window.
    pub keys_max: usize,
}

impl RiskRules {
    /// Rules that review nothing an ordinary workload sends: USD payments up to
    /// `usd_amount_minor_max`, 16 orders a payment, 1,000 payments a minute per buyer or token.
    /// For tests and simulations whose subject is not risk.
    pub fn permissive(usd_amount_minor_max: u64) -> Self {
        RiskRules {
            amount_minor_max_by_currency: BTreeMap::from([(
                "USD".to_string(),
                usd_amount_minor_max,
            )]),
            orders_per_payment_max: 16,
            velocity: VelocityRules {
                window_ms: 60_000,
                buyer_payments_max: 1_000,
                payment_token_payments_max: 1_000,
                keys_max: 1_000,
            },
            blocked_buyer_ids: BTreeSet::new(),
            blocked_payment_tokens: BTreeSet::new(),
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        for (currency, &amount_minor_max) in &self.amount_minor_max_by_currency {
            check_currency("risk.amount_minor_max_by_currency", currency)?;
            check_range(
                "risk.amount_minor_max_by_currency",
                amount_minor_max,
                1,
                u64::MAX,
            )?;
        }
        check_range(
            "risk.orders_per_payment_max",
            u64::from(self.orders_per_payment_max),
            1,
            u64::from(RISK_ORDERS_PER_PAYMENT_MAX),
        )?;
        let velocity = &self.velocity;
        check_range(
            "risk.velocity.window_ms",
            velocity.window_ms,
            1,
            RISK_VELOCITY_WINDOW_MS_MAX,
        )?;
        for (field, value) in [
            (
                "risk.velocity.buyer_payments_max",
                velocity.buyer_payments_max,
            ),
            (
                "risk.velocity.payment_token_payments_max",
                velocity.payment_token_payments_max,
            ),
        ] {
            check_range(
                field,
                u64::from(value),
                1,
                u64::from(RISK_VELOCITY_PAYMENTS_MAX),
            )?;
        }
        check_range(
            "risk.velocity.keys_max",
            velocity.keys_max as u64,
            1,
            RISK_VELOCITY_KEYS_MAX as u64,
        )?;
        check_range(
            "risk.blocked_buyer_ids + risk.blocked_payment_tokens",
            (self.blocked_buyer_ids.len() + self.blocked_payment_tokens.len()) as u64,
            0,
            RISK_BLOCKLIST_ENTRIES_MAX as u64,
        )
    }
}

/// The in-process rules engine.
pub struct RulesEngine {
    rules: RiskRules,
    /// A std mutex, not an async one: the critical section is a few map operations with no
    /// await inside, so holding it never blocks a runtime thread for long.
    velocity: Mutex<VelocityState>,
}

struct VelocityState {
    buyers: LruMap<Window>,
    payment_tokens: LruMap<Window>,
}

impl RulesEngine {
    pub fn new(rules: RiskRules) -> Result<Self, ConfigError> {
        rules.validate()?;
        let keys_max = rules.velocity.keys_max;
        Ok(RulesEngine {
            rules,
            velocity: Mutex::new(VelocityState {
                buyers: LruMap::new(keys_max),
                payment_tokens: LruMap::new(keys_max),
            }),
        })
    }

    pub fn rules(&self) -> &RiskRules {
        &self.rules
    }

    fn static_hits(&self, request: &RiskRequest) -> Vec<(RiskOutcome, RiskReason)> {
        let rules = &self.rules;
        let mut hits = Vec::new();
        if rules.blocked_buyer_ids.contains(&request.buyer_id) {
            hits.push(hit(
                RiskOutcome::Decline,
                "buyer_blocked",
                "the buyer is on the blocklist".to_string(),
            ));
        }
        if let Some(token) = &request.payment_token {
            if rules.blocked_payment_tokens.contains(token) {
                hits.push(hit(
                    RiskOutcome::Decline,
                    "payment_token_blocked",
                    "the payment method is on the blocklist".to_string(),
                ));
            }
        }
        match rules.amount_minor_max_by_currency.get(&request.currency) {
            None => hits.push(hit(
                RiskOutcome::Decline,
                "currency_not_configured",
                format!(
                    "no risk limit is configured for {}; add one to the risk rules to accept it",
                    request.currency
                ),
            )),
            Some(&amount_minor_max) if request.total_amount_minor > amount_minor_max => {
                hits.push(hit(
                    RiskOutcome::Decline,
                    "amount_over_limit",
                    format!(
                        "{} minor units is over the {} limit of {} per payment",
                        request.total_amount_minor, request.currency, amount_minor_max
                    ),
                ))
            }
            Some(_) => {}
        }
        if request.order_count > rules.orders_per_payment_max {
            hits.push(hit(
                RiskOutcome::Review,
                "too_many_orders",
                format!(
                    "{} orders in one payment is over the limit of {}",
                    request.order_count, rules.orders_per_payment_max
                ),
            ));
        }
        hits
    }

    fn velocity_hits(&self, request: &RiskRequest, now_ms: u64) -> Vec<(RiskOutcome, RiskReason)> {
        let velocity = &self.rules.velocity;
        // A panic elsewhere mid-update can at worst lose or double one timestamp; refusing every
        // later payment because of it would be worse, so a poisoned lock is taken over.
        let mut state = self.velocity.lock().unwrap_or_else(PoisonError::into_inner);
        let mut hits = Vec::new();
        let buyer_exceeded = state
            .buyers
            .get_or_insert_with(&request.buyer_id, Window::default)
            .record(now_ms, velocity.window_ms, velocity.buyer_payments_max);
        if buyer_exceeded {
            hits.push(hit(
                RiskOutcome::Review,
                "buyer_velocity_exceeded",
                format!(
                    "the buyer made more than {} payments within {} ms",
                    velocity.buyer_payments_max, velocity.window_ms
                ),
            ));
        }
        if let Some(token) = &request.payment_token {
            let token_exceeded = state
                .payment_tokens
                .get_or_insert_with(token, Window::default)
                .record(
                    now_ms,
                    velocity.window_ms,
                    velocity.payment_token_payments_max,
                );
            if token_exceeded {
                hits.push(hit(
                    RiskOutcome::Review,
                    "payment_token_velocity_exceeded",
                    format!(
                        "the payment method was used more than {} times within {} ms",
                        velocity.payment_token_payments_max, velocity.window_ms
                    ),
                ));
            }
        }
        hits
    }

    #[cfg(test)]
    fn keys_tracked(&self) -> (usize, usize) {
        let state = self.velocity.lock().unwrap();
        (state.buyers.len(), state.payment_tokens.len())
    }
}

impl RiskService for RulesEngine {
    fn assess(&self, request: &RiskRequest, now_ms: u64) -> Result<RiskDecision, RiskUnavailable> {
        let mut hits = self.static_hits(request);
        // Velocity counts every attempt, declined ones included: a burst of declined attempts
        // is exactly what card testing looks like.
        hits.extend(self.velocity_hits(request, now_ms));
        Ok(RiskDecision::from_hits(hits))
    }
}

fn hit(outcome: RiskOutcome, code: &'static str, message: String) -> (RiskOutcome, RiskReason) {
    (outcome, RiskReason { code, message })
}

fn check_currency(field: &'static str, currency: &str) -> Result<(), ConfigError> {
    if currency.len() == 3 && currency.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err(ConfigError::Invalid {
            field,
            expected: "currencies are ISO 4217 codes: three uppercase letters",
        })
    }
}

/// One key's recent payment times, oldest first. Holds at most `payments_max` of them: that is
/// all it takes to know whether the limit is reached, and it bounds memory per key.
#[derive(Default)]
struct Window {
    times_ms: VecDeque<u64>,
}

impl Window {
    /// Records a payment at `now_ms`; true if `payments_max` payments were already within the
    /// window `(now_ms - window_ms, now_ms]`.
    fn record(&mut self, now_ms: u64, window_ms: u64, payments_max: u32) -> bool {
        let payments_max = payments_max as usize;
        while let Some(&oldest_ms) = self.times_ms.front() {
            if now_ms.saturating_sub(oldest_ms) < window_ms {
                break;
            }
            self.times_ms.pop_front();
        }
        let exceeded = self.times_ms.len() >= payments_max;
        if self.times_ms.len() == payments_max {
            self.times_ms.pop_front();
        }
        // Kept sorted even if the clock steps back, so expiry from the front stays correct.
        let newest_ms = self
            .times_ms
            .back()
            .map_or(now_ms, |&back| back.max(now_ms));
        self.times_ms.push_back(newest_ms);
        assert!(self.times_ms.len() <= payments_max);
        exceeded
    }
}

/// What to do when the risk service cannot answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fallback {
    /// Charge now, recorded with `RiskDecision::proceed_unassessed` for later review.
    ProceedFlagged,
    /// Keep the payment pending and assess it when the service is back.
    Wait,
}

/// The largest payment, per currency, that may go ahead unassessed. A currency absent here
/// always waits.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FallbackLimits {
    pub proceed_amount_minor_max_by_currency: BTreeMap<String, u64>,
}

/// Decisions taken without the risk service.
pub struct RiskPolicy;

impl RiskPolicy {
    /// Small payments proceed flagged (losing one to fraud costs less than losing every sale
    /// during an outage); anything above the limit, or in an unlisted currency, waits.
    pub fn decide_when_unavailable(
        amount_minor: u64,
        currency: &str,
        limits: &FallbackLimits,
    ) -> Fallback {
        match limits.proceed_amount_minor_max_by_currency.get(currency) {
            Some(&amount_minor_max) if amount_minor <= amount_minor_max => Fallback::ProceedFlagged,
            _ => Fallback::Wait,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW_MS: u64 = 60_000;

    fn rules() -> RiskRules {
        RiskRules {
            amount_minor_max_by_currency: BTreeMap::from([
                ("EUR".to_string(), 100_000),
                ("JPY".to_string(), 1_000_000),
            ]),
            orders_per_payment_max: 10,
            velocity: VelocityRules {
                window_ms: WINDOW_MS,
                buyer_payments_max: 3,
                payment_token_payments_max: 2,
                keys_max: 100,
            },
            blocked_buyer_ids: BTreeSet::from(["buyer-fraud".to_string()]),
            blocked_payment_tokens: BTreeSet::from(["tok_stolen".to_string()]),
        }
    }

    fn engine() -> RulesEngine {
        RulesEngine::new(rules()).unwrap()
    }

    fn request(buyer_id: &str, token: Option<&str>, amount_minor: u64) -> RiskRequest {
        RiskRequest {
            buyer_id: buyer_id.to_string(),
            payment_token: token.map(str::to_string),
            total_amount_minor: amount_minor,
            currency: "EUR".to_string(),
            order_count: 1,
        }
    }

    fn codes(decision: &RiskDecision) -> Vec<&'static str> {
        decision.reasons.iter().map(|reason| reason.code).collect()
    }

    #[test]
    fn a_clean_payment_is_approved_unflagged() {
        let decision = engine()
            .assess(&request("b1", Some("tok_1"), 5_000), 0)
            .unwrap();
        assert_eq!(
            decision,
            RiskDecision {
                outcome: RiskOutcome::Approve,
                reasons: vec![],
                flagged: false
            }
        );
    }

    #[test]
    fn blocked_buyers_and_tokens_are_declined() {
        let engine = engine();
        let decision = engine.assess(&request("buyer-fraud", None, 1), 0).unwrap();
        assert_eq!(decision.outcome, RiskOutcome::Decline);
        assert_eq!(codes(&decision), ["buyer_blocked"]);
        assert!(decision.flagged);

        let decision = engine
            .assess(&request("b1", Some("tok_stolen"), 1), 0)
            .unwrap();
        assert_eq!(decision.outcome, RiskOutcome::Decline);
        assert_eq!(codes(&decision), ["payment_token_blocked"]);
        assert!(!decision.reasons[0].message.contains("tok_stolen"));
    }

    #[test]
    fn amounts_up_to_the_currency_limit_pass_and_above_are_declined() {
        let engine = engine();
        let at_limit = engine.assess(&request("b1", None, 100_000), 0).unwrap();
        assert_eq!(at_limit.outcome, RiskOutcome::Approve);
        let over = engine.assess(&request("b2", None, 100_001), 0).unwrap();
        assert_eq!(over.outcome, RiskOutcome::Decline);
        assert_eq!(codes(&over), ["amount_over_limit"]);
        // The limit is per currency: the same number of minor units is fine in JPY.
        let yen = RiskRequest {
            currency: "JPY".to_string(),
            ..request("b3", None, 100_001)
        };
        assert_eq!(
            engine.assess(&yen, 0).unwrap().outcome,
            RiskOutcome::Approve
        );
    }

    #[test]
    fn an_unconfigured_currency_is_declined() {
        let usd = RiskRequest {
            currency: "USD".to_string(),
            ..request("b1", None, 1)
        };
        let decision = engine().assess(&usd, 0).unwrap();
        assert_eq!(decision.outcome, RiskOutcome::Decline);
        assert_eq!(codes(&decision), ["currency_not_configured"]);
        assert!(decision.reasons[0].message.contains("USD"));
    }

    #[test]
    fn too_many_orders_in_one_payment_goes_to_review() {
        let engine = engine();
        let at_limit = RiskRequest {
            order_count: 10,
            ..request("b1", None, 1)
        };
        assert_eq!(
            engine.assess(&at_limit, 0).unwrap().outcome,
            RiskOutcome::Approve
        );
        let over = RiskRequest {
            order_count: 11,
            ..request("b2", None, 1)
        };
        let decision = engine.assess(&over, 0).unwrap();
        assert_eq!(decision.outcome, RiskOutcome::Review);
        assert_eq!(codes(&decision), ["too_many_orders"]);
    }

    #[test]
    fn buyer_velocity_over_the_limit_goes_to_review() {
        let engine = engine();
        for now_ms in [0, 10, 20] {
            let decision = engine.assess(&request("b1", None, 1), now_ms).unwrap();
            assert_eq!(decision.outcome, RiskOutcome::Approve, "at {now_ms}");
        }
        let decision = engine.assess(&request("b1", None, 1), 30).unwrap();
        assert_eq!(decision.outcome, RiskOutcome::Review);
        assert_eq!(codes(&decision), ["buyer_velocity_exceeded"]);
        // Other buyers are unaffected.
        let other = engine.assess(&request("b2", None, 1), 30).unwrap();
        assert_eq!(other.outcome, RiskOutcome::Approve);
    }

    #[test]
    fn the_velocity_window_slides() {
        let engine = engine();
        for now_ms in [0, 10, 20] {
            engine.assess(&request("b1", None, 1), now_ms).unwrap();
        }
        // One millisecond before the first payment leaves the window, it still counts...
        let decision = engine
            .assess(&request("b1", None, 1), WINDOW_MS - 1)
            .unwrap();
        assert_eq!(decision.outcome, RiskOutcome::Review);
        // ...and at WINDOW_MS + 10 the payments at 0 and 10 have left; 20 and WINDOW_MS - 1
        // remain, so one more fits.
        let decision = engine
            .assess(&request("b1", None, 1), WINDOW_MS + 10)
            .unwrap();
        assert_eq!(decision.outcome, RiskOutcome::Approve);
        let decision = engine
            .assess(&request("b1", None, 1), WINDOW_MS + 11)
            .unwrap();
        assert_eq!(decision.outcome, RiskOutcome::Review);
        // Long after, the buyer is clean again.
        let decision = engine
            .assess(&request("b1", None, 1), 10 * WINDOW_MS)
            .unwrap();
        assert_eq!(decision.outcome, RiskOutcome::Approve);
    }

    #[test]
    fn payment_token_velocity_is_counted_across_buyers() {
        let engine = engine();
        assert_eq!(
            engine
                .assess(&request("b1", Some("tok_1"), 1), 0)
                .unwrap()
                .outcome,
            RiskOutcome::Approve
        );
        assert_eq!(
            engine
                .assess(&request("b2", Some("tok_1"), 1), 1)
                .unwrap()
                .outcome,
            RiskOutcome::Approve
        );
        let decision = engine.assess(&request("b3", Some("tok_1"), 1), 2).unwrap();
        assert_eq!(decision.outcome, RiskOutcome::Review);
        assert_eq!(codes(&decision), ["payment_token_velocity_exceeded"]);
        // Payments without a token (wallet) are not counted against any token.
        for now_ms in 3..6 {
            engine
                .assess(&request(&format!("w{now_ms}"), None, 1), now_ms)
                .unwrap();
        }
        assert_eq!(engine.keys_tracked().1, 1);
    }

    #[test]
    fn the_worst_outcome_wins_and_every_reason_is_kept() {
        let engine = engine();
        for now_ms in 0..3 {
            engine.assess(&request("b1", None, 1), now_ms).unwrap();
        }
        let request = RiskRequest {
            order_count: 50,
            ..request("b1", Some("tok_stolen"), 1)
        };
        let decision = engine.assess(&request, 3).unwrap();
        assert_eq!(decision.outcome, RiskOutcome::Decline);
        assert_eq!(
            codes(&decision),
            [
                "payment_token_blocked",
                "too_many_orders",
                "buyer_velocity_exceeded"
            ]
        );
    }

    #[test]
    fn tracked_keys_stay_bounded_and_the_idle_one_is_forgotten() {
        let mut rules = rules();
        rules.velocity.keys_max = 2;
        let engine = RulesEngine::new(rules).unwrap();
        for now_ms in 0..3 {
            engine.assess(&request("b1", None, 1), now_ms).unwrap();
            engine.assess(&request("b2", None, 1), now_ms).unwrap();
        }
        // b3 pushes out b1, the buyer idle longest (b2 was seen after it at every step).
        engine.assess(&request("b3", None, 1), 3).unwrap();
        assert_eq!(engine.keys_tracked(), (2, 0));
        let b1 = engine.assess(&request("b1", None, 1), 4).unwrap();
        assert_eq!(b1.outcome, RiskOutcome::Approve, "b1's history was evicted");
        // b2 was evicted by b1's return, b3 kept.
        for i in 0..1_000 {
            engine
                .assess(&request(&format!("x{i}"), Some(&format!("t{i}")), 1), 5)
                .unwrap();
        }
        assert_eq!(engine.keys_tracked(), (2, 2));
    }

    #[test]
    fn a_window_never_holds_more_than_the_limit() {
        let mut window = Window::default();
        for now_ms in 0..100 {
            window.record(now_ms, WINDOW_MS, 5);
            assert!(window.times_ms.len() <= 5);
        }
    }

    #[test]
    fn a_clock_stepping_back_keeps_counting() {
        let mut window = Window::default();
        assert!(!window.record(1_000, WINDOW_MS, 2));
        assert!(!window.record(500, WINDOW_MS, 2));
        assert!(window.record(400, WINDOW_MS, 2));
        assert!(window.times_ms.iter().is_sorted());
    }

    #[test]
    fn small_payments_proceed_flagged_when_risk_is_down_and_large_ones_wait() {
        let limits = FallbackLimits {
            proceed_amount_minor_max_by_currency: BTreeMap::from([("EUR".to_string(), 5_000)]),
        };
        assert_eq!(
            RiskPolicy::decide_when_unavailable(4_999, "EUR", &limits),
            Fallback::ProceedFlagged
        );
        assert_eq!(
            RiskPolicy::decide_when_unavailable(5_000, "EUR", &limits),
            Fallback::ProceedFlagged
        );
        assert_eq!(
            RiskPolicy::decide_when_unavailable(5_001, "EUR", &limits),
            Fallback::Wait
        );
        assert_eq!(
            RiskPolicy::decide_when_unavailable(1, "USD", &limits),
            Fallback::Wait
        );
        assert_eq!(
            RiskPolicy::decide_when_unavailable(1, "EUR", &FallbackLimits::default()),
            Fallback::Wait
        );
    }

    #[test]
    fn an_unassessed_payment_is_recorded_as_flagged() {
        let unavailable = RiskUnavailable {
            reason: "timed out after 200 ms".to_string(),
        };
        assert_eq!(unavailable.code(), "risk_unavailable");
        let decision = RiskDecision::proceed_unassessed(&unavailable);
        assert_eq!(decision.outcome, RiskOutcome::Approve);
        assert!(decision.flagged);
        assert_eq!(codes(&decision), ["risk_unavailable"]);
    }

    #[test]
    fn the_engine_can_stand_behind_the_trait() {
        let service: Box<dyn RiskService> = Box::new(engine());
        assert!(service.assess(&request("b1", None, 1), 0).is_ok());
    }

    #[test]
    fn refuses_rules_without_bounds() {
        type BreakRules = fn(&mut RiskRules);
        let cases: [(BreakRules, &str); 6] = [
            (|r| r.velocity.window_ms = 0, "risk.velocity.window_ms"),
            (
                |r| r.velocity.buyer_payments_max = 0,
                "risk.velocity.buyer_payments_max",
            ),
            (
                |r| r.velocity.payment_token_payments_max = RISK_VELOCITY_PAYMENTS_MAX + 1,
                "risk.velocity.payment_token_payments_max",
            ),
            (|r| r.velocity.keys_max = 0, "risk.velocity.keys_max"),
            (
                |r| r.orders_per_payment_max = 0,
                "risk.orders_per_payment_max",
            ),
            (
                |r| {
                    r.amount_minor_max_by_currency.insert("eur".to_string(), 1);
                },
                "risk.amount_minor_max_by_currency",
            ),
        ];
        for (break_rules, field) in cases {
            let mut rules = rules();
            break_rules(&mut rules);
            let err = RulesEngine::new(rules).err().expect("refused");
            assert!(err.to_string().contains(field), "{err}");
        }
    }
}
