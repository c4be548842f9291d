//! `switchyard`: one binary for every node — controller, agent, both at once (`up`), and the
//! operator commands (`status`, `devices`, ...).

mod api_token;
mod args;
mod commands;
mod config;
mod output;
mod wiring;

use std::process::ExitCode;

use clap::Parser;

/// mimalloc, not glibc malloc: under 32 concurrent embedding requests glibc's `malloc`/`free`
/// were 29 % of the request threads' CPU (perf, 2 vCPUs), and the API's throughput rose 9 %
/// with mimalloc in paired rounds. The runtimes' own C++ allocations are not affected.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    cuda_in_pci_bus_order();
    let cli = args::Cli::parse();
    init_logging(&cli.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// Makes CUDA number GPUs in PCI bus order, the order discovery computes their ordinals in
/// from NVML (CUDA's default is fastest first), so the GPU a trace names is the one that ran.
/// Set for the whole process before any thread starts and before ONNX Runtime loads CUDA.
#[allow(unsafe_code)]
fn cuda_in_pci_bus_order() {
    let (key, value) = switchyard_proto::attributes::CUDA_DEVICE_ORDER;
    // SAFETY: first statement of `main`: no other thread exists yet (no runtime, no logger,
    // no backend library loaded), so nothing reads or writes the environment concurrently.
    unsafe { std::env::set_var(key, value) };
}

/// Sets up logging to stderr.
fn init_logging(filter: &str) {
    // ONNX Runtime's own info logs (allocations, graph passes) are noise for operators.
    let directives = if filter.contains("ort=") {
        filter.to_string()
    } else {
        format!("{filter},ort=warn")
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&directives)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,ort=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// An error and its causes on one line.
fn one_line(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
    parts.join(": ").replace('\n', " ")
}
