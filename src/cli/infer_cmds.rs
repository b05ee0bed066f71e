//! `cls`, `limit`, `discovery`, `scan`, `toys` and `merge`.

use super::infer_plots;
use super::progress;
use super::table::{Table, fmt};
use super::toy_summary::{opt, summary, toy_cls_json, toy_cls_undefined, undefined_exit};
use super::{ModelArgs, OutputArgs, check_poi_value, num, nums, par_index};
use crate::device::Engine;
use crate::error::{Error, Result};
use crate::fit::FitOptions;
use crate::infer::scan::{default_grid, parse_range, profile_scan};
use crate::infer::shards::merge;
use crate::infer::toys::{self, ToyRun, ToySettings, toy_cls};
use crate::infer::{AsymptoticCalculator, Problem, TestStat};
use crate::model::{Likelihood, ModelInfo};
use clap::Args;
use serde_json::{Value, json};
use std::path::PathBuf;

/// Toy options shared by `cls`, `limit` and `discovery`.
#[derive(Args, Debug, Clone)]
pub struct ToyArgs {
    /// Use N pseudo-experiments per hypothesis instead of the asymptotic formulae.
    #[arg(long, value_name = "N")]
    toys: Option<u32>,
    /// Seed of the counter-based random streams (same seed, same toys).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Toys fitted per batch (2 fits each); results do not depend on it.
    #[arg(long, default_value_t = 512)]
    batch: usize,
    /// pyhf's name for the choice: asymptotics, or toybased (with --toys N,
    /// 2000 per hypothesis when not given, as pyhf).
    #[arg(long, value_parser = ["asymptotics", "toybased"])]
    calctype: Option<String>,
}

impl ToyArgs {
    /// Toys per hypothesis, or None for the asymptotic formulae.
    pub(super) fn n(&self) -> Result<Option<u32>> {
        match (self.calctype.as_deref(), self.toys) {
            (Some("asymptotics"), Some(n)) => Err(Error::input(format!(
                "--calctype asymptotics and --toys {n} contradict each other"
            ))),
            (Some("toybased"), None) => Ok(Some(2000)),
            (_, n) => Ok(n),
        }
    }
}

/// Arguments of `gradfit cls`.
#[derive(Args, Debug)]
pub struct ClsArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Tested POI value (default 1; q0 always tests 0, as pyhf).
    #[arg(long, visible_alias = "test-poi", allow_negative_numbers = true)]
    mu: Option<f64>,
    /// Test statistic: qtilde, q or q0.
    #[arg(long, default_value = "qtilde", value_parser = parse_cls_stat)]
    test_stat: TestStat,
    #[command(flatten)]
    toys: ToyArgs,
    #[command(flatten)]
    pub(super) out: OutputArgs,
}

/// The tested POI value: q0 tests 0 whatever was given (with a warning, as pyhf).
pub(super) fn tested_mu(stat: TestStat, mu: Option<f64>) -> f64 {
    match (stat, mu) {
        (TestStat::Q0, Some(m)) if m != 0.0 => {
            eprintln!("warning: q0 tests mu = 0 (the discovery hypothesis); --mu {m} ignored");
            0.0
        }
        (TestStat::Q0, _) => 0.0,
        (_, m) => m.unwrap_or(1.0),
    }
}

/// Arguments of `gradfit discovery`.
#[derive(Args, Debug)]
pub struct DiscoveryArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    toys: ToyArgs,
    #[command(flatten)]
    pub(super) out: OutputArgs,
}

/// Arguments of `gradfit scan`.
#[derive(Args, Debug)]
pub struct ScanArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Parameter to scan (default: the POI).
    #[arg(long)]
    par: Option<String>,
    /// Grid LO:HI:N (default: the best fit +- 3 of its uncertainties in 11 points, as cabinetry).
    #[arg(long, value_name = "LO:HI:N", allow_hyphen_values = true)]
    range: Option<String>,
    /// Draw the scan to FILE (.svg or .png).
    #[arg(long, value_name = "FILE")]
    plot: Option<PathBuf>,
    #[command(flatten)]
    pub(super) out: OutputArgs,
}

/// Arguments of `gradfit toys`.
#[derive(Args, Debug)]
pub struct ToysArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Tested POI value (q0 always tests 0).
    #[arg(long, visible_alias = "test-poi", allow_negative_numbers = true)]
    mu: f64,
    /// Toys per hypothesis in the whole run.
    #[arg(long = "toys", visible_alias = "n", value_name = "N")]
    n: u32,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Run only shard i of N (e.g. 2/4); `gradfit merge` joins the shards.
    #[arg(long, value_name = "i/N", value_parser = parse_shard)]
    shard: Option<(u32, u32)>,
    /// Test statistic: qtilde, q or q0.
    #[arg(long, default_value = "qtilde", value_parser = parse_cls_stat)]
    test_stat: TestStat,
    /// Toys fitted per batch.
    #[arg(long, default_value_t = 512)]
    batch: usize,
    /// Output file (written atomically).
    #[arg(short = 'o', long = "output", visible_aliases = ["out", "output-file"], value_name = "FILE")]
    pub(super) out: PathBuf,
    /// Print JSON on stdout instead of a table.
    #[arg(long)]
    json: bool,
    /// Draw the test-statistic distributions against their asymptotic form to FILE (.svg or .png).
    #[arg(long, value_name = "FILE")]
    plot: Option<PathBuf>,
}

/// Arguments of `gradfit merge`.
#[derive(Args, Debug)]
pub struct MergeArgs {
    /// Shard files of one toy run.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Output file (written atomically).
    #[arg(short = 'o', long = "output", visible_aliases = ["out", "output-file"], value_name = "FILE")]
    pub(super) out: PathBuf,
    /// Print JSON on stdout instead of a table.
    #[arg(long)]
    json: bool,
}

fn parse_cls_stat(s: &str) -> std::result::Result<TestStat, String> {
    let t: TestStat = s.parse()?;
    match t {
        TestStat::Q0 | TestStat::Q | TestStat::QTilde => Ok(t),
        _ => Err(format!(
            "'{s}': CLs needs a one-sided statistic (qtilde, q or q0)"
        )),
    }
}

fn parse_shard(s: &str) -> std::result::Result<(u32, u32), String> {
    let (i, n) = s
        .split_once('/')
        .ok_or_else(|| format!("expected i/N, got '{s}'"))?;
    let i: u32 = i
        .trim()
        .parse()
        .map_err(|_| format!("bad shard index in '{s}'"))?;
    let n: u32 = n
        .trim()
        .parse()
        .map_err(|_| format!("bad shard count in '{s}'"))?;
    if n == 0 || i >= n {
        return Err(format!("shard '{s}': need 0 <= i < N"));
    }
    Ok((i, n))
}

pub(super) fn print_warnings(ws: &[String]) {
    for w in ws {
        eprintln!("warning: {w}");
    }
}

/// Run the toys of `settings`, with a progress bar counting toys: its own,
/// or `outer` (a bar over several runs) advanced from `offset`.
pub(super) fn toys_for<M: Likelihood>(
    engine: &dyn Engine<M>,
    p: &Problem<M>,
    settings: &ToySettings,
    outer: Option<(&indicatif::ProgressBar, u64)>,
) -> Result<ToyRun> {
    let (lo, hi) = toys::shard_range(settings.n_toys, settings.shard)?;
    let n = (hi - lo) as u64;
    let own = match outer {
        Some(_) => None,
        None => progress::bar(
            n,
            "toys",
            &format!("toys at mu = {}", progress::short(settings.mu)),
        ),
    };
    let (pb, offset) = match outer {
        Some((b, o)) => (Some(b), o),
        None => (own.as_ref(), 0),
    };
    // the runner counts fits of both hypotheses; the bar counts toys
    let report = |done: u64, total: u64| {
        if let Some(pb) = pb {
            pb.set_position(offset + done * n / total.max(1));
        }
    };
    let run = engine.run_toys(p, settings, &FitOptions::default(), &report);
    if let Some(pb) = own {
        pb.finish_and_clear();
    }
    run
}

impl ToyArgs {
    pub(super) fn settings(
        &self,
        mu: f64,
        test_stat: TestStat,
        n: u32,
        digest: &str,
    ) -> ToySettings {
        ToySettings {
            mu,
            test_stat,
            n_toys: n,
            seed: self.seed,
            shard: None,
            batch: self.batch,
            model_digest: digest.to_string(),
            toy_max_iter: None,
        }
    }
}

/// `gradfit cls`.
pub fn cls(a: &ClsArgs) -> Result<i32> {
    let loaded = a.model.load_any_with(a.toys.n()?.is_some())?;
    crate::with_model!(&loaded.model, m => cls_model(a, m, &loaded.digest))
}

fn cls_model<M: ModelInfo>(a: &ClsArgs, model: &M, digest: &str) -> Result<i32> {
    let engine = model.engine(&a.model.device)?;
    let p = Problem::new(model, model.observed())?.with_fitter(&*engine);
    let mu = tested_mu(a.test_stat, a.mu);
    check_poi_value(model, p.poi, mu, "--mu")?;
    let mut undefined = None;
    let v = if let Some(n) = a.toys.n()? {
        print_warnings(&a.test_stat.warnings(p.poi_bounds(), mu));
        let run = toys_for(
            &*engine,
            &p,
            &a.toys.settings(mu, a.test_stat, n, digest),
            None,
        )?;
        let c = toy_cls(&run)?;
        if c.n_failed > 0 {
            eprintln!(
                "warning: {} of {} toys had failed fits and were left out",
                c.n_failed,
                2 * n
            );
        }
        undefined = toy_cls_undefined(&c);
        let mut v = toy_cls_json(&c);
        v["mu"] = num(mu);
        v["test_stat"] = json!(a.test_stat);
        v["calculator"] = json!("toys");
        v
    } else {
        let calc = AsymptoticCalculator::new(p, a.test_stat, &FitOptions::default())?;
        print_warnings(&calc.warnings);
        let h = calc.hypotest(mu)?;
        json!({
            "cls_obs": num(h.cls_obs),
            "cls_exp": nums(&h.cls_exp),
            "clsb_obs": num(h.clsb_obs),
            "clb_obs": num(h.clb_obs),
            "clsb_exp": nums(&h.clsb_exp),
            "clb_exp": nums(&h.clb_exp),
            "test_stat_obs": num(h.test_stat_obs),
            "test_stat_asimov": num(h.test_stat_asimov),
            "mu_hat": num(h.mu_hat),
            "mu": num(mu),
            "test_stat": a.test_stat,
            "calculator": "asymptotics",
        })
    };
    // pyhf's keys, so that scripts parsing `pyhf cls` output keep working
    let mut v = v;
    v["CLs_obs"] = v["cls_obs"].clone();
    v["CLs_exp"] = v["cls_exp"].clone();
    a.out.emit(&v, || {
        let g = |k: &str| v[k].as_f64().map(fmt).unwrap_or_else(|| "-".into());
        let exp: Vec<String> =
            v["cls_exp"].as_array().map(|e| e.iter().map(|x| x.as_f64().map(fmt).unwrap_or("-".into())).collect()).unwrap_or_default();
        let mut s = format!(
            "{} CLs at mu = {} ({})\n\nobserved CLs   {}\nCLs+b, CLb     {}, {}\ntest statistic {}\nexpected CLs   -2s {}  -1s {}  median {}  +1s {}  +2s {}\n",
            v["calculator"].as_str().unwrap_or(""),
            mu,
            a.test_stat,
            g("cls_obs"),
            g("clsb_obs"),
            g("clb_obs"),
            g("test_stat_obs"),
            exp[0],
            exp[1],
            exp[2],
            exp[3],
            exp[4]
        );
        if let Some(n) = v.get("n_toys") {
            s.push_str(&format!("toys           {} per hypothesis, {} failed\n", n, v["n_failed"]));
        }
        s
    })?;
    undefined_exit(undefined)
}

/// `gradfit discovery`.
pub fn discovery(a: &DiscoveryArgs) -> Result<i32> {
    let loaded = a.model.load_any_with(a.toys.n()?.is_some())?;
    crate::with_model!(&loaded.model, m => discovery_model(a, m, &loaded.digest))
}

fn discovery_model<M: ModelInfo>(a: &DiscoveryArgs, model: &M, digest: &str) -> Result<i32> {
    let engine = model.engine(&a.model.device)?;
    let p = Problem::new(model, model.observed())?.with_fitter(&*engine);
    let z = |p: f64| -crate::infer::normal_quantile(p);
    let v = if let Some(n) = a.toys.n()? {
        let run = toys_for(
            &*engine,
            &p,
            &a.toys.settings(0.0, TestStat::Q0, n, digest),
            None,
        )?;
        let c = toy_cls(&run)?;
        let p0 = c.clsb_obs;
        let p0e = c.cls_exp[2];
        json!({
            "p0_obs": num(p0), "p0_exp": p0e.map(num).unwrap_or(Value::Null),
            "z_obs": num(z(p0)), "z_exp": p0e.map(|x| num(z(x))).unwrap_or(Value::Null),
            "q0_obs": num(c.test_stat_obs), "calculator": "toys", "n_toys": n, "n_failed": c.n_failed,
        })
    } else {
        let calc = AsymptoticCalculator::new(p, TestStat::Q0, &FitOptions::default())?;
        print_warnings(&calc.warnings);
        let d = calc.discovery()?;
        json!({
            "p0_obs": num(d.p0_obs), "p0_exp": num(d.p0_exp), "z_obs": num(d.z_obs), "z_exp": num(d.z_exp),
            "q0_obs": num(d.q0_obs), "q0_asimov": num(d.q0_asimov), "mu_hat": num(d.mu_hat), "calculator": "asymptotics",
        })
    };
    a.out.emit(&v, || {
        let g = |k: &str| opt(v[k].as_f64());
        format!(
            "discovery test (q0, {})\n\np0 observed {}   Z = {}\np0 expected {}   Z = {}\n",
            v["calculator"].as_str().unwrap_or(""),
            g("p0_obs"),
            g("z_obs"),
            g("p0_exp"),
            g("z_exp")
        )
    })?;
    Ok(0)
}

/// `gradfit scan`.
pub fn scan(a: &ScanArgs) -> Result<i32> {
    let loaded = a.model.load_any()?;
    crate::with_model!(&loaded.model, m => scan_model(a, m))
}

fn scan_model<M: ModelInfo>(a: &ScanArgs, model: &M) -> Result<i32> {
    let index = match &a.par {
        Some(n) => par_index(model, n)?,
        None => model
            .poi()
            .ok_or_else(|| Error::input("the model has no POI: choose the parameter with --par"))?,
    };
    infer_plots::check(a.plot.as_deref())?;
    let engine = model.engine(&a.model.device)?;
    let grid = match &a.range {
        Some(r) => parse_range(r).map_err(Error::Input)?,
        None => {
            let spec = crate::fit::FitSpec::from_model(model);
            let opts = FitOptions::default();
            let (g, note) =
                default_grid(&*engine, model, model.observed(), &spec, index, 11, &opts)?;
            eprintln!(
                "note: scanning {} from {} to {} in 11 points (best fit +- 3 sigma; --range sets it)",
                model.par_names()[index],
                crate::report::plot_infer::short(g[0]),
                crate::report::plot_infer::short(g[g.len() - 1])
            );
            if let Some(n) = note {
                eprintln!("note: {n}");
            }
            g
        }
    };
    let s = profile_scan(
        &*engine,
        model,
        model.observed(),
        &crate::fit::FitSpec::from_model(model),
        index,
        &grid,
        &FitOptions::default(),
    )?;
    print_warnings(&s.messages);
    if let Some(path) = &a.plot {
        infer_plots::scan(path, &s)?;
    }
    let v = json!({
        "parameter": s.parameter,
        "best_value": num(s.best_value),
        "best_twice_nll": num(s.best_twice_nll),
        "par_names": model.par_names(),
        "points": s.points.iter().map(|p| json!({
            "value": p.value, "twice_nll": num(p.twice_nll), "delta_twice_nll": num(p.delta_twice_nll),
            "converged": p.converged, "pars": nums(&p.pars),
        })).collect::<Vec<_>>(),
        "messages": s.messages,
    });
    a.out.emit(&v, || {
        let mut t = Table::new(
            &[&s.parameter, "twice_nll", "delta", "converged"],
            &[true, true, true, false],
        );
        for p in &s.points {
            t.row(vec![
                fmt(p.value),
                fmt(p.twice_nll),
                fmt(p.delta_twice_nll),
                p.converged.to_string(),
            ]);
        }
        format!(
            "profile scan of {} (best fit {} at twice_nll {})\n\n{}",
            s.parameter,
            fmt(s.best_value),
            fmt(s.best_twice_nll),
            t.render()
        )
    })?;
    Ok(if s.points.iter().all(|p| p.converged) {
        0
    } else {
        super::EXIT_NOT_CONVERGED
    })
}

/// `gradfit toys`.
pub fn toys_cmd(a: &ToysArgs) -> Result<i32> {
    let loaded = a.model.load_any_with(true)?;
    crate::with_model!(&loaded.model, m => toys_model(a, m, &loaded.digest))
}

fn toys_model<M: ModelInfo>(a: &ToysArgs, model: &M, digest: &str) -> Result<i32> {
    infer_plots::check(a.plot.as_deref())?;
    let engine = model.engine(&a.model.device)?;
    let p = Problem::new(model, model.observed())?.with_fitter(&*engine);
    let mu = tested_mu(a.test_stat, Some(a.mu));
    check_poi_value(model, p.poi, mu, "--mu")?;
    print_warnings(&a.test_stat.warnings(p.poi_bounds(), mu));
    let run = toys_for(
        &*engine,
        &p,
        &ToySettings {
            mu,
            test_stat: a.test_stat,
            n_toys: a.n,
            seed: a.seed,
            shard: a.shard,
            batch: a.batch,
            model_digest: digest.to_string(),
            toy_max_iter: None,
        },
        None,
    )?;
    crate::util::write_json_atomic(&a.out, &run)?;
    if let Some(path) = &a.plot {
        infer_plots::toys(path, &run, &p)?;
    }
    let undefined = summary(&run, a.json)?;
    let failed = run
        .sig_bkg
        .iter()
        .chain(&run.bkg)
        .filter(|r| r.stat.is_none())
        .count();
    if failed > 0 {
        eprintln!(
            "warning: {failed} toys had failed fits; they are recorded in {} and left out of p-values",
            a.out.display()
        );
    }
    undefined_exit(undefined)
}

/// `gradfit merge`.
pub fn merge_cmd(a: &MergeArgs) -> Result<i32> {
    let names: Vec<String> = a.files.iter().map(|f| f.display().to_string()).collect();
    let runs: Vec<ToyRun> = a
        .files
        .iter()
        .zip(&names)
        .map(|(f, name)| super::limit_toys::read_run(f, name))
        .collect::<Result<_>>()?;
    let merged = merge(runs, &names)?;
    crate::util::write_json_atomic(&a.out, &merged)?;
    let undefined = summary(&merged, a.json)?;
    undefined_exit(undefined)
}
