//! Fit an HS3 model and draw its unbinned channels (the plots of
//! `gradfit yields --plot`), e.g.
//! `cargo run --release --example unbinned_plot -- tests/refs/unbinned/dscb_cheb.json /tmp/plots`.

use gradfit::fit::{FitOptions, FitSpec, fit};
use gradfit::model::Likelihood;
use gradfit::model::unbinned::load_hs3;
use gradfit::report::plot::unbinned::write_unbinned_plots;
use std::path::Path;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        eprintln!("usage: unbinned_plot MODEL.json OUTDIR");
        std::process::exit(2);
    }
    let p = Path::new(&args[1]);
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p).expect("read")).expect("json");
    let m = load_hs3(&v, &args[1], p.parent().unwrap_or(Path::new(".")), None).expect("model");
    let r = fit(
        &m,
        m.observed(),
        &FitSpec::from_model(&m),
        &FitOptions::default(),
    );
    let out = Path::new(&args[2]);
    std::fs::create_dir_all(out).expect("output folder");
    for f in
        write_unbinned_plots(&m, &r.x, m.observed(), 50, "post-fit", out, "", "png").expect("plots")
    {
        println!("{}", f.display());
    }
}
