//! The batched minimiser: batch equals one-by-one, masking, failures isolated, bounds respected.

mod common;
use common::*;
use gradfit::fit::{self, FitOptions, FitSpec, FitStatus};
use gradfit::model::{HistFactoryModel, ModelOptions};
use gradfit::workspace::ReadOptions;

fn example() -> HistFactoryModel {
    HistFactoryModel::load(
        &repo("examples/workspaces/two-channel.json"),
        &[],
        &ReadOptions::default(),
        &ModelOptions::default(),
    )
    .unwrap()
}

#[test]
fn batch_equals_individual_fits() {
    let m = example();
    let poi = m.poi.unwrap();
    let specs: Vec<FitSpec> = (0..24)
        .map(|k| FitSpec::from_model(&m).fix(poi, 0.25 * k as f64))
        .collect();
    let opts = FitOptions::default();
    let batch = fit::fit_batch(&m, &[m.observed()], &specs, &opts);
    let small_chunks = fit::fit_batch(
        &m,
        &[m.observed()],
        &specs,
        &FitOptions {
            chunk: 5,
            ..opts.clone()
        },
    );
    for (k, s) in specs.iter().enumerate() {
        let one = fit::fit(&m, m.observed(), s, &opts);
        assert!(one.converged);
        assert_eq!(batch[k].twice_nll, one.twice_nll, "member {k}");
        assert_eq!(batch[k].x, one.x, "member {k}");
        assert_eq!(small_chunks[k].x, one.x, "member {k}");
        assert_eq!(batch[k].iterations, one.iterations);
    }
}

#[test]
fn a_failing_member_does_not_stop_the_batch() {
    let m = example();
    let jes = m.par_index("staterror_SR[0]").unwrap();
    let good = FitSpec::from_model(&m);
    // a start that is not a number: the likelihood is undefined there
    let mut bad = FitSpec::from_model(&m);
    bad.init[jes] = f64::NAN;
    let res = fit::fit_batch(
        &m,
        &[m.observed()],
        &[good.clone(), bad, good],
        &FitOptions::default(),
    );
    assert!(res[0].converged && res[2].converged);
    assert!(!res[1].converged);
    assert_eq!(res[1].status, FitStatus::NonFiniteStart);
    assert_eq!(res[0].x, res[2].x);
}

#[test]
fn per_member_datasets() {
    let m = example();
    let mut d2 = m.observed().clone();
    d2.main.iter_mut().for_each(|x| *x += 10.0);
    let d2 = m.dataset(d2.main, d2.aux).unwrap();
    let spec = FitSpec::from_model(&m);
    let res = fit::fit_batch(
        &m,
        &[m.observed(), &d2],
        &[spec.clone(), spec.clone()],
        &FitOptions::default(),
    );
    let a = fit::fit(&m, m.observed(), &spec, &FitOptions::default());
    let b = fit::fit(&m, &d2, &spec, &FitOptions::default());
    assert_eq!(res[0].x, a.x);
    assert_eq!(res[1].x, b.x);
    assert_ne!(a.x, b.x);
}

#[test]
fn minimum_at_a_bound_satisfies_the_kkt_conditions() {
    // Fewer events than the background: mu wants to go negative and stops at its bound 0.
    let m = example();
    let mut d = m.observed().clone();
    for (k, x) in d.main.iter_mut().enumerate() {
        if k >= 2 {
            *x = (*x * 0.6f64).round();
        }
    }
    let d = m.dataset(d.main, d.aux).unwrap();
    let r = fit::fit(&m, &d, &FitSpec::from_model(&m), &FitOptions::default());
    assert!(r.converged, "{:?}", r.status);
    let poi = m.poi.unwrap();
    assert_eq!(r.x[poi], 0.0, "mu at its lower bound");
    let (_, g) = m.twice_nll_grad(&r.x, &d);
    assert!(g[poi] > 0.0, "gradient pushes against the bound");
    for i in 0..m.n_pars() {
        let (lo, hi) = m.bounds[i];
        if r.x[i] > lo && r.x[i] < hi {
            assert!(
                g[i].abs() < 1e-5,
                "{}: gradient {} at an interior minimum",
                m.par_names[i],
                g[i]
            );
        }
    }
    // no feasible point nearby is lower
    let mut rng = TestRng::new(1);
    for _ in 0..200 {
        let x: Vec<f64> = r
            .x
            .iter()
            .enumerate()
            .map(|(i, v)| (v + 1e-3 * (rng.uniform() - 0.5)).clamp(m.bounds[i].0, m.bounds[i].1))
            .collect();
        assert!(m.twice_nll(&x, &d) >= r.twice_nll - 1e-12);
    }
}

#[test]
fn different_starting_points_reach_the_same_minimum() {
    let m = example();
    let mut rng = TestRng::new(2);
    let base = fit::fit(
        &m,
        m.observed(),
        &FitSpec::from_model(&m),
        &FitOptions::default(),
    );
    for _ in 0..10 {
        let mut s = FitSpec::from_model(&m);
        s.init = finite_random_point(&m, &mut rng);
        let r = fit::fit(&m, m.observed(), &s, &FitOptions::default());
        assert!(r.converged);
        assert!(
            (r.twice_nll - base.twice_nll).abs() < 1e-9,
            "{} vs {}",
            r.twice_nll,
            base.twice_nll
        );
        for i in 0..m.n_pars() {
            assert!(
                (r.x[i] - base.x[i]).abs() < 1e-4 * base.errors[i].max(1e-3),
                "{}",
                m.par_names[i]
            );
        }
    }
}

#[test]
fn covariance_is_twice_the_inverse_hessian() {
    let m = example();
    let r = fit::fit(
        &m,
        m.observed(),
        &FitSpec::from_model(&m),
        &FitOptions::default(),
    );
    let p = m.n_pars();
    let (_, _, h) = m.twice_nll_hessian(&r.x, m.observed());
    let c = r.covariance.as_ref().unwrap();
    for i in 0..p {
        for j in 0..p {
            let v: f64 = (0..p).map(|k| h[i * p + k] * c[k * p + j]).sum();
            let want = if i == j { 2.0 } else { 0.0 };
            assert!((v - want).abs() < 1e-9, "(H C)[{i}][{j}] = {v}");
        }
    }
    for i in 0..p {
        assert!((r.errors[i] - c[i * p + i].sqrt()).abs() < 1e-15);
    }
}

#[test]
fn a_fit_that_does_not_converge_from_its_start_restarts_from_the_suggested_one() {
    let m = example();
    let base = fit::fit(
        &m,
        m.observed(),
        &FitSpec::from_model(&m),
        &FitOptions::default(),
    );
    assert!(base.converged && !base.restarted);
    // an iteration budget that the suggested start meets and a far start does not
    let opts = FitOptions {
        max_iter: base.iterations,
        ..Default::default()
    };
    let mut far = FitSpec::from_model(&m);
    for i in 0..m.n_pars() {
        let (lo, hi) = far.bounds[i];
        far.init[i] = (far.init[i] + 2.5).clamp(lo, hi.min(lo + 4.0));
    }
    let plain = fit::fit(
        &m,
        m.observed(),
        &far,
        &FitOptions {
            robust: false,
            ..opts.clone()
        },
    );
    assert_eq!(plain.status, FitStatus::MaxIterations);
    let r = fit::fit(&m, m.observed(), &far, &opts);
    assert!(r.converged && r.restarted, "{:?}", r.status);
    // the restart is the fit from the suggested start, and both fits count
    assert_eq!(r.x, base.x);
    assert_eq!(r.twice_nll, base.twice_nll);
    assert!(r.iterations > base.iterations);
    // fixed parameters keep their values in the restart
    let poi = m.poi.unwrap();
    let fixed = far.clone().fix(poi, 1.5);
    let base = fit::fit(
        &m,
        m.observed(),
        &FitSpec::from_model(&m).fix(poi, 1.5),
        &opts,
    );
    let r = fit::fit(&m, m.observed(), &fixed, &opts);
    assert!(r.converged && r.restarted, "{:?}", r.status);
    assert_eq!(r.x[poi], 1.5);
    assert_eq!(r.x, base.x);
}
