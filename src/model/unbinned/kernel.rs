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
use super::channel::{Act, Prepared};
use super::lanes::dot;
use super::lanes::{MAXR, dots_n, dots_scaled_n};
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
    let na = ch.n_act();
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
    // the rows v of the coefficients (and, for the score pass, of all)
    for (i, role) in ch.roles.iter().enumerate() {
        let v = &mut s.v[i * BS..i * BS + nb];
        match *role {
            Act::Coef(l) => {
                for ((vb, qb), ib) in v.iter_mut().zip(&s.q[l * BS..l * BS + nb]).zip(&s.ip[..nb]) {
                    *vb = qb * ib;
                }
            }
            Act::Par(m, k) if prep.score => {
                let go = (ch.g_off[m] + k) * BS;
                for ((vb, rb), gb) in v
                    .iter_mut()
                    .zip(&s.r[m * BS..m * BS + nb])
                    .zip(&s.g[go..go + nb])
                {
                    *vb = rb * gb;
                }
            }
            Act::Par(..) => {}
        }
    }
    // sum_b w_b v_ib over runs of coefficients and of one atom's parameters,
    // up to MAXR rows per loop; an atom's v = R_m g_mk is formed in the loop
    // (the bits of one dot of the written rows each)
    let atom_of = |i: usize| match ch.roles[i] {
        Act::Coef(_) => None,
        Act::Par(m, _) => Some(m),
    };
    let mut i0 = 0;
    while i0 < na {
        let run = atom_of(i0);
        let mut i1 = i0 + 1;
        while i1 < na && i1 - i0 < MAXR && atom_of(i1) == run {
            i1 += 1;
        }
        let n = i1 - i0;
        let mut b: [&[f64]; MAXR] = [&[]; MAXR];
        let mut out = [0.0; MAXR];
        match run {
            Some(m) if !prep.score => {
                for (i, bk) in (i0..i1).zip(b.iter_mut()) {
                    if let Act::Par(_, k) = ch.roles[i] {
                        let go = (ch.g_off[m] + k) * BS;
                        *bk = &s.g[go..go + nb];
                    }
                }
                let r = &s.r[m * BS..m * BS + nb];
                dots_scaled_n(&s.w[..nb], r, &b[..n], &mut out);
            }
            _ => {
                for (i, bk) in (i0..i1).zip(b.iter_mut()) {
                    *bk = &s.v[i * BS..i * BS + nb];
                }
                dots_n(&s.w[..nb], &b[..n], &mut out);
            }
        }
        for k in 0..n {
            acc.g[i0 + k] += out[k];
        }
        i0 = i1;
    }
    if mode != Mode::Hess {
        return;
    }
    // 4. Hessian, pair by pair (score pass: + sum w^2 v v^T only)
    if prep.score {
        for i in 0..na {
            let v = &s.v[i * BS..i * BS + nb];
            for ((o, wb), vb) in s.wv[i * BS..i * BS + nb].iter_mut().zip(&s.w[..nb]).zip(v) {
                *o = wb * vb;
            }
        }
        let mut out = [0.0; MAXR];
        for i in 0..na {
            let wv = &s.wv[i * BS..i * BS + nb];
            let mut j0 = 0;
            while j0 <= i {
                let n = (i + 1 - j0).min(MAXR);
                let mut b: [&[f64]; MAXR] = [&[]; MAXR];
                for (k, bk) in b.iter_mut().take(n).enumerate() {
                    *bk = &s.v[(j0 + k) * BS..(j0 + k) * BS + nb];
                }
                dots_n(wv, &b[..n], &mut out);
                for k in 0..n {
                    acc.h[tri(i, j0 + k)] += out[k];
                }
                j0 += n;
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
    let rows = super::pairs::Rows {
        nb,
        w: &s.w,
        ip: &s.ip,
        q: &s.q,
        r: &s.r,
        g: &s.g,
        v: &s.v,
        wv: &s.wv,
        e: &s.e,
        hs: &s.hs,
    };
    super::pairs::add_pairs(ch, &sv.v, &rows, &mut s.tmp, &mut acc.h);
}
