//! The GPU path: gradfit's own CUDA kernels (kernels/*.cu) for batched
//! likelihood evaluations, batched fits and whole toy runs, in f64.
//!
//! - [`plan`]: the model as flat tables and the packed block Hessian;
//! - [`params`]: the parameter block every kernel takes;
//! - [`exec`]: the host side (buffers, kernel sequences, results) for any
//!   [`exec::Backend`];
//! - `cuda` (feature `cuda`): the CUDA backend through cudarc, with the PTX
//!   that build.rs compiles with nvcc;
//! - `emu` (feature `cuda-emu`): the same kernel bodies compiled for the host,
//!   so that the GPU code paths run, and are tested against the CPU kernel,
//!   on machines without a GPU.
//!
//! One GPU thread owns one batch member (a fit, an evaluation point, or one
//! random variable of a toy); docs/gpu.md explains the design and its limits.

pub mod exec;
pub mod params;
pub mod plan;
pub mod selftest;

#[cfg(feature = "cuda")]
pub mod cuda;
#[cfg(feature = "cuda-emu")]
pub mod emu;

pub use exec::{Backend, EvalMode, EvalOut, Gpu, run_toys};
pub use plan::DeviceModel;
