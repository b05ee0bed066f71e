//! Sample-bin yields with their analytic Jacobian with respect to the parameters,
//! for propagating a covariance to yields (post-fit uncertainties).

use super::HistFactoryModel;

/// Yields of every sample-bin and the sparse Jacobian `d nu_j / d theta`.
///
/// Row `j` (one per sample-bin, in `model.sb` order) lists each parameter that
/// enters the sample-bin once, with the derivative summed over the terms it
/// appears in (a name used as normsys and histosys on one sample is one entry).
#[derive(Debug, Clone)]
pub struct YieldJacobian {
    /// Expected yield of each sample-bin.
    pub values: Vec<f64>,
    /// CSR row pointers into `par` and `d` (length: sample-bins + 1).
    pub ptr: Vec<usize>,
    /// Parameter index of each entry, increasing within a row.
    pub par: Vec<u32>,
    /// Derivative of each entry.
    pub d: Vec<f64>,
}

impl YieldJacobian {
    /// The parameters and derivatives of sample-bin `j`.
    pub fn row(&self, j: usize) -> (&[u32], &[f64]) {
        let (a, b) = (self.ptr[j], self.ptr[j + 1]);
        (&self.par[a..b], &self.d[a..b])
    }

    /// Row `j` as a dense vector of length `p`.
    pub fn dense_row(&self, j: usize, p: usize) -> Vec<f64> {
        let mut v = vec![0.0; p];
        let (pars, d) = self.row(j);
        for (&i, &x) in pars.iter().zip(d) {
            v[i as usize] += x;
        }
        v
    }
}

impl HistFactoryModel {
    /// Yields of every sample-bin at `theta` and their exact first derivatives.
    ///
    /// With `nu = (prod_k f_k) * (nominal + sum_q a_q)`, the derivative of a
    /// factor's parameter uses the product of the other factors (prefix and
    /// suffix products, so a factor at zero, e.g. a normfactor at 0, is exact),
    /// and an additive term's parameter gets `prod_k f_k * a_q'`.
    pub fn sample_bin_jacobian(&self, theta: &[f64]) -> YieldJacobian {
        let nsb = self.sb.len();
        let mut values = Vec::with_capacity(nsb);
        let mut ptr = Vec::with_capacity(nsb + 1);
        let mut par = Vec::new();
        let mut d = Vec::new();
        ptr.push(0);
        let mut fv: Vec<f64> = Vec::new();
        let mut fd: Vec<f64> = Vec::new();
        let mut pre: Vec<f64> = Vec::new();
        let mut suf: Vec<f64> = Vec::new();
        let mut row: Vec<(u32, f64)> = Vec::new();
        for s in &self.sb {
            let mults = &self.mult[s.mult.0 as usize..s.mult.1 as usize];
            let adds = &self.add[s.add.0 as usize..s.add.1 as usize];
            fv.clear();
            fd.clear();
            for t in mults {
                let x = theta[t.par as usize];
                if t.interp == u32::MAX {
                    fv.push(x);
                    fd.push(1.0);
                } else {
                    let (v, d1, _) = self.interps[t.interp as usize].eval(x);
                    fv.push(v);
                    fd.push(d1);
                }
            }
            let m = fv.len();
            pre.clear();
            pre.push(1.0);
            for k in 0..m {
                let last = pre[k];
                pre.push(last * fv[k]);
            }
            suf.clear();
            suf.resize(m + 1, 1.0);
            for k in (0..m).rev() {
                suf[k] = suf[k + 1] * fv[k];
            }
            let f = pre[m];
            let mut a = s.nom;
            row.clear();
            for t in adds {
                let (v, d1, _) = self.interps[t.interp as usize].eval(theta[t.par as usize]);
                a += v;
                row.push((t.par, f * d1));
            }
            for (k, t) in mults.iter().enumerate() {
                row.push((t.par, pre[k] * suf[k + 1] * fd[k] * a));
            }
            values.push(f * a);
            row.sort_by_key(|e| e.0);
            let mut i = 0;
            while i < row.len() {
                let p0 = row[i].0;
                let mut sum = 0.0;
                while i < row.len() && row[i].0 == p0 {
                    sum += row[i].1;
                    i += 1;
                }
                par.push(p0);
                d.push(sum);
            }
            ptr.push(par.len());
        }
        YieldJacobian {
            values,
            ptr,
            par,
            d,
        }
    }
}
