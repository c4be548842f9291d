//! How many instances (streams) of a model a device runs side by side: a pure decision,
//! made once per load. The backend then loads that many or fewer
//! ([`switchyard_backend_core::Backend::load_streams`]; OpenVINO on a CPU compiles the model
//! once with `NUM_STREAMS` and splits its threads between the streams, the other backends run
//! one instance), and the batcher keeps one batch in flight per instance.
//!
//! A small encoder (MiniLM, the router) scales poorly across threads inside one call: each
//! layer ends at a barrier where the threads wait for the slowest, and a thread the OS hands to
//! the agent's own work (HTTP, gRPC, the batcher) stalls the others, which spin meanwhile. Two
//! streams of one thread each have no barrier between them, and one computes while the other
//! collects its next batch. This is OpenVINO's throughput mode and Triton's instance groups.
//!
//! The price would be latency: a lone request on one stream's share of the threads (measured:
//! 2.7 ms of compute against 1.8 ms on both threads). So a model run as streams also gets a
//! *wide* instance, compiled with all the threads, that the batcher gives a lone request on
//! an idle device and never runs beside a stream ([`crate::batcher`]); it costs a second copy
//! of the weights in RAM (MiniLM: ~90 MB in f32).
//!
//! Measured on this project's 2-vCPU VM (MiniLM, OpenVINO f32): pre-tokenised batches, direct,
//! one stream of 2 threads 1,743 sentences/s at batch 32, two streams of one thread over the
//! same compiled model 1,895/s at batch 16 (two separately compiled copies: no gain, they
//! compete for the cache). Through the HTTP API at 32 closed-loop clients, paired rounds with
//! all servers up at once: two streams, batches of a third of the clients, +17 % over one
//! stream with batches of half. So two streams are the default for a CPU encoder (cut to the
//! inference threads), and an entry sets `streams = 1` for one instance and no wide copy.
//!
//! Only classify/embed models on the CPU get streams: a decoder keeps per-request state in its
//! instance, and a GPU or NPU keeps its own queue (an NPU runs one request at a time).

use switchyard_backend_core::{DeviceType, ModelSpec, StageKind};

/// Streams when a model's entry does not set `streams`.
pub const DEFAULT_STREAMS: usize = 2;

/// The streams to ask for `spec` on a device of `device_type` with `threads` inference
/// threads (the node's `SWITCHYARD_THREADS`, or its cores): the entry's `streams`, else
/// [`DEFAULT_STREAMS`], cut to `threads` so that every stream has a thread.
pub fn plan(spec: &ModelSpec, device_type: DeviceType, threads: usize) -> usize {
    let encoder = matches!(spec.stage, StageKind::Embed | StageKind::Classify);
    if !encoder || device_type != DeviceType::Cpu || spec.engine.is_some() {
        return 1;
    }
    let wanted = spec.streams.map_or(DEFAULT_STREAMS, |n| n as usize);
    wanted.clamp(1, threads.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(stage: StageKind, streams: Option<u32>) -> ModelSpec {
        let mut s: ModelSpec = toml::from_str(
            r#"name = "m"
stage = "embed"
max_input_tokens = 8"#,
        )
        .unwrap();
        s.stage = stage;
        s.streams = streams;
        s
    }

    #[test]
    fn a_cpu_encoder_runs_two_streams_unless_its_entry_says_otherwise() {
        assert_eq!(plan(&spec(StageKind::Embed, None), DeviceType::Cpu, 16), 2);
        assert_eq!(plan(&spec(StageKind::Embed, None), DeviceType::Cpu, 1), 1);
        assert_eq!(
            plan(&spec(StageKind::Embed, Some(1)), DeviceType::Cpu, 16),
            1
        );
        assert_eq!(
            plan(&spec(StageKind::Embed, Some(2)), DeviceType::Cpu, 2),
            2
        );
        assert_eq!(
            plan(&spec(StageKind::Classify, Some(2)), DeviceType::Cpu, 16),
            2
        );
    }

    #[test]
    fn the_entry_sets_streams_and_they_never_outnumber_the_threads() {
        let four = spec(StageKind::Embed, Some(4));
        assert_eq!(plan(&four, DeviceType::Cpu, 16), 4);
        assert_eq!(plan(&four, DeviceType::Cpu, 3), 3);
        assert_eq!(
            plan(&spec(StageKind::Embed, Some(1)), DeviceType::Cpu, 16),
            1
        );
        // One core: one stream, whatever the entry asks.
        assert_eq!(
            plan(&spec(StageKind::Embed, Some(2)), DeviceType::Cpu, 1),
            1
        );
    }

    #[test]
    fn decoders_and_accelerators_run_one_instance() {
        assert_eq!(
            plan(&spec(StageKind::Generate, Some(4)), DeviceType::Cpu, 16),
            1
        );
        for device in [
            DeviceType::NvidiaGpu,
            DeviceType::IntelGpu,
            DeviceType::IntelNpu,
            DeviceType::Ncs2,
        ] {
            assert_eq!(
                plan(&spec(StageKind::Embed, Some(4)), device, 16),
                1,
                "{device:?}"
            );
        }
    }
}
