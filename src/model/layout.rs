//! Block structure of a likelihood's Hessian.
//!
//! Parameters that act on a single main bin (staterror, shapesys and
//! shapefactor components, mostly) are *local*; all others are *global*. Two
//! locals of different bins never share a term, so after permuting the
//! parameters (globals first, then the locals grouped by bin) the Hessian is
//! a dense global block, a coupling block between locals and globals, and
//! small diagonal blocks, one per bin:
//!
//! ```text
//!       G    L1   L2  ...
//! G   [ A              ]
//! L1  [ C1   D1        ]      (lower triangle stored)
//! L2  [ C2        D2   ]
//! ```
//!
//! A block Hessian is stored in a dense `n x n` row-major buffer in permuted
//! order, lower triangle only, and only its structural region is ever written
//! or read, so models with hundreds of per-bin parameters cost O(locals) per
//! evaluation and per solve instead of O(n^2) and O(n^3).

/// Permutation and block structure of an `n x n` Hessian.
#[derive(Debug, Clone, Default)]
pub struct HessianLayout {
    /// Number of parameters.
    pub n: usize,
    /// `perm[new] = old` parameter index.
    pub perm: Vec<usize>,
    /// `inv[old] = new` index.
    pub inv: Vec<usize>,
    /// Globals occupy new indices `0..n_global`.
    pub n_global: usize,
    /// Local blocks `[start, end)` in new indices.
    pub blocks: Vec<(usize, usize)>,
    /// Block of each new index (`usize::MAX` for globals).
    pub block_of: Vec<usize>,
}

impl HessianLayout {
    /// Everything global, identity order (a dense Hessian).
    pub fn dense(n: usize) -> Self {
        HessianLayout {
            n,
            perm: (0..n).collect(),
            inv: (0..n).collect(),
            n_global: n,
            blocks: Vec::new(),
            block_of: vec![usize::MAX; n],
        }
    }

    /// Layout from a per-parameter block key: `None` marks a global parameter,
    /// `Some(k)` a local one of block `k` (blocks ordered by key).
    pub fn from_keys(keys: &[Option<usize>]) -> Self {
        let n = keys.len();
        let mut perm: Vec<usize> = (0..n).filter(|&i| keys[i].is_none()).collect();
        let n_global = perm.len();
        let mut locals: Vec<usize> = (0..n).filter(|&i| keys[i].is_some()).collect();
        locals.sort_by_key(|&i| (keys[i], i));
        let mut blocks = Vec::new();
        let mut block_of = vec![usize::MAX; n];
        let mut k = 0;
        while k < locals.len() {
            let key = keys[locals[k]];
            let start = n_global + k;
            while k < locals.len() && keys[locals[k]] == key {
                block_of[n_global + k] = blocks.len();
                k += 1;
            }
            blocks.push((start, n_global + k));
        }
        perm.extend(locals);
        let mut inv = vec![0; n];
        for (new, &old) in perm.iter().enumerate() {
            inv[old] = new;
        }
        HessianLayout {
            n,
            perm,
            inv,
            n_global,
            blocks,
            block_of,
        }
    }

    /// First structural column of the local-diagonal part of row `i` (new index),
    /// i.e. the start of its block; `n_global` region `0..n_global` is structural too.
    #[inline]
    pub fn block_start(&self, i: usize) -> usize {
        if i < self.n_global {
            0
        } else {
            self.blocks[self.block_of[i]].0
        }
    }

    /// Call `f(i, j)` for every structural entry of the lower triangle (`j <= i`).
    pub fn for_each_entry(&self, mut f: impl FnMut(usize, usize)) {
        let g = self.n_global;
        for i in 0..g {
            for j in 0..=i {
                f(i, j);
            }
        }
        for &(s, e) in &self.blocks {
            for i in s..e {
                for j in 0..g {
                    f(i, j);
                }
                for j in s..=i {
                    f(i, j);
                }
            }
        }
    }

    /// Zero the structural region of a block Hessian.
    pub fn zero(&self, hb: &mut [f64]) {
        let (n, g) = (self.n, self.n_global);
        for i in 0..g {
            hb[i * n..i * n + i + 1].fill(0.0);
        }
        for &(s, e) in &self.blocks {
            for i in s..e {
                hb[i * n..i * n + g].fill(0.0);
                hb[i * n + s..i * n + i + 1].fill(0.0);
            }
        }
    }

    /// Scale the diagonal of a block Hessian.
    pub fn scale_diagonal(&self, hb: &mut [f64], factor: f64) {
        for i in 0..self.n {
            hb[i * self.n + i] *= factor;
        }
    }

    /// The full symmetric Hessian in the original parameter order.
    pub fn expand(&self, hb: &[f64], out: &mut [f64]) {
        let n = self.n;
        out[..n * n].fill(0.0);
        self.for_each_entry(|i, j| {
            let v = hb[i * n + j];
            let (a, b) = (self.perm[i], self.perm[j]);
            out[a * n + b] = v;
            out[b * n + a] = v;
        });
    }

    /// `x^T H x` for `x` in the original order.
    pub fn quad_form(&self, hb: &[f64], x: &[f64]) -> f64 {
        let n = self.n;
        let mut s = 0.0;
        self.for_each_entry(|i, j| {
            let v = hb[i * n + j] * x[self.perm[i]] * x[self.perm[j]];
            s += if i == j { v } else { 2.0 * v };
        });
        s
    }

    /// `y = H x` for a block Hessian and `x`, `y` in the new (permuted) order.
    pub fn matvec(&self, hb: &[f64], x: &[f64], y: &mut [f64]) {
        let (n, g) = (self.n, self.n_global);
        y[..n].fill(0.0);
        for i in 0..g {
            let row = &hb[i * n..i * n + i + 1];
            let xi = x[i];
            let mut acc = 0.0;
            for j in 0..i {
                acc += row[j] * x[j];
                y[j] += row[j] * xi;
            }
            y[i] += acc + row[i] * xi;
        }
        for &(s, e) in &self.blocks {
            for i in s..e {
                let row = &hb[i * n..i * n + i + 1];
                let xi = x[i];
                let mut acc = 0.0;
                for j in (0..g).chain(s..i) {
                    acc += row[j] * x[j];
                    y[j] += row[j] * xi;
                }
                y[i] += acc + row[i] * xi;
            }
        }
    }

    /// Whether `(a, b)` (original indices) is a structural entry.
    pub fn is_structural(&self, a: usize, b: usize) -> bool {
        let (i, j) = (self.inv[a].max(self.inv[b]), self.inv[a].min(self.inv[b]));
        i < self.n_global || j < self.n_global || self.block_of[i] == self.block_of[j]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_groups_locals_after_globals() {
        let keys = [Some(3), None, Some(1), None, Some(3), Some(1), Some(7)];
        let l = HessianLayout::from_keys(&keys);
        assert_eq!(l.n_global, 2);
        assert_eq!(l.perm, vec![1, 3, 2, 5, 0, 4, 6]);
        assert_eq!(l.blocks, vec![(2, 4), (4, 6), (6, 7)]);
        for (new, &old) in l.perm.iter().enumerate() {
            assert_eq!(l.inv[old], new);
        }
        assert!(l.is_structural(0, 4));
        assert!(!l.is_structural(0, 2));
        assert!(l.is_structural(0, 1));
        let mut count = 0;
        l.for_each_entry(|i, j| {
            assert!(j <= i);
            count += 1;
        });
        // globals 3, block rows: 2*(2) + (1+2) ... per row g + position in block
        assert_eq!(count, 3 + (2 + 1) + (2 + 2) + (2 + 1) + (2 + 2) + (2 + 1));
    }

    #[test]
    fn expand_and_quadratic_form_agree() {
        let keys = [None, Some(0), Some(0), Some(1), None];
        let l = HessianLayout::from_keys(&keys);
        let n = 5;
        let mut hb = vec![f64::NAN; n * n];
        l.zero(&mut hb);
        let mut k = 1.0;
        l.for_each_entry(|i, j| {
            hb[i * n + j] = k;
            k += 1.0;
        });
        let mut full = vec![0.0; n * n];
        l.expand(&hb, &mut full);
        let x = [0.3, -1.0, 2.0, 0.5, 1.5];
        let direct: f64 = (0..n)
            .map(|a| (0..n).map(|b| full[a * n + b] * x[a] * x[b]).sum::<f64>())
            .sum();
        assert!((l.quad_form(&hb, &x) - direct).abs() < 1e-12);
        // the product in the new order against the dense one
        let xn: Vec<f64> = (0..n).map(|k| x[l.perm[k]]).collect();
        let mut y = vec![f64::NAN; n];
        l.matvec(&hb, &xn, &mut y);
        for k in 0..n {
            let a = l.perm[k];
            let d: f64 = (0..n).map(|b| full[a * n + b] * x[b]).sum();
            assert!((y[k] - d).abs() < 1e-12, "row {k}: {} vs {d}", y[k]);
        }
        // locals of different blocks do not couple
        assert_eq!(full[n + 3], 0.0);
    }
}
