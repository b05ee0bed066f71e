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
