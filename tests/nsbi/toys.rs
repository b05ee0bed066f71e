//! Bootstrap toys (seeds, threads, shards) and the coverage of Neyman belts and of the profile construction.

use super::*;

#[test]
fn bootstrap_toys_are_reproducible_across_threads_and_shards() {
    let ws = repo("tests/data/nsbi/example/nsbi.json");
    let dir = tempdir("toys");
    let run = |args: &[&str], threads: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_gradfit"))
            .args(args)
            .env("RAYON_NUM_THREADS", threads)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let f = |n: &str| dir.join(n).display().to_string();
    let w = ws.display().to_string();
    // the same 24 toys: two batch sizes and thread counts, and two shards
    let toys = |opt: &str, val: &str, out: &str, threads: &str| {
        let out = f(out);
        let args = [
            "toys", &w, "--mu", "1", "--n", "24", "--seed", "7", opt, val, "--out", &out,
        ];
        run(&args, threads);
    };
    toys("--batch", "5", "all1.json", "1");
    toys("--batch", "16", "all2.json", "2");
    toys("--shard", "0/2", "s0.json", "2");
    toys("--shard", "1/2", "s1.json", "1");
    run(
        &[
            "merge",
            &f("s0.json"),
            &f("s1.json"),
            "--out",
            &f("merged.json"),
        ],
        "1",
    );
    let recs = |n: &str| {
        let v = common::read(&dir.join(n));
        (v["sig_bkg"].clone(), v["bkg"].clone())
    };
    let a = recs("all1.json");
    assert_eq!(a.0.as_array().unwrap().len(), 24);
    assert_eq!(a, recs("all2.json"));
    assert_eq!(a, recs("merged.json"));
    let other = std::process::Command::new(env!("CARGO_BIN_EXE_gradfit"))
        .args([
            "toys",
            &w,
            "--mu",
            "1",
            "--n",
            "24",
            "--seed",
            "8",
            "--out",
            &f("seed8.json"),
        ])
        .output()
        .unwrap();
    assert!(other.status.success());
    assert_ne!(a, recs("seed8.json"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Coverage of belts at three POI values. `n_test` pseudo-experiments at the
/// truth; the belt from `n_belt` toys. Standard errors include the belt's own
/// toy statistics: var = cl (1 - cl) (1 / n_test + 1 / n_belt).
fn coverage_at_truth(n_belt: u32, n_test: u32) -> Vec<(f64, f64, f64, f64)> {
    let m = example();
    let p = Problem::new(&m, m.observed()).unwrap();
    let opts = FitOptions {
        covariance: false,
        ..FitOptions::default()
    };
    let mut out = Vec::new();
    for (j, mu) in [0.5, 1.0, 2.0].into_iter().enumerate() {
        let mut truth = m.init().to_vec();
        truth[p.poi] = mu;
        let generator = m.generator(&truth);
        let mut free = p.spec.clone();
        free.init.copy_from_slice(&truth);
        let fixed = free.clone().fix(p.poi, mu);
        let t = |seed: u64, n: u32| {
            let mut v: Vec<f64> = belt_toys(&p, &generator, &free, &fixed, seed, j, 0..n, &opts)
                .unwrap()
                .into_iter()
                .flatten()
                .collect();
            v.sort_by(f64::total_cmp);
            v
        };
        let (belt, test) = (t(11, n_belt), t(12, n_test));
        assert!(belt.len() as u32 >= n_belt * 99 / 100 && test.len() as u32 >= n_test * 99 / 100);
        for cl in [0.6827, 0.9545] {
            let c = critical_value(&belt, cl);
            let (cov, _) = neyman::coverage(&test, c);
            let se = (cl * (1.0 - cl) * (1.0 / test.len() as f64 + 1.0 / belt.len() as f64)).sqrt();
            out.push((mu, cl, cov, se));
        }
    }
    out
}

#[test]
fn neyman_belts_cover_at_three_poi_values() {
    for (mu, cl, cov, se) in coverage_at_truth(1000, 1000) {
        assert!(
            (cov - cl).abs() < 2.0 * se,
            "mu {mu}, cl {cl}: coverage {cov} (2 SE = {})",
            2.0 * se
        );
    }
}

/// The full profile construction (a belt per pseudo-experiment, drawn at the
/// nuisance parameters profiled on it), reduced sizes; the full size
/// (`-- --ignored`) is long and was not run for docs/nsbi.md.
fn profile_construction_coverage(
    m: &CombinedModel,
    n_exp: u32,
    n_toys: u32,
) -> Vec<(f64, f64, f64, f64)> {
    let opts = FitOptions::default();
    let mut out = Vec::new();
    for mu in [0.5, 1.0, 2.0] {
        let mut truth = m.init().to_vec();
        truth[0] = mu;
        let generator = m.generator(&truth);
        let mut hits = [0u32; 2];
        let mut n = 0u32;
        for e in 0..n_exp {
            let data = m.sample(&generator, 99, e, 3);
            let p = Problem::new(m, &data).unwrap();
            let s = NeymanSettings {
                grid: vec![mu],
                n_toys,
                cls: vec![0.6827, 0.9545],
                seed: 1000 + e as u64,
                batch: 256,
            };
            let Ok(r) = neyman::neyman(&p, &s, &opts, false, &|_, _| {}) else {
                continue;
            };
            let pt = &r.points[0];
            if !pt.converged {
                continue;
            }
            n += 1;
            for q in 0..2 {
                hits[q] += (pt.t_obs <= pt.critical[q]) as u32;
            }
        }
        for (q, cl) in [0.6827, 0.9545].into_iter().enumerate() {
            let cov = hits[q] as f64 / n as f64;
            let se = (cl * (1.0 - cl) * (1.0 / n as f64 + 1.0 / n_toys as f64)).sqrt();
            eprintln!(
                "mu {mu} cl {cl}: coverage {cov:.4} +- {se:.4} ({n} of {n_exp} pseudo-experiments)"
            );
            out.push((mu, cl, cov, se));
        }
    }
    out
}

#[test]
fn profile_construction_covers_reduced_size() {
    for (mu, cl, cov, se) in profile_construction_coverage(&example(), 100, 100) {
        assert!(
            (cov - cl).abs() < 2.0 * se,
            "mu {mu}, cl {cl}: coverage {cov} (2 SE = {})",
            2.0 * se
        );
    }
}

/// The example problem with a reference sample of 20,000 events (the
/// committed example's 400 do not close to the per-process yields well
/// enough for a full-size coverage test: docs/nsbi.md, "Tests").
fn example_large_reference() -> CombinedModel {
    use gradfit::model::nsbi::synth::OffShell;
    let dir = tempdir("large-reference");
    let model = OffShell::default();
    let obs = model.observed(1.0, 1);
    let (rx, rw) = model.reference_sample(20_000, 1001);
    let ws = model.write_workspace(&dir, &obs, (&rx, &rw)).unwrap();
    load(&ws).unwrap()
}

#[test]
#[ignore = "full size (1000 pseudo-experiments x 1000 toys at three POI values, 20,000-event reference sample): about an hour on 2 cores; run with -- --ignored --nocapture"]
fn profile_construction_covers_full_size() {
    let m = example_large_reference();
    for (mu, cl, cov, se) in profile_construction_coverage(&m, 1000, 1000) {
        println!("mu {mu} cl {cl}: coverage {cov:.4} +- {se:.4}");
        assert!(
            (cov - cl).abs() < 2.0 * se,
            "mu {mu}, cl {cl}: coverage {cov} (2 SE = {})",
            2.0 * se
        );
    }
}
