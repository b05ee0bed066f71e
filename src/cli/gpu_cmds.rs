//! `gradfit selftest`: the GPU against the CPU, and a short benchmark.

use super::OutputArgs;
use crate::device::Device;
use crate::error::{Error, Result};
use clap::Args;

/// Exit status when a selftest comparison failed (the report is still printed).
pub const EXIT_SELFTEST_FAILED: i32 = 4;

/// Arguments of `gradfit selftest`.
#[derive(Args, Debug)]
pub struct SelftestArgs {
    /// Workspaces to test besides the built-in examples; patches follow the
    /// workspace after commas: `ws.json,signal-patch.json`.
    #[arg(value_name = "WORKSPACE[,PATCH...]")]
    pub workspaces: Vec<String>,
    /// The device to test against the CPU: cuda, cuda:N (or cuda-emu in test builds).
    #[arg(long, default_value = "cuda", value_parser = parse_device)]
    pub device: Device,
    /// Random evaluation points per dataset.
    #[arg(long, default_value_t = 16)]
    pub points: usize,
    /// Toys per hypothesis of the CPU/GPU toy CLs comparison (0: skip).
    #[arg(long, default_value_t = 300)]
    pub toys: u32,
    /// Toys drawn on both devices for the toy-data comparison (0: skip).
    #[arg(long, default_value_t = 2000)]
    pub sample_toys: u32,
    /// Batch sizes of the evaluation benchmark.
    #[arg(long, value_delimiter = ',', default_value = "1,1000,100000")]
    pub bench_sizes: Vec<usize>,
    /// Toys per hypothesis of the toy benchmark (0: none).
    #[arg(long, default_value_t = 5000)]
    pub bench_toys: u32,
    /// Skip the benchmark.
    #[arg(long)]
    pub no_bench: bool,
    /// Skip the built-in example models (test only the given workspaces).
    #[arg(long)]
    pub no_examples: bool,
    /// Seed of the random points and toys.
    #[arg(long, default_value_t = 20240917)]
    pub seed: u64,
    #[command(flatten)]
    pub out: OutputArgs,
}

fn parse_device(s: &str) -> std::result::Result<Device, String> {
    s.parse()
}

/// `gradfit selftest`.
pub fn selftest(a: &SelftestArgs) -> Result<i32> {
    if !a.device.is_gpu() {
        return Err(Error::input(
            "selftest compares a GPU with the CPU: use --device cuda (or cuda:N)",
        ));
    }
    a.device.check()?;
    #[cfg(any(feature = "cuda", feature = "cuda-emu"))]
    {
        run::selftest(a)
    }
    #[cfg(not(any(feature = "cuda", feature = "cuda-emu")))]
    {
        Err(Error::input(crate::device::NO_CUDA))
    }
}

#[cfg(any(feature = "cuda", feature = "cuda-emu"))]
mod run {
    use super::*;
    use crate::gpu::Gpu;
    use crate::gpu::exec::Backend;
    use crate::gpu::selftest::{Report, SelftestOptions, run_model};
    use crate::model::{HistFactoryModel, ModelOptions};
    use crate::workspace::{ReadOptions, Workspace};
    use serde_json::json;
    use std::path::PathBuf;

    const TWO_CHANNEL: &str = include_str!("../../examples/workspaces/two-channel.json");
    const ONE_BIN: &str = include_str!("../../examples/workspaces/one-bin-high-count.json");

    fn from_json(text: &str, name: &str) -> Result<HistFactoryModel> {
        let v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| Error::input(format!("{name}: {e}")))?;
        let ws = Workspace::from_value(v, &[], name, &ReadOptions::default())?;
        HistFactoryModel::from_workspace(&ws, &ModelOptions::default(), name)
    }

    /// (name, model, benchmark it).
    fn models(a: &SelftestArgs) -> Result<Vec<(String, HistFactoryModel, bool)>> {
        let mut v = Vec::new();
        if !a.no_examples {
            v.push((
                "two-channel".to_string(),
                from_json(TWO_CHANNEL, "two-channel")?,
                false,
            ));
            v.push((
                "one-bin-high-count".to_string(),
                from_json(ONE_BIN, "one-bin-high-count")?,
                false,
            ));
            let ws = Workspace::from_value(
                crate::synthetic::shapesys_workspace(50, 4),
                &[],
                "synthetic",
                &ReadOptions::default(),
            )?;
            v.push((
                "synthetic-50x4".to_string(),
                HistFactoryModel::from_workspace(&ws, &ModelOptions::default(), "synthetic")?,
                true,
            ));
        }
        for spec in &a.workspaces {
            let mut parts = spec.split(',');
            let ws = PathBuf::from(parts.next().unwrap_or_default());
            let mut patches = Vec::new();
            for p in parts {
                patches.push(crate::workspace::load_patch(std::path::Path::new(p))?);
            }
            let m = HistFactoryModel::load(
                &ws,
                &patches,
                &ReadOptions::default(),
                &ModelOptions::default(),
            )?;
            let name = ws
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| spec.clone());
            v.push((name, m, true));
        }
        if v.is_empty() {
            return Err(Error::input(
                "nothing to test: give workspaces or drop --no-examples",
            ));
        }
        Ok(v)
    }

    fn run_all<B: Backend + Clone>(backend: B, a: &SelftestArgs) -> Result<Report> {
        let mut rep = Report {
            device: backend.describe(),
            ..Default::default()
        };
        for (name, m, bench) in models(a)? {
            eprintln!("selftest: {name} ({} parameters) ...", m.n_pars());
            let gpu = Gpu::new(backend.clone(), &m)?;
            let opts = SelftestOptions {
                points: a.points,
                toys: a.toys,
                sample_toys: a.sample_toys,
                bench_sizes: if a.no_bench || !bench {
                    vec![]
                } else {
                    a.bench_sizes.clone()
                },
                bench_toys: if a.no_bench || !bench {
                    0
                } else {
                    a.bench_toys
                },
                seed: a.seed,
            };
            run_model(&gpu, &m, &name, &opts, &mut rep)?;
        }
        Ok(rep)
    }

    pub(super) fn selftest(a: &SelftestArgs) -> Result<i32> {
        let rep = match a.device {
            #[cfg(feature = "cuda")]
            Device::Cuda(n) => run_all(crate::gpu::cuda::backend(n)?, a)?,
            #[cfg(feature = "cuda-emu")]
            Device::CudaEmu => run_all(crate::gpu::emu::EmuBackend, a)?,
            #[allow(unreachable_patterns)]
            _ => return Err(Error::input(crate::device::NO_CUDA)),
        };
        let passed = rep.passed();
        let value = json!({
            "device": rep.device,
            "passed": passed,
            "checks": rep.checks,
            "benchmark": rep.bench,
            "notes": rep.notes,
        });
        a.out.emit(&value, || table(&rep))?;
        if passed {
            Ok(0)
        } else {
            eprintln!(
                "selftest FAILED: {} of {} comparisons outside their tolerance",
                rep.checks.iter().filter(|c| !c.pass).count(),
                rep.checks.len()
            );
            Ok(EXIT_SELFTEST_FAILED)
        }
    }

    fn table(rep: &Report) -> String {
        use crate::cli::table::Table;
        let mut s = format!("device: {}\n\n", rep.device);
        let mut t = Table::new(
            &[
                "model",
                "comparison",
                "deviation",
                "tolerance",
                "result",
                "details",
            ],
            &[false, false, true, true, false, false],
        );
        for c in &rep.checks {
            t.row(vec![
                c.model.clone(),
                c.what.clone(),
                format!("{:.2e}", c.value),
                format!("{:.0e}", c.tolerance),
                if c.pass { "ok".into() } else { "FAIL".into() },
                c.detail.clone(),
            ]);
        }
        s.push_str(&t.render());
        if !rep.bench.is_empty() {
            s.push('\n');
            let mut b = Table::new(
                &[
                    "model",
                    "benchmark",
                    "batch",
                    "per second",
                    "seconds",
                    "GB/s (est.)",
                    "GFLOP/s (est.)",
                ],
                &[false, false, true, true, true, true, true],
            );
            for r in &rep.bench {
                let opt =
                    |x: Option<f64>| x.map(|v| format!("{v:.1}")).unwrap_or_else(|| "-".into());
                b.row(vec![
                    r.model.clone(),
                    r.what.clone(),
                    r.batch.to_string(),
                    format!("{:.4e}", r.per_second),
                    format!("{:.3}", r.seconds),
                    opt(r.gbytes_per_s),
                    opt(r.gflops),
                ]);
            }
            s.push_str(&b.render());
        }
        for n in &rep.notes {
            s.push_str(&format!("note: {n}\n"));
        }
        s.push_str(&format!(
            "\nselftest {}: {} of {} comparisons within tolerance\n",
            if rep.passed() { "passed" } else { "FAILED" },
            rep.checks.iter().filter(|c| c.pass).count(),
            rep.checks.len()
        ));
        s
    }
}
