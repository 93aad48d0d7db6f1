//! `tally.admin.v1.Admin` on a node: cluster status, bootstrap, membership, snapshots, backups.

use super::status_of;
use crate::kv::Kv;
use crate::ledger_state::KvLedger;
use crate::snapshot::{install_in_progress, read_applied};
use crate::types::{NodeId, NodeInfo, Raft};
use crate::write_error::ServeError;
use openraft::error::{ClientWriteError, RaftError};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tally_ledger::LedgerRead;
use tally_proto::admin::admin_server::{Admin, AdminServer};
use tally_proto::admin::{self as pb};
use tonic::{Request, Response, Status};

/// How long `TriggerSnapshot` waits for the snapshot it asked for.
const SNAPSHOT_WAIT_MS_MAX: u64 = 30_000;

pub struct AdminService<K: Kv> {
    id: NodeId,
    raft: Raft,
    kv: Arc<K>,
    apply_faults: Arc<AtomicU64>,
    /// The only directory backups may be written under.
    backup_root: Option<PathBuf>,
}

impl<K: Kv> AdminService<K> {
    pub fn new(
        id: NodeId,
        raft: Raft,
        kv: Arc<K>,
        apply_faults: Arc<AtomicU64>,
        backup_root: Option<PathBuf>,
    ) -> Self {
        AdminService {
            id,
            raft,
            kv,
            apply_faults,
            backup_root,
        }
    }

    pub fn into_service(self) -> AdminServer<Self> {
        AdminServer::new(self)
            .max_decoding_message_size(tally_proto::MESSAGE_BYTES_MAX)
            .max_encoding_message_size(tally_proto::MESSAGE_BYTES_MAX)
    }
}

/// Where a backup asked for as `requested` goes: a path relative to `root` (or an absolute one
/// inside it) without `..`. Nothing outside the root is ever written.
pub(crate) fn backup_target(root: Option<&Path>, requested: &str) -> Result<PathBuf, Status> {
    let Some(root) = root else {
        return Err(Status::failed_precondition(
            "this node takes no backups: start it with --backup-dir DIR, then name a directory under DIR",
        ));
    };
    if requested.is_empty() {
        return Err(Status::invalid_argument(
            "name a backup directory that does not exist yet",
        ));
    }
    let requested = Path::new(requested);
    let relative = if requested.is_absolute() {
        requested.strip_prefix(root).map_err(|_| {
            Status::permission_denied(format!(
                "{} is outside this node's backup directory {}: name a directory under it",
                requested.display(),
                root.display()
            ))
        })?
    } else {
        requested
    };
    let plain = relative
        .components()
        .all(|part| matches!(part, Component::Normal(_)));
    if !plain || relative.as_os_str().is_empty() {
        return Err(Status::permission_denied(format!(
            "{} is not a plain path under this node's backup directory {} (no `..`, no root): name a directory under it",
            requested.display(),
            root.display()
        )));
    }
    Ok(root.join(relative))
}

fn member_info(member: &pb::Member) -> Result<(NodeId, NodeInfo), Status> {
    if member.node_id == 0 {
        return Err(Status::invalid_argument(
            "node id 0 is reserved: use 1 or more",
        ));
    }
    if member.raft_addr.is_empty() || member.api_addr.is_empty() {
        return Err(Status::invalid_argument(format!(
            "member {} needs both a raft address and an API address (host:port)",
            member.node_id
        )));
    }
    Ok((
        member.node_id,
        NodeInfo {
            raft_addr: member.raft_addr.clone(),
            api_addr: member.api_addr.clone(),
        },
    ))
}

/// Refusals that retrying cannot fix (already initialized, unknown learner...) are final.
fn raft_status(error: impl std::fmt::Display) -> Status {
    Status::failed_precondition(error.to_string())
}

/// Membership changes run on the leader: a follower redirects like a write does.
fn membership_status(error: RaftError<NodeId, ClientWriteError<NodeId, NodeInfo>>) -> Status {
    match error {
        RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => {
            status_of(ServeError::from(error))
        }
        RaftError::APIError(refusal) => raft_status(refusal),
        RaftError::Fatal(fatal) => status_of(ServeError::Stopped(fatal.to_string())),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tonic::async_trait]
impl<K: Kv> Admin for AdminService<K> {
    async fn status(
        &self,
        _: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let metrics = self.raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let members = membership
            .nodes()
            .map(|(id, info)| pb::Member {
                node_id: *id,
                raft_addr: info.raft_addr.clone(),
                api_addr: info.api_addr.clone(),
                voter: voters.contains(id),
            })
            .collect();
        let leader_api_addr = metrics
            .current_leader
            .and_then(|leader| {
                membership
                    .get_node(&leader)
                    .map(|info| info.api_addr.clone())
            })
            .unwrap_or_default();
        let ledger = KvLedger::new(&*self.kv).meta();
        Ok(Response::new(pb::StatusResponse {
            node_id: self.id,
            state: format!("{:?}", metrics.state).to_lowercase(),
            leader_id: metrics.current_leader,
            leader_api_addr,
            term: metrics.current_term,
            last_log_index: metrics.last_log_index,
            last_applied_index: metrics.last_applied.map(|log_id| log_id.index),
            members,
            hash_chain_hex: hex(&ledger.hash_chain),
            last_timestamp_ns: ledger.last_timestamp_ns,
            apply_faults_total: self.apply_faults.load(Ordering::Relaxed),
        }))
    }

    async fn initialize(
        &self,
        request: Request<pb::InitializeRequest>,
    ) -> Result<Response<pb::InitializeResponse>, Status> {
        let members: BTreeMap<NodeId, NodeInfo> = request
            .into_inner()
            .members
            .iter()
            .map(member_info)
            .collect::<Result<_, _>>()?;
        if members.is_empty() {
            return Err(Status::invalid_argument("name at least one member"));
        }
        self.raft.initialize(members).await.map_err(raft_status)?;
        Ok(Response::new(pb::InitializeResponse {}))
    }

    async fn add_learner(
        &self,
        request: Request<pb::AddLearnerRequest>,
    ) -> Result<Response<pb::AddLearnerResponse>, Status> {
        let member = request
            .into_inner()
            .member
            .ok_or_else(|| Status::invalid_argument("name the member to add"))?;
        let (id, info) = member_info(&member)?;
        let response = self
            .raft
            .add_learner(id, info, true)
            .await
            .map_err(membership_status)?;
        Ok(Response::new(pb::AddLearnerResponse {
            log_index: Some(response.log_id.index),
        }))
    }

    async fn change_membership(
        &self,
        request: Request<pb::ChangeMembershipRequest>,
    ) -> Result<Response<pb::ChangeMembershipResponse>, Status> {
        let request = request.into_inner();
        let voters: BTreeSet<NodeId> = request.voters.into_iter().collect();
        if voters.is_empty() {
            return Err(Status::invalid_argument(
                "a cluster needs at least one voter",
            ));
        }
        let response = self
            .raft
            .change_membership(voters, request.retain)
            .await
            .map_err(membership_status)?;
        Ok(Response::new(pb::ChangeMembershipResponse {
            log_index: Some(response.log_id.index),
        }))
    }

    async fn trigger_snapshot(
        &self,
        _: Request<pb::Empty>,
    ) -> Result<Response<pb::SnapshotResponse>, Status> {
        let applied = self
            .raft
            .metrics()
            .borrow()
            .last_applied
            .map(|log_id| log_id.index);
        self.raft.trigger().snapshot().await.map_err(raft_status)?;
        let snapshot = self
            .raft
            .wait(Some(Duration::from_millis(SNAPSHOT_WAIT_MS_MAX)))
            .metrics(
                |m| m.snapshot.map(|log_id| log_id.index) >= applied,
                "snapshot covers what was applied",
            )
            .await
            .map_err(|e| Status::deadline_exceeded(format!("snapshot not built in time: {e}")))?
            .snapshot;
        Ok(Response::new(pb::SnapshotResponse {
            last_log_index: snapshot.map(|log_id| log_id.index),
        }))
    }

    async fn backup(
        &self,
        request: Request<pb::BackupRequest>,
    ) -> Result<Response<pb::BackupResponse>, Status> {
        let target = backup_target(self.backup_root.as_deref(), &request.into_inner().dir)?;
        let dir = target.display().to_string();
        let copy = self
            .kv
            .backup(&target)
            .map_err(|e| Status::failed_precondition(e.to_string()))?;
        // A copy taken mid-install holds a cleared state and a marker naming a snapshot file
        // that backups do not copy: it could never be started.
        if install_in_progress(copy.as_ref()).map_err(|e| Status::internal(e.to_string()))? {
            drop(copy);
            let _ = std::fs::remove_dir_all(&target);
            return Err(Status::unavailable(
                "a snapshot install is replacing this node's state; retry the backup in a moment",
            ));
        }
        let (applied, _) =
            read_applied(copy.as_ref()).map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(pb::BackupResponse {
            dir,
            last_applied_index: applied.map(|log_id| log_id.index),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::backup_target;
    use std::path::{Path, PathBuf};
    use tonic::Code;

    #[test]
    fn a_backup_goes_under_the_backup_directory_and_nowhere_else() {
        let root = Path::new("/var/backups/tally");
        assert_eq!(
            backup_target(Some(root), "nightly-1").unwrap(),
            PathBuf::from("/var/backups/tally/nightly-1")
        );
        assert_eq!(
            backup_target(Some(root), "/var/backups/tally/a/b").unwrap(),
            PathBuf::from("/var/backups/tally/a/b")
        );
        for outside in [
            "/etc/cron.d/x",
            "../x",
            "a/../../x",
            "/var/backups/tally/../x",
            "/var/backups/tally",
            "/var/backups/tallyx",
        ] {
            let refusal = backup_target(Some(root), outside).unwrap_err();
            assert_eq!(refusal.code(), Code::PermissionDenied, "{outside}");
        }
        assert_eq!(
            backup_target(Some(root), "").unwrap_err().code(),
            Code::InvalidArgument
        );
        assert_eq!(
            backup_target(None, "x").unwrap_err().code(),
            Code::FailedPrecondition
        );
    }
}
