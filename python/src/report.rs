//! Pulls, impacts and ranking, yields and correlations at the best fit to the
//! observed data, as the command line's report commands compute them.

use crate::model::{PyModel, matrix};
use crate::{IntoPy, InvalidInput};
use gradfit::Likelihood;
use gradfit::device::Device;
use gradfit::fit::FitSpec;
use gradfit::model::ModelInfo;
use gradfit::report::{self, PostFit, ShiftKind, Yields};
use numpy::PyArray1;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

macro_rules! any {
    ($model:expr, $m:ident => $body:expr) => {
        gradfit::with_model!(&$model.inner.any, $m => $body)
    };
}

fn best_fit<M: ModelInfo>(m: &M, max_iter: usize) -> gradfit::Result<PostFit> {
    let engine = m.engine(&Device::Cpu)?;
    let mut opts = report::best_fit_options();
    opts.max_iter = max_iter;
    PostFit::fit_with(&*engine, m, m.observed(), &FitSpec::from_model(m), &opts)
}

fn header<'py>(py: Python<'py>, post: &PostFit) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("twice_nll", post.twice_nll)?;
    d.set_item("converged", post.converged)?;
    d.set_item("status", post.status.reason())?;
    Ok(d)
}

/// Pulls at the best fit: per parameter value, error, pre-fit width, pull, pull error.
#[pyfunction]
#[pyo3(signature = (model, max_iter=500))]
fn pulls<'py>(py: Python<'py>, model: &PyModel, max_iter: usize) -> PyResult<Bound<'py, PyDict>> {
    any!(model, m => {
        let (post, pulls) = py.allow_threads(|| -> gradfit::Result<_> {
            let post = best_fit(m, max_iter)?;
            let pulls = report::pulls(m, &post);
            Ok((post, pulls))
        }).py_err()?;
        let d = header(py, &post)?;
        let nan = f64::NAN;
        d.set_item("par_names", m.par_names().to_vec())?;
        d.set_item("value", PyArray1::from_vec(py, pulls.iter().map(|p| p.value).collect()))?;
        d.set_item("error", PyArray1::from_vec(py, pulls.iter().map(|p| p.error).collect()))?;
        d.set_item("prefit_sigma", PyArray1::from_vec(py, pulls.iter().map(|p| p.prefit_sigma).collect()))?;
        d.set_item("nominal", PyArray1::from_vec(py, pulls.iter().map(|p| p.center.unwrap_or(nan)).collect()))?;
        d.set_item("pull", PyArray1::from_vec(py, pulls.iter().map(|p| p.pull.unwrap_or(nan)).collect()))?;
        d.set_item("pull_error", PyArray1::from_vec(py, pulls.iter().map(|p| p.pull_error.unwrap_or(nan)).collect()))?;
        d.set_item("constraint", pulls.iter().map(|p| p.constraint).collect::<Vec<_>>())?;
        d.set_item("fixed", pulls.iter().map(|p| p.fixed).collect::<Vec<_>>())?;
        Ok(d)
    })
}

/// Impacts on the POI: Hessian impacts of every free parameter, and with
/// `refit` the ranking's four refits each; rows sorted by the largest post-fit impact.
#[pyfunction]
#[pyo3(signature = (model, refit=true, max_iter=500))]
fn impacts<'py>(
    py: Python<'py>,
    model: &PyModel,
    refit: bool,
    max_iter: usize,
) -> PyResult<Bound<'py, PyDict>> {
    any!(model, m => {
        let poi = m.poi().ok_or_else(|| InvalidInput::new_err(format!(
            "impacts: the model has no parameter of interest (measurement '{}' names none in the model; \
             is the signal patch applied?)", m.label())))?;
        let (post, rows) = py.allow_threads(|| -> gradfit::Result<_> {
            let post = best_fit(m, max_iter)?;
            let sig = report::prefit_sigmas(m, &post.fixed);
            let hess = report::hessian_impacts(&post, poi, &sig);
            let r = if refit {
                let pars: Vec<usize> = hess.iter().map(|h| h.par).collect();
                let mut ro = report::RefitOptions::default();
                ro.fit.max_iter = max_iter;
                let engine = m.engine(&Device::Cpu)?;
                Some(report::refit_impacts_with(&*engine, m, m.observed(), &post,
                    &report::RefitPlan { poi, pars: &pars, prefit_sigma: &sig }, &ro, &mut |_, _| {})?)
            } else {
                None
            };
            Ok((post, report::rank(hess, r)))
        }).py_err()?;
        let d = header(py, &post)?;
        d.set_item("poi", m.par_names()[poi].clone())?;
        d.set_item("poi_value", post.x[poi])?;
        d.set_item("poi_error", post.error(poi))?;
        d.set_item("poi_at_bound", post.at_bound(poi))?;
        let list = PyList::empty(py);
        for r in &rows {
            let e = PyDict::new(py);
            let k = r.par();
            e.set_item("name", m.par_names()[k].clone())?;
            e.set_item("value", post.x[k])?;
            e.set_item("error", post.error(k))?;
            e.set_item("hessian", r.hessian.hessian)?;
            e.set_item("hessian_prefit", r.hessian.hessian_prefit)?;
            e.set_item("nsbi_gamma", r.hessian.nsbi_gamma)?;
            if let Some(rf) = &r.refit {
                for kind in ShiftKind::ALL {
                    let s = rf.get(kind);
                    e.set_item(format!("refit_{}", kind.key()), s.impact)?;
                    e.set_item(format!("refit_{}_converged", kind.key()), s.converged)?;
                    e.set_item(format!("refit_{}_clipped", kind.key()), s.clipped)?;
                }
            }
            list.append(e)?;
        }
        d.set_item("ranking", list)?;
        Ok(d)
    })
}

fn yields_dict<'py>(py: Python<'py>, y: &Yields) -> PyResult<Bound<'py, PyDict>> {
    let out = PyDict::new(py);
    for c in &y.channels {
        let ch = PyDict::new(py);
        ch.set_item("data", PyArray1::from_vec(py, c.data.clone()))?;
        ch.set_item("total", PyArray1::from_vec(py, c.total.clone()))?;
        ch.set_item(
            "total_errors",
            PyArray1::from_vec(py, c.total_errors.clone()),
        )?;
        ch.set_item("sum", c.sum)?;
        ch.set_item("sum_error", c.sum_error)?;
        ch.set_item("data_sum", c.data_sum)?;
        let ss = PyDict::new(py);
        for s in &c.samples {
            let sd = PyDict::new(py);
            sd.set_item("yields", PyArray1::from_vec(py, s.yields.clone()))?;
            sd.set_item("errors", PyArray1::from_vec(py, s.errors.clone()))?;
            sd.set_item("sum", s.sum)?;
            sd.set_item("sum_error", s.sum_error)?;
            ss.set_item(s.name.clone(), sd)?;
        }
        ch.set_item("samples", ss)?;
        out.set_item(c.name.clone(), ch)?;
    }
    Ok(out)
}

/// Pre-fit and post-fit yields per channel, sample and bin with uncertainties
/// (binned models): `{"prefit": {...}, "postfit": {...}}`.
#[pyfunction]
#[pyo3(signature = (model, prefit=true, postfit=true, max_iter=500))]
fn yields<'py>(
    py: Python<'py>,
    model: &PyModel,
    prefit: bool,
    postfit: bool,
    max_iter: usize,
) -> PyResult<Bound<'py, PyDict>> {
    let m = model.need_hf("yields")?;
    let (pre, post) = py
        .allow_threads(|| -> gradfit::Result<_> {
            let pre = prefit.then(|| report::prefit_yields(m));
            let post = if postfit {
                let p = best_fit(m, max_iter)?;
                let y = report::postfit_yields(m, &p);
                Some((p, y))
            } else {
                None
            };
            Ok((pre, post))
        })
        .py_err()?;
    let d = PyDict::new(py);
    if let Some(y) = &pre {
        d.set_item("prefit", yields_dict(py, y)?)?;
    }
    if let Some((p, y)) = &post {
        d.set_item("postfit", yields_dict(py, y)?)?;
        d.set_item("converged", p.converged)?;
        d.set_item("twice_nll", p.twice_nll)?;
    }
    Ok(d)
}

/// Correlation matrix at the best fit (with the best-fit values and errors).
#[pyfunction]
#[pyo3(signature = (model, max_iter=500))]
fn correlation<'py>(
    py: Python<'py>,
    model: &PyModel,
    max_iter: usize,
) -> PyResult<Bound<'py, PyDict>> {
    any!(model, m => {
        let post = py.allow_threads(|| best_fit(m, max_iter)).py_err()?;
        let p = post.n_pars();
        let d = header(py, &post)?;
        d.set_item("par_names", m.par_names().to_vec())?;
        d.set_item("x", PyArray1::from_vec(py, post.x.clone()))?;
        d.set_item("errors", PyArray1::from_vec(py, post.errors()))?;
        d.set_item("correlation", matrix(py, post.correlation(), p)?)?;
        d.set_item("covariance", matrix(py, post.covariance.clone(), p)?)?;
        Ok(d)
    })
}

/// Register this module's functions.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(pulls, m)?)?;
    m.add_function(wrap_pyfunction!(impacts, m)?)?;
    m.add_function(wrap_pyfunction!(yields, m)?)?;
    m.add_function(wrap_pyfunction!(correlation, m)?)?;
    Ok(())
}
