//! Counter-based random numbers: Philox4x32-10 (Salmon et al., SC'11).
//!
//! Every random variable of a toy has its own stream, addressed by
//! `(seed, toy index, purpose, variable index)`; a stream is the sequence of
//! Philox blocks with counter `[block, variable, toy, purpose]` under the key
//! `[seed_lo, seed_hi]`. The same seed therefore gives bit-identical toys
//! whatever the thread count, batch size, shard split or device order.
//!
//! Philox is written out here rather than taken from a crate because the CUDA
//! kernels (kernels/toys.cu) must reproduce it bit for bit; the known-answer
//! vectors of Random123 pin both implementations.
//!
//! Samplers: uniform doubles in (0, 1) from 53 random bits; normal deviates by
//! Box-Muller (two uniforms each); Poisson deviates by inversion (one uniform)
//! below mean 10 and by Hörmann's PTRS transformed rejection above.

const M0: u32 = 0xD251_1F53;
const M1: u32 = 0xCD9E_8D57;
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;

/// One Philox4x32-10 block: 128 random bits for a counter under a key.
#[inline]
pub fn philox4x32_10(ctr: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let mut c = ctr;
    let mut k = key;
    for r in 0..10 {
        if r > 0 {
            k[0] = k[0].wrapping_add(W0);
            k[1] = k[1].wrapping_add(W1);
        }
        let p0 = (M0 as u64) * (c[0] as u64);
        let p1 = (M1 as u64) * (c[2] as u64);
        c = [
            ((p1 >> 32) as u32) ^ c[1] ^ k[0],
            p1 as u32,
            ((p0 >> 32) as u32) ^ c[3] ^ k[1],
            p0 as u32,
        ];
    }
    c
}

/// Purposes of random streams (the fourth counter word).
pub mod purpose {
    /// Toys generated under the tested hypothesis (signal + background).
    pub const SIG_BKG: u32 = 1;
    /// Toys generated under the background-only (or, for q0, signal) hypothesis.
    pub const BKG: u32 = 2;
}

/// The random stream of one variable of one toy.
#[derive(Debug, Clone)]
pub struct Stream {
    key: [u32; 2],
    ctr: [u32; 4],
    buf: [u32; 4],
    used: usize,
}

impl Stream {
    /// Stream for `(seed, toy, purpose, variable)`.
    pub fn new(seed: u64, toy: u32, purpose: u32, variable: u32) -> Self {
        Stream {
            key: [seed as u32, (seed >> 32) as u32],
            ctr: [0, variable, toy, purpose],
            buf: [0; 4],
            used: 4,
        }
    }

    /// Next 32 random bits.
    #[inline]
    pub fn next_u32(&mut self) -> u32 {
        if self.used == 4 {
            self.buf = philox4x32_10(self.ctr, self.key);
            self.ctr[0] = self.ctr[0].wrapping_add(1);
            self.used = 0;
        }
        let v = self.buf[self.used];
        self.used += 1;
        v
    }

    /// Uniform double in the open interval (0, 1).
    #[inline]
    pub fn uniform(&mut self) -> f64 {
        let a = (self.next_u32() >> 5) as u64; // 27 bits
        let b = (self.next_u32() >> 6) as u64; // 26 bits
        ((a << 26 | b) as f64 + 0.5) * (1.0 / 9007199254740992.0)
    }

    /// Standard normal deviate (Box-Muller, cosine branch).
    #[inline]
    pub fn normal(&mut self) -> f64 {
        let u1 = self.uniform();
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// Poisson deviate with mean `lam` (returned as f64; 0 for `lam <= 0`).
    pub fn poisson(&mut self, lam: f64) -> f64 {
        self.poisson_with(&Poisson::new(lam))
    }

    /// Poisson deviate with the sampler constants of `p` computed beforehand
    /// (the same numbers as [`Stream::poisson`] with `p`'s mean, bit for bit).
    pub fn poisson_with(&mut self, p: &Poisson) -> f64 {
        match *p {
            Poisson::Zero => 0.0,
            Poisson::Inversion { lam, exp_neg } => {
                // inversion by sequential search
                let u = self.uniform();
                let mut k = 0.0;
                let mut p = exp_neg;
                let mut cdf = p;
                while u > cdf {
                    k += 1.0;
                    p *= lam / k;
                    cdf += p;
                    if p < 1e-300 && k > lam {
                        break;
                    }
                }
                k
            }
            Poisson::Ptrs(ref c) => self.ptrs(c),
        }
    }

    /// PTRS: W. Hörmann, Insurance: Mathematics and Economics 12 (1993) 39-45.
    fn ptrs(&mut self, c: &Ptrs) -> f64 {
        loop {
            let u = self.uniform() - 0.5;
            let v = self.uniform();
            let us = 0.5 - u.abs();
            let k = ((2.0 * c.a / us + c.b) * u + c.lam + 0.43).floor();
            if us >= 0.07 && v <= c.vr {
                return k;
            }
            if k < 0.0 || (us < 0.013 && v > us) {
                continue;
            }
            let lhs = v.ln() + c.inv_alpha.ln() - (c.a / (us * us) + c.b).ln();
            let rhs = -c.lam + k * c.loglam - ln_factorial(k);
            if lhs <= rhs {
                return k;
            }
        }
    }
}

/// Constants of the PTRS sampler for one mean.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ptrs {
    lam: f64,
    loglam: f64,
    a: f64,
    b: f64,
    inv_alpha: f64,
    vr: f64,
}

/// A Poisson distribution with its sampler's constants (one `exp`, or a
/// `sqrt` and a `ln`, per mean instead of per draw: toys draw many times
/// from the same means).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Poisson {
    /// Mean not positive (or NaN): every draw is 0.
    Zero,
    /// Mean below 10: inversion from `exp(-lam)`.
    Inversion {
        /// The mean.
        lam: f64,
        /// `exp(-lam)`.
        exp_neg: f64,
    },
    /// Mean of 10 or more: transformed rejection.
    Ptrs(Ptrs),
}

impl Poisson {
    /// The sampler for mean `lam`.
    pub fn new(lam: f64) -> Self {
        if !(lam > 0.0) {
            return Poisson::Zero;
        }
        if lam < 10.0 {
            return Poisson::Inversion {
                lam,
                exp_neg: (-lam).exp(),
            };
        }
        let slam = lam.sqrt();
        let b = 0.931 + 2.53 * slam;
        Poisson::Ptrs(Ptrs {
            lam,
            loglam: lam.ln(),
            a: -0.059 + 0.02483 * b,
            b,
            inv_alpha: 1.1239 + 1.1328 / (b - 3.4),
            vr: 0.9277 - 3.6224 / (b - 2.0),
        })
    }
}

/// Largest count whose `ln k!` comes from the table of [`ln_factorial`].
const LN_FACT_TABLE: usize = 4096;

/// `ln Gamma(x + 1)`, i.e. `ln x!` for counts: tabulated for integers below
/// 4096 (the table holds `libm::lgamma`'s own values, so the result is the
/// same bits either way), `libm::lgamma` elsewhere.
#[inline]
pub fn ln_factorial(x: f64) -> f64 {
    static TABLE: std::sync::OnceLock<Vec<f64>> = std::sync::OnceLock::new();
    if x >= 0.0 && x < LN_FACT_TABLE as f64 && x.fract() == 0.0 {
        let t = TABLE.get_or_init(|| {
            (0..LN_FACT_TABLE)
                .map(|k| libm::lgamma(k as f64 + 1.0))
                .collect()
        });
        t[x as usize]
    } else {
        libm::lgamma(x + 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random123_known_answers() {
        assert_eq!(
            philox4x32_10([0; 4], [0; 2]),
            [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]
        );
        assert_eq!(
            philox4x32_10([u32::MAX; 4], [u32::MAX; 2]),
            [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]
        );
        assert_eq!(
            philox4x32_10(
                [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
                [0xa4093822, 0x299f31d0]
            ),
            [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]
        );
    }

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let draw = |s: &mut Stream| (0..10).map(|_| s.uniform()).collect::<Vec<_>>();
        let a = draw(&mut Stream::new(42, 7, purpose::SIG_BKG, 3));
        let b = draw(&mut Stream::new(42, 7, purpose::SIG_BKG, 3));
        let c = draw(&mut Stream::new(42, 7, purpose::SIG_BKG, 4));
        let d = draw(&mut Stream::new(43, 7, purpose::SIG_BKG, 3));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
        assert!(a.iter().all(|x| *x > 0.0 && *x < 1.0));
    }

    fn moments(xs: &[f64]) -> (f64, f64) {
        let n = xs.len() as f64;
        let m = xs.iter().sum::<f64>() / n;
        let v = xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0);
        (m, v)
    }

    #[test]
    fn poisson_and_normal_moments() {
        let n = 200_000;
        for &lam in &[0.3, 3.0, 9.9, 10.0, 57.0, 2500.0] {
            let xs: Vec<f64> = (0..n)
                .map(|i| Stream::new(1, i, purpose::BKG, 0).poisson(lam))
                .collect();
            let (m, v) = moments(&xs);
            // 5 standard errors of the mean and of the variance
            let se_m = (lam / n as f64).sqrt();
            let se_v = lam * (2.0 / n as f64).sqrt() * (1.0 + 1.0 / (2.0 * lam)).sqrt();
            assert!((m - lam).abs() < 5.0 * se_m, "lam {lam}: mean {m}");
            assert!((v - lam).abs() < 5.0 * se_v, "lam {lam}: variance {v}");
            assert!(xs.iter().all(|x| *x >= 0.0 && x.fract() == 0.0));
        }
        let xs: Vec<f64> = (0..n)
            .map(|i| Stream::new(9, i, purpose::BKG, 1).normal())
            .collect();
        let (m, v) = moments(&xs);
        assert!(m.abs() < 5.0 / (n as f64).sqrt());
        assert!((v - 1.0).abs() < 5.0 * (2.0 / n as f64).sqrt());
    }

    #[test]
    fn tabulated_constants_give_the_same_bits() {
        for k in [0.0, 1.0, 7.0, 170.0, 4095.0, 4096.0, 1e6, 2.5, 0.5] {
            assert_eq!(
                ln_factorial(k).to_bits(),
                libm::lgamma(k + 1.0).to_bits(),
                "{k}"
            );
        }
        for lam in [-1.0, 0.0, 0.3, 9.99, 10.0, 57.3, 2500.0, f64::NAN] {
            let p = Poisson::new(lam);
            for toy in 0..200 {
                let a = Stream::new(3, toy, purpose::BKG, 2).poisson_with(&p);
                // the sampler as it was: constants recomputed on every draw
                let b = reference_poisson(&mut Stream::new(3, toy, purpose::BKG, 2), lam);
                assert_eq!(a.to_bits(), b.to_bits(), "lam {lam}, toy {toy}");
            }
        }
    }

    /// The sampler written out in one piece, as the CUDA kernel has it.
    fn reference_poisson(s: &mut Stream, lam: f64) -> f64 {
        if !(lam > 0.0) {
            return 0.0;
        }
        if lam < 10.0 {
            let u = s.uniform();
            let (mut k, mut p) = (0.0, (-lam).exp());
            let mut cdf = p;
            while u > cdf {
                k += 1.0;
                p *= lam / k;
                cdf += p;
                if p < 1e-300 && k > lam {
                    break;
                }
            }
            return k;
        }
        let slam = lam.sqrt();
        let loglam = lam.ln();
        let b = 0.931 + 2.53 * slam;
        let a = -0.059 + 0.02483 * b;
        let inv_alpha = 1.1239 + 1.1328 / (b - 3.4);
        let vr = 0.9277 - 3.6224 / (b - 2.0);
        loop {
            let u = s.uniform() - 0.5;
            let v = s.uniform();
            let us = 0.5 - u.abs();
            let k = ((2.0 * a / us + b) * u + lam + 0.43).floor();
            if us >= 0.07 && v <= vr {
                return k;
            }
            if k < 0.0 || (us < 0.013 && v > us) {
                continue;
            }
            let lhs = v.ln() + inv_alpha.ln() - (a / (us * us) + b).ln();
            if lhs <= -lam + k * loglam - libm::lgamma(k + 1.0) {
                return k;
            }
        }
    }

    #[test]
    fn poisson_pmf_matches_for_small_mean() {
        // chi-square test of the frequencies for mean 4 against the exact pmf
        let n = 100_000u32;
        let lam: f64 = 4.0;
        let mut counts = [0.0; 16];
        for i in 0..n {
            let k = Stream::new(5, i, purpose::SIG_BKG, 0).poisson(lam) as usize;
            counts[k.min(15)] += 1.0;
        }
        let mut chi2 = 0.0;
        let mut cum = 0.0;
        for k in 0..16 {
            let p = if k < 15 {
                (-lam + k as f64 * lam.ln() - libm::lgamma(k as f64 + 1.0)).exp()
            } else {
                1.0 - cum
            };
            cum += p;
            let e = p * n as f64;
            chi2 += (counts[k] - e) * (counts[k] - e) / e;
        }
        // 15 degrees of freedom: P(chi2 > 37.7) = 0.001
        assert!(chi2 < 37.7, "chi2 {chi2}");
    }
}
