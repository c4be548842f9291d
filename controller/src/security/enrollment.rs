//! `switchyard.v1.Enrollment`: an agent trades a join token and a CSR for a node
//! certificate bound to its node name. Served over TLS without a client certificate; every
//! refusal is one line, logged here and returned to the agent.

use std::sync::Arc;

use switchyard_pki::JoinToken;
use switchyard_pki::ca::check_node_name;
use switchyard_pki::token::now_unix;
use switchyard_proto::errors::ErrorClass;
use switchyard_proto::v1::enrollment_server::Enrollment;
use switchyard_proto::v1::{JoinRequest, JoinResponse, RenewRequest};
use tonic::{Request, Response, Status};
use tracing::{info, warn};

use super::{Caller, Security};

/// The enrollment service.
#[derive(Debug, Clone)]
pub struct EnrollmentService {
    security: Arc<Security>,
}

impl EnrollmentService {
    /// Enrollment under `security` (which holds the CA and the tokens).
    pub fn new(security: Arc<Security>) -> Self {
        EnrollmentService { security }
    }

    #[allow(clippy::result_large_err)]
    fn join(&self, req: &JoinRequest) -> Result<(JoinResponse, String), Status> {
        let Some(m) = self.security.mtls() else {
            return Err(ErrorClass::FailedPrecondition.status(
                "this controller runs with --insecure: there is nothing to join, start the agent with --insecure",
            ));
        };
        let unauthenticated =
            |e: switchyard_pki::PkiError| ErrorClass::Unauthenticated.status(e.to_string());
        let token = JoinToken::parse(&req.token).map_err(unauthenticated)?;
        check_node_name(&req.node_name)
            .map_err(|e| ErrorClass::InvalidArgument.status(e.to_string()))?;
        // Counted only for a join that can succeed: a bad name does not use the token up.
        m.tokens
            .redeem(&token, &m.ca.fingerprint(), now_unix())
            .map_err(unauthenticated)?;
        Ok((issue(m, &req.csr_pem, &req.node_name)?, token.id))
    }

    /// Signs `csr` for the node whose certificate made the call.
    #[allow(clippy::result_large_err)]
    fn renew(&self, caller: Caller, csr: &str) -> Result<(JoinResponse, String), Status> {
        let Some(m) = self.security.mtls() else {
            return Err(ErrorClass::FailedPrecondition
                .status("this controller runs with --insecure: there is nothing to renew"));
        };
        let id = match caller {
            Caller::Certified(id) if id.role == switchyard_pki::Role::Node => id,
            _ => {
                return Err(ErrorClass::Unauthenticated.status(
                    "renewal needs the node's current certificate (a node that has none joins with a token)",
                ));
            }
        };
        Ok((issue(m, csr, &id.name)?, id.name))
    }
}

/// A node certificate for `name` from `csr`, with the CA: what Join and Renew answer.
#[allow(clippy::result_large_err)]
fn issue(m: &super::Mtls, csr: &str, name: &str) -> Result<JoinResponse, Status> {
    let certificate_pem =
        m.ca.sign_node(csr, name)
            .map_err(|e| ErrorClass::InvalidArgument.status(e.to_string()))?;
    Ok(JoinResponse {
        certificate_pem,
        ca_pem: m.ca.ca_pem().to_string(),
    })
}

#[tonic::async_trait]
impl Enrollment for EnrollmentService {
    async fn renew(
        &self,
        request: Request<RenewRequest>,
    ) -> Result<Response<JoinResponse>, Status> {
        let peer = request
            .remote_addr()
            .map_or_else(|| "?".to_string(), |a| a.to_string());
        // Verified chain, role and revocation: the same check as every control-path call.
        let caller = self.security.authorize(&request).inspect_err(|s| {
            warn!(%peer, "renewal refused: {}", s.message());
        })?;
        match EnrollmentService::renew(self, caller, &request.get_ref().csr_pem) {
            Ok((resp, node)) => {
                info!(%node, %peer, "node certificate renewed");
                Ok(Response::new(resp))
            }
            Err(status) => {
                warn!(%peer, "renewal refused: {}", status.message());
                Err(status)
            }
        }
    }

    async fn join(&self, request: Request<JoinRequest>) -> Result<Response<JoinResponse>, Status> {
        let peer = request
            .remote_addr()
            .map_or_else(|| "?".to_string(), |a| a.to_string());
        let req = request.into_inner();
        match EnrollmentService::join(self, &req) {
            Ok((resp, token_id)) => {
                info!(node = %req.node_name, %peer, token = %token_id, "node joined: certificate issued");
                Ok(Response::new(resp))
            }
            Err(status) => {
                warn!(node = %req.node_name, %peer, "join refused: {}", status.message());
                Err(status)
            }
        }
    }
}
