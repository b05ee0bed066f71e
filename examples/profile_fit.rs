//! Repeated fits of one workspace, for profiling:
//! `cargo run --release --example profile_fit -- WS [PATCH|-] [N] [POI_VALUE]`.
use gradfit::fit::{self, FitOptions, FitSpec};
use gradfit::model::{HistFactoryModel, ModelOptions};
use gradfit::workspace::{ReadOptions, load_patch};
use std::path::Path;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let ws = args
        .get(1)
        .expect("usage: profile_fit WS [PATCH|-] [N] [POI_VALUE]");
    let patches = match args.get(2) {
        Some(p) if p != "-" => vec![load_patch(Path::new(p)).expect("patch")],
        _ => vec![],
    };
    let n: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(100);
    let m = HistFactoryModel::load(
        Path::new(ws),
        &patches,
        &ReadOptions::default(),
        &ModelOptions::default(),
    )
    .expect("model");
    let mut spec = FitSpec::from_model(&m);
    if let Some(mu) = args.get(4).and_then(|s| s.parse::<f64>().ok()) {
        spec = spec.fix(m.poi.expect("POI"), mu);
    }
    let t0 = std::time::Instant::now();
    let mut it = 0;
    for _ in 0..n {
        let r = fit::fit(&m, m.observed(), &spec, &FitOptions::default());
        it += r.iterations;
    }
    let dt = t0.elapsed().as_secs_f64() / n as f64;
    println!(
        "{:.3} ms per fit, {:.1} iterations",
        dt * 1e3,
        it as f64 / n as f64
    );
}
