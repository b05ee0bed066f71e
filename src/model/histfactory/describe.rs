//! The JSON description of a compiled model that `gradfit inspect` prints.

use super::{Constraint, HistFactoryModel};
use serde_json::{Value, json};

fn constraint_json(model: &HistFactoryModel, i: usize) -> Value {
    let aux = model.aux_index[i].map(|k| model.observed().aux[k]);
    match model.constraints[i] {
        Constraint::None => json!({"type": "none"}),
        Constraint::Normal { sigma } => json!({"type": "normal", "sigma": sigma, "auxdata": aux}),
        Constraint::Poisson { tau } => json!({"type": "poisson", "tau": tau, "auxdata": aux}),
    }
}

/// Channels, samples with their parameters, and the parameter table.
pub fn describe(model: &HistFactoryModel) -> Value {
    let mut channels = Vec::new();
    for (ci, c) in model.channels.iter().enumerate() {
        let mut samples = Vec::new();
        for s in model.samples.iter().filter(|s| s.channel == ci) {
            let sbs = &model.sb[s.first_sb..s.first_sb + c.nbins];
            let mut mods: Vec<String> = Vec::new();
            for sb in sbs.iter().take(1) {
                for t in &model.mult[sb.mult.0 as usize..sb.mult.1 as usize] {
                    mods.push(
                        model.par_names[t.par as usize]
                            .split('[')
                            .next()
                            .unwrap_or("")
                            .to_string(),
                    );
                }
                for t in &model.add[sb.add.0 as usize..sb.add.1 as usize] {
                    mods.push(model.par_names[t.par as usize].clone());
                }
            }
            mods.sort();
            mods.dedup();
            samples.push(json!({
                "name": s.name,
                "yields": sbs.iter().map(|x| x.nom).collect::<Vec<_>>(),
                "parameters": mods,
            }));
        }
        let obs = &model.observed().main[c.bin_offset..c.bin_offset + c.nbins];
        channels
            .push(json!({"name": c.name, "nbins": c.nbins, "observed": obs, "samples": samples}));
    }
    let mut params = Vec::new();
    for set in &model.par_sets {
        for k in 0..set.n {
            let i = set.offset + k;
            params.push(json!({
                "name": model.par_names[i],
                "types": set.types,
                "init": model.init[i],
                "bounds": [model.bounds[i].0, model.bounds[i].1],
                "fixed": model.fixed[i],
                "constraint": constraint_json(model, i),
            }));
        }
    }
    json!({
        "measurement": model.measurement,
        "poi": model.poi.map(|i| model.par_names[i].clone()),
        "interpolation": {"normsys": model.normsys_code.to_string(), "histosys": model.histosys_code.to_string()},
        "n_parameters": model.n_pars(),
        "n_main_bins": model.n_main,
        "n_aux": model.n_aux(),
        "channels": channels,
        "parameters": params,
        "warnings": model.warnings,
    })
}
