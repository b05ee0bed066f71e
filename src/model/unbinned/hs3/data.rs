//! HS3 `data`: unbinned entries (inline or in an external event file, a
//! gradfit extension) and binned contents.
//!
//! External events (gradfit extension): an unbinned data object may name a file
//! instead of giving `entries`:
//! `{"name": "d", "type": "unbinned", "axes": [...], "entries_file": "events.parquet",
//!   "weights_name": "w"}` with the path relative to the HS3 file's folder
//! (Parquet: one column per axis name; .npz: one array per axis name; .npy: an
//! (N, n_axes) array in axis order). `weights_name` (optional) names the weights
//! column or array.

use super::Doc;
use crate::data::{EventData, read_columns};
use crate::error::{Error, Result};
use crate::model::unbinned::Axis;
use serde_json::Value;

fn err(doc: &Doc, loc: &str, msg: impl Into<String>) -> Error {
    Error::workspace(doc.source, loc, msg)
}

/// A JSON array of finite numbers.
pub(crate) fn numbers(doc: &Doc, v: Option<&Value>, loc: &str) -> Result<Vec<f64>> {
    let arr = v
        .and_then(Value::as_array)
        .ok_or_else(|| err(doc, loc, "expected an array of numbers"))?;
    arr.iter()
        .enumerate()
        .map(|(i, x)| {
            x.as_f64().filter(|x| x.is_finite()).ok_or_else(|| {
                err(
                    doc,
                    &format!("{loc}/{i}"),
                    format!("{x} is not a finite number"),
                )
            })
        })
        .collect()
}

fn num(doc: &Doc, v: &Value, key: &str, loc: &str) -> Result<Option<f64>> {
    match v.get(key) {
        None => Ok(None),
        Some(x) => x
            .as_f64()
            .filter(|x| x.is_finite())
            .map(Some)
            .ok_or_else(|| {
                err(
                    doc,
                    &format!("{loc}/{key}"),
                    format!("{x} is not a finite number"),
                )
            }),
    }
}

fn axis_name(doc: &Doc, a: &Value, loc: &str) -> Result<String> {
    a.get("name")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| err(doc, loc, "axis without a 'name'"))
}

/// Name and bin edges of a binned axis (`edges`, or `min`, `max` and `nbins`).
pub(crate) fn binned_axis(doc: &Doc, a: &Value, loc: &str) -> Result<(String, Vec<f64>)> {
    let name = axis_name(doc, a, loc)?;
    let edges = if a.get("edges").is_some() {
        let e = numbers(doc, a.get("edges"), &format!("{loc}/edges"))?;
        if e.len() < 2 || e.windows(2).any(|w| !(w[1] > w[0])) {
            return Err(err(
                doc,
                &format!("{loc}/edges"),
                "edges must be at least two strictly increasing numbers",
            ));
        }
        e
    } else {
        let lo = num(doc, a, "min", loc)?;
        let hi = num(doc, a, "max", loc)?;
        let n = a.get("nbins").and_then(Value::as_u64);
        match (lo, hi, n) {
            (Some(lo), Some(hi), Some(n)) if n > 0 && hi > lo => (0..=n)
                .map(|k| lo + (hi - lo) * k as f64 / n as f64)
                .collect(),
            _ => {
                return Err(err(
                    doc,
                    loc,
                    format!("binned axis '{name}' needs 'edges', or 'min' < 'max' and 'nbins' > 0"),
                ));
            }
        }
    };
    Ok((name, edges))
}

/// Range of a variable from the domains (first domain giving both ends).
fn domain_range(doc: &Doc, name: &str) -> Option<(f64, f64)> {
    for d in doc.domains {
        for a in d
            .get("axes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if a.get("name").and_then(Value::as_str) == Some(name)
                && let (Some(lo), Some(hi)) = (
                    a.get("min").and_then(Value::as_f64),
                    a.get("max").and_then(Value::as_f64),
                )
            {
                return Some((lo, hi));
            }
        }
    }
    None
}

/// An unbinned data set: its axes (normalisation ranges) and events in axis order.
/// Names of the axes of data set `di`.
pub(crate) fn axis_names(doc: &Doc, di: usize) -> Result<Vec<String>> {
    let loc = format!("/data/{di}/axes");
    let axes = doc.data[di]
        .get("axes")
        .and_then(Value::as_array)
        .ok_or_else(|| err(doc, &loc, "data needs an array 'axes'"))?;
    axes.iter()
        .enumerate()
        .map(|(k, a)| axis_name(doc, a, &format!("{loc}/{k}")))
        .collect()
}

/// An unbinned data set: its axes (normalisation ranges) and events in axis
/// order. `unbounded_ok(name)`: the axis may lack a range (a counting variable
/// of Poisson densities only); it is then [0, inf).
pub(crate) fn unbinned(
    doc: &Doc,
    di: usize,
    unbounded_ok: &dyn Fn(&str) -> bool,
) -> Result<(Vec<Axis>, EventData)> {
    let d = &doc.data[di];
    let loc = format!("/data/{di}");
    let axes_v = d.get("axes").and_then(Value::as_array).ok_or_else(|| {
        err(
            doc,
            &format!("{loc}/axes"),
            "unbinned data needs an array 'axes'",
        )
    })?;
    if axes_v.is_empty() {
        return Err(err(
            doc,
            &format!("{loc}/axes"),
            "unbinned data needs at least one axis",
        ));
    }
    let mut axes = Vec::with_capacity(axes_v.len());
    for (k, a) in axes_v.iter().enumerate() {
        let al = format!("{loc}/axes/{k}");
        let name = axis_name(doc, a, &al)?;
        if axes.iter().any(|x: &Axis| x.name == name) {
            return Err(err(doc, &al, format!("axis '{name}' appears twice")));
        }
        let (lo, hi) = match (num(doc, a, "min", &al)?, num(doc, a, "max", &al)?) {
            (Some(lo), Some(hi)) => (lo, hi),
            // raw ROOT output: an axis with a value but no range; the domains may give it
            _ if unbounded_ok(&name) => domain_range(doc, &name)
                .filter(|(lo, hi)| lo.is_finite() && hi.is_finite())
                .unwrap_or((0.0, f64::INFINITY)),
            _ => domain_range(doc, &name).ok_or_else(|| {
                err(doc, &al, format!("axis '{name}' has no 'min'/'max' and no domain gives its range (the normalisation range)"))
            })?,
        };
        if !(hi > lo) {
            return Err(err(
                doc,
                &al,
                format!("axis '{name}': min {lo} is not below max {hi}"),
            ));
        }
        axes.push(Axis { name, lo, hi });
    }
    let names: Vec<String> = axes.iter().map(|a| a.name.clone()).collect();
    let k = axes.len();
    let (cols, weights, entries_loc) = if let Some(file) = d.get("entries_file") {
        let fl = format!("{loc}/entries_file");
        let rel = file
            .as_str()
            .ok_or_else(|| err(doc, &fl, "expected a file name"))?;
        let path = doc.base_dir.join(rel);
        let wname = match d.get("weights_name") {
            None => None,
            Some(v) => Some(
                v.as_str()
                    .ok_or_else(|| err(doc, &format!("{loc}/weights_name"), "expected a name"))?,
            ),
        };
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let (cols, w) =
            read_columns(&path, &refs, wname).map_err(|e| err(doc, &fl, e.to_string()))?;
        (cols, w, fl)
    } else {
        let el = format!("{loc}/entries");
        let entries = d.get("entries").and_then(Value::as_array).ok_or_else(|| {
            err(
                doc,
                &el,
                "unbinned data needs 'entries' (or the gradfit extension 'entries_file')",
            )
        })?;
        let mut cols: Vec<Vec<f64>> = vec![Vec::with_capacity(entries.len()); k];
        for (i, e) in entries.iter().enumerate() {
            let row = e.as_array().filter(|r| r.len() == k).ok_or_else(|| {
                err(
                    doc,
                    &format!("{el}/{i}"),
                    format!("expected an array of {k} numbers (one per axis)"),
                )
            })?;
            for (j, x) in row.iter().enumerate() {
                let v = x.as_f64().filter(|v| v.is_finite()).ok_or_else(|| {
                    err(
                        doc,
                        &format!("{el}/{i}/{j}"),
                        format!("{x} is not a finite number"),
                    )
                })?;
                cols[j].push(v);
            }
        }
        let w = match d.get("weights") {
            None => None,
            Some(v) => Some(numbers(doc, Some(v), &format!("{loc}/weights"))?),
        };
        (cols, w, el)
    };
    let n = cols.first().map_or(0, Vec::len);
    if let Some(w) = &weights
        && w.len() != n
    {
        return Err(err(
            doc,
            &format!("{loc}/weights"),
            format!("{} weights for {n} entries", w.len()),
        ));
    }
    for (j, a) in axes.iter().enumerate() {
        if let Some(i) = cols[j].iter().position(|x| !(*x >= a.lo && *x <= a.hi)) {
            return Err(err(
                doc,
                &format!("{entries_loc}/{i}"),
                format!(
                    "event {i} has {} = {}, outside the axis range [{}, {}] (events outside the normalisation range are refused)",
                    a.name, cols[j][i], a.lo, a.hi
                ),
            ));
        }
    }
    let data =
        EventData::new(names, cols, weights).map_err(|e| err(doc, &entries_loc, e.to_string()))?;
    Ok((axes, data))
}

/// Axes (name, edges) and contents of binned data.
type Binned = (Vec<(String, Vec<f64>)>, Vec<f64>);

/// A binned data set: axes (name, edges) and contents.
pub(crate) fn binned(doc: &Doc, di: usize) -> Result<Binned> {
    let d = &doc.data[di];
    let loc = format!("/data/{di}");
    let axes_v = d.get("axes").and_then(Value::as_array).ok_or_else(|| {
        err(
            doc,
            &format!("{loc}/axes"),
            "binned data needs an array 'axes'",
        )
    })?;
    let axes = axes_v
        .iter()
        .enumerate()
        .map(|(k, a)| binned_axis(doc, a, &format!("{loc}/axes/{k}")))
        .collect::<Result<Vec<_>>>()?;
    let contents = numbers(doc, d.get("contents"), &format!("{loc}/contents"))?;
    let nb: usize = axes.iter().map(|a| a.1.len() - 1).product();
    if contents.len() != nb {
        return Err(err(
            doc,
            &format!("{loc}/contents"),
            format!("{} contents for {nb} bins", contents.len()),
        ));
    }
    Ok((axes, contents))
}
