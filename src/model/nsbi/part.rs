//! An unbinned channel as a [`Part`] of a [`crate::model::CombinedModel`].

use super::kernel::{self, Bad, Scratch};
use super::{NsbiChannel, NsbiData, SetId, toys};
use crate::model::combined::{Part, PartData, PartGen, PartScratch};
use serde_json::{Value, json};
use std::sync::Arc;

/// One unbinned channel (its Poisson term and per-event density ratios; the
/// constraint terms of its nuisance parameters are in [`super::GaussConstraints`]).
#[derive(Debug)]
pub struct NsbiPart {
    /// The channel.
    pub channel: Arc<NsbiChannel>,
}

impl NsbiPart {
    /// Wrap a channel.
    pub fn new(channel: NsbiChannel) -> Self {
        NsbiPart {
            channel: Arc::new(channel),
        }
    }

    fn data<'a>(&self, d: &'a PartData) -> &'a NsbiData {
        d.downcast_ref::<NsbiData>()
            .expect("an unbinned part is always given its own NsbiData")
    }

    /// Describe why twice_nll is not finite.
    pub fn explain(&self, bad: &Bad, set: SetId) -> String {
        let ch = &self.channel;
        let label = &ch.set(set).label;
        match *bad {
            Bad::Rate { event, lambda } => format!(
                "{label}: event {event}: the rate lambda = sum_c A_c g_c r_c is {lambda} (must be > 0); \
                 coefficients A = {:?}",
                ch.processes
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
            ),
            Bad::Shape { event, shape, g } => format!(
                "{label}: event {event}: the code-4 shape factor of {} is {g} (must be > 0)",
                ch.shapes[shape].label
            ),
            Bad::NotFinite(v) => format!("{label}: twice_nll is {v}"),
        }
    }
}

impl Part for NsbiPart {
    fn label(&self) -> String {
        format!("unbinned channel '{}'", self.channel.name)
    }
    fn par_names(&self) -> &[String] {
        &self.channel.par_names
    }
    fn init(&self) -> &[f64] {
        &self.channel.init
    }
    fn bounds(&self) -> &[(f64, f64)] {
        &self.channel.bounds
    }
    fn fixed(&self) -> &[bool] {
        &self.channel.fixed
    }
    fn poi(&self) -> Option<usize> {
        self.channel.poi
    }
    fn observed(&self) -> PartData {
        Arc::new(self.channel.observed_data())
    }
    fn scratch(&self) -> PartScratch {
        Box::new(Scratch::new(&self.channel))
    }
    fn eval(
        &self,
        theta: &[f64],
        data: &PartData,
        scratch: &mut PartScratch,
        grad: Option<&mut [f64]>,
        hess: Option<&mut [f64]>,
    ) -> f64 {
        let s = scratch
            .downcast_mut::<Scratch>()
            .expect("an unbinned part is always given its own scratch");
        kernel::eval(&self.channel, theta, self.data(data), s, grad, hess).unwrap_or(f64::INFINITY)
    }
    fn asimov(&self, theta: &[f64]) -> PartData {
        Arc::new(toys::asimov(&self.channel, theta))
    }
    fn generator(&self, theta: &[f64]) -> PartGen {
        Box::new(toys::Generator::new(&self.channel, theta))
    }
    fn sample(&self, g: &PartGen, seed: u64, toy: u32, purpose: u32) -> PartData {
        let g = g
            .downcast_ref::<toys::Generator>()
            .expect("an unbinned part is always given its own generator");
        Arc::new(g.sample(&self.channel, seed, toy, purpose))
    }
    fn magnitude(&self, data: &PartData) -> f64 {
        let d = self.data(data);
        let n = d.sum_w.abs();
        2.0 * d.lgamma.abs() + 2.0 * n * (1.0 + (1.0 + n).ln())
    }
    fn domain_issue(&self, theta: &[f64], data: &PartData) -> Option<String> {
        let d = self.data(data);
        let mut s = Scratch::new(&self.channel);
        match kernel::eval(&self.channel, theta, d, &mut s, None, None) {
            Ok(_) => None,
            Err(b) => Some(self.explain(&b, d.set)),
        }
    }
    fn describe(&self) -> Value {
        let ch = &self.channel;
        json!({
            "type": "unbinned",
            "channel": ch.name,
            "n_events": ch.observed.n,
            "sum_weights": ch.observed.sum_w(),
            "reference_sample": ch.reference.as_ref().map(|r| json!({"n_events": r.n, "sum_weights": r.sum_w()})),
            "samples": ch.processes.iter().map(|p| json!({
                "name": p.name,
                "yield": p.nu,
                "factors": p.factors.iter().map(|f| f.describe(&ch.par_names)).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "shape_variations": ch.shapes.iter().map(|s| s.label.clone()).collect::<Vec<_>>(),
            "parameters": ch.par_names,
            "diagnostics": super::diag::diagnostics(ch),
        })
    }
}
