//! RFC 6902 JSON Patches and pyhf patchsets.

use super::{from_value_at, read_json};
use crate::error::{Error, Result};
use serde::Deserialize;
use serde_json::Value;
use std::path::Path;

/// Read a JSON Patch file (an array of RFC 6902 operations).
pub fn load_patch(path: &Path) -> Result<Value> {
    let v = read_json(path)?;
    // Validate the shape now so that errors name the patch file.
    let _: json_patch::Patch = parse_patch(&v, &path.display().to_string())?;
    Ok(v)
}

fn parse_patch(v: &Value, name: &str) -> Result<json_patch::Patch> {
    if !v.is_array() {
        let hint = if v.get("patches").is_some() {
            " (this file is a pyhf patchset: give it with --patchset FILE --patch-name NAME)"
        } else {
            ""
        };
        return Err(Error::Patch {
            source_name: name.to_string(),
            message: format!("a JSON Patch must be an array of operations{hint}"),
        });
    }
    from_value_at::<json_patch::Patch>(v, name, "").map_err(|e| match e {
        Error::Workspace {
            location, message, ..
        } => Error::Patch {
            source_name: name.to_string(),
            message: format!("malformed operation at {location}: {message}"),
        },
        other => other,
    })
}

/// Apply one patch (as a JSON value) to a document; `name` labels errors.
/// All or nothing: the document is unchanged when an operation fails.
/// `test` compares numbers by value (RFC 6902: 5 equals 5.0).
pub fn apply_patch(doc: &mut Value, patch: &Value, name: &str) -> Result<()> {
    let p = parse_patch(patch, name)?;
    // json-patch applies the whole patch or nothing; only a `test` it fails
    // (numbers compared by representation) needs the slower path below
    match json_patch::patch(doc, &p.0) {
        Ok(()) => return Ok(()),
        Err(e)
            if !matches!(
                p.0.get(e.operation),
                Some(json_patch::PatchOperation::Test(_))
            ) =>
        {
            let op = &p.0[e.operation];
            return Err(Error::Patch {
                source_name: name.to_string(),
                message: format!(
                    "operation {} ({} at path '{}') failed: {}; the patch does not fit this workspace",
                    e.operation,
                    op_name(op),
                    e.path,
                    e.kind
                ),
            });
        }
        Err(_) => {}
    }
    let mut work = doc.clone();
    for (k, op) in p.0.iter().enumerate() {
        let fail = |path: &str, why: String| Error::Patch {
            source_name: name.to_string(),
            message: format!(
                "operation {k} ({} at path '{path}') failed: {why}; the patch does not fit this workspace",
                op_name(op)
            ),
        };
        if let json_patch::PatchOperation::Test(t) = op {
            let path = t.path.to_string();
            match work.pointer(&path) {
                Some(v) if json_equal(v, &t.value) => continue,
                Some(v) => {
                    return Err(fail(
                        &path,
                        format!("the value there is {}, not {}", short(v), short(&t.value)),
                    ));
                }
                None => return Err(fail(&path, "no value there".into())),
            }
        }
        json_patch::patch(&mut work, std::slice::from_ref(op))
            .map_err(|e| fail(&e.path.to_string(), e.kind.to_string()))?;
    }
    *doc = work;
    Ok(())
}

/// JSON equality with numbers compared by value.
fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(u), Some(v)) => u == v,
            _ => x == y,
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(u, v)| json_equal(u, v))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, u)| y.get(k).is_some_and(|v| json_equal(u, v)))
        }
        _ => a == b,
    }
}

/// A value for a message, cut to a readable length.
fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 80 {
        format!("{}...", s.chars().take(77).collect::<String>())
    } else {
        s
    }
}

fn op_name(op: &json_patch::PatchOperation) -> &'static str {
    use json_patch::PatchOperation::*;
    match op {
        Add(_) => "add",
        Remove(_) => "remove",
        Replace(_) => "replace",
        Move(_) => "move",
        Copy(_) => "copy",
        Test(_) => "test",
    }
}

/// A pyhf patchset: named patches for a background-only workspace.
#[derive(Debug, Clone, Deserialize)]
pub struct PatchSet {
    /// Patchset metadata (kept verbatim).
    #[serde(default)]
    pub metadata: Value,
    /// The patches.
    pub patches: Vec<NamedPatch>,
    /// Schema version ("1.0.0").
    pub version: String,
}

/// One entry of a patchset.
#[derive(Debug, Clone, Deserialize)]
pub struct NamedPatch {
    /// Metadata with at least a `name`.
    pub metadata: PatchMetadata,
    /// The RFC 6902 operations.
    pub patch: Value,
}

/// Metadata of a patchset entry.
#[derive(Debug, Clone, Deserialize)]
pub struct PatchMetadata {
    /// Patch name, used by `--patch-name`.
    pub name: String,
    /// Signal-grid values (optional).
    #[serde(default)]
    pub values: Vec<Value>,
}

/// Read a pyhf patchset file, or the patchset of a HEPData archive
/// (`ARCHIVE[:MEMBER]`, see [`super::hepdata`]).
pub fn load_patchset(path: &Path) -> Result<PatchSet> {
    if let Some((archive, member)) = super::hepdata::split(path) {
        let m = super::hepdata::open_patchset(&archive, member.as_deref())?;
        let v = super::json::parse_strict(&m.bytes, &m.label)?;
        return patchset_from_value(&v, &m.label);
    }
    let name = path.display().to_string();
    let v = read_json(path)?;
    patchset_from_value(&v, &name)
}

/// A pyhf patchset from a parsed document; `name` labels errors.
pub fn patchset_from_value(v: &Value, name: &str) -> Result<PatchSet> {
    let name = name.to_string();
    if v.is_array() {
        return Err(Error::Patch {
            source_name: name,
            message: "not a pyhf patchset but a JSON Patch (an array of operations): give it with -p FILE".into(),
        });
    }
    let ps: PatchSet = from_value_at(v, &name, "").map_err(|e| match e {
        Error::Workspace {
            location, message, ..
        } => Error::Patch {
            source_name: name.clone(),
            message: format!("not a pyhf patchset: at {location}: {message}"),
        },
        other => other,
    })?;
    if ps.version != "1.0.0" {
        return Err(Error::Patch {
            source_name: name,
            message: format!(
                "unsupported patchset version '{}', expected '1.0.0'",
                ps.version
            ),
        });
    }
    Ok(ps)
}

/// Select the patch called `patch_name` from a patchset (as a JSON value).
pub fn apply_patchset(ps: &PatchSet, patch_name: &str, source_name: &str) -> Result<Value> {
    match ps.patches.iter().find(|p| p.metadata.name == patch_name) {
        Some(p) => {
            parse_patch(&p.patch, &format!("{source_name} [{patch_name}]"))?;
            Ok(p.patch.clone())
        }
        None => {
            let mut names: Vec<&str> = ps
                .patches
                .iter()
                .map(|p| p.metadata.name.as_str())
                .collect();
            let total = names.len();
            names.truncate(10);
            Err(Error::Patch {
                source_name: source_name.to_string(),
                message: format!(
                    "no patch named '{patch_name}' among {total} patches (first: {})",
                    names.join(", ")
                ),
            })
        }
    }
}
