//! `--plot FILE` of `scan`, `limit` and `toys` (format from the extension).

use crate::error::{Error, Result};
use crate::fit::FitOptions;
use crate::infer::scan::Scan;
use crate::infer::toys::ToyRun;
use crate::infer::{AsymptoticCalculator, Problem, TestStat};
use crate::model::Likelihood;
use crate::report::plot::{self, Format};
use crate::report::plot_infer::{LimitPlot, ScanPlot, ToysPlot, short};
use crate::util::special::normal_cdf;
use std::path::Path;

/// One CLs point of a limit plot: (mu, observed, expected from -2 sigma up).
pub(super) type ClsPoint = (f64, Option<f64>, [Option<f64>; 5]);

/// Check a plot file before any work: a .svg or .png name in an existing folder.
pub(super) fn check(path: Option<&Path>) -> Result<()> {
    let Some(path) = path else {
        return Ok(());
    };
    Format::from_path(path)?;
    if path.is_dir() {
        return Err(Error::input(format!(
            "{}: is a folder; --plot takes a file name ending in .svg or .png",
            path.display()
        )));
    }
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

fn write<P: plot::Plot>(p: &P, path: &Path) -> Result<()> {
    plot::write(p, path)?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

/// The profile-likelihood scan.
pub(super) fn scan(path: &Path, s: &Scan) -> Result<()> {
    let p = ScanPlot {
        parameter: s.parameter.clone(),
        points: s
            .points
            .iter()
            .map(|p| (p.value, p.delta_twice_nll, p.converged))
            .collect(),
        best: s.best_value,
        title: format!("Profile likelihood scan of {}", s.parameter),
    };
    write(&p, path)
}

/// CLs on `n` points from `lo` to `hi` for the plot (asymptotics).
pub(super) fn cls_grid<M: Likelihood>(
    calc: &AsymptoticCalculator<'_, M>,
    lo: f64,
    hi: f64,
    n: usize,
) -> Result<Vec<ClsPoint>> {
    (0..n)
        .map(|i| {
            let mu = lo + (hi - lo) * i as f64 / (n - 1).max(1) as f64;
            let h = calc.hypotest(mu)?;
            Ok((mu, Some(h.cls_obs), h.cls_exp.map(Some)))
        })
        .collect()
}

/// CLs against the POI with the expected band.
pub(super) fn limit(
    path: &Path,
    poi: &str,
    cl: f64,
    calculator: &str,
    points: Vec<ClsPoint>,
    obs: Option<f64>,
    exp: Option<f64>,
) -> Result<()> {
    let p = LimitPlot {
        poi: poi.to_string(),
        points,
        cl,
        obs_limit: obs,
        exp_limit: exp,
        title: format!("CLs against {poi} ({calculator})"),
    };
    write(&p, path)
}

/// The test-statistic distributions of a toy run against their asymptotic form.
pub(super) fn toys<M: Likelihood>(path: &Path, run: &ToyRun, p: &Problem<'_, M>) -> Result<()> {
    let stat = run.test_stat;
    let vals = |r: &[crate::infer::toys::ToyRecord]| -> Vec<f64> {
        r.iter().filter_map(|t| t.stat).collect()
    };
    let (sb, b) = (vals(&run.sig_bkg), vals(&run.bkg));
    let (label_sb, label_b) = if stat == TestStat::Q0 {
        (
            "toys at \u{03bc} = 0 (background only)".to_string(),
            "toys at \u{03bc} = 1 (signal)".to_string(),
        )
    } else {
        (
            format!("signal + background toys (\u{03bc} = {})", short(run.mu)),
            "background-only toys (\u{03bc} = 0)".to_string(),
        )
    };
    let mut note = None;
    // the asymptotic distributions: F(q) = Phi(t(q) + sqrt(q_A)) for the
    // tested hypothesis, Phi(t(q)) for the other (Cowan et al. 2011; t as
    // the asymptotic calculator defines it)
    let calc = if matches!(stat, TestStat::T | TestStat::TTilde) {
        note = Some(format!("no asymptotic form is drawn for {stat}"));
        None
    } else {
        match AsymptoticCalculator::new(p.clone(), stat, &FitOptions::default()) {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!("warning: no asymptotic curves on the toy plot: {e}");
                note = Some("asymptotic form unavailable (a fit failed)".into());
                None
            }
        }
    };
    let mu = if stat == TestStat::Q0 { 0.0 } else { run.mu };
    let q_a = match &calc {
        Some(c) => Some(c.hypotest(mu)?.test_stat_asimov),
        None => None,
    };
    let t = |q: f64| -> f64 {
        match (&calc, q_a) {
            (Some(c), Some(qa)) => c.from_values(mu, q, qa, 0.0).t_obs,
            _ => 0.0,
        }
    };
    let sqa = q_a.unwrap_or(0.0).max(0.0).sqrt();
    let f_sb = |q: f64| normal_cdf(t(q) + sqa);
    let f_b = |q: f64| normal_cdf(t(q));
    let have = calc.is_some();
    let pl = ToysPlot::new(
        &format!("Toys: {stat} at \u{03bc} = {}", short(run.mu)),
        &format!("test statistic {stat}"),
        run.test_stat_obs,
        vec![
            (label_sb, sb, have.then_some(&f_sb as &dyn Fn(f64) -> f64)),
            (label_b, b, have.then_some(&f_b as &dyn Fn(f64) -> f64)),
        ],
        40,
    );
    write(&ToysPlot { note, ..pl }, path)
}
