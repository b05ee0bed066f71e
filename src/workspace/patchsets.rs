//! pyhf's patchset operations on the JSON documents: list, extract, verify
//! the digests of the background-only workspace, apply (see `pyhf.patchset`).

use super::tools::{check, digest};
use super::{PatchSet, apply_patch, patchset_from_value};
use crate::error::{Error, Result};
use serde_json::{Value, json};
use std::collections::HashMap;

/// A patchset document with its typed view, checked as pyhf checks it: names
/// and value tuples unique, one value per label.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The document as read (numbers as written).
    pub value: Value,
    /// Its typed view.
    pub set: PatchSet,
    /// Label for messages.
    pub label: String,
}

fn patch_error(label: &str, message: String) -> Error {
    Error::Patch {
        source_name: label.to_string(),
        message,
    }
}

/// Read and check a patchset document.
pub fn checked(value: Value, label: &str) -> Result<Checked> {
    let set = patchset_from_value(&value, label)?;
    let labels = set.metadata.get("labels").and_then(Value::as_array);
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut values: HashMap<String, usize> = HashMap::new();
    for (i, p) in set.patches.iter().enumerate() {
        let at = format!("/patches/{i}/metadata");
        if let Some(prev) = names.insert(&p.metadata.name, i) {
            return Err(patch_error(
                label,
                format!(
                    "{at}: patch name '{}' is used twice (also /patches/{prev})",
                    p.metadata.name
                ),
            ));
        }
        let key = Value::Array(p.metadata.values.clone()).to_string();
        if let Some(prev) = values.insert(key.clone(), i) {
            return Err(patch_error(
                label,
                format!("{at}/values: the values {key} are used twice (also /patches/{prev})"),
            ));
        }
        if let Some(l) = labels
            && l.len() != p.metadata.values.len()
        {
            return Err(patch_error(
                label,
                format!(
                    "{at}/values: {} values for the {} labels of the patchset",
                    p.metadata.values.len(),
                    l.len()
                ),
            ));
        }
    }
    Ok(Checked {
        value,
        set,
        label: label.to_string(),
    })
}

impl Checked {
    /// Patch names in order.
    pub fn names(&self) -> Vec<&str> {
        self.set
            .patches
            .iter()
            .map(|p| p.metadata.name.as_str())
            .collect()
    }

    fn index(&self, name: &str) -> Result<usize> {
        self.names().iter().position(|n| *n == name).ok_or_else(|| {
            let names = self.names();
            let shown: Vec<&str> = names.iter().copied().take(10).collect();
            patch_error(
                &self.label,
                format!(
                    "no patch named '{name}' among its {} patches (first: {}); `gradfit patchset inspect` lists them",
                    names.len(),
                    shown.join(", ")
                ),
            )
        })
    }

    /// pyhf's `PatchSet.verify`: every recorded digest must equal the
    /// workspace's. Errors name the algorithm, both digests and the files.
    pub fn verify(&self, ws: &Value, ws_label: &str) -> Result<()> {
        verify_digests(&self.set.metadata, &self.label, ws, ws_label)
    }

    /// `pyhf patchset extract`: the patch's operations, or with
    /// `with_metadata` `{"metadata": patch metadata updated with the
    /// patchset's, "patch": operations}`.
    pub fn extract(&self, name: &str, with_metadata: bool) -> Result<Value> {
        let i = self.index(name)?;
        let entry = &self.value["patches"][i];
        if !with_metadata {
            return Ok(entry["patch"].clone());
        }
        let mut meta = entry["metadata"].as_object().cloned().unwrap_or_default();
        if let Some(m) = self.value["metadata"].as_object() {
            for (k, v) in m {
                meta.insert(k.clone(), v.clone());
            }
        }
        Ok(json!({"metadata": meta, "patch": entry["patch"]}))
    }

    /// `pyhf patchset apply`: verify the digests, apply the patch, check the result.
    pub fn apply(&self, ws: &Value, ws_label: &str, name: &str) -> Result<Value> {
        self.verify(ws, ws_label)?;
        let i = self.index(name)?;
        let mut out = ws.clone();
        apply_patch(
            &mut out,
            &self.value["patches"][i]["patch"],
            &format!("{} [{name}]", self.label),
        )?;
        check(
            &out,
            &format!("{ws_label} patched with {} [{name}]", self.label),
        )?;
        Ok(out)
    }
}

/// The digests a patchset's metadata records for its workspace, `(algorithm, hex)`.
pub fn digests(metadata: &Value) -> Vec<(String, String)> {
    metadata
        .get("digests")
        .and_then(Value::as_object)
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// Check every digest recorded in a patchset's `metadata` against the workspace.
pub fn verify_digests(metadata: &Value, set_label: &str, ws: &Value, ws_label: &str) -> Result<()> {
    let digests = digests(metadata);
    if digests.is_empty() {
        return Err(patch_error(
            set_label,
            "records no digest of its background-only workspace (metadata.digests), so it cannot be verified".into(),
        ));
    }
    for (alg, want) in digests {
        let got = digest(ws, &alg)?;
        if !got.eq_ignore_ascii_case(&want) {
            return Err(patch_error(
                set_label,
                format!(
                    "the {alg} digest of {ws_label} is {got}, but the patchset was made for a workspace with {want}: it is not this patchset's background-only workspace"
                ),
            ));
        }
    }
    Ok(())
}

/// A warning when a patchset's recorded digests do not match the workspace
/// it is applied to (pyhf refuses; the model commands warn). `None` when
/// they match or none is recorded.
pub fn digest_warning(
    set: &PatchSet,
    set_label: &str,
    ws: &Value,
    ws_label: &str,
) -> Option<String> {
    if digests(&set.metadata).is_empty() {
        return None;
    }
    verify_digests(&set.metadata, set_label, ws, ws_label)
        .err()
        .map(|e| format!("{e} (pyhf refuses to apply it; `gradfit patchset verify` checks this)"))
}
