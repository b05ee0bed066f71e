//! Unit tests of the densities, their integrals, kernels and samplers.

use super::asimov::quadrature;
use super::atoms::{Atom, Mode, tri};
use super::sample::sample_atom;
use super::shapes::{Hist, Shape};
use crate::rng::Stream;

fn atom(shape: Shape, lo: f64, hi: f64) -> Atom {
    Atom {
        shape,
        obs: 0,
        lo,
        hi,
        u0: 0,
        name: "t".into(),
    }
}

/// Shapes with parameters and ranges exercised by every test.
pub(super) fn cases() -> Vec<(Atom, Vec<f64>)> {
    let hist = Hist {
        edges: vec![0.0, 1.0, 2.5, 3.0, 5.0],
        contents: vec![3.0, 1.0, 4.0, 2.0],
        regular: false,
    };
    vec![
        (atom(Shape::Gauss, 60.0, 120.0), vec![91.0, 2.5]),
        (atom(Shape::Gauss, -1.0, 4.0), vec![5.5, 0.7]), // peak outside the range
        (atom(Shape::LogNormal, 0.5, 20.0), vec![1.2, 0.6]),
        (atom(Shape::Expo, 60.0, 120.0), vec![0.035]),
        (atom(Shape::Expo, 0.0, 10.0), vec![-0.4]),
        (atom(Shape::Expo, 0.0, 10.0), vec![3e-7]),
        (
            atom(Shape::CrystalBall, 5.0, 6.0),
            vec![5.28, 0.03, 1.4, 3.2],
        ),
        (
            atom(Shape::CrystalBall, 5.0, 6.0),
            vec![5.3, 0.05, -0.9, 1.0],
        ),
        (
            atom(Shape::DoubleCB, 60.0, 120.0),
            vec![91.0, 2.3, 3.1, 1.2, 2.5, 1.6, 5.0],
        ),
        (
            atom(Shape::DoubleCB, 0.0, 10.0),
            vec![4.0, 0.8, 1.1, 0.7, 1.0000001, 2.0, 1.3],
        ),
        (atom(Shape::Chebychev(3), 0.0, 10.0), vec![0.3, -0.2, 0.1]),
        (
            atom(Shape::Bernstein(4), -2.0, 3.0),
            vec![1.0, 0.4, 2.0, 0.7],
        ),
        (atom(Shape::Polynomial(3), 1.0, 4.0), vec![2.0, -0.3, 0.12]),
        (atom(Shape::Uniform, -3.0, 7.0), vec![]),
        (atom(Shape::Histogram(hist), 0.0, 5.0), vec![]),
    ]
}

/// Breakpoints of the unnormalised density (kinks) inside [lo, hi].
fn kinks(a: &Atom, p: &[f64]) -> Vec<f64> {
    let mut b = vec![a.lo, a.hi];
    match &a.shape {
        Shape::CrystalBall => {
            let al = p[2].abs();
            b.push(p[0]);
            b.push(if p[2] > 0.0 {
                p[0] - al * p[1]
            } else {
                p[0] + al * p[1]
            });
        }
        Shape::DoubleCB => b.extend([p[0], p[0] - p[3] * p[1], p[0] + p[5] * p[2]]),
        Shape::Histogram(h) => b.extend_from_slice(&h.edges),
        _ => {}
    }
    b.retain(|x| *x >= a.lo && *x <= a.hi);
    b.sort_by(f64::total_cmp);
    b.dedup();
    b
}

/// Composite 8-point Gauss-Legendre with 4000 panels between kinks.
fn quad(a: &Atom, p: &[f64], lo: f64, hi: f64) -> f64 {
    let mut br: Vec<f64> = kinks(a, p)
        .into_iter()
        .filter(|x| *x > lo && *x < hi)
        .collect();
    br.push(lo);
    br.push(hi);
    br.sort_by(f64::total_cmp);
    let (xs, ws) = quadrature(&br, 4000);
    xs.iter()
        .zip(&ws)
        .map(|(x, w)| w * a.shape.ln_f(*x, p, a.lo, a.hi).exp())
        .sum()
}

#[test]
fn normalisation_integrals_match_quadrature() {
    for (a, p) in cases() {
        let n: f64 = a.shape.integral(&p, a.lo, a.hi, a.lo, a.hi);
        let q = quad(&a, &p, a.lo, a.hi);
        assert!(
            ((n - q) / q).abs() < 1e-12,
            "{}: closed form {n} quadrature {q}",
            a.shape.name()
        );
        // a sub-range (the CDF used by sampling)
        let (s0, s1) = (a.lo + 0.3 * (a.hi - a.lo), a.lo + 0.8 * (a.hi - a.lo));
        let ns: f64 = a.shape.integral(&p, s0, s1, a.lo, a.hi);
        let qs = quad(&a, &p, s0, s1);
        assert!(
            ((ns - qs) / qs).abs() < 1e-12,
            "{}: sub-range {ns} vs {qs}",
            a.shape.name()
        );
        // ln_norm agrees with the value
        let norm = a.norm(&p).unwrap();
        assert!((norm.ln_n - n.ln()).abs() < 1e-13 * n.ln().abs().max(1.0));
    }
}

/// ln q at every point of a block, its gradient rows and, per event, the
/// packed Hessian from `hess_sum` with the indicator of that event as weights.
fn kernel(a: &Atom, p: &[f64], x: &[f64]) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let d = a.d();
    let bs = x.len();
    let dd = d * (d + 1) / 2;
    let norm = a.norm(p).unwrap();
    let (mut lnq, mut g) = (vec![0.0; bs], vec![0.0; d * bs]);
    a.block(p, &norm, x, Mode::Hess, bs, &mut lnq, &mut g);
    let mut h = vec![0.0; dd * bs];
    for b in 0..bs {
        let mut c = vec![0.0; bs];
        c[b] = 1.0;
        let mut out = vec![0.0; dd];
        a.hess_sum(p, &norm, x, &c, &g, bs, &mut out);
        for k in 0..dd {
            h[k * bs + b] = out[k];
        }
    }
    // value-only pass gives the same numbers; weights add up linearly
    let mut lnq2 = vec![0.0; bs];
    a.block(p, &norm, x, Mode::Value, bs, &mut lnq2, &mut []);
    assert_eq!(lnq, lnq2);
    let c: Vec<f64> = (0..bs).map(|b| 0.5 + b as f64 / bs as f64).collect();
    let mut all = vec![0.0; dd];
    a.hess_sum(p, &norm, x, &c, &g, bs, &mut all);
    for k in 0..dd {
        let want: f64 = (0..bs).map(|b| c[b] * h[k * bs + b]).sum();
        assert!(
            (all[k] - want).abs() <= 1e-9 * want.abs().max(1.0),
            "{}: weighted sum",
            a.shape.name()
        );
    }
    (lnq, g, h)
}

fn points(a: &Atom) -> Vec<f64> {
    (0..37)
        .map(|k| a.lo + (a.hi - a.lo) * (k as f64 + 0.37) / 37.3)
        .collect()
}

#[test]
fn kernel_values_are_normalised_densities() {
    for (a, p) in cases() {
        let x = points(&a);
        let (lnq, _, _) = kernel(&a, &p, &x);
        let n: f64 = a.shape.integral(&p, a.lo, a.hi, a.lo, a.hi);
        for (xi, l) in x.iter().zip(&lnq) {
            let want = a.shape.ln_f(*xi, &p, a.lo, a.hi) - n.ln();
            assert!(
                (l - want).abs() < 1e-13 * want.abs().max(1.0),
                "{} at {xi}",
                a.shape.name()
            );
        }
    }
}

#[test]
fn kernel_gradients_and_hessians_match_differences() {
    for (a, p) in cases() {
        let d = a.d();
        let x = points(&a);
        let bs = x.len();
        let (_, g, h) = kernel(&a, &p, &x);
        for k in 0..d {
            let s = 1e-6 * p[k].abs().max(1e-3);
            let (mut pp, mut pm) = (p.clone(), p.clone());
            pp[k] += s;
            pm[k] -= s;
            let (lp, gp, _) = kernel(&a, &pp, &x);
            let (lm, gm, _) = kernel(&a, &pm, &x);
            for b in 0..bs {
                let fd = (lp[b] - lm[b]) / (2.0 * s);
                let an = g[k * bs + b];
                assert!(
                    (fd - an).abs() < 2e-6 * an.abs().max(1.0),
                    "{} d/dp{k} at {}: {an} vs {fd}",
                    a.shape.name(),
                    x[b]
                );
                for j in 0..d {
                    let fd2 = (gp[j * bs + b] - gm[j * bs + b]) / (2.0 * s);
                    let an2 = h[tri(j, k) * bs + b];
                    assert!(
                        (fd2 - an2).abs() < 2e-5 * an2.abs().max(1.0),
                        "{} d2/dp{j}dp{k} at {}: {an2} vs {fd2}",
                        a.shape.name(),
                        x[b]
                    );
                }
            }
        }
    }
}

/// Binned chi-square of 20000 draws against the closed-form bin probabilities.
#[test]
fn sampling_matches_the_density() {
    for (ci, (a, p)) in cases().into_iter().enumerate() {
        let norm = a.norm(&p).unwrap();
        let n = 20000;
        let nb = 25;
        let edges: Vec<f64> = (0..=nb)
            .map(|k| a.lo + (a.hi - a.lo) * k as f64 / nb as f64)
            .collect();
        let mut counts = vec![0.0; nb];
        let mut s = Stream::new(7, ci as u32, 1, 0);
        for _ in 0..n {
            let x = sample_atom(&a, &p, &norm, &mut s);
            assert!(x >= a.lo && x <= a.hi, "{}: {x} outside", a.shape.name());
            let k = (((x - a.lo) / (a.hi - a.lo)) * nb as f64) as usize;
            counts[k.min(nb - 1)] += 1.0;
        }
        let (mut chi2, mut dof) = (0.0, 0);
        for k in 0..nb {
            let e = n as f64
                * a.shape
                    .integral::<f64>(&p, edges[k], edges[k + 1], a.lo, a.hi)
                / norm.n;
            if e > 5.0 {
                chi2 += (counts[k] - e) * (counts[k] - e) / e;
                dof += 1;
            } else {
                assert!(
                    counts[k] < e + 6.0 * e.sqrt() + 3.0,
                    "{}: bin {k}",
                    a.shape.name()
                );
            }
        }
        // P(chi2 > 2.3 dof + 10) is below 1e-4 for these dof
        assert!(
            chi2 < 2.3 * dof as f64 + 10.0,
            "{} (case {ci}): chi2 {chi2} for {dof} bins",
            a.shape.name()
        );
    }
}

#[test]
fn poisson_pmf_and_derivatives() {
    let a = atom(Shape::Poisson, 0.0, 100.0);
    let p = [4.5];
    let norm = a.norm(&p).unwrap();
    let x = [0.0, 3.0, 7.0];
    let (mut l, mut g) = ([0.0; 3], [0.0; 3]);
    a.block(&p, &norm, &x, Mode::Hess, 3, &mut l, &mut g);
    let mut h = [0.0; 3];
    for k in 0..3 {
        let mut c = [0.0; 3];
        c[k] = 1.0;
        let mut o = [0.0];
        a.hess_sum(&p, &norm, &x, &c, &g, 3, &mut o);
        h[k] = o[0];
    }
    for k in 0..3 {
        let want = -4.5 + x[k] * 4.5f64.ln() - libm::lgamma(x[k] + 1.0);
        assert!((l[k] - want).abs() < 1e-14);
        assert!((g[k] - (x[k] / 4.5 - 1.0)).abs() < 1e-15);
        assert!((h[k] + x[k] / 20.25).abs() < 1e-15);
    }
}

#[test]
fn invalid_parameters_are_named() {
    let a = atom(Shape::Gauss, 0.0, 1.0);
    assert!(a.norm(&[0.5, -1.0]).unwrap_err().contains("sigma"));
    let c = atom(Shape::Chebychev(1), 0.0, 1.0);
    // 1 + a1 z integrates to (hi - lo) whatever a1: positive, but the density is negative somewhere
    assert!(c.norm(&[3.0]).is_ok());
    let p = atom(Shape::Polynomial(1), 0.0, 1.0);
    assert!(p.norm(&[-1.0]).unwrap_err().contains("not > 0"));
    let cb = atom(Shape::DoubleCB, 0.0, 1.0);
    assert!(
        cb.norm(&[0.5, 0.1, 0.1, 1.0, 0.0, 1.0, 2.0])
            .unwrap_err()
            .contains("n_L")
    );
}

#[test]
fn crystal_ball_matches_the_hs3_formula() {
    // the HS3 text, written out independently of the kernel
    let f = |m: f64, p: &[f64]| -> f64 {
        let (m0, sl, sr, al, nl, ar, nr) = (p[0], p[1], p[2], p[3], p[4], p[5], p[6]);
        let tl = (m - m0) / sl;
        let tr = (m - m0) / sr;
        let a = |n: f64, al: f64| (n / al).powf(n) * (-al * al / 2.0).exp();
        let b = |n: f64, al: f64| n / al - al;
        if tl < -al {
            a(nl, al) * (b(nl, al) - tl).powf(-nl)
        } else if tl <= 0.0 {
            (-tl * tl / 2.0).exp()
        } else if tr <= ar {
            (-tr * tr / 2.0).exp()
        } else {
            a(nr, ar) * (b(nr, ar) + tr).powf(-nr)
        }
    };
    let p = [91.0, 2.3, 3.1, 1.2, 2.5, 1.6, 5.0];
    for k in 0..200 {
        let x = 60.0 + 60.0 * k as f64 / 199.0;
        let got = Shape::DoubleCB.ln_f(x, &p, 60.0, 120.0).exp();
        let want = f(x, &p);
        assert!(((got - want) / want).abs() < 1e-13, "{x}: {got} vs {want}");
    }
    // one-sided RooCBShape: alpha < 0 mirrors the tail to the right
    let q = [5.3, 0.05, -0.9, 2.0];
    let mirrored = [-5.3, 0.05, 0.9, 2.0];
    for k in 0..50 {
        let x = 5.0 + k as f64 / 49.0;
        let a = Shape::CrystalBall.ln_f(x, &q, 5.0, 6.0);
        let b = Shape::CrystalBall.ln_f(-x, &mirrored, -6.0, -5.0);
        assert!((a - b).abs() < 1e-13);
    }
}

/// The AVX-512 / AVX2 build of the event kernel (whichever the CPU has) gives
/// the same bits as the baseline one.
#[test]
fn avx2_and_baseline_kernels_agree_bit_for_bit() {
    use crate::model::Likelihood;
    use serde_json::json;
    use std::sync::atomic::Ordering;
    let entries: Vec<serde_json::Value> = (0..5000)
        .map(|i| json!([60.0 + 60.0 * ((i as f64 * 0.7548776662) % 1.0)]))
        .collect();
    let doc = json!({
        "distributions": [
            {"name": "model", "type": "mixture_dist", "summands": ["sig", "bkg", "cb"], "coefficients": ["ns", "nb", "nc"], "extended": true},
            {"name": "sig", "type": "gaussian_dist", "x": "m", "mean": "mu", "sigma": "s"},
            {"name": "bkg", "type": "exponential_dist", "x": "m", "c": "c"},
            {"name": "cb", "type": "crystalball_doublesided_dist", "m": "m", "m0": "mu", "sigma_L": "s", "sigma_R": 3.0,
             "alpha_L": "al", "n_L": "nl", "alpha_R": 1.5, "n_R": 4.0}
        ],
        "data": [{"name": "d", "type": "unbinned", "axes": [{"name": "m", "min": 60.0, "max": 120.0}], "entries": entries}],
        "parameter_points": [{"name": "p", "parameters": [
            {"name": "ns", "value": 1000.0}, {"name": "nb", "value": 3000.0}, {"name": "nc", "value": 1000.0},
            {"name": "mu", "value": 91.0}, {"name": "s", "value": 2.5}, {"name": "c", "value": 0.03},
            {"name": "al", "value": 1.2}, {"name": "nl", "value": 3.0}]}]
    });
    let m = super::load_hs3(&doc, "t", std::path::Path::new("."), None).unwrap();
    let n = m.n_pars();
    let eval = || {
        let mut s = m.scratch();
        let (mut g, mut h) = (vec![0.0; n], vec![0.0; n * n]);
        let f = m.eval(m.init(), m.observed(), &mut s, Some(&mut g), Some(&mut h));
        (f, g, h)
    };
    let fast = eval();
    super::kernel::BASELINE_ONLY.store(true, Ordering::Relaxed);
    let base = eval();
    super::kernel::BASELINE_ONLY.store(false, Ordering::Relaxed);
    assert!(fast.0.is_finite());
    assert_eq!(fast, base);
}

/// The branch-free block kernels of the Crystal Ball agree with the scalar
/// per-event forms.
#[test]
fn crystal_ball_block_matches_the_scalar_form() {
    use super::cb::CbEval;
    for (a, p) in cases() {
        if !matches!(a.shape, Shape::CrystalBall | Shape::DoubleCB) {
            continue;
        }
        let d = a.d();
        let cb = CbEval::new(&a.shape, &p);
        let x = points(&a);
        let nb = x.len();
        let ng = vec![0.0; d];
        let (mut lnq, mut g) = (vec![0.0; nb], vec![0.0; d * nb]);
        cb.block(&x, 0.0, true, &ng, d, nb, &mut lnq, &mut g);
        let c: Vec<f64> = (0..nb).map(|b| 0.3 + b as f64 / nb as f64).collect();
        let mut hb = vec![0.0; d * (d + 1) / 2];
        cb.hess_block(&x, &c, d, &mut hb);
        let mut acc = [0.0; 28];
        for b in 0..nb {
            let mut ge = [0.0; 7];
            let lf = cb.event(x[b], true, &mut ge);
            assert!(
                (lf - lnq[b]).abs() <= 1e-13 * lf.abs().max(1.0),
                "{} at {}",
                a.shape.name(),
                x[b]
            );
            for k in 0..d {
                assert!(
                    (ge[k] - g[k * nb + b]).abs() <= 1e-12 * ge[k].abs().max(1.0),
                    "{} d{k} at {}",
                    a.shape.name(),
                    x[b]
                );
            }
            cb.hess_acc(x[b], c[b], &mut acc);
        }
        for k in 0..d * (d + 1) / 2 {
            assert!(
                (acc[k] - hb[k]).abs() <= 1e-11 * acc[k].abs().max(1.0),
                "{} h{k}: {} vs {}",
                a.shape.name(),
                acc[k],
                hb[k]
            );
        }
    }
}
