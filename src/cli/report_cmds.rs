//! `pulls`, `impacts`, `yields` and `corr`: what users read a fit from.
//!
//! Each command fits the model to the observed data first. A best fit that did
//! not converge is reported (`converged: false` in JSON, a message on stderr)
//! and the command exits with status 3 after printing its results; a Hessian
//! that is not positive definite at the best fit is an error (exit 1), since no
//! uncertainty is defined there.

use super::table::{Table, fmt, fmt_fitted};
use super::{EXIT_NOT_CONVERGED, ModelArgs, OutputArgs, matrix, num};
use crate::device::Engine;
use crate::error::{Error, Result};
use crate::fit::FitSpec;
use crate::model::{Likelihood, ModelInfo};
use crate::report::plot::{self, CorrelationPlot, PullsPlot, RankingPlot};
use crate::report::{self, ImpactRow, PostFit, Pull, ShiftKind};
use clap::{Args, ValueEnum};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

/// Minimiser options of the best fit.
#[derive(Args, Debug, Clone)]
pub struct BestFitArgs {
    /// Iteration limit of the minimiser (best fit and each refit).
    #[arg(long, default_value_t = 500)]
    max_iter: usize,
}

/// Arguments of `gradfit pulls`.
#[derive(Args, Debug)]
pub struct PullsArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    fit: BestFitArgs,
    /// Draw the pulls to FILE (.svg or .png).
    #[arg(long, value_name = "FILE")]
    plot: Option<PathBuf>,
    /// Show only parameters whose name matches PATTERN (`*` and `?` wildcards; repeatable).
    #[arg(long, value_name = "PATTERN")]
    include: Vec<String>,
    /// Leave out parameters whose name matches PATTERN (`*` and `?` wildcards; repeatable).
    #[arg(long, value_name = "PATTERN")]
    exclude: Vec<String>,
    #[command(flatten)]
    pub(super) out: OutputArgs,
}

/// Whether `name` matches the wildcard `pattern` (`*`: any run, `?`: one character).
pub fn wildcard_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    // classic two-pointer matcher with backtracking to the last `*`
    let (mut i, mut j, mut star, mut mark) = (0, 0, None, 0);
    while j < n.len() {
        if i < p.len() && (p[i] == '?' || p[i] == n[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some(i);
            mark = j;
            i += 1;
        } else if let Some(s) = star {
            i = s + 1;
            mark += 1;
            j = mark;
        } else {
            return false;
        }
    }
    p[i..].iter().all(|&c| c == '*')
}

/// Whether a parameter passes `--include` (any pattern, or none given) and `--exclude`.
fn selected(name: &str, include: &[String], exclude: &[String]) -> bool {
    (include.is_empty() || include.iter().any(|p| wildcard_match(p, name)))
        && !exclude.iter().any(|p| wildcard_match(p, name))
}

/// Which impacts `gradfit impacts` computes.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Linearised impacts from the covariance and the Hessian only.
    Hessian,
    /// Refit ranking (4 refits per parameter); the Hessian impacts come along (they are free).
    Refit,
    /// Both (the default).
    Both,
}

/// Arguments of `gradfit impacts`.
#[derive(Args, Debug)]
pub struct ImpactsArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    fit: BestFitArgs,
    /// Hessian impacts, the refit ranking, or both.
    #[arg(long, value_enum, default_value = "both")]
    method: Method,
    /// Keep only the N parameters with the largest post-fit impact (table, JSON and plot;
    /// the plot shows 20 when not given).
    #[arg(long, value_name = "N", value_parser = super::parse_positive)]
    top: Option<u64>,
    /// Draw the ranking to FILE (.svg or .png).
    #[arg(long, value_name = "FILE")]
    plot: Option<PathBuf>,
    #[command(flatten)]
    pub(super) out: OutputArgs,
}

/// Arguments of `gradfit corr`.
#[derive(Args, Debug)]
pub struct CorrArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    fit: BestFitArgs,
    /// Prune parameters whose correlations with all others are below X in size.
    #[arg(long, value_name = "X", default_value_t = 0.0, value_parser = parse_threshold)]
    threshold: f64,
    /// Draw the correlation matrix to FILE (.svg or .png).
    #[arg(long, value_name = "FILE")]
    plot: Option<PathBuf>,
    #[command(flatten)]
    pub(super) out: OutputArgs,
}

fn parse_threshold(s: &str) -> std::result::Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a number"))?;
    if !(0.0..=1.0).contains(&v) {
        return Err(format!("the threshold must be in [0, 1], got {v}"));
    }
    Ok(v)
}

/// Check a plot path before any work: extension and an existing folder.
fn check_plot_path(path: &Path) -> Result<()> {
    plot::Format::from_path(path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.is_dir()
    {
        return Err(Error::input(format!(
            "{}: folder {} does not exist",
            path.display(),
            dir.display()
        )));
    }
    Ok(())
}

/// Free fit on the observed data with the Hessian and covariance at the minimum.
pub(super) fn best_fit<M: Likelihood>(
    engine: &dyn Engine<M>,
    model: &M,
    a: &BestFitArgs,
) -> Result<PostFit> {
    let mut opts = report::best_fit_options();
    opts.max_iter = a.max_iter;
    PostFit::fit_with(
        engine,
        model,
        model.observed(),
        &FitSpec::from_model(model),
        &opts,
    )
}

/// The end of a report command: name the plot written, warn when the best
/// fit did not converge, and return the exit code.
fn finish(post: &PostFit, plot: Option<&std::path::Path>) -> i32 {
    if let Some(path) = plot {
        eprintln!("wrote {}", path.display());
    }
    warn_not_converged(post);
    if post.converged {
        0
    } else {
        EXIT_NOT_CONVERGED
    }
}

pub(super) fn warn_not_converged(post: &PostFit) {
    if !post.converged {
        eprintln!(
            "error: the best fit did not converge ({}); the results above are at the last point and unreliable",
            post.status.reason()
        );
    }
}

pub(super) fn fit_header(post: &PostFit) -> Value {
    json!({
        "twice_nll": num(post.twice_nll),
        "converged": post.converged,
        "status": post.status,
    })
}

fn opt(x: Option<f64>) -> Value {
    x.map(num).unwrap_or(Value::Null)
}

fn opt_fmt(x: Option<f64>) -> String {
    x.map(fmt).unwrap_or_else(|| "-".into())
}

fn pull_json<M: Likelihood>(model: &M, p: &Pull) -> Value {
    json!({
        "name": model.par_names()[p.par],
        "value": num(p.value),
        "error": num(p.error),
        "prefit_sigma": num(p.prefit_sigma),
        "nominal": opt(p.center),
        "pull": opt(p.pull),
        "pull_error": opt(p.pull_error),
        "constraint": p.constraint,
        "fixed": p.fixed,
    })
}

/// `gradfit pulls`.
pub fn pulls(a: &PullsArgs) -> Result<i32> {
    if let Some(p) = &a.plot {
        check_plot_path(p)?;
    }
    let loaded = a.model.load_any()?;
    crate::with_model!(&loaded.model, m => pulls_model(a, m))
}

fn pulls_model<M: ModelInfo>(a: &PullsArgs, model: &M) -> Result<i32> {
    let engine = model.engine(&a.model.device)?;
    let post = best_fit(&*engine, model, &a.fit)?;
    let mut pulls = report::pulls(model, &post);
    for p in a.include.iter().chain(&a.exclude) {
        if !model.par_names().iter().any(|n| wildcard_match(p, n)) {
            eprintln!("warning: the pattern '{p}' matches no parameter");
        }
    }
    pulls.retain(|p| selected(&model.par_names()[p.par], &a.include, &a.exclude));
    let mut v = fit_header(&post);
    v["parameters"] = Value::Array(pulls.iter().map(|p| pull_json(model, p)).collect());
    if let Some(path) = &a.plot {
        let pl = PullsPlot::new(
            model.par_names(),
            &pulls,
            &format!("Pulls ({})", model.label()),
        );
        plot::write(&pl, path)?;
    }
    a.out.emit(&v, || {
        let mut t = Table::new(
            &[
                "parameter",
                "value",
                "error",
                "pre-fit sigma",
                "pull",
                "pull error",
                "constraint",
            ],
            &[false, true, true, true, true, true, false],
        );
        for p in &pulls {
            let con = if p.fixed { "fixed" } else { p.constraint };
            t.row(vec![
                model.par_names()[p.par].clone(),
                fmt_fitted(p.value, p.error),
                fmt(p.error),
                fmt(p.prefit_sigma),
                p.pull
                    .map_or("-".into(), |x| fmt_fitted(x, p.pull_error.unwrap_or(0.0))),
                opt_fmt(p.pull_error),
                con.into(),
            ]);
        }
        t.render()
    })?;
    Ok(finish(&post, a.plot.as_deref()))
}

fn refit_progress() -> impl FnMut(usize, usize) {
    let mut bar: Option<Option<indicatif::ProgressBar>> = None;
    move |done, total| {
        let b = bar.get_or_insert_with(|| super::progress::bar(total as u64, "refits", "impacts"));
        if let Some(b) = b {
            b.set_position(done as u64);
            if done >= total {
                b.finish_and_clear();
            }
        }
    }
}

fn impact_json<M: Likelihood>(model: &M, r: &ImpactRow, pulls: &[Pull]) -> Value {
    let k = r.par();
    let p = &pulls[k];
    let mut v = json!({
        "name": model.par_names()[k],
        "value": num(p.value),
        "error": num(p.error),
        "prefit_sigma": num(p.prefit_sigma),
        "pull": opt(p.pull),
        "hessian": num(r.hessian.hessian),
        "hessian_prefit": num(r.hessian.hessian_prefit),
        "nsbi_gamma": num(r.hessian.nsbi_gamma),
    });
    if let Some(rf) = &r.refit {
        let mut details = serde_json::Map::new();
        for kind in ShiftKind::ALL {
            let s = rf.get(kind);
            v[format!("refit_{}", kind.key())] = num(s.impact);
            details.insert(
                kind.key().to_string(),
                json!({
                    "value": num(s.value),
                    "target": num(s.target),
                    "clipped": s.clipped,
                    "fitted": s.fitted,
                    "converged": s.converged,
                    "poi": num(s.poi),
                }),
            );
        }
        v["refits"] = Value::Object(details);
    }
    v
}

/// `gradfit impacts`.
pub fn impacts(a: &ImpactsArgs) -> Result<i32> {
    if let Some(p) = &a.plot {
        check_plot_path(p)?;
    }
    let loaded = a.model.load_any()?;
    crate::with_model!(&loaded.model, m => impacts_model(a, m))
}

fn impacts_model<M: ModelInfo>(a: &ImpactsArgs, model: &M) -> Result<i32> {
    let engine = model.engine(&a.model.device)?;
    let poi = model.poi().ok_or_else(|| {
        Error::input(format!(
            "impacts: the model has no parameter of interest (measurement '{}' names none in the model; \
             is the signal patch applied with -p?)",
            model.label()
        ))
    })?;
    let post = best_fit(&*engine, model, &a.fit)?;
    let sig = report::prefit_sigmas(model, &post.fixed);
    let hess = report::hessian_impacts(&post, poi, &sig);
    let mut refit_time = None;
    let refit = if a.method == Method::Hessian {
        None
    } else {
        let pars: Vec<usize> = hess.iter().map(|h| h.par).collect();
        let mut refit_opts = report::RefitOptions::default();
        refit_opts.fit.max_iter = a.fit.max_iter;
        let t0 = std::time::Instant::now();
        let mut progress = refit_progress();
        let r = report::refit_impacts_with(
            &*engine,
            model,
            model.observed(),
            &post,
            &report::RefitPlan {
                poi,
                pars: &pars,
                prefit_sigma: &sig,
            },
            &refit_opts,
            &mut progress,
        )?;
        refit_time = Some(t0.elapsed().as_secs_f64());
        Some(r)
    };
    let all_shifts: Vec<report::RefitShift> = refit
        .iter()
        .flatten()
        .flat_map(|r| r.shifts.iter().copied())
        .filter(|s| s.fitted)
        .collect();
    let n_refits = all_shifts.len();
    let failed = all_shifts.iter().filter(|s| !s.converged).count();
    let clipped = all_shifts.iter().filter(|s| s.clipped).count();
    let mut rows = report::rank(hess, refit);
    let n_all = rows.len();
    if let Some(n) = a.top {
        rows.truncate(n as usize);
    }
    let pulls = report::pulls(model, &post);
    let poi_name = model.par_names()[poi].clone();
    let bound_note = post.at_bound(poi).then(|| {
        format!(
            "{poi_name} = {} sits at its bound: refits that would push it beyond do not move it (linearised impacts ignore the bound)",
            fmt(post.x[poi])
        )
    });
    let mut v = fit_header(&post);
    v["poi"] = json!(poi_name);
    v["poi_value"] = num(post.x[poi]);
    v["poi_error"] = num(post.error(poi));
    v["method"] = json!(match a.method {
        Method::Hessian => "hessian",
        Method::Refit => "refit",
        Method::Both => "both",
    });
    v["n_parameters_ranked"] = json!(n_all);
    v["poi_at_bound"] = json!(post.at_bound(poi));
    if let Some(t) = refit_time {
        v["refits"] = json!({
            "count": n_refits,
            "not_converged": failed,
            "clipped_at_bound": clipped,
            "seconds": t,
        });
    }
    v["parameters"] = Value::Array(rows.iter().map(|r| impact_json(model, r, &pulls)).collect());
    if let Some(path) = &a.plot {
        let top = a.top.map(|n| n as usize).unwrap_or(20);
        let mut pl = RankingPlot::new(
            model.par_names(),
            &poi_name,
            &rows,
            &pulls,
            top,
            &format!("Impacts on {poi_name} ({})", model.label()),
        );
        pl.note = bound_note.clone();
        plot::write(&pl, path)?;
    }
    a.out.emit(&v, || {
        let mut s = format!(
            "{poi_name} = {} +- {}   (twice_nll {}, converged {})\n\n",
            fmt(post.x[poi]),
            fmt(post.error(poi)),
            fmt(post.twice_nll),
            post.converged
        );
        let has_refit = rows.iter().any(|r| r.refit.is_some());
        let mut head = vec!["#", "parameter", "hessian", "hessian pre-fit", "nsbi gamma"];
        if has_refit {
            head.extend(["pre-fit up", "pre-fit down", "post-fit up", "post-fit down"]);
        }
        let right: Vec<bool> = head.iter().enumerate().map(|(i, _)| i != 1).collect();
        let mut t = Table::new(&head, &right);
        for (i, r) in rows.iter().enumerate() {
            let mut cells = vec![
                (i + 1).to_string(),
                model.par_names()[r.par()].clone(),
                fmt(r.hessian.hessian),
                fmt(r.hessian.hessian_prefit),
                fmt(r.hessian.nsbi_gamma),
            ];
            if let Some(rf) = &r.refit {
                for k in ShiftKind::ALL {
                    let x = rf.get(k);
                    let mark = if x.clipped { "*" } else { "" };
                    let bad = if x.converged { "" } else { "!" };
                    cells.push(format!("{}{mark}{bad}", fmt(x.impact)));
                }
            }
            t.row(cells);
        }
        s.push_str(&t.render());
        if let Some(n) = &bound_note {
            s.push_str(&format!("\nnote: {n}\n"));
        }
        if let Some(tm) = refit_time {
            s.push_str(&format!(
                "\n{} refits in {:.2} s ({} not converged); * = shift clipped at a parameter bound, ! = refit not converged\n",
                n_refits,
                tm,
                failed
            ));
        }
        s
    })?;
    let code = finish(&post, a.plot.as_deref());
    if failed > 0 {
        eprintln!("error: {failed} of the refits did not converge (marked in the output)");
        return Ok(EXIT_NOT_CONVERGED);
    }
    Ok(code)
}

/// `gradfit corr`.
pub fn corr(a: &CorrArgs) -> Result<i32> {
    if let Some(p) = &a.plot {
        check_plot_path(p)?;
    }
    let loaded = a.model.load_any()?;
    crate::with_model!(&loaded.model, m => corr_model(a, m))
}

fn corr_model<M: ModelInfo>(a: &CorrArgs, model: &M) -> Result<i32> {
    let engine = model.engine(&a.model.device)?;
    let post = best_fit(&*engine, model, &a.fit)?;
    let p = model.n_pars();
    let c = post.correlation();
    let keep = report::correlated_parameters(&post, &c, a.threshold);
    let n = keep.len();
    let sub: Vec<f64> = keep
        .iter()
        .flat_map(|&i| keep.iter().map(move |&j| (i, j)))
        .map(|(i, j)| c[i * p + j])
        .collect();
    let names: Vec<String> = keep.iter().map(|&i| model.par_names()[i].clone()).collect();
    let pruned: Vec<&String> = (0..p)
        .filter(|i| !keep.contains(i))
        .map(|i| &model.par_names()[i])
        .collect();
    let mut v = fit_header(&post);
    v["threshold"] = json!(a.threshold);
    v["par_names"] = json!(names);
    v["correlation"] = matrix(&sub, n);
    v["pruned"] = json!(pruned);
    if let Some(path) = &a.plot {
        let pl = CorrelationPlot {
            names: names.clone(),
            corr: sub.clone(),
            threshold: a.threshold,
            title: if a.threshold > 0.0 {
                format!(
                    "Correlations ({}; parameters with some |correlation| \u{2265} {})",
                    model.label(),
                    a.threshold
                )
            } else {
                format!("Correlations ({})", model.label())
            },
        };
        plot::write(&pl, path)?;
    }
    a.out.emit(&v, || {
        let cut = a.threshold.max(0.1);
        let mut pairs: Vec<(f64, usize, usize)> = Vec::new();
        for x in 0..n {
            for y in x + 1..n {
                let r = sub[x * n + y];
                if r.abs() >= cut {
                    pairs.push((r, x, y));
                }
            }
        }
        pairs.sort_by(|a, b| b.0.abs().total_cmp(&a.0.abs()));
        let mut s = format!(
            "{n} parameters kept ({} pruned or fixed); pairs with |correlation| >= {cut}:\n\n",
            pruned.len()
        );
        let mut t = Table::new(
            &["correlation", "parameter", "parameter"],
            &[true, false, false],
        );
        for (r, x, y) in pairs {
            t.row(vec![format!("{r:.4}"), names[x].clone(), names[y].clone()]);
        }
        s.push_str(&t.render());
        s
    })?;
    Ok(finish(&post, a.plot.as_deref()))
}
