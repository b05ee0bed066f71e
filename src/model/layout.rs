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
//! A block Hessian is stored *packed*: row by row in permuted order, only the
//! structural entries of the lower triangle (a global row `i` holds columns
//! `0..=i`; a local row holds the `n_global` global columns, then its block's
//! columns up to the diagonal). [`HessianLayout::pos`] gives an entry's place.
//! This is the GPU kernels' format too. Models with hundreds of per-bin
//! parameters so cost O(locals) memory, per evaluation and per solve instead
//! of O(n^2) and O(n^3), and the buffer stays in the fastest cache.

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
    /// Start of each row (new index) in the packed buffer.
    pub row_off: Vec<usize>,
    /// First column of each local row's block (0 for global rows).
    pub row_bs: Vec<usize>,
    /// Entries of the packed buffer.
    pub n_packed: usize,
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
            row_off: Vec::new(),
            row_bs: Vec::new(),
            n_packed: 0,
        }
        .with_rows()
    }

    /// Fill `row_off`, `row_bs` and `n_packed` from the block structure.
    fn with_rows(mut self) -> Self {
        let g = self.n_global;
        let mut off = 0;
        self.row_off.clear();
        self.row_bs.clear();
        for i in 0..self.n {
            self.row_off.push(off);
            if i < g {
                self.row_bs.push(0);
                off += i + 1;
            } else {
                let bs = self.blocks[self.block_of[i]].0;
                self.row_bs.push(bs);
                off += g + i - bs + 1;
            }
        }
        self.n_packed = off;
        self
    }

    /// Position of the structural entry `(i, j)`, `j <= i` (new indices), in the packed buffer.
    #[inline]
    pub fn pos(&self, i: usize, j: usize) -> usize {
        debug_assert!(j <= i);
        let g = self.n_global;
        self.row_off[i] + if j < g { j } else { g + j - self.row_bs[i] }
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
            row_off: Vec::new(),
            row_bs: Vec::new(),
            n_packed: 0,
        }
        .with_rows()
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

    /// Zero a packed block Hessian.
    pub fn zero(&self, hb: &mut [f64]) {
        hb[..self.n_packed].fill(0.0);
    }

    /// Scale the diagonal of a packed block Hessian.
    pub fn scale_diagonal(&self, hb: &mut [f64], factor: f64) {
        for i in 0..self.n {
            hb[self.pos(i, i)] *= factor;
        }
    }

    /// The packed block form (new order) of a full symmetric matrix in the original order.
    pub fn pack(&self, full: &[f64], hb: &mut [f64]) {
        let n = self.n;
        self.for_each_entry(|i, j| hb[self.pos(i, j)] = full[self.perm[i] * n + self.perm[j]]);
    }

    /// The full symmetric Hessian in the original parameter order.
    pub fn expand(&self, hb: &[f64], out: &mut [f64]) {
        let n = self.n;
        out[..n * n].fill(0.0);
        self.for_each_entry(|i, j| {
            let v = hb[self.pos(i, j)];
            let (a, b) = (self.perm[i], self.perm[j]);
            out[a * n + b] = v;
            out[b * n + a] = v;
        });
    }

    /// The stored entries of row `i` (new index): `(globals, block)`, the
    /// block part starting at column `row_bs[i]` (empty for global rows,
    /// whose `globals` part runs to the diagonal).
    #[inline]
    pub fn row<'a>(&self, hb: &'a [f64], i: usize) -> (&'a [f64], &'a [f64]) {
        let (g, o) = (self.n_global, self.row_off[i]);
        if i < g {
            (&hb[o..o + i + 1], &[])
        } else {
            let bs = self.row_bs[i];
            (&hb[o..o + g], &hb[o + g..o + g + i - bs + 1])
        }
    }

    /// `x^T H x` for `x` in the original order.
    pub fn quad_form(&self, hb: &[f64], x: &[f64]) -> f64 {
        let g = self.n_global;
        let mut s = 0.0;
        for i in 0..self.n {
            let xi = x[self.perm[i]];
            if xi == 0.0 {
                continue;
            }
            let (gl, bl) = self.row(hb, i);
            let mut acc = 0.0;
            if i < g {
                for j in 0..i {
                    acc += gl[j] * x[self.perm[j]];
                }
                s += xi * (2.0 * acc + gl[i] * xi);
            } else {
                for j in 0..g {
                    acc += gl[j] * x[self.perm[j]];
                }
                let bs = self.row_bs[i];
                let last = bl.len() - 1;
                for k in 0..last {
                    acc += bl[k] * x[self.perm[bs + k]];
                }
                s += xi * (2.0 * acc + bl[last] * xi);
            }
        }
        s
    }

    /// `y = H x` for a packed block Hessian and `x`, `y` in the new (permuted) order.
    pub fn matvec(&self, hb: &[f64], x: &[f64], y: &mut [f64]) {
        let (n, g) = (self.n, self.n_global);
        y[..n].fill(0.0);
        for i in 0..n {
            let (gl, bl) = self.row(hb, i);
            let xi = x[i];
            let mut acc = 0.0;
            let gend = if i < g { i } else { g };
            for j in 0..gend {
                acc += gl[j] * x[j];
                y[j] += gl[j] * xi;
            }
            if i < g {
                y[i] += acc + gl[i] * xi;
            } else {
                let bs = self.row_bs[i];
                let last = bl.len() - 1;
                for k in 0..last {
                    acc += bl[k] * x[bs + k];
                    y[bs + k] += bl[k] * xi;
                }
                y[i] += acc + bl[last] * xi;
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
        assert_eq!(l.n_packed, count);
        assert_eq!(HessianLayout::dense(4).n_packed, 10);
    }

    #[test]
    fn expand_and_quadratic_form_agree() {
        let keys = [None, Some(0), Some(0), Some(1), None];
        let l = HessianLayout::from_keys(&keys);
        let n = 5;
        let mut hb = vec![f64::NAN; l.n_packed];
        l.zero(&mut hb);
        let mut k = 1.0;
        l.for_each_entry(|i, j| {
            hb[l.pos(i, j)] = k;
            k += 1.0;
        });
        // every structural entry has its own place
        assert_eq!(l.n_packed, k as usize - 1);
        let mut back = vec![0.0; l.n_packed];
        let mut full0 = vec![0.0; n * n];
        l.expand(&hb, &mut full0);
        l.pack(&full0, &mut back);
        assert_eq!(back, hb);
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
