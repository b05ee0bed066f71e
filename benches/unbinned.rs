//! Criterion benchmarks of unbinned likelihoods (the speed targets of the
//! unbinned issue): full fits with errors of 1,000,000 events (Gaussian +
//! exponential; double-sided Crystal Ball + exponential; two observables),
//! one value+gradient+Hessian pass, and toys (2,000-event Gaussian +
//! exponential, two fits each).
//!
//! `cargo bench --bench unbinned`. The models are the ones of
//! `examples/unbinned_gen.rs`, generated in memory from the models themselves.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use gradfit::fit::{FitOptions, FitSpec, fit};
use gradfit::infer::toys::{ToySettings, run_toys};
use gradfit::infer::{Problem, TestStat};
use gradfit::model::unbinned::load_hs3;
use gradfit::model::{CombinedModel, Likelihood};
use serde_json::{Value, json};

fn ax(n: &str, lo: f64, hi: f64) -> Value {
    json!({"name": n, "min": lo, "max": hi})
}

/// A model with `n` expected events, observed data drawn from it.
fn model(name: &str, n: f64) -> CombinedModel {
    let (s, b) = (0.2 * n, 0.8 * n);
    let (dists, funcs, aux, axes, pts) = match name {
        "gauss_expo" | "gauss_expo_toys" => {
            let k = name == "gauss_expo_toys";
            (
                json!([
                    {"name": "model", "type": "mixture_dist", "summands": ["sig", "bkg"], "coefficients": ["nsig", "nbkg"], "extended": true},
                    {"name": "sig", "type": "gaussian_dist", "x": "mass", "mean": "mu", "sigma": "sigma"},
                    {"name": "bkg", "type": "exponential_dist", "x": "mass", "c": "c"}]),
                json!([]),
                json!([]),
                json!([ax("mass", 60.0, 120.0)]),
                json!([{"name": "nsig", "value": s}, {"name": "nbkg", "value": b}, {"name": "mu", "value": 91.0, "const": k},
                       {"name": "sigma", "value": 2.5, "const": k}, {"name": "c", "value": 0.03}]),
            )
        }
        "dscb_expo" => (
            json!([
                {"name": "model", "type": "mixture_dist", "summands": ["sig", "bkg"], "coefficients": ["nsig", "nbkg"], "extended": true},
                {"name": "sig", "type": "crystalball_doublesided_dist", "m": "mass", "m0": "m0", "sigma_L": "sl", "sigma_R": "sr",
                 "alpha_L": "al", "n_L": "nl", "alpha_R": "ar", "n_R": "nr"},
                {"name": "bkg", "type": "exponential_dist", "x": "mass", "c": "c"}]),
            json!([]),
            json!([]),
            json!([ax("mass", 60.0, 120.0)]),
            json!([{"name": "nsig", "value": s}, {"name": "nbkg", "value": b}, {"name": "m0", "value": 91.0},
                   {"name": "sl", "value": 2.3}, {"name": "sr", "value": 2.8}, {"name": "al", "value": 1.3},
                   {"name": "nl", "value": 3.0}, {"name": "ar", "value": 1.6}, {"name": "nr", "value": 5.0}, {"name": "c", "value": 0.03}]),
        ),
        _ => (
            json!([
                {"name": "model", "type": "mixture_dist", "summands": ["sig", "bkg"], "coefficients": ["nsig", "nbkg"], "extended": true},
                {"name": "sig", "type": "product_dist", "factors": ["sx", "sy"]},
                {"name": "bkg", "type": "product_dist", "factors": ["bx", "by"]},
                {"name": "sx", "type": "gaussian_dist", "x": "x", "mean": "mx", "sigma": "wx"},
                {"name": "sy", "type": "gaussian_dist", "x": "y", "mean": "my", "sigma": "wy"},
                {"name": "bx", "type": "exponential_dist", "x": "x", "c": "c"},
                {"name": "by", "type": "chebychev_dist", "x": "y", "coefficients": ["b1"]},
                {"name": "constr", "type": "gaussian_dist", "x": "nom_theta", "mean": "theta", "sigma": 1.0}]),
            json!([{"name": "wx", "type": "generic_function", "expression": "0.8 * (1 + 0.05 * theta)"}]),
            json!(["constr"]),
            json!([ax("x", 0.0, 10.0), ax("y", -5.0, 5.0)]),
            json!([{"name": "nsig", "value": s}, {"name": "nbkg", "value": b}, {"name": "mx", "value": 4.0},
                   {"name": "my", "value": 0.5}, {"name": "wy", "value": 1.5}, {"name": "c", "value": 0.3},
                   {"name": "b1", "value": 0.2}, {"name": "theta", "value": 0.0}, {"name": "nom_theta", "value": 0.0, "const": true}]),
        ),
    };
    let one: Vec<f64> = axes
        .as_array()
        .unwrap()
        .iter()
        .map(|a| 0.5 * (a["min"].as_f64().unwrap() + a["max"].as_f64().unwrap()))
        .collect();
    let doc = json!({
        "distributions": dists, "functions": funcs,
        "data": [{"name": "events", "type": "unbinned", "axes": axes, "entries": [one]}],
        "likelihoods": [{"name": "L", "distributions": ["model"], "data": ["events"], "aux_distributions": aux}],
        "parameter_points": [{"name": "default_values", "parameters": pts}],
        "analyses": [{"name": name, "likelihood": "L", "parameters_of_interest": ["nsig"]}],
    });
    let mut m = load_hs3(&doc, name, std::path::Path::new("."), None).unwrap();
    let g = m.generator(m.init());
    let data = m.sample(&g, 20240501, 0, 1);
    m.set_observed(data).unwrap();
    m
}

fn fits(c: &mut Criterion) {
    let mut g = c.benchmark_group("unbinned_fit_1M");
    g.sample_size(10);
    for name in ["gauss_expo", "dscb_expo", "product_2d"] {
        let m = model(name, 1e6);
        let spec = FitSpec::from_model(&m);
        g.bench_function(name, |b| {
            b.iter(|| {
                let r = fit(&m, m.observed(), &spec, &FitOptions::default());
                assert!(r.status.ok());
                r.twice_nll
            })
        });
    }
    g.finish();
    let mut g = c.benchmark_group("unbinned_pass_1M");
    g.sample_size(10);
    for name in ["gauss_expo", "dscb_expo"] {
        let m = model(name, 1e6);
        let n = m.n_pars();
        let mut s = m.scratch();
        let (mut gr, mut h) = (vec![0.0; n], vec![0.0; n * n]);
        g.bench_function(format!("{name}_value_grad_hess"), |b| {
            b.iter(|| m.eval(m.init(), m.observed(), &mut s, Some(&mut gr), Some(&mut h)))
        });
    }
    g.finish();
}

fn toys(c: &mut Criterion) {
    let m = model("gauss_expo_toys", 2000.0);
    let p = Problem::new(&m, m.observed()).unwrap();
    let mut g = c.benchmark_group("unbinned_toys");
    g.sample_size(10);
    // 500 toys per hypothesis = 1,000 toys, two fits each
    g.throughput(Throughput::Elements(2000));
    g.bench_function("gauss_expo_2000ev_1000toys", |b| {
        b.iter(|| {
            let s = ToySettings {
                mu: 400.0,
                test_stat: TestStat::QTilde,
                n_toys: 500,
                seed: 1,
                shard: None,
                batch: 512,
                model_digest: "bench".into(),
                toy_max_iter: None,
            };
            run_toys(&p, &s, &FitOptions::default(), &|_, _| {}).unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, fits, toys);
criterion_main!(benches);
