//! Per-event arrays named in a workspace: `"file.npy"` (one-dimensional),
//! `"file.npz:NAME"`, `"file.parquet:COLUMN"`, or an object
//! `{"file": ..., "column": ...}`. Paths are relative to the workspace file.

use super::EventArrays;
use crate::error::{Error, Result};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Where a per-event array lives.
#[derive(Debug, Clone, PartialEq)]
pub struct ArrayRef {
    /// The file (resolved against the workspace's directory).
    pub file: PathBuf,
    /// Array or column name inside it (.npz, Parquet).
    pub column: Option<String>,
}

impl std::fmt::Display for ArrayRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.column {
            Some(c) => write!(f, "{}:{c}", self.file.display()),
            None => write!(f, "{}", self.file.display()),
        }
    }
}

fn has_table_ext(p: &str) -> bool {
    let l = p.to_ascii_lowercase();
    l.ends_with(".npz") || l.ends_with(".parquet") || l.ends_with(".pq")
}

/// Parse an array reference at JSON location `ptr` of `src`.
pub fn parse_ref(v: &Value, ptr: &str, src: &str, base: &Path) -> Result<ArrayRef> {
    let bad = |msg: &str| Error::input(format!("{src}: {ptr}: {msg}"));
    let (file, column) = match v {
        Value::String(s) => match s.rsplit_once(':') {
            Some((f, c)) if has_table_ext(f) && !c.is_empty() => {
                (f.to_string(), Some(c.to_string()))
            }
            _ => (s.clone(), None),
        },
        Value::Object(o) => {
            let f = o.get("file").and_then(Value::as_str).ok_or_else(|| {
                bad("an array reference object needs a string 'file' (and 'column' for .npz or Parquet)")
            })?;
            let c = o
                .get("column")
                .or_else(|| o.get("array"))
                .map(|c| {
                    c.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| bad("'column' must be a string"))
                })
                .transpose()?;
            (f.to_string(), c)
        }
        _ => {
            return Err(bad(
                "expected a path to a per-event array (\"file.npy\", \"file.npz:NAME\", \"file.parquet:COLUMN\") or {\"file\": ..., \"column\": ...}",
            ));
        }
    };
    if file.is_empty() {
        return Err(bad("empty file name"));
    }
    let path = Path::new(&file);
    let file = if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    };
    Ok(ArrayRef { file, column })
}

/// Read the array `r` (named at `ptr` of `src` in errors) as f64.
pub fn read(r: &ArrayRef, ptr: &str, src: &str) -> Result<Vec<f64>> {
    let ctx = |e: Error| Error::input(format!("{src}: {ptr}: {e}"));
    if !r.file.exists() {
        return Err(Error::input(format!(
            "{src}: {ptr}: {}: file not found",
            r.file.display()
        )));
    }
    let ext = r
        .file
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    match (ext.as_str(), &r.column) {
        ("npy", None) => {
            let (shape, v) = crate::data::read_npy_array(&r.file).map_err(ctx)?;
            match shape.as_slice() {
                [_] | [_, 1] => Ok(v),
                _ => Err(Error::input(format!(
                    "{src}: {ptr}: {}: array of shape {shape:?}; a per-event array must be one-dimensional",
                    r.file.display()
                ))),
            }
        }
        ("npy", Some(c)) => Err(Error::input(format!(
            "{src}: {ptr}: {}: a .npy file holds one array; drop ':{c}'",
            r.file.display()
        ))),
        ("npz" | "parquet" | "pq", Some(c)) => {
            let (mut cols, _) =
                crate::data::read_columns(&r.file, &[c.as_str()], None).map_err(ctx)?;
            Ok(cols.pop().unwrap_or_default())
        }
        ("npz" | "parquet" | "pq", None) => Err(Error::input(format!(
            "{src}: {ptr}: {}: name the array or column (\"{}:NAME\")",
            r.file.display(),
            r.file.display()
        ))),
        _ => Err(Error::input(format!(
            "{src}: {ptr}: {}: unknown file type (expected .npy, .npz or .parquet)",
            r.file.display()
        ))),
    }
}

/// Parse and read the array at `ptr`.
pub fn load(v: &Value, ptr: &str, src: &str, base: &Path) -> Result<(ArrayRef, Vec<f64>)> {
    let r = parse_ref(v, ptr, src, base)?;
    let a = read(&r, ptr, src)?;
    Ok((r, a))
}

/// Write a one-dimensional little-endian f64 `.npy` file (for examples and tests).
pub fn write_npy(path: &Path, v: &[f64]) -> Result<()> {
    let mut header = format!(
        "{{'descr': '<f8', 'fortran_order': False, 'shape': ({},), }}",
        v.len()
    );
    // magic (6) + version (2) + header length (2) + header, padded to 64 bytes with '\n' last
    let total = 10 + header.len() + 1;
    let pad = (64 - total % 64) % 64;
    header.push_str(&" ".repeat(pad));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + 8 * v.len());
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for x in v {
        out.extend_from_slice(&x.to_le_bytes());
    }
    std::fs::write(path, out).map_err(|e| Error::Io {
        path: path.to_path_buf(),
        source: e,
    })
}

/// Read the arrays of one event set, checking that all have the same length.
pub(super) fn read_set(
    src: &str,
    base: &Path,
    weights: Option<&(String, Value)>,
    ratios: &[(String, Value)],
    shapes: &[(String, Value, String, Value)],
    ensembles: &mut Vec<super::network::EnsembleSummary>,
) -> Result<EventArrays> {
    let mut first: Option<(String, usize)> = None;
    let mut get = |ptr: &str, v: &Value| -> Result<Vec<f64>> {
        let (r, a) = if super::network::is_network(v) {
            let (a, summary) = super::network::evaluate(v, ptr, src, base)?;
            ensembles.push(summary);
            (format!("the network ensemble at {ptr}"), a)
        } else {
            let (r, a) = load(v, ptr, src, base)?;
            (r.to_string(), a)
        };
        match &first {
            None => first = Some((format!("{ptr} ({r})"), a.len())),
            Some((f, n)) if *n != a.len() => {
                return Err(Error::input(format!(
                    "{src}: {ptr}: {r} has {} events, but {f} has {n}: per-event arrays of a channel must have equal lengths",
                    a.len()
                )));
            }
            _ => {}
        }
        Ok(a)
    };
    let mut out = EventArrays::default();
    for (ptr, v) in ratios {
        out.ratios.push(get(ptr, v)?);
    }
    if let Some((ptr, v)) = weights {
        out.weights = Some(get(ptr, v)?);
    }
    for (hp, h, lp, l) in shapes {
        out.shapes.push((get(hp, h)?, get(lp, l)?));
    }
    Ok(out)
}
