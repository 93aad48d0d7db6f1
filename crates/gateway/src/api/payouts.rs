//! Payouts and the dead-letter queue on [`PaymentsApi`]: a merchant pays out its own available
//! balance, the operator any merchant's, and only the operator works the dead-letter queue.

use super::auth::Presented;
use super::convert::{self, id};
use super::error::{ApiError, ErrorKind};
use super::service::{unexpected_answer, PaymentsApi, LIST_PAGE_SIZE_DEFAULT};
use tally_ledger::payment::{
    MerchantId, NewPayout, PaymentCommand, PaymentOutcome, PaymentQuery, PaymentQueryResult,
    Payout, PayoutId, PayoutInterval, ScheduleSpec, WorkRef, WORK_PAGE_MAX,
};
use tally_ledger::{parse_amount, ZeroAmount};
use tally_proto::payments as pb;

/// Who is calling the payouts API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    /// The admin token: any merchant, named in the request.
    Operator,
    /// A merchant's API key: its own payouts only.
    Merchant(MerchantId),
}

impl PaymentsApi {
    /// The admin token makes the operator; anything else must be a merchant's API key.
    pub async fn caller(&self, presented: &Presented) -> Result<Caller, ApiError> {
        if self.authenticate_admin(presented.authorization()).is_ok() {
            return Ok(Caller::Operator);
        }
        Ok(Caller::Merchant(self.authenticate(presented).await?))
    }

    /// The merchant a payout or webhook call acts for.
    pub(super) fn owner(&self, caller: &Caller, merchant_id: &str) -> Result<MerchantId, ApiError> {
        match caller {
            Caller::Operator if merchant_id.is_empty() => Err(ApiError::invalid(
                "merchant_id_required",
                "merchant_id: name the merchant whose payouts this is (the admin token acts for any)",
            )),
            Caller::Operator => id("merchant_id", merchant_id),
            Caller::Merchant(own) if merchant_id.is_empty() || merchant_id == own.as_str() => {
                Ok(own.clone())
            }
            Caller::Merchant(own) => Err(ApiError::new(
                ErrorKind::PermissionDenied,
                "not_your_merchant",
                format!("this API key belongs to {own}; it cannot act for {merchant_id}"),
            )),
        }
    }

    pub async fn create_payout(
        &self,
        caller: &Caller,
        request: &pb::CreatePayoutRequest,
    ) -> Result<pb::Payout, ApiError> {
        let merchant_id = self.owner(caller, &request.merchant_id)?;
        let currency = convert::currency("currency", &request.currency)?;
        let amount_minor = if request.amount.is_empty() {
            None
        } else {
            Some(convert::amount("amount", &request.amount, currency)?)
        };
        let command = PaymentCommand::CreatePayout(NewPayout {
            payout_id: id("payout_id", &request.payout_id)?,
            merchant_id,
            currency,
            amount_minor,
            psp: self.psp_name().clone(),
        });
        self.payout_command(command).await
    }

    async fn payout_command(&self, command: PaymentCommand) -> Result<pb::Payout, ApiError> {
        match self.execute(command).await? {
            PaymentOutcome::Payout { payout, .. } => Ok(convert::payout_to_pb(&payout)),
            _ => Err(unexpected_answer()),
        }
    }

    /// The payout, if the caller may see it (another merchant's answers not-found).
    async fn owned_payout(
        &self,
        caller: &Caller,
        merchant_id: &str,
        payout_id: &str,
    ) -> Result<Payout, ApiError> {
        let payout_id: PayoutId = id("payout_id", payout_id)?;
        let not_found =
            || ApiError::not_found("payout_not_found", format!("payout {payout_id} not found"));
        let payout = match self
            .ledger()
            .query_payments(&PaymentQuery::Payout {
                payout_id: payout_id.clone(),
            })
            .await?
        {
            PaymentQueryResult::Payout(Some(payout)) => payout,
            PaymentQueryResult::Payout(None) => return Err(not_found()),
            _ => return Err(unexpected_answer()),
        };
        match caller {
            Caller::Operator => Ok(payout),
            Caller::Merchant(_) => {
                let owner = self.owner(caller, merchant_id)?;
                if payout.merchant_id == owner {
                    Ok(payout)
                } else {
                    Err(not_found())
                }
            }
        }
    }

    pub async fn get_payout(
        &self,
        caller: &Caller,
        request: &pb::GetPayoutRequest,
    ) -> Result<pb::Payout, ApiError> {
        let payout = self
            .owned_payout(caller, &request.merchant_id, &request.payout_id)
            .await?;
        Ok(convert::payout_to_pb(&payout))
    }

    pub async fn cancel_payout(
        &self,
        caller: &Caller,
        request: &pb::CancelPayoutRequest,
    ) -> Result<pb::Payout, ApiError> {
        let payout = self
            .owned_payout(caller, &request.merchant_id, &request.payout_id)
            .await?;
        self.payout_command(PaymentCommand::CancelPayout {
            payout_id: payout.payout_id,
        })
        .await
    }

    pub async fn list_payouts(
        &self,
        caller: &Caller,
        request: &pb::ListPayoutsRequest,
    ) -> Result<pb::ListPayoutsResponse, ApiError> {
        let merchant_id = self.owner(caller, &request.merchant_id)?;
        let limit = page_size(request.page_size)?;
        let before = parse_token(&request.page_token)?;
        match self
            .ledger()
            .query_payments(&PaymentQuery::MerchantPayouts {
                merchant_id,
                before,
                limit,
            })
            .await?
        {
            PaymentQueryResult::Payouts { payouts, next } => Ok(pb::ListPayoutsResponse {
                payouts: payouts.iter().map(convert::payout_to_pb).collect(),
                next_page_token: format_token(next),
            }),
            _ => Err(unexpected_answer()),
        }
    }

    pub async fn set_payout_schedule(
        &self,
        caller: &Caller,
        request: &pb::SetPayoutScheduleRequest,
    ) -> Result<pb::PayoutSchedules, ApiError> {
        let merchant_id = self.owner(caller, &request.merchant_id)?;
        let currency = convert::currency("currency", &request.currency)?;
        let schedule = if request.interval.is_empty() {
            None
        } else {
            let interval = PayoutInterval::parse(&request.interval).ok_or_else(|| {
                ApiError::invalid(
                    "interval_invalid",
                    format!(
                        "interval {:?}: use daily, weekly, monthly or every_<seconds>s",
                        request.interval
                    ),
                )
            })?;
            let minimum_minor = if request.minimum_amount.is_empty() {
                0
            } else {
                parse_amount(&request.minimum_amount, currency, ZeroAmount::Allowed).map_err(
                    |error| ApiError::invalid(error.code(), format!("minimum_amount: {error}")),
                )?
            };
            Some(ScheduleSpec {
                interval,
                minimum_minor,
                psp: self.psp_name().clone(),
            })
        };
        match self
            .execute(PaymentCommand::SetPayoutSchedule {
                merchant_id,
                currency,
                schedule,
            })
            .await?
        {
            PaymentOutcome::Merchant { merchant, .. } => Ok(convert::schedules_to_pb(&merchant)),
            _ => Err(unexpected_answer()),
        }
    }

    // ---- dead letters (operator) -------------------------------------------------------------

    pub async fn list_dead_letters(
        &self,
        request: &pb::ListDeadLettersRequest,
    ) -> Result<pb::ListDeadLettersResponse, ApiError> {
        let limit = page_size(request.page_size)?;
        let after = parse_token(&request.page_token)?;
        match self
            .ledger()
            .query_payments(&PaymentQuery::DeadLetters { after, limit })
            .await?
        {
            PaymentQueryResult::DeadLetters { letters, next } => Ok(pb::ListDeadLettersResponse {
                dead_letters: letters.iter().map(convert::dead_letter_to_pb).collect(),
                next_page_token: format_token(next),
            }),
            _ => Err(unexpected_answer()),
        }
    }

    pub async fn get_dead_letter(
        &self,
        request: &pb::GetDeadLetterRequest,
    ) -> Result<pb::DeadLetter, ApiError> {
        let work = work_ref(&request.work)?;
        match self
            .ledger()
            .query_payments(&PaymentQuery::DeadLetter { work: work.clone() })
            .await?
        {
            PaymentQueryResult::DeadLetter(Some(letter)) => Ok(convert::dead_letter_to_pb(&letter)),
            PaymentQueryResult::DeadLetter(None) => Err(ApiError::not_found(
                "dead_letter_not_found",
                format!("{work} is not in the dead-letter queue"),
            )),
            _ => Err(unexpected_answer()),
        }
    }

    pub async fn redrive_dead_letter(
        &self,
        request: &pb::RedriveDeadLetterRequest,
    ) -> Result<pb::WorkStatus, ApiError> {
        let work = work_ref(&request.work)?;
        let outcome = self
            .execute(PaymentCommand::RedriveWork { work: work.clone() })
            .await?;
        work_status(&work, &outcome)
    }

    pub async fn discard_dead_letter(
        &self,
        request: &pb::DiscardDeadLetterRequest,
    ) -> Result<pb::WorkStatus, ApiError> {
        let work = work_ref(&request.work)?;
        self.check_psp_before_discard(&work).await?;
        let outcome = self
            .execute(PaymentCommand::DiscardWork {
                work: work.clone(),
                reason: request.reason.clone(),
            })
            .await?;
        work_status(&work, &outcome)
    }
}

impl PaymentsApi {
    /// A dead charge or payout may have reached the PSP (its answer lost): giving up on it
    /// then would lose a real charge or pay out twice. Ask the PSP first; only work it does not
    /// know, or refused, may be discarded.
    async fn check_psp_before_discard(&self, work: &WorkRef) -> Result<(), ApiError> {
        let reached = match work {
            WorkRef::Charge(order_id) => self
                .psp_call(self.psp().charge_status(order_id.as_str()))
                .await?
                .filter(|charge| {
                    !matches!(
                        charge.status,
                        tally_psp::ChargeStatus::Declined { .. }
                            | tally_psp::ChargeStatus::Canceled
                    )
                })
                .map(|charge| format!("charge {} is {:?}", charge.charge_id, charge.status)),
            WorkRef::Payout(payout_id) => self
                .psp_call(self.psp().payout_status(payout_id.as_str()))
                .await?
                .filter(|payout| !matches!(payout.status, tally_psp::PayoutStatus::Failed { .. }))
                .map(|payout| format!("payout {} is {:?}", payout.payout_id, payout.status)),
            // The PSP answers refunds only by doing them (no status by key): a discarded refund
            // is failed and its funds return; the operator checks the PSP's dashboard first.
            WorkRef::Delivery(_) | WorkRef::Refund(..) => None,
        };
        match reached {
            Some(found) => Err(ApiError::new(
                ErrorKind::FailedPrecondition,
                "reached_psp",
                format!("{work} cannot be discarded: the PSP has it ({found}); re-drive it so its outcome is recorded"),
            )),
            None => Ok(()),
        }
    }
}

fn work_ref(text: &str) -> Result<WorkRef, ApiError> {
    WorkRef::parse(text).ok_or_else(|| {
        ApiError::invalid(
            "work_invalid",
            format!("work {text:?}: write charge:<order id> or payout:<payout id>"),
        )
    })
}

fn work_status(work: &WorkRef, outcome: &PaymentOutcome) -> Result<pb::WorkStatus, ApiError> {
    let state = match (work, outcome) {
        (WorkRef::Charge(order_id), PaymentOutcome::Payment { payment, .. }) => payment
            .order(order_id)
            .map(|order| order.state.name().to_string())
            .ok_or_else(unexpected_answer)?,
        (WorkRef::Payout(_), PaymentOutcome::Payout { payout, .. }) => {
            payout.state.name().to_string()
        }
        _ => return Err(unexpected_answer()),
    };
    Ok(pb::WorkStatus {
        work: work.to_string(),
        state,
    })
}

fn page_size(requested: u32) -> Result<u32, ApiError> {
    match requested {
        0 => Ok(LIST_PAGE_SIZE_DEFAULT),
        size if size as usize <= WORK_PAGE_MAX => Ok(size),
        size => Err(ApiError::invalid(
            "page_size_out_of_range",
            format!("page_size {size} is above {WORK_PAGE_MAX}"),
        )),
    }
}

/// Page tokens are `<time ns>.<id>` of the last entry of the previous page.
pub(super) fn parse_token(token: &str) -> Result<Option<(u64, String)>, ApiError> {
    if token.is_empty() {
        return Ok(None);
    }
    let invalid = || {
        ApiError::invalid(
            "page_token_invalid",
            "page_token is not one this API issued: pass next_page_token unchanged",
        )
    };
    let (ns, id) = token.split_once('.').ok_or_else(invalid)?;
    let ns: u64 = ns.parse().map_err(|_| invalid())?;
    if id.is_empty() {
        return Err(invalid());
    }
    Ok(Some((ns, id.to_string())))
}

pub(super) fn format_token(next: Option<(u64, String)>) -> String {
    next.map(|(ns, id)| format!("{ns}.{id}"))
        .unwrap_or_default()
}
