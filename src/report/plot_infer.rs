//! Plots of inference results: the profile-likelihood scan, CLs against the
//! POI with the expected (Brazil) band, and the test-statistic distributions
//! of toys against their asymptotic form.

use super::plot::{
    BAND1, BAND2, BLUE, DrawResult, GREY, ORANGE, OrMsg, Plot, anchored, font, legend_row, tick,
    tick_on,
};
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

const RED: RGBColor = RGBColor(200, 30, 30);

fn title<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, w: u32, text: &str) -> DrawResult {
    root.draw(&Text::new(
        text.to_string(),
        (w as i32 / 2, 12),
        anchored(20.0, HPos::Center, VPos::Top),
    ))
    .m()
}

fn line_swatch<DB: DrawingBackend>(
    c: RGBColor,
    dashed: bool,
) -> impl Fn(&DrawingArea<DB, Shift>, (i32, i32)) -> DrawResult {
    move |a, (x, y)| {
        if dashed {
            a.draw(&DashedPathElement::new(
                vec![(x, y), (x + 22, y)],
                5,
                3,
                c.stroke_width(2),
            ))
            .m()
        } else {
            a.draw(&PathElement::new(
                vec![(x, y), (x + 22, y)],
                c.stroke_width(2),
            ))
            .m()
        }
    }
}

fn box_swatch<DB: DrawingBackend>(
    style: ShapeStyle,
) -> impl Fn(&DrawingArea<DB, Shift>, (i32, i32)) -> DrawResult {
    move |a, (x, y)| {
        a.draw(&Rectangle::new([(x, y - 6), (x + 22, y + 6)], style))
            .m()
    }
}

/// A number for legends and notes: 4 significant digits.
pub fn short(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let digits = (3 - v.abs().log10().floor() as i32).clamp(0, 12) as usize;
    let s = format!("{v:.digits$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
    .replace('-', "\u{2212}")
}

// ---------------------------------------------------------------- scan

/// A profile-likelihood scan: `-2 Delta ln L` against the scanned parameter,
/// with the 68.3% and 95.4% levels (1 and 4) and the best fit.
#[derive(Debug, Clone)]
pub struct ScanPlot {
    /// Scanned parameter.
    pub parameter: String,
    /// Scan points: (value, delta twice_nll, converged), in any order.
    pub points: Vec<(f64, f64, bool)>,
    /// Best-fit value.
    pub best: f64,
    /// Title.
    pub title: String,
}

impl Plot for ScanPlot {
    fn size(&self) -> (u32, u32) {
        (760, 560)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        root.fill(&WHITE).m()?;
        let (w, _) = self.size();
        title(root, w, &self.title)?;
        let (head, body) = root.split_vertically(80);
        let mut pts = self.points.clone();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        let finite: Vec<&(f64, f64, bool)> = pts
            .iter()
            .filter(|p| p.0.is_finite() && p.1.is_finite())
            .collect();
        let xlo = finite.iter().map(|p| p.0).fold(self.best, f64::min);
        let xhi = finite.iter().map(|p| p.0).fold(self.best, f64::max);
        let pad = if xhi > xlo { 0.03 * (xhi - xlo) } else { 0.5 };
        let ytop = finite.iter().map(|p| p.1).fold(4.5f64, f64::max) * 1.12;
        let mut chart = ChartBuilder::on(&body)
            .margin_left(10)
            .margin_right(30)
            .margin_bottom(10)
            .x_label_area_size(55)
            .y_label_area_size(70)
            .build_cartesian_2d(xlo - pad..xhi + pad, 0.0..ytop)
            .m()?;
        let span = xhi - xlo + 2.0 * pad;
        chart
            .configure_mesh()
            .x_labels(9)
            .y_labels(8)
            .x_label_formatter(&|v| tick_on(*v, span))
            .y_label_formatter(&|v| tick_on(*v, ytop))
            .x_desc(self.parameter.clone())
            .y_desc("\u{2212}2 \u{0394} ln L")
            .label_style(font(13.0))
            .axis_desc_style(font(14.0))
            .light_line_style(WHITE)
            .draw()
            .m()?;
        for (level, label) in [(1.0, "68.3% CL"), (4.0, "95.4% CL")] {
            chart
                .draw_series(std::iter::once(DashedPathElement::new(
                    vec![(xlo - pad, level), (xhi + pad, level)],
                    6,
                    4,
                    GREY.stroke_width(1),
                )))
                .m()?;
            let (px, py) = chart.backend_coord(&(xhi + pad, level));
            root.draw(&Text::new(
                label.to_string(),
                (px - 6, py - 3),
                anchored(12.0, HPos::Right, VPos::Bottom).color(&GREY),
            ))
            .m()?;
        }
        chart
            .draw_series(std::iter::once(DashedPathElement::new(
                vec![(self.best, 0.0), (self.best, ytop)],
                4,
                4,
                BLUE.stroke_width(1),
            )))
            .m()?;
        chart
            .draw_series(LineSeries::new(
                finite.iter().map(|p| (p.0, p.1)),
                BLACK.stroke_width(2),
            ))
            .m()?;
        chart
            .draw_series(finite.iter().map(|p| {
                if p.2 {
                    Circle::new((p.0, p.1), 4, BLACK.filled())
                } else {
                    Circle::new((p.0, p.1), 6, RED.stroke_width(2))
                }
            }))
            .m()?;
        let failed = pts.iter().filter(|p| !p.2).count();
        legend_row(
            &head,
            (80, 50),
            "profile likelihood scan",
            &line_swatch(BLACK, false),
        )?;
        let best = format!("best fit: {} = {}", self.parameter, short(self.best));
        legend_row(&head, (380, 50), &best, &line_swatch(BLUE, true))?;
        if failed > 0 {
            legend_row(
                &head,
                (80, 70),
                &format!("{failed} point(s) whose fit did not converge"),
                &|a, (x, y)| {
                    a.draw(&Circle::new((x + 11, y), 6, RED.stroke_width(2)))
                        .m()
                },
            )?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------- CLs

/// CLs against the POI: the observed curve, the expected median and its
/// +-1 and +-2 sigma bands, and the line at 1 - CL.
#[derive(Debug, Clone)]
pub struct LimitPlot {
    /// POI name.
    pub poi: String,
    /// Points: (mu, observed CLs, expected CLs from -2 sigma to +2 sigma), any order.
    pub points: Vec<(f64, Option<f64>, [Option<f64>; 5])>,
    /// Confidence level (0.95).
    pub cl: f64,
    /// Observed upper limit, if found.
    pub obs_limit: Option<f64>,
    /// Median expected upper limit, if found.
    pub exp_limit: Option<f64>,
    /// Title.
    pub title: String,
}

impl Plot for LimitPlot {
    fn size(&self) -> (u32, u32) {
        (800, 580)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        root.fill(&WHITE).m()?;
        let (w, _) = self.size();
        title(root, w, &self.title)?;
        let (head, body) = root.split_vertically(110);
        let mut pts = self.points.clone();
        pts.retain(|p| p.0.is_finite());
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        let xlo = pts.first().map_or(0.0, |p| p.0);
        let xhi = pts.last().map_or(1.0, |p| p.0).max(xlo + 1e-9);
        let mut chart = ChartBuilder::on(&body)
            .margin_left(10)
            .margin_right(30)
            .margin_bottom(10)
            .x_label_area_size(55)
            .y_label_area_size(70)
            .build_cartesian_2d(xlo..xhi, 0.0..1.05)
            .m()?;
        chart
            .configure_mesh()
            .x_labels(9)
            .y_labels(8)
            .x_label_formatter(&|v| tick_on(*v, xhi - xlo))
            .y_label_formatter(&|v| tick_on(*v, 1.0))
            .x_desc(self.poi.clone())
            .y_desc("CLs")
            .label_style(font(13.0))
            .axis_desc_style(font(14.0))
            .light_line_style(WHITE)
            .draw()
            .m()?;
        // bands: where both edges are known
        for (lo, hi, c) in [(0usize, 4usize, BAND2), (1, 3, BAND1)] {
            let edge: Vec<(f64, f64, f64)> = pts
                .iter()
                .filter_map(|p| Some((p.0, p.2[lo]?, p.2[hi]?)))
                .collect();
            if edge.len() >= 2 {
                let poly: Vec<(f64, f64)> = edge
                    .iter()
                    .map(|e| (e.0, e.1))
                    .chain(edge.iter().rev().map(|e| (e.0, e.2)))
                    .collect();
                chart
                    .draw_series(std::iter::once(Polygon::new(poly, c.filled())))
                    .m()?;
            }
        }
        let alpha = 1.0 - self.cl;
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(xlo, alpha), (xhi, alpha)],
                RED.stroke_width(2),
            )))
            .m()?;
        let median: Vec<(f64, f64)> = pts.iter().filter_map(|p| Some((p.0, p.2[2]?))).collect();
        chart
            .draw_series(std::iter::once(DashedPathElement::new(
                median,
                7,
                4,
                BLACK.stroke_width(2),
            )))
            .m()?;
        let obs: Vec<(f64, f64)> = pts.iter().filter_map(|p| Some((p.0, p.1?))).collect();
        chart
            .draw_series(LineSeries::new(obs.iter().copied(), BLACK.stroke_width(2)))
            .m()?;
        chart
            .draw_series(
                obs.iter()
                    .map(|&(x, y)| Circle::new((x, y), 3, BLACK.filled())),
            )
            .m()?;
        let lim = |v: Option<f64>| v.map(short).unwrap_or_else(|| "not found".into());
        let pct = format!("{}", (100.0 * self.cl * 1e6).round() / 1e6);
        let rows = [
            (
                format!("observed CLs ({pct}% CL limit {})", lim(self.obs_limit)),
                0,
                40,
            ),
            (
                format!("expected CLs, median (limit {})", lim(self.exp_limit)),
                0,
                62,
            ),
            ("expected \u{00b1}1\u{03c3}".to_string(), 400, 40),
            ("expected \u{00b1}2\u{03c3}".to_string(), 400, 62),
            (format!("CLs = {}", short(alpha)), 400, 84),
        ];
        for (k, (text, dx, y)) in rows.iter().enumerate() {
            let pos = (80 + dx, *y);
            match k {
                0 => legend_row(&head, pos, text, &line_swatch(BLACK, false))?,
                1 => legend_row(&head, pos, text, &line_swatch(BLACK, true))?,
                2 => legend_row(&head, pos, text, &box_swatch(BAND1.filled()))?,
                3 => legend_row(&head, pos, text, &box_swatch(BAND2.filled()))?,
                _ => legend_row(&head, pos, text, &line_swatch(RED, false))?,
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------- toys

/// One toy ensemble for [`ToysPlot::new`]: legend label, test-statistic
/// values, and the asymptotic CDF to compare with (if any).
pub type Ensemble<'a> = (String, Vec<f64>, Option<&'a dyn Fn(f64) -> f64>);

/// Test-statistic distributions of the two toy ensembles, histogrammed on a
/// log scale, with the expected counts per bin from the asymptotic formulae
/// and the observed value.
#[derive(Debug, Clone)]
pub struct ToysPlot {
    /// Title.
    pub title: String,
    /// x-axis title.
    pub x_label: String,
    /// Bin edges (the last bin also holds the overflow).
    pub edges: Vec<f64>,
    /// Per ensemble: legend label, toy counts per bin, asymptotic expectation per bin.
    pub ensembles: Vec<(String, Vec<f64>, Option<Vec<f64>>)>,
    /// Observed test statistic.
    pub observed: f64,
    /// A remark (e.g. why no asymptotic form is drawn).
    pub note: Option<String>,
}

impl ToysPlot {
    /// Histogram `ensembles` (label, toy values, asymptotic CDF) in `bins` bins
    /// from 0 to above the observed value and the bulk of the toys.
    pub fn new(
        title: &str,
        x_label: &str,
        observed: f64,
        ensembles: Vec<Ensemble<'_>>,
        bins: usize,
    ) -> Self {
        let mut all: Vec<f64> = ensembles
            .iter()
            .flat_map(|e| e.1.iter().copied())
            .filter(|v| v.is_finite())
            .collect();
        all.sort_by(f64::total_cmp);
        let q995 = all
            .get(((all.len() as f64 * 0.995) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or(1.0);
        let top = q995.max(observed * 1.15).max(1.0);
        let bins = bins.max(1);
        let edges: Vec<f64> = (0..=bins).map(|k| top * k as f64 / bins as f64).collect();
        let mut out = Vec::new();
        for (label, vals, cdf) in ensembles {
            let mut counts = vec![0.0; bins];
            let mut n = 0usize;
            for v in vals.iter().filter(|v| v.is_finite()) {
                let k = ((v.max(0.0) / top) * bins as f64) as usize;
                counts[k.min(bins - 1)] += 1.0;
                n += 1;
            }
            let asym = cdf.map(|f| {
                (0..bins)
                    .map(|k| {
                        // the first bin holds the point mass at 0; the last the tail
                        let lo = if k == 0 { 0.0 } else { f(edges[k]) };
                        let hi = if k + 1 == bins { 1.0 } else { f(edges[k + 1]) };
                        n as f64 * (hi - lo).max(0.0)
                    })
                    .collect()
            });
            out.push((label, counts, asym));
        }
        ToysPlot {
            title: title.to_string(),
            x_label: x_label.to_string(),
            edges,
            ensembles: out,
            observed,
            note: None,
        }
    }
}

impl Plot for ToysPlot {
    fn size(&self) -> (u32, u32) {
        (820, 600)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        root.fill(&WHITE).m()?;
        let (w, _) = self.size();
        title(root, w, &self.title)?;
        let (head, body) = root.split_vertically(120);
        let xhi = self.edges.last().copied().unwrap_or(1.0);
        let cmax = self
            .ensembles
            .iter()
            .flat_map(|e| e.1.iter().chain(e.2.iter().flatten()))
            .fold(1.0f64, |a, v| a.max(*v));
        let floor = 0.5;
        let mut chart = ChartBuilder::on(&body)
            .margin_left(10)
            .margin_right(30)
            .margin_bottom(10)
            .x_label_area_size(55)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..xhi, (floor..cmax * 4.0).log_scale())
            .m()?;
        chart
            .configure_mesh()
            .x_labels(9)
            .y_labels(8)
            .x_label_formatter(&|v| tick_on(*v, xhi))
            .y_label_formatter(&|v| tick(*v))
            .x_desc(self.x_label.clone())
            .y_desc("toys per bin")
            .label_style(font(13.0))
            .axis_desc_style(font(14.0))
            .light_line_style(WHITE)
            .draw()
            .m()?;
        let colors = [BLUE, ORANGE];
        let step = |vals: &[f64]| -> Vec<(f64, f64)> {
            let mut p = Vec::with_capacity(2 * vals.len() + 2);
            for (k, v) in vals.iter().enumerate() {
                let y = v.max(floor);
                p.push((self.edges[k], y));
                p.push((self.edges[k + 1], y));
            }
            p
        };
        for (i, (_, counts, asym)) in self.ensembles.iter().enumerate() {
            let c = colors[i % 2];
            for (k, v) in counts.iter().enumerate() {
                if *v > 0.0 {
                    chart
                        .draw_series(std::iter::once(Rectangle::new(
                            [(self.edges[k], floor), (self.edges[k + 1], *v)],
                            c.mix(0.25).filled(),
                        )))
                        .m()?;
                }
            }
            chart
                .draw_series(std::iter::once(PathElement::new(
                    step(counts),
                    c.stroke_width(2),
                )))
                .m()?;
            if let Some(a) = asym {
                chart
                    .draw_series(std::iter::once(DashedPathElement::new(
                        step(a),
                        6,
                        4,
                        c.mix(0.9).stroke_width(2),
                    )))
                    .m()?;
            }
        }
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(self.observed, floor), (self.observed, cmax * 4.0)],
                BLACK.stroke_width(2),
            )))
            .m()?;
        let mut y = 40;
        for (i, (label, counts, asym)) in self.ensembles.iter().enumerate() {
            let c = colors[i % 2];
            let n: f64 = counts.iter().sum();
            legend_row(
                &head,
                (60, y),
                &format!("{label}: {n} toys"),
                &box_swatch(c.mix(0.5).filled()),
            )?;
            if asym.is_some() {
                legend_row(
                    &head,
                    (480, y),
                    "asymptotic expectation",
                    &line_swatch(c, true),
                )?;
            }
            y += 22;
        }
        legend_row(
            &head,
            (60, y),
            &format!("observed: {}", short(self.observed)),
            &line_swatch(BLACK, false),
        )?;
        if let Some(note) = &self.note {
            head.draw(&Text::new(
                note.clone(),
                (480, y),
                anchored(12.0, HPos::Left, VPos::Center).color(&GREY),
            ))
            .m()?;
        }
        Ok(())
    }
}
