//! Solves with a packed block Hessian (see [`HessianLayout`]) by the Schur complement
//! on the global parameters:
//!
//! ```text
//! [ A   C^T ] [x_g]   [r_g]      S = A - sum_b C_b^T D_b^-1 C_b
//! [ C   D   ] [x_l] = [r_l]      x_g = S^-1 (r_g - sum_b C_b^T D_b^-1 r_b)
//!                                x_b = D_b^-1 (r_b - C_b x_g)
//! ```
//!
//! The per-bin blocks `D_b` are tiny (one to a few parameters) and are
//! factorised by a small inline Cholesky (one-parameter blocks, the common
//! case, in flat arrays of their own); the global Schur complement `S` goes
//! to faer unless it is small. Only free parameters take part (fixed ones and those held at a
//! bound are dropped), and Levenberg-Marquardt damping scales each diagonal
//! entry by `1 + lambda` (with a floor for tiny entries).

use super::linalg::Chol;
use crate::model::HessianLayout;

/// Reusable factorisation of the free part of a block Hessian.
#[derive(Clone)]
pub struct BlockSolver {
    gfree: Vec<usize>,
    /// Blocks with one free local parameter (the common case: one staterror
    /// or shapesys component in the bin), kept apart in flat arrays: the
    /// parameter, `sqrt` of its damped diagonal, `W` rows (`gf` each), `y`.
    one: Vec<usize>,
    one_f: Vec<f64>,
    one_w: Vec<f64>,
    one_y: Vec<f64>,
    /// Larger blocks: free locals, ranges into them, factor and `W` offsets.
    lfree: Vec<usize>,
    blk: Vec<(usize, usize)>,
    dfac: Vec<f64>,
    doff: Vec<usize>,
    w: Vec<f64>,
    woff: Vec<usize>,
    s: Vec<f64>,
    chol: Chol,
    y: Vec<f64>,
    rg: Vec<f64>,
    last_free: Vec<bool>,
}

/// Schur complements up to this size are factorised inline (faer's setup
/// costs more than the arithmetic for a handful of globals).
const SMALL_SCHUR: usize = 8;

#[inline]
fn damp(v: f64, lambda: f64) -> f64 {
    if lambda == 0.0 {
        v
    } else {
        v + lambda * v.abs().max(1e-8)
    }
}

/// `S -= c w^T` on the lower triangle for one local row: `row` holds its
/// global columns (`c` at the free globals), `wk` its `W` row.
#[inline]
fn schur_sub(s: &mut [f64], gfree: &[usize], row: &[f64], wk: &[f64]) {
    let gf = gfree.len();
    for a in 0..gf {
        let ca = row[gfree[a]];
        if ca == 0.0 {
            continue;
        }
        let srow = &mut s[a * gf..a * gf + a + 1];
        for c in 0..=a {
            srow[c] -= ca * wk[c];
        }
    }
}

/// In-place Cholesky of a small row-major lower-triangular `l x l` matrix.
fn small_cholesky(a: &mut [f64], l: usize) -> bool {
    for j in 0..l {
        let mut d = a[j * l + j];
        for k in 0..j {
            d -= a[j * l + k] * a[j * l + k];
        }
        if !(d > 0.0) || !d.is_finite() {
            return false;
        }
        let d = d.sqrt();
        a[j * l + j] = d;
        for i in j + 1..l {
            let mut v = a[i * l + j];
            for k in 0..j {
                v -= a[i * l + k] * a[j * l + k];
            }
            a[i * l + j] = v / d;
        }
    }
    true
}

/// Solve `L L^T x = b` in place with a small factor.
fn small_solve(f: &[f64], l: usize, b: &mut [f64]) {
    for i in 0..l {
        let mut v = b[i];
        for k in 0..i {
            v -= f[i * l + k] * b[k];
        }
        b[i] = v / f[i * l + i];
    }
    for i in (0..l).rev() {
        let mut v = b[i];
        for k in i + 1..l {
            v -= f[k * l + i] * b[k];
        }
        b[i] = v / f[i * l + i];
    }
}

impl BlockSolver {
    /// Buffers for a layout.
    pub fn new(layout: &HessianLayout) -> Self {
        BlockSolver {
            gfree: Vec::with_capacity(layout.n_global),
            one: Vec::new(),
            one_f: Vec::new(),
            one_w: Vec::new(),
            one_y: Vec::new(),
            lfree: Vec::new(),
            blk: Vec::new(),
            dfac: Vec::new(),
            doff: Vec::new(),
            w: Vec::new(),
            woff: Vec::new(),
            s: Vec::new(),
            chol: Chol::new(layout.n_global),
            y: vec![0.0; layout.n],
            rg: Vec::new(),
            last_free: Vec::new(),
        }
    }

    /// Rebuild the free index lists and buffer offsets when the free set changed.
    fn prepare(&mut self, lay: &HessianLayout, free: &[bool]) {
        if self.last_free.as_slice() == free {
            return;
        }
        self.last_free.clear();
        self.last_free.extend_from_slice(free);
        self.gfree.clear();
        self.gfree.extend((0..lay.n_global).filter(|&i| free[i]));
        let gf = self.gfree.len();
        self.one.clear();
        self.lfree.clear();
        self.blk.clear();
        self.doff.clear();
        self.woff.clear();
        let (mut dsize, mut wsize) = (0, 0);
        for &(s, e) in &lay.blocks {
            let mut it = (s..e).filter(|&i| free[i]);
            match (it.next(), it.next()) {
                (None, _) => continue,
                (Some(i), None) => {
                    self.one.push(i);
                    continue;
                }
                _ => {}
            }
            let start = self.lfree.len();
            self.lfree.extend((s..e).filter(|&i| free[i]));
            let l = self.lfree.len() - start;
            self.blk.push((start, self.lfree.len()));
            self.doff.push(dsize);
            self.woff.push(wsize);
            dsize += l * l;
            wsize += l * gf;
        }
        self.dfac.resize(dsize, 0.0);
        self.w.resize(wsize, 0.0);
        self.s.resize(gf * gf, 0.0);
        self.one_f.resize(self.one.len(), 0.0);
        self.one_y.resize(self.one.len(), 0.0);
        self.one_w.resize(self.one.len() * gf, 0.0);
    }

    /// Whether the last factorisation was of the free set `free` (new index order).
    pub fn factored_for(&self, free: &[bool]) -> bool {
        self.last_free.as_slice() == free
    }

    /// Factor the free part (`free[new index]`) of the block Hessian `hb`
    /// with damping `lambda`; false when it is not positive definite.
    pub fn factor(&mut self, lay: &HessianLayout, hb: &[f64], free: &[bool], lambda: f64) -> bool {
        self.prepare(lay, free);
        let gf = self.gfree.len();
        let ng = lay.n_global;
        // blocks with one free parameter (their other parameters, if any, are
        // fixed or held at a bound)
        for (k, &i) in self.one.iter().enumerate() {
            let ro = lay.row_off[i];
            let d = damp(hb[lay.pos(i, i)], lambda);
            if !(d > 0.0) || !d.is_finite() {
                return false;
            }
            self.one_f[k] = d.sqrt();
            let row = &hb[ro..ro + ng];
            let wk = &mut self.one_w[k * gf..(k + 1) * gf];
            for (w, &g) in wk.iter_mut().zip(&self.gfree) {
                *w = row[g] / d;
            }
        }
        for (bi, &(start, end)) in self.blk.iter().enumerate() {
            let l = end - start;
            let d0 = self.doff[bi];
            let w0 = self.woff[bi];
            for a in 0..l {
                let ia = self.lfree[start + a];
                for b in 0..l {
                    self.dfac[d0 + a * l + b] = if b < a {
                        hb[lay.pos(ia, self.lfree[start + b])]
                    } else if b == a {
                        damp(hb[lay.pos(ia, ia)], lambda)
                    } else {
                        0.0
                    };
                }
            }
            if !small_cholesky(&mut self.dfac[d0..d0 + l * l], l) {
                return false;
            }
            // W_b = D_b^-1 C_b, row-major l x gf
            for c in 0..gf {
                let gc = self.gfree[c];
                let col = &mut self.y[..l];
                for a in 0..l {
                    col[a] = hb[lay.row_off[self.lfree[start + a]] + gc];
                }
                small_solve(&self.dfac[d0..d0 + l * l], l, col);
                for a in 0..l {
                    self.w[w0 + a * gf + c] = col[a];
                }
            }
        }
        if gf == 0 {
            return true;
        }
        // Schur complement on the free globals (lower triangle)
        for a in 0..gf {
            let ga = lay.row_off[self.gfree[a]];
            for c in 0..=a {
                let v = hb[ga + self.gfree[c]];
                self.s[a * gf + c] = if a == c { damp(v, lambda) } else { v };
            }
        }
        for (k, &i) in self.one.iter().enumerate() {
            let wk = &self.one_w[k * gf..(k + 1) * gf];
            schur_sub(&mut self.s, &self.gfree, &hb[lay.row_off[i]..], wk);
        }
        for (bi, &(start, end)) in self.blk.iter().enumerate() {
            let w0 = self.woff[bi];
            for k in 0..end - start {
                let wk = &self.w[w0 + k * gf..w0 + (k + 1) * gf];
                schur_sub(
                    &mut self.s,
                    &self.gfree,
                    &hb[lay.row_off[self.lfree[start + k]]..],
                    wk,
                );
            }
        }
        if gf <= SMALL_SCHUR {
            return small_cholesky(&mut self.s[..gf * gf], gf);
        }
        let s = &self.s;
        self.chol.factor(gf, |a, c| s[a * gf + c])
    }

    /// Solve with the last factorisation; `r` (new index order, length n) holds
    /// the right-hand side on the free entries and receives the solution there.
    pub fn solve(&mut self, lay: &HessianLayout, hb: &[f64], r: &mut [f64]) {
        let gf = self.gfree.len();
        // y_b = D_b^-1 r_b
        for ((y, &f), &i) in self.one_y.iter_mut().zip(&self.one_f).zip(&self.one) {
            *y = r[i] / (f * f);
        }
        for (bi, &(start, end)) in self.blk.iter().enumerate() {
            let l = end - start;
            let d0 = self.doff[bi];
            let y = &mut self.y[start..end];
            for a in 0..l {
                y[a] = r[self.lfree[start + a]];
            }
            small_solve(&self.dfac[d0..d0 + l * l], l, y);
        }
        if gf > 0 {
            // r_g' = r_g - sum_b C_b^T y_b ; x_g = S^-1 r_g'
            self.rg.clear();
            self.rg.extend(self.gfree.iter().map(|&g| r[g]));
            for (&i, &yk) in self.one.iter().zip(&self.one_y) {
                if yk == 0.0 {
                    continue;
                }
                let row = lay.row_off[i];
                for a in 0..gf {
                    self.rg[a] -= hb[row + self.gfree[a]] * yk;
                }
            }
            for &(start, end) in &self.blk {
                for k in start..end {
                    let row = lay.row_off[self.lfree[k]];
                    let yk = self.y[k];
                    if yk == 0.0 {
                        continue;
                    }
                    for a in 0..gf {
                        self.rg[a] -= hb[row + self.gfree[a]] * yk;
                    }
                }
            }
            if gf <= SMALL_SCHUR {
                small_solve(&self.s[..gf * gf], gf, &mut self.rg);
            } else {
                self.chol.solve(&mut self.rg);
            }
            for (a, &g) in self.gfree.iter().enumerate() {
                r[g] = self.rg[a];
            }
        }
        // x_b = y_b - W_b x_g
        for (k, &i) in self.one.iter().enumerate() {
            let mut v = self.one_y[k];
            if gf > 0 {
                let wk = &self.one_w[k * gf..(k + 1) * gf];
                v -= wk.iter().zip(&self.rg).map(|(a, b)| a * b).sum::<f64>();
            }
            r[i] = v;
        }
        for (bi, &(start, end)) in self.blk.iter().enumerate() {
            let w0 = self.woff[bi];
            for k in 0..end - start {
                let mut v = self.y[start + k];
                if gf > 0 {
                    let wk = &self.w[w0 + k * gf..w0 + (k + 1) * gf];
                    v -= wk.iter().zip(&self.rg).map(|(a, b)| a * b).sum::<f64>();
                }
                r[self.lfree[start + k]] = v;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schur_solve_matches_dense_solve() {
        // 2 globals, blocks of 2 and 1 locals, 1 local fixed
        let keys = [None, Some(0), Some(0), None, Some(1), Some(2)];
        let lay = HessianLayout::from_keys(&keys);
        let n = 6;
        // a symmetric positive-definite matrix with the block sparsity (original order)
        let mut full = vec![0.0; n * n];
        let mut put = |a: usize, b: usize, v: f64| {
            full[a * n + b] = v;
            full[b * n + a] = v;
        };
        for i in 0..n {
            put(i, i, 4.0 + i as f64);
        }
        put(0, 3, 0.7);
        put(1, 2, 0.9);
        for &l in &[1, 2, 4, 5] {
            put(0, l, 0.3 + 0.1 * l as f64);
            put(3, l, -0.2 + 0.05 * l as f64);
        }
        assert!(lay.is_structural(1, 2) && !lay.is_structural(1, 4));
        let mut hb = vec![0.0; lay.n_packed];
        lay.pack(&full, &mut hb);
        let free_old = [true, true, true, true, false, true];
        let mut free = vec![false; n];
        for (i, f) in free_old.iter().enumerate() {
            free[lay.inv[i]] = *f;
        }
        let mut solver = BlockSolver::new(&lay);
        for lambda in [0.0, 0.3] {
            assert!(solver.factor(&lay, &hb, &free, lambda));
            let rhs_old = [1.0, -2.0, 0.5, 3.0, 0.0, -1.0];
            let mut r = vec![0.0; n];
            for i in 0..n {
                r[lay.inv[i]] = rhs_old[i];
            }
            solver.solve(&lay, &hb, &mut r);
            // check (H_ff + damping) x = rhs on the free set
            let fidx: Vec<usize> = (0..n).filter(|&i| free_old[i]).collect();
            for &a in &fidx {
                let mut v = 0.0;
                for &b in &fidx {
                    let h = full[a * n + b];
                    let h = if a == b { damp(h, lambda) } else { h };
                    v += h * r[lay.inv[b]];
                }
                assert!(
                    (v - rhs_old[a]).abs() < 1e-12,
                    "row {a}: {v} vs {}",
                    rhs_old[a]
                );
            }
        }
        // an indefinite matrix is reported
        let mut bad = hb.clone();
        bad[lay.pos(lay.inv[5], lay.inv[5])] = -1.0;
        assert!(!solver.factor(&lay, &bad, &free, 0.0));
    }
}

#[cfg(test)]
mod more_tests {
    use super::*;

    /// A random symmetric positive-definite matrix with the layout's block sparsity
    /// (original order), diagonally dominant.
    fn spd(lay: &HessianLayout, seed: u64) -> Vec<f64> {
        let n = lay.n;
        let mut st = seed;
        let mut rnd = || {
            st = st
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((st >> 11) as f64 / (1u64 << 53) as f64) - 0.5
        };
        let mut full = vec![0.0; n * n];
        for a in 0..n {
            for b in 0..a {
                if lay.is_structural(a, b) {
                    let v = rnd();
                    full[a * n + b] = v;
                    full[b * n + a] = v;
                }
            }
        }
        for a in 0..n {
            full[a * n + a] = n as f64 + rnd();
        }
        full
    }

    #[test]
    fn large_schur_complements_and_one_parameter_blocks_solve_exactly() {
        // 10 globals (faer path), six one-parameter blocks, one block of three
        let mut keys: Vec<Option<usize>> = vec![None; 10];
        keys.extend((0..6).map(Some));
        keys.extend([Some(6), Some(6), Some(6)]);
        let lay = HessianLayout::from_keys(&keys);
        let n = lay.n;
        let full = spd(&lay, 7);
        let mut hb = vec![0.0; lay.n_packed];
        lay.pack(&full, &mut hb);
        let mut solver = BlockSolver::new(&lay);
        // all free; a global and a local of the 3-block held; two locals of the
        // 3-block held (one free parameter left in a block of three)
        for held in [vec![], vec![3usize, 17], vec![16, 18]] {
            let free_old: Vec<bool> = (0..n).map(|i| !held.contains(&i)).collect();
            let mut free = vec![false; n];
            for i in 0..n {
                free[lay.inv[i]] = free_old[i];
            }
            assert!(solver.factor(&lay, &hb, &free, 0.0));
            let rhs: Vec<f64> = (0..n).map(|i| (i as f64 * 0.7).sin()).collect();
            let mut r = vec![0.0; n];
            for i in 0..n {
                r[lay.inv[i]] = if free_old[i] { rhs[i] } else { 0.0 };
            }
            solver.solve(&lay, &hb, &mut r);
            for a in (0..n).filter(|&a| free_old[a]) {
                let v: f64 = (0..n)
                    .filter(|&b| free_old[b])
                    .map(|b| full[a * n + b] * r[lay.inv[b]])
                    .sum();
                assert!((v - rhs[a]).abs() < 1e-12, "row {a}: {v} vs {}", rhs[a]);
            }
        }
    }
}
