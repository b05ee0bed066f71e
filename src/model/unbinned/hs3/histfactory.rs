//! HS3 `histfactory_dist` channels with binned data, compiled into the existing
//! [`HistFactoryModel`] through an equivalent pyhf workspace.
//!
//! Modifier translation: `normfactor`, `normsys` (`data.hi`/`lo`), `histosys`
//! (`data.hi.contents`/`lo.contents`), `shapefactor`, `shapesys` (HS3 `vals` are
//! relative uncertainties, pyhf's are absolute: multiplied by the nominal
//! contents; Poisson constraint only) and `staterror` with a Gaussian constraint
//! (pyhf's; the absolute errors are the samples' `data.errors`). Per-bin
//! parameters take the names in the modifier's `parameters` list, or ROOT's
//! `gamma_<name>_bin_<i>` (`gamma_stat_<channel>_bin_<i>` for staterror).

use super::Doc;
use crate::error::{Error, Result};
use crate::model::{HistFactoryModel, ModelOptions};
use crate::workspace::{ReadOptions, Workspace};
use serde_json::{Value, json};

fn err(doc: &Doc, loc: &str, msg: impl Into<String>) -> Error {
    Error::workspace(doc.source, loc, msg)
}

/// Compile histfactory_dist number `di` with observed `contents`.
pub(crate) fn compile(
    doc: &Doc,
    di: usize,
    contents: &[f64],
    data_loc: &str,
) -> Result<HistFactoryModel> {
    let d = &doc.distributions[di];
    let loc = format!("/distributions/{di}");
    let ch = d
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("channel")
        .to_string();
    let samples = d.get("samples").and_then(Value::as_array).ok_or_else(|| {
        err(
            doc,
            &format!("{loc}/samples"),
            "histfactory_dist needs an array 'samples'",
        )
    })?;
    let nb = contents.len();
    let mut out_samples = Vec::new();
    // per-bin parameter names of each pyhf modifier name
    let mut renames: Vec<(String, Vec<String>)> = Vec::new();
    for (si, s) in samples.iter().enumerate() {
        let sl = format!("{loc}/samples/{si}");
        let sname = s
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let sname = if sname.is_empty() {
            format!("sample{si}")
        } else {
            sname
        };
        let nom = super::data::numbers(
            doc,
            s.get("data").and_then(|x| x.get("contents")),
            &format!("{sl}/data/contents"),
        )?;
        if nom.len() != nb {
            return Err(err(
                doc,
                &format!("{sl}/data/contents"),
                format!("{} bins, the data ({data_loc}) has {nb}", nom.len()),
            ));
        }
        let mut mods = Vec::new();
        let empty = Vec::new();
        let mlist = s
            .get("modifiers")
            .and_then(Value::as_array)
            .unwrap_or(&empty);
        for (mi, m) in mlist.iter().enumerate() {
            let ml = format!("{sl}/modifiers/{mi}");
            let ty = m.get("type").and_then(Value::as_str).unwrap_or("");
            let mname = m.get("name").and_then(Value::as_str);
            let par = m.get("parameter").and_then(Value::as_str);
            let pars: Option<Vec<String>> =
                m.get("parameters").and_then(Value::as_array).map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                });
            let constraint = m.get("constraint").and_then(Value::as_str);
            let scalar_name = || -> Result<String> {
                par.or(mname).map(str::to_string).ok_or_else(|| {
                    err(
                        doc,
                        &ml,
                        format!("{ty} modifier without 'parameter' or 'name'"),
                    )
                })
            };
            let per_bin = |default_base: &str| -> Result<Vec<String>> {
                match &pars {
                    Some(p) if p.len() == nb => Ok(p.clone()),
                    Some(p) => Err(err(
                        doc,
                        &format!("{ml}/parameters"),
                        format!("{} parameters for {nb} bins", p.len()),
                    )),
                    None => Ok((0..nb).map(|i| format!("{default_base}_bin_{i}")).collect()),
                }
            };
            let data = m.get("data");
            match ty {
                "normfactor" => {
                    mods.push(json!({"name": scalar_name()?, "type": "normfactor", "data": null}))
                }
                "normsys" => {
                    let hi = data.and_then(|x| x.get("hi")).and_then(Value::as_f64);
                    let lo = data.and_then(|x| x.get("lo")).and_then(Value::as_f64);
                    let (Some(hi), Some(lo)) = (hi, lo) else {
                        return Err(err(
                            doc,
                            &format!("{ml}/data"),
                            "normsys needs numbers 'hi' and 'lo'",
                        ));
                    };
                    if constraint.is_some_and(|c| c != "Gauss") {
                        return Err(err(
                            doc,
                            &format!("{ml}/constraint"),
                            format!(
                                "normsys with a '{}' constraint is not supported (Gauss only)",
                                constraint.unwrap_or("")
                            ),
                        ));
                    }
                    mods.push(json!({"name": scalar_name()?, "type": "normsys", "data": {"hi": hi, "lo": lo}}));
                }
                "histosys" => {
                    let hi = super::data::numbers(
                        doc,
                        data.and_then(|x| x.get("hi"))
                            .and_then(|x| x.get("contents")),
                        &format!("{ml}/data/hi/contents"),
                    )?;
                    let lo = super::data::numbers(
                        doc,
                        data.and_then(|x| x.get("lo"))
                            .and_then(|x| x.get("contents")),
                        &format!("{ml}/data/lo/contents"),
                    )?;
                    if hi.len() != nb || lo.len() != nb {
                        return Err(err(
                            doc,
                            &format!("{ml}/data"),
                            format!("histosys templates need {nb} bins"),
                        ));
                    }
                    mods.push(json!({"name": scalar_name()?, "type": "histosys", "data": {"hi_data": hi, "lo_data": lo}}));
                }
                "shapefactor" => {
                    let base = mname.or(par).unwrap_or("shapefactor").to_string();
                    let names = per_bin(&format!("gamma_{base}"))?;
                    renames.push((base.clone(), names));
                    mods.push(json!({"name": base, "type": "shapefactor", "data": null}));
                }
                "shapesys" => {
                    if constraint.is_some_and(|c| c != "Poisson") {
                        return Err(err(
                            doc,
                            &format!("{ml}/constraint"),
                            format!(
                                "shapesys with a '{}' constraint is not supported (Poisson only, as in pyhf)",
                                constraint.unwrap_or("")
                            ),
                        ));
                    }
                    let vals = super::data::numbers(
                        doc,
                        data.and_then(|x| x.get("vals")),
                        &format!("{ml}/data/vals"),
                    )?;
                    if vals.len() != nb {
                        return Err(err(
                            doc,
                            &format!("{ml}/data/vals"),
                            format!("{} values for {nb} bins", vals.len()),
                        ));
                    }
                    let base = mname.or(par).unwrap_or("shapesys").to_string();
                    let names = per_bin(&format!("gamma_{base}"))?;
                    renames.push((base.clone(), names));
                    let abs: Vec<f64> = vals.iter().zip(&nom).map(|(v, n)| v * n).collect();
                    mods.push(json!({"name": base, "type": "shapesys", "data": abs}));
                }
                "staterror" => {
                    if constraint != Some("Gauss") {
                        return Err(err(
                            doc,
                            &format!("{ml}/constraint"),
                            format!(
                                "staterror with a '{}' constraint is not supported (Gauss only, as in pyhf)",
                                constraint.unwrap_or("missing")
                            ),
                        ));
                    }
                    let errs = super::data::numbers(
                        doc,
                        s.get("data").and_then(|x| x.get("errors")),
                        &format!("{sl}/data/errors"),
                    )?;
                    if errs.len() != nb {
                        return Err(err(
                            doc,
                            &format!("{sl}/data/errors"),
                            format!("{} errors for {nb} bins", errs.len()),
                        ));
                    }
                    let base = format!("staterror_{ch}");
                    let names = per_bin(&format!("gamma_stat_{ch}"))?;
                    renames.push((base.clone(), names));
                    mods.push(json!({"name": base, "type": "staterror", "data": errs}));
                }
                other => {
                    return Err(err(
                        doc,
                        &format!("{ml}/type"),
                        format!(
                            "histfactory modifier type '{other}' is not supported (normfactor, normsys, histosys, shapefactor, shapesys, staterror)"
                        ),
                    ));
                }
            }
        }
        out_samples.push(json!({"name": sname, "data": nom, "modifiers": mods}));
    }
    let ws = json!({
        "channels": [{"name": ch, "samples": out_samples}],
        "observations": [{"name": ch, "data": contents}],
        "measurements": [{"name": "hs3", "config": {"poi": "", "parameters": []}}],
        "version": "1.0.0",
    });
    let src = format!("{} ({loc})", doc.source);
    let w = Workspace::from_value(ws, &[], &src, &ReadOptions::default())?;
    let mut model = HistFactoryModel::from_workspace(&w, &ModelOptions::default(), &src)?;
    // HS3 names for per-bin parameters
    for (base, names) in renames {
        for (i, n) in names.iter().enumerate() {
            let pyhf = format!("{base}[{i}]");
            if let Some(k) = model.par_names.iter().position(|p| *p == pyhf) {
                model.par_names[k] = n.clone();
            }
        }
    }
    Ok(model)
}
