//! The per-event loop: value, gradient and Hessian of `sum_i w_i ln p~(x_i)` in
//! slot space, in one pass.
//!
//! Events are cut into chunks of a fixed size ([`CHUNK`]); each chunk is
//! processed in blocks of [`BS`] events with contiguous per-block arrays, and the
//! chunk sums are added in chunk order. The result is therefore the same bit for
//! bit whatever the number of threads (rayon only decides who computes a chunk).
//!
//! Per event, with Q_l the product density of leaf l and p~ = sum_l a_l Q_l:
//! `d ln p~/d a_l = Q_l/p~`, `d ln p~/d phi_mk = R_m g_mk` (R_m the share of the
//! leaves containing atom m, g = d ln q/d phi), and the Hessian is
//! assembled pair by pair as listed in [`super::channel::Pair`].

use super::atoms::{Mode, tri};
use super::channel::{Act, Pair, Prepared};
use super::vmath;
use crate::data::EventData;
use rayon::prelude::*;

/// Events per block (the length of the per-block arrays).
pub const BS: usize = 256;
/// Events per chunk (the unit of parallel work and of the fixed summation order).
pub const CHUNK: usize = 8192;

/// Sums over a range of events.
#[derive(Debug, Clone)]
pub(crate) struct Partial {
    pub s0: f64,
    pub g: Vec<f64>,
    /// Packed lower triangle over active slots.
    pub h: Vec<f64>,
    /// First event where the density is not positive, with its value.
    pub bad: Option<(usize, f64)>,
}

impl Partial {
    fn new(na: usize, mode: Mode) -> Self {
        Partial {
            s0: 0.0,
            g: vec![0.0; if mode >= Mode::Grad { na } else { 0 }],
            h: vec![
                0.0;
                if mode == Mode::Hess {
                    na * (na + 1) / 2
                } else {
                    0
                }
            ],
            bad: None,
        }
    }

    fn add(&mut self, o: &Partial) {
        self.s0 += o.s0;
        for (a, b) in self.g.iter_mut().zip(&o.g) {
            *a += b;
        }
        for (a, b) in self.h.iter_mut().zip(&o.h) {
            *a += b;
        }
        if self.bad.is_none() {
            self.bad = o.bad;
        }
    }
}

/// Per-thread block arrays.
pub(crate) struct Scratch {
    lnq: Vec<f64>,
    g: Vec<f64>,
    q: Vec<f64>,
    p: Vec<f64>,
    lnp: Vec<f64>,
    w: Vec<f64>,
    ip: Vec<f64>,
    r: Vec<f64>,
    wr: Vec<f64>,
    v: Vec<f64>,
    wv: Vec<f64>,
    tmp: Vec<f64>,
    /// Hessian sums per atom (packed), this block.
    hs: Vec<f64>,
    /// w Q_l/p~ ([m in l] - R_m) per (coefficient, atom).
    e: Vec<f64>,
}

impl Scratch {
    fn new(prep: &Prepared) -> Self {
        let ch = prep.ch;
        let m = ch.atoms.len();
        let gd: usize = ch.atoms.iter().map(|a| a.d()).sum();
        let hd: usize = ch.atoms.iter().map(|a| a.d() * (a.d() + 1) / 2).sum();
        let ncoef = ch
            .roles
            .iter()
            .filter(|r| matches!(r, Act::Coef(_)))
            .count();
        let na = ch.n_act();
        Scratch {
            lnq: vec![0.0; m * BS],
            g: vec![0.0; gd * BS],
            hs: vec![0.0; hd],
            e: vec![0.0; ncoef * m * BS],
            q: vec![0.0; ch.leaves.len() * BS],
            p: vec![0.0; BS],
            lnp: vec![0.0; BS],
            w: vec![1.0; BS],
            ip: vec![0.0; BS],
            r: vec![0.0; m * BS],
            wr: vec![0.0; m * BS],
            v: vec![0.0; na * BS],
            wv: vec![0.0; na * BS],
            tmp: vec![0.0; BS],
        }
    }
}

/// Independent partial sums of [`dot`] and [`sum`]: enough for the adds of
/// four AVX2 registers to overlap (a single chain is bound by the add's latency).
const LANES: usize = 16;

/// Sum of the lanes in a fixed pairwise order.
#[inline(always)]
fn combine(s: &[f64; LANES]) -> f64 {
    let mut h = [0.0f64; LANES / 2];
    for k in 0..LANES / 2 {
        h[k] = s[k] + s[k + LANES / 2];
    }
    let q = [h[0] + h[4], h[1] + h[5], h[2] + h[6], h[3] + h[7]];
    (q[0] + q[2]) + (q[1] + q[3])
}

/// Deterministic dot product ([`LANES`] independent lanes, fixed combination
/// order: the same bits whatever the vector width the loop compiles to).
#[inline(always)]
pub(crate) fn dot(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut s = [0.0f64; LANES];
    let mut ca = a.chunks_exact(LANES);
    let mut cb = b.chunks_exact(LANES);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for k in 0..LANES {
            s[k] += x[k] * y[k];
        }
    }
    let mut rest = 0.0;
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        rest += x * y;
    }
    combine(&s) + rest
}

/// Deterministic sum ([`LANES`] independent lanes, fixed combination order).
#[inline(always)]
pub(crate) fn sum(a: &[f64]) -> f64 {
    let mut s = [0.0f64; LANES];
    let mut c = a.chunks_exact(LANES);
    for x in &mut c {
        for k in 0..LANES {
            s[k] += x[k];
        }
    }
    let rest: f64 = c.remainder().iter().sum();
    combine(&s) + rest
}

/// Run the pass over all events.
pub(crate) fn run(prep: &Prepared, data: &EventData) -> Partial {
    let n = data.len();
    let na = prep.ch.n_act();
    let nchunks = n.div_ceil(CHUNK);
    let chunk_range = |c: usize| (c * CHUNK, ((c + 1) * CHUNK).min(n));
    if nchunks <= 1 || rayon::current_num_threads() == 1 {
        let mut s = Scratch::new(prep);
        let mut total = Partial::new(na, prep.mode);
        for c in 0..nchunks {
            let (a, b) = chunk_range(c);
            let part = chunk(prep, data, a, b, &mut s);
            total.add(&part);
        }
        return total;
    }
    let parts: Vec<Partial> = (0..nchunks)
        .into_par_iter()
        .map_init(
            || Scratch::new(prep),
            |s, c| {
                let (a, b) = chunk_range(c);
                chunk(prep, data, a, b, s)
            },
        )
        .collect();
    let mut total = Partial::new(na, prep.mode);
    for p in &parts {
        total.add(p);
    }
    total
}

/// Tests: run the baseline build of the kernel even where AVX2 is available.
pub(crate) static BASELINE_ONLY: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// One chunk: on x86-64 with AVX-512F or AVX2 the same code compiled for it (plain
/// multiplies and adds in the same order, no fused multiply-add, so the numbers
/// are bit for bit those of the baseline build).
fn chunk(prep: &Prepared, data: &EventData, a: usize, b: usize, s: &mut Scratch) -> Partial {
    #[cfg(target_arch = "x86_64")]
    {
        static AVX2: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        static AVX512: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        let baseline = BASELINE_ONLY.load(std::sync::atomic::Ordering::Relaxed);
        if !baseline && *AVX512.get_or_init(|| std::arch::is_x86_feature_detected!("avx512f")) {
            // SAFETY: the CPU supports AVX-512F (checked above).
            return unsafe { chunk_avx512(prep, data, a, b, s) };
        }
        if !baseline && *AVX2.get_or_init(|| std::arch::is_x86_feature_detected!("avx2")) {
            // SAFETY: the CPU supports AVX2 (checked above).
            return unsafe { chunk_avx2(prep, data, a, b, s) };
        }
    }
    chunk_impl(prep, data, a, b, s)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn chunk_avx2(prep: &Prepared, data: &EventData, a: usize, b: usize, s: &mut Scratch) -> Partial {
    chunk_impl(prep, data, a, b, s)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn chunk_avx512(prep: &Prepared, data: &EventData, a: usize, b: usize, s: &mut Scratch) -> Partial {
    chunk_impl(prep, data, a, b, s)
}

#[inline(always)]
fn chunk_impl(prep: &Prepared, data: &EventData, a: usize, b: usize, s: &mut Scratch) -> Partial {
    let mut acc = Partial::new(prep.ch.n_act(), prep.mode);
    let mut b0 = a;
    while b0 < b {
        let nb = BS.min(b - b0);
        block(prep, data, b0, nb, s, &mut acc);
        if acc.bad.is_some() {
            break;
        }
        b0 += nb;
    }
    acc
}

#[inline(always)]
fn block(
    prep: &Prepared,
    data: &EventData,
    b0: usize,
    nb: usize,
    s: &mut Scratch,
    acc: &mut Partial,
) {
    let ch = prep.ch;
    let sv = prep.sv;
    let mode = prep.mode;
    // 1. atoms
    for (m, atom) in ch.atoms.iter().enumerate() {
        let x = &data.cols[atom.obs][b0..b0 + nb];
        let d = atom.d();
        let p = &sv.v[atom.u0..atom.u0 + d];
        let go = ch.g_off[m] * BS;
        atom.block(
            p,
            &prep.norms[m],
            x,
            mode,
            BS,
            &mut s.lnq[m * BS..(m + 1) * BS],
            &mut s.g[go..go + d * BS],
        );
    }
    // 2. leaves and the mixture
    s.p[..nb].iter_mut().for_each(|v| *v = 0.0);
    for (l, leaf) in ch.leaves.iter().enumerate() {
        let q = &mut s.q[l * BS..l * BS + nb];
        let m0 = leaf.atoms[0];
        q.copy_from_slice(&s.lnq[m0 * BS..m0 * BS + nb]);
        for &m in &leaf.atoms[1..] {
            for (x, y) in q.iter_mut().zip(&s.lnq[m * BS..m * BS + nb]) {
                *x += y;
            }
        }
        let al = sv.v[leaf.coef];
        vmath::exp_in_place(q);
        for (pb, qb) in s.p[..nb].iter_mut().zip(q.iter()) {
            *pb += al * qb;
        }
    }
    // one vectorisable test, then the scalar search for the first bad event
    if !s.p[..nb]
        .iter()
        .fold(true, |ok, &p| ok & (p > 0.0 && p.is_finite()))
    {
        for bi in 0..nb {
            let p = s.p[bi];
            if !(p > 0.0 && p.is_finite()) {
                acc.bad = Some((b0 + bi, p));
                return;
            }
        }
    }
    vmath::ln_slice(&s.p[..nb], &mut s.lnp[..nb]);
    match &data.weights {
        Some(w) => s.w[..nb].copy_from_slice(&w[b0..b0 + nb]),
        None => s.w[..nb].iter_mut().for_each(|v| *v = 1.0),
    }
    if prep.score {
        s.w[..nb].iter_mut().for_each(|v| *v *= *v);
    }
    let (w, lnp) = (&s.w[..nb], &s.lnp[..nb]);
    acc.s0 += dot(w, lnp);
    if mode == Mode::Value {
        return;
    }
    // 3. gradient of ln p~ per event
    for (ib, pb) in s.ip[..nb].iter_mut().zip(&s.p[..nb]) {
        *ib = 1.0 / pb;
    }
    for (m, leaves) in ch.atom_leaves.iter().enumerate() {
        let r = &mut s.r[m * BS..m * BS + nb];
        r.iter_mut().for_each(|v| *v = 0.0);
        for &l in leaves {
            let al = sv.v[ch.leaves[l].coef];
            for ((rb, qb), ib) in r.iter_mut().zip(&s.q[l * BS..l * BS + nb]).zip(&s.ip[..nb]) {
                *rb += al * qb * ib;
            }
        }
    }
    for (i, role) in ch.roles.iter().enumerate() {
        let v = &mut s.v[i * BS..i * BS + nb];
        match *role {
            Act::Coef(l) => {
                for ((vb, qb), ib) in v.iter_mut().zip(&s.q[l * BS..l * BS + nb]).zip(&s.ip[..nb]) {
                    *vb = qb * ib;
                }
            }
            Act::Par(m, k) => {
                let go = (ch.g_off[m] + k) * BS;
                for ((vb, rb), gb) in v
                    .iter_mut()
                    .zip(&s.r[m * BS..m * BS + nb])
                    .zip(&s.g[go..go + nb])
                {
                    *vb = rb * gb;
                }
            }
        }
        acc.g[i] += dot(&s.w[..nb], v);
    }
    if mode != Mode::Hess {
        return;
    }
    // 4. Hessian, pair by pair (score pass: + sum w^2 v v^T only)
    let na = ch.n_act();
    if prep.score {
        for i in 0..na {
            let v = &s.v[i * BS..i * BS + nb];
            for ((o, wb), vb) in s.wv[i * BS..i * BS + nb].iter_mut().zip(&s.w[..nb]).zip(v) {
                *o = wb * vb;
            }
        }
        for i in 0..na {
            for j in 0..=i {
                acc.h[tri(i, j)] += dot(&s.wv[i * BS..i * BS + nb], &s.v[j * BS..j * BS + nb]);
            }
        }
        return;
    }
    let w = &s.w[..nb];
    // w R_m, the weight of each atom's own second derivatives
    for &m in &ch.act_atoms {
        let r = &s.r[m * BS..m * BS + nb];
        for ((o, wb), rb) in s.wr[m * BS..m * BS + nb].iter_mut().zip(w).zip(r) {
            *o = wb * rb;
        }
    }
    // atoms' Hessian sums
    for &m in &ch.act_atoms {
        let a = &ch.atoms[m];
        let d = a.d();
        let ho = ch.h_off[m];
        let hs = &mut s.hs[ho..ho + d * (d + 1) / 2];
        hs.iter_mut().for_each(|v| *v = 0.0);
        let go = ch.g_off[m] * BS;
        a.hess_sum(
            &sv.v[a.u0..a.u0 + d],
            &prep.norms[m],
            &data.cols[a.obs][b0..b0 + nb],
            &s.wr[m * BS..m * BS + nb],
            &s.g[go..go + d * BS],
            BS,
            hs,
        );
    }
    // coefficient arrays: w Q_l/p~ for coefficients (in wv), e for (coef, atom)
    let mut ci = 0;
    for (i, role) in ch.roles.iter().enumerate() {
        if let Act::Coef(l) = *role {
            let wv = &mut s.wv[i * BS..i * BS + nb];
            for ((o, wb), vb) in wv.iter_mut().zip(w).zip(&s.v[i * BS..i * BS + nb]) {
                *o = wb * vb;
            }
            let wv = &s.wv[i * BS..i * BS + nb];
            for &m in &ch.act_atoms {
                let inl = if ch.leaves[l].atoms.contains(&m) {
                    1.0
                } else {
                    0.0
                };
                let e = &mut s.e[(ci * ch.atoms.len() + m) * BS..][..nb];
                for ((eb, wvb), rb) in e.iter_mut().zip(wv).zip(&s.r[m * BS..m * BS + nb]) {
                    *eb = wvb * (inl - rb);
                }
            }
            ci += 1;
        }
    }
    // the roles list the active coefficients first, so that the position of
    // coefficient i among them (its rows of `e`) is i
    debug_assert!(
        ch.roles
            .windows(2)
            .all(|p| !matches!(p, [Act::Par(..), Act::Coef(_)]))
    );
    let mut last_same: Option<(usize, usize)> = None;
    let mut last_cross: Option<(usize, usize, usize)> = None;
    for pair in &ch.pairs {
        match *pair {
            Pair::CoefCoef { i, j } => {
                acc.h[tri(i, j)] -= dot(&s.wv[i * BS..i * BS + nb], &s.v[j * BS..j * BS + nb]);
            }
            Pair::CoefPar { i, j, m, k } => {
                let e = &s.e[(i * ch.atoms.len() + m) * BS..][..nb];
                let go = (ch.g_off[m] + k) * BS;
                acc.h[tri(i, j)] += dot(e, &s.g[go..go + nb]);
            }
            Pair::Same { i, j, m, k, k2 } => {
                // tmp = w R (1 - R) g_mk, rebuilt when (m, k) changes
                if last_same != Some((m, k)) {
                    let go = (ch.g_off[m] + k) * BS;
                    let (r, g) = (&s.r[m * BS..m * BS + nb], &s.g[go..go + nb]);
                    for (((tb, wb), &rb), gb) in s.tmp[..nb].iter_mut().zip(w).zip(r).zip(g) {
                        *tb = wb * rb * (1.0 - rb) * gb;
                    }
                    last_same = Some((m, k));
                    last_cross = None;
                }
                let go2 = (ch.g_off[m] + k2) * BS;
                acc.h[tri(i, j)] +=
                    dot(&s.tmp[..nb], &s.g[go2..go2 + nb]) + s.hs[ch.h_off[m] + tri(k, k2)];
            }
            Pair::Cross { i, j, m, k, m2, k2 } => {
                // (R_mm2 - R_m R_m2) w g_mk g_m2k2; tmp = w (R_mm2 - R_m R_m2) g_mk
                // is rebuilt when (m, k, m2) changes
                let go2 = (ch.g_off[m2] + k2) * BS;
                if last_cross == Some((m, k, m2)) {
                    acc.h[tri(i, j)] += dot(&s.tmp[..nb], &s.g[go2..go2 + nb]);
                    continue;
                }
                let tmp = &mut s.tmp[..nb];
                tmp.iter_mut().for_each(|v| *v = 0.0);
                for &l in &ch.atom_leaves[m] {
                    if !ch.atom_leaves[m2].contains(&l) {
                        continue;
                    }
                    let al = sv.v[ch.leaves[l].coef];
                    for ((tb, qb), ib) in tmp
                        .iter_mut()
                        .zip(&s.q[l * BS..l * BS + nb])
                        .zip(&s.ip[..nb])
                    {
                        *tb += al * qb * ib;
                    }
                }
                let go = (ch.g_off[m] + k) * BS;
                let (r, r2) = (&s.r[m * BS..m * BS + nb], &s.r[m2 * BS..m2 * BS + nb]);
                let g = &s.g[go..go + nb];
                for ((((tb, wb), rb), r2b), gb) in tmp.iter_mut().zip(w).zip(r).zip(r2).zip(g) {
                    let rr = *tb - rb * r2b;
                    *tb = wb * rr * gb;
                }
                acc.h[tri(i, j)] += dot(tmp, &s.g[go2..go2 + nb]);
                last_same = None;
                last_cross = Some((m, k, m2));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{dot, sum};

    /// The lane sums agree with an exact sum (integers of at most 2^40, so
    /// every partial sum is exact), for every length around the lane count,
    /// and a value in any position counts once.
    #[test]
    fn dot_and_sum_are_exact_on_integers() {
        for n in 0..70 {
            let a: Vec<f64> = (0..n).map(|i| ((i * 7919) % 1013) as f64 - 300.0).collect();
            let b: Vec<f64> = (0..n).map(|i| ((i * 104_729) % 977) as f64).collect();
            let want_s: f64 = a.iter().sum();
            let want_d: f64 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert_eq!(sum(&a), want_s, "sum, n = {n}");
            assert_eq!(dot(&a, &b), want_d, "dot, n = {n}");
            for k in 0..n {
                let mut e = vec![0.0; n];
                e[k] = 1.0;
                assert_eq!(dot(&e, &b), b[k], "lane of {k}, n = {n}");
            }
        }
    }
}
