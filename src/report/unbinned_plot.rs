//! Plots of unbinned channels: for each observable, the data histogram (sum of
//! weights per bin, error sqrt(sum w^2)) with the model's total and its
//! components as curves (expected events per bin width), and a panel of pulls
//! `(data - expected) / sqrt(expected)` per bin.

use super::{
    BLUE, DrawResult, OrMsg, PALETTE, Plot, anchored, font, legend_row, max_text_width, tick,
};
use crate::error::Result;
use crate::model::unbinned::atoms::Norm;
use crate::model::unbinned::slots::SlotValues;
use crate::model::unbinned::{Events, UnbinnedPart};
use crate::model::{CombinedData, CombinedModel};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};
use std::path::{Path, PathBuf};

/// One observable of one unbinned channel.
#[derive(Debug, Clone)]
pub struct UnbinnedPlot {
    /// Title, e.g. "model_ch0: x (post-fit)".
    pub title: String,
    /// Observable name (x axis).
    pub observable: String,
    /// Bin edges.
    pub edges: Vec<f64>,
    /// Sum of weights per bin.
    pub data: Vec<f64>,
    /// sqrt(sum of squared weights) per bin.
    pub data_errors: Vec<f64>,
    /// Expected events per bin (the total).
    pub expected: Vec<f64>,
    /// x values of the curves.
    pub curve_x: Vec<f64>,
    /// Total expected events per bin width at `curve_x`.
    pub curve_total: Vec<f64>,
    /// Components (name, expected events per bin width at `curve_x`).
    pub curve_components: Vec<(String, Vec<f64>)>,
}

/// The plots of every unbinned channel of `model` at `theta` on `data` (one per
/// observable), with `nbins` bins; `stage` ("pre-fit", "post-fit") goes into
/// the titles. Parts that are not unbinned channels are skipped.
pub fn unbinned_plots(
    model: &CombinedModel,
    theta: &[f64],
    data: &CombinedData,
    nbins: usize,
    stage: &str,
) -> Vec<UnbinnedPlot> {
    let nbins = nbins.max(1);
    let mut out = Vec::new();
    for (k, part) in model.parts().iter().enumerate() {
        let Some(u) = part.as_any().and_then(|a| a.downcast_ref::<UnbinnedPart>()) else {
            continue;
        };
        let Some(ev) = data.parts[k].downcast_ref::<Events>() else {
            continue;
        };
        let local: Vec<f64> = model.part_map(k).iter().map(|&i| theta[i]).collect();
        let ch = &u.channel;
        let mut sv = SlotValues::default();
        sv.compute(&ch.slots, &local, false);
        let Ok(norms) = ch.norms(&sv) else {
            continue;
        };
        let n_obs = ev.data.sum_w();
        for (o, ax) in ch.obs.iter().enumerate() {
            out.push(one(
                u,
                &sv,
                &norms,
                ev,
                o,
                nbins,
                n_obs,
                &format!("{}: {} ({stage})", ch.name, ax.name),
            ));
        }
    }
    out
}

/// Expected events of each component of one unbinned channel.
#[derive(Debug, Clone)]
pub struct UnbinnedYields {
    /// Channel name.
    pub channel: String,
    /// Observed events (sum of weights).
    pub observed: f64,
    /// (component, expected events over the axis ranges), in model order.
    pub components: Vec<(String, f64)>,
}

/// Expected events per component of every unbinned channel of `model` at
/// `theta` (for unextended channels the observed sum of weights is shared out
/// by the fractions). Parts that are not unbinned channels are skipped.
pub fn unbinned_yields(
    model: &CombinedModel,
    theta: &[f64],
    data: &CombinedData,
) -> Vec<UnbinnedYields> {
    let mut out = Vec::new();
    for (k, part) in model.parts().iter().enumerate() {
        let Some(u) = part.as_any().and_then(|a| a.downcast_ref::<UnbinnedPart>()) else {
            continue;
        };
        let Some(ev) = data.parts[k].downcast_ref::<Events>() else {
            continue;
        };
        let local: Vec<f64> = model.part_map(k).iter().map(|&i| theta[i]).collect();
        let ch = &u.channel;
        let mut sv = SlotValues::default();
        sv.compute(&ch.slots, &local, false);
        let n_obs = ev.data.sum_w();
        let scale = if ch.ext == crate::model::unbinned::Extension::Extended {
            1.0
        } else {
            n_obs / ch.coef_sum(&sv)
        };
        out.push(UnbinnedYields {
            channel: ch.name.clone(),
            observed: n_obs,
            components: ch
                .leaves
                .iter()
                .map(|l| (l.label.clone(), sv.v[l.coef] * scale))
                .collect(),
        });
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn one(
    u: &UnbinnedPart,
    sv: &SlotValues,
    norms: &[Norm],
    ev: &Events,
    o: usize,
    nbins: usize,
    n_obs: f64,
    title: &str,
) -> UnbinnedPlot {
    let ch = &u.channel;
    let ax = &ch.obs[o];
    let (lo, hi) = if ax.hi.is_finite() {
        (ax.lo, ax.hi)
    } else {
        let m = ev.data.cols[o].iter().fold(ax.lo, |m, x| m.max(*x));
        (ax.lo, m + 1.0)
    };
    let w = (hi - lo) / nbins as f64;
    let edges: Vec<f64> = (0..=nbins).map(|b| lo + w * b as f64).collect();
    let (mut data, mut err2) = (vec![0.0; nbins], vec![0.0; nbins]);
    for (i, x) in ev.data.cols[o].iter().enumerate() {
        let b = (((x - lo) / w) as usize).min(nbins - 1);
        let wi = ev.data.weights.as_ref().map_or(1.0, |ws| ws[i]);
        data[b] += wi;
        err2[b] += wi * wi;
    }
    let leaves = ch.leaf_bin_yields(sv, norms, o, &edges, n_obs);
    let expected: Vec<f64> = (0..nbins)
        .map(|b| leaves.iter().map(|l| l[b]).sum())
        .collect();
    // curves: expected events per bin width of each leaf's marginal on o
    let npts = 400;
    let curve_x: Vec<f64> = (0..npts)
        .map(|i| lo + (hi - lo) * (i as f64 + 0.5) / npts as f64)
        .collect();
    let a_sum = ch.coef_sum(sv);
    let scale = if ch.ext == crate::model::unbinned::Extension::Extended {
        1.0
    } else {
        n_obs / a_sum
    };
    let mut comps = Vec::new();
    for leaf in &ch.leaves {
        let al = sv.v[leaf.coef] * scale;
        let Some(&m) = leaf.atoms.iter().find(|&&m| ch.atoms[m].obs == o) else {
            continue;
        };
        let a = &ch.atoms[m];
        let p = &sv.v[a.u0..a.u0 + a.d()];
        let ys: Vec<f64> = curve_x
            .iter()
            .map(|&x| al * a.ln_q(x, p, &norms[m]).exp() * w)
            .collect();
        comps.push((leaf.label.clone(), ys));
    }
    let curve_total = (0..npts)
        .map(|i| comps.iter().map(|c| c.1[i]).sum())
        .collect();
    UnbinnedPlot {
        title: title.to_string(),
        observable: ch.obs[o].name.clone(),
        edges,
        data,
        data_errors: err2.iter().map(|v| v.sqrt()).collect(),
        expected,
        curve_x,
        curve_total,
        curve_components: if comps.len() > 1 { comps } else { Vec::new() },
    }
}

/// Write the plots of [`unbinned_plots`] as `<dir>/<prefix><channel>_<observable>.<ext>`
/// (format from `ext`: "svg" or "png"); returns the paths written.
#[allow(clippy::too_many_arguments)]
pub fn write_unbinned_plots(
    model: &CombinedModel,
    theta: &[f64],
    data: &CombinedData,
    nbins: usize,
    stage: &str,
    dir: &Path,
    prefix: &str,
    ext: &str,
) -> Result<Vec<PathBuf>> {
    let mut paths = Vec::new();
    for p in unbinned_plots(model, theta, data, nbins, stage) {
        let stem: String = p
            .title
            .split(" (")
            .next()
            .unwrap_or("plot")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let path = dir.join(format!("{prefix}{stem}.{ext}"));
        super::write(&p, &path)?;
        paths.push(path);
    }
    Ok(paths)
}

impl Plot for UnbinnedPlot {
    fn size(&self) -> (u32, u32) {
        let legend = max_text_width(
            self.curve_components
                .iter()
                .map(|c| c.0.as_str())
                .chain(["model", "data"]),
            13.0,
        ) + 70;
        (760 + legend, 640)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        root.fill(&WHITE).m()?;
        let (w, h) = self.size();
        let legend_w = w - 760;
        let nb = self.data.len();
        let (lo, hi) = (self.edges[0], self.edges[nb]);
        root.draw(&Text::new(
            self.title.clone(),
            (w as i32 / 2, 10),
            anchored(20.0, HPos::Center, VPos::Top),
        ))
        .m()?;
        let (plots, legend) = root.split_horizontally(w - legend_w);
        let (_, plots) = plots.split_vertically(40);
        let (top, bottom) = plots.split_vertically((h - 40) * 70 / 100);
        let ymax = (0..nb)
            .map(|b| self.data[b] + self.data_errors[b])
            .chain(self.curve_total.iter().copied())
            .fold(0.0f64, f64::max);
        let ymax = if ymax > 0.0 { ymax * 1.2 } else { 1.0 };
        let ylab = 80;
        let mut chart = ChartBuilder::on(&top)
            .margin_left(10)
            .margin_right(10)
            .x_label_area_size(10)
            .y_label_area_size(ylab)
            .build_cartesian_2d(lo..hi, 0.0..ymax)
            .m()?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_labels(8)
            .y_label_formatter(&|v| tick(*v))
            .y_desc(format!("events / {}", tick((hi - lo) / nb as f64)))
            .label_style(font(13.0))
            .axis_desc_style(font(14.0))
            .light_line_style(WHITE)
            .draw()
            .m()?;
        for (k, (_, ys)) in self.curve_components.iter().enumerate() {
            let c = PALETTE[(k + 1) % PALETTE.len()];
            chart
                .draw_series(LineSeries::new(
                    self.curve_x.iter().copied().zip(ys.iter().copied()),
                    c.stroke_width(2),
                ))
                .m()?;
        }
        chart
            .draw_series(LineSeries::new(
                self.curve_x
                    .iter()
                    .copied()
                    .zip(self.curve_total.iter().copied()),
                BLUE.stroke_width(3),
            ))
            .m()?;
        for b in 0..nb {
            let x = 0.5 * (self.edges[b] + self.edges[b + 1]);
            let (d, e) = (self.data[b], self.data_errors[b]);
            chart
                .draw_series(std::iter::once(ErrorBar::new_vertical(
                    x,
                    (d - e).max(0.0),
                    d,
                    d + e,
                    BLACK.stroke_width(1),
                    0,
                )))
                .m()?;
            chart
                .draw_series(std::iter::once(Circle::new((x, d), 3, BLACK.filled())))
                .m()?;
        }
        // pulls
        let pulls: Vec<Option<f64>> = (0..nb)
            .map(|b| {
                (self.expected[b] > 0.0)
                    .then(|| (self.data[b] - self.expected[b]) / self.expected[b].sqrt())
            })
            .collect();
        let pmax = pulls
            .iter()
            .flatten()
            .fold(3.0f64, |m, p| m.max(p.abs() * 1.1));
        let mut rc = ChartBuilder::on(&bottom)
            .margin_left(10)
            .margin_right(10)
            .margin_bottom(5)
            .x_label_area_size(50)
            .y_label_area_size(ylab)
            .build_cartesian_2d(lo..hi, -pmax..pmax)
            .m()?;
        rc.configure_mesh()
            .disable_x_mesh()
            .x_labels(8)
            .y_labels(5)
            .x_label_formatter(&|v| tick(*v))
            .y_label_formatter(&|v| tick(*v))
            .x_desc(self.observable.clone())
            .y_desc("pull")
            .label_style(font(13.0))
            .axis_desc_style(font(14.0))
            .light_line_style(WHITE)
            .draw()
            .m()?;
        for (b, p) in pulls.iter().enumerate() {
            if let Some(p) = p {
                rc.draw_series(std::iter::once(Rectangle::new(
                    [(self.edges[b], 0.0), (self.edges[b + 1], *p)],
                    RGBColor(150, 150, 150).filled(),
                )))
                .m()?;
            }
        }
        rc.draw_series(std::iter::once(PathElement::new(
            vec![(lo, 0.0), (hi, 0.0)],
            BLACK.stroke_width(1),
        )))
        .m()?;
        // legend
        let mut y = 70;
        legend_row(&legend, (10, y), "data", &|a, (x, y)| {
            a.draw(&PathElement::new(
                vec![(x + 11, y - 8), (x + 11, y + 8)],
                BLACK.stroke_width(1),
            ))
            .m()?;
            a.draw(&Circle::new((x + 11, y), 3, BLACK.filled())).m()
        })?;
        y += 24;
        legend_row(&legend, (10, y), "model", &|a, (x, y)| {
            a.draw(&PathElement::new(
                vec![(x, y), (x + 22, y)],
                BLUE.stroke_width(3),
            ))
            .m()
        })?;
        for (k, (name, _)) in self.curve_components.iter().enumerate() {
            y += 24;
            let c = PALETTE[(k + 1) % PALETTE.len()];
            legend_row(&legend, (10, y), name, &|a, (x, y)| {
                a.draw(&PathElement::new(
                    vec![(x, y), (x + 22, y)],
                    c.stroke_width(2),
                ))
                .m()
            })?;
        }
        Ok(())
    }
}
