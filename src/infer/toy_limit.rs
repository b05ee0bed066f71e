//! Toy-based upper limits: CLs on a grid of POI values, each from its own
//! toys, with the crossings of the observed and expected curves found by
//! linear interpolation; the grid comes from the asymptotic band and grows
//! where a band is not bracketed yet.

use super::limits::UpperLimit;
use super::toys::ToyCls;

/// CLs of one tested POI value.
#[derive(Debug, Clone)]
pub struct GridPoint {
    /// Tested POI value.
    pub mu: f64,
    /// CLs from its toys.
    pub cls: ToyCls,
}

/// Observed and expected (-2 to +2 sigma) crossings of `alpha` on `points`
/// (sorted by mu): the first downward crossing, linearly interpolated.
pub fn crossings(points: &[GridPoint], alpha: f64) -> (Option<f64>, [Option<f64>; 5]) {
    let cross = |f: &dyn Fn(&ToyCls) -> Option<f64>| -> Option<f64> {
        let vals: Vec<(f64, f64)> = points
            .iter()
            .filter_map(|p| f(&p.cls).map(|y| (p.mu, y - alpha)))
            .collect();
        vals.windows(2)
            .find(|w| w[0].1 >= 0.0 && w[1].1 < 0.0)
            .map(|w| w[0].0 + (w[1].0 - w[0].0) * w[0].1 / (w[0].1 - w[1].1))
    };
    let obs = cross(&|c| c.cls_obs);
    let mut exp = [None; 5];
    for (k, e) in exp.iter_mut().enumerate() {
        *e = cross(&|c| c.cls_exp[k]);
    }
    (obs, exp)
}

/// Where the grid must grow: `(below, above)` are true when some curve is
/// already under `alpha` at the lowest point, or still over it at the highest.
pub fn unbracketed(points: &[GridPoint], alpha: f64) -> (bool, bool) {
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        return (false, false);
    };
    let curves = |c: &ToyCls| {
        let mut v = vec![c.cls_obs];
        v.extend(c.cls_exp.iter().copied());
        v
    };
    let (a, b) = (curves(&first.cls), curves(&last.cls));
    let (o, e) = crossings(points, alpha);
    let found: Vec<bool> = std::iter::once(o.is_some())
        .chain(e.iter().map(|x| x.is_some()))
        .collect();
    let below = (0..6).any(|k| !found[k] && a[k].is_some_and(|y| y < alpha));
    let above = (0..6).any(|k| !found[k] && b[k].is_some_and(|y| y >= alpha));
    (below, above)
}

/// The first grid: from half the asymptotic -2 sigma limit to 1.5 times the
/// +2 sigma limit, inside the POI bounds, in `n` points.
pub fn initial_grid(asym: &UpperLimit, bounds: (f64, f64), n: usize) -> Vec<f64> {
    let (plo, phi) = bounds;
    let lo = asym.exp[0]
        .map(|x| 0.5 * x)
        .unwrap_or(plo.max(1e-3))
        .max(plo);
    let hi = asym.exp[4].map(|x| 1.5 * x).unwrap_or(phi).min(phi);
    linspace(lo, hi, n)
}

/// `n` evenly spaced values from `lo` to `hi`.
pub fn linspace(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    if n < 2 {
        return vec![lo];
    }
    (0..n)
        .map(|i| lo + (hi - lo) * i as f64 / (n - 1) as f64)
        .collect()
}

/// Points that extend `grid` by its own width below or above, inside the
/// POI bounds (empty when the bound is reached).
pub fn extension(grid: &[f64], bounds: (f64, f64), above: bool, n: usize) -> Vec<f64> {
    let (Some(&lo), Some(&hi)) = (grid.first(), grid.last()) else {
        return Vec::new();
    };
    let width = (hi - lo).max(1e-3);
    let step = width / n as f64;
    let pts: Vec<f64> = if above {
        (1..=n)
            .map(|i| hi + step * i as f64)
            .filter(|&x| x <= bounds.1)
            .collect()
    } else {
        (1..=n)
            .map(|i| lo - step * i as f64)
            .filter(|&x| x >= bounds.0.max(0.0))
            .collect()
    };
    pts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(mu: f64, obs: f64, exp: [f64; 5]) -> GridPoint {
        GridPoint {
            mu,
            cls: ToyCls {
                cls_obs: Some(obs),
                cls_exp: exp.map(Some),
                clsb_obs: obs,
                clb_obs: 1.0,
                test_stat_obs: 0.0,
                n_toys: 10,
                n_failed: 0,
                n_failed_sig_bkg: 0,
                n_failed_bkg: 0,
            },
        }
    }

    #[test]
    fn crossings_interpolate_and_unbracketed_bands_are_found() {
        // every curve falls linearly; the +2 sigma one stays above 0.05
        let pts: Vec<GridPoint> = (0..5)
            .map(|i| {
                let mu = i as f64;
                let f = |s: f64| 1.0 - mu * s;
                point(mu, f(0.3), [f(0.4), f(0.3), f(0.2), f(0.1), f(0.05)])
            })
            .collect();
        let (obs, exp) = crossings(&pts, 0.05);
        assert!((obs.unwrap() - (3.0 + 0.05 / 0.3)).abs() < 1e-12);
        assert!((exp[0].unwrap() - 2.375).abs() < 1e-12);
        assert_eq!(exp[4], None);
        assert_eq!(unbracketed(&pts, 0.05), (false, true));
        let up = extension(&[0.0, 4.0], (0.0, 6.0), true, 4);
        assert_eq!(up, vec![5.0, 6.0]);
        let down = extension(&[2.0, 4.0], (0.0, 6.0), false, 4);
        assert_eq!(down, vec![1.5, 1.0, 0.5, 0.0]);
        assert!(extension(&[0.0, 4.0], (0.0, 4.0), true, 4).is_empty());
    }
}
