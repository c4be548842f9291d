//! Tests of the gRPC layer: a real tonic server on loopback over the fake `Inference`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use switchyard_proto::v1::inference_client::InferenceClient;
use switchyard_proto::v1::{
    AddDocumentsRequest, ChatMessage, DeleteDocumentRequest, DocumentInput, EmbedRequest,
    GenerateRequest, GetDocumentRequest, PipelineRequest, SamplingParams, SearchDocumentsRequest,
};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::Code;
use tonic::transport::Channel;

use super::*;
use crate::fake::Fake;

async fn serve(cfg: ApiConfig) -> (SocketAddr, Arc<Fake>, tonic_health::server::HealthReporter) {
    let fake = Arc::new(Fake::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (reporter, health) = tonic_health::server::health_reporter();
    set_serving(&reporter, true).await;
    let svc = grpc_service(fake.clone(), &cfg);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(health)
            .add_service(svc)
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    (addr, fake, reporter)
}

async fn client(addr: SocketAddr) -> InferenceClient<Channel> {
    InferenceClient::connect(format!("http://{addr}"))
        .await
        .unwrap()
}

fn user(content: &str) -> Vec<ChatMessage> {
    vec![ChatMessage {
        role: "user".into(),
        content: content.into(),
        ..Default::default()
    }]
}

#[test]
fn grpc_timeout_parses_every_unit() {
    assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
    assert_eq!(parse_grpc_timeout("2M"), Some(Duration::from_secs(120)));
    assert_eq!(parse_grpc_timeout("3S"), Some(Duration::from_secs(3)));
    assert_eq!(parse_grpc_timeout("250m"), Some(Duration::from_millis(250)));
    assert_eq!(parse_grpc_timeout("7u"), Some(Duration::from_micros(7)));
    assert_eq!(
        parse_grpc_timeout("99999999n"),
        Some(Duration::from_nanos(99_999_999))
    );
    for bad in ["", "m", "123", "123456789S", "1x", "-1S", "1.5S"] {
        assert_eq!(parse_grpc_timeout(bad), None, "{bad}");
    }
}

#[tokio::test]
async fn embed_generate_pipeline_documents() {
    let (addr, _, _) = serve(ApiConfig::default()).await;
    let mut c = client(addr).await;
    let r = c
        .embed(EmbedRequest {
            model: "minilm".into(),
            inputs: vec!["a".into(), "b".into()],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.embeddings.len(), 2);
    assert_eq!(r.trace.unwrap().node, "node-a");

    let mut s = c
        .generate(GenerateRequest {
            model: "auto".into(),
            messages: user("hi there"),
            sampling: None,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut text = String::new();
    let mut finish = None;
    while let Some(chunk) = s.next().await {
        let chunk = chunk.unwrap();
        text.push_str(&chunk.text);
        if chunk.finish_reason.is_some() {
            finish = chunk.finish_reason;
        }
    }
    assert_eq!(text, "echo: hi there");
    assert_eq!(finish.as_deref(), Some("stop"));

    let p = c
        .run_pipeline(PipelineRequest {
            prompt: "why".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(p.tier, "fast");
    let ids = c
        .add_documents(AddDocumentsRequest {
            documents: vec!["d".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .ids;
    assert_eq!(ids, vec![100]);
}

#[tokio::test]
async fn bad_input_and_errors_use_the_table() {
    let (addr, _, _) = serve(ApiConfig {
        max_inputs: 1,
        max_tokens: 10,
        ..ApiConfig::default()
    })
    .await;
    let mut c = client(addr).await;
    let e = c
        .embed(EmbedRequest {
            model: "minilm".into(),
            inputs: vec!["a".into(), "b".into()],
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("max_inputs (1)"), "{}", e.message());
    let e = c
        .embed(EmbedRequest {
            model: "nope".into(),
            inputs: vec!["a".into()],
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let e = c
        .embed(EmbedRequest {
            model: "full".into(),
            inputs: vec!["a".into()],
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted);
    let e = c
        .generate(GenerateRequest {
            model: "auto".into(),
            messages: user("x"),
            sampling: Some(SamplingParams {
                max_tokens: 11,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("max_tokens (10)"), "{}", e.message());
    let e = c
        .generate(GenerateRequest {
            model: "auto".into(),
            messages: vec![],
            sampling: None,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    // A failure mid-stream arrives as the stream's status.
    let mut s = c
        .generate(GenerateRequest {
            model: "broken".into(),
            messages: user("a b"),
            sampling: None,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(s.next().await.unwrap().is_ok());
    assert_eq!(
        s.next().await.unwrap().unwrap_err().code(),
        Code::Unavailable
    );
}

#[tokio::test]
async fn grpc_timeout_caps_the_deadline() {
    let (addr, fake, _) = serve(ApiConfig::default()).await;
    let mut c = client(addr).await;
    let mut req = tonic::Request::new(EmbedRequest {
        model: "minilm".into(),
        inputs: vec!["a".into()],
    });
    req.set_timeout(Duration::from_millis(800));
    c.embed(req).await.unwrap();
    let budget = fake.seen.lock().unwrap().budget.unwrap();
    assert!(budget <= Duration::from_millis(800), "{budget:?}");
    assert!(budget > Duration::from_millis(100), "{budget:?}");

    let mut req = tonic::Request::new(EmbedRequest {
        model: "slow".into(),
        inputs: vec!["a".into()],
    });
    req.set_timeout(Duration::from_millis(100));
    let started = std::time::Instant::now();
    let e = c.embed(req).await.unwrap_err();
    assert!(
        matches!(e.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{e:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn tokens_are_checked_in_metadata() {
    let (addr, _, _) = serve(ApiConfig {
        tokens: vec!["t0k3n".into()],
        ..ApiConfig::default()
    })
    .await;
    let mut c = client(addr).await;
    let make = || EmbedRequest {
        model: "minilm".into(),
        inputs: vec!["a".into()],
    };
    let e = c.embed(make()).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    let mut req = tonic::Request::new(make());
    req.metadata_mut()
        .insert("authorization", "Bearer wrong".parse().unwrap());
    assert_eq!(
        c.embed(req).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    let mut req = tonic::Request::new(make());
    req.metadata_mut()
        .insert("authorization", "Bearer t0k3n".parse().unwrap());
    assert!(c.embed(req).await.is_ok());
}

#[tokio::test]
async fn health_reports_the_service_serving() {
    let (addr, _, _) = serve(ApiConfig::default()).await;
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    assert!(health_becomes(&channel, 1).await, "SERVING");
}

/// Polls the Inference health status until it reads `want` (bounded: false if it never does).
async fn health_becomes(channel: &Channel, want: i32) -> bool {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;
    let mut h = HealthClient::new(channel.clone());
    for _ in 0..400 {
        let r = h
            .check(HealthCheckRequest {
                service: "switchyard.v1.Inference".into(),
            })
            .await
            .unwrap()
            .into_inner();
        if r.status == want {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    false
}

#[tokio::test]
async fn health_is_not_serving_while_no_node_is_ready_and_follows_readiness() {
    use std::sync::atomic::Ordering;
    let (addr, fake, reporter) = serve(ApiConfig::default()).await;
    fake.ready.store(false, Ordering::SeqCst);
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(report_readiness(
        reporter,
        fake.clone(),
        Duration::from_millis(5),
        shutdown,
    ));
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    assert!(
        health_becomes(&channel, 2).await,
        "NOT_SERVING while not ready"
    );
    fake.ready.store(true, Ordering::SeqCst);
    assert!(health_becomes(&channel, 1).await, "SERVING once ready");
    fake.ready.store(false, Ordering::SeqCst);
    assert!(
        health_becomes(&channel, 2).await,
        "NOT_SERVING again when the last node is lost"
    );
    stop.send(true).unwrap();
    task.await.unwrap();
}

#[tokio::test]
async fn document_rpcs_validate_like_http_and_reach_the_store() {
    let (addr, _, _) = serve(ApiConfig::default()).await;
    let mut c = client(addr).await;
    let added = c
        .add_documents(AddDocumentsRequest {
            collection: "notes".into(),
            items: vec![DocumentInput {
                text: "aaaa".into(),
                source: "a.md".into(),
            }],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(added.documents[0].source, "a.md");
    let id = added.ids[0];
    let got = c
        .get_document(GetDocumentRequest { id })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.text, "aaaa");
    let found = c
        .search_documents(SearchDocumentsRequest {
            query: "aaaa".into(),
            collection: "notes".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(found.chunks[0].document_id, id);

    let bad = |e: tonic::Status| (e.code(), e.message().to_string());
    let (code, msg) = bad(c
        .add_documents(AddDocumentsRequest {
            documents: vec![" ".into()],
            ..Default::default()
        })
        .await
        .unwrap_err());
    assert_eq!(code, Code::InvalidArgument);
    assert!(msg.contains("documents[0] is empty"), "{msg}");
    let (code, msg) = bad(c
        .search_documents(SearchDocumentsRequest {
            query: "q".into(),
            min_score: Some(7.0),
            ..Default::default()
        })
        .await
        .unwrap_err());
    assert_eq!(code, Code::InvalidArgument);
    assert!(msg.contains("min_score"), "{msg}");
    let (code, msg) = bad(c
        .delete_document(DeleteDocumentRequest::default())
        .await
        .unwrap_err());
    assert_eq!(code, Code::InvalidArgument);
    assert!(
        msg.contains("either a document id or a collection"),
        "{msg}"
    );
    let (code, _) = bad(c
        .get_document(GetDocumentRequest { id: 424242 })
        .await
        .unwrap_err());
    assert_eq!(code, Code::NotFound);
}
