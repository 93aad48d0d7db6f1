//! The one error a payments client sees, whatever the transport: a kind (mapped to a gRPC code
//! and an HTTP status), a stable snake_case code and a message that says what to fix.

use tally_ledger::payment::PaymentError;
use tally_proto::client::ClientError;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ErrorKind {
    InvalidArgument,
    Unauthenticated,
    PermissionDenied,
    NotFound,
    AlreadyExists,
    /// The request is valid but the payment's state does not allow it.
    FailedPrecondition,
    /// Someone else is working on it right now: retry later.
    Aborted,
    /// Rate limited: retry after `retry_after_ms`.
    ResourceExhausted,
    /// The cluster, the PSP or the risk service cannot answer now: retry later.
    Unavailable,
    /// A bug: the ledger caught a panic applying the request and applied nothing of it.
    Internal,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    pub kind: ErrorKind,
    pub code: String,
    pub message: String,
    pub retry_after_ms: Option<u64>,
}

impl ApiError {
    pub fn new(kind: ErrorKind, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            kind,
            code: code.to_string(),
            message: message.into(),
            retry_after_ms: None,
        }
    }

    pub fn invalid(code: &str, message: impl Into<String>) -> Self {
        ApiError::new(ErrorKind::InvalidArgument, code, message)
    }

    pub fn not_found(code: &str, message: impl Into<String>) -> Self {
        ApiError::new(ErrorKind::NotFound, code, message)
    }

    pub fn unauthenticated(code: &str, message: impl Into<String>) -> Self {
        ApiError::new(ErrorKind::Unauthenticated, code, message)
    }

    pub fn grpc_code(&self) -> tonic::Code {
        match self.kind {
            ErrorKind::InvalidArgument => tonic::Code::InvalidArgument,
            ErrorKind::Unauthenticated => tonic::Code::Unauthenticated,
            ErrorKind::PermissionDenied => tonic::Code::PermissionDenied,
            ErrorKind::NotFound => tonic::Code::NotFound,
            ErrorKind::AlreadyExists => tonic::Code::AlreadyExists,
            ErrorKind::FailedPrecondition => tonic::Code::FailedPrecondition,
            ErrorKind::Aborted => tonic::Code::Aborted,
            ErrorKind::ResourceExhausted => tonic::Code::ResourceExhausted,
            ErrorKind::Unavailable => tonic::Code::Unavailable,
            ErrorKind::Internal => tonic::Code::Internal,
        }
    }

    pub fn http_status(&self) -> u16 {
        match self.kind {
            ErrorKind::InvalidArgument => 400,
            ErrorKind::Unauthenticated => 401,
            ErrorKind::PermissionDenied => 403,
            ErrorKind::NotFound => 404,
            ErrorKind::AlreadyExists | ErrorKind::Aborted => 409,
            ErrorKind::FailedPrecondition => 422,
            ErrorKind::ResourceExhausted => 429,
            ErrorKind::Unavailable => 503,
            ErrorKind::Internal => 500,
        }
    }
}

/// A ledger refusal keeps its code; its kind follows from what went wrong.
impl From<PaymentError> for ApiError {
    fn from(error: PaymentError) -> Self {
        use PaymentError::*;
        let kind = match &error {
            MerchantNotFound { .. }
            | SellerNotFound { .. }
            | BuyerNotFound { .. }
            | PaymentNotFound { .. }
            | OrderNotFound { .. }
            | RefundNotFound { .. }
            | ApiKeyNotFound { .. }
            | WalletNotFound { .. }
            | PayoutNotFound { .. }
            | DeliveryNotFound { .. }
            | EndpointNotFound { .. }
            | ScheduleNotFound { .. } => ErrorKind::NotFound,
            MerchantExistsWithDifferentFields { .. }
            | BuyerExistsWithDifferentFields { .. }
            | CheckoutExistsWithDifferentRequest { .. }
            | OrderIdTaken { .. }
            | RefundExistsWithDifferentFields { .. }
            | ApiKeyExists { .. }
            | PayoutExistsWithDifferentFields { .. } => ErrorKind::AlreadyExists,
            CannotBeLinked
            | FeeBpsTooHigh { .. }
            | HoldPeriodTooLong { .. }
            | FieldTooLong { .. }
            | OrderCount { .. }
            | DuplicateOrderId { .. }
            | AmountMustNotBeZero { .. }
            | LeaseOutOfRange { .. }
            | WalletPaymentsCaptureAutomatically
            | ReturnUrlInvalid
            | DiscardReasonInvalid
            | EndpointInvalid { .. }
            | PayoutIdReserved { .. } => ErrorKind::InvalidArgument,
            LeaseHeld { .. } | PayoutNotClaimable { .. } | DeliveryNotClaimable { .. } => {
                ErrorKind::Aborted
            }
            MerchantDisabled { .. }
            | SellerDisabled { .. }
            | BuyerDisabled { .. }
            | AlreadyConfirmed { .. }
            | NotConfirmed { .. }
            | NotClaimable { .. }
            | InvalidTransition { .. }
            | AmountTooLarge { .. }
            | RefundExceedsCaptured { .. }
            | TooManyRefunds { .. }
            | InsufficientSellerFunds { .. }
            | TooManyApiKeys { .. }
            | ApiKeyRevoked { .. }
            | TransferRefused { .. }
            | PayoutExceedsAvailable { .. }
            | PayoutInvalidTransition { .. }
            | PaymentInvalidTransition { .. }
            | NotDeadLettered { .. } => ErrorKind::FailedPrecondition,
            Internal => ErrorKind::Internal,
        };
        ApiError::new(kind, error.code(), error.to_string())
    }
}

impl From<ClientError> for ApiError {
    fn from(error: ClientError) -> Self {
        ApiError::new(
            ErrorKind::Unavailable,
            "ledger_unavailable",
            format!("the ledger cluster did not answer ({error}); retry the same request"),
        )
    }
}

impl From<ApiError> for tonic::Status {
    fn from(error: ApiError) -> Self {
        let mut status = tally_proto::convert::status_with_code(
            error.grpc_code(),
            &error.code,
            error.message.clone(),
        );
        if let Some(retry_after_ms) = error.retry_after_ms {
            if let Ok(value) = retry_after_ms.to_string().parse() {
                status.metadata_mut().insert(RETRY_AFTER_MS_METADATA, value);
            }
        }
        status
    }
}

/// Metadata (gRPC) carrying how long a rate-limited client should wait.
pub const RETRY_AFTER_MS_METADATA: &str = "retry-after-ms";
