//! The pair sums of the Hessian of one block ([`super::channel::Pair`]),
//! several at a time: consecutive pairs whose dot products share one operand
//! (a coefficient's `w Q_l/p~`, an atom's gradient row, or a weight row built
//! for a run of pairs) are summed in one loop that reads the shared row once
//! ([`super::lanes::dots`]). Every sum has the bits of its own dot product,
//! so the result is that of the pair-by-pair loop.

use super::atoms::tri;
use super::channel::{Channel, Pair};
use super::kernel::BS;
use super::lanes::{MAXR, dots_n};

/// The operand a pair shares with its neighbours.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shared {
    /// `w Q_l/p~` of active coefficient i.
    Wv(usize),
    /// Gradient row k of atom m.
    G(usize, usize),
    /// `w R_m (1 - R_m) g_mk`.
    Same(usize, usize),
    /// `w (R_mm2 - R_m R_m2) g_mk`.
    Cross(usize, usize, usize),
}

fn shared(p: &Pair) -> Shared {
    match *p {
        Pair::CoefCoef { i, .. } => Shared::Wv(i),
        Pair::CoefPar { m, k, .. } => Shared::G(m, k),
        Pair::Same { m, k, .. } => Shared::Same(m, k),
        Pair::Cross { m, k, m2, .. } => Shared::Cross(m, k, m2),
    }
}

/// The block rows the pair sums read (each `BS` long per row, `nb` used).
pub(super) struct Rows<'a> {
    pub nb: usize,
    pub w: &'a [f64],
    pub ip: &'a [f64],
    pub q: &'a [f64],
    pub r: &'a [f64],
    pub g: &'a [f64],
    pub v: &'a [f64],
    pub wv: &'a [f64],
    pub e: &'a [f64],
    /// Hessian sums per atom (packed).
    pub hs: &'a [f64],
}

/// Row k (`nb` events) of block rows `a`.
#[inline(always)]
fn row(a: &[f64], k: usize, nb: usize) -> &[f64] {
    &a[k * BS..k * BS + nb]
}

/// `h[tri(i, j)] +=` the block's sum of every pair of `ch` (`sv`: the slot
/// values; `tmp`: a block row).
#[inline(always)]
pub(super) fn add_pairs(ch: &Channel, sv: &[f64], x: &Rows, tmp: &mut [f64], h: &mut [f64]) {
    let nb = x.nb;
    let w = &x.w[..nb];
    let na_atoms = ch.atoms.len();
    let mut built: Option<Shared> = None;
    let mut out = [0.0f64; MAXR];
    let mut idx = 0;
    while idx < ch.pairs.len() {
        let key = shared(&ch.pairs[idx]);
        let mut end = idx + 1;
        while end < ch.pairs.len() && end - idx < MAXR && shared(&ch.pairs[end]) == key {
            end += 1;
        }
        let group = &ch.pairs[idx..end];
        // the shared row (weight rows are rebuilt only when the key changes)
        match key {
            Shared::Same(m, k) if built != Some(key) => {
                let (r, g) = (row(x.r, m, nb), row(x.g, ch.g_off[m] + k, nb));
                for (((tb, wb), &rb), gb) in tmp[..nb].iter_mut().zip(w).zip(r).zip(g) {
                    *tb = wb * rb * (1.0 - rb) * gb;
                }
            }
            Shared::Cross(m, k, m2) if built != Some(key) => {
                let tmp = &mut tmp[..nb];
                tmp.iter_mut().for_each(|v| *v = 0.0);
                for &l in &ch.atom_leaves[m] {
                    if !ch.atom_leaves[m2].contains(&l) {
                        continue;
                    }
                    let al = sv[ch.leaves[l].coef];
                    for ((tb, qb), ib) in tmp.iter_mut().zip(row(x.q, l, nb)).zip(&x.ip[..nb]) {
                        *tb += al * qb * ib;
                    }
                }
                let (r, r2) = (row(x.r, m, nb), row(x.r, m2, nb));
                let g = row(x.g, ch.g_off[m] + k, nb);
                for ((((tb, wb), rb), r2b), gb) in tmp.iter_mut().zip(w).zip(r).zip(r2).zip(g) {
                    let rr = *tb - rb * r2b;
                    *tb = wb * rr * gb;
                }
            }
            _ => {}
        }
        built = Some(key);
        let a: &[f64] = match key {
            Shared::Wv(i) => row(x.wv, i, nb),
            Shared::G(m, k) => row(x.g, ch.g_off[m] + k, nb),
            Shared::Same(..) | Shared::Cross(..) => &tmp[..nb],
        };
        let mut b: [&[f64]; MAXR] = [&[]; MAXR];
        for (bp, p) in b.iter_mut().zip(group) {
            *bp = match *p {
                Pair::CoefCoef { j, .. } => row(x.v, j, nb),
                // the roles list the active coefficients first, so that
                // coefficient i's rows of `e` are i's
                Pair::CoefPar { i, m, .. } => row(x.e, i * na_atoms + m, nb),
                Pair::Same { m, k2, .. } => row(x.g, ch.g_off[m] + k2, nb),
                Pair::Cross { m2, k2, .. } => row(x.g, ch.g_off[m2] + k2, nb),
            };
        }
        dots_n(a, &b[..group.len()], &mut out);
        for (p, &d) in group.iter().zip(&out) {
            match *p {
                Pair::CoefCoef { i, j } => h[tri(i, j)] -= d,
                Pair::CoefPar { i, j, .. } | Pair::Cross { i, j, .. } => h[tri(i, j)] += d,
                Pair::Same { i, j, m, k, k2 } => h[tri(i, j)] += d + x.hs[ch.h_off[m] + tri(k, k2)],
            }
        }
        idx = end;
    }
}
