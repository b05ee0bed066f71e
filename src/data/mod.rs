//! Per-event data: named columns of f64 with optional weights, and readers for
//! the files large data sets come in (.npy, .npz, Parquet).
//!
//! Columns are stored contiguously (one `Vec<f64>` per observable), the layout the
//! per-event kernels loop over.

mod files;

pub use files::{
    Columns, NamedArrays, read_columns, read_npy_array, read_npz_arrays, read_parquet_columns,
};

use crate::error::{Error, Result};

/// Events: one column per observable, optional per-event weights.
#[derive(Debug, Clone, PartialEq)]
pub struct EventData {
    /// Observable names, one per column.
    pub names: Vec<String>,
    /// Column values (all the same length).
    pub cols: Vec<Vec<f64>>,
    /// Per-event weights (None: all 1).
    pub weights: Option<Vec<f64>>,
}

impl EventData {
    /// Build from columns, checking lengths and finiteness.
    pub fn new(names: Vec<String>, cols: Vec<Vec<f64>>, weights: Option<Vec<f64>>) -> Result<Self> {
        if names.len() != cols.len() {
            return Err(Error::input(format!(
                "{} column names for {} columns",
                names.len(),
                cols.len()
            )));
        }
        let n = cols.first().map_or(0, |c| c.len());
        for (name, c) in names.iter().zip(&cols) {
            if c.len() != n {
                return Err(Error::input(format!(
                    "column '{name}' has {} entries, the first column {n}",
                    c.len()
                )));
            }
            if let Some(i) = c.iter().position(|v| !v.is_finite()) {
                return Err(Error::input(format!(
                    "column '{name}' entry {i} is {}",
                    c[i]
                )));
            }
        }
        if let Some(w) = &weights {
            if w.len() != n {
                return Err(Error::input(format!("{} weights for {n} events", w.len())));
            }
            if let Some(i) = w.iter().position(|v| !v.is_finite()) {
                return Err(Error::input(format!("weight {i} is {}", w[i])));
            }
        }
        Ok(EventData {
            names,
            cols,
            weights,
        })
    }

    /// Number of events.
    pub fn len(&self) -> usize {
        self.cols.first().map_or(0, |c| c.len())
    }

    /// True without events.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sum of weights (the number of events when unweighted).
    pub fn sum_w(&self) -> f64 {
        match &self.weights {
            Some(w) => w.iter().sum(),
            None => self.len() as f64,
        }
    }

    /// Sum of squared weights.
    pub fn sum_w2(&self) -> f64 {
        match &self.weights {
            Some(w) => w.iter().map(|x| x * x).sum(),
            None => self.len() as f64,
        }
    }

    /// Column of an observable by name.
    pub fn column(&self, name: &str) -> Option<&[f64]> {
        self.names
            .iter()
            .position(|n| n == name)
            .map(|i| self.cols[i].as_slice())
    }

    /// True when some weight differs from 1.
    pub fn is_weighted(&self) -> bool {
        self.weights
            .as_ref()
            .is_some_and(|w| w.iter().any(|x| *x != 1.0))
    }
}
