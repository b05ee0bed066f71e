//! gradfit: differentiable HistFactory likelihoods, batched fits and inference.
//!
//! Layers, bottom up: [`workspace`] (pyhf JSON, patches, validation) ->
//! [`model`] (compiled likelihoods: fused kernel, candle graph, custom op) ->
//! [`fit`] (batched bounded Newton minimiser, covariance) -> [`cli`].

pub mod cli;
pub mod data;
pub mod device;
pub mod error;
pub mod expr;
pub mod fit;
#[doc(hidden)]
pub mod fuzz;
#[cfg(any(feature = "cuda", feature = "cuda-emu"))]
pub mod gpu;
pub mod infer;
pub mod model;
pub mod report;
pub mod rng;
pub mod synthetic;
pub mod train;
pub mod util;
pub mod workspace;

pub use error::{Error, Result};
pub use model::{Dataset, HistFactoryModel, Likelihood, ModelOptions};
