//! Inference on shipped examples: test statistics, asymptotics, limits, scans, toys
//! (reproducibility, sharding, failures, agreement with asymptotics at high counts).

mod common;
use common::*;
use gradfit::fit::{self, FitOptions, FitSpec};
use gradfit::infer::limits::{LimitMethod, upper_limit};
use gradfit::infer::scan::profile_scan;
use gradfit::infer::shards;
use gradfit::infer::teststat::evaluate;
use gradfit::infer::toys::{ToyRun, ToySettings, run_toys, toy_cls};

fn merge(runs: Vec<ToyRun>) -> gradfit::Result<ToyRun> {
    shards::merge(runs, &[])
}
use gradfit::infer::{AsymptoticCalculator, Problem, TestStat};
use gradfit::model::{HistFactoryModel, ModelOptions};
use gradfit::util::special::normal_cdf;
use gradfit::workspace::ReadOptions;

fn load(name: &str) -> HistFactoryModel {
    HistFactoryModel::load(
        &repo(&format!("examples/workspaces/{name}")),
        &[],
        &ReadOptions::default(),
        &ModelOptions::default(),
    )
    .unwrap()
}

fn settings(mu: f64, n: u32, seed: u64, batch: usize, shard: Option<(u32, u32)>) -> ToySettings {
    ToySettings {
        mu,
        test_stat: TestStat::QTilde,
        n_toys: n,
        seed,
        shard,
        batch,
        model_digest: "test".into(),
        toy_max_iter: None,
    }
}

#[test]
fn test_statistics_follow_pyhf_definitions() {
    let m = load("two-channel.json");
    let p = Problem::new(&m, m.observed()).unwrap();
    let opts = FitOptions::default();
    let free = fit::fit(&m, m.observed(), &p.spec, &opts);
    let mu_hat = free.x[p.poi];
    assert!(mu_hat > 1.0 && mu_hat < 2.0);
    for mu in [0.5, 1.0, 2.0, 3.0] {
        let fixed = fit::fit(&m, m.observed(), &p.spec.clone().fix(p.poi, mu), &opts);
        let t = (fixed.twice_nll - free.twice_nll).max(0.0);
        for kind in [TestStat::Q, TestStat::QTilde, TestStat::T, TestStat::TTilde] {
            let v = evaluate(&p, kind, mu, None, &opts).unwrap();
            let want = match kind {
                TestStat::Q | TestStat::QTilde if mu_hat > mu => 0.0,
                _ => t,
            };
            assert!(
                (v.value - want).abs() < 1e-9,
                "{kind} at {mu}: {} vs {want}",
                v.value
            );
            assert!(v.value >= 0.0);
        }
    }
    // q0: zero when mu_hat < 0 (allow negative mu to see it)
    let mut d = m.observed().clone();
    for (k, x) in d.main.iter_mut().enumerate() {
        if k >= 2 {
            *x = (*x * 0.6f64).round();
        }
    }
    let d = m.dataset(d.main, d.aux).unwrap();
    let mut pn = Problem::new(&m, &d).unwrap();
    pn.spec.bounds[pn.poi] = (-5.0, 10.0);
    let q0 = evaluate(&pn, TestStat::Q0, 0.0, None, &opts).unwrap();
    assert!(q0.mu_hat < 0.0);
    assert_eq!(q0.value, 0.0);
    assert!(q0.t > 0.0, "t0 itself is positive");
}

#[test]
fn asymptotic_formulae() {
    let m = load("two-channel.json");
    let p = Problem::new(&m, m.observed()).unwrap();
    let calc = AsymptoticCalculator::new(p, TestStat::QTilde, &FitOptions::default()).unwrap();
    // q~ with sqrt(q) > sqrt(qA): the linear branch
    let (q, qa) = (9.0, 4.0);
    let h = calc.from_values(1.0, q, qa, 0.0);
    let t = (q - qa) / (2.0 * qa.sqrt());
    assert!((h.t_obs - t).abs() < 1e-15);
    let clsb = normal_cdf(-(t + qa.sqrt()));
    let clb = normal_cdf(-t);
    assert!((h.cls_obs - clsb / clb).abs() < 1e-15);
    let h = calc.from_values(1.0, 1.0, 4.0, 0.0);
    assert!((h.t_obs - (1.0 - 2.0)).abs() < 1e-15);
    // expected band: t = 2, 1, 0, -1, -2
    for (k, n) in [2.0, 1.0, 0.0, -1.0, -2.0].iter().enumerate() {
        let want = normal_cdf(-(n + 2.0)) / normal_cdf(-n);
        assert!((h.cls_exp[k] - want).abs() < 1e-15);
    }
    assert!(
        h.cls_exp.windows(2).all(|w| w[0] < w[1]),
        "band ordered -2 sigma first"
    );
}

#[test]
fn limits_sit_where_cls_crosses_alpha() {
    let m = load("two-channel.json");
    let p = Problem::new(&m, m.observed()).unwrap();
    let calc = AsymptoticCalculator::new(p, TestStat::QTilde, &FitOptions::default()).unwrap();
    let ul = upper_limit(
        &calc,
        0.95,
        &LimitMethod::Bracket {
            lo: 1e-3,
            hi: 10.0,
            rtol: 1e-10,
        },
    )
    .unwrap();
    let obs = ul.obs.unwrap();
    assert!((calc.hypotest(obs).unwrap().cls_obs - 0.05).abs() < 1e-7);
    for k in 0..5 {
        let e = ul.exp[k].unwrap();
        assert!((calc.hypotest(e).unwrap().cls_exp[k] - 0.05).abs() < 1e-7);
    }
    assert!(ul.exp.windows(2).all(|w| w[0].unwrap() < w[1].unwrap()));
    // a 90% limit is lower
    let ul90 = upper_limit(
        &calc,
        0.90,
        &LimitMethod::Bracket {
            lo: 1e-3,
            hi: 10.0,
            rtol: 1e-10,
        },
    )
    .unwrap();
    assert!(ul90.obs.unwrap() < obs);
    // the scan with interpolation lands close to the root
    let grid: Vec<f64> = (0..41).map(|i| 0.1 * i as f64).collect();
    let us = upper_limit(&calc, 0.95, &LimitMethod::Scan { grid }).unwrap();
    assert!(
        (us.obs.unwrap() - obs).abs() < 0.01,
        "{:?} vs {obs}",
        us.obs
    );
    // a bracket that misses the crossing reports it instead of inventing a limit
    let miss = upper_limit(
        &calc,
        0.95,
        &LimitMethod::Bracket {
            lo: 5.0,
            hi: 10.0,
            rtol: 1e-8,
        },
    )
    .unwrap();
    assert!(miss.obs.is_none() && !miss.messages.is_empty());
}

#[test]
fn profile_scan_is_parabolic_near_the_minimum() {
    let m = load("one-bin-high-count.json");
    let spec = FitSpec::from_model(&m);
    let free = fit::fit(&m, m.observed(), &spec, &FitOptions::default());
    let poi = m.poi.unwrap();
    let (mu_hat, sigma) = (free.x[poi], free.errors[poi]);
    let s = profile_scan(
        &gradfit::fit::Cpu,
        &m,
        m.observed(),
        &spec,
        poi,
        &[mu_hat - sigma, mu_hat, mu_hat + sigma],
        &FitOptions::default(),
    )
    .unwrap();
    assert!(s.points[1].delta_twice_nll.abs() < 1e-9);
    for k in [0, 2] {
        let d = s.points[k].delta_twice_nll;
        assert!((d - 1.0).abs() < 0.05, "delta twice_nll at one sigma: {d}");
    }
}

fn run(m: &HistFactoryModel, s: &ToySettings) -> ToyRun {
    let p = Problem::new(m, m.observed()).unwrap();
    run_toys(&p, s, &FitOptions::default(), &|_, _| {}).unwrap()
}

#[test]
fn toys_do_not_depend_on_threads_or_batch_size() {
    let m = load("two-channel.json");
    let base = run(&m, &settings(1.0, 48, 7, 512, None));
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let two = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let a = one.install(|| run(&m, &settings(1.0, 48, 7, 1, None)));
    let b = two.install(|| run(&m, &settings(1.0, 48, 7, 512, None)));
    let c = one.install(|| run(&m, &settings(1.0, 48, 7, 512, None)));
    assert_eq!(a, base);
    assert_eq!(b, base);
    assert_eq!(c, base);
    // a different seed gives different toys
    let d = run(&m, &settings(1.0, 48, 8, 512, None));
    assert_ne!(d.sig_bkg, base.sig_bkg);
    for r in base.sig_bkg.iter().chain(&base.bkg) {
        let s = r.stat.expect("converged toy");
        assert!(s >= 0.0 && s.is_finite());
    }
}

#[test]
fn shards_merge_into_the_unsplit_run() {
    let m = load("two-channel.json");
    let whole = run(&m, &settings(1.5, 40, 3, 512, None));
    let shards: Vec<ToyRun> = (0..4)
        .map(|i| run(&m, &settings(1.5, 40, 3, 7, Some((i, 4)))))
        .collect();
    let merged = merge(shards.clone()).unwrap();
    assert_eq!(merged, whole);
    assert_eq!(
        serde_json::to_string(&merged).unwrap(),
        serde_json::to_string(&whole).unwrap()
    );
    assert!(merge(vec![shards[0].clone(), shards[2].clone()]).is_err());
    assert!(
        merge(vec![
            shards[0].clone(),
            shards[0].clone(),
            shards[1].clone(),
            shards[2].clone(),
            shards[3].clone()
        ])
        .is_err()
    );
    // every shard as written verifies; tampered ones do not
    for (k, sh) in shards.iter().enumerate() {
        sh.verify(&format!("shard {k}")).unwrap();
    }
    merged.verify("merged").unwrap();
    let mut edited = shards[1].clone();
    edited.sig_bkg[0].stat = edited.sig_bkg[0].stat.map(|x| x + 1.0);
    let e = edited.verify("edited.json").unwrap_err().to_string();
    assert!(e.contains("edited.json") && e.contains("digest"), "{e}");
    let mut dup = shards[1].clone();
    dup.bkg[1].toy = dup.bkg[0].toy;
    dup.seal();
    let e = dup.verify("dup.json").unwrap_err().to_string();
    assert!(
        e.contains("background toys") && e.contains("duplicated"),
        "{e}"
    );
    let mut cut = shards[2].clone();
    cut.sig_bkg.truncate(2);
    cut.seal();
    let e = cut.verify("cut.json").unwrap_err().to_string();
    assert!(e.contains("2 records"), "{e}");
    let mut outside = shards[3].clone();
    outside.range = [30, 50];
    assert!(outside.verify("range.json").is_err());
    let e = merge(vec![
        shards[0].clone(),
        shards[0].clone(),
        shards[1].clone(),
    ])
    .unwrap_err()
    .to_string();
    assert!(e.contains("toys [0, 10) are covered twice"), "{e}");
    let other = run(&m, &settings(1.5, 40, 4, 512, Some((1, 4))));
    let e = merge(vec![shards[0].clone(), other.clone()])
        .unwrap_err()
        .to_string();
    assert!(e.contains("differ in: seed") && !e.contains("Some("), "{e}");
    assert!(
        merge(vec![
            shards[0].clone(),
            other,
            shards[2].clone(),
            shards[3].clone()
        ])
        .is_err()
    );
}

#[test]
fn failed_toy_fits_are_recorded_and_excluded() {
    let m = load("two-channel.json");
    let p = Problem::new(&m, m.observed()).unwrap();
    // toy fits limited to one iteration: most cannot converge
    let s = ToySettings {
        toy_max_iter: Some(1),
        ..settings(1.0, 40, 11, 512, None)
    };
    let r = run_toys(&p, &s, &FitOptions::default(), &|_, _| {}).unwrap();
    let failed: Vec<_> = r
        .sig_bkg
        .iter()
        .chain(&r.bkg)
        .filter(|t| t.stat.is_none())
        .collect();
    assert!(
        !failed.is_empty(),
        "some toys must fail with a one-iteration budget"
    );
    for t in &failed {
        assert!(
            !t.status_free.ok() || !t.status_fixed.ok(),
            "a missing statistic comes with its failed fit's status"
        );
    }
    for t in r.sig_bkg.iter().chain(&r.bkg).filter(|t| t.stat.is_some()) {
        assert!(t.status_free.ok() && t.status_fixed.ok());
    }
    match toy_cls(&r) {
        Ok(c) => assert_eq!(c.n_failed as usize, failed.len()),
        Err(e) => assert!(e.to_string().contains("no usable toys"), "{e}"),
    }
    // the same toys with a normal budget all converge
    let ok = run(&m, &settings(1.0, 40, 11, 512, None));
    assert_eq!(toy_cls(&ok).unwrap().n_failed, 0);
}

#[test]
fn toy_cls_agrees_with_asymptotics_at_high_counts() {
    let m = load("one-bin-high-count.json");
    let p = Problem::new(&m, m.observed()).unwrap();
    let mu = 1.5;
    let calc =
        AsymptoticCalculator::new(p.clone(), TestStat::QTilde, &FitOptions::default()).unwrap();
    let h = calc.hypotest(mu).unwrap();
    let n = 10_000u32;
    let r = run_toys(
        &p,
        &settings(mu, n, 2026, 2048, None),
        &FitOptions::default(),
        &|_, _| {},
    )
    .unwrap();
    let c = toy_cls(&r).unwrap();
    assert_eq!(c.n_failed, 0);
    let nn = n as f64;
    let se_cls = |clsb: f64, clb: f64| {
        let cls = clsb / clb;
        cls * ((1.0 - clsb) / (nn * clsb) + (1.0 - clb) / (nn * clb)).sqrt()
    };
    let se = se_cls(c.clsb_obs, c.clb_obs);
    let toy = c.cls_obs.unwrap();
    eprintln!("observed CLs: toys {toy} +- {se}, asymptotic {}", h.cls_obs);
    assert!(
        (toy - h.cls_obs).abs() < 3.0 * se,
        "toys {toy} vs asymptotic {} (se {se})",
        h.cls_obs
    );
    let med = c.cls_exp[2].unwrap();
    let se_med = se_cls(h.clsb_exp[2], h.clb_exp[2]).max(se);
    eprintln!(
        "median expected CLs: toys {med}, asymptotic {}",
        h.cls_exp[2]
    );
    assert!(
        (med - h.cls_exp[2]).abs() < 3.0 * se_med,
        "median expected {med} vs {}",
        h.cls_exp[2]
    );
}

#[test]
fn minos_errors_match_the_profile_crossings() {
    use gradfit::fit::Cpu;
    use gradfit::infer::minos::{Profile, minos};
    // one bin: the profile is the likelihood itself, solved here by bisection
    let text = r#"{"channels":[{"name":"c","samples":[
        {"name":"s","data":[10.0],"modifiers":[{"name":"mu","type":"normfactor","data":null}]},
        {"name":"b","data":[20.0],"modifiers":[]}]}],
      "observations":[{"name":"c","data":[35.0]}],"version":"1.0.0",
      "measurements":[{"name":"m","config":{"poi":"mu","parameters":[{"name":"mu","bounds":[[0,10]],"inits":[1]}]}}]}"#;
    let ws = gradfit::workspace::Workspace::from_str(text, "t", &ReadOptions::default()).unwrap();
    let m = HistFactoryModel::from_workspace(&ws, &ModelOptions::default(), "t").unwrap();
    let spec = FitSpec::from_model(&m);
    let opts = FitOptions::default();
    let best = fit::fit(&m, m.observed(), &spec, &opts);
    let q = |mu: f64| {
        let nu = 10.0 * mu + 20.0;
        let nh = 35.0;
        2.0 * (nu - nh * nu.ln()) - 2.0 * (nh - nh * nh.ln())
    };
    let root = |mut a: f64, mut b: f64| {
        for _ in 0..200 {
            let c = 0.5 * (a + b);
            if (q(c) - 1.0) * (q(a) - 1.0) > 0.0 {
                a = c
            } else {
                b = c
            }
        }
        0.5 * (a + b)
    };
    let (lo, hi) = (root(0.0, 1.5), root(1.5, 5.0));
    let p = Profile {
        model: &m,
        data: m.observed(),
        spec: &spec,
        fitter: &Cpu,
    };
    let e = &minos(&p, &best, &[0], 1.0, &opts).unwrap()[0];
    let x = best.x[0];
    assert!((x - 1.5).abs() < 1e-8);
    assert!(
        (x + e.lower.error.unwrap() - lo).abs() < 1e-4,
        "{e:?} vs {lo}"
    );
    assert!(
        (x + e.upper.error.unwrap() - hi).abs() < 1e-4,
        "{e:?} vs {hi}"
    );
    // asymmetric, as a Poisson profile is
    assert!(e.upper.error.unwrap() > -e.lower.error.unwrap());
    // a lower bound inside the interval is reported as such
    let mut tight = spec.clone();
    tight.bounds[0] = (1.2, 10.0);
    let pt = Profile { spec: &tight, ..p };
    let e = &minos(&pt, &best, &[0], 1.0, &opts).unwrap()[0];
    assert!(e.lower.at_bound && e.lower.error.is_none(), "{e:?}");
    assert!(e.upper.error.is_some());

    // with nuisance parameters: each crossing is a point where the profiled
    // twice_nll (a fit with the parameter fixed) rises by 1
    let m = load("two-channel.json");
    let spec = FitSpec::from_model(&m);
    let best = fit::fit(&m, m.observed(), &spec, &opts);
    let p = Profile {
        model: &m,
        data: m.observed(),
        spec: &spec,
        fitter: &Cpu,
    };
    let pars: Vec<usize> = (0..m.n_pars())
        .filter(|&i| !spec.fixed[i])
        .take(6)
        .collect();
    for e in minos(&p, &best, &pars, 1.0, &opts).unwrap() {
        for side in [e.lower, e.upper] {
            let Some(d) = side.error else {
                assert!(side.at_bound, "{e:?}");
                continue;
            };
            let f = fit::fit(
                &m,
                m.observed(),
                &spec.clone().fix(e.par, best.x[e.par] + d),
                &opts,
            );
            assert!(
                (f.twice_nll - best.twice_nll - 1.0).abs() < 2e-4,
                "{} {e:?}",
                m.par_names[e.par]
            );
        }
    }
}
