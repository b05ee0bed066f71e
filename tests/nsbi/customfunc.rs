//! `customfunc` modifiers in binned channels: a customfunc `mu` is the same
//! likelihood as a normfactor `mu` (pyhf's semantics: the expression multiplies
//! the sample's rate), polynomial EFT scalings and sqrt(mu) interference terms
//! against a direct Poisson evaluation, exact gradients and Hessians against
//! finite differences, fits, the CLI and bad input.

use super::common::{rel, run_gradfit};
use super::tempdir;
use gradfit::model::{CombinedModel, Likelihood};
use serde_json::{Value, json};

fn compile(ws: &Value) -> gradfit::Result<CombinedModel> {
    assert_eq!(gradfit::model::format_of(ws), gradfit::model::Format::Nsbi);
    gradfit::model::load_other(
        gradfit::model::Format::Nsbi,
        ws,
        "customfunc.json",
        std::path::Path::new("."),
    )
}

const SIG: [f64; 3] = [4.0, 9.0, 3.0];
const BKG: [f64; 3] = [50.0, 42.0, 30.0];
const OBS: [f64; 3] = [57.0, 49.0, 36.0];

/// Signal scaled by `sig_mod`, background with a normsys and staterror.
fn workspace(sig_mod: Value, params: Value) -> Value {
    json!({
        "channels": [{"name": "SR", "samples": [
            {"name": "signal", "data": SIG, "modifiers": [sig_mod]},
            {"name": "bkg", "data": BKG, "modifiers": [
                {"name": "bnorm", "type": "normsys", "data": {"hi": 1.1, "lo": 0.92}},
                {"name": "stat", "type": "staterror", "data": [2.0, 1.5, 1.0]}]}]}],
        "observations": [{"name": "SR", "data": OBS}],
        "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": params}}],
        "version": "1.0.0"
    })
}

fn eval(m: &CombinedModel, x: &[f64]) -> (f64, Vec<f64>, Vec<f64>) {
    let p = m.n_pars();
    let mut s = m.scratch();
    let (mut g, mut h) = (vec![0.0; p], vec![0.0; p * p]);
    let v = m.eval(x, m.observed(), &mut s, Some(&mut g), Some(&mut h));
    (v, g, h)
}

/// Values of `m`'s parameters from (name, value) pairs (others at their start).
fn at(m: &CombinedModel, vals: &[(&str, f64)]) -> Vec<f64> {
    let mut x = m.init().to_vec();
    for (n, v) in vals {
        let i = m.par_names().iter().position(|p| p == n).unwrap();
        x[i] = *v;
    }
    x
}

/// Central differences of the gradient (for the Hessian) and of the value
/// (for the gradient), compared with the analytic ones.
fn check_derivatives(m: &CombinedModel, x: &[f64]) {
    let p = m.n_pars();
    let (_, g, h) = eval(m, x);
    for i in 0..p {
        let e = 1e-5 * (1.0 + x[i].abs());
        let mut xp = x.to_vec();
        let mut xm = x.to_vec();
        xp[i] += e;
        xm[i] -= e;
        let (fp, gp, _) = eval(m, &xp);
        let (fm, gm, _) = eval(m, &xm);
        let fd = (fp - fm) / (2.0 * e);
        assert!(
            (fd - g[i]).abs() < 1e-6 * (1.0 + g[i].abs()),
            "d/d{}: {} vs fd {fd}",
            m.par_names()[i],
            g[i]
        );
        for j in 0..p {
            let fdh = (gp[j] - gm[j]) / (2.0 * e);
            assert!(
                (fdh - h[j * p + i]).abs() < 1e-5 * (1.0 + h[j * p + i].abs()),
                "d2/d{}d{}: {} vs fd {fdh}",
                m.par_names()[j],
                m.par_names()[i],
                h[j * p + i]
            );
        }
    }
    // symmetric
    for i in 0..p {
        for j in 0..p {
            assert!((h[i * p + j] - h[j * p + i]).abs() <= 1e-12 * (1.0 + h[i * p + j].abs()));
        }
    }
}

#[test]
fn customfunc_mu_is_a_normfactor() {
    let cf = compile(&workspace(
        json!({"name": "f", "type": "customfunc", "data": {"expr": "mu"}}),
        json!([{"name": "mu", "inits": [1.0], "bounds": [[0.0, 10.0]]}]),
    ))
    .unwrap();
    let nf_ws = workspace(
        json!({"name": "mu", "type": "normfactor", "data": null}),
        json!([]),
    );
    let nf = gradfit::model::HistFactoryModel::from_workspace(
        &gradfit::workspace::Workspace::from_value(nf_ws, &[], "nf", &Default::default()).unwrap(),
        &Default::default(),
        "nf",
    )
    .unwrap();
    let mut names = cf.par_names().to_vec();
    names.sort();
    let mut nf_names = nf.par_names.clone();
    nf_names.sort();
    assert_eq!(names, nf_names);
    assert_eq!(cf.par_names()[cf.poi().unwrap()], "mu");
    let perm: Vec<usize> = nf
        .par_names
        .iter()
        .map(|n| cf.par_names().iter().position(|c| c == n).unwrap())
        .collect();
    let p = perm.len();
    for point in [
        [1.0, 0.0, 1.0, 1.0, 1.0],
        [2.3, -0.7, 0.95, 1.1, 1.02],
        [0.2, 1.4, 1.05, 0.9, 0.97],
    ] {
        // nf order: pyhf order of nf's parameters; same values in cf's order
        let xn: Vec<f64> = nf
            .par_names
            .iter()
            .map(|n| match n.as_str() {
                "mu" => point[0],
                "bnorm" => point[1],
                "stat[0]" => point[2],
                "stat[1]" => point[3],
                _ => point[4],
            })
            .collect();
        let mut xc = vec![0.0; p];
        for (k, &j) in perm.iter().enumerate() {
            xc[j] = xn[k];
        }
        let (vc, gc, hc) = eval(&cf, &xc);
        let mut s = nf.scratch();
        let (mut gn, mut hn) = (vec![0.0; p], vec![0.0; p * p]);
        let vn = Likelihood::eval(
            &nf,
            &xn,
            nf.observed(),
            &mut s,
            Some(&mut gn),
            Some(&mut hn),
        );
        assert!(rel(vc, vn) < 1e-13, "{vc} vs {vn}");
        for a in 0..p {
            assert!((gc[perm[a]] - gn[a]).abs() < 1e-11 * (1.0 + gn[a].abs()));
            for b in 0..p {
                let (x, y) = (hc[perm[a] * p + perm[b]], hn[a * p + b]);
                assert!(
                    (x - y).abs() < 1e-11 * (1.0 + y.abs()),
                    "H[{a},{b}] {x} vs {y}"
                );
            }
        }
    }
}

/// `sum_b (nu_b - n_b ln nu_b)` with staterror and normsys at their nominal values.
fn poisson_part(sig_scale: f64) -> f64 {
    (0..3)
        .map(|b| {
            let nu = SIG[b] * sig_scale + BKG[b];
            nu - OBS[b] * nu.ln()
        })
        .sum()
}

#[test]
fn eft_polynomial_and_interference_terms_match_a_direct_evaluation() {
    // mu (1 + c A + c^2 B) with A = 0.4, B = 0.3, at mu = 1
    let m = compile(&workspace(
        json!({"name": "eft", "type": "customfunc", "data": {"expr": "mu * (1 + 0.4*c + 0.3*c^2)"}}),
        json!([{"name": "c", "inits": [0.0], "bounds": [[-5.0, 5.0]]},
               {"name": "mu", "inits": [1.0], "bounds": [[0.0, 10.0]]}]),
    ))
    .unwrap();
    assert!(m.par_names().iter().any(|n| n == "c"));
    let f0 = eval(&m, &at(&m, &[("c", 0.0)])).0;
    for c in [-1.5_f64, -0.3, 0.8, 2.0] {
        let f = eval(&m, &at(&m, &[("c", c)])).0;
        let want = 2.0 * (poisson_part(1.0 + 0.4 * c + 0.3 * c * c) - poisson_part(1.0));
        assert!(
            (f - f0 - want).abs() < 1e-10 * (1.0 + want.abs()),
            "c={c}: {} vs {want}",
            f - f0
        );
    }
    check_derivatives(&m, &at(&m, &[("c", 0.7), ("bnorm", 0.3)]));

    // sqrt(mu) interference: three samples S, SBI, B with mu - sqrt(mu), sqrt(mu), 1 - sqrt(mu)
    let ws = json!({
        "channels": [{"name": "SR", "samples": [
            {"name": "S", "data": [3.0, 6.0], "modifiers": [
                {"name": "fS", "type": "customfunc", "data": {"expr": "mu - sqrt(mu)"}}]},
            {"name": "SBI", "data": [20.0, 16.0], "modifiers": [
                {"name": "fSBI", "type": "customfunc", "data": {"expr": "sqrt(mu)"}},
                {"name": "lumi_like", "type": "normsys", "data": {"hi": 1.05, "lo": 0.95}}]},
            {"name": "B", "data": [19.0, 11.0], "modifiers": [
                {"name": "fB", "type": "customfunc", "data": {"expr": "1 - sqrt(mu)"}}]}]}],
        "observations": [{"name": "SR", "data": [22.0, 17.0]}],
        "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": [
            {"name": "mu", "inits": [1.0], "bounds": [[0.0, 5.0]]}]}}],
        "version": "1.0.0"
    });
    let m = compile(&ws).unwrap();
    let f1 = eval(&m, &at(&m, &[("mu", 1.0)])).0;
    for mu in [0.25_f64, 0.6, 1.7] {
        let f = eval(&m, &at(&m, &[("mu", mu)])).0;
        let s = mu.sqrt();
        let part = |mu: f64, s: f64| -> f64 {
            let nu = |b: usize| {
                [3.0, 6.0][b] * (mu - s) + [20.0, 16.0][b] * s + [19.0, 11.0][b] * (1.0 - s)
            };
            (0..2).map(|b| nu(b) - [22.0, 17.0][b] * nu(b).ln()).sum()
        };
        let want = 2.0 * (part(mu, s) - part(1.0, 1.0));
        assert!(
            (f - f1 - want).abs() < 1e-10 * (1.0 + want.abs()),
            "mu={mu}: {} vs {want}",
            f - f1
        );
    }
    check_derivatives(&m, &at(&m, &[("mu", 1.3), ("lumi_like", 0.2)]));
    check_derivatives(&m, &at(&m, &[("mu", 0.4), ("lumi_like", -0.5)]));
    // a fit converges to a finite mu and the CLI runs on the file
    let r = gradfit::fit::fit(
        &m,
        m.observed(),
        &gradfit::fit::FitSpec::from_model(&m),
        &Default::default(),
    );
    assert!(r.converged);
    let dir = tempdir("customfunc-cli");
    let path = dir.join("ws.json");
    std::fs::write(&path, ws.to_string()).unwrap();
    let w = path.display().to_string();
    let (code, v, err) = run_gradfit(&["fit", &w, "--json"]);
    assert_eq!(code, 0, "{err}");
    let i = v["par_names"]
        .as_array()
        .unwrap()
        .iter()
        .position(|n| n == "mu")
        .unwrap();
    let mu = v["values"][i].as_f64().unwrap();
    let mu_lib = r.x[m.poi().unwrap()];
    assert!((mu - mu_lib).abs() < 1e-6, "{mu} vs {mu_lib}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_customfunc_in_a_binned_channel_names_the_place() {
    let cases = [
        (
            "mu * kappa",
            "kappa",
            "/channels/0/samples/0/modifiers/0/data/expr",
        ),
        (
            "mu *",
            "cannot parse",
            "/channels/0/samples/0/modifiers/0/data/expr",
        ),
    ];
    for (expr, needle, ptr) in cases {
        let e = compile(&workspace(
            json!({"name": "f", "type": "customfunc", "data": {"expr": expr}}),
            json!([{"name": "mu", "inits": [1.0], "bounds": [[0.0, 10.0]]}]),
        ))
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains(needle) && e.contains(ptr), "{expr}: {e}");
    }
    // a variable without inits/bounds
    let e = compile(&workspace(
        json!({"name": "f", "type": "customfunc", "data": {"expr": "mu"}}),
        json!([{"name": "mu"}]),
    ))
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("'mu'") && e.contains("inits"), "{e}");
    // a rate that is negative at the start point
    let e = compile(&workspace(
        json!({"name": "f", "type": "customfunc", "data": {"expr": "mu - 30"}}),
        json!([{"name": "mu", "inits": [1.0], "bounds": [[0.0, 10.0]]}]),
    ))
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("start point"), "{e}");
}
