//! `gradfit neyman`: Neyman belts of the profile likelihood ratio from toys,
//! the intervals they give, and a plot of the belts with the observed scan.

use super::table::{Table, fmt};
use super::{ModelArgs, OutputArgs, num};
use crate::error::{Error, Result};
use crate::fit::FitOptions;
use crate::infer::Problem;
use crate::infer::neyman::{NeymanSettings, neyman};
use crate::infer::neyman_plot::BeltPlot;
use crate::infer::scan::parse_range;
use crate::model::ModelInfo;
use clap::Args;
use std::path::PathBuf;

/// Arguments of `gradfit neyman`.
#[derive(Args, Debug)]
pub struct NeymanArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// POI grid LO:HI:N.
    #[arg(long, value_name = "LO:HI:N", allow_hyphen_values = true)]
    range: String,
    /// Toys per grid point.
    #[arg(long, default_value_t = 1000)]
    toys: u32,
    /// Confidence levels, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "0.6827,0.9545")]
    cl: Vec<f64>,
    /// Seed of the counter-based random streams (same seed, same belts).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Toys fitted per batch (2 fits each); results do not depend on it.
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Keep every toy's statistic in the JSON output.
    #[arg(long)]
    keep_toys: bool,
    /// Plot of the belts and the observed profile scan (.svg or .png).
    #[arg(long, value_name = "FILE")]
    plot: Option<PathBuf>,
    #[command(flatten)]
    pub(super) out: OutputArgs,
}

/// `gradfit neyman`.
pub fn neyman_cmd(a: &NeymanArgs) -> Result<i32> {
    if let Some(p) = &a.plot {
        crate::report::plot::Format::from_path(p)?;
    }
    let loaded = a.model.load_any()?;
    crate::with_model!(&loaded.model, m => run(a, m))
}

fn run<M: ModelInfo>(a: &NeymanArgs, model: &M) -> Result<i32> {
    let grid = parse_range(&a.range).map_err(Error::Input)?;
    let engine = model.engine(&a.model.device)?;
    let p = Problem::new(model, model.observed())?.with_fitter(&*engine);
    // the bar appears with the first report, when its length is known
    let pb: std::sync::OnceLock<Option<indicatif::ProgressBar>> = std::sync::OnceLock::new();
    let report = |done: u64, total: u64| {
        if let Some(pb) = pb.get_or_init(|| super::progress::bar(total, "fits", "neyman toys")) {
            pb.set_length(total);
            pb.set_position(done);
        }
    };
    let settings = NeymanSettings {
        grid,
        n_toys: a.toys,
        cls: a.cl.clone(),
        seed: a.seed,
        batch: a.batch,
    };
    for msg in closure_warnings(&model.describe()) {
        eprintln!("warning: {msg}");
    }
    let n = neyman(&p, &settings, &FitOptions::default(), a.keep_toys, &report)?;
    if let Some(Some(pb)) = pb.get() {
        pb.finish_and_clear();
    }
    for msg in &n.messages {
        eprintln!("warning: {msg}");
    }
    if let Some(path) = &a.plot {
        let plot = BeltPlot {
            neyman: n.clone(),
            title: format!(
                "Neyman belts: {} ({} toys per point)",
                model.label(),
                n.n_toys
            ),
        };
        crate::report::plot::write(&plot, path)?;
    }
    let mut v = serde_json::to_value(&n).map_err(|e| Error::input(e.to_string()))?;
    v["mu_hat"] = num(n.mu_hat);
    a.out.emit(&v, || {
        let mut s = format!(
            "Neyman construction for {} ({} toys per point, seed {}); best fit {} = {}\n\n",
            n.parameter,
            n.n_toys,
            n.seed,
            n.parameter,
            fmt(n.mu_hat)
        );
        let mut head = vec![n.parameter.clone(), "t_obs".to_string()];
        head.extend(n.cls.iter().map(|c| format!("c({c})")));
        let hr: Vec<&str> = head.iter().map(|s| s.as_str()).collect();
        let right = vec![true; hr.len()];
        let mut t = Table::new(&hr, &right);
        for p in &n.points {
            let mut row = vec![fmt(p.mu), fmt(p.t_obs)];
            row.extend(p.critical.iter().map(|c| fmt(*c)));
            t.row(row);
        }
        s.push_str(&t.render());
        s.push('\n');
        for iv in &n.intervals {
            let segs: Vec<String> = iv
                .segments
                .iter()
                .map(|x| format!("[{}, {}]", fmt(x[0]), fmt(x[1])))
                .collect();
            s.push_str(&format!(
                "{:.2}% interval: {}{}\n",
                100.0 * iv.cl,
                if segs.is_empty() {
                    "(empty on this grid)".to_string()
                } else {
                    segs.join(" u ")
                },
                if iv.open_below || iv.open_above {
                    "  (reaches the grid's end)"
                } else {
                    ""
                }
            ));
        }
        s
    })?;
    let ok = n.points.iter().all(|p| p.converged && p.n_failed == 0);
    Ok(if ok { 0 } else { super::EXIT_NOT_CONVERGED })
}

/// Largest mismatch between a process yield and its reweighted reference
/// sample, in standard deviations of that yield's Poisson count, before the
/// bootstrap toys are called biased.
const CLOSURE_SIGMAS: f64 = 0.3;

/// Warnings for unbinned channels whose reweighted reference sample misses a
/// process yield by more than [`CLOSURE_SIGMAS`] of its Poisson standard
/// deviation: the bootstrap toys then carry other yields than the
/// likelihood, the nuisance parameters profiled on them are biased and the
/// belts come out too wide (docs/nsbi.md, Tests).
fn closure_warnings(description: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    let parts = description["parts"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    for part in parts {
        let diag = &part["diagnostics"];
        let Some(closure) = diag["closure"].as_array() else {
            continue;
        };
        for c in closure {
            let (Some(nu), Some(ratio)) = (c["nu"].as_f64(), c["ratio"].as_f64()) else {
                continue;
            };
            let sigmas = (ratio - 1.0).abs() * nu.max(0.0).sqrt();
            if sigmas > CLOSURE_SIGMAS {
                out.push(format!(
                    "channel {}: the {} reference events reweighted to process {} give {} \
                     times its yield {} ({:.2} standard deviations of its count): bootstrap toys \
                     carry other yields than the likelihood, which biases the profiled nuisance \
                     parameters and widens the belts; use a larger reference sample",
                    diag["channel"].as_str().unwrap_or("?"),
                    diag["n_events"],
                    c["process"].as_str().unwrap_or("?"),
                    fmt(ratio),
                    fmt(nu),
                    sigmas
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::closure_warnings;
    use serde_json::json;

    #[test]
    fn closure_warning_only_beyond_a_third_of_a_standard_deviation() {
        let desc = |ratio: f64| {
            json!({"parts": [{"diagnostics": {"channel": "SR", "n_events": 400,
                "closure": [{"process": "B", "nu": 400.0, "ratio": ratio}]}}]})
        };
        // 400 expected events: sd 20; 1% off is 0.2 sd, 5% off is 1 sd
        assert!(closure_warnings(&desc(1.01)).is_empty());
        let w = closure_warnings(&desc(1.05));
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("process B") && w[0].contains("1.00 standard deviations"),
            "{w:?}"
        );
        assert!(closure_warnings(&json!({"channels": []})).is_empty());
    }
}
