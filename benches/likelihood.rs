//! Criterion benchmarks of the fused kernel and the minimiser on the shared workspaces
//! (GRADFIT_SHARED, default ../shared) and the shipped example.
//!
//! `cargo bench --bench likelihood` ; filter with e.g. `-- tttt/fit`.

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use gradfit::fit::{self, FitOptions, FitSpec};
use gradfit::model::HistFactoryModel;
use std::path::Path;

mod common;

/// The gradfit binary's allocator, so that the load path is measured as the command runs it.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn models() -> Vec<(String, HistFactoryModel)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = vec![(
        "example".to_string(),
        common::load(&root.join("examples/workspaces/two-channel.json"), &[]),
    )];
    let wsdir = common::shared_dir().join("workspaces");
    let Ok(rd) = std::fs::read_dir(&wsdir) else {
        eprintln!(
            "note: {} not found; benchmarking the example only",
            wsdir.display()
        );
        return out;
    };
    let mut names: Vec<String> = rd
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| n.ends_with(".json") && !n.ends_with(".signal-patch.json"))
        .collect();
    names.sort();
    for n in names {
        let stem = n.trim_end_matches(".json");
        if let Some(m) = common::load_shared(stem) {
            let short = stem.replace("atlas-susy-", "").replace("atlas-", "");
            out.push((short, m));
        }
    }
    out
}

fn points(m: &HistFactoryModel, t: usize) -> Vec<f64> {
    // spread around the inits, deterministic
    let p = m.n_pars();
    let mut v = Vec::with_capacity(t * p);
    for k in 0..t {
        for i in 0..p {
            let (lo, hi) = m.bounds[i];
            let s = (((k * 31 + i * 17) % 101) as f64 / 100.0 - 0.5) * 0.2;
            v.push((m.init[i] + s).clamp(lo, hi));
        }
    }
    v
}

fn bench(c: &mut Criterion) {
    for (name, m) in models() {
        let p = m.n_pars();
        let data = m.observed().clone();
        let mut g = c.benchmark_group(name.clone());
        for &t in &[1usize, 1000] {
            let x = points(&m, t);
            let mut f = vec![0.0; t];
            let mut grad = vec![0.0; t * p];
            g.bench_function(format!("twice_nll/T={t}"), |b| {
                b.iter(|| m.eval_batch(&x, &[&data], &mut f, None, None))
            });
            g.bench_function(format!("gradient/T={t}"), |b| {
                b.iter(|| m.eval_batch(&x, &[&data], &mut f, Some(&mut grad), None))
            });
            if t == 1 || p <= 130 {
                let mut h = vec![0.0; t * p * p];
                g.bench_function(format!("hessian/T={t}"), |b| {
                    b.iter(|| m.eval_batch(&x, &[&data], &mut f, Some(&mut grad), Some(&mut h)))
                });
            } else {
                // T=1000 full Hessians of >130 parameters need >100 MB: chunks of 100
                let tc = 100;
                let mut h = vec![0.0; tc * p * p];
                let mut fc = vec![0.0; tc];
                let mut gc = vec![0.0; tc * p];
                g.bench_function(format!("hessian/T={t}"), |b| {
                    b.iter(|| {
                        for c0 in (0..t).step_by(tc) {
                            m.eval_batch(
                                &x[c0 * p..(c0 + tc) * p],
                                &[&data],
                                &mut fc,
                                Some(&mut gc),
                                Some(&mut h),
                            );
                        }
                    })
                });
            }
        }
        let spec = FitSpec::from_model(&m);
        let opts = FitOptions::default();
        g.bench_function("fit/free", |b| {
            b.iter_batched(
                || spec.clone(),
                |s| fit::fit(&m, &data, &s, &opts),
                BatchSize::SmallInput,
            )
        });
        g.finish();
    }
}

/// The load path before a fit: file bytes to a compiled model, as the
/// command line does it (typed parse and validation, then compilation).
fn bench_load(c: &mut Criterion) {
    use gradfit::model::ModelOptions;
    use gradfit::workspace::{ReadOptions, Workspace};
    let path = common::shared_dir().join("workspaces/atlas-susy-2019-09-3l-offshell.json");
    let Ok(bytes) = std::fs::read(&path) else {
        eprintln!("note: {} not found; no load benchmark", path.display());
        return;
    };
    let mut g = c.benchmark_group("load/offshell");
    g.bench_function("parse+validate+compile", |b| {
        b.iter(|| {
            let ws = Workspace::from_bytes(&bytes, "offshell", &ReadOptions::default()).unwrap();
            HistFactoryModel::from_workspace(&ws, &ModelOptions::default(), "offshell").unwrap()
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).warm_up_time(std::time::Duration::from_millis(500)).measurement_time(std::time::Duration::from_secs(2));
    targets = bench, bench_load
}
criterion_main!(benches);
