//! `gradfit yields` on HS3 (unbinned) models: the expected events of every
//! component of every unbinned channel, pre- and post-fit, and with `--plot`
//! one picture per observable and stage: the data histogram with the model's
//! total and components as curves and a pull panel
//! ([`crate::report::plot::unbinned`]).

use super::num;
use super::report_cmds::best_fit;
use super::table::{Table, fmt};
use super::yields_cmd::YieldsArgs;
use super::yields_plots::{Target, safe_name, target};
use crate::error::{Error, Result};
use crate::model::{CombinedModel, Likelihood, ModelInfo};
use crate::report::plot::unbinned::{UnbinnedYields, unbinned_plots, unbinned_yields};
use crate::report::plot::{self, Format};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

/// Bins of the data histograms in the plots.
pub const PLOT_BINS: usize = 50;

fn yields_json(ys: &[UnbinnedYields]) -> Value {
    json!({"channels": ys.iter().map(|y| json!({
        "name": y.channel,
        "observed": num(y.observed),
        "total": num(y.components.iter().map(|c| c.1).sum()),
        "components": y.components.iter().map(|(n, v)| json!({"name": n, "expected": num(*v)})).collect::<Vec<_>>(),
    })).collect::<Vec<_>>()})
}

fn yields_table(ys: &[UnbinnedYields], stage: &str) -> String {
    let mut t = Table::new(&["channel", "component", "expected"], &[false, false, true]);
    for y in ys {
        for (n, v) in &y.components {
            t.row(vec![y.channel.clone(), n.clone(), fmt(*v)]);
        }
        let total: f64 = y.components.iter().map(|c| c.1).sum();
        t.row(vec![y.channel.clone(), "total".into(), fmt(total)]);
        t.row(vec![y.channel.clone(), "observed".into(), fmt(y.observed)]);
    }
    format!("{stage} (unbinned channels)\n{}\n", t.render())
}

/// `gradfit yields` on a combined model.
pub(super) fn yields(a: &YieldsArgs, model: &CombinedModel) -> Result<i32> {
    if !a.bin_edges.is_empty() || a.log {
        return Err(Error::input(format!(
            "{}: --bin-edges and --log apply to binned (pyhf) channels; unbinned plots use {PLOT_BINS} bins per observable",
            model.label
        )));
    }
    let target = a.plot.as_deref().map(|p| target(p, a.png)).transpose()?;
    let engine = model.engine(&a.model.device)?;
    let pre = (!a.postfit).then(|| unbinned_yields(model, model.init(), model.observed()));
    let post = if a.prefit {
        None
    } else {
        Some(best_fit(&*engine, model, &a.fit)?)
    };
    let posty = post
        .as_ref()
        .map(|p| unbinned_yields(model, &p.x, model.observed()));
    let mut v = super::yields_cmd::yields_value(
        pre.as_ref(),
        post.as_ref().zip(posty.as_ref()),
        |y: &Vec<UnbinnedYields>| yields_json(y),
    );
    let mut written = Vec::new();
    if let Some(t) = &target {
        let mut stages: Vec<(&str, &[f64])> = Vec::new();
        if pre.is_some() {
            stages.push(("pre-fit", model.init()));
        }
        if let Some(p) = &post {
            stages.push(("post-fit", p.x.as_slice()));
        }
        written = write_plots(model, t, &stages)?;
        v["plots"] = json!(
            written
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
        );
    }
    super::yields_cmd::finish_yields(
        &a.out,
        &v,
        [pre.as_ref(), posty.as_ref()],
        |y: &Vec<UnbinnedYields>, stage| yields_table(y, stage),
        &written,
        post.as_ref(),
    )
}

/// One plot per observable of every unbinned channel and stage, named
/// `CHANNEL_OBSERVABLE_STAGE` like the binned `CHANNEL_STAGE`.
fn write_plots(
    model: &CombinedModel,
    t: &Target,
    stages: &[(&str, &[f64])],
) -> Result<Vec<PathBuf>> {
    let mut plots = Vec::new();
    for (stage, theta) in stages {
        for p in unbinned_plots(model, theta, model.observed(), PLOT_BINS, stage) {
            let channel = p.title.split(": ").next().unwrap_or("channel");
            let tag = format!(
                "{}_{}_{}",
                safe_name(channel),
                safe_name(&p.observable),
                stage.replace('-', "")
            );
            plots.push((tag, p));
        }
    }
    if plots.is_empty() {
        return Err(Error::input(format!(
            "{}: --plot: the model has no unbinned channel to draw",
            model.label
        )));
    }
    let mut files: Vec<(PathBuf, usize)> = Vec::new();
    match t {
        Target::File(path, _) if plots.len() == 1 => files.push((path.clone(), 0)),
        Target::File(path, format) => {
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
            for (k, (tag, _)) in plots.iter().enumerate() {
                files.push((dir.join(format!("{stem}_{tag}.{}", format.ext())), k));
            }
            eprintln!(
                "note: {} plots (observables x stages), so {} is written as {}",
                plots.len(),
                path.display(),
                dir.join(format!("{stem}_CHANNEL_OBSERVABLE_STAGE.{}", format.ext()))
                    .display()
            );
        }
        Target::Folder(dir, png) => {
            if !dir.is_dir() {
                std::fs::create_dir_all(dir).map_err(|e| Error::Io {
                    path: dir.clone(),
                    source: e,
                })?;
            }
            let formats: &[Format] = if *png {
                &[Format::Svg, Format::Png]
            } else {
                &[Format::Svg]
            };
            for (k, (tag, _)) in plots.iter().enumerate() {
                for f in formats {
                    files.push((dir.join(format!("{tag}.{}", f.ext())), k));
                }
            }
        }
    }
    for (f, k) in &files {
        plot::write(&plots[*k].1, f)?;
    }
    Ok(files.into_iter().map(|f| f.0).collect())
}
