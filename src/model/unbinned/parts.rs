//! The unbinned channel and the constraint terms as parts of a
//! [`CombinedModel`], and [`load_hs3`], which turns an HS3 file into one.

use super::atoms::Norm;
use super::constraint::ConstraintPart;
use super::hs3::{Hs3Part, read_hs3};
use super::part::{Events, UnbinnedPart, UnbinnedScratch};
use super::slots::{SlotFn, SlotValues};
use crate::error::Result;
use crate::model::combined::{
    CombinedModel, ConstraintInfo, HistFactoryPart, Part, PartData, PartGen, PartScratch,
};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;

/// Compile an HS3 document into a combined likelihood: its unbinned channels,
/// histfactory channels and constraint terms sharing parameters by name, with
/// the file's initial values, bounds, `const` flags and POI. `source` names the
/// file in messages, `base_dir` resolves external event files, `analysis` picks
/// an analysis (or, in files without analyses, a likelihood) by name.
pub fn load_hs3(
    value: &Value,
    source: &str,
    base_dir: &Path,
    analysis: Option<&str>,
) -> Result<CombinedModel> {
    let m = read_hs3(value, source, base_dir, analysis)?;
    let parts: Vec<Box<dyn Part>> = m
        .parts
        .into_iter()
        .map(|p| -> Box<dyn Part> {
            match p {
                Hs3Part::Unbinned(u) => u,
                Hs3Part::Constraints(c) => Box::new(c),
                Hs3Part::HistFactory(h) => Box::new(HistFactoryPart { model: *h }),
            }
        })
        .collect();
    let mut cm = CombinedModel::new(parts, m.poi.as_deref(), &m.label)?;
    // the file's table wins over the pyhf defaults of histfactory channels
    cm.warnings.clear();
    for (i, name) in m.par_names.iter().enumerate() {
        cm.set_init(name, m.init[i])?;
        let (lo, hi) = m.bounds[i];
        cm.set_bounds(name, lo.min(m.init[i]), hi.max(m.init[i]))?;
        cm.set_fixed(name, m.fixed[i])?;
    }
    cm.warnings.extend(m.warnings);
    Ok(cm)
}

fn events(d: &PartData) -> &Events {
    d.downcast_ref::<Events>()
        .expect("an unbinned part is always given its own Events")
}

/// The toy distribution of an unbinned part at one point.
struct UnbinnedGen {
    sv: SlotValues,
    norms: Option<Vec<Norm>>,
}

/// The [`Part`] accessors of a part that keeps its parameters and observed
/// data in fields named `par_names`, `init`, `bounds`, `fixed`, `observed`.
macro_rules! field_accessors {
    () => {
        fn par_names(&self) -> &[String] {
            &self.par_names
        }
        fn init(&self) -> &[f64] {
            &self.init
        }
        fn bounds(&self) -> &[(f64, f64)] {
            &self.bounds
        }
        fn fixed(&self) -> &[bool] {
            &self.fixed
        }
        fn observed(&self) -> PartData {
            self.observed.clone()
        }
    };
}

impl Part for UnbinnedPart {
    fn label(&self) -> String {
        UnbinnedPart::label(self)
    }
    field_accessors!();
    fn scratch(&self) -> PartScratch {
        Box::new(UnbinnedScratch::default())
    }
    fn reciprocal_pars(&self) -> Vec<usize> {
        let ch = &self.channel;
        let mut out = Vec::new();
        for a in &ch.atoms {
            for &k in a.shape.reciprocal_slots() {
                if let SlotFn::Par(i) = ch.slots[a.u0 + k].f {
                    out.push(i);
                }
            }
        }
        out
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
            .downcast_mut::<UnbinnedScratch>()
            .expect("an unbinned part is always given its own scratch");
        UnbinnedPart::eval(self, theta, events(data), s, grad, hess)
    }
    fn asimov(&self, theta: &[f64]) -> PartData {
        let ch = &self.channel;
        let mut sv = SlotValues::default();
        sv.compute(&ch.slots, theta, false);
        let data = match ch.norms(&sv) {
            Ok(norms) => ch.asimov(&sv, &norms, self.observed.data.sum_w()),
            // outside the domain: no events (twice_nll will be +inf where it matters)
            Err(_) => crate::data::EventData {
                names: ch.obs.iter().map(|o| o.name.clone()).collect(),
                cols: vec![Vec::new(); ch.obs.len()],
                weights: Some(Vec::new()),
            },
        };
        Arc::new(Events::new(data, ch.ext))
    }
    fn generator(&self, theta: &[f64]) -> PartGen {
        let mut sv = SlotValues::default();
        sv.compute(&self.channel.slots, theta, false);
        let norms = self.channel.norms(&sv).ok();
        Box::new(UnbinnedGen { sv, norms })
    }
    fn sample(&self, g: &PartGen, seed: u64, toy: u32, purpose: u32) -> PartData {
        let g = g
            .downcast_ref::<UnbinnedGen>()
            .expect("an unbinned part is always given its own generator");
        let ch = &self.channel;
        let data = match &g.norms {
            Some(norms) => ch.sample(
                &g.sv,
                norms,
                self.observed.data.len(),
                seed,
                toy,
                purpose,
                0,
            ),
            None => crate::data::EventData {
                names: ch.obs.iter().map(|o| o.name.clone()).collect(),
                cols: vec![Vec::new(); ch.obs.len()],
                weights: None,
            },
        };
        Arc::new(Events::new(data, ch.ext))
    }
    fn magnitude(&self, data: &PartData) -> f64 {
        events(data).magnitude
    }
    fn domain_issue(&self, theta: &[f64], data: &PartData) -> Option<String> {
        self.check(theta, events(data))
    }
    fn score_outer(&self, theta: &[f64], data: &PartData) -> Option<Vec<f64>> {
        UnbinnedPart::score_outer(self, theta, events(data)).ok()
    }
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
    fn describe(&self) -> Value {
        let ch = &self.channel;
        json!({
            "type": "unbinned",
            "name": ch.name,
            "data": self.data_name,
            "extended": ch.ext == super::Extension::Extended,
            "n_events": self.observed.data.len(),
            "sum_weights": self.observed.data.sum_w(),
            "observables": ch.obs.iter().map(|o| json!({"name": o.name, "min": o.lo, "max": o.hi})).collect::<Vec<_>>(),
            "components": ch.leaves.iter().map(|l| json!({
                "name": l.label,
                "distributions": l.atoms.iter().map(|&m| json!({
                    "name": ch.atoms[m].name,
                    "type": ch.atoms[m].shape.name(),
                    "observable": ch.obs[ch.atoms[m].obs].name,
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "parameters": self.par_names,
        })
    }
}

fn aux(d: &PartData) -> &Vec<f64> {
    d.downcast_ref::<Vec<f64>>()
        .expect("a constraint part is always given its own data")
}

struct ConstraintGen {
    theta: Vec<f64>,
}

impl Part for ConstraintPart {
    fn label(&self) -> String {
        ConstraintPart::label(self)
    }
    field_accessors!();
    fn scratch(&self) -> PartScratch {
        Box::new(SlotValues::default())
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
            .downcast_mut::<SlotValues>()
            .expect("a constraint part is always given its own scratch");
        ConstraintPart::eval(self, theta, aux(data), s, grad, hess)
    }
    fn asimov(&self, theta: &[f64]) -> PartData {
        Arc::new(ConstraintPart::asimov(self, theta))
    }
    fn generator(&self, theta: &[f64]) -> PartGen {
        Box::new(ConstraintGen {
            theta: theta.to_vec(),
        })
    }
    fn sample(&self, g: &PartGen, seed: u64, toy: u32, purpose: u32) -> PartData {
        let g = g
            .downcast_ref::<ConstraintGen>()
            .expect("a constraint part is always given its own generator");
        Arc::new(ConstraintPart::sample(
            self, &g.theta, seed, toy, purpose, 0,
        ))
    }
    fn magnitude(&self, data: &PartData) -> f64 {
        aux(data).iter().map(|x| x.abs()).sum::<f64>() + 2.0 * self.terms.len() as f64
    }
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
    fn constraint(&self, i: usize) -> Option<ConstraintInfo> {
        ConstraintPart::constraint(self, i).map(|(kind, sigma, center)| ConstraintInfo {
            kind,
            sigma,
            center,
        })
    }
    fn describe(&self) -> Value {
        json!({
            "type": "constraints",
            "terms": self.terms.iter().zip(self.observed.iter()).map(|(t, x)| json!({
                "name": t.name,
                "kind": format!("{:?}", t.kind).to_lowercase(),
                "global_observable": t.obs,
                "value": x,
            })).collect::<Vec<_>>(),
            "parameters": self.par_names,
        })
    }
}
