//! `gradfit yields`: pre- and post-fit yields per channel, sample and bin,
//! as tables, JSON and stacked plots (HS3 models: `yields_unbinned`).

use super::report_cmds::{BestFitArgs, best_fit, fit_header, warn_not_converged};
use super::table::Table;
use super::{EXIT_NOT_CONVERGED, ModelArgs, OutputArgs, num, nums};
use crate::error::Result;
use crate::model::ModelInfo;
use crate::report::{self, PostFit, Yields};
use clap::Args;
use serde_json::{Value, json};
use std::path::PathBuf;

/// Arguments of `gradfit yields`.
#[derive(Args, Debug)]
pub struct YieldsArgs {
    #[command(flatten)]
    pub(super) model: ModelArgs,
    #[command(flatten)]
    pub(super) fit: BestFitArgs,
    /// Only the pre-fit yields (no fit).
    #[arg(long, conflicts_with = "postfit")]
    pub(super) prefit: bool,
    /// Only the post-fit yields.
    #[arg(long)]
    pub(super) postfit: bool,
    /// Stacked plots per channel and stage: FILE.svg or FILE.png (several plots:
    /// FILE_CHANNEL_STAGE.EXT beside it), or a folder DIR (CHANNEL_STAGE.svg inside).
    /// HS3 (unbinned) models: one plot per observable and stage (data
    /// histogram, model and components, pulls), CHANNEL_OBSERVABLE_STAGE.
    #[arg(long, value_name = "FILE|DIR")]
    pub(super) plot: Option<PathBuf>,
    /// With a folder: PNG files next to the SVG ones.
    #[arg(long, requires = "plot")]
    pub(super) png: bool,
    /// Logarithmic y axis in the plots.
    #[arg(long, requires = "plot")]
    pub(super) log: bool,
    /// Bin edges of a channel for the plots, CHANNEL=E0,E1,... (one more than its bins; repeatable).
    #[arg(long = "bin-edges", value_name = "CHANNEL=E0,E1,...", requires = "plot",
          value_parser = super::yields_plots::parse_edges, allow_hyphen_values = true)]
    pub(super) bin_edges: Vec<(String, Vec<f64>)>,
    #[command(flatten)]
    pub(super) out: OutputArgs,
}

fn yields_json(y: &Yields) -> Value {
    Value::Array(
        y.channels
            .iter()
            .map(|c| {
                json!({
                    "name": c.name,
                    "data": nums(&c.data),
                    "data_sum": num(c.data_sum),
                    "samples": c.samples.iter().map(|s| json!({
                        "name": s.name,
                        "yields": nums(&s.yields),
                        "errors": nums(&s.errors),
                        "sum": num(s.sum),
                        "sum_error": num(s.sum_error),
                    })).collect::<Vec<_>>(),
                    "total": nums(&c.total),
                    "total_errors": nums(&c.total_errors),
                    "sum": num(c.sum),
                    "sum_error": num(c.sum_error),
                })
            })
            .collect(),
    )
}

fn yields_table(y: &Yields, stage: &str) -> String {
    let mut s = String::new();
    for c in &y.channels {
        s.push_str(&format!("{stage} yields, channel {}\n", c.name));
        let nb = c.total.len();
        let mut head: Vec<String> = vec!["sample".into()];
        head.extend((0..nb).map(|b| format!("bin {b}")));
        head.push("sum".into());
        let hr: Vec<&str> = head.iter().map(|x| x.as_str()).collect();
        let right: Vec<bool> = (0..hr.len()).map(|i| i > 0).collect();
        let mut t = Table::new(&hr, &right);
        let pm = |v: f64, e: f64| format!("{} +- {}", fmt3(v), fmt3(e));
        for smp in &c.samples {
            let mut row = vec![smp.name.clone()];
            row.extend((0..nb).map(|b| pm(smp.yields[b], smp.errors[b])));
            row.push(pm(smp.sum, smp.sum_error));
            t.row(row);
        }
        let mut row = vec!["total".to_string()];
        row.extend((0..nb).map(|b| pm(c.total[b], c.total_errors[b])));
        row.push(pm(c.sum, c.sum_error));
        t.row(row);
        let mut row = vec!["data".to_string()];
        row.extend(c.data.iter().map(|d| fmt3(*d)));
        row.push(fmt3(c.data_sum));
        t.row(row);
        s.push_str(&t.render());
        s.push('\n');
    }
    s
}

fn fmt3(x: f64) -> String {
    if !x.is_finite() {
        return format!("{x}");
    }
    let a = x.abs();
    if a != 0.0 && !(1e-2..1e6).contains(&a) {
        format!("{x:.3e}")
    } else {
        format!("{x:.3}")
    }
}

/// `gradfit yields`.
pub fn yields(a: &YieldsArgs) -> Result<i32> {
    let model = match a.model.load_any()?.model {
        crate::model::AnyModel::HistFactory(m) => *m,
        crate::model::AnyModel::Combined(m) => return super::yields_unbinned::yields(a, &m),
    };
    let engine = model.engine(&a.model.device)?;
    let target = a
        .plot
        .as_deref()
        .map(|p| super::yields_plots::target(p, a.png))
        .transpose()?;
    super::yields_plots::check_edges(&model, &a.bin_edges)?;
    let want_pre = !a.postfit;
    let want_post = !a.prefit;
    let pre = want_pre.then(|| report::prefit_yields(&model));
    let post = if want_post {
        Some(best_fit(&*engine, &model, &a.fit)?)
    } else {
        None
    };
    let posty = post.as_ref().map(|p| report::postfit_yields(&model, p));
    let v = yields_value(pre.as_ref(), post.as_ref().zip(posty.as_ref()), yields_json);
    let mut written = Vec::new();
    if let Some(t) = &target {
        let stages: Vec<(&str, &Yields)> =
            [("pre-fit", pre.as_ref()), ("post-fit", posty.as_ref())]
                .into_iter()
                .filter_map(|(s, y)| Some((s, y?)))
                .collect();
        written = super::yields_plots::write(t, &stages, a.log, &a.bin_edges)?;
    }
    finish_yields(
        &a.out,
        &v,
        [pre.as_ref(), posty.as_ref()],
        yields_table,
        &written,
        post.as_ref(),
    )
}

/// The JSON of `gradfit yields`: `prefit`, and `fit` with `postfit` after a
/// best fit (`to_json` renders one stage).
pub(super) fn yields_value<T>(
    pre: Option<&T>,
    post: Option<(&PostFit, &T)>,
    to_json: impl Fn(&T) -> Value,
) -> Value {
    let mut v = json!({});
    if let Some(y) = pre {
        v["prefit"] = to_json(y);
    }
    if let Some((p, y)) = post {
        v["fit"] = fit_header(p);
        v["postfit"] = to_json(y);
    }
    v
}

/// Print the pre- and post-fit yields tables (`table` renders one stage),
/// name the plots written, and give the exit status of the best fit.
pub(super) fn finish_yields<T>(
    out: &OutputArgs,
    v: &Value,
    stages: [Option<&T>; 2],
    table: impl Fn(&T, &str) -> String,
    written: &[PathBuf],
    post: Option<&PostFit>,
) -> Result<i32> {
    out.emit(v, || {
        let mut s = String::new();
        for (y, stage) in stages.iter().zip(["pre-fit", "post-fit"]) {
            if let Some(y) = y {
                s.push_str(&table(y, stage));
            }
        }
        s
    })?;
    for p in written {
        eprintln!("wrote {}", p.display());
    }
    if let Some(p) = post {
        warn_not_converged(p);
        if !p.converged {
            return Ok(EXIT_NOT_CONVERGED);
        }
    }
    Ok(0)
}
