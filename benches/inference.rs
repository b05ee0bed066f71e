//! Criterion benchmarks of inference: toy fits per second (synthetic 50x4
//! shapesys model, sbottom, tttt) and asymptotic upper limits on the shared
//! workspaces (GRADFIT_SHARED, default ../shared).
//!
//! `cargo bench --bench inference`; the toy groups report fits per second
//! (criterion's "thrpt", elements = fits).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use gradfit::fit::FitOptions;
use gradfit::infer::limits::{LimitMethod, upper_limit};
use gradfit::infer::toys::{ToySettings, run_toys};
use gradfit::infer::{AsymptoticCalculator, Problem, TestStat};
use gradfit::model::HistFactoryModel;

mod common;
use common::load_shared;

fn synthetic() -> HistFactoryModel {
    gradfit::synthetic::shapesys_model(50, 4)
}

/// The gradfit binary's allocator, so that toys are measured as the command runs them.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn toys(c: &mut Criterion) {
    let mut models: Vec<(String, HistFactoryModel, u32)> =
        vec![("synthetic-50x4".into(), synthetic(), 1024)];
    if let Some(m) = load_shared("atlas-susy-2018-31-sbottom-regionA") {
        models.push(("sbottom".into(), m, 128));
    }
    if let Some(m) = load_shared("atlas-tttt") {
        models.push(("tttt".into(), m, 32));
    }
    let mut g = c.benchmark_group("toys");
    g.sample_size(10);
    for (name, m, n) in &models {
        let p = Problem::new(m, m.observed()).unwrap();
        let s = ToySettings {
            mu: 1.0,
            test_stat: TestStat::QTilde,
            n_toys: *n,
            seed: 1,
            shard: None,
            batch: 1024,
            model_digest: String::new(),
            toy_max_iter: None,
        };
        // 2 hypotheses x 2 fits per toy (the 3 fits on the observed data are included in the time)
        g.throughput(Throughput::Elements(4 * *n as u64));
        g.bench_function(name.as_str(), |b| {
            b.iter(|| run_toys(&p, &s, &FitOptions::default(), &|_, _| {}).unwrap())
        });
    }
    g.finish();
}

fn limits(c: &mut Criterion) {
    let mut g = c.benchmark_group("limit");
    g.sample_size(10);
    for name in [
        "atlas-susy-2018-31-sbottom-regionA",
        "atlas-susy-2018-04-staus",
        "atlas-susy-2019-09-3l-offshell",
        "atlas-tttt",
    ] {
        let Some(m) = load_shared(name) else { continue };
        let p = Problem::new(&m, m.observed()).unwrap();
        let (lo, hi) = p.poi_bounds();
        g.bench_function(name, |b| {
            b.iter(|| {
                let calc =
                    AsymptoticCalculator::new(p.clone(), TestStat::QTilde, &FitOptions::default())
                        .unwrap();
                upper_limit(
                    &calc,
                    0.95,
                    &LimitMethod::Bracket {
                        lo: lo.max(1e-3),
                        hi,
                        rtol: 1e-9,
                    },
                )
                .unwrap()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, toys, limits);
criterion_main!(benches);
