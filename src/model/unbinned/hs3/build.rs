//! Parts of an HS3 likelihood: unbinned channels and constraint terms with
//! their local parameter tables and slots.

use super::Doc;
use super::dists::{ChannelSpec, TermSpec};
use super::table::{Selection, err, point_value};
use crate::data::EventData;
use crate::error::Result;
use crate::expr::Expr;
use crate::model::unbinned::atoms::Atom;
use crate::model::unbinned::channel::{Axis, Channel, Extension, Leaf};
use crate::model::unbinned::constraint::{ConstraintPart, ConstraintTerm};
use crate::model::unbinned::part::{Events, UnbinnedPart};
use crate::model::unbinned::slots::{Slot, SlotFn};
use std::sync::Arc;

pub(super) struct Table<'t> {
    pub names: &'t [String],
    pub init: &'t [f64],
    pub bounds: &'t [(f64, f64)],
    pub fixed: &'t [bool],
}

/// Local parameter table of a part and a slot compiler over it.
struct Local {
    names: Vec<String>,
}

impl Local {
    fn slot(&mut self, e: &Expr, label: String) -> Slot {
        let idx = |names: &mut Vec<String>, v: &str| match names.iter().position(|x| x == v) {
            Some(i) => i,
            None => {
                names.push(v.to_string());
                names.len() - 1
            }
        };
        let f = if e.is_constant() {
            SlotFn::Const(e.eval(&[]))
        } else if e.variables().len() == 1 && matches!(e.nodes(), [crate::expr::Node::Var(0)]) {
            SlotFn::Par(idx(&mut self.names, &e.variables()[0]))
        } else {
            let vars = e
                .variables()
                .iter()
                .map(|v| idx(&mut self.names, v))
                .collect();
            SlotFn::Expr {
                expr: e.clone(),
                vars,
            }
        };
        Slot { f, label }
    }

    fn tables(&self, t: &Table) -> (Vec<f64>, Vec<(f64, f64)>, Vec<bool>) {
        let pos = |n: &String| t.names.iter().position(|x| x == n).unwrap_or(0);
        (
            self.names.iter().map(|n| t.init[pos(n)]).collect(),
            self.names.iter().map(|n| t.bounds[pos(n)]).collect(),
            self.names.iter().map(|n| t.fixed[pos(n)]).collect(),
        )
    }
}

pub(super) fn unbinned_part(
    doc: &Doc,
    spec: ChannelSpec,
    axes: Vec<Axis>,
    events: EventData,
    dname: String,
    t: &Table,
) -> Result<UnbinnedPart> {
    // the channel's observables: the data axes its atoms use, in data order
    let used: Vec<usize> = (0..axes.len())
        .filter(|&k| spec.atoms.iter().any(|a| a.obs == axes[k].name))
        .collect();
    let obs: Vec<Axis> = used.iter().map(|&k| axes[k].clone()).collect();
    let cols: Vec<Vec<f64>> = used.iter().map(|&k| events.cols[k].clone()).collect();
    let data = EventData::new(
        obs.iter().map(|a| a.name.clone()).collect(),
        cols,
        events.weights,
    )?;
    let mut local = Local { names: Vec::new() };
    let mut slots = Vec::new();
    let mut leaves = Vec::new();
    for (e, atoms, label) in &spec.leaves {
        slots.push(local.slot(e, format!("coefficient of '{label}'")));
        leaves.push(Leaf {
            coef: slots.len() - 1,
            atoms: atoms.clone(),
            label: label.clone(),
        });
    }
    let mut atoms = Vec::new();
    for a in &spec.atoms {
        let o = obs.iter().position(|x| x.name == a.obs).unwrap_or(0);
        let u0 = slots.len();
        let keys = a.shape.par_keys();
        for (k, e) in a.params.iter().enumerate() {
            slots.push(local.slot(
                e,
                format!("{}/{}", a.loc, keys.get(k).cloned().unwrap_or_default()),
            ));
        }
        atoms.push(Atom {
            shape: a.shape.clone(),
            obs: o,
            lo: obs[o].lo,
            hi: obs[o].hi,
            u0,
            name: a.name.clone(),
        });
    }
    let ext = if spec.extended {
        Extension::Extended
    } else {
        Extension::Fractions
    };
    let np = local.names.len();
    let channel = Channel::new(spec.name.clone(), obs, atoms, leaves, slots, ext, np);
    let (init, bounds, fixed) = local.tables(t);
    let events = Events::new(data, ext);
    let part = UnbinnedPart {
        channel,
        par_names: local.names,
        init,
        bounds,
        fixed,
        observed: Arc::new(events),
        data_name: dname,
    };
    // the model must be defined at the initial point: fractions, normalisations,
    // densities at the events
    check_fractions(doc, &part)?;
    let mut sv = crate::model::unbinned::slots::SlotValues::default();
    sv.compute(&part.channel.slots, &part.init, false);
    for (a, spec_a) in part.channel.atoms.iter().zip(&spec.atoms) {
        if let Err(m) = a.norm(&sv.v[a.u0..a.u0 + a.d()]) {
            return Err(err(
                doc,
                &spec_a.loc,
                format!(
                    "'{}' ({}) at the initial parameter values: {m}",
                    a.name,
                    a.shape.name()
                ),
            ));
        }
    }
    if let Some(m) = part.check(&part.init, &part.observed) {
        let li = doc.dists.get(&spec.name).copied().unwrap_or(0);
        return Err(err(
            doc,
            &format!("/distributions/{li}"),
            format!("at the initial parameter values: {m}"),
        ));
    }
    Ok(part)
}

/// Non-extended coefficients must not be negative at the initial point (fractions summing above one).
fn check_fractions(doc: &Doc, part: &UnbinnedPart) -> Result<()> {
    if part.channel.ext == Extension::Extended {
        return Ok(());
    }
    let mut sv = crate::model::unbinned::slots::SlotValues::default();
    sv.compute(&part.channel.slots, &part.init, false);
    for l in &part.channel.leaves {
        let a = sv.v[l.coef];
        if a < -1e-12 {
            let li = doc.dists.get(&part.channel.name).copied().unwrap_or(0);
            return Err(err(
                doc,
                &format!("/distributions/{li}/coefficients"),
                format!(
                    "the fractions of '{}' sum to more than one at the initial parameter values: component '{}' gets {a}",
                    part.channel.name, l.label
                ),
            ));
        }
    }
    Ok(())
}

pub(super) fn constraint_part(
    doc: &Doc,
    terms: Vec<(TermSpec, Option<f64>)>,
    sel: &Selection,
    t: &Table,
) -> Result<ConstraintPart> {
    let mut local = Local { names: Vec::new() };
    let mut out = Vec::new();
    let mut obs = Vec::new();
    for (ts, x) in terms {
        let x = match x {
            Some(x) => x,
            None => sel
                .point
                .and_then(|p| point_value(doc, p, &ts.obs))
                .or_else(|| (0..doc.points.len()).find_map(|p| point_value(doc, p, &ts.obs)))
                .map(|v| v.0)
                .ok_or_else(|| err(doc, &ts.loc, format!("the global observable '{}' of '{}' has no value in any parameter point", ts.obs, ts.name)))?,
        };
        let slots = ts
            .params
            .iter()
            .enumerate()
            .map(|(k, e)| local.slot(e, format!("{}/param{k}", ts.loc)))
            .collect();
        out.push(ConstraintTerm {
            kind: ts.kind,
            slots,
            obs: ts.obs.clone(),
            name: ts.name.clone(),
        });
        obs.push(x);
    }
    let (init, bounds, fixed) = local.tables(t);
    Ok(ConstraintPart {
        terms: out,
        par_names: local.names,
        init,
        bounds,
        fixed,
        observed: Arc::new(obs),
    })
}
