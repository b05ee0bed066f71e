//! The fused kernel as candle custom ops, so a graph can use it with autodiff:
//! `twice_nll` (forward: fused value; backward: fused gradient) and its
//! gradient op (backward: exact Hessian-vector products from the analytic Hessian).

use super::{Dataset, HistFactoryModel};
use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Shape, Tensor};
use std::sync::Arc;

fn contiguous_f64<'a>(s: &'a CpuStorage, l: &Layout) -> candle_core::Result<&'a [f64]> {
    let CpuStorage::F64(v) = s else {
        candle_core::bail!("gradfit ops need f64 tensors");
    };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&v[a..b]),
        None => candle_core::bail!("gradfit ops need contiguous inputs"),
    }
}

fn dims_tp(l: &Layout, p: usize) -> candle_core::Result<usize> {
    let d = l.dims();
    if d.len() != 2 || d[1] != p {
        candle_core::bail!("expected theta of shape [T, {p}], got {d:?}");
    }
    Ok(d[0])
}

/// Fused `twice_nll(theta[T, P]) -> [T]`.
#[derive(Clone)]
pub struct TwiceNllOp {
    model: Arc<HistFactoryModel>,
    data: Arc<Dataset>,
}

/// Fused gradient `d twice_nll / d theta`, `[T, P] -> [T, P]`.
#[derive(Clone)]
pub struct GradOp {
    model: Arc<HistFactoryModel>,
    data: Arc<Dataset>,
}

/// Hessian-vector product `(theta[T, P], v[T, P]) -> [T, P]`.
#[derive(Clone)]
pub struct HvpOp {
    model: Arc<HistFactoryModel>,
    data: Arc<Dataset>,
}

impl TwiceNllOp {
    /// A twice_nll op for `model` on `data`.
    pub fn new(model: Arc<HistFactoryModel>, data: Arc<Dataset>) -> Self {
        TwiceNllOp { model, data }
    }

    /// Apply to `theta` ([T, P], f64, CPU).
    pub fn apply(&self, theta: &Tensor) -> candle_core::Result<Tensor> {
        theta.contiguous()?.apply_op1(self.clone())
    }
}

impl CustomOp1 for TwiceNllOp {
    fn name(&self) -> &'static str {
        "gradfit-twice-nll"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let p = self.model.n_pars();
        let t = dims_tp(l, p)?;
        let x = contiguous_f64(s, l)?;
        let mut f = vec![0.0; t];
        self.model.eval_batch(x, &[&self.data], &mut f, None, None);
        Ok((CpuStorage::F64(f), Shape::from(t)))
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let g = arg.contiguous()?.apply_op1(GradOp {
            model: self.model.clone(),
            data: self.data.clone(),
        })?;
        Ok(Some(g.broadcast_mul(&grad_res.unsqueeze(1)?)?))
    }
}

impl GradOp {
    /// A gradient op for `model` on `data`.
    pub fn new(model: Arc<HistFactoryModel>, data: Arc<Dataset>) -> Self {
        GradOp { model, data }
    }
}

impl CustomOp1 for GradOp {
    fn name(&self) -> &'static str {
        "gradfit-twice-nll-grad"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let p = self.model.n_pars();
        let t = dims_tp(l, p)?;
        let x = contiguous_f64(s, l)?;
        let mut f = vec![0.0; t];
        let mut g = vec![0.0; t * p];
        self.model
            .eval_batch(x, &[&self.data], &mut f, Some(&mut g), None);
        Ok((CpuStorage::F64(g), Shape::from((t, p))))
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let hv = arg.contiguous()?.apply_op2(
            &grad_res.contiguous()?,
            HvpOp {
                model: self.model.clone(),
                data: self.data.clone(),
            },
        )?;
        Ok(Some(hv))
    }
}

impl CustomOp2 for HvpOp {
    fn name(&self) -> &'static str {
        "gradfit-twice-nll-hvp"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let p = self.model.n_pars();
        let t = dims_tp(l1, p)?;
        if dims_tp(l2, p)? != t {
            candle_core::bail!("theta and v must have the same shape");
        }
        let x = contiguous_f64(s1, l1)?;
        let v = contiguous_f64(s2, l2)?;
        let mut f = vec![0.0; t];
        let mut h = vec![0.0; t * p * p];
        self.model
            .eval_batch(x, &[&self.data], &mut f, None, Some(&mut h));
        let mut out = vec![0.0; t * p];
        for k in 0..t {
            let hk = &h[k * p * p..(k + 1) * p * p];
            let vk = &v[k * p..(k + 1) * p];
            for i in 0..p {
                out[k * p + i] = hk[i * p..(i + 1) * p]
                    .iter()
                    .zip(vk)
                    .map(|(a, b)| a * b)
                    .sum();
            }
        }
        Ok((CpuStorage::F64(out), Shape::from((t, p))))
    }
}
