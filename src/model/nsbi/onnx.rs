//! ONNX members of a network ensemble ([`super::network`]): a member whose
//! path ends in `.onnx` is read and run with tract (`tract-onnx`, pure Rust).
//!
//! The model takes one input `[batch, n_features]` of f64 or f32 and gives
//! one output per event, `[batch]` or `[batch, 1]`. The batch dimension is
//! set to a symbol whatever the file declares, so the events are fed in
//! chunks of any length. An f64 model is evaluated in f64; an f32 model
//! gets the features rounded to f32 and is evaluated in f32 (its outputs are
//! then widened to f64, and the ensemble mean is accumulated in f64).

use crate::error::{Error, Result};
use std::path::Path;
use std::sync::Arc;
use tract_onnx::pb;
use tract_onnx::prelude::{
    DatumType, Framework, InferenceFact, InferenceModelExt, IntoRunnable, Tensor, ToDim,
    TypedRunnableModel, tvec,
};
use tract_onnx::tract_hir::infer::Factoid;
use tract_onnx::tract_hir::internal::DimLike;

/// A loaded ONNX ratio network, optimised for a symbolic batch.
pub(super) struct OnnxNet {
    plan: Arc<TypedRunnableModel>,
    /// Input type: f64 or f32.
    dt: DatumType,
    n_in: usize,
}

/// Read and optimise the ONNX model at `path` for `n_in` features; errors
/// name `src`, the JSON pointer `ptr` of the ensemble member and the file.
pub(super) fn load(path: &Path, n_in: usize, src: &str, ptr: &str) -> Result<OnnxNet> {
    let what = |m: String| Error::input(format!("{src}: {ptr}: {}: {m}", path.display()));
    let framework = tract_onnx::onnx();
    let mut proto = framework
        .proto_model_for_path(path)
        .map_err(|e| what(format!("cannot read the ONNX model: {e:#}")))?;
    split_gemm_bias(&mut proto);
    let mut model = framework
        .model_for_proto_model(&proto)
        .map_err(|e| what(format!("cannot read the ONNX model: {e:#}")))?;
    if model.inputs.len() != 1 || model.outputs.len() != 1 {
        return Err(what(format!(
            "the model has {} inputs and {} outputs; a ratio network has one of each \
             ([batch, n_features] in, one value per event out)",
            model.inputs.len(),
            model.outputs.len()
        )));
    }
    let fact = model
        .input_fact(0)
        .map_err(|e| what(format!("{e:#}")))?
        .clone();
    let dt = match fact.datum_type.concretize() {
        Some(dt @ (DatumType::F64 | DatumType::F32)) => dt,
        Some(dt) => {
            return Err(what(format!(
                "the input is of type {dt:?}; f64 or f32 is read"
            )));
        }
        None => return Err(what("the input has no declared type".into())),
    };
    if let Some(rank) = fact.shape.rank().concretize()
        && rank != 2
    {
        return Err(what(format!(
            "the input has {rank} dimensions; a ratio network takes [batch, n_features]"
        )));
    }
    let width = fact
        .shape
        .dim(1)
        .and_then(|d| d.concretize())
        .and_then(|d| d.as_usize());
    if let Some(w) = width
        && w != n_in
    {
        return Err(what(format!(
            "the model takes {w} inputs but {n_in} features are given"
        )));
    }
    let batch = model.symbols.sym("gradfit_batch");
    model
        .set_input_fact(
            0,
            InferenceFact::dt_shape(dt, tvec![batch.to_dim(), n_in.to_dim()]),
        )
        .map_err(|e| what(format!("{e:#}")))?;
    let typed = model.into_typed().map_err(|e| {
        what(format!(
            "cannot analyse the model for {n_in} features: {e:#}"
        ))
    })?;
    let out = typed
        .output_fact(0)
        .map_err(|e| what(format!("{e:#}")))?
        .clone();
    if !out.datum_type.is_float() {
        return Err(what(format!(
            "the output is of type {:?}, not a floating-point value",
            out.datum_type
        )));
    }
    let dims = out.shape.to_tvec();
    let one_per_event = match dims.len() {
        1 => dims[0] == batch.to_dim(),
        2 => dims[0] == batch.to_dim() && dims[1] == 1.to_dim(),
        _ => false,
    };
    if !one_per_event {
        let shape: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
        return Err(what(format!(
            "the output has shape [{}] for a batch of 'gradfit_batch' events; \
             a ratio network gives one value per event ([batch] or [batch, 1])",
            shape.join(", ")
        )));
    }
    let plan = typed
        .into_optimized()
        .and_then(|m| m.into_runnable())
        .map_err(|e| what(format!("cannot optimise the model: {e:#}")))?;
    Ok(OnnxNet { plan, dt, n_in })
}

/// tract 0.23 wires a `Gemm`'s `beta * C` with an f32 constant, which fails
/// on f64 models; a `Gemm` with `alpha = beta = 1` (as `torch.onnx.export`
/// writes `nn.Linear`) becomes `Gemm(A, B) + C`, the same value (ONNX `Add`
/// broadcasts `C` as `Gemm` does).
fn split_gemm_bias(proto: &mut pb::ModelProto) {
    let Some(graph) = proto.graph.as_mut() else {
        return;
    };
    let mut nodes = Vec::with_capacity(graph.node.len());
    for mut n in graph.node.drain(..) {
        let attr = |name: &str| n.attribute.iter().find(|a| a.name == name).map(|a| a.f);
        let unit = attr("alpha").unwrap_or(1.0) == 1.0 && attr("beta").unwrap_or(1.0) == 1.0;
        if n.op_type == "Gemm"
            && n.domain.is_empty()
            && unit
            && n.input.len() == 3
            && !n.input[2].is_empty()
            && n.output.len() == 1
            && let Some(c) = n.input.pop()
        {
            let ab = format!("{}__gradfit_ab", n.output[0]);
            let y = std::mem::replace(&mut n.output[0], ab.clone());
            let add = pb::NodeProto {
                input: vec![ab, c],
                output: vec![y],
                name: format!("{}__gradfit_bias", n.name),
                op_type: "Add".into(),
                ..Default::default()
            };
            nodes.push(n);
            nodes.push(add);
        } else {
            nodes.push(n);
        }
    }
    graph.node = nodes;
}

impl OnnxNet {
    /// Whether the model computes in f32.
    pub(super) fn is_f32(&self) -> bool {
        self.dt == DatumType::F32
    }

    /// The output per event for `x`, `len` events of `n_in` features, event-major.
    pub(super) fn run(&self, x: &[f64], len: usize) -> std::result::Result<Vec<f64>, String> {
        let shape = [len, self.n_in];
        let input = if self.is_f32() {
            let xf: Vec<f32> = x.iter().map(|&v| v as f32).collect();
            Tensor::from_shape(&shape, &xf)
        } else {
            Tensor::from_shape(&shape, x)
        }
        .map_err(|e| format!("{e:#}"))?;
        let out = self
            .plan
            .run(tvec![input.into()])
            .map_err(|e| format!("evaluation failed: {e:#}"))?;
        let y = out[0]
            .cast_to::<f64>()
            .map_err(|e| format!("{e:#}"))?
            .into_owned();
        let y: Vec<f64> = y
            .to_plain_array_view::<f64>()
            .map_err(|e| format!("{e:#}"))?
            .iter()
            .copied()
            .collect();
        if y.len() != len {
            return Err(format!(
                "the model gave {} values for {len} events",
                y.len()
            ));
        }
        Ok(y)
    }
}
