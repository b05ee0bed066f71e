//! Write an unbinned benchmark model as an HS3 file plus its events (.npy, the
//! gradfit `entries_file` extension), drawn from the model itself.
//!
//! ```sh
//! cargo run --release --example unbinned_gen -- gauss_expo 1000000 /tmp/ub
//! cargo run --release --example unbinned_gen -- dscb_expo 1000000 /tmp/ub
//! cargo run --release --example unbinned_gen -- product_2d 1000000 /tmp/ub
//! ```
//! Models: `gauss_expo` (extended Gaussian + exponential on [60, 120]),
//! `gauss_expo_toys` (the same with the Gaussian's mean and width const),
//! `dscb_expo` (extended double-sided Crystal Ball + exponential on [60, 120]),
//! `product_2d` (extended mixture of products in two observables with a
//! Gaussian constraint). The events are written to `<dir>/<model>.npy`, the model
//! to `<dir>/<model>.json`.

use gradfit::model::Likelihood;
use gradfit::model::unbinned::{Events, load_hs3};
use serde_json::{Value, json};
use std::io::Write;
use std::path::Path;

/// The HS3 document of a model with `n` expected events.
pub fn model(name: &str, n: f64) -> Option<(Value, Vec<&'static str>)> {
    let fs = 0.2;
    let ax = |n: &str, lo: f64, hi: f64| json!({"name": n, "min": lo, "max": hi});
    let (dists, funcs, aux, axes, pts, obs): (Value, Value, Value, Vec<Value>, Value, Vec<&str>) =
        match name {
            "gauss_expo" | "gauss_expo_toys" => (
                json!([
                    {"name": "model", "type": "mixture_dist", "summands": ["sig", "bkg"], "coefficients": ["nsig", "nbkg"], "extended": true},
                    {"name": "sig", "type": "gaussian_dist", "x": "mass", "mean": "mu", "sigma": "sigma"},
                    {"name": "bkg", "type": "exponential_dist", "x": "mass", "c": "c"}
                ]),
                json!([]),
                json!([]),
                vec![ax("mass", 60.0, 120.0)],
                {
                    // the toy model: the peak's position and width known (const), so
                    // that the background-only fit (signal yield 0) is well posed
                    let k = name == "gauss_expo_toys";
                    json!([{"name": "nsig", "value": fs * n}, {"name": "nbkg", "value": (1.0 - fs) * n},
                       {"name": "mu", "value": 91.0, "const": k}, {"name": "sigma", "value": 2.5, "const": k},
                       {"name": "c", "value": 0.03}])
                },
                vec!["mass"],
            ),
            "dscb_expo" => (
                json!([
                    {"name": "model", "type": "mixture_dist", "summands": ["sig", "bkg"], "coefficients": ["nsig", "nbkg"], "extended": true},
                    {"name": "sig", "type": "crystalball_doublesided_dist", "m": "mass", "m0": "m0", "sigma_L": "sl", "sigma_R": "sr",
                     "alpha_L": "al", "n_L": "nl", "alpha_R": "ar", "n_R": "nr"},
                    {"name": "bkg", "type": "exponential_dist", "x": "mass", "c": "c"}
                ]),
                json!([]),
                json!([]),
                vec![ax("mass", 60.0, 120.0)],
                json!([{"name": "nsig", "value": fs * n}, {"name": "nbkg", "value": (1.0 - fs) * n},
                   {"name": "m0", "value": 91.0}, {"name": "sl", "value": 2.3}, {"name": "sr", "value": 2.8},
                   {"name": "al", "value": 1.3}, {"name": "nl", "value": 3.0}, {"name": "ar", "value": 1.6},
                   {"name": "nr", "value": 5.0}, {"name": "c", "value": 0.03}]),
                vec!["mass"],
            ),
            "product_2d" => (
                json!([
                    {"name": "model", "type": "mixture_dist", "summands": ["sig", "bkg"], "coefficients": ["nsig", "nbkg"], "extended": true},
                    {"name": "sig", "type": "product_dist", "factors": ["sx", "sy"]},
                    {"name": "bkg", "type": "product_dist", "factors": ["bx", "by"]},
                    {"name": "sx", "type": "gaussian_dist", "x": "x", "mean": "mx", "sigma": "wx"},
                    {"name": "sy", "type": "gaussian_dist", "x": "y", "mean": "my", "sigma": "wy"},
                    {"name": "bx", "type": "exponential_dist", "x": "x", "c": "c"},
                    {"name": "by", "type": "chebychev_dist", "x": "y", "coefficients": ["b1"]},
                    {"name": "constr", "type": "gaussian_dist", "x": "nom_theta", "mean": "theta", "sigma": 1.0}
                ]),
                json!([{"name": "wx", "type": "generic_function", "expression": "0.8 * (1 + 0.05 * theta)"}]),
                json!(["constr"]),
                vec![ax("x", 0.0, 10.0), ax("y", -5.0, 5.0)],
                json!([{"name": "nsig", "value": fs * n}, {"name": "nbkg", "value": (1.0 - fs) * n},
                   {"name": "mx", "value": 4.0}, {"name": "my", "value": 0.5}, {"name": "wy", "value": 1.5},
                   {"name": "c", "value": 0.3}, {"name": "b1", "value": 0.2}, {"name": "theta", "value": 0.0},
                   {"name": "nom_theta", "value": 0.0, "const": true}]),
                vec!["x", "y"],
            ),
            _ => return None,
        };
    let doc = json!({
        "metadata": {"hs3_version": "0.2"},
        "distributions": dists,
        "functions": funcs,
        "data": [{"name": "events", "type": "unbinned", "axes": axes, "entries_file": format!("{name}.npy")}],
        "likelihoods": [{"name": "L", "distributions": ["model"], "data": ["events"], "aux_distributions": aux}],
        "parameter_points": [{"name": "default_values", "parameters": pts}],
        "analyses": [{"name": name, "likelihood": "L", "parameters_of_interest": ["nsig"], "init": "default_values"}],
    });
    Some((doc, obs))
}

/// Write an (N, k) little-endian f64 .npy file.
pub fn write_npy(path: &Path, cols: &[Vec<f64>]) -> std::io::Result<()> {
    let n = cols.first().map_or(0, Vec::len);
    let k = cols.len();
    let mut header = format!("{{'descr': '<f8', 'fortran_order': False, 'shape': ({n}, {k}), }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    f.write_all(b"\x93NUMPY\x01\x00")?;
    f.write_all(&(header.len() as u16).to_le_bytes())?;
    f.write_all(header.as_bytes())?;
    for i in 0..n {
        for c in cols {
            f.write_all(&c[i].to_le_bytes())?;
        }
    }
    f.flush()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        eprintln!(
            "usage: unbinned_gen MODEL N DIR   (MODEL: gauss_expo, gauss_expo_toys, dscb_expo, product_2d)"
        );
        std::process::exit(2);
    }
    let n: f64 = args[2].parse().expect("N is a number");
    let dir = Path::new(&args[3]);
    std::fs::create_dir_all(dir).expect("create the output folder");
    let Some((doc, obs)) = model(&args[1], n) else {
        eprintln!("unknown model {}", args[1]);
        std::process::exit(2);
    };
    // draw the events from the model itself: a model with one placeholder event
    let mut seed_doc = doc.clone();
    let placeholder: Vec<f64> = obs
        .iter()
        .map(|o| {
            if *o == "mass" {
                91.0
            } else if *o == "x" {
                4.0
            } else {
                0.5
            }
        })
        .collect();
    seed_doc["data"][0]
        .as_object_mut()
        .unwrap()
        .remove("entries_file");
    seed_doc["data"][0]["entries"] = json!([placeholder]);
    let m = load_hs3(&seed_doc, "gen", dir, None).expect("model");
    let g = m.generator(m.init());
    let toy = m.sample(&g, 20240501, 0, 1);
    let ev = toy.parts[0]
        .downcast_ref::<Events>()
        .expect("unbinned events");
    write_npy(&dir.join(format!("{}.npy", args[1])), &ev.data.cols).expect("write events");
    let text = serde_json::to_string_pretty(&doc).unwrap();
    std::fs::write(dir.join(format!("{}.json", args[1])), text + "\n").expect("write model");
    println!(
        "{} events -> {}",
        ev.data.len(),
        dir.join(format!("{}.json", args[1])).display()
    );
}
