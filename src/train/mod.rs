//! Training through the fit: neos- and INFERNO-style optimisation of summary
//! statistics with exact gradients through fitted results.
//!
//! The pipeline: network outputs on each sample's events -> soft histograms
//! ([`hist`]) -> template tensors of an [`spec::AnalysisSpec`] -> the
//! likelihood as candle expressions of the templates ([`graph`]) -> fits with
//! the fused kernel, differentiable by implicit differentiation ([`implicit`])
//! -> inference losses ([`loss`]). The loss returns a surrogate tensor whose
//! reverse pass gives the exact gradient with respect to the templates and
//! everything upstream (network weights, nuisance-dependent inputs).
//! [`nn`] has seeded MLPs with forward-mode tangents, [`run`] optimisers,
//! curves and progress, [`neos`] and [`inferno`] the two reference problems,
//! [`config`] the `gradfit train` configuration.

pub mod config;
pub mod graph;
pub mod hist;
pub mod implicit;
pub mod inferno;
pub mod loss;
pub mod neos;
pub mod nn;
pub mod run;
pub mod spec;

pub use graph::{DataTensors, TemplateGraph};
pub use loss::{Analysis, LossKind, LossValue, reattach};
pub use spec::{
    AnalysisSpec, ChannelSpec, ModifierSpec, SampleSpec, SampleTemplates, TemplateValues, Templates,
};
