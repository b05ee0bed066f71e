//! `eval`, `fit` and `inspect`.

use super::table::{Table, fmt};
use super::{EXIT_NOT_CONVERGED, ModelArgs, OutputArgs, matrix, num, nums, par_index, parse_fix};
use crate::error::{Error, Result};
use crate::fit::{self, FitOptions, FitSpec};
use crate::model::HistFactoryModel;
use crate::model::histfactory::Constraint;
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
    out: OutputArgs,
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
    /// Print the correlation matrix in the table output too.
    #[arg(long)]
    correlation: bool,
    /// Iteration limit of the minimiser.
    #[arg(long, default_value_t = 500)]
    max_iter: usize,
    /// Time the fit: run it N times in this process and add `timing`
    /// (median, min, max seconds per fit, model loading excluded) to the output.
    #[arg(long, value_name = "N")]
    repeat: Option<usize>,
    #[command(flatten)]
    out: OutputArgs,
}

/// Arguments of `gradfit inspect`.
#[derive(Args, Debug)]
pub struct InspectArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    out: OutputArgs,
}

fn read_pars(path: &std::path::Path, model: &HistFactoryModel) -> Result<Vec<f64>> {
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
    model
        .check_pars(&pars)
        .map_err(|e| Error::input(format!("{name}: {e}")))?;
    Ok(pars)
}

/// `gradfit eval`.
pub fn eval(a: &EvalArgs) -> Result<i32> {
    let model = a.model.load()?;
    let pars = read_pars(&a.pars, &model)?;
    let data = model.observed();
    let p = model.n_pars();
    let session = crate::device::Session::new(&a.model.device, &model)?;
    let (f, g) = {
        let (f, g) = session.eval_batch(&pars, &[data], true)?;
        (f[0], g.unwrap_or_default())
    };
    let h = if a.hessian {
        if a.model.device.is_gpu() {
            eprintln!("note: the Hessian is computed by the CPU kernel");
        }
        Some(model.twice_nll_hessian(&pars, data).2)
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
        "par_names": model.par_names,
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
            t.row(vec![model.par_names[i].clone(), fmt(pars[i]), fmt(g[i])]);
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
pub fn fit_spec(
    model: &HistFactoryModel,
    poi_value: Option<f64>,
    fix: &[(String, f64)],
) -> Result<FitSpec> {
    let mut spec = FitSpec::from_model(model);
    if let Some(mu) = poi_value {
        let poi = model.poi.ok_or_else(|| {
            Error::input(
                "--poi-value: the model has no POI (is the signal patch applied?)".to_string(),
            )
        })?;
        spec = spec.fix(poi, mu);
    }
    for (name, val) in fix {
        let i = par_index(model, name)?;
        spec = spec.fix(i, *val);
    }
    Ok(spec)
}

/// JSON of a fit result.
pub fn fit_json(model: &HistFactoryModel, r: &fit::FitResult) -> Value {
    let p = model.n_pars();
    let corr = r.correlation();
    json!({
        "twice_nll": num(r.twice_nll),
        "converged": r.converged,
        "status": r.status,
        "message": r.status.reason(),
        "iterations": r.iterations,
        "edm": num(r.edm),
        "par_names": model.par_names,
        "values": nums(&r.x),
        "errors": nums(&r.errors),
        "correlation": corr.map(|c| matrix(&c, p)).unwrap_or(Value::Null),
        "hessian_positive_definite": !r.hessian_not_pd,
    })
}

/// `gradfit fit`.
pub fn fit(a: &FitArgs) -> Result<i32> {
    let model = a.model.load()?;
    let spec = fit_spec(&model, a.poi_value, &a.fix)?;
    let opts = FitOptions {
        max_iter: a.max_iter,
        ..Default::default()
    };
    let mut times = Vec::new();
    let session = crate::device::Session::new(&a.model.device, &model)?;
    let mut r = session.fit(model.observed(), &spec, &opts)?;
    for _ in 0..a.repeat.unwrap_or(0) {
        let t0 = std::time::Instant::now();
        r = session.fit(model.observed(), &spec, &opts)?;
        times.push(t0.elapsed().as_secs_f64());
    }
    let mut v = fit_json(&model, &r);
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
        for i in 0..model.n_pars() {
            let tag = if spec.fixed[i] {
                "fixed"
            } else if r.x[i] <= spec.bounds[i].0 || r.x[i] >= spec.bounds[i].1 {
                "at bound"
            } else {
                ""
            };
            t.row(vec![model.par_names[i].clone(), fmt(r.x[i]), fmt(r.errors[i]), tag.into()]);
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
                                model.par_names[i],
                                model.par_names[j]
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

fn constraint_json(model: &HistFactoryModel, i: usize) -> Value {
    let aux = model.aux_index[i].map(|k| model.observed().aux[k]);
    match model.constraints[i] {
        Constraint::None => json!({"type": "none"}),
        Constraint::Normal { sigma } => json!({"type": "normal", "sigma": sigma, "auxdata": aux}),
        Constraint::Poisson { tau } => json!({"type": "poisson", "tau": tau, "auxdata": aux}),
    }
}

/// `gradfit inspect`.
pub fn inspect(a: &InspectArgs) -> Result<i32> {
    let model = a.model.load()?;
    let mut channels = Vec::new();
    for (ci, c) in model.channels.iter().enumerate() {
        let mut samples = Vec::new();
        for s in model.samples.iter().filter(|s| s.channel == ci) {
            let sbs = &model.sb[s.first_sb..s.first_sb + c.nbins];
            let mut mods: Vec<String> = Vec::new();
            for sb in sbs.iter().take(1) {
                for t in &model.mult[sb.mult.0 as usize..sb.mult.1 as usize] {
                    mods.push(
                        model.par_names[t.par as usize]
                            .split('[')
                            .next()
                            .unwrap_or("")
                            .to_string(),
                    );
                }
                for t in &model.add[sb.add.0 as usize..sb.add.1 as usize] {
                    mods.push(model.par_names[t.par as usize].clone());
                }
            }
            mods.sort();
            mods.dedup();
            samples.push(json!({
                "name": s.name,
                "yields": sbs.iter().map(|x| x.nom).collect::<Vec<_>>(),
                "parameters": mods,
            }));
        }
        let obs = &model.observed().main[c.bin_offset..c.bin_offset + c.nbins];
        channels
            .push(json!({"name": c.name, "nbins": c.nbins, "observed": obs, "samples": samples}));
    }
    let mut params = Vec::new();
    for set in &model.par_sets {
        for k in 0..set.n {
            let i = set.offset + k;
            params.push(json!({
                "name": model.par_names[i],
                "types": set.types,
                "init": model.init[i],
                "bounds": [model.bounds[i].0, model.bounds[i].1],
                "fixed": model.fixed[i],
                "constraint": constraint_json(&model, i),
            }));
        }
    }
    let poi = model.poi.map(|i| model.par_names[i].clone());
    let v = json!({
        "measurement": model.measurement,
        "poi": poi,
        "interpolation": {"normsys": model.normsys_code.to_string(), "histosys": model.histosys_code.to_string()},
        "n_parameters": model.n_pars(),
        "n_main_bins": model.n_main,
        "n_aux": model.n_aux(),
        "channels": channels,
        "parameters": params,
        "warnings": model.warnings,
    });
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
        s
    })?;
    Ok(0)
}
