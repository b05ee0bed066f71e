//! Fits and toys on the emulated device against the CPU minimiser: statuses, limits, domain edges, batch splits.

use super::*;

#[test]
fn fits_match_the_cpu_minimiser() {
    for path in [
        "examples/workspaces/two-channel.json",
        "examples/workspaces/one-bin-high-count.json",
    ] {
        let m = load(path, &ModelOptions::default());
        let mut pars = m.init().to_vec();
        pars[m.poi().unwrap()] = 0.5;
        let g = m.generator(&pars);
        let mut datas = vec![m.observed().clone(), m.asimov(m.init())];
        datas.extend((0..6).map(|t| m.sample(&g, 3, t, purpose::BKG)));
        compare_fits(&m, &datas, 1e-10);
    }
    let m = synthetic(10, 4);
    compare_fits(&m, &[m.observed().clone()], 1e-10);
}

#[test]
fn identically_zero_sample_bins_are_skipped_like_on_the_cpu() {
    // samples that are zero in some bins: the plan's rows leave those
    // sample-bins out (peak_norm is a local of one bin), and the device
    // kernel skips them in its derivative pass as the CPU kernel does
    let m = common::model_from_value(common::sparse_samples_workspace(false));
    let lay = m.layout();
    assert_ne!(
        lay.block_of[lay.inv[m.par_index("peak_norm").unwrap()]],
        usize::MAX
    );
    assert_eq!(lay.n_global, 5);
    compare_eval(&m, 16, 1e-12);
    let g = m.generator(m.init());
    let mut datas = vec![m.observed().clone(), m.asimov(m.init())];
    datas.extend((0..4).map(|t| m.sample(&g, 7, t, purpose::BKG)));
    compare_fits(&m, &datas, 1e-10);
}

#[test]
fn fits_with_failures_and_limits_match() {
    let strict = ModelOptions {
        strict_domain: true,
        ..Default::default()
    };
    let m = load("examples/workspaces/two-channel.json", &strict);
    let gpu = Gpu::new(EmuBackend, &m).unwrap();
    let poi = m.poi().unwrap();
    let all_fixed = FitSpec {
        fixed: vec![true; m.n_pars()],
        ..FitSpec::from_model(&m)
    };
    let mut bad_start = FitSpec::from_model(&m);
    bad_start.bounds[poi] = (-1e7, 10.0);
    bad_start.init[poi] = -1e6; // likelihood not finite here
    let specs = vec![all_fixed, bad_start, FitSpec::from_model(&m)];
    let opts = FitOptions {
        max_iter: 1,
        ..Default::default()
    };
    let cpu = fit::fit_batch(&m, &[m.observed()], &specs, &opts);
    let gpuf = gpu.fit_batch(&[m.observed()], &specs, &opts).unwrap();
    for (c, g) in cpu.iter().zip(&gpuf) {
        assert_eq!(c.status, g.status);
        assert_eq!(c.iterations, g.iterations);
    }
    assert_eq!(gpuf[0].status, gradfit::fit::FitStatus::NothingToFit);
    assert_eq!(gpuf[1].status, gradfit::fit::FitStatus::NonFiniteStart);
    assert_eq!(gpuf[2].status, gradfit::fit::FitStatus::MaxIterations);
}

#[test]
fn fits_outside_the_domain_match_the_cpu() {
    // negative nominal yields: fits with the POI at 0 start where a bin with
    // data has a negative rate (the extension of the Poisson terms), toys
    // with empty bins whose rates reach the wall
    let m = load(
        "examples/workspaces/negative-yields.json",
        &ModelOptions::default(),
    );
    let mut pars = m.init().to_vec();
    pars[m.poi().unwrap()] = 0.2;
    let g = m.generator(&pars);
    let mut datas = vec![m.observed().clone(), m.asimov(m.init())];
    datas.extend((0..10).map(|t| m.sample(&g, 8, t, purpose::BKG)));
    let poi = m.poi().unwrap();
    let free = FitSpec::from_model(&m);
    let opts = FitOptions::default();
    let (mut easy, mut hard) = (Vec::new(), 0);
    for d in datas {
        let specs = [
            free.clone(),
            free.clone().fix(poi, 0.0),
            free.clone().fix(poi, 2.0),
        ];
        let long = specs
            .iter()
            .find(|s| fit::fit(&m, &d, s, &opts).n_evals > 60);
        match long {
            Some(s) => {
                compare_hard_fit(&m, &d, s, 25);
                hard += 1;
            }
            None => easy.push(d),
        }
    }
    assert!(
        hard >= 1 && easy.len() >= 6,
        "{hard} hard, {} easy datasets",
        easy.len()
    );
    compare_fits(&m, &easy, 1e-10);
    // a minimum in the extension: only lumi free, the POI at 0; SR bin 1 (3
    // events) stays negative at lumi's lower bound
    let gpu = Gpu::new(EmuBackend, &m).unwrap();
    let poi = m.poi().unwrap();
    let lumi = m.par_index("lumi").unwrap();
    let mut spec = FitSpec::from_model(&m).fix(poi, 0.0);
    for i in 0..m.n_pars() {
        if i != lumi {
            spec.fixed[i] = true;
        }
    }
    let opts = FitOptions::default();
    let c = fit::fit(&m, m.observed(), &spec, &opts);
    let e = gpu
        .fit_batch(&[m.observed()], std::slice::from_ref(&spec), &opts)
        .unwrap()
        .remove(0);
    assert_eq!(c.status, FitStatus::OutsideDomain);
    assert_eq!(e.status, c.status);
    assert_eq!(e.iterations, c.iterations);
    assert!((e.twice_nll - c.twice_nll).abs() <= 1e-10 * c.twice_nll.abs());
}

#[test]
fn member_capacity_splits_give_the_same_fits() {
    let m = load(
        "examples/workspaces/two-channel.json",
        &ModelOptions::default(),
    );
    let mut gpu = Gpu::new(EmuBackend, &m).unwrap();
    let g = m.generator(m.init());
    let datas: Vec<Dataset> = (0..13)
        .map(|t| m.sample(&g, 11, t, purpose::SIG_BKG))
        .collect();
    let refs: Vec<&Dataset> = datas.iter().collect();
    let specs = vec![FitSpec::from_model(&m); 13];
    let opts = FitOptions::default();
    let whole = gpu.fit_batch(&refs, &specs, &opts).unwrap();
    gpu.set_max_members(4);
    let split = gpu.fit_batch(&refs, &specs, &opts).unwrap();
    for (a, b) in whole.iter().zip(&split) {
        assert_eq!(a.twice_nll.to_bits(), b.twice_nll.to_bits());
        assert_eq!(a.x, b.x);
    }
}
