//! The per-block work of [`super::kernel`]: per-event code 4, rates,
//! fractions and the weighted sums, with eight-lane accumulators.
//!
//! The shape-block covariance is accumulated as
//! `sum_c p_c D_c D_c^T - d d^T` (equal to `sum_c p_c (D_c - d)(D_c - d)^T`
//! since `sum_c p_c = 1`), which touches only the pairs of shape variations of
//! the same process plus one dense rank-one term.
//!
//! The body is compiled three times: with AVX-512 and FMA, with AVX2 and FMA,
//! and for any x86-64 (or other) CPU without fused multiply-adds; the CPU picks
//! one at run time. Results are identical for any thread count on one machine
//! (they may differ in the last bits between machines that take different paths).

use super::code4::{Code4At, boundary, exp};
use super::kernel::{BLOCK, Bad, CHUNK, LANES, Lanes, Partial};
use super::{NsbiChannel, NsbiData, Weights};

/// What an evaluation needs besides the events.
pub(crate) struct Ctx<'a> {
    ch: &'a NsbiChannel,
    pub(super) order: u8,
    pub(super) a: Vec<f64>,
    /// Per shape variation: (process, slot in the shape block, code 4 at alpha).
    entries: Vec<(usize, usize, Code4At)>,
    /// Pairs of shape variations of the same process: (e1, e2, index in the covariance).
    pairs: Vec<(usize, usize, usize)>,
    nc: usize,
    nk: usize,
}

impl<'a> Ctx<'a> {
    /// Precompute what does not depend on the events.
    pub(crate) fn new(ch: &'a NsbiChannel, theta: &[f64], order: u8, a: Vec<f64>) -> Self {
        let nk = ch.shape_pars.len();
        let slot = |par: usize| {
            ch.shape_pars
                .binary_search(&par)
                .expect("shape parameters come from the shape variations")
        };
        let entries: Vec<(usize, usize, Code4At)> = ch
            .shapes
            .iter()
            .map(|s| (s.process, slot(s.par), Code4At::new(theta[s.par])))
            .collect();
        let mut pairs = Vec::new();
        for (e1, x) in entries.iter().enumerate() {
            for (e2, y) in entries.iter().enumerate().take(e1 + 1) {
                if x.0 == y.0 {
                    let (k, l) = (x.1.max(y.1), x.1.min(y.1));
                    pairs.push((e1, e2, k * nk + l));
                }
            }
        }
        Ctx {
            ch,
            order,
            a,
            entries,
            pairs,
            nc: ch.processes.len(),
            nk,
        }
    }
}

/// Fused or plain multiply-add.
trait Arith {
    fn fma(a: f64, b: f64, c: f64) -> f64;
}

struct HwFma;
impl Arith for HwFma {
    #[inline(always)]
    fn fma(a: f64, b: f64, c: f64) -> f64 {
        a.mul_add(b, c)
    }
}

struct NoFma;
impl Arith for NoFma {
    #[inline(always)]
    fn fma(a: f64, b: f64, c: f64) -> f64 {
        a * b + c
    }
}

/// `acc[l] += sum_j a[8j + l] b[8j + l]` over one block.
#[inline(always)]
fn dot_into<F: Arith>(acc: &mut Lanes, a: &[f64], b: &[f64]) {
    let (a, b) = (&a[..BLOCK], &b[..BLOCK]);
    let mut x = *acc;
    for j in 0..BLOCK / LANES {
        for l in 0..LANES {
            x[l] = F::fma(a[j * LANES + l], b[j * LANES + l], x[l]);
        }
    }
    *acc = x;
}

/// `acc[l] -= sum_j a[8j + l] b[8j + l]` over one block.
#[inline(always)]
fn dot_sub<F: Arith>(acc: &mut Lanes, a: &[f64], b: &[f64]) {
    let (a, b) = (&a[..BLOCK], &b[..BLOCK]);
    let mut x = *acc;
    for j in 0..BLOCK / LANES {
        for l in 0..LANES {
            x[l] = F::fma(-a[j * LANES + l], b[j * LANES + l], x[l]);
        }
    }
    *acc = x;
}

/// `acc[l] += sum_j a[8j + l]` over one block.
#[inline(always)]
fn sum_into(acc: &mut Lanes, a: &[f64]) {
    let a = &a[..BLOCK];
    let mut x = *acc;
    for j in 0..BLOCK / LANES {
        for l in 0..LANES {
            x[l] += a[j * LANES + l];
        }
    }
    *acc = x;
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
    /// `src` at these rows: a slice of it for a full contiguous block, else
    /// gathered into `buf` and padded with `pad`.
    #[inline(always)]
    fn view<'s>(&self, src: &'s [f64], buf: &'s mut [f64], pad: f64) -> &'s [f64] {
        match *self {
            Rows::Range(s, n) if n == BLOCK => &src[s..s + BLOCK],
            Rows::Range(s, n) => {
                buf[..n].copy_from_slice(&src[s..s + n]);
                buf[n..BLOCK].fill(pad);
                buf
            }
            Rows::Index(ix) => {
                let n = ix.len();
                for (d, &j) in buf[..n].iter_mut().zip(ix) {
                    *d = src[j as usize];
                }
                buf[n..BLOCK].fill(pad);
                buf
            }
        }
    }
}

/// Block buffers.
struct Work {
    w: Vec<f64>,
    v: Vec<f64>,
    de: Vec<f64>,
    ee: Vec<f64>,
    lam: Vec<f64>,
    s: Vec<f64>,
    ws: Vec<f64>,
    wp: Vec<f64>,
    d: Vec<f64>,
    wd: Vec<f64>,
    y: Vec<f64>,
    t: [Vec<f64>; 2],
}

impl Work {
    fn new(nc: usize, nk: usize, ne: usize) -> Self {
        let b = BLOCK;
        Work {
            w: vec![0.0; b],
            v: vec![0.0; nc * b],
            de: vec![0.0; ne * b],
            ee: vec![0.0; ne * b],
            lam: vec![0.0; b],
            s: vec![0.0; nc * b],
            ws: vec![0.0; nc * b],
            wp: vec![0.0; nc * b],
            d: vec![0.0; nk * b],
            wd: vec![0.0; nk * b],
            y: vec![0.0; ne * b],
            t: [vec![0.0; b], vec![0.0; b]],
        }
    }
}

fn note_bad(part: &mut Partial, bad: Bad) {
    if part.bad.is_none_or(|x| bad.event() < x.event()) {
        part.bad = Some(bad);
    }
}

#[inline(always)]
fn block<F: Arith>(ctx: &Ctx, data: &NsbiData, rows: Rows, wk: &mut Work, part: &mut Partial) {
    let set = ctx.ch.set(data.set);
    let (nc, nk, b) = (ctx.nc, ctx.nk, BLOCK);
    let n = rows.len();
    match &data.weights {
        Weights::Unit => {
            wk.w[..n].fill(1.0);
            wk.w[n..].fill(0.0);
        }
        Weights::Dense(w) => {
            let mut buf = [0.0; BLOCK];
            let v = rows.view(w, &mut buf, 0.0);
            wk.w.copy_from_slice(v);
        }
        Weights::Sparse { .. } => {} // filled by the caller
    }
    for c in 0..nc {
        let mut buf = [0.0; BLOCK];
        let r = rows.view(&set.ratios[c], &mut buf, 1.0);
        wk.v[c * b..(c + 1) * b].copy_from_slice(r);
    }
    // per-event shape factors
    let derivs = ctx.order >= 1;
    for (e, &(c, _, at)) in ctx.entries.iter().enumerate() {
        let arr = &set.shapes[e];
        let [t0, t1] = &mut wk.t;
        let lp = rows.view(&arr[0], t0, 0.0);
        let lm = rows.view(&arr[1], t1, 0.0);
        let v = &mut wk.v[c * b..(c + 1) * b];
        let de = &mut wk.de[e * b..(e + 1) * b];
        let ee = &mut wk.ee[e * b..(e + 1) * b];
        let mut ok = true;
        match at {
            Code4At::Poly { beta, beta1, beta2 } => {
                for i in 0..b {
                    let bb = boundary(exp(lp[i]), exp(lm[i]), lp[i], lm[i]);
                    let mut g = 1.0;
                    let mut g1 = 0.0;
                    let mut g2 = 0.0;
                    for m in 0..6 {
                        g = F::fma(bb[m], beta[m], g);
                        g1 = F::fma(bb[m], beta1[m], g1);
                        g2 = F::fma(bb[m], beta2[m], g2);
                    }
                    ok &= g > 0.0;
                    v[i] *= g;
                    if derivs {
                        let inv = 1.0 / g;
                        de[i] = g1 * inv;
                        ee[i] = g2 * inv;
                    }
                }
            }
            Code4At::Up(a) => {
                for i in 0..b {
                    let l = lp[i];
                    v[i] *= exp(a * l);
                    de[i] = l;
                    ee[i] = l * l;
                }
            }
            Code4At::Down(a) => {
                for i in 0..b {
                    let l = lm[i];
                    v[i] *= exp(-a * l);
                    de[i] = -l;
                    ee[i] = l * l;
                }
            }
        }
        if !ok {
            // g <= 0: out of the domain where the event counts, neutral where it does not
            for i in 0..n {
                let (g, _, _) = at.eval(lp[i].exp(), lm[i].exp(), lp[i], lm[i]);
                if g > 0.0 {
                    continue;
                }
                if wk.w[i] != 0.0 {
                    note_bad(
                        part,
                        Bad::Shape {
                            event: rows.event(i),
                            shape: e,
                            g,
                        },
                    );
                }
                v[i] = 0.0;
                de[i] = 0.0;
                ee[i] = 0.0;
            }
        }
    }
    // rates; events with weight 0 get lambda = 1 so that nothing is NaN
    let mut lam = [0.0; BLOCK];
    for c in 0..nc {
        let (ac, v) = (ctx.a[c], &wk.v[c * BLOCK..(c + 1) * BLOCK]);
        for i in 0..BLOCK {
            lam[i] = F::fma(ac, v[i], lam[i]);
        }
    }
    let mut ok = true;
    for i in 0..BLOCK {
        let counts = wk.w[i] != 0.0;
        ok &= !counts || lam[i] > 0.0;
        wk.lam[i] = if counts { lam[i] } else { 1.0 };
    }
    if !ok {
        for i in 0..n {
            let l = wk.lam[i];
            if wk.w[i] != 0.0 && !(l > 0.0) {
                note_bad(
                    part,
                    Bad::Rate {
                        event: rows.event(i),
                        lambda: l,
                    },
                );
            }
        }
        return;
    }
    if part.bad.is_some() {
        return;
    }
    let mut lnl = [0.0; BLOCK];
    for i in 0..b {
        lnl[i] = wk.lam[i].ln();
    }
    dot_into::<F>(&mut part.v, &wk.w, &lnl);
    if ctx.order == 0 {
        return;
    }
    // fractions s = v / lambda, p = A s (0 where the weight is 0); w s, w p
    let mut inv = [0.0; BLOCK];
    for i in 0..BLOCK {
        inv[i] = if wk.w[i] != 0.0 { 1.0 / wk.lam[i] } else { 0.0 };
    }
    let w = &wk.w[..BLOCK];
    for c in 0..nc {
        let ac = ctx.a[c];
        let r = c * BLOCK..(c + 1) * BLOCK;
        let v = &wk.v[r.clone()];
        let s = &mut wk.s[r.clone()];
        for i in 0..BLOCK {
            s[i] = v[i] * inv[i];
        }
        let ws = &mut wk.ws[r.clone()];
        for i in 0..BLOCK {
            ws[i] = w[i] * s[i];
        }
        let wp = &mut wk.wp[r.clone()];
        for i in 0..BLOCK {
            wp[i] = ac * ws[i];
        }
        sum_into(&mut part.sv[c], ws);
    }
    // d = sum_c p_c D_c, with p_c = A_c s_c
    wk.d[..nk * BLOCK].fill(0.0);
    for (e, &(c, k, _)) in ctx.entries.iter().enumerate() {
        let ac = ctx.a[c];
        let s = &wk.s[c * BLOCK..(c + 1) * BLOCK];
        let de = &wk.de[e * BLOCK..(e + 1) * BLOCK];
        let d = &mut wk.d[k * BLOCK..(k + 1) * BLOCK];
        for i in 0..BLOCK {
            d[i] = F::fma(ac * s[i], de[i], d[i]);
        }
    }
    for k in 0..nk {
        dot_into::<F>(&mut part.dsum[k], &wk.w, &wk.d[k * b..(k + 1) * b]);
    }
    if ctx.order < 2 {
        return;
    }
    for c in 0..nc {
        for c2 in 0..=c {
            dot_into::<F>(
                &mut part.ss[c * nc + c2],
                &wk.ws[c * b..(c + 1) * b],
                &wk.s[c2 * b..(c2 + 1) * b],
            );
        }
    }
    // rc_c = sum w s_c (D_c - d); dg_k = sum_c w p_c (E_ck - D_ck^2); y_e = w p_c D_e
    for (e, &(c, k, _)) in ctx.entries.iter().enumerate() {
        let de = &wk.de[e * BLOCK..(e + 1) * BLOCK];
        let ee = &wk.ee[e * BLOCK..(e + 1) * BLOCK];
        let wp = &wk.wp[c * BLOCK..(c + 1) * BLOCK];
        dot_into::<F>(
            &mut part.rc[c * nk + k],
            &wk.ws[c * BLOCK..(c + 1) * BLOCK],
            de,
        );
        let mut t = [0.0; BLOCK];
        for i in 0..BLOCK {
            t[i] = F::fma(-de[i], de[i], ee[i]);
        }
        dot_into::<F>(&mut part.dg[k], wp, &t);
        let y = &mut wk.y[e * BLOCK..(e + 1) * BLOCK];
        for i in 0..BLOCK {
            y[i] = wp[i] * de[i];
        }
    }
    for c in 0..nc {
        for k in 0..nk {
            dot_sub::<F>(
                &mut part.rc[c * nk + k],
                &wk.ws[c * b..(c + 1) * b],
                &wk.d[k * b..(k + 1) * b],
            );
        }
    }
    // covariance: sum over same-process pairs of w p D D^T, minus w d d^T
    for &(e1, e2, idx) in &ctx.pairs {
        dot_into::<F>(
            &mut part.cov[idx],
            &wk.y[e1 * b..(e1 + 1) * b],
            &wk.de[e2 * b..(e2 + 1) * b],
        );
    }
    for k in 0..nk {
        let r = k * BLOCK..(k + 1) * BLOCK;
        let (d, wd) = (&wk.d[r.clone()], &mut wk.wd[r]);
        for i in 0..BLOCK {
            wd[i] = wk.w[i] * d[i];
        }
    }
    dense_sub::<F>(&mut part.cov, &wk.wd, &wk.d, nk);
}

/// Tile size of [`dense_sub`].
const TILE: usize = 4;

/// `cov[k nk + l] -= sum w d_k d_l` for `l <= k` over one block (`wd = w d`).
/// Off-diagonal `TILE x TILE` tiles run with their accumulators in registers
/// (four rows of `wd` and four of `d` loaded per step for sixteen products);
/// each accumulator sees the same operations in the same order as one
/// [`dot_sub`], so the bits do not change.
#[inline(always)]
fn dense_sub<F: Arith>(cov: &mut [Lanes], wd: &[f64], d: &[f64], nk: usize) {
    let b = BLOCK;
    for k0 in (0..nk).step_by(TILE) {
        for l0 in (0..=k0).step_by(TILE) {
            if k0 + TILE <= nk && l0 + TILE <= k0 {
                let mut acc = [[0.0; LANES]; TILE * TILE];
                for u in 0..TILE {
                    for v in 0..TILE {
                        acc[u * TILE + v] = cov[(k0 + u) * nk + l0 + v];
                    }
                }
                for j in 0..BLOCK / LANES {
                    let mut x = [[0.0; LANES]; TILE];
                    let mut y = [[0.0; LANES]; TILE];
                    for u in 0..TILE {
                        let o = (k0 + u) * b + j * LANES;
                        x[u].copy_from_slice(&wd[o..o + LANES]);
                        let o = (l0 + u) * b + j * LANES;
                        y[u].copy_from_slice(&d[o..o + LANES]);
                    }
                    for u in 0..TILE {
                        for v in 0..TILE {
                            let a = &mut acc[u * TILE + v];
                            for l in 0..LANES {
                                a[l] = F::fma(-x[u][l], y[v][l], a[l]);
                            }
                        }
                    }
                }
                for u in 0..TILE {
                    for v in 0..TILE {
                        cov[(k0 + u) * nk + l0 + v] = acc[u * TILE + v];
                    }
                }
            } else {
                for k in k0..(k0 + TILE).min(nk) {
                    for l in l0..(l0 + TILE).min(k + 1) {
                        dot_sub::<F>(
                            &mut cov[k * nk + l],
                            &wd[k * b..(k + 1) * b],
                            &d[l * b..(l + 1) * b],
                        );
                    }
                }
            }
        }
    }
}

/// Run the blocks of chunk `j`.
#[inline(always)]
fn chunk_body<F: Arith>(ctx: &Ctx, data: &NsbiData, j: usize, part: &mut Partial) {
    part.clear(ctx.order);
    let mut wk = Work::new(ctx.nc, ctx.nk, ctx.entries.len());
    match &data.weights {
        Weights::Sparse { idx, w } => {
            let lo = j * CHUNK;
            let hi = (lo + CHUNK).min(idx.len());
            let mut s = lo;
            while s < hi {
                let e = (s + BLOCK).min(hi);
                wk.w[..e - s].copy_from_slice(&w[s..e]);
                wk.w[e - s..].fill(0.0);
                block::<F>(ctx, data, Rows::Index(&idx[s..e]), &mut wk, part);
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
                block::<F>(ctx, data, Rows::Range(s, e - s), &mut wk, part);
                s = e;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn chunk_avx512(ctx: &Ctx, data: &NsbiData, j: usize, part: &mut Partial) {
    chunk_body::<HwFma>(ctx, data, j, part)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn chunk_avx2(ctx: &Ctx, data: &NsbiData, j: usize, part: &mut Partial) {
    chunk_body::<HwFma>(ctx, data, j, part)
}

/// Run chunk `j` with the best code path this CPU supports.
pub(crate) fn run_chunk(ctx: &Ctx, data: &NsbiData, j: usize, part: &mut Partial) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU supports AVX-512F and FMA (checked just above).
            unsafe { chunk_avx512(ctx, data, j, part) };
            return;
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU supports AVX2 and FMA (checked just above).
            unsafe { chunk_avx2(ctx, data, j, part) };
            return;
        }
    }
    chunk_body::<NoFma>(ctx, data, j, part)
}
