//! Pulls, impacts, ranking, yields and plots on self-contained models: the
//! shipped example workspace and an exactly quadratic likelihood built here.

mod common;
mod report_util;
use common::*;
use gradfit::fit::{self, FitOptions, FitSpec};
use gradfit::model::{HistFactoryModel, Likelihood, ModelOptions};
use gradfit::report::{self, PostFit, RefitOptions, ShiftKind};
use gradfit::workspace::ReadOptions;
use report_util::*;
use serde_json::Value;
use std::path::{Path, PathBuf};

#[path = "report/commands.rs"]
mod commands;
#[path = "report/library.rs"]
mod library;
#[path = "report/plots.rs"]
mod plots;

fn example() -> HistFactoryModel {
    HistFactoryModel::load(
        &repo("examples/workspaces/two-channel.json"),
        &[],
        &ReadOptions::default(),
        &ModelOptions::default(),
    )
    .unwrap()
}

fn example_fit(m: &HistFactoryModel) -> PostFit {
    let post = PostFit::fit(
        m,
        m.observed(),
        &FitSpec::from_model(m),
        &report::best_fit_options(),
    )
    .unwrap();
    assert!(post.converged, "{:?}", post.status);
    post
}

// ------------------------------------------------------------ a quadratic likelihood

/// twice_nll = (theta - m)^T A (theta - m): exactly quadratic in every parameter,
/// so refits are exactly the linear response the Hessian predicts.
struct Quadratic {
    names: Vec<String>,
    a: Vec<f64>,
    m: Vec<f64>,
    init: Vec<f64>,
    bounds: Vec<(f64, f64)>,
    fixed: Vec<bool>,
    layout: gradfit::model::HessianLayout,
}

impl Quadratic {
    fn new(p: usize, seed: u64) -> Self {
        let mut rng = TestRng::new(seed);
        // A = L L^T + p I with a random L: symmetric positive definite, correlated
        let l: Vec<f64> = (0..p * p).map(|_| rng.uniform() * 2.0 - 1.0).collect();
        let mut a = vec![0.0; p * p];
        for i in 0..p {
            for j in 0..p {
                a[i * p + j] = (0..p).map(|k| l[i * p + k] * l[j * p + k]).sum::<f64>()
                    + if i == j { 0.5 } else { 0.0 };
            }
        }
        let m: Vec<f64> = (0..p).map(|_| rng.uniform() * 2.0 - 1.0).collect();
        Quadratic {
            names: (0..p).map(|i| format!("q{i}")).collect(),
            a,
            m,
            init: vec![0.0; p],
            bounds: vec![(-50.0, 50.0); p],
            fixed: vec![false; p],
            layout: gradfit::model::HessianLayout::dense(p),
        }
    }
}

impl Likelihood for Quadratic {
    type Data = ();
    type Scratch = Vec<f64>;
    type Generator = ();
    fn asimov(&self, _theta: &[f64]) {}
    fn generator(&self, _theta: &[f64]) {}
    fn sample(&self, _g: &(), _seed: u64, _toy: u32, _purpose: u32) {}
    fn layout(&self) -> &gradfit::model::HessianLayout {
        &self.layout
    }
    fn par_names(&self) -> &[String] {
        &self.names
    }
    fn init(&self) -> &[f64] {
        &self.init
    }
    fn bounds(&self) -> &[(f64, f64)] {
        &self.bounds
    }
    fn fixed(&self) -> &[bool] {
        &self.fixed
    }
    fn poi(&self) -> Option<usize> {
        Some(0)
    }
    fn observed(&self) -> &() {
        &()
    }
    fn scratch(&self) -> Vec<f64> {
        vec![0.0; self.names.len()]
    }
    fn eval(
        &self,
        theta: &[f64],
        _data: &(),
        r: &mut Vec<f64>,
        grad: Option<&mut [f64]>,
        hess: Option<&mut [f64]>,
    ) -> f64 {
        let p = self.names.len();
        for i in 0..p {
            r[i] = theta[i] - self.m[i];
        }
        let mut f = 0.0;
        let mut ar = vec![0.0; p];
        for i in 0..p {
            ar[i] = (0..p).map(|j| self.a[i * p + j] * r[j]).sum();
            f += r[i] * ar[i];
        }
        if let Some(g) = grad {
            for i in 0..p {
                g[i] = 2.0 * ar[i];
            }
        }
        if let Some(h) = hess {
            for k in 0..p * p {
                h[k] = 2.0 * self.a[k];
            }
        }
        f
    }
}

/// Inverse of a small dense matrix by Gauss-Jordan with partial pivoting (independent of faer).
fn invert(a: &[f64], n: usize) -> Vec<f64> {
    let mut m = a.to_vec();
    let mut inv: Vec<f64> = (0..n * n)
        .map(|k| if k / n == k % n { 1.0 } else { 0.0 })
        .collect();
    for c in 0..n {
        let piv = (c..n)
            .max_by(|&x, &y| m[x * n + c].abs().total_cmp(&m[y * n + c].abs()))
            .unwrap();
        for k in 0..n {
            m.swap(c * n + k, piv * n + k);
            inv.swap(c * n + k, piv * n + k);
        }
        let d = m[c * n + c];
        for k in 0..n {
            m[c * n + k] /= d;
            inv[c * n + k] /= d;
        }
        for r in 0..n {
            if r != c {
                let f = m[r * n + c];
                for k in 0..n {
                    m[r * n + k] -= f * m[c * n + k];
                    inv[r * n + k] -= f * inv[c * n + k];
                }
            }
        }
    }
    inv
}

// ------------------------------------------------------------ command line and plots

fn gradfit(args: &[&str]) -> (i32, Value, String) {
    common::run_gradfit(args)
}

fn ws() -> String {
    repo("examples/workspaces/two-channel.json")
        .to_string_lossy()
        .into_owned()
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("gradfit-report-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Texts of all `<text>` elements of an SVG file (which must parse as XML with an `svg` root).
fn svg_texts(path: &Path) -> Vec<String> {
    let s = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let doc = roxmltree::Document::parse(&s)
        .unwrap_or_else(|e| panic!("{} is not valid XML: {e}", path.display()));
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    doc.descendants()
        .filter(|n| n.has_tag_name("text"))
        .map(|n| n.text().unwrap_or("").trim().to_string())
        .collect()
}

fn count_labels(texts: &[String], names: &[String]) -> usize {
    texts.iter().filter(|t| names.contains(t)).count()
}

fn names_of(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect()
}

// ------------------------------------------------------------ inference plots, yields plot files, PNG text

fn svg_has(texts: &[String], want: &str) -> bool {
    texts.iter().any(|t| t == want)
}

fn png_size(path: &Path) -> (u32, u32) {
    let f = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let r = png::Decoder::new(std::io::BufReader::new(f))
        .read_info()
        .unwrap_or_else(|e| panic!("{} is not a PNG: {e}", path.display()));
    (r.info().width, r.info().height)
}

/// Four significant digits, as the plot legends write numbers.
fn short(v: f64) -> String {
    gradfit::report::plot_infer::short(v)
}

/// One line of text at (50, 100), left-aligned.
struct Label(String, f64);

impl gradfit::report::plot::Plot for Label {
    fn size(&self) -> (u32, u32) {
        (1800, 200)
    }
    fn draw<DB: plotters::prelude::DrawingBackend>(
        &self,
        root: &plotters::prelude::DrawingArea<DB, plotters::coord::Shift>,
    ) -> Result<(), String> {
        use plotters::prelude::*;
        use plotters::style::text_anchor::{HPos, Pos, VPos};
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let style = ("sans-serif", self.1)
            .into_font()
            .color(&BLACK)
            .pos(Pos::new(HPos::Left, VPos::Center));
        root.draw(&Text::new(self.0.clone(), (50, 100), style))
            .map_err(|e| e.to_string())
    }
}

/// Columns of the PNG rendering of `text` that hold ink.
fn ink_columns(text: &str, size: f64) -> Vec<bool> {
    use gradfit::report::plot::{Format, render};
    let bytes = render(&Label(text.into(), size), Format::Png).unwrap();
    let mut r = png::Decoder::new(std::io::Cursor::new(bytes))
        .read_info()
        .unwrap();
    let mut buf = vec![0; r.output_buffer_size()];
    let info = r.next_frame(&mut buf).unwrap();
    let (w, h) = (info.width as usize, info.height as usize);
    (0..w)
        .map(|x| (0..h).any(|y| buf[3 * (y * w + x)] < 128))
        .collect()
}

/// Runs of inked columns: (first, last).
fn ink_runs(cols: &[bool]) -> Vec<(usize, usize)> {
    let mut runs = Vec::new();
    let mut start = None;
    for (x, &c) in cols.iter().enumerate() {
        match (c, start) {
            (true, None) => start = Some(x),
            (false, Some(s)) => {
                runs.push((s, x - 1));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        runs.push((s, cols.len() - 1));
    }
    runs
}
