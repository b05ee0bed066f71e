//! pyhf's workspace utilities on the JSON document: `combine`, `prune`,
//! `rename`, `sorted` and `digest`, with pyhf 0.7's semantics (see
//! `pyhf.workspace.Workspace`), so that printed with [`super::pyjson`] they
//! give pyhf's bytes.
//!
//! They work on the JSON tree, not on the typed [`Workspace`]: numbers keep
//! their written form (an integer stays an integer), as they do in pyhf.
//! Inputs and results are validated as workspaces ([`check`]).

use super::pyjson::{self, Style};
use super::{ReadOptions, Workspace};
use crate::error::{Error, Result};
use serde_json::{Map, Value, json};
use std::collections::{BTreeSet, HashMap};

/// Validate a workspace document (errors name `label` and the JSON pointer).
/// Negative yields are accepted, as pyhf accepts them.
pub fn check(ws: &Value, label: &str) -> Result<()> {
    let opts = ReadOptions { strict: false };
    let typed = Workspace::from_value(ws.clone(), &[], label, &opts)?;
    // pyhf's schema: a lumi modifier is named "lumi"
    for (ci, c) in typed.channels.iter().enumerate() {
        for (si, s) in c.samples.iter().enumerate() {
            for (mi, m) in s.modifiers.iter().enumerate() {
                if m.kind == "lumi" && m.name != "lumi" {
                    return Err(Error::workspace(
                        label,
                        format!("/channels/{ci}/samples/{si}/modifiers/{mi}/name"),
                        format!(
                            "a lumi modifier must be named 'lumi' (pyhf's schema), not '{}'",
                            m.name
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}

fn list<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn name(v: &Value) -> &str {
    v.get("name").and_then(Value::as_str).unwrap_or("")
}

fn op_error(message: String) -> Error {
    Error::input(message)
}

/// JSON equality as Python's `==` on loaded JSON: numbers by value (1 == 1.0).
pub fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i == j,
            _ => x.as_f64() == y.as_f64(),
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(u, v)| json_eq(u, v))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, u)| y.get(k).is_some_and(|v| json_eq(u, v)))
        }
        _ => a == b,
    }
}

// ------------------------------------------------------------------ combine

/// How `combine` joins items (channels, observations, measurements) of the
/// same name: pyhf's `join` argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Join {
    /// No names in common allowed.
    None,
    /// Items of the same name must be identical (measurements: same POI, their
    /// parameter configs merged).
    Outer,
    /// The left item wins.
    LeftOuter,
    /// The right item wins.
    RightOuter,
}

impl std::str::FromStr for Join {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s
            .trim()
            .to_ascii_lowercase()
            .replace(['-', '_'], " ")
            .as_str()
        {
            "none" => Ok(Join::None),
            "outer" => Ok(Join::Outer),
            "left outer" | "left" => Ok(Join::LeftOuter),
            "right outer" | "right" => Ok(Join::RightOuter),
            _ => Err(format!(
                "unknown join '{s}': expected none, outer, 'left outer' or 'right outer'"
            )),
        }
    }
}

impl Join {
    fn label(self) -> &'static str {
        match self {
            Join::None => "none",
            Join::Outer => "outer",
            Join::LeftOuter => "left outer",
            Join::RightOuter => "right outer",
        }
    }
}

const JOIN_HINT: &str = "try another join: --join outer, 'left outer' or 'right outer'";

/// pyhf's `_join_items`: keys of the primary side computed once, secondary
/// items appended by the join's rule, or deeply merged by `deep` (samples).
fn join_items(join: Join, left: &[Value], right: &[Value], deep: Option<&str>) -> Vec<Value> {
    let (primary, secondary) = if join == Join::RightOuter {
        (right, left)
    } else {
        (left, right)
    };
    let mut joined: Vec<Value> = primary.to_vec();
    let keys: Vec<String> = joined.iter().map(|x| name(x).to_string()).collect();
    for item in secondary {
        let pos = keys.iter().position(|k| k == name(item));
        if let (Some(i), Some(dk)) = (pos, deep) {
            let merged = join_items(Join::LeftOuter, list(&joined[i], dk), list(item, dk), None);
            joined[i][dk] = Value::Array(merged);
        } else if match join {
            Join::None => true,
            Join::Outer => !primary.iter().any(|p| json_eq(p, item)),
            Join::LeftOuter | Join::RightOuter => pos.is_none(),
        } {
            joined.push(item.clone());
        }
    }
    joined
}

/// Names that appear more than once, in order of first appearance.
fn repeated(items: &[Value]) -> Vec<String> {
    let mut count: HashMap<&str, usize> = HashMap::new();
    let mut order = Vec::new();
    for x in items {
        let c = count.entry(name(x)).or_insert(0);
        *c += 1;
        if *c == 2 {
            order.push(name(x).to_string());
        }
    }
    order
}

fn common(left: &[Value], right: &[Value]) -> Vec<String> {
    let l: BTreeSet<&str> = left.iter().map(name).collect();
    let r: BTreeSet<&str> = right.iter().map(name).collect();
    l.intersection(&r).map(|s| s.to_string()).collect()
}

fn join_named(
    join: Join,
    what: &str,
    left: &[Value],
    right: &[Value],
    deep: Option<&str>,
) -> Result<Vec<Value>> {
    let joined = join_items(join, left, right, deep);
    match join {
        Join::None => {
            let c = common(left, right);
            if !c.is_empty() {
                return Err(op_error(format!(
                    "the workspaces have {what} of the same name: {} ({JOIN_HINT})",
                    c.join(", ")
                )));
            }
        }
        Join::Outer => {
            let r = repeated(&joined);
            if !r.is_empty() {
                return Err(op_error(format!(
                    "the workspaces have {what} of the same name but different content: {} ({JOIN_HINT})",
                    r.join(", ")
                )));
            }
        }
        _ => {}
    }
    Ok(joined)
}

fn join_measurements(join: Join, left: &[Value], right: &[Value]) -> Result<Vec<Value>> {
    if join != Join::Outer {
        return join_named(join, "measurements", left, right, None);
    }
    // outer: measurements of the same name merge (same POI, parameter configs joined)
    let joined = join_items(join, left, right, None);
    let mut order: Vec<String> = Vec::new();
    let mut by_name: HashMap<String, Vec<&Value>> = HashMap::new();
    for m in &joined {
        let n = name(m).to_string();
        if !by_name.contains_key(&n) {
            order.push(n.clone());
        }
        by_name.entry(n).or_default().push(m);
    }
    let poi = |m: &Value| m["config"]["poi"].as_str().unwrap_or("").to_string();
    let bad: Vec<&str> = order
        .iter()
        .filter(|n| {
            let pois: BTreeSet<String> = by_name[*n].iter().map(|m| poi(m)).collect();
            pois.len() > 1
        })
        .map(String::as_str)
        .collect();
    if !bad.is_empty() {
        return Err(op_error(format!(
            "the workspaces have measurements of the same name with different POIs: {}",
            bad.join(", ")
        )));
    }
    let mut out = Vec::new();
    for n in &order {
        let ms = &by_name[n];
        if ms.len() == 1 {
            out.push(ms[0].clone());
            continue;
        }
        // pyhf merges exactly two (one from each side)
        let pars = join_items(
            Join::Outer,
            list(&ms[0]["config"], "parameters"),
            list(&ms[1]["config"], "parameters"),
            None,
        );
        let r = repeated(&pars);
        if !r.is_empty() {
            return Err(op_error(format!(
                "measurement '{n}' has different configurations of parameter(s) {} in the two workspaces ({JOIN_HINT})",
                r.join(", ")
            )));
        }
        out.push(json!({"name": n, "config": {"poi": poi(ms[0]), "parameters": pars}}));
    }
    Ok(out)
}

/// pyhf's `Workspace.combine(left, right, join, merge_channels)`.
pub fn combine(left: &Value, right: &Value, join: Join, merge_channels: bool) -> Result<Value> {
    if merge_channels && join == Join::None {
        return Err(op_error(
            "--merge-channels needs --join outer, 'left outer' or 'right outer'".into(),
        ));
    }
    let (lv, rv) = (&left["version"], &right["version"]);
    if !json_eq(lv, rv) {
        return Err(op_error(format!(
            "workspaces of different versions cannot be combined: {lv} and {rv}"
        )));
    }
    let deep = merge_channels.then_some("samples");
    let channels = join_named(
        join,
        "channels",
        list(left, "channels"),
        list(right, "channels"),
        deep,
    )?;
    let observations = join_named(
        join,
        "observations",
        list(left, "observations"),
        list(right, "observations"),
        None,
    )?;
    let measurements = join_measurements(
        join,
        list(left, "measurements"),
        list(right, "measurements"),
    )?;
    let ws = json!({
        "channels": channels,
        "measurements": measurements,
        "observations": observations,
        "version": lv,
    });
    check(
        &ws,
        &format!("the combined workspace (join {})", join.label()),
    )?;
    Ok(ws)
}

// ------------------------------------------------------------------ prune and rename

/// What to remove (pyhf `prune`) and rename (pyhf `rename`); renames are
/// `(old, new)` pairs, a later pair for the same name replacing an earlier one.
#[derive(Debug, Clone, Default)]
pub struct Edit {
    /// Channels to remove (with their observations).
    pub prune_channels: Vec<String>,
    /// Samples to remove (in every channel).
    pub prune_samples: Vec<String>,
    /// Modifiers to remove by name (with their parameter configurations).
    pub prune_modifiers: Vec<String>,
    /// Modifiers to remove by type.
    pub prune_modifier_types: Vec<String>,
    /// Measurements to remove.
    pub prune_measurements: Vec<String>,
    /// Channel renames.
    pub rename_channels: Vec<(String, String)>,
    /// Sample renames.
    pub rename_samples: Vec<(String, String)>,
    /// Modifier renames (parameter configurations and the POI follow).
    pub rename_modifiers: Vec<(String, String)>,
    /// Measurement renames.
    pub rename_measurements: Vec<(String, String)>,
}

fn renamer(pairs: &[(String, String)]) -> HashMap<&str, &str> {
    pairs
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect()
}

fn renamed(map: &HashMap<&str, &str>, v: &Value) -> Value {
    let n = name(v);
    Value::String(map.get(n).copied().unwrap_or(n).to_string())
}

/// Check that every named item exists (pyhf raises InvalidWorkspaceOperation).
fn require<'a>(
    what: &str,
    asked: impl Iterator<Item = &'a String>,
    present: &BTreeSet<&str>,
) -> Result<()> {
    for n in asked {
        if !present.contains(n.as_str()) {
            let mut have: Vec<&str> = present.iter().copied().take(12).collect();
            if present.len() > have.len() {
                have.push("...");
            }
            return Err(op_error(format!(
                "'{n}' is not one of the {what} in this workspace (it has: {})",
                have.join(", ")
            )));
        }
    }
    Ok(())
}

/// pyhf's `Workspace._prune_and_rename`: remove and rename in one pass.
pub fn edit(ws: &Value, e: &Edit) -> Result<Value> {
    let channels = list(ws, "channels");
    let samples = || channels.iter().flat_map(|c| list(c, "samples"));
    let modifiers = || samples().flat_map(|s| list(s, "modifiers"));
    let types: BTreeSet<&str> = modifiers()
        .map(|m| m.get("type").and_then(Value::as_str).unwrap_or(""))
        .collect();
    let mod_names: BTreeSet<&str> = modifiers().map(name).collect();
    let sample_names: BTreeSet<&str> = samples().map(name).collect();
    let channel_names: BTreeSet<&str> = channels.iter().map(name).collect();
    let meas_names: BTreeSet<&str> = list(ws, "measurements").iter().map(name).collect();
    require("modifier types", e.prune_modifier_types.iter(), &types)?;
    let firsts = |v: &'_ [(String, String)]| v.iter().map(|p| p.0.clone()).collect::<Vec<_>>();
    require(
        "modifiers",
        e.prune_modifiers.iter().chain(&firsts(&e.rename_modifiers)),
        &mod_names,
    )?;
    require(
        "samples",
        e.prune_samples.iter().chain(&firsts(&e.rename_samples)),
        &sample_names,
    )?;
    require(
        "channels",
        e.prune_channels.iter().chain(&firsts(&e.rename_channels)),
        &channel_names,
    )?;
    require(
        "measurements",
        e.prune_measurements
            .iter()
            .chain(&firsts(&e.rename_measurements)),
        &meas_names,
    )?;
    let (rc, rs, rm, rme) = (
        renamer(&e.rename_channels),
        renamer(&e.rename_samples),
        renamer(&e.rename_modifiers),
        renamer(&e.rename_measurements),
    );
    let has = |v: &[String], n: &str| v.iter().any(|x| x == n);
    let with_name = |v: &Value, n: Value| -> Value {
        let mut o: Map<String, Value> = v.as_object().cloned().unwrap_or_default();
        o.insert("name".into(), n);
        Value::Object(o)
    };
    let new_channels: Vec<Value> = channels
        .iter()
        .filter(|c| !has(&e.prune_channels, name(c)))
        .map(|c| {
            let samples: Vec<Value> = list(c, "samples")
                .iter()
                .filter(|s| !has(&e.prune_samples, name(s)))
                .map(|s| {
                    let mods: Vec<Value> = list(s, "modifiers")
                        .iter()
                        .filter(|m| {
                            !has(&e.prune_modifiers, name(m))
                                && !has(
                                    &e.prune_modifier_types,
                                    m.get("type").and_then(Value::as_str).unwrap_or(""),
                                )
                        })
                        .map(|m| with_name(m, renamed(&rm, m)))
                        .collect();
                    json!({"name": renamed(&rs, s), "data": s["data"], "modifiers": mods})
                })
                .collect();
            json!({"name": renamed(&rc, c), "samples": samples})
        })
        .collect();
    let new_measurements: Vec<Value> = list(ws, "measurements")
        .iter()
        .filter(|m| !has(&e.prune_measurements, name(m)))
        .map(|m| {
            let pars: Vec<Value> = list(&m["config"], "parameters")
                .iter()
                .filter(|p| !has(&e.prune_modifiers, name(p)))
                .map(|p| with_name(p, renamed(&rm, p)))
                .collect();
            let poi = m["config"]["poi"].as_str().unwrap_or("");
            let poi = rm.get(poi).copied().unwrap_or(poi);
            json!({"name": renamed(&rme, m), "config": {"parameters": pars, "poi": poi}})
        })
        .collect();
    let new_observations: Vec<Value> = list(ws, "observations")
        .iter()
        .filter(|o| !has(&e.prune_channels, name(o)))
        .map(|o| with_name(o, renamed(&rc, o)))
        .collect();
    let out = json!({
        "channels": new_channels,
        "measurements": new_measurements,
        "observations": new_observations,
        "version": ws["version"],
    });
    check(&out, "the edited workspace")?;
    Ok(out)
}

// ------------------------------------------------------------------ sort and digest

fn sort_by_name(v: &mut Value, key: &str) {
    if let Some(a) = v.get_mut(key).and_then(Value::as_array_mut) {
        a.sort_by(|x, y| name(x).cmp(name(y)));
    }
}

/// pyhf's `Workspace.sorted`: channels, samples, modifiers (by name, then
/// type), measurements, parameter configurations and observations by name.
pub fn sorted(ws: &Value) -> Value {
    let mut out = ws.clone();
    sort_by_name(&mut out, "channels");
    if let Some(chs) = out.get_mut("channels").and_then(Value::as_array_mut) {
        for c in chs {
            sort_by_name(c, "samples");
            if let Some(ss) = c.get_mut("samples").and_then(Value::as_array_mut) {
                for s in ss {
                    if let Some(ms) = s.get_mut("modifiers").and_then(Value::as_array_mut) {
                        let ty = |m: &Value| {
                            m.get("type")
                                .and_then(Value::as_str)
                                .unwrap_or("")
                                .to_string()
                        };
                        ms.sort_by(|a, b| (name(a), ty(a)).cmp(&(name(b), ty(b))));
                    }
                }
            }
        }
    }
    sort_by_name(&mut out, "measurements");
    if let Some(ms) = out.get_mut("measurements").and_then(Value::as_array_mut) {
        for m in ms {
            if let Some(cfg) = m.get_mut("config") {
                sort_by_name(cfg, "parameters");
            }
        }
    }
    sort_by_name(&mut out, "observations");
    out
}

/// Hash algorithms `digest` knows (pyhf takes any of Python's hashlib; patchsets use sha256 or md5).
pub const DIGEST_ALGORITHMS: [&str; 6] = ["sha256", "md5", "sha1", "sha224", "sha384", "sha512"];

/// Hex digest of bytes with a named algorithm.
pub fn hash_hex(bytes: &[u8], algorithm: &str) -> Result<String> {
    use sha2::Digest;
    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }
    Ok(match algorithm {
        "sha256" => hex(&sha2::Sha256::digest(bytes)),
        "sha224" => hex(&sha2::Sha224::digest(bytes)),
        "sha384" => hex(&sha2::Sha384::digest(bytes)),
        "sha512" => hex(&sha2::Sha512::digest(bytes)),
        "sha1" => hex(&sha1::Sha1::digest(bytes)),
        "md5" => hex(&md5::Md5::digest(bytes)),
        other => {
            return Err(Error::input(format!(
                "unknown digest algorithm '{other}'; gradfit knows {}",
                DIGEST_ALGORITHMS.join(", ")
            )));
        }
    })
}

/// pyhf's `utils.digest(workspace, algorithm)`: the hash of
/// `json.dumps(ws, sort_keys=True, ensure_ascii=False)` in UTF-8.
pub fn digest(ws: &Value, algorithm: &str) -> Result<String> {
    hash_hex(pyjson::dumps(ws, Style::DIGEST).as_bytes(), algorithm)
}
