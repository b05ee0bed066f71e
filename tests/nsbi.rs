//! NSBI (per-event density ratio) models: parity with an independent numpy /
//! scipy / pyhf evaluation (tests/refs/nsbi_ref.py -> tests/refs/nsbi_ref.json),
//! derivatives, intervals, toys, Neyman coverage, combination with binned
//! channels, the consistency limit against HistFactory, bad input, and every
//! command on such a workspace.

mod common;
#[path = "nsbi/customfunc.rs"]
mod customfunc;
#[path = "nsbi/network.rs"]
mod network;

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

#[test]
fn bootstrap_toys_are_reproducible_across_threads_and_shards() {
    let ws = repo("tests/data/nsbi/example/nsbi.json");
    let dir = tempdir("toys");
    let run = |args: &[&str], threads: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_gradfit"))
            .args(args)
            .env("RAYON_NUM_THREADS", threads)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let f = |n: &str| dir.join(n).display().to_string();
    let w = ws.display().to_string();
    run(
        &[
            "toys",
            &w,
            "--mu",
            "1",
            "--n",
            "24",
            "--seed",
            "7",
            "--batch",
            "5",
            "--out",
            &f("all1.json"),
        ],
        "1",
    );
    run(
        &[
            "toys",
            &w,
            "--mu",
            "1",
            "--n",
            "24",
            "--seed",
            "7",
            "--batch",
            "16",
            "--out",
            &f("all2.json"),
        ],
        "2",
    );
    run(
        &[
            "toys",
            &w,
            "--mu",
            "1",
            "--n",
            "24",
            "--seed",
            "7",
            "--shard",
            "0/2",
            "--out",
            &f("s0.json"),
        ],
        "2",
    );
    run(
        &[
            "toys",
            &w,
            "--mu",
            "1",
            "--n",
            "24",
            "--seed",
            "7",
            "--shard",
            "1/2",
            "--out",
            &f("s1.json"),
        ],
        "1",
    );
    run(
        &[
            "merge",
            &f("s0.json"),
            &f("s1.json"),
            "--out",
            &f("merged.json"),
        ],
        "1",
    );
    let recs = |n: &str| {
        let v = common::read(&dir.join(n));
        (v["sig_bkg"].clone(), v["bkg"].clone())
    };
    let a = recs("all1.json");
    assert_eq!(a.0.as_array().unwrap().len(), 24);
    assert_eq!(a, recs("all2.json"));
    assert_eq!(a, recs("merged.json"));
    let other = std::process::Command::new(env!("CARGO_BIN_EXE_gradfit"))
        .args([
            "toys",
            &w,
            "--mu",
            "1",
            "--n",
            "24",
            "--seed",
            "8",
            "--out",
            &f("seed8.json"),
        ])
        .output()
        .unwrap();
    assert!(other.status.success());
    assert_ne!(a, recs("seed8.json"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Coverage of belts at three POI values. `n_test` pseudo-experiments at the
/// truth; the belt from `n_belt` toys. Standard errors include the belt's own
/// toy statistics: var = cl (1 - cl) (1 / n_test + 1 / n_belt).
fn coverage_at_truth(n_belt: u32, n_test: u32) -> Vec<(f64, f64, f64, f64)> {
    let m = example();
    let p = Problem::new(&m, m.observed()).unwrap();
    let opts = FitOptions {
        covariance: false,
        ..FitOptions::default()
    };
    let mut out = Vec::new();
    for (j, mu) in [0.5, 1.0, 2.0].into_iter().enumerate() {
        let mut truth = m.init().to_vec();
        truth[p.poi] = mu;
        let generator = m.generator(&truth);
        let mut free = p.spec.clone();
        free.init.copy_from_slice(&truth);
        let fixed = free.clone().fix(p.poi, mu);
        let t = |seed: u64, n: u32| {
            let mut v: Vec<f64> = belt_toys(&p, &generator, &free, &fixed, seed, j, 0..n, &opts)
                .unwrap()
                .into_iter()
                .flatten()
                .collect();
            v.sort_by(f64::total_cmp);
            v
        };
        let (belt, test) = (t(11, n_belt), t(12, n_test));
        assert!(belt.len() as u32 >= n_belt * 99 / 100 && test.len() as u32 >= n_test * 99 / 100);
        for cl in [0.6827, 0.9545] {
            let c = critical_value(&belt, cl);
            let (cov, _) = neyman::coverage(&test, c);
            let se = (cl * (1.0 - cl) * (1.0 / test.len() as f64 + 1.0 / belt.len() as f64)).sqrt();
            out.push((mu, cl, cov, se));
        }
    }
    out
}

#[test]
fn neyman_belts_cover_at_three_poi_values() {
    for (mu, cl, cov, se) in coverage_at_truth(1000, 1000) {
        assert!(
            (cov - cl).abs() < 2.0 * se,
            "mu {mu}, cl {cl}: coverage {cov} (2 SE = {})",
            2.0 * se
        );
    }
}

/// The full profile construction (a belt per pseudo-experiment, drawn at the
/// nuisance parameters profiled on it), reduced sizes; the full size
/// (`-- --ignored`) is long and was not run for docs/nsbi.md.
fn profile_construction_coverage(
    m: &CombinedModel,
    n_exp: u32,
    n_toys: u32,
) -> Vec<(f64, f64, f64, f64)> {
    let opts = FitOptions::default();
    let mut out = Vec::new();
    for mu in [0.5, 1.0, 2.0] {
        let mut truth = m.init().to_vec();
        truth[0] = mu;
        let generator = m.generator(&truth);
        let mut hits = [0u32; 2];
        let mut n = 0u32;
        for e in 0..n_exp {
            let data = m.sample(&generator, 99, e, 3);
            let p = Problem::new(m, &data).unwrap();
            let s = NeymanSettings {
                grid: vec![mu],
                n_toys,
                cls: vec![0.6827, 0.9545],
                seed: 1000 + e as u64,
                batch: 256,
            };
            let Ok(r) = neyman::neyman(&p, &s, &opts, false, &|_, _| {}) else {
                continue;
            };
            let pt = &r.points[0];
            if !pt.converged {
                continue;
            }
            n += 1;
            for q in 0..2 {
                hits[q] += (pt.t_obs <= pt.critical[q]) as u32;
            }
        }
        for (q, cl) in [0.6827, 0.9545].into_iter().enumerate() {
            let cov = hits[q] as f64 / n as f64;
            let se = (cl * (1.0 - cl) * (1.0 / n as f64 + 1.0 / n_toys as f64)).sqrt();
            eprintln!(
                "mu {mu} cl {cl}: coverage {cov:.4} +- {se:.4} ({n} of {n_exp} pseudo-experiments)"
            );
            out.push((mu, cl, cov, se));
        }
    }
    out
}

#[test]
fn profile_construction_covers_reduced_size() {
    for (mu, cl, cov, se) in profile_construction_coverage(&example(), 100, 100) {
        assert!(
            (cov - cl).abs() < 2.0 * se,
            "mu {mu}, cl {cl}: coverage {cov} (2 SE = {})",
            2.0 * se
        );
    }
}

/// The example problem with a reference sample of 20,000 events (the
/// committed example's 400 do not close to the per-process yields well
/// enough for a full-size coverage test: docs/nsbi.md, "Tests").
fn example_large_reference() -> CombinedModel {
    use gradfit::model::nsbi::synth::OffShell;
    let dir = tempdir("large-reference");
    let model = OffShell::default();
    let obs = model.observed(1.0, 1);
    let (rx, rw) = model.reference_sample(20_000, 1001);
    let ws = model.write_workspace(&dir, &obs, (&rx, &rw)).unwrap();
    load(&ws).unwrap()
}

#[test]
#[ignore = "full size (1000 pseudo-experiments x 1000 toys at three POI values, 20,000-event reference sample): about an hour on 2 cores; run with -- --ignored --nocapture"]
fn profile_construction_covers_full_size() {
    let m = example_large_reference();
    for (mu, cl, cov, se) in profile_construction_coverage(&m, 1000, 1000) {
        println!("mu {mu} cl {cl}: coverage {cov:.4} +- {se:.4}");
        assert!(
            (cov - cl).abs() < 2.0 * se,
            "mu {mu}, cl {cl}: coverage {cov} (2 SE = {})",
            2.0 * se
        );
    }
}

/// A copy of the example workspace in a fresh directory, to break.
fn broken_copy(name: &str) -> (PathBuf, Value) {
    let dir = tempdir(name);
    let src = repo("tests/data/nsbi/example");
    for e in std::fs::read_dir(&src).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dir.join(e.file_name())).unwrap();
    }
    let ws = common::read(&dir.join("nsbi.json"));
    (dir, ws)
}

fn load_err(dir: &Path, ws: &Value) -> String {
    let p = dir.join("nsbi.json");
    std::fs::write(&p, ws.to_string()).unwrap();
    let e = load(&p)
        .err()
        .unwrap_or_else(|| panic!("loading {} should fail", p.display()));
    e.to_string()
}

#[test]
fn bad_input_gets_an_error_naming_the_place() {
    let n = common::read(&repo("tests/data/nsbi/example/nsbi.json"));
    let check = |name: &str, edit: &dyn Fn(&Path, &mut Value), needles: &[&str]| {
        let (dir, mut ws) = broken_copy(name);
        edit(&dir, &mut ws);
        let msg = load_err(&dir, &ws);
        for needle in needles {
            assert!(msg.contains(needle), "{name}: '{needle}' not in: {msg}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    };
    let _ = n;
    // arrays of different lengths
    check(
        "length",
        &|d, _| {
            let v: Vec<f64> = vec![1.0; 17];
            write_npy(&d.join("r_B.npy"), &v).unwrap();
        },
        &[
            "/channels/0/samples/2/ratios",
            "r_B.npy",
            "has 17 events",
            "equal lengths",
        ],
    );
    // a missing file
    check(
        "missing",
        &|_, ws| ws["channels"][0]["samples"][1]["ratios"] = json!("nowhere.npy"),
        &[
            "/channels/0/samples/1/ratios",
            "nowhere.npy",
            "file not found",
        ],
    );
    // an unreadable file
    check(
        "garbage",
        &|d, _| std::fs::write(d.join("r_S.npy"), b"this is not numpy").unwrap(),
        &["/channels/0/samples/0/ratios", "r_S.npy"],
    );
    // non-finite and negative ratios
    check(
        "nan",
        &|d, _| {
            let mut v = gradfit::data::read_npy_array(&d.join("r_SBI.npy"))
                .unwrap()
                .1;
            v[5] = f64::NAN;
            write_npy(&d.join("r_SBI.npy"), &v).unwrap();
        },
        &["channel 'SR'", "ratios of 'SBI'", "event 5", "NaN"],
    );
    check(
        "negative",
        &|d, _| {
            let mut v = gradfit::data::read_npy_array(&d.join("r_B_shape_up.npy"))
                .unwrap()
                .1;
            v[9] = -0.5;
            write_npy(&d.join("r_B_shape_up.npy"), &v).unwrap();
        },
        &[
            "sample 'B', modifier 'alpha_shape' up ratios",
            "event 9",
            "-0.5",
        ],
    );
    // an expression naming an unknown parameter, and one that does not parse
    check(
        "unknown",
        &|_, ws| {
            ws["channels"][0]["samples"][0]["modifiers"][0]["data"]["expr"] =
                json!("muu - sqrt(mu)")
        },
        &[
            "/channels/0/samples/0/modifiers/0/data/expr",
            "'muu'",
            "no modifier declares",
        ],
    );
    check(
        "parse",
        &|_, ws| ws["channels"][0]["samples"][1]["modifiers"][0]["data"]["expr"] = json!("sqrt(mu"),
        &[
            "/channels/0/samples/1/modifiers/0/data/expr",
            "cannot parse 'sqrt(mu'",
        ],
    );
    // coefficients that make a rate negative at the start point
    check(
        "negative-rate",
        &|_, ws| ws["channels"][0]["samples"][0]["modifiers"][0]["data"]["expr"] = json!("mu - 3"),
        &[
            "not finite at the start point",
            "mu = 1",
            "unbinned channel 'SR'",
            "event",
            "must be > 0",
        ],
    );
    // an unsupported modifier in an unbinned channel, a sample without ratios
    check(
        "histosys",
        &|_, ws| ws["channels"][0]["samples"][2]["modifiers"][1]["type"] = json!("histosys"),
        &[
            "/channels/0/samples/2/modifiers/1/type",
            "'histosys' is not supported in unbinned channels",
        ],
    );
    check(
        "no-ratios",
        &|_, ws| {
            ws["channels"][0]["samples"][0]
                .as_object_mut()
                .unwrap()
                .remove("ratios");
        },
        &["/channels/0/samples/0", "no \"ratios\""],
    );
    // the CLI: exit status 1 and the message, never a panic
    let (dir, mut ws) = broken_copy("cli");
    ws["channels"][0]["samples"][1]["ratios"] = json!("nowhere.npy");
    let p = dir.join("nsbi.json");
    std::fs::write(&p, ws.to_string()).unwrap();
    let (code, _, err) = run_gradfit(&["fit", &p.display().to_string()]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("nowhere.npy") && err.contains("file not found"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn every_command_runs_on_an_nsbi_workspace() {
    let w = repo("tests/data/nsbi/example/nsbi.json")
        .display()
        .to_string();
    let dir = tempdir("cli-all");
    let pars = dir.join("pars.json");
    std::fs::write(&pars, "[1.0, 0.1, -0.2]").unwrap();
    let p = pars.display().to_string();
    let plot = dir.join("belts.svg").display().to_string();
    let toys = dir.join("toys.json").display().to_string();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["eval", &w, "--pars", &p, "--hessian", "--json"],
            "twice_nll",
        ),
        (vec!["fit", &w, "--json"], "values"),
        (vec!["inspect", &w, "--json"], "parts"),
        (vec!["scan", &w, "--range", "0.5:1.5:5", "--json"], "points"),
        (vec!["cls", &w, "--mu", "2", "--json"], "cls_obs"),
        (vec!["limit", &w, "--json"], "obs"),
        (vec!["discovery", &w, "--json"], "z_obs"),
        (vec!["pulls", &w, "--json"], "parameters"),
        (vec!["impacts", &w, "--json"], "poi_error"),
        (vec!["corr", &w, "--json"], "correlation"),
        (
            vec![
                "toys", &w, "--mu", "1", "--n", "6", "--out", &toys, "--json",
            ],
            "n_toys",
        ),
        (
            vec![
                "neyman",
                &w,
                "--range",
                "0.5:1.5:3",
                "--toys",
                "40",
                "--plot",
                &plot,
                "--json",
            ],
            "intervals",
        ),
    ];
    for (args, key) in cases {
        let (code, v, err) = run_gradfit(&args);
        assert!(code == 0 || code == 3, "{args:?}: exit {code}: {err}");
        assert!(v.get(key).is_some(), "{args:?}: no '{key}' in {v}");
    }
    // the example's 400 reference events do not close well enough for toys
    let (_, _, err) = run_gradfit(&["neyman", &w, "--range", "1:1:1", "--toys", "4"]);
    assert!(
        err.contains("reference events reweighted to process SBI")
            && err.contains("larger reference sample"),
        "{err}"
    );
    let svg = std::fs::read_to_string(dir.join("belts.svg")).unwrap();
    assert!(svg.contains("<svg") && svg.contains("observed profile scan"));
    let (_, v, _) = run_gradfit(&["inspect", &w, "--json"]);
    let clo = &v["parts"][0]["diagnostics"]["closure"];
    assert_eq!(clo.as_array().unwrap().len(), 3);
    let shapes = &v["parts"][0]["diagnostics"]["shapes"];
    assert_eq!(shapes.as_array().unwrap().len(), 2, "{shapes}");
    // the text form shows the closure and the shape-variation spread
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gradfit"))
        .args(["inspect", &w])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        text.contains("closure of the") && text.contains("per-event shape variations"),
        "{text}"
    );
    assert!(
        text.contains("sample 'SBI', modifier 'alpha_shape'"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
