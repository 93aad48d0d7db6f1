//! Payouts, their schedules, the dead-letter queue, webhook deduplication and the webhook
//! outbox through `apply`.
//! After every batch the fixture runs the full audit, which includes "every open payout holds
//! its amount in transit" and the dead-letter counts.

use tally_ledger::limits::NANOS_PER_SECOND;
use tally_ledger::payment::chart;
use tally_ledger::payment::{
    BuyerId, CaptureMode, ChargeOutcome, CheckoutId, FeeSchedule, MerchantId, NewBuyer,
    NewMerchant, NewOrder, NewPayment, NewPayout, OrderId, OrderState, PaymentCommand,
    PaymentMethod, PaymentOutcome, PaymentQuery, PaymentQueryResult, Payout, PayoutId,
    PayoutInterval, PayoutOutcome, PayoutState, PspName, RiskOutcome, RiskRecord, ScheduleSpec,
    WorkRef, WorkState,
};
use tally_ledger::{audit, Command, CommandResult, Currency, LedgerRead, MemStore};

const T0: u64 = 1_700_000_000 * NANOS_PER_SECOND;
const USD: Currency = Currency::USD;

struct Fixture {
    store: MemStore,
    now_ns: u64,
}

fn seller() -> MerchantId {
    MerchantId::new("s1").unwrap()
}
fn psp() -> PspName {
    PspName::new("sim").unwrap()
}
fn payout_id(id: &str) -> PayoutId {
    PayoutId::new(id).unwrap()
}

impl Fixture {
    /// A seller without fees or hold period and a buyer; `paid_minor` captured for the seller
    /// and fulfilled, so it is available for payouts.
    fn with_available(paid_minor: u64) -> Self {
        let mut fixture = Fixture {
            store: MemStore::new(),
            now_ns: T0,
        };
        fixture.ok(PaymentCommand::CreateMerchant(NewMerchant {
            id: seller(),
            name: "Seller".to_string(),
            fees: FeeSchedule::default(),
            hold_period_s: 0,
        }));
        fixture.ok(PaymentCommand::CreateBuyer(NewBuyer {
            id: BuyerId::new("b1").unwrap(),
            wallet_currencies: vec![USD],
        }));
        fixture.checkout("c0", "o0", paid_minor);
        fixture.claim_order("o0");
        fixture.charge("o0", captured("o0", paid_minor), None);
        fixture.ok(PaymentCommand::FulfillOrder {
            order_id: OrderId::new("o0").unwrap(),
        });
        assert_eq!(fixture.available(), paid_minor as i128);
        fixture
    }

    fn checkout(&mut self, checkout: &str, order: &str, amount_minor: u64) {
        self.ok(PaymentCommand::CreatePayment(NewPayment {
            checkout_id: CheckoutId::new(checkout).unwrap(),
            merchant_id: seller(),
            buyer_id: BuyerId::new("b1").unwrap(),
            method: Some(PaymentMethod::Card {
                token: "tok_ok".to_string(),
            }),
            capture: CaptureMode::Automatic,
            psp: psp(),
            risk: RiskRecord {
                outcome: RiskOutcome::Approve,
                flagged: false,
                reasons: Vec::new(),
            },
            request_hash: [7; 32],
            orders: vec![NewOrder {
                order_id: OrderId::new(order).unwrap(),
                seller_id: seller(),
                amount_minor,
                currency: USD,
            }],
        }));
    }

    fn advance_s(&mut self, seconds: u64) {
        self.now_ns += seconds * NANOS_PER_SECOND;
    }

    fn payment(&mut self, command: PaymentCommand) -> Result<PaymentOutcome, &'static str> {
        self.now_ns += NANOS_PER_SECOND;
        let applied = self
            .store
            .apply(&[Command::Payment(Box::new(command))], self.now_ns)
            .expect("batch applies");
        audit(&self.store).expect("invariants hold after every batch");
        match applied.results.into_iter().next() {
            Some(CommandResult::Payment(result)) => result.map_err(|error| error.code()),
            other => panic!("expected a payment result, got {other:?}"),
        }
    }

    fn ok(&mut self, command: PaymentCommand) -> PaymentOutcome {
        self.payment(command).expect("payment command succeeds")
    }

    fn claim_order(&mut self, order: &str) -> u64 {
        match self.ok(PaymentCommand::ClaimOrder {
            order_id: OrderId::new(order).unwrap(),
            lease_ms: 30_000,
        }) {
            PaymentOutcome::Claimed { attempt, .. } => attempt,
            other => panic!("unexpected {other:?}"),
        }
    }

    fn charge(&mut self, order: &str, outcome: ChargeOutcome, event: Option<&str>) -> bool {
        match self.ok(PaymentCommand::RecordChargeOutcome {
            order_id: OrderId::new(order).unwrap(),
            outcome,
            event_id: event.map(str::to_string),
        }) {
            PaymentOutcome::Payment { changed, .. } => changed,
            other => panic!("unexpected {other:?}"),
        }
    }

    fn order_state(&self, order: &str) -> OrderState {
        let order = OrderId::new(order).unwrap();
        let checkout = self.store.order_checkout(&order).unwrap();
        let payment = self.store.payment(&checkout).unwrap();
        payment.order(&order).unwrap().state.clone()
    }

    fn create_payout(
        &mut self,
        id: &str,
        amount_minor: Option<u64>,
    ) -> Result<Payout, &'static str> {
        self.payment(PaymentCommand::CreatePayout(NewPayout {
            payout_id: payout_id(id),
            merchant_id: seller(),
            currency: USD,
            amount_minor,
            psp: psp(),
        }))
        .map(|outcome| match outcome {
            PaymentOutcome::Payout { payout, .. } => payout,
            other => panic!("unexpected {other:?}"),
        })
    }

    fn claim_payout(&mut self, id: &str) -> u64 {
        match self.ok(PaymentCommand::ClaimPayout {
            payout_id: payout_id(id),
            lease_ms: 30_000,
        }) {
            PaymentOutcome::PayoutClaimed { attempt, .. } => attempt,
            other => panic!("unexpected {other:?}"),
        }
    }

    fn payout_outcome(&mut self, id: &str, outcome: PayoutOutcome) -> Payout {
        match self.ok(PaymentCommand::RecordPayoutOutcome {
            payout_id: payout_id(id),
            outcome,
        }) {
            PaymentOutcome::Payout { payout, .. } => payout,
            other => panic!("unexpected {other:?}"),
        }
    }

    fn payout(&self, id: &str) -> Payout {
        self.store.payout(&payout_id(id)).expect("payout exists")
    }

    /// What the seller can still pay out (posted net less pending holds).
    fn available(&self) -> i128 {
        self.store
            .account(chart::merchant_available(&seller(), USD))
            .map_or(0, |account| account.balances.credit_available())
    }

    fn in_transit(&self) -> (i128, u128) {
        self.store
            .account(chart::merchant_payout_in_transit(&seller(), USD))
            .map_or((0, 0), |account| {
                let b = account.balances;
                (
                    b.credits_posted as i128 - b.debits_posted as i128,
                    b.credits_pending,
                )
            })
    }

    fn query(&self, query: PaymentQuery) -> PaymentQueryResult {
        tally_ledger::payment::query_payments(&self.store, &query)
    }

    fn dead_letters(&self) -> Vec<String> {
        match self.query(PaymentQuery::DeadLetters {
            after: None,
            limit: 100,
        }) {
            PaymentQueryResult::DeadLetters { letters, .. } => {
                letters.iter().map(|l| l.work.to_string()).collect()
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

fn captured(order: &str, amount_minor: u64) -> ChargeOutcome {
    ChargeOutcome::Captured {
        psp_charge_id: format!("ch_{order}"),
        amount_minor,
    }
}

fn retryable(attempt: u64, retry_at_ns: u64) -> PayoutOutcome {
    PayoutOutcome::Retryable {
        attempt,
        code: "timeout".to_string(),
        message: "no answer".to_string(),
        retry_at_ns,
    }
}

#[test]
fn payout_holds_available_funds_then_posts_when_paid() {
    let mut f = Fixture::with_available(10_000);
    let receivable = chart::psp_receivable(&psp(), USD);
    let owed_before = f.store.account(receivable).unwrap().balances;
    let payout = f.create_payout("po1", Some(6_000)).unwrap();
    assert_eq!(payout.state, PayoutState::Pending);
    assert_eq!(f.available(), 4_000, "the payout's funds are held");
    assert_eq!(f.in_transit(), (0, 6_000));
    // A retry of the same request is answered with the same payout, not a second hold.
    assert_eq!(
        f.create_payout("po1", Some(6_000)).unwrap(),
        f.payout("po1")
    );
    assert_eq!(f.available(), 4_000);
    assert_eq!(
        f.create_payout("po1", Some(5_000)),
        Err("payout_exists_with_different_fields")
    );

    assert_eq!(f.claim_payout("po1"), 1);
    let in_transit = f.payout_outcome(
        "po1",
        PayoutOutcome::InTransit {
            psp_payout_id: "pyt_1".to_string(),
            check_at_ns: T0,
        },
    );
    assert_eq!(in_transit.state, PayoutState::InTransit);
    let paid = f.payout_outcome(
        "po1",
        PayoutOutcome::Paid {
            psp_payout_id: "pyt_1".to_string(),
        },
    );
    assert_eq!(paid.state, PayoutState::Paid);
    assert_eq!(paid.work, WorkState::Idle);
    assert_eq!(f.available(), 4_000);
    assert_eq!(f.in_transit(), (0, 0), "in transit nets to zero once paid");
    let owed_after = f.store.account(receivable).unwrap().balances;
    assert_eq!(
        owed_after.credits_posted - owed_before.credits_posted,
        6_000,
        "the PSP paid the bank out of what it owed the platform"
    );
    // Late or repeated answers change nothing; a contradicting one is refused.
    let again = f.payout_outcome(
        "po1",
        PayoutOutcome::InTransit {
            psp_payout_id: "pyt_1".to_string(),
            check_at_ns: T0,
        },
    );
    assert_eq!(again.state, PayoutState::Paid);
    assert_eq!(
        f.payment(PaymentCommand::RecordPayoutOutcome {
            payout_id: payout_id("po1"),
            outcome: PayoutOutcome::Failed {
                code: "x".into(),
                message: "y".into()
            },
        }),
        Err("payout_invalid_transition")
    );
}

#[test]
fn payout_failure_gives_the_held_funds_back() {
    let mut f = Fixture::with_available(10_000);
    f.create_payout("po1", None).unwrap();
    assert_eq!(f.available(), 0, "no amount pays out everything available");
    f.claim_payout("po1");
    let failed = f.payout_outcome(
        "po1",
        PayoutOutcome::Failed {
            code: "account_closed".to_string(),
            message: "the bank account is closed".to_string(),
        },
    );
    assert_eq!(failed.state, PayoutState::Failed);
    assert_eq!(failed.last_error.unwrap().code, "account_closed");
    assert_eq!(f.available(), 10_000);
    assert_eq!(f.in_transit(), (0, 0));
}

#[test]
fn payout_cannot_exceed_the_available_balance() {
    let mut f = Fixture::with_available(10_000);
    assert_eq!(
        f.create_payout("po1", Some(10_001)),
        Err("payout_exceeds_available")
    );
    assert_eq!(
        f.create_payout("po1", Some(0)),
        Err("payout_exceeds_available")
    );
    f.create_payout("po1", Some(7_000)).unwrap();
    // Held funds count: a second payout sees only what is left.
    assert_eq!(
        f.create_payout("po2", Some(3_001)),
        Err("payout_exceeds_available")
    );
    f.create_payout("po2", Some(3_000)).unwrap();
    assert_eq!(
        f.create_payout("po3", None),
        Err("payout_exceeds_available")
    );
    assert_eq!(f.available(), 0);
}

#[test]
fn a_payout_is_canceled_only_before_a_worker_claims_it() {
    let mut f = Fixture::with_available(10_000);
    f.create_payout("po1", Some(4_000)).unwrap();
    f.create_payout("po2", Some(4_000)).unwrap();
    let canceled = match f.ok(PaymentCommand::CancelPayout {
        payout_id: payout_id("po1"),
    }) {
        PaymentOutcome::Payout { payout, .. } => payout,
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(canceled.state, PayoutState::Canceled);
    assert_eq!(f.available(), 6_000);
    f.claim_payout("po2");
    assert_eq!(
        f.payment(PaymentCommand::CancelPayout {
            payout_id: payout_id("po2"),
        }),
        Err("payout_invalid_transition")
    );
}

#[test]
fn scheduled_payout_runs_when_due_and_only_once_per_run() {
    let mut f = Fixture::with_available(10_000);
    f.ok(PaymentCommand::SetPayoutSchedule {
        merchant_id: seller(),
        currency: USD,
        schedule: Some(ScheduleSpec {
            interval: PayoutInterval::Seconds(60),
            minimum_minor: 5_000,
            psp: psp(),
        }),
    });
    let run = PaymentCommand::RunPayoutSchedule {
        merchant_id: seller(),
        currency: USD,
    };
    let due = |f: &Fixture| match f.query(PaymentQuery::PayoutSchedulesDue {
        up_to_ns: f.now_ns,
        limit: 10,
    }) {
        PaymentQueryResult::PayoutSchedulesDue(due) => due.len(),
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(due(&f), 0);
    assert!(matches!(
        f.ok(run.clone()),
        PaymentOutcome::ScheduleRan { ran: false, .. }
    ));
    f.advance_s(60);
    assert_eq!(due(&f), 1);
    let payout = match f.ok(run.clone()) {
        PaymentOutcome::ScheduleRan {
            ran: true,
            payout: Some(payout),
            ..
        } => payout,
        other => panic!("unexpected {other:?}"),
    };
    assert!(payout.scheduled);
    assert_eq!(payout.amount_minor, 10_000);
    assert_eq!(due(&f), 0, "the next run is a minute away");
    assert!(matches!(
        f.ok(run.clone()),
        PaymentOutcome::ScheduleRan { ran: false, .. }
    ));
    // Below the minimum the run passes without a payout.
    f.claim_payout(payout.payout_id.as_str());
    f.payout_outcome(
        payout.payout_id.as_str(),
        PayoutOutcome::Failed {
            code: "x".into(),
            message: "y".into(),
        },
    );
    f.create_payout("po_manual", Some(6_000)).unwrap();
    f.advance_s(60);
    assert!(matches!(
        f.ok(run),
        PaymentOutcome::ScheduleRan {
            ran: true,
            payout: None,
            ..
        }
    ));
}

#[test]
fn exhausted_payout_retries_land_in_the_dead_letter_queue_and_a_redrive_pays() {
    let mut f = Fixture::with_available(10_000);
    f.create_payout("po1", Some(10_000)).unwrap();
    let attempt = f.claim_payout("po1");
    let retry_at = f.now_ns + 5 * NANOS_PER_SECOND;
    f.payout_outcome("po1", retryable(attempt, retry_at));
    assert_eq!(
        f.payment(PaymentCommand::ClaimPayout {
            payout_id: payout_id("po1"),
            lease_ms: 1_000,
        }),
        Err("payout_not_claimable"),
        "not before its retry time"
    );
    f.advance_s(5);
    let attempt = f.claim_payout("po1");
    assert_eq!(attempt, 2);
    let dead = f.payout_outcome(
        "po1",
        PayoutOutcome::Exhausted {
            attempt,
            code: "retries_exhausted".into(),
            message: "gave up after 2 attempts".into(),
        },
    );
    assert!(matches!(dead.work, WorkState::Dead { .. }));
    assert_eq!(dead.attempts.len(), 2, "both failures are in its history");
    assert_eq!(f.dead_letters(), vec!["payout:po1".to_string()]);
    assert_eq!(f.available(), 0, "a dead letter keeps its funds held");
    match f.query(PaymentQuery::DeadLetter {
        work: WorkRef::Payout(payout_id("po1")),
    }) {
        PaymentQueryResult::DeadLetter(Some(letter)) => {
            assert_eq!(letter.history.len(), 2);
            assert_eq!(letter.last_error.unwrap().code, "retries_exhausted");
        }
        other => panic!("unexpected {other:?}"),
    }
    f.ok(PaymentCommand::RedriveWork {
        work: WorkRef::Payout(payout_id("po1")),
    });
    assert!(f.dead_letters().is_empty());
    assert_eq!(f.claim_payout("po1"), 3);
    let paid = f.payout_outcome(
        "po1",
        PayoutOutcome::Paid {
            psp_payout_id: "pyt".into(),
        },
    );
    assert_eq!(paid.state, PayoutState::Paid);
    assert_eq!(
        f.payment(PaymentCommand::RedriveWork {
            work: WorkRef::Payout(payout_id("po1")),
        }),
        Err("not_dead_lettered")
    );
}

#[test]
fn a_poison_payout_goes_straight_to_the_dead_letter_queue_and_a_discard_frees_its_funds() {
    let mut f = Fixture::with_available(10_000);
    f.create_payout("po1", Some(2_500)).unwrap();
    f.claim_payout("po1");
    f.payout_outcome(
        "po1",
        PayoutOutcome::Poison {
            attempt: 1,
            code: "invalid_request".into(),
            message: "unsupported destination".into(),
        },
    );
    assert_eq!(f.dead_letters(), vec!["payout:po1".to_string()]);
    assert_eq!(
        f.payment(PaymentCommand::DiscardWork {
            work: WorkRef::Payout(payout_id("po1")),
            reason: String::new(),
        }),
        Err("discard_reason_invalid")
    );
    let discarded = match f.ok(PaymentCommand::DiscardWork {
        work: WorkRef::Payout(payout_id("po1")),
        reason: "destination fixed by hand; paid out by wire".into(),
    }) {
        PaymentOutcome::Payout { payout, .. } => payout,
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(discarded.state, PayoutState::Failed);
    assert_eq!(discarded.last_error.unwrap().code, "discarded");
    assert_eq!(f.available(), 10_000);
    assert!(f.dead_letters().is_empty());
}

#[test]
fn exhausted_charge_is_dead_lettered_not_failed_and_a_redrive_finishes_it() {
    let mut f = Fixture::with_available(1_000);
    f.checkout("c1", "o1", 500);
    let attempt = f.claim_order("o1");
    f.charge(
        "o1",
        ChargeOutcome::Exhausted {
            code: "retries_exhausted".into(),
            message: format!("gave up after {attempt} attempts"),
        },
        None,
    );
    assert!(matches!(
        f.order_state("o1"),
        OrderState::DeadLettered { .. }
    ));
    assert_eq!(f.dead_letters(), vec!["charge:o1".to_string()]);
    assert_eq!(
        f.payment(PaymentCommand::ClaimOrder {
            order_id: OrderId::new("o1").unwrap(),
            lease_ms: 1_000,
        }),
        Err("not_claimable"),
        "a dead letter waits for its operator"
    );
    f.ok(PaymentCommand::RedriveWork {
        work: WorkRef::Charge(OrderId::new("o1").unwrap()),
    });
    assert!(matches!(
        f.order_state("o1"),
        OrderState::RetryScheduled { .. }
    ));
    assert_eq!(f.claim_order("o1"), 2, "the attempt count goes on");
    assert!(f.charge("o1", captured("o1", 500), None));
    assert_eq!(f.order_state("o1"), OrderState::Succeeded);
    assert!(f.dead_letters().is_empty());
}

#[test]
fn a_poison_charge_is_dead_lettered_at_once_and_a_discard_fails_it() {
    let mut f = Fixture::with_available(1_000);
    f.checkout("c1", "o1", 500);
    f.claim_order("o1");
    f.charge(
        "o1",
        ChargeOutcome::Poison {
            code: "invalid_request".into(),
            message: "the PSP does not support this currency".into(),
        },
        None,
    );
    assert_eq!(f.dead_letters(), vec!["charge:o1".to_string()]);
    f.ok(PaymentCommand::DiscardWork {
        work: WorkRef::Charge(OrderId::new("o1").unwrap()),
        reason: "merchant asked to drop it".into(),
    });
    assert_eq!(f.order_state("o1"), OrderState::Failed);
    assert!(f.dead_letters().is_empty());
}

#[test]
fn a_webhook_event_is_applied_once_by_its_event_id() {
    let mut f = Fixture::with_available(1_000);
    f.checkout("c1", "o1", 500);
    f.claim_order("o1");
    let pending = ChargeOutcome::Pending {
        psp_charge_id: "ch_o1".into(),
        next_action: None,
    };
    assert!(f.charge("o1", pending.clone(), Some("evt_1")));
    // The same event again is a no-op even though a fresh Pending would push the check time.
    assert!(!f.charge("o1", pending, Some("evt_1")));
    assert!(f.charge("o1", captured("o1", 500), Some("evt_2")));
    assert!(!f.charge("o1", captured("o1", 500), Some("evt_2")));
    let order = OrderId::new("o1").unwrap();
    let checkout = f.store.order_checkout(&order).unwrap();
    let payment = f.store.payment(&checkout).unwrap();
    let stored = payment.order(&order).unwrap();
    assert_eq!(
        stored.webhook_events,
        vec!["evt_1".to_string(), "evt_2".to_string()]
    );
    assert_eq!(stored.captured_minor, 500, "one posting");
}

// ---- webhooks out: the outbox ------------------------------------------------------------

use tally_ledger::payment::{
    DeliveryAttempt, DeliveryOutcome, DeliveryState, WebhookEndpoint, WebhookSecret,
};

fn endpoint(id: &str, event_types: &[&str]) -> WebhookEndpoint {
    WebhookEndpoint {
        endpoint_id: id.to_string(),
        url: format!("https://merchant.example/{id}"),
        event_types: event_types.iter().map(|t| t.to_string()).collect(),
        secrets: vec!["whsec_1".to_string()],
        created_at_ns: 0,
    }
}

impl Fixture {
    fn add_endpoint(&mut self, endpoint: WebhookEndpoint) {
        self.ok(PaymentCommand::AddWebhookEndpoint {
            merchant_id: seller(),
            endpoint,
        });
    }

    /// `(delivery id, event kind)` of the deliveries due now that head their queue.
    fn due_deliveries(&self) -> Vec<(String, String)> {
        match self.query(PaymentQuery::DeliveriesDue {
            up_to_ns: self.now_ns + NANOS_PER_SECOND,
            limit: 100,
        }) {
            PaymentQueryResult::DeliveriesDue(due) => due
                .into_iter()
                .map(|(d, endpoint)| {
                    assert!(endpoint.is_some());
                    (d.id(), d.event.kind)
                })
                .collect(),
            other => panic!("unexpected {other:?}"),
        }
    }

    fn attempt_delivery(&mut self, id: &str, status: u16, outcome: DeliveryOutcome) {
        let attempt = match self.ok(PaymentCommand::ClaimDelivery {
            delivery_id: id.to_string(),
            lease_ms: 10_000,
        }) {
            PaymentOutcome::DeliveryClaimed { attempt, .. } => attempt,
            other => panic!("unexpected {other:?}"),
        };
        self.ok(PaymentCommand::RecordDelivery {
            delivery_id: id.to_string(),
            attempt: DeliveryAttempt {
                attempt,
                at_ns: 0,
                status,
                latency_ms: 3,
                excerpt: "x".repeat(2_000),
            },
            outcome,
        });
    }
}

#[test]
fn an_order_change_writes_its_event_for_every_interested_endpoint_in_the_same_command() {
    let mut f = Fixture::with_available(100);
    f.add_endpoint(endpoint("all", &[]));
    f.add_endpoint(endpoint("wins", &["payment_order.succeeded"]));
    f.checkout("c1", "o1", 500);
    f.checkout("c2", "o2", 700);
    f.claim_order("o1");
    f.claim_order("o2");
    assert!(f.due_deliveries().is_empty(), "claims are not events");
    f.charge("o1", captured("o1", 500), None);
    f.charge(
        "o2",
        ChargeOutcome::Declined {
            code: "card_declined".into(),
            message: "no".into(),
        },
        None,
    );
    let due = f.due_deliveries();
    let kinds: Vec<(&str, &str)> = due
        .iter()
        .map(|(id, kind)| (id.split_once('/').unwrap().1, kind.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("all", "payment_order.succeeded"),
            ("wins", "payment_order.succeeded"),
            ("all", "payment_order.failed"),
        ]
    );
    let ids: Vec<&str> = due
        .iter()
        .map(|(id, _)| id.split_once('/').unwrap().0)
        .collect();
    assert_eq!(ids[0], ids[1], "one event, two endpoints");
    assert!(ids[1] < ids[2], "event ids increase");
    // A duplicate outcome changes nothing, so it emits nothing.
    f.charge("o1", captured("o1", 500), None);
    assert_eq!(f.due_deliveries().len(), 3);
}

#[test]
fn a_payments_events_go_out_in_order_and_a_dead_one_does_not_hold_back_the_rest() {
    let mut f = Fixture::with_available(100);
    f.add_endpoint(endpoint("ep", &[]));
    f.checkout("c1", "o1", 500);
    f.claim_order("o1");
    f.charge(
        "o1",
        ChargeOutcome::Pending {
            psp_charge_id: "ch".into(),
            next_action: None,
        },
        None,
    );
    f.charge("o1", captured("o1", 500), None);
    let due = f.due_deliveries();
    assert_eq!(
        due.len(),
        1,
        "only the oldest event of the payment: {due:?}"
    );
    assert_eq!(due[0].1, "payment_order.pending");
    let first = due[0].0.clone();
    f.attempt_delivery(
        &first,
        503,
        DeliveryOutcome::Retry {
            retry_at_ns: f.now_ns,
        },
    );
    assert_eq!(f.due_deliveries()[0].0, first, "still first in line");
    f.attempt_delivery(&first, 503, DeliveryOutcome::Exhausted);
    assert_eq!(f.dead_letters(), vec![format!("delivery:{first}")]);
    let due = f.due_deliveries();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].1, "payment_order.succeeded");
    let second = due[0].0.clone();
    f.attempt_delivery(&second, 200, DeliveryOutcome::Delivered);
    let delivered = f.store.delivery(&second).unwrap();
    assert_eq!(delivered.state, DeliveryState::Delivered);
    assert_eq!(
        delivered.attempts[0].excerpt.len(),
        tally_ledger::limits::DELIVERY_EXCERPT_BYTES_MAX
    );
    // A re-drive puts the dead one back in line; a delivered one can be sent again too.
    f.ok(PaymentCommand::RedriveWork {
        work: WorkRef::Delivery(first.clone()),
    });
    f.ok(PaymentCommand::RedriveWork {
        work: WorkRef::Delivery(second.clone()),
    });
    assert_eq!(f.due_deliveries()[0].0, first);
    assert!(f.dead_letters().is_empty());
}

#[test]
fn endpoints_are_checked_rotated_and_removed() {
    let mut f = Fixture::with_available(100);
    f.add_endpoint(endpoint("ep", &[]));
    let mut bad = endpoint("bad", &[]);
    bad.url = "ftp://x".to_string();
    assert_eq!(
        f.payment(PaymentCommand::AddWebhookEndpoint {
            merchant_id: seller(),
            endpoint: bad,
        }),
        Err("endpoint_invalid")
    );
    let rotate = |keep_previous| PaymentCommand::RotateWebhookSecret {
        merchant_id: seller(),
        endpoint_id: "ep".to_string(),
        secret: WebhookSecret("whsec_2".to_string()),
        keep_previous,
    };
    let secrets = |outcome: PaymentOutcome| match outcome {
        PaymentOutcome::Merchant { merchant, .. } => merchant.webhook_endpoints[0].secrets.clone(),
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(secrets(f.ok(rotate(true))), ["whsec_2", "whsec_1"]);
    assert_eq!(secrets(f.ok(rotate(false))), ["whsec_2"]);
    f.ok(PaymentCommand::RemoveWebhookEndpoint {
        merchant_id: seller(),
        endpoint_id: "ep".to_string(),
    });
    assert_eq!(
        f.payment(PaymentCommand::RemoveWebhookEndpoint {
            merchant_id: seller(),
            endpoint_id: "ep".to_string(),
        }),
        Err("endpoint_not_found")
    );
}

#[test]
fn only_the_current_claim_may_dead_letter_a_payout_and_one_the_psp_has_cannot_be_discarded() {
    let mut f = Fixture::with_available(10_000);
    f.create_payout("po1", Some(1_000)).unwrap();
    let stale = f.claim_payout("po1");
    f.advance_s(60);
    let current = f.claim_payout("po1");
    assert_eq!(
        current,
        stale + 1,
        "the lease ran out and another worker took it"
    );
    let exhausted = |attempt| PayoutOutcome::Exhausted {
        attempt,
        code: "retries_exhausted".into(),
        message: "gave up".into(),
    };
    let ignored = f.payout_outcome("po1", exhausted(stale));
    assert!(
        matches!(ignored.work, WorkState::Leased { .. }),
        "{ignored:?}"
    );
    let dead = f.payout_outcome("po1", exhausted(current));
    assert!(matches!(dead.work, WorkState::Dead { .. }));
    // The PSP turns out to have it: the dead letter learns so, and a discard is refused.
    let known = f.payout_outcome(
        "po1",
        PayoutOutcome::InTransit {
            psp_payout_id: "pyt_9".into(),
            check_at_ns: T0,
        },
    );
    assert_eq!(known.state, PayoutState::InTransit);
    assert!(matches!(known.work, WorkState::Dead { .. }));
    assert_eq!(
        f.payment(PaymentCommand::DiscardWork {
            work: WorkRef::Payout(payout_id("po1")),
            reason: "give up".into(),
        }),
        Err("payout_invalid_transition")
    );
    // A re-drive starts a fresh retry budget from the attempts made so far.
    match f.ok(PaymentCommand::RedriveWork {
        work: WorkRef::Payout(payout_id("po1")),
    }) {
        PaymentOutcome::Payout { payout, .. } => assert_eq!(payout.retry_base, current),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn clients_cannot_take_the_ids_schedules_derive() {
    let mut f = Fixture::with_available(10_000);
    assert_eq!(
        f.create_payout("po_sched_000000000000000000000001", Some(1)),
        Err("payout_id_reserved")
    );
}

#[test]
fn a_refund_left_pending_is_retried_by_the_worker_dead_lettered_and_re_driven() {
    use tally_ledger::payment::{RefundId, RefundRetry, RefundState};
    let mut f = Fixture::with_available(100);
    f.checkout("c1", "o1", 500);
    f.claim_order("o1");
    f.charge("o1", captured("o1", 500), None);
    let order = OrderId::new("o1").unwrap();
    let refund = RefundId::new("r1").unwrap();
    f.ok(PaymentCommand::BeginRefund {
        order_id: order.clone(),
        refund_id: refund.clone(),
        amount_minor: 100,
        check_after_ms: 5_000,
    });
    let due = |f: &Fixture| match f.query(PaymentQuery::RefundsDue {
        up_to_ns: f.now_ns + NANOS_PER_SECOND,
        limit: 10,
    }) {
        PaymentQueryResult::RefundsDue(due) => due.len(),
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(
        due(&f),
        0,
        "the API call that began it has time to settle it"
    );
    f.advance_s(5);
    assert_eq!(due(&f), 1);
    let claim = |f: &mut Fixture| match f.ok(PaymentCommand::ClaimRefund {
        order_id: order.clone(),
        refund_id: refund.clone(),
        lease_ms: 10_000,
    }) {
        PaymentOutcome::Claimed { attempt, .. } => attempt,
        other => panic!("unexpected {other:?}"),
    };
    let first = claim(&mut f);
    assert_eq!(due(&f), 0, "leased");
    f.ok(PaymentCommand::RecordRefundRetry {
        order_id: order.clone(),
        refund_id: refund.clone(),
        outcome: RefundRetry::Retryable {
            attempt: first,
            code: "timeout".into(),
            message: "no answer".into(),
            retry_at_ns: f.now_ns,
        },
    });
    let second = claim(&mut f);
    f.ok(PaymentCommand::RecordRefundRetry {
        order_id: order.clone(),
        refund_id: refund.clone(),
        outcome: RefundRetry::Exhausted {
            attempt: second,
            code: "retries_exhausted".into(),
            message: "gave up".into(),
        },
    });
    assert_eq!(f.dead_letters(), vec!["refund:o1/r1".to_string()]);
    assert_eq!(due(&f), 0);
    f.ok(PaymentCommand::RedriveWork {
        work: WorkRef::Refund(order.clone(), refund.clone()),
    });
    assert_eq!(claim(&mut f), 3);
    f.ok(PaymentCommand::CompleteRefund {
        order_id: order.clone(),
        refund_id: refund.clone(),
        succeeded: true,
    });
    let checkout = f.store.order_checkout(&order).unwrap();
    let stored = f.store.payment(&checkout).unwrap();
    let r = &stored.order(&order).unwrap().refunds[0];
    assert_eq!(r.state, RefundState::Succeeded);
    assert_eq!((r.check_at_ns, r.attempts.len()), (None, 2));
    assert_eq!(due(&f), 0);
    assert!(f.dead_letters().is_empty());
}
