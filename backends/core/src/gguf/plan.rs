//! Where a model's layers go when it does not fit one device whole: the bytes of each
//! repeating layer (its `blk.N.*` tensors), of the output layer and of the input embedding,
//! the KV cache per layer, and how many layers fit a memory budget — llama.cpp's `-ngl`, filled
//! back to front as llama.cpp counts them: the output layer first (a model with tied
//! embeddings, no `output.weight`, gets a copy of `token_embd` there), then the last repeating
//! layer, and so on. An estimate for placement, from the header alone; checked against
//! llama.cpp's own `llama-fit-params` in tests/e2e/gpu.rs.

use super::GgufInfo;

/// llama-server's default micro-batch (`-ub`): the compute buffer is sized for it.
pub const UBATCH: u64 = 512;

/// A model's bytes by where llama.cpp puts them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerSizes {
    /// Each repeating layer `blk.N.*`, in order.
    pub layers: Vec<u64>,
    /// The output layer (`output.*`, `output_norm.*`; with tied embeddings, the copy of
    /// `token_embd` llama.cpp makes for it): offloaded first.
    pub output: u64,
    /// The input embedding (`token_embd.*`): stays on the host.
    pub input: u64,
    /// Anything else (rope tables, …): on the host.
    pub other: u64,
}

/// How many layers go on the device, and the bytes on each side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffloadPlan {
    /// llama.cpp's `-ngl`: the layers on the device, counted from the back (the output layer
    /// first, then the repeating layers from the last).
    pub gpu_layers: u32,
    /// `-ngl` for the whole model: repeating layers + 1.
    pub total_layers: u32,
    /// Device memory: its layers' weights and KV cache, and the compute buffer.
    pub device_bytes: u64,
    /// Host memory: the other weights and their KV cache.
    pub host_bytes: u64,
    /// Weight bytes on the device.
    pub device_weight_bytes: u64,
    /// Weight bytes of the whole model.
    pub weight_bytes: u64,
}

impl OffloadPlan {
    /// Whether the whole model is on the device.
    pub fn whole(&self) -> bool {
        self.gpu_layers == self.total_layers
    }

    /// The share of the weights the device holds (0..=1): what decode speed follows.
    pub fn device_share(&self) -> f64 {
        if self.weight_bytes == 0 {
            return 0.0;
        }
        self.device_weight_bytes as f64 / self.weight_bytes as f64
    }
}

/// The layer index of a `blk.N.…` tensor name.
fn block_of(name: &str) -> Option<usize> {
    name.strip_prefix("blk.")?.split('.').next()?.parse().ok()
}

impl GgufInfo {
    /// The tensors' bytes grouped as llama.cpp places them.
    pub fn layer_sizes(&self) -> LayerSizes {
        let mut sizes = LayerSizes {
            layers: vec![0; self.block_count as usize],
            output: 0,
            input: 0,
            other: 0,
        };
        for t in &self.tensors {
            match block_of(&t.name) {
                Some(i) if i < sizes.layers.len() => sizes.layers[i] += t.bytes,
                _ if t.name.starts_with("output") => sizes.output += t.bytes,
                _ if t.name.starts_with("token_embd") => sizes.input += t.bytes,
                _ => sizes.other += t.bytes,
            }
        }
        if !self.tensors.iter().any(|t| t.name == "output.weight") {
            sizes.output += sizes.input;
        }
        sizes
    }

    /// KV cache of one layer for `ctx` tokens per slot × `parallel` slots (f16 K and V).
    pub fn kv_bytes_per_layer(&self, ctx: u32, parallel: u32) -> u64 {
        [
            u64::from(self.head_count_kv),
            u64::from(self.head_dim),
            u64::from(ctx),
            u64::from(parallel.max(1)),
            2,
        ]
        .into_iter()
        .fold(2u64, u64::saturating_mul)
    }

    /// The device's compute buffer: the logits of a micro-batch (f32) and its activations.
    pub fn device_compute_bytes(&self) -> u64 {
        UBATCH
            .saturating_mul(
                self.vocab_size
                    .saturating_add(2 * u64::from(self.embedding_length)),
            )
            .saturating_mul(4)
    }

    /// The least device memory for a partial offload worth making: the compute buffer, the
    /// output layer and the largest repeating layer with its KV cache (`-ngl 2`).
    pub fn min_offload_bytes(&self, ctx: u32, parallel: u32) -> u64 {
        let sizes = self.layer_sizes();
        let layer = sizes.layers.iter().copied().max().unwrap_or(0);
        self.device_compute_bytes()
            .saturating_add(sizes.output)
            .saturating_add(layer)
            .saturating_add(self.kv_bytes_per_layer(ctx, parallel))
    }

    /// The most layers that fit `budget` bytes of device memory, back to front.
    pub fn plan_offload(&self, ctx: u32, parallel: u32, budget: u64) -> OffloadPlan {
        let sizes = self.layer_sizes();
        let kv = self.kv_bytes_per_layer(ctx, parallel);
        let n = sizes.layers.len();
        // Back to front: the output layer (no KV cache), then the last repeating layer first.
        let order =
            std::iter::once((sizes.output, 0)).chain(sizes.layers.iter().rev().map(|l| (*l, kv)));
        let mut used = self.device_compute_bytes();
        let (mut gpu_layers, mut device_weight_bytes, mut device_kv) = (0u32, 0u64, 0u64);
        for (weights, cache) in order {
            let next = used.saturating_add(weights).saturating_add(cache);
            if next > budget {
                break;
            }
            (used, gpu_layers) = (next, gpu_layers + 1);
            device_weight_bytes += weights;
            device_kv += cache;
        }
        // Tied embeddings: the output copy is extra, the host keeps token_embd.
        let tied = u64::from(!self.tensors.iter().any(|t| t.name == "output.weight")) * sizes.input;
        let weight_bytes =
            sizes.layers.iter().sum::<u64>() + sizes.output + sizes.input + sizes.other - tied;
        let host_weights =
            weight_bytes + if gpu_layers > 0 { tied } else { 0 } - device_weight_bytes;
        OffloadPlan {
            gpu_layers,
            total_layers: n as u32 + 1,
            device_bytes: if gpu_layers == 0 { 0 } else { used },
            host_bytes: host_weights + kv.saturating_mul(n as u64) - device_kv,
            device_weight_bytes,
            weight_bytes,
        }
    }
}
