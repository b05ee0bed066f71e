//! `gradfit selftest`: the GPU against the CPU on a model, and a short benchmark.
//!
//! Checks (each records its measured deviation and tolerance):
//! - batched evaluation at random points (observed and Asimov data): twice_nll,
//!   gradient, exact Hessian and Fisher information, relative deviation
//!   `max |gpu - cpu| / max |cpu|` at most 1e-10;
//! - fits (free, POI fixed at 0 and 1, on observed and Asimov data): twice_nll
//!   within 1e-6 and the same success/failure;
//! - toys: the datasets the device draws against the CPU's (the fraction
//!   bit-identical is reported; per-bin means must agree within 5 standard
//!   errors), and toy CLs (observed and expected band) from a CPU and a GPU
//!   toy run with the same seed, within 3 standard errors.
//!
//! The benchmark times twice_nll + gradient evaluations at several batch
//! sizes and a toy run (fits per second), and turns the evaluation rate into
//! device-memory traffic and f64 throughput from the kernel's operation counts.
//!
//! Files: this one (options, report, entry point), `compare` (evaluations and
//! fits), `toys` (toy data and toy CLs), `bench` (the benchmark).

mod bench;
mod compare;
mod toys;

use super::exec::{Backend, Gpu};
use crate::error::Result;
use crate::infer::TestStat;
use crate::infer::toys::ToySettings;
use crate::model::HistFactoryModel;
use serde::Serialize;
use std::time::Instant;

/// What the selftest does.
#[derive(Debug, Clone)]
pub struct SelftestOptions {
    /// Random evaluation points per dataset.
    pub points: usize,
    /// Toys per hypothesis in the CPU/GPU toy comparison (0: skip it).
    pub toys: u32,
    /// Toys drawn for the dataset comparison.
    pub sample_toys: u32,
    /// Batch sizes of the evaluation benchmark (empty: no benchmark).
    pub bench_sizes: Vec<usize>,
    /// Toys per hypothesis of the toy benchmark (0: none).
    pub bench_toys: u32,
    /// Seed of every random choice.
    pub seed: u64,
}

impl Default for SelftestOptions {
    fn default() -> Self {
        SelftestOptions {
            points: 16,
            toys: 300,
            sample_toys: 2000,
            bench_sizes: vec![1, 1000, 100_000],
            bench_toys: 5000,
            seed: 20240917,
        }
    }
}

/// One comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// Model name.
    pub model: String,
    /// What was compared.
    pub what: String,
    /// Measured deviation.
    pub value: f64,
    /// Largest deviation allowed.
    pub tolerance: f64,
    /// Whether it passed.
    pub pass: bool,
    /// Details (counts, fractions).
    pub detail: String,
}

/// One benchmark result.
#[derive(Debug, Clone, Serialize)]
pub struct BenchRow {
    /// Model name.
    pub model: String,
    /// What was timed.
    pub what: String,
    /// Batch size (members).
    pub batch: usize,
    /// Rate per second (evaluations or fits).
    pub per_second: f64,
    /// Wall time of the timed part.
    pub seconds: f64,
    /// Estimated device-memory traffic (GB/s), evaluations only.
    pub gbytes_per_s: Option<f64>,
    /// Estimated f64 throughput (GFLOP/s), evaluations only.
    pub gflops: Option<f64>,
}

/// Everything a selftest found.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Report {
    /// The device.
    pub device: String,
    /// Comparisons.
    pub checks: Vec<Check>,
    /// Benchmark rows.
    pub bench: Vec<BenchRow>,
    /// Notes (skipped parts and why).
    pub notes: Vec<String>,
}

impl Report {
    /// True when every check passed.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.pass)
    }

    fn check(&mut self, model: &str, what: &str, value: f64, tolerance: f64, detail: String) {
        self.checks.push(Check {
            model: model.to_string(),
            what: what.to_string(),
            value,
            tolerance,
            pass: value <= tolerance,
            detail,
        });
    }
}

/// `max |a - b| / max |b|` (0 for two empty or all-zero vectors; infinite when
/// finiteness differs).
pub fn rel_dev(a: &[f64], b: &[f64]) -> f64 {
    if a.len() != b.len() {
        return f64::INFINITY;
    }
    let mut num: f64 = 0.0;
    let mut den: f64 = 0.0;
    for (x, y) in a.iter().zip(b) {
        if x.is_finite() != y.is_finite() {
            return f64::INFINITY;
        }
        if !y.is_finite() {
            continue;
        }
        num = num.max((x - y).abs());
        den = den.max(y.abs());
    }
    if num == 0.0 {
        0.0
    } else {
        num / den.max(f64::MIN_POSITIVE)
    }
}

/// Toy settings of the selftest's toy runs: `n_toys` per hypothesis, q~ at mu = 1.
fn qtilde_toys(n_toys: u32, seed: u64) -> ToySettings {
    ToySettings {
        mu: 1.0,
        test_stat: TestStat::QTilde,
        n_toys,
        seed,
        shard: None,
        batch: 1024,
        model_digest: String::new(),
        toy_max_iter: None,
    }
}

/// Run every check (and, when asked, the benchmark) for one model.
pub fn run_model<B: Backend>(
    gpu: &Gpu<B>,
    m: &HistFactoryModel,
    name: &str,
    opts: &SelftestOptions,
    rep: &mut Report,
) -> Result<()> {
    timed(name, "evaluations", || {
        compare::check_eval(gpu, m, name, opts, rep)
    })?;
    timed(name, "fits", || compare::check_fits(gpu, m, name, rep))?;
    timed(name, "toys", || toys::check_toys(gpu, m, name, opts, rep))?;
    if !opts.bench_sizes.is_empty() || opts.bench_toys > 0 {
        timed(name, "benchmark", || bench::bench(gpu, m, name, opts, rep))?;
    }
    Ok(())
}

/// Run one phase of a model's selftest and report its wall time on stderr
/// (long selftests show where they are).
fn timed(name: &str, phase: &str, f: impl FnOnce() -> Result<()>) -> Result<()> {
    let t0 = Instant::now();
    let r = f();
    eprintln!(
        "selftest: {name}: {phase} {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_deviation() {
        assert_eq!(rel_dev(&[1.0, 2.0], &[1.0, 2.0]), 0.0);
        assert!((rel_dev(&[1.0, 2.0 + 2e-10], &[1.0, 2.0]) - 1e-10).abs() < 1e-15);
        assert_eq!(rel_dev(&[f64::INFINITY], &[1.0]), f64::INFINITY);
        assert_eq!(rel_dev(&[1.0], &[1.0, 2.0]), f64::INFINITY);
    }
}
