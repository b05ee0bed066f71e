//! Toys on the device: sampling toy datasets, the free and fixed fit of each
//! toy with its test statistic, and the driver behind [`run_toys`] that hands
//! the toys the device cannot finish to the CPU.

use super::fit::status_of;
use super::work::{Ty, Work, member_of};
use super::{Backend, Gpu};
use crate::error::Result;
use crate::fit::{FitOptions, FitSpec, FitStatus};
use crate::gpu::params::Kernel;
use crate::infer::toys::{Chunk, ToyFitter, ToyRecord, ToyRun, ToySettings, drive_toys};
use crate::infer::{Problem, TestStat};
use crate::model::{Dataset, HistFactoryModel, Likelihood};

impl<B: Backend> Gpu<B> {
    /// Toy datasets `toys` of stream `purp` drawn on the device at `pars`
    /// (downloaded; the toy runs keep them on the device).
    pub fn sample_toys(
        &self,
        m: &HistFactoryModel,
        pars: &[f64],
        seed: u64,
        purp: u32,
        toys: std::ops::Range<u32>,
    ) -> Result<Vec<Dataset>> {
        let n = toys.len();
        let mut w = Work::new(self);
        self.toy_data(&mut w, m, pars, seed, purp, toys.start, n)?;
        let all: Vec<usize> = (0..n).collect();
        self.download_toys(&w, &all, n)
    }

    /// Datasets `ks` of the `n` toys on the device (drawn by `toy_data`).
    fn download_toys(&self, w: &Work<'_, B>, ks: &[usize], n: usize) -> Result<Vec<Dataset>> {
        let (b, a) = (self.dm.n_main, self.dm.n_aux);
        let main = w.get::<f64>("data_main", b * n)?;
        let aux = w.get::<f64>("data_aux", a * n)?;
        let cst = w.get::<f64>("data_const", n)?;
        Ok(ks
            .iter()
            .map(|&k| Dataset {
                main: member_of(&main, b, n, k).collect(),
                aux: member_of(&aux, a, n, k).collect(),
                constant: cst[k],
            })
            .collect())
    }

    /// Upload the generator at `pars` and draw `n` toys starting at `toy0` on the device.
    #[allow(clippy::too_many_arguments)]
    fn toy_data(
        &self,
        w: &mut Work<'_, B>,
        m: &HistFactoryModel,
        pars: &[f64],
        seed: u64,
        purp: u32,
        toy0: u32,
        n: usize,
    ) -> Result<()> {
        if n == 0 {
            return Ok(());
        }
        let g = m.generator(pars);
        let mean: Vec<f64> = g.aux.iter().map(|a| a.0).collect();
        let sigma: Vec<f64> = g.aux.iter().map(|a| a.1.unwrap_or(0.0)).collect();
        let kind: Vec<u32> = g
            .aux
            .iter()
            .map(|a| if a.1.is_some() { 1 } else { 2 })
            .collect();
        w.put("gen_nu", &g.nu)?;
        w.put("gen_mean", &mean)?;
        w.put("gen_sigma", &sigma)?;
        w.put("gen_kind", &kind)?;
        let (b, a) = (self.dm.n_main, self.dm.n_aux);
        w.ensure("data_main", b * n, Ty::F64)?;
        w.ensure("data_aux", a * n, Ty::F64)?;
        w.ensure("data_const", n, Ty::F64)?;
        w.p.nd = n as u64;
        w.p.seed = seed;
        w.p.purpose = purp as u64;
        w.p.toy0 = toy0 as u64;
        w.p.n_toys = n as u64;
        w.launch(Kernel::ToySample, (b + a) * n)?;
        w.launch(Kernel::DataConst, n)
    }

    /// Draw toys `range` of stream `purp` at `pars` and fit each twice
    /// (free, POI fixed at `mu`) on the device; only the records come back.
    fn toy_records(
        &self,
        w: &mut Work<'_, B>,
        p: &Problem<HistFactoryModel>,
        pars: &[f64],
        c: &Chunk<'_>,
    ) -> Result<Vec<ToyRecord>> {
        let (kind, mu, opts, range) = (c.kind, c.mu, c.opts, c.range.clone());
        let n = range.len();
        self.toy_data(w, p.model, pars, c.seed, c.purp, range.start, n)?;
        w.p.kind = match kind {
            TestStat::Q0 => 0,
            TestStat::Q => 1,
            TestStat::QTilde => 2,
            TestStat::T => 3,
            TestStat::TTilde => 4,
        };
        w.p.mu = mu;
        w.p.poi = p.poi as u64;
        let cap = opts.max_iter.min(self.toy_iter_cap);
        w.fit_settings(opts, cap, false);
        // the free fits first; the POI-fixed ones start from them (locals)
        w.launch(Kernel::ToySetup, n)?;
        w.run_fits(n, cap)?;
        w.launch(Kernel::ToySetupFixed, n)?;
        w.run_fits(2 * n, cap)?;
        w.launch(Kernel::ToyRestart, n)?;
        if w.active(2 * n)? > 0 {
            w.run_fits(2 * n, cap)?;
        }
        w.launch(Kernel::ToyFinalize, n)?;
        let stat = w.get::<f64>("tr_stat", n)?;
        let muhat = w.get::<f64>("tr_muhat", n)?;
        let ffree = w.get::<f64>("tr_ffree", n)?;
        let ffixed = w.get::<f64>("tr_ffixed", n)?;
        let sfree = w.get::<u32>("tr_sfree", n)?;
        let sfixed = w.get::<u32>("tr_sfixed", n)?;
        (0..n)
            .map(|k| {
                Ok(ToyRecord {
                    toy: range.start + k as u32,
                    stat: stat[k].is_finite().then_some(stat[k]),
                    mu_hat: muhat[k],
                    twice_nll_free: ffree[k],
                    twice_nll_fixed: ffixed[k],
                    status_free: status_of(sfree[k])?,
                    status_fixed: status_of(sfixed[k])?,
                })
            })
            .collect()
    }

    /// Toys fitted per batch on this device (two fits each).
    pub fn toy_batch(&self, want: usize) -> usize {
        (self.capacity(2 * want.max(1), true, true) / 2).max(1)
    }
}

/// Generate and fit the toys of `settings` on the device, with the outputs
/// of [`crate::infer::toys::run_toys`]. The three fits on the observed data
/// that fix the generation points run on the CPU (single fits are faster
/// there); sampling, the toy fits, restarts and test statistics run on the
/// device, and only the per-toy records come back.
pub fn run_toys<B: Backend>(
    gpu: &Gpu<B>,
    p: &Problem<HistFactoryModel>,
    settings: &ToySettings,
    opts: &FitOptions,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<ToyRun> {
    let mut dev = GpuToys {
        gpu,
        p,
        w: Work::new(gpu),
        pars: Vec::new(),
        on_host: 0,
    };
    let run = drive_toys(p, settings, opts, progress, &mut dev)?;
    if dev.on_host > 0 {
        eprintln!(
            "note: {} toys had a fit that stalled or passed {} iterations on the GPU; \
             they were fitted again on the CPU, on the same toy data",
            dev.on_host, gpu.toy_iter_cap
        );
    }
    Ok(run)
}

/// Toys on the device: one set of work buffers for the whole run.
struct GpuToys<'a, 'm, B: Backend> {
    gpu: &'a Gpu<B>,
    p: &'a Problem<'m, HistFactoryModel>,
    w: Work<'a, B>,
    /// Parameters the toys of the current hypothesis are drawn at.
    pars: Vec<f64>,
    /// Toys whose fits were finished on the host.
    on_host: usize,
}

impl<B: Backend> ToyFitter for GpuToys<'_, '_, B> {
    fn start(&mut self, n: usize) -> Result<usize> {
        let batch = self.gpu.toy_batch(n);
        let w = &mut self.w;
        w.members(2 * batch, true, true)?;
        for name in [
            "tr_stat",
            "tr_muhat",
            "tr_ffree",
            "tr_ffixed",
            "sv_f",
            "sv_muhat",
        ] {
            w.alloc(name, batch, Ty::F64)?;
        }
        for name in ["tr_sfree", "tr_sfixed", "tr_restart", "sv_status"] {
            w.alloc(name, batch, Ty::U32)?;
        }
        Ok(batch)
    }

    fn hypothesis(&mut self, pars: &[f64], free: &FitSpec, fixed: &FitSpec) -> Result<()> {
        self.pars = pars.to_vec();
        self.w.specs(&[free, fixed])
    }

    fn fit(&mut self, c: &Chunk<'_>) -> Result<Vec<ToyRecord>> {
        let mut recs = self.gpu.toy_records(&mut self.w, self.p, &self.pars, c)?;
        // Toys with a fit that stalled or reached the iteration limit on the
        // device (the CPU minimiser escalates to its trust region and
        // restarts from the suggested start, which have no device version;
        // see `finish_stalled_on_host`) or that ran into the device's
        // iteration cap: the whole record again on the host, on the device's
        // dataset.
        let capped = c.opts.max_iter > self.gpu.toy_iter_cap;
        let redo = |s: FitStatus| {
            (c.opts.robust && matches!(s, FitStatus::Stalled | FitStatus::MaxIterations))
                || (capped && s == FitStatus::MaxIterations)
        };
        // q~ / t~ toys whose free fit is below mu = 0 need the fit at 0,
        // which the device does not run
        let idx: Vec<usize> = (0..recs.len())
            .filter(|&k| {
                redo(recs[k].status_free)
                    || redo(recs[k].status_fixed)
                    || c.kind.needs_fit_at_zero(recs[k].mu_hat)
            })
            .collect();
        if !idx.is_empty() {
            let data = self.gpu.download_toys(&self.w, &idx, recs.len())?;
            let toys: Vec<u32> = idx.iter().map(|&k| recs[k].toy).collect();
            let cpu = self.p.clone().with_fitter(&crate::fit::Cpu);
            let again = crate::infer::toys::records_for(&cpu, &toys, &data, c)?;
            for (k, r) in idx.into_iter().zip(again) {
                recs[k] = r;
                self.on_host += 1;
            }
        }
        Ok(recs)
    }
}
