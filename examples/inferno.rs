//! INFERNO's synthetic benchmark: INFERNO networks (softmax summary trained
//! on the POI variance with the nuisances in the loop) against BCE
//! classifiers cut into equal bins, and the true likelihood's figure.
//!
//! ```sh
//! cargo run --release --example inferno -- --benchmark 2 --json
//! ```
//!
//! Prints `{"benchmark": B, "sigma_s_inferno": ..., "sigma_s_bce": ...,
//! "sigma_s_analytic": ..., "seeds": n, "seconds": t}` (medians over seeds).

use clap::Parser;
use gradfit::train::inferno::{InfernoConfig, run_benchmark};
use serde_json::json;

#[derive(Parser)]
struct Args {
    /// Benchmark 0-4.
    #[arg(long, default_value_t = 2)]
    benchmark: u8,
    /// Network initialisations.
    #[arg(long)]
    seeds: Option<usize>,
    /// INFERNO training epochs.
    #[arg(long)]
    epochs: Option<usize>,
    /// Training events per class.
    #[arg(long)]
    n_train: Option<usize>,
    /// Test events per class.
    #[arg(long)]
    n_test: Option<usize>,
    /// First seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print one JSON document on stdout.
    #[arg(long)]
    json: bool,
}

fn main() {
    // one network per core, each network's small matrix products on one thread
    // (before any thread starts; candle reads the variable at each product)
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        // SAFETY: no other thread exists yet
        unsafe { std::env::set_var("RAYON_NUM_THREADS", "1") };
    }
    let a = Args::parse();
    let d = InfernoConfig::default();
    let cfg = InfernoConfig {
        benchmark: a.benchmark,
        seeds: a.seeds.unwrap_or(d.seeds),
        epochs: a.epochs.unwrap_or(d.epochs),
        n_train: a.n_train.unwrap_or(d.n_train),
        n_test: a.n_test.unwrap_or(d.n_test),
        seed: a.seed,
        ..d
    };
    match run_benchmark(&cfg, |s| eprintln!("{s}")) {
        Ok(r) => {
            if a.json {
                let out = json!({
                    "benchmark": r.benchmark, "sigma_s_inferno": r.sigma_s_inferno,
                    "sigma_s_bce": r.sigma_s_bce, "sigma_s_analytic": r.sigma_s_analytic,
                    "seeds": r.seeds, "seconds": r.seconds,
                    "inferno_all": r.inferno_all, "bce_all": r.bce_all,
                    "inferno_epoch_seconds": r.inferno_epoch_seconds,
                });
                println!("{out}");
            } else {
                println!(
                    "benchmark {}: sigma_s INFERNO {:.2}, BCE {:.2}, true likelihood {:.2} ({} seeds, {:.0} s, {:.3} s per INFERNO epoch)",
                    r.benchmark,
                    r.sigma_s_inferno,
                    r.sigma_s_bce,
                    r.sigma_s_analytic,
                    r.seeds,
                    r.seconds,
                    r.inferno_epoch_seconds
                );
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
