//! Time the passes and the full fit of an unbinned model (warm: the model and
//! its events are loaded first). The CPU time of a thread is counted in
//! scheduler ticks on some machines (steps of 4 ms): the best wall time of the
//! repeated passes is then the finer measure.
//!
//! ```sh
//! cargo run --release --example unbinned_gen -- gauss_expo 1000000 /tmp/ub
//! cargo run --release --example profile_unbinned -- /tmp/ub/gauss_expo.json
//! ```

use gradfit::fit::{FitOptions, FitSpec, fit};
use gradfit::model::Likelihood;
use gradfit::model::unbinned::load_hs3;
use std::path::Path;
use std::time::Instant;

/// CPU time of this thread in seconds (Linux; 0 elsewhere): with
/// RAYON_NUM_THREADS=1 every pass runs on this thread, so this is the time the
/// work takes on one core whatever else the machine runs.
fn cpu() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |ns| ns * 1e-9)
}

fn main() {
    let path = std::env::args()
        .nth(1)
        .expect("usage: profile_unbinned MODEL.json");
    let p = Path::new(&path);
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
    let t0 = Instant::now();
    let m = load_hs3(&v, &path, p.parent().unwrap(), None).unwrap();
    println!("load: {:.1} ms", t0.elapsed().as_secs_f64() * 1e3);
    let n = m.n_pars();
    let mut s = m.scratch();
    let (mut g, mut h) = (vec![0.0; n], vec![0.0; n * n]);
    let theta = m.init().to_vec();
    let reps = 20;
    for (name, mode) in [("value", 0), ("value+grad", 1), ("value+grad+hess", 2)] {
        let (t, mut best, mut best_wall) = (Instant::now(), f64::INFINITY, f64::INFINITY);
        for _ in 0..reps {
            let (c, tw) = (cpu(), Instant::now());
            match mode {
                0 => m.eval(&theta, m.observed(), &mut s, None, None),
                1 => m.eval(&theta, m.observed(), &mut s, Some(&mut g), None),
                _ => m.eval(&theta, m.observed(), &mut s, Some(&mut g), Some(&mut h)),
            };
            best_wall = best_wall.min(tw.elapsed().as_secs_f64());
            best = best.min(cpu() - c);
        }
        println!(
            "{name}: {:.2} ms wall (mean), {:.2} ms wall (best), {:.2} ms cpu of this thread (best of {reps})",
            t.elapsed().as_secs_f64() * 1e3 / reps as f64,
            best_wall * 1e3,
            best * 1e3
        );
    }
    let spec = FitSpec::from_model(&m);
    for _ in 0..3 {
        let (t, c) = (Instant::now(), cpu());
        let r = fit(&m, m.observed(), &spec, &FitOptions::default());
        println!(
            "fit with errors: {:.1} ms wall, {:.1} ms cpu of this thread ({} iterations, {} evaluations, {:?}, twice_nll {})",
            t.elapsed().as_secs_f64() * 1e3,
            (cpu() - c) * 1e3,
            r.iterations,
            r.n_evals,
            r.status,
            r.twice_nll
        );
    }
}
