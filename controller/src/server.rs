//! Starts the controller: the gRPC server (registry, cluster, health, reflection), the HTTP
//! server (OpenAI API, `/health`, `/ready`, Prometheus `/metrics`), the liveness sweep and
//! the residency loop, each in its own tracing span.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use switchyard_backend_core::ModelRegistry;
use switchyard_proto::v1::cluster_server::ClusterServer;
use switchyard_proto::v1::registry_server::RegistryServer;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::transport::server::TcpIncoming;
use tracing::{Instrument, info, info_span, warn};

use crate::cluster::ClusterState;
use crate::cluster::cluster_service::ClusterService;
use crate::cluster::registry_service::RegistryService;
use crate::config::ServerConfig;
use crate::documents::{DocumentStore, SqliteStore, StoreError};
use crate::models::ModelSet;
use crate::pipeline::{Documents, FittedRouter, Pipeline, PipelineService, RouteError};
use crate::placement::{PlacementSettings, Placer};
use crate::residency::KeepAlives;
use crate::security::Security;
use crate::security::enrollment::EnrollmentService;
use switchyard_proto::v1::enrollment_server::EnrollmentServer;

/// Why the controller could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listening socket (gRPC or HTTP) could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address that could not be bound.
        addr: SocketAddr,
        /// The bind error.
        source: std::io::Error,
    },
    /// The configured routes name models missing from the registry or of the wrong stage.
    #[error(transparent)]
    Routes(#[from] RouteError),
    /// The cluster's model set in the data directory cannot be read.
    #[error("cannot open the cluster's model set: {0}")]
    Models(#[from] crate::models::ModelSetError),
    /// The data directory or the document store in it cannot be used.
    #[error("cannot open the document store: {0}")]
    Store(#[from] StoreError),
    /// The `[retrieval]` settings do not fit the embedding model.
    #[error("invalid retrieval settings: {0}")]
    Retrieval(String),
    /// The cluster CA or the controller's certificates cannot be loaded or created.
    #[error("cluster PKI in {dir}: {source}")]
    Pki {
        /// The PKI directory.
        dir: std::path::PathBuf,
        /// What failed.
        source: switchyard_pki::PkiError,
    },
    /// The gRPC server's TLS settings were refused.
    #[error("gRPC TLS: {0}")]
    Tls(String),
    /// The HTTP API's `[api.tls]` certificate or key cannot be used.
    #[error("api.tls: {0}")]
    HttpTls(String),
    /// The installed fitted router in the data directory is damaged.
    #[error("installed router: {0}")]
    Router(#[from] crate::tier_router::RouterError),
}

/// A running controller.
pub struct ControllerHandle {
    /// Bound gRPC address.
    pub grpc_addr: SocketAddr,
    /// Bound HTTP address.
    pub http_addr: SocketAddr,
    /// The pipeline serving inference.
    pub pipeline: Arc<Pipeline>,
    /// Cluster state (shared with the services).
    pub cluster: Arc<ClusterState>,
    /// mTLS (or insecure) mode, with the CA and tokens.
    pub security: Arc<Security>,
    /// The join token made at this start because the cluster CA was created now: print it
    /// once, it is stored only hashed.
    pub first_token: Option<String>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl ControllerHandle {
    /// Stops every task and waits for them.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }

    /// Waits until the servers stop (they run until [`ControllerHandle::stop`]).
    pub async fn wait(self) {
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), StartError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Listen { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| StartError::Listen { addr, source })?;
    Ok((listener, bound))
}

/// Binds the gRPC and HTTP ports and starts serving the model set that `registry` seeds and
/// the data directory keeps ([`ModelSet`]). Routes naming models missing from it are a
/// start-up error.
pub async fn start(
    config: &ServerConfig,
    registry: Arc<ModelRegistry>,
) -> Result<ControllerHandle, StartError> {
    let model_set = Arc::new(
        ModelSet::open((*registry).clone(), &config.controller.data_dir)?
            .with_routed(config.routes.named().cloned()),
    );
    let models = model_set.snapshot();
    let cluster = Arc::new(ClusterState::new(
        Duration::from_millis(config.controller.heartbeat_interval_ms as u64),
        config.controller.missed_heartbeats,
    ));
    let placer = Arc::new(Placer::new(
        cluster.clone(),
        model_set.clone(),
        PlacementSettings {
            policy: config.scheduler.policy.clone(),
            breakers: config.scheduler.breakers,
            latency: config.scheduler.latency.clone(),
        },
    ));
    let keep_alives = Arc::new(KeepAlives::new(&config.residency));
    if let (Some(size), Some(spec)) = (
        config.retrieval.chunk_tokens,
        models.get(&config.routes.embed),
    ) && size > spec.max_input_tokens
    {
        return Err(StartError::Retrieval(format!(
            "retrieval.chunk_tokens {size} is over max_input_tokens ({}) of the embed model {}: chunks would be truncated",
            spec.max_input_tokens, spec.name
        )));
    }
    let store = SqliteStore::open(&config.controller.data_dir)?;
    let check = store.check()?;
    info!(
        path = %store.path().display(),
        documents = check.documents,
        chunks = check.chunks,
        vectors = check.vectors,
        "document store open"
    );
    for problem in &check.problems {
        warn!(%problem, "document store inconsistency");
    }
    let documents = Documents::new(
        Arc::new(store) as Arc<dyn DocumentStore>,
        config.retrieval.clone(),
        config.api.max_inputs,
    );
    let (security, first_token) = open_security(config)?;
    let fitted = Arc::new(FittedRouter::open(
        config.controller.data_dir.join("router"),
    )?);
    let pipeline = Arc::new(
        Pipeline::new(
            placer.clone(),
            config.routes.clone(),
            config.scheduler.retry,
            keep_alives.clone(),
            documents,
        )?
        .with_agent_tls(security.agent_tls())
        .with_fitted_router(fitted),
    );
    let (listener, grpc_addr) = bind(config.controller.listen).await?;
    let (http_listener, http_addr) = bind(config.controller.http_listen).await?;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);

    let inference: Arc<dyn switchyard_api::Inference> = Arc::new(PipelineService(pipeline.clone()));
    let api = config.api.clone();
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    // NOT_SERVING until a node is ready; the readiness task below keeps it current.
    switchyard_api::set_serving(&health_reporter, false).await;
    health_reporter
        .set_serving::<RegistryServer<RegistryService>>()
        .await;
    health_reporter
        .set_serving::<ClusterServer<ClusterService>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(switchyard_proto::v1::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .expect("embedded descriptor sets are valid");
    let mut builder = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(5)))
        .http2_keepalive_timeout(Some(Duration::from_secs(3)));
    if let Some(tls) = security.server_tls() {
        builder = builder
            .tls_config(tls)
            .map_err(|e| StartError::Tls(e.to_string()))?;
    }
    // Registry and Cluster: a node or controller certificate (unless insecure). Enrollment
    // needs none (it checks the join token); the client API keeps its bearer tokens.
    let (reg_auth, cluster_auth) = (security.clone(), security.clone());
    let router = builder
        .add_service(health_service)
        .add_service(reflection)
        .add_service(EnrollmentServer::new(EnrollmentService::new(
            security.clone(),
        )))
        .add_service(RegistryServer::with_interceptor(
            RegistryService::new(cluster.clone()).with_models(model_set.clone()),
            move |req: tonic::Request<()>| reg_auth.authorize(&req).map(|_| req),
        ))
        .add_service(ClusterServer::with_interceptor(
            ClusterService::new(cluster.clone(), model_set.clone(), keep_alives.clone())
                .with_security(security.clone())
                .with_router(pipeline.clone()),
            move |req: tonic::Request<()>| cluster_auth.authorize(&req).map(|_| req),
        ))
        .add_service(
            // Room for the largest document plus the message around it.
            switchyard_api::grpc_service(inference.clone(), &api).max_decoding_message_size(
                (config.retrieval.max_document_bytes as usize).max(4 << 20) + (1 << 20),
            ),
        );
    crate::metrics::install();
    let metrics_cluster = cluster.clone();
    let metrics_api = api.clone();
    let console: Arc<dyn switchyard_api::console::ConsoleSource> =
        Arc::new(PipelineService(pipeline.clone()));
    let http_router =
        switchyard_api::http_router_with_console(inference.clone(), api.clone(), Some(console))
            .route(
                "/metrics",
                axum::routing::get(move |headers: axum::http::HeaderMap| {
                    let cluster = metrics_cluster.clone();
                    let allowed = metrics_api.metrics_allowed(
                        headers
                            .get(axum::http::header::AUTHORIZATION)
                            .and_then(|v| v.to_str().ok()),
                    );
                    async move { crate::metrics::respond(allowed, &cluster) }
                }),
            )
            .route_layer(axum::middleware::from_fn(track_http));
    let http_tls = match &api.tls {
        Some(tls) => Some(crate::http_tls::acceptor(tls, &security)?),
        None => None,
    };

    let mut rx = shutdown_rx.clone();
    let grpc = tokio::spawn(
        async move {
            info!(addr = %grpc_addr, "gRPC server listening");
            let res = router
                .serve_with_incoming_shutdown(
                    TcpIncoming::from(listener).with_nodelay(Some(true)),
                    async move {
                        let _ = rx.wait_for(|s| *s).await;
                    },
                )
                .await;
            if let Err(e) = res {
                warn!(error = %e, "gRPC server stopped");
            }
        }
        .instrument(info_span!("grpc")),
    );

    let sweep_cluster = cluster.clone();
    let mut rx = shutdown_rx.clone();
    // A tenth of the interval: a silent node is lost at most 10 % after its deadline.
    let tick = (sweep_cluster.heartbeat_interval / 10).max(Duration::from_millis(20));
    let liveness = tokio::spawn(
        async move {
            let mut interval = tokio::time::interval(tick);
            loop {
                tokio::select! {
                    _ = interval.tick() => sweep_cluster.sweep(),
                    _ = rx.changed() => break,
                }
            }
        }
        .instrument(info_span!("liveness")),
    );

    let mut rx = shutdown_rx.clone();
    let http = tokio::spawn(
        async move {
            info!(addr = %http_addr, "HTTP server listening");
            let shutdown = async move {
                let _ = rx.wait_for(|s| *s).await;
            };
            let res = match http_tls {
                Some(acceptor) => {
                    info!("HTTP API serves TLS only (api.tls)");
                    axum::serve(
                        crate::http_tls::TlsListener::new(http_listener, acceptor),
                        http_router,
                    )
                    .with_graceful_shutdown(shutdown)
                    .await
                }
                None => {
                    // TCP_NODELAY: JSON responses and SSE token chunks are small writes.
                    let listener = axum::serve::ListenerExt::tap_io(http_listener, |s| {
                        let _ = s.set_nodelay(true);
                    });
                    axum::serve(listener, http_router)
                        .with_graceful_shutdown(shutdown)
                        .await
                }
            };
            if let Err(e) = res {
                warn!(error = %e, "HTTP server stopped");
            }
        }
        .instrument(info_span!("http")),
    );

    let readiness = tokio::spawn(
        switchyard_api::report_readiness(
            health_reporter,
            inference.clone(),
            tick,
            shutdown_rx.clone(),
        )
        .instrument(info_span!("readiness")),
    );

    let residency = tokio::spawn(
        crate::residency::run(
            cluster.clone(),
            placer,
            config.residency.clone(),
            keep_alives,
            shutdown_rx.clone(),
        )
        .instrument(info_span!("residency")),
    );

    Ok(ControllerHandle {
        grpc_addr,
        http_addr,
        pipeline,
        cluster,
        security,
        first_token,
        shutdown: shutdown_tx,
        tasks: vec![grpc, http, liveness, readiness, residency],
    })
}

/// The names the controller's server certificate carries: this host's name, `localhost`,
/// the loopback addresses and the listen address when it is a specific one.
fn server_names(config: &ServerConfig) -> Vec<String> {
    let mut names = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
    if let Ok(host) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        let host = host.trim();
        if !host.is_empty() {
            names.push(host.to_string());
        }
    }
    let ip = config.controller.listen.ip();
    if !ip.is_unspecified() && !ip.is_loopback() {
        names.push(ip.to_string());
    }
    names
}

/// mTLS from the data directory's PKI (created on first start), or insecure with a warning.
fn open_security(config: &ServerConfig) -> Result<(Arc<Security>, Option<String>), StartError> {
    if config.controller.insecure {
        warn!(
            "running with --insecure: the control path and the calls to agents are plaintext and unauthenticated; anyone who reaches {} can register a node and receive prompts",
            config.controller.listen
        );
        return Ok((Security::insecure(), None));
    }
    let dir = crate::security::pki_dir(&config.controller.data_dir);
    let opened = Security::open(
        &config.controller.data_dir,
        &server_names(config),
        &config.controller.admin_tokens.0,
    )
    .map_err(|source| StartError::Pki {
        dir: dir.clone(),
        source,
    })?;
    if let Some(m) = opened.security.mtls() {
        info!(dir = %dir.display(), ca_sha256 = %m.ca.fingerprint(), created = opened.first_token.is_some(), "cluster CA ready: control path is mTLS");
    }
    Ok((opened.security, opened.first_token))
}

/// Records every routed HTTP request (route template, method, status, time to head).
async fn track_http(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let started = std::time::Instant::now();
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = req.method().as_str().to_string();
    let response = next.run(req).await;
    crate::metrics::http_request(
        &method,
        &route,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}
