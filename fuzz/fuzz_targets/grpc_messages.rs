//! Every gRPC request message the controller accepts, as raw bytes through the real tonic
//! services and the strict codec: the client `Inference` service (over the unit tests' fake
//! pipeline) and `Registry/Register` (over a real, empty cluster state). The first byte
//! picks the method. Invariants: no panic, no hang, a gRPC status on every answer, and a
//! message that decodes re-encodes to an equal message.
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Body;
use libfuzzer_sys::fuzz_target;
use prost::Message;
use switchyard_api::ApiConfig;
use switchyard_api::fake::Fake;
use switchyard_controller::cluster::ClusterState;
use switchyard_controller::cluster::registry_service::RegistryService;
use switchyard_fuzz::{call, grpc_frame};
use switchyard_proto::v1 as pb;

const INFERENCE: [&str; 10] = [
    "Embed",
    "Classify",
    "Generate",
    "RunPipeline",
    "AddDocuments",
    "ListDocuments",
    "GetDocument",
    "DeleteDocument",
    "SearchDocuments",
    "DocumentStoreInfo",
];

fn roundtrip<M: Message + Default + PartialEq + std::fmt::Debug>(bytes: &[u8]) {
    if let Ok(m) = M::decode(bytes) {
        let once = m.encode_to_vec();
        let again = M::decode(once.as_slice()).expect("a re-encoded message decodes");
        // A float field may hold NaN, which is not equal to itself (and maps encode in
        // hash order, so bytes are no better): then only the sizes must agree.
        if format!("{m:?}").contains("NaN") {
            assert_eq!(once.len(), again.encoded_len());
        } else {
            assert_eq!(m, again, "decode ∘ encode is not the identity");
        }
    }
}

fn request(path: &str, message: &[u8]) -> http::Request<Body> {
    http::Request::builder()
        .method("POST")
        .uri(format!("http://fuzz{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Body::from(grpc_frame(message)))
        .expect("request")
}

fn cluster() -> Arc<ClusterState> {
    static C: OnceLock<Arc<ClusterState>> = OnceLock::new();
    C.get_or_init(|| Arc::new(ClusterState::new(Duration::from_secs(1), 3)))
        .clone()
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, message)) = data.split_first() else {
        return;
    };
    let pick = pick as usize % (INFERENCE.len() + 1);
    let answer = if pick == INFERENCE.len() {
        roundtrip::<pb::RegisterRequest>(message);
        let svc = pb::registry_server::RegistryServer::new(RegistryService::new(cluster()));
        call(svc, request("/switchyard.v1.Registry/Register", message))
    } else {
        match pick {
            0 => roundtrip::<pb::EmbedRequest>(message),
            1 => roundtrip::<pb::ClassifyRequest>(message),
            2 => roundtrip::<pb::GenerateRequest>(message),
            3 => roundtrip::<pb::PipelineRequest>(message),
            4 => roundtrip::<pb::AddDocumentsRequest>(message),
            5 => roundtrip::<pb::ListDocumentsRequest>(message),
            6 => roundtrip::<pb::GetDocumentRequest>(message),
            7 => roundtrip::<pb::DeleteDocumentRequest>(message),
            _ => roundtrip::<pb::SearchDocumentsRequest>(message),
        }
        let cfg = ApiConfig {
            request_timeout_ms: 200,
            ..ApiConfig::default()
        };
        let svc = switchyard_api::grpc_service(Arc::new(Fake::new()), &cfg);
        let path = format!("/switchyard.v1.Inference/{}", INFERENCE[pick]);
        call(svc, request(&path, message))
    };
    assert_eq!(answer.status, 200, "gRPC answers in HTTP 200");
    let code = answer
        .grpc_status
        .expect("every answer carries a grpc-status");
    assert!((0..=16).contains(&code), "grpc-status {code}");
});
