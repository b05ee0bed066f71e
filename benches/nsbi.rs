//! Criterion benchmarks of the NSBI (per-event density ratio) likelihood.
//!
//! `cargo bench --bench nsbi` ; filter with e.g. `-- eval`.
//! - `eval/1M-3p-20s-{one,all}`: twice_nll + gradient + Hessian of 1,000,000
//!   events, 3 processes, 20 nuisance parameters with per-event shape
//!   variations (of one process each: 20 per-event variations; or of all
//!   three: 60);
//! - `fit/...`: a full fit of the same;
//! - `toys/100k-ref`: bootstrap toys of a 100,000-event reference sample
//!   (the analytic off-shell example), two fits each, per toy.

use criterion::{Criterion, criterion_group, criterion_main};
use gradfit::fit::{self, FitOptions, FitSpec};
use gradfit::model::Likelihood;
use gradfit::model::nsbi::synth_big::{BigSpec, big_model};

fn eval_and_fit(c: &mut Criterion) {
    for all in [false, true] {
        let spec = BigSpec {
            n_events: 1_000_000,
            n_syst: 20,
            all_processes: all,
            seed: 1,
        };
        let m = big_model(&spec).expect("model");
        let p = m.n_pars();
        let mut x = m.init().to_vec();
        for (i, v) in x.iter_mut().enumerate().skip(1) {
            *v = 0.3 * ((i % 5) as f64 - 2.0) / 2.0;
        }
        let mut s = m.scratch();
        let mut g = vec![0.0; p];
        let mut h = vec![0.0; p * p];
        let tag = if all { "all" } else { "one" };
        let mut grp = c.benchmark_group("eval");
        grp.sample_size(20);
        grp.bench_function(format!("1M-3p-20s-{tag}"), |b| {
            b.iter(|| m.eval(&x, m.observed(), &mut s, Some(&mut g), Some(&mut h)))
        });
        grp.finish();
        let mut grp = c.benchmark_group("fit");
        grp.sample_size(10);
        let spec_fit = FitSpec::from_model(&m);
        grp.bench_function(format!("1M-3p-20s-{tag}"), |b| {
            b.iter(|| {
                let r = fit::fit(&m, m.observed(), &spec_fit, &FitOptions::default());
                assert!(r.converged);
                r
            })
        });
        grp.finish();
    }
}

fn toys(c: &mut Criterion) {
    use gradfit::infer::Problem;
    use gradfit::infer::neyman::belt_toys;
    use gradfit::model::nsbi::synth::OffShell;
    let model = OffShell::default();
    let obs = model.observed(1.0, 1);
    let (rx, rw) = model.reference_sample(100_000, 2);
    let ch = model.channel(&obs, None, Some((&rx, rw))).expect("channel");
    let cons = gradfit::model::nsbi::GaussConstraints::new(
        vec!["alpha_shape".into(), "alpha_lumi".into()],
        vec![1.0; 2],
        vec![0.0; 2],
        vec![0.0; 2],
        vec![(-5.0, 5.0); 2],
        vec![false; 2],
    );
    let m = gradfit::model::CombinedModel::new(
        vec![
            Box::new(gradfit::model::nsbi::NsbiPart::new(ch)),
            Box::new(cons),
        ],
        Some("mu"),
        "offshell",
    )
    .expect("model");
    let p = Problem::new(&m, m.observed()).expect("problem");
    let generator = m.generator(m.init());
    let free = p.spec.clone();
    let fixed = free.clone().fix(p.poi, 1.0);
    let opts = FitOptions {
        covariance: false,
        ..FitOptions::default()
    };
    let mut grp = c.benchmark_group("toys");
    grp.sample_size(10);
    let mut start = 0u32;
    grp.bench_function("100k-ref-256-toys", |b| {
        b.iter(|| {
            let r = belt_toys(
                &p,
                &generator,
                &free,
                &fixed,
                5,
                0,
                start..start + 256,
                &opts,
            )
            .expect("toys");
            start += 256;
            r
        })
    });
    grp.finish();
}

criterion_group!(benches, eval_and_fit, toys);
criterion_main!(benches);
