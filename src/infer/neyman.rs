//! Neyman construction of confidence intervals from toys, with the profile
//! likelihood ratio `t_mu = twice_nll(mu, profiled) - twice_nll(free)` (the
//! POI bounded as the model says, so that the free fit respects a physical
//! boundary, as Feldman and Cousins do).
//!
//! For every value `mu_j` of a grid, toys are drawn at the parameters
//! profiled at `mu_j` on the observed data (the "profile construction" the
//! ATLAS off-shell analysis used) and fitted twice (free and with the POI
//! fixed at `mu_j`), the fits of a chunk of toys as one batch. The acceptance
//! region at confidence level `cl` is `t <= c_cl(mu_j)`, with `c_cl` the
//! `ceil(cl n)`-th smallest toy statistic; the interval is the set of `mu`
//! where the observed `t_mu` is accepted, its edges interpolated linearly in
//! `t_obs - c` between grid points.
//!
//! Toy `i` of grid point `j` comes from the random streams of purpose
//! `NEYMAN_PURPOSE + j` only, so belts are identical whatever the thread
//! count or batch size, and toy ranges can be computed separately.

use super::Problem;
use super::scan::{Scan, profile_scan};
use crate::error::{Error, Result};
use crate::fit::{FitOptions, FitResult, FitSpec};
use crate::model::Likelihood;
use rayon::prelude::*;
use serde::Serialize;

/// First random-stream purpose of Neyman toys (grid point `j` uses `NEYMAN_PURPOSE + j`).
pub const NEYMAN_PURPOSE: u32 = 64;
/// Most grid points (purposes must stay below 2^16, see `model::combined`).
pub const MAX_GRID: usize = 60_000;

/// Settings of a Neyman construction.
#[derive(Debug, Clone)]
pub struct NeymanSettings {
    /// POI values.
    pub grid: Vec<f64>,
    /// Toys per grid point.
    pub n_toys: u32,
    /// Confidence levels (each in (0, 1)).
    pub cls: Vec<f64>,
    /// Seed.
    pub seed: u64,
    /// Toys fitted per batch.
    pub batch: usize,
}

/// Outcome of the toys of one grid point.
#[derive(Debug, Clone, Serialize)]
pub struct BeltPoint {
    /// POI value.
    pub mu: f64,
    /// Observed `t_mu`.
    pub t_obs: f64,
    /// Whether the observed fit with the POI fixed converged.
    pub converged: bool,
    /// Parameters the toys are drawn at.
    pub pars: Vec<f64>,
    /// Critical value per confidence level.
    pub critical: Vec<f64>,
    /// Toys whose fits failed (left out).
    pub n_failed: u32,
    /// Sorted toy statistics (only when asked for).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub toys: Option<Vec<f64>>,
}

/// One confidence interval (possibly several disjoint pieces).
#[derive(Debug, Clone, Serialize)]
pub struct Interval {
    /// Confidence level.
    pub cl: f64,
    /// `[lo, hi]` pieces in increasing order.
    pub segments: Vec<[f64; 2]>,
    /// The lowest grid point is inside (the interval may extend below the grid).
    pub open_below: bool,
    /// The highest grid point is inside.
    pub open_above: bool,
}

/// A Neyman construction.
#[derive(Debug, Clone, Serialize)]
pub struct Neyman {
    /// The POI.
    pub parameter: String,
    /// Best-fit POI.
    pub mu_hat: f64,
    /// Its twice_nll.
    pub twice_nll_min: f64,
    /// Toys per point.
    pub n_toys: u32,
    /// Seed.
    pub seed: u64,
    /// Confidence levels.
    pub cls: Vec<f64>,
    /// The belt.
    pub points: Vec<BeltPoint>,
    /// Intervals per confidence level.
    pub intervals: Vec<Interval>,
    /// Notes (failed fits, intervals open at the grid's ends).
    pub messages: Vec<String>,
}

/// Refit every point of `scan` starting from its neighbours' solutions, in a
/// forward and a backward sweep, keeping the lower minimum: a profile with
/// several local minima in the nuisance parameters (common with per-event
/// shape variations) is followed along its lowest branch. Returns how many
/// points moved to a lower minimum; `delta_twice_nll` is recomputed.
pub fn polish_scan<L: Likelihood>(
    p: &Problem<L>,
    scan: &mut Scan,
    opts: &FitOptions,
) -> Result<usize> {
    let n = scan.points.len();
    let mut moved = 0;
    let order: Vec<usize> = (1..n).chain((0..n.saturating_sub(1)).rev()).collect();
    for (k, &j) in order.iter().enumerate() {
        let from = if k < n.saturating_sub(1) {
            j - 1
        } else {
            j + 1
        };
        if !scan.points[from].converged {
            continue;
        }
        let mut spec = p.spec.clone();
        spec.init.copy_from_slice(&scan.points[from].pars);
        let spec = spec.fix(scan.index, scan.points[j].value);
        let f = p.fitter.fit(p.model, p.data, &spec, opts)?;
        let cur = &scan.points[j];
        let tol = 1e-9 * cur.twice_nll.abs().max(1.0);
        if f.converged && (!cur.converged || f.twice_nll < cur.twice_nll - tol) {
            let pt = &mut scan.points[j];
            pt.twice_nll = f.twice_nll;
            pt.pars = f.x;
            pt.converged = true;
            moved += 1;
        }
    }
    let best = scan
        .points
        .iter()
        .filter(|q| q.converged)
        .map(|q| q.twice_nll)
        .fold(scan.best_twice_nll, f64::min);
    scan.best_twice_nll = best;
    for q in &mut scan.points {
        q.delta_twice_nll = q.twice_nll - best;
    }
    Ok(moved)
}

/// `t_mu` of toys `range` at grid point `j` (None where a fit failed).
#[allow(clippy::too_many_arguments)]
pub fn belt_toys<L: Likelihood>(
    p: &Problem<L>,
    generator: &L::Generator,
    free: &FitSpec,
    fixed: &FitSpec,
    seed: u64,
    j: usize,
    range: std::ops::Range<u32>,
    opts: &FitOptions,
) -> Result<Vec<Option<f64>>> {
    let purpose = NEYMAN_PURPOSE + j as u32;
    let toys: Vec<u32> = range.collect();
    let data: Vec<L::Data> = toys
        .par_iter()
        .map(|&t| p.model.sample(generator, seed, t, purpose))
        .collect();
    let mut specs = Vec::with_capacity(2 * toys.len());
    let mut dref = Vec::with_capacity(2 * toys.len());
    for d in &data {
        specs.push(free.clone());
        dref.push(d);
        specs.push(fixed.clone());
        dref.push(d);
    }
    let fits = p.fit_batch(&dref, &specs, opts)?;
    (0..toys.len())
        .map(|k| {
            let (f, x) = (&fits[2 * k], &fits[2 * k + 1]);
            let mut best: FitResult = f.clone();
            let tol = 1e-9 * f.twice_nll.abs().max(1.0);
            if x.converged && (!f.converged || x.twice_nll < f.twice_nll - tol) {
                // the free fit failed or stopped in a local minimum: restart it from the fixed fit
                let mut s = free.clone();
                s.init.copy_from_slice(&x.x);
                let again = p.fitter.fit(p.model, &data[k], &s, opts)?;
                if again.converged && (!best.converged || again.twice_nll < best.twice_nll) {
                    best = again;
                }
            }
            let mut fixed_fit: FitResult = x.clone();
            if best.converged && (!x.converged || x.twice_nll - best.twice_nll > 1.0) {
                // the fixed fit may sit in a local minimum: start it again from the free fit
                let mut s = fixed.clone();
                s.init.copy_from_slice(&best.x);
                s.init[p.poi] = fixed.init[p.poi];
                let again = p.fitter.fit(p.model, &data[k], &s, opts)?;
                if again.converged
                    && (!fixed_fit.converged || again.twice_nll < fixed_fit.twice_nll)
                {
                    fixed_fit = again;
                }
            }
            let x = &fixed_fit;
            let ok = best.converged && x.converged && x.twice_nll >= best.twice_nll - tol;
            Ok(ok.then(|| (x.twice_nll - best.twice_nll).max(0.0)))
        })
        .collect()
}

/// The `ceil(cl n)`-th smallest of `sorted` (the acceptance region `t <= c`
/// holds at least a fraction `cl` of the toys).
pub fn critical_value(sorted: &[f64], cl: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let k = ((cl * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[k - 1]
}

/// The intervals where `t_obs <= critical` on the grid.
pub fn intervals(points: &[BeltPoint], cls: &[f64]) -> Vec<Interval> {
    cls.iter()
        .enumerate()
        .map(|(q, &cl)| {
            let f = |p: &BeltPoint| p.t_obs - p.critical[q];
            let inside: Vec<bool> = points.iter().map(|p| f(p) <= 0.0).collect();
            let mut segments = Vec::new();
            let mut j = 0;
            while j < points.len() {
                if !inside[j] {
                    j += 1;
                    continue;
                }
                let start = j;
                while j + 1 < points.len() && inside[j + 1] {
                    j += 1;
                }
                let edge = |a: usize, b: usize| {
                    // a inside, b outside: zero of the linear interpolation of f
                    let (fa, fb) = (f(&points[a]), f(&points[b]));
                    let (xa, xb) = (points[a].mu, points[b].mu);
                    if fb.is_finite() && fa.is_finite() && fb != fa {
                        xa + (xb - xa) * (0.0 - fa) / (fb - fa)
                    } else {
                        xa
                    }
                };
                let lo = if start == 0 {
                    points[0].mu
                } else {
                    edge(start, start - 1)
                };
                let hi = if j + 1 == points.len() {
                    points[j].mu
                } else {
                    edge(j, j + 1)
                };
                segments.push([lo, hi]);
                j += 1;
            }
            Interval {
                cl,
                segments,
                open_below: inside.first().copied().unwrap_or(false),
                open_above: inside.last().copied().unwrap_or(false),
            }
        })
        .collect()
}

/// Build the belts and intervals; `progress(done, total)` after each batch of toys.
pub fn neyman<L: Likelihood>(
    p: &Problem<L>,
    s: &NeymanSettings,
    opts: &FitOptions,
    keep_toys: bool,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<Neyman> {
    if s.grid.is_empty() || s.grid.len() > MAX_GRID {
        return Err(Error::input(format!(
            "the grid has {} points; give 1 to {MAX_GRID}",
            s.grid.len()
        )));
    }
    if let Some(cl) = s.cls.iter().find(|c| !(**c > 0.0 && **c < 1.0)) {
        return Err(Error::input(format!(
            "confidence level {cl} is not in (0, 1)"
        )));
    }
    if s.n_toys == 0 {
        return Err(Error::input("--toys must be at least 1"));
    }
    let opts = FitOptions {
        covariance: false,
        ..opts.clone()
    };
    let mut scan = profile_scan(p.fitter, p.model, p.data, &p.spec, p.poi, &s.grid, &opts)?;
    let mut messages = scan.messages.clone();
    let moved = polish_scan(p, &mut scan, &opts)?;
    if moved > 0 {
        messages.push(format!(
            "{moved} scan points reached a lower minimum when started from a neighbour's fit \
             (the profile has several local minima)"
        ));
    }
    let total = s.grid.len() as u64 * s.n_toys as u64;
    let mut done = 0u64;
    let batch = s.batch.max(1) as u32;
    let mut points = Vec::with_capacity(s.grid.len());
    for (j, sp) in scan.points.iter().enumerate() {
        let generator = p.model.generator(&sp.pars);
        let mut free = p.spec.clone();
        free.init.copy_from_slice(&sp.pars);
        let fixed = free.clone().fix(p.poi, sp.value);
        let mut t: Vec<Option<f64>> = Vec::with_capacity(s.n_toys as usize);
        let mut start = 0;
        while start < s.n_toys {
            let end = (start + batch).min(s.n_toys);
            t.extend(belt_toys(
                p,
                &generator,
                &free,
                &fixed,
                s.seed,
                j,
                start..end,
                &opts,
            )?);
            done += (end - start) as u64;
            progress(done, total);
            start = end;
        }
        let n_failed = t.iter().filter(|x| x.is_none()).count() as u32;
        let mut ok: Vec<f64> = t.into_iter().flatten().collect();
        ok.sort_by(f64::total_cmp);
        if n_failed > 0 {
            messages.push(format!(
                "{} = {}: {n_failed} of {} toys failed to fit and are left out",
                scan.parameter, sp.value, s.n_toys
            ));
        }
        if !sp.converged {
            messages.push(format!(
                "{} = {}: the observed fit did not converge; its t is unreliable",
                scan.parameter, sp.value
            ));
        }
        points.push(BeltPoint {
            mu: sp.value,
            t_obs: sp.delta_twice_nll,
            converged: sp.converged,
            pars: sp.pars.clone(),
            critical: s.cls.iter().map(|&cl| critical_value(&ok, cl)).collect(),
            n_failed,
            toys: keep_toys.then_some(ok),
        });
    }
    let intervals = intervals(&points, &s.cls);
    for iv in &intervals {
        if iv.open_below && s.grid[0] > p.poi_bounds().0 {
            messages.push(format!(
                "the {} interval includes the lowest grid point: extend the grid downwards",
                iv.cl
            ));
        }
        if iv.open_above {
            messages.push(format!(
                "the {} interval includes the highest grid point: extend the grid upwards",
                iv.cl
            ));
        }
        if iv.segments.is_empty() {
            messages.push(format!("no grid point is inside the {} interval", iv.cl));
        }
    }
    Ok(Neyman {
        parameter: scan.parameter,
        mu_hat: scan.best_value,
        twice_nll_min: scan.best_twice_nll,
        n_toys: s.n_toys,
        seed: s.seed,
        cls: s.cls.clone(),
        points,
        intervals,
        messages,
    })
}

/// The interval where a profile scan `(mu, delta twice_nll)` (sorted by mu)
/// stays below `level` (1 for 68.27%): the crossings next to the minimum,
/// interpolated linearly; `None` where the scan does not cross on that side.
pub fn scan_interval(points: &[(f64, f64)], level: f64) -> (Option<f64>, Option<f64>) {
    let Some(jmin) = (0..points.len()).min_by(|&a, &b| points[a].1.total_cmp(&points[b].1)) else {
        return (None, None);
    };
    let cross = |a: usize, b: usize| {
        let ((xa, ya), (xb, yb)) = (points[a], points[b]);
        xa + (xb - xa) * (level - ya) / (yb - ya)
    };
    let lo = (0..jmin)
        .rev()
        .find(|&j| points[j].1 >= level)
        .map(|j| cross(j + 1, j));
    let hi = (jmin + 1..points.len())
        .find(|&j| points[j].1 >= level)
        .map(|j| cross(j - 1, j));
    (lo, hi)
}

/// Fraction of `t` values `<= c`, with its binomial standard error.
pub fn coverage(t: &[f64], c: f64) -> (f64, f64) {
    let n = t.len() as f64;
    let k = t.iter().filter(|x| **x <= c).count() as f64;
    let f = k / n;
    (f, (f * (1.0 - f) / n).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pt(mu: f64, t: f64, c: f64) -> BeltPoint {
        BeltPoint {
            mu,
            t_obs: t,
            converged: true,
            pars: vec![],
            critical: vec![c],
            n_failed: 0,
            toys: None,
        }
    }

    #[test]
    fn intervals_interpolate_their_edges() {
        let pts = vec![
            pt(0.0, 3.0, 1.0),
            pt(1.0, 0.0, 1.0),
            pt(2.0, 0.5, 1.0),
            pt(3.0, 2.0, 1.0),
        ];
        let iv = &intervals(&pts, &[0.68])[0];
        assert_eq!(iv.segments.len(), 1);
        // f = t - c: 2 at 0, -1 at 1 -> zero at 2/3; -0.5 at 2, 1 at 3 -> zero at 2 + 1/3
        assert!((iv.segments[0][0] - 2.0 / 3.0).abs() < 1e-15);
        assert!((iv.segments[0][1] - (2.0 + 1.0 / 3.0)).abs() < 1e-15);
        assert!(!iv.open_below && !iv.open_above);
    }

    #[test]
    fn scan_interval_interpolates_the_crossings() {
        let pts: Vec<(f64, f64)> = (0..=20)
            .map(|i| {
                let x = i as f64 * 0.2;
                (x, (x - 2.0) * (x - 2.0))
            })
            .collect();
        let (lo, hi) = scan_interval(&pts, 1.0);
        assert!((lo.unwrap() - 1.0).abs() < 1e-12 && (hi.unwrap() - 3.0).abs() < 1e-12);
        let (lo, _) = scan_interval(&pts[8..], 1.0);
        assert!(lo.is_none());
    }

    #[test]
    fn critical_value_is_conservative() {
        let s: Vec<f64> = (1..=10).map(|x| x as f64).collect();
        assert_eq!(critical_value(&s, 0.68), 7.0);
        assert_eq!(critical_value(&s, 0.7), 7.0);
        assert_eq!(critical_value(&s, 0.95), 10.0);
    }
}
