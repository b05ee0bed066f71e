//! CPU time (not wall time) per evaluation of the large synthetic NSBI channel,
//! for comparisons on a busy machine:
//! `cargo run --release --example nsbi_timing -- [N_EVENTS] [one|all] [REPEATS]`.
use gradfit::model::Likelihood;
use gradfit::model::nsbi::synth_big::{BigSpec, big_model};

fn cpu_seconds() -> f64 {
    // user + system time of this process, from /proc (Linux); 0 elsewhere
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let f: Vec<&str> = s
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let tick = 100.0;
    let ut: f64 = f.get(11).and_then(|x| x.parse().ok()).unwrap_or(0.0);
    let st: f64 = f.get(12).and_then(|x| x.parse().ok()).unwrap_or(0.0);
    (ut + st) / tick
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let n: usize = a.get(1).and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    let all = a.get(2).map(|s| s == "all").unwrap_or(false);
    let reps: usize = a.get(3).and_then(|s| s.parse().ok()).unwrap_or(20);
    let m = big_model(&BigSpec {
        n_events: n,
        n_syst: std::env::var("NSBI_SYST")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(20),
        all_processes: all,
        seed: 1,
    })
    .unwrap();
    let p = m.n_pars();
    let mut x = m.init().to_vec();
    for (i, v) in x.iter_mut().enumerate().skip(1) {
        *v = 0.3 * ((i % 5) as f64 - 2.0) / 2.0;
    }
    let mut s = m.scratch();
    let mut g = vec![0.0; p];
    let mut h = vec![0.0; p * p];
    for order in 0..3 {
        let t0 = cpu_seconds();
        let w0 = std::time::Instant::now();
        for _ in 0..reps {
            match order {
                0 => m.eval(&x, m.observed(), &mut s, None, None),
                1 => m.eval(&x, m.observed(), &mut s, Some(&mut g), None),
                _ => m.eval(&x, m.observed(), &mut s, Some(&mut g), Some(&mut h)),
            };
        }
        println!(
            "order {order}: {:.1} ms CPU, {:.1} ms wall per evaluation",
            1e3 * (cpu_seconds() - t0) / reps as f64,
            1e3 * w0.elapsed().as_secs_f64() / reps as f64
        );
    }
    // a digest of the last evaluation's bits, to check that a kernel change keeps them
    let digest = h.iter().chain(&g).fold(0xcbf2_9ce4_8422_2325u64, |acc, v| {
        (acc ^ v.to_bits()).wrapping_mul(0x100_0000_01b3)
    });
    println!("gradient and Hessian bits: {digest:016x}");
    if a.get(4).map(|s| s == "nofit").unwrap_or(false) {
        return;
    }
    let t0 = cpu_seconds();
    let w0 = std::time::Instant::now();
    let f = gradfit::fit::fit(
        &m,
        m.observed(),
        &gradfit::fit::FitSpec::from_model(&m),
        &Default::default(),
    );
    println!(
        "fit: {} iterations, {} evaluations, {:.1} ms CPU, {:.1} ms wall",
        f.iterations,
        f.n_evals,
        1e3 * (cpu_seconds() - t0),
        1e3 * w0.elapsed().as_secs_f64()
    );
    let start = m.eval(m.init(), m.observed(), &mut s, None, None);
    println!(
        "fit: twice_nll {:.3} at the start, {:.3} at the minimum; minimum at {:?}",
        start,
        f.twice_nll,
        f.x.iter()
            .map(|v| (v * 1e4).round() / 1e4)
            .collect::<Vec<_>>()
    );
}
