//! Where likelihoods are evaluated and fitted: the CPU (always) or a CUDA GPU
//! (builds with the `cuda` feature, see scripts/build-cuda.sh).
//!
//! [`Device`] is what `--device` parses to. [`Session`] holds a model on a
//! device (for the GPU: its tables uploaded once) and runs batched
//! evaluations, batched fits and toy runs there with the same inputs and
//! outputs as the CPU functions ([`crate::fit::fit_batch`],
//! [`crate::infer::toys::run_toys`]); the free functions here open a session
//! for one call.

use crate::error::{Error, Result};
use crate::fit::{self, FitOptions, FitResult, FitSpec};
pub use crate::gpu::route::{Policy, Router};
use crate::infer::Problem;
use crate::infer::toys::{self, ToyRun, ToySettings};
use crate::model::{Dataset, HistFactoryModel, Likelihood};
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};

/// The message for a GPU device in a build without CUDA support.
pub const NO_CUDA: &str = "built without the cuda feature; see scripts/build-cuda.sh";

/// A compute device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Device {
    /// The CPU (all cores, through rayon).
    #[default]
    Cpu,
    /// CUDA GPU with this ordinal.
    Cuda(usize),
    /// The host emulation of the CUDA kernels (for tests; slow). Parses only
    /// in builds with the `cuda-emu` feature.
    CudaEmu,
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(0) => f.write_str("cuda"),
            Device::Cuda(n) => write!(f, "cuda:{n}"),
            Device::CudaEmu => f.write_str("cuda-emu"),
        }
    }
}

impl FromStr for Device {
    type Err = String;

    /// `cpu`, `cuda` (device 0), `cuda:N`, or `cuda-emu`.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let t = s.trim().to_ascii_lowercase();
        match t.as_str() {
            "cpu" => Ok(Device::Cpu),
            "cuda" | "gpu" => Ok(Device::Cuda(0)),
            "cuda-emu" => Ok(Device::CudaEmu),
            _ => {
                if let Some(n) = t.strip_prefix("cuda:") {
                    n.parse::<usize>().map(Device::Cuda).map_err(|_| {
                        format!("'{s}': the device ordinal after 'cuda:' must be a number")
                    })
                } else {
                    Err(format!(
                        "unknown device '{s}' (expected cpu, cuda or cuda:N)"
                    ))
                }
            }
        }
    }
}

impl Device {
    /// Whether this build can run on the device at all (CUDA needs the
    /// `cuda` feature, the emulation the `cuda-emu` feature); the error says why not.
    pub fn check(&self) -> Result<()> {
        match self {
            Device::Cpu => Ok(()),
            Device::Cuda(_) => {
                if cfg!(feature = "cuda") {
                    Ok(())
                } else {
                    Err(Error::input(NO_CUDA))
                }
            }
            Device::CudaEmu => {
                if cfg!(feature = "cuda-emu") {
                    Ok(())
                } else {
                    Err(Error::input(
                        "built without the cuda-emu feature (the host emulation of the GPU kernels, for tests)",
                    ))
                }
            }
        }
    }

    /// Whether this is a GPU (or its emulation).
    pub fn is_gpu(&self) -> bool {
        !matches!(self, Device::Cpu)
    }
}

enum Inner {
    Cpu,
    /// Opened on first use: work that the router sends to the CPU never
    /// pays for opening the device and uploading the model.
    #[cfg(feature = "cuda")]
    Cuda(usize, std::sync::OnceLock<Box<CudaGpu>>),
    #[cfg(feature = "cuda-emu")]
    Emu(Box<crate::gpu::Gpu<crate::gpu::emu::EmuBackend>>),
}

#[cfg(feature = "cuda")]
type CudaGpu = crate::gpu::Gpu<std::sync::Arc<crate::gpu::cuda::CudaBackend>>;

/// A model on a device.
pub struct Session<'m> {
    model: &'m HistFactoryModel,
    device: Device,
    inner: Inner,
    router: Router,
    noted: AtomicBool,
    n_global: std::sync::OnceLock<usize>,
}

impl<'m> Session<'m> {
    /// Put `model` on `device`. A CUDA device is opened (and the model
    /// uploaded) when the first work is routed to it; see [`crate::gpu::route`].
    pub fn new(device: &Device, model: &'m HistFactoryModel) -> Result<Self> {
        device.check()?;
        let all_on_device = Router {
            policy: Policy::Gpu,
        };
        let (inner, router) = match device {
            Device::Cpu => (Inner::Cpu, all_on_device),
            #[cfg(feature = "cuda")]
            Device::Cuda(n) => (
                Inner::Cuda(*n, std::sync::OnceLock::new()),
                Router {
                    policy: Policy::from_env()?,
                },
            ),
            #[cfg(feature = "cuda-emu")]
            Device::CudaEmu => (
                Inner::Emu(Box::new(crate::gpu::Gpu::new(
                    crate::gpu::emu::EmuBackend,
                    model,
                )?)),
                all_on_device,
            ),
            #[allow(unreachable_patterns)]
            _ => return Err(Error::input(NO_CUDA)),
        };
        Ok(Session {
            model,
            device: *device,
            inner,
            router,
            noted: AtomicBool::new(false),
            n_global: std::sync::OnceLock::new(),
        })
    }

    /// Route this session's work with `policy` (the emulation defaults to
    /// [`Policy::Gpu`], so that tests run the kernels; CUDA to
    /// `GRADFIT_GPU_ROUTE`).
    pub fn with_policy(mut self, policy: Policy) -> Self {
        self.router.policy = policy;
        self
    }

    /// Size of the model's global (dense) Hessian block (planned once, when
    /// a routing decision needs it).
    fn n_global(&self) -> usize {
        *self.n_global.get_or_init(|| {
            crate::gpu::DeviceModel::new(self.model)
                .map(|d| d.n_global)
                .unwrap_or(usize::MAX)
        })
    }

    /// Whether work of this size runs on the CPU although the session is on a
    /// GPU; prints [`Router::note`] the first time.
    fn routed_to_cpu(&self, on_gpu: bool, what: &str) -> bool {
        if matches!(self.inner, Inner::Cpu) || on_gpu {
            return false;
        }
        if !self.noted.swap(true, Ordering::Relaxed) {
            eprintln!("{}", Router::note(what));
        }
        true
    }

    #[cfg(feature = "cuda")]
    fn open_cuda<'s>(
        &self,
        n: usize,
        cell: &'s std::sync::OnceLock<Box<CudaGpu>>,
    ) -> Result<&'s CudaGpu> {
        if let Some(g) = cell.get() {
            return Ok(g);
        }
        let g = crate::gpu::Gpu::new(crate::gpu::cuda::backend(n)?, self.model)?;
        let _ = cell.set(Box::new(g));
        cell.get()
            .map(|b| &**b)
            .ok_or_else(|| Error::Numerical("internal: CUDA device not kept".into()))
    }

    /// The device.
    pub fn device(&self) -> Device {
        self.device
    }

    /// The model.
    pub fn model(&self) -> &'m HistFactoryModel {
        self.model
    }

    /// A description of the device (name, memory, driver) for reports.
    pub fn describe(&self) -> String {
        match &self.inner {
            Inner::Cpu => format!("CPU ({} threads)", rayon::current_num_threads()),
            #[cfg(feature = "cuda")]
            Inner::Cuda(n, cell) => match cell.get() {
                Some(g) => crate::gpu::Backend::describe(g.backend()),
                None => format!(
                    "CUDA device {n}, not used: this work ran on the CPU ({} threads)",
                    rayon::current_num_threads()
                ),
            },
            #[cfg(feature = "cuda-emu")]
            Inner::Emu(g) => crate::gpu::Backend::describe(g.backend()),
        }
    }

    /// Fit one problem, as [`crate::fit::fit`].
    pub fn fit(&self, data: &Dataset, spec: &FitSpec, opts: &FitOptions) -> Result<FitResult> {
        let mut r = self.fit_batch(&[data], std::slice::from_ref(spec), opts)?;
        r.pop()
            .ok_or_else(|| Error::Numerical("no fit result".into()))
    }

    /// Fit a batch, as [`crate::fit::fit_batch`]: `data` holds one dataset
    /// for all members or one per member. On a GPU, `opts.chunk` is ignored:
    /// the batch is split by device memory instead.
    pub fn fit_batch(
        &self,
        data: &[&Dataset],
        specs: &[FitSpec],
        opts: &FitOptions,
    ) -> Result<Vec<FitResult>> {
        if !(data.len() == 1 || data.len() == specs.len()) {
            return Err(Error::input(format!(
                "{} datasets for {} fits (need 1 or {})",
                data.len(),
                specs.len(),
                specs.len()
            )));
        }
        let what = format!("{} fits", specs.len());
        if self.routed_to_cpu(
            self.router.fits_on_gpu(specs.len(), || self.n_global()),
            &what,
        ) {
            return Ok(fit::fit_batch(self.model, data, specs, opts));
        }
        match &self.inner {
            Inner::Cpu => Ok(fit::fit_batch(self.model, data, specs, opts)),
            #[cfg(feature = "cuda")]
            Inner::Cuda(n, cell) => self.open_cuda(*n, cell)?.fit_batch(data, specs, opts),
            #[cfg(feature = "cuda-emu")]
            Inner::Emu(g) => g.fit_batch(data, specs, opts),
        }
    }

    /// Generate and fit toys, as [`crate::infer::toys::run_toys`] (the
    /// problem's model must be this session's model).
    pub fn run_toys(
        &self,
        p: &Problem<HistFactoryModel>,
        settings: &ToySettings,
        opts: &FitOptions,
        progress: &(dyn Fn(u64, u64) + Sync),
    ) -> Result<ToyRun> {
        if !std::ptr::eq(p.model, self.model) {
            return Err(Error::input(
                "the problem's model is not the session's model",
            ));
        }
        let fits = 4 * settings.n_toys as usize;
        let what = format!("the {fits} toy fits");
        if self.routed_to_cpu(self.router.fits_on_gpu(fits, || self.n_global()), &what) {
            return toys::run_toys(p, settings, opts, progress);
        }
        match &self.inner {
            Inner::Cpu => toys::run_toys(p, settings, opts, progress),
            #[cfg(feature = "cuda")]
            Inner::Cuda(n, cell) => {
                crate::gpu::run_toys(self.open_cuda(*n, cell)?, p, settings, opts, progress)
            }
            #[cfg(feature = "cuda-emu")]
            Inner::Emu(g) => crate::gpu::run_toys(g, p, settings, opts, progress),
        }
    }

    /// Evaluations on the CPU kernel.
    fn cpu_eval(
        &self,
        thetas: &[f64],
        data: &[&Dataset],
        grad: bool,
        t: usize,
    ) -> (Vec<f64>, Option<Vec<f64>>) {
        let p = self.model.n_pars();
        let mut f = vec![0.0; t];
        if grad {
            let mut g = vec![0.0; t * p];
            self.model
                .eval_batch(thetas, data, &mut f, Some(&mut g), None);
            (f, Some(g))
        } else {
            self.model.eval_batch(thetas, data, &mut f, None, None);
            (f, None)
        }
    }

    /// twice_nll at `thetas` (row-major `T x P`), with the gradient (row-major
    /// `T x P`) when `grad`; one dataset for all members or one per member.
    pub fn eval_batch(
        &self,
        thetas: &[f64],
        data: &[&Dataset],
        grad: bool,
    ) -> Result<(Vec<f64>, Option<Vec<f64>>)> {
        let p = self.model.n_pars();
        let t = batch_members(p, thetas.len(), data.len())?;
        let on_cpu = self.routed_to_cpu(self.router.evals_on_gpu(t), &format!("{t} evaluations"));
        match &self.inner {
            _ if on_cpu => Ok(self.cpu_eval(thetas, data, grad, t)),
            Inner::Cpu => Ok(self.cpu_eval(thetas, data, grad, t)),
            #[cfg(feature = "cuda")]
            Inner::Cuda(n, cell) => {
                let out = self
                    .open_cuda(*n, cell)?
                    .eval_batch(thetas, data, gpu_mode(grad))?;
                Ok((out.f, out.grad))
            }
            #[cfg(feature = "cuda-emu")]
            Inner::Emu(g) => {
                let out = g.eval_batch(thetas, data, gpu_mode(grad))?;
                Ok((out.f, out.grad))
            }
        }
    }

    /// The GPU behind the session (opened now if it was not), for callers
    /// that need its own functions (Hessians, toy sampling); `None` on the
    /// CPU and the emulation.
    #[cfg(feature = "cuda")]
    pub fn cuda(&self) -> Option<Result<&CudaGpu>> {
        match &self.inner {
            Inner::Cuda(n, cell) => Some(self.open_cuda(*n, cell)),
            _ => None,
        }
    }

    /// The emulated GPU behind the session (`None` otherwise).
    #[cfg(feature = "cuda-emu")]
    pub fn emu(&self) -> Option<&crate::gpu::Gpu<crate::gpu::emu::EmuBackend>> {
        match &self.inner {
            Inner::Emu(g) => Some(g),
            _ => None,
        }
    }
}

#[cfg(any(feature = "cuda", feature = "cuda-emu"))]
fn gpu_mode(grad: bool) -> crate::gpu::EvalMode {
    if grad {
        crate::gpu::EvalMode::Grad
    } else {
        crate::gpu::EvalMode::Value
    }
}

/// Fit a batch on `device` (see [`Session::fit_batch`]).
pub fn fit_batch(
    device: &Device,
    model: &HistFactoryModel,
    data: &[&Dataset],
    specs: &[FitSpec],
    opts: &FitOptions,
) -> Result<Vec<FitResult>> {
    Session::new(device, model)?.fit_batch(data, specs, opts)
}

/// Generate and fit toys on `device` (see [`Session::run_toys`]).
pub fn run_toys(
    device: &Device,
    p: &Problem<HistFactoryModel>,
    settings: &ToySettings,
    opts: &FitOptions,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<ToyRun> {
    Session::new(device, p.model)?.run_toys(p, settings, opts, progress)
}

/// Where a model's fits, toys and batched evaluations run: a [`Session`]
/// for HistFactory models (CPU or GPU), [`CpuEngine`] for any likelihood.
pub trait Engine<L: Likelihood>: fit::BatchFitter<L> {
    /// The device.
    fn device(&self) -> Device;
    /// A description of the device for reports.
    fn describe(&self) -> String;
    /// Generate and fit toys, as [`crate::infer::toys::run_toys`].
    fn run_toys(
        &self,
        p: &Problem<L>,
        settings: &ToySettings,
        opts: &FitOptions,
        progress: &(dyn Fn(u64, u64) + Sync),
    ) -> Result<ToyRun>;
    /// twice_nll at `thetas` (row-major `T x P`), with the gradient when
    /// `grad`; one dataset for all members or one per member.
    fn eval_batch(
        &self,
        model: &L,
        thetas: &[f64],
        data: &[&L::Data],
        grad: bool,
    ) -> Result<(Vec<f64>, Option<Vec<f64>>)>;
}

impl Engine<HistFactoryModel> for Session<'_> {
    fn device(&self) -> Device {
        self.device
    }
    fn describe(&self) -> String {
        Session::describe(self)
    }
    fn run_toys(
        &self,
        p: &Problem<HistFactoryModel>,
        settings: &ToySettings,
        opts: &FitOptions,
        progress: &(dyn Fn(u64, u64) + Sync),
    ) -> Result<ToyRun> {
        Session::run_toys(self, p, settings, opts, progress)
    }
    fn eval_batch(
        &self,
        model: &HistFactoryModel,
        thetas: &[f64],
        data: &[&Dataset],
        grad: bool,
    ) -> Result<(Vec<f64>, Option<Vec<f64>>)> {
        if !std::ptr::eq(model, self.model) {
            return Err(Error::input("the model is not the session's model"));
        }
        Session::eval_batch(self, thetas, data, grad)
    }
}

/// The CPU for any likelihood: the minimiser of [`crate::fit`] and the toys
/// of [`crate::infer::toys`].
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuEngine;

impl<L: Likelihood> fit::BatchFitter<L> for CpuEngine {
    fn fit_batch(
        &self,
        model: &L,
        data: &[&L::Data],
        specs: &[FitSpec],
        opts: &FitOptions,
    ) -> Result<Vec<FitResult>> {
        if !(data.len() == 1 || data.len() == specs.len()) {
            return Err(Error::input(format!(
                "{} datasets for {} fits (need 1 or {})",
                data.len(),
                specs.len(),
                specs.len()
            )));
        }
        Ok(fit::fit_batch(model, data, specs, opts))
    }
}

impl<L: Likelihood> Engine<L> for CpuEngine {
    fn device(&self) -> Device {
        Device::Cpu
    }
    fn describe(&self) -> String {
        format!("CPU ({} threads)", rayon::current_num_threads())
    }
    fn run_toys(
        &self,
        p: &Problem<L>,
        settings: &ToySettings,
        opts: &FitOptions,
        progress: &(dyn Fn(u64, u64) + Sync),
    ) -> Result<ToyRun> {
        toys::run_toys(p, settings, opts, progress)
    }
    fn eval_batch(
        &self,
        model: &L,
        thetas: &[f64],
        data: &[&L::Data],
        grad: bool,
    ) -> Result<(Vec<f64>, Option<Vec<f64>>)> {
        use rayon::prelude::*;
        let p = model.n_pars();
        let t = batch_members(p, thetas.len(), data.len())?;
        let rows: Vec<(f64, Vec<f64>)> = (0..t)
            .into_par_iter()
            .map_init(
                || model.scratch(),
                |s, k| {
                    let d = data[if data.len() == 1 { 0 } else { k }];
                    let mut g = vec![0.0; if grad { p } else { 0 }];
                    let th = &thetas[k * p..(k + 1) * p];
                    let f = model.eval(th, d, s, grad.then_some(&mut g[..]), None);
                    (f, g)
                },
            )
            .collect();
        let f = rows.iter().map(|r| r.0).collect();
        let g = grad.then(|| rows.into_iter().flat_map(|r| r.1).collect());
        Ok((f, g))
    }
}

impl fit::BatchFitter<HistFactoryModel> for Session<'_> {
    fn fit_batch(
        &self,
        model: &HistFactoryModel,
        data: &[&Dataset],
        specs: &[FitSpec],
        opts: &FitOptions,
    ) -> Result<Vec<FitResult>> {
        if !std::ptr::eq(model, self.model) {
            return Err(Error::input("the model is not the session's model"));
        }
        Session::fit_batch(self, data, specs, opts)
    }
}

/// Members of a parameter batch of `n_numbers` numbers for `p` parameters,
/// checking that it holds whole vectors and that `n_data` is 1 or one per member.
pub(crate) fn batch_members(p: usize, n_numbers: usize, n_data: usize) -> Result<usize> {
    if p == 0 || !n_numbers.is_multiple_of(p) {
        return Err(Error::input(format!(
            "parameter batch has {n_numbers} numbers, not a multiple of {p}"
        )));
    }
    let t = n_numbers / p;
    if !(n_data == 1 || n_data == t) {
        return Err(Error::input(format!(
            "{n_data} datasets for {t} parameter vectors (need 1 or {t})"
        )));
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_devices() {
        assert_eq!("cpu".parse::<Device>().unwrap(), Device::Cpu);
        assert_eq!("CUDA".parse::<Device>().unwrap(), Device::Cuda(0));
        assert_eq!("cuda:3".parse::<Device>().unwrap(), Device::Cuda(3));
        assert!("cuda:x".parse::<Device>().is_err());
        assert!("tpu".parse::<Device>().is_err());
        assert_eq!(Device::Cuda(2).to_string(), "cuda:2");
        assert_eq!(Device::Cuda(0).to_string(), "cuda");
    }

    #[test]
    fn cuda_without_the_feature_is_a_clear_error() {
        let r = Device::Cuda(0).check();
        if cfg!(feature = "cuda") {
            assert!(r.is_ok());
        } else {
            assert_eq!(r.unwrap_err().to_string(), NO_CUDA);
        }
        assert!(Device::Cpu.check().is_ok());
    }
}
