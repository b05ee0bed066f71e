//! The minimiser's stress corpus (see `corpus.rs` and docs/robustness.md):
//!
//! ```sh
//! cargo run --release --example stress -- [--large] [--before] [--refs FILE] [--dump DIR] [--only ID] [NAME...]
//! ```
//!
//! NAME: shared workspaces (`GRADFIT_SHARED`, default ../shared) by name, or
//! `two-channel` and `negative-yields` from examples/workspaces; default all.
//! `--before` runs the minimiser and likelihood as they were before the
//! robustness work (no trust-region escalation, no extension of the Poisson
//! terms outside pyhf's domain). Prints per workspace how many fits converged
//! and how many stalled, and how far each reached minimum is from the best one
//! found for the same problem (and from the reference minima in FILE).
#[path = "corpus.rs"]
mod corpus;

use gradfit::fit::{FitOptions, FitStatus};
use gradfit::model::ModelOptions;
use std::collections::BTreeMap;
use std::path::PathBuf;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut size = corpus::CI;
    let mut before = false;
    let mut refs: Option<serde_json::Value> = None;
    let mut dump: Option<PathBuf> = None;
    let mut names = Vec::new();
    let mut only: Option<String> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--large" => size = corpus::LARGE,
            "--before" => before = true,
            "--refs" => {
                let p = it.next().expect("--refs FILE");
                refs = Some(serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap());
            }
            "--dump" => dump = Some(PathBuf::from(it.next().expect("--dump DIR"))),
            "--only" => only = Some(it.next().expect("--only SUBSTRING").clone()),
            n => names.push(n.to_string()),
        }
    }
    let shared = PathBuf::from(std::env::var("GRADFIT_SHARED").unwrap_or("../shared".into()));
    if names.is_empty() {
        names = vec![
            "two-channel",
            "negative-yields",
            "atlas-susy-2018-31-sbottom-regionA",
            "atlas-susy-2018-04-staus",
            "atlas-susy-2019-09-3l-offshell",
            "atlas-tttt",
        ]
        .into_iter()
        .map(String::from)
        .collect();
    }
    let mopts = ModelOptions {
        strict_domain: before,
        ..Default::default()
    };
    let fopts = FitOptions {
        robust: !before,
        covariance: false,
        ..Default::default()
    };
    let mut totals = BTreeMap::<&str, usize>::new();
    for name in &names {
        let ws = if name == "two-channel" || name == "negative-yields" {
            let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("examples/workspaces")
                .join(format!("{name}.json"));
            serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
        } else {
            corpus::shared_workspace(&shared, name)
        };
        let mut c = corpus::build(name, ws, size, &mopts);
        if let Some(o) = &only {
            c.cases.retain(|k| k.id.contains(o.as_str()));
        }
        let t0 = std::time::Instant::now();
        let r = corpus::run(&c, &fopts);
        let dt = t0.elapsed().as_secs_f64();
        let best = corpus::best_by_key(&c, &r);
        let mut count = BTreeMap::<String, usize>::new();
        let mut worst: f64 = 0.0;
        let mut worst_ref: f64 = 0.0;
        let mut n_ref = 0;
        let mut trust = 0;
        for (case, res) in c.cases.iter().zip(&r) {
            *count.entry(format!("{:?}", res.status)).or_default() += 1;
            trust += usize::from(res.trust_iterations > 0);
            if res.trust_iterations > 0 && std::env::var_os("STRESS_SHOW").is_some() {
                eprintln!(
                    "  {}: trust region for {} of {} iterations, {:?}",
                    case.id, res.trust_iterations, res.iterations, res.status
                );
            }
            if res.converged {
                let d = res.twice_nll - best[case.key()];
                if d > 1e-4 {
                    eprintln!("  {}: {:.6} above the best fit of its problem", case.id, d);
                    if std::env::var_os("STRESS_SHOW").is_some() {
                        show(&c, &r, case, res);
                    }
                }
                worst = worst.max(d);
            } else {
                eprintln!(
                    "  {}: {:?} after {} iterations, twice_nll {} edm {:e}",
                    case.id, res.status, res.iterations, res.twice_nll, res.edm
                );
            }
            if let Some(rf) = refs
                .as_ref()
                .and_then(|v| v["cases"][case.key()]["twice_nll"].as_f64())
            {
                n_ref += 1;
                let d = if res.converged {
                    (res.twice_nll - rf).abs()
                } else {
                    f64::INFINITY
                };
                if d > 1e-4 {
                    eprintln!(
                        "  {}: {} vs reference {rf} ({:?})",
                        case.id, res.twice_nll, res.status
                    );
                }
                worst_ref = worst_ref.max(d);
            }
        }
        let n = r.len();
        let ok = r.iter().filter(|x| x.converged).count();
        let evals: usize = r.iter().map(|x| x.n_evals).sum();
        println!(
            "{name}: {n} fits in {dt:.2} s, {evals} evaluations, {ok} converged ({:.2}% not), {trust} used the trust region; \
             statuses {count:?}; largest distance to the best minimum of a problem {worst:.2e}{}",
            100.0 * (n - ok) as f64 / n as f64,
            if n_ref > 0 {
                format!("; {n_ref} compared with references, largest difference {worst_ref:.2e}")
            } else {
                String::new()
            }
        );
        *totals.entry("fits").or_default() += n;
        *totals.entry("converged").or_default() += ok;
        *totals.entry("stalled").or_default() +=
            r.iter().filter(|x| x.status == FitStatus::Stalled).count();
        if let Some(dir) = &dump {
            std::fs::create_dir_all(dir).unwrap();
            let p = dir.join(format!("{name}.json"));
            std::fs::write(&p, serde_json::to_vec(&corpus::dump(&c, &r)).unwrap()).unwrap();
            eprintln!("  wrote {}", p.display());
        }
    }
    println!("total: {totals:?}");
}

/// Print the parameters that differ most between a fit and the best fit of its problem.
fn show(
    c: &corpus::Corpus,
    r: &[gradfit::fit::FitResult],
    case: &corpus::Case,
    res: &gradfit::fit::FitResult,
) {
    let (k, b) = c
        .cases
        .iter()
        .zip(r)
        .filter(|(k, b)| k.key() == case.key() && b.converged)
        .min_by(|a, b| a.1.twice_nll.total_cmp(&b.1.twice_nll))
        .unwrap();
    let m = &c.variants[case.variant].model;
    let mut d: Vec<(f64, usize)> = (0..res.x.len())
        .map(|i| ((res.x[i] - b.x[i]).abs(), i))
        .collect();
    d.sort_by(|a, b| b.0.total_cmp(&a.0));
    eprintln!(
        "    best: {} ({}), iterations {} vs {}",
        k.id, b.twice_nll, res.iterations, b.iterations
    );
    let d0 = &c.datasets[case.data].2;
    eprintln!(
        "    domain at best: {:?}; at this fit: {:?}",
        m.domain_issue(&b.x, d0),
        m.domain_issue(&res.x, d0)
    );
    let mut strict = m.clone();
    strict.strict_domain = true;
    eprintln!(
        "    strict twice_nll at best {} at this fit {}",
        strict.twice_nll(&b.x, d0),
        strict.twice_nll(&res.x, d0)
    );
    for &(_, i) in d.iter().take(8) {
        eprintln!(
            "    {:40} {:12.6} vs best {:12.6} bounds {:?} start {:.4}",
            m.par_names[i], res.x[i], b.x[i], m.bounds[i], case.spec.init[i]
        );
    }
}
