//! The training layer's numbers for `gradfit.torch`: twice_nll of template
//! values with its gradients (parameters and templates), and the profiled
//! losses with their implicit gradients through the fits, all from the
//! library's `train` module.

use crate::model::vector;
use crate::{IntoPy, InvalidInput};
use candle_core::{DType, Tensor, Var};
use gradfit::train::graph::DataTensors;
use gradfit::train::spec::{ModifierSpec, SampleValues};
use gradfit::train::{Analysis, AnalysisSpec, LossKind, TemplateValues, Templates};
use numpy::PyArray1;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

/// One template tensor of the flat layout.
#[derive(Debug, Clone)]
struct Slot {
    channel: String,
    sample: String,
    kind: &'static str,
    modifier: Option<String>,
    size: usize,
}

/// A trainable analysis structure (channels, samples, modifiers) whose
/// template numbers come from Python, in a flat order (`layout`).
#[pyclass(module = "gradfit._core", name = "Analysis", frozen)]
pub struct PyAnalysis {
    analysis: Analysis,
    layout: Vec<Slot>,
}

fn layout_of(spec: &AnalysisSpec) -> Vec<Slot> {
    let mut out = Vec::new();
    for c in &spec.channels {
        for s in &c.samples {
            let slot = |kind, modifier: Option<String>, size| Slot {
                channel: c.name.clone(),
                sample: s.name.clone(),
                kind,
                modifier,
                size,
            };
            out.push(slot("nominal", None, c.nbins));
            if s.modifiers
                .iter()
                .any(|m| matches!(m, ModifierSpec::StatError { .. }))
            {
                out.push(slot("sumw2", None, c.nbins));
            }
            for m in &s.modifiers {
                let n = match m {
                    ModifierSpec::HistoSys { .. } => c.nbins,
                    ModifierSpec::NormSys { .. } => 1,
                    _ => continue,
                };
                out.push(slot("hi", Some(m.name().to_string()), n));
                out.push(slot("lo", Some(m.name().to_string()), n));
            }
        }
    }
    out
}

impl PyAnalysis {
    /// Template values from the flat list of arrays, checked by the library.
    fn values(&self, flat: &Bound<'_, PyList>) -> PyResult<TemplateValues> {
        if flat.len() != self.layout.len() {
            return Err(InvalidInput::new_err(format!(
                "{} template tensors given, the analysis takes {} (see layout)",
                flat.len(),
                self.layout.len()
            )));
        }
        let mut arrays = Vec::with_capacity(flat.len());
        for (k, (item, slot)) in flat.iter().zip(&self.layout).enumerate() {
            let what = format!(
                "template {k} (channel '{}' sample '{}' {}{})",
                slot.channel,
                slot.sample,
                slot.kind,
                slot.modifier
                    .as_deref()
                    .map(|m| format!(" of '{m}'"))
                    .unwrap_or_default()
            );
            let v = vector(&item, &what)?;
            if v.len() != slot.size {
                return Err(InvalidInput::new_err(format!(
                    "{what}: {} entries, expected {}",
                    v.len(),
                    slot.size
                )));
            }
            arrays.push(v);
        }
        let mut it = arrays.into_iter();
        let spec = self.analysis.graph.spec();
        let mut samples = Vec::new();
        for c in &spec.channels {
            for s in &c.samples {
                let nominal = it.next().expect("layout");
                let sumw2 = s
                    .modifiers
                    .iter()
                    .any(|m| matches!(m, ModifierSpec::StatError { .. }))
                    .then(|| it.next().expect("layout"));
                let modifiers = s
                    .modifiers
                    .iter()
                    .map(|m| {
                        m.has_templates().then(|| {
                            let h = it.next().expect("layout");
                            let l = it.next().expect("layout");
                            (h, l)
                        })
                    })
                    .collect();
                samples.push(SampleValues {
                    nominal,
                    sumw2,
                    modifiers,
                });
            }
        }
        let v = TemplateValues { samples };
        spec.check_values(&v).py_err()?;
        Ok(v)
    }
}

/// Variables for each template tensor (in layout order) and the templates made of them.
fn as_vars(v: &TemplateValues) -> gradfit::Result<(Vec<Var>, Templates)> {
    let mut tp = v.to_tensors()?;
    let mut vars = Vec::new();
    let mut mk = |t: &mut Tensor| -> gradfit::Result<()> {
        let var = Var::from_tensor(&t.to_dtype(DType::F64)?)?;
        *t = var.as_tensor().clone();
        vars.push(var);
        Ok(())
    };
    for s in tp.samples.iter_mut() {
        mk(&mut s.nominal)?;
        if let Some(w) = &mut s.sumw2 {
            mk(w)?;
        }
        for (h, l) in s.modifiers.iter_mut().flatten() {
            mk(h)?;
            mk(l)?;
        }
    }
    Ok((vars, tp))
}

fn flat_grads(v: &TemplateValues) -> Vec<Vec<f64>> {
    let mut out = Vec::new();
    for s in &v.samples {
        out.push(s.nominal.clone());
        if let Some(w) = &s.sumw2 {
            out.push(w.clone());
        }
        for (h, l) in s.modifiers.iter().flatten() {
            out.push(h.clone());
            out.push(l.clone());
        }
    }
    out
}

fn arrays<'py>(py: Python<'py>, v: Vec<Vec<f64>>) -> PyResult<Bound<'py, PyList>> {
    PyList::new(py, v.into_iter().map(|x| PyArray1::from_vec(py, x)))
}

#[pymethods]
impl PyAnalysis {
    /// Build from the analysis structure as JSON (`gradfit train`'s `AnalysisSpec`).
    #[new]
    fn new(spec: &str) -> PyResult<Self> {
        let spec: AnalysisSpec = serde_json::from_str(spec)
            .map_err(|e| InvalidInput::new_err(format!("analysis structure: {e}")))?;
        let analysis = Analysis::new(&spec).py_err()?;
        let layout = layout_of(&spec);
        Ok(PyAnalysis { analysis, layout })
    }
    /// The flat order of template tensors: (channel, sample, kind, modifier, size).
    #[getter]
    fn layout(&self) -> Vec<(String, String, &'static str, Option<String>, usize)> {
        self.layout
            .iter()
            .map(|s| {
                (
                    s.channel.clone(),
                    s.sample.clone(),
                    s.kind,
                    s.modifier.clone(),
                    s.size,
                )
            })
            .collect()
    }
    /// Parameter names in model order.
    #[getter]
    fn par_names(&self) -> Vec<String> {
        self.analysis.graph.par_names.clone()
    }
    /// Suggested initial values (the constraint centres of constrained parameters).
    #[getter]
    fn init<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        PyArray1::from_vec(py, self.analysis.graph.init.clone())
    }
    /// Bounds per parameter.
    #[getter]
    fn bounds(&self) -> Vec<(f64, f64)> {
        self.analysis.graph.bounds.clone()
    }
    /// Index of the POI.
    #[getter]
    fn poi_index(&self) -> usize {
        self.analysis.graph.poi
    }
    /// Main bins per channel in the structure's order.
    #[getter]
    fn channel_bins(&self) -> Vec<(String, usize)> {
        self.analysis
            .graph
            .spec()
            .channels
            .iter()
            .map(|c| (c.name.clone(), c.nbins))
            .collect()
    }
    /// twice_nll at `pars` for the templates `flat` on main counts `main`
    /// (channels in the structure's order) and aux data `aux` (one per
    /// parameter; None: the constraint centres). Returns (value, d/d pars,
    /// [d/d template tensor, ...]). Terms that depend on neither are left out
    /// (log n!, Gaussian normalisations), as in the library's training graph.
    #[pyo3(signature = (pars, flat, main, aux=None))]
    #[allow(clippy::type_complexity)]
    fn twice_nll<'py>(
        &self,
        py: Python<'py>,
        pars: &Bound<'py, PyAny>,
        flat: &Bound<'py, PyList>,
        main: &Bound<'py, PyAny>,
        aux: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<(f64, Bound<'py, PyArray1<f64>>, Bound<'py, PyList>)> {
        let g = &self.analysis.graph;
        let p = g.n_pars();
        let theta = vector(pars, "pars")?;
        if theta.len() != p {
            return Err(InvalidInput::new_err(format!(
                "pars: {} entries, the analysis has {p} parameters",
                theta.len()
            )));
        }
        if let Some((i, v)) = theta.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(InvalidInput::new_err(format!(
                "pars: parameter {i} ({}) is {v}",
                g.par_names[i]
            )));
        }
        let main = vector(main, "data")?;
        if main.len() != g.n_main {
            return Err(InvalidInput::new_err(format!(
                "data: {} main counts, the analysis has {} bins",
                main.len(),
                g.n_main
            )));
        }
        if let Some((i, v)) = main
            .iter()
            .enumerate()
            .find(|(_, v)| !(v.is_finite() && **v >= 0.0))
        {
            return Err(InvalidInput::new_err(format!(
                "data: main count {i} is {v}; counts must be finite and >= 0"
            )));
        }
        let aux = match aux {
            Some(a) => {
                let a = vector(a, "aux")?;
                if a.len() != p {
                    return Err(InvalidInput::new_err(format!(
                        "aux: {} entries, expected one per parameter ({p})",
                        a.len()
                    )));
                }
                a
            }
            None => g.init.clone(),
        };
        let values = self.values(flat)?;
        let per_channel = {
            let mut v = Vec::new();
            let mut k = 0;
            for c in &g.spec().channels {
                v.push(main[k..k + c.nbins].to_vec());
                k += c.nbins;
            }
            v
        };
        let main_model = g.main_from_channels(&per_channel);
        let (f, gt, grads) = py
            .allow_threads(|| -> gradfit::Result<_> {
                let (vars, tp) = as_vars(&values)?;
                let dev = candle_core::Device::Cpu;
                let data = DataTensors {
                    main: Tensor::from_slice(&main_model, main_model.len(), &dev)?,
                    aux: Tensor::from_slice(&aux, aux.len(), &dev)?,
                };
                let (v, gr) = g.value_and_grad(&theta, &tp, &data)?;
                let store = v.backward()?;
                let grads = vars
                    .iter()
                    .map(|x| match store.get(x.as_tensor()) {
                        Some(t) => Ok(t.flatten_all()?.to_vec1::<f64>()?),
                        None => Ok(vec![0.0; x.as_tensor().elem_count()]),
                    })
                    .collect::<gradfit::Result<Vec<_>>>()?;
                Ok((v.to_scalar::<f64>()?, gr.to_vec1::<f64>()?, grads))
            })
            .py_err()?;
        Ok((f, PyArray1::from_vec(py, gt), arrays(py, grads)?))
    }
    /// A profiled loss of the templates `flat` (`kind`: the library's loss as
    /// JSON, e.g. `{"kind": "cls", "mu": 1, "mu_asimov": 0, "test_stat":
    /// "qtilde"}`). Returns (value, [d/d template tensor, ...], metrics).
    #[allow(clippy::type_complexity)]
    fn loss<'py>(
        &self,
        py: Python<'py>,
        kind: &str,
        flat: &Bound<'py, PyList>,
    ) -> PyResult<(f64, Bound<'py, PyList>, Bound<'py, PyDict>)> {
        let kind: LossKind =
            serde_json::from_str(kind).map_err(|e| InvalidInput::new_err(format!("loss: {e}")))?;
        let values = self.values(flat)?;
        let (lv, grads) = py
            .allow_threads(|| self.analysis.value_and_grad(&kind, &values))
            .py_err()?;
        let m = PyDict::new(py);
        for (k, v) in &lv.metrics {
            m.set_item(k, v)?;
        }
        Ok((lv.value, arrays(py, flat_grads(&grads))?, m))
    }
}

/// The neos four-blob samples of the library's example (signal, background,
/// up, down), each `[n, 2]`, the first 3/4 for training.
#[pyfunction]
fn neos_data<'py>(
    py: Python<'py>,
    n: usize,
    seed: u64,
) -> PyResult<Vec<Bound<'py, numpy::PyArray2<f64>>>> {
    if n < 8 {
        return Err(InvalidInput::new_err("n must be at least 8"));
    }
    let parts = gradfit::train::neos::generate(n, seed).py_err()?;
    parts
        .into_iter()
        .map(|(tr, te)| {
            let all = Tensor::cat(&[&tr, &te], 0)
                .and_then(|t| t.to_dtype(DType::F64))
                .and_then(|t| t.flatten_all())
                .and_then(|t| t.to_vec1::<f64>())
                .map_err(|e| crate::to_py(e.into()))?;
            numpy::PyArrayMethods::reshape(&PyArray1::from_vec(py, all), [n, 2])
        })
        .collect()
}

/// Register this module's class and functions.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyAnalysis>()?;
    m.add_function(wrap_pyfunction!(neos_data, m)?)?;
    Ok(())
}
