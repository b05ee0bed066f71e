//! Unbinned toys (bit-identical across threads and shards), Crystal Ball fits and the fitted-yield distribution.

use super::*;

#[test]
fn toys_are_bit_identical_across_threads_and_shards() {
    use gradfit::infer::shards::merge;
    use gradfit::infer::toys::{ToySettings, run_toys};
    use gradfit::infer::{Problem, TestStat};
    let mut m = toy_model_fixed(60.0, 400.0, true);
    // observed data: a toy of the model itself
    let g = m.generator(m.init());
    let obs = m.sample(&g, 99, 0, 1);
    m.set_observed(obs).unwrap();
    let settings = |batch: usize, shard: Option<(u32, u32)>| ToySettings {
        mu: 60.0,
        test_stat: TestStat::QTilde,
        n_toys: 24,
        seed: 5,
        shard,
        batch,
        model_digest: "t".into(),
        toy_max_iter: None,
    };
    let run = |s: &ToySettings| {
        let p = Problem::new(&m, m.observed()).unwrap();
        run_toys(&p, s, &FitOptions::default(), &|_, _| {}).unwrap()
    };
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let two = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let a = one.install(|| run(&settings(1, None)));
    let b = two.install(|| run(&settings(64, None)));
    assert_eq!(a, b);
    let shards: Vec<_> = (0..3)
        .map(|i| two.install(|| run(&settings(5, Some((i, 3))))))
        .collect();
    assert_eq!(merge(shards, &[]).unwrap(), a);
    assert!(a.sig_bkg.iter().all(|r| r.stat.is_some()));
    // the events themselves: the same toy drawn alone, in either pool
    let g = m.generator(m.init());
    let t1 = one.install(|| m.sample(&g, 5, 17, 1));
    let t2 = two.install(|| m.sample(&g, 5, 17, 1));
    let e = |d: &gradfit::model::CombinedData| {
        d.parts[0]
            .downcast_ref::<gradfit::model::unbinned::Events>()
            .unwrap()
            .data
            .clone()
    };
    assert_eq!(e(&t1), e(&t2));
    assert_ne!(e(&t1), e(&m.sample(&g, 5, 18, 1)));
}

/// Evaluation over many events does not depend on the thread count (fixed
/// chunks, summed in order).
#[test]
fn evaluation_is_bit_identical_across_threads() {
    let pools: Vec<_> = [1, 2, 3]
        .iter()
        .map(|&k| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(k)
                .build()
                .unwrap()
        })
        .collect();
    for (label, m) in [
        ("gauss_expo", toy_model(20_000.0, 80_000.0)),
        ("dscb_expo", dscb_model(20_000.0, 80_000.0)),
    ] {
        let g = m.generator(m.init());
        let data = m.sample(&g, 3, 0, 1);
        let n = m.n_pars();
        let theta: Vec<f64> = m.init().iter().map(|v| v * 1.01).collect();
        let eval = || {
            let mut s = m.scratch();
            let (mut gr, mut h) = (vec![0.0; n], vec![0.0; n * n]);
            let f = m.eval(&theta, &data, &mut s, Some(&mut gr), Some(&mut h));
            (f, gr, h)
        };
        let r: Vec<_> = pools.iter().map(|p| p.install(eval)).collect();
        assert!(r[0].0.is_finite(), "{label}");
        assert!(r[0].2.iter().any(|v| *v != 0.0), "{label}");
        assert_eq!(r[0], r[1], "{label}");
        assert_eq!(r[0], r[2], "{label}");
    }
}

/// An extended double-sided Crystal Ball + exponential on [60, 120] (the
/// model of the speed benchmark, `benches/unbinned.rs`), one placeholder event.
fn dscb_model(ns: f64, nb: f64) -> CombinedModel {
    let doc = json!({
        "distributions": [
            {"name": "model", "type": "mixture_dist", "summands": ["sig", "bkg"], "coefficients": ["nsig", "nbkg"], "extended": true},
            {"name": "sig", "type": "crystalball_doublesided_dist", "m": "mass", "m0": "m0", "sigma_L": "sl", "sigma_R": "sr",
             "alpha_L": "al", "n_L": "nl", "alpha_R": "ar", "n_R": "nr"},
            {"name": "bkg", "type": "exponential_dist", "x": "mass", "c": "c"}
        ],
        "data": [{"name": "d", "type": "unbinned", "axes": [{"name": "mass", "min": 60.0, "max": 120.0}], "entries": [[91.0]]}],
        "likelihoods": [{"name": "L", "distributions": ["model"], "data": ["d"]}],
        "parameter_points": [{"name": "default_values", "parameters": [
            {"name": "nsig", "value": ns}, {"name": "nbkg", "value": nb}, {"name": "m0", "value": 91.0},
            {"name": "sl", "value": 2.3}, {"name": "sr", "value": 2.8}, {"name": "al", "value": 1.3},
            {"name": "nl", "value": 3.0}, {"name": "ar", "value": 1.6}, {"name": "nr", "value": 5.0}, {"name": "c", "value": 0.03}]}],
        "analyses": [{"name": "A", "likelihood": "L", "parameters_of_interest": ["nsig"]}]
    });
    load_hs3(&doc, "dscb", Path::new("."), None).unwrap()
}

/// A Crystal Ball fit over many events (several chunks) gives the same
/// result bit for bit on one and on two threads, and its minimum is one:
/// the gradient there is zero to rounding and every step away rises.
#[test]
fn crystal_ball_fit_is_thread_independent_and_a_minimum() {
    let mut m = dscb_model(10_000.0, 30_000.0);
    let g = m.generator(m.init());
    let data = m.sample(&g, 11, 0, 1);
    m.set_observed(data).unwrap();
    let pool = |k: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(k)
            .build()
            .unwrap()
    };
    let a = pool(1).install(|| do_fit(&m));
    let b = pool(2).install(|| do_fit(&m));
    assert_eq!(a.twice_nll.to_bits(), b.twice_nll.to_bits());
    assert_eq!(a.x, b.x);
    assert_eq!(a.errors, b.errors);
    let n = m.n_pars();
    let mut s = m.scratch();
    let mut gr = vec![0.0; n];
    let f = m.eval(&a.x, m.observed(), &mut s, Some(&mut gr), None);
    assert_eq!(f.to_bits(), a.twice_nll.to_bits());
    for i in 0..n {
        // |g_i| sigma_i is the change of twice_nll over one error: tiny at a minimum
        assert!(
            (gr[i] * a.errors[i]).abs() < 1e-4,
            "{}: gradient {} (error {})",
            m.par_names()[i],
            gr[i],
            a.errors[i]
        );
        for sgn in [-1.0, 1.0] {
            let mut t = a.x.clone();
            t[i] += sgn * 0.1 * a.errors[i];
            let ft = m.eval(&t, m.observed(), &mut s, None, None);
            assert!(ft > f, "{}: {ft} <= {f}", m.par_names()[i]);
        }
    }
}

/// The fitted signal yield over 2000 toys: unbiased, and its spread is the
/// fitted error (pulls with mean 0 and width 1).
#[test]
fn fitted_yield_distribution_over_toys() {
    let (ns, nb) = (200.0, 800.0);
    let m = toy_model(ns, nb);
    let g = m.generator(m.init());
    let n_toys = 2000u32;
    let data: Vec<_> = (0..n_toys).map(|t| m.sample(&g, 11, t, 1)).collect();
    let refs: Vec<_> = data.iter().collect();
    let specs = vec![FitSpec::from_model(&m); n_toys as usize];
    let res = gradfit::fit::fit_batch(&m, &refs, &specs, &FitOptions::default());
    let i = m.par_index("nsig").unwrap();
    let (mut vals, mut pulls) = (Vec::new(), Vec::new());
    for (t, r) in res.iter().enumerate() {
        assert!(
            r.status.ok(),
            "toy {t}: {:?} {:?} f {} edm {} it {}",
            r.status,
            r.x,
            r.twice_nll,
            r.edm,
            r.iterations
        );
        vals.push(r.x[i]);
        pulls.push((r.x[i] - ns) / r.errors[i]);
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let sd = |v: &[f64]| {
        let m = mean(v);
        (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (v.len() - 1) as f64).sqrt()
    };
    let (mv, sv) = (mean(&vals), sd(&vals));
    let nt = n_toys as f64;
    assert!(
        (mv - ns).abs() < 4.0 * sv / nt.sqrt(),
        "mean fitted yield {mv} (spread {sv})"
    );
    let (mp, sp) = (mean(&pulls), sd(&pulls));
    assert!(mp.abs() < 0.1, "pull mean {mp}");
    assert!((sp - 1.0).abs() < 0.06, "pull width {sp}");
}
