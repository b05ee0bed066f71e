//! Fits, hypothesis tests, upper limits, discovery and profile scans: the
//! library's calculators, with results as dicts of numpy arrays.

use crate::model::{ModelData, PyModel, check_pars, matrix, vector};
use crate::{IntoPy, InvalidInput, with_threads};
use gradfit::Likelihood;
use gradfit::device::Device;
use gradfit::fit::{FitOptions, FitResult, FitSpec};
use gradfit::infer::limits::{LimitMethod, upper_limit as lib_upper_limit};
use gradfit::infer::scan::profile_scan;
use gradfit::infer::toy_limit::{GridPoint, crossings};
use gradfit::infer::toys::{ToySettings, toy_cls};
use gradfit::infer::{AsymptoticCalculator, Problem, TestStat};
use gradfit::model::ModelInfo;
use numpy::PyArray1;
use pyo3::prelude::*;
use pyo3::types::PyDict;

macro_rules! any {
    ($model:expr, $m:ident => $body:expr) => {
        gradfit::with_model!(&$model.inner.any, $m => $body)
    };
}

/// Fit settings from Python (each defaults to the model's own).
/// `(init, bounds, fixed)`.
#[derive(Debug, Clone, Default, FromPyObject)]
pub struct SpecArgs(
    pub Option<Vec<f64>>,
    pub Option<Vec<(f64, f64)>>,
    pub Option<Vec<bool>>,
);

/// The fit problem: the model's start, bounds and fixed flags with the given
/// overrides, checked as pyhf checks them (start inside the bounds).
pub fn make_spec<L: gradfit::Likelihood>(m: &L, a: &SpecArgs) -> PyResult<FitSpec> {
    let mut spec = FitSpec::from_model(m);
    let p = m.n_pars();
    let names = m.par_names();
    if let Some(init) = &a.0 {
        check_pars(m, init, "init_pars")?;
        spec.init.copy_from_slice(init);
    }
    if let Some(b) = &a.1 {
        if b.len() != p {
            return Err(InvalidInput::new_err(format!(
                "par_bounds has {} entries, the model has {p} parameters",
                b.len()
            )));
        }
        for (i, &(lo, hi)) in b.iter().enumerate() {
            if lo.is_nan() || hi.is_nan() || lo > hi {
                return Err(InvalidInput::new_err(format!(
                    "par_bounds[{i}] ({}): [{lo}, {hi}] is not an interval",
                    names[i]
                )));
            }
        }
        spec.bounds.copy_from_slice(b);
    }
    if let Some(f) = &a.2 {
        if f.len() != p {
            return Err(InvalidInput::new_err(format!(
                "fixed_params has {} entries, the model has {p} parameters",
                f.len()
            )));
        }
        spec.fixed.copy_from_slice(f);
    }
    for i in 0..p {
        let (lo, hi) = spec.bounds[i];
        let v = spec.init[i];
        if !(lo <= v && v <= hi) {
            return Err(InvalidInput::new_err(format!(
                "fit initialization parameter {i} ({}) = {v} lies outside its bounds [{lo}, {hi}]; \
                 adjust init_pars or par_bounds",
                names[i]
            )));
        }
    }
    Ok(spec)
}

fn test_stat(s: &str) -> PyResult<TestStat> {
    s.parse::<TestStat>().map_err(InvalidInput::new_err)
}

/// The POI and its check against the bounds of `spec` (the CLI's message).
fn poi_of<L: gradfit::Likelihood>(m: &L, spec: &FitSpec, mu: f64, what: &str) -> PyResult<usize> {
    let poi = m.poi().ok_or_else(|| {
        InvalidInput::new_err(
            "the model has no parameter of interest (apply the signal patch, or choose the measurement)",
        )
    })?;
    if !mu.is_finite() {
        return Err(InvalidInput::new_err(format!("{what} is {mu}")));
    }
    let (lo, hi) = spec.bounds[poi];
    if mu < lo || mu > hi {
        return Err(InvalidInput::new_err(format!(
            "{what} = {mu}: outside the bounds [{lo}, {hi}] of '{}'; widen them with par_bounds if that is meant",
            m.par_names()[poi]
        )));
    }
    Ok(poi)
}

fn fit_dict<'py>(
    py: Python<'py>,
    r: FitResult,
    p: usize,
    matrices: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("twice_nll", r.twice_nll)?;
    d.set_item("converged", r.converged)?;
    d.set_item(
        "status",
        serde_json::to_value(r.status)
            .map_err(|e| InvalidInput::new_err(e.to_string()))?
            .as_str()
            .unwrap_or("")
            .to_string(),
    )?;
    d.set_item("message", r.status.reason())?;
    d.set_item("iterations", r.iterations)?;
    d.set_item("edm", r.edm)?;
    d.set_item("hessian_positive_definite", !r.hessian_not_pd)?;
    let corr = if matrices { r.correlation() } else { None };
    let cov = if matrices { r.covariance } else { None };
    d.set_item("x", PyArray1::from_vec(py, r.x))?;
    d.set_item("errors", PyArray1::from_vec(py, r.errors))?;
    match cov {
        Some(c) => d.set_item("covariance", matrix(py, c, p)?)?,
        None => d.set_item("covariance", py.None())?,
    }
    match corr {
        Some(c) => d.set_item("correlation", matrix(py, c, p)?)?,
        None => d.set_item("correlation", py.None())?,
    }
    Ok(d)
}

/// One fit: free, or with the POI fixed at `poi_value`. Returns the library's
/// result (a fit that did not converge is returned with `converged: False`).
#[pyfunction]
/// `matrices`: also return the covariance and correlation matrices.
#[pyo3(signature = (model, data, spec=SpecArgs::default(), poi_value=None, max_iter=500, covariance=true, matrices=true))]
#[allow(clippy::too_many_arguments)]
fn fit<'py>(
    py: Python<'py>,
    model: &PyModel,
    data: &Bound<'py, PyAny>,
    spec: SpecArgs,
    poi_value: Option<f64>,
    max_iter: usize,
    covariance: bool,
    matrices: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let (r, p) = any!(model, m => {
        let d = m.data_of(data)?;
        let mut s = make_spec(m, &spec)?;
        if let Some(mu) = poi_value {
            let poi = poi_of(m, &s, mu, "poi_val")?;
            s = s.fix(poi, mu);
        }
        let opts = FitOptions { max_iter, covariance, ..Default::default() };
        let r = py.allow_threads(|| -> gradfit::Result<FitResult> {
            let engine = m.engine(&Device::Cpu)?;
            engine.fit(m, &d, &s, &opts)
        }).py_err()?;
        (r, m.n_pars())
    });
    fit_dict(py, r, p, matrices)
}

fn opt_list(v: &[Option<f64>]) -> Vec<Option<f64>> {
    v.to_vec()
}

/// Toy settings for a run at `mu`.
#[allow(clippy::too_many_arguments)]
pub fn toy_settings(
    mu: f64,
    kind: TestStat,
    n: u32,
    seed: u64,
    shard: Option<(u32, u32)>,
    batch: usize,
    digest: &str,
) -> ToySettings {
    ToySettings {
        mu,
        test_stat: kind,
        n_toys: n,
        seed,
        shard,
        batch,
        model_digest: digest.to_string(),
        toy_max_iter: None,
    }
}

/// A hypothesis test at `mu`: asymptotic, or with `ntoys` pseudo-experiments
/// per hypothesis (`calctype="toybased"`). Returns the library's p-values.
#[pyfunction]
#[pyo3(signature = (model, data, mu, test_stat="qtilde", spec=SpecArgs::default(), calctype="asymptotics", ntoys=2000, seed=0, batch=512, threads=None))]
#[allow(clippy::too_many_arguments)]
fn hypotest<'py>(
    py: Python<'py>,
    model: &PyModel,
    data: &Bound<'py, PyAny>,
    mu: f64,
    test_stat: &str,
    spec: SpecArgs,
    calctype: &str,
    ntoys: u32,
    seed: u64,
    batch: usize,
    threads: Option<usize>,
) -> PyResult<Bound<'py, PyDict>> {
    let kind = self::test_stat(test_stat)?;
    let toys = match calctype {
        "asymptotics" => false,
        "toybased" => true,
        other => {
            return Err(InvalidInput::new_err(format!(
                "calctype '{other}': expected 'asymptotics' or 'toybased'"
            )));
        }
    };
    if toys && ntoys == 0 {
        return Err(InvalidInput::new_err("ntoys must be at least 1"));
    }
    let digest = model.inner.digest.clone();
    let d = PyDict::new(py);
    let mut warnings: Vec<String> = Vec::new();
    let mut mu = mu;
    if kind == TestStat::Q0 && mu != 0.0 {
        warnings.push(format!(
            "q0 tests mu = 0 (the discovery hypothesis); poi_test {mu} ignored"
        ));
        mu = 0.0;
    }
    any!(model, m => {
        let data = m.data_of(data)?;
        let s = make_spec(m, &spec)?;
        poi_of(m, &s, mu, "poi_test")?;
        if toys {
            let run = py.allow_threads(|| with_threads(threads, || -> gradfit::Result<_> {
                let engine = m.engine(&Device::Cpu)?;
                let mut p = Problem::new(m, &data)?.with_fitter(&*engine);
                p.spec = s.clone();
                let w = kind.warnings(p.poi_bounds(), mu);
                let run = engine.run_toys(&p, &toy_settings(mu, kind, ntoys, seed, None, batch, &digest), &FitOptions::default(), &|_, _| {})?;
                Ok((toy_cls(&run)?, w))
            }))?.py_err()?;
            let (c, w) = run;
            warnings.extend(w);
            d.set_item("calculator", "toybased")?;
            d.set_item("cls_obs", c.cls_obs)?;
            d.set_item("cls_exp", opt_list(&c.cls_exp))?;
            d.set_item("clsb_obs", c.clsb_obs)?;
            d.set_item("clb_obs", c.clb_obs)?;
            d.set_item("test_stat_obs", c.test_stat_obs)?;
            d.set_item("n_toys", c.n_toys)?;
            d.set_item("n_failed", c.n_failed)?;
        } else {
            let (h, w) = py.allow_threads(|| -> gradfit::Result<_> {
                let engine = m.engine(&Device::Cpu)?;
                let mut p = Problem::new(m, &data)?.with_fitter(&*engine);
                p.spec = s.clone();
                let calc = AsymptoticCalculator::new(p, kind, &FitOptions::default())?;
                Ok((calc.hypotest(mu)?, calc.warnings.clone()))
            }).py_err()?;
            warnings.extend(w);
            d.set_item("calculator", "asymptotics")?;
            d.set_item("cls_obs", h.cls_obs)?;
            d.set_item("cls_exp", h.cls_exp.to_vec())?;
            d.set_item("clsb_obs", h.clsb_obs)?;
            d.set_item("clb_obs", h.clb_obs)?;
            d.set_item("clsb_exp", h.clsb_exp.to_vec())?;
            d.set_item("clb_exp", h.clb_exp.to_vec())?;
            d.set_item("test_stat_obs", h.test_stat_obs)?;
            d.set_item("test_stat_asimov", h.test_stat_asimov)?;
            d.set_item("mu_hat", h.mu_hat)?;
        }
    });
    d.set_item("mu", mu)?;
    d.set_item("test_stat", kind.name())?;
    d.set_item("warnings", warnings)?;
    Ok(d)
}

/// Upper limits at confidence level `1 - level`: asymptotic (root finding in
/// `bracket`, default the POI bounds, or a linear `scan`), or from toys on a `scan`.
#[pyfunction]
#[pyo3(signature = (model, data, level=0.05, scan=None, bracket=None, test_stat="qtilde", spec=SpecArgs::default(), calctype="asymptotics", ntoys=2000, seed=0, batch=512, threads=None))]
#[allow(clippy::too_many_arguments)]
fn upper_limit<'py>(
    py: Python<'py>,
    model: &PyModel,
    data: &Bound<'py, PyAny>,
    level: f64,
    scan: Option<Vec<f64>>,
    bracket: Option<(f64, f64)>,
    test_stat: &str,
    spec: SpecArgs,
    calctype: &str,
    ntoys: u32,
    seed: u64,
    batch: usize,
    threads: Option<usize>,
) -> PyResult<Bound<'py, PyDict>> {
    let kind = self::test_stat(test_stat)?;
    if !matches!(kind, TestStat::Q | TestStat::QTilde) {
        return Err(InvalidInput::new_err(format!(
            "test_stat '{test_stat}': limits use qtilde or q"
        )));
    }
    if !(level > 0.0 && level < 1.0) {
        return Err(InvalidInput::new_err(format!(
            "level must lie in (0, 1), got {level}"
        )));
    }
    let digest = model.inner.digest.clone();
    let d = PyDict::new(py);
    any!(model, m => {
        let data = m.data_of(data)?;
        let s = make_spec(m, &spec)?;
        poi_of(m, &s, s.init[m.poi().unwrap_or(0)], "the POI's start value")?;
        if let Some(g) = &scan {
            if g.is_empty() {
                return Err(InvalidInput::new_err("scan: empty grid"));
            }
            for &mu in g {
                poi_of(m, &s, mu, "scan value")?;
            }
        }
        match calctype {
            "asymptotics" => {}
            "toybased" => {
                let grid = scan.clone().ok_or_else(|| InvalidInput::new_err(
                    "upper_limit with calctype='toybased' needs a scan grid (toys run at each point)"))?;
                let (obs, exp, points) = py.allow_threads(|| with_threads(threads, || -> gradfit::Result<_> {
                    let engine = m.engine(&Device::Cpu)?;
                    let mut p = Problem::new(m, &data)?.with_fitter(&*engine);
                    p.spec = s.clone();
                    let mut points = Vec::new();
                    for &mu in &grid {
                        let run = engine.run_toys(&p, &toy_settings(mu, kind, ntoys, seed, None, batch, &digest), &FitOptions::default(), &|_, _| {})?;
                        points.push(GridPoint { mu, cls: toy_cls(&run)? });
                    }
                    points.sort_by(|a, b| a.mu.total_cmp(&b.mu));
                    let (obs, exp) = crossings(&points, level);
                    Ok((obs, exp, points))
                }))?.py_err()?;
                d.set_item("obs", obs)?;
                d.set_item("exp", exp.to_vec())?;
                d.set_item("mu", points.iter().map(|g| g.mu).collect::<Vec<_>>())?;
                d.set_item("cls_obs", points.iter().map(|g| g.cls.cls_obs).collect::<Vec<_>>())?;
                d.set_item("cls_exp", points.iter().map(|g| g.cls.cls_exp.to_vec()).collect::<Vec<_>>())?;
                d.set_item("calculator", "toybased")?;
                d.set_item("messages", Vec::<String>::new())?;
                return Ok(d);
            }
            other => return Err(InvalidInput::new_err(format!(
                "calctype '{other}': expected 'asymptotics' or 'toybased'"))),
        }
        let method = match (&scan, bracket) {
            (Some(g), _) => LimitMethod::Scan { grid: g.clone() },
            (None, Some((lo, hi))) => {
                poi_of(m, &s, lo, "bracket")?;
                poi_of(m, &s, hi, "bracket")?;
                if !(lo < hi) {
                    return Err(InvalidInput::new_err(format!("bracket: need lo < hi, got ({lo}, {hi})")));
                }
                LimitMethod::Bracket { lo, hi, rtol: 1e-9 }
            }
            (None, None) => {
                let (plo, phi) = s.bounds[m.poi().unwrap_or(0)];
                LimitMethod::Bracket { lo: plo.max(1e-3), hi: phi, rtol: 1e-9 }
            }
        };
        let (ul, warnings) = py.allow_threads(|| -> gradfit::Result<_> {
            let engine = m.engine(&Device::Cpu)?;
            let mut p = Problem::new(m, &data)?.with_fitter(&*engine);
            p.spec = s.clone();
            let calc = AsymptoticCalculator::new(p, kind, &FitOptions::default())?;
            let w = calc.warnings.clone();
            Ok((lib_upper_limit(&calc, 1.0 - level, &method)?, w))
        }).py_err()?;
        d.set_item("obs", ul.obs)?;
        d.set_item("exp", ul.exp.to_vec())?;
        d.set_item("mu", ul.points.iter().map(|h| h.mu).collect::<Vec<_>>())?;
        d.set_item("cls_obs", ul.points.iter().map(|h| Some(h.cls_obs)).collect::<Vec<_>>())?;
        d.set_item("cls_exp", ul.points.iter().map(|h| h.cls_exp.iter().map(|x| Some(*x)).collect::<Vec<_>>()).collect::<Vec<_>>())?;
        d.set_item("calculator", "asymptotics")?;
        let mut msgs = warnings;
        msgs.extend(ul.messages);
        d.set_item("messages", msgs)?;
    });
    Ok(d)
}

/// Discovery p-value and significance (q0, asymptotic).
#[pyfunction]
#[pyo3(signature = (model, data, spec=SpecArgs::default()))]
fn discovery<'py>(
    py: Python<'py>,
    model: &PyModel,
    data: &Bound<'py, PyAny>,
    spec: SpecArgs,
) -> PyResult<Bound<'py, PyDict>> {
    let r = any!(model, m => {
        let data = m.data_of(data)?;
        let s = make_spec(m, &spec)?;
        py.allow_threads(|| -> gradfit::Result<_> {
            let engine = m.engine(&Device::Cpu)?;
            let mut p = Problem::new(m, &data)?.with_fitter(&*engine);
            p.spec = s.clone();
            AsymptoticCalculator::new(p, TestStat::Q0, &FitOptions::default())?.discovery()
        }).py_err()?
    });
    let d = PyDict::new(py);
    d.set_item("p0_obs", r.p0_obs)?;
    d.set_item("p0_exp", r.p0_exp)?;
    d.set_item("z_obs", r.z_obs)?;
    d.set_item("z_exp", r.z_exp)?;
    d.set_item("q0_obs", r.q0_obs)?;
    d.set_item("q0_asimov", r.q0_asimov)?;
    d.set_item("mu_hat", r.mu_hat)?;
    Ok(d)
}

/// Profile-likelihood scan of parameter `par` (index) over `values`.
#[pyfunction]
#[pyo3(signature = (model, data, par, values, spec=SpecArgs::default()))]
fn scan<'py>(
    py: Python<'py>,
    model: &PyModel,
    data: &Bound<'py, PyAny>,
    par: usize,
    values: &Bound<'py, PyAny>,
    spec: SpecArgs,
) -> PyResult<Bound<'py, PyDict>> {
    let grid = vector(values, "values")?;
    if let Some(v) = grid.iter().find(|v| !v.is_finite()) {
        return Err(InvalidInput::new_err(format!(
            "values: {v} is not a finite number"
        )));
    }
    let s = any!(model, m => {
        if par >= m.n_pars() {
            return Err(InvalidInput::new_err(format!("parameter index {par} out of range ({} parameters)", m.n_pars())));
        }
        let data = m.data_of(data)?;
        let s = make_spec(m, &spec)?;
        py.allow_threads(|| -> gradfit::Result<_> {
            let engine = m.engine(&Device::Cpu)?;
            profile_scan(&*engine, m, &data, &s, par, &grid, &FitOptions::default())
        }).py_err()?
    });
    let d = PyDict::new(py);
    d.set_item("parameter", s.parameter)?;
    d.set_item("best_value", s.best_value)?;
    d.set_item("best_twice_nll", s.best_twice_nll)?;
    d.set_item(
        "values",
        PyArray1::from_vec(py, s.points.iter().map(|p| p.value).collect()),
    )?;
    d.set_item(
        "twice_nll",
        PyArray1::from_vec(py, s.points.iter().map(|p| p.twice_nll).collect()),
    )?;
    d.set_item(
        "delta_twice_nll",
        PyArray1::from_vec(py, s.points.iter().map(|p| p.delta_twice_nll).collect()),
    )?;
    d.set_item(
        "converged",
        s.points.iter().map(|p| p.converged).collect::<Vec<_>>(),
    )?;
    let n = s.points.len();
    let p = s.points.first().map_or(0, |x| x.pars.len());
    let pars: Vec<f64> = s.points.into_iter().flat_map(|x| x.pars).collect();
    d.set_item(
        "pars",
        numpy::PyArrayMethods::reshape(&PyArray1::from_vec(py, pars), [n, p])?,
    )?;
    d.set_item("messages", s.messages)?;
    Ok(d)
}

/// Register this module's functions.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(fit, m)?)?;
    m.add_function(wrap_pyfunction!(hypotest, m)?)?;
    m.add_function(wrap_pyfunction!(upper_limit, m)?)?;
    m.add_function(wrap_pyfunction!(discovery, m)?)?;
    m.add_function(wrap_pyfunction!(scan, m)?)?;
    Ok(())
}
