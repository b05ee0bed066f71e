//! Parity of the likelihood with pyhf on the shared published workspaces.
//! Needs ../shared (GRADFIT_SHARED); run by .ci/run with `-- --ignored`.

mod common;
use common::*;
use gradfit::fit::{self, FitOptions, FitSpec};
use gradfit::model::ModelOptions;

#[test]
#[ignore = "needs ../shared: GRADFIT_SHARED=../shared cargo test --test shared_parity -- --ignored"]
fn model_tables_match_pyhf() {
    let shared = shared_dir();
    for name in workspace_names(&shared) {
        let r = reference(&shared, &name);
        let m = load_model(&shared, &name, &ModelOptions::default());
        let rm = &r["model"];
        let names: Vec<String> = rm["par_names"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap().to_string())
            .collect();
        assert_eq!(m.par_names, names, "{name}: par_names");
        assert_eq!(m.init, f64s(&rm["init"]), "{name}: init");
        let bounds: Vec<(f64, f64)> = rm["bounds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| (b[0].as_f64().unwrap(), b[1].as_f64().unwrap()))
            .collect();
        assert_eq!(m.bounds, bounds, "{name}: bounds");
        let fixed: Vec<bool> = rm["fixed"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_bool().unwrap())
            .collect();
        assert_eq!(m.fixed, fixed, "{name}: fixed");
        assert_eq!(
            m.poi,
            rm["poi_index"].as_u64().map(|x| x as usize),
            "{name}: poi"
        );
        let aux = f64s(&rm["auxdata"]);
        assert_eq!(m.observed().aux.len(), aux.len(), "{name}: n aux");
        for (a, b) in m.observed().aux.iter().zip(&aux) {
            assert!(
                rel(*a, *b) < 1e-12 || (a - b).abs() < 1e-12,
                "{name}: auxdata {a} vs {b}"
            );
        }
        assert_eq!(m.observed_data(), f64s(&r["data"]), "{name}: data vector");
    }
}

#[test]
#[ignore = "needs ../shared: GRADFIT_SHARED=../shared cargo test --test shared_parity -- --ignored"]
fn logpdf_expected_data_and_gradient_match_pyhf() {
    let shared = shared_dir();
    for name in workspace_names(&shared) {
        let r = reference(&shared, &name);
        let m = load_model(&shared, &name, &ModelOptions::default());
        for (k, pt) in r["logpdf"].as_array().unwrap().iter().enumerate() {
            let pars = f64s(&pt["pars"]);
            let want = -2.0 * pt["logpdf"].as_f64().unwrap();
            let (f, g) = m.twice_nll_grad(&pars, m.observed());
            assert!(
                rel(f, want) < 1e-10,
                "{name} point {k}: twice_nll {f} vs {want} (rel {:e})",
                rel(f, want)
            );
            let exp = m.expected_main(&pars);
            for (b, (x, y)) in exp.iter().zip(f64s(&pt["expected_actualdata"])).enumerate() {
                assert!(
                    rel(*x, y) < 1e-10,
                    "{name} point {k} bin {b}: expected {x} vs {y}"
                );
            }
            let gref = f64s(&pt["grad_twice_nll"]);
            for (i, (x, y)) in g.iter().zip(&gref).enumerate() {
                let ok = rel(*x, *y) < 1e-8 || (x - y).abs() < 1e-8;
                assert!(
                    ok,
                    "{name} point {k} grad[{i}] ({}): {x} vs {y}",
                    m.par_names[i]
                );
            }
        }
    }
}

#[test]
#[ignore = "needs ../shared: GRADFIT_SHARED=../shared cargo test --test shared_parity -- --ignored"]
fn hessian_at_best_fit_matches_pyhf() {
    let shared = shared_dir();
    for name in workspace_names(&shared) {
        let r = reference(&shared, &name);
        let m = load_model(&shared, &name, &ModelOptions::default());
        let p = m.n_pars();
        let best = f64s(&r["fit_free"]["pars"]);
        let (_, _, h) = m.twice_nll_hessian(&best, m.observed());
        if let Some(full) = r["hessian_twice_nll_at_best_fit"].as_array() {
            for i in 0..p {
                let row = f64s(&full[i]);
                let scale = row.iter().fold(0.0f64, |a, x| a.max(x.abs()));
                for j in 0..p {
                    let (x, y) = (h[i * p + j], row[j]);
                    let ok = rel(x, y) < 1e-6 || (x - y).abs() < 1e-6 * scale;
                    assert!(ok, "{name}: H[{i}][{j}] {x} vs {y}");
                }
            }
        } else {
            let diag = f64s(&r["hessian_diag_twice_nll_at_best_fit"]);
            for i in 0..p {
                let (x, y) = (h[i * p + i], diag[i]);
                assert!(
                    rel(x, y) < 1e-6 || (x - y).abs() < 1e-9,
                    "{name}: H[{i}][{i}] {x} vs {y}"
                );
            }
        }
    }
}

#[test]
#[ignore = "needs ../shared: GRADFIT_SHARED=../shared cargo test --test shared_parity -- --ignored"]
fn fits_reach_the_reference_minima() {
    let shared = shared_dir();
    for name in workspace_names(&shared) {
        let r = reference(&shared, &name);
        let m = load_model(&shared, &name, &ModelOptions::default());
        let poi = m.poi.expect("poi");
        let opts = FitOptions::default();
        let free = fit::fit(&m, m.observed(), &FitSpec::from_model(&m), &opts);
        let want = r["fit_free"]["twice_nll"].as_f64().unwrap();
        assert!(free.converged, "{name}: free fit {:?}", free.status);
        assert!(
            free.twice_nll <= want + 1e-4,
            "{name}: free twice_nll {} vs {want}",
            free.twice_nll
        );
        eprintln!(
            "{name}: free {} (ref {want}, diff {:e}) in {} iterations",
            free.twice_nll,
            free.twice_nll - want,
            free.iterations
        );
        let unc = f64s(&r["fit_free"]["uncertainties"]);
        for i in 0..m.n_pars() {
            if m.fixed[i] {
                assert_eq!(free.errors[i], 0.0);
                continue;
            }
            let (lo, hi) = m.bounds[i];
            let x = free.x[i];
            let away = (x - lo) > 1e-6 * (hi - lo) && (hi - x) > 1e-6 * (hi - lo);
            if away {
                assert!(
                    rel(free.errors[i], unc[i]) < 1e-3,
                    "{name}: error of {} {} vs {}",
                    m.par_names[i],
                    free.errors[i],
                    unc[i]
                );
            }
        }
        for (key, mu) in [("fit_mu0", 0.0), ("fit_mu1", 1.0)] {
            let spec = FitSpec::from_model(&m).fix(poi, mu);
            let res = fit::fit(&m, m.observed(), &spec, &opts);
            let want = r[key]["twice_nll"].as_f64().unwrap();
            assert!(res.converged, "{name}: {key} {:?}", res.status);
            assert!(
                res.twice_nll <= want + 1e-4,
                "{name}: {key} twice_nll {} vs {want}",
                res.twice_nll
            );
            eprintln!(
                "{name}: {key} {} (ref {want}, diff {:e}) in {} iterations",
                res.twice_nll,
                res.twice_nll - want,
                res.iterations
            );
        }
    }
}

#[test]
#[ignore = "needs ../shared: GRADFIT_SHARED=../shared cargo test --test shared_parity -- --ignored"]
fn graph_matches_fused_kernel_on_shared_workspaces() {
    let shared = shared_dir();
    for name in workspace_names(&shared) {
        let m = load_model(&shared, &name, &ModelOptions::default());
        check_graph_vs_kernel(&m, 8, 17, 1e-12, 1e-10, &name);
    }
}

#[test]
#[ignore = "needs ../shared: GRADFIT_SHARED=../shared cargo test --test shared_parity -- --ignored"]
fn root_validation_workspaces_load_with_their_interpolation_codes() {
    use gradfit::model::InterpCode;
    let shared = shared_dir();
    for (fname, v, m) in validation_cases(&shared) {
        let code = |k: &str| {
            v["interpolation"][k]
                .as_str()
                .unwrap()
                .parse::<InterpCode>()
                .unwrap()
        };
        assert_eq!(m.normsys_code, code("normsys"), "{fname}");
        assert_eq!(m.histosys_code, code("histosys"), "{fname}");
        assert!(m.poi.is_some(), "{fname}: POI");
        let f = m.twice_nll(&m.init, m.observed());
        assert!(f.is_finite(), "{fname}: twice_nll at init");
    }
}

/// The fast parse of workspace bytes (sonic-rs) gives exactly what serde_json
/// gives (the path with JSON locations): every shared workspace, with every
/// number bit for bit (compared through serde_json's round-trip output).
#[test]
#[ignore = "needs ../shared: GRADFIT_SHARED=../shared cargo test --test shared_parity -- --ignored"]
fn fast_parse_matches_serde_json_on_shared_workspaces() {
    use gradfit::workspace::{ReadOptions, Workspace};
    let shared = shared_dir();
    let names = workspace_names(&shared);
    assert!(!names.is_empty());
    for name in names {
        let path = shared.join("workspaces").join(format!("{name}.json"));
        let bytes = std::fs::read(&path).unwrap();
        let fast = Workspace::from_bytes(&bytes, &name, &ReadOptions::default()).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        let slow = Workspace::from_value(value, &[], &name, &ReadOptions::default()).unwrap();
        assert_eq!(
            serde_json::to_string(&fast).unwrap(),
            serde_json::to_string(&slow).unwrap(),
            "{name}"
        );
    }
}
