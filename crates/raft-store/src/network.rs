//! Raft RPCs over tonic: the client side openraft drives (`RaftNetworkFactory`) and the server
//! side that feeds requests into the local `Raft`. Payloads are openraft values in Tally's
//! versioned encoding (`codec`: a format-version byte, then postcard) inside
//! `tally.raft.v1.RaftMessage`; a message of another format version is refused with code
//! `format_unsupported`, naming both versions.

use crate::codec::{decode, encode, version_of, DecodeError, FORMAT_VERSION};
use crate::types::{NodeId, NodeInfo, Raft, TypeConfig};
use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError, Timeout,
    Unreachable,
};
use openraft::network::{Backoff, RPCOption, RPCTypes, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::{de::DeserializeOwned, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;
use tally_proto::convert::status_with_code;
use tally_proto::dial::Dialer;
use tally_proto::raft::raft_client::RaftClient;
use tally_proto::raft::raft_server;
use tally_proto::raft::RaftMessage;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Response, Status};

/// Largest Raft message either side sends or accepts. A full batch of 8,190 commands with maximal
/// metadata is about 40 MiB; larger append-entries are split (`PayloadTooLarge`).
pub const RAFT_MESSAGE_BYTES_MAX: usize = 64 * 1024 * 1024;
const CONNECT_TIMEOUT_MS: u64 = 1_000;
/// HTTP/2 pings on every peer connection, and how long an answer may take before the
/// connection counts as dead (found by the simulation: a silently broken link otherwise stalls a
/// follower for good).
const KEEPALIVE_INTERVAL_MS: u64 = 1_000;
const KEEPALIVE_TIMEOUT_MS: u64 = 2_000;
/// Backoff after `Unreachable`: doubling from 50 ms to at most 2 s.
const BACKOFF_MS_MIN: u64 = 50;
const BACKOFF_MS_MAX: u64 = 2_000;

/// One HTTP/2 channel per peer, shared by every client openraft asks for. openraft 0.9 asks for
/// a new client per replication stream and for every linearizable read round (one per read
/// batch, to each follower); a channel per client would open a TCP connection per read.
#[derive(Clone)]
pub struct Network {
    self_id: NodeId,
    /// How peer connections are made: OS TCP unless a simulation supplies its sockets.
    dialer: Option<Dialer>,
    /// The channel to each peer, with the address it was made for (a peer that moved gets a
    /// new one). A tonic channel reconnects by itself after its connection fails.
    peers: BTreeMap<NodeId, (String, PeerClient)>,
}

/// `Err` when the peer's address is not a valid URI: every call is then unreachable.
type PeerClient = Result<RaftClient<Channel>, String>;

impl Network {
    /// `dialer`: `None` for OS TCP.
    pub fn new(self_id: NodeId, dialer: Option<Dialer>) -> Self {
        Network {
            self_id,
            dialer,
            peers: BTreeMap::new(),
        }
    }

    fn connect(&self, node: &NodeInfo) -> PeerClient {
        Endpoint::from_shared(format!("http://{}", node.raft_addr))
            .map(|endpoint| {
                let endpoint = endpoint
                    .connect_timeout(Duration::from_millis(CONNECT_TIMEOUT_MS))
                    .tcp_nodelay(true)
                    // A connection whose packets vanish (a dropped NAT entry, a silently lost
                    // link) fails no call by itself: every RPC just times out on it. Pings find
                    // it dead, so the channel reconnects.
                    .http2_keep_alive_interval(Duration::from_millis(KEEPALIVE_INTERVAL_MS))
                    .keep_alive_timeout(Duration::from_millis(KEEPALIVE_TIMEOUT_MS))
                    .keep_alive_while_idle(true);
                let channel = match &self.dialer {
                    Some(dialer) => tally_proto::dial::channel(dialer, endpoint),
                    None => endpoint.connect_lazy(),
                };
                RaftClient::new(channel)
                    .max_decoding_message_size(RAFT_MESSAGE_BYTES_MAX)
                    .max_encoding_message_size(RAFT_MESSAGE_BYTES_MAX)
            })
            .map_err(|e| e.to_string())
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: NodeId, node: &NodeInfo) -> PeerConnection {
        let client = match self.peers.get(&target) {
            Some((addr, client)) if *addr == node.raft_addr => client.clone(),
            _ => {
                let client = self.connect(node);
                self.peers
                    .insert(target, (node.raft_addr.clone(), client.clone()));
                client
            }
        };
        PeerConnection {
            self_id: self.self_id,
            target,
            addr: node.raft_addr.clone(),
            client,
        }
    }
}

pub struct PeerConnection {
    self_id: NodeId,
    target: NodeId,
    addr: String,
    client: PeerClient,
}

#[derive(Debug, thiserror::Error)]
#[error("peer {addr}: {reason}")]
struct PeerError {
    addr: String,
    reason: String,
}

type RpcResult<T, E = openraft::error::Infallible> =
    Result<T, RPCError<NodeId, NodeInfo, RaftError<NodeId, E>>>;

impl PeerConnection {
    async fn call<Req, Resp, E>(
        &mut self,
        action: RPCTypes,
        request: &Req,
        option: &RPCOption,
    ) -> RpcResult<Resp, E>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let peer_error = |reason: String| PeerError {
            addr: self.addr.clone(),
            reason,
        };
        let mut client = match &self.client {
            Ok(client) => client.clone(),
            Err(reason) => {
                return Err(RPCError::Unreachable(Unreachable::new(&peer_error(
                    reason.clone(),
                ))))
            }
        };
        let message = RaftMessage {
            payload: encode(request),
        };
        let timeout = option.hard_ttl();
        let call = async {
            match action {
                RPCTypes::AppendEntries => client.append_entries(message).await,
                RPCTypes::Vote => client.vote(message).await,
                RPCTypes::InstallSnapshot => client.install_snapshot(message).await,
            }
        };
        let response = match tokio::time::timeout(timeout, call).await {
            Err(_elapsed) => {
                return Err(RPCError::Timeout(Timeout {
                    action,
                    id: self.self_id,
                    target: self.target,
                    timeout,
                }))
            }
            Ok(Err(status)) => {
                let error = peer_error(format!("{}: {}", status.code(), status.message()));
                return Err(match status.code() {
                    // Refused connections and dropped peers: openraft backs off (see `backoff`).
                    Code::Unavailable | Code::Unknown => {
                        RPCError::Unreachable(Unreachable::new(&error))
                    }
                    _ => RPCError::Network(NetworkError::new(&error)),
                });
            }
            Ok(Ok(response)) => response.into_inner(),
        };
        let result: Result<Resp, RaftError<NodeId, E>> =
            decode(&response.payload).map_err(|e| {
                RPCError::Network(NetworkError::new(&peer_error(format!(
                    "undecodable reply: {e}"
                ))))
            })?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for PeerConnection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>> {
        let size = encode(&rpc).len();
        if size > RAFT_MESSAGE_BYTES_MAX && rpc.entries.len() > 1 {
            // Ask openraft to resend fewer entries: scale down with some headroom.
            let entries = rpc.entries.len() as u64;
            let hint = (entries * RAFT_MESSAGE_BYTES_MAX as u64 / size as u64 / 2).max(1);
            return Err(RPCError::PayloadTooLarge(
                PayloadTooLarge::new_entries_hint(hint),
            ));
        }
        self.call(RPCTypes::AppendEntries, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        self.call(RPCTypes::InstallSnapshot, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>> {
        self.call(RPCTypes::Vote, &rpc, &option).await
    }

    fn backoff(&self) -> Backoff {
        Backoff::new(
            std::iter::successors(Some(BACKOFF_MS_MIN), |ms| {
                Some((ms * 2).min(BACKOFF_MS_MAX))
            })
            .map(Duration::from_millis),
        )
    }
}

/// The server side: decodes a peer's request and hands it to the local Raft.
pub struct RaftRpcServer {
    raft: Raft,
}

impl RaftRpcServer {
    pub fn new(raft: Raft) -> Self {
        RaftRpcServer { raft }
    }

    pub fn into_service(self) -> raft_server::RaftServer<Self> {
        raft_server::RaftServer::new(self)
            .max_decoding_message_size(RAFT_MESSAGE_BYTES_MAX)
            .max_encoding_message_size(RAFT_MESSAGE_BYTES_MAX)
    }
}

fn decode_request<T: DeserializeOwned>(request: Request<RaftMessage>) -> Result<T, Status> {
    decode(&request.into_inner().payload).map_err(|e| match e {
        DecodeError::UnknownVersion { .. } => format_unsupported("raft message", &e),
        _ => Status::invalid_argument(format!("undecodable raft message: {e}")),
    })
}

/// `INVALID_ARGUMENT` with code `format_unsupported`: the peer runs a release whose format this
/// node does not read. Not `UNAVAILABLE`, so the sender logs it instead of treating the peer as
/// down.
fn format_unsupported(what: &str, error: &DecodeError) -> Status {
    status_with_code(
        Code::InvalidArgument,
        "format_unsupported",
        format!("{what} refused: {error}"),
    )
}

fn reply<T: Serialize>(value: &T) -> Result<Response<RaftMessage>, Status> {
    Ok(Response::new(RaftMessage {
        payload: encode(value),
    }))
}

#[tonic::async_trait]
impl raft_server::Raft for RaftRpcServer {
    async fn append_entries(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let rpc: AppendEntriesRequest<TypeConfig> = decode_request(request)?;
        reply(&self.raft.append_entries(rpc).await)
    }

    async fn vote(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let rpc: VoteRequest<NodeId> = decode_request(request)?;
        reply(&self.raft.vote(rpc).await)
    }

    async fn install_snapshot(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let rpc: InstallSnapshotRequest<TypeConfig> = decode_request(request)?;
        // The snapshot payload is encoded by the sender's build: its first byte is its format
        // version, checked before any of it is stored.
        if rpc.offset == 0 {
            if let Some(found) = version_of(&rpc.data).filter(|v| *v != FORMAT_VERSION) {
                let error = DecodeError::UnknownVersion { found };
                return Err(format_unsupported("snapshot", &error));
            }
        }
        reply(&self.raft.install_snapshot(rpc).await)
    }
}
