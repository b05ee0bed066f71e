//! Readers of event files: NumPy `.npy`/`.npz` (through candle's reader, already a
//! dependency) and Parquet (the `parquet` crate without Arrow: only the column
//! reader, with Snappy pages).
//!
//! Layouts:
//! - Parquet: one column per observable, named like it (DOUBLE, FLOAT, INT32 or
//!   INT64; no nulls); optionally a weights column;
//! - `.npz`: one one-dimensional array per observable, named like it; optionally
//!   a weights array;
//! - `.npy`: one array of shape (N, n_observables) in the order asked for (or
//!   shape (N,) for one observable); no weights.

use crate::error::{Error, Result};
use std::path::Path;

/// Named arrays of a `.npz` file: name, shape, values.
pub type NamedArrays = Vec<(String, Vec<usize>, Vec<f64>)>;
/// Columns and optional weights.
pub type Columns = (Vec<Vec<f64>>, Option<Vec<f64>>);

fn err(path: &Path, msg: impl std::fmt::Display) -> Error {
    Error::input(format!("{}: {msg}", path.display()))
}

/// Shape and values (row-major, as f64) of the array in a `.npy` file.
pub fn read_npy_array(path: &Path) -> Result<(Vec<usize>, Vec<f64>)> {
    if !path.exists() {
        return Err(err(path, "file not found"));
    }
    let t = candle_core::Tensor::read_npy(path).map_err(|e| err(path, e))?;
    tensor_f64(path, &t)
}

/// Every array of a `.npz` file: name, shape and values (as f64).
pub fn read_npz_arrays(path: &Path) -> Result<NamedArrays> {
    if !path.exists() {
        return Err(err(path, "file not found"));
    }
    let arrays = candle_core::Tensor::read_npz(path).map_err(|e| err(path, e))?;
    arrays
        .into_iter()
        .map(|(name, t)| {
            let (shape, v) = tensor_f64(path, &t)?;
            Ok((name, shape, v))
        })
        .collect()
}

fn tensor_f64(path: &Path, t: &candle_core::Tensor) -> Result<(Vec<usize>, Vec<f64>)> {
    let shape = t.dims().to_vec();
    let v = t
        .to_dtype(candle_core::DType::F64)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1::<f64>())
        .map_err(|e| err(path, e))?;
    Ok((shape, v))
}

/// Columns `names` (and an optional weights column) of a Parquet file, as f64.
pub fn read_parquet_columns(path: &Path, names: &[&str]) -> Result<Vec<Vec<f64>>> {
    use parquet::column::reader::ColumnReader;
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let file = std::fs::File::open(path).map_err(|e| Error::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    let reader = SerializedFileReader::new(file).map_err(|e| err(path, e))?;
    let schema = reader.metadata().file_metadata().schema_descr();
    let mut idx = Vec::with_capacity(names.len());
    for name in names {
        let i = (0..schema.num_columns())
            .find(|&i| schema.column(i).path().string() == *name)
            .ok_or_else(|| {
                let have: Vec<String> = (0..schema.num_columns())
                    .map(|i| schema.column(i).path().string())
                    .collect();
                err(
                    path,
                    format!("no column '{name}' (columns: {})", have.join(", ")),
                )
            })?;
        if schema.column(i).max_rep_level() > 0 {
            return Err(err(
                path,
                format!("column '{name}' is repeated (a list), not a number per event"),
            ));
        }
        idx.push(i);
    }
    let total = reader.metadata().file_metadata().num_rows().max(0) as usize;
    let mut out: Vec<Vec<f64>> = names.iter().map(|_| Vec::with_capacity(total)).collect();
    for rg in 0..reader.num_row_groups() {
        let group = reader.get_row_group(rg).map_err(|e| err(path, e))?;
        let rows = group.metadata().num_rows().max(0) as usize;
        for (k, &ci) in idx.iter().enumerate() {
            let max_def = schema.column(ci).max_def_level();
            let col = group.get_column_reader(ci).map_err(|e| err(path, e))?;
            let mut defs: Vec<i16> = Vec::new();
            let defs_opt = if max_def > 0 { Some(&mut defs) } else { None };
            let before = out[k].len();
            macro_rules! read {
                ($r:expr, $t:ty, $conv:expr) => {{
                    let mut r = $r;
                    let mut vals: Vec<$t> = Vec::with_capacity(rows);
                    let (recs, nvals, _) = r
                        .read_records(rows, defs_opt, None, &mut vals)
                        .map_err(|e| err(path, e))?;
                    if recs != rows || nvals != rows {
                        return Err(err(
                            path,
                            format!(
                                "column '{}' row group {rg}: {nvals} values for {rows} rows (nulls are not allowed)",
                                names[k]
                            ),
                        ));
                    }
                    out[k].extend(vals.into_iter().map($conv));
                }};
            }
            match col {
                ColumnReader::DoubleColumnReader(r) => read!(r, f64, |v| v),
                ColumnReader::FloatColumnReader(r) => read!(r, f32, |v| v as f64),
                ColumnReader::Int32ColumnReader(r) => read!(r, i32, |v| v as f64),
                ColumnReader::Int64ColumnReader(r) => read!(r, i64, |v| v as f64),
                _ => {
                    return Err(err(
                        path,
                        format!("column '{}' is not a number column", names[k]),
                    ));
                }
            }
            debug_assert_eq!(out[k].len(), before + rows);
        }
    }
    Ok(out)
}

/// Read the observables `names` (and weights `weights`, if named) from an event
/// file, dispatching on its extension (`.parquet`/`.pq`, `.npz`, `.npy`).
pub fn read_columns(path: &Path, names: &[&str], weights: Option<&str>) -> Result<Columns> {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "parquet" | "pq" => {
            let mut all: Vec<&str> = names.to_vec();
            if let Some(w) = weights {
                all.push(w);
            }
            let mut cols = read_parquet_columns(path, &all)?;
            let w = weights.map(|_| cols.pop().unwrap_or_default());
            Ok((cols, w))
        }
        "npz" => {
            let arrays = read_npz_arrays(path)?;
            let get = |name: &str| -> Result<Vec<f64>> {
                let (_, shape, v) = arrays.iter().find(|(n, _, _)| n == name).ok_or_else(|| {
                    let have: Vec<&str> = arrays.iter().map(|(n, _, _)| n.as_str()).collect();
                    err(
                        path,
                        format!("no array '{name}' (arrays: {})", have.join(", ")),
                    )
                })?;
                if shape.len() != 1 {
                    return Err(err(
                        path,
                        format!("array '{name}' has shape {shape:?}; one dimension expected"),
                    ));
                }
                Ok(v.clone())
            };
            let cols = names.iter().map(|n| get(n)).collect::<Result<Vec<_>>>()?;
            let w = weights.map(get).transpose()?;
            Ok((cols, w))
        }
        "npy" => {
            if weights.is_some() {
                return Err(err(
                    path,
                    "a .npy file holds no weights; use .npz or Parquet",
                ));
            }
            let (shape, v) = read_npy_array(path)?;
            let k = names.len();
            let n = match shape.as_slice() {
                [n] if k == 1 => *n,
                [n, c] if *c == k => *n,
                _ => {
                    return Err(err(
                        path,
                        format!(
                            "array of shape {shape:?}; expected (N, {k}) for observables {names:?}"
                        ),
                    ));
                }
            };
            let cols = (0..k)
                .map(|j| (0..n).map(|i| v[i * k + j]).collect())
                .collect();
            Ok((cols, None))
        }
        _ => Err(err(
            path,
            "unknown event file type (expected .parquet, .pq, .npz or .npy)",
        )),
    }
}
