//! Profile-likelihood scans of one parameter.
//!
//! All scan points are fitted as one batch (in parallel), each started at the
//! best fit with the scanned parameter moved to its value; a point that fails
//! is refitted starting from its nearest converged neighbour (warm start along
//! the scan).

use crate::error::{Error, Result};
use crate::fit::{BatchFitter, FitOptions, FitResult, FitSpec};
use crate::model::Likelihood;
use serde::Serialize;

/// One point of a scan.
#[derive(Debug, Clone, Serialize)]
pub struct ScanPoint {
    /// Value of the scanned parameter.
    pub value: f64,
    /// Profiled twice_nll.
    pub twice_nll: f64,
    /// `twice_nll - min twice_nll`.
    pub delta_twice_nll: f64,
    /// Whether the fit converged.
    pub converged: bool,
    /// The fitted parameters.
    pub pars: Vec<f64>,
}

/// A profile scan.
#[derive(Debug, Clone, Serialize)]
pub struct Scan {
    /// Scanned parameter.
    pub parameter: String,
    /// Its index.
    pub index: usize,
    /// Best-fit value (free fit).
    pub best_value: f64,
    /// Minimum twice_nll (free fit, or a scan point if lower).
    pub best_twice_nll: f64,
    /// Points in grid order.
    pub points: Vec<ScanPoint>,
    /// Notes (failed points, a scan point below the free fit).
    pub messages: Vec<String>,
}

/// Scan parameter `index` over `values`, fitting with `fitter` (e.g. `&fit::Cpu`).
pub fn profile_scan<L: Likelihood>(
    fitter: &dyn BatchFitter<L>,
    model: &L,
    data: &L::Data,
    base: &FitSpec,
    index: usize,
    values: &[f64],
    opts: &FitOptions,
) -> Result<Scan> {
    if values.is_empty() {
        return Err(Error::input("empty scan grid"));
    }
    let opts = FitOptions {
        covariance: false,
        ..opts.clone()
    };
    let free = fitter.fit(model, data, base, &opts)?;
    super::require_converged(&free, "the free fit")?;
    let spec_at = |v: f64, start: &[f64]| {
        let mut s = base.clone();
        s.init.copy_from_slice(start);
        s.fix(index, v)
    };
    let specs: Vec<FitSpec> = values.iter().map(|&v| spec_at(v, &free.x)).collect();
    let mut fits: Vec<FitResult> = fitter.fit_batch(model, &[data], &specs, &opts)?;
    let mut messages = Vec::new();
    // retry failures from the nearest converged neighbour
    for k in 0..fits.len() {
        if fits[k].converged {
            continue;
        }
        let neighbour = (1..fits.len())
            .flat_map(|d| [k.checked_sub(d), Some(k + d)])
            .flatten()
            .find(|&j| j < fits.len() && fits[j].converged);
        if let Some(j) = neighbour {
            let start = fits[j].x.clone();
            let again = fitter.fit(model, data, &spec_at(values[k], &start), &opts)?;
            if again.converged {
                fits[k] = again;
                continue;
            }
        }
        messages.push(format!(
            "the fit at {} = {} did not converge ({})",
            model.par_names()[index],
            values[k],
            fits[k].status.reason()
        ));
    }
    let mut best = free.twice_nll;
    for f in fits.iter().filter(|f| f.converged) {
        if f.twice_nll < best - 1e-9 * best.abs().max(1.0) {
            messages.push(format!(
                "a scan point reached twice_nll {} below the free fit's {}: the free fit found a local minimum",
                f.twice_nll, free.twice_nll
            ));
        }
        best = best.min(f.twice_nll);
    }
    let points = values
        .iter()
        .zip(fits)
        .map(|(&v, f)| ScanPoint {
            value: v,
            twice_nll: f.twice_nll,
            delta_twice_nll: f.twice_nll - best,
            converged: f.converged,
            pars: f.x,
        })
        .collect();
    Ok(Scan {
        parameter: model.par_names()[index].clone(),
        index,
        best_value: free.x[index],
        best_twice_nll: best,
        points,
        messages,
    })
}

/// Most points of a scan grid (each point is a fit whose parameters are kept).
pub const MAX_GRID_POINTS: usize = 100_000;

/// Parse `LO:HI:N` into N evenly spaced values.
pub fn parse_range(s: &str) -> std::result::Result<Vec<f64>, String> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 3 {
        return Err(format!("expected LO:HI:N, got '{s}'"));
    }
    let lo: f64 = parts[0]
        .trim()
        .parse()
        .map_err(|_| format!("bad LO in '{s}'"))?;
    let hi: f64 = parts[1]
        .trim()
        .parse()
        .map_err(|_| format!("bad HI in '{s}'"))?;
    let n: usize = parts[2]
        .trim()
        .parse()
        .map_err(|_| format!("bad N in '{s}'"))?;
    if !(lo.is_finite() && hi.is_finite()) || n == 0 || (n > 1 && !(lo < hi)) {
        return Err(format!("need finite LO < HI and N >= 1 in '{s}'"));
    }
    if n > MAX_GRID_POINTS {
        return Err(format!(
            "{n} points in '{s}': at most {MAX_GRID_POINTS} (each point is a fit; split the range over several runs)"
        ));
    }
    Ok(if n == 1 {
        vec![lo]
    } else {
        (0..n)
            .map(|i| lo + (hi - lo) * i as f64 / (n - 1) as f64)
            .collect()
    })
}

/// cabinetry's default scan range: the best-fit value +- 3 of its Hessian
/// uncertainties, in `n` points, clipped to the parameter's bounds. Returns
/// the grid and, when clipped, a note saying so.
pub fn default_grid<L: Likelihood>(
    fitter: &dyn BatchFitter<L>,
    model: &L,
    data: &L::Data,
    base: &FitSpec,
    index: usize,
    n: usize,
    opts: &FitOptions,
) -> Result<(Vec<f64>, Option<String>)> {
    let opts = FitOptions {
        covariance: true,
        ..opts.clone()
    };
    let free = fitter.fit(model, data, base, &opts)?;
    super::require_converged(&free, "the free fit")?;
    let (v, e) = (free.x[index], free.errors[index]);
    let name = &model.par_names()[index];
    if !(e.is_finite() && e > 0.0) {
        return Err(Error::input(format!(
            "no uncertainty for {name} at the best fit ({e}), so no default scan range: give --range LO:HI:N"
        )));
    }
    let (blo, bhi) = base.bounds[index];
    let (lo, hi) = ((v - 3.0 * e).max(blo), (v + 3.0 * e).min(bhi));
    let note = (lo > v - 3.0 * e || hi < v + 3.0 * e).then(|| {
        format!("the range {name} = {v:.4} +- 3 x {e:.4} is clipped to the bounds [{blo}, {bhi}]")
    });
    let n = n.max(2);
    Ok((
        (0..n)
            .map(|i| lo + (hi - lo) * i as f64 / (n - 1) as f64)
            .collect(),
        note,
    ))
}
