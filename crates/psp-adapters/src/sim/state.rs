//! The simulator's memory: charges, idempotency records, its own money ledger, pending webhooks
//! and queued faults. Bounded; everything behind one mutex (a test PSP needs correctness, not
//! parallelism).

use crate::model::{
    Charge, ChargeRequest, ChargeStatus, NextAction, PaymentMethod, Payout, PayoutRequest,
    PayoutStatus, Refund, RefundRequest, SimLedgerRow, WebhookEvent,
};
use std::collections::{BTreeMap, VecDeque};

/// Charges (and as many refunds) the simulator keeps before refusing new ones with 503.
pub const CHARGES_MAX: usize = 1_000_000;
/// Queued faults at most.
pub const FAULTS_QUEUED_MAX: usize = 10_000;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    Latency {
        ms: u64,
    },
    /// Never answer in time, and do not charge.
    Timeout,
    /// Answer 500 without charging.
    Error500,
    /// Charge, then answer 500: the client cannot know it was charged.
    LostResponse,
    /// Answer 400 `invalid_request` without acting: a poison message for the caller.
    InvalidRequest,
}

impl Fault {
    pub fn parse(text: &str) -> Option<Fault> {
        match text {
            "timeout" => Some(Fault::Timeout),
            "error_500" => Some(Fault::Error500),
            "lost_response" => Some(Fault::LostResponse),
            "invalid_request" => Some(Fault::InvalidRequest),
            other => other
                .strip_prefix("latency=")
                .and_then(|ms| ms.parse().ok())
                .map(|ms| Fault::Latency { ms }),
        }
    }
}

/// Why the simulator refused a request: HTTP status, stable code, message.
#[derive(Debug)]
pub struct Refusal {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

fn refuse(status: u16, code: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        status,
        code,
        message: message.into(),
    }
}

enum Keyed<T> {
    InFlight { fingerprint: String },
    Done { fingerprint: String, answer: T },
}

#[derive(Default)]
pub struct SimState {
    next_id: u64,
    charges: BTreeMap<String, Charge>,
    charge_keys: BTreeMap<String, Keyed<Charge>>,
    refund_keys: BTreeMap<String, Keyed<Refund>>,
    /// Capture and cancel keys: the charge id they were used on.
    action_keys: BTreeMap<String, String>,
    ledger: Vec<SimLedgerRow>,
    faults: VecDeque<Fault>,
    pub events: BTreeMap<String, WebhookEvent>,
    /// Where buyers reach this simulator (the payment pages' base URL).
    pub public_url: String,
    /// Buyer pages by registration token: 3-D Secure and hosted payment pages.
    pages: BTreeMap<String, Page>,
    /// Payouts by idempotency key, with their request's fingerprint and when they arrive at
    /// the bank (Unix ms).
    payouts: BTreeMap<String, (String, Payout, u64)>,
}

/// A page a buyer completes a pending charge on.
#[derive(Clone, Debug)]
pub struct Page {
    pub charge_id: String,
    /// Where the buyer goes back to after the page (hosted pages).
    pub return_url: Option<String>,
    /// A hosted page asks for the card; a 3-D Secure page only for approval.
    pub asks_card: bool,
}

impl SimState {
    fn next(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}_{:08}", self.next_id)
    }

    /// An empty simulator whose buyer pages live under `public_url`.
    pub fn new(public_url: String) -> Self {
        SimState {
            public_url,
            ..SimState::default()
        }
    }

    pub fn queue_faults(&mut self, fault: Fault, count: u32) -> Result<(), Refusal> {
        if self.faults.len() + count as usize > FAULTS_QUEUED_MAX {
            return Err(refuse(
                400,
                "too_many_faults",
                format!("at most {FAULTS_QUEUED_MAX} faults may wait"),
            ));
        }
        self.faults
            .extend(std::iter::repeat_n(fault, count as usize));
        Ok(())
    }

    pub fn next_fault(&mut self) -> Option<Fault> {
        self.faults.pop_front()
    }

    pub fn ledger(&self) -> Vec<SimLedgerRow> {
        self.ledger.clone()
    }

    /// Starts a charge under its key: the stored answer for a retry, a refusal for another body
    /// or a request still in flight, `None` when this request should run.
    pub fn begin_charge(
        &mut self,
        request: &ChargeRequest,
        fingerprint: &str,
    ) -> Result<Option<Charge>, Refusal> {
        match self.charge_keys.get(&request.idempotency_key) {
            Some(Keyed::Done {
                fingerprint: f,
                answer,
            }) if f == fingerprint => Ok(Some(answer.clone())),
            Some(Keyed::InFlight { fingerprint: f }) if f == fingerprint => Err(refuse(
                409,
                "request_in_progress",
                "a request with this idempotency key is still being processed; retry later",
            )),
            Some(_) => Err(refuse(
                409,
                "idempotency_key_reused",
                "this idempotency key was used with a different request body",
            )),
            None => {
                if self.charges.len() >= CHARGES_MAX {
                    return Err(refuse(
                        503,
                        "psp_full",
                        "the simulator holds too many charges",
                    ));
                }
                self.charge_keys.insert(
                    request.idempotency_key.clone(),
                    Keyed::InFlight {
                        fingerprint: fingerprint.to_string(),
                    },
                );
                Ok(None)
            }
        }
    }

    /// Drops an in-flight key whose request failed before charging, so a retry runs anew.
    pub fn abandon_charge(&mut self, key: &str) {
        if let Some(Keyed::InFlight { .. }) = self.charge_keys.get(key) {
            self.charge_keys.remove(key);
        }
    }

    /// Registers a buyer page for `charge_id` and answers its URL.
    fn open_page(
        &mut self,
        charge_id: &str,
        return_url: Option<String>,
        asks_card: bool,
    ) -> String {
        let token = self.next("reg");
        self.pages.insert(
            token.clone(),
            Page {
                charge_id: charge_id.to_string(),
                return_url,
                asks_card,
            },
        );
        format!("{}/v1/pay/{token}", self.public_url.trim_end_matches('/'))
    }

    pub fn page(&self, token: &str) -> Option<Page> {
        self.pages.get(token).cloned()
    }

    /// Runs a charge whose key `begin_charge` let through.
    pub fn charge(
        &mut self,
        request: &ChargeRequest,
        fingerprint: &str,
    ) -> Result<Charge, Refusal> {
        let outcome = self.decide(request);
        let charge = match outcome {
            Ok(charge) => charge,
            Err(refusal) => {
                self.abandon_charge(&request.idempotency_key);
                return Err(refusal);
            }
        };
        self.charges
            .insert(charge.charge_id.clone(), charge.clone());
        self.charge_keys.insert(
            request.idempotency_key.clone(),
            Keyed::Done {
                fingerprint: fingerprint.to_string(),
                answer: charge.clone(),
            },
        );
        self.record_movement(&charge);
        Ok(charge)
    }

    fn decide(&mut self, request: &ChargeRequest) -> Result<Charge, Refusal> {
        if request.amount_minor == 0 {
            return Err(refuse(
                400,
                "invalid_request",
                "amount_minor must be positive",
            ));
        }
        if request.currency.len() != 3 || !request.currency.bytes().all(|b| b.is_ascii_uppercase())
        {
            return Err(refuse(
                400,
                "invalid_request",
                "currency must be an ISO 4217 code such as USD",
            ));
        }
        let charge_id = self.next("ch");
        let settled = if request.capture {
            ChargeStatus::Captured
        } else {
            ChargeStatus::Authorized
        };
        let status = match &request.method {
            PaymentMethod::Qr => ChargeStatus::Pending {
                next_action: NextAction::ShowQr {
                    payload: format!("tallysim://qr/{charge_id}"),
                },
            },
            PaymentMethod::Hosted => {
                let Some(return_url) = request.return_url.clone() else {
                    return Err(refuse(
                        400,
                        "invalid_request",
                        "a hosted payment needs return_url: where the buyer comes back to",
                    ));
                };
                ChargeStatus::Pending {
                    next_action: NextAction::RedirectToUrl {
                        url: self.open_page(&charge_id, Some(return_url), true),
                    },
                }
            }
            PaymentMethod::Card { token } => match token.as_str() {
                "tok_decline" => ChargeStatus::Declined {
                    code: "card_declined".to_string(),
                    message: "the card was declined".to_string(),
                },
                "tok_insufficient" => ChargeStatus::Declined {
                    code: "insufficient_funds".to_string(),
                    message: "the card has insufficient funds".to_string(),
                },
                "tok_3ds" => ChargeStatus::Pending {
                    next_action: NextAction::RedirectToUrl {
                        url: self.open_page(&charge_id, request.return_url.clone(), false),
                    },
                },
                token if token.starts_with("tok_") => settled,
                _ => {
                    return Err(refuse(
                        400,
                        "invalid_request",
                        "card tokens start with tok_ (this PSP never takes card numbers)",
                    ))
                }
            },
        };
        let captured_minor = if status == ChargeStatus::Captured {
            request.amount_minor
        } else {
            0
        };
        Ok(Charge {
            charge_id,
            idempotency_key: request.idempotency_key.clone(),
            amount_minor: request.amount_minor,
            currency: request.currency.clone(),
            status,
            captured_minor,
            refunded_minor: 0,
        })
    }

    fn record_movement(&mut self, charge: &Charge) {
        let kind = match charge.status {
            ChargeStatus::Captured => "charge",
            ChargeStatus::Authorized => "authorization",
            _ => return,
        };
        self.ledger.push(SimLedgerRow {
            kind: kind.to_string(),
            charge_id: charge.charge_id.clone(),
            idempotency_key: charge.idempotency_key.clone(),
            amount_minor: if kind == "charge" {
                charge.captured_minor
            } else {
                charge.amount_minor
            },
            currency: charge.currency.clone(),
        });
    }

    fn update(&mut self, charge: Charge) {
        // Later lookups by key see the charge as it is now.
        if let Some(Keyed::Done { answer, .. }) = self.charge_keys.get_mut(&charge.idempotency_key)
        {
            *answer = charge.clone();
        }
        self.charges.insert(charge.charge_id.clone(), charge);
    }

    pub fn charge_by_key(&self, key: &str) -> Option<Charge> {
        match self.charge_keys.get(key) {
            Some(Keyed::Done { answer, .. }) => self.charges.get(&answer.charge_id).cloned(),
            _ => None,
        }
    }

    /// Every charge, in charge-id order.
    pub fn charges(&self) -> Vec<Charge> {
        self.charges.values().cloned().collect()
    }

    pub fn charge_by_id(&self, charge_id: &str) -> Option<Charge> {
        self.charges.get(charge_id).cloned()
    }

    fn known(&self, charge_id: &str) -> Result<Charge, Refusal> {
        self.charges
            .get(charge_id)
            .cloned()
            .ok_or_else(|| refuse(404, "not_found", format!("no charge {charge_id}")))
    }

    /// Key reuse for captures and cancels: the same key on the same charge replays.
    fn action_replay(&self, key: &str, charge_id: &str) -> Result<Option<Charge>, Refusal> {
        match self.action_keys.get(key) {
            Some(used_on) if used_on == charge_id => Ok(self.charges.get(charge_id).cloned()),
            Some(_) => Err(refuse(
                409,
                "idempotency_key_reused",
                "this idempotency key was used on another charge",
            )),
            None => Ok(None),
        }
    }

    pub fn capture(
        &mut self,
        charge_id: &str,
        amount_minor: u64,
        key: &str,
    ) -> Result<Charge, Refusal> {
        if let Some(charge) = self.action_replay(key, charge_id)? {
            return Ok(charge);
        }
        let mut charge = self.known(charge_id)?;
        if charge.status != ChargeStatus::Authorized {
            return Err(refuse(
                400,
                "charge_not_authorized",
                "only an authorized charge can be captured, once",
            ));
        }
        if amount_minor == 0 || amount_minor > charge.amount_minor {
            return Err(refuse(
                400,
                "capture_exceeds_authorized",
                format!("capture 1 to {} minor units", charge.amount_minor),
            ));
        }
        charge.status = ChargeStatus::Captured;
        charge.captured_minor = amount_minor;
        self.action_keys
            .insert(key.to_string(), charge_id.to_string());
        self.ledger.push(SimLedgerRow {
            kind: "capture".to_string(),
            charge_id: charge_id.to_string(),
            idempotency_key: key.to_string(),
            amount_minor,
            currency: charge.currency.clone(),
        });
        self.update(charge.clone());
        Ok(charge)
    }

    pub fn cancel(&mut self, charge_id: &str, key: &str) -> Result<Charge, Refusal> {
        if let Some(charge) = self.action_replay(key, charge_id)? {
            return Ok(charge);
        }
        let mut charge = self.known(charge_id)?;
        // Like Stripe: a charge waiting for the buyer (3-D Secure, QR) can be canceled too.
        if !matches!(
            charge.status,
            ChargeStatus::Authorized | ChargeStatus::Pending { .. }
        ) {
            return Err(refuse(
                400,
                "charge_not_cancelable",
                "only an authorized charge or one waiting for the buyer can be canceled",
            ));
        }
        charge.status = ChargeStatus::Canceled;
        self.action_keys
            .insert(key.to_string(), charge_id.to_string());
        self.update(charge.clone());
        Ok(charge)
    }

    pub fn refund(
        &mut self,
        request: &RefundRequest,
        fingerprint: &str,
    ) -> Result<Refund, Refusal> {
        match self.refund_keys.get(&request.idempotency_key) {
            Some(Keyed::Done {
                fingerprint: f,
                answer,
            }) if f == fingerprint => return Ok(answer.clone()),
            Some(_) => {
                return Err(refuse(
                    409,
                    "idempotency_key_reused",
                    "this idempotency key was used with a different refund",
                ))
            }
            None => {}
        }
        let mut charge = self.known(&request.charge_id)?;
        let refundable = charge.captured_minor - charge.refunded_minor;
        if request.amount_minor == 0 || request.amount_minor > refundable {
            return Err(refuse(
                400,
                "refund_exceeds_captured",
                format!("at most {refundable} minor units can still be refunded"),
            ));
        }
        charge.refunded_minor += request.amount_minor;
        let refund = Refund {
            refund_id: self.next("re"),
            charge_id: request.charge_id.clone(),
            amount_minor: request.amount_minor,
            idempotency_key: request.idempotency_key.clone(),
        };
        self.refund_keys.insert(
            request.idempotency_key.clone(),
            Keyed::Done {
                fingerprint: fingerprint.to_string(),
                answer: refund.clone(),
            },
        );
        self.ledger.push(SimLedgerRow {
            kind: "refund".to_string(),
            charge_id: request.charge_id.clone(),
            idempotency_key: request.idempotency_key.clone(),
            amount_minor: request.amount_minor,
            currency: charge.currency.clone(),
        });
        self.update(charge);
        Ok(refund)
    }

    /// The buyer finishes a pending charge (3-D Secure page, QR app). Returns the charge and the
    /// webhook event to send.
    pub fn complete(
        &mut self,
        charge_id: &str,
        succeed: bool,
        now_s: u64,
    ) -> Result<(Charge, WebhookEvent), Refusal> {
        let mut charge = self.known(charge_id)?;
        if !matches!(charge.status, ChargeStatus::Pending { .. }) {
            return Err(refuse(
                400,
                "charge_not_pending",
                "only a pending charge can be completed",
            ));
        }
        let kind = if succeed {
            charge.status = ChargeStatus::Captured;
            charge.captured_minor = charge.amount_minor;
            "charge.succeeded"
        } else {
            charge.status = ChargeStatus::Declined {
                code: "authentication_failed".to_string(),
                message: "the buyer did not complete the payment".to_string(),
            };
            "charge.failed"
        };
        self.record_movement(&charge);
        self.update(charge.clone());
        let event = WebhookEvent {
            event_id: self.next("evt"),
            kind: kind.to_string(),
            created_unix_s: now_s,
            idempotency_key: charge.idempotency_key.clone(),
            charge: charge.clone(),
        };
        self.events.insert(event.event_id.clone(), event.clone());
        Ok((charge, event))
    }

    /// Sends a payout under its key (a retry gets the stored one). A destination containing
    /// `closed` fails (a closed bank account); any other is in transit until `arrives_at_ms`.
    pub fn payout(
        &mut self,
        request: &PayoutRequest,
        fingerprint: &str,
        arrives_at_ms: u64,
        now_ms: u64,
    ) -> Result<Payout, Refusal> {
        if let Some((stored_fingerprint, _, _)) = self.payouts.get(&request.idempotency_key) {
            if stored_fingerprint != fingerprint {
                return Err(refuse(
                    409,
                    "idempotency_key_reused",
                    "this idempotency key was used with a different payout",
                ));
            }
            return Ok(self
                .payout_by_key(&request.idempotency_key, now_ms)
                .expect("a stored payout"));
        }
        if request.amount_minor == 0 {
            return Err(refuse(400, "invalid_request", "a payout must be positive"));
        }
        if self.payouts.len() >= CHARGES_MAX {
            return Err(refuse(503, "psp_unavailable", "the simulator is full"));
        }
        let status = if request.destination.contains("closed") {
            PayoutStatus::Failed {
                code: "account_closed".to_string(),
                message: "the destination bank account is closed".to_string(),
            }
        } else {
            self.ledger.push(SimLedgerRow {
                kind: "payout".to_string(),
                charge_id: request.idempotency_key.clone(),
                idempotency_key: request.idempotency_key.clone(),
                amount_minor: request.amount_minor,
                currency: request.currency.clone(),
            });
            PayoutStatus::InTransit
        };
        let payout = Payout {
            payout_id: self.next("po"),
            idempotency_key: request.idempotency_key.clone(),
            amount_minor: request.amount_minor,
            currency: request.currency.clone(),
            destination: request.destination.clone(),
            status,
        };
        self.payouts.insert(
            request.idempotency_key.clone(),
            (fingerprint.to_string(), payout, arrives_at_ms),
        );
        Ok(self
            .payout_by_key(&request.idempotency_key, now_ms)
            .expect("just stored"))
    }

    /// The payout under `key`, paid once its arrival time has passed.
    pub fn payout_by_key(&self, key: &str, now_ms: u64) -> Option<Payout> {
        let (_, payout, arrives_at_ms) = self.payouts.get(key)?;
        let mut payout = payout.clone();
        if payout.status == PayoutStatus::InTransit && now_ms >= *arrives_at_ms {
            payout.status = PayoutStatus::Paid;
        }
        Some(payout)
    }
}
