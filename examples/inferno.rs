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
//!
//! `--analytic-only` prints only the true likelihood's figures (profile width
//! and Fisher). `--evaluate-net W.safetensors` (repeatable) also measures
//! networks trained elsewhere (3-100-100-10 softmax summaries, weights named
//! `layer{l}.weight` / `layer{l}.bias`, e.g. pytorch_inferno's, written by
//! `bench/train_compare.py inferno-sigma`) on the same test sample: their
//! sigma_s are printed under `"evaluated"`.

use candle_core::DType;
use clap::Parser;
use gradfit::train::inferno::{
    Benchmark, Inferno, InfernoConfig, analytic_profile_sigma_s, analytic_sigma_s, run_benchmark,
};
use gradfit::train::nn::Mlp;
use serde_json::json;
use std::path::PathBuf;

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
    /// Only the true likelihood's figures (no training).
    #[arg(long)]
    analytic_only: bool,
    /// Also measure these trained networks (safetensors) on the test sample.
    #[arg(long)]
    evaluate_net: Vec<PathBuf>,
}

/// sigma_s of networks trained elsewhere, on this run's test sample.
fn evaluate(cfg: &InfernoConfig, paths: &[PathBuf]) -> gradfit::error::Result<Vec<f64>> {
    let inf = Inferno::new(cfg.clone())?;
    let test = inf.test_sample()?;
    let mut sizes = vec![3];
    sizes.extend(&cfg.hidden);
    sizes.push(cfg.bins);
    paths
        .iter()
        .map(|p| {
            let mut net = Mlp::new(&sizes, DType::F32, 0)?;
            net.load(p)?;
            inf.sigma_s_of_net(&net, &test)
        })
        .collect()
}

fn fail(e: gradfit::error::Error) -> ! {
    eprintln!("error: {e}");
    std::process::exit(1);
}

/// mimalloc keeps freed activation buffers for reuse (see Cargo.toml).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    if a.analytic_only {
        let t0 = std::time::Instant::now();
        let bm = Benchmark::new(cfg.benchmark).unwrap_or_else(|e| fail(e));
        let prof = analytic_profile_sigma_s(&bm, cfg.s, cfg.b, cfg.n_analytic, cfg.seed)
            .unwrap_or_else(|e| fail(e));
        let fisher = analytic_sigma_s(&bm, cfg.s, cfg.b, cfg.n_analytic, cfg.seed)
            .unwrap_or_else(|e| fail(e));
        println!(
            "{}",
            json!({"benchmark": cfg.benchmark, "sigma_s_analytic": prof,
                   "sigma_s_analytic_fisher": fisher, "events": cfg.n_analytic,
                   "seconds": t0.elapsed().as_secs_f64()})
        );
        return;
    }
    let evaluated = evaluate(&cfg, &a.evaluate_net).unwrap_or_else(|e| fail(e));
    match run_benchmark(&cfg, |s| eprintln!("{s}")) {
        Ok(r) => {
            if a.json {
                let out = json!({
                    "benchmark": r.benchmark, "sigma_s_inferno": r.sigma_s_inferno,
                    "sigma_s_bce": r.sigma_s_bce, "sigma_s_analytic": r.sigma_s_analytic,
                    "sigma_s_analytic_fisher": r.sigma_s_analytic_fisher,
                    "seeds": r.seeds, "seconds": r.seconds,
                    "inferno_all": r.inferno_all, "bce_all": r.bce_all,
                    "inferno_epoch_seconds": r.inferno_epoch_seconds,
                    "evaluated": evaluated,
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
        Err(e) => fail(e),
    }
}
