//! Toy throughput, for profiling: `cargo run --release --example profile_toys -- [WS [PATCH|-]] [N]`
//! (no workspace: the synthetic 50 x 4 shapesys model).
use gradfit::fit::FitOptions;
use gradfit::infer::toys::{ToySettings, run_toys};
use gradfit::infer::{Problem, TestStat};
use gradfit::model::{HistFactoryModel, ModelOptions};
use gradfit::workspace::{ReadOptions, load_patch};
use std::path::Path;

/// The gradfit binary's allocator, so that toys run as the command runs them.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (m, n) = if args.len() >= 3 && !args[1].chars().all(|c| c.is_ascii_digit()) {
        let patches = match args.get(2) {
            Some(p) if p != "-" => vec![load_patch(Path::new(p)).unwrap()],
            _ => vec![],
        };
        let m = HistFactoryModel::load(
            Path::new(&args[1]),
            &patches,
            &ReadOptions::default(),
            &ModelOptions::default(),
        )
        .unwrap();
        (
            m,
            args.get(3).and_then(|s| s.parse().ok()).unwrap_or(200u32),
        )
    } else {
        let m = gradfit::synthetic::shapesys_model(50, 4);
        (
            m,
            args.get(1).and_then(|s| s.parse().ok()).unwrap_or(2000u32),
        )
    };
    let p = Problem::new(&m, m.observed()).unwrap();
    let s = ToySettings {
        mu: 1.0,
        test_stat: TestStat::QTilde,
        n_toys: n,
        seed: 1,
        shard: None,
        batch: 1024,
        model_digest: String::new(),
        toy_max_iter: None,
    };
    let t0 = std::time::Instant::now();
    let r = run_toys(&p, &s, &FitOptions::default(), &|_, _| {}).unwrap();
    let dt = t0.elapsed().as_secs_f64();
    let fits = 4.0 * n as f64;
    let failed = r
        .sig_bkg
        .iter()
        .chain(&r.bkg)
        .filter(|t| t.stat.is_none())
        .count();
    for t in r.sig_bkg.iter().chain(&r.bkg).filter(|t| t.stat.is_none()) {
        eprintln!(
            "  failed toy {}: free {:?} ({}), fixed {:?} ({})",
            t.toy, t.status_free, t.twice_nll_free, t.status_fixed, t.twice_nll_fixed
        );
    }
    println!(
        "{} parameters: {n} toys per hypothesis, {fits} fits in {dt:.3} s = {:.0} fits/s ({failed} failed)",
        m.n_pars(),
        fits / dt
    );
}
