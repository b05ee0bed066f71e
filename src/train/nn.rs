//! Multilayer perceptrons on candle-nn, seeded from the project's Philox
//! streams (candle's CPU generator cannot be seeded), with forward-mode
//! tangents: [`Mlp::forward_tangents`] propagates input directions through the
//! network as ordinary candle ops, so `d output / d input . v` (how a nuisance
//! that shifts the events moves the network output) is itself differentiable
//! with respect to the weights with a single reverse pass.

use crate::error::{Error, Result};
use crate::rng::Stream;
use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{Linear, Module, VarMap};
use std::path::Path;

/// Philox purpose tag of network initialisation streams.
const PURPOSE_INIT: u32 = 0x4e4e_0001;

/// The inputs of every layer of one forward pass (the ReLU outputs of the
/// layer before), kept for [`Mlp::backward`].
pub struct Activations {
    inputs: Vec<Tensor>,
}

/// The two fused elementwise passes of [`Mlp::forward_cached`] and
/// [`Mlp::backward`], each one pass over contiguous CPU tensors of one float
/// dtype.
#[derive(Clone, Copy)]
enum Fused {
    /// `g` where `a > 0`, else 0, for `g` and `a` of one shape: the reverse
    /// pass of `a = relu(z)` for an upstream gradient `g`.
    ReluMask,
    /// `z + b` for `z` [N, M] and a row vector `b` [M], then the ReLU when `relu`.
    BiasAdd { relu: bool },
}

impl Fused {
    fn apply<T>(self, x: &[T], y: &[T], m: usize) -> Vec<T>
    where
        T: Copy + Default + PartialOrd + Send + Sync + std::ops::Add<Output = T>,
    {
        use rayon::prelude::*;
        let zero = T::default();
        let mut out = vec![zero; x.len()];
        if x.is_empty() || m == 0 {
            return out;
        }
        let chunk = ((1 << 16) / m).max(1) * m;
        out.par_chunks_mut(chunk)
            .zip(x.par_chunks(chunk))
            .enumerate()
            .for_each(|(k, (o, x))| match self {
                Fused::ReluMask => {
                    let a = &y[k * chunk..k * chunk + x.len()];
                    for ((o, &g), &a) in o.iter_mut().zip(x).zip(a) {
                        *o = if a > zero { g } else { zero };
                    }
                }
                Fused::BiasAdd { relu } => {
                    for (o, x) in o.chunks_mut(m).zip(x.chunks(m)) {
                        for ((o, &z), &b) in o.iter_mut().zip(x).zip(y) {
                            let v = z + b;
                            *o = if relu && !(v > zero) { zero } else { v };
                        }
                    }
                }
            });
        out
    }
}

impl candle_core::CustomOp2 for Fused {
    fn name(&self) -> &'static str {
        match self {
            Fused::ReluMask => "relu-mask",
            Fused::BiasAdd { .. } => "bias-add",
        }
    }

    fn cpu_fwd(
        &self,
        x: &candle_core::CpuStorage,
        lx: &candle_core::Layout,
        y: &candle_core::CpuStorage,
        ly: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
        use candle_core::CpuStorage as S;
        let name = self.name();
        let (Some((x0, x1)), Some((y0, y1))) = (lx.contiguous_offsets(), ly.contiguous_offsets())
        else {
            candle_core::bail!("{name}: needs contiguous tensors");
        };
        let (_, m) = lx.shape().dims2()?;
        let fits = match self {
            Fused::ReluMask => lx.shape() == ly.shape(),
            Fused::BiasAdd { .. } => y1 - y0 == m,
        };
        if !fits {
            candle_core::bail!(
                "{name}: shapes {:?} and {:?} do not fit",
                lx.shape(),
                ly.shape()
            );
        }
        let out = match (x, y) {
            (S::F32(x), S::F32(y)) => S::F32(self.apply(&x[x0..x1], &y[y0..y1], m)),
            (S::F64(x), S::F64(y)) => S::F64(self.apply(&x[x0..x1], &y[y0..y1], m)),
            _ => candle_core::bail!("{name}: f32 or f64 tensors of one dtype"),
        };
        Ok((out, lx.shape().clone()))
    }
}

/// A ReLU multilayer perceptron; the last layer is linear (logits).
pub struct Mlp {
    layers: Vec<Linear>,
    /// The weights (for optimisers and checkpoints).
    pub varmap: VarMap,
    /// Layer sizes, inputs first.
    pub sizes: Vec<usize>,
    dtype: DType,
}

impl Mlp {
    /// A network with layer `sizes` (e.g. `[2, 1024, 1024, 1]`) in `dtype`,
    /// initialised as PyTorch's `Linear` (uniform in +-1/sqrt(fan_in)) from `seed`.
    pub fn new(sizes: &[usize], dtype: DType, seed: u64) -> Result<Self> {
        if sizes.len() < 2 || sizes.contains(&0) {
            return Err(Error::input(format!(
                "network sizes {sizes:?}: need at least an input and an output size, none zero"
            )));
        }
        let varmap = VarMap::new();
        let dev = Device::Cpu;
        let mut layers = Vec::new();
        for l in 0..sizes.len() - 1 {
            let (fi, fo) = (sizes[l], sizes[l + 1]);
            let bound = 1.0 / (fi as f64).sqrt();
            let mut sw = Stream::new(seed, l as u32, PURPOSE_INIT, 0);
            let w: Vec<f64> = (0..fi * fo)
                .map(|_| (2.0 * sw.uniform() - 1.0) * bound)
                .collect();
            let mut sb = Stream::new(seed, l as u32, PURPOSE_INIT, 1);
            let b: Vec<f64> = (0..fo)
                .map(|_| (2.0 * sb.uniform() - 1.0) * bound)
                .collect();
            let wt = Tensor::from_vec(w, (fo, fi), &dev)?.to_dtype(dtype)?;
            let bt = Tensor::from_vec(b, fo, &dev)?.to_dtype(dtype)?;
            let (wv, bv) = (Var::from_tensor(&wt)?, Var::from_tensor(&bt)?);
            {
                let mut data = varmap.data().lock().expect("varmap lock");
                data.insert(format!("layer{l}.weight"), wv.clone());
                data.insert(format!("layer{l}.bias"), bv.clone());
            }
            layers.push(Linear::new(
                wv.as_tensor().clone(),
                Some(bv.as_tensor().clone()),
            ));
        }
        Ok(Mlp {
            layers,
            varmap,
            sizes: sizes.to_vec(),
            dtype,
        })
    }

    /// The weights in a fixed order (layer by layer, weight then bias).
    pub fn vars(&self) -> Vec<Var> {
        let data = self.varmap.data().lock().expect("varmap lock");
        let mut v = Vec::new();
        for l in 0..self.layers.len() {
            v.push(data[&format!("layer{l}.weight")].clone());
            v.push(data[&format!("layer{l}.bias")].clone());
        }
        v
    }

    /// The dtype of the weights.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Logits [N, out] of inputs `x` [N, in].
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = x.to_dtype(self.dtype)?;
        let n = self.layers.len();
        for (i, l) in self.layers.iter().enumerate() {
            h = l.forward(&h)?;
            if i + 1 < n {
                h = h.relu()?;
            }
        }
        Ok(h)
    }

    /// Logits of `x` without an autodiff graph, with the activations that
    /// [`Mlp::backward`] needs.
    pub fn forward_cached(&self, x: &Tensor) -> Result<(Tensor, Activations)> {
        let mut h = x.to_dtype(self.dtype)?.detach();
        let n = self.layers.len();
        let mut inputs = Vec::with_capacity(n);
        for (i, l) in self.layers.iter().enumerate() {
            let z = h.matmul(&l.weight().detach().t()?)?;
            inputs.push(h);
            let zero;
            let b = match l.bias() {
                Some(b) => b.detach(),
                None => {
                    zero = Tensor::zeros(z.dims2()?.1, self.dtype, z.device())?;
                    zero
                }
            };
            // z + b, then the ReLU, in one pass
            h = z.apply_op2_no_bwd(&b, &Fused::BiasAdd { relu: i + 1 < n })?;
        }
        Ok((h, Activations { inputs }))
    }

    /// The reverse pass of [`Mlp::forward_cached`] by hand: the gradients of
    /// a loss with respect to every weight, given `dz`, its gradient with
    /// respect to the logits. It gives what candle's autodiff gives through
    /// [`Mlp::forward`] (tested to rounding), with two matrix products per
    /// layer and one masking pass, where the generic reverse pass allocates
    /// and sums several full-size temporaries per layer; the returned store
    /// feeds the optimisers.
    pub fn backward(&self, act: &Activations, dz: &Tensor) -> Result<GradStore> {
        let vars = self.vars();
        let mut grads = GradStore::default();
        let mut dh = dz.to_dtype(self.dtype)?;
        for l in (0..self.layers.len()).rev() {
            let a = &act.inputs[l];
            grads.insert(vars[2 * l].as_tensor(), dh.t()?.matmul(a)?);
            // the column sums as a product with ones (candle's sum over
            // rows of a wide matrix is a slow strided reduction)
            let ones = Tensor::ones((1, dh.dims2()?.0), self.dtype, dh.device())?;
            grads.insert(vars[2 * l + 1].as_tensor(), ones.matmul(&dh)?.squeeze(0)?);
            if l > 0 {
                let back = dh.matmul(&self.layers[l].weight().detach())?;
                dh = back.apply_op2_no_bwd(a, &Fused::ReluMask)?;
            }
        }
        Ok(grads)
    }

    /// Logits and their directional derivatives along each input tangent
    /// `dx` ([N, in] each): `(z, [dz/dx . dx_t])`.
    pub fn forward_tangents(&self, x: &Tensor, dx: &[Tensor]) -> Result<(Tensor, Vec<Tensor>)> {
        let mut h = x.to_dtype(self.dtype)?;
        let mut th: Vec<Tensor> = dx
            .iter()
            .map(|t| t.to_dtype(self.dtype))
            .collect::<candle_core::Result<_>>()?;
        let n = self.layers.len();
        for (i, l) in self.layers.iter().enumerate() {
            let z = l.forward(&h)?;
            let wt = l.weight().t()?;
            let tz: Vec<Tensor> = th
                .iter()
                .map(|t| t.broadcast_matmul(&wt))
                .collect::<candle_core::Result<_>>()?;
            if i + 1 < n {
                let mask = z.gt(0.0)?.to_dtype(self.dtype)?;
                h = z.relu()?;
                th = tz
                    .iter()
                    .map(|t| t * &mask)
                    .collect::<candle_core::Result<_>>()?;
            } else {
                h = z;
                th = tz;
            }
        }
        Ok((h, th))
    }

    /// Write the weights as safetensors.
    pub fn save(&self, path: &Path) -> Result<()> {
        self.varmap
            .save(path)
            .map_err(|e| Error::input(format!("{}: {e}", path.display())))
    }

    /// Read weights saved by [`Mlp::save`] into this network (sizes must match).
    pub fn load(&mut self, path: &Path) -> Result<()> {
        self.varmap
            .load(path)
            .map_err(|e| Error::input(format!("{}: {e}", path.display())))
    }

    /// All weights flattened to f64 in [`Mlp::vars`] order (for comparisons).
    pub fn flat_weights(&self) -> Result<Vec<f64>> {
        let mut out = Vec::new();
        for v in self.vars() {
            out.extend(
                v.as_tensor()
                    .to_dtype(DType::F64)?
                    .flatten_all()?
                    .to_vec1::<f64>()?,
            );
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hand-written reverse pass against candle's autodiff through `forward`.
    #[test]
    fn backward_matches_autodiff() {
        // the second case spans several chunks of the fused passes
        for (n, sizes) in [(40, vec![3, 16, 8, 2]), (3000, vec![3, 64, 48, 2])] {
            let net = Mlp::new(&sizes, DType::F64, 5).unwrap();
            let x = Tensor::randn(0f64, 1.0, (n, 3), &Device::Cpu).unwrap();
            let w = Tensor::randn(0f64, 1.0, (n, 2), &Device::Cpu).unwrap();
            // loss = sum(w * tanh(z)): dz = w * (1 - tanh(z)^2)
            let z = net.forward(&x).unwrap();
            let loss = (&w * z.tanh().unwrap()).unwrap().sum_all().unwrap();
            let auto = loss.backward().unwrap();
            let (z2, act) = net.forward_cached(&x).unwrap();
            let zd = (&z - &z2).unwrap().abs().unwrap().max_all().unwrap();
            assert!(zd.to_scalar::<f64>().unwrap() < 1e-12);
            let t = z2.tanh().unwrap();
            let dz = (&w * (1.0 - (&t * &t).unwrap()).unwrap()).unwrap();
            let hand = net.backward(&act, &dz).unwrap();
            for v in net.vars() {
                let get = |g: &GradStore| {
                    g.get(v.as_tensor())
                        .unwrap()
                        .flatten_all()
                        .unwrap()
                        .to_vec1::<f64>()
                        .unwrap()
                };
                let (a, h) = (get(&auto), get(&hand));
                assert_eq!(a.len(), h.len());
                for (p, q) in a.iter().zip(&h) {
                    assert!((p - q).abs() <= 1e-11 * (1.0 + p.abs()), "{p} vs {q}");
                }
            }
        }
    }
}
