//! Reader of pyhf-style workspaces with unbinned channels (the format of the
//! NSBI workflow tutorial's `workspace_builder.py`), mixed with ordinary
//! binned channels.
//!
//! - A channel with `"type": "unbinned"` has per-event ratio arrays instead of
//!   bins; optional `"weights"` (per-event weights, 1 when absent). The
//!   arrays are evaluated on the channel's observed events; its
//!   `observations` entry may be absent or empty, or carry `"weights"` and
//!   `"ratios": {sample: path}` (the tutorial's layout).
//! - A sample has `"data": [nu_c]` and `"ratios": path` (`r_c` per event).
//! - Modifiers: `normfactor`; `normsys` (code 4 on the yield); `normplusshape`
//!   with `data: {hi_data: [k+], lo_data: [k-], hi_ratio: path, lo_ratio: path}`
//!   (yield and per-event shape, code 4 each; either pair may be left out);
//!   `customfunc` with `data: {expr: "mu - sqrt(mu)"}` (a coefficient function
//!   of parameters that other modifiers declare or that the measurement's
//!   `config.parameters` lists with `inits` and `bounds`).
//! - Optional `"reference": {"weights": path, "ratios": {sample: path},
//!   "shape_ratios": {sample: {modifier: {"hi": path, "lo": path}}}}`: the
//!   weighted reference sample toys and Asimov data are drawn from (without
//!   it, the observed events and their weights serve as the reference).
//! - Paths are relative to the workspace file; see [`super::arrays`].
//!
//! Binned channels compile into one HistFactory model (the pyhf semantics of
//! the rest of gradfit), combined with the unbinned channels by parameter
//! name. Constraint terms: a nuisance parameter that a binned channel
//! constrains (normsys, histosys, ...) is constrained there; the other
//! constrained parameters of unbinned channels get their `Normal(0 | alpha, 1)`
//! in one [`GaussConstraints`] part.

use super::arrays;
use super::coef::{ExprFactor, Factor, NormFactor, YieldCode4};
use super::params::{ParInfo, params};
use super::{GaussConstraints, NsbiChannel, NsbiPart, Process, ShapeVar};
use crate::error::{Error, Result};
use crate::model::CombinedModel;
use crate::model::combined::Part;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

pub(super) fn err(src: &str, ptr: &str, msg: impl std::fmt::Display) -> Error {
    Error::input(format!("{src}: {ptr}: {msg}"))
}

pub(super) fn is_unbinned(c: &Value) -> bool {
    c.get("type").and_then(Value::as_str) == Some("unbinned")
}

/// Read a workspace with unbinned channels; `base` resolves relative paths.
pub fn load(value: &Value, src: &str, base: &Path) -> Result<CombinedModel> {
    let channels = value
        .get("channels")
        .and_then(Value::as_array)
        .ok_or_else(|| err(src, "/channels", "missing or not a list"))?;
    let meas = value
        .get("measurements")
        .and_then(Value::as_array)
        .and_then(|m| m.first())
        .ok_or_else(|| {
            err(
                src,
                "/measurements",
                "a workspace needs at least one measurement",
            )
        })?;
    let label = meas
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("measurement")
        .to_string();
    let poi = meas
        .pointer("/config/poi")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let config: Vec<Value> = meas
        .pointer("/config/parameters")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let config_of: HashMap<String, (usize, &Value)> = config
        .iter()
        .enumerate()
        .filter_map(|(i, c)| Some((c.get("name")?.as_str()?.to_string(), (i, c))))
        .collect();

    let (pars, declared_only) = params(channels, &config_of, src)?;

    // --- unbinned channels
    let observations: Vec<Value> = value
        .get("observations")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut parts: Vec<Box<dyn Part>> = Vec::new();
    let mut used_in_unbinned: Vec<String> = Vec::new();
    for (ci, ch) in channels.iter().enumerate() {
        if !is_unbinned(ch) {
            continue;
        }
        let channel = read_channel(
            ch,
            ci,
            &observations,
            &pars,
            &declared_only,
            &poi,
            src,
            base,
        )?;
        for n in &channel.par_names {
            if !used_in_unbinned.contains(n) {
                used_in_unbinned.push(n.clone());
            }
        }
        parts.push(Box::new(NsbiPart::new(channel)));
    }

    // --- binned channels: one HistFactory model
    if channels.iter().any(|c| !is_unbinned(c)) {
        parts.push(super::binned::binned_part(
            value,
            &pars,
            &declared_only,
            &poi,
            src,
        )?);
    }

    // --- constraints of the unbinned channels' nuisance parameters not constrained in a binned channel
    let cons: Vec<&String> = used_in_unbinned
        .iter()
        .filter(|n| pars.get(*n).is_some_and(|p| p.constrained && !p.binned))
        .collect();
    if !cons.is_empty() {
        let info: Vec<&ParInfo> = cons.iter().map(|n| &pars[*n]).collect();
        parts.push(Box::new(GaussConstraints::new(
            cons.iter().map(|s| s.to_string()).collect(),
            vec![1.0; cons.len()],
            vec![0.0; cons.len()],
            info.iter().map(|p| p.init).collect(),
            info.iter().map(|p| p.bounds).collect(),
            info.iter().map(|p| p.fixed).collect(),
        )));
    }
    let poi_name = if poi.is_empty() {
        None
    } else {
        Some(poi.as_str())
    };
    let model = CombinedModel::new(parts, poi_name, &label)
        .map_err(|e| Error::input(format!("{src}: {e}")))?;
    // the start point must be inside the domain
    {
        use crate::model::Likelihood;
        let f = {
            let mut s = model.scratch();
            model.eval(model.init(), model.observed(), &mut s, None, None)
        };
        // (binned parts extend their Poisson terms outside pyhf's domain, so
        // a rate that is not positive is looked for even where f is finite)
        let issue = model
            .domain_issue(model.init(), model.observed())
            .or_else(|| model.rate_issue(model.init(), model.observed()));
        if !f.is_finite() || issue.is_some() {
            let why = issue.unwrap_or_else(|| format!("twice_nll is {f}"));
            return Err(Error::input(format!(
                "{src}: the likelihood is not finite at the start point ({}): {why}",
                model
                    .par_names()
                    .iter()
                    .zip(model.init())
                    .map(|(n, v)| format!("{n} = {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    Ok(model)
}

#[allow(clippy::too_many_arguments)]
fn read_channel(
    ch: &Value,
    ci: usize,
    observations: &[Value],
    pars: &BTreeMap<String, ParInfo>,
    declared_only: &BTreeMap<String, ParInfo>,
    poi: &str,
    src: &str,
    base: &Path,
) -> Result<NsbiChannel> {
    let cptr = format!("/channels/{ci}");
    let name = ch
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| err(src, &cptr, "a channel needs a name"))?
        .to_string();
    let obs = observations
        .iter()
        .enumerate()
        .find(|(_, o)| o.get("name").and_then(Value::as_str) == Some(name.as_str()));
    let samples = ch
        .get("samples")
        .and_then(Value::as_array)
        .ok_or_else(|| err(src, &format!("{cptr}/samples"), "missing or not a list"))?;
    let mut par_names: Vec<String> = Vec::new();
    let local = |n: &str, names: &mut Vec<String>| -> usize {
        match names.iter().position(|x| x == n) {
            Some(i) => i,
            None => {
                names.push(n.to_string());
                names.len() - 1
            }
        }
    };
    let mut processes = Vec::new();
    let mut shapes: Vec<ShapeVar> = Vec::new();
    // per shape variation: JSON locations of its up/down arrays
    let mut shape_refs: Vec<(String, Value, String, Value)> = Vec::new();
    let mut ratio_refs: Vec<(String, Value)> = Vec::new();
    for (si, s) in samples.iter().enumerate() {
        let sptr = format!("{cptr}/samples/{si}");
        let sname = s
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| err(src, &sptr, "a sample needs a name"))?
            .to_string();
        let nu = match s
            .get("data")
            .and_then(Value::as_array)
            .map(|v| v.as_slice())
        {
            Some([x]) => x.as_f64().filter(|x| x.is_finite() && *x >= 0.0),
            _ => None,
        }
        .ok_or_else(|| {
            err(
                src,
                &format!("{sptr}/data"),
                "an unbinned sample needs \"data\": [yield] with one finite yield >= 0",
            )
        })?;
        let rref = match s.get("ratios") {
            Some(r) => (format!("{sptr}/ratios"), r.clone()),
            None => match obs.and_then(|(oi, o)| Some((oi, o.get("ratios")?.get(&sname)?))) {
                Some((oi, r)) => (format!("/observations/{oi}/ratios/{sname}"), r.clone()),
                None => {
                    return Err(err(
                        src,
                        &sptr,
                        format!(
                            "sample '{sname}' of unbinned channel '{name}' has no \"ratios\" (per-event r_c)"
                        ),
                    ));
                }
            },
        };
        ratio_refs.push(rref);
        let mut factors: Vec<Box<dyn Factor>> = Vec::new();
        for (mi, m) in s
            .get("modifiers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let mptr = format!("{sptr}/modifiers/{mi}");
            let t = m.get("type").and_then(Value::as_str).unwrap_or("");
            let mname = m
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let data = m.get("data").cloned().unwrap_or(Value::Null);
            match t {
                "normfactor" => {
                    let v = local(&mname, &mut par_names);
                    factors.push(Box::new(NormFactor::new(v)));
                }
                "normsys" => {
                    let hi = data.get("hi").and_then(Value::as_f64);
                    let lo = data.get("lo").and_then(Value::as_f64);
                    let (Some(hi), Some(lo)) = (hi, lo) else {
                        return Err(err(
                            src,
                            &format!("{mptr}/data"),
                            "normsys needs numbers 'hi' and 'lo'",
                        ));
                    };
                    if !(hi > 0.0 && lo > 0.0 && hi.is_finite() && lo.is_finite()) {
                        return Err(err(
                            src,
                            &format!("{mptr}/data"),
                            format!("normsys factors must be finite and > 0, got hi {hi}, lo {lo}"),
                        ));
                    }
                    let v = local(&mname, &mut par_names);
                    factors.push(Box::new(YieldCode4::new(v, hi, lo)));
                }
                "normplusshape" => {
                    let v = local(&mname, &mut par_names);
                    let one = |key: &str| -> Result<Option<f64>> {
                        match data.get(key) {
                            None => Ok(None),
                            Some(x) => match x.as_array().map(|a| a.as_slice()) {
                                Some([y]) => y
                                    .as_f64()
                                    .filter(|y| y.is_finite() && *y > 0.0)
                                    .map(Some)
                                    .ok_or_else(|| {
                                        err(
                                            src,
                                            &format!("{mptr}/data/{key}"),
                                            "must be a finite yield ratio > 0",
                                        )
                                    }),
                                _ => Err(err(
                                    src,
                                    &format!("{mptr}/data/{key}"),
                                    "expected a list with one yield ratio",
                                )),
                            },
                        }
                    };
                    match (one("hi_data")?, one("lo_data")?) {
                        (Some(hi), Some(lo)) => factors.push(Box::new(YieldCode4::new(v, hi, lo))),
                        (None, None) => {}
                        _ => {
                            return Err(err(
                                src,
                                &format!("{mptr}/data"),
                                "give both hi_data and lo_data, or neither",
                            ));
                        }
                    }
                    match (data.get("hi_ratio"), data.get("lo_ratio")) {
                        (Some(h), Some(l)) => {
                            shapes.push(ShapeVar {
                                process: si,
                                par: v,
                                label: format!("sample '{sname}', modifier '{mname}'"),
                            });
                            shape_refs.push((
                                format!("{mptr}/data/hi_ratio"),
                                h.clone(),
                                format!("{mptr}/data/lo_ratio"),
                                l.clone(),
                            ));
                        }
                        (None, None) => {}
                        _ => {
                            return Err(err(
                                src,
                                &format!("{mptr}/data"),
                                "give both hi_ratio and lo_ratio, or neither",
                            ));
                        }
                    }
                }
                "customfunc" => {
                    let text = data.get("expr").and_then(Value::as_str).ok_or_else(|| {
                        err(
                            src,
                            &format!("{mptr}/data"),
                            "customfunc needs {\"expr\": \"...\"}",
                        )
                    })?;
                    let expr = crate::expr::parse(text).map_err(|e| {
                        err(
                            src,
                            &format!("{mptr}/data/expr"),
                            format!("cannot parse '{text}': {e}"),
                        )
                    })?;
                    let mut vars = Vec::new();
                    for vname in expr.variables() {
                        if !pars.contains_key(vname) && !declared_only.contains_key(vname) {
                            return Err(err(
                                src,
                                &format!("{mptr}/data/expr"),
                                format!(
                                    "'{text}' names parameter '{vname}', which no modifier declares and the \
                                     measurement's config.parameters does not list"
                                ),
                            ));
                        }
                        if let Some(p) = declared_only.get(vname)
                            && (!p.init.is_finite()
                                || !p.bounds.0.is_finite()
                                || !p.bounds.1.is_finite())
                        {
                            return Err(err(
                                src,
                                &p.at,
                                format!(
                                    "parameter '{vname}' (used by customfunc at {mptr}) needs 'inits' and 'bounds'"
                                ),
                            ));
                        }
                        vars.push(local(vname, &mut par_names));
                    }
                    factors.push(Box::new(ExprFactor::new(expr, vars)));
                }
                other => {
                    return Err(err(
                        src,
                        &format!("{mptr}/type"),
                        format!(
                            "modifier type '{other}' is not supported in unbinned channels \
                             (normfactor, normsys, normplusshape, customfunc)"
                        ),
                    ));
                }
            }
        }
        processes.push(Process {
            name: sname,
            nu,
            factors,
        });
    }
    // parameter table
    // every name was collected from the modifiers or the measurement's
    // config; one that was not (a modifier the parameter scan did not read)
    // is an input error, not a panic
    let mut table: Vec<&ParInfo> = Vec::with_capacity(par_names.len());
    for n in &par_names {
        let p = pars.get(n).or_else(|| declared_only.get(n)).ok_or_else(|| {
            err(
                src,
                &format!("/channels/{ci}"),
                format!("parameter '{n}' of channel '{name}' is not declared by any modifier or by the measurement's config.parameters"),
            )
        })?;
        table.push(p);
    }
    let init: Vec<f64> = table.iter().map(|p| p.init).collect();
    let bounds: Vec<(f64, f64)> = table.iter().map(|p| p.bounds).collect();
    let fixed: Vec<bool> = table.iter().map(|p| p.fixed).collect();
    let poi_local = par_names.iter().position(|n| n == poi);

    // observed events
    let wref = ch
        .get("weights")
        .map(|w| (format!("{cptr}/weights"), w.clone()))
        .or_else(|| {
            obs.and_then(|(oi, o)| {
                Some((
                    format!("/observations/{oi}/weights"),
                    o.get("weights")?.clone(),
                ))
            })
        })
        .filter(|(_, v)| !v.is_null());
    let mut ensembles = Vec::new();
    let observed = arrays::read_set(
        src,
        base,
        wref.as_ref(),
        &ratio_refs,
        &shape_refs,
        &mut ensembles,
    )?;

    // reference sample
    let reference = match ch.get("reference") {
        None | Some(Value::Null) => None,
        Some(r) => {
            let rptr = format!("{cptr}/reference");
            let w = r
                .get("weights")
                .ok_or_else(|| err(src, &rptr, "the reference sample needs \"weights\""))?;
            let mut rr = Vec::new();
            for p in &processes {
                let v = r.pointer(&format!("/ratios/{}", p.name)).ok_or_else(|| {
                    err(
                        src,
                        &format!("{rptr}/ratios"),
                        format!("no ratios for sample '{}'", p.name),
                    )
                })?;
                rr.push((format!("{rptr}/ratios/{}", p.name), v.clone()));
            }
            let mut sr = Vec::new();
            for s in &shapes {
                let pname = &processes[s.process].name;
                let mname = &par_names[s.par];
                let at = format!("{rptr}/shape_ratios/{pname}/{mname}");
                let obj = r
                    .pointer(&format!("/shape_ratios/{pname}/{mname}"))
                    .ok_or_else(|| {
                        err(
                            src,
                            &at,
                            format!(
                                "missing: the reference sample needs the shape ratios of {}",
                                s.label
                            ),
                        )
                    })?;
                let (Some(h), Some(l)) = (obj.get("hi"), obj.get("lo")) else {
                    return Err(err(src, &at, "needs \"hi\" and \"lo\""));
                };
                sr.push((format!("{at}/hi"), h.clone(), format!("{at}/lo"), l.clone()));
            }
            Some(arrays::read_set(
                src,
                base,
                Some(&(format!("{rptr}/weights"), w.clone())),
                &rr,
                &sr,
                &mut ensembles,
            )?)
        }
    };
    let mut channel = NsbiChannel::new(
        &name, par_names, init, bounds, fixed, poi_local, processes, shapes, observed, reference,
    )
    .map_err(|e| Error::input(format!("{src}: {e}")))?;
    channel.ensembles = ensembles;
    Ok(channel)
}
