//! neos's four-blob demonstration: a 2-1024-1024-1 network trained on the
//! expected CLs through KDE histograms, a HistFactory model and its fits.
//!
//! ```sh
//! cargo run --release --example neos -- --steps 10 --json
//! ```
//!
//! Per step: the training loss (CLs on the batch), the test-set CLs (hard
//! histograms), the POI uncertainty at mu = 1, the step time and the time of
//! the statistics part (templates -> fits -> loss and template gradients).

use clap::Parser;
use gradfit::train::neos::{Neos, NeosConfig};
use serde_json::json;

#[derive(Parser)]
struct Args {
    /// Training steps.
    #[arg(long, default_value_t = 10)]
    steps: usize,
    /// Seed of data, initialisation and batches.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Hidden layer sizes (comma-separated).
    #[arg(long, default_value = "1024,1024")]
    hidden: String,
    /// Events per sample and batch.
    #[arg(long, default_value_t = 2000)]
    batch: usize,
    /// Print one JSON document on stdout.
    #[arg(long)]
    json: bool,
}

/// mimalloc keeps freed activation buffers for reuse (see Cargo.toml).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let a = Args::parse();
    let hidden: Vec<usize> = match a.hidden.split(',').map(|s| s.trim().parse()).collect() {
        Ok(h) => h,
        Err(e) => {
            eprintln!("error: --hidden {}: {e}", a.hidden);
            std::process::exit(2);
        }
    };
    let cfg = NeosConfig {
        steps: a.steps,
        seed: a.seed,
        hidden,
        batch: a.batch,
        ..Default::default()
    };
    if let Err(e) = run(cfg, a.json) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run(cfg: NeosConfig, json_out: bool) -> gradfit::Result<()> {
    let mut neos = Neos::new(cfg, candle_core::DType::F32)?;
    let initial = neos.test_metrics()?;
    let get =
        |m: &[(String, f64)], k: &str| m.iter().find(|(n, _)| n == k).map_or(f64::NAN, |x| x.1);
    eprintln!(
        "initial: CLs {:.4e}  sigma_mu {:.4}",
        get(&initial, "cls"),
        get(&initial, "sigma_mu")
    );
    let mut steps = Vec::new();
    let curve = neos.train(json_out, |r| {
        eprintln!(
            "step {:3}: loss {:.4e}  CLs {:.4e}  sigma_mu {:.4}  {:.3} s (statistics {:.2} ms)",
            r.step,
            r.loss,
            get(&r.metrics, "cls"),
            get(&r.metrics, "sigma_mu"),
            r.seconds,
            r.stats_seconds * 1e3
        );
        steps.push(json!({
            "step": r.step, "loss": r.loss, "cls": get(&r.metrics, "cls"),
            "sigma_mu": get(&r.metrics, "sigma_mu"), "z_discovery": get(&r.metrics, "z_discovery"),
            "seconds": r.seconds, "stats_seconds": r.stats_seconds,
        }));
    })?;
    let n = curve.seconds.len().max(1) as f64;
    let mean_step = curve.seconds.iter().sum::<f64>() / n;
    let stats: Vec<f64> = steps
        .iter()
        .map(|s| s["stats_seconds"].as_f64().unwrap_or(f64::NAN))
        .collect();
    let mean_stats = stats.iter().sum::<f64>() / n;
    if json_out {
        let out = json!({
            "initial": {"cls": get(&initial, "cls"), "sigma_mu": get(&initial, "sigma_mu")},
            "steps": steps,
            "mean_step_seconds": mean_step,
            "mean_stats_seconds": mean_stats,
        });
        println!("{}", serde_json::to_string_pretty(&out).expect("json"));
    }
    Ok(())
}
