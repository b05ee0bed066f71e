//! `gradfit train CONFIG.json`: train a network on an inference loss.

use crate::error::{Error, Result};
use crate::train::config::{Problem, TrainConfig};
use crate::train::inferno::{Inferno, generate};
use crate::train::neos::Neos;
use crate::train::run::progress;
use clap::Args;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Arguments of `gradfit train`.
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Configuration file (problem, network, binning, loss, optimiser, steps, seed, output).
    pub config: PathBuf,
    /// Override the number of steps (neos) or epochs (inferno).
    #[arg(long)]
    pub steps: Option<usize>,
    /// Override the output folder.
    #[arg(short = 'o', long = "output", value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

fn write_json(path: &Path, v: &Value) -> Result<()> {
    crate::util::write_json_atomic(path, v)
}

/// Run a training configuration; writes config, curve (JSON and SVG),
/// network checkpoint (safetensors), summary and, for neos, the pyhf workspace.
pub fn train(a: &TrainArgs) -> Result<i32> {
    let mut cfg = TrainConfig::load(&a.config)?;
    if let Some(o) = &a.output {
        cfg.output = o.clone();
    }
    if let Some(n) = a.steps {
        match &mut cfg.problem {
            Problem::Neos(c) => c.steps = n,
            Problem::Inferno(c) => c.epochs = n,
        }
    }
    let out = cfg.output.clone();
    std::fs::create_dir_all(&out).map_err(|e| Error::Io {
        path: out.clone(),
        source: e,
    })?;
    write_json(
        &out.join("config.json"),
        &serde_json::to_value(&cfg).map_err(|e| Error::input(e.to_string()))?,
    )?;
    let t0 = Instant::now();
    let summary = match &cfg.problem {
        Problem::Neos(c) => {
            let mut neos = Neos::new(c.clone(), candle_core::DType::F32)?;
            let initial = neos.test_metrics()?;
            let quiet = a.json;
            let curve = neos.train(quiet, |r| {
                if !quiet {
                    let m: Vec<String> = r
                        .metrics
                        .iter()
                        .map(|(k, v)| format!("{k} {v:.4e}"))
                        .collect();
                    eprintln!(
                        "step {:4}: loss {:.4e}  {}  {:.3} s",
                        r.step,
                        r.loss,
                        m.join("  "),
                        r.seconds
                    );
                }
            })?;
            curve.write_json(&out.join("curve.json"))?;
            curve.write_plot(&out.join("curve.svg"))?;
            neos.net.save(&out.join("network.safetensors"))?;
            let ws = neos.export()?;
            write_json(&out.join("workspace.json"), &ws)?;
            let fin = neos.test_metrics()?;
            let obj = |m: &[(String, f64)]| -> Value {
                m.iter()
                    .map(|(k, v)| (k.clone(), json!(v)))
                    .collect::<serde_json::Map<_, _>>()
                    .into()
            };
            json!({
                "problem": "neos",
                "initial": obj(&initial),
                "final": obj(&fin),
                "final_loss": curve.loss.last(),
                "steps": curve.step.len(),
                "mean_step_seconds": curve.seconds.iter().sum::<f64>() / curve.seconds.len().max(1) as f64,
                "workspace": "workspace.json",
                "workspace_poi": 1.0,
                "workspace_test_stat": "qtilde",
            })
        }
        Problem::Inferno(c) => {
            let inf = Inferno::new(c.clone())?;
            let train = generate(c.n_train, c.seed, 0x7472_6e01)?;
            let test = generate(c.n_test, c.seed, 0x7473_7401)?;
            let pb = progress(c.epochs as u64, "inferno", a.json);
            let quiet = a.json;
            let (net, curve) = inf.train_with(c.seed, &train, &mut |e, l| {
                if let Some(pb) = &pb {
                    pb.inc(1);
                } else if !quiet {
                    eprintln!(
                        "epoch {e:4}: loss {l:.5e}  sigma_s(train batch) {:.3}",
                        c.s * l.sqrt()
                    );
                }
            })?;
            if let Some(pb) = pb {
                pb.finish_and_clear();
            }
            curve.write_json(&out.join("curve.json"))?;
            curve.write_plot(&out.join("curve.svg"))?;
            net.save(&out.join("network.safetensors"))?;
            let counts =
                |x: &candle_core::Tensor| crate::train::hist::argmax_hist(&net.forward(x)?, None);
            let sigma = inf.sigma_s(&counts, &test)?;
            json!({
                "problem": "inferno",
                "benchmark": c.benchmark,
                "sigma_s": sigma,
                "final_loss": curve.loss.last(),
                "epochs": curve.step.len(),
                "mean_epoch_seconds": curve.seconds.iter().sum::<f64>() / curve.seconds.len().max(1) as f64,
            })
        }
    };
    let mut summary = summary;
    summary["seconds"] = json!(t0.elapsed().as_secs_f64());
    write_json(&out.join("summary.json"), &summary)?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&summary).map_err(|e| Error::input(e.to_string()))?
        );
    } else {
        eprintln!("wrote {}", out.display());
    }
    Ok(0)
}
