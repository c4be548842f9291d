//! What the fuzz targets share: one runtime per process, a gRPC frame around raw bytes, and
//! driving a tower service (a tonic server or the axum router) with one request to the end
//! of its body.

use std::sync::OnceLock;
use std::time::Duration;

use axum::body::Body;
use tower::{Service, ServiceExt};

/// The process's runtime (current thread: a fuzz input runs alone).
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    })
}

/// `message` as one length-prefixed, uncompressed gRPC frame.
pub fn grpc_frame(message: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(message.len() + 5);
    frame.push(0);
    frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
    frame.extend_from_slice(message);
    frame
}

/// What one request got: status, `grpc-status` and the whole body (a stream read to its end).
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// `grpc-status`, from the headers or the trailers.
    pub grpc_status: Option<i32>,
    /// The body.
    pub body: Vec<u8>,
}

fn grpc_status_of(h: &http::HeaderMap) -> Option<i32> {
    h.get("grpc-status")?.to_str().ok()?.parse().ok()
}

/// Sends `req` to `svc` and reads the answer to its end; a stream that does not end within
/// two seconds is a hang, reported as a crash.
pub fn call<S, B>(svc: S, req: http::Request<Body>) -> Answer
where
    S: Service<http::Request<Body>, Response = http::Response<B>>,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    use http_body_util::BodyExt;
    runtime().block_on(async move {
        let resp = svc.oneshot(req).await.expect("services are infallible");
        let status = resp.status().as_u16();
        let header_status = grpc_status_of(resp.headers());
        let collected = tokio::time::timeout(Duration::from_secs(2), resp.into_body().collect())
            .await
            .expect("the response body ends within 2 s");
        let (body, trailers) = match collected {
            Ok(c) => {
                let t = c.trailers().and_then(grpc_status_of);
                (c.to_bytes().to_vec(), t)
            }
            // A stream the server ended with an error frame: what came before is lost.
            Err(_) => (Vec::new(), None),
        };
        Answer {
            status,
            grpc_status: header_status.or(trailers),
            body,
        }
    })
}
