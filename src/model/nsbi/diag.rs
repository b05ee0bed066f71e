//! Diagnostics of an unbinned channel: closure of the reweighted reference
//! sample per process, and the spread of the per-event shape variations.

use super::NsbiChannel;
use serde::Serialize;

/// Closure of one process: the reference sample reweighted to the process
/// (`w_i^ref nu_c r_c(x_i) / nu_ref`) should reproduce its yield `nu_c`.
#[derive(Debug, Clone, Serialize)]
pub struct Closure {
    /// Process name.
    pub process: String,
    /// Nominal yield `nu_c`.
    pub nu: f64,
    /// `nu_c sum_i w_i r_c(x_i) / sum_i w_i`.
    pub reweighted: f64,
    /// `reweighted / nu_c`.
    pub ratio: f64,
    /// Statistical uncertainty of `ratio` from the sample size
    /// (`sqrt(sum w^2 (r - mean)^2) / sum w`).
    pub ratio_error: f64,
    /// `|ratio - 1| / ratio_error`.
    pub pull: f64,
}

/// Spread of one per-event shape variation on the reference sample.
#[derive(Debug, Clone, Serialize)]
pub struct ShapeSpread {
    /// "sample S, modifier JES".
    pub label: String,
    /// Weighted mean, standard deviation, minimum and maximum of the up ratios.
    pub up: [f64; 4],
    /// Same for the down ratios.
    pub down: [f64; 4],
    /// Normalisation of the varied shape: `sum w r_c r_up / sum w r_c` (1 for
    /// a shape-only variation; the yield change belongs in hi_data).
    pub up_norm: f64,
    /// Same for the down ratios.
    pub down_norm: f64,
}

/// All diagnostics of a channel.
#[derive(Debug, Clone, Serialize)]
pub struct Diagnostics {
    /// Channel name.
    pub channel: String,
    /// Which sample they were computed on.
    pub sample: String,
    /// Events in it.
    pub n_events: usize,
    /// Per process.
    pub closure: Vec<Closure>,
    /// Per shape variation.
    pub shapes: Vec<ShapeSpread>,
    /// Per network ensemble that gave ratios: the spread of its members.
    pub ensembles: Vec<super::network::EnsembleSummary>,
}

fn stats(w: &dyn Fn(usize) -> f64, x: &[f64]) -> [f64; 4] {
    let sw: f64 = (0..x.len()).map(w).sum();
    let mean = (0..x.len()).map(|i| w(i) * x[i]).sum::<f64>() / sw;
    let var = (0..x.len())
        .map(|i| w(i) * (x[i] - mean) * (x[i] - mean))
        .sum::<f64>()
        / sw;
    let mn = x.iter().cloned().fold(f64::INFINITY, f64::min);
    let mx = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    [mean, var.max(0.0).sqrt(), mn, mx]
}

/// Closure and shape spreads on the reference sample (the observed events
/// when the channel declares none).
pub fn diagnostics(ch: &NsbiChannel) -> Diagnostics {
    let set = ch.set(super::SetId::Reference);
    let w = |i: usize| set.weights.as_ref().map_or(1.0, |w| w[i]);
    let sw: f64 = (0..set.n).map(w).sum();
    let closure = ch
        .processes
        .iter()
        .enumerate()
        .map(|(c, p)| {
            let r = &set.ratios[c];
            let mean = (0..set.n).map(|i| w(i) * r[i]).sum::<f64>() / sw;
            let var = (0..set.n)
                .map(|i| w(i) * w(i) * (r[i] - mean) * (r[i] - mean))
                .sum::<f64>();
            let err = var.sqrt() / sw;
            Closure {
                process: p.name.clone(),
                nu: p.nu,
                reweighted: p.nu * mean,
                ratio: mean,
                ratio_error: err,
                pull: if err > 0.0 {
                    (mean - 1.0).abs() / err
                } else {
                    0.0
                },
            }
        })
        .collect();
    let shapes = ch
        .shapes
        .iter()
        .enumerate()
        .map(|(e, s)| {
            let up: Vec<f64> = set.shapes[e][0].iter().map(|l| l.exp()).collect();
            let down: Vec<f64> = set.shapes[e][1].iter().map(|l| l.exp()).collect();
            let r = &set.ratios[s.process];
            let wr = |i: usize| w(i) * r[i];
            let swr: f64 = (0..set.n).map(wr).sum();
            let norm = |x: &[f64]| (0..set.n).map(|i| wr(i) * x[i]).sum::<f64>() / swr;
            ShapeSpread {
                label: s.label.clone(),
                up: stats(&w, &up),
                down: stats(&w, &down),
                up_norm: norm(&up),
                down_norm: norm(&down),
            }
        })
        .collect();
    Diagnostics {
        channel: ch.name.clone(),
        sample: set.label.clone(),
        n_events: set.n,
        closure,
        shapes,
        ensembles: ch.ensembles.clone(),
    }
}
