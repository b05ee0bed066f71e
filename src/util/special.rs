//! Special functions (candle has no lgamma; erf comes from libm).

/// ln Gamma(x) for x > 0.
pub fn lgamma(x: f64) -> f64 {
    libm::lgamma(x)
}

/// Standard normal cumulative distribution function.
pub fn normal_cdf(x: f64) -> f64 {
    0.5 * libm::erfc(-x / std::f64::consts::SQRT_2)
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
}
