//! Bad input with the place named, and every command on an NSBI workspace.

use super::*;

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
