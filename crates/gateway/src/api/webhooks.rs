//! Webhook endpoints and deliveries on [`PaymentsApi`]: a merchant manages its own endpoints,
//! lists every delivery with its attempts, and asks for a redelivery.

use super::convert;
use super::error::ApiError;
use super::payouts::Caller;
use super::service::{unexpected_answer, PaymentsApi, LIST_PAGE_SIZE_DEFAULT};
use tally_ledger::payment::{
    delivery_id, PaymentCommand, PaymentOutcome, PaymentQuery, PaymentQueryResult, WebhookEndpoint,
    WebhookSecret, WorkRef, WORK_PAGE_MAX,
};
use tally_proto::payments as pb;

impl PaymentsApi {
    fn endpoints_of(
        &self,
        merchant: &tally_ledger::payment::Merchant,
    ) -> pb::ListEndpointsResponse {
        pb::ListEndpointsResponse {
            endpoints: merchant
                .webhook_endpoints
                .iter()
                .map(|e| convert::endpoint_to_pb(e, None))
                .collect(),
        }
    }

    async fn merchant_record(
        &self,
        merchant_id: &tally_ledger::payment::MerchantId,
    ) -> Result<tally_ledger::payment::Merchant, ApiError> {
        match self
            .ledger()
            .query_payments(&PaymentQuery::Merchant {
                merchant_id: merchant_id.clone(),
            })
            .await?
        {
            PaymentQueryResult::Merchant(Some(merchant)) => Ok(merchant),
            PaymentQueryResult::Merchant(None) => Err(ApiError::not_found(
                "merchant_not_found",
                format!("merchant {merchant_id} not found"),
            )),
            _ => Err(unexpected_answer()),
        }
    }

    /// The secret the merchant chose, or a new random one.
    fn given_or_new_secret(&self, given: &str) -> String {
        if !given.is_empty() {
            return given.to_string();
        }
        let mut bytes = [0u8; 24];
        self.fill_random(&mut bytes);
        format!("whsec_{}", hex::encode(bytes))
    }

    pub async fn create_endpoint(
        &self,
        caller: &Caller,
        request: &pb::CreateEndpointRequest,
    ) -> Result<pb::WebhookEndpoint, ApiError> {
        let merchant_id = self.owner(caller, &request.merchant_id)?;
        if request.url.starts_with("http://") && !self.webhook_allow_http() {
            return Err(ApiError::invalid(
                "endpoint_url_insecure",
                "url: webhook endpoints must be https:// (start the gateway with --webhook-allow-http for local development)",
            ));
        }
        let secret = self.given_or_new_secret(&request.secret);
        let endpoint = WebhookEndpoint {
            endpoint_id: request.endpoint_id.clone(),
            url: request.url.clone(),
            event_types: request.event_types.clone(),
            secrets: vec![secret.clone()],
            created_at_ns: 0,
        };
        match self
            .execute(PaymentCommand::AddWebhookEndpoint {
                merchant_id,
                endpoint,
            })
            .await?
        {
            PaymentOutcome::Merchant { merchant, .. } => merchant
                .webhook_endpoints
                .iter()
                .find(|e| e.endpoint_id == request.endpoint_id)
                .map(|e| convert::endpoint_to_pb(e, e.secrets.first().filter(|s| **s == secret)))
                .ok_or_else(unexpected_answer),
            _ => Err(unexpected_answer()),
        }
    }

    pub async fn list_endpoints(
        &self,
        caller: &Caller,
        request: &pb::ListEndpointsRequest,
    ) -> Result<pb::ListEndpointsResponse, ApiError> {
        let merchant_id = self.owner(caller, &request.merchant_id)?;
        let merchant = self.merchant_record(&merchant_id).await?;
        Ok(self.endpoints_of(&merchant))
    }

    pub async fn rotate_secret(
        &self,
        caller: &Caller,
        request: &pb::RotateSecretRequest,
    ) -> Result<pb::WebhookEndpoint, ApiError> {
        let merchant_id = self.owner(caller, &request.merchant_id)?;
        let secret = self.given_or_new_secret(&request.secret);
        match self
            .execute(PaymentCommand::RotateWebhookSecret {
                merchant_id,
                endpoint_id: request.endpoint_id.clone(),
                secret: WebhookSecret(secret.clone()),
                keep_previous: request.keep_previous,
            })
            .await?
        {
            PaymentOutcome::Merchant { merchant, .. } => merchant
                .webhook_endpoints
                .iter()
                .find(|e| e.endpoint_id == request.endpoint_id)
                .map(|e| convert::endpoint_to_pb(e, Some(&secret)))
                .ok_or_else(unexpected_answer),
            _ => Err(unexpected_answer()),
        }
    }

    pub async fn delete_endpoint(
        &self,
        caller: &Caller,
        request: &pb::DeleteEndpointRequest,
    ) -> Result<pb::ListEndpointsResponse, ApiError> {
        let merchant_id = self.owner(caller, &request.merchant_id)?;
        match self
            .execute(PaymentCommand::RemoveWebhookEndpoint {
                merchant_id,
                endpoint_id: request.endpoint_id.clone(),
            })
            .await?
        {
            PaymentOutcome::Merchant { merchant, .. } => Ok(self.endpoints_of(&merchant)),
            _ => Err(unexpected_answer()),
        }
    }

    pub async fn list_deliveries(
        &self,
        caller: &Caller,
        request: &pb::ListDeliveriesRequest,
    ) -> Result<pb::ListDeliveriesResponse, ApiError> {
        let merchant_id = self.owner(caller, &request.merchant_id)?;
        let limit = match request.page_size {
            0 => LIST_PAGE_SIZE_DEFAULT,
            size if size as usize <= WORK_PAGE_MAX => size,
            size => {
                return Err(ApiError::invalid(
                    "page_size_out_of_range",
                    format!("page_size {size} is above {WORK_PAGE_MAX}"),
                ))
            }
        };
        let before = super::payouts::parse_token(&request.page_token)?;
        match self
            .ledger()
            .query_payments(&PaymentQuery::MerchantDeliveries {
                merchant_id,
                before,
                limit,
            })
            .await?
        {
            PaymentQueryResult::Deliveries { deliveries, next } => Ok(pb::ListDeliveriesResponse {
                deliveries: deliveries.iter().map(convert::delivery_to_pb).collect(),
                next_page_token: super::payouts::format_token(next),
            }),
            _ => Err(unexpected_answer()),
        }
    }

    pub async fn redeliver(
        &self,
        caller: &Caller,
        request: &pb::RedeliverRequest,
    ) -> Result<pb::WebhookDelivery, ApiError> {
        let merchant_id = self.owner(caller, &request.merchant_id)?;
        let delivery_id = delivery_id(&request.event_id, &request.endpoint_id);
        let not_found = || {
            ApiError::not_found(
                "delivery_not_found",
                format!(
                    "no delivery of {} to endpoint {}",
                    request.event_id, request.endpoint_id
                ),
            )
        };
        match self
            .ledger()
            .query_payments(&PaymentQuery::Delivery {
                delivery_id: delivery_id.clone(),
            })
            .await?
        {
            PaymentQueryResult::Delivery(Some(delivery)) if delivery.merchant_id == merchant_id => {
            }
            PaymentQueryResult::Delivery(_) => return Err(not_found()),
            _ => return Err(unexpected_answer()),
        }
        match self
            .execute(PaymentCommand::RedriveWork {
                work: WorkRef::Delivery(delivery_id),
            })
            .await?
        {
            PaymentOutcome::Delivery { delivery, .. } => Ok(convert::delivery_to_pb(&delivery)),
            _ => Err(unexpected_answer()),
        }
    }
}
