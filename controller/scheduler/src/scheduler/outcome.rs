//! What placement answers: candidates with their score terms, rejections with their reason,
//! and how each is shown to operators.

use super::*;

/// The score of a candidate, term by term (each already weighted), plus the figures behind it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ScoreTerms {
    /// Kind preference term.
    pub preference: f64,
    /// Partial-offload term (0 when the model fits the device whole).
    pub partial: f64,
    /// The share of the model on the device when only part of it fits (`None`: whole).
    pub device_share: Option<f64>,
    /// Warm (model resident) bonus.
    pub warm: f64,
    /// TOPS term.
    pub tops: f64,
    /// Free-memory term (pack or spread).
    pub memory: f64,
    /// Queue term.
    pub queue: f64,
    /// Latency term.
    pub latency: f64,
    /// Utilisation term.
    pub utilization: f64,
    /// Thermal headroom term.
    pub thermal: f64,
    /// Power headroom term.
    pub power: f64,
    /// 0 = the stage's most preferred kind.
    pub kind_rank: u8,
    /// TOPS figure used.
    pub tops_value: f64,
    /// Whether it was measured.
    pub tops_measured: bool,
    /// Free memory after placement / total memory.
    pub free_after_ratio: f64,
    /// Bytes of idle models the agent must evict for the model (and headroom) to fit.
    pub evict_bytes: u64,
    /// Whether the free-memory term was computed for packing.
    pub pack: bool,
    /// Requests this controller has in flight on the device.
    pub in_flight: u32,
    /// Requests the agent reports on the device.
    pub queue_depth: u32,
    /// Utilisation the agent reports, 0–1.
    pub utilization_value: Option<f64>,
    /// Temperature the agent reports, °C.
    pub temperature_celsius: Option<f64>,
    /// Throttle point used (reported, or the policy's default), °C.
    pub throttle_celsius: f64,
    /// Power draw the agent reports, watts.
    pub power_watts: Option<f64>,
    /// Power cap the agent reports, watts.
    pub power_limit_watts: Option<f64>,
    /// Device concurrency limit (0: unbounded).
    pub max_concurrency: u32,
    /// Latency EWMA of this model on this device, ms.
    pub latency_ms: Option<f64>,
    /// Latency EWMA of this model over all devices, ms.
    pub model_latency_ms: Option<f64>,
}

impl ScoreTerms {
    /// Sum of the terms.
    pub fn total(&self) -> f64 {
        self.preference
            + self.partial
            + self.warm
            + self.tops
            + self.memory
            + self.queue
            + self.latency
            + self.utilization
            + self.thermal
            + self.power
    }
}

impl fmt::Display for ScoreTerms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "kind rank {} {:+.2}",
            self.kind_rank + 1,
            self.preference
        )?;
        if let Some(share) = self.device_share {
            write!(
                f,
                ", partial offload: {:.0}% of the model on the device, the rest on the host CPU {:+.2}",
                share * 100.0,
                self.partial
            )?;
        }
        write!(f, ", warm {:+.2}", self.warm)?;
        write!(
            f,
            ", tops {:.1} ({}) {:+.2}",
            self.tops_value,
            if self.tops_measured {
                "measured"
            } else {
                "catalog"
            },
            self.tops
        )?;
        write!(
            f,
            ", free after {:.0}% ({}) {:+.2}",
            self.free_after_ratio * 100.0,
            if self.pack { "pack" } else { "spread" },
            self.memory
        )?;
        if self.evict_bytes > 0 {
            write!(
                f,
                ", evicts {:.1} MB of idle models (LRU)",
                mb(self.evict_bytes)
            )?;
        }
        let depth = self.in_flight.max(self.queue_depth);
        if self.max_concurrency > 0 {
            write!(
                f,
                ", queue {depth}/{} (sent {}, agent {}) {:+.2}",
                self.max_concurrency, self.in_flight, self.queue_depth, self.queue
            )?;
        } else {
            write!(
                f,
                ", queue {depth} (sent {}, agent {}) {:+.2}",
                self.in_flight, self.queue_depth, self.queue
            )?;
        }
        match (self.latency_ms, self.model_latency_ms) {
            (Some(d), Some(m)) => write!(
                f,
                ", latency {d:.1} ms vs {m:.1} ms avg {:+.2}",
                self.latency
            )?,
            _ => write!(f, ", latency unknown {:+.2}", self.latency)?,
        }
        match self.utilization_value {
            Some(u) => write!(
                f,
                ", utilisation {:.0}% {:+.2}",
                u * 100.0,
                self.utilization
            )?,
            None => write!(f, ", utilisation unreported {:+.2}", self.utilization)?,
        }
        match self.temperature_celsius {
            Some(t) => write!(
                f,
                ", temperature {t:.0} °C (throttles at {:.0}) {:+.2}",
                self.throttle_celsius, self.thermal
            )?,
            None => write!(f, ", temperature unreported {:+.2}", self.thermal)?,
        }
        match (self.power_watts, self.power_limit_watts) {
            (Some(p), Some(cap)) => write!(f, ", power {p:.0}/{cap:.0} W {:+.2}", self.power)?,
            _ => write!(f, ", power unreported {:+.2}", self.power)?,
        }
        write!(f, " = {:.2}", self.total())
    }
}

/// An eligible (node, device, backend), best first in [`Placement::candidates`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Candidate {
    /// Node name.
    pub node: String,
    /// Device id.
    pub device: String,
    /// Device kind.
    pub kind: DeviceType,
    /// Backend to run on.
    pub backend: String,
    /// Total score.
    pub score: f64,
    /// The model is already resident there.
    pub warm: bool,
    /// The device's breaker is half-open: this request would be its probe (call
    /// [`CircuitBreakers::on_dispatch`] when sending it).
    pub probe: bool,
    /// The score, term by term.
    pub terms: ScoreTerms,
}

impl Candidate {
    /// Human-readable breakdown of the score (`switchyard explain`).
    pub fn score_detail(&self) -> String {
        self.terms.to_string()
    }
}

/// Why a device was not a candidate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum RejectReason {
    /// The node is lost or draining.
    NodeNotReady,
    /// The device reports unhealthy.
    DeviceUnhealthy,
    /// Simulated device and the policy refuses them.
    SimulatedNotAllowed,
    /// The request needs an engine (function calling, structured output) and the device
    /// runs the native decoder.
    NeedsEngine,
    /// The stage's preferences do not list this kind and unlisted kinds are refused.
    KindNotAllowed {
        /// Device kind.
        kind: DeviceType,
        /// Stage.
        stage: StageKind,
    },
    /// The device's queue is full (concurrency-1 devices: busy).
    QueueFull {
        /// Requests in flight.
        in_flight: u32,
        /// Limit.
        max_concurrency: u32,
    },
    /// No backend is usable on the device and supported by the model.
    NoUsableBackend,
    /// The model does not fit with the policy's headroom.
    DoesNotFit {
        /// Bytes the model needs.
        needed_bytes: u64,
        /// Bytes that must stay free.
        headroom_bytes: u64,
        /// Bytes free now.
        free_bytes: u64,
        /// Bytes idle models hold that eviction could free.
        reclaimable_bytes: u64,
    },
    /// The node's agent does not have the model's files.
    ModelFilesMissing,
    /// The request already failed there.
    Excluded,
    /// The device's circuit is open.
    CircuitOpen {
        /// Time before a probe is allowed.
        retry_in: Duration,
    },
    /// The circuit is half-open and its one probe is in flight.
    ProbeInFlight,
    /// Generation on an NPU is for small models only (`npu_generate_max_bytes`).
    TooBigForNpuGeneration {
        /// Bytes the model needs.
        needed_bytes: u64,
        /// The policy's limit.
        max_bytes: u64,
    },
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RejectReason::NodeNotReady => write!(f, "node not ready (lost or draining)"),
            RejectReason::DeviceUnhealthy => write!(f, "device unhealthy"),
            RejectReason::SimulatedNotAllowed => {
                write!(f, "simulated device (allow_simulated = false)")
            }
            RejectReason::NeedsEngine => write!(
                f,
                "native decoder: tools and response_format need an engine (llama-server, Ollama, vLLM)"
            ),
            RejectReason::KindNotAllowed { kind, stage } => write!(
                f,
                "{} not in stage_preferences.{} (allow_unlisted_kinds = false)",
                kind_name(*kind),
                stage.as_str()
            ),
            RejectReason::QueueFull {
                in_flight,
                max_concurrency,
            } => write!(f, "queue full: {in_flight}/{max_concurrency} in flight"),
            RejectReason::NoUsableBackend => write!(f, "no usable backend for the model"),
            RejectReason::DoesNotFit {
                needed_bytes,
                headroom_bytes,
                free_bytes,
                reclaimable_bytes,
            } => {
                write!(
                    f,
                    "does not fit: needs {:.1} MB + {:.1} MB headroom, {:.1} MB free",
                    mb(*needed_bytes),
                    mb(*headroom_bytes),
                    mb(*free_bytes)
                )?;
                if *reclaimable_bytes > 0 {
                    write!(f, " + {:.1} MB held by idle models", mb(*reclaimable_bytes))?;
                }
                Ok(())
            }
            RejectReason::ModelFilesMissing => write!(
                f,
                "model files missing on this node (run scripts/setup.sh there, or check [models] dir)"
            ),
            RejectReason::Excluded => write!(f, "excluded: this request already failed there"),
            RejectReason::CircuitOpen { retry_in } => {
                write!(
                    f,
                    "circuit open (probe allowed in {:.1} s)",
                    retry_in.as_secs_f64()
                )
            }
            RejectReason::ProbeInFlight => write!(f, "circuit half-open, probe in flight"),
            RejectReason::TooBigForNpuGeneration {
                needed_bytes,
                max_bytes,
            } => write!(
                f,
                "an NPU generates with small models only: {:.1} MB > {:.1} MB (NPUs decode at 2-30 tok/s for 1B-parameter models; [scheduler.policy] npu_generate_max_bytes)",
                mb(*needed_bytes),
                mb(*max_bytes)
            ),
        }
    }
}

/// A device that was filtered out, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rejection {
    /// Node name.
    pub node: String,
    /// Device id.
    pub device: String,
    /// Device kind.
    pub kind: DeviceType,
    /// The first filter that failed.
    pub reason: RejectReason,
    /// Extra context (e.g. the backends on each side for [`RejectReason::NoUsableBackend`]).
    pub detail: String,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{} ({}): {}",
            self.node,
            self.device,
            kind_name(self.kind),
            self.reason
        )?;
        if !self.detail.is_empty() {
            write!(f, " ({})", self.detail)?;
        }
        Ok(())
    }
}

/// The fast path's answer: the best candidates, best first (empty: nowhere to run).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Placement {
    /// Up to `top_k` candidates, best first.
    pub candidates: Vec<Candidate>,
    /// Devices looked at.
    pub devices_seen: usize,
}

impl Placement {
    /// The best candidate.
    pub fn best(&self) -> Option<&Candidate> {
        self.candidates.first()
    }
}

/// The dry run: every candidate ranked and every rejection with its reason.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explanation {
    /// Stage.
    pub stage: StageKind,
    /// Model.
    pub model: String,
    /// All eligible candidates, best first.
    pub candidates: Vec<Candidate>,
    /// All rejected devices, in view order.
    pub rejected: Vec<Rejection>,
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} {}: {} candidate(s), {} rejected",
            self.stage.as_str(),
            self.model,
            self.candidates.len(),
            self.rejected.len()
        )?;
        for (i, c) in self.candidates.iter().enumerate() {
            writeln!(
                f,
                "  #{} {}/{} ({}, {}){} score {:.2}: {}",
                i + 1,
                c.node,
                c.device,
                kind_name(c.kind),
                c.backend,
                if c.probe { " [probe]" } else { "" },
                c.score,
                c.score_detail()
            )?;
        }
        for r in &self.rejected {
            writeln!(f, "  rejected {r}")?;
        }
        Ok(())
    }
}
