//! The GGUF header reader (`switchyard models add --gguf`, the agent's engine models) on
//! arbitrary bytes, then the memory estimate and quantisation name of whatever it accepts,
//! at small and at extreme context sizes. Invariants: no panic (an arithmetic overflow
//! panics in these builds), and the estimate's total is the sum of its parts.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use switchyard_backend_core::gguf::GgufInfo;

fuzz_target!(|data: &[u8]| {
    let Ok(info) = GgufInfo::parse(data, Path::new("fuzz.gguf")) else {
        return;
    };
    let _ = info.quantization();
    for (ctx, parallel) in [(1, 1), (4096, 4), (u32::MAX, u32::MAX)] {
        let e = info.estimate(ctx, parallel);
        assert_eq!(
            e.total(),
            e.weights
                .saturating_add(e.kv_cache)
                .saturating_add(e.compute)
        );
    }
});
