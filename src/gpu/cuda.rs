//! The CUDA backend (feature `cuda`): the fatbin that build.rs compiled from
//! kernels/gradfit.cu with nvcc, loaded through the CUDA driver API (cudarc,
//! which opens libcuda at run time: the binary needs no CUDA library to
//! start, only the driver to run on a GPU).
//!
//! All work goes to one stream of the device's primary context, in order;
//! reads wait for the stream.

use super::exec::Backend;
use super::params::{GfParams, Kernel};
use crate::error::{Error, Result};
use cudarc::driver::{
    CudaContext, CudaFunction, CudaSlice, CudaStream, DevicePtr, DeviceRepr, LaunchConfig,
    PushKernelArg,
};
use std::sync::{Arc, Mutex, OnceLock};

/// kernels/gradfit.cu compiled by nvcc: machine code for the compute
/// capability the build targeted, plus its PTX for newer GPUs.
pub const FATBIN: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/gradfit.fatbin"));

/// `nvcc --version` of the compiler that built [`FATBIN`], and the target architecture.
pub const BUILD_INFO: &str = env!("GRADFIT_CUDA_BUILD");

/// ptxas's report of registers, stack and spills per kernel.
pub const PTXAS_REPORT: &str = include_str!(concat!(env!("OUT_DIR"), "/ptxas.txt"));

/// Threads per block of every launch (the kernels' `__launch_bounds__`).
pub const BLOCK: u32 = 128;

// SAFETY: GfParams is #[repr(C)], all fields 8 bytes, the layout of the C++ struct.
unsafe impl DeviceRepr for GfParams {}

fn cu(e: impl std::fmt::Display) -> Error {
    Error::input(format!("CUDA: {e}"))
}

/// One CUDA device with the kernels loaded.
pub struct CudaBackend {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    funcs: Vec<CudaFunction>,
    ordinal: usize,
    /// Multiprocessors of the device.
    sms: u64,
}

/// Whether the CUDA driver library can be loaded at all.
pub fn driver_present() -> bool {
    // SAFETY: only tries to dlopen the driver library.
    std::panic::catch_unwind(|| unsafe { cudarc::driver::sys::is_culib_present() }).unwrap_or(false)
}

impl CudaBackend {
    /// Open device `ordinal` and load the kernels. Errors (never panics) when
    /// there is no driver, no such device, or the PTX cannot be loaded.
    pub fn new(ordinal: usize) -> Result<Self> {
        if !driver_present() {
            return Err(Error::input(
                "no CUDA driver found (libcuda.so could not be loaded): this machine has no NVIDIA GPU driver",
            ));
        }
        let ctx = std::panic::catch_unwind(|| CudaContext::new(ordinal))
            .map_err(|_| Error::input("the CUDA driver could not be initialised"))?
            .map_err(|e| {
                let n = CudaContext::device_count().unwrap_or(0);
                Error::input(format!(
                    "cannot open CUDA device {ordinal} ({n} device(s) present): {e}"
                ))
            })?;
        // One stream only: the stream orders every use, no events needed.
        // SAFETY: every buffer of this context is used on `stream` alone.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx.default_stream();
        let module = ctx
            .load_module(cudarc::nvrtc::Ptx::from_binary(FATBIN.to_vec()))
            .map_err(|e| cu(format!("loading the kernels ({BUILD_INFO}) failed: {e}; the driver may be older than the CUDA compiler")))?;
        let funcs = Kernel::ALL
            .iter()
            .map(|k| {
                module
                    .load_function(k.name())
                    .map_err(|e| cu(format!("kernel {}: {e}", k.name())))
            })
            .collect::<Result<Vec<_>>>()?;
        let sms = ctx
            .attribute(
                cudarc::driver::sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT,
            )
            .map(|n| n.max(1) as u64)
            .unwrap_or(132);
        Ok(CudaBackend {
            ctx,
            stream,
            funcs,
            ordinal,
            sms,
        })
    }

    /// Device name, compute capability, memory and driver version.
    pub fn device_info(&self) -> String {
        let name = self.ctx.name().unwrap_or_else(|_| "?".into());
        let cc = self
            .ctx
            .compute_capability()
            .map(|(a, b)| format!("{a}.{b}"))
            .unwrap_or_else(|_| "?".into());
        let mem = self
            .ctx
            .total_mem()
            .map(|b| b as f64 / (1u64 << 30) as f64)
            .unwrap_or(f64::NAN);
        let mut v = 0i32;
        // SAFETY: writes one int.
        let drv = unsafe { cudarc::driver::sys::cuDriverGetVersion(&mut v) };
        let drv = if drv == cudarc::driver::sys::CUresult::CUDA_SUCCESS {
            format!("{}.{}", v / 1000, (v % 1000) / 10)
        } else {
            "?".into()
        };
        format!(
            "CUDA device {}: {name}, compute capability {cc}, {mem:.1} GiB, driver API {drv}",
            self.ordinal
        )
    }
}

impl Backend for CudaBackend {
    type Buf = CudaSlice<u8>;

    fn describe(&self) -> String {
        self.device_info()
    }

    fn alloc_zeroed(&self, bytes: usize) -> Result<CudaSlice<u8>> {
        self.stream
            .alloc_zeros::<u8>(bytes.max(8))
            .map_err(|e| cu(format!("allocating {bytes} bytes: {e}")))
    }

    fn write(&self, buf: &mut CudaSlice<u8>, bytes: &[u8]) -> Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        let mut view = buf.slice_mut(0..bytes.len());
        self.stream.memcpy_htod(bytes, &mut view).map_err(cu)
    }

    fn read(&self, buf: &CudaSlice<u8>, out: &mut [u8]) -> Result<()> {
        if !out.is_empty() {
            let view = buf.slice(0..out.len());
            self.stream.memcpy_dtoh(&view, out).map_err(cu)?;
        }
        self.stream.synchronize().map_err(cu)
    }

    fn addr(&self, buf: &CudaSlice<u8>) -> u64 {
        let (ptr, _sync) = buf.device_ptr(&self.stream);
        ptr
    }

    fn launch(&self, kernel: Kernel, n_threads: u64, p: &GfParams) -> Result<()> {
        let mut pp = *p;
        pp.n_threads = n_threads;
        let block = crate::gpu::exec::block_size(n_threads, self.sms, BLOCK);
        let blocks = n_threads.div_ceil(block as u64);
        let blocks = u32::try_from(blocks).map_err(|_| cu("launch too large"))?;
        let cfg = LaunchConfig {
            grid_dim: (blocks, 1, 1),
            block_dim: (block, 1, 1),
            shared_mem_bytes: 0,
        };
        let f = &self.funcs[kernel.id() as usize];
        let mut b = self.stream.launch_builder(f);
        b.arg(&pp);
        // SAFETY: the kernel reads `pp` by value; every address in it points
        // into a live allocation of this context sized by the host side.
        unsafe { b.launch(cfg) }
            .map(|_| ())
            .map_err(|e| cu(format!("{}: {e}", kernel.name())))
    }

    fn synchronize(&self) -> Result<()> {
        self.stream.synchronize().map_err(cu)
    }

    fn free_memory(&self) -> Option<usize> {
        self.ctx.mem_get_info().ok().map(|(free, _)| free)
    }
}

/// Backends opened so far, by ordinal.
type Registry = Mutex<Vec<(usize, Arc<CudaBackend>)>>;

/// The open backends (opening one costs a context and a module load).
fn registry() -> &'static Registry {
    static R: OnceLock<Registry> = OnceLock::new();
    R.get_or_init(|| Mutex::new(Vec::new()))
}

/// The shared backend of device `ordinal` (opened on first use).
pub fn backend(ordinal: usize) -> Result<Arc<CudaBackend>> {
    let mut r = registry().lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, b)) = r.iter().find(|(o, _)| *o == ordinal) {
        return Ok(b.clone());
    }
    let b = Arc::new(CudaBackend::new(ordinal)?);
    r.push((ordinal, b.clone()));
    Ok(b)
}

impl Backend for Arc<CudaBackend> {
    type Buf = CudaSlice<u8>;
    fn describe(&self) -> String {
        self.as_ref().describe()
    }
    fn alloc_zeroed(&self, bytes: usize) -> Result<CudaSlice<u8>> {
        self.as_ref().alloc_zeroed(bytes)
    }
    fn write(&self, buf: &mut CudaSlice<u8>, bytes: &[u8]) -> Result<()> {
        self.as_ref().write(buf, bytes)
    }
    fn read(&self, buf: &CudaSlice<u8>, out: &mut [u8]) -> Result<()> {
        self.as_ref().read(buf, out)
    }
    fn addr(&self, buf: &CudaSlice<u8>) -> u64 {
        self.as_ref().addr(buf)
    }
    fn launch(&self, kernel: Kernel, n_threads: u64, p: &GfParams) -> Result<()> {
        self.as_ref().launch(kernel, n_threads, p)
    }
    fn synchronize(&self) -> Result<()> {
        self.as_ref().synchronize()
    }
    fn free_memory(&self) -> Option<usize> {
        self.as_ref().free_memory()
    }
}
