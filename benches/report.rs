//! Criterion benchmarks of the report layer on the shared workspaces (GRADFIT_SHARED,
//! default ../shared): Hessian impacts (Hessian, covariance and impacts from a
//! best-fit point) and the full refit ranking (4 refits per nuisance parameter,
//! as batches warm-started at the best fit).
//!
//! `cargo bench --bench report` ; filter with e.g. `-- tttt/refit_ranking`.

use criterion::{Criterion, criterion_group, criterion_main};
use gradfit::fit::FitSpec;
use gradfit::model::HistFactoryModel;
use gradfit::report::{self, PostFit, RefitOptions, RefitPlan};
use std::time::Duration;

mod common;
use common::load_shared as load;

fn best(m: &HistFactoryModel) -> PostFit {
    let post = PostFit::fit(
        m,
        m.observed(),
        &FitSpec::from_model(m),
        &report::best_fit_options(),
    )
    .unwrap();
    assert!(post.converged);
    post
}

fn hessian_impacts(c: &mut Criterion) {
    for (short, stem) in [
        ("offshell", "atlas-susy-2019-09-3l-offshell"),
        ("sbottom", "atlas-susy-2018-31-sbottom-regionA"),
        ("tttt", "atlas-tttt"),
    ] {
        let Some(m) = load(stem) else { continue };
        let post = best(&m);
        let poi = m.poi.unwrap();
        let spec = FitSpec::from_model(&m);
        let sig = report::prefit_sigmas(&m, &post.fixed);
        c.bench_function(&format!("{short}/hessian_impacts"), |b| {
            b.iter(|| {
                // exact Hessian at the best fit, C = 2 H^-1, then every impact
                let pf = PostFit::at(&m, m.observed(), &spec, post.x.clone()).unwrap();
                report::hessian_impacts(&pf, poi, &sig)
            })
        });
    }
}

fn refit_ranking(c: &mut Criterion) {
    for (short, stem) in [
        ("sbottom", "atlas-susy-2018-31-sbottom-regionA"),
        ("tttt", "atlas-tttt"),
    ] {
        let Some(m) = load(stem) else { continue };
        let post = best(&m);
        let poi = m.poi.unwrap();
        let sig = report::prefit_sigmas(&m, &post.fixed);
        let pars: Vec<usize> = (0..m.n_pars())
            .filter(|&k| k != poi && !post.fixed[k])
            .collect();
        let plan = RefitPlan {
            poi,
            pars: &pars,
            prefit_sigma: &sig,
        };
        let opts = RefitOptions::default();
        let mut n = 0;
        report::refit_impacts(&m, m.observed(), &post, &plan, &opts, &mut |_, t| n = t);
        eprintln!("{short}: {} nuisance parameters, {n} refits", pars.len());
        c.bench_function(&format!("{short}/refit_ranking"), |b| {
            b.iter(|| report::refit_impacts(&m, m.observed(), &post, &plan, &opts, &mut |_, _| {}))
        });
    }
}

criterion_group! {
    name = fast;
    config = Criterion::default().sample_size(30).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    targets = hessian_impacts
}
criterion_group! {
    name = slow;
    config = Criterion::default().sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(30));
    targets = refit_ranking
}
criterion_main!(fast, slow);
