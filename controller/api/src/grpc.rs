//! The gRPC `switchyard.v1.Inference` service over [`Inference`]: the same validation as the
//! HTTP API (bad input → `InvalidArgument`), status codes from the one error table, and the
//! client's `grpc-timeout` honoured (capped by the configured request timeout).

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use switchyard_proto::errors::ErrorClass;
use switchyard_proto::v1::inference_server::{self, InferenceServer};
use switchyard_proto::v1::{
    AddDocumentsRequest, AddDocumentsResponse, ClassifyRequest, ClassifyResponse,
    DeleteDocumentRequest, DeleteDocumentResponse, DocumentStoreInfoRequest,
    DocumentStoreInfoResponse, EmbedRequest, EmbedResponse, GenerateChunk, GenerateRequest,
    GetDocumentRequest, GetDocumentResponse, ListDocumentsRequest, ListDocumentsResponse,
    PipelineRequest, PipelineResponse, SearchDocumentsRequest, SearchDocumentsResponse,
};
use tonic::{Request, Response, Status};

use crate::config::ApiConfig;
use crate::credentials::Scope;
use crate::inference::{ApiError, Inference};
use crate::validate;

/// The gRPC service implementation; mount it with [`grpc_service`].
#[derive(Clone)]
pub struct GrpcInference {
    inf: Arc<dyn Inference>,
    cfg: Arc<ApiConfig>,
    creds: Arc<crate::credentials::Credentials>,
}

/// The gRPC `Inference` service over `inf`, with the limits (and bearer tokens, checked in
/// the `authorization` metadata) of `cfg`. Add it to the controller's tonic server and run
/// [`report_readiness`] on its health reporter.
pub fn grpc_service(inf: Arc<dyn Inference>, cfg: &ApiConfig) -> InferenceServer<GrpcInference> {
    InferenceServer::new(GrpcInference {
        inf,
        cfg: Arc::new(cfg.clone()),
        creds: Arc::new(cfg.credentials()),
    })
}

/// Sets `switchyard.v1.Inference` SERVING or NOT_SERVING on the server's `grpc.health.v1`
/// reporter.
pub async fn set_serving(reporter: &tonic_health::server::HealthReporter, serving: bool) {
    if serving {
        reporter
            .set_serving::<InferenceServer<GrpcInference>>()
            .await;
    } else {
        reporter
            .set_not_serving::<InferenceServer<GrpcInference>>()
            .await;
    }
}

/// Keeps the `switchyard.v1.Inference` health status equal to [`Inference::ready`] (checked
/// every `tick`, level-triggered) until `shutdown` turns true: NOT_SERVING while no node is
/// ready, SERVING once one is. Health-checking load balancers then send traffic only to a
/// controller that can answer it.
pub async fn report_readiness(
    reporter: tonic_health::server::HealthReporter,
    inf: Arc<dyn Inference>,
    tick: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut interval = tokio::time::interval(tick);
    let mut reported = None;
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = shutdown.changed() => return,
        }
        let ready = inf.ready();
        if reported != Some(ready) {
            set_serving(&reporter, ready).await;
            reported = Some(ready);
        }
    }
}

/// Parses a `grpc-timeout` header value (1–8 digits and a unit among H M S m u n).
pub fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    if value.len() < 2 || value.len() > 9 {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.checked_mul(3600)?),
        "M" => Duration::from_secs(n.checked_mul(60)?),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

fn status(e: ApiError) -> Status {
    e.to_status()
}

/// The error of a request whose deadline passed.
fn deadline_status() -> Status {
    ErrorClass::DeadlineExceeded.status("the request ran past its deadline")
}

type ChunkStream = Pin<Box<dyn Stream<Item = Result<GenerateChunk, Status>> + Send>>;

impl GrpcInference {
    /// [`Self::admit_as`] for a call any token may make.
    fn admit<T>(&self, req: &Request<T>) -> Result<Instant, Status> {
        self.admit_as(req, Scope::Infer)
    }

    /// Checks the bearer token (its scope covering `needs`) and computes the deadline:
    /// min(`grpc-timeout`, configured).
    fn admit_as<T>(&self, req: &Request<T>, needs: Scope) -> Result<Instant, Status> {
        let presented = req
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(crate::http::bearer);
        if let Err(refusal) = self.creds.authorize(presented, needs) {
            tracing::info!(reason = %refusal, "gRPC Inference call refused");
            return Err(crate::http::auth::refused(&refusal).to_status());
        }
        let mut timeout = self.cfg.request_timeout();
        if let Some(v) = req.metadata().get("grpc-timeout") {
            let parsed = v
                .to_str()
                .ok()
                .and_then(parse_grpc_timeout)
                .ok_or_else(|| {
                    ErrorClass::InvalidArgument.status("malformed grpc-timeout metadata")
                })?;
            timeout = timeout.min(parsed);
        }
        Ok(Instant::now() + timeout)
    }

    /// Runs `fut` until `deadline`.
    async fn until<T>(
        deadline: Instant,
        fut: impl Future<Output = Result<T, ApiError>>,
    ) -> Result<T, Status> {
        match tokio::time::timeout_at(deadline.into(), fut).await {
            Ok(r) => r.map_err(status),
            Err(_) => Err(deadline_status()),
        }
    }
}

#[tonic::async_trait]
impl inference_server::Inference for GrpcInference {
    async fn embed(
        &self,
        request: Request<EmbedRequest>,
    ) -> Result<Response<EmbedResponse>, Status> {
        let deadline = self.admit(&request)?;
        let req = request.into_inner();
        validate::model(&req.model).map_err(status)?;
        validate::inputs(&req.inputs, "inputs", &self.cfg).map_err(status)?;
        let resp = Self::until(deadline, self.inf.embed(req, deadline)).await?;
        Ok(Response::new(resp))
    }

    async fn classify(
        &self,
        request: Request<ClassifyRequest>,
    ) -> Result<Response<ClassifyResponse>, Status> {
        let deadline = self.admit(&request)?;
        let req = request.into_inner();
        validate::model(&req.model).map_err(status)?;
        validate::inputs(&req.inputs, "inputs", &self.cfg).map_err(status)?;
        let resp = Self::until(deadline, self.inf.classify(req, deadline)).await?;
        Ok(Response::new(resp))
    }

    type GenerateStream = ChunkStream;

    async fn generate(
        &self,
        request: Request<GenerateRequest>,
    ) -> Result<Response<Self::GenerateStream>, Status> {
        let deadline = self.admit(&request)?;
        let req = request.into_inner();
        validate::model(&req.model).map_err(status)?;
        validate::messages(&req.messages, &self.cfg).map_err(status)?;
        validate::sampling(&req.sampling.clone().unwrap_or_default(), &self.cfg).map_err(status)?;
        let inner = Self::until(deadline, self.inf.generate(req, deadline)).await?;
        // Ends with DeadlineExceeded when the deadline passes mid-stream.
        let stream = futures::stream::unfold(Some(inner), move |state| async move {
            let mut inner = state?;
            match tokio::time::timeout_at(deadline.into(), inner.next()).await {
                Ok(Some(Ok(c))) => Some((Ok(c), Some(inner))),
                Ok(Some(Err(e))) => Some((Err(status(e)), None)),
                Ok(None) => None,
                Err(_) => Some((Err(deadline_status()), None)),
            }
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn run_pipeline(
        &self,
        request: Request<PipelineRequest>,
    ) -> Result<Response<PipelineResponse>, Status> {
        let deadline = self.admit(&request)?;
        let req = request.into_inner();
        validate::prompt(&req.prompt, &self.cfg).map_err(status)?;
        validate::top_k(req.top_k, &self.cfg).map_err(status)?;
        validate::collection(&req.collection).map_err(status)?;
        validate::min_score(req.min_score).map_err(status)?;
        validate::sampling(&req.sampling.clone().unwrap_or_default(), &self.cfg).map_err(status)?;
        let resp = Self::until(deadline, self.inf.run_pipeline(req, deadline)).await?;
        Ok(Response::new(resp))
    }

    async fn add_documents(
        &self,
        request: Request<AddDocumentsRequest>,
    ) -> Result<Response<AddDocumentsResponse>, Status> {
        let deadline = self.admit_as(&request, Scope::Admin)?;
        let req = request.into_inner();
        let texts: Vec<&str> = req
            .documents
            .iter()
            .map(String::as_str)
            .chain(req.items.iter().map(|d| d.text.as_str()))
            .collect();
        validate::documents(&texts, &self.cfg).map_err(status)?;
        validate::collection(&req.collection).map_err(status)?;
        let resp = Self::until(deadline, self.inf.add_documents(req, deadline)).await?;
        Ok(Response::new(resp))
    }

    async fn list_documents(
        &self,
        request: Request<ListDocumentsRequest>,
    ) -> Result<Response<ListDocumentsResponse>, Status> {
        self.admit(&request)?;
        let req = request.into_inner();
        validate::collection(&req.collection).map_err(status)?;
        Ok(Response::new(
            self.inf.list_documents(req).await.map_err(status)?,
        ))
    }

    async fn get_document(
        &self,
        request: Request<GetDocumentRequest>,
    ) -> Result<Response<GetDocumentResponse>, Status> {
        self.admit(&request)?;
        let id = request.into_inner().id;
        Ok(Response::new(
            self.inf.get_document(id).await.map_err(status)?,
        ))
    }

    async fn delete_document(
        &self,
        request: Request<DeleteDocumentRequest>,
    ) -> Result<Response<DeleteDocumentResponse>, Status> {
        self.admit_as(&request, Scope::Admin)?;
        let req = request.into_inner();
        validate::collection(&req.collection).map_err(status)?;
        if (req.id == 0) == req.collection.is_empty() {
            return Err(ErrorClass::InvalidArgument
                .status("give either a document id or a collection (to delete all of it)"));
        }
        Ok(Response::new(
            self.inf.delete_document(req).await.map_err(status)?,
        ))
    }

    async fn search_documents(
        &self,
        request: Request<SearchDocumentsRequest>,
    ) -> Result<Response<SearchDocumentsResponse>, Status> {
        let deadline = self.admit(&request)?;
        let req = request.into_inner();
        validate::search(&req.query, req.k, &req.collection, req.min_score, &self.cfg)
            .map_err(status)?;
        let resp = Self::until(deadline, self.inf.search_documents(req, deadline)).await?;
        Ok(Response::new(resp))
    }

    async fn document_store_info(
        &self,
        request: Request<DocumentStoreInfoRequest>,
    ) -> Result<Response<DocumentStoreInfoResponse>, Status> {
        self.admit(&request)?;
        Ok(Response::new(
            self.inf.document_store_info().await.map_err(status)?,
        ))
    }
}

#[cfg(test)]
mod tests;
