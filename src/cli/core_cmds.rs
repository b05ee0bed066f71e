//! `eval` and `fit`.

use super::table::{Table, fmt, fmt_fitted};
use super::{EXIT_NOT_CONVERGED, ModelArgs, OutputArgs, matrix, num, nums, par_index, parse_fix};
use crate::error::{Error, Result};
use crate::fit::{self, FitOptions, FitSpec};
use crate::model::{Likelihood, ModelInfo};
use clap::Args;
use serde_json::{Value, json};
use std::path::PathBuf;

/// Arguments of `gradfit eval`.
#[derive(Args, Debug)]
pub struct EvalArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// JSON file with a list of parameter values in model order.
    #[arg(long, value_name = "FILE")]
    pars: PathBuf,
    /// Also compute the exact Hessian.
    #[arg(long)]
    hessian: bool,
    #[command(flatten)]
    pub(super) out: OutputArgs,
}

/// Arguments of `gradfit fit`.
#[derive(Args, Debug)]
pub struct FitArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Fix the POI at this value.
    #[arg(long, value_name = "MU", allow_negative_numbers = true)]
    poi_value: Option<f64>,
    /// Fix a parameter: NAME=VALUE (repeatable).
    #[arg(long = "fix", value_name = "NAME=VALUE", value_parser = parse_fix)]
    fix: Vec<(String, f64)>,
    /// Print the correlation matrix in the table output too, and always
    /// include it in the JSON (by default only for models of at most
    /// 200 parameters: it grows as the square of the parameter count).
    #[arg(long)]
    correlation: bool,
    /// Iteration limit of the minimiser.
    #[arg(long, default_value_t = 500)]
    max_iter: usize,
    /// Asymmetric errors from the profile likelihood (where twice_nll rises
    /// by 1) for these parameters; all free parameters when none are named.
    #[arg(long, value_name = "NAME", num_args = 0..)]
    minos: Option<Vec<String>>,
    /// Covariance behind `errors` and `correlation`: `hessian` (the inverse
    /// Hessian of twice_nll, times 2), `asymptotic` (the asymptotically
    /// correct covariance of weighted unbinned fits, H^-1 D H^-1: RooFit's
    /// AsymptoticError, zfit's "asymptotic"), or `auto` (the default:
    /// asymptotic when an unbinned channel has weights other than 1, else
    /// hessian). The JSON key `covariance` says which was used.
    #[arg(long, value_name = "KIND", default_value = "auto",
          value_parser = ["auto", "hessian", "asymptotic"])]
    covariance: String,
    /// Time the fit: run it N times in this process and add `timing`
    /// (median, min, max seconds per fit, model loading excluded) to the output.
    #[arg(long, value_name = "N")]
    repeat: Option<usize>,
    #[command(flatten)]
    pub(super) out: OutputArgs,
}

fn read_pars<M: Likelihood>(path: &std::path::Path, model: &M) -> Result<Vec<f64>> {
    let v = crate::workspace::read_json(path)?;
    let name = path.display().to_string();
    let arr = v.as_array().ok_or_else(|| {
        Error::input(format!(
            "{name}: expected a JSON list of {} numbers",
            model.n_pars()
        ))
    })?;
    let pars: Vec<f64> = arr
        .iter()
        .enumerate()
        .map(|(i, x)| {
            x.as_f64()
                .ok_or_else(|| Error::input(format!("{name}: entry {i} is not a number: {x}")))
        })
        .collect::<Result<_>>()?;
    check_pars(model, &pars).map_err(|e| Error::input(format!("{name}: {e}")))?;
    Ok(pars)
}

/// Check a parameter vector's length and that every entry is finite.
pub fn check_pars<M: Likelihood>(model: &M, theta: &[f64]) -> Result<()> {
    if theta.len() != model.n_pars() {
        return Err(Error::input(format!(
            "parameter vector has {} entries, the model has {} parameters",
            theta.len(),
            model.n_pars()
        )));
    }
    if let Some((i, v)) = theta.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(Error::input(format!(
            "parameter {} ({}) is {v}",
            i,
            model.par_names()[i]
        )));
    }
    Ok(())
}

/// `gradfit eval`.
pub fn eval(a: &EvalArgs) -> Result<i32> {
    let loaded = a.model.load_any()?;
    crate::with_model!(&loaded.model, m => eval_model(a, m))
}

fn eval_model<M: ModelInfo>(a: &EvalArgs, model: &M) -> Result<i32> {
    let pars = read_pars(&a.pars, model)?;
    let data = model.observed();
    let p = model.n_pars();
    let engine = model.engine(&a.model.device)?;
    let (f, g) = {
        let (f, g) = engine.eval_batch(model, &pars, &[data], true)?;
        (f[0], g.unwrap_or_default())
    };
    let h = if a.hessian {
        if a.model.device.is_gpu() {
            eprintln!("note: the Hessian is computed by the CPU kernel");
        }
        let mut s = model.scratch();
        let mut g = vec![0.0; p];
        let mut h = vec![0.0; p * p];
        model.eval(&pars, data, &mut s, Some(&mut g), Some(&mut h));
        Some(h)
    } else {
        None
    };
    if !f.is_finite() {
        return Err(Error::Numerical(
            model
                .domain_issue(&pars, data)
                .unwrap_or_else(|| "twice_nll is not finite at these parameters".to_string()),
        ));
    }
    let mut v = json!({
        "par_names": model.par_names(),
        "twice_nll": num(f),
        "grad": nums(&g),
    });
    if let Some(h) = &h {
        v["hessian"] = matrix(h, p);
    }
    a.out.emit(&v, || {
        let mut s = format!("twice_nll = {}\n\n", fmt(f));
        let mut t = Table::new(
            &["parameter", "value", "d twice_nll / d par"],
            &[false, true, true],
        );
        for i in 0..p {
            t.row(vec![model.par_names()[i].clone(), fmt(pars[i]), fmt(g[i])]);
        }
        s.push_str(&t.render());
        if h.is_some() {
            s.push_str("\n(Hessian computed; use --json to print it)\n");
        }
        s
    })?;
    Ok(0)
}

/// Build the fit spec from `--poi-value` and `--fix`.
pub fn fit_spec<M: Likelihood>(
    model: &M,
    poi_value: Option<f64>,
    fix: &[(String, f64)],
) -> Result<FitSpec> {
    let mut spec = FitSpec::from_model(model);
    let mut fixed_by: Vec<Option<String>> = vec![None; model.n_pars()];
    if let Some(mu) = poi_value {
        let poi = model.poi().ok_or_else(|| {
            Error::input(
                "--poi-value: the model has no POI (is the signal patch applied?)".to_string(),
            )
        })?;
        super::check_poi_value(model, poi, mu, "--poi-value")?;
        spec = spec.fix(poi, mu);
        fixed_by[poi] = Some(format!("--poi-value {mu}"));
    }
    for (name, val) in fix {
        let i = par_index(model, name)?;
        if let Some(prev) = &fixed_by[i] {
            return Err(Error::input(format!(
                "--fix {name}={val} conflicts with {prev}: '{name}' can be fixed once"
            )));
        }
        super::check_poi_value(model, i, *val, &format!("--fix {name}="))?;
        spec = spec.fix(i, *val);
        fixed_by[i] = Some(format!("--fix {name}={val}"));
    }
    Ok(spec)
}

/// Largest model whose fit JSON includes the correlation matrix by default.
pub const CORRELATION_JSON_MAX_PARS: usize = 200;

/// JSON of a fit result; the correlation matrix when `correlation` or the
/// model is small ([`CORRELATION_JSON_MAX_PARS`]).
pub fn fit_json<M: Likelihood>(model: &M, r: &fit::FitResult, correlation: bool) -> Value {
    let p = model.n_pars();
    let with_corr = correlation || p <= CORRELATION_JSON_MAX_PARS;
    let mut v = json!({
        "twice_nll": num(r.twice_nll),
        "converged": r.converged,
        "status": r.status,
        "message": r.status.reason(),
        "iterations": r.iterations,
        "edm": num(r.edm),
        "par_names": model.par_names(),
        "values": nums(&r.x),
        "errors": nums(&r.errors),
        "hessian_positive_definite": !r.hessian_not_pd,
        "flat_parameters": r.flat.iter().map(|&i| &model.par_names()[i]).collect::<Vec<_>>(),
        "mle_parameters": super::mle_parameters(model.par_names(), &r.x),
    });
    if r.restarted {
        v["restarted"] = json!(true);
    }
    if with_corr {
        v["correlation"] = r
            .correlation()
            .map(|c| matrix(&c, p))
            .unwrap_or(Value::Null);
    }
    v
}

/// `gradfit fit`.
pub fn fit(a: &FitArgs) -> Result<i32> {
    let loaded = a.model.load_any()?;
    crate::with_model!(&loaded.model, m => fit_model(a, m))
}

fn fit_model<M: ModelInfo>(a: &FitArgs, model: &M) -> Result<i32> {
    let spec = fit_spec(model, a.poi_value, &a.fix)?;
    let opts = FitOptions {
        max_iter: a.max_iter,
        ..Default::default()
    };
    let mut times = Vec::new();
    let engine = model.engine(&a.model.device)?;
    let mut r = engine.fit(model, model.observed(), &spec, &opts)?;
    for _ in 0..a.repeat.unwrap_or(0) {
        let t0 = std::time::Instant::now();
        r = engine.fit(model, model.observed(), &spec, &opts)?;
        times.push(t0.elapsed().as_secs_f64());
    }
    let cov_kind = apply_covariance(model, &mut r, &spec.fixed, &a.covariance)?;
    let mut v = fit_json(model, &r, a.correlation);
    v["covariance"] = json!(cov_kind);
    let minos = match &a.minos {
        Some(names) if r.converged => {
            let pars: Vec<usize> = if names.is_empty() {
                (0..model.n_pars()).filter(|&i| !spec.fixed[i]).collect()
            } else {
                names
                    .iter()
                    .map(|n| par_index(model, n))
                    .collect::<Result<_>>()?
            };
            let p = crate::infer::minos::Profile {
                model,
                data: model.observed(),
                spec: &spec,
                fitter: &*engine,
            };
            let m = crate::infer::minos::minos(&p, &r, &pars, 1.0, &opts)?;
            let mut obj = serde_json::Map::new();
            for e in &m {
                obj.insert(
                    model.par_names()[e.par].clone(),
                    json!({
                        "lower": e.lower.error.map(num).unwrap_or(Value::Null),
                        "upper": e.upper.error.map(num).unwrap_or(Value::Null),
                        "lower_at_bound": e.lower.at_bound,
                        "upper_at_bound": e.upper.at_bound,
                    }),
                );
            }
            v["minos"] = Value::Object(obj);
            Some(m)
        }
        _ => None,
    };
    if !times.is_empty() {
        times.sort_by(f64::total_cmp);
        let k = times.len();
        let median = if k % 2 == 1 {
            times[k / 2]
        } else {
            0.5 * (times[k / 2 - 1] + times[k / 2])
        };
        v["timing"] =
            json!({"repeats": k, "median_s": median, "min_s": times[0], "max_s": times[k - 1]});
    }
    a.out.emit(&v, || {
        let mut s = format!(
            "twice_nll = {}   converged = {} ({})   iterations = {}\n\n",
            fmt(r.twice_nll),
            r.converged,
            r.status.reason(),
            r.iterations
        );
        if r.restarted {
            s.push_str(
                "note: the fit from the given start did not converge; this is the fit \
                 restarted from the suggested initial values\n\n",
            );
        }
        if cov_kind == "asymptotic" {
            s.push_str("errors: asymptotic covariance of a weighted fit (H^-1 D H^-1)\n\n");
        }
        let mut t = Table::new(&["parameter", "value", "error", ""], &[false, true, true, false]);
        let minos_of = |i: usize| {
            minos.as_ref().and_then(|m| m.iter().find(|e| e.par == i)).map(|e| {
                let side = |x: &crate::infer::minos::MinosSide| match (x.error, x.at_bound) {
                    (Some(v), _) => format!("{v:+.4e}"),
                    (None, true) => "bound".into(),
                    (None, false) => "?".into(),
                };
                format!("{} / {}", side(&e.lower), side(&e.upper))
            })
        };
        if minos.is_some() {
            t = Table::new(
                &["parameter", "value", "error", "minos -/+", ""],
                &[false, true, true, true, false],
            );
        }
        for i in 0..model.n_pars() {
            let tag = if spec.fixed[i] {
                "fixed"
            } else if r.flat.contains(&i) {
                "flat"
            } else if r.x[i] <= spec.bounds[i].0 || r.x[i] >= spec.bounds[i].1 {
                "at bound"
            } else {
                ""
            };
            let mut row = vec![
                model.par_names()[i].clone(),
                fmt_fitted(r.x[i], r.errors[i]),
                fmt(r.errors[i]),
            ];
            if minos.is_some() {
                row.push(minos_of(i).unwrap_or_default());
            }
            row.push(tag.into());
            t.row(row);
        }
        s.push_str(&t.render());
        if r.hessian_not_pd {
            s.push_str("\nwarning: the Hessian is not positive definite at the minimum; uncertainties unavailable\n");
        }
        if !r.flat.is_empty() {
            let names: Vec<&str> = r.flat.iter().map(|&i| model.par_names()[i].as_str()).collect();
            s.push_str(&format!(
                "\nnote: {} do{} not affect the likelihood at the minimum (flat: zero gradient and \
                 curvature, e.g. a shape whose yield is 0); held at the start value, no uncertainty\n",
                names.join(", "),
                if names.len() == 1 { "es" } else { "" }
            ));
        }
        if a.correlation
            && let Some(c) = r.correlation() {
                let p = model.n_pars();
                s.push_str("\ncorrelation (|rho| >= 0.1, off-diagonal):\n");
                for i in 0..p {
                    for j in i + 1..p {
                        if c[i * p + j].abs() >= 0.1 {
                            s.push_str(&format!(
                                "  {:>8.4}  {} , {}\n",
                                c[i * p + j],
                                model.par_names()[i],
                                model.par_names()[j]
                            ));
                        }
                    }
                }
            }
        s
    })?;
    if !r.converged {
        eprintln!("error: the fit did not converge: {}", r.status.reason());
        return Ok(EXIT_NOT_CONVERGED);
    }
    Ok(0)
}

/// Replace the Hessian covariance of `r` by the one `choice` asks for ("auto",
/// "hessian", "asymptotic"; see `gradfit fit --covariance`) and return the
/// name of the covariance used: "hessian" or "asymptotic".
pub fn apply_covariance<M: ModelInfo>(
    model: &M,
    r: &mut fit::FitResult,
    fixed: &[bool],
    choice: &str,
) -> Result<&'static str> {
    use crate::model::unbinned::weighted::{fit_covariance_asymptotic, has_weights};
    let combined = model.as_combined();
    let asymptotic = match choice {
        "hessian" => false,
        "asymptotic" => true,
        _ => combined.is_some_and(has_weights),
    };
    if !asymptotic {
        return Ok("hessian");
    }
    let Some(cm) = combined else {
        return Err(Error::input(format!(
            "--covariance asymptotic applies to HS3 (unbinned) models; '{}' is a pyhf workspace",
            model.label()
        )));
    };
    if r.hessian_not_pd || !r.x.iter().all(|x| x.is_finite()) {
        eprintln!(
            "warning: no asymptotic covariance: the Hessian is not positive definite at the minimum"
        );
        return Ok("hessian");
    }
    // parameters held at a bound have no row in the Hessian covariance either
    let n = model.n_pars();
    let held: Vec<bool> = (0..n)
        .map(|i| fixed[i] || r.covariance.as_ref().is_some_and(|c| c[i * n + i] == 0.0))
        .collect();
    let Some(c) = fit_covariance_asymptotic(cm, &r.x, &held) else {
        eprintln!(
            "warning: no asymptotic covariance: the Hessian is not positive definite at the minimum"
        );
        return Ok("hessian");
    };
    for i in 0..n {
        if !held[i] {
            r.errors[i] = c[i * n + i].max(0.0).sqrt();
        }
    }
    r.covariance = Some(c);
    Ok("asymptotic")
}
