//! `tally.payments.v1` over tonic: authentication from the `authorization` metadata, then the
//! call on [`PaymentsApi`], with latency and result code recorded per route.

use super::auth::Presented;
use super::error::ApiError;
use super::service::PaymentsApi;
use crate::metrics::Metrics;
use prost::Message;
use std::future::Future;
use std::sync::Arc;
use tally_net::serve::RemoteAddr;
use tally_proto::payments as pb;
use tally_proto::payments::dead_letters_server::{DeadLetters, DeadLettersServer};
use tally_proto::payments::merchants_server::{Merchants, MerchantsServer};
use tally_proto::payments::payments_server::{Payments, PaymentsServer};
use tally_proto::payments::payouts_server::{Payouts, PayoutsServer};
use tally_proto::payments::webhook_endpoints_server::{WebhookEndpoints, WebhookEndpointsServer};
use tokio::time::Instant;
use tonic::{Request, Response, Status};

/// Largest request either public service accepts, in bytes: a checkout of 16 orders with full
/// metadata is a few KiB.
pub const PUBLIC_MESSAGE_BYTES_MAX: usize = 1024 * 1024;

#[derive(Clone)]
pub struct PaymentsGrpc {
    api: Arc<PaymentsApi>,
    metrics: Arc<Metrics>,
}

impl PaymentsGrpc {
    pub fn new(api: Arc<PaymentsApi>, metrics: Arc<Metrics>) -> Self {
        PaymentsGrpc { api, metrics }
    }

    pub fn payments_service(&self) -> PaymentsServer<Self> {
        PaymentsServer::new(self.clone()).max_decoding_message_size(PUBLIC_MESSAGE_BYTES_MAX)
    }

    pub fn merchants_service(&self) -> MerchantsServer<Self> {
        MerchantsServer::new(self.clone()).max_decoding_message_size(PUBLIC_MESSAGE_BYTES_MAX)
    }

    pub fn payouts_service(&self) -> PayoutsServer<Self> {
        PayoutsServer::new(self.clone()).max_decoding_message_size(PUBLIC_MESSAGE_BYTES_MAX)
    }

    pub fn dead_letters_service(&self) -> DeadLettersServer<Self> {
        DeadLettersServer::new(self.clone()).max_decoding_message_size(PUBLIC_MESSAGE_BYTES_MAX)
    }

    pub fn webhooks_service(&self) -> WebhookEndpointsServer<Self> {
        WebhookEndpointsServer::new(self.clone())
            .max_decoding_message_size(PUBLIC_MESSAGE_BYTES_MAX)
    }

    async fn call<T>(
        &self,
        route: &'static str,
        work: impl Future<Output = Result<T, ApiError>>,
    ) -> Result<Response<T>, Status> {
        let started = Instant::now();
        let result = work.await;
        let code = match &result {
            Ok(_) => "ok",
            Err(error) => error.code.as_str(),
        };
        self.metrics
            .observe_request(route, code, started.elapsed().as_secs_f64());
        result.map(Response::new).map_err(Status::from)
    }
}

/// The client's idempotency key of a mutating call, if it sent one.
fn idempotency_key<T>(request: &Request<T>) -> Option<String> {
    request
        .metadata()
        .get("idempotency-key")
        .map(|value| value.to_str().unwrap_or("\u{fffd}").to_string())
}

/// The credentials of a `Payments` call: the bearer key and, if sent, its signature.
struct Credentials {
    presented: Presented,
    signature: Option<String>,
    /// `/tally%2Epayments%2Ev1%2EPayments/<Method>`: the signed path (no `.`).
    path: String,
}

fn credentials<T>(request: &Request<T>, method: &str) -> Credentials {
    Credentials {
        presented: presented(request),
        signature: request
            .metadata()
            .get("tally-signature")
            .map(|value| value.to_str().unwrap_or("\u{fffd}").to_string()),
        path: format!("/tally%2Epayments%2Ev1%2EPayments/{method}"),
    }
}

impl PaymentsGrpc {
    async fn authenticate<T: Message>(
        &self,
        credentials: &Credentials,
        request: &Request<T>,
    ) -> Result<tally_ledger::payment::MerchantId, ApiError> {
        let body = request.get_ref().encode_to_vec();
        self.api
            .authenticate_signed(
                &credentials.presented,
                credentials.signature.as_deref(),
                "POST",
                &credentials.path,
                &body,
            )
            .await
    }
}

/// The bearer credential of a call and the address it came from.
fn presented<T>(request: &Request<T>) -> Presented {
    Presented {
        authorization: request
            .metadata()
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .map(str::to_string),
        client: request
            .extensions()
            .get::<RemoteAddr>()
            .map(|remote| remote.0.ip()),
    }
}

#[tonic::async_trait]
impl Payments for PaymentsGrpc {
    async fn create_payment(
        &self,
        request: Request<pb::CreatePaymentRequest>,
    ) -> Result<Response<pb::Payment>, Status> {
        let auth = credentials(&request, "CreatePayment");
        let key = idempotency_key(&request);
        self.call("create_payment", async {
            let merchant = self.authenticate(&auth, &request).await?;
            let body = request.get_ref().encode_to_vec();
            let call = self.api.create_payment(&merchant, request.get_ref());
            self.api
                .idempotent(
                    &merchant,
                    key.as_deref(),
                    "/tally.payments.v1.Payments/CreatePayment",
                    &body,
                    call,
                )
                .await
        })
        .await
    }

    async fn confirm_payment(
        &self,
        request: Request<pb::ConfirmPaymentRequest>,
    ) -> Result<Response<pb::Payment>, Status> {
        let auth = credentials(&request, "ConfirmPayment");
        let key = idempotency_key(&request);
        self.call("confirm_payment", async {
            let merchant = self.authenticate(&auth, &request).await?;
            let body = request.get_ref().encode_to_vec();
            let call = self.api.confirm_payment(&merchant, request.get_ref());
            self.api
                .idempotent(
                    &merchant,
                    key.as_deref(),
                    "/tally.payments.v1.Payments/ConfirmPayment",
                    &body,
                    call,
                )
                .await
        })
        .await
    }

    async fn get_payment(
        &self,
        request: Request<pb::GetPaymentRequest>,
    ) -> Result<Response<pb::Payment>, Status> {
        let auth = credentials(&request, "GetPayment");
        self.call("get_payment", async {
            let merchant = self.authenticate(&auth, &request).await?;
            self.api
                .get_payment(&merchant, &request.get_ref().checkout_id)
                .await
        })
        .await
    }

    async fn get_payment_order(
        &self,
        request: Request<pb::GetPaymentOrderRequest>,
    ) -> Result<Response<pb::PaymentOrder>, Status> {
        let auth = credentials(&request, "GetPaymentOrder");
        self.call("get_payment_order", async {
            let merchant = self.authenticate(&auth, &request).await?;
            self.api
                .get_order(&merchant, &request.get_ref().order_id)
                .await
        })
        .await
    }

    async fn list_payments(
        &self,
        request: Request<pb::ListPaymentsRequest>,
    ) -> Result<Response<pb::ListPaymentsResponse>, Status> {
        let auth = credentials(&request, "ListPayments");
        self.call("list_payments", async {
            let merchant = self.authenticate(&auth, &request).await?;
            self.api.list_payments(&merchant, request.get_ref()).await
        })
        .await
    }

    async fn capture_payment(
        &self,
        request: Request<pb::CapturePaymentRequest>,
    ) -> Result<Response<pb::Payment>, Status> {
        let auth = credentials(&request, "CapturePayment");
        let key = idempotency_key(&request);
        self.call("capture_payment", async {
            let merchant = self.authenticate(&auth, &request).await?;
            let body = request.get_ref().encode_to_vec();
            let call = self.api.capture(&merchant, request.get_ref());
            self.api
                .idempotent(
                    &merchant,
                    key.as_deref(),
                    "/tally.payments.v1.Payments/CapturePayment",
                    &body,
                    call,
                )
                .await
        })
        .await
    }

    async fn cancel_payment(
        &self,
        request: Request<pb::CancelPaymentRequest>,
    ) -> Result<Response<pb::Payment>, Status> {
        let auth = credentials(&request, "CancelPayment");
        let key = idempotency_key(&request);
        self.call("cancel_payment", async {
            let merchant = self.authenticate(&auth, &request).await?;
            let body = request.get_ref().encode_to_vec();
            let call = self.api.cancel(&merchant, request.get_ref());
            self.api
                .idempotent(
                    &merchant,
                    key.as_deref(),
                    "/tally.payments.v1.Payments/CancelPayment",
                    &body,
                    call,
                )
                .await
        })
        .await
    }

    async fn refund_payment(
        &self,
        request: Request<pb::RefundPaymentRequest>,
    ) -> Result<Response<pb::Payment>, Status> {
        let auth = credentials(&request, "RefundPayment");
        let key = idempotency_key(&request);
        self.call("refund_payment", async {
            let merchant = self.authenticate(&auth, &request).await?;
            let body = request.get_ref().encode_to_vec();
            let call = self.api.refund(&merchant, request.get_ref());
            self.api
                .idempotent(
                    &merchant,
                    key.as_deref(),
                    "/tally.payments.v1.Payments/RefundPayment",
                    &body,
                    call,
                )
                .await
        })
        .await
    }

    async fn fulfill_order(
        &self,
        request: Request<pb::FulfillOrderRequest>,
    ) -> Result<Response<pb::Payment>, Status> {
        let auth = credentials(&request, "FulfillOrder");
        let key = idempotency_key(&request);
        self.call("fulfill_order", async {
            let merchant = self.authenticate(&auth, &request).await?;
            let body = request.get_ref().encode_to_vec();
            let call = self.api.fulfill(&merchant, request.get_ref());
            self.api
                .idempotent(
                    &merchant,
                    key.as_deref(),
                    "/tally.payments.v1.Payments/FulfillOrder",
                    &body,
                    call,
                )
                .await
        })
        .await
    }
}

#[tonic::async_trait]
impl Merchants for PaymentsGrpc {
    async fn create_merchant(
        &self,
        request: Request<pb::CreateMerchantRequest>,
    ) -> Result<Response<pb::Merchant>, Status> {
        let auth = presented(&request);
        self.call("create_merchant", async {
            self.api.authenticate_admin(auth.authorization())?;
            self.api.create_merchant(request.get_ref()).await
        })
        .await
    }

    async fn get_merchant(
        &self,
        request: Request<pb::GetMerchantRequest>,
    ) -> Result<Response<pb::Merchant>, Status> {
        let auth = presented(&request);
        self.call("get_merchant", async {
            self.api.authenticate_admin(auth.authorization())?;
            self.api.get_merchant(&request.get_ref().merchant_id).await
        })
        .await
    }

    async fn update_fees(
        &self,
        request: Request<pb::UpdateFeesRequest>,
    ) -> Result<Response<pb::Merchant>, Status> {
        let auth = presented(&request);
        self.call("update_fees", async {
            self.api.authenticate_admin(auth.authorization())?;
            self.api.update_fees(request.get_ref()).await
        })
        .await
    }

    async fn create_api_key(
        &self,
        request: Request<pb::CreateApiKeyRequest>,
    ) -> Result<Response<pb::CreateApiKeyResponse>, Status> {
        let auth = presented(&request);
        self.call("create_api_key", async {
            self.api.authenticate_admin(auth.authorization())?;
            self.api.create_api_key(request.get_ref()).await
        })
        .await
    }

    async fn revoke_api_key(
        &self,
        request: Request<pb::RevokeApiKeyRequest>,
    ) -> Result<Response<pb::Merchant>, Status> {
        let auth = presented(&request);
        self.call("revoke_api_key", async {
            self.api.authenticate_admin(auth.authorization())?;
            self.api.revoke_api_key(request.get_ref()).await
        })
        .await
    }

    async fn rotate_signing_secret(
        &self,
        request: Request<pb::RotateSigningSecretRequest>,
    ) -> Result<Response<pb::RotateSigningSecretResponse>, Status> {
        let auth = presented(&request);
        self.call("rotate_signing_secret", async {
            self.api.authenticate_admin(auth.authorization())?;
            self.api.rotate_signing_secret(request.get_ref()).await
        })
        .await
    }

    async fn create_buyer(
        &self,
        request: Request<pb::CreateBuyerRequest>,
    ) -> Result<Response<pb::Buyer>, Status> {
        let auth = presented(&request);
        self.call("create_buyer", async {
            self.api.authenticate_admin(auth.authorization())?;
            self.api.create_buyer(request.get_ref()).await
        })
        .await
    }
}

#[tonic::async_trait]
impl Payouts for PaymentsGrpc {
    async fn create_payout(
        &self,
        request: Request<pb::CreatePayoutRequest>,
    ) -> Result<Response<pb::Payout>, Status> {
        let auth = presented(&request);
        self.call("create_payout", async {
            let caller = self.api.caller(&auth).await?;
            self.api.create_payout(&caller, request.get_ref()).await
        })
        .await
    }

    async fn get_payout(
        &self,
        request: Request<pb::GetPayoutRequest>,
    ) -> Result<Response<pb::Payout>, Status> {
        let auth = presented(&request);
        self.call("get_payout", async {
            let caller = self.api.caller(&auth).await?;
            self.api.get_payout(&caller, request.get_ref()).await
        })
        .await
    }

    async fn list_payouts(
        &self,
        request: Request<pb::ListPayoutsRequest>,
    ) -> Result<Response<pb::ListPayoutsResponse>, Status> {
        let auth = presented(&request);
        self.call("list_payouts", async {
            let caller = self.api.caller(&auth).await?;
            self.api.list_payouts(&caller, request.get_ref()).await
        })
        .await
    }

    async fn cancel_payout(
        &self,
        request: Request<pb::CancelPayoutRequest>,
    ) -> Result<Response<pb::Payout>, Status> {
        let auth = presented(&request);
        self.call("cancel_payout", async {
            let caller = self.api.caller(&auth).await?;
            self.api.cancel_payout(&caller, request.get_ref()).await
        })
        .await
    }

    async fn set_payout_schedule(
        &self,
        request: Request<pb::SetPayoutScheduleRequest>,
    ) -> Result<Response<pb::PayoutSchedules>, Status> {
        let auth = presented(&request);
        self.call("set_payout_schedule", async {
            let caller = self.api.caller(&auth).await?;
            self.api
                .set_payout_schedule(&caller, request.get_ref())
                .await
        })
        .await
    }
}

#[tonic::async_trait]
impl DeadLetters for PaymentsGrpc {
    async fn list_dead_letters(
        &self,
        request: Request<pb::ListDeadLettersRequest>,
    ) -> Result<Response<pb::ListDeadLettersResponse>, Status> {
        let auth = presented(&request);
        self.call("list_dead_letters", async {
            self.api.authenticate_admin(auth.authorization())?;
            self.api.list_dead_letters(request.get_ref()).await
        })
        .await
    }

    async fn get_dead_letter(
        &self,
        request: Request<pb::GetDeadLetterRequest>,
    ) -> Result<Response<pb::DeadLetter>, Status> {
        let auth = presented(&request);
        self.call("get_dead_letter", async {
            self.api.authenticate_admin(auth.authorization())?;
            self.api.get_dead_letter(request.get_ref()).await
        })
        .await
    }

    async fn redrive_dead_letter(
        &self,
        request: Request<pb::RedriveDeadLetterRequest>,
    ) -> Result<Response<pb::WorkStatus>, Status> {
        let auth = presented(&request);
        self.call("redrive_dead_letter", async {
            self.api.authenticate_admin(auth.authorization())?;
            self.api.redrive_dead_letter(request.get_ref()).await
        })
        .await
    }

    async fn discard_dead_letter(
        &self,
        request: Request<pb::DiscardDeadLetterRequest>,
    ) -> Result<Response<pb::WorkStatus>, Status> {
        let auth = presented(&request);
        self.call("discard_dead_letter", async {
            self.api.authenticate_admin(auth.authorization())?;
            self.api.discard_dead_letter(request.get_ref()).await
        })
        .await
    }
}

#[tonic::async_trait]
impl WebhookEndpoints for PaymentsGrpc {
    async fn create_endpoint(
        &self,
        request: Request<pb::CreateEndpointRequest>,
    ) -> Result<Response<pb::WebhookEndpoint>, Status> {
        let auth = presented(&request);
        self.call("create_endpoint", async {
            let caller = self.api.caller(&auth).await?;
            self.api.create_endpoint(&caller, request.get_ref()).await
        })
        .await
    }

    async fn list_endpoints(
        &self,
        request: Request<pb::ListEndpointsRequest>,
    ) -> Result<Response<pb::ListEndpointsResponse>, Status> {
        let auth = presented(&request);
        self.call("list_endpoints", async {
            let caller = self.api.caller(&auth).await?;
            self.api.list_endpoints(&caller, request.get_ref()).await
        })
        .await
    }

    async fn rotate_secret(
        &self,
        request: Request<pb::RotateSecretRequest>,
    ) -> Result<Response<pb::WebhookEndpoint>, Status> {
        let auth = presented(&request);
        self.call("rotate_secret", async {
            let caller = self.api.caller(&auth).await?;
            self.api.rotate_secret(&caller, request.get_ref()).await
        })
        .await
    }

    async fn delete_endpoint(
        &self,
        request: Request<pb::DeleteEndpointRequest>,
    ) -> Result<Response<pb::ListEndpointsResponse>, Status> {
        let auth = presented(&request);
        self.call("delete_endpoint", async {
            let caller = self.api.caller(&auth).await?;
            self.api.delete_endpoint(&caller, request.get_ref()).await
        })
        .await
    }

    async fn list_deliveries(
        &self,
        request: Request<pb::ListDeliveriesRequest>,
    ) -> Result<Response<pb::ListDeliveriesResponse>, Status> {
        let auth = presented(&request);
        self.call("list_deliveries", async {
            let caller = self.api.caller(&auth).await?;
            self.api.list_deliveries(&caller, request.get_ref()).await
        })
        .await
    }

    async fn redeliver(
        &self,
        request: Request<pb::RedeliverRequest>,
    ) -> Result<Response<pb::WebhookDelivery>, Status> {
        let auth = presented(&request);
        self.call("redeliver", async {
            let caller = self.api.caller(&auth).await?;
            self.api.redeliver(&caller, request.get_ref()).await
        })
        .await
    }
}
