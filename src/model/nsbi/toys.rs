//! Asimov data and bootstrap toys of an unbinned channel, as the ATLAS
//! analysis made them: the weighted reference sample is reweighted to the
//! hypothesis,
//!
//! ```text
//! w_i^Asimov(theta) = (nu(theta) / nu_ref) (p(x_i | theta) / p_ref(x_i)) w_i^ref
//!                   = lambda_i(theta) w_i^ref / nu_ref,     nu_ref = sum_i w_i^ref
//! ```
//!
//! and toy `t` draws `w_i ~ Poisson(w_i^Asimov)` for every event from its own
//! counter-based stream `(seed, t, purpose, i)`, so toys are bit-identical
//! whatever the thread count, batch size or shard split. Toys with few
//! non-zero weights are stored sparsely (the kernel then visits only those
//! events).

use super::code4::Code4At;
use super::coef::Coef;
use super::{EventSet, NsbiChannel, NsbiData, SetId, Weights};
use crate::rng::Stream;
use rayon::prelude::*;
use std::sync::Arc;

/// Per-event rates `lambda_i(theta)` on `set` (0 for events whose shape
/// factor or rate is not positive).
pub fn rates(ch: &NsbiChannel, theta: &[f64], set: &EventSet) -> Vec<f64> {
    let mut coef = Coef::new(theta.len());
    let a: Vec<f64> = ch
        .processes
        .iter()
        .map(|p| {
            coef.compute(p.nu, &p.factors, theta, 0);
            coef.a
        })
        .collect();
    let at: Vec<Code4At> = ch
        .shapes
        .iter()
        .map(|s| Code4At::new(theta[s.par]))
        .collect();
    let mut out = vec![0.0; set.n];
    out.par_chunks_mut(super::kernel::CHUNK)
        .enumerate()
        .for_each(|(j, chunk)| {
            let lo = j * super::kernel::CHUNK;
            let mut v = vec![0.0; a.len()];
            for (q, o) in chunk.iter_mut().enumerate() {
                let i = lo + q;
                for (c, vc) in v.iter_mut().enumerate() {
                    *vc = set.ratios[c][i];
                }
                let mut ok = true;
                for (e, s) in ch.shapes.iter().enumerate() {
                    let arr = &set.shapes[e];
                    let (lp, lm) = (arr[0][i], arr[1][i]);
                    let (g, _, _) = at[e].eval(lp.exp(), lm.exp(), lp, lm);
                    ok &= g > 0.0;
                    v[s.process] *= g;
                }
                let l: f64 = a.iter().zip(&v).map(|(x, y)| x * y).sum();
                *o = if ok && l > 0.0 { l } else { 0.0 };
            }
        });
    out
}

/// The reference sample (the observed events when none is declared) and its weights.
fn reference(ch: &NsbiChannel) -> (&EventSet, SetId) {
    let id = if ch.reference.is_some() {
        SetId::Reference
    } else {
        SetId::Observed
    };
    (ch.set(id), id)
}

/// Asimov weights `w_i^ref lambda_i(theta) / nu_ref` on the reference sample.
pub fn asimov_weights(ch: &NsbiChannel, theta: &[f64]) -> Vec<f64> {
    let (set, _) = reference(ch);
    let lam = rates(ch, theta, set);
    let nu_ref = set.sum_w();
    match &set.weights {
        Some(w) => lam.iter().zip(w).map(|(l, w)| l * w / nu_ref).collect(),
        None => lam.iter().map(|l| l / nu_ref).collect(),
    }
}

/// The Asimov dataset at `theta`.
pub fn asimov(ch: &NsbiChannel, theta: &[f64]) -> NsbiData {
    let (set, id) = reference(ch);
    let w = asimov_weights(ch, theta);
    NsbiData::new(id, Weights::Dense(Arc::new(w)), set.n)
}

/// Toy generator: the Asimov weights at the generation point.
#[derive(Debug, Clone)]
pub struct Generator {
    /// Expected per-event weights.
    pub expected: Arc<Vec<f64>>,
    set: SetId,
}

impl Generator {
    /// Generator at `theta`.
    pub fn new(ch: &NsbiChannel, theta: &[f64]) -> Self {
        let (_, set) = reference(ch);
        Generator {
            expected: Arc::new(asimov_weights(ch, theta)),
            set,
        }
    }

    /// Toy `toy` of stream `purpose`: `w_i ~ Poisson(w_i^Asimov)`, event `i`
    /// drawn from stream `(seed, toy, purpose, i)`.
    pub fn sample(&self, ch: &NsbiChannel, seed: u64, toy: u32, purpose: u32) -> NsbiData {
        let n = self.expected.len();
        let mut idx: Vec<u32> = Vec::new();
        let mut w: Vec<f64> = Vec::new();
        for (i, &m) in self.expected.iter().enumerate() {
            if m > 0.0 {
                let k = Stream::new(seed, toy, purpose, i as u32).poisson(m);
                if k > 0.0 {
                    idx.push(i as u32);
                    w.push(k);
                }
            }
        }
        let weights = if idx.len() * 4 > n {
            let mut dense = vec![0.0; n];
            for (&i, &k) in idx.iter().zip(&w) {
                dense[i as usize] = k;
            }
            Weights::Dense(Arc::new(dense))
        } else {
            Weights::Sparse {
                idx: Arc::new(idx),
                w: Arc::new(w),
            }
        };
        NsbiData::new(self.set, weights, ch.set(self.set).n)
    }
}
