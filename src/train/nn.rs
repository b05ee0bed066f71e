//! Multilayer perceptrons on candle-nn, seeded from the project's Philox
//! streams (candle's CPU generator cannot be seeded), with forward-mode
//! tangents: [`Mlp::forward_tangents`] propagates input directions through the
//! network as ordinary candle ops, so `d output / d input . v` (how a nuisance
//! that shifts the events moves the network output) is itself differentiable
//! with respect to the weights with a single reverse pass.

use crate::error::{Error, Result};
use crate::rng::Stream;
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{Linear, Module, VarMap};
use std::path::Path;

/// Philox purpose tag of network initialisation streams.
const PURPOSE_INIT: u32 = 0x4e4e_0001;

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
