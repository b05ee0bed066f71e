//! Training runs: neos and INFERNO at reduced sizes, seeded reproducibility, the train command, pyhf export and bad specs.

use super::*;

fn small_neos(seed: u64, steps: usize) -> gradfit::train::neos::NeosConfig {
    gradfit::train::neos::NeosConfig {
        hidden: vec![64, 64],
        steps,
        seed,
        ..Default::default()
    }
}

/// The seeded neos problem (reduced network 2-64-64-1, otherwise the demo's
/// settings): the test-set CLs falls by more than two orders of magnitude within 10 steps.
#[test]
fn neos_lowers_cls_by_two_orders_of_magnitude() {
    use gradfit::train::neos::Neos;
    let mut n = Neos::new(small_neos(0, 10), DType::F32).unwrap();
    let first = n.test_metrics().unwrap()[0].1;
    let curve = n.train(true, |_| {}).unwrap();
    let cls = &curve.metrics["cls"];
    assert_eq!(cls.len(), 10);
    let best = cls.iter().cloned().fold(f64::INFINITY, f64::min);
    assert!(best < first / 100.0, "CLs {first} -> {cls:?}");
    assert!(cls[9] < first / 100.0, "CLs {first} -> {cls:?}");
}

/// The same seed gives bit-identical training (weights and curves); another seed does not.
#[test]
fn training_is_bit_identical_for_a_seed() {
    use gradfit::train::neos::Neos;
    let run = |seed: u64| {
        let mut cfg = small_neos(seed, 3);
        cfg.hidden = vec![16, 16];
        cfg.eval_every = 0;
        let mut n = Neos::new(cfg, DType::F32).unwrap();
        let c = n.train(true, |_| {}).unwrap();
        (n.net.flat_weights().unwrap(), c.loss)
    };
    let (w1, l1) = run(5);
    let (w2, l2) = run(5);
    assert_eq!(
        w1.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
        w2.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
    );
    assert_eq!(
        l1.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
        l2.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
    );
    let (w3, _) = run(6);
    assert_ne!(w1, w3);
    // INFERNO training too
    use gradfit::train::inferno::{Inferno, InfernoConfig, generate};
    let cfg = InfernoConfig {
        n_train: 1000,
        batch: 250,
        epochs: 2,
        hidden: vec![16],
        ..Default::default()
    };
    let inf = Inferno::new(cfg).unwrap();
    let data = generate(1000, 0, 9).unwrap();
    let (a, ca) = inf.train(3, &data).unwrap();
    let (b, cb) = inf.train(3, &data).unwrap();
    assert_eq!(a.flat_weights().unwrap(), b.flat_weights().unwrap());
    assert_eq!(ca.loss, cb.loss);
}

/// INFERNO benchmark 2 at reduced sizes: the INFERNO summary's expected
/// uncertainty of s is below the BCE classifier's, and above the true likelihood's.
#[test]
fn inferno_benchmark_2_beats_bce() {
    use gradfit::train::inferno::{InfernoConfig, run_benchmark};
    let cfg = InfernoConfig {
        benchmark: 2,
        n_train: 4000,
        n_test: 20000,
        batch: 500,
        epochs: 8,
        bce_epochs: 8,
        seeds: 3,
        n_analytic: 100_000,
        ..Default::default()
    };
    let r = run_benchmark(&cfg, |_| {}).unwrap();
    assert!(r.sigma_s_inferno < r.sigma_s_bce, "{r:?}");
    assert!(r.sigma_s_analytic < r.sigma_s_inferno, "{r:?}");
    // every seed, not just the median
    for (a, b) in r.inferno_all.iter().zip(&r.bce_all) {
        assert!(a < b, "{r:?}");
    }
}

/// A network written as safetensors and read into a fresh one (the path
/// `examples/inferno --evaluate-net` takes for pytorch_inferno's networks)
/// gives the same sigma_s; a file with other layer sizes is an error.
#[test]
fn inferno_sigma_of_loaded_network() {
    use candle_core::DType;
    use gradfit::train::inferno::{Inferno, InfernoConfig};
    use gradfit::train::nn::Mlp;
    let cfg = InfernoConfig {
        n_test: 5000,
        ..Default::default()
    };
    let inf = Inferno::new(cfg).unwrap();
    let test = inf.test_sample().unwrap();
    let dir = std::env::temp_dir().join(format!("gradfit-infnet-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("net.safetensors");
    let a = Mlp::new(&[3, 100, 100, 10], DType::F32, 11).unwrap();
    a.save(&path).unwrap();
    let mut b = Mlp::new(&[3, 100, 100, 10], DType::F32, 12).unwrap();
    let sb_before = inf.sigma_s_of_net(&b, &test).unwrap();
    b.load(&path).unwrap();
    let sa = inf.sigma_s_of_net(&a, &test).unwrap();
    let sb = inf.sigma_s_of_net(&b, &test).unwrap();
    assert_eq!(sa, sb);
    assert_ne!(sa, sb_before);
    assert!(sa.is_finite() && sa > 10.0, "{sa}");
    let mut c = Mlp::new(&[3, 50, 10], DType::F32, 0).unwrap();
    assert!(c.load(&path).is_err());
    let _ = std::fs::remove_dir_all(&dir);
}

/// `gradfit train`: outputs, the exported workspace read back by gradfit
/// gives the summary's CLs, and a bad configuration is an error naming its location.
#[test]
fn train_command_writes_outputs_and_exports_a_workspace() {
    let dir = std::env::temp_dir().join(format!("gradfit-train-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cfg = common::repo("examples/train/neos.json");
    let (code, v, err) = common::run_gradfit(&[
        "train",
        cfg.to_str().unwrap(),
        "--steps",
        "2",
        "-o",
        dir.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    for f in [
        "config.json",
        "curve.json",
        "curve.svg",
        "network.safetensors",
        "workspace.json",
        "summary.json",
    ] {
        assert!(dir.join(f).exists(), "{f} missing");
    }
    let cls = v["final"]["cls"].as_f64().unwrap();
    assert!(cls > 0.0 && cls < 1.0);
    let (code, c, err) = common::run_gradfit(&[
        "cls",
        dir.join("workspace.json").to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let cls2 = c["cls_obs"].as_f64().unwrap();
    assert!(
        close(cls, cls2, 1e-6, 0.0),
        "summary {cls} vs gradfit cls {cls2}"
    );
    // the checkpoint loads into networks of the same shape, whatever their initialisation
    let mut a = Mlp::new(&[2, 64, 64, 1], DType::F32, 98).unwrap();
    let mut b = Mlp::new(&[2, 64, 64, 1], DType::F32, 99).unwrap();
    assert_ne!(a.flat_weights().unwrap(), b.flat_weights().unwrap());
    a.load(&dir.join("network.safetensors")).unwrap();
    b.load(&dir.join("network.safetensors")).unwrap();
    assert_eq!(a.flat_weights().unwrap(), b.flat_weights().unwrap());
    let fresh = Mlp::new(&[2, 64, 64, 1], DType::F32, 0).unwrap();
    assert_ne!(
        a.flat_weights().unwrap(),
        fresh.flat_weights().unwrap(),
        "trained weights differ from the seed-0 start"
    );
    // a bad configuration: unknown option
    let bad = dir.join("bad.json");
    std::fs::write(
        &bad,
        r#"{"problem": "neos", "output": "x", "options": {"stepz": 3}}"#,
    )
    .unwrap();
    let (code, _, err) = common::run_gradfit(&["train", bad.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("stepz") && err.contains("bad.json"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Bad analysis structures and template numbers are errors that say where.
#[test]
fn bad_specs_and_templates_are_located_errors() {
    let spec = rich_spec();
    let mut v = rich_values();
    v.samples[1].nominal.pop();
    let e = spec.check_values(&v).unwrap_err().to_string();
    assert!(
        e.contains("channel 'SR' sample 'bkg'") && e.contains("nominal"),
        "{e}"
    );
    let mut v = rich_values();
    v.samples[0].sumw2 = None;
    let e = spec.check_values(&v).unwrap_err().to_string();
    assert!(e.contains("staterror 'stat'"), "{e}");
    let mut v = rich_values();
    v.samples[2].modifiers[1] = Some((vec![-1.0], vec![0.9]));
    let e = spec.check_values(&v).unwrap_err().to_string();
    assert!(e.contains("free_norm") && e.contains("positive"), "{e}");
    let mut bad = rich_spec();
    bad.poi = "nope".into();
    let e = Analysis::new(&bad).unwrap_err().to_string();
    assert!(e.contains("/poi") && e.contains("nope"), "{e}");
    let e = spec
        .export_pyhf(&rich_values(), &[vec![1.0; 3], vec![1.0; 2]])
        .unwrap_err()
        .to_string();
    assert!(e.contains("free_norm"), "{e}");
    let e = gradfit::train::hist::kde_hist(
        &Tensor::new(&[0.5f64], &Device::Cpu).unwrap(),
        None,
        &[0.0, 0.0, 1.0],
        0.1,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("increase"), "{e}");
}
