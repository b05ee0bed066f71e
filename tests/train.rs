//! Training through fits: the template graph against the fused kernel,
//! gradients of every loss against central finite differences of the whole
//! pipeline (templates and network weights), implicit derivatives of fits
//! against refits, the neos and INFERNO problems at reduced sizes, seeded
//! reproducibility and the pyhf export.

use candle_core::{DType, Device, Tensor, Var};
use gradfit::Likelihood;
use gradfit::infer::TestStat;
use gradfit::train::graph::DataTensors;
use gradfit::train::hist::kde_hist;
use gradfit::train::implicit::{self, theta_tensor};
use gradfit::train::nn::Mlp;
use gradfit::train::spec::{SampleValues, TemplateValues};
use gradfit::train::{Analysis, AnalysisSpec, LossKind, TemplateGraph};

mod common;
#[path = "train/network_grads.rs"]
mod network_grads;
#[path = "train/training.rs"]
mod training;

fn rich_spec() -> AnalysisSpec {
    serde_json::from_value(serde_json::json!({
        "poi": "mu",
        "channels": [
            {"name": "SR", "nbins": 3, "samples": [
                {"name": "sig", "modifiers": [
                    {"type": "normfactor", "name": "mu"},
                    {"type": "staterror", "name": "stat"},
                    {"type": "lumi", "name": "lumi", "sigma": 0.05}]},
                {"name": "bkg", "modifiers": [
                    {"type": "histosys", "name": "shape"},
                    {"type": "normsys", "name": "xsec"},
                    {"type": "staterror", "name": "stat"},
                    {"type": "lumi", "name": "lumi", "sigma": 0.05}]}
            ]},
            {"name": "CR", "nbins": 2, "samples": [
                {"name": "bkg", "modifiers": [
                    {"type": "histosys", "name": "shape"},
                    {"type": "normsys", "name": "free_norm", "constrained": false}]}
            ]}
        ]
    }))
    .unwrap()
}

fn rich_values() -> TemplateValues {
    TemplateValues {
        samples: vec![
            SampleValues {
                nominal: vec![3.0, 6.0, 2.5],
                sumw2: Some(vec![0.4, 0.9, 0.3]),
                modifiers: vec![None, None, None],
            },
            SampleValues {
                nominal: vec![20.0, 11.0, 7.0],
                sumw2: Some(vec![2.0, 1.5, 1.1]),
                modifiers: vec![
                    Some((vec![23.0, 12.5, 6.0], vec![18.0, 10.2, 7.9])),
                    Some((vec![1.12], vec![0.91])),
                    None,
                    None,
                ],
            },
            SampleValues {
                nominal: vec![50.0, 30.0],
                sumw2: None,
                modifiers: vec![
                    Some((vec![54.0, 29.0], vec![47.0, 31.5])),
                    Some((vec![1.2], vec![0.85])),
                ],
            },
        ],
    }
}

fn flat(v: &TemplateValues) -> Vec<f64> {
    let mut out = Vec::new();
    for s in &v.samples {
        out.extend(&s.nominal);
        if let Some(w) = &s.sumw2 {
            out.extend(w);
        }
        for (h, l) in s.modifiers.iter().flatten() {
            out.extend(h);
            out.extend(l);
        }
    }
    out
}

fn unflat(like: &TemplateValues, x: &[f64]) -> TemplateValues {
    let mut v = like.clone();
    let mut k = 0;
    let mut take = |dst: &mut Vec<f64>| {
        for d in dst.iter_mut() {
            *d = x[k];
            k += 1;
        }
    };
    for s in v.samples.iter_mut() {
        take(&mut s.nominal);
        if let Some(w) = &mut s.sumw2 {
            take(w);
        }
        for (h, l) in s.modifiers.iter_mut().flatten() {
            take(h);
            take(l);
        }
    }
    v
}

fn close(a: f64, b: f64, rtol: f64, atol: f64) -> bool {
    (a - b).abs() <= rtol * a.abs().max(b.abs()) + atol
}

/// The graph's expected counts, gradient and Asimov Hessian against the kernel.
#[test]
fn graph_matches_kernel() {
    let spec = rich_spec();
    let v = rich_values();
    let g = TemplateGraph::new(&spec).unwrap();
    let tp = v.to_tensors().unwrap();
    let obs = vec![vec![26.0, 15.0, 11.0], vec![80.0, 62.0]];
    let m = spec.build_model(&v, &obs).unwrap();
    assert_eq!(m.par_names, g.par_names);
    let p = m.n_pars();
    // points inside and outside |alpha| < 1 for every interpolation
    for (k, shift) in [0.0, 0.3, -0.7, 1.4, -1.9].iter().enumerate() {
        let mut theta = m.init.clone();
        for i in 0..p {
            if m.init[i] == 0.0 {
                theta[i] = shift * (1.0 + 0.1 * i as f64);
            } else if i != g.poi {
                theta[i] *= 1.0 + 0.05 * shift * if i % 2 == 0 { 1.0 } else { -1.0 };
            }
        }
        theta[g.poi] = 0.5 + k as f64 * 0.4;
        let (nu, _) = g.expected(&theta, &tp).unwrap();
        let nu = nu.to_vec1::<f64>().unwrap();
        let nu_k = m.expected_main(&theta);
        for b in 0..nu.len() {
            assert!(
                close(nu[b], nu_k[b], 1e-13, 1e-13),
                "nu[{b}] {} vs {}",
                nu[b],
                nu_k[b]
            );
        }
        let data = m.observed().clone();
        let dt = DataTensors {
            main: Tensor::new(data.main.clone(), &Device::Cpu).unwrap(),
            aux: Tensor::new(theta_aux(&m, &data), &Device::Cpu).unwrap(),
        };
        let mut gk = vec![0.0; p];
        let mut sc = m.scratch();
        let fk = Likelihood::eval(&m, &theta, &data, &mut sc, Some(&mut gk), None);
        assert!(fk.is_finite());
        let (f, gr) = g.value_and_grad(&theta, &tp, &dt).unwrap();
        let gr = gr.to_vec1::<f64>().unwrap();
        for i in 0..p {
            assert!(
                close(gr[i], gk[i], 1e-11, 1e-11),
                "grad {i} ({}): {} vs {}",
                m.par_names[i],
                gr[i],
                gk[i]
            );
        }
        // values agree up to the theta-independent constant: compare differences
        let f = f.to_scalar::<f64>().unwrap();
        let theta2: Vec<f64> = theta.iter().map(|x| x * 1.01).collect();
        let fk2 = Likelihood::eval(&m, &theta2, &data, &mut sc, None, None);
        let f2 = g
            .twice_nll(&theta2, &tp, &dt)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        assert!(
            close(f2 - f, fk2 - fk, 1e-10, 1e-10),
            "{} vs {}",
            f2 - f,
            fk2 - fk
        );
        // Asimov Hessian against the kernel's Hessian on the Asimov data
        let asimov = m.asimov_dataset(&theta);
        let mut hk = vec![0.0; p * p];
        Likelihood::eval(&m, &theta, &asimov, &mut sc, None, Some(&mut hk));
        let h = g
            .asimov_hessian(&theta, &tp)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        for i in 0..p * p {
            assert!(
                close(h[i], hk[i], 1e-10, 1e-10),
                "H[{i}] {} vs {}",
                h[i],
                hk[i]
            );
        }
    }
}

fn theta_aux(m: &gradfit::HistFactoryModel, d: &gradfit::Dataset) -> Vec<f64> {
    (0..m.n_pars())
        .map(|i| m.aux_index[i].map_or(0.0, |k| d.aux[k]))
        .collect()
}

/// The mixed second derivative d(grad_theta twice_nll)/d(templates) as a
/// vector-Jacobian product, against central differences of the kernel's gradient.
#[test]
fn mixed_second_derivative_matches_finite_differences() {
    let spec = rich_spec();
    let v = rich_values();
    let g = TemplateGraph::new(&spec).unwrap();
    let obs = vec![vec![26.0, 15.0, 11.0], vec![80.0, 62.0]];
    let m0 = spec.build_model(&v, &obs).unwrap();
    let p = m0.n_pars();
    let mut theta = m0.init.clone();
    for i in 0..p {
        if i != g.poi {
            theta[i] += 0.2 + 0.1 * i as f64 * if i % 2 == 0 { 1.0 } else { -0.3 };
        }
    }
    theta[g.poi] = 1.3;
    let x0 = flat(&v);
    let w: Vec<f64> = (0..p).map(|i| 1.0 + 0.37 * i as f64).collect();
    // VJP: grad_phi of w . g(theta, phi)
    let vars: Vec<Var> = vec![Var::new(x0.clone(), &Device::Cpu).unwrap()];
    let phi = vars[0].as_tensor();
    let tp = templates_from_flat(&v, phi);
    let data = m0.observed().clone();
    let dt = DataTensors {
        main: Tensor::new(data.main.clone(), &Device::Cpu).unwrap(),
        aux: Tensor::new(theta_aux(&m0, &data), &Device::Cpu).unwrap(),
    };
    let gr = g.grad(&theta, &tp, &dt).unwrap();
    let s = (gr * Tensor::new(w.clone(), &Device::Cpu).unwrap())
        .unwrap()
        .sum_all()
        .unwrap();
    let grads = s.backward().unwrap();
    let vjp = grads.get(phi).unwrap().to_vec1::<f64>().unwrap();
    for j in 0..x0.len() {
        let h = 1e-5 * x0[j].abs().max(1.0);
        let mut fd = 0.0;
        for (sgn, c) in [(1.0, 1.0), (-1.0, -1.0)] {
            let mut x = x0.clone();
            x[j] += sgn * h;
            let m = spec.build_model(&unflat(&v, &x), &obs).unwrap();
            let mut gk = vec![0.0; p];
            Likelihood::eval(&m, &theta, &data, &mut m.scratch(), Some(&mut gk), None);
            fd += c * gk.iter().zip(&w).map(|(a, b)| a * b).sum::<f64>();
        }
        fd /= 2.0 * h;
        assert!(
            close(vjp[j], fd, 1e-6, 1e-8),
            "phi[{j}]: vjp {} fd {}",
            vjp[j],
            fd
        );
    }
}

/// Template tensors whose every number is an element of one flat tensor.
fn templates_from_flat(like: &TemplateValues, phi: &Tensor) -> gradfit::train::Templates {
    let mut k = 0;
    let mut take = |n: usize| {
        let t = phi.narrow(0, k, n).unwrap();
        k += n;
        t
    };
    let samples = like
        .samples
        .iter()
        .map(|s| gradfit::train::SampleTemplates {
            nominal: take(s.nominal.len()),
            sumw2: s.sumw2.as_ref().map(|w| take(w.len())),
            modifiers: s
                .modifiers
                .iter()
                .map(|m| m.as_ref().map(|(h, l)| (take(h.len()), take(l.len()))))
                .collect(),
        })
        .collect();
    gradfit::train::Templates { samples }
}

fn check_loss_gradient(spec: &AnalysisSpec, v: &TemplateValues, kind: &LossKind, rtol: f64) {
    let a = Analysis::new(spec).unwrap();
    let (lv, grad) = a.value_and_grad(kind, v).unwrap();
    let gflat = flat(&grad);
    let x0 = flat(v);
    let mut checked = 0;
    for j in 0..x0.len() {
        let h = 1e-5 * x0[j].abs().max(1.0);
        let mut vals = [0.0; 2];
        for (k, sgn) in [1.0, -1.0].iter().enumerate() {
            let mut x = x0.clone();
            x[j] += sgn * h;
            let (l, _) = a.value_and_grad(kind, &unflat(v, &x)).unwrap();
            vals[k] = l.value;
        }
        let fd = (vals[0] - vals[1]) / (2.0 * h);
        let scale = gflat.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        assert!(
            close(gflat[j], fd, rtol, 1e-7 * scale),
            "{kind:?}: d loss / d phi[{j}] = {} (analytic) vs {} (finite differences); loss {}",
            gflat[j],
            fd,
            lv.value
        );
        checked += 1;
    }
    assert!(checked > 10);
}

/// Every loss's template gradient against central differences of the whole
/// pipeline (model rebuilt, all fits rerun): the free fit on background-only
/// Asimov data ends with the POI at its bound 0; the CLs with Asimov data at
/// mu = 0.5 goes through the implicit derivative of the conditional fit.
#[test]
fn loss_gradients_match_finite_differences() {
    let spec = rich_spec();
    let v = rich_values();
    let kinds = [
        LossKind::Cls {
            mu: 1.0,
            mu_asimov: 0.0,
            test_stat: TestStat::QTilde,
        },
        LossKind::Cls {
            mu: 1.5,
            mu_asimov: 0.5,
            test_stat: TestStat::QTilde,
        },
        LossKind::Cls {
            mu: 1.0,
            mu_asimov: 0.0,
            test_stat: TestStat::Q,
        },
        LossKind::Discovery { mu_asimov: 1.0 },
        LossKind::PoiVariance { mu_asimov: 1.0 },
        LossKind::GeneralisedVariance { mu_asimov: 1.0 },
    ];
    for k in &kinds {
        check_loss_gradient(&spec, &v, k, 1e-5);
    }
    // the bound case really happens: the free fit's POI sits at 0
    let a = Analysis::new(&spec).unwrap();
    let (lv, _) = a.value_and_grad(&kinds[0], &v).unwrap();
    assert_eq!(lv.metric("mu_hat"), Some(0.0));
}

/// CLs from (q, q_A): the analytic partial derivatives against differences.
#[test]
fn cls_formula_derivatives() {
    use gradfit::train::loss::cls_and_derivatives;
    for kind in [TestStat::QTilde, TestStat::Q] {
        for (q, qa) in [(2.0, 3.0), (4.0, 1.5), (0.7, 0.7), (9.0, 2.0)] {
            let (_, dq, dqa) = cls_and_derivatives(kind, q, qa);
            let h = 1e-6;
            let fq = (cls_and_derivatives(kind, q + h, qa).0
                - cls_and_derivatives(kind, q - h, qa).0)
                / (2.0 * h);
            let fa = (cls_and_derivatives(kind, q, qa + h).0
                - cls_and_derivatives(kind, q, qa - h).0)
                / (2.0 * h);
            if q != qa {
                assert!(close(dq, fq, 1e-6, 1e-10), "{kind:?} {q} {qa}: {dq} {fq}");
                assert!(close(dqa, fa, 1e-6, 1e-10), "{kind:?} {q} {qa}: {dqa} {fa}");
            }
        }
    }
}

/// d theta_hat / d phi from the implicit function theorem against refitting
/// at phi +- h, for a free fit and a fit with the POI fixed, on observed data.
#[test]
fn implicit_theta_hat_matches_refits() {
    let spec = rich_spec();
    let v = rich_values();
    let g = TemplateGraph::new(&spec).unwrap();
    let obs = vec![vec![27.0, 19.0, 8.0], vec![83.0, 58.0]];
    let x0 = flat(&v);
    let fitted = |x: &[f64], fix_mu: Option<f64>| -> Vec<f64> {
        let m = spec.build_model(&unflat(&v, x), &obs).unwrap();
        let mut s = gradfit::fit::FitSpec::from_model(&m);
        if let Some(mu) = fix_mu {
            s = s.fix(g.poi, mu);
        }
        implicit::fit(&m, m.observed(), &s, "test fit").unwrap().x
    };
    for fix_mu in [None, Some(0.8)] {
        let var = Var::new(x0.clone(), &Device::Cpu).unwrap();
        let tp = templates_from_flat(&v, var.as_tensor());
        let m = spec.build_model(&v, &obs).unwrap();
        let mut s = gradfit::fit::FitSpec::from_model(&m);
        if let Some(mu) = fix_mu {
            s = s.fix(g.poi, mu);
        }
        let data = m.observed().clone();
        let r = implicit::fit(&m, &data, &s, "test fit").unwrap();
        let dt = DataTensors {
            main: Tensor::new(data.main.clone(), &Device::Cpu).unwrap(),
            aux: Tensor::new(theta_aux(&m, &data), &Device::Cpu).unwrap(),
        };
        let th = theta_tensor(&g, &m, &tp, &dt, &data, &r, &s).unwrap();
        assert_eq!(th.to_vec1::<f64>().unwrap(), r.x);
        let p = g.n_pars();
        for i in 0..p {
            let gi = th
                .narrow(0, i, 1)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let d = gi
                .get(var.as_tensor())
                .map(|t| t.to_vec1::<f64>().unwrap())
                .unwrap_or(vec![0.0; x0.len()]);
            for j in (0..x0.len()).step_by(3) {
                let h = 1e-5 * x0[j].abs().max(1.0);
                let (mut xp, mut xm) = (x0.clone(), x0.clone());
                xp[j] += h;
                xm[j] -= h;
                let fd = (fitted(&xp, fix_mu)[i] - fitted(&xm, fix_mu)[i]) / (2.0 * h);
                assert!(
                    close(d[j], fd, 1e-5, 1e-8),
                    "fix {fix_mu:?}: d theta[{i}] ({}) / d phi[{j}]: implicit {} refit {}",
                    g.par_names[i],
                    d[j],
                    fd
                );
            }
        }
    }
}
