//! Helpers shared by the integration tests.
#![allow(dead_code)]

use gradfit::model::{HistFactoryModel, ModelOptions};
use gradfit::workspace::{self, ReadOptions};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The shared data folder: `GRADFIT_SHARED`, which the suites that need it require.
/// Panics with a clear message when it is missing: these suites never pass silently.
pub fn shared_dir() -> PathBuf {
    let dir = std::env::var_os("GRADFIT_SHARED").map(PathBuf::from).unwrap_or_else(|| {
        panic!("GRADFIT_SHARED is not set: this suite reads ../shared (run it through .ci/run or set GRADFIT_SHARED=../shared)")
    });
    assert!(
        dir.join("workspaces").is_dir(),
        "GRADFIT_SHARED={} has no workspaces/ folder",
        dir.display()
    );
    dir
}

/// Names of the shared workspaces (without .json), sorted.
pub fn workspace_names(shared: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(shared.join("workspaces"))
        .expect("read workspaces")
        .filter_map(|e| {
            let n = e.ok()?.file_name().to_string_lossy().into_owned();
            (n.ends_with(".json") && !n.ends_with(".signal-patch.json"))
                .then(|| n.trim_end_matches(".json").to_string())
        })
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no workspaces found");
    v
}

pub fn read(path: &Path) -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The reference file of a workspace.
pub fn reference(shared: &Path, name: &str) -> Value {
    read(&shared.join("references").join(format!("{name}.json")))
}

/// Load a shared workspace with its signal patch (where one exists).
pub fn load_model(shared: &Path, name: &str, opts: &ModelOptions) -> HistFactoryModel {
    let ws = shared.join("workspaces").join(format!("{name}.json"));
    let patch = shared
        .join("workspaces")
        .join(format!("{name}.signal-patch.json"));
    let patches = if patch.exists() {
        vec![workspace::load_patch(&patch).unwrap()]
    } else {
        vec![]
    };
    HistFactoryModel::load(&ws, &patches, &ReadOptions::default(), opts)
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

pub fn f64s(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

pub fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-300)
}

/// Repository-relative path.
pub fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// Deterministic pseudo-random numbers for tests (splitmix64).
pub struct TestRng(u64);

impl TestRng {
    pub fn new(seed: u64) -> Self {
        TestRng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E3779B97F4A7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A random parameter point inside the bounds, spread around the suggested inits
/// (nuisance parameters across |alpha| > 1 too, to exercise every interpolation branch).
pub fn random_point(m: &HistFactoryModel, rng: &mut TestRng) -> Vec<f64> {
    (0..m.n_pars())
        .map(|i| {
            let (lo, hi) = m.bounds[i];
            let x0 = m.init[i];
            let width = match m.constraints[i] {
                gradfit::model::histfactory::Constraint::Normal { sigma } if x0 == 0.0 => {
                    2.5 * sigma
                }
                gradfit::model::histfactory::Constraint::Normal { sigma } => (3.0 * sigma).min(0.3),
                gradfit::model::histfactory::Constraint::Poisson { .. } => 0.2,
                gradfit::model::histfactory::Constraint::None => 0.5 * x0.abs().max(0.5),
            };
            (x0 + width * (2.0 * rng.uniform() - 1.0)).clamp(lo, hi)
        })
        .collect()
}

/// A random point inside pyhf's domain (rates positive, so that the likelihood
/// is finite without gradfit's extension): the spread shrinks until one is found.
pub fn finite_random_point(m: &HistFactoryModel, rng: &mut TestRng) -> Vec<f64> {
    let mut scale = 1.0;
    for _ in 0..200 {
        let x0 = random_point(m, rng);
        let x: Vec<f64> = x0
            .iter()
            .zip(&m.init)
            .map(|(x, i)| i + scale * (x - i))
            .collect();
        if m.twice_nll(&x, m.observed()).is_finite() && m.domain_issue(&x, m.observed()).is_none() {
            return x;
        }
        scale *= 0.9;
    }
    panic!("no finite point found");
}

/// The candle graph and the fused kernel agree at random points:
/// twice_nll to `tol_f` relative, gradients to `tol_g` relative (absolute for tiny components).
pub fn check_graph_vs_kernel(
    m: &HistFactoryModel,
    n: usize,
    seed: u64,
    tol_f: f64,
    tol_g: f64,
    label: &str,
) {
    use candle_core::{Device, Tensor, Var};
    use gradfit::model::histfactory::graph::Graph;
    let dev = Device::Cpu;
    let g = Graph::new(m, &dev).unwrap();
    let tp = g.templates(m).unwrap();
    let data = g.data(m.observed()).unwrap();
    let mut rng = TestRng::new(seed);
    let p = m.n_pars();
    let mut flat = Vec::with_capacity(n * p);
    let mut points = Vec::new();
    for _ in 0..n {
        let x = finite_random_point(m, &mut rng);
        flat.extend_from_slice(&x);
        points.push(x);
    }
    let theta = Var::from_tensor(&Tensor::from_vec(flat, (n, p), &dev).unwrap()).unwrap();
    let f = g.twice_nll(theta.as_tensor(), &tp, &data).unwrap();
    let fv: Vec<f64> = f.to_vec1().unwrap();
    let grads = f.sum_all().unwrap().backward().unwrap();
    let gt: Vec<Vec<f64>> = grads.get(theta.as_tensor()).unwrap().to_vec2().unwrap();
    for (k, x) in points.iter().enumerate() {
        let (fk, gk) = m.twice_nll_grad(x, m.observed());
        assert!(
            rel(fv[k], fk) < tol_f,
            "{label} point {k}: graph {} vs kernel {fk} (rel {:e})",
            fv[k],
            rel(fv[k], fk)
        );
        let gmax = gk.iter().fold(0.0f64, |a, v| a.max(v.abs()));
        for i in 0..p {
            let (a, b) = (gt[k][i], gk[i]);
            let ok = rel(a, b) < tol_g || (a - b).abs() < tol_g * gmax.max(1.0) * 1e-3;
            assert!(
                ok,
                "{label} point {k} grad {} : graph {a} vs kernel {b}",
                m.par_names[i]
            );
        }
    }
}

/// Run the gradfit binary: (exit code, parsed JSON stdout or Null, stderr). Fails on a panic.
pub fn run_gradfit(args: &[&str]) -> (i32, Value, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gradfit"))
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    let v = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code().unwrap_or(-1), v, stderr)
}

/// The ROOT validation cases: (file name, JSON, model with the file's interpolation codes).
pub fn validation_cases(shared: &Path) -> Vec<(String, Value, HistFactoryModel)> {
    use gradfit::model::InterpCode;
    use gradfit::workspace::Workspace;
    let mut paths: Vec<_> = std::fs::read_dir(shared.join("validation"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    let mut out = Vec::new();
    for path in paths {
        let fname = path.file_name().unwrap().to_string_lossy().into_owned();
        if !(fname.starts_with("root-") && fname.ends_with(".json")) {
            continue;
        }
        let v = read(&path);
        let code = |k: &str| {
            v["interpolation"][k]
                .as_str()
                .unwrap()
                .parse::<InterpCode>()
                .unwrap()
        };
        let opts = ModelOptions {
            normsys_code: code("normsys"),
            histosys_code: code("histosys"),
            ..Default::default()
        };
        let ws =
            Workspace::from_value(v["workspace"].clone(), &[], &fname, &ReadOptions::default())
                .unwrap();
        let m = HistFactoryModel::from_workspace(&ws, &opts, &fname)
            .unwrap_or_else(|e| panic!("{fname}: {e}"));
        out.push((fname, v, m));
    }
    assert!(
        out.len() >= 9,
        "expected the nine ROOT validation cases, found {}",
        out.len()
    );
    out
}

/// A one-channel, four-bin workspace whose samples are zero in some bins:
/// `peak` lives in bin 1 only (its normsys `peak_norm` meets no other bin's
/// rate), `ghost` is zero everywhere, `shape` is zero in bins 0 and 1 but has
/// a histosys that is not (bin 1), so those sample-bins are not identically
/// zero. With `zero_histosys`, `peak` and `ghost` also carry a histosys `zz`
/// whose up and down templates equal the nominal: the same function of the
/// shared parameters, with no sample-bin identically zero (the reference).
pub fn sparse_samples_workspace(zero_histosys: bool) -> Value {
    use serde_json::json;
    let zz = |nom: [f64; 4]| {
        json!({"name": "zz", "type": "histosys",
        "data": {"hi_data": nom, "lo_data": nom}})
    };
    let mut peak_mods = vec![
        json!({"name": "peak_norm", "type": "normsys", "data": {"hi": 1.3, "lo": 0.8}}),
        json!({"name": "shared_norm", "type": "normsys", "data": {"hi": 1.05, "lo": 0.97}}),
    ];
    let mut ghost_mods =
        vec![json!({"name": "ghost_norm", "type": "normsys", "data": {"hi": 1.2, "lo": 0.7}})];
    if zero_histosys {
        peak_mods.push(zz([0.0, 7.0, 0.0, 0.0]));
        ghost_mods.push(zz([0.0; 4]));
    }
    json!({
        "channels": [{"name": "sr", "samples": [
            {"name": "signal", "data": [3.0, 4.0, 5.0, 2.0], "modifiers": [
                {"name": "mu", "type": "normfactor", "data": null}]},
            {"name": "bkg", "data": [20.0, 18.0, 15.0, 12.0], "modifiers": [
                {"name": "bkg_norm", "type": "normsys", "data": {"hi": 1.1, "lo": 0.9}},
                {"name": "shared_norm", "type": "normsys", "data": {"hi": 1.02, "lo": 0.99}},
                {"name": "stat", "type": "staterror", "data": [2.0, 2.5, 1.5, 1.0]}]},
            {"name": "peak", "data": [0.0, 7.0, 0.0, 0.0], "modifiers": peak_mods},
            {"name": "ghost", "data": [0.0, 0.0, 0.0, 0.0], "modifiers": ghost_mods},
            {"name": "shape", "data": [0.0, 0.0, 6.0, 4.0], "modifiers": [
                {"name": "shape_hs", "type": "histosys",
                 "data": {"hi_data": [0.0, 1.0, 7.0, 5.0], "lo_data": [0.0, 0.0, 5.0, 3.5]}},
                {"name": "shape_norm", "type": "normsys", "data": {"hi": 1.15, "lo": 0.9}}]}
        ]}],
        "observations": [{"name": "sr", "data": [28.0, 33.0, 27.0, 19.0]}],
        "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": []}}],
        "version": "1.0.0"
    })
}

/// Compile a workspace value with the default options.
pub fn model_from_value(v: Value) -> HistFactoryModel {
    let ws = workspace::Workspace::from_value(v, &[], "test", &ReadOptions::default()).unwrap();
    HistFactoryModel::from_workspace(&ws, &ModelOptions::default(), "test").unwrap()
}
