//! The parameter table of a workspace with unbinned channels: what the
//! modifiers of every channel declare, the measurement's overrides, and the
//! parameters only the measurement declares (customfunc variables).

use super::read::{err, is_unbinned};
use crate::error::Result;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

/// What the reader knows about one parameter.
#[derive(Debug, Clone)]
pub(crate) struct ParInfo {
    pub(crate) kind: &'static str,
    pub(crate) constrained: bool,
    pub(crate) init: f64,
    pub(crate) bounds: (f64, f64),
    pub(crate) fixed: bool,
    /// Declared by a modifier of a binned channel.
    pub(crate) binned: bool,
    /// Where it was first declared (a JSON pointer).
    pub(crate) at: String,
}

fn defaults(kind: &'static str) -> (bool, f64, (f64, f64)) {
    match kind {
        "normfactor" | "shapefactor" => (false, 1.0, (0.0, 10.0)),
        "normsys" | "histosys" | "normplusshape" => (true, 0.0, (-5.0, 5.0)),
        "staterror" | "shapesys" => (true, 1.0, (1e-10, 10.0)),
        "lumi" => (true, 1.0, (0.0, 10.0)),
        _ => (false, 0.0, (f64::NEG_INFINITY, f64::INFINITY)),
    }
}

fn kind_of(t: &str) -> Option<&'static str> {
    Some(match t {
        "normfactor" => "normfactor",
        "normsys" => "normsys",
        "histosys" => "histosys",
        "normplusshape" => "normplusshape",
        "shapefactor" => "shapefactor",
        "staterror" => "staterror",
        "shapesys" => "shapesys",
        "lumi" => "lumi",
        "customfunc" => "customfunc",
        _ => return None,
    })
}

/// The parameters that modifiers declare (every channel), with the
/// measurement's overrides, and those only the measurement declares
/// (customfunc variables).
#[allow(clippy::type_complexity)]
pub(super) fn params(
    channels: &[Value],
    config_of: &HashMap<String, (usize, &Value)>,
    src: &str,
) -> Result<(BTreeMap<String, ParInfo>, BTreeMap<String, ParInfo>)> {
    // --- parameters declared by modifiers (every channel)
    let mut pars: BTreeMap<String, ParInfo> = BTreeMap::new();
    for (ci, ch) in channels.iter().enumerate() {
        let binned = !is_unbinned(ch);
        for (si, s) in ch
            .get("samples")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            for (mi, m) in s
                .get("modifiers")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                let at = format!("/channels/{ci}/samples/{si}/modifiers/{mi}");
                let t = m.get("type").and_then(Value::as_str).unwrap_or("");
                let name = m.get("name").and_then(Value::as_str).unwrap_or("");
                let Some(kind) = kind_of(t) else {
                    return Err(err(
                        src,
                        &format!("{at}/type"),
                        format!("unknown modifier type '{t}'"),
                    ));
                };
                if kind == "customfunc" || name.is_empty() {
                    continue;
                }
                let (constrained, init, bounds) = defaults(kind);
                match pars.get_mut(name) {
                    Some(p) => {
                        if p.constrained != constrained
                            || (p.kind == "normfactor") != (kind == "normfactor")
                        {
                            return Err(err(
                                src,
                                &at,
                                format!(
                                    "parameter '{name}' is a {kind} here but a {} at {}; a parameter has one kind",
                                    p.kind, p.at
                                ),
                            ));
                        }
                        p.binned |= binned;
                    }
                    None => {
                        pars.insert(
                            name.to_string(),
                            ParInfo {
                                kind,
                                constrained,
                                init,
                                bounds,
                                fixed: false,
                                binned,
                                at,
                            },
                        );
                    }
                }
            }
        }
    }
    // measurement overrides; parameters only the measurement declares (customfunc variables)
    let mut declared_only: BTreeMap<String, ParInfo> = BTreeMap::new();
    for (name, &(i, c)) in config_of {
        let at = format!("/measurements/0/config/parameters/{i}");
        let init = c
            .get("inits")
            .and_then(Value::as_array)
            .and_then(|v| v.first())
            .and_then(Value::as_f64);
        let bounds = c
            .get("bounds")
            .and_then(Value::as_array)
            .and_then(|v| v.first())
            .and_then(Value::as_array)
            .and_then(|b| Some((b.first()?.as_f64()?, b.get(1)?.as_f64()?)));
        let fixed = c.get("fixed").and_then(Value::as_bool);
        if let Some(p) = pars.get_mut(name) {
            if let Some(v) = init {
                p.init = v;
            }
            if let Some(b) = bounds {
                p.bounds = b;
            }
            if let Some(f) = fixed {
                p.fixed = f;
            }
        } else {
            declared_only.insert(
                name.clone(),
                ParInfo {
                    kind: "customfunc",
                    constrained: false,
                    init: init.unwrap_or(f64::NAN),
                    bounds: bounds.unwrap_or((f64::NAN, f64::NAN)),
                    fixed: fixed.unwrap_or(false),
                    binned: false,
                    at,
                },
            );
        }
    }
    Ok((pars, declared_only))
}
