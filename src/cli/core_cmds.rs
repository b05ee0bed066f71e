//! `eval`, `fit` and `inspect`.

use super::table::{Table, fmt, fmt_fitted};
use super::{EXIT_NOT_CONVERGED, ModelArgs, OutputArgs, matrix, num, nums, par_index, parse_fix};
use crate::error::{Error, Result};
use crate::fit::{self, FitOptions, FitSpec};
use crate::model::histfactory::Constraint;
use crate::model::{AnyModel, CombinedModel, HistFactoryModel, Likelihood, ModelInfo};
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
    /// Time the fit: run it N times in this process and add `timing`
    /// (median, min, max seconds per fit, model loading excluded) to the output.
    #[arg(long, value_name = "N")]
    repeat: Option<usize>,
    #[command(flatten)]
    pub(super) out: OutputArgs,
}

/// Arguments of `gradfit inspect`.
#[derive(Args, Debug)]
pub struct InspectArgs {
    #[command(flatten)]
    model: ModelArgs,
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
        "mle_parameters": super::mle_parameters(model.par_names(), &r.x),
    });
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
    let mut v = fit_json(model, &r, a.correlation);
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

/// `gradfit inspect`.
pub fn inspect(a: &InspectArgs) -> Result<i32> {
    match a.model.load_any()?.model {
        AnyModel::HistFactory(model) => inspect_histfactory(a, &model),
        AnyModel::Combined(model) => inspect_combined(a, &model),
    }
}

fn inspect_combined(a: &InspectArgs, model: &CombinedModel) -> Result<i32> {
    let mut v = model.describe();
    let mut params = Vec::new();
    for (i, name) in model.par_names().iter().enumerate() {
        let c = model.constraint_info(i);
        params.push(json!({
            "name": name,
            "init": model.init()[i],
            "bounds": [model.bounds()[i].0, model.bounds()[i].1],
            "fixed": model.fixed()[i],
            "constraint": c.map(|c| json!({"type": c.kind, "sigma": c.sigma, "center": c.center})),
        }));
    }
    v["parameters"] = json!(params);
    a.out.emit(&v, || {
        let mut s = format!(
            "model {}  POI {}\n{} parts, {} parameters\n\n",
            model.label,
            model
                .poi()
                .map(|i| model.par_names()[i].as_str())
                .unwrap_or("(none)"),
            model.parts().len(),
            model.n_pars()
        );
        let mut t = Table::new(&["part", "parameters"], &[false, false]);
        for (k, part) in model.parts().iter().enumerate() {
            let names: Vec<&str> = model
                .part_map(k)
                .iter()
                .map(|&g| model.par_names()[g].as_str())
                .collect();
            t.row(vec![part.label(), names.join(", ")]);
        }
        s.push_str(&t.render());
        s.push('\n');
        let mut t = Table::new(
            &["parameter", "init", "bounds", "fixed", "constraint"],
            &[false, true, false, false, false],
        );
        for (i, name) in model.par_names().iter().enumerate() {
            let con = model
                .constraint_info(i)
                .map(|c| {
                    format!(
                        "{}(sigma={}, center={})",
                        c.kind,
                        fmt(c.sigma),
                        fmt(c.center)
                    )
                })
                .unwrap_or_else(|| "-".into());
            t.row(vec![
                name.clone(),
                fmt(model.init()[i]),
                format!("[{}, {}]", model.bounds()[i].0, model.bounds()[i].1),
                if model.fixed()[i] {
                    "yes".into()
                } else {
                    "".into()
                },
                con,
            ]);
        }
        s.push_str(&t.render());
        for part in v["parts"].as_array().into_iter().flatten() {
            s.push_str(&nsbi_diagnostics_text(&part["diagnostics"]));
        }
        s
    })?;
    Ok(0)
}

/// The NSBI diagnostics of one unbinned channel as text (empty if none):
/// closure per process, spread of the per-event shape variations, network ensembles.
fn nsbi_diagnostics_text(d: &Value) -> String {
    let Some(closure) = d["closure"].as_array() else {
        return String::new();
    };
    let f = |v: &Value| v.as_f64().map(fmt).unwrap_or_else(|| "-".into());
    let mut s = format!(
        "\nchannel {}: closure of the {} ({} events), sum_i w_i r_c(x_i) against nu_c\n",
        d["channel"].as_str().unwrap_or("?"),
        d["sample"].as_str().unwrap_or("?"),
        d["n_events"]
    );
    let mut t = Table::new(
        &["process", "nu_c", "reweighted", "ratio", "+-", "pull"],
        &[false, true, true, true, true, true],
    );
    for c in closure {
        t.row(vec![
            c["process"].as_str().unwrap_or("?").to_string(),
            f(&c["nu"]),
            f(&c["reweighted"]),
            f(&c["ratio"]),
            f(&c["ratio_error"]),
            f(&c["pull"]),
        ]);
    }
    s.push_str(&t.render());
    if let Some(shapes) = d["shapes"].as_array().filter(|v| !v.is_empty()) {
        s.push_str("\nper-event shape variations (weighted mean, std, min, max of the varied/nominal ratio)\n");
        let mut t = Table::new(
            &[
                "variation",
                "up mean",
                "up std",
                "up min",
                "up max",
                "down mean",
                "down std",
                "down min",
                "down max",
                "up norm",
                "down norm",
            ],
            &[
                false, true, true, true, true, true, true, true, true, true, true,
            ],
        );
        for v in shapes {
            let mut row = vec![v["label"].as_str().unwrap_or("?").to_string()];
            row.extend((0..4).map(|k| f(&v["up"][k])));
            row.extend((0..4).map(|k| f(&v["down"][k])));
            row.push(f(&v["up_norm"]));
            row.push(f(&v["down_norm"]));
            t.row(row);
        }
        s.push_str(&t.render());
    }
    if let Some(ens) = d["ensembles"].as_array().filter(|v| !v.is_empty()) {
        s.push_str("\nnetwork ensembles (relative spread std/mean of r over the members)\n");
        let mut t = Table::new(
            &["ratio", "members", "events", "mean spread", "max spread"],
            &[false, true, true, true, true],
        );
        for e in ens {
            t.row(vec![
                e["at"].as_str().unwrap_or("?").to_string(),
                e["members"].to_string(),
                e["n_events"].to_string(),
                f(&e["mean_rel_spread"]),
                f(&e["max_rel_spread"]),
            ]);
        }
        s.push_str(&t.render());
    }
    s
}

fn inspect_histfactory(a: &InspectArgs, model: &HistFactoryModel) -> Result<i32> {
    let mut v = crate::model::histfactory::describe(model);
    let measurements = super::pyhf_cmds::add_measurements(&a.model, &mut v, &model.measurement)?;
    let poi = model.poi.map(|i| model.par_names[i].clone());
    a.out.emit(&v, || {
        let mut s = format!(
            "measurement {}  POI {}  interpolation normsys={} histosys={}\n{} channels, {} main bins, {} parameters, {} aux data\n\n",
            model.measurement,
            poi.clone().unwrap_or_else(|| "(none)".into()),
            model.normsys_code,
            model.histosys_code,
            model.channels.len(),
            model.n_main,
            model.n_pars(),
            model.n_aux()
        );
        let mut t = Table::new(&["channel", "bins", "observed", "samples"], &[false, true, true, false]);
        for (ci, c) in model.channels.iter().enumerate() {
            let obs: f64 = model.observed().main[c.bin_offset..c.bin_offset + c.nbins].iter().sum();
            let names: Vec<&str> =
                model.samples.iter().filter(|s| s.channel == ci).map(|s| s.name.as_str()).collect();
            t.row(vec![c.name.clone(), c.nbins.to_string(), fmt(obs), names.join(", ")]);
        }
        s.push_str(&t.render());
        s.push('\n');
        let mut t = Table::new(
            &["parameter", "type", "init", "bounds", "fixed", "constraint"],
            &[false, false, true, false, false, false],
        );
        for set in &model.par_sets {
            for k in 0..set.n {
                let i = set.offset + k;
                let con = match model.constraints[i] {
                    Constraint::None => "-".to_string(),
                    Constraint::Normal { sigma } => format!("normal(sigma={})", fmt(sigma)),
                    Constraint::Poisson { tau } => format!("poisson(tau={})", fmt(tau)),
                };
                t.row(vec![
                    model.par_names[i].clone(),
                    set.types.join("+"),
                    fmt(model.init[i]),
                    format!("[{}, {}]", model.bounds[i].0, model.bounds[i].1),
                    if model.fixed[i] { "yes".into() } else { "".into() },
                    con,
                ]);
            }
        }
        s.push_str(&t.render());
        s.push_str(&measurements);
        s
    })?;
    Ok(0)
}
