//! Criterion benchmarks of training through fits.
//!
//! `cargo bench --bench train`:
//! - `train/neos_statistics`: the statistics part of one neos step (KDE
//!   templates of the 4-bin model -> both fits on the Asimov data -> CLs ->
//!   gradients with respect to every template number);
//! - `train/neos_step/{64,1024}`: one full neos training step (2-H-H-1
//!   network, 4 x 2000 events, forward, KDE histograms, statistics, reverse
//!   pass, Adam update) for hidden width H;
//! - `train/inferno_epoch`: one INFERNO epoch at the default sizes
//!   (benchmark 2, 10,000 events per class, batches of 1,000, 3-100-100-10).

use candle_core::DType;
use criterion::{Criterion, criterion_group, criterion_main};
use gradfit::train::inferno::{Inferno, InfernoConfig, generate};
use gradfit::train::neos::{Neos, NeosConfig};
use gradfit::train::spec::SampleValues;
use gradfit::train::{LossKind, TemplateValues};

fn neos_templates() -> TemplateValues {
    TemplateValues {
        samples: vec![
            SampleValues {
                nominal: vec![1.2, 3.5, 6.8, 8.5],
                sumw2: None,
                modifiers: vec![None],
            },
            SampleValues {
                nominal: vec![40.0, 30.0, 20.0, 10.0],
                sumw2: None,
                modifiers: vec![Some((
                    vec![45.0, 28.0, 24.0, 9.0],
                    vec![33.0, 31.0, 18.0, 12.0],
                ))],
            },
        ],
    }
}

fn neos(c: &mut Criterion) {
    let mut g = c.benchmark_group("train");
    let analysis = gradfit::train::Analysis::new(&gradfit::train::neos::spec(4)).unwrap();
    let tp = neos_templates().to_tensors().unwrap();
    let kind = LossKind::Cls {
        mu: 1.0,
        mu_asimov: 0.0,
        test_stat: gradfit::infer::TestStat::QTilde,
    };
    g.bench_function("neos_statistics", |b| {
        b.iter(|| analysis.loss_detached(&kind, &tp).unwrap().0.value)
    });
    g.sample_size(10);
    for h in [64usize, 1024] {
        let cfg = NeosConfig {
            hidden: vec![h, h],
            eval_every: 0,
            steps: 1,
            ..Default::default()
        };
        let mut n = Neos::new(cfg, DType::F32).unwrap();
        g.bench_function(format!("neos_step/{h}"), |b| b.iter(|| n.step().unwrap().0));
    }
    let cfg = InfernoConfig {
        epochs: 1,
        ..Default::default()
    };
    let inf = Inferno::new(cfg.clone()).unwrap();
    let data = generate(cfg.n_train, 0, 1).unwrap();
    g.bench_function("inferno_epoch", |b| {
        b.iter(|| inf.train(0, &data).unwrap().1.loss[0])
    });
    g.finish();
}

criterion_group!(benches, neos);
criterion_main!(benches);
