//! The data path: classify → [embed + retrieve] → generate. Each stage is placed by the
//! [`Placer`] and run on its agent through the one retry loop ([`crate::dispatch::run`]),
//! with per-stage adaptive timeouts, retries on another device, circuit breakers and tier
//! fallback. Every answer carries its trace.

mod batch;
mod documents;
mod fitted;
mod generate;
mod prompt;
mod retrieval;
mod routes;
mod service;
mod tier_cache;

use std::sync::Arc;
use std::time::Instant;

use switchyard_api::{ApiError, GenerateStream};
use switchyard_backend_core::{ModelRegistry, StageKind};
use switchyard_proto::errors::ErrorClass;
use switchyard_proto::v1::{
    ChatMessage, EngineOptions, GenerateChunk, RunStageResponse, SamplingParams, StageExplanation,
    StageTrace,
};
use switchyard_scheduler::RetryPolicy;
use switchyard_scheduler::tiers::{Tier, TierRoutes};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tracing::warn;

pub use fitted::{FittedRouter, Slots, check_install};
pub use retrieval::Documents;
pub use routes::{RouteError, validate_routes};
pub use service::PipelineService;

use self::batch::BatchAttempt;
use self::generate::GenerateAttempt;
use crate::cluster::ClusterState;
use crate::config::Routes;
use crate::dispatch::{self, AgentPool};
use crate::placement::Placer;
use crate::residency::KeepAlives;
use crate::tier_router::{RouterError, RouterHead};

/// The controller's pipeline; [`PipelineService`] exposes it as the client-facing
/// [`switchyard_api::Inference`].
pub struct Pipeline {
    placer: Arc<Placer>,
    pool: AgentPool,
    retry: RetryPolicy,
    routes: Routes,
    tiers: TierRoutes,
    documents: Documents,
    keep_alives: Arc<KeepAlives>,
    fitted: Arc<FittedRouter>,
    tier_cache: tier_cache::TierCache,
    recent: Arc<switchyard_api::console::RecentRequests>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("routes", &self.routes)
            .finish()
    }
}

impl Pipeline {
    /// A pipeline placing on `placer`'s cluster, with the models' keep-alives (shared with
    /// the residency loop), retrieving from `documents`. Fails when the routes name unknown
    /// models.
    pub fn new(
        placer: Arc<Placer>,
        routes: Routes,
        retry: RetryPolicy,
        keep_alives: Arc<KeepAlives>,
        documents: Documents,
    ) -> Result<Self, RouteError> {
        let tiers = validate_routes(&routes, &placer.models())?;
        Ok(Pipeline {
            placer,
            pool: AgentPool::default(),
            retry,
            routes,
            tiers,
            documents,
            keep_alives,
            fitted: Arc::new(FittedRouter::in_memory()),
            tier_cache: tier_cache::TierCache::default(),
            recent: Arc::default(),
        })
    }

    /// Classifies with the fitted router kept in `fitted` when one is installed there.
    pub fn with_fitted_router(mut self, fitted: Arc<FittedRouter>) -> Self {
        self.fitted = fitted;
        self
    }

    /// The fitted router slot.
    pub fn fitted_router(&self) -> &Arc<FittedRouter> {
        &self.fitted
    }

    /// Whether chats answered by `tier` retrieve context by default (`[routes] retrieval`).
    pub fn tier_retrieves(&self, tier: &Tier) -> bool {
        self.routes.retrieval.iter().any(|t| t == tier.as_str())
    }

    /// The registry's router model (`[routes] router`), used while no router is fitted.
    pub fn router_model(&self) -> &str {
        &self.routes.router
    }

    /// Installs a fitted router after [`check_install`] (its dimension probed with one real
    /// embedding by its embedder); on any error the installed router is unchanged.
    pub async fn install_router(&self, head: RouterHead) -> Result<Slots, ApiError> {
        let refuse = |e: RouterError| ApiError::new(ErrorClass::InvalidArgument, e.to_string());
        let models = self.models();
        check_install(&head, &self.tiers, &models, None).map_err(refuse)?;
        let deadline = Instant::now() + std::time::Duration::from_secs(60);
        let probe = self
            .run_batch(
                StageKind::Embed,
                &head.embedder,
                vec!["router dimension probe".into()],
                deadline,
            )
            .await
            .map_err(|e| {
                ApiError::new(
                    e.class,
                    format!(
                        "embedding with the router's embedder '{}': {}",
                        head.embedder, e.message
                    ),
                )
            })?;
        let dim = probe.embeddings.first().map(|e| e.values.len());
        check_install(&head, &self.tiers, &models, dim).map_err(refuse)?;
        self.fitted
            .install(head)
            .map_err(|e| ApiError::new(ErrorClass::Internal, e.to_string()))
    }

    /// The tier of `prompt` by the fitted router `head`: its embedder's vector through the
    /// head. The trace shows one classify stage (where the embedding ran).
    async fn classify_fitted(
        &self,
        head: &RouterHead,
        prompt: &str,
        deadline: Instant,
        traces: &mut Vec<StageTrace>,
    ) -> Result<Tier, ApiError> {
        let resp = self
            .run_batch(
                StageKind::Embed,
                &head.embedder,
                vec![prompt.to_string()],
                deadline,
            )
            .await?;
        let vector = resp
            .embeddings
            .first()
            .map(|e| e.values.as_slice())
            .unwrap_or_default();
        let (tier, _) = head
            .classify(vector)
            .map_err(|e| ApiError::new(ErrorClass::Internal, e.to_string()))?;
        traces.extend(resp.trace.map(|mut t| {
            t.stage = switchyard_proto::convert::stage_to_wire(StageKind::Classify);
            t.model = format!(
                "{}+router:{}",
                head.embedder,
                &head.sha256[..12.min(head.sha256.len())]
            );
            t
        }));
        Ok(tier)
    }

    /// Calls agents over `tls` (mTLS: the CA and the controller's client certificate)
    /// instead of plaintext.
    pub fn with_agent_tls(mut self, tls: Option<tonic::transport::ClientTlsConfig>) -> Self {
        self.pool = AgentPool::new(tls);
        self
    }

    /// Calls `node`'s agent through `service`, in this process (`switchyard up`), instead of
    /// over gRPC to the endpoint it advertises.
    pub fn attach_in_process_agent(&self, node: &str, service: dispatch::AgentService) {
        self.pool.attach_in_process(node, service);
    }

    /// The document store and retrieval settings.
    pub fn documents(&self) -> &Documents {
        &self.documents
    }

    /// The placer (shared with the residency loop).
    pub fn placer(&self) -> &Arc<Placer> {
        &self.placer
    }

    /// The models' keep-alives (shared with the residency loop).
    pub fn keep_alives(&self) -> &Arc<KeepAlives> {
        &self.keep_alives
    }

    fn models(&self) -> Arc<ModelRegistry> {
        self.placer.models()
    }

    fn cluster(&self) -> &ClusterState {
        self.placer.cluster()
    }

    /// Runs a classify/embed stage, with retries on other devices.
    async fn run_batch(
        &self,
        stage: StageKind,
        model: &str,
        inputs: Vec<String>,
        deadline: Instant,
    ) -> Result<RunStageResponse, ApiError> {
        self.run_batch_as(stage, model, inputs, deadline, false)
            .await
    }

    /// [`Pipeline::run_batch`] for bulk work (`bulk`: a document import), which gets a
    /// budget by its size instead of the interactive adaptive timeout.
    async fn run_batch_as(
        &self,
        stage: StageKind,
        model: &str,
        inputs: Vec<String>,
        deadline: Instant,
        bulk: bool,
    ) -> Result<RunStageResponse, ApiError> {
        let spec = self.placer.spec(model, stage)?;
        let bulk_calls = bulk.then(|| inputs.len().div_ceil(spec.max_batch.max(1) as usize) as u32);
        if inputs.is_empty() {
            return Err(
                ApiError::new(ErrorClass::InvalidArgument, "input must not be empty")
                    .with_param("input"),
            );
        }
        let req = self.placer.request(&spec).with_inputs(inputs.len());
        let mut attempt = BatchAttempt {
            stage,
            model: model.to_string(),
            inputs,
            bulk_calls,
        };
        dispatch::run(
            &self.placer,
            &self.pool,
            &self.retry,
            req,
            deadline,
            &mut attempt,
        )
        .await
    }

    /// Picks the generation model: a concrete one, or `auto` → router → tier (with fallback).
    async fn choose_generator(
        &self,
        requested: &str,
        prompt: &str,
        deadline: Instant,
        traces: &mut Vec<StageTrace>,
    ) -> Result<(String, Tier), ApiError> {
        if requested != "auto" && !requested.is_empty() {
            let spec = self.placer.spec(requested, StageKind::Generate)?;
            let tier = spec
                .tier
                .as_deref()
                .and_then(|t| t.parse().ok())
                .unwrap_or_else(Tier::fast);
            return Ok((requested.to_string(), tier));
        }
        let tier = self.classify_prompt(prompt, deadline, traces).await?;
        let choice = self.placer.choose_model(tier, &self.tiers)?;
        Ok((choice.model, choice.tier_used))
    }

    /// The tier of `prompt`: remembered from an earlier identical prompt (same router), else
    /// by the fitted router or the registry's router model; `fast` when the router cannot
    /// run (a deadline that passed is an error).
    async fn classify_prompt(
        &self,
        prompt: &str,
        deadline: Instant,
        traces: &mut Vec<StageTrace>,
    ) -> Result<Tier, ApiError> {
        let fitted = self.fitted.active();
        let router = match &fitted {
            Some(head) => format!("{}+router:{}", head.embedder, head.sha256),
            None => self.routes.router.clone(),
        };
        if let Some(tier) = self.tier_cache.get(&router, prompt) {
            traces.push(StageTrace {
                stage: switchyard_proto::convert::stage_to_wire(StageKind::Classify),
                model: router,
                backend: "cache".into(),
                ..Default::default()
            });
            return Ok(tier);
        }
        let classified = match &fitted {
            Some(head) => self.classify_fitted(head, prompt, deadline, traces).await,
            None => {
                self.classify_by_model(&router, prompt, deadline, traces)
                    .await
            }
        };
        match classified {
            Ok(tier) => {
                self.tier_cache.put(&router, prompt, tier.clone());
                Ok(tier)
            }
            Err(e) if e.class == ErrorClass::DeadlineExceeded => Err(e),
            Err(e) => {
                warn!(error = %e.message, router, "router unavailable; using the fast tier");
                Ok(Tier::fast())
            }
        }
    }

    /// The tier by the registry's router model (a classify stage).
    async fn classify_by_model(
        &self,
        router: &str,
        prompt: &str,
        deadline: Instant,
        traces: &mut Vec<StageTrace>,
    ) -> Result<Tier, ApiError> {
        let resp = self
            .run_batch(
                StageKind::Classify,
                router,
                vec![prompt.to_string()],
                deadline,
            )
            .await?;
        traces.extend(resp.trace);
        Ok(resp
            .classifications
            .first()
            .and_then(|c| c.label.parse::<Tier>().ok())
            .unwrap_or_else(Tier::fast))
    }

    /// Streams a generation through the retry loop on its own task.
    fn generate_stream(
        self: &Arc<Self>,
        model: String,
        messages: Vec<ChatMessage>,
        sampling: SamplingParams,
        engine_options: Option<EngineOptions>,
        deadline: Instant,
    ) -> Result<GenerateStream, ApiError> {
        let spec = self.placer.spec(&model, StageKind::Generate)?;
        // A model the agent's own engine serves (llama-server) is an engine wherever it runs.
        let supervised = spec.engine.is_some();
        let engine_only = !supervised
            && (engine_options.is_some()
                || messages
                    .iter()
                    .any(|m| !m.tool_calls_json.is_empty() || !m.tool_call_id.is_empty()));
        if engine_only && !self.placer.served_by_engine(&model) {
            return Err(ApiError::new(
                ErrorClass::InvalidArgument,
                format!(
                    "model '{model}' runs on the native ONNX decoder, which does not act on tools, tool messages or structured output (OpenAI's response_format, Ollama's format); use a model an engine serves (llama-server, Ollama, vLLM: [[agent.endpoints]])"
                ),
            )
            .with_param(if engine_options.as_ref().is_some_and(|o| o.tools_json.is_empty()) {
                "response_format"
            } else {
                "tools"
            }));
        }
        let req = self.placer.request(&spec).needing_engine(engine_only);
        let (tx, rx) = mpsc::channel::<Result<GenerateChunk, ApiError>>(64);
        let this = self.clone();
        tokio::spawn(async move {
            let mut attempt = GenerateAttempt {
                model,
                messages,
                sampling,
                engine_options,
                tx: tx.clone(),
                sent: String::new(),
                sent_pieces: 0,
                sent_tool_calls: false,
            };
            let result = dispatch::run(
                &this.placer,
                &this.pool,
                &this.retry,
                req,
                deadline,
                &mut attempt,
            )
            .await;
            if let Err(e) = result {
                let _ = tx.send(Err(e)).await;
            }
        });
        Ok(Box::pin(ReceiverStream::new(rx)))
    }

    /// Every generation model of every tier, once, in tier order.
    fn tier_models(&self) -> Vec<String> {
        let mut all: Vec<String> = Vec::new();
        for t in self.tiers.tiers() {
            for m in self.tiers.models(t) {
                if !all.contains(m) {
                    all.push(m.clone());
                }
            }
        }
        all
    }

    /// Ranks every candidate for every stage of the pipeline without running anything.
    fn explain(&self) -> Vec<StageExplanation> {
        let mut stages: Vec<(StageKind, String)> = vec![
            (StageKind::Classify, self.routes.router.clone()),
            (StageKind::Embed, self.routes.embed.clone()),
        ];
        stages.extend(
            self.tier_models()
                .into_iter()
                .map(|m| (StageKind::Generate, m)),
        );
        self.placer.explain(&stages)
    }
}

#[cfg(test)]
mod tests;
