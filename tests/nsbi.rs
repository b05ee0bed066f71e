//! NSBI (per-event density ratio) models: parity with an independent numpy /
//! scipy / pyhf evaluation (tests/refs/nsbi_ref.py -> tests/refs/nsbi_ref.json),
//! derivatives, intervals, toys, Neyman coverage, combination with binned
//! channels, the consistency limit against HistFactory, bad input, and every
//! command on such a workspace.

#[path = "nsbi/commands.rs"]
mod commands;
mod common;
#[path = "nsbi/customfunc.rs"]
mod customfunc;
#[path = "nsbi/network.rs"]
mod network;
#[path = "nsbi/toys.rs"]
mod toys;

use common::{rel, repo, run_gradfit};
use gradfit::fit::{self, FitOptions, FitSpec};
use gradfit::infer::Problem;
use gradfit::infer::neyman::{self, NeymanSettings, belt_toys, critical_value};
use gradfit::model::nsbi::arrays::write_npy;
use gradfit::model::nsbi::code4::Code4At;
use gradfit::model::{CombinedModel, Likelihood};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

fn load(path: &Path) -> gradfit::Result<CombinedModel> {
    let v = gradfit::workspace::read_json(path)?;
    gradfit::model::load_other(
        gradfit::model::Format::Nsbi,
        &v,
        &path.display().to_string(),
        path.parent().unwrap(),
    )
}

fn reference() -> Value {
    common::read(&repo("tests/refs/nsbi_ref.json"))
}

fn example() -> CombinedModel {
    load(&repo("tests/data/nsbi/example/nsbi.json")).unwrap()
}

/// Parameters of `m` from a JSON object of values by name.
fn by_name(m: &CombinedModel, pars: &Value) -> Vec<f64> {
    m.par_names()
        .iter()
        .map(|n| {
            pars[n]
                .as_f64()
                .unwrap_or_else(|| panic!("no value for {n}"))
        })
        .collect()
}

fn eval(m: &CombinedModel, x: &[f64], grad: bool) -> (f64, Vec<f64>, Vec<f64>) {
    let p = m.n_pars();
    let mut s = m.scratch();
    let mut g = vec![0.0; p];
    let mut h = vec![0.0; p * p];
    let v = if grad {
        m.eval(x, m.observed(), &mut s, Some(&mut g), Some(&mut h))
    } else {
        m.eval(x, m.observed(), &mut s, None, None)
    };
    (v, g, h)
}

#[test]
fn twice_nll_matches_the_numpy_evaluation() {
    let r = reference();
    for (key, mr) in r["models"].as_object().unwrap() {
        let m = load(&repo(mr["workspace"].as_str().unwrap())).unwrap();
        let mut names: Vec<&String> = m.par_names().iter().collect();
        let mut theirs: Vec<String> = mr["par_names"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        names.sort();
        theirs.sort();
        assert_eq!(
            names.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            theirs,
            "{key}: parameters"
        );
        for e in mr["evals"].as_array().unwrap() {
            let x = by_name(&m, &e["pars"]);
            let (v, _, _) = eval(&m, &x, false);
            let want = e["twice_nll"].as_f64().unwrap();
            assert!(
                rel(v, want) < 1e-12,
                "{key} at {x:?}: {v} vs numpy {want} (rel {:e})",
                rel(v, want)
            );
        }
    }
}

#[test]
fn gradients_and_hessians_match_finite_differences() {
    let r = reference();
    for (key, mr) in r["models"].as_object().unwrap() {
        let m = load(&repo(mr["workspace"].as_str().unwrap())).unwrap();
        let p = m.n_pars();
        for e in mr["evals"].as_array().unwrap().iter().take(3) {
            let x = by_name(&m, &e["pars"]);
            let (_, g, h) = eval(&m, &x, true);
            for i in 0..p {
                let eps = 1e-5 * (1.0 + x[i].abs());
                let (mut xp, mut xm) = (x.clone(), x.clone());
                xp[i] += eps;
                xm[i] -= eps;
                let (fp, gp, _) = eval(&m, &xp, true);
                let (fm, gm, _) = eval(&m, &xm, true);
                let fd = (fp - fm) / (2.0 * eps);
                assert!(
                    (fd - g[i]).abs() < 2e-6 * (1.0 + g[i].abs()),
                    "{key} grad[{i}] {} vs {fd}",
                    g[i]
                );
                for j in 0..p {
                    let fd = (gp[j] - gm[j]) / (2.0 * eps);
                    let an = h[j * p + i];
                    assert!(
                        (fd - an).abs() < 2e-5 * (1.0 + an.abs()),
                        "{key} hess[{j},{i}] {an} vs {fd}"
                    );
                }
            }
        }
    }
}

#[test]
fn fits_and_profiles_match_scipy() {
    let r = reference();
    let opts = FitOptions::default();
    for (key, mr) in r["models"].as_object().unwrap() {
        let m = load(&repo(mr["workspace"].as_str().unwrap())).unwrap();
        let poi = m.poi().unwrap();
        let mut cases = vec![(None, &mr["fits"]["free"])];
        for f in mr["fits"]["fixed"].as_array().unwrap() {
            cases.push((f["mu"].as_f64(), f));
        }
        for (mu, want) in cases {
            let mut spec = FitSpec::from_model(&m);
            if let Some(mu) = mu {
                spec = spec.fix(poi, mu);
            }
            let f = fit::fit(&m, m.observed(), &spec, &opts);
            assert!(f.converged, "{key} mu {mu:?}: {:?}", f.status);
            let w = want["twice_nll"].as_f64().unwrap();
            // gradfit's minimum is at least as low as scipy's, and the same one
            assert!(
                f.twice_nll <= w + 1e-8 * w.abs().max(1.0),
                "{key} mu {mu:?}: {} vs scipy {w}",
                f.twice_nll
            );
            assert!(
                (f.twice_nll - w).abs() < 2e-6 * w.abs().max(1.0),
                "{key} mu {mu:?}: {} vs scipy {w}",
                f.twice_nll
            );
            let x = by_name(&m, &want["pars"]);
            for (i, n) in m.par_names().iter().enumerate() {
                assert!(
                    (f.x[i] - x[i]).abs() < 2e-3 * (1.0 + x[i].abs()),
                    "{key} mu {mu:?}: {n} {} vs scipy {}",
                    f.x[i],
                    x[i]
                );
            }
        }
    }
}

#[test]
fn per_event_code4_equals_pyhf() {
    let r = reference();
    let alphas: Vec<f64> = common::f64s(&r["code4"]["alphas"]);
    let tables = r["code4"]["tables"].as_array().unwrap();
    assert!(tables.len() >= 4);
    let mut n = 0;
    for t in tables {
        let (hi, lo) = (common::f64s(&t["hi"]), common::f64s(&t["lo"]));
        for (ia, &a) in alphas.iter().enumerate() {
            let at = Code4At::new(a);
            let want = common::f64s(&t["factors"][ia]);
            for i in 0..hi.len() {
                let (g, _, _) = at.eval(hi[i], lo[i], hi[i].ln(), lo[i].ln());
                assert!(
                    rel(g, want[i]) < 1e-12,
                    "alpha {a}, k+ {}, k- {}: {g} vs pyhf {}",
                    hi[i],
                    lo[i],
                    want[i]
                );
                n += 1;
            }
        }
    }
    assert!(n > 1000);
}

fn scan(m: &CombinedModel, grid: &[f64]) -> Vec<(f64, f64)> {
    let p = Problem::new(m, m.observed()).unwrap();
    let opts = FitOptions::default();
    let mut s =
        gradfit::infer::scan::profile_scan(&fit::Cpu, m, m.observed(), &p.spec, p.poi, grid, &opts)
            .unwrap();
    neyman::polish_scan(&p, &mut s, &opts).unwrap();
    assert!(s.points.iter().all(|q| q.converged));
    s.points
        .iter()
        .map(|q| (q.value, q.delta_twice_nll))
        .collect()
}

#[test]
fn profile_is_not_parabolic_and_narrower_than_the_histogram_analysis() {
    let nsbi = example();
    let hist = load(&repo("tests/data/nsbi/example/histogram.json")).unwrap();
    let grid: Vec<f64> = (0..=60).map(|i| i as f64 * 0.05).collect();
    let (a, b) = (scan(&nsbi, &grid), scan(&hist, &grid));
    let (alo, ahi) = neyman::scan_interval(&a, 1.0);
    let (blo, bhi) = neyman::scan_interval(&b, 1.0);
    let (wa, wb) = (ahi.unwrap() - alo.unwrap(), bhi.unwrap() - blo.unwrap());
    assert!(wa < 0.8 * wb, "NSBI 68% width {wa} vs histogram {wb}");
    // not parabolic: compare with the parabola of the Hessian at the minimum
    let f = fit::fit(
        &nsbi,
        nsbi.observed(),
        &FitSpec::from_model(&nsbi),
        &FitOptions::default(),
    );
    let (mu_hat, sigma) = (f.x[0], f.errors[0]);
    let worst = a
        .iter()
        .filter(|(_, t)| *t > 0.5)
        .map(|&(mu, t)| (t / ((mu - mu_hat) / sigma).powi(2) - 1.0).abs())
        .fold(0.0, f64::max);
    assert!(
        worst > 0.5,
        "profile within 50% of the parabola everywhere ({worst})"
    );
    let t0 = a[0].1;
    let parab0 = (mu_hat / sigma).powi(2);
    assert!(t0 > 2.0 * parab0, "t(0) = {t0} vs parabola {parab0}");
}

#[test]
fn combination_with_a_binned_control_region_shares_parameters_and_places_constraints_once() {
    let m = load(&repo("tests/data/nsbi/model2/model2.json")).unwrap();
    let labels: Vec<String> = m.parts().iter().map(|p| p.label()).collect();
    assert_eq!(labels.len(), 3, "{labels:?}");
    assert!(labels[0].contains("unbinned channel 'SR'"));
    assert!(labels[1].contains("binned channels CR"));
    assert!(labels[2].contains("Gaussian constraints"));
    let names = m.par_names();
    let idx = |n: &str| names.iter().position(|x| x == n).unwrap();
    // k_bkg and mu appear in both channels, once in the model
    for shared in ["k_bkg", "mu", "jes"] {
        let in_parts = (0..3)
            .filter(|&k| m.part_map(k).contains(&idx(shared)))
            .count();
        assert!(in_parts >= 2, "{shared} in {in_parts} parts");
    }
    // jes is constrained by the binned part (its normsys there), res and lumi_sys by the constraint part
    use gradfit::model::ModelInfo;
    assert!(m.constraint_info(idx("k_bkg")).is_none());
    for n in ["jes", "res", "lumi_sys"] {
        assert_eq!(m.constraint_info(idx(n)).unwrap().kind, "normal", "{n}");
    }
    let cons = m.parts()[2].par_names();
    assert!(cons.contains(&"res".to_string()) && cons.contains(&"lumi_sys".to_string()));
    assert!(!cons.contains(&"jes".to_string()));
    // both channels inform k_bkg: the control region adds curvature to the signal region's
    let f = fit::fit(
        &m,
        m.observed(),
        &FitSpec::from_model(&m),
        &FitOptions::default(),
    );
    assert!(f.converged, "{:?}", f.status);
    let (_, _, h) = eval(&m, &f.x, true);
    let k = idx("k_bkg");
    let sr = &m.parts()[0];
    let local: Vec<f64> = m.part_map(0).iter().map(|&g| f.x[g]).collect();
    let nl = local.len();
    let mut hl = vec![0.0; nl * nl];
    let mut gl = vec![0.0; nl];
    sr.eval(
        &local,
        &m.observed().parts[0],
        &mut sr.scratch(),
        Some(&mut gl),
        Some(&mut hl),
    );
    let kl = m.part_map(0).iter().position(|&g| g == k).unwrap();
    let (h_all, h_sr) = (h[k * m.n_pars() + k], hl[kl * nl + kl]);
    assert!(
        h_sr > 0.0 && h_all > 1.5 * h_sr,
        "d2/dk_bkg2: combined {h_all}, signal region {h_sr}"
    );
}

/// Write a workspace pair: unbinned events whose ratios are constant within
/// bins, and the same model as a pyhf workspace.
fn consistency_pair(dir: &Path) -> (PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let s = [3.0, 8.0, 14.0, 6.0, 2.0];
    let b = [40.0, 33.0, 25.0, 18.0, 11.0];
    let counts = [44usize, 38, 41, 22, 12];
    let (ns, nb): (f64, f64) = (s.iter().sum(), b.iter().sum());
    let mut rs = Vec::new();
    let mut rb = Vec::new();
    for (k, &c) in counts.iter().enumerate() {
        for _ in 0..c {
            rs.push(s[k] / ns);
            rb.push(b[k] / nb);
        }
    }
    write_npy(&dir.join("rs.npy"), &rs).unwrap();
    write_npy(&dir.join("rb.npy"), &rb).unwrap();
    let meas = json!([{"name": "m", "config": {"poi": "mu", "parameters": []}}]);
    let unb = json!({
        "channels": [{"name": "SR", "type": "unbinned", "samples": [
            {"name": "sig", "data": [ns], "ratios": "rs.npy", "modifiers": [
                {"name": "mu", "type": "normfactor", "data": null},
                {"name": "sig_xs", "type": "normsys", "data": {"hi": 1.1, "lo": 0.92}}]},
            {"name": "bkg", "data": [nb], "ratios": "rb.npy", "modifiers": [
                {"name": "bkg_norm", "type": "normsys", "data": {"hi": 1.05, "lo": 0.9}}]}]}],
        "measurements": meas, "version": "1.0.0"});
    let hf = json!({
        "channels": [{"name": "SR", "samples": [
            {"name": "sig", "data": s, "modifiers": [
                {"name": "mu", "type": "normfactor", "data": null},
                {"name": "sig_xs", "type": "normsys", "data": {"hi": 1.1, "lo": 0.92}}]},
            {"name": "bkg", "data": b, "modifiers": [
                {"name": "bkg_norm", "type": "normsys", "data": {"hi": 1.05, "lo": 0.9}}]}]}],
        "observations": [{"name": "SR", "data": counts}],
        "measurements": meas, "version": "1.0.0"});
    let (pu, ph) = (dir.join("unbinned.json"), dir.join("binned.json"));
    std::fs::write(&pu, unb.to_string()).unwrap();
    std::fs::write(&ph, hf.to_string()).unwrap();
    (pu, ph)
}

fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("gradfit-nsbi-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn ratios_constant_within_bins_reproduce_the_histfactory_model() {
    let dir = tempdir("consistency");
    let (pu, ph) = consistency_pair(&dir);
    let u = load(&pu).unwrap();
    let h = gradfit::HistFactoryModel::load(&ph, &[], &Default::default(), &Default::default())
        .unwrap();
    // parameters by name
    let perm: Vec<usize> = h
        .par_names
        .iter()
        .map(|n| u.par_names().iter().position(|x| x == n).unwrap())
        .collect();
    let mut diffs = Vec::new();
    for x in [
        [1.0, 0.0, 0.0],
        [0.3, 0.7, -1.2],
        [2.2, -1.7, 1.4],
        [0.8, 2.3, 0.4],
    ] {
        let xu: Vec<f64> = (0..3)
            .map(|k| x[perm.iter().position(|&q| q == k).unwrap()])
            .collect();
        let mut xu2 = vec![0.0; 3];
        for (i, &k) in perm.iter().enumerate() {
            xu2[k] = x[i];
        }
        let _ = xu;
        let (vu, gu, hu) = eval(&u, &xu2, true);
        let p = 3;
        let mut sh = h.scratch();
        let mut gh = vec![0.0; p];
        let mut hh = vec![0.0; p * p];
        let vh = Likelihood::eval(&h, &x, h.observed(), &mut sh, Some(&mut gh), Some(&mut hh));
        diffs.push(vu - vh);
        for i in 0..p {
            assert!(
                (gu[perm[i]] - gh[i]).abs() < 1e-9 * (1.0 + gh[i].abs()),
                "grad {i}: {} vs {}",
                gu[perm[i]],
                gh[i]
            );
            for j in 0..p {
                let (a, b) = (hu[perm[i] * p + perm[j]], hh[i * p + j]);
                assert!(
                    (a - b).abs() < 1e-9 * (1.0 + b.abs()),
                    "hess {i},{j}: {a} vs {b}"
                );
            }
        }
    }
    // the likelihoods differ by a constant
    for d in &diffs {
        assert!(
            (d - diffs[0]).abs() < 1e-9 * diffs[0].abs().max(1.0),
            "{diffs:?}"
        );
    }
    let fu = fit::fit(
        &u,
        u.observed(),
        &FitSpec::from_model(&u),
        &FitOptions::default(),
    );
    let fh = fit::fit(
        &h,
        h.observed(),
        &FitSpec::from_model(&h),
        &FitOptions::default(),
    );
    for i in 0..3 {
        assert!(
            (fu.x[perm[i]] - fh.x[i]).abs() < 1e-7,
            "{}: {} vs {}",
            h.par_names[i],
            fu.x[perm[i]],
            fh.x[i]
        );
        assert!(rel(fu.errors[perm[i]], fh.errors[i]) < 1e-6);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
