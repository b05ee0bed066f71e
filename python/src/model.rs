//! Models and data: loading through the command line's loader, the parameter
//! table, likelihood evaluations and expected data.

use crate::{IntoPy, InvalidInput, InvalidPatch, to_py};
use gradfit::cli::ModelArgs;
use gradfit::model::{AnyModel, CombinedData, CombinedModel, InterpCode, ModelInfo};
use gradfit::{Dataset, HistFactoryModel, Likelihood};
use numpy::{PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use std::path::PathBuf;
use std::sync::Arc;

/// How a model was made (kept so that it can be rebuilt elsewhere: pickling
/// for Dask workers).
#[derive(Debug, Clone)]
pub struct Recipe {
    /// The input document.
    pub bytes: Arc<Vec<u8>>,
    /// Its name in messages (a path: its folder resolves relative data paths).
    pub source: String,
    /// In-memory patches (JSON text, label).
    pub patches: Vec<(String, String)>,
    /// Measurement name.
    pub measurement: Option<String>,
    /// Interpolation codes (type, code).
    pub interp: Vec<(String, String)>,
    /// Bounds overrides (name, lo, hi).
    pub bounds: Vec<(String, f64, f64)>,
    /// Accept negative nominal yields.
    pub allow_negative_yields: bool,
}

/// A compiled model with the digest that identifies it in toy runs.
#[derive(Debug)]
pub struct ModelInner {
    /// The model.
    pub any: AnyModel,
    /// SHA-256 of the patched input and options, as the command line computes it.
    pub digest: String,
    /// How it was made.
    pub recipe: Recipe,
}

/// A compiled model (HistFactory, or a combination of parts: HS3, NSBI).
#[pyclass(module = "gradfit._core", name = "Model", frozen)]
pub struct PyModel {
    /// Shared so that calls can release the GIL.
    pub inner: Arc<ModelInner>,
}

/// Data of one model: a HistFactory dataset or a combined model's data.
#[derive(Debug, Clone)]
pub enum DataInner {
    /// Main counts and aux data.
    Hf(Dataset),
    /// Per-part data.
    Comb(CombinedData),
}

/// Opaque data (observed, Asimov) of a model that is not binned, or of any model.
#[pyclass(module = "gradfit._core", name = "Data", frozen)]
pub struct PyData {
    /// The data.
    pub inner: Arc<DataInner>,
}

/// The data type of each model kind, from Python objects.
pub trait ModelData: ModelInfo {
    /// The model's data from `obj` (a float64 vector for binned models, or a `Data`).
    fn data_of(&self, obj: &Bound<'_, PyAny>) -> PyResult<Self::Data>;
    /// Wrap data for Python.
    fn wrap(d: Self::Data) -> DataInner;
}

impl ModelData for HistFactoryModel {
    fn data_of(&self, obj: &Bound<'_, PyAny>) -> PyResult<Dataset> {
        if let Ok(d) = obj.downcast::<PyData>() {
            return match &*d.get().inner {
                DataInner::Hf(d) if d.main.len() == self.n_main && d.aux.len() == self.n_aux() => {
                    Ok(d.clone())
                }
                _ => Err(InvalidInput::new_err(
                    "data: this Data object belongs to another model",
                )),
            };
        }
        let a: PyReadonlyArray1<'_, f64> = obj
            .extract()
            .map_err(|_| InvalidInput::new_err("data: expected a 1-d float64 array"))?;
        let v = a.as_slice().ok();
        // the observed data (the usual case) are reused with their constant
        let obs = self.observed();
        if let Some(v) = v
            && v.len() == obs.main.len() + obs.aux.len()
            && v[..obs.main.len()] == obs.main[..]
            && v[obs.main.len()..] == obs.aux[..]
        {
            return Ok(obs.clone());
        }
        let v = a.as_array().to_vec();
        self.dataset_from_vec(&v).py_err()
    }
    fn wrap(d: Dataset) -> DataInner {
        DataInner::Hf(d)
    }
}

impl ModelData for CombinedModel {
    fn data_of(&self, obj: &Bound<'_, PyAny>) -> PyResult<CombinedData> {
        if let Ok(d) = obj.downcast::<PyData>() {
            return match &*d.get().inner {
                DataInner::Comb(d) if d.parts.len() == self.parts().len() => Ok(d.clone()),
                _ => Err(InvalidInput::new_err(
                    "data: this Data object belongs to another model",
                )),
            };
        }
        Err(InvalidInput::new_err(format!(
            "data: '{}' is not a binned (pyhf) model; pass the data object from \
             workspace.data(model) or model.asimov_data(pars), not an array",
            self.label
        )))
    }
    fn wrap(d: CombinedData) -> DataInner {
        DataInner::Comb(d)
    }
}

/// A float64 vector from a numpy array (the Python layer converts and checks shapes).
pub fn vector(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<f64>> {
    let a: PyReadonlyArray1<'_, f64> = obj
        .extract()
        .map_err(|_| InvalidInput::new_err(format!("{what}: expected a 1-d float64 array")))?;
    Ok(a.as_array().to_vec())
}

/// Check a parameter vector: its length and finite entries (the CLI's message).
pub fn check_pars<L: Likelihood>(m: &L, theta: &[f64], what: &str) -> PyResult<()> {
    if theta.len() != m.n_pars() {
        return Err(InvalidInput::new_err(format!(
            "{what}: parameter vector has {} entries, the model has {} parameters",
            theta.len(),
            m.n_pars()
        )));
    }
    if let Some((i, v)) = theta.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(InvalidInput::new_err(format!(
            "{what}: parameter {i} ({}) is {v}",
            m.par_names()[i]
        )));
    }
    Ok(())
}

/// A row-major `n x n` buffer as a numpy array.
pub fn matrix<'py>(py: Python<'py>, v: Vec<f64>, n: usize) -> PyResult<Bound<'py, PyArray2<f64>>> {
    PyArray1::from_vec(py, v).reshape([n, n])
}

fn parse_interp(t: &str, c: &str) -> PyResult<(String, InterpCode)> {
    let t = t.trim().to_ascii_lowercase();
    if t != "normsys" && t != "histosys" {
        return Err(InvalidInput::new_err(format!(
            "interpolation applies to normsys or histosys, not '{t}'"
        )));
    }
    let code = c.parse::<InterpCode>().map_err(InvalidInput::new_err)?;
    Ok((t, code))
}

/// Compile a model from an input document through the command line's loader.
pub fn build(recipe: Recipe) -> PyResult<ModelInner> {
    let interp = recipe
        .interp
        .iter()
        .map(|(t, c)| parse_interp(t, c))
        .collect::<PyResult<Vec<_>>>()?;
    let mut patches = Vec::with_capacity(recipe.patches.len());
    for (text, label) in &recipe.patches {
        let v = gradfit::workspace::json::parse_strict(text.as_bytes(), label)
            .map_err(|e| InvalidPatch::new_err(e.to_string()))?;
        patches.push((v, label.clone()));
    }
    let args = ModelArgs {
        workspace: PathBuf::from(&recipe.source),
        patches: Vec::new(),
        patchset: None,
        patch_name: None,
        measurement: recipe.measurement.clone(),
        interp,
        allow_negative_yields: recipe.allow_negative_yields,
        strict: false,
        device: gradfit::device::Device::Cpu,
        bounds: recipe.bounds.clone(),
        backend: None,
        optimizer: None,
    };
    let loaded = args
        .load_any_from(&recipe.bytes, &patches, true)
        .map_err(to_py)?;
    Ok(ModelInner {
        any: loaded.model,
        digest: loaded.digest,
        recipe,
    })
}

/// Load a model: `spec` is the input document (bytes), `source` its name.
#[pyfunction]
#[pyo3(signature = (spec, source, patches=Vec::new(), measurement=None, interp=Vec::new(), bounds=Vec::new(), allow_negative_yields=false))]
#[allow(clippy::too_many_arguments)]
fn load_model(
    py: Python<'_>,
    spec: Vec<u8>,
    source: String,
    patches: Vec<(String, String)>,
    measurement: Option<String>,
    interp: Vec<(String, String)>,
    bounds: Vec<(String, f64, f64)>,
    allow_negative_yields: bool,
) -> PyResult<PyModel> {
    let recipe = Recipe {
        bytes: Arc::new(spec),
        source,
        patches,
        measurement,
        interp,
        bounds,
        allow_negative_yields,
    };
    let inner = py.allow_threads(|| build(recipe))?;
    Ok(PyModel {
        inner: Arc::new(inner),
    })
}

/// Read a file's bytes with the library's checks (size bound, no devices).
#[pyfunction]
fn read_input(py: Python<'_>, path: PathBuf) -> PyResult<Py<PyBytes>> {
    let b = py
        .allow_threads(|| gradfit::workspace::json::read_bytes(&path))
        .py_err()?;
    Ok(PyBytes::new(py, &b).unbind())
}

/// The patch called `name` of a pyhf patchset (JSON text), checked, as JSON text.
#[pyfunction]
fn patchset_patch(patchset: &str, name: &str, label: &str) -> PyResult<String> {
    let v = gradfit::workspace::json::parse_strict(patchset.as_bytes(), label)
        .map_err(|e| InvalidPatch::new_err(e.to_string()))?;
    let ps = gradfit::workspace::patchset_from_value(&v, label).py_err()?;
    let p = gradfit::workspace::apply_patchset(&ps, name, label).py_err()?;
    Ok(p.to_string())
}

/// Names and values of a pyhf patchset's patches (checked as the CLI does).
#[pyfunction]
fn patchset_names(patchset: &str, label: &str) -> PyResult<Vec<(String, String)>> {
    let v = gradfit::workspace::json::parse_strict(patchset.as_bytes(), label)
        .map_err(|e| InvalidPatch::new_err(e.to_string()))?;
    let ps = gradfit::workspace::patchset_from_value(&v, label).py_err()?;
    Ok(ps
        .patches
        .iter()
        .map(|p| {
            (
                p.metadata.name.clone(),
                serde_json::Value::Array(p.metadata.values.clone()).to_string(),
            )
        })
        .collect())
}

macro_rules! any {
    ($self:expr, $m:ident => $body:expr) => {
        gradfit::with_model!(&$self.inner.any, $m => $body)
    };
}

fn eval_at<M: ModelData>(
    m: &M,
    theta: &[f64],
    data: &M::Data,
    grad: bool,
    hess: bool,
) -> (f64, Option<Vec<f64>>, Option<Vec<f64>>) {
    let p = m.n_pars();
    let mut s = m.scratch();
    let mut g = grad.then(|| vec![0.0; p]);
    let mut h = hess.then(|| vec![0.0; p * p]);
    let f = m.eval(theta, data, &mut s, g.as_deref_mut(), h.as_deref_mut());
    (f, g, h)
}

#[pymethods]
impl PyModel {
    /// Parameter names in model (pyhf) order.
    #[getter]
    fn par_names(&self) -> Vec<String> {
        any!(self, m => m.par_names().to_vec())
    }
    /// Suggested initial values.
    #[getter]
    fn init<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        PyArray1::from_vec(py, any!(self, m => m.init().to_vec()))
    }
    /// Suggested bounds, one (lo, hi) pair per parameter.
    #[getter]
    fn bounds(&self) -> Vec<(f64, f64)> {
        any!(self, m => m.bounds().to_vec())
    }
    /// Suggested fixed flags.
    #[getter]
    fn fixed(&self) -> Vec<bool> {
        any!(self, m => m.fixed().to_vec())
    }
    /// Index of the parameter of interest (None without one).
    #[getter]
    fn poi_index(&self) -> Option<usize> {
        any!(self, m => m.poi())
    }
    /// "histfactory" or "combined".
    #[getter]
    fn kind(&self) -> &'static str {
        match self.inner.any {
            AnyModel::HistFactory(_) => "histfactory",
            AnyModel::Combined(_) => "combined",
        }
    }
    /// Measurement or analysis name.
    #[getter]
    fn label(&self) -> String {
        any!(self, m => m.label().to_string())
    }
    /// Warnings found while reading the model.
    #[getter]
    fn warnings(&self) -> Vec<String> {
        any!(self, m => m.warnings().to_vec())
    }
    /// The model digest toy runs record (as the command line computes it).
    #[getter]
    fn digest(&self) -> String {
        self.inner.digest.clone()
    }
    /// Number of main bins (binned models; None otherwise).
    #[getter]
    fn n_main(&self) -> Option<usize> {
        self.hf().map(|m| m.n_main)
    }
    /// Number of aux data (binned models; None otherwise).
    #[getter]
    fn n_aux(&self) -> Option<usize> {
        self.hf().map(|m| m.n_aux())
    }
    /// Channels as (name, number of bins) in model order (binned models).
    #[getter]
    fn channels(&self) -> Vec<(String, usize)> {
        self.hf()
            .map(|m| {
                m.channels
                    .iter()
                    .map(|c| (c.name.clone(), c.nbins))
                    .collect()
            })
            .unwrap_or_default()
    }
    /// Sample names in model order (binned models).
    #[getter]
    fn samples(&self) -> Vec<String> {
        self.hf()
            .map(|m| m.sample_names.clone())
            .unwrap_or_default()
    }
    /// Interpolation codes (normsys, histosys) of a binned model.
    #[getter]
    fn interp_codes(&self) -> Option<(String, String)> {
        self.hf()
            .map(|m| (m.normsys_code.to_string(), m.histosys_code.to_string()))
    }
    /// `gradfit inspect`'s JSON description.
    fn describe(&self) -> String {
        any!(self, m => m.describe().to_string())
    }
    /// The observed data as an opaque object.
    fn observed(&self) -> PyData {
        any!(self, m => PyData { inner: Arc::new(wrap_of(m, m.observed().clone())) })
    }
    /// Observed main data followed by aux data (binned models).
    fn observed_vector<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let m = self.need_hf("observed data as an array")?;
        Ok(PyArray1::from_vec(py, m.observed_data()))
    }
    /// The Asimov data at `pars`, as an opaque object.
    fn asimov_data(&self, pars: &Bound<'_, PyAny>) -> PyResult<PyData> {
        let theta = vector(pars, "pars")?;
        any!(self, m => {
            check_pars(m, &theta, "pars")?;
            Ok(PyData { inner: Arc::new(wrap_of(m, m.asimov(&theta))) })
        })
    }
    /// Check a data object or vector against the model; returns it as a Data object.
    fn make_data(&self, data: &Bound<'_, PyAny>) -> PyResult<PyData> {
        any!(self, m => Ok(PyData { inner: Arc::new(wrap_of(m, m.data_of(data)?)) }))
    }
    /// twice_nll at `pars` on `data`, with the gradient and Hessian when asked:
    /// returns (value, grad or None, hessian or None).
    #[pyo3(signature = (pars, data, grad=false, hessian=false))]
    #[allow(clippy::type_complexity)]
    fn twice_nll<'py>(
        &self,
        py: Python<'py>,
        pars: &Bound<'py, PyAny>,
        data: &Bound<'py, PyAny>,
        grad: bool,
        hessian: bool,
    ) -> PyResult<(
        f64,
        Option<Bound<'py, PyArray1<f64>>>,
        Option<Bound<'py, PyArray2<f64>>>,
    )> {
        let theta = vector(pars, "pars")?;
        let inner = self.inner.clone();
        let (f, g, h, p) = any!(self, m => {
            check_pars(m, &theta, "pars")?;
            let d = m.data_of(data)?;
            let _keep = &inner;
            let (f, g, h) = py.allow_threads(|| eval_at(m, &theta, &d, grad, hessian));
            (f, g, h, m.n_pars())
        });
        let g = g.map(|g| PyArray1::from_vec(py, g));
        let h = h.map(|h| matrix(py, h, p)).transpose()?;
        Ok((f, g, h))
    }
    /// Why twice_nll is not finite at `pars` on `data`, if the model can tell.
    fn domain_issue(
        &self,
        pars: &Bound<'_, PyAny>,
        data: &Bound<'_, PyAny>,
    ) -> PyResult<Option<String>> {
        let theta = vector(pars, "pars")?;
        any!(self, m => {
            check_pars(m, &theta, "pars")?;
            let d = m.data_of(data)?;
            Ok(m.domain_issue(&theta, &d))
        })
    }
    /// Expected main data, followed by the expected aux data when `include_auxdata`.
    #[pyo3(signature = (pars, include_auxdata=true))]
    fn expected_data<'py>(
        &self,
        py: Python<'py>,
        pars: &Bound<'py, PyAny>,
        include_auxdata: bool,
    ) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let m = self.need_hf("expected_data")?;
        let theta = vector(pars, "pars")?;
        check_pars(m, &theta, "pars")?;
        let v = if include_auxdata {
            m.expected_data(&theta)
        } else {
            m.expected_main(&theta)
        };
        Ok(PyArray1::from_vec(py, v))
    }
    /// Expected aux data at `pars`.
    fn expected_auxdata<'py>(
        &self,
        py: Python<'py>,
        pars: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let m = self.need_hf("expected_auxdata")?;
        let theta = vector(pars, "pars")?;
        check_pars(m, &theta, "pars")?;
        Ok(PyArray1::from_vec(py, m.expected_aux(&theta)))
    }
    /// Expected yield per sample and main bin at `pars`, `[n_samples, n_main]`
    /// (zero where a sample has no bin in a channel).
    fn expected_sample_data<'py>(
        &self,
        py: Python<'py>,
        pars: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyArray2<f64>>> {
        let m = self.need_hf("expected_sample_data")?;
        let theta = vector(pars, "pars")?;
        check_pars(m, &theta, "pars")?;
        let per_sb = m.expected_sample_bins(&theta);
        let ns = m.sample_names.len();
        let mut out = vec![0.0; ns * m.n_main];
        for s in &m.samples {
            for j in 0..m.channels[s.channel].nbins {
                let k = s.first_sb + j;
                out[s.global_index * m.n_main + m.sb[k].bin as usize] += per_sb[k];
            }
        }
        PyArray1::from_vec(py, out).reshape([ns, m.n_main])
    }
    /// What `pickle` needs to rebuild the model: (spec bytes, source, patches,
    /// measurement, interp, bounds, allow_negative_yields).
    #[allow(clippy::type_complexity)]
    fn recipe<'py>(
        &self,
        py: Python<'py>,
    ) -> (
        Bound<'py, PyBytes>,
        String,
        Vec<(String, String)>,
        Option<String>,
        Vec<(String, String)>,
        Vec<(String, f64, f64)>,
        bool,
    ) {
        let r = &self.inner.recipe;
        (
            PyBytes::new(py, &r.bytes),
            r.source.clone(),
            r.patches.clone(),
            r.measurement.clone(),
            r.interp.clone(),
            r.bounds.clone(),
            r.allow_negative_yields,
        )
    }
}

fn wrap_of<M: ModelData>(_m: &M, d: M::Data) -> DataInner {
    M::wrap(d)
}

impl PyModel {
    /// The HistFactory model, if it is one.
    pub fn hf(&self) -> Option<&HistFactoryModel> {
        match &self.inner.any {
            AnyModel::HistFactory(m) => Some(m),
            AnyModel::Combined(_) => None,
        }
    }

    /// The HistFactory model, or an error naming `what` needs one.
    pub fn need_hf(&self, what: &str) -> PyResult<&HistFactoryModel> {
        self.hf().ok_or_else(|| {
            InvalidInput::new_err(format!(
                "{what} needs a binned (pyhf) model; '{}' is a combined (unbinned or HS3) model",
                any!(self, m => m.label().to_string())
            ))
        })
    }
}

#[pymethods]
impl PyData {
    /// "histfactory" or "combined".
    #[getter]
    fn kind(&self) -> &'static str {
        match &*self.inner {
            DataInner::Hf(_) => "histfactory",
            DataInner::Comb(_) => "combined",
        }
    }
    /// Main data followed by aux data (binned models), else None.
    fn vector<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyArray1<f64>>> {
        match &*self.inner {
            DataInner::Hf(d) => Some(PyArray1::from_vec(
                py,
                d.main.iter().chain(&d.aux).copied().collect(),
            )),
            DataInner::Comb(_) => None,
        }
    }
    fn __repr__(&self) -> String {
        match &*self.inner {
            DataInner::Hf(d) => format!(
                "gradfit.Data({} main bins, {} aux data)",
                d.main.len(),
                d.aux.len()
            ),
            DataInner::Comb(d) => format!("gradfit.Data({} parts)", d.parts.len()),
        }
    }
}

/// Index of parameter `name` with the command line's message for an unknown name.
#[pyfunction]
fn par_index(model: &PyModel, name: &str) -> PyResult<usize> {
    any!(model, m => gradfit::cli::par_index(m, name).py_err())
}

/// Register the classes and functions of this module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyModel>()?;
    m.add_class::<PyData>()?;
    m.add_function(wrap_pyfunction!(load_model, m)?)?;
    m.add_function(wrap_pyfunction!(par_index, m)?)?;
    m.add_function(wrap_pyfunction!(read_input, m)?)?;
    m.add_function(wrap_pyfunction!(patchset_patch, m)?)?;
    m.add_function(wrap_pyfunction!(patchset_names, m)?)?;
    Ok(())
}
