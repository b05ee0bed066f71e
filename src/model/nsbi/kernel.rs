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

use super::code4::{Code4At, boundary};
use super::coef::Coef;
use super::{NsbiChannel, NsbiData, Weights};
use rayon::prelude::*;

/// Events per chunk (the unit of parallel work and of the fixed-order reduction).
pub const CHUNK: usize = 4096;
/// Events per block inside a chunk.
pub const BLOCK: usize = 64;
const LANES: usize = 8;
type Lanes = [f64; LANES];

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
    fn event(&self) -> usize {
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

#[derive(Clone)]
struct Partial {
    v: Lanes,
    sv: Vec<Lanes>,
    dsum: Vec<Lanes>,
    ss: Vec<Lanes>,
    rc: Vec<Lanes>,
    cov: Vec<Lanes>,
    dg: Vec<Lanes>,
    bad: Option<Bad>,
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
    fn clear(&mut self, order: u8) {
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

/// What an evaluation needs besides the events.
struct Ctx<'a> {
    ch: &'a NsbiChannel,
    order: u8,
    a: Vec<f64>,
    /// Per shape variation: (process, slot in the shape block, code 4 at alpha).
    entries: Vec<(usize, usize, Code4At)>,
    /// `varied[c * k + slot]`: process c has a variation in that slot.
    varied: Vec<bool>,
    nc: usize,
    nk: usize,
}

/// The rows of one block: a range of events or gathered indices.
#[derive(Clone, Copy)]
enum Rows<'a> {
    Range(usize, usize),
    Index(&'a [u32]),
}

impl Rows<'_> {
    #[inline(always)]
    fn len(&self) -> usize {
        match *self {
            Rows::Range(_, n) => n,
            Rows::Index(ix) => ix.len(),
        }
    }
    #[inline(always)]
    fn event(&self, i: usize) -> usize {
        match *self {
            Rows::Range(s, _) => s + i,
            Rows::Index(ix) => ix[i] as usize,
        }
    }
    /// Copy `src` at these rows into `dst` (BLOCK long), padding with `pad`.
    #[inline(always)]
    fn gather(&self, src: &[f64], dst: &mut [f64], pad: f64) {
        let n = self.len();
        match *self {
            Rows::Range(s, _) => dst[..n].copy_from_slice(&src[s..s + n]),
            Rows::Index(ix) => {
                for (d, &j) in dst[..n].iter_mut().zip(ix) {
                    *d = src[j as usize];
                }
            }
        }
        dst[n..BLOCK].fill(pad);
    }
}

/// Block buffers.
struct Work {
    w: Vec<f64>,
    v: Vec<f64>,
    dd: Vec<f64>,
    ee: Vec<f64>,
    lam: Vec<f64>,
    s: Vec<f64>,
    p: Vec<f64>,
    ws: Vec<f64>,
    wp: Vec<f64>,
    d: Vec<f64>,
    z: Vec<f64>,
    y: Vec<f64>,
    t: [Vec<f64>; 4],
}

impl Work {
    fn new(nc: usize, nk: usize) -> Self {
        let b = BLOCK;
        Work {
            w: vec![0.0; b],
            v: vec![0.0; nc * b],
            dd: vec![0.0; nc * nk * b],
            ee: vec![0.0; nc * nk * b],
            lam: vec![0.0; b],
            s: vec![0.0; nc * b],
            p: vec![0.0; nc * b],
            ws: vec![0.0; nc * b],
            wp: vec![0.0; nc * b],
            d: vec![0.0; nk * b],
            z: vec![0.0; nc * nk * b],
            y: vec![0.0; nc * nk * b],
            t: [vec![0.0; b], vec![0.0; b], vec![0.0; b], vec![0.0; b]],
        }
    }
}

/// `acc[l] += sum_j a[8j + l] * b[8j + l]` over one block.
#[inline(always)]
fn dot_into(acc: &mut Lanes, a: &[f64], b: &[f64]) {
    let (a, b) = (&a[..BLOCK], &b[..BLOCK]);
    for j in 0..BLOCK / LANES {
        for l in 0..LANES {
            acc[l] += a[j * LANES + l] * b[j * LANES + l];
        }
    }
}

/// `acc[l] += sum_j a[8j + l]` over one block.
#[inline(always)]
fn sum_into(acc: &mut Lanes, a: &[f64]) {
    let a = &a[..BLOCK];
    for j in 0..BLOCK / LANES {
        for l in 0..LANES {
            acc[l] += a[j * LANES + l];
        }
    }
}

#[inline(always)]
fn block(ctx: &Ctx, data: &NsbiData, rows: Rows, wk: &mut Work, part: &mut Partial) {
    let set = ctx.ch.set(data.set);
    let (nc, nk, b) = (ctx.nc, ctx.nk, BLOCK);
    let n = rows.len();
    // weights
    match &data.weights {
        Weights::Unit => {
            wk.w[..n].fill(1.0);
            wk.w[n..].fill(0.0);
        }
        Weights::Dense(w) => rows.gather(w, &mut wk.w, 0.0),
        Weights::Sparse { .. } => {} // filled by the caller
    }
    for c in 0..nc {
        rows.gather(&set.ratios[c], &mut wk.v[c * b..(c + 1) * b], 1.0);
    }
    if ctx.order >= 1 {
        wk.dd.fill(0.0);
        wk.ee.fill(0.0);
    }
    // per-event shape factors
    for (e, &(c, slot, at)) in ctx.entries.iter().enumerate() {
        let arr = &set.shapes[e];
        for q in 0..4 {
            let pad = if q < 2 { 1.0 } else { 0.0 };
            rows.gather(&arr[q], &mut wk.t[q], pad);
        }
        let [kp, km, lp, lm] = &wk.t;
        let off = (c * nk + slot) * b;
        let v = &mut wk.v[c * b..(c + 1) * b];
        let dd = &mut wk.dd[off..off + b];
        let ee = &mut wk.ee[off..off + b];
        let mut ok = true;
        match at {
            Code4At::Poly { beta, beta1, beta2 } => {
                for i in 0..b {
                    let bb = boundary(kp[i], km[i], lp[i], lm[i]);
                    let mut g = 1.0;
                    let mut g1 = 0.0;
                    let mut g2 = 0.0;
                    for m in 0..6 {
                        g += bb[m] * beta[m];
                        g1 += bb[m] * beta1[m];
                        g2 += bb[m] * beta2[m];
                    }
                    ok &= g > 0.0;
                    let inv = 1.0 / g;
                    v[i] *= g;
                    dd[i] = g1 * inv;
                    ee[i] = g2 * inv;
                }
            }
            Code4At::Up(a) => {
                for i in 0..b {
                    let l = lp[i];
                    v[i] *= (a * l).exp();
                    dd[i] = l;
                    ee[i] = l * l;
                }
            }
            Code4At::Down(a) => {
                for i in 0..b {
                    let l = lm[i];
                    v[i] *= (-a * l).exp();
                    dd[i] = -l;
                    ee[i] = l * l;
                }
            }
        }
        if !ok {
            // g <= 0: out of the domain where the event counts, neutral where it does not
            for i in 0..n {
                let (g, _, _) = at.eval(kp[i], km[i], lp[i], lm[i]);
                if g > 0.0 {
                    continue;
                }
                if wk.w[i] != 0.0 {
                    let event = rows.event(i);
                    if part.bad.is_none_or(|x| event < x.event()) {
                        part.bad = Some(Bad::Shape { event, shape: e, g });
                    }
                }
                v[i] = 0.0;
                dd[i] = 0.0;
                ee[i] = 0.0;
            }
        }
    }
    // rates; events with weight 0 get lambda = 1 so that nothing is NaN
    let mut ok = true;
    for i in 0..b {
        let mut l = 0.0;
        for c in 0..nc {
            l += ctx.a[c] * wk.v[c * b + i];
        }
        let counts = wk.w[i] != 0.0;
        ok &= !counts || l > 0.0;
        wk.lam[i] = if counts { l } else { 1.0 };
    }
    if !ok {
        for i in 0..n {
            let l = wk.lam[i];
            if wk.w[i] != 0.0 && !(l > 0.0) {
                let event = rows.event(i);
                if part.bad.is_none_or(|x| event < x.event()) {
                    part.bad = Some(Bad::Rate { event, lambda: l });
                }
            }
        }
        return;
    }
    if part.bad.is_some() {
        return;
    }
    // value
    let mut lnl = [0.0; BLOCK];
    for i in 0..b {
        lnl[i] = wk.lam[i].ln();
    }
    dot_into(&mut part.v, &wk.w, &lnl);
    if ctx.order == 0 {
        return;
    }
    // fractions s = v / lambda, p = A s (0 where the weight is 0), and w s, w p
    for i in 0..b {
        let inv = if wk.w[i] != 0.0 { 1.0 / wk.lam[i] } else { 0.0 };
        for c in 0..nc {
            let s = wk.v[c * b + i] * inv;
            let p = ctx.a[c] * s;
            wk.s[c * b + i] = s;
            wk.p[c * b + i] = p;
            wk.ws[c * b + i] = wk.w[i] * s;
            wk.wp[c * b + i] = wk.w[i] * p;
        }
    }
    for c in 0..nc {
        sum_into(&mut part.sv[c], &wk.ws[c * b..(c + 1) * b]);
    }
    wk.d[..nk * b].fill(0.0);
    for c in 0..nc {
        for k in 0..nk {
            if !ctx.varied[c * nk + k] {
                continue;
            }
            let off = (c * nk + k) * b;
            for i in 0..b {
                wk.d[k * b + i] += wk.p[c * b + i] * wk.dd[off + i];
            }
        }
    }
    for k in 0..nk {
        dot_into(&mut part.dsum[k], &wk.w, &wk.d[k * b..(k + 1) * b]);
    }
    if ctx.order < 2 {
        return;
    }
    for c in 0..nc {
        for c2 in 0..=c {
            dot_into(
                &mut part.ss[c * nc + c2],
                &wk.ws[c * b..(c + 1) * b],
                &wk.s[c2 * b..(c2 + 1) * b],
            );
        }
    }
    // z = D - d, y = w p z
    let mut t = [0.0; BLOCK];
    for c in 0..nc {
        for k in 0..nk {
            let off = (c * nk + k) * b;
            for i in 0..b {
                let z = wk.dd[off + i] - wk.d[k * b + i];
                wk.z[off + i] = z;
                wk.y[off + i] = wk.wp[c * b + i] * z;
            }
            dot_into(
                &mut part.rc[c * nk + k],
                &wk.ws[c * b..(c + 1) * b],
                &wk.z[off..off + b],
            );
            if ctx.varied[c * nk + k] {
                for i in 0..b {
                    let dv = wk.dd[off + i];
                    t[i] = wk.ee[off + i] - dv * dv;
                }
                dot_into(&mut part.dg[k], &wk.wp[c * b..(c + 1) * b], &t);
            }
        }
    }
    for k in 0..nk {
        for l in 0..=k {
            let acc = &mut part.cov[k * nk + l];
            for c in 0..nc {
                let ok = (c * nk + k) * b;
                let ol = (c * nk + l) * b;
                dot_into(acc, &wk.y[ok..ok + b], &wk.z[ol..ol + b]);
            }
        }
    }
}

/// Run the blocks of chunk `j`.
#[inline(always)]
fn chunk_body(ctx: &Ctx, data: &NsbiData, j: usize, part: &mut Partial) {
    part.clear(ctx.order);
    let mut wk = Work::new(ctx.nc, ctx.nk);
    match &data.weights {
        Weights::Sparse { idx, w } => {
            let lo = j * CHUNK;
            let hi = (lo + CHUNK).min(idx.len());
            let mut s = lo;
            while s < hi {
                let e = (s + BLOCK).min(hi);
                wk.w[..e - s].copy_from_slice(&w[s..e]);
                wk.w[e - s..].fill(0.0);
                block(ctx, data, Rows::Index(&idx[s..e]), &mut wk, part);
                s = e;
            }
        }
        _ => {
            let n = ctx.ch.set(data.set).n;
            let lo = j * CHUNK;
            let hi = (lo + CHUNK).min(n);
            let mut s = lo;
            while s < hi {
                let e = (s + BLOCK).min(hi);
                block(ctx, data, Rows::Range(s, e - s), &mut wk, part);
                s = e;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn chunk_avx2(ctx: &Ctx, data: &NsbiData, j: usize, part: &mut Partial) {
    chunk_body(ctx, data, j, part)
}

fn run_chunk(ctx: &Ctx, data: &NsbiData, j: usize, part: &mut Partial) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            unsafe { chunk_avx2(ctx, data, j, part) };
            return;
        }
    }
    chunk_body(ctx, data, j, part)
}

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
    let slot_of = |par: usize| {
        ch.shape_pars
            .binary_search(&par)
            .expect("shape parameters come from the shape variations")
    };
    let mut varied = vec![false; nc * nk];
    let entries: Vec<(usize, usize, Code4At)> = ch
        .shapes
        .iter()
        .map(|s| {
            let slot = slot_of(s.par);
            varied[s.process * nk + slot] = true;
            (s.process, slot, Code4At::new(theta[s.par]))
        })
        .collect();
    let ctx = Ctx {
        ch,
        order,
        a: scratch.coefs.iter().map(|c| c.a).collect(),
        entries,
        varied,
        nc,
        nk,
    };
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
