//! `gradfit inspect`: what a model holds (channels, samples, modifiers; for HS3
//! models the unbinned channels' observables and distributions) and its parameters.

use super::table::{Table, fmt};
use super::{ModelArgs, OutputArgs};
use crate::error::Result;
use crate::model::histfactory::Constraint;
use crate::model::{AnyModel, CombinedModel, HistFactoryModel, Likelihood, ModelInfo};
use clap::Args;
use serde_json::{Value, json};

/// Arguments of `gradfit inspect`.
#[derive(Args, Debug)]
pub struct InspectArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    pub(super) out: OutputArgs,
}

/// `gradfit inspect`.
pub fn inspect(a: &InspectArgs) -> Result<i32> {
    match a.model.load_any()?.model {
        AnyModel::HistFactory(model) => inspect_histfactory(a, &model),
        AnyModel::Combined(model) => inspect_combined(a, &model),
    }
}

/// The observables and distributions of the unbinned channels in a combined
/// model's description, as text.
fn unbinned_summary(v: &Value) -> String {
    let mut s = String::new();
    let empty = Vec::new();
    let list = |x: &Value| x.as_array().unwrap_or(&empty).clone();
    for p in list(&v["parts"]) {
        if p["type"] != "unbinned" {
            continue;
        }
        s.push_str(&format!(
            "unbinned channel {} ({} events, sum of weights {}, {})\n  observables:",
            p["name"].as_str().unwrap_or("?"),
            p["n_events"],
            fmt(p["sum_weights"].as_f64().unwrap_or(f64::NAN)),
            if p["extended"] == true {
                "extended"
            } else {
                "not extended"
            }
        ));
        for o in list(&p["observables"]) {
            s.push_str(&format!(
                " {} [{}, {}]",
                o["name"].as_str().unwrap_or("?"),
                o["min"],
                o["max"]
            ));
        }
        s.push_str("\n  components:\n");
        for c in list(&p["components"]) {
            let d: Vec<String> = list(&c["distributions"])
                .iter()
                .map(|d| {
                    format!(
                        "{} = {}({})",
                        d["name"].as_str().unwrap_or("?"),
                        d["type"].as_str().unwrap_or("?"),
                        d["observable"].as_str().unwrap_or("?")
                    )
                })
                .collect();
            s.push_str(&format!(
                "    {}: {}\n",
                c["name"].as_str().unwrap_or("?"),
                d.join(" * ")
            ));
        }
        s.push('\n');
    }
    s
}

fn inspect_combined(a: &InspectArgs, model: &CombinedModel) -> Result<i32> {
    let mut v = model.describe();
    let mut params = Vec::new();
    for (i, name) in model.par_names().iter().enumerate() {
        let c = model.constraint_info(i);
        params.push(json!({
            "name": name,
            "init": model.init()[i],
            "bounds": [model.bounds()[i].0, model.bounds()[i].1],
            "fixed": model.fixed()[i],
            "constraint": c.map(|c| json!({"type": c.kind, "sigma": c.sigma, "center": c.center})),
        }));
    }
    v["parameters"] = json!(params);
    a.out.emit(&v, || {
        let mut s = format!(
            "model {}  POI {}\n{} parts, {} parameters\n\n",
            model.label,
            model
                .poi()
                .map(|i| model.par_names()[i].as_str())
                .unwrap_or("(none)"),
            model.parts().len(),
            model.n_pars()
        );
        let mut t = Table::new(&["part", "parameters"], &[false, false]);
        for (k, part) in model.parts().iter().enumerate() {
            let names: Vec<&str> = model
                .part_map(k)
                .iter()
                .map(|&g| model.par_names()[g].as_str())
                .collect();
            t.row(vec![part.label(), names.join(", ")]);
        }
        s.push_str(&t.render());
        s.push('\n');
        s.push_str(&unbinned_summary(&v));
        let mut t = Table::new(
            &["parameter", "init", "bounds", "fixed", "constraint"],
            &[false, true, false, false, false],
        );
        for (i, name) in model.par_names().iter().enumerate() {
            let con = model
                .constraint_info(i)
                .map(|c| {
                    format!(
                        "{}(sigma={}, center={})",
                        c.kind,
                        fmt(c.sigma),
                        fmt(c.center)
                    )
                })
                .unwrap_or_else(|| "-".into());
            t.row(vec![
                name.clone(),
                fmt(model.init()[i]),
                format!("[{}, {}]", model.bounds()[i].0, model.bounds()[i].1),
                if model.fixed()[i] {
                    "yes".into()
                } else {
                    "".into()
                },
                con,
            ]);
        }
        s.push_str(&t.render());
        s
    })?;
    Ok(0)
}

fn inspect_histfactory(a: &InspectArgs, model: &HistFactoryModel) -> Result<i32> {
    let mut v = crate::model::histfactory::describe(model);
    let measurements = super::pyhf_cmds::add_measurements(&a.model, &mut v, &model.measurement)?;
    let poi = model.poi.map(|i| model.par_names[i].clone());
    a.out.emit(&v, || {
        let mut s = format!(
            "measurement {}  POI {}  interpolation normsys={} histosys={}\n{} channels, {} main bins, {} parameters, {} aux data\n\n",
            model.measurement,
            poi.clone().unwrap_or_else(|| "(none)".into()),
            model.normsys_code,
            model.histosys_code,
            model.channels.len(),
            model.n_main,
            model.n_pars(),
            model.n_aux()
        );
        let mut t = Table::new(&["channel", "bins", "observed", "samples"], &[false, true, true, false]);
        for (ci, c) in model.channels.iter().enumerate() {
            let obs: f64 = model.observed().main[c.bin_offset..c.bin_offset + c.nbins].iter().sum();
            let names: Vec<&str> =
                model.samples.iter().filter(|s| s.channel == ci).map(|s| s.name.as_str()).collect();
            t.row(vec![c.name.clone(), c.nbins.to_string(), fmt(obs), names.join(", ")]);
        }
        s.push_str(&t.render());
        s.push('\n');
        let mut t = Table::new(
            &["parameter", "type", "init", "bounds", "fixed", "constraint"],
            &[false, false, true, false, false, false],
        );
        for set in &model.par_sets {
            for k in 0..set.n {
                let i = set.offset + k;
                let con = match model.constraints[i] {
                    Constraint::None => "-".to_string(),
                    Constraint::Normal { sigma } => format!("normal(sigma={})", fmt(sigma)),
                    Constraint::Poisson { tau } => format!("poisson(tau={})", fmt(tau)),
                };
                t.row(vec![
                    model.par_names[i].clone(),
                    set.types.join("+"),
                    fmt(model.init[i]),
                    format!("[{}, {}]", model.bounds[i].0, model.bounds[i].1),
                    if model.fixed[i] { "yes".into() } else { "".into() },
                    con,
                ]);
            }
        }
        s.push_str(&t.render());
        s.push_str(&measurements);
        s
    })?;
    Ok(0)
}
