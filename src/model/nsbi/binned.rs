//! The binned channels of a workspace with unbinned channels or `customfunc`
//! modifiers: one HistFactory model (pyhf semantics), in which each
//! `customfunc` modifier becomes a free normalisation factor that
//! [`FnPart`] sets to the modifier's expression, with exact derivatives.

use super::coef::ExprFactor;
use super::fnpart::{FnPart, InnerFn, Source};
use super::params::ParInfo;
use super::read::{err, is_unbinned};
use crate::error::Result;
use crate::model::combined::{HistFactoryPart, Part};
use crate::model::{HistFactoryModel, ModelOptions};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Name of the inner normalisation factor standing for a customfunc modifier.
fn inner_name(ci: usize, si: usize, mi: usize) -> String {
    format!("__customfunc_{ci}_{si}_{mi}")
}

/// The binned channels as one part: a HistFactory model, seen through the
/// expressions of its `customfunc` modifiers if it has any.
pub(super) fn binned_part(
    value: &Value,
    pars: &BTreeMap<String, ParInfo>,
    declared_only: &BTreeMap<String, ParInfo>,
    poi: &str,
    src: &str,
) -> Result<Box<dyn Part>> {
    // (inner name, expression, pointer) of every customfunc modifier
    let mut funcs: Vec<(String, crate::expr::Expr, String)> = Vec::new();
    let channels: Vec<Value> = value["channels"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
        .filter(|(_, c)| !is_unbinned(c))
        .map(|(ci, c)| {
            let mut c = c.clone();
            if let Some(o) = c.as_object_mut()
                && let Some(t) = o.remove("type")
                && t.as_str() != Some("binned")
            {
                return Err(err(
                    src,
                    &format!("/channels/{ci}/type"),
                    format!("unknown channel type {t}"),
                ));
            }
            let samples = c
                .get_mut("samples")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten();
            for (si, s) in samples.enumerate() {
                let mods = s
                    .get_mut("modifiers")
                    .and_then(Value::as_array_mut)
                    .into_iter()
                    .flatten();
                for (mi, m) in mods.enumerate() {
                    let at = format!("/channels/{ci}/samples/{si}/modifiers/{mi}");
                    let t = m["type"].as_str().unwrap_or("");
                    if t == "normplusshape" {
                        return Err(err(
                            src,
                            &format!("{at}/type"),
                            "'normplusshape' in a binned channel is not supported (use normsys + \
                             histosys for binned variations, or make the channel unbinned)",
                        ));
                    }
                    if t != "customfunc" {
                        continue;
                    }
                    let text =
                        m.pointer("/data/expr")
                            .and_then(Value::as_str)
                            .ok_or_else(|| {
                                err(
                                    src,
                                    &format!("{at}/data"),
                                    "customfunc needs {\"expr\": \"...\"}",
                                )
                            })?;
                    let expr = crate::expr::parse(text).map_err(|e| {
                        err(
                            src,
                            &format!("{at}/data/expr"),
                            format!("cannot parse '{text}': {e}"),
                        )
                    })?;
                    let name = inner_name(ci, si, mi);
                    *m = json!({"name": name, "type": "normfactor", "data": null});
                    funcs.push((name, expr, at));
                }
            }
            Ok(c)
        })
        .collect::<Result<_>>()?;
    let names: Vec<&str> = channels.iter().filter_map(|c| c["name"].as_str()).collect();
    let observations: Vec<Value> = value["observations"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|o| o["name"].as_str().is_some_and(|n| names.contains(&n)))
        .map(|o| json!({"name": o["name"], "data": o["data"]}))
        .collect();
    let binned_pars: Vec<&String> = pars
        .iter()
        .filter(|(_, p)| p.binned)
        .map(|(n, _)| n)
        .collect();
    let mut meas = value["measurements"][0].clone();
    if let Some(ps) = meas
        .pointer_mut("/config/parameters")
        .and_then(Value::as_array_mut)
    {
        ps.retain(|p| {
            p["name"]
                .as_str()
                .is_some_and(|n| binned_pars.iter().any(|b| *b == n))
        });
        for (name, _, _) in &funcs {
            ps.push(json!({"name": name, "inits": [1.0], "bounds": [[-1e300, 1e300]]}));
        }
    } else if !funcs.is_empty() {
        meas["config"]["parameters"] = funcs
            .iter()
            .map(|(name, _, _)| json!({"name": name, "inits": [1.0], "bounds": [[-1e300, 1e300]]}))
            .collect();
    }
    if !binned_pars.iter().any(|b| *b == poi) {
        meas["config"]["poi"] = json!("");
    }
    let ws_value = json!({
        "channels": channels,
        "observations": observations,
        "measurements": [meas],
        "version": value.get("version").cloned().unwrap_or(json!("1.0.0")),
    });
    let label = format!("{src} (binned channels)");
    let ws = crate::workspace::Workspace::from_value(ws_value, &[], &label, &Default::default())?;
    let model = HistFactoryModel::from_workspace(&ws, &ModelOptions::default(), &label)?;
    if funcs.is_empty() {
        return Ok(Box::new(HistFactoryPart { model }));
    }
    with_functions(
        HistFactoryPart { model },
        funcs,
        pars,
        declared_only,
        poi,
        src,
    )
}

/// The outer parameter table and the map to the inner model's parameters.
fn with_functions(
    inner: HistFactoryPart,
    funcs: Vec<(String, crate::expr::Expr, String)>,
    pars: &BTreeMap<String, ParInfo>,
    declared_only: &BTreeMap<String, ParInfo>,
    poi: &str,
    src: &str,
) -> Result<Box<dyn Part>> {
    let inner_names = inner.par_names().to_vec();
    let mut names = Vec::new();
    let mut init = Vec::new();
    let mut bounds = Vec::new();
    let mut fixed = Vec::new();
    let mut srcs = vec![Source::Outer(0); inner_names.len()];
    for (i, n) in inner_names.iter().enumerate() {
        if let Some(k) = funcs.iter().position(|f| &f.0 == n) {
            srcs[i] = Source::Func(k);
        } else {
            srcs[i] = Source::Outer(names.len());
            names.push(n.clone());
            init.push(inner.init()[i]);
            bounds.push(inner.bounds()[i]);
            fixed.push(inner.fixed()[i]);
        }
    }
    let mut inner_fns = Vec::new();
    for (_, expr, at) in funcs {
        let text = expr.to_string();
        let mut vars = Vec::new();
        for v in expr.variables() {
            if let Some(j) = names.iter().position(|n| n == v) {
                vars.push(j);
                continue;
            }
            let info = match (pars.get(v), declared_only.get(v)) {
                (Some(p), _) if p.binned => {
                    return Err(err(
                        src,
                        &format!("{at}/data/expr"),
                        format!(
                            "'{text}' names '{v}', a per-bin parameter set ({}); customfunc takes \
                             scalar parameters",
                            p.kind
                        ),
                    ));
                }
                (Some(p), _) => p,
                (None, Some(p)) => {
                    if !(p.init.is_finite() && p.bounds.0.is_finite() && p.bounds.1.is_finite()) {
                        return Err(err(
                            src,
                            &p.at,
                            format!(
                                "parameter '{v}' (used by customfunc at {at}) needs 'inits' and 'bounds'"
                            ),
                        ));
                    }
                    p
                }
                (None, None) => {
                    return Err(err(
                        src,
                        &format!("{at}/data/expr"),
                        format!(
                            "'{text}' names parameter '{v}', which no modifier declares and the \
                             measurement's config.parameters does not list"
                        ),
                    ));
                }
            };
            vars.push(names.len());
            names.push(v.clone());
            init.push(info.init);
            bounds.push(info.bounds);
            fixed.push(info.fixed);
        }
        inner_fns.push(InnerFn {
            factor: ExprFactor::new(expr, vars),
            label: at,
        });
    }
    let poi = names.iter().position(|n| n == poi);
    Ok(Box::new(FnPart::new(
        Box::new(inner),
        names,
        init,
        bounds,
        fixed,
        poi,
        srcs,
        inner_fns,
    )))
}
