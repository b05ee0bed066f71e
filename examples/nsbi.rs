//! An off-shell-like NSBI analysis with analytic densities, so that every
//! per-event ratio is exact (two-dimensional Gaussians for S and B, a
//! destructive interference `-2 k sqrt(lambda_S lambda_B)`, one yield and one
//! shape systematic; see `gradfit::model::nsbi::synth`).
//!
//! `cargo run --release --example nsbi -- [--out DIR] [--seed S] [--ref N] [--toys K]`
//!
//! Writes the NSBI workspace and its arrays, and the 15-bin histogram
//! analysis of the same events (bins of x_1), reads both back through the
//! workspace reader, fits, scans mu, builds the Neyman belts of the NSBI
//! likelihood from bootstrap toys of the reference sample, and compares the
//! intervals.

use gradfit::fit::{FitOptions, FitSpec};
use gradfit::infer::Problem;
use gradfit::infer::neyman::{NeymanSettings, neyman, polish_scan, scan_interval};
use gradfit::infer::neyman_plot::BeltPlot;
use gradfit::infer::scan::profile_scan;
use gradfit::model::nsbi::synth::OffShell;
use gradfit::model::{CombinedModel, Likelihood};
use std::path::PathBuf;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn scan(m: &CombinedModel, grid: &[f64]) -> gradfit::Result<Vec<(f64, f64)>> {
    let poi = m.poi().expect("POI");
    let p = Problem::new(m, m.observed())?;
    let mut s = profile_scan(
        &gradfit::fit::Cpu,
        m,
        m.observed(),
        &FitSpec::from_model(m),
        poi,
        grid,
        &FitOptions::default(),
    )?;
    polish_scan(&p, &mut s, &FitOptions::default())?;
    Ok(s.points
        .iter()
        .map(|p| (p.value, p.delta_twice_nll))
        .collect())
}

fn main() -> gradfit::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let out = PathBuf::from(arg(&args, "--out").unwrap_or_else(|| "target/nsbi-example".into()));
    let seed: u64 = arg(&args, "--seed")
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let n_ref: usize = arg(&args, "--ref")
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000);
    let toys: u32 = arg(&args, "--toys")
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let mu_true = 1.0;

    let model = OffShell::default();
    let obs = model.observed(mu_true, seed);
    let (rx, rw) = model.reference_sample(n_ref, seed + 1000);
    let ws = model.write_workspace(&out, &obs, (&rx, &rw))?;
    let edges: Vec<f64> = (0..=15).map(|i| -3.0 + 6.0 * i as f64 / 15.0).collect();
    let hist_ws = model.write_histogram_workspace(&out, &obs, &edges)?;
    println!(
        "{} observed events (expected {:.1} at mu = {mu_true}); reference sample {n_ref} events",
        obs.len(),
        model.nu(mu_true)
    );
    println!("wrote {} and {}", ws.display(), hist_ws.display());

    let load = |p: &PathBuf| -> gradfit::Result<CombinedModel> {
        let v = gradfit::workspace::read_json(p)?;
        gradfit::model::load_other(
            gradfit::model::Format::Nsbi,
            &v,
            &p.display().to_string(),
            p.parent().unwrap_or(&out),
        )
    };
    let nsbi = load(&ws)?;
    let hist = load(&hist_ws)?;
    // closure of the reweighted reference sample, per process (from `inspect`'s description)
    for c in nsbi.describe()["parts"][0]["diagnostics"]["closure"]
        .as_array()
        .into_iter()
        .flatten()
    {
        println!(
            "closure {:>3}: nu = {:8.3}, reweighted reference sample {:8.3} (ratio {:.4} +- {:.4})",
            c["process"].as_str().unwrap_or(""),
            c["nu"].as_f64().unwrap_or(f64::NAN),
            c["reweighted"].as_f64().unwrap_or(f64::NAN),
            c["ratio"].as_f64().unwrap_or(f64::NAN),
            c["ratio_error"].as_f64().unwrap_or(f64::NAN)
        );
    }
    let fit = |m: &CombinedModel| {
        gradfit::fit::fit(
            m,
            m.observed(),
            &FitSpec::from_model(m),
            &FitOptions::default(),
        )
    };
    for (name, m) in [("NSBI", &nsbi), ("histogram", &hist)] {
        let f = fit(m);
        println!(
            "{name:>9} fit: {} = {:.4} +- {:.4} (Hessian), twice_nll {:.4}, {} iterations",
            m.par_names()[0],
            f.x[0],
            f.errors[0],
            f.twice_nll,
            f.iterations
        );
    }
    let grid: Vec<f64> = (0..=60).map(|i| i as f64 * 0.05).collect();
    let (s1, s2) = (scan(&nsbi, &grid)?, scan(&hist, &grid)?);
    println!("\n   mu   t_NSBI   t_hist");
    for (a, b) in s1.iter().zip(&s2).step_by(4) {
        println!("{:5.2} {:8.3} {:8.3}", a.0, a.1, b.1);
    }
    let w = |s: &[(f64, f64)]| {
        let (lo, hi) = scan_interval(s, 1.0);
        (lo.unwrap_or(0.0), hi.unwrap_or(f64::NAN))
    };
    let (a, b) = (w(&s1), w(&s2));
    println!(
        "\n68% profile-likelihood intervals: NSBI [{:.3}, {:.3}] (width {:.3}); histogram [{:.3}, {:.3}] (width {:.3})",
        a.0,
        a.1,
        a.1 - a.0,
        b.0,
        b.1,
        b.1 - b.0
    );

    if toys > 0 {
        let p = Problem::new(&nsbi, nsbi.observed())?;
        let settings = NeymanSettings {
            grid: (0..=12).map(|i| i as f64 * 0.25).collect(),
            n_toys: toys,
            cls: vec![0.6827, 0.9545],
            seed,
            batch: 256,
        };
        let t0 = std::time::Instant::now();
        let n = neyman(&p, &settings, &FitOptions::default(), false, &|_, _| {})?;
        println!(
            "\nNeyman belts ({} toys per point, {:.1} s):",
            toys,
            t0.elapsed().as_secs_f64()
        );
        for iv in &n.intervals {
            println!("  {:.2}% interval: {:?}", 100.0 * iv.cl, iv.segments);
        }
        let plot = out.join("belts.svg");
        gradfit::report::plot::write(
            &BeltPlot {
                neyman: n,
                title: "NSBI off-shell example: Neyman belts".into(),
            },
            &plot,
        )?;
        println!("  plot: {}", plot.display());
    }
    Ok(())
}
