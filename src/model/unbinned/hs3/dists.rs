//! HS3 `distributions` compiled into channels: a tree of atoms, mixtures and
//! products, flattened into leaves (coefficient expression times a product of
//! atoms on distinct observables).

use super::Doc;
use super::funcs::Resolver;
use crate::error::{Error, Result};
use crate::expr::{BinOp, Expr};
use crate::model::unbinned::constraint::ConstraintKind;
use crate::model::unbinned::shapes::{Hist, Shape};
use serde_json::Value;

/// An atom before slot compilation: shape, observable and parameter expressions.
#[derive(Debug, Clone)]
pub(crate) struct AtomSpec {
    pub shape: Shape,
    pub obs: String,
    pub params: Vec<Expr>,
    pub name: String,
    pub loc: String,
}

/// A constraint term before slot compilation.
#[derive(Debug, Clone)]
pub(crate) struct TermSpec {
    pub kind: ConstraintKind,
    pub obs: String,
    pub params: Vec<Expr>,
    pub name: String,
    pub loc: String,
}

/// A flattened channel: leaves over `atoms`, extended or not, plus constraint
/// terms split off products.
#[derive(Debug, Clone)]
pub(crate) struct ChannelSpec {
    pub name: String,
    pub atoms: Vec<AtomSpec>,
    pub leaves: Vec<(Expr, Vec<usize>, String)>,
    pub extended: bool,
    pub terms: Vec<TermSpec>,
}

enum Node {
    Atom(usize),
    Global(TermSpec),
    Mix {
        coefs: Vec<Expr>,
        kids: Vec<Node>,
        extended: bool,
        n_minus_1: bool,
        name: String,
    },
    Prod(Vec<Node>, String),
}

struct Flat {
    leaves: Vec<(Expr, Vec<usize>, String)>,
    extended: bool,
}

pub(crate) struct Compiler<'r, 'a> {
    pub res: &'r mut Resolver<'a>,
    /// Observables that are axes of the data.
    pub axes: Vec<String>,
    atoms: Vec<AtomSpec>,
    stack: Vec<String>,
}

const SUPPORTED: &str = "gaussian_dist, normal_dist, lognormal_dist, exponential_dist, crystalball_dist, crystalball_doublesided_dist, chebychev_dist, bernstein_poly_dist, polynomial_dist, uniform_dist, poisson_dist, histogram_dist, mixture_dist, product_dist";

impl<'r, 'a> Compiler<'r, 'a> {
    pub fn new(res: &'r mut Resolver<'a>, axes: Vec<String>) -> Self {
        Compiler {
            res,
            axes,
            atoms: Vec::new(),
            stack: Vec::new(),
        }
    }

    fn doc(&self) -> &Doc<'a> {
        self.res.doc
    }

    fn err(&self, loc: &str, msg: impl Into<String>) -> Error {
        Error::workspace(self.res.doc.source, loc, msg)
    }

    /// Compile distribution `name` (referenced at `loc`) for data with these axes.
    pub fn channel(mut self, name: &str, loc: &str) -> Result<ChannelSpec> {
        let node = self.node(name, loc)?;
        let mut terms = Vec::new();
        let flat = self.flatten(node, &mut terms, true)?;
        if flat.leaves.is_empty() {
            return Err(self.err(
                loc,
                format!("distribution '{name}' has no density on the data's axes"),
            ));
        }
        // every leaf must be a density of the same observables
        let obs_of = |l: &Vec<usize>| {
            let mut o: Vec<&str> = l.iter().map(|&m| self.atoms[m].obs.as_str()).collect();
            o.sort();
            o
        };
        let first = obs_of(&flat.leaves[0].1);
        for (_, l, label) in &flat.leaves[1..] {
            if obs_of(l) != first {
                return Err(self.err(
                    loc,
                    format!(
                        "component '{label}' of '{name}' is a density of {:?} but '{}' of {:?}",
                        obs_of(l),
                        flat.leaves[0].2,
                        first
                    ),
                ));
            }
        }
        Ok(ChannelSpec {
            name: name.to_string(),
            atoms: self.atoms,
            leaves: flat.leaves,
            extended: flat.extended,
            terms,
        })
    }

    /// A stand-alone constraint term from distribution `name` (observable not an axis).
    pub fn term(&mut self, name: &str, loc: &str) -> Result<TermSpec> {
        match self.node(name, loc)? {
            Node::Global(t) => Ok(t),
            _ => Err(self.err(
                loc,
                format!("'{name}' is used as a constraint term but is not a one-dimensional gaussian, poisson or lognormal distribution of a global observable"),
            )),
        }
    }

    fn node(&mut self, name: &str, loc: &str) -> Result<Node> {
        let Some(&di) = self.doc().dists.get(name) else {
            let what = if self.doc().funcs.contains_key(name) {
                "is a function, where a distribution is expected"
            } else {
                "is not a distribution of this file"
            };
            return Err(self.err(loc, format!("'{name}' {what}")));
        };
        if let Some(pos) = self.stack.iter().position(|s| s == name) {
            let mut cycle = self.stack[pos..].to_vec();
            cycle.push(name.to_string());
            return Err(self.err(
                loc,
                format!(
                    "distributions refer to each other in a cycle: {}",
                    cycle.join(" -> ")
                ),
            ));
        }
        self.stack.push(name.to_string());
        let r = self.build(di);
        self.stack.pop();
        r
    }

    fn build(&mut self, di: usize) -> Result<Node> {
        let d = &self.doc().distributions[di];
        let loc = format!("/distributions/{di}");
        let name = d
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let ty = d.get("type").and_then(Value::as_str).unwrap_or("");
        let key = |k: &str| -> Result<&Value> {
            d.get(k)
                .ok_or_else(|| self.err(&loc, format!("{ty} '{name}' has no '{k}'")))
        };
        let names_of = |k: &str| -> Result<Vec<String>> {
            let arr = key(k)?
                .as_array()
                .ok_or_else(|| self.err(&format!("{loc}/{k}"), "expected an array of names"))?;
            arr.iter()
                .enumerate()
                .map(|(i, v)| {
                    v.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| self.err(&format!("{loc}/{k}/{i}"), "expected a name"))
                })
                .collect()
        };
        match ty {
            "mixture_dist" => {
                let summands = names_of("summands")?;
                let coefs_v = key("coefficients")?
                    .as_array()
                    .ok_or_else(|| self.err(&format!("{loc}/coefficients"), "expected an array"))?
                    .clone();
                let extended = match d.get("extended") {
                    None => None,
                    Some(Value::Bool(b)) => Some(*b),
                    Some(_) => {
                        return Err(self.err(&format!("{loc}/extended"), "expected true or false"));
                    }
                };
                let (n, nc) = (summands.len(), coefs_v.len());
                let n_minus_1 = nc + 1 == n;
                if !(nc == n || n_minus_1) || n == 0 {
                    return Err(self.err(
                        &format!("{loc}/coefficients"),
                        format!(
                            "{nc} coefficients for {n} summands (expected {n} or {})",
                            n.saturating_sub(1)
                        ),
                    ));
                }
                if n_minus_1 && extended == Some(true) {
                    return Err(self.err(
                        &format!("{loc}/extended"),
                        "an extended mixture needs one coefficient (yield) per summand",
                    ));
                }
                let coefs = coefs_v
                    .iter()
                    .enumerate()
                    .map(|(k, v)| self.res.slot(v, &format!("{loc}/coefficients/{k}")))
                    .collect::<Result<Vec<_>>>()?;
                let kids = summands
                    .iter()
                    .enumerate()
                    .map(|(k, s)| self.node(s, &format!("{loc}/summands/{k}")))
                    .collect::<Result<Vec<_>>>()?;
                if kids.iter().any(|k| matches!(k, Node::Global(_))) {
                    return Err(self.err(
                        &format!("{loc}/summands"),
                        "a summand is a density of a variable that is not an axis of the data",
                    ));
                }
                Ok(Node::Mix {
                    coefs,
                    kids,
                    extended: extended.unwrap_or(false),
                    n_minus_1,
                    name,
                })
            }
            "product_dist" => {
                let factors = names_of("factors")?;
                let kids = factors
                    .iter()
                    .enumerate()
                    .map(|(k, s)| self.node(s, &format!("{loc}/factors/{k}")))
                    .collect::<Result<Vec<_>>>()?;
                Ok(Node::Prod(kids, name))
            }
            _ => self.atom(d, &loc, &name, ty),
        }
    }

    fn atom(&mut self, d: &Value, loc: &str, name: &str, ty: &str) -> Result<Node> {
        let obs_key = if ty.starts_with("crystalball") {
            "m"
        } else {
            "x"
        };
        let (shape, keys): (Shape, Vec<&str>) = match ty {
            "gaussian_dist" | "normal_dist" => (Shape::Gauss, vec!["mean", "sigma"]),
            "lognormal_dist" => (Shape::LogNormal, vec!["mu", "sigma"]),
            "exponential_dist" => (Shape::Expo, vec!["c"]),
            "poisson_dist" => (Shape::Poisson, vec!["mean"]),
            "uniform_dist" => (Shape::Uniform, vec![]),
            "crystalball_doublesided_dist" => (
                Shape::DoubleCB,
                vec![
                    "m0", "sigma_L", "sigma_R", "alpha_L", "n_L", "alpha_R", "n_R",
                ],
            ),
            "crystalball_dist" => {
                let two = ["alpha_L", "alpha_R", "n_L", "n_R", "sigma_L", "sigma_R"]
                    .iter()
                    .any(|k| d.get(*k).is_some());
                if two {
                    return self.cb_general(d, loc, name);
                }
                (Shape::CrystalBall, vec!["m0", "sigma", "alpha", "n"])
            }
            "chebychev_dist" | "bernstein_poly_dist" | "polynomial_dist" => {
                let n = d
                    .get("coefficients")
                    .and_then(Value::as_array)
                    .map(|a| a.len())
                    .ok_or_else(|| {
                        self.err(
                            &format!("{loc}/coefficients"),
                            format!("{ty} '{name}' needs an array 'coefficients'"),
                        )
                    })?;
                let shape = match ty {
                    "chebychev_dist" => Shape::Chebychev(n),
                    "bernstein_poly_dist" => {
                        if n == 0 {
                            return Err(self.err(
                                &format!("{loc}/coefficients"),
                                "a Bernstein polynomial needs at least one coefficient",
                            ));
                        }
                        Shape::Bernstein(n)
                    }
                    _ => {
                        if n == 0 {
                            return Err(self.err(
                                &format!("{loc}/coefficients"),
                                "a polynomial needs at least one coefficient",
                            ));
                        }
                        Shape::Polynomial(n)
                    }
                };
                let params = (0..n)
                    .map(|k| {
                        let v = &d["coefficients"][k];
                        self.res.slot(v, &format!("{loc}/coefficients/{k}"))
                    })
                    .collect::<Result<Vec<_>>>()?;
                let obs = self.obs_name(d, loc, obs_key, ty, name)?;
                return self.finish_atom(shape, obs, params, name, loc);
            }
            "histogram_dist" => return self.histogram(d, loc, name),
            "histfactory_dist" => {
                return Err(self.err(
                    loc,
                    format!("histfactory_dist '{name}' is paired with unbinned data; it needs binned data"),
                ));
            }
            "" => return Err(self.err(&format!("{loc}/type"), "distribution without a 'type'")),
            other => {
                return Err(self.err(
                    &format!("{loc}/type"),
                    format!("distribution type '{other}' is not supported (supported: {SUPPORTED}, and histfactory_dist with binned data)"),
                ));
            }
        };
        let params = keys
            .iter()
            .map(|k| {
                let v = d
                    .get(*k)
                    .ok_or_else(|| self.err(loc, format!("{ty} '{name}' has no '{k}'")))?;
                self.res.slot(v, &format!("{loc}/{k}"))
            })
            .collect::<Result<Vec<_>>>()?;
        let obs = self.obs_name(d, loc, obs_key, ty, name)?;
        self.finish_atom(shape, obs, params, name, loc)
    }

    /// The HS3 crystalball_dist with any of the _L/_R keys: double-sided, a shared
    /// key standing for both sides.
    fn cb_general(&mut self, d: &Value, loc: &str, name: &str) -> Result<Node> {
        let mut params = Vec::new();
        let m0 = d
            .get("m0")
            .ok_or_else(|| self.err(loc, format!("crystalball_dist '{name}' has no 'm0'")))?;
        params.push(self.res.slot(m0, &format!("{loc}/m0"))?);
        for (base, side) in [
            ("sigma", "L"),
            ("sigma", "R"),
            ("alpha", "L"),
            ("n", "L"),
            ("alpha", "R"),
            ("n", "R"),
        ] {
            let k = format!("{base}_{side}");
            let (v, at) = match (d.get(&k), d.get(base)) {
                (Some(v), None) => (v, k.clone()),
                (None, Some(v)) => (v, base.to_string()),
                (Some(_), Some(_)) => {
                    return Err(self.err(
                        loc,
                        format!("crystalball_dist '{name}' has both '{base}' and '{k}'"),
                    ));
                }
                (None, None) => {
                    return Err(self.err(
                        loc,
                        format!("crystalball_dist '{name}' has neither '{base}' nor '{k}'"),
                    ));
                }
            };
            params.push(self.res.slot(v, &format!("{loc}/{at}"))?);
        }
        let obs = self.obs_name(d, loc, "m", "crystalball_dist", name)?;
        self.finish_atom(Shape::DoubleCB, obs, params, name, loc)
    }

    fn histogram(&mut self, d: &Value, loc: &str, name: &str) -> Result<Node> {
        let data = d
            .get("data")
            .ok_or_else(|| self.err(loc, format!("histogram_dist '{name}' has no 'data'")))?;
        let axes = data
            .get("axes")
            .and_then(Value::as_array)
            .ok_or_else(|| self.err(&format!("{loc}/data/axes"), "expected an array of axes"))?;
        if axes.len() != 1 {
            return Err(self.err(
                &format!("{loc}/data/axes"),
                format!("histogram_dist '{name}' has {} axes; only one-dimensional histograms are supported", axes.len()),
            ));
        }
        let (obs, edges) =
            super::data::binned_axis(self.res.doc, &axes[0], &format!("{loc}/data/axes/0"))?;
        let contents = super::data::numbers(
            self.res.doc,
            data.get("contents"),
            &format!("{loc}/data/contents"),
        )?;
        if contents.len() + 1 != edges.len() {
            return Err(self.err(
                &format!("{loc}/data/contents"),
                format!("{} contents for {} bins", contents.len(), edges.len() - 1),
            ));
        }
        if let Some(i) = contents.iter().position(|c| !(*c >= 0.0)) {
            return Err(self.err(
                &format!("{loc}/data/contents/{i}"),
                format!("bin content {} is negative", contents[i]),
            ));
        }
        let n = contents.len() as f64;
        let (lo, hi) = (edges[0], edges[edges.len() - 1]);
        let regular = edges
            .iter()
            .enumerate()
            .all(|(k, e)| (e - (lo + (hi - lo) * k as f64 / n)).abs() <= 1e-12 * (hi - lo));
        let h = Hist {
            edges,
            contents,
            regular,
        };
        self.finish_atom(Shape::Histogram(h), obs, Vec::new(), name, loc)
    }

    fn obs_name(&self, d: &Value, loc: &str, key: &str, ty: &str, name: &str) -> Result<String> {
        d.get(key)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| {
                self.err(
                    loc,
                    format!("{ty} '{name}' needs the name of its variable in '{key}'"),
                )
            })
    }

    fn finish_atom(
        &mut self,
        shape: Shape,
        obs: String,
        params: Vec<Expr>,
        name: &str,
        loc: &str,
    ) -> Result<Node> {
        if !self.axes.contains(&obs) {
            let kind = match shape {
                Shape::Gauss => ConstraintKind::Gauss,
                Shape::Poisson => ConstraintKind::Poisson,
                Shape::LogNormal => ConstraintKind::LogNormal,
                _ => {
                    return Err(self.err(
                        loc,
                        format!(
                            "'{name}' ({}) is a density of '{obs}', which is not an axis of the data ({})",
                            shape.name(),
                            self.axes.join(", ")
                        ),
                    ));
                }
            };
            return Ok(Node::Global(TermSpec {
                kind,
                obs,
                params,
                name: name.to_string(),
                loc: loc.to_string(),
            }));
        }
        self.atoms.push(AtomSpec {
            shape,
            obs,
            params,
            name: name.to_string(),
            loc: loc.to_string(),
        });
        Ok(Node::Atom(self.atoms.len() - 1))
    }

    fn flatten(&self, node: Node, terms: &mut Vec<TermSpec>, top: bool) -> Result<Flat> {
        match node {
            Node::Atom(m) => Ok(Flat {
                leaves: vec![(Expr::constant(1.0), vec![m], self.atoms[m].name.clone())],
                extended: false,
            }),
            Node::Global(t) => {
                if !top {
                    return Err(self.err(
                        &t.loc,
                        format!(
                            "'{}' is a density of the global observable '{}' inside a mixture",
                            t.name, t.obs
                        ),
                    ));
                }
                terms.push(t);
                Ok(Flat {
                    leaves: Vec::new(),
                    extended: false,
                })
            }
            Node::Mix {
                coefs,
                kids,
                extended,
                n_minus_1,
                name,
            } => {
                let n = kids.len();
                let mut ks = Vec::with_capacity(n);
                for k in kids {
                    let f = self.flatten(k, terms, false)?;
                    ks.push(normalised(f));
                }
                // coefficient of each summand
                let mut c: Vec<Expr> = coefs.clone();
                if n_minus_1 {
                    let rest = Expr::constant(1.0).binary(BinOp::Sub, &Expr::sum(coefs.clone()));
                    c.push(rest);
                } else if !extended {
                    let s = Expr::sum(coefs.clone());
                    c = coefs.iter().map(|e| e.binary(BinOp::Div, &s)).collect();
                }
                let mut leaves = Vec::new();
                for (ck, kid) in c.iter().zip(ks) {
                    for (e, atoms, label) in kid {
                        leaves.push((simplify_mul(ck, &e), atoms, label));
                    }
                }
                let _ = name;
                Ok(Flat { leaves, extended })
            }
            Node::Prod(kids, name) => {
                let mut acc: Vec<(Expr, Vec<usize>, String)> =
                    vec![(Expr::constant(1.0), Vec::new(), String::new())];
                let mut extended = false;
                for k in kids {
                    let f = self.flatten(k, terms, top)?;
                    if f.leaves.is_empty() {
                        continue; // a constraint factor
                    }
                    if f.extended {
                        if extended {
                            return Err(self.err(
                                "/distributions",
                                format!("product_dist '{name}' has more than one extended factor"),
                            ));
                        }
                        extended = true;
                    }
                    let mut next = Vec::new();
                    for (e1, a1, l1) in &acc {
                        for (e2, a2, l2) in &f.leaves {
                            let mut atoms = a1.clone();
                            for &m in a2 {
                                let o = &self.atoms[m].obs;
                                if atoms.iter().any(|&x| &self.atoms[x].obs == o) {
                                    return Err(self.err(
                                        &self.atoms[m].loc,
                                        format!("product_dist '{name}' multiplies two densities of '{o}'"),
                                    ));
                                }
                                atoms.push(m);
                            }
                            let label = if l1.is_empty() {
                                l2.clone()
                            } else {
                                format!("{l1}*{l2}")
                            };
                            next.push((simplify_mul(e1, e2), atoms, label));
                        }
                    }
                    acc = next;
                }
                if acc.len() == 1 && acc[0].1.is_empty() {
                    acc.clear();
                }
                Ok(Flat {
                    leaves: acc,
                    extended,
                })
            }
        }
    }
}

/// Leaves of a flattened density normalised to coefficients that sum to one
/// (an extended mixture used inside another distribution).
fn normalised(f: Flat) -> Vec<(Expr, Vec<usize>, String)> {
    if !f.extended {
        return f.leaves;
    }
    let s = Expr::sum(f.leaves.iter().map(|l| l.0.clone()).collect());
    f.leaves
        .into_iter()
        .map(|(e, a, l)| (e.binary(BinOp::Div, &s), a, l))
        .collect()
}

/// a * b, dropping factors that are the constant 1.
fn simplify_mul(a: &Expr, b: &Expr) -> Expr {
    let one = |e: &Expr| e.is_constant() && e.eval(&[]) == 1.0;
    if one(a) {
        b.clone()
    } else if one(b) {
        a.clone()
    } else {
        a.binary(BinOp::Mul, b)
    }
}
