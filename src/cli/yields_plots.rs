//! `yields --plot`: where the stacked plots go, with bin edges and a log scale.
//!
//! `--plot FILE.svg|FILE.png`: the format from the extension; one plot is
//! that file, several (channels x stages) are `FILE_CHANNEL_STAGE.EXT`
//! beside it, and the command says so. `--plot DIR` (no .svg/.png
//! extension): a folder of `CHANNEL_STAGE.svg` (and `.png` with `--png`),
//! created if needed, and the command says so.

use crate::error::{Error, Result};
use crate::model::HistFactoryModel;
use crate::report::Yields;
use crate::report::plot::{self, Format, StackPlot};
use std::path::{Path, PathBuf};

/// Where the plots go.
#[derive(Debug, Clone)]
pub(super) enum Target {
    /// A file name: its format, and its stem for several plots.
    File(PathBuf, Format),
    /// A folder; PNG files too when true.
    Folder(PathBuf, bool),
}

/// Parse `CHANNEL=E0,E1,...` for `--bin-edges`.
pub(super) fn parse_edges(s: &str) -> std::result::Result<(String, Vec<f64>), String> {
    let (c, e) = s
        .rsplit_once('=')
        .ok_or_else(|| format!("expected CHANNEL=E0,E1,..., got '{s}'"))?;
    let edges = e
        .split(',')
        .map(|x| {
            x.trim()
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| format!("'{x}' is not a finite number in '{s}'"))
        })
        .collect::<std::result::Result<Vec<f64>, String>>()?;
    Ok((c.trim().to_string(), edges))
}

/// Decide the target of `--plot PATH` before any work (the folder of a
/// file must exist; a folder is created when the plots are written).
pub(super) fn target(path: &Path, png: bool) -> Result<Target> {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    if path.is_dir() || ext.is_none() {
        return Ok(Target::Folder(path.to_path_buf(), png));
    }
    let format = Format::from_path(path).map_err(|_| {
        Error::input(format!(
            "{}: --plot takes FILE.svg, FILE.png or a folder name (without an extension)",
            path.display()
        ))
    })?;
    if png {
        return Err(Error::input(format!(
            "--png applies to a folder; for {} the extension sets the format",
            path.display()
        )));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.is_dir()
    {
        return Err(Error::input(format!(
            "{}: folder {} does not exist",
            path.display(),
            dir.display()
        )));
    }
    Ok(Target::File(path.to_path_buf(), format))
}

/// Check `--bin-edges` against the model: known channels, one more edge than bins.
pub(super) fn check_edges(model: &HistFactoryModel, edges: &[(String, Vec<f64>)]) -> Result<()> {
    for (c, e) in edges {
        let Some(ch) = model.channels.iter().find(|x| &x.name == c) else {
            let names: Vec<&str> = model.channels.iter().map(|x| x.name.as_str()).collect();
            return Err(Error::input(format!(
                "--bin-edges: no channel '{c}' (channels: {})",
                names.join(", ")
            )));
        };
        if e.len() != ch.nbins + 1 || e.windows(2).any(|w| !(w[0] < w[1])) {
            return Err(Error::input(format!(
                "--bin-edges {c}: need {} increasing edges for its {} bins, got {}",
                ch.nbins + 1,
                ch.nbins,
                e.len()
            )));
        }
    }
    Ok(())
}

/// A file name for a channel: characters other than letters, digits, '-', '_' and '.' become '_'.
pub(super) fn safe_name(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Write one plot per channel and stage; returns the files written.
pub(super) fn write(
    target: &Target,
    stages: &[(&str, &Yields)],
    log: bool,
    edges: &[(String, Vec<f64>)],
) -> Result<Vec<PathBuf>> {
    let mut plots = Vec::new();
    for (stage, y) in stages {
        for c in &y.channels {
            let mut pl = StackPlot::new(c, stage);
            pl.log = log;
            if let Some((_, e)) = edges.iter().rev().find(|(n, _)| n == &c.name) {
                pl = pl
                    .with_edges(e.clone())
                    .map_err(|m| Error::input(format!("--bin-edges {}: {m}", c.name)))?;
            }
            let tag = format!("{}_{}", safe_name(&c.name), stage.replace('-', ""));
            plots.push((tag, pl));
        }
    }
    let mut files = Vec::new();
    match target {
        Target::File(path, _) if plots.len() == 1 => files.push(path.clone()),
        Target::File(path, format) => {
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
            for (tag, _) in &plots {
                files.push(dir.join(format!("{stem}_{tag}.{}", format.ext())));
            }
            eprintln!(
                "note: {} plots (channels x stages), so {} is written as {}",
                plots.len(),
                path.display(),
                dir.join(format!("{stem}_CHANNEL_STAGE.{}", format.ext()))
                    .display()
            );
        }
        Target::Folder(dir, png) => {
            let created = !dir.is_dir();
            if created {
                std::fs::create_dir_all(dir).map_err(|e| Error::Io {
                    path: dir.clone(),
                    source: e,
                })?;
            }
            let exts: &[&str] = if *png { &["svg", "png"] } else { &["svg"] };
            for (tag, _) in &plots {
                for ext in exts {
                    files.push(dir.join(format!("{tag}.{ext}")));
                }
            }
            eprintln!(
                "note: writing {} plot files into the folder {}{}",
                files.len(),
                dir.display(),
                if created { " (created)" } else { "" }
            );
        }
    }
    let per_plot = files.len() / plots.len().max(1);
    for (k, f) in files.iter().enumerate() {
        plot::write(&plots[k / per_plot.max(1)].1, f)?;
    }
    Ok(files)
}
