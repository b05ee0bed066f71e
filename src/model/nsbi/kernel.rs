//! twice_nll of an unbinned channel with its gradient and exact Hessian, in
//! one pass over the events.
//!
//! Per event, with `v_c = r_c prod_k g_ck`, `lambda = sum_c A_c v_c`,
//! `s_c = v_c / lambda`, `p_c = A_c s_c` (the process fractions, summing to 1),
//! `D_ck = g'_ck / g_ck`, `E_ck = g''_ck / g_ck` and `d = sum_c p_c D_c`:
//!
//! ```text
//! d(-ln lambda)   = -(sum_c s_c grad A_c + d)
//! d2(-ln lambda)  = G s s^T G^T - sum_c s_c hess A_c
//!                   - sum_c [grad A_c (s_c z_c)^T + (s_c z_c) grad A_c^T]
//!                   - sum_c p_c z_c z_c^T - diag(sum_c p_c (E_c - D_c^2))
//! ```
//!
//! with `z_c = D_c - d` and `G = [grad A_1 .. grad A_C]` (the `D`, `d`, `z`, `E`
//! vectors live in the block of parameters with per-event shape variations).
//! So the events only feed a few weighted sums (`sum w ln lambda`,
//! `sum w s_c`, `sum w d`, `sum w s s^T`, `sum w s_c z_c`,
//! `sum w p_c z_c z_c^T`, ...); the coefficients' derivatives enter once per
//! evaluation. Nothing divides by `A_c`, which may be zero or negative.
//!
//! Events are processed in chunks of [`CHUNK`] (in parallel) and blocks of
//! [`BLOCK`] inside a chunk, with eight-lane accumulators; the chunks'
//! partial sums are added in chunk order, so the result is the same for any
//! number of threads.

use super::coef::Coef;
use super::{NsbiChannel, NsbiData, Weights};
use rayon::prelude::*;

/// Events per chunk (the unit of parallel work and of the fixed-order reduction).
pub const CHUNK: usize = 4096;
/// Events per block inside a chunk.
pub const BLOCK: usize = 64;
pub(super) const LANES: usize = 8;
pub(super) type Lanes = [f64; LANES];

/// Where twice_nll stops being finite.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Bad {
    /// `lambda_i <= 0` (or not finite) at event `event` of the set.
    Rate {
        /// Event index.
        event: usize,
        /// The rate there.
        lambda: f64,
    },
    /// A per-event shape factor `g <= 0` at `event` for shape variation `shape`.
    Shape {
        /// Event index.
        event: usize,
        /// Shape variation index.
        shape: usize,
        /// The factor there.
        g: f64,
    },
    /// The sum is not finite (an infinite yield).
    NotFinite(f64),
}

impl Bad {
    pub(super) fn event(&self) -> usize {
        match *self {
            Bad::Rate { event, .. } | Bad::Shape { event, .. } => event,
            Bad::NotFinite(_) => usize::MAX,
        }
    }
}

/// Evaluation buffers of one channel.
pub struct Scratch {
    coefs: Vec<Coef>,
    partials: Vec<Partial>,
}

impl Scratch {
    /// Buffers for `ch`.
    pub fn new(ch: &NsbiChannel) -> Self {
        let p = ch.par_names.len();
        Scratch {
            coefs: ch.processes.iter().map(|_| Coef::new(p)).collect(),
            partials: Vec::new(),
        }
    }
}

/// Eight-lane partial sums of one chunk of events.
#[derive(Clone)]
pub(super) struct Partial {
    pub(super) v: Lanes,
    pub(super) sv: Vec<Lanes>,
    pub(super) dsum: Vec<Lanes>,
    pub(super) ss: Vec<Lanes>,
    pub(super) rc: Vec<Lanes>,
    pub(super) cov: Vec<Lanes>,
    pub(super) dg: Vec<Lanes>,
    pub(super) bad: Option<Bad>,
}

impl Partial {
    fn new(c: usize, k: usize) -> Self {
        let z = [0.0; LANES];
        Partial {
            v: z,
            sv: vec![z; c],
            dsum: vec![z; k],
            ss: vec![z; c * c],
            rc: vec![z; c * k],
            cov: vec![z; k * k],
            dg: vec![z; k],
            bad: None,
        }
    }
    pub(super) fn clear(&mut self, order: u8) {
        let z = [0.0; LANES];
        self.v = z;
        self.bad = None;
        if order >= 1 {
            self.sv.fill(z);
            self.dsum.fill(z);
        }
        if order >= 2 {
            self.ss.fill(z);
            self.rc.fill(z);
            self.cov.fill(z);
            self.dg.fill(z);
        }
    }
}

/// Lane sums reduced in a fixed order.
#[inline(always)]
fn hsum(l: &Lanes) -> f64 {
    ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]))
}

pub(super) use super::kernel_block::{Ctx, run_chunk};

/// twice_nll of channel `ch` on `data` at local parameters `theta`; writes
/// the gradient and the dense row-major Hessian when asked. `Err(bad)` where
/// a rate or shape factor of a counted event is not positive.
pub fn eval(
    ch: &NsbiChannel,
    theta: &[f64],
    data: &NsbiData,
    scratch: &mut Scratch,
    grad: Option<&mut [f64]>,
    hess: Option<&mut [f64]>,
) -> Result<f64, Bad> {
    let order: u8 = if hess.is_some() {
        2
    } else if grad.is_some() {
        1
    } else {
        0
    };
    let p = theta.len();
    let (nc, nk) = (ch.processes.len(), ch.shape_pars.len());
    for (pr, c) in ch.processes.iter().zip(scratch.coefs.iter_mut()) {
        c.compute(pr.nu, &pr.factors, theta, order);
    }
    let ctx = Ctx::new(
        ch,
        theta,
        order,
        scratch.coefs.iter().map(|c| c.a).collect(),
    );
    let rows = match &data.weights {
        Weights::Sparse { idx, .. } => idx.len(),
        _ => ch.set(data.set).n,
    };
    let n_chunks = rows.div_ceil(CHUNK);
    if scratch.partials.len() < n_chunks
        || scratch
            .partials
            .first()
            .is_some_and(|q| q.sv.len() != nc || q.dsum.len() != nk)
    {
        scratch.partials = vec![Partial::new(nc, nk); n_chunks];
    }
    let parts = &mut scratch.partials[..n_chunks];
    if n_chunks <= 1 {
        for (j, part) in parts.iter_mut().enumerate() {
            run_chunk(&ctx, data, j, part);
        }
    } else {
        parts
            .par_iter_mut()
            .enumerate()
            .for_each(|(j, part)| run_chunk(&ctx, data, j, part));
    }
    // first bad event
    if let Some(b) = parts.iter().find_map(|q| q.bad) {
        return Err(b);
    }
    // fixed-order reduction
    let red = |f: &dyn Fn(&Partial) -> &Lanes| parts.iter().map(|q| hsum(f(q))).sum::<f64>();
    let sum_v = red(&|q| &q.v);
    let nu: f64 = ctx.a.iter().sum();
    let value = 2.0 * nu + 2.0 * data.lgamma - 2.0 * sum_v;
    if !value.is_finite() {
        return Err(Bad::NotFinite(value));
    }
    let coefs = &scratch.coefs;
    let sp = &ch.shape_pars;
    if let Some(g) = grad {
        let sv: Vec<f64> = (0..nc).map(|c| red(&|q| &q.sv[c])).collect();
        g[..p].fill(0.0);
        for (c, cf) in coefs.iter().enumerate() {
            for q in 0..p {
                g[q] += 2.0 * cf.g[q] * (1.0 - sv[c]);
            }
        }
        for k in 0..nk {
            g[sp[k]] -= 2.0 * red(&|q| &q.dsum[k]);
        }
    }
    if let Some(h) = hess {
        let sv: Vec<f64> = (0..nc).map(|c| red(&|q| &q.sv[c])).collect();
        let h = &mut h[..p * p];
        h.fill(0.0);
        // coefficient Hessians: 2 sum_c (1 - Sv_c) hess A_c
        for (c, cf) in coefs.iter().enumerate() {
            let f = 2.0 * (1.0 - sv[c]);
            for (x, y) in h.iter_mut().zip(&cf.h) {
                *x += f * y;
            }
        }
        // 2 G SS G^T
        for c in 0..nc {
            for c2 in 0..=c {
                let ss = 2.0 * red(&|q| &q.ss[c * nc + c2]);
                let (gc, gc2) = (&coefs[c].g, &coefs[c2].g);
                for a in 0..p {
                    if gc[a] == 0.0 && gc2[a] == 0.0 {
                        continue;
                    }
                    for bb in 0..p {
                        let t = gc[a] * gc2[bb];
                        let t = if c == c2 { t } else { t + gc2[a] * gc[bb] };
                        h[a * p + bb] += ss * t;
                    }
                }
            }
        }
        // -2 sum_c [grad A_c RC_c^T + RC_c grad A_c^T]
        for c in 0..nc {
            let gc = &coefs[c].g;
            for k in 0..nk {
                let rc = 2.0 * red(&|q| &q.rc[c * nk + k]);
                let kk = sp[k];
                for a in 0..p {
                    let t = gc[a] * rc;
                    h[a * p + kk] -= t;
                    h[kk * p + a] -= t;
                }
            }
        }
        // -2 COV - 2 diag(DG)
        for k in 0..nk {
            for l in 0..=k {
                let v = 2.0 * red(&|q| &q.cov[k * nk + l]);
                h[sp[k] * p + sp[l]] -= v;
                if l != k {
                    h[sp[l] * p + sp[k]] -= v;
                }
            }
            h[sp[k] * p + sp[k]] -= 2.0 * red(&|q| &q.dg[k]);
        }
    }
    Ok(value)
}
