//! The stress corpus of the minimiser (shared by `examples/stress` and
//! `tests/stress.rs`): published workspaces and their perturbations, each fit
//! checked against the minimum.
//!
//! Per workspace: model variants (the workspace with its signal patch, then
//! random signal patches that rescale every signal bin by a factor in
//! [0.3, 3]), and per variant the datasets: observed, observed counts scaled
//! by factors in [0.5, 2], Asimov data at several POI values and toys drawn at
//! POI 0 and 1. Each dataset is fitted free from the suggested start, with the
//! POI fixed at several values, and free again from a start away from the
//! suggested one (nuisance parameters moved by up to two widths, free factors
//! by up to a factor two, the POI anywhere in [0, 3]; pulled back towards the
//! suggested start until pyhf's likelihood is finite there).
//!
//! Everything is drawn from Philox streams, so a corpus is the same on every
//! machine; `scripts/stress_refs.py` computes the independent reference minima
//! of a dump of it.
#![allow(dead_code)]

use gradfit::fit::{self, FitOptions, FitResult, FitSpec};
use gradfit::model::{Dataset, HistFactoryModel, Likelihood, ModelOptions};
use gradfit::rng::Stream;
use gradfit::workspace::{ReadOptions, Workspace};
use serde_json::{Value, json};

/// How big a corpus is.
#[derive(Debug, Clone, Copy)]
pub struct Size {
    /// Random signal patches besides the workspace's own.
    pub random_patches: usize,
    /// Factors the observed counts are scaled by.
    pub scales: &'static [f64],
    /// POI values of the Asimov datasets.
    pub asimov_mu: &'static [f64],
    /// Toys per variant (half at POI 0, half at POI 1).
    pub toys: u32,
    /// POI values of the POI-fixed fits.
    pub fixed_mu: &'static [f64],
}

/// The size run in CI.
pub const CI: Size = Size {
    random_patches: 1,
    scales: &[0.5, 2.0],
    asimov_mu: &[0.0, 1.0, 5.0],
    toys: 6,
    fixed_mu: &[0.0, 1.0, 3.0],
};

/// The full size (run by hand; see docs/robustness.md).
pub const LARGE: Size = Size {
    random_patches: 3,
    scales: &[0.5, 0.75, 1.5, 2.0],
    asimov_mu: &[0.0, 1.0, 2.5, 5.0],
    toys: 200,
    fixed_mu: &[0.0, 0.5, 1.0, 2.0, 5.0],
};

/// One fit of the corpus.
#[derive(Debug, Clone)]
pub struct Case {
    /// `WS/vV/DATA/FIT` plus `@away` for the start away from the suggested one;
    /// cases that differ only in the start share the reference key [`Case::key`].
    pub id: String,
    /// Index into [`Corpus::variants`].
    pub variant: usize,
    /// Index into [`Corpus::datasets`].
    pub data: usize,
    /// Start, fixed parameters, bounds.
    pub spec: FitSpec,
}

impl Case {
    /// The reference key: the id without the start.
    pub fn key(&self) -> &str {
        self.id.split('@').next().unwrap_or(&self.id)
    }
}

/// A model variant: label, patched workspace JSON, compiled model.
pub struct Variant {
    pub label: String,
    pub workspace: Value,
    pub model: HistFactoryModel,
}

/// The corpus of one workspace.
pub struct Corpus {
    pub name: String,
    pub variants: Vec<Variant>,
    /// (variant, label, dataset).
    pub datasets: Vec<(usize, String, Dataset)>,
    pub cases: Vec<Case>,
}

fn compile(ws: &Value, name: &str, opts: &ModelOptions) -> HistFactoryModel {
    let w = Workspace::from_value(ws.clone(), &[], name, &ReadOptions::default())
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    HistFactoryModel::from_workspace(&w, opts, name).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Stream for corpus draws: `what` names the quantity, `k` its instance.
fn stream(name: &str, what: u32, k: u32) -> Stream {
    let seed = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    });
    Stream::new(seed, k, 7, what)
}

/// Scale every bin of every sample that carries the POI's normfactor by a
/// factor in [0.3, 3] drawn from `s`.
fn random_signal(ws: &Value, poi: &str, s: &mut Stream) -> Value {
    let mut w = ws.clone();
    for c in w["channels"].as_array_mut().expect("channels") {
        for smp in c["samples"].as_array_mut().expect("samples") {
            let is_signal = smp["modifiers"].as_array().is_some_and(|ms| {
                ms.iter()
                    .any(|m| m["type"] == "normfactor" && m["name"] == poi)
            });
            if !is_signal {
                continue;
            }
            let data: Vec<f64> = smp["data"]
                .as_array()
                .expect("data")
                .iter()
                .map(|v| v.as_f64().expect("number") * (0.3 * 10f64.powf(s.uniform())))
                .collect();
            smp["data"] = json!(data);
        }
    }
    w
}

fn poi_name(ws: &Value) -> String {
    ws["measurements"][0]["config"]["poi"]
        .as_str()
        .expect("poi")
        .to_string()
}

/// A start away from the suggested one, inside pyhf's domain on `d` (the
/// draw is pulled halfway back to the suggested start until it is: pyhf
/// cannot start outside it, and starts there are a question of their own,
/// see tests/stress.rs).
fn away_start(m: &HistFactoryModel, d: &Dataset, s: &mut Stream) -> Vec<f64> {
    let mut x = away_draw(m, s);
    for _ in 0..40 {
        if m.domain_issue(&x, d).is_none() {
            break;
        }
        for (v, x0) in x.iter_mut().zip(m.init()) {
            *v = 0.5 * (*v + x0);
        }
    }
    x
}

fn away_draw(m: &HistFactoryModel, s: &mut Stream) -> Vec<f64> {
    let poi = m.poi();
    (0..m.n_pars())
        .map(|i| {
            let (lo, hi) = m.bounds()[i];
            let x0 = m.init()[i];
            let v = if Some(i) == poi {
                3.0 * s.uniform()
            } else if m.fixed()[i] {
                x0
            } else if m.prefit_sigma(i) > 0.0 {
                x0 + 2.0 * (2.0 * s.uniform() - 1.0) * m.prefit_sigma(i)
            } else {
                x0 * 2f64.powf(2.0 * s.uniform() - 1.0)
            };
            v.clamp(lo, hi)
        })
        .collect()
}

/// Build the corpus of workspace `ws` (already patched with its signal patch).
pub fn build(name: &str, ws: Value, size: Size, opts: &ModelOptions) -> Corpus {
    let poi = poi_name(&ws);
    let mut variants = vec![Variant {
        label: "v0".into(),
        model: compile(&ws, name, opts),
        workspace: ws.clone(),
    }];
    for k in 0..size.random_patches {
        let mut s = stream(name, 1, k as u32);
        let w = random_signal(&ws, &poi, &mut s);
        variants.push(Variant {
            label: format!("v{}", k + 1),
            model: compile(&w, name, opts),
            workspace: w,
        });
    }
    let mut datasets = Vec::new();
    let mut cases = Vec::new();
    for (vi, v) in variants.iter().enumerate() {
        let m = &v.model;
        let poi_i = m.poi().expect("a POI");
        let mut ds: Vec<(String, Dataset)> = vec![("obs".into(), m.observed().clone())];
        for &sc in size.scales {
            let o = m.observed();
            let main = o.main.iter().map(|x| x * sc).collect();
            ds.push((format!("obs*{sc}"), m.dataset(main, o.aux.clone()).unwrap()));
        }
        for &mu in size.asimov_mu {
            let mut th = m.init().to_vec();
            th[poi_i] = mu;
            ds.push((format!("asimov{mu}"), m.asimov(&th)));
        }
        for mu in [0.0, 1.0] {
            let mut th = m.init().to_vec();
            th[poi_i] = mu;
            let g = m.generator(&th);
            let n = size.toys / 2 + if mu == 0.0 { size.toys % 2 } else { 0 };
            for t in 0..n {
                let seed = 1000 + vi as u64;
                ds.push((format!("toy{mu}-{t}"), m.sample(&g, seed, t, 1 + mu as u32)));
            }
        }
        for (di, (dl, d)) in ds.into_iter().enumerate() {
            let data = datasets.len();
            let prefix = format!("{name}/{}/{dl}", v.label);
            datasets.push((vi, dl, d));
            let free = FitSpec::from_model(m);
            cases.push(Case {
                id: format!("{prefix}/free"),
                variant: vi,
                data,
                spec: free.clone(),
            });
            for &mu in size.fixed_mu {
                cases.push(Case {
                    id: format!("{prefix}/mu={mu}"),
                    variant: vi,
                    data,
                    spec: free.clone().fix(poi_i, mu),
                });
            }
            let mut s = stream(name, 2, (vi * 100_000 + di) as u32);
            let mut away = free.clone();
            away.init = away_start(m, &datasets[data].2, &mut s);
            cases.push(Case {
                id: format!("{prefix}/free@away"),
                variant: vi,
                data,
                spec: away,
            });
        }
    }
    Corpus {
        name: name.to_string(),
        variants,
        datasets,
        cases,
    }
}

/// Fit every case (one batch per variant).
pub fn run(c: &Corpus, opts: &FitOptions) -> Vec<FitResult> {
    let mut out: Vec<Option<FitResult>> = vec![None; c.cases.len()];
    for (vi, v) in c.variants.iter().enumerate() {
        let idx: Vec<usize> = (0..c.cases.len())
            .filter(|&k| c.cases[k].variant == vi)
            .collect();
        let data: Vec<&Dataset> = idx
            .iter()
            .map(|&k| &c.datasets[c.cases[k].data].2)
            .collect();
        let specs: Vec<FitSpec> = idx.iter().map(|&k| c.cases[k].spec.clone()).collect();
        let r = fit::fit_batch(&v.model, &data, &specs, opts);
        for (k, r) in idx.into_iter().zip(r) {
            out[k] = Some(r);
        }
    }
    out.into_iter()
        .map(|r| r.expect("every case fitted"))
        .collect()
}

/// Shared workspace `name` with its signal patch, as JSON.
pub fn shared_workspace(dir: &std::path::Path, name: &str) -> Value {
    let read = |p: std::path::PathBuf| -> Value {
        serde_json::from_str(
            &std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
        )
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    };
    let mut ws = read(dir.join("workspaces").join(format!("{name}.json")));
    let patch = dir
        .join("workspaces")
        .join(format!("{name}.signal-patch.json"));
    if patch.exists() {
        gradfit::workspace::apply_patch(&mut ws, &read(patch), name).expect("signal patch applies");
    }
    ws
}

/// The minimum reached for each reference key: lowest twice_nll among the
/// converged fits of the key.
pub fn best_by_key(c: &Corpus, r: &[FitResult]) -> std::collections::BTreeMap<String, f64> {
    let mut best = std::collections::BTreeMap::new();
    for (case, res) in c.cases.iter().zip(r) {
        if res.converged {
            let e = best.entry(case.key().to_string()).or_insert(f64::INFINITY);
            *e = res.twice_nll.min(*e);
        }
    }
    best
}

/// The dump `scripts/stress_refs.py` reads: variants' workspaces, and per case
/// the data (pyhf order), the specification and gradfit's result.
pub fn dump(c: &Corpus, r: &[FitResult]) -> Value {
    let variants: Vec<Value> = c
        .variants
        .iter()
        .map(
            |v| json!({"label": v.label, "workspace": v.workspace, "par_names": v.model.par_names}),
        )
        .collect();
    let datasets: Vec<Value> = c
        .datasets
        .iter()
        .map(|(vi, l, d)| {
            let mut v = d.main.clone();
            v.extend(&d.aux);
            json!({"variant": vi, "label": l, "data": v})
        })
        .collect();
    let cases: Vec<Value> = c
        .cases
        .iter()
        .zip(r)
        .map(|(k, res)| {
            json!({
                "id": k.id, "key": k.key(), "variant": k.variant, "data": k.data,
                "init": k.spec.init, "fixed": k.spec.fixed,
                "bounds": k.spec.bounds.iter().map(|(a, b)| [a, b]).collect::<Vec<_>>(),
                "gradfit": {"twice_nll": res.twice_nll, "x": res.x, "status": res.status},
            })
        })
        .collect();
    json!({"name": c.name, "variants": variants, "datasets": datasets, "cases": cases})
}
