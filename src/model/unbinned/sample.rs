//! Toys of unbinned channels: Poisson total (extended) or the observed count,
//! a leaf per event by its coefficient, then each atom of the leaf by inverse CDF
//! (exponential, histogram, uniform, Gaussian cores through rejection from the
//! normal) or by accept-reject under a flat envelope, with bisection on the
//! closed-form CDF as the fallback. All draws of one toy come from one
//! counter-based stream, so a toy is reproducible from (seed, toy, purpose,
//! part) alone.

use super::atoms::{Atom, Norm};
use super::channel::{Channel, Extension};
use super::shapes::Shape;
use super::slots::SlotValues;
use crate::data::EventData;
use crate::rng::Stream;

/// Stream variable of a part's event count and events.
fn var(part: u32, k: u32) -> u32 {
    (part << 8) | k
}

/// Draw one value of atom `a` with parameters `p`.
pub fn sample_atom(a: &Atom, p: &[f64], norm: &Norm, s: &mut Stream) -> f64 {
    let (lo, hi) = (a.lo, a.hi);
    let l = hi - lo;
    match &a.shape {
        Shape::Uniform => lo + s.uniform() * l,
        Shape::Expo => {
            let c = p[0];
            let u = s.uniform();
            if (c * l).abs() < 1e-12 {
                return lo + u * l;
            }
            // F(x) = (1 - e^{-c(x-lo)}) / (1 - e^{-c l})
            let x = lo - (u * (-c * l).exp_m1()).ln_1p() / c;
            x.clamp(lo, hi)
        }
        Shape::Gauss | Shape::LogNormal => {
            let log = matches!(a.shape, Shape::LogNormal);
            let (tlo, thi) = if log {
                (if lo > 0.0 { lo.ln() } else { f64::NEG_INFINITY }, hi.ln())
            } else {
                (lo, hi)
            };
            // acceptance of rejection from the untruncated normal
            let acc = norm.n / (p[1] * (2.0 * std::f64::consts::PI).sqrt());
            if acc > 0.2 {
                loop {
                    let y = p[0] + p[1] * s.normal();
                    if y >= tlo && y <= thi {
                        return if log { y.exp() } else { y };
                    }
                }
            }
            bisect(a, p, norm, s.uniform())
        }
        Shape::Histogram(h) => {
            let total: f64 = h.contents.iter().sum();
            let u = s.uniform() * total;
            let mut c = 0.0;
            for k in 0..h.contents.len() {
                c += h.contents[k];
                if u < c || k + 1 == h.contents.len() {
                    let (e0, e1) = (h.edges[k].max(lo), h.edges[k + 1].min(hi));
                    return e0 + s.uniform() * (e1 - e0);
                }
            }
            lo
        }
        Shape::Poisson => s.poisson(p[0]),
        Shape::CrystalBall
        | Shape::DoubleCB
        | Shape::Chebychev(_)
        | Shape::Bernstein(_)
        | Shape::Polynomial(_) => {
            let fmax = envelope(&a.shape, p, lo, hi);
            // acceptance = N / (fmax * l); fall back to the CDF when it is small
            if fmax.is_finite() && fmax > 0.0 && norm.n / (fmax * l) > 0.05 {
                loop {
                    let x = lo + s.uniform() * l;
                    let f = a.shape.ln_f(x, p, lo, hi).exp();
                    if s.uniform() * fmax <= f {
                        return x;
                    }
                }
            }
            bisect(a, p, norm, s.uniform())
        }
    }
}

/// An upper bound of the unnormalised density on [lo, hi].
fn envelope(shape: &Shape, p: &[f64], lo: f64, hi: f64) -> f64 {
    match shape {
        Shape::CrystalBall | Shape::DoubleCB => 1.0,
        Shape::Chebychev(_) => 1.0 + p.iter().map(|c| c.abs()).sum::<f64>(),
        Shape::Bernstein(_) => p.iter().fold(0.0f64, |m, c| m.max(*c)),
        Shape::Polynomial(_) => {
            let r = lo.abs().max(hi.abs());
            p.iter()
                .enumerate()
                .map(|(i, c)| c.abs() * r.powi(i as i32))
                .sum()
        }
        _ => f64::INFINITY,
    }
}

/// Inverse CDF by bisection on the closed-form integral.
fn bisect(a: &Atom, p: &[f64], norm: &Norm, u: f64) -> f64 {
    let target = u * norm.n;
    let (mut x0, mut x1) = (a.lo, a.hi);
    for _ in 0..100 {
        let m = 0.5 * (x0 + x1);
        if m <= x0 || m >= x1 {
            break;
        }
        let f: f64 = a.shape.integral(p, a.lo, m, a.lo, a.hi);
        if f < target {
            x0 = m;
        } else {
            x1 = m;
        }
    }
    0.5 * (x0 + x1)
}

impl Channel {
    /// A toy data set at slot values `sv`: `n_obs` events when not extended.
    #[allow(clippy::too_many_arguments)]
    pub fn sample(
        &self,
        sv: &SlotValues,
        norms: &[Norm],
        n_obs: usize,
        seed: u64,
        toy: u32,
        purpose: u32,
        part: u32,
    ) -> EventData {
        let coefs: Vec<f64> = self.leaves.iter().map(|l| sv.v[l.coef].max(0.0)).collect();
        let total: f64 = coefs.iter().sum();
        let n = match self.ext {
            Extension::Extended => {
                let mut s = Stream::new(seed, toy, purpose, var(part, 0));
                s.poisson(total) as usize
            }
            _ => n_obs,
        };
        let mut cols: Vec<Vec<f64>> = self.obs.iter().map(|_| Vec::with_capacity(n)).collect();
        let mut s = Stream::new(seed, toy, purpose, var(part, 1));
        let mut cum = Vec::with_capacity(coefs.len());
        let mut c = 0.0;
        for v in &coefs {
            c += v;
            cum.push(c);
        }
        for _ in 0..n {
            let u = s.uniform() * total;
            let l = cum.iter().position(|c| u < *c).unwrap_or(coefs.len() - 1);
            for &m in &self.leaves[l].atoms {
                let a = &self.atoms[m];
                let p = &sv.v[a.u0..a.u0 + a.d()];
                let x = sample_atom(a, p, &norms[m], &mut s);
                cols[a.obs].push(x);
            }
        }
        EventData {
            names: self.obs.iter().map(|o| o.name.clone()).collect(),
            cols,
            weights: None,
        }
    }
}
