//! Gradients through networks against finite differences: neos weights and INFERNO tangents.

use super::*;

/// A small f64 neos-style pipeline: network -> KDE histograms -> CLs. The
/// gradient with respect to network weights against central differences.
#[test]
fn network_weight_gradients_match_finite_differences() {
    let spec = gradfit::train::neos::spec(3);
    let a = Analysis::new(&spec).unwrap();
    let data = gradfit::train::neos::generate(80, 3).unwrap();
    let xs: Vec<Tensor> = data
        .iter()
        .map(|(t, _)| t.to_dtype(DType::F64).unwrap())
        .collect();
    let net = Mlp::new(&[2, 6, 6, 1], DType::F64, 11).unwrap();
    let edges = [0.0, 1.0 / 3.0, 2.0 / 3.0, 1.0];
    let kinds = [
        LossKind::Cls {
            mu: 1.0,
            mu_asimov: 0.0,
            test_stat: TestStat::QTilde,
        },
        LossKind::PoiVariance { mu_asimov: 1.0 },
    ];
    for kind in kinds {
        let eval = |net: &Mlp| -> (f64, Tensor) {
            let hs: Vec<Tensor> = xs
                .iter()
                .enumerate()
                .map(|(k, x)| {
                    let o = candle_nn::ops::sigmoid(&net.forward(x).unwrap())
                        .unwrap()
                        .flatten_all()
                        .unwrap();
                    let sc = if k == 0 { 20.0 } else { 100.0 } / 60.0;
                    ((kde_hist(&o, None, &edges, 0.2).unwrap() * sc).unwrap() + 1e-3).unwrap()
                })
                .collect();
            let tp = gradfit::train::Templates {
                samples: vec![
                    gradfit::train::SampleTemplates {
                        nominal: hs[0].clone(),
                        sumw2: None,
                        modifiers: vec![None],
                    },
                    gradfit::train::SampleTemplates {
                        nominal: hs[1].clone(),
                        sumw2: None,
                        modifiers: vec![Some((hs[2].clone(), hs[3].clone()))],
                    },
                ],
            };
            let lv = a.loss(&kind, &tp).unwrap();
            (lv.value, lv.surrogate)
        };
        let (_, sur) = eval(&net);
        let grads = sur.backward().unwrap();
        for var in net.vars() {
            let (gv, w0, shape) = grad_and_weights(&grads, &var);
            for j in (0..w0.len()).step_by(5) {
                // CLs comes from differences of fitted twice_nll values (~15, rounding
                // 1e-15 relative): a larger step keeps that noise below 1e-11
                let h = 1e-4;
                let mut vals = [0.0; 2];
                for (k, sgn) in [1.0, -1.0].iter().enumerate() {
                    let mut w = w0.clone();
                    w[j] += sgn * h;
                    var.set(&Tensor::from_vec(w, shape.clone(), &Device::Cpu).unwrap())
                        .unwrap();
                    vals[k] = eval(&net).0;
                }
                var.set(&Tensor::from_vec(w0.clone(), shape.clone(), &Device::Cpu).unwrap())
                    .unwrap();
                let fd = (vals[0] - vals[1]) / (2.0 * h);
                let scale = gv.iter().fold(0.0f64, |m, x| m.max(x.abs()));
                assert!(
                    close(gv[j], fd, 1e-5, 1e-7 * scale),
                    "{kind:?} weight {j}: {} vs {}",
                    gv[j],
                    fd
                );
            }
        }
    }
}

/// INFERNO: the nuisance tangents through the network against differences of
/// the soft histograms of shifted events, and the weight gradient of the
/// INFERNO loss (POI variance with the tangent templates, benchmarks 2 and 4)
/// against central differences.
#[test]
fn inferno_tangents_and_weight_gradients() {
    use gradfit::train::hist::softmax_hist;
    use gradfit::train::inferno::{Inferno, InfernoConfig, generate, shifted};
    for bm in [2u8, 4] {
        let cfg = InfernoConfig {
            benchmark: bm,
            bins: 4,
            temperature: 0.5,
            ..Default::default()
        };
        let inf = Inferno::new(cfg.clone()).unwrap();
        let (xs, xb) = generate(60, 5, 1).unwrap();
        let (xs, xb) = (
            xs.to_dtype(DType::F64).unwrap(),
            xb.to_dtype(DType::F64).unwrap(),
        );
        let net = Mlp::new(&[3, 8, 8, 4], DType::F64, 2).unwrap();
        let tp = inf.templates(&net, &xs, &xb).unwrap();
        // histosys hi = nu + sigma dnu/dr: compare dnu/dr with differences in r
        let nom = tp.samples[1].nominal.to_vec1::<f64>().unwrap();
        let (hi, _) = tp.samples[1].modifiers[0].as_ref().unwrap();
        let unit_r = if bm == 4 { 0.4 } else { 1.0 };
        let dnu: Vec<f64> = hi
            .to_vec1::<f64>()
            .unwrap()
            .iter()
            .zip(&nom)
            .map(|(h, n)| (h - n) / unit_r)
            .collect();
        let hb = |r: f64, l: f64| -> Vec<f64> {
            let x = shifted(&xb, r, l).unwrap().to_dtype(DType::F64).unwrap();
            (softmax_hist(&net.forward(&x).unwrap(), None, 0.5).unwrap() * (cfg.b / 60.0))
                .unwrap()
                .to_vec1::<f64>()
                .unwrap()
        };
        let h = 1e-5;
        let (up, dn) = (hb(2.0 + h, 3.0), hb(2.0 - h, 3.0));
        for k in 0..4 {
            let fd = (up[k] - dn[k]) / (2.0 * h);
            assert!(
                close(dnu[k], fd, 1e-6, 1e-9),
                "bin {k}: tangent {} vs {}",
                dnu[k],
                fd
            );
        }
        let kind = LossKind::PoiVariance { mu_asimov: 1.0 };
        let eval = |net: &Mlp| -> (f64, Tensor) {
            let tp = inf.templates(net, &xs, &xb).unwrap();
            let lv = inf.analysis.loss(&kind, &tp).unwrap();
            (lv.value, lv.surrogate)
        };
        let grads = eval(&net).1.backward().unwrap();
        for var in net.vars() {
            let (gv, w0, shape) = grad_and_weights(&grads, &var);
            let scale = gv.iter().fold(0.0f64, |m, x| m.max(x.abs()));
            for j in (0..w0.len()).step_by(7) {
                let h = 1e-5;
                let mut vals = [0.0; 2];
                for (k, sgn) in [1.0, -1.0].iter().enumerate() {
                    let mut w = w0.clone();
                    w[j] += sgn * h;
                    var.set(&Tensor::from_vec(w, shape.clone(), &Device::Cpu).unwrap())
                        .unwrap();
                    vals[k] = eval(&net).0;
                }
                var.set(&Tensor::from_vec(w0.clone(), shape.clone(), &Device::Cpu).unwrap())
                    .unwrap();
                let fd = (vals[0] - vals[1]) / (2.0 * h);
                assert!(
                    close(gv[j], fd, 1e-5, 1e-7 * scale),
                    "benchmark {bm} weight {j}: {} vs {}",
                    gv[j],
                    fd
                );
            }
        }
    }
}

/// The reverse-pass gradient of `var`, its values (both flattened) and its shape.
fn grad_and_weights(
    grads: &candle_core::backprop::GradStore,
    var: &Var,
) -> (Vec<f64>, Vec<f64>, candle_core::Shape) {
    let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f64>().unwrap();
    let t = var.as_tensor();
    (flat(grads.get(t).unwrap()), flat(t), t.shape().clone())
}
