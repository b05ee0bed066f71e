//! Bad HS3 input with the JSON location named, and the yields plot of an unbinned channel.

use super::*;

/// A minimal valid document to break in the bad-input tests.
fn good_doc() -> Value {
    json!({
        "metadata": {"hs3_version": "0.2"},
        "distributions": [
            {"name": "model", "type": "mixture_dist", "summands": ["g", "e"], "coefficients": ["f"]},
            {"name": "g", "type": "gaussian_dist", "x": "x", "mean": "m", "sigma": "s"},
            {"name": "e", "type": "exponential_dist", "x": "x", "c": "c"}
        ],
        "functions": [{"name": "s", "type": "generic_function", "expression": "w * 2"}],
        "data": [{"name": "d", "type": "unbinned", "axes": [{"name": "x", "min": 0.0, "max": 10.0}],
                  "entries": [[1.0], [4.5], [5.2], [9.0]]}],
        "likelihoods": [{"name": "L", "distributions": ["model"], "data": ["d"]}],
        "parameter_points": [{"name": "default_values", "parameters": [
            {"name": "f", "value": 0.3}, {"name": "m", "value": 5.0}, {"name": "w", "value": 0.5}, {"name": "c", "value": 0.2}]}]
    })
}

fn load_err(doc: &Value) -> String {
    match load_hs3(doc, "bad.json", Path::new("."), None) {
        Ok(_) => panic!("accepted: {doc}"),
        Err(e) => e.to_string(),
    }
}

/// An edit of the good document, the JSON location and the words its error must contain.
type BadCase = (Box<dyn Fn(&mut Value)>, &'static str, &'static str);

#[test]
fn bad_input_names_the_json_location() {
    assert!(load_hs3(&good_doc(), "good.json", Path::new("."), None).is_ok());
    let cases: Vec<BadCase> = vec![
        (
            Box::new(|d| d["distributions"][2]["type"] = json!("argus_dist")),
            "/distributions/2/type",
            "argus_dist",
        ),
        (
            Box::new(|d| d["distributions"][1]["mean"] = json!("nowhere_fn")),
            "",
            "",
        ),
        (
            Box::new(|d| d["distributions"][0]["summands"][1] = json!("missing")),
            "/distributions/0/summands/1",
            "'missing'",
        ),
        (
            Box::new(|d| d["functions"][0]["expression"] = json!("w * s")),
            "/functions/0/expression",
            "cycle",
        ),
        (
            Box::new(|d| d["distributions"][0]["summands"][0] = json!("model")),
            "/distributions/0/summands/0",
            "cycle",
        ),
        (
            Box::new(|d| d["distributions"][2]["x"] = json!("y")),
            "/distributions/2",
            "'y'",
        ),
        (
            Box::new(|d| d["data"][0]["entries"][2] = json!([11.0])),
            "/data/0/entries/2",
            "outside the axis range",
        ),
        (
            Box::new(|d| d["data"][0]["entries"][1] = json!([1.0, 2.0])),
            "/data/0/entries/1",
            "1 numbers",
        ),
        (
            Box::new(|d| d["data"][0]["weights"] = json!([1.0, 2.0])),
            "/data/0/weights",
            "2 weights for 4",
        ),
        (
            Box::new(|d| d["parameter_points"][0]["parameters"][0]["value"] = json!(1.3)),
            "/distributions/0/coefficients",
            "more than one",
        ),
        (
            Box::new(
                |d| d["distributions"][2] = json!({"name": "e", "type": "polynomial_dist", "x": "x", "coefficients": [-1.0, 0.1]}),
            ),
            "/distributions/2",
            "not > 0",
        ),
        (
            Box::new(|d| d["functions"][0]["expression"] = json!("w * * 2")),
            "/functions/0/expression",
            "offset",
        ),
        (
            Box::new(|d| d["functions"][0]["type"] = json!("CMS::process_normalization")),
            "/functions/0/type",
            "CMS::process_normalization",
        ),
        (
            Box::new(|d| d["likelihoods"][0]["data"][0] = json!("nodata")),
            "/likelihoods/0/data/0",
            "'nodata'",
        ),
        (
            Box::new(|d| d["distributions"][1]["sigma"] = json!("x")),
            "/distributions/1",
            "observable 'x'",
        ),
        (
            Box::new(|d| d["distributions"][0]["coefficients"] = json!(["f", "f", "f"])),
            "/distributions/0/coefficients",
            "3 coefficients for 2",
        ),
        (
            Box::new(|d| d["data"][0]["axes"][0]["max"] = json!(-1.0)),
            "/data/0/axes/0",
            "not below",
        ),
        (
            Box::new(|d| d["distributions"][1]["name"] = json!("e")),
            "/distributions/2/name",
            "twice",
        ),
    ];
    for (k, (edit, loc, what)) in cases.iter().enumerate() {
        let mut d = good_doc();
        edit(&mut d);
        if loc.is_empty() {
            // an unknown name in a parameter slot is a parameter: it needs a value
            let e = load_err(&d);
            assert!(
                e.contains("nowhere_fn") && e.contains("no value"),
                "case {k}: {e}"
            );
            continue;
        }
        let e = load_err(&d);
        assert!(
            e.contains(&format!("at {loc}:")),
            "case {k}: '{e}' does not name {loc}"
        );
        assert!(e.contains(what), "case {k}: '{e}' does not say '{what}'");
    }
    // a density that is not positive at an event: a Chebychev that dips below zero
    let mut d = good_doc();
    d["distributions"][2] =
        json!({"name": "e", "type": "chebychev_dist", "x": "x", "coefficients": [1.5]});
    let e = load_err(&d);
    assert!(e.contains("not > 0") && e.contains("event 0"), "{e}");
}

#[test]
fn bad_file_exits_non_zero_with_the_location() {
    let dir = std::env::temp_dir().join(format!("gradfit-unbinned-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut d = good_doc();
    d["distributions"][2]["type"] = json!("argus_dist");
    let path = dir.join("bad.json");
    std::fs::write(&path, d.to_string()).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gradfit"))
        .args(["fit", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/distributions/2/type") && err.contains("argus_dist"),
        "{err}"
    );
    let good = dir.join("good.json");
    std::fs::write(&good, good_doc().to_string()).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gradfit"))
        .args(["fit", good.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["par_names"], json!(["f", "m", "w", "c"]));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn yields_plot_of_an_unbinned_channel() {
    use gradfit::report::plot::unbinned::{unbinned_plots, write_unbinned_plots};
    let m = load_ref_model("product_2d");
    let res = do_fit(&m);
    let plots = unbinned_plots(&m, &res.x, m.observed(), 40, "post-fit");
    assert_eq!(plots.len(), 2, "one plot per observable");
    let nsig = res.x[m.par_index("nsig").unwrap()];
    let nbkg = res.x[m.par_index("nbkg").unwrap()];
    for p in &plots {
        assert_eq!(p.edges.len(), 41);
        let n_data: f64 = p.data.iter().sum();
        let n_exp: f64 = p.expected.iter().sum();
        let ev = m.observed().parts[0]
            .downcast_ref::<gradfit::model::unbinned::Events>()
            .unwrap();
        assert_eq!(
            n_data,
            ev.data.len() as f64,
            "{}: every event in a bin",
            p.title
        );
        // the expected events over the range are the fitted yields (extended model)
        assert!(
            (n_exp - (nsig + nbkg)).abs() < 1e-9 * n_exp,
            "{}: {n_exp}",
            p.title
        );
        // at the best fit of an extended model the total equals the number of events
        assert!(
            (n_exp - n_data).abs() < 1e-6 * n_data,
            "{}: {n_exp} vs {n_data}",
            p.title
        );
        assert_eq!(p.curve_components.len(), 2);
        // the curves integrate to the yields (per bin width, 400 midpoints)
        let dx = (p.edges[40] - p.edges[0]) / 400.0;
        let bw = (p.edges[40] - p.edges[0]) / 40.0;
        let integral: f64 = p.curve_total.iter().map(|y| y * dx / bw).sum();
        assert!(
            (integral - n_exp).abs() < 1e-3 * n_exp,
            "{}: curve integral {integral}",
            p.title
        );
    }
    let dir = std::env::temp_dir().join(format!("gradfit-ub-plots-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let paths = write_unbinned_plots(
        &m,
        &res.x,
        m.observed(),
        40,
        "post-fit",
        &dir,
        "fit_",
        "svg",
    )
    .unwrap();
    assert_eq!(paths.len(), 2);
    for p in &paths {
        let text = std::fs::read_to_string(p).unwrap();
        let doc = roxmltree::Document::parse(&text).unwrap();
        let texts: Vec<String> = doc
            .descendants()
            .filter(|n| n.is_text())
            .filter_map(|n| n.text().map(str::to_string))
            .collect();
        assert!(
            texts.iter().any(|t| t.contains("post-fit")),
            "{}",
            p.display()
        );
        assert!(texts.iter().any(|t| t.trim() == "pull"), "{texts:?}");
        assert!(texts.iter().any(|t| t.trim() == "sig_x*sig_y"), "{texts:?}");
    }
    let png = write_unbinned_plots(
        &m,
        &res.x,
        m.observed(),
        40,
        "post-fit",
        &dir,
        "fit_",
        "png",
    )
    .unwrap();
    assert!(std::fs::read(&png[0]).unwrap().starts_with(b"\x89PNG"));
    std::fs::remove_dir_all(&dir).ok();
}
