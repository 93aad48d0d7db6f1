//! `tally webhooks`: a merchant's webhook endpoints and the deliveries of its payment events,
//! through the gateway (the merchant's API key, or the operator token with --merchant).

use crate::output::{print_record, print_rows};
use crate::payments::{acting_credential, authed, channel, refused, GatewayArgs};
use anyhow::Result;
use clap::Subcommand;
use tally_ledger::payment::WebhookSecret;
use tally_proto::payments as pb;
use tally_proto::payments::webhook_endpoints_client::WebhookEndpointsClient;

/// `--secret`, masked from `Debug` the moment it is parsed.
fn webhook_secret(value: &str) -> Result<WebhookSecret, std::convert::Infallible> {
    Ok(WebhookSecret(value.to_string()))
}

#[derive(Subcommand, Debug)]
pub enum WebhookCommand {
    /// List the endpoints.
    Endpoints {
        #[arg(long)]
        merchant: Option<String>,
    },
    /// Register an endpoint; its signing secret is printed once (generated unless --secret).
    AddEndpoint {
        #[arg(long)]
        merchant: Option<String>,
        #[arg(long)]
        id: String,
        #[arg(long)]
        url: String,
        /// Only these event types (repeatable), e.g. payment_order.succeeded; default: all.
        #[arg(long = "event-type")]
        event_types: Vec<String>,
        #[arg(long, value_parser = webhook_secret)]
        secret: Option<WebhookSecret>,
    },
    /// Sign with a new secret; --keep-previous keeps the old one signing during the switch.
    RotateSecret {
        #[arg(long)]
        merchant: Option<String>,
        id: String,
        #[arg(long, value_parser = webhook_secret)]
        secret: Option<WebhookSecret>,
        #[arg(long)]
        keep_previous: bool,
    },
    RemoveEndpoint {
        #[arg(long)]
        merchant: Option<String>,
        id: String,
    },
    /// Deliveries, newest first, with every attempt (time, HTTP status, latency, answer).
    Attempts {
        #[arg(long)]
        merchant: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[arg(long)]
        page_token: Option<String>,
    },
    /// Send an event to an endpoint again.
    Redeliver {
        #[arg(long)]
        merchant: Option<String>,
        event_id: String,
        #[arg(long)]
        endpoint: String,
    },
}

fn endpoint_rows(json: bool, endpoints: &[pb::WebhookEndpoint]) {
    let rows = endpoints
        .iter()
        .map(|e| {
            vec![
                e.endpoint_id.clone(),
                e.url.clone(),
                if e.event_types.is_empty() {
                    "*".to_string()
                } else {
                    e.event_types.join(",")
                },
                e.active_secrets.to_string(),
            ]
        })
        .collect();
    print_rows(
        json,
        &["endpoint_id", "url", "event_types", "active_secrets"],
        rows,
    );
}

fn endpoint_record(json: bool, endpoint: pb::WebhookEndpoint) {
    print_record(
        json,
        vec![
            ("endpoint_id", endpoint.endpoint_id),
            ("url", endpoint.url),
            ("active_secrets", endpoint.active_secrets.to_string()),
            ("secret (shown once)", endpoint.secret),
        ],
    );
}

pub async fn webhooks(json: bool, args: &GatewayArgs, command: WebhookCommand) -> Result<()> {
    let mut client = WebhookEndpointsClient::new(channel(args).await?);
    let named = match &command {
        WebhookCommand::Endpoints { merchant }
        | WebhookCommand::AddEndpoint { merchant, .. }
        | WebhookCommand::RotateSecret { merchant, .. }
        | WebhookCommand::RemoveEndpoint { merchant, .. }
        | WebhookCommand::Attempts { merchant, .. }
        | WebhookCommand::Redeliver { merchant, .. } => merchant.is_some(),
    };
    let (token, what) = acting_credential(args, named);
    match command {
        WebhookCommand::Endpoints { merchant } => {
            let listed = client
                .list_endpoints(authed(
                    pb::ListEndpointsRequest {
                        merchant_id: merchant.unwrap_or_default(),
                    },
                    token,
                    what,
                )?)
                .await
                .map_err(refused)?
                .into_inner();
            endpoint_rows(json, &listed.endpoints);
        }
        WebhookCommand::AddEndpoint {
            merchant,
            id,
            url,
            event_types,
            secret,
        } => {
            let endpoint = client
                .create_endpoint(authed(
                    pb::CreateEndpointRequest {
                        merchant_id: merchant.unwrap_or_default(),
                        endpoint_id: id,
                        url,
                        event_types,
                        secret: secret.map(|secret| secret.0).unwrap_or_default(),
                    },
                    token,
                    what,
                )?)
                .await
                .map_err(refused)?
                .into_inner();
            endpoint_record(json, endpoint);
        }
        WebhookCommand::RotateSecret {
            merchant,
            id,
            secret,
            keep_previous,
        } => {
            let endpoint = client
                .rotate_secret(authed(
                    pb::RotateSecretRequest {
                        merchant_id: merchant.unwrap_or_default(),
                        endpoint_id: id,
                        secret: secret.map(|secret| secret.0).unwrap_or_default(),
                        keep_previous,
                    },
                    token,
                    what,
                )?)
                .await
                .map_err(refused)?
                .into_inner();
            endpoint_record(json, endpoint);
        }
        WebhookCommand::RemoveEndpoint { merchant, id } => {
            let listed = client
                .delete_endpoint(authed(
                    pb::DeleteEndpointRequest {
                        merchant_id: merchant.unwrap_or_default(),
                        endpoint_id: id,
                    },
                    token,
                    what,
                )?)
                .await
                .map_err(refused)?
                .into_inner();
            endpoint_rows(json, &listed.endpoints);
        }
        WebhookCommand::Attempts {
            merchant,
            limit,
            page_token,
        } => {
            let page = client
                .list_deliveries(authed(
                    pb::ListDeliveriesRequest {
                        merchant_id: merchant.unwrap_or_default(),
                        page_size: limit,
                        page_token: page_token.unwrap_or_default(),
                    },
                    token,
                    what,
                )?)
                .await
                .map_err(refused)?
                .into_inner();
            let mut rows = Vec::new();
            for delivery in &page.deliveries {
                let state = if delivery.dead_lettered {
                    "dead_lettered".to_string()
                } else {
                    delivery.state.clone()
                };
                let attempts = delivery
                    .attempts
                    .iter()
                    .map(|a| format!("#{} {} {}ms", a.attempt, a.status, a.latency_ms))
                    .collect::<Vec<_>>()
                    .join("; ");
                rows.push(vec![
                    delivery.event_id.clone(),
                    delivery.endpoint_id.clone(),
                    delivery.event_type.clone(),
                    delivery.order_id.clone(),
                    state,
                    attempts,
                ]);
            }
            print_rows(
                json,
                &["event_id", "endpoint", "type", "order", "state", "attempts"],
                rows,
            );
            if !page.next_page_token.is_empty() && !json {
                eprintln!("more: --page-token {}", page.next_page_token);
            }
        }
        WebhookCommand::Redeliver {
            merchant,
            event_id,
            endpoint,
        } => {
            let delivery = client
                .redeliver(authed(
                    pb::RedeliverRequest {
                        merchant_id: merchant.unwrap_or_default(),
                        event_id,
                        endpoint_id: endpoint,
                    },
                    token,
                    what,
                )?)
                .await
                .map_err(refused)?
                .into_inner();
            print_record(
                json,
                vec![
                    ("event_id", delivery.event_id),
                    ("endpoint_id", delivery.endpoint_id),
                    ("state", delivery.state),
                ],
            );
        }
    }
    Ok(())
}
