//! Deterministic block sums: [`LANES`] independent partial sums (lane k adds
//! the products of events k, k + LANES, ... in event order), combined in a
//! fixed pairwise order, so that a sum has the same bits whatever the vector
//! width the loop compiles to, the thread count or how many sums share a loop.
//!
//! Each chunk of [`LANES`] products is formed in a small array before it is
//! added to the lanes: written that way the loops compile to full-width vector
//! code (AVX-512: two registers per sum), where the plain `s[k] += x[k] * y[k]`
//! compiled to 128-bit operations.

/// Independent partial sums: enough for the adds of several vector registers to
/// overlap (a single chain is bound by the add's latency).
pub const LANES: usize = 16;

/// Sum of the lanes in a fixed pairwise order.
#[inline(always)]
fn combine(s: &[f64; LANES]) -> f64 {
    let mut h = [0.0f64; LANES / 2];
    for k in 0..LANES / 2 {
        h[k] = s[k] + s[k + LANES / 2];
    }
    let q = [h[0] + h[4], h[1] + h[5], h[2] + h[6], h[3] + h[7]];
    (q[0] + q[2]) + (q[1] + q[3])
}

/// One chunk of [`LANES`] events of `a` starting at `c`.
#[inline(always)]
fn lanes_at(a: &[f64], c: usize) -> &[f64; LANES] {
    a[c..c + LANES].try_into().expect("a chunk of LANES events")
}

/// Deterministic dot product of the common length of `a` and `b`.
#[inline(always)]
pub(crate) fn dot(a: &[f64], b: &[f64]) -> f64 {
    dots(a, [b])[0]
}

/// Deterministic sum.
#[inline(always)]
pub(crate) fn sum(a: &[f64]) -> f64 {
    let n = a.len();
    let full = n - n % LANES;
    let mut s = [0.0f64; LANES];
    let mut c = 0;
    while c < full {
        let x = lanes_at(a, c);
        for k in 0..LANES {
            s[k] += x[k];
        }
        c += LANES;
    }
    let rest: f64 = a[full..].iter().sum();
    combine(&s) + rest
}

/// `[dot(a, b[0]), dot(a, b[1]), ...]` (over the length of `a`; every `b[r]`
/// at least as long) in one loop that reads `a` once: each result has the
/// bits of its own [`dot`].
#[inline(always)]
pub(crate) fn dots<const R: usize>(a: &[f64], b: [&[f64]; R]) -> [f64; R] {
    let n = b.iter().fold(a.len(), |n, r| n.min(r.len()));
    let full = n - n % LANES;
    let mut s = [[0.0f64; LANES]; R];
    lanes_acc(&a[..full], b, &mut s);
    std::array::from_fn(|r| {
        let mut rest = 0.0;
        for (x, y) in a[full..n].iter().zip(&b[r][full..n]) {
            rest += x * y;
        }
        finish(&s[r], rest)
    })
}

/// The lanes of [`dots`] over `a` (a whole number of [`LANES`] chunks; every
/// `b[r]` at least as long) added to `s`: a sum cut into such pieces, in
/// event order, has the bits of the uncut one.
#[inline(always)]
pub(crate) fn lanes_acc<const R: usize>(a: &[f64], b: [&[f64]; R], s: &mut [[f64; LANES]; R]) {
    let full = a.len() - a.len() % LANES;
    let a = &a[..full];
    let b: [&[f64]; R] = std::array::from_fn(|r| &b[r][..full]);
    let mut c = 0;
    while c < full {
        let x = lanes_at(a, c);
        for r in 0..R {
            let y = lanes_at(b[r], c);
            let mut p = [0.0f64; LANES];
            for k in 0..LANES {
                p[k] = x[k] * y[k];
            }
            for k in 0..LANES {
                s[r][k] += p[k];
            }
        }
        c += LANES;
    }
}

/// `[dot(a, v_0), dot(a, v_1), ...]` with `v_r[i] = f[i] * b[r][i]`, without
/// writing the rows `v_r` (the bits of the dots of the written rows).
#[inline(always)]
pub(crate) fn dots_scaled<const R: usize>(a: &[f64], f: &[f64], b: [&[f64]; R]) -> [f64; R] {
    let n = b.iter().fold(a.len().min(f.len()), |n, r| n.min(r.len()));
    let (a, f) = (&a[..n], &f[..n]);
    let b: [&[f64]; R] = std::array::from_fn(|r| &b[r][..n]);
    let full = n - n % LANES;
    let mut s = [[0.0f64; LANES]; R];
    let mut c = 0;
    while c < full {
        let (x, z) = (lanes_at(a, c), lanes_at(f, c));
        for r in 0..R {
            let y = lanes_at(b[r], c);
            let mut p = [0.0f64; LANES];
            for k in 0..LANES {
                p[k] = x[k] * (z[k] * y[k]);
            }
            for k in 0..LANES {
                s[r][k] += p[k];
            }
        }
        c += LANES;
    }
    std::array::from_fn(|r| {
        let mut rest = 0.0;
        for ((x, z), y) in a[full..].iter().zip(&f[full..]).zip(&b[r][full..]) {
            rest += x * (z * y);
        }
        finish(&s[r], rest)
    })
}

/// Most rows of [`dots_n`] and [`dots_scaled_n`].
pub(crate) const MAXR: usize = 8;

/// [`dots`] over the first `b.len()` (at most [`MAXR`]) rows, into `out`.
#[inline(always)]
pub(crate) fn dots_n(a: &[f64], b: &[&[f64]], out: &mut [f64; MAXR]) {
    macro_rules! go {
        ($($n:literal)*) => {
            match b.len() {
                $($n => {
                    let d = dots::<$n>(a, std::array::from_fn(|r| b[r]));
                    out[..$n].copy_from_slice(&d);
                })*
                _ => unreachable!("at most MAXR rows"),
            }
        };
    }
    go!(1 2 3 4 5 6 7 8);
}

/// [`dots_scaled`] over the first `b.len()` (at most [`MAXR`]) rows, into `out`.
#[inline(always)]
pub(crate) fn dots_scaled_n(a: &[f64], f: &[f64], b: &[&[f64]], out: &mut [f64; MAXR]) {
    macro_rules! go {
        ($($n:literal)*) => {
            match b.len() {
                $($n => {
                    let d = dots_scaled::<$n>(a, f, std::array::from_fn(|r| b[r]));
                    out[..$n].copy_from_slice(&d);
                })*
                _ => unreachable!("at most MAXR rows"),
            }
        };
    }
    go!(1 2 3 4 5 6 7 8);
}

/// The sum of lanes `s` and of the sequential sum `rest` of the events past
/// the last whole chunk.
#[inline(always)]
pub(crate) fn finish(s: &[f64; LANES], rest: f64) -> f64 {
    combine(s) + rest
}

#[cfg(test)]
mod tests {
    use super::{dot, dots, dots_scaled, sum};

    /// The lane sums agree with an exact sum (integers of at most 2^40, so
    /// every partial sum is exact), for every length around the lane count,
    /// and a value in any position counts once.
    #[test]
    fn dot_and_sum_are_exact_on_integers() {
        for n in 0..70 {
            let a: Vec<f64> = (0..n).map(|i| ((i * 7919) % 1013) as f64 - 300.0).collect();
            let b: Vec<f64> = (0..n).map(|i| ((i * 104_729) % 977) as f64).collect();
            let want_s: f64 = a.iter().sum();
            let want_d: f64 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert_eq!(sum(&a), want_s, "sum, n = {n}");
            assert_eq!(dot(&a, &b), want_d, "dot, n = {n}");
            for k in 0..n {
                let mut e = vec![0.0; n];
                e[k] = 1.0;
                assert_eq!(dot(&e, &b), b[k], "lane of {k}, n = {n}");
            }
        }
    }

    /// Several dots in one loop give the bits of the single dots, whatever
    /// the number of rows, and their order does not matter (x y = y x).
    #[test]
    fn dots_have_the_bits_of_single_dots() {
        let mut s = crate::rng::Stream::new(7, 1, 2, 3);
        for n in [0, 1, 15, 16, 17, 100, 256] {
            let rows: Vec<Vec<f64>> = (0..6)
                .map(|_| (0..n).map(|_| s.uniform() - 0.3).collect())
                .collect();
            let a = &rows[0];
            let got = dots(a, [&rows[1], &rows[2], &rows[3], &rows[4], &rows[5]]);
            let f = &rows[1];
            let sc = dots_scaled(a, f, [&rows[2], &rows[3]]);
            for r in 0..2 {
                let v: Vec<f64> = f.iter().zip(&rows[r + 2]).map(|(x, y)| x * y).collect();
                assert_eq!(sc[r].to_bits(), dot(a, &v).to_bits(), "scaled, n {n}");
            }
            for r in 0..5 {
                assert_eq!(got[r].to_bits(), dot(a, &rows[r + 1]).to_bits(), "n {n}");
                assert_eq!(got[r].to_bits(), dot(&rows[r + 1], a).to_bits(), "n {n}");
            }
        }
    }
}
