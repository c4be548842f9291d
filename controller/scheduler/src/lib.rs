//! Switchyard's scheduler: pure placement and resilience logic, no I/O.
//!
//! The controller feeds it snapshots and acts on its decisions:
//!
//! * [`view`]: the cluster snapshot ([`ClusterView`], [`NodeView`], [`DeviceView`]), built
//!   once and updated in place on heartbeats.
//! * [`policy`]: [`PlacementPolicy`] (pack/spread, headroom, per-stage device preferences,
//!   per-kind backend preferences, score weights), from TOML.
//! * [`scheduler`]: [`place`] (fast path: best `top_k` candidates) and [`explain`] (dry run:
//!   every candidate and every rejection with its reason).
//! * [`circuit`]: [`CircuitBreakers`] per (node, device).
//! * [`latency`]: [`LatencyStats`] (EWMA, p95) and adaptive timeouts.
//! * [`retry`]: [`RetryPolicy`], exponential backoff with jitter.
//! * [`tiers`]: [`Tier`], [`TierRoutes`] and their fallback order, and [`choose_model`].
//!
//! Placing one stage:
//!
//! ```
//! use std::time::Instant;
//! use switchyard_backend_core::{DeviceType, StageKind};
//! use switchyard_scheduler::*;
//!
//! let mut npu = DeviceView::new("npu0", DeviceType::IntelNpu);
//! npu.memory_total_bytes = 4_000_000_000;
//! npu.memory_free_bytes = 4_000_000_000;
//! npu.backends = vec!["openvino".into()];
//! let view = ClusterView::new(vec![NodeView::new("edge-1", vec![npu])]).unwrap();
//!
//! let policy = PlacementPolicy::default();
//! let breakers = CircuitBreakers::new(BreakerConfig::default());
//! let latency = LatencyStats::new(LatencyConfig::default());
//! let req = PlacementRequest::new(StageKind::Classify, "router", 60_000_000, Instant::now());
//!
//! let best = place(&view, &req, &policy, &breakers, &latency).best().cloned().unwrap();
//! assert_eq!((best.node.as_str(), best.device.as_str(), best.backend.as_str()),
//!            ("edge-1", "npu0", "openvino"));
//! // `switchyard explain`: every candidate and rejection, with reasons.
//! println!("{}", explain(&view, &req, &policy, &breakers, &latency));
//! ```
//!
//! A request's stage, in the controller's pipeline:
//!
//! ```text
//! let mut req = PlacementRequest::new(stage, model, memory_bytes, Instant::now());
//! for attempt in 0..retry.max_attempts {
//!     let Some(c) = place(&view, &req, &policy, &breakers, &latency).best().cloned() else { break };
//!     breakers.on_dispatch(&c.node, &c.device, now);
//!     let timeout = latency.adaptive_timeout_on(stage, model, &c.node, &c.device);
//!     match run_on(c, timeout) {
//!         Ok(..)  => { breakers.record_success(..); latency.record(..); return }
//!         Err(..) => { breakers.record_failure(..); req = req.excluding(c.node, c.device);
//!                      sleep(retry.delay(attempt + 1, rng)) }
//!     }
//! }
//! ```

pub mod circuit;
mod fxhash;
pub mod latency;
pub mod policy;
pub mod retry;
pub mod scheduler;
pub mod tiers;
pub mod view;

pub use circuit::{Admission, BreakerConfig, CircuitBreakers, CircuitState};
pub use latency::{LatencyConfig, LatencyConfigError, LatencyStats, Sample, TimeoutRule};
pub use policy::{
    BackendPreferences, PlacementMode, PlacementPolicy, PolicyError, ScoreWeights, StagePreferences,
};
pub use retry::{Jitter, RetryPolicy, RetryPolicyError};
pub use scheduler::{
    Candidate, Explanation, Placement, PlacementContext, PlacementRequest, RejectReason, Rejection,
    ScoreTerms, explain, place,
};
pub use tiers::{
    ModelDemand, NoTierAvailable, SkippedModel, Tier, TierChoice, TierParseError, TierRoutes,
    choose_model,
};
pub use view::{ClusterView, DEVICE_KINDS, DeviceView, NodeView, ViewError, kind_name};
