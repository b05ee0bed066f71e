//! `cls`, `limit`, `discovery`, `scan`, `toys` and `merge`.

use super::infer_plots::{self, ClsPoint};
use super::progress;
use super::table::{Table, fmt};
use super::{ModelArgs, OutputArgs, check_poi_value, num, nums, par_index};
use crate::device::Engine;
use crate::error::{Error, Result};
use crate::fit::FitOptions;
use crate::infer::limits::{LimitMethod, upper_limit};
use crate::infer::scan::{default_grid, parse_range, profile_scan};
use crate::infer::shards::merge;
use crate::infer::toy_limit;
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
    fn n(&self) -> Result<Option<u32>> {
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
fn tested_mu(stat: TestStat, mu: Option<f64>) -> f64 {
    match (stat, mu) {
        (TestStat::Q0, Some(m)) if m != 0.0 => {
            eprintln!("warning: q0 tests mu = 0 (the discovery hypothesis); --mu {m} ignored");
            0.0
        }
        (TestStat::Q0, _) => 0.0,
        (_, m) => m.unwrap_or(1.0),
    }
}

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

fn parse_limit_stat(s: &str) -> std::result::Result<TestStat, String> {
    let t: TestStat = s.parse()?;
    match t {
        TestStat::Q | TestStat::QTilde => Ok(t),
        _ => Err(format!("'{s}': limits use qtilde or q")),
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

fn print_warnings(ws: &[String]) {
    for w in ws {
        eprintln!("warning: {w}");
    }
}

/// Run the toys of `settings`, with a progress bar counting toys: its own,
/// or `outer` (a bar over several runs) advanced from `offset`.
fn toys_for<M: Likelihood>(
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
    fn settings(&self, mu: f64, test_stat: TestStat, n: u32, digest: &str) -> ToySettings {
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

fn toy_cls_json(c: &toys::ToyCls) -> Value {
    json!({
        "cls_obs": c.cls_obs.map(num).unwrap_or(Value::Null),
        "cls_exp": c.cls_exp.iter().map(|x| x.map(num).unwrap_or(Value::Null)).collect::<Vec<_>>(),
        "clsb_obs": num(c.clsb_obs),
        "clb_obs": num(c.clb_obs),
        "test_stat_obs": num(c.test_stat_obs),
        "n_toys": c.n_toys,
        "n_failed": c.n_failed,
        "n_failed_sig_bkg": c.n_failed_sig_bkg,
        "n_failed_bkg": c.n_failed_bkg,
    })
}

fn opt(x: Option<f64>) -> String {
    x.map(fmt).unwrap_or_else(|| "-".into())
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
    Ok(0)
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

fn summary(run: &ToyRun, json_out: bool) -> Result<()> {
    let whole = run.shard.is_none();
    let mut v = json!({
        "mu": run.mu, "test_stat": run.test_stat, "seed": run.seed, "n_toys": run.n_toys,
        "shard": run.shard, "range": run.range, "test_stat_obs": num(run.test_stat_obs),
    });
    if whole {
        let c = toy_cls(run)?;
        v["cls"] = toy_cls_json(&c);
    }
    let out = OutputArgs {
        json: json_out,
        output: None,
    };
    out.emit(&v, || {
        let mut s = format!(
            "toys mu = {} ({}) seed {}: toys [{}, {}) of {}{}\n",
            run.mu,
            run.test_stat,
            run.seed,
            run.range[0],
            run.range[1],
            run.n_toys,
            run.shard
                .map(|s| format!(" (shard {} of {})", s[0], s[1]))
                .unwrap_or_default()
        );
        if whole {
            let c = &v["cls"];
            s.push_str(&format!(
                "CLs obs {}  expected {}  ({} failed)\n",
                opt(c["cls_obs"].as_f64()),
                c["cls_exp"]
                    .as_array()
                    .map(|e| e
                        .iter()
                        .map(|x| opt(x.as_f64()))
                        .collect::<Vec<_>>()
                        .join(" "))
                    .unwrap_or_default(),
                c["n_failed"]
            ));
        }
        s
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
    summary(&run, a.json)?;
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
    Ok(0)
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
    summary(&merged, a.json)?;
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
