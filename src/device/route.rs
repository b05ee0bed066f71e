//! Which work of a `--device cuda` session runs on the GPU and which on the
//! CPU.
//!
//! The kernels give one batch member to one GPU thread, so a member's dense
//! algebra (the Hessian and the Cholesky factor of its global block) runs at
//! the speed of one GPU thread. On the H200 measured on 2026-11-28
//! (docs/gpu.md) that made the GPU slower than the same machine's CPU cores
//! for single fits, scans, impacts and for toys of every published workspace
//! with a large dense block; only large batches of models with a small global
//! block gain. Under [`Policy::Auto`] (the default) work runs on the GPU only
//! where those measurements say it is faster, so that `--device cuda` is
//! never slower than `--device cpu`; [`Policy::Gpu`] (`GRADFIT_GPU_ROUTE=gpu`)
//! sends everything to the GPU, for measurements and tests.

use crate::error::{Error, Result};

/// Evaluation batches smaller than this run on the CPU: the measured
/// break-even on tttt (206,000 evaluations/s on the GPU at 100,000 members
/// against about 180,000/s on 16 CPU cores; 49,000/s at 1,000 members).
pub const MIN_GPU_EVALS: usize = 100_000;

/// Fit batches (toy runs: fits in all) smaller than this run on the CPU.
/// Measured: sbottom toys on the GPU at 20,000 toys (80,000 fits) 9,000 fits/s
/// against 7,600/s on 16 cores; at 5,000 toys 3,750/s.
pub const MIN_GPU_FITS: usize = 50_000;

/// Largest global (dense) Hessian block for which fits run on the GPU under
/// [`Policy::Auto`]: sbottom's is 56 (faster on the GPU at large batches),
/// staus's 111, tttt's 138 and offshell's 132 (slower at every batch size).
pub const MAX_GPU_GLOBAL: usize = 64;

/// Where a GPU session's work runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// On the GPU only where it is measured to be faster (the default).
    Auto,
    /// Everything on the GPU.
    Gpu,
}

impl Policy {
    /// The policy of `GRADFIT_GPU_ROUTE` (`auto`, the default, or `gpu`).
    pub fn from_env() -> Result<Policy> {
        match std::env::var("GRADFIT_GPU_ROUTE") {
            Err(_) => Ok(Policy::Auto),
            Ok(v) => match v.trim().to_ascii_lowercase().as_str() {
                "" | "auto" => Ok(Policy::Auto),
                "gpu" | "device" | "cuda" => Ok(Policy::Gpu),
                other => Err(Error::input(format!(
                    "GRADFIT_GPU_ROUTE={other}: expected auto or gpu"
                ))),
            },
        }
    }
}

/// The routing decisions of a session.
#[derive(Debug, Clone, Copy)]
pub struct Router {
    /// The policy.
    pub policy: Policy,
}

impl Router {
    /// Whether an evaluation batch of `members` runs on the GPU.
    pub fn evals_on_gpu(&self, members: usize) -> bool {
        self.policy == Policy::Gpu || members >= MIN_GPU_EVALS
    }

    /// Whether a batch of `fits` fits (a toy run: all its fits) runs on the
    /// GPU; `n_global` gives the size of the model's global (dense) Hessian
    /// block, asked only for batches large enough to matter.
    pub fn fits_on_gpu(&self, fits: usize, n_global: impl FnOnce() -> usize) -> bool {
        self.policy == Policy::Gpu || (fits >= MIN_GPU_FITS && n_global() <= MAX_GPU_GLOBAL)
    }

    /// The note printed once when work of a GPU session runs on the CPU.
    pub fn note(what: &str) -> String {
        format!(
            "note: --device cuda: {what} run on the CPU, which is faster for this model and batch \
             size on the measured GPUs (docs/gpu.md); GRADFIT_GPU_ROUTE=gpu forces the GPU"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_routes_small_batches_and_dense_models_to_the_cpu() {
        let auto = Router {
            policy: Policy::Auto,
        };
        let small = || 56;
        let dense = || 138;
        assert!(!auto.fits_on_gpu(1, || panic!("the block size is not needed here")));
        assert!(!auto.fits_on_gpu(MIN_GPU_FITS - 1, small));
        assert!(auto.fits_on_gpu(MIN_GPU_FITS, small));
        assert!(!auto.fits_on_gpu(10 * MIN_GPU_FITS, dense));
        assert!(!auto.evals_on_gpu(MIN_GPU_EVALS - 1));
        assert!(auto.evals_on_gpu(MIN_GPU_EVALS));
        let forced = Router {
            policy: Policy::Gpu,
        };
        assert!(forced.fits_on_gpu(1, dense) && forced.evals_on_gpu(1));
    }
}
