//! The CUDA kernels' code, run on the CPU through the host emulation
//! (`cargo test --features cuda-emu --test gpu_emu`), against the CPU kernel,
//! the CPU minimiser, the CPU toys and src/rng.rs.
//!
//! The emulation compiles the very functions the GPU runs (kernels/*.cuh)
//! with the host C++ compiler, and drives them through the same host code
//! (src/gpu/exec/) as the CUDA backend; what it cannot check is the CUDA
//! launch machinery and the last bits of the device's math library.
#![cfg(feature = "cuda-emu")]

mod common;

use common::repo;
use gradfit::fit::{self, FitOptions, FitSpec, FitStatus};
use gradfit::gpu::emu::{self, Draw, EmuBackend};
use gradfit::gpu::params::{GfParams, Kernel};
use gradfit::gpu::selftest::{Report, SelftestOptions, rel_dev, run_model};
use gradfit::gpu::{EvalMode, Gpu};
use gradfit::infer::toys::{ToySettings, run_toys};
use gradfit::infer::{Problem, TestStat};
use gradfit::model::{Dataset, HistFactoryModel, InterpCode, Likelihood, ModelOptions};
use gradfit::rng::{Stream, philox4x32_10, purpose};
use gradfit::workspace::{ReadOptions, Workspace};

fn load(path: &str, opts: &ModelOptions) -> HistFactoryModel {
    HistFactoryModel::load(&repo(path), &[], &ReadOptions::default(), opts).unwrap()
}

fn synthetic(c: usize, b: usize) -> HistFactoryModel {
    let ws = Workspace::from_value(
        gradfit::synthetic::shapesys_workspace(c, b),
        &[],
        "synthetic",
        &ReadOptions::default(),
    )
    .unwrap();
    HistFactoryModel::from_workspace(&ws, &ModelOptions::default(), "synthetic").unwrap()
}

#[test]
fn params_layout_matches_the_cpp_struct() {
    let (cpp, size) = emu::cpp_params_layout();
    let rust: Vec<(String, u64)> = GfParams::FIELDS
        .iter()
        .zip(GfParams::offsets())
        .map(|(n, o)| (n.to_string(), o as u64))
        .collect();
    assert_eq!(rust, cpp, "src/gpu/params.rs and kernels/params.def differ");
    assert_eq!(size as usize, std::mem::size_of::<GfParams>());
    let names: Vec<String> = Kernel::ALL.iter().map(|k| k.name().to_string()).collect();
    assert_eq!(
        names,
        emu::cpp_kernel_names(),
        "Kernel::ALL and GF_KERNELS differ"
    );
}

#[test]
fn philox_matches_rust_bit_for_bit() {
    // the Random123 known answers, through the kernel code
    assert_eq!(
        emu::philox([0; 4], [0; 2]),
        [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]
    );
    assert_eq!(
        emu::philox([u32::MAX; 4], [u32::MAX; 2]),
        [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]
    );
    let mut s = Stream::new(99, 1, 2, 3);
    for _ in 0..2000 {
        let ctr = [s.next_u32(), s.next_u32(), s.next_u32(), s.next_u32()];
        let key = [s.next_u32(), s.next_u32()];
        assert_eq!(emu::philox(ctr, key), philox4x32_10(ctr, key));
    }
}

#[test]
fn samplers_match_rust_bit_for_bit() {
    let n = 400;
    let mut checked = 0;
    for seed in [0u64, 1, 0xDEAD_BEEF_1234_5678] {
        for toy in [0u32, 7, 123_456] {
            for (var, lam) in [
                (0u32, 0.0),
                (1, 0.37),
                (2, 3.0),
                (3, 9.99),
                (4, 10.0),
                (5, 57.3),
                (6, 2500.0),
                (7, 1e6),
            ] {
                let p = purpose::SIG_BKG + (var % 2);
                let u = emu::stream(seed, toy, p, var, Draw::Uniform, n);
                let z = emu::stream(seed, toy, p, var, Draw::Normal, n);
                let k = emu::stream(seed, toy, p, var, Draw::Poisson(lam), n);
                let mut su = Stream::new(seed, toy, p, var);
                let mut sz = Stream::new(seed, toy, p, var);
                let mut sk = Stream::new(seed, toy, p, var);
                for i in 0..n {
                    assert_eq!(
                        u[i].to_bits(),
                        su.uniform().to_bits(),
                        "uniform {seed} {toy} {var} #{i}"
                    );
                    assert_eq!(
                        z[i].to_bits(),
                        sz.normal().to_bits(),
                        "normal {seed} {toy} {var} #{i}"
                    );
                    assert_eq!(
                        k[i].to_bits(),
                        sk.poisson(lam).to_bits(),
                        "poisson({lam}) #{i}"
                    );
                    checked += 3;
                }
            }
        }
    }
    assert_eq!(checked, 3 * 3 * 8 * 3 * n);
}

/// Compare every evaluation mode with the CPU kernel at `t` random points
/// (plus the start point and a point with the POI exactly 0).
fn compare_eval(m: &HistFactoryModel, t: usize, tol: f64) {
    let gpu = Gpu::new(EmuBackend, m).unwrap();
    let p = m.n_pars();
    let data = m.observed().clone();
    let mut th: Vec<f64> = m.init().to_vec();
    let mut zero = m.init().to_vec();
    if let Some(poi) = m.poi() {
        zero[poi] = 0.0; // a factor exactly zero: the prefix/suffix branch of the kernel
    }
    th.extend(&zero);
    let mut s = Stream::new(5, 0, 9, 0);
    while th.len() < (t + 2) * p {
        let x: Vec<f64> = (0..p)
            .map(|i| {
                let (lo, hi) = m.bounds()[i];
                let w = m.prefit_sigma(i).max(0.1 * m.init()[i].abs()).max(0.05);
                (m.init()[i] + 1.5 * (2.0 * s.uniform() - 1.0) * w).clamp(lo, hi)
            })
            .collect();
        if m.twice_nll(&x, &data).is_finite() {
            th.extend(x);
        }
    }
    let t = th.len() / p;
    let asimov = m.asimov(m.init());
    // one dataset per member on odd members (the Asimov data), observed on even ones
    let per: Vec<&Dataset> = (0..t)
        .map(|k| if k % 2 == 0 { &data } else { &asimov })
        .collect();
    for mode in [
        EvalMode::Value,
        EvalMode::Grad,
        EvalMode::Hessian,
        EvalMode::Fisher,
    ] {
        let out = gpu.eval_batch(&th, &per, mode).unwrap();
        let mut sc = m.scratch();
        for k in 0..t {
            let x = &th[k * p..(k + 1) * p];
            let d = per[k];
            let mut g = vec![0.0; p];
            let mut hb = vec![0.0; p * p];
            let f = match mode {
                EvalMode::Value => m.eval(x, d, &mut sc, None, None),
                EvalMode::Grad => m.eval(x, d, &mut sc, Some(&mut g), None),
                _ => m.eval_block(
                    x,
                    d,
                    &mut sc,
                    Some(&mut g),
                    Some(&mut hb),
                    mode == EvalMode::Fisher,
                ),
            };
            assert!(
                rel_dev(&[out.f[k]], &[f]) <= tol,
                "{mode:?} twice_nll at point {k}: {} vs {f}",
                out.f[k]
            );
            if let Some(gg) = &out.grad {
                let dv = rel_dev(&gg[k * p..(k + 1) * p], &g);
                assert!(
                    dv <= tol,
                    "{mode:?} gradient at point {k}: deviation {dv:e}"
                );
            }
            if let Some(hh) = &out.hess {
                let nh = gpu.dm.n_hess;
                let dense_gpu = gpu.dm.unpack(&hh[k * nh..(k + 1) * nh]);
                let mut dense_cpu = vec![0.0; p * p];
                m.layout().expand(&hb, &mut dense_cpu);
                let dv = rel_dev(&dense_gpu, &dense_cpu);
                assert!(dv <= tol, "{mode:?} Hessian at point {k}: deviation {dv:e}");
            }
        }
    }
}

#[test]
fn eval_matches_the_cpu_kernel_for_every_interpolation_code() {
    let codes = [
        InterpCode::Code0,
        InterpCode::Code1,
        InterpCode::Code2,
        InterpCode::Code4,
        InterpCode::Code4p,
    ];
    for &n in &codes {
        for &h in &codes {
            let opts = ModelOptions {
                normsys_code: n,
                histosys_code: h,
                ..Default::default()
            };
            let m = load("examples/workspaces/two-channel.json", &opts);
            compare_eval(&m, 24, 1e-12);
        }
    }
    compare_eval(
        &load(
            "examples/workspaces/one-bin-high-count.json",
            &ModelOptions::default(),
        ),
        8,
        1e-12,
    );
    compare_eval(&synthetic(6, 4), 8, 1e-12);
}

#[test]
fn eval_reports_points_outside_the_domain() {
    let strict = ModelOptions {
        strict_domain: true,
        ..Default::default()
    };
    let m = load("examples/workspaces/two-channel.json", &strict);
    let gpu = Gpu::new(EmuBackend, &m).unwrap();
    let mut x = m.init().to_vec();
    // a negative normfactor makes the signal rate negative where there are data
    x[m.poi().unwrap()] = -1e6;
    let cpu = m.twice_nll(&x, m.observed());
    let out = gpu.eval_batch(&x, &[m.observed()], EvalMode::Grad).unwrap();
    assert_eq!(cpu, f64::INFINITY);
    assert_eq!(out.f[0], f64::INFINITY);
    // without strict, both evaluate gradfit's extension of the Poisson terms there
    let e = load(
        "examples/workspaces/two-channel.json",
        &ModelOptions::default(),
    );
    let ge = Gpu::new(EmuBackend, &e).unwrap();
    let cpu = e.twice_nll_grad(&x, e.observed());
    let out = ge.eval_batch(&x, &[e.observed()], EvalMode::Grad).unwrap();
    assert!(cpu.0.is_finite());
    assert!(rel_dev(&[out.f[0]], &[cpu.0]) < 1e-12);
    assert!(rel_dev(&out.grad.unwrap(), &cpu.1) < 1e-12);
    // bad shapes are errors, not panics
    assert!(
        gpu.eval_batch(&x[..3], &[m.observed()], EvalMode::Value)
            .is_err()
    );
    assert!(
        gpu.eval_batch(&x, &[m.observed(), m.observed()], EvalMode::Value)
            .is_err()
    );
}

fn compare_fits(m: &HistFactoryModel, datas: &[Dataset], tol_f: f64) {
    let gpu = Gpu::new(EmuBackend, m).unwrap();
    let free = FitSpec::from_model(m);
    let poi = m.poi().unwrap();
    let mut specs = Vec::new();
    let mut drefs = Vec::new();
    for d in datas {
        for s in [
            free.clone(),
            free.clone().fix(poi, 0.0),
            free.clone().fix(poi, 2.0),
        ] {
            specs.push(s);
            drefs.push(d);
        }
    }
    let opts = FitOptions::default();
    let cpu = fit::fit_batch(m, &drefs, &specs, &opts);
    let gpuf = gpu.fit_batch(&drefs, &specs, &opts).unwrap();
    assert_eq!(cpu.len(), gpuf.len());
    for (k, (c, g)) in cpu.iter().zip(&gpuf).enumerate() {
        assert_eq!(c.status, g.status, "fit {k}");
        assert_eq!(c.iterations, g.iterations, "fit {k}: iterations");
        assert!(
            (c.twice_nll - g.twice_nll).abs() <= tol_f * c.twice_nll.abs().max(1.0),
            "fit {k}: {} vs {}",
            c.twice_nll,
            g.twice_nll
        );
        assert!(rel_dev(&g.x, &c.x) < 1e-6, "fit {k}: best fit differs");
        match (&c.covariance, &g.covariance) {
            (Some(a), Some(b)) => assert!(rel_dev(b, a) < 1e-6, "fit {k}: covariance"),
            (None, None) => {}
            _ => panic!("fit {k}: covariance on one side only"),
        }
        assert_eq!(c.hessian_not_pd, g.hessian_not_pd, "fit {k}");
        for (ec, eg) in c.errors.iter().zip(&g.errors) {
            assert!((ec.is_nan() && eg.is_nan()) || (ec - eg).abs() <= 1e-6 * ec.abs().max(1e-12));
        }
    }
}

/// Hard fits (many rejected trial steps: scoring runs, the wall of an empty
/// bin) take the same decisions on both sides, but the last-bit differences of
/// the two kernels' arithmetic grow along such long paths until a late
/// accept/reject decision can differ, and with it the iteration count. So:
/// the first `lockstep` iterations must agree decision by decision (status,
/// iterations and evaluations after each, the same point to 1e-6), and the
/// end result must agree in status and minimum.
fn compare_hard_fit(m: &HistFactoryModel, d: &Dataset, spec: &FitSpec, lockstep: usize) {
    let gpu = Gpu::new(EmuBackend, m).unwrap();
    for k in 1..=lockstep {
        let opts = FitOptions {
            max_iter: k,
            covariance: false,
            ..Default::default()
        };
        let c = fit::fit(m, d, spec, &opts);
        let e = gpu
            .fit_batch(&[d], std::slice::from_ref(spec), &opts)
            .unwrap()
            .remove(0);
        assert_eq!(
            (c.status, c.iterations, c.n_evals),
            (e.status, e.iterations, e.n_evals),
            "after {k} iterations"
        );
        assert!(
            rel_dev(&e.x, &c.x) < 1e-6,
            "after {k} iterations: {:e}",
            rel_dev(&e.x, &c.x)
        );
        if c.status != FitStatus::MaxIterations {
            break;
        }
    }
    let opts = FitOptions::default();
    let c = fit::fit(m, d, spec, &opts);
    let e = gpu
        .fit_batch(&[d], std::slice::from_ref(spec), &opts)
        .unwrap()
        .remove(0);
    assert_eq!(c.status, e.status);
    assert!(c.converged, "{:?}", c.status);
    assert!(
        (c.twice_nll - e.twice_nll).abs() <= 1e-8 * c.twice_nll.abs().max(1.0),
        "{} vs {}",
        c.twice_nll,
        e.twice_nll
    );
    assert!(rel_dev(&e.x, &c.x) < 1e-3, "{:e}", rel_dev(&e.x, &c.x));
}

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

#[test]
fn toy_data_match_the_cpu_bit_for_bit() {
    for m in [
        load(
            "examples/workspaces/two-channel.json",
            &ModelOptions::default(),
        ),
        load(
            "examples/workspaces/one-bin-high-count.json",
            &ModelOptions::default(),
        ),
    ] {
        let gpu = Gpu::new(EmuBackend, &m).unwrap();
        let mut pars = m.init().to_vec();
        pars[m.poi().unwrap()] = 1.3;
        let g = m.generator(&pars);
        let d = gpu
            .sample_toys(&m, &pars, 77, purpose::BKG, 100..400)
            .unwrap();
        for (k, dk) in d.iter().enumerate() {
            let c = m.sample(&g, 77, 100 + k as u32, purpose::BKG);
            assert_eq!(dk.main, c.main, "toy {k}");
            assert_eq!(dk.aux, c.aux, "toy {k}");
            assert!(
                rel_dev(&[dk.constant], &[c.constant]) < 1e-14,
                "toy {k} constant"
            );
        }
    }
}

fn toy_settings(n: u32, shard: Option<(u32, u32)>, kind: TestStat, mu: f64) -> ToySettings {
    ToySettings {
        mu,
        test_stat: kind,
        n_toys: n,
        seed: 4242,
        shard,
        batch: 16,
        model_digest: "digest".into(),
        toy_max_iter: None,
    }
}

#[test]
fn toy_runs_match_the_cpu() {
    let m = load(
        "examples/workspaces/two-channel.json",
        &ModelOptions::default(),
    );
    let mut gpu = Gpu::new(EmuBackend, &m).unwrap();
    gpu.set_max_members(20); // several toy batches
    let p = Problem::new(&m, m.observed()).unwrap();
    for (kind, mu) in [
        (TestStat::QTilde, 1.0),
        (TestStat::Q0, 0.0),
        (TestStat::T, 0.7),
    ] {
        let s = toy_settings(40, Some((1, 3)), kind, mu);
        let opts = FitOptions::default();
        let cpu = run_toys(&p, &s, &opts, &|_, _| {}).unwrap();
        let calls = std::sync::atomic::AtomicU64::new(0);
        let g = gradfit::gpu::run_toys(&gpu, &p, &s, &opts, &|done, total| {
            assert!(done <= total);
            calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        })
        .unwrap();
        assert!(calls.load(std::sync::atomic::Ordering::Relaxed) >= 2);
        assert_eq!(cpu.range, g.range);
        assert_eq!(cpu.test_stat_obs, g.test_stat_obs);
        assert_eq!(cpu.pars_sig_bkg, g.pars_sig_bkg);
        assert_eq!(cpu.sig_bkg.len(), g.sig_bkg.len());
        for (a, b) in cpu
            .sig_bkg
            .iter()
            .chain(&cpu.bkg)
            .zip(g.sig_bkg.iter().chain(&g.bkg))
        {
            assert_eq!(a.toy, b.toy);
            assert_eq!(a.status_free, b.status_free, "toy {}", a.toy);
            assert_eq!(a.status_fixed, b.status_fixed, "toy {}", a.toy);
            match (a.stat, b.stat) {
                (Some(x), Some(y)) => assert!(
                    (x - y).abs() <= 1e-7 * x.abs().max(1.0),
                    "toy {}: {x} vs {y}",
                    a.toy
                ),
                (None, None) => {}
                other => panic!("toy {}: {other:?}", a.toy),
            }
            assert!(
                (a.twice_nll_free - b.twice_nll_free).abs()
                    <= 1e-8 * a.twice_nll_free.abs().max(1.0)
            );
            assert!((a.mu_hat - b.mu_hat).abs() <= 1e-5 * a.mu_hat.abs().max(1.0));
        }
    }
}

#[test]
fn selftest_passes_on_the_examples_and_fails_on_a_wrong_model() {
    let m = load(
        "examples/workspaces/two-channel.json",
        &ModelOptions::default(),
    );
    let gpu = Gpu::new(EmuBackend, &m).unwrap();
    let opts = SelftestOptions {
        points: 4,
        toys: 30,
        sample_toys: 200,
        bench_sizes: vec![1, 64],
        bench_toys: 10,
        seed: 1,
    };
    let mut rep = Report::default();
    run_model(&gpu, &m, "two-channel", &opts, &mut rep).unwrap();
    assert!(rep.passed(), "{:#?}", rep.checks);
    assert!(rep.checks.len() >= 10);
    // two end-to-end sizes, the evaluation kernel alone (gradient, Hessian), toys
    assert_eq!(rep.bench.len(), 5, "{:#?}", rep.bench);
    assert!(rep.bench.iter().all(|b| b.per_second > 0.0));
    assert!(
        rep.bench
            .iter()
            .any(|b| b.what.contains("+ exact Hessian") && b.batch == 64)
    );
    // the device holding a different model (signal doubled) must fail the comparisons
    let other = HistFactoryModel::load(
        &repo("examples/workspaces/two-channel.json"),
        &[gradfit::workspace::load_patch(&repo(
            "examples/workspaces/two-channel.signal-x2.patch.json",
        ))
        .unwrap()],
        &ReadOptions::default(),
        &ModelOptions::default(),
    )
    .unwrap();
    let wrong = Gpu::new(EmuBackend, &other).unwrap();
    let mut rep = Report::default();
    let opts = SelftestOptions {
        toys: 0,
        sample_toys: 0,
        bench_sizes: vec![],
        bench_toys: 0,
        ..opts
    };
    run_model(&wrong, &m, "two-channel", &opts, &mut rep).unwrap();
    assert!(!rep.passed());
    assert!(
        rep.checks
            .iter()
            .any(|c| !c.pass && c.what.starts_with("twice_nll"))
    );
}

// ---- the shared published workspaces (GRADFIT_SHARED; run by .ci/run)

fn shared_models() -> Vec<(String, HistFactoryModel)> {
    let dir = common::shared_dir();
    common::workspace_names(&dir)
        .into_iter()
        .map(|n| {
            let m = common::load_model(&dir, &n, &ModelOptions::default());
            (n, m)
        })
        .collect()
}

#[test]
#[ignore = "needs GRADFIT_SHARED"]
fn shared_workspaces_eval_matches_the_cpu_kernel() {
    let models = shared_models();
    assert_eq!(models.len(), 4);
    for (name, m) in &models {
        eprintln!("{name}: {} parameters", m.n_pars());
        compare_eval(m, 6, 1e-12);
    }
}

#[test]
#[ignore = "needs GRADFIT_SHARED"]
fn shared_workspaces_fits_and_toys_match_the_cpu() {
    for (name, m) in &shared_models() {
        eprintln!("{name}");
        let mut pars = m.init().to_vec();
        pars[m.poi().unwrap()] = 0.0;
        let g = m.generator(&pars);
        let datas = vec![m.observed().clone(), m.sample(&g, 5, 0, purpose::BKG)];
        if name.contains("offshell") {
            // toys whose POI-fixed fits take many iterations (they walk into the
            // wall of an empty bin: scoring runs and their stagnation test,
            // src/fit/newton.rs and kernels/fit.cuh)
            let fixed = FitSpec::from_model(m).fix(m.poi().unwrap(), 2.0);
            let hard: Vec<Dataset> = (0..60)
                .map(|t| m.sample(&g, 1, t, purpose::BKG))
                .filter(|d| fit::fit(m, d, &fixed, &FitOptions::default()).iterations > 15)
                .take(3)
                .collect();
            assert!(!hard.is_empty(), "{name}: no hard toy among 60");
            for d in &hard {
                compare_hard_fit(m, d, &fixed, 15);
            }
        }
        compare_fits(m, &datas, 1e-10);
        let gpu = Gpu::new(EmuBackend, m).unwrap();
        let d = gpu.sample_toys(m, &pars, 9, purpose::BKG, 0..50).unwrap();
        for (k, dk) in d.iter().enumerate() {
            let c = m.sample(&g, 9, k as u32, purpose::BKG);
            assert_eq!((&dk.main, &dk.aux), (&c.main, &c.aux), "{name} toy {k}");
        }
        let p = Problem::new(m, m.observed()).unwrap();
        let s = toy_settings(6, None, TestStat::QTilde, 1.0);
        let opts = FitOptions::default();
        let cpu = run_toys(&p, &s, &opts, &|_, _| {}).unwrap();
        let gr = gradfit::gpu::run_toys(&gpu, &p, &s, &opts, &|_, _| {}).unwrap();
        for (a, b) in cpu
            .sig_bkg
            .iter()
            .chain(&cpu.bkg)
            .zip(gr.sig_bkg.iter().chain(&gr.bkg))
        {
            assert_eq!(
                (a.status_free, a.status_fixed),
                (b.status_free, b.status_fixed),
                "{name} toy {}",
                a.toy
            );
            match (a.stat, b.stat) {
                (Some(x), Some(y)) => assert!(
                    (x - y).abs() <= 1e-6 * x.abs().max(1.0),
                    "{name} toy {}: {x} vs {y}",
                    a.toy
                ),
                (None, None) => {}
                other => panic!("{name} toy {}: {other:?}", a.toy),
            }
        }
    }
}

#[test]
fn reused_device_buffers_give_the_same_results_as_fresh_ones() {
    // a Gpu keeps the buffers of earlier calls; no kernel may depend on their contents
    let m = load(
        "examples/workspaces/two-channel.json",
        &ModelOptions::default(),
    );
    let used = Gpu::new(EmuBackend, &m).unwrap();
    let g = m.generator(m.init());
    let datas: Vec<Dataset> = (0..9).map(|t| m.sample(&g, 2, t, purpose::BKG)).collect();
    let refs: Vec<&Dataset> = datas.iter().collect();
    let specs = vec![FitSpec::from_model(&m); 9];
    let opts = FitOptions::default();
    let th: Vec<f64> = (0..9)
        .flat_map(|_| m.init().iter().map(|x| x * 1.01))
        .collect();
    // dirty every buffer with other sizes and modes first
    used.fit_batch(&refs[..5], &specs[..5], &opts).unwrap();
    used.eval_batch(&th, &refs, EvalMode::Fisher).unwrap();
    let p = Problem::new(&m, m.observed()).unwrap();
    let s = toy_settings(12, None, TestStat::QTilde, 1.0);
    gradfit::gpu::run_toys(&used, &p, &s, &opts, &|_, _| {}).unwrap();
    for _ in 0..2 {
        let fresh = Gpu::new(EmuBackend, &m).unwrap();
        let a = used.fit_batch(&refs, &specs, &opts).unwrap();
        let b = fresh.fit_batch(&refs, &specs, &opts).unwrap();
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.twice_nll.to_bits(), y.twice_nll.to_bits());
            assert_eq!(x.covariance, y.covariance);
        }
        let a = used
            .eval_batch(&th, &[m.observed()], EvalMode::Hessian)
            .unwrap();
        let b = fresh
            .eval_batch(&th, &[m.observed()], EvalMode::Hessian)
            .unwrap();
        assert_eq!((a.f, a.grad, a.hess), (b.f, b.grad, b.hess));
        let s2 = toy_settings(7, None, TestStat::Q, 0.8);
        let a = gradfit::gpu::run_toys(&used, &p, &s2, &opts, &|_, _| {}).unwrap();
        let b = gradfit::gpu::run_toys(&fresh, &p, &s2, &opts, &|_, _| {}).unwrap();
        assert_eq!(a, b);
    }
}

#[test]
fn device_sessions_dispatch_to_the_emulated_gpu_and_the_cpu() {
    use gradfit::device::{Device, Session};
    let m = load(
        "examples/workspaces/two-channel.json",
        &ModelOptions::default(),
    );
    let spec = FitSpec::from_model(&m);
    let opts = FitOptions::default();
    let cpu = Session::new(&Device::Cpu, &m).unwrap();
    let emu = Session::new(&Device::CudaEmu, &m).unwrap();
    assert!(emu.describe().contains("emulation"));
    let a = cpu.fit(m.observed(), &spec, &opts).unwrap();
    let b = emu.fit(m.observed(), &spec, &opts).unwrap();
    assert_eq!(a.status, b.status);
    assert!((a.twice_nll - b.twice_nll).abs() < 1e-10);
    let th: Vec<f64> = m.init().repeat(3);
    let (fa, ga) = cpu.eval_batch(&th, &[m.observed()], true).unwrap();
    let (fb, gb) = emu.eval_batch(&th, &[m.observed()], true).unwrap();
    assert!(rel_dev(&fb, &fa) < 1e-12 && rel_dev(&gb.unwrap(), &ga.unwrap()) < 1e-12);
    assert!(
        emu.fit_batch(
            &[m.observed(), m.observed()],
            std::slice::from_ref(&spec),
            &opts
        )
        .is_err()
    );
    let p = Problem::new(&m, m.observed()).unwrap();
    let s = toy_settings(5, None, TestStat::QTilde, 1.0);
    let ra = gradfit::device::run_toys(&Device::Cpu, &p, &s, &opts, &|_, _| {}).unwrap();
    let rb = gradfit::device::run_toys(&Device::CudaEmu, &p, &s, &opts, &|_, _| {}).unwrap();
    assert_eq!(ra.sig_bkg.len(), rb.sig_bkg.len());
    // a problem on another model is refused
    let other = m.clone();
    let q = Problem::new(&other, other.observed()).unwrap();
    assert!(emu.run_toys(&q, &s, &opts, &|_, _| {}).is_err());
}

#[test]
fn toys_past_the_device_iteration_cap_are_finished_on_the_host() {
    let m = load(
        "examples/workspaces/two-channel.json",
        &ModelOptions::default(),
    );
    let mut gpu = Gpu::new(EmuBackend, &m).unwrap();
    // every fit needs more than one iteration: every toy goes to the host
    gpu.set_toy_iter_cap(1);
    let p = Problem::new(&m, m.observed()).unwrap();
    let s = toy_settings(12, None, TestStat::QTilde, 1.0);
    let opts = FitOptions::default();
    let cpu = run_toys(&p, &s, &opts, &|_, _| {}).unwrap();
    let g = gradfit::gpu::run_toys(&gpu, &p, &s, &opts, &|_, _| {}).unwrap();
    // the emulated device draws the CPU's toy data bit for bit, and the host
    // refits them with the CPU minimiser: the records are the CPU's exactly
    assert_eq!(cpu.sig_bkg, g.sig_bkg);
    assert_eq!(cpu.bkg, g.bkg);
    // with the cap above the fits' iteration counts nothing is handed over,
    // and the device's own fits agree with the CPU's to rounding
    gpu.set_toy_iter_cap(500);
    let d = gradfit::gpu::run_toys(&gpu, &p, &s, &opts, &|_, _| {}).unwrap();
    assert_ne!(
        d.sig_bkg, cpu.sig_bkg,
        "the device's fits should differ by rounding somewhere"
    );
    for (a, b) in cpu.sig_bkg.iter().zip(&d.sig_bkg) {
        assert_eq!(a.status_free, b.status_free);
        assert!(
            (a.twice_nll_free - b.twice_nll_free).abs() <= 1e-8 * a.twice_nll_free.abs().max(1.0)
        );
    }
}

#[test]
fn auto_routing_runs_small_work_of_a_gpu_session_on_the_cpu() {
    use gradfit::device::{Device, Policy, Session};
    let m = load(
        "examples/workspaces/two-channel.json",
        &ModelOptions::default(),
    );
    let spec = FitSpec::from_model(&m);
    let opts = FitOptions::default();
    let cpu = fit::fit(&m, m.observed(), &spec, &opts);
    let routed = Session::new(&Device::CudaEmu, &m)
        .unwrap()
        .with_policy(Policy::Auto);
    let r = routed.fit(m.observed(), &spec, &opts).unwrap();
    // the CPU minimiser's result, bit for bit
    assert_eq!(r.x, cpu.x);
    assert_eq!(r.twice_nll.to_bits(), cpu.twice_nll.to_bits());
    let th: Vec<f64> = m.init().repeat(3);
    let (f, _) = routed.eval_batch(&th, &[m.observed()], false).unwrap();
    let mut s = m.scratch();
    let want = m.eval(m.init(), m.observed(), &mut s, None, None);
    assert!(f.iter().all(|v| v.to_bits() == want.to_bits()));
}

#[test]
fn step_searches_split_across_launches_give_the_same_fits() {
    // fits from starts far from the minimum, where steps are rejected and the
    // step search of an iteration needs several trials
    let mut cases: Vec<(HistFactoryModel, Vec<FitSpec>)> = Vec::new();
    for m in [
        load(
            "examples/workspaces/two-channel.json",
            &ModelOptions::default(),
        ),
        synthetic(10, 4),
    ] {
        let base = FitSpec::from_model(&m);
        let specs: Vec<FitSpec> = (0..24)
            .map(|k| {
                let mut s = base.clone();
                for (i, x) in s.init.iter_mut().enumerate() {
                    let (lo, hi) = s.bounds[i];
                    let u = ((k * 7 + i * 13) % 11) as f64 / 10.0;
                    *x = lo + (hi - lo) * (0.02 + 0.96 * u);
                }
                s
            })
            .collect();
        cases.push((m, specs));
    }
    let opts = FitOptions::default();
    let mut launches = (0, 0);
    for (m, specs) in &cases {
        let mut whole = Gpu::new(EmuBackend, m).unwrap();
        whole.set_attempts_per_launch(0);
        let mut split = Gpu::new(EmuBackend, m).unwrap();
        split.set_attempts_per_launch(1);
        let a = whole.fit_batch(&[m.observed()], specs, &opts).unwrap();
        let b = split.fit_batch(&[m.observed()], specs, &opts).unwrap();
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(
                (x.status, x.iterations, x.n_evals),
                (y.status, y.iterations, y.n_evals)
            );
            assert_eq!(x.twice_nll.to_bits(), y.twice_nll.to_bits());
            assert_eq!(x.x, y.x);
        }
        launches.0 += whole.fit_launches();
        launches.1 += split.fit_launches();
    }
    // the split searches really ran in more launches (the synthetic model's do)
    assert!(launches.1 > launches.0, "{launches:?} launches");
}
