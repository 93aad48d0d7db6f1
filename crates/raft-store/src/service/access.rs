//! Who may call which of a node's services, by the role in the caller's client certificate
//! (`tally_net::tls::Peer`, put on every request by `tally_net::serve`):
//!
//! | service                         | roles                     |
//! |---------------------------------|---------------------------|
//! | `tally.raft.v1.Raft`            | node                      |
//! | `tally.ledger.v1.Ledger`        | client, gateway, operator |
//! | `tally.payments.v1.PaymentsLedger` (the payments door) | gateway |
//! | `tally.admin.v1.Admin`          | operator                  |
//!
//! A request without a peer is refused: the check fails closed.

use tally_net::tls::{authorize, Role};
use tonic::{Request, Status};

pub const RAFT: &[Role] = &[Role::Node];
pub const LEDGER: &[Role] = &[Role::Client, Role::Gateway, Role::Operator];
pub const PAYMENTS_DOOR: &[Role] = &[Role::Gateway];
pub const ADMIN: &[Role] = &[Role::Operator];

/// A tonic interceptor that lets through only callers holding one of `roles`.
#[derive(Clone, Copy, Debug)]
pub struct Allow {
    pub service: &'static str,
    pub roles: &'static [Role],
}

impl tonic::service::Interceptor for Allow {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        match authorize(request.extensions().get(), self.service, self.roles) {
            Ok(()) => Ok(request),
            Err(refusal) => {
                tracing::info!(service = self.service, %refusal, "call refused");
                Err(Status::permission_denied(refusal.to_string()))
            }
        }
    }
}
