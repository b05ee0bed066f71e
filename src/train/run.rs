//! Training infrastructure: optimisers, minibatches, training curves (JSON and
//! a plot), progress bars and checkpoints.

use crate::error::{Error, Result};
use crate::report::plot::{Plot, write as write_plot};
use crate::rng::Stream;
use candle_core::Var;
use candle_core::backprop::GradStore;
use candle_nn::optim::{AdamW, Optimizer, ParamsAdamW, SGD};
use plotters::coord::Shift;
use plotters::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::Path;

/// Optimiser settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum OptimConfig {
    /// Adam (candle-nn's AdamW without weight decay).
    Adam {
        /// Learning rate.
        lr: f64,
        /// First-moment decay.
        #[serde(default = "beta1")]
        beta1: f64,
        /// Second-moment decay.
        #[serde(default = "beta2")]
        beta2: f64,
        /// Denominator offset.
        #[serde(default = "eps")]
        eps: f64,
    },
    /// Plain stochastic gradient descent.
    Sgd {
        /// Learning rate.
        lr: f64,
    },
}

fn beta1() -> f64 {
    0.9
}
fn beta2() -> f64 {
    0.999
}
fn eps() -> f64 {
    1e-8
}

impl OptimConfig {
    /// Adam with the usual defaults.
    pub fn adam(lr: f64) -> Self {
        OptimConfig::Adam {
            lr,
            beta1: beta1(),
            beta2: beta2(),
            eps: eps(),
        }
    }
}

/// An optimiser over a set of variables.
pub enum Optim {
    /// Adam.
    Adam(AdamW),
    /// SGD.
    Sgd(SGD),
}

impl Optim {
    /// Build the optimiser of `cfg` over `vars`.
    pub fn new(cfg: &OptimConfig, vars: Vec<Var>) -> Result<Self> {
        Ok(match *cfg {
            OptimConfig::Adam {
                lr,
                beta1,
                beta2,
                eps,
            } => {
                if !(lr > 0.0) {
                    return Err(Error::input(format!("learning rate {lr} must be positive")));
                }
                Optim::Adam(AdamW::new(
                    vars,
                    ParamsAdamW {
                        lr,
                        beta1,
                        beta2,
                        eps,
                        weight_decay: 0.0,
                    },
                )?)
            }
            OptimConfig::Sgd { lr } => {
                if !(lr > 0.0) {
                    return Err(Error::input(format!("learning rate {lr} must be positive")));
                }
                Optim::Sgd(SGD::new(vars, lr)?)
            }
        })
    }

    /// One update from the gradients.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        match self {
            Optim::Adam(o) => o.step(grads)?,
            Optim::Sgd(o) => o.step(grads)?,
        }
        Ok(())
    }
}

/// A seeded permutation of `0..n` (Fisher-Yates on a Philox stream).
pub fn permutation(n: usize, seed: u64, epoch: u32, purpose: u32) -> Vec<usize> {
    let mut s = Stream::new(seed, epoch, purpose, 0);
    let mut p: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = ((s.uniform() * (i + 1) as f64) as usize).min(i);
        p.swap(i, j);
    }
    p
}

/// Loss and metrics per step (or epoch), with wall times.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Curve {
    /// Step numbers.
    pub step: Vec<usize>,
    /// Training loss per step.
    pub loss: Vec<f64>,
    /// Seconds of each training step.
    pub seconds: Vec<f64>,
    /// Inference metrics per step (by name).
    pub metrics: BTreeMap<String, Vec<f64>>,
}

impl Curve {
    /// Record one step.
    pub fn push(&mut self, step: usize, loss: f64, seconds: f64, metrics: &[(String, f64)]) {
        self.step.push(step);
        self.loss.push(loss);
        self.seconds.push(seconds);
        for (k, v) in metrics {
            self.metrics.entry(k.clone()).or_default().push(*v);
        }
    }

    /// Write the curve as JSON.
    pub fn write_json(&self, path: &Path) -> Result<()> {
        crate::util::write_json_atomic(path, self)
    }

    /// Draw loss and metrics against the step (log scale where all values are positive).
    pub fn write_plot(&self, path: &Path) -> Result<()> {
        write_plot(&CurvePlot { curve: self }, path)
    }
}

struct CurvePlot<'a> {
    curve: &'a Curve,
}

impl Plot for CurvePlot<'_> {
    fn size(&self) -> (u32, u32) {
        let n = 1 + self.curve.metrics.len() as u32;
        (640, 220 * n)
    }

    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> std::result::Result<(), String> {
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut series: Vec<(&str, &[f64])> = vec![("loss", &self.curve.loss)];
        for (k, v) in &self.curve.metrics {
            series.push((k, v));
        }
        let panels = root.split_evenly((series.len(), 1));
        let x: Vec<f64> = self.curve.step.iter().map(|&s| s as f64).collect();
        let xmax = x.iter().cloned().fold(1.0, f64::max);
        for ((name, ys), area) in series.iter().zip(panels.iter()) {
            let pts: Vec<(f64, f64)> = x
                .iter()
                .zip(ys.iter())
                .filter(|(_, y)| y.is_finite())
                .map(|(a, b)| (*a, *b))
                .collect();
            if pts.is_empty() {
                continue;
            }
            let log = pts.iter().all(|p| p.1 > 0.0);
            let f = |y: f64| if log { y.log10() } else { y };
            let lo = pts.iter().map(|p| f(p.1)).fold(f64::INFINITY, f64::min);
            let hi = pts.iter().map(|p| f(p.1)).fold(f64::NEG_INFINITY, f64::max);
            let pad = ((hi - lo) * 0.05).max(1e-12);
            let label = if log {
                format!("log10 {name}")
            } else {
                name.to_string()
            };
            let mut chart = ChartBuilder::on(area)
                .margin(8)
                .x_label_area_size(28)
                .y_label_area_size(60)
                .caption(&label, ("sans-serif", 16))
                .build_cartesian_2d(0.0..xmax, (lo - pad)..(hi + pad))
                .map_err(|e| e.to_string())?;
            chart
                .configure_mesh()
                .x_desc("step")
                .draw()
                .map_err(|e| e.to_string())?;
            chart
                .draw_series(LineSeries::new(
                    pts.iter().map(|p| (p.0, f(p.1))),
                    &RGBColor(31, 119, 180),
                ))
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// A progress bar on stderr when it is a terminal (and not in JSON mode).
pub fn progress(total: u64, label: &str, quiet: bool) -> Option<indicatif::ProgressBar> {
    if quiet || !std::io::stderr().is_terminal() {
        return None;
    }
    let pb = indicatif::ProgressBar::new(total);
    pb.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:40}] {pos}/{len} {elapsed} (eta {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    pb.set_message(label.to_string());
    Some(pb)
}
