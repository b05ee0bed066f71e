//! The candle graph, the fused kernel and the custom op compute the same function;
//! gradients with respect to templates and the analytic Hessian agree with finite differences.

mod common;
use candle_core::{Device, Tensor, Var};
use common::*;
use gradfit::model::histfactory::graph::Graph;
use gradfit::model::histfactory::op::TwiceNllOp;
use gradfit::model::{HistFactoryModel, InterpCode, ModelOptions};
use gradfit::workspace::ReadOptions;
use std::sync::Arc;

fn example(opts: &ModelOptions) -> HistFactoryModel {
    HistFactoryModel::load(
        &repo("examples/workspaces/two-channel.json"),
        &[],
        &ReadOptions::default(),
        opts,
    )
    .unwrap()
}

#[test]
fn graph_matches_kernel_for_every_interpolation_code() {
    use InterpCode::*;
    for ns in [Code0, Code1, Code2, Code4, Code4p] {
        for hs in [Code0, Code1, Code2, Code4, Code4p] {
            let opts = ModelOptions {
                normsys_code: ns,
                histosys_code: hs,
                ..Default::default()
            };
            let m = example(&opts);
            check_graph_vs_kernel(
                &m,
                16,
                7,
                1e-12,
                1e-10,
                &format!("normsys={ns} histosys={hs}"),
            );
        }
    }
}

#[test]
fn custom_op_forward_backward_and_second_order() {
    let m = Arc::new(example(&ModelOptions::default()));
    let data = Arc::new(m.observed().clone());
    let p = m.n_pars();
    let mut rng = TestRng::new(11);
    let pts: Vec<Vec<f64>> = (0..4).map(|_| random_point(&m, &mut rng)).collect();
    let flat: Vec<f64> = pts.iter().flatten().copied().collect();
    let dev = Device::Cpu;
    let theta = Var::from_tensor(&Tensor::from_vec(flat, (4, p), &dev).unwrap()).unwrap();
    let op = TwiceNllOp::new(m.clone(), data.clone());
    let f = op.apply(theta.as_tensor()).unwrap();
    let fv: Vec<f64> = f.to_vec1().unwrap();
    let grads = f.sum_all().unwrap().backward().unwrap();
    let g: Vec<Vec<f64>> = grads.get(theta.as_tensor()).unwrap().to_vec2().unwrap();
    for k in 0..4 {
        let (fk, gk, hk) = m.twice_nll_hessian(&pts[k], &data);
        assert_eq!(fv[k], fk);
        for i in 0..p {
            assert_eq!(g[k][i], gk[i]);
        }
        // Hessian-vector product through the gradient op's backward
        let v: Vec<f64> = (0..p).map(|i| ((i * 7 + k) % 5) as f64 - 2.0).collect();
        let th =
            Var::from_tensor(&Tensor::from_vec(pts[k].clone(), (1, p), &dev).unwrap()).unwrap();
        let gop = gradfit::model::histfactory::op::GradOp::new(m.clone(), data.clone());
        let gt = th.as_tensor().apply_op1(gop).unwrap();
        let vt = Tensor::from_vec(v.clone(), (1, p), &dev).unwrap();
        let s = (gt * vt).unwrap().sum_all().unwrap();
        let hv: Vec<Vec<f64>> = s
            .backward()
            .unwrap()
            .get(th.as_tensor())
            .unwrap()
            .to_vec2()
            .unwrap();
        for i in 0..p {
            let want: f64 = (0..p).map(|j| hk[i * p + j] * v[j]).sum();
            assert!(
                (hv[0][i] - want).abs() <= 1e-12 * want.abs().max(1.0),
                "Hv[{i}] {} vs {want}",
                hv[0][i]
            );
        }
    }
}

#[test]
fn template_gradients_agree_with_finite_differences() {
    let m = example(&ModelOptions::default());
    let dev = Device::Cpu;
    let g = Graph::new(&m, &dev).unwrap();
    let tp = g.templates(&m).unwrap();
    let nominal = Var::from_tensor(&tp.nominal).unwrap();
    let histo_hi = Var::from_tensor(&tp.histo_hi).unwrap();
    let norm_lo = Var::from_tensor(&tp.norm_lo).unwrap();
    let mut tpv = tp.clone();
    tpv.nominal = nominal.as_tensor().clone();
    tpv.histo_hi = histo_hi.as_tensor().clone();
    tpv.norm_lo = norm_lo.as_tensor().clone();
    let data = g.data(m.observed()).unwrap();
    let mut rng = TestRng::new(3);
    let x = random_point(&m, &mut rng);
    let theta = Tensor::from_vec(x.clone(), (1, m.n_pars()), &dev).unwrap();
    let f = g.twice_nll(&theta, &tpv, &data).unwrap();
    let grads = f.sum_all().unwrap().backward().unwrap();
    let d_nom: Vec<f64> = grads.get(nominal.as_tensor()).unwrap().to_vec1().unwrap();
    let d_hhi: Vec<f64> = grads.get(histo_hi.as_tensor()).unwrap().to_vec1().unwrap();
    let d_nlo: Vec<f64> = grads.get(norm_lo.as_tensor()).unwrap().to_vec1().unwrap();
    // central finite differences of the fused kernel with perturbed templates
    let fd = |which: usize, k: usize| -> f64 {
        let h = 1e-6;
        let mut vals = [0.0; 2];
        for (s, sign) in [1.0, -1.0].iter().enumerate() {
            let mut mm = m.clone();
            let mut t = m.templates.clone();
            let slot = match which {
                0 => &mut t.nominal[k],
                1 => &mut t.histo_hi[k],
                _ => &mut t.norm_lo[k],
            };
            let step = h * slot.abs().max(1.0);
            *slot += sign * step;
            mm.set_templates(t).unwrap();
            vals[s] = mm.twice_nll(&x, m.observed()) / (2.0 * step);
        }
        vals[0] - vals[1]
    };
    let mut checked = 0;
    for (which, grad) in [(0, &d_nom), (1, &d_hhi), (2, &d_nlo)] {
        for (k, &gk) in grad.iter().enumerate() {
            let want = fd(which, k);
            assert!(
                (gk - want).abs() < 1e-5 * want.abs().max(1.0),
                "template {which}[{k}]: autodiff {gk} vs fd {want}"
            );
            checked += 1;
        }
    }
    assert!(
        d_nom.iter().any(|v| v.abs() > 1e-3),
        "nominal gradients should not all vanish"
    );
    assert!(checked > 20);
}

#[test]
fn analytic_hessian_agrees_with_differenced_gradients() {
    for (ns, hs) in [
        (InterpCode::Code4, InterpCode::Code4p),
        (InterpCode::Code1, InterpCode::Code0),
        (InterpCode::Code2, InterpCode::Code4),
    ] {
        let m = example(&ModelOptions {
            normsys_code: ns,
            histosys_code: hs,
            ..Default::default()
        });
        let p = m.n_pars();
        let mut rng = TestRng::new(5);
        for k in 0..7 {
            let mut x = random_point(&m, &mut rng);
            // exact zeros of linear factors take the division-free path of the kernel
            if k == 5 {
                x[m.poi.unwrap()] = 0.0;
            }
            if k == 6 {
                x[m.par_index("mj_shape[1]").unwrap()] = 0.0;
                x[m.poi.unwrap()] = 0.0;
            }
            let (_, _, h) = m.twice_nll_hessian(&x, m.observed());
            for j in 0..p {
                let step = 1e-6 * x[j].abs().max(1.0);
                let mut xp = x.clone();
                let mut xm = x.clone();
                xp[j] += step;
                xm[j] -= step;
                let (_, gp) = m.twice_nll_grad(&xp, m.observed());
                let (_, gm) = m.twice_nll_grad(&xm, m.observed());
                for i in 0..p {
                    let fd = (gp[i] - gm[i]) / (2.0 * step);
                    let a = h[i * p + j];
                    assert!(
                        (a - fd).abs() < 2e-5 * fd.abs().max(1.0),
                        "{ns}/{hs}: H[{i}][{j}] {a} vs fd {fd}"
                    );
                    assert_eq!(h[i * p + j], h[j * p + i], "symmetric");
                }
            }
        }
    }
}

#[test]
fn batched_kernel_equals_single_evaluations() {
    let m = example(&ModelOptions::default());
    let p = m.n_pars();
    let mut rng = TestRng::new(9);
    let pts: Vec<Vec<f64>> = (0..33).map(|_| random_point(&m, &mut rng)).collect();
    let flat: Vec<f64> = pts.iter().flatten().copied().collect();
    let mut f = vec![0.0; 33];
    let mut g = vec![0.0; 33 * p];
    let mut h = vec![0.0; 33 * p * p];
    m.eval_batch(&flat, &[m.observed()], &mut f, Some(&mut g), Some(&mut h));
    for k in 0..33 {
        let (fk, gk, hk) = m.twice_nll_hessian(&pts[k], m.observed());
        assert_eq!(f[k], fk);
        assert_eq!(&g[k * p..(k + 1) * p], &gk[..]);
        assert_eq!(&h[k * p * p..(k + 1) * p * p], &hk[..]);
    }
}

/// twice_nll (less the data constant), gradient and Hessian of `a` at `x`
/// against `b` at the same values of the parameters they share (by name);
/// parameters of `b` only sit at their init. Relative to the largest entry.
fn same_function(a: &HistFactoryModel, b: &HistFactoryModel, x: &[f64], tol: f64, label: &str) {
    let (pa, pb) = (a.n_pars(), b.n_pars());
    let map: Vec<usize> = (0..pa)
        .map(|i| b.par_index(&a.par_names[i]).unwrap())
        .collect();
    let mut xb = b.init.clone();
    for i in 0..pa {
        xb[map[i]] = x[i];
    }
    let (fa, ga, ha) = a.twice_nll_hessian(x, a.observed());
    let (fb, gb, hb) = b.twice_nll_hessian(&xb, b.observed());
    let (fa, fb) = (fa - a.observed().constant, fb - b.observed().constant);
    assert!(rel(fa, fb) < tol, "{label}: twice_nll {fa} vs {fb}");
    let gmax = ga.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    let hmax = ha.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    for i in 0..pa {
        assert!(
            (ga[i] - gb[map[i]]).abs() <= tol * gmax,
            "{label}: gradient {}: {} vs {}",
            a.par_names[i],
            ga[i],
            gb[map[i]]
        );
        for j in 0..pa {
            assert!(
                (ha[i * pa + j] - hb[map[i] * pb + map[j]]).abs() <= tol * hmax,
                "{label}: Hessian [{}][{}]: {} vs {}",
                a.par_names[i],
                a.par_names[j],
                ha[i * pa + j],
                hb[map[i] * pb + map[j]]
            );
        }
    }
}

#[test]
fn identically_zero_sample_bins_leave_the_rows_and_the_function_unchanged() {
    use gradfit::model::Likelihood;
    let m = model_from_value(sparse_samples_workspace(false));
    let reference = model_from_value(sparse_samples_workspace(true));
    let lay = m.layout();
    let block = |name: &str| lay.block_of[lay.inv[m.par_index(name).unwrap()]];
    // peak_norm meets only bin 1 (the others are identically zero): a local of
    // bin 1's block, beside stat[1]; ghost_norm meets no rate at all (a local
    // with its constraint only); shape_hs and shape_norm stay global (the
    // histosys keeps the zero-nominal sample-bins of `shape` alive)
    assert_eq!(block("peak_norm"), block("stat[1]"));
    assert_ne!(block("peak_norm"), usize::MAX);
    assert_ne!(block("ghost_norm"), usize::MAX);
    for g in ["mu", "bkg_norm", "shared_norm", "shape_hs", "shape_norm"] {
        assert_eq!(block(g), usize::MAX, "{g} is global");
    }
    assert_eq!(lay.n_global, 5);
    // in the reference every sample-bin is alive: peak_norm and ghost_norm are global
    let rl = reference.layout();
    assert_eq!(rl.n_global, 8, "mu, 4 normsys, 2 histosys, zz");

    let mut rng = TestRng::new(21);
    let ghost = m.par_index("ghost_norm").unwrap();
    let p = m.n_pars();
    for k in 0..8 {
        let mut x = random_point(&m, &mut rng);
        if k == 6 {
            x[m.poi.unwrap()] = 0.0; // a zero factor: the division-free branch
        }
        same_function(&m, &reference, &x, 1e-12, &format!("point {k}"));
        // ghost_norm: only its constraint, 2 (x - 0) / 1 and curvature 2
        let (_, g, h) = m.twice_nll_hessian(&x, m.observed());
        assert_eq!(g[ghost], 2.0 * x[ghost]);
        assert_eq!(h[ghost * p + ghost], 2.0);
        assert!((0..p).all(|j| j == ghost || h[ghost * p + j] == 0.0));
    }
    // the gradient against the candle graph (autodiff of the dense expression)
    check_graph_vs_kernel(&m, 8, 4, 1e-12, 1e-10, "sparse samples");

    // and fits: the same minimum as the reference
    use gradfit::fit::{FitOptions, FitSpec, fit};
    let fa = fit(
        &m,
        m.observed(),
        &FitSpec::from_model(&m),
        &FitOptions::default(),
    );
    let fb = fit(
        &reference,
        reference.observed(),
        &FitSpec::from_model(&reference),
        &FitOptions::default(),
    );
    assert!(
        fa.status == gradfit::fit::FitStatus::Converged
            && fb.status == gradfit::fit::FitStatus::Converged,
        "{:?} {:?}",
        fa.status,
        fb.status
    );
    let ca = fa.twice_nll - m.observed().constant;
    let cb = fb.twice_nll - reference.observed().constant;
    assert!((ca - cb).abs() < 1e-9, "minimum {ca} vs {cb}");
    for i in 0..p {
        let j = reference.par_index(&m.par_names[i]).unwrap();
        assert!((fa.x[i] - fb.x[j]).abs() < 1e-6, "{}", m.par_names[i]);
        assert!(
            (fa.errors[i] - fb.errors[j]).abs() < 1e-6,
            "{}",
            m.par_names[i]
        );
    }
}

#[test]
fn set_templates_revives_and_kills_sample_bins() {
    let base = model_from_value(sparse_samples_workspace(false));
    let peak = base
        .samples
        .iter()
        .find(|s| s.name == "peak")
        .unwrap()
        .first_sb;
    // peak becomes non-zero in bin 2: peak_norm turns global
    let mut v = sparse_samples_workspace(false);
    v["channels"][0]["samples"][2]["data"] = serde_json::json!([0.0, 7.0, 4.0, 0.0]);
    let direct = model_from_value(v);
    let mut m = base.clone();
    let mut t = m.templates.clone();
    t.nominal[peak + 2] = 4.0;
    m.set_templates(t).unwrap();
    use gradfit::model::Likelihood;
    assert_eq!(m.layout().n_global, 6);
    assert_eq!(m.layout().perm, direct.layout().perm);
    let mut rng = TestRng::new(8);
    for _ in 0..6 {
        let x = random_point(&m, &mut rng);
        assert_eq!(
            m.twice_nll_hessian(&x, m.observed()),
            direct.twice_nll_hessian(&x, direct.observed())
        );
    }
    // and back to zero: the original model again
    let mut t = m.templates.clone();
    t.nominal[peak + 2] = 0.0;
    m.set_templates(t).unwrap();
    assert_eq!(m.layout().perm, base.layout().perm);
    for _ in 0..6 {
        let x = random_point(&m, &mut rng);
        assert_eq!(
            m.twice_nll_hessian(&x, m.observed()),
            base.twice_nll_hessian(&x, base.observed())
        );
    }
}

#[test]
fn set_templates_shares_normsys_entries_and_changes_nothing_on_an_invalid_template() {
    let base = model_from_value(sparse_samples_workspace(false));
    // one interpolation per distinct (hi, lo): fewer entries than normsys terms
    assert!(base.interps.len() < base.templates.norm_hi.len() + base.templates.histo_hi.len());
    // change one normsys entry: only that term moves (the others sharing its
    // old interpolation keep it), as in a model built from those templates
    let mut m = base.clone();
    let mut t = m.templates.clone();
    t.norm_hi[0] *= 1.5;
    m.set_templates(t.clone()).unwrap();
    let mut rng = TestRng::new(3);
    let x = random_point(&m, &mut rng);
    let (f_changed, _, _) = m.twice_nll_hessian(&x, m.observed());
    let (f_base, _, _) = base.twice_nll_hessian(&x, base.observed());
    assert_ne!(f_changed, f_base);
    let mut back = m.clone();
    let mut t0 = t.clone();
    t0.norm_hi[0] /= 1.5;
    back.set_templates(t0).unwrap();
    assert!(rel(back.twice_nll(&x, back.observed()), f_base) < 1e-14);
    // an invalid factor is refused and leaves the model as it was
    let mut bad = t;
    let last = bad.norm_lo.len() - 1;
    bad.norm_lo[last] = -1.0;
    bad.nominal[0] += 1.0;
    assert!(m.set_templates(bad).is_err());
    assert_eq!(m.twice_nll_hessian(&x, m.observed()).0, f_changed);
}

/// `windows` background samples, each non-zero in its own two bins with three
/// normsys of its own, under a signal over every bin: 3 x `windows`
/// parameters that each touch two bins, and `mu`.
fn windows_workspace(windows: usize) -> serde_json::Value {
    let nb = 2 * windows;
    let sig: Vec<f64> = (0..nb).map(|b| 1.0 + (b % 7) as f64 * 0.5).collect();
    let mut samples = vec![serde_json::json!({"name": "signal", "data": sig,
        "modifiers": [{"name": "mu", "type": "normfactor", "data": null}]})];
    let mut obs = sig.clone();
    for w in 0..windows {
        let mut d = vec![0.0; nb];
        d[2 * w] = 20.0 + (w % 5) as f64;
        d[2 * w + 1] = 12.0 + (w % 3) as f64;
        let mods: Vec<serde_json::Value> = (0..3)
            .map(|k| {
                let (hi, lo) = (1.0 + 0.03 * (k + 1) as f64, 1.0 - 0.02 * (k + 1) as f64);
                serde_json::json!({"name": format!("w{w}_n{k}"), "type": "normsys",
                    "data": {"hi": hi, "lo": lo}})
            })
            .collect();
        obs[2 * w] += d[2 * w] + ((w * 7) % 5) as f64 - 2.0;
        obs[2 * w + 1] += d[2 * w + 1] + ((w * 3) % 4) as f64 - 1.5;
        samples.push(serde_json::json!({"name": format!("bkg{w}"), "data": d, "modifiers": mods}));
    }
    let obs: Vec<f64> = obs.iter().map(|v| v.round().max(0.0)).collect();
    serde_json::json!({
        "channels": [{"name": "SR", "samples": samples}],
        "observations": [{"name": "SR", "data": obs}],
        "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": []}}],
        "version": "1.0.0"
    })
}

/// A model seen through a dense Hessian layout (the trait's default packing
/// of the full Hessian): the reference for a model's own block layout.
struct DenseView<'a> {
    m: &'a HistFactoryModel,
    layout: gradfit::model::HessianLayout,
}

impl gradfit::model::Likelihood for DenseView<'_> {
    type Data = gradfit::model::Dataset;
    type Scratch = gradfit::model::histfactory::kernel::Scratch;
    type Generator = gradfit::model::histfactory::ToyGenerator;
    fn par_names(&self) -> &[String] {
        &self.m.par_names
    }
    fn init(&self) -> &[f64] {
        &self.m.init
    }
    fn bounds(&self) -> &[(f64, f64)] {
        &self.m.bounds
    }
    fn fixed(&self) -> &[bool] {
        &self.m.fixed
    }
    fn poi(&self) -> Option<usize> {
        self.m.poi
    }
    fn observed(&self) -> &Self::Data {
        self.m.observed()
    }
    fn scratch(&self) -> Self::Scratch {
        gradfit::model::Likelihood::scratch(self.m)
    }
    fn eval(
        &self,
        theta: &[f64],
        data: &Self::Data,
        s: &mut Self::Scratch,
        grad: Option<&mut [f64]>,
        hess: Option<&mut [f64]>,
    ) -> f64 {
        gradfit::model::Likelihood::eval(self.m, theta, data, s, grad, hess)
    }
    fn asimov(&self, theta: &[f64]) -> Self::Data {
        self.m.asimov_dataset(theta)
    }
    fn generator(&self, theta: &[f64]) -> Self::Generator {
        self.m.toy_generator(theta)
    }
    fn sample(&self, g: &Self::Generator, seed: u64, toy: u32, purpose: u32) -> Self::Data {
        self.m.sample_dataset(g, seed, toy, purpose)
    }
    fn layout(&self) -> &gradfit::model::HessianLayout {
        &self.layout
    }
}

#[test]
fn parameters_of_connected_bins_form_blocks_when_globals_would_be_many() {
    use gradfit::fit::{FitOptions, FitSpec, fit};
    use gradfit::model::Likelihood;
    // 180 windows: 540 two-bin normsys, more than the 512 globals at which
    // blocks grow over connected bins
    let m = model_from_value(windows_workspace(180));
    let lay = m.layout();
    assert_eq!(lay.n_global, 1, "only mu stays global");
    assert_eq!(lay.perm[0], m.poi.unwrap());
    assert_eq!(lay.blocks.len(), 180);
    for w in [0, 17, 179] {
        let b = lay.block_of[lay.inv[m.par_index(&format!("w{w}_n0")).unwrap()]];
        assert_eq!(lay.blocks[b].1 - lay.blocks[b].0, 3, "window {w}");
        for k in 1..3 {
            let i = m.par_index(&format!("w{w}_n{k}")).unwrap();
            assert_eq!(
                lay.block_of[lay.inv[i]], b,
                "w{w}_n{k} in its window's block"
            );
        }
    }
    // below the threshold the two-bin normsys stay global, as before
    assert_eq!(
        model_from_value(windows_workspace(100)).layout().n_global,
        301
    );

    // the packed Hessian holds every non-zero entry: the full Hessian through
    // the packed layout equals the one through a dense layout, and the
    // gradient matches the candle graph
    let dense = DenseView {
        m: &m,
        layout: gradfit::model::HessianLayout::dense(m.n_pars()),
    };
    let mut rng = TestRng::new(5);
    let p = m.n_pars();
    for _ in 0..3 {
        let x = random_point(&m, &mut rng);
        let (mut ha, mut hb) = (vec![0.0; lay.n_packed], vec![0.0; dense.layout.n_packed]);
        let (mut ga, mut gb) = (vec![0.0; p], vec![0.0; p]);
        let (mut sa, mut sb) = (m.scratch(), dense.scratch());
        let fa = m.eval_block(
            &x,
            m.observed(),
            &mut sa,
            Some(&mut ga),
            Some(&mut ha),
            false,
        );
        let fb = dense.eval_block(
            &x,
            m.observed(),
            &mut sb,
            Some(&mut gb),
            Some(&mut hb),
            false,
        );
        assert_eq!(fa, fb);
        assert_eq!(ga, gb);
        let (mut full_a, mut full_b) = (vec![0.0; p * p], vec![0.0; p * p]);
        lay.expand(&ha, &mut full_a);
        dense.layout.expand(&hb, &mut full_b);
        let hmax = full_b.iter().fold(1.0f64, |a, v| a.max(v.abs()));
        for k in 0..p * p {
            assert!((full_a[k] - full_b[k]).abs() <= 1e-13 * hmax, "entry {k}");
        }
    }
    check_graph_vs_kernel(&m, 2, 2, 1e-12, 1e-10, "windows");

    // fits: the same minimum, parameters and errors through either layout
    let spec = FitSpec::from_model(&m);
    let fa = fit(&m, m.observed(), &spec, &FitOptions::default());
    let fb = fit(&dense, m.observed(), &spec, &FitOptions::default());
    assert!(
        fa.converged && fb.converged,
        "{:?} {:?}",
        fa.status,
        fb.status
    );
    assert!((fa.twice_nll - fb.twice_nll).abs() < 1e-9 * fb.twice_nll.abs().max(1.0));
    for i in 0..p {
        assert!((fa.x[i] - fb.x[i]).abs() < 1e-7, "{}", m.par_names[i]);
        assert!(rel(fa.errors[i], fb.errors[i]) < 1e-7, "{}", m.par_names[i]);
    }
}
