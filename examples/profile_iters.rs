//! Iterations, evaluations and time per toy fit of the synthetic model (one thread):
//! `RAYON_NUM_THREADS=1 cargo run --release --example profile_iters -- [REPEATS]`.
use gradfit::fit::{FitOptions, FitSpec, fit_batch};
use gradfit::model::Likelihood;
fn main() {
    let m = gradfit::synthetic::shapesys_model(50, 4);
    let spec = FitSpec::from_model(&m);
    let g = m.generator(&m.init);
    let data: Vec<_> = (0..500).map(|t| m.sample(&g, 1, t, 1)).collect();
    let dref: Vec<_> = data.iter().collect();
    let specs = vec![spec.clone(); 500];
    let opts = FitOptions {
        covariance: false,
        ..Default::default()
    };
    let reps: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let mut best = f64::INFINITY;
    let mut r = Vec::new();
    for _ in 0..reps {
        let t0 = std::time::Instant::now();
        r = fit_batch(&m, &dref, &specs, &opts);
        best = best.min(t0.elapsed().as_secs_f64());
    }
    let it: usize = r.iter().map(|x| x.iterations).sum();
    let ev: usize = r.iter().map(|x| x.n_evals).sum();
    let ok = r.iter().filter(|x| x.converged).count();
    println!(
        "{:.2} iterations, {:.2} evals per fit, {:.1} us per fit (best of {reps}), {ok}/500 converged",
        it as f64 / 500.0,
        ev as f64 / 500.0,
        best * 1e6 / 500.0
    );
}
