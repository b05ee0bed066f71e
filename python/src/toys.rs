//! Toy runs: one run or one shard of it (`gradfit toys --shard i/N`), the
//! library's merge of shards (verified first), and p-values from a run. Runs
//! travel as the JSON text the command line writes to its toy files.

use crate::infer::toy_settings;
use crate::model::PyModel;
use crate::{IntoPy, InvalidInput, InvalidToyFile, with_threads};
use gradfit::Likelihood;
use gradfit::device::Device;
use gradfit::fit::FitOptions;
use gradfit::infer::shards::merge;
use gradfit::infer::toys::{ToyRun, toy_cls};
use gradfit::infer::{Problem, TestStat};
use gradfit::model::ModelInfo;
use numpy::PyArray1;
use pyo3::prelude::*;
use pyo3::types::PyDict;

fn to_text(run: &ToyRun) -> PyResult<String> {
    let mut s =
        serde_json::to_string_pretty(run).map_err(|e| InvalidInput::new_err(e.to_string()))?;
    s.push('\n');
    Ok(s)
}

fn parse(text: &str, name: &str) -> PyResult<ToyRun> {
    let v = gradfit::workspace::json::parse_strict(text.as_bytes(), name)
        .map_err(|e| InvalidToyFile::new_err(e.to_string()))?;
    let run: ToyRun = serde_json::from_value(v)
        .map_err(|e| InvalidToyFile::new_err(format!("{name}: not a gradfit toy file: {e}")))?;
    run.verify(name)
        .map_err(|e| InvalidToyFile::new_err(e.to_string()))?;
    Ok(run)
}

/// Generate and fit the toys of one run at `mu` on the model's observed data,
/// or of shard `(i, N)` of it, exactly as `gradfit toys`; returns the toy
/// file's JSON text. `threads` bounds the threads used (None: all cores).
#[pyfunction]
#[pyo3(signature = (model, mu, n_toys, seed=0, shard=None, test_stat="qtilde", batch=512, threads=None))]
#[allow(clippy::too_many_arguments)]
fn run_toys(
    py: Python<'_>,
    model: &PyModel,
    mu: f64,
    n_toys: u32,
    seed: u64,
    shard: Option<(u32, u32)>,
    test_stat: &str,
    batch: usize,
    threads: Option<usize>,
) -> PyResult<(String, Vec<String>)> {
    let kind: TestStat = test_stat.parse().map_err(InvalidInput::new_err)?;
    if !matches!(kind, TestStat::Q0 | TestStat::Q | TestStat::QTilde) {
        return Err(InvalidInput::new_err(format!(
            "'{test_stat}': CLs needs a one-sided statistic (qtilde, q or q0)"
        )));
    }
    if n_toys == 0 {
        return Err(InvalidInput::new_err("n_toys must be at least 1"));
    }
    if let Some((i, n)) = shard
        && (n == 0 || i >= n)
    {
        return Err(InvalidInput::new_err(format!(
            "shard {i}/{n}: need 0 <= i < N"
        )));
    }
    if batch == 0 {
        return Err(InvalidInput::new_err("batch must be at least 1"));
    }
    let mut warnings = Vec::new();
    let mu = if kind == TestStat::Q0 && mu != 0.0 {
        warnings.push(format!(
            "q0 tests mu = 0 (the discovery hypothesis); mu {mu} ignored"
        ));
        0.0
    } else {
        mu
    };
    let digest = model.inner.digest.clone();
    let run = gradfit::with_model!(&model.inner.any, m => {
        py.allow_threads(|| with_threads(threads, || -> gradfit::Result<_> {
            let engine = m.engine(&Device::Cpu)?;
            let p = Problem::new(m, m.observed())?.with_fitter(&*engine);
            gradfit::cli::check_poi_value(m, p.poi, mu, "--mu")?;
            let w = kind.warnings(p.poi_bounds(), mu);
            let run = engine.run_toys(
                &p,
                &toy_settings(mu, kind, n_toys, seed, shard, batch, &digest),
                &FitOptions::default(),
                &|_, _| {},
            )?;
            Ok((run, w))
        }))?.py_err()?
    });
    let (run, w) = run;
    warnings.extend(w);
    Ok((to_text(&run)?, warnings))
}

/// Verify toy runs (JSON texts, `names` label them) and merge the shards of
/// one run into the run an unsplit execution gives; returns its JSON text.
#[pyfunction]
fn merge_toys(py: Python<'_>, texts: Vec<String>, names: Vec<String>) -> PyResult<String> {
    if texts.len() != names.len() {
        return Err(InvalidInput::new_err("one name per toy run"));
    }
    let merged = py.allow_threads(|| -> PyResult<ToyRun> {
        let runs = texts
            .iter()
            .zip(&names)
            .map(|(t, n)| parse(t, n))
            .collect::<PyResult<Vec<_>>>()?;
        merge(runs, &names).map_err(|e| InvalidToyFile::new_err(e.to_string()))
    })?;
    to_text(&merged)
}

/// Check a toy run (JSON text) as `gradfit merge` does.
#[pyfunction]
fn verify_toys(text: &str, name: &str) -> PyResult<()> {
    parse(text, name).map(|_| ())
}

/// p-values of a whole (or merged) toy run and its test statistics
/// (`nan` for toys whose fits failed).
#[pyfunction]
fn toy_result<'py>(py: Python<'py>, text: &str) -> PyResult<Bound<'py, PyDict>> {
    let run = parse(text, "<toy run>")?;
    let d = PyDict::new(py);
    d.set_item("mu", run.mu)?;
    d.set_item("test_stat", run.test_stat.name())?;
    d.set_item("seed", run.seed)?;
    d.set_item("n_toys", run.n_toys)?;
    d.set_item("shard", run.shard.map(|s| (s[0], s[1])))?;
    d.set_item("range", (run.range[0], run.range[1]))?;
    d.set_item("test_stat_obs", run.test_stat_obs)?;
    d.set_item("model_digest", run.model_digest.clone())?;
    let stats = |rs: &[gradfit::infer::toys::ToyRecord]| {
        rs.iter()
            .map(|r| r.stat.unwrap_or(f64::NAN))
            .collect::<Vec<_>>()
    };
    d.set_item("sig_bkg", PyArray1::from_vec(py, stats(&run.sig_bkg)))?;
    d.set_item("bkg", PyArray1::from_vec(py, stats(&run.bkg)))?;
    if run.shard.is_none() {
        let c = toy_cls(&run).py_err()?;
        d.set_item("cls_obs", c.cls_obs)?;
        d.set_item("cls_exp", c.cls_exp.to_vec())?;
        d.set_item("clsb_obs", c.clsb_obs)?;
        d.set_item("clb_obs", c.clb_obs)?;
        d.set_item("n_failed", c.n_failed)?;
    }
    Ok(d)
}

/// Register this module's functions.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(run_toys, m)?)?;
    m.add_function(wrap_pyfunction!(merge_toys, m)?)?;
    m.add_function(wrap_pyfunction!(verify_toys, m)?)?;
    m.add_function(wrap_pyfunction!(toy_result, m)?)?;
    Ok(())
}
