//! The `lfm-agent` command line.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    pin_thread_count();
    let args = cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LFM_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Fixes the thread count in `RAYON_NUM_THREADS` (unless the user set it) before any thread
/// starts. candle asks for its thread count on every dense matmul and, without the variable,
/// counts physical cores by reading `/proc/cpuinfo` each time: measured at over a quarter of
/// the run time of `bench constraint` on the tiny model. The value is the one rayon's pool
/// (the quantized kernels) uses anyway, so candle and the kernels agree.
///
/// It also shortens the spin of candle's own helper threads (they run its elementwise ops) to
/// 500 turns before they sleep, unless `CANDLE_BARRIER_POOL_SPIN_LIMIT` is set: at candle's
/// 25,000 a helper kept spinning while the quantized kernels ran on the same cores, and on 2
/// cores batch-8 decode of the 1.2B Q4_0 went from 88.4 to 102.8 tok/s and batch 1 from 41.1
/// to 44.2 with the shorter spin (prefill unchanged).
fn pin_thread_count() {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    }
    if std::env::var_os("CANDLE_BARRIER_POOL_SPIN_LIMIT").is_none() {
        std::env::set_var("CANDLE_BARRIER_POOL_SPIN_LIMIT", "500");
    }
}
