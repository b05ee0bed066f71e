//! Reader of HS3 0.2 files (the JSON of ROOT's RooJSONFactoryWSTool and pyhs3).
//!
//! Choice of what to fit: the analysis named (or the first analysis), else the
//! first likelihood, else (files with neither) each unbinned data set paired with
//! the first top-level distribution whose observables are its axes. A likelihood
//! pairs distributions with data sets (unbinned: an unbinned channel; binned: a
//! `histfactory_dist` channel) or with inline numbers (one-dimensional constraint
//! terms); `aux_distributions` are constraint terms whose datum is the value of
//! their variable in the initial parameter point.
//!
//! Parameters: every name a density or coefficient reads that is not a function,
//! a distribution or an observable, in order of first appearance. Initial values
//! and `const` flags come from the analysis' `init` point (else `default_values`,
//! else the first point), bounds from the analysis' domains (else every domain,
//! the first naming a parameter winning).

mod build;
mod data;
mod dists;
mod funcs;
mod histfactory;
mod table;

pub use table::{Hs3Model, Hs3Part};

use crate::error::{Error, Result};
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;

/// The top-level arrays of an HS3 document with name indexes.
pub(crate) struct Doc<'a> {
    pub source: &'a str,
    pub base_dir: &'a Path,
    pub distributions: &'a [Value],
    pub functions: &'a [Value],
    pub data: &'a [Value],
    pub likelihoods: &'a [Value],
    pub domains: &'a [Value],
    pub points: &'a [Value],
    pub analyses: &'a [Value],
    pub dists: HashMap<String, usize>,
    pub funcs: HashMap<String, usize>,
    pub datas: HashMap<String, usize>,
}

const EMPTY: &[Value] = &[];

impl<'a> Doc<'a> {
    fn new(root: &'a Value, source: &'a str, base_dir: &'a Path) -> Result<Self> {
        let err = |loc: &str, msg: String| Error::workspace(source, loc, msg);
        let obj = root
            .as_object()
            .ok_or_else(|| err("", "an HS3 file is a JSON object".into()))?;
        let arr = |k: &str| -> Result<&'a [Value]> {
            match obj.get(k) {
                None => Ok(EMPTY),
                Some(Value::Array(a)) => Ok(a.as_slice()),
                Some(_) => Err(err(&format!("/{k}"), format!("'{k}' must be an array"))),
            }
        };
        let index = |k: &str, a: &[Value]| -> Result<HashMap<String, usize>> {
            let mut m = HashMap::new();
            for (i, v) in a.iter().enumerate() {
                let name = v.get("name").and_then(Value::as_str).ok_or_else(|| {
                    err(&format!("/{k}/{i}"), "entry without a string 'name'".into())
                })?;
                if m.insert(name.to_string(), i).is_some() {
                    return Err(err(
                        &format!("/{k}/{i}/name"),
                        format!("the name '{name}' appears twice in '{k}'"),
                    ));
                }
            }
            Ok(m)
        };
        let distributions = arr("distributions")?;
        let functions = arr("functions")?;
        let data = arr("data")?;
        let dists = index("distributions", distributions)?;
        let funcs = index("functions", functions)?;
        let datas = index("data", data)?;
        if let Some((n, i)) = funcs.iter().find(|(n, _)| dists.contains_key(*n)) {
            return Err(err(
                &format!("/functions/{i}/name"),
                format!("'{n}' names both a function and a distribution"),
            ));
        }
        let doc = Doc {
            source,
            base_dir,
            distributions,
            functions,
            data,
            likelihoods: arr("likelihoods")?,
            domains: arr("domains")?,
            points: arr("parameter_points")?,
            analyses: arr("analyses")?,
            dists,
            funcs,
            datas,
        };
        index("likelihoods", doc.likelihoods)?;
        index("analyses", doc.analyses)?;
        index("domains", doc.domains)?;
        index("parameter_points", doc.points)?;
        Ok(doc)
    }

    fn find(&self, list: &[Value], name: &str) -> Option<usize> {
        list.iter()
            .position(|v| v.get("name").and_then(Value::as_str) == Some(name))
    }
}

/// True when a JSON document looks like HS3 (rather than a pyhf workspace).
pub fn is_hs3(v: &Value) -> bool {
    let Some(o) = v.as_object() else {
        return false;
    };
    let hs3_meta = o
        .get("metadata")
        .and_then(|m| m.get("hs3_version"))
        .is_some();
    hs3_meta || (o.contains_key("distributions") && !o.contains_key("channels"))
}

/// Read an HS3 document into its parts and parameter table. `source` names the
/// file in messages, `base_dir` is where external event files are looked up,
/// `analysis` picks an analysis (or likelihood) by name.
pub fn read_hs3(
    value: &Value,
    source: &str,
    base_dir: &Path,
    analysis: Option<&str>,
) -> Result<Hs3Model> {
    let doc = Doc::new(value, source, base_dir)?;
    table::build(&doc, analysis)
}
