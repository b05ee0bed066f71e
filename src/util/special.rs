//! Special functions (candle has no lgamma; erf comes from libm).

/// ln Gamma(x) for x > 0.
pub fn lgamma(x: f64) -> f64 {
    libm::lgamma(x)
}

/// Standard normal cumulative distribution function.
pub fn normal_cdf(x: f64) -> f64 {
    0.5 * libm::erfc(-x / std::f64::consts::SQRT_2)
}

/// ln of the standard normal survival function, ln(1 - Phi(x)), finite far
/// into the tail where `1 - Phi(x)` underflows (x above about 38): there the
/// asymptotic (Mills ratio) series, whose first omitted term is below 1e-12
/// relative for x >= 30.
pub fn ln_normal_sf(x: f64) -> f64 {
    if x < 30.0 {
        return normal_cdf(-x).ln();
    }
    let r = 1.0 / (x * x);
    let series = 1.0 - r * (1.0 - 3.0 * r * (1.0 - 5.0 * r * (1.0 - 7.0 * r)));
    -0.5 * x * x - x.ln() - 0.5 * (2.0 * std::f64::consts::PI).ln() + series.ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        assert!((lgamma(5.0) - 24f64.ln()).abs() < 1e-14);
        assert!((normal_cdf(0.0) - 0.5).abs() < 1e-16);
        assert!((normal_cdf(1.959963984540054) - 0.975).abs() < 1e-12);
        assert!((normal_cdf(-5.0) - 2.866515718791939e-07).abs() < 1e-20);
    }

    #[test]
    fn tail_log_is_continuous_and_finite() {
        // the series agrees with the direct form where both hold (scipy:
        // norm.logsf(30) = -454.32124395634327)
        let direct = normal_cdf(-30.0).ln();
        let r: f64 = 1.0 / 900.0;
        let series = -450.0 - 30f64.ln() - 0.5 * (2.0 * std::f64::consts::PI).ln()
            + (1.0 - r * (1.0 - 3.0 * r * (1.0 - 5.0 * r * (1.0 - 7.0 * r)))).ln();
        assert!(
            (direct - series).abs() < 1e-9 * direct.abs(),
            "{direct} {series}"
        );
        assert!((ln_normal_sf(30.0) - -454.32124395634327).abs() < 1e-9);
        // scipy: norm.logsf(300) = -45006.62273211866
        assert!((ln_normal_sf(300.0) - -45006.62273211866).abs() < 1e-8);
        assert!(ln_normal_sf(1e4).is_finite());
    }
}
