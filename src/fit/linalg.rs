//! Small dense symmetric solves on the CPU through faer (in place, no allocation per call).

use faer::dyn_stack::{MemBuffer, MemStack, StackReq};
use faer::linalg::cholesky::llt;
use faer::{Conj, MatMut, MatRef, Par};

/// Reusable Cholesky factorisation of symmetric positive-definite matrices up to a size.
pub struct Chol {
    buf: Vec<f64>,
    n: usize,
    mem: MemBuffer,
    cap: usize,
}

impl Clone for Chol {
    /// The same factor, with its own scratch memory.
    fn clone(&self) -> Self {
        let mut c = Chol::new(self.cap);
        c.buf.copy_from_slice(&self.buf);
        c.n = self.n;
        c
    }
}

impl Chol {
    /// Buffers for matrices up to `nmax` x `nmax`.
    pub fn new(nmax: usize) -> Self {
        let req = StackReq::any_of(&[
            llt::factor::cholesky_in_place_scratch::<f64>(
                nmax.max(1),
                Par::Seq,
                Default::default(),
            ),
            llt::inverse::inverse_scratch::<f64>(nmax.max(1), Par::Seq),
        ]);
        Chol {
            buf: vec![0.0; nmax * nmax],
            n: 0,
            mem: MemBuffer::new(req),
            cap: nmax,
        }
    }

    fn grow(&mut self, n: usize) {
        if n > self.cap {
            *self = Chol::new(n);
        }
    }

    /// Factor the `n` x `n` symmetric matrix with entries `get(i, j)` (only i >= j is read).
    /// Returns false when the matrix is not positive definite.
    pub fn factor(&mut self, n: usize, get: impl Fn(usize, usize) -> f64) -> bool {
        self.grow(n);
        self.n = n;
        let a = &mut self.buf[..n * n];
        // only the lower triangle is written and read: the upper one holds
        // whatever an earlier factorisation or inverse left there
        let mut finite = true;
        for j in 0..n {
            for i in j..n {
                let v = get(i, j);
                finite &= v.is_finite();
                a[j * n + i] = v;
            }
        }
        if !finite {
            return false;
        }
        let m = MatMut::from_column_major_slice_mut(a, n, n);
        let stack = MemStack::new(&mut self.mem);
        llt::factor::cholesky_in_place(m, Default::default(), Par::Seq, stack, Default::default())
            .is_ok()
    }

    /// Solve `A x = rhs` in place with the last factorisation.
    pub fn solve(&mut self, rhs: &mut [f64]) {
        let n = self.n;
        let l = MatRef::from_column_major_slice(&self.buf[..n * n], n, n);
        let r = MatMut::from_column_major_slice_mut(&mut rhs[..n], n, 1);
        let stack = MemStack::new(&mut self.mem);
        llt::solve::solve_in_place_with_conj(l, Conj::No, r, Par::Seq, stack);
    }

    /// Write the inverse of the last factorised matrix into `out` (n x n, row-major, full).
    pub fn inverse(&mut self, out: &mut [f64]) {
        let n = self.n;
        let l = MatRef::from_column_major_slice(&self.buf[..n * n], n, n);
        let mut o = vec![0.0; n * n];
        {
            let om = MatMut::from_column_major_slice_mut(&mut o, n, n);
            let stack = MemStack::new(&mut self.mem);
            llt::inverse::inverse(om, l, Par::Seq, stack);
        }
        // only the lower triangle is written: symmetrise
        for j in 0..n {
            for i in j..n {
                let v = o[j * n + i];
                out[i * n + j] = v;
                out[j * n + i] = v;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solves_and_inverts_spd_matrix() {
        let n = 5;
        let a: Vec<f64> = (0..n * n)
            .map(|k| {
                let (i, j) = (k / n, k % n);
                if i == j {
                    4.0 + i as f64
                } else {
                    1.0 / (1.0 + (i + j) as f64)
                }
            })
            .collect();
        let mut c = Chol::new(3);
        assert!(c.factor(n, |i, j| a[i * n + j]));
        let x_true = [1.0, -2.0, 0.5, 3.0, -1.0];
        let mut b: Vec<f64> = (0..n)
            .map(|i| (0..n).map(|j| a[i * n + j] * x_true[j]).sum())
            .collect();
        c.solve(&mut b);
        for i in 0..n {
            assert!((b[i] - x_true[i]).abs() < 1e-12);
        }
        let mut inv = vec![0.0; n * n];
        c.inverse(&mut inv);
        for i in 0..n {
            for j in 0..n {
                let v: f64 = (0..n).map(|k| a[i * n + k] * inv[k * n + j]).sum();
                assert!((v - if i == j { 1.0 } else { 0.0 }).abs() < 1e-12);
            }
        }
        assert!(!c.factor(2, |i, j| if i == j { -1.0 } else { 0.0 }));
    }
}
