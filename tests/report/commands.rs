//! The report commands (`pulls`, `impacts`, `corr`, `yields`): JSON, plots and bad input.

use super::*;

#[test]
fn pulls_command_json_and_plot() {
    let d = tmp("pulls");
    let svg = d.join("pulls.svg");
    let (code, v, err) = gradfit(&["pulls", &ws(), "--json", "--plot", svg.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(v["converged"], true);
    let pars = v["parameters"].as_array().unwrap();
    assert_eq!(pars.len(), 15);
    for p in pars {
        for key in [
            "name",
            "value",
            "error",
            "prefit_sigma",
            "pull",
            "constraint",
        ] {
            assert!(p.get(key).is_some(), "{key} in {p}");
        }
    }
    let mu = pars.iter().find(|p| p["name"] == "mu").unwrap();
    assert_eq!(mu["constraint"], "none");
    assert!(mu["pull"].is_null());
    let jes = pars.iter().find(|p| p["name"] == "jes").unwrap();
    assert_eq!(jes["constraint"], "normal");
    assert_eq!(jes["pull"], jes["value"]); // centre 0, width 1
    // the plot: one label per parameter with a pull (the 12 constrained ones)
    let with_pull: Vec<String> = pars
        .iter()
        .filter(|p| !p["pull"].is_null())
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(with_pull.len(), 12);
    let texts = svg_texts(&svg);
    assert_eq!(count_labels(&texts, &with_pull), 12, "{texts:?}");
    assert_eq!(count_labels(&texts, &["mu".to_string()]), 0);
    // PNG when asked
    let png = d.join("pulls.png");
    let (code, _, err) = gradfit(&["pulls", &ws(), "--plot", png.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    assert!(bytes.len() > 5000);
}

#[test]
fn impacts_command_ranks_and_plots_the_top_parameters() {
    let d = tmp("impacts");
    let svg = d.join("ranking.svg");
    let (code, v, err) = gradfit(&[
        "impacts",
        &ws(),
        "--json",
        "--top",
        "5",
        "--plot",
        svg.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(v["poi"], "mu");
    let pars = v["parameters"].as_array().unwrap();
    assert_eq!(pars.len(), 5);
    assert_eq!(v["n_parameters_ranked"], 14);
    let key = |p: &Value| {
        p["refit_postfit_up"]
            .as_f64()
            .unwrap()
            .abs()
            .max(p["refit_postfit_down"].as_f64().unwrap().abs())
    };
    for p in pars {
        for k in [
            "name",
            "hessian",
            "hessian_prefit",
            "nsbi_gamma",
            "refit_prefit_up",
            "refit_prefit_down",
            "refit_postfit_up",
            "refit_postfit_down",
        ] {
            assert!(p[k].is_string() || p[k].is_number(), "{k} in {p}");
        }
    }
    for w in pars.windows(2) {
        assert!(
            key(&w[0]) >= key(&w[1]),
            "sorted by the largest post-fit impact"
        );
    }
    let names = names_of(&v["parameters"]);
    let texts = svg_texts(&svg);
    assert_eq!(count_labels(&texts, &names), 5, "{texts:?}");
    // labels appear in ranking order
    let order: Vec<&String> = texts.iter().filter(|t| names.contains(t)).collect();
    assert_eq!(order, names.iter().collect::<Vec<_>>());
    // Hessian only: no refit fields; the plot shows 20 rows at most (14 here)
    let svg2 = d.join("hessian.svg");
    let (code, v, err) = gradfit(&[
        "impacts",
        &ws(),
        "--json",
        "--method",
        "hessian",
        "--plot",
        svg2.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let pars = v["parameters"].as_array().unwrap();
    assert_eq!(pars.len(), 14);
    assert!(pars.iter().all(|p| p.get("refit_postfit_up").is_none()));
    assert!(v.get("refits").is_none());
    let hs: Vec<f64> = pars
        .iter()
        .map(|p| p["hessian"].as_f64().unwrap().abs())
        .collect();
    assert!(hs.windows(2).all(|w| w[0] >= w[1]));
    let all = names_of(&v["parameters"]);
    assert_eq!(count_labels(&svg_texts(&svg2), &all), 14);
}

#[test]
fn corr_command_prunes_and_plots() {
    let d = tmp("corr");
    let svg = d.join("corr.svg");
    let (code, v, err) = gradfit(&[
        "corr",
        &ws(),
        "--json",
        "--threshold",
        "0.3",
        "--plot",
        svg.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let names: Vec<String> = v["par_names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect();
    let c = v["correlation"].as_array().unwrap();
    let n = names.len();
    assert!((2..15).contains(&n), "pruned: {names:?}");
    for i in 0..n {
        let row = f64s(&c[i]);
        assert!((row[i] - 1.0).abs() < 1e-12);
        let best = (0..n)
            .filter(|&j| j != i)
            .map(|j| row[j].abs())
            .fold(0.0, f64::max);
        assert!(
            best >= 0.3,
            "{} kept without a correlation >= 0.3",
            names[i]
        );
    }
    // every pruned parameter really has no correlation >= 0.3 (full matrix from `fit`)
    let (_, fitv, _) = gradfit(&["fit", &ws(), "--json"]);
    let all: Vec<String> = fitv["par_names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect();
    let full = fitv["correlation"].as_array().unwrap();
    for pr in v["pruned"].as_array().unwrap() {
        let i = all.iter().position(|x| x == pr.as_str().unwrap()).unwrap();
        let row = f64s(&full[i]);
        assert!(
            (0..all.len())
                .filter(|&j| j != i)
                .all(|j| row[j].abs() < 0.3 + 1e-9)
        );
    }
    assert_eq!(v["pruned"].as_array().unwrap().len() + n, 15);
    // each kept parameter labels a row and a column
    let texts = svg_texts(&svg);
    assert_eq!(count_labels(&texts, &names), 2 * n);
}

#[test]
fn yields_command_tables_json_and_stacked_plots() {
    let d = tmp("yields");
    let (code, v, err) = gradfit(&[
        "yields",
        &ws(),
        "--json",
        "--plot",
        d.to_str().unwrap(),
        "--png",
    ]);
    assert_eq!(code, 0, "{err}");
    for stage in ["prefit", "postfit"] {
        let chans = v[stage].as_array().unwrap();
        assert_eq!(chans.len(), 2);
        for c in chans {
            let name = c["name"].as_str().unwrap();
            let samples = names_of(&c["samples"]);
            let svg = d.join(format!("{name}_{stage}.svg"));
            let texts = svg_texts(&svg);
            // legend: every sample once, plus data and uncertainty
            assert_eq!(count_labels(&texts, &samples), samples.len(), "{texts:?}");
            assert!(texts.iter().any(|t| t == "data"));
            assert!(texts.iter().any(|t| t == "uncertainty"));
            let png = std::fs::read(d.join(format!("{name}_{stage}.png"))).unwrap();
            assert_eq!(&png[..4], b"\x89PNG");
            // totals are the sums of the samples
            let total = f64s(&c["total"]);
            for (b, t) in total.iter().enumerate() {
                let s: f64 = c["samples"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s["yields"][b].as_f64().unwrap())
                    .sum();
                assert!(rel(*t, s) < 1e-12);
            }
        }
    }
    // pre-fit only: no fit, no post-fit section
    let (code, v, err) = gradfit(&["yields", &ws(), "--json", "--prefit"]);
    assert_eq!(code, 0, "{err}");
    assert!(v.get("postfit").is_none() && v.get("prefit").is_some());
    let (code, _, _) = gradfit(&["yields", &ws(), "--prefit", "--postfit"]);
    assert_eq!(code, 2);
}

#[test]
fn report_commands_refuse_bad_input_clearly() {
    let d = tmp("bad");
    // a workspace whose measurement names a POI the model does not have
    let mut w = read(&repo("examples/workspaces/two-channel.json"));
    w["measurements"][0]["config"]["poi"] = Value::from("not_there");
    w["measurements"][0]["config"]["parameters"]
        .as_array_mut()
        .unwrap()
        .retain(|p| p["name"] != "mu");
    let nopoi = d.join("nopoi.json");
    std::fs::write(&nopoi, w.to_string()).unwrap();
    let (code, _, err) = gradfit(&["impacts", nopoi.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no parameter of interest"), "{err}");
    // pulls need no POI
    let (code, _, err) = gradfit(&["pulls", nopoi.to_str().unwrap(), "--json"]);
    assert_eq!(code, 0, "{err}");
    // plot files: extension and folder checked before any work
    let (code, _, err) = gradfit(&["pulls", &ws(), "--plot", "pulls.pdf"]);
    assert_eq!(code, 1);
    assert!(err.contains("must end in .svg or .png"), "{err}");
    let missing = d.join("no/such/dir/rank.svg");
    let (code, _, err) = gradfit(&["impacts", &ws(), "--plot", missing.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("does not exist"), "{err}");
    // usage errors
    let (code, _, _) = gradfit(&["corr", &ws(), "--threshold", "1.5"]);
    assert_eq!(code, 2);
    let (code, _, _) = gradfit(&["impacts", &ws(), "--top", "0"]);
    assert_eq!(code, 2);
    let (code, _, _) = gradfit(&["impacts", &ws(), "--method", "magic"]);
    assert_eq!(code, 2);
    // a best fit that did not converge: results printed, exit status 3
    let (code, v, err) = gradfit(&["pulls", &ws(), "--json", "--max-iter", "1"]);
    assert_eq!(code, 3, "{err}");
    assert_eq!(v["converged"], false);
    assert_eq!(v["parameters"].as_array().unwrap().len(), 15);
    assert!(err.contains("did not converge"), "{err}");
    let (code, v, _) = gradfit(&["impacts", &ws(), "--json", "--max-iter", "1"]);
    assert_eq!(code, 3);
    assert_eq!(v["converged"], false);
}
