//! `gradfit limit`: upper limits on the POI, asymptotic (root finding or a
//! scan) or from toys (run here, or read with `--from-toys`).

use super::infer_cmds::{ToyArgs, print_warnings, toys_for};
use super::infer_plots::{self, ClsPoint};
use super::progress;
use super::table::fmt;
use super::toy_summary::{opt, toy_cls_json};
use super::{ModelArgs, OutputArgs, check_poi_value, num, nums};
use crate::error::{Error, Result};
use crate::fit::FitOptions;
use crate::infer::limits::{LimitMethod, upper_limit};
use crate::infer::scan::parse_range;
use crate::infer::toy_limit;
use crate::infer::toys::{self, toy_cls};
use crate::infer::{AsymptoticCalculator, Problem, TestStat};
use crate::model::ModelInfo;
use clap::Args;
use serde_json::{Value, json};
use std::path::PathBuf;

/// Arguments of `gradfit limit`.
#[derive(Args, Debug)]
pub struct LimitArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Confidence level.
    #[arg(long, default_value_t = 0.95)]
    cl: f64,
    /// Bracket LO:HI for the root finder (default: the POI bounds, lower end at least 1e-3).
    #[arg(long, value_name = "LO:HI", allow_hyphen_values = true)]
    bracket: Option<String>,
    /// Linear scan LO:HI:N with interpolation instead of root finding (required shape for toys).
    #[arg(long, value_name = "LO:HI:N", allow_hyphen_values = true)]
    scan: Option<String>,
    /// Test statistic: qtilde or q.
    #[arg(long, default_value = "qtilde", value_parser = parse_limit_stat)]
    test_stat: TestStat,
    #[command(flatten)]
    toys: ToyArgs,
    /// Toy-based limit from toy files of `gradfit toys` at several POI values
    /// (shards of one value are merged); no toys are run.
    #[arg(long = "from-toys", value_name = "FILE", num_args = 1.., conflicts_with_all = ["scan", "bracket", "toys"])]
    from_toys: Vec<PathBuf>,
    /// Draw CLs against the POI with the expected band to FILE (.svg or .png).
    #[arg(long, value_name = "FILE")]
    plot: Option<PathBuf>,
    #[command(flatten)]
    pub(super) out: OutputArgs,
}

fn parse_limit_stat(s: &str) -> std::result::Result<TestStat, String> {
    let t: TestStat = s.parse()?;
    match t {
        TestStat::Q | TestStat::QTilde => Ok(t),
        _ => Err(format!("'{s}': limits use qtilde or q")),
    }
}

fn parse_pair(s: &str) -> Result<(f64, f64)> {
    let (a, b) = s
        .split_once(':')
        .ok_or_else(|| Error::input(format!("expected LO:HI, got '{s}'")))?;
    let lo: f64 = a
        .trim()
        .parse()
        .map_err(|_| Error::input(format!("bad LO in '{s}'")))?;
    let hi: f64 = b
        .trim()
        .parse()
        .map_err(|_| Error::input(format!("bad HI in '{s}'")))?;
    if !(lo < hi) {
        return Err(Error::input(format!("need LO < HI in '{s}'")));
    }
    Ok((lo, hi))
}

/// `gradfit limit`.
pub fn limit(a: &LimitArgs) -> Result<i32> {
    let loaded = a
        .model
        .load_any_with(a.toys.n()?.is_some() || !a.from_toys.is_empty())?;
    crate::with_model!(&loaded.model, m => limit_model(a, m, &loaded.digest))
}

fn limit_model<M: ModelInfo>(a: &LimitArgs, model: &M, digest: &str) -> Result<i32> {
    infer_plots::check(a.plot.as_deref())?;
    let engine = model.engine(&a.model.device)?;
    let p = Problem::new(model, model.observed())?.with_fitter(&*engine);
    let poi = p.poi;
    let (plo, phi) = p.poi_bounds();
    let poi_name = model.par_names()[p.poi].clone();
    let mut plot_points: Vec<ClsPoint> = Vec::new();
    let from_files = if a.from_toys.is_empty() {
        None
    } else {
        Some(super::limit_toys::grid_from_files(
            &a.from_toys,
            digest,
            a.test_stat,
        )?)
    };
    let v = if let Some(points) = from_files {
        toy_limit_result(a, points, phi, &poi_name, &mut plot_points)
    } else if let Some(n) = a.toys.n()? {
        // toys: CLs on a grid, crossing by linear interpolation; the automatic
        // grid grows (inside the POI bounds) until every band is bracketed
        let alpha = 1.0 - a.cl;
        let given = a.scan.is_some();
        let mut grid = match &a.scan {
            Some(s) => {
                let g = parse_range(s).map_err(Error::Input)?;
                for &mu in &g {
                    check_poi_value(model, p.poi, mu, "--scan")?;
                }
                g
            }
            None => {
                let calc =
                    AsymptoticCalculator::new(p.clone(), a.test_stat, &FitOptions::default())?;
                let ul = upper_limit(
                    &calc,
                    a.cl,
                    &LimitMethod::Bracket {
                        lo: plo.max(1e-3),
                        hi: phi,
                        rtol: 1e-6,
                    },
                )?;
                let g = toy_limit::initial_grid(&ul, (plo, phi), 12);
                eprintln!(
                    "note: toy limit grid [{}, {}] in {} points from the asymptotic band (--scan sets it)",
                    fmt(g[0]),
                    fmt(g[g.len() - 1]),
                    g.len()
                );
                g
            }
        };
        let mut points: Vec<toy_limit::GridPoint> = Vec::new();
        let mut todo = grid.clone();
        // one bar for the whole limit, counting toys over every grid point
        let pb = progress::bar(n as u64 * grid.len() as u64, "toys", "toy limit");
        for round in 0..4 {
            if let Some(pb) = &pb {
                pb.set_length(n as u64 * (points.len() + todo.len()) as u64);
            }
            for &mu in &todo {
                let at = pb.as_ref().map(|b| (b, n as u64 * points.len() as u64));
                if let Some(pb) = &pb {
                    pb.set_message(format!("toy limit, mu = {}", progress::short(mu)));
                }
                let run = toys_for(
                    &*engine,
                    &p,
                    &a.toys.settings(mu, a.test_stat, n, digest),
                    at,
                )?;
                points.push(toy_limit::GridPoint {
                    mu,
                    cls: toy_cls(&run)?,
                });
            }
            points.sort_by(|x, y| x.mu.total_cmp(&y.mu));
            let (below, above) = toy_limit::unbracketed(&points, alpha);
            if given || round == 3 || !(below || above) {
                break;
            }
            todo = Vec::new();
            if below {
                todo.extend(toy_limit::extension(&grid, (plo, phi), false, 4));
            }
            if above {
                todo.extend(toy_limit::extension(&grid, (plo, phi), true, 4));
            }
            if todo.is_empty() {
                break;
            }
            eprintln!(
                "note: a band is not bracketed yet; adding {} grid points ({})",
                todo.len(),
                todo.iter().map(|x| fmt(*x)).collect::<Vec<_>>().join(", ")
            );
            grid.extend(&todo);
            grid.sort_by(f64::total_cmp);
        }
        if let Some(pb) = pb {
            pb.finish_and_clear();
        }
        toy_limit_result(a, points, phi, &poi_name, &mut plot_points)
    } else {
        let calc = AsymptoticCalculator::new(p, a.test_stat, &FitOptions::default())?;
        print_warnings(&calc.warnings);
        let method = match (&a.scan, &a.bracket) {
            (Some(s), _) => {
                let grid = parse_range(s).map_err(Error::Input)?;
                for &mu in &grid {
                    check_poi_value(model, poi, mu, "--scan")?;
                }
                LimitMethod::Scan { grid }
            }
            (None, Some(b)) => {
                let (lo, hi) = parse_pair(b)?;
                check_poi_value(model, poi, lo, "--bracket")?;
                check_poi_value(model, poi, hi, "--bracket")?;
                LimitMethod::Bracket { lo, hi, rtol: 1e-9 }
            }
            (None, None) => LimitMethod::Bracket {
                lo: plo.max(1e-3),
                hi: phi,
                rtol: 1e-9,
            },
        };
        let ul = upper_limit(&calc, a.cl, &method)?;
        print_warnings(&ul.messages);
        if a.plot.is_some() {
            plot_points = if a.scan.is_some() {
                ul.points
                    .iter()
                    .map(|h| (h.mu, Some(h.cls_obs), h.cls_exp.map(Some)))
                    .collect()
            } else {
                let top = ul.exp[4].into_iter().chain(ul.obs).fold(1.0f64, f64::max);
                infer_plots::cls_grid(&calc, plo.max(0.0), (1.5 * top).min(phi), 31)?
            };
        }
        json!({
            "obs": ul.obs.map(num).unwrap_or(Value::Null),
            "exp": ul.exp.iter().map(|x| x.map(num).unwrap_or(Value::Null)).collect::<Vec<_>>(),
            "cl": a.cl,
            "calculator": "asymptotics",
            "n_evaluations": ul.points.len(),
            "points": ul.points.iter().map(|h| json!({"mu": h.mu, "cls_obs": num(h.cls_obs), "cls_exp": nums(&h.cls_exp)})).collect::<Vec<_>>(),
            "messages": ul.messages,
        })
    };
    if let Some(path) = &a.plot {
        let calculator = v["calculator"].as_str().unwrap_or("");
        let (obs, exp) = (v["obs"].as_f64(), v["exp"][2].as_f64());
        infer_plots::limit(path, &poi_name, a.cl, calculator, plot_points, obs, exp)?;
    }
    a.out.emit(&v, || {
        let e = |k: usize| v["exp"][k].as_f64();
        format!(
            "{:.0}% CL upper limits on the POI ({})\n\nobserved   {}\nexpected   -2s {}  -1s {}  median {}  +1s {}  +2s {}\n",
            100.0 * a.cl,
            v["calculator"].as_str().unwrap_or(""),
            opt(v["obs"].as_f64()),
            opt(e(0)),
            opt(e(1)),
            opt(e(2)),
            opt(e(3)),
            opt(e(4))
        )
    })?;
    let missing = v["obs"].is_null()
        || v["exp"]
            .as_array()
            .is_some_and(|e| e.iter().any(|x| x.is_null()));
    if missing {
        eprintln!(
            "error: some limits lie outside the scanned range (see the messages); widen --bracket or --scan"
        );
        return Ok(super::EXIT_NOT_CONVERGED);
    }
    Ok(0)
}

/// The toy-based limit's JSON from CLs on a grid (`points`, sorted by POI),
/// with warnings where a band is not bracketed; fills the plot's points.
fn toy_limit_result(
    a: &LimitArgs,
    points: Vec<toy_limit::GridPoint>,
    phi: f64,
    poi_name: &str,
    plot_points: &mut Vec<ClsPoint>,
) -> Value {
    let alpha = 1.0 - a.cl;
    let (obs, exp) = toy_limit::crossings(&points, alpha);
    let (below, above) = toy_limit::unbracketed(&points, alpha);
    if above {
        eprintln!(
            "warning: a band's CLs is still above {} at mu = {} (the POI's upper bound is {}); \
             widen it with --bounds {poi_name}=LO:HI or give --scan",
            fmt(alpha),
            fmt(points[points.len() - 1].mu),
            phi
        );
    }
    if below {
        eprintln!(
            "warning: a band's CLs is already below {} at mu = {}; give a lower --scan start",
            fmt(alpha),
            fmt(points[0].mu)
        );
    }
    let rows: Vec<(f64, toys::ToyCls)> = points.into_iter().map(|g| (g.mu, g.cls)).collect();
    *plot_points = rows
        .iter()
        .map(|(mu, c)| (*mu, c.cls_obs, c.cls_exp))
        .collect();
    let n = rows.iter().map(|(_, c)| c.n_toys).min().unwrap_or(0);
    let exp: Vec<Value> = exp
        .iter()
        .map(|x| x.map(num).unwrap_or(Value::Null))
        .collect();
    json!({
        "obs": obs.map(num).unwrap_or(Value::Null),
        "exp": exp,
        "cl": a.cl,
        "calculator": "toys",
        "n_toys": n,
        "points": rows.iter().map(|(mu, c)| { let mut j = toy_cls_json(c); j["mu"] = num(*mu); j }).collect::<Vec<_>>(),
    })
}
