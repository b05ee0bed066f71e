//! Per-event ratios from an ensemble of networks: wherever a workspace names
//! a ratio array it may instead give
//!
//! ```json
//! {"features": ["x1.npy", "events.parquet:x2"],
//!  "ensemble": ["net0.safetensors", "net1.safetensors"],
//!  "output": "log_ratio", "activation": "relu"}
//! ```
//!
//! Each member is a multilayer perceptron stored as safetensors (candle-nn's
//! and PyTorch's `Linear` layout): tensors `PREFIX.weight` (`[out, in]`) and
//! `PREFIX.bias`, layers ordered by the number that ends `PREFIX`
//! (`layer0`, `layer1`, ... as `gradfit train` writes them; `0`, `2`, ... as an
//! `nn.Sequential` does), `activation` (`relu`, default; `tanh`, `sigmoid`,
//! `silu`) between layers and none after the last, which has one output.
//! `output` says what that output is: `log_ratio` (default; `ln r`, also the
//! logit of a classifier of `p_c` against `p_ref` trained on balanced
//! classes) or `ratio` (`r` itself). The features are per-event arrays (any
//! form of [`super::arrays`]), one per network input, in order.
//!
//! A member whose path ends in `.onnx` is an ONNX model instead (feature
//! `onnx`, src/model/nsbi/onnx.rs: one `[batch, n_features]` input, one
//! output per event, its own activations); `output` applies to it too,
//! `activation` does not. An ensemble may mix both kinds.
//!
//! gradfit evaluates every member on every event (in f64; an f32 ONNX model
//! in f32) and uses the ensemble mean of `r` (accumulated in f64) as `r_c`;
//! a member that gives a non-finite `r` on an event is an error naming the
//! event. The spread of the members (per-event standard deviation over the
//! mean) is reported by `gradfit inspect`.

use super::arrays;
#[cfg(feature = "onnx")]
use super::onnx::{self, OnnxNet};
use crate::error::{Error, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::{Linear, Module};
use serde::Serialize;
use serde_json::Value;
use std::path::Path;

/// Events per forward pass.
const CHUNK: usize = 65_536;

/// Spread of an ensemble on one event set.
#[derive(Debug, Clone, Serialize)]
pub struct EnsembleSummary {
    /// JSON pointer of the ratio that the ensemble gives.
    pub at: String,
    /// Number of networks.
    pub members: usize,
    /// Number of events.
    pub n_events: usize,
    /// Mean over events of the relative spread `std_members(r) / mean_members(r)`.
    pub mean_rel_spread: f64,
    /// Largest relative spread of one event.
    pub max_rel_spread: f64,
    /// Per member: its mean of `r` over the events over the ensemble's (how
    /// much the members disagree on the normalisation).
    pub member_norm: Vec<f64>,
}

/// Whether a ratio reference is a network ensemble.
pub fn is_network(v: &Value) -> bool {
    v.get("ensemble").is_some()
}

#[derive(Debug, Clone, Copy)]
enum Act {
    Relu,
    Tanh,
    Sigmoid,
    Silu,
}

fn fail(src: &str, ptr: &str, msg: impl std::fmt::Display) -> Error {
    Error::input(format!("{src}: {ptr}: {msg}"))
}

/// One ensemble member.
enum Member {
    /// A multilayer perceptron from safetensors.
    Mlp(Net),
    /// An ONNX model.
    #[cfg(feature = "onnx")]
    Onnx(OnnxNet),
}

/// One network: its layers in order.
struct Net {
    layers: Vec<Linear>,
    n_in: usize,
}

fn load_net(path: &Path, src: &str, ptr: &str) -> Result<Net> {
    let what = |m: String| fail(src, ptr, format!("{}: {m}", path.display()));
    let tensors = candle_core::safetensors::load(path, &Device::Cpu)
        .map_err(|e| what(format!("cannot read safetensors: {e}")))?;
    let mut prefixes: Vec<(u64, String)> = Vec::new();
    for k in tensors.keys() {
        if let Some(p) = k.strip_suffix(".weight") {
            let digits: String = p.chars().rev().take_while(|c| c.is_ascii_digit()).collect();
            let n: String = digits.chars().rev().collect();
            let idx = n
                .parse::<u64>()
                .map_err(|_| what(format!("tensor '{k}': a layer name must end in its number")))?;
            prefixes.push((idx, p.to_string()));
        }
    }
    prefixes.sort();
    if prefixes.is_empty() {
        return Err(what(
            "no '*.weight' tensors (a multilayer perceptron)".into(),
        ));
    }
    let mut layers = Vec::new();
    let mut prev: Option<usize> = None;
    let mut n_in = 0;
    for (_, p) in &prefixes {
        let w = tensors[&format!("{p}.weight")]
            .to_dtype(DType::F64)
            .map_err(|e| what(e.to_string()))?;
        let dims = w.dims().to_vec();
        let [o, i] = dims[..] else {
            return Err(what(format!(
                "'{p}.weight' has shape {dims:?}, not [out, in]"
            )));
        };
        match prev {
            None => n_in = i,
            Some(po) if po != i => {
                return Err(what(format!(
                    "'{p}.weight' takes {i} inputs but the layer before gives {po}"
                )));
            }
            _ => {}
        }
        let b = match tensors.get(&format!("{p}.bias")) {
            Some(b) => {
                let b = b.to_dtype(DType::F64).map_err(|e| what(e.to_string()))?;
                if b.dims() != [o] {
                    return Err(what(format!(
                        "'{p}.bias' has shape {:?}, not [{o}]",
                        b.dims()
                    )));
                }
                Some(b)
            }
            None => None,
        };
        layers.push(Linear::new(w, b));
        prev = Some(o);
    }
    if prev != Some(1) {
        return Err(what(format!(
            "the last layer has {} outputs; a ratio network has one",
            prev.unwrap_or(0)
        )));
    }
    Ok(Net { layers, n_in })
}

fn forward(net: &Net, act: Act, x: &Tensor) -> candle_core::Result<Tensor> {
    let mut h = x.clone();
    let last = net.layers.len() - 1;
    for (l, layer) in net.layers.iter().enumerate() {
        h = layer.forward(&h)?;
        if l < last {
            h = match act {
                Act::Relu => h.relu()?,
                Act::Tanh => h.tanh()?,
                Act::Sigmoid => candle_nn::ops::sigmoid(&h)?,
                Act::Silu => h.silu()?,
            };
        }
    }
    h.flatten_all()
}

/// Evaluate the ensemble `v` (at JSON pointer `ptr`): the ensemble mean of
/// `r` per event and the spread summary.
pub fn evaluate(
    v: &Value,
    ptr: &str,
    src: &str,
    base: &Path,
) -> Result<(Vec<f64>, EnsembleSummary)> {
    let feats = v
        .get("features")
        .and_then(Value::as_array)
        .filter(|f| !f.is_empty())
        .ok_or_else(|| {
            fail(
                src,
                ptr,
                "a network ensemble needs \"features\": [per-event arrays]",
            )
        })?;
    let members = v
        .get("ensemble")
        .and_then(Value::as_array)
        .filter(|f| !f.is_empty())
        .ok_or_else(|| {
            fail(
                src,
                ptr,
                "\"ensemble\" must list one or more safetensors or ONNX files",
            )
        })?;
    let log = match v
        .get("output")
        .and_then(Value::as_str)
        .unwrap_or("log_ratio")
    {
        "log_ratio" => true,
        "ratio" => false,
        o => {
            return Err(fail(
                src,
                &format!("{ptr}/output"),
                format!("unknown output '{o}' (log_ratio or ratio)"),
            ));
        }
    };
    let act = match v
        .get("activation")
        .and_then(Value::as_str)
        .unwrap_or("relu")
    {
        "relu" => Act::Relu,
        "tanh" => Act::Tanh,
        "sigmoid" => Act::Sigmoid,
        "silu" => Act::Silu,
        a => {
            return Err(fail(
                src,
                &format!("{ptr}/activation"),
                format!("unknown activation '{a}' (relu, tanh, sigmoid, silu)"),
            ));
        }
    };
    // features, event-major
    let mut cols: Vec<Vec<f64>> = Vec::new();
    for (j, f) in feats.iter().enumerate() {
        let fp = format!("{ptr}/features/{j}");
        let (r, a) = arrays::load(f, &fp, src, base)?;
        if let Some(first) = cols.first()
            && first.len() != a.len()
        {
            return Err(fail(
                src,
                &fp,
                format!(
                    "{r} has {} events but feature 0 has {}",
                    a.len(),
                    first.len()
                ),
            ));
        }
        if let Some(i) = a.iter().position(|x| !x.is_finite()) {
            return Err(fail(src, &fp, format!("{r}: event {i} is {}", a[i])));
        }
        cols.push(a);
    }
    let (n, d) = (cols[0].len(), cols.len());
    let mut nets = Vec::new();
    for (k, m) in members.iter().enumerate() {
        let mp = format!("{ptr}/ensemble/{k}");
        let file = m
            .as_str()
            .ok_or_else(|| fail(src, &mp, "a path to a safetensors or ONNX file"))?;
        if file.to_ascii_lowercase().ends_with(".onnx") {
            #[cfg(feature = "onnx")]
            {
                nets.push(Member::Onnx(onnx::load(&base.join(file), d, src, &mp)?));
                continue;
            }
            #[cfg(not(feature = "onnx"))]
            return Err(fail(
                src,
                &mp,
                format!(
                    "{file}: ONNX members need gradfit built with the `onnx` feature \
                     (cargo build --release --features onnx)"
                ),
            ));
        }
        let net = load_net(&base.join(file), src, &mp)?;
        if net.n_in != d {
            return Err(fail(
                src,
                &mp,
                format!(
                    "{file} takes {} inputs but {d} features are given",
                    net.n_in
                ),
            ));
        }
        nets.push(Member::Mlp(net));
    }
    // per member, r per event
    let mut r: Vec<Vec<f64>> = vec![Vec::with_capacity(n); nets.len()];
    let mut start = 0;
    while start < n {
        let len = CHUNK.min(n - start);
        let mut x = Vec::with_capacity(len * d);
        for i in start..start + len {
            x.extend(cols.iter().map(|c| c[i]));
        }
        let xt = Tensor::from_slice(&x, (len, d), &Device::Cpu).map_err(|e| fail(src, ptr, e))?;
        for (k, net) in nets.iter().enumerate() {
            let mp = format!("{ptr}/ensemble/{k}");
            let file = members[k].as_str().unwrap_or_default();
            let y: Vec<f64> = match net {
                Member::Mlp(net) => forward(net, act, &xt)
                    .and_then(|t| t.to_vec1())
                    .map_err(|e| fail(src, &mp, format!("{file}: {e}")))?,
                #[cfg(feature = "onnx")]
                Member::Onnx(net) => net
                    .run(&x, len)
                    .map_err(|e| fail(src, &mp, format!("{file}: {e}")))?,
            };
            let rk = &mut r[k];
            for (i, y) in y.into_iter().enumerate() {
                let ri = if log { y.exp() } else { y };
                if !ri.is_finite() {
                    return Err(fail(
                        src,
                        &mp,
                        format!(
                            "{file} gives a non-finite ratio at event {} (output {y}, read as {})",
                            start + i,
                            if log { "ln r" } else { "r" }
                        ),
                    ));
                }
                rk.push(ri);
            }
        }
        start += len;
    }
    let m = nets.len() as f64;
    let mut mean = vec![0.0; n];
    let (mut sum_rel, mut max_rel) = (0.0, 0.0_f64);
    for i in 0..n {
        let mu = r.iter().map(|rk| rk[i]).sum::<f64>() / m;
        let var = r.iter().map(|rk| (rk[i] - mu).powi(2)).sum::<f64>() / m;
        mean[i] = mu;
        let rel = if mu > 0.0 { var.sqrt() / mu } else { 0.0 };
        sum_rel += rel;
        max_rel = max_rel.max(rel);
    }
    let tot: f64 = mean.iter().sum();
    let member_norm = r
        .iter()
        .map(|rk| {
            if tot > 0.0 {
                rk.iter().sum::<f64>() / tot
            } else {
                f64::NAN
            }
        })
        .collect();
    Ok((
        mean,
        EnsembleSummary {
            at: ptr.to_string(),
            members: nets.len(),
            n_events: n,
            mean_rel_spread: if n > 0 { sum_rel / n as f64 } else { 0.0 },
            max_rel_spread: max_rel,
            member_norm,
        },
    ))
}
