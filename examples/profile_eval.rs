//! Kernel timing on the synthetic 50x4 model: `cargo run --release --example profile_eval -- [N]`.
use gradfit::model::Likelihood;
fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(20000);
    let m = gradfit::synthetic::shapesys_model(50, 4);
    let mut s = m.scratch();
    let p = m.n_pars();
    let mut gr = vec![0.0; p];
    let mut hb = vec![0.0; p * p];
    let x: Vec<f64> = m.init.iter().map(|v| v * 1.01).collect();
    let t0 = std::time::Instant::now();
    for _ in 0..n {
        m.eval_block(
            &x,
            m.observed(),
            &mut s,
            Some(&mut gr),
            Some(&mut hb),
            false,
        );
    }
    println!(
        "eval_block with Hessian: {:.2} us",
        t0.elapsed().as_secs_f64() * 1e6 / n as f64
    );
    let t0 = std::time::Instant::now();
    for _ in 0..n {
        m.eval_block(&x, m.observed(), &mut s, None, None, false);
    }
    println!(
        "value only: {:.2} us",
        t0.elapsed().as_secs_f64() * 1e6 / n as f64
    );
}
