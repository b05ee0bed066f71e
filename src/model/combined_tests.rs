//! The combination of parts against the same channels compiled as one pyhf
//! workspace, and the checks on how parts may combine.

use super::*;
use crate::fit::{FitOptions, FitSpec, fit};
use crate::model::{Dataset, HistFactoryModel, ModelOptions};
use crate::workspace::{ReadOptions, Workspace};

fn hf(value: Value) -> HistFactoryModel {
    let ws = Workspace::from_value(value, &[], "test", &ReadOptions::default()).unwrap();
    HistFactoryModel::from_workspace(&ws, &ModelOptions::default(), "test").unwrap()
}

fn example() -> Value {
    let text = include_str!("../../examples/workspaces/two-channel.json");
    serde_json::from_str(text).unwrap()
}

/// A one-bin channel sharing only the unconstrained `mu` with the example,
/// with a nuisance of its own.
fn extra_channel() -> (Value, Value) {
    let channel = json!({"name": "VR", "samples": [
        {"name": "signal", "data": [3.0], "modifiers": [
            {"name": "mu", "type": "normfactor", "data": null}]},
        {"name": "background", "data": [30.0], "modifiers": [
            {"name": "vr_norm", "type": "normsys", "data": {"hi": 1.2, "lo": 0.85}}]}]});
    let obs = json!({"name": "VR", "data": [37.0]});
    (channel, obs)
}

fn alone(channel: &Value, obs: &Value) -> Value {
    json!({"channels": [channel], "observations": [obs], "version": "1.0.0",
        "measurements": [{"name": "vr", "config": {"poi": "mu", "parameters": [
            {"name": "mu", "bounds": [[0.0, 10.0]], "inits": [1.0]}]}}]})
}

fn merged() -> Value {
    let (c, o) = extra_channel();
    let mut all = example();
    all["channels"].as_array_mut().unwrap().push(c);
    all["observations"].as_array_mut().unwrap().push(o);
    all
}

fn combined() -> CombinedModel {
    let (c, o) = extra_channel();
    let parts: Vec<Box<dyn Part>> = vec![
        Box::new(HistFactoryPart {
            model: hf(example()),
        }),
        Box::new(HistFactoryPart {
            model: hf(alone(&c, &o)),
        }),
    ];
    CombinedModel::new(parts, None, "split").unwrap()
}

#[test]
fn two_parts_equal_one_workspace_with_both() {
    let one = hf(merged());
    let two = combined();
    assert_eq!(one.n_pars(), two.n_pars());
    assert_eq!(two.par_names()[two.poi().unwrap()], "mu");
    // parameter k of `two` is parameter perm[k] of `one`
    let perm: Vec<usize> = two
        .par_names()
        .iter()
        .map(|n| one.par_index(n).unwrap())
        .collect();
    let n = one.n_pars();
    let mut s1 = Likelihood::scratch(&one);
    let mut s2 = two.scratch();
    for shift in [0.0, 0.3, -0.7] {
        let x1: Vec<f64> = one
            .init
            .iter()
            .enumerate()
            .map(|(i, v)| v + shift * (0.05 + 0.01 * i as f64))
            .collect();
        let x2: Vec<f64> = perm.iter().map(|&i| x1[i]).collect();
        let (mut g1, mut h1) = (vec![0.0; n], vec![0.0; n * n]);
        let (mut g2, mut h2) = (vec![0.0; n], vec![0.0; n * n]);
        let f1 = Likelihood::eval(
            &one,
            &x1,
            one.observed(),
            &mut s1,
            Some(&mut g1),
            Some(&mut h1),
        );
        let f2 = two.eval(&x2, two.observed(), &mut s2, Some(&mut g2), Some(&mut h2));
        assert!((f1 - f2).abs() <= 1e-12 * f1.abs(), "{f1} vs {f2}");
        for a in 0..n {
            assert!((g1[perm[a]] - g2[a]).abs() <= 1e-10 * (1.0 + g1[perm[a]].abs()));
            for b in 0..n {
                let (u, v) = (h1[perm[a] * n + perm[b]], h2[a * n + b]);
                assert!(
                    (u - v).abs() <= 1e-10 * (1.0 + u.abs()),
                    "H[{a},{b}]: {u} vs {v}"
                );
            }
        }
    }
    // the fits agree
    let opts = FitOptions::default();
    let r1 = fit(&one, one.observed(), &FitSpec::from_model(&one), &opts);
    let r2 = fit(&two, two.observed(), &FitSpec::from_model(&two), &opts);
    assert!(r1.converged && r2.converged);
    assert!((r1.twice_nll - r2.twice_nll).abs() < 1e-9);
    for (k, &i) in perm.iter().enumerate() {
        assert!((r1.x[i] - r2.x[k]).abs() < 1e-6, "{}", two.par_names()[k]);
        assert!((r1.errors[i] - r2.errors[k]).abs() < 1e-6);
    }
}

#[test]
fn toys_and_asimov_have_one_entry_per_part_and_differ_between_parts() {
    let two = combined();
    let th = two.init().to_vec();
    let a = two.asimov(&th);
    assert_eq!(a.parts.len(), 2);
    let g = two.generator(&th);
    let t1 = two.sample(&g, 7, 3, 1);
    let t2 = two.sample(&g, 7, 3, 1);
    let t3 = two.sample(&g, 7, 4, 1);
    let main =
        |d: &CombinedData, k: usize| d.parts[k].downcast_ref::<Dataset>().unwrap().main.clone();
    assert_eq!(main(&t1, 0), main(&t2, 0));
    assert_eq!(main(&t1, 1), main(&t2, 1));
    assert_ne!(main(&t1, 0), main(&t3, 0));
    // part 1 does not reuse part 0's stream for its first bin
    let (c, o) = extra_channel();
    let one = hf(alone(&c, &o));
    let k1 = two.part_map(1).to_vec();
    let th1: Vec<f64> = k1.iter().map(|&g| th[g]).collect();
    let same_stream = one.sample_dataset(&one.toy_generator(&th1), 7, 3, part_purpose(1, 1));
    assert_eq!(main(&t1, 1), same_stream.main);
}

#[test]
fn a_constraint_in_two_parts_is_refused() {
    let parts: Vec<Box<dyn Part>> = vec![
        Box::new(HistFactoryPart {
            model: hf(example()),
        }),
        Box::new(HistFactoryPart {
            model: hf(example()),
        }),
    ];
    let e = CombinedModel::new(parts, None, "twice")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("constrained in part") && e.contains("'jes'"),
        "{e}"
    );
}

#[test]
fn overrides_name_the_parameter() {
    let mut two = combined();
    assert!(two.set_bounds("mu", -5.0, 5.0).is_ok());
    assert_eq!(two.bounds()[two.par_index("mu").unwrap()], (-5.0, 5.0));
    let e = two.set_init("nope", 1.0).unwrap_err().to_string();
    assert!(e.contains("'nope'"), "{e}");
    assert!(two.set_bounds("mu", 2.0, 1.0).is_err());
    assert!(CombinedModel::new(vec![], None, "empty").is_err());
    let e = CombinedModel::new(
        vec![Box::new(HistFactoryPart {
            model: hf(example()),
        })],
        Some("xsec"),
        "poi",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("'xsec'"), "{e}");
}
