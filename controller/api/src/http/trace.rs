//! Placement trace as response headers (`x-switchyard-*`, `x-queue-time`,
//! `x-inference-time`) and as JSON.

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};
use switchyard_proto::v1::{StageKind, StageTrace};

/// Node that ran the (last) stage.
pub const NODE: &str = "x-switchyard-node";
/// Device id that ran the (last) stage.
pub const DEVICE: &str = "x-switchyard-device";
/// Backend that ran the (last) stage.
pub const BACKEND: &str = "x-switchyard-backend";
/// Model that ran the (last) stage.
pub const MODEL: &str = "x-switchyard-model";
/// Precision the (last) stage computed at (`f32`, `f16`, `bf16`).
pub const PRECISION: &str = "x-switchyard-precision";
/// Where a supervised engine computed (`vulkan:Vulkan0`, `cuda:CUDA0`, `cpu`).
pub const ENGINE_DEVICE: &str = "x-switchyard-engine-device";
/// Milliseconds queued in the agent's batcher (summed over stages).
pub const QUEUE_TIME: &str = "x-queue-time";
/// Milliseconds of compute on the device (summed over stages).
pub const INFERENCE_TIME: &str = "x-inference-time";
/// Milliseconds the API spent on the request, from routing to response (server side).
pub const TOTAL_TIME: &str = "x-total-time";

fn put(h: &mut HeaderMap, name: &'static str, value: &str) {
    if value.is_empty() {
        return;
    }
    if let Ok(v) = HeaderValue::from_str(value) {
        h.insert(HeaderName::from_static(name), v);
    }
}

/// Milliseconds with three decimals.
pub fn ms(x: f64) -> String {
    format!("{x:.3}")
}

/// Headers for the stages of one request (the last one names the placement).
pub fn headers<'a>(traces: impl IntoIterator<Item = &'a StageTrace>) -> HeaderMap {
    let mut h = HeaderMap::new();
    let mut queue = 0.0;
    let mut compute = 0.0;
    let mut last = None;
    for t in traces {
        queue += t.queue_ms;
        compute += t.compute_ms;
        last = Some(t);
    }
    if let Some(t) = last {
        put(&mut h, NODE, &t.node);
        put(&mut h, DEVICE, &t.device_id);
        put(&mut h, BACKEND, &t.backend);
        put(&mut h, MODEL, &t.model);
        put(&mut h, PRECISION, &t.precision);
        put(&mut h, ENGINE_DEVICE, &t.engine_device);
        put(&mut h, QUEUE_TIME, &ms(queue));
        put(&mut h, INFERENCE_TIME, &ms(compute));
    }
    h
}

/// Adds the server-side total time header.
pub fn put_total(h: &mut HeaderMap, started: std::time::Instant) {
    put(h, TOTAL_TIME, &ms(started.elapsed().as_secs_f64() * 1e3));
}

/// One stage trace as JSON (with the chunks a retrieval found, when it found any).
pub fn json(t: &StageTrace) -> Value {
    let mut v = json!({
        "stage": StageKind::try_from(t.stage).unwrap_or(StageKind::Unspecified).short_name(),
        "model": t.model,
        "node": t.node,
        "device": t.device_id,
        "backend": t.backend,
        "queue_ms": t.queue_ms,
        "compute_ms": t.compute_ms,
        "load_ms": t.load_ms,
        "retries": t.retries,
        "batch_size": t.batch_size,
        "simulated": t.simulated,
        "precision": t.precision,
    });
    if !t.engine_device.is_empty() {
        v["engine_device"] = t.engine_device.clone().into();
    }
    if !t.retrieved.is_empty() {
        v["retrieved"] = t
            .retrieved
            .iter()
            .map(|c| json!({"document_id": c.document_id, "chunk": c.chunk, "score": c.score}))
            .collect();
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_name_the_last_stage_and_sum_times() {
        let a = StageTrace {
            node: "n1".into(),
            device_id: "cpu0".into(),
            backend: "ort-cpu".into(),
            queue_ms: 1.0,
            compute_ms: 2.0,
            ..Default::default()
        };
        let b = StageTrace {
            node: "n2".into(),
            device_id: "gpu0".into(),
            backend: "ort-cuda".into(),
            precision: "f16".into(),
            queue_ms: 0.5,
            compute_ms: 4.25,
            ..Default::default()
        };
        let h = headers([&a, &b]);
        assert_eq!(h[NODE], "n2");
        assert_eq!(h[DEVICE], "gpu0");
        assert_eq!(h[PRECISION], "f16");
        assert_eq!(json(&b)["precision"], "f16");
        assert_eq!(h[QUEUE_TIME], "1.500");
        assert_eq!(h[INFERENCE_TIME], "6.250");
        assert!(headers([]).is_empty());
    }
}
