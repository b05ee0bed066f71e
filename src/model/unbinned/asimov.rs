//! Asimov data and expected yields of unbinned channels.
//!
//! The Asimov data set of an unbinned channel is a set of weighted events on a
//! quadrature grid: Gauss-Legendre nodes (8 per segment) on segments that
//! split every observable's range at the densities' kinks (Crystal Ball
//! junctions, histogram edges), tensor products across observables, with weight
//! `w_j = nu p(x_j) omega_j` (`nu` the expected total when extended, the observed
//! sum of weights otherwise). Because the quadrature integrates `p(x; theta)` to
//! one for every theta up to its own accuracy, twice_nll on these events is
//! smallest at the theta that made them (Gibbs' inequality), which is what Asimov
//! data must do.

use super::atoms::Norm;
use super::channel::{Channel, Extension};
use super::shapes::{CbPars, Shape};
use super::slots::SlotValues;
use crate::data::EventData;

const GL_X: [f64; 4] = [
    0.183_434_642_495_649_8,
    0.525_532_409_916_329,
    0.796_666_477_413_626_7,
    0.960_289_856_497_536_3,
];
const GL_W: [f64; 4] = [
    0.362_683_783_378_362,
    0.313_706_645_877_887_3,
    0.222_381_034_453_374_5,
    0.101_228_536_290_376_3,
];

/// Gauss-Legendre nodes and weights of `per` equal segments on every piece
/// between consecutive breakpoints.
pub fn quadrature(breaks: &[f64], per: usize) -> (Vec<f64>, Vec<f64>) {
    let (mut xs, mut ws) = (Vec::new(), Vec::new());
    let total = breaks[breaks.len() - 1] - breaks[0];
    for w in breaks.windows(2) {
        let (a, b) = (w[0], w[1]);
        if !(b > a) {
            continue;
        }
        // segments proportional to the piece's share of the range (at least one)
        let n = ((per as f64) * (b - a) / total).ceil().max(1.0) as usize;
        let h = (b - a) / n as f64;
        for s in 0..n {
            let c = a + (s as f64 + 0.5) * h;
            let r = 0.5 * h;
            for k in 0..4 {
                for sign in [-1.0, 1.0] {
                    xs.push(c + sign * r * GL_X[k]);
                    ws.push(r * GL_W[k]);
                }
            }
        }
    }
    (xs, ws)
}

impl Channel {
    /// Breakpoints of observable `o`: its range ends and the kinks of its densities.
    pub fn breakpoints(&self, o: usize, sv: &SlotValues) -> Vec<f64> {
        let ax = &self.obs[o];
        let mut b = vec![ax.lo, ax.hi];
        for a in self.atoms.iter().filter(|a| a.obs == o) {
            let p = &sv.v[a.u0..a.u0 + a.d()];
            match &a.shape {
                Shape::CrystalBall | Shape::DoubleCB => {
                    let c = CbPars::new(&a.shape, p);
                    b.push(c.m0);
                    if c.left {
                        b.push(c.m0 - c.al * c.sl);
                    }
                    if c.right {
                        b.push(c.m0 + c.ar * c.sr);
                    }
                }
                Shape::Histogram(h) => b.extend_from_slice(&h.edges),
                _ => {}
            }
        }
        b.retain(|x| x.is_finite() && *x >= ax.lo && *x <= ax.hi);
        b.sort_by(f64::total_cmp);
        b.dedup();
        b
    }

    /// The Asimov events at slot values `sv` (`n_obs`: the observed sum of
    /// weights, used when the channel is not extended).
    pub fn asimov(&self, sv: &SlotValues, norms: &[Norm], n_obs: f64) -> EventData {
        let d = self.obs.len();
        let per = [128usize, 32, 8, 4][(d.max(1) - 1).min(3)];
        let grids: Vec<(Vec<f64>, Vec<f64>)> = (0..d)
            .map(|o| quadrature(&self.breakpoints(o, sv), per))
            .collect();
        let total: usize = grids.iter().map(|g| g.0.len()).product();
        let a_sum = self.coef_sum(sv);
        let scale = match self.ext {
            Extension::Extended => 1.0,
            _ => n_obs / a_sum,
        };
        let mut cols: Vec<Vec<f64>> = vec![Vec::with_capacity(total); d];
        let mut weights = Vec::with_capacity(total);
        let mut idx = vec![0usize; d];
        let mut x = vec![0.0; d];
        for _ in 0..total {
            let mut omega = 1.0;
            for o in 0..d {
                x[o] = grids[o].0[idx[o]];
                omega *= grids[o].1[idx[o]];
            }
            let dens = self.density(sv, norms, &x);
            let w = scale * dens * omega;
            if w > 0.0 && w.is_finite() {
                for o in 0..d {
                    cols[o].push(x[o]);
                }
                weights.push(w);
            }
            // next grid index (last observable fastest)
            for o in (0..d).rev() {
                idx[o] += 1;
                if idx[o] < grids[o].0.len() {
                    break;
                }
                idx[o] = 0;
            }
        }
        EventData {
            names: self.obs.iter().map(|o| o.name.clone()).collect(),
            cols,
            weights: Some(weights),
        }
    }

    /// `sum_l a_l Q_l(x)` at one point (x in observable order).
    pub fn density(&self, sv: &SlotValues, norms: &[Norm], x: &[f64]) -> f64 {
        let lnq: Vec<f64> = self
            .atoms
            .iter()
            .enumerate()
            .map(|(m, a)| a.ln_q(x[a.obs], &sv.v[a.u0..a.u0 + a.d()], &norms[m]))
            .collect();
        self.leaves
            .iter()
            .map(|l| sv.v[l.coef] * l.atoms.iter().map(|&m| lnq[m]).sum::<f64>().exp())
            .sum()
    }

    /// Expected events of every leaf in the bins `edges` of observable `o`
    /// (rows: leaves). `n_obs` scales non-extended channels.
    pub fn leaf_bin_yields(
        &self,
        sv: &SlotValues,
        norms: &[Norm],
        o: usize,
        edges: &[f64],
        n_obs: f64,
    ) -> Vec<Vec<f64>> {
        let a_sum = self.coef_sum(sv);
        let scale = match self.ext {
            Extension::Extended => 1.0,
            _ => n_obs / a_sum,
        };
        self.leaves
            .iter()
            .map(|leaf| {
                let al = sv.v[leaf.coef] * scale;
                let atom = leaf.atoms.iter().find(|&&m| self.atoms[m].obs == o);
                edges
                    .windows(2)
                    .map(|e| match atom {
                        Some(&m) => {
                            let a = &self.atoms[m];
                            let p = &sv.v[a.u0..a.u0 + a.d()];
                            let i: f64 = a.shape.integral(p, e[0], e[1], a.lo, a.hi);
                            al * i / norms[m].n
                        }
                        None => 0.0,
                    })
                    .collect()
            })
            .collect()
    }
}
