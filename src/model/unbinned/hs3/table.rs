//! Selection of the likelihood, compilation of its terms into parts, and the
//! parameter table (initial values, bounds, fixed flags, POI).

use super::Doc;
use super::build::{Table, constraint_part, unbinned_part};
use super::dists::{ChannelSpec, Compiler, TermSpec};
use super::funcs::Resolver;
use crate::data::EventData;
use crate::error::{Error, Result};
use crate::expr::Expr;
use crate::model::HistFactoryModel;
use crate::model::unbinned::channel::Axis;
use crate::model::unbinned::constraint::ConstraintPart;
use crate::model::unbinned::part::UnbinnedPart;
use serde_json::Value;

/// One term of an HS3 likelihood.
#[derive(Debug, Clone)]
pub enum Hs3Part {
    /// An unbinned channel with its events.
    Unbinned(Box<UnbinnedPart>),
    /// The constraint terms (global observables).
    Constraints(ConstraintPart),
    /// A histfactory_dist channel with binned data.
    HistFactory(Box<HistFactoryModel>),
}

/// An HS3 likelihood: its parts and the parameter table over all of them.
#[derive(Debug, Clone)]
pub struct Hs3Model {
    /// Analysis or likelihood name.
    pub label: String,
    /// The terms.
    pub parts: Vec<Hs3Part>,
    /// Parameter names in order of first appearance.
    pub par_names: Vec<String>,
    /// Initial values.
    pub init: Vec<f64>,
    /// Bounds.
    pub bounds: Vec<(f64, f64)>,
    /// Fixed (`const`) flags.
    pub fixed: Vec<bool>,
    /// Parameter of interest.
    pub poi: Option<String>,
    /// Non-fatal findings.
    pub warnings: Vec<String>,
}

enum DataRef {
    Named(usize),
    Number(f64),
}

pub(super) struct Selection {
    label: String,
    pairs: Vec<(String, DataRef, String)>,
    aux: Vec<(String, String)>,
    domains: Vec<usize>,
    pub point: Option<usize>,
    poi: Option<String>,
}

pub(super) fn err(doc: &Doc, loc: &str, msg: impl Into<String>) -> Error {
    Error::workspace(doc.source, loc, msg)
}

fn names_at(doc: &Doc, v: Option<&Value>, loc: &str) -> Result<Vec<String>> {
    match v {
        None => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, x)| {
                x.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| err(doc, &format!("{loc}/{i}"), "expected a name"))
            })
            .collect(),
        Some(_) => Err(err(doc, loc, "expected a name or an array of names")),
    }
}

fn select(doc: &Doc, analysis: Option<&str>, warnings: &mut Vec<String>) -> Result<Selection> {
    let default_point = doc
        .find(doc.points, "default_values")
        .or(if doc.points.is_empty() { None } else { Some(0) });
    let all_domains: Vec<usize> = (0..doc.domains.len()).collect();
    let (lk, mut sel) = if !doc.analyses.is_empty() {
        let ai = match analysis {
            Some(a) => doc
                .find(doc.analyses, a)
                .ok_or_else(|| err(doc, "/analyses", format!("no analysis named '{a}'")))?,
            None => 0,
        };
        let an = &doc.analyses[ai];
        let aloc = format!("/analyses/{ai}");
        let lname = an
            .get("likelihood")
            .and_then(Value::as_str)
            .ok_or_else(|| err(doc, &aloc, "analysis without a 'likelihood'"))?;
        let li = doc.find(doc.likelihoods, lname).ok_or_else(|| {
            err(
                doc,
                &format!("{aloc}/likelihood"),
                format!("no likelihood named '{lname}'"),
            )
        })?;
        let mut dnames = names_at(doc, an.get("domains"), &format!("{aloc}/domains"))?;
        dnames.extend(names_at(doc, an.get("domain"), &format!("{aloc}/domain"))?);
        let domains = dnames
            .iter()
            .map(|n| {
                doc.find(doc.domains, n).ok_or_else(|| {
                    err(
                        doc,
                        &format!("{aloc}/domains"),
                        format!("no domain named '{n}'"),
                    )
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let point = match an.get("init").and_then(Value::as_str) {
            Some(p) => Some(doc.find(doc.points, p).ok_or_else(|| {
                err(
                    doc,
                    &format!("{aloc}/init"),
                    format!("no parameter point named '{p}'"),
                )
            })?),
            None => default_point,
        };
        let mut pois = names_at(
            doc,
            an.get("parameters_of_interest"),
            &format!("{aloc}/parameters_of_interest"),
        )?;
        pois.extend(names_at(
            doc,
            an.get("parameter_of_interest"),
            &format!("{aloc}/parameter_of_interest"),
        )?);
        if pois.len() > 1 {
            warnings.push(format!(
                "analysis '{}' has {} parameters of interest; '{}' is used",
                an["name"].as_str().unwrap_or(""),
                pois.len(),
                pois[0]
            ));
        }
        let name = an
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        (
            li,
            Selection {
                label: name,
                pairs: Vec::new(),
                aux: Vec::new(),
                domains,
                point,
                poi: pois.into_iter().next(),
            },
        )
    } else if !doc.likelihoods.is_empty() {
        let li = match analysis {
            Some(a) => doc.find(doc.likelihoods, a).ok_or_else(|| {
                err(
                    doc,
                    "/likelihoods",
                    format!("no analysis or likelihood named '{a}'"),
                )
            })?,
            None => 0,
        };
        let name = doc.likelihoods[li]["name"]
            .as_str()
            .unwrap_or("")
            .to_string();
        (
            li,
            Selection {
                label: name,
                pairs: Vec::new(),
                aux: Vec::new(),
                domains: all_domains,
                point: default_point,
                poi: None,
            },
        )
    } else {
        if let Some(a) = analysis {
            return Err(err(
                doc,
                "",
                format!("no analysis or likelihood named '{a}' (the file has none)"),
            ));
        }
        return auto_pairs(doc, default_point, warnings);
    };
    let l = &doc.likelihoods[lk];
    let ll = format!("/likelihoods/{lk}");
    let dists = names_at(doc, l.get("distributions"), &format!("{ll}/distributions"))?;
    let data = l.get("data").and_then(Value::as_array).ok_or_else(|| {
        err(
            doc,
            &format!("{ll}/data"),
            "a likelihood needs an array 'data'",
        )
    })?;
    if dists.len() != data.len() {
        return Err(err(
            doc,
            &ll,
            format!(
                "{} distributions but {} data entries",
                dists.len(),
                data.len()
            ),
        ));
    }
    for (k, (d, v)) in dists.iter().zip(data).enumerate() {
        let loc = format!("{ll}/data/{k}");
        let r = match v {
            Value::String(s) => DataRef::Named(
                *doc.datas
                    .get(s)
                    .ok_or_else(|| err(doc, &loc, format!("no data set named '{s}'")))?,
            ),
            Value::Number(n) => DataRef::Number(
                n.as_f64()
                    .filter(|x| x.is_finite())
                    .ok_or_else(|| err(doc, &loc, "not a finite number"))?,
            ),
            _ => return Err(err(doc, &loc, "expected a data set name or a number")),
        };
        sel.pairs
            .push((d.clone(), r, format!("{ll}/distributions/{k}")));
    }
    for (k, a) in names_at(
        doc,
        l.get("aux_distributions"),
        &format!("{ll}/aux_distributions"),
    )?
    .into_iter()
    .enumerate()
    {
        sel.aux.push((a, format!("{ll}/aux_distributions/{k}")));
    }
    if l.get("aux_data").is_some() {
        warnings.push(format!(
            "{ll}/aux_data is not part of HS3 0.2 and is ignored (the data of aux_distributions are the parameter point's values)"
        ));
    }
    Ok(sel)
}

/// Files without likelihoods: each data set with the first top-level distribution that fits it.
fn auto_pairs(doc: &Doc, point: Option<usize>, warnings: &mut Vec<String>) -> Result<Selection> {
    if doc.data.is_empty() {
        return Err(err(
            doc,
            "",
            "the file has no data, no likelihoods and no analyses: there is nothing to evaluate a likelihood on",
        ));
    }
    let mut referenced = std::collections::HashSet::new();
    for d in doc.distributions {
        for key in ["summands", "factors"] {
            for v in d.get(key).and_then(Value::as_array).into_iter().flatten() {
                if let Some(s) = v.as_str() {
                    referenced.insert(s.to_string());
                }
            }
        }
    }
    let roots: Vec<String> = doc
        .distributions
        .iter()
        .filter_map(|d| d["name"].as_str().map(str::to_string))
        .filter(|n| !referenced.contains(n))
        .collect();
    let mut pairs = Vec::new();
    for (di, d) in doc.data.iter().enumerate() {
        let ty = d.get("type").and_then(Value::as_str).unwrap_or("");
        let axes: Vec<String> = d
            .get("axes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|a| a.get("name").and_then(Value::as_str).map(str::to_string))
            .collect();
        let mut fits = Vec::new();
        let mut refused: Vec<String> = Vec::new();
        for r in &roots {
            let di_ = doc.dists[r];
            let is_hf = doc.distributions[di_].get("type").and_then(Value::as_str)
                == Some("histfactory_dist");
            let ok = if ty == "binned" {
                is_hf
            } else if is_hf {
                false
            } else {
                let mut res = Resolver::new(doc);
                match Compiler::new(&mut res, axes.clone()).channel(r, "") {
                    Ok(c) => c.terms.is_empty(),
                    Err(e) => {
                        // a candidate that uses something unsupported is named, not hidden
                        let m = e.to_string();
                        if m.contains("not supported") {
                            refused.push(format!(
                                "'{r}' ({})",
                                m.split(": ").skip(1).collect::<Vec<_>>().join(": ")
                            ));
                        }
                        false
                    }
                }
            };
            if ok {
                fits.push(r.clone());
            }
        }
        let name = d["name"].as_str().unwrap_or("");
        let also = if refused.is_empty() {
            String::new()
        } else {
            format!("; not considered: {}", refused.join("; "))
        };
        match fits.first() {
            Some(f) => {
                if fits.len() > 1 || !also.is_empty() {
                    let others = if fits.len() > 1 {
                        format!(" (also possible: {})", fits[1..].join(", "))
                    } else {
                        String::new()
                    };
                    warnings.push(format!(
                        "the file has no likelihoods; data '{name}' is paired with '{f}'{others}{also}"
                    ));
                }
                pairs.push((f.clone(), DataRef::Named(di), format!("/data/{di}")));
            }
            None => {
                return Err(err(
                    doc,
                    &format!("/data/{di}"),
                    format!(
                        "the file has no likelihoods and no top-level distribution is a density of the axes of data '{name}' ({}){also}",
                        axes.join(", ")
                    ),
                ));
            }
        }
    }
    Ok(Selection {
        label: String::new(),
        pairs,
        aux: Vec::new(),
        domains: (0..doc.domains.len()).collect(),
        point,
        poi: None,
    })
}

/// Value and const flag of a variable in a parameter point.
pub(super) fn point_value(doc: &Doc, pi: usize, name: &str) -> Option<(f64, bool)> {
    doc.points[pi]
        .get("parameters")
        .and_then(Value::as_array)?
        .iter()
        .find(|p| p.get("name").and_then(Value::as_str) == Some(name))
        .and_then(|p| {
            let v = p.get("value")?.as_f64()?;
            Some((v, p.get("const").and_then(Value::as_bool).unwrap_or(false)))
        })
}

fn domain_bounds(doc: &Doc, domains: &[usize], name: &str) -> Option<(f64, f64)> {
    for &d in domains {
        for a in doc.domains[d]
            .get("axes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if a.get("name").and_then(Value::as_str) == Some(name) {
                let lo = a
                    .get("min")
                    .and_then(Value::as_f64)
                    .unwrap_or(f64::NEG_INFINITY);
                let hi = a
                    .get("max")
                    .and_then(Value::as_f64)
                    .unwrap_or(f64::INFINITY);
                return Some((lo, hi));
            }
        }
    }
    None
}

pub(super) fn build(doc: &Doc, analysis: Option<&str>) -> Result<Hs3Model> {
    let mut warnings = Vec::new();
    let sel = select(doc, analysis, &mut warnings)?;
    let mut res = Resolver::new(doc);
    let mut channels: Vec<(ChannelSpec, Vec<Axis>, EventData, String)> = Vec::new();
    let mut terms: Vec<(TermSpec, Option<f64>)> = Vec::new();
    let mut hf: Vec<HistFactoryModel> = Vec::new();
    for (dist, r, loc) in &sel.pairs {
        match r {
            DataRef::Named(di) => {
                let dv = &doc.data[*di];
                let ty = dv.get("type").and_then(Value::as_str).unwrap_or("");
                let dname = dv["name"].as_str().unwrap_or("").to_string();
                match ty {
                    "unbinned" => {
                        // the model first (its errors name the construct), then the events
                        let names = super::data::axis_names(doc, *di)?;
                        let mut spec = Compiler::new(&mut res, names).channel(dist, loc)?;
                        // counting variables (only Poisson densities) need no range
                        let pmf_only = |o: &str| {
                            spec.atoms
                                .iter()
                                .filter(|a| a.obs == o)
                                .all(|a| matches!(a.shape, crate::model::unbinned::Shape::Poisson))
                        };
                        let (axes, events) = super::data::unbinned(doc, *di, &pmf_only)?;
                        terms.extend(spec.terms.drain(..).map(|t| (t, None)));
                        channels.push((spec, axes, events, dname));
                    }
                    "binned" => {
                        let Some(&dd) = doc.dists.get(dist) else {
                            return Err(err(
                                doc,
                                loc,
                                format!("'{dist}' is not a distribution of this file"),
                            ));
                        };
                        let dty = doc.distributions[dd]
                            .get("type")
                            .and_then(Value::as_str)
                            .unwrap_or("");
                        if dty != "histfactory_dist" {
                            return Err(err(
                                doc,
                                loc,
                                format!(
                                    "'{dist}' ({dty}) is paired with binned data '{dname}'; binned data is supported for histfactory_dist only"
                                ),
                            ));
                        }
                        let (_axes, contents) = super::data::binned(doc, *di)?;
                        hf.push(super::histfactory::compile(
                            doc,
                            dd,
                            &contents,
                            &format!("/data/{di}"),
                        )?);
                    }
                    other => {
                        return Err(err(
                            doc,
                            &format!("/data/{di}/type"),
                            format!("data type '{other}' is not supported (unbinned, binned)"),
                        ));
                    }
                }
            }
            DataRef::Number(x) => {
                let t = Compiler::new(&mut res, Vec::new()).term(dist, loc)?;
                terms.push((t, Some(*x)));
            }
        }
    }
    for (a, loc) in &sel.aux {
        let t = Compiler::new(&mut res, Vec::new()).term(a, loc)?;
        terms.push((t, None));
    }
    // observables: data axes and global observables are not parameters
    let mut observables: Vec<String> = Vec::new();
    for (_, axes, _, _) in &channels {
        observables.extend(axes.iter().map(|a| a.name.clone()));
    }
    observables.extend(terms.iter().map(|(t, _)| t.obs.clone()));
    // parameters in order of first appearance
    let mut names: Vec<String> = Vec::new();
    let add = |n: &str, names: &mut Vec<String>| {
        if !names.iter().any(|x| x == n) {
            names.push(n.to_string());
        }
    };
    let mut check_exprs: Vec<(&Expr, String)> = Vec::new();
    for (spec, _, _, _) in &channels {
        for (e, _, label) in &spec.leaves {
            check_exprs.push((e, format!("coefficient of '{label}' in '{}'", spec.name)));
        }
        for a in &spec.atoms {
            for e in &a.params {
                check_exprs.push((e, a.loc.clone()));
            }
        }
    }
    for (t, _) in &terms {
        for e in &t.params {
            check_exprs.push((e, t.loc.clone()));
        }
    }
    for (e, loc) in &check_exprs {
        for v in e.variables() {
            if observables.contains(v) {
                return Err(err(
                    doc,
                    loc,
                    format!(
                        "a parameter slot depends on the observable '{v}' (per-event parameters are not supported)"
                    ),
                ));
            }
            add(v, &mut names);
        }
    }
    for m in &hf {
        for n in &m.par_names {
            add(n, &mut names);
        }
    }
    // table
    let n = names.len();
    let (mut init, mut bounds, mut fixed) = (
        vec![0.0; n],
        vec![(f64::NEG_INFINITY, f64::INFINITY); n],
        vec![false; n],
    );
    for (i, name) in names.iter().enumerate() {
        if let Some(b) = domain_bounds(doc, &sel.domains, name) {
            bounds[i] = b;
        } else if let Some(m) = hf
            .iter()
            .find_map(|m| m.par_index(name).map(|k| m.bounds[k]))
        {
            bounds[i] = m;
        }
        let from_point = sel
            .point
            .and_then(|p| point_value(doc, p, name))
            .or_else(|| (0..doc.points.len()).find_map(|p| point_value(doc, p, name)));
        match from_point {
            Some((v, c)) => {
                init[i] = v;
                fixed[i] = c;
            }
            None => {
                if let Some((m, k)) = hf.iter().find_map(|m| m.par_index(name).map(|k| (m, k))) {
                    init[i] = m.init[k];
                    fixed[i] = m.fixed[k];
                } else {
                    let (lo, hi) = bounds[i];
                    if lo.is_finite() && hi.is_finite() {
                        init[i] = 0.5 * (lo + hi);
                        warnings.push(format!("parameter '{name}' has no value in any parameter point; it starts at the middle of its domain, {}", init[i]));
                    } else {
                        return Err(err(
                            doc,
                            "/parameter_points",
                            format!(
                                "parameter '{name}' has no value in any parameter point and no bounded domain"
                            ),
                        ));
                    }
                }
            }
        }
    }
    let poi = match &sel.poi {
        Some(p) if names.contains(p) => Some(p.clone()),
        Some(p) => {
            return Err(err(
                doc,
                "/analyses",
                format!("the parameter of interest '{p}' is not a parameter of the likelihood"),
            ));
        }
        None => None,
    };
    let table = Table {
        names: &names,
        init: &init,
        bounds: &bounds,
        fixed: &fixed,
    };
    let mut parts = Vec::new();
    for (spec, axes, events, dname) in channels {
        parts.push(Hs3Part::Unbinned(Box::new(unbinned_part(
            doc, spec, axes, events, dname, &table,
        )?)));
    }
    for m in hf {
        parts.push(Hs3Part::HistFactory(Box::new(m)));
    }
    if !terms.is_empty() {
        parts.push(Hs3Part::Constraints(constraint_part(
            doc, terms, &sel, &table,
        )?));
    }
    let label = if sel.label.is_empty() {
        doc.source.to_string()
    } else {
        sel.label.clone()
    };
    Ok(Hs3Model {
        label,
        parts,
        par_names: names,
        init,
        bounds,
        fixed,
        poi,
        warnings,
    })
}
