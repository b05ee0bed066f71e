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
#[path = "gpu_emu/fits.rs"]
mod fits;
#[path = "gpu_emu/shared.rs"]
mod shared;

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
