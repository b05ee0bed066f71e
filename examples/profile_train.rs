//! Where a neos training step spends its time (network forward, reverse pass,
//! statistics part): `cargo run --release --example profile_train`.

use candle_core::{DType, Device, Tensor};
use gradfit::train::nn::Mlp;
use std::time::Instant;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> gradfit::Result<()> {
    inferno_profile()?;
    let net = Mlp::new(&[2, 1024, 1024, 1], DType::F32, 0)?;
    let x = Tensor::randn(0f32, 1.0, (8000, 2), &Device::Cpu)?;
    for _ in 0..3 {
        let t0 = Instant::now();
        let z = net.forward(&x)?;
        let s = z.sum_all()?;
        let _ = s.to_scalar::<f32>()?;
        let t1 = t0.elapsed().as_secs_f64();
        let g = s.backward()?;
        let t2 = t0.elapsed().as_secs_f64();
        drop(g);
        let a = Tensor::randn(0f32, 1.0, (8000, 1024), &Device::Cpu)?;
        let w = Tensor::randn(0f32, 1.0, (1024, 1024), &Device::Cpu)?;
        let t3 = Instant::now();
        let c = a.matmul(&w)?;
        let _ = c.sum_all()?.to_scalar::<f32>()?;
        let t4 = t3.elapsed().as_secs_f64();
        let t5 = Instant::now();
        let c = a.matmul(&w.t()?)?;
        let _ = c.sum_all()?.to_scalar::<f32>()?;
        let t6 = t5.elapsed().as_secs_f64();
        let t7 = Instant::now();
        let c = a.t()?.matmul(&a)?;
        let _ = c.sum_all()?.to_scalar::<f32>()?;
        let t8 = t7.elapsed().as_secs_f64();
        println!(
            "forward {t1:.3} s, backward {:.3} s; matmul [8000,1024]x[1024,1024] {t4:.3} s, with w^T {t6:.3} s, a^T a {t8:.3} s",
            t2 - t1
        );
    }
    Ok(())
}

/// INFERNO batch anatomy.
#[allow(dead_code)]
pub fn inferno_profile() -> gradfit::Result<()> {
    use gradfit::train::inferno::{Inferno, InfernoConfig, generate};
    use gradfit::train::{LossKind, reattach};
    let inf = Inferno::new(InfernoConfig::default())?;
    let (xs, xb) = generate(1000, 0, 1)?;
    let net = Mlp::new(&[3, 100, 100, 10], DType::F32, 0)?;
    let kind = LossKind::PoiVariance { mu_asimov: 1.0 };
    for _ in 0..5 {
        let t0 = Instant::now();
        let tp = inf.templates(&net, &xs, &xb)?;
        let t1 = t0.elapsed().as_secs_f64();
        let (_, g) = inf.analysis.loss_detached(&kind, &tp)?;
        let t2 = t0.elapsed().as_secs_f64();
        let grads = reattach(&tp, &g)?.backward()?;
        let t3 = t0.elapsed().as_secs_f64();
        drop(grads);
        println!(
            "inferno batch: templates {:.2} ms, loss {:.2} ms, network backward {:.2} ms",
            t1 * 1e3,
            (t2 - t1) * 1e3,
            (t3 - t2) * 1e3
        );
    }
    Ok(())
}
