//! The impact ranking plot (`gradfit impacts --plot`), cabinetry's layout.

use super::impacts::{ImpactRow, ShiftKind};
use super::plot::{
    BLUE, DrawResult, GREY, LIGHT, ORANGE, OrMsg, Plot, Swatch, anchored, font, legend_row,
    max_text_width, nice_limit, pull_limit, pull_row, tick_on,
};
use super::pulls::Pull;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

/// The impact ranking: the top parameters by post-fit impact on the POI, with
/// pre-fit (hollow) and post-fit (filled) impact bars on the top axis and the
/// pulls on the bottom axis.
#[derive(Debug, Clone)]
pub struct RankingPlot {
    /// Parameter names, top (largest impact) to bottom.
    pub names: Vec<String>,
    /// POI name (axis title).
    pub poi: String,
    /// POI shift for theta + sigma_prefit.
    pub prefit_up: Vec<f64>,
    /// POI shift for theta - sigma_prefit.
    pub prefit_down: Vec<f64>,
    /// POI shift for theta + sigma_postfit.
    pub postfit_up: Vec<f64>,
    /// POI shift for theta - sigma_postfit.
    pub postfit_down: Vec<f64>,
    /// Pull and its error (None for unconstrained parameters).
    pub pulls: Vec<Option<(f64, f64)>>,
    /// True for refit impacts, false for linearised (Hessian) ones.
    pub refit: bool,
    /// Title.
    pub title: String,
    /// A remark shown under the title (e.g. that the POI sits at a bound).
    pub note: Option<String>,
}

impl RankingPlot {
    /// The first `top` rows of a ranking (refit impacts where present, else Hessian ones).
    pub fn new(
        par_names: &[String],
        poi: &str,
        rows: &[ImpactRow],
        pulls: &[Pull],
        top: usize,
        title: &str,
    ) -> Self {
        let rows = &rows[..top.min(rows.len())];
        let refit = rows.iter().all(|r| r.refit.is_some()) && !rows.is_empty();
        let pick = |k: ShiftKind| -> Vec<f64> {
            rows.iter()
                .map(|r| match (&r.refit, refit) {
                    (Some(x), true) => x.get(k).impact,
                    _ => {
                        let h = &r.hessian;
                        match k {
                            ShiftKind::PrefitUp => h.hessian_prefit,
                            ShiftKind::PrefitDown => -h.hessian_prefit,
                            ShiftKind::PostfitUp => h.hessian,
                            ShiftKind::PostfitDown => -h.hessian,
                        }
                    }
                })
                .collect()
        };
        RankingPlot {
            names: rows.iter().map(|r| par_names[r.par()].clone()).collect(),
            poi: poi.to_string(),
            prefit_up: pick(ShiftKind::PrefitUp),
            prefit_down: pick(ShiftKind::PrefitDown),
            postfit_up: pick(ShiftKind::PostfitUp),
            postfit_down: pick(ShiftKind::PostfitDown),
            pulls: rows
                .iter()
                .map(|r| {
                    let p = &pulls[r.par()];
                    p.pull.zip(p.pull_error)
                })
                .collect(),
            refit,
            title: title.to_string(),
            note: None,
        }
    }

    fn label_width(&self) -> u32 {
        max_text_width(self.names.iter().map(|s| s.as_str()), 13.0) + 16
    }
}

impl Plot for RankingPlot {
    fn size(&self) -> (u32, u32) {
        let n = self.names.len().max(1) as u32;
        ((self.label_width() + 640).max(760), 150 + 130 + n * 26)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        root.fill(&WHITE).m()?;
        let n = self.names.len();
        let (w, _) = self.size();
        let (head, body) = root.split_vertically(130);
        head.draw(&Text::new(
            self.title.clone(),
            (w as i32 / 2, 10),
            anchored(20.0, HPos::Center, VPos::Top),
        ))
        .m()?;
        if let Some(note) = &self.note {
            head.draw(&Text::new(
                note.clone(),
                (w as i32 / 2, 34),
                anchored(12.0, HPos::Center, VPos::Top).color(&RGBColor(180, 30, 30)),
            ))
            .m()?;
        }
        let how = if self.refit {
            "refit, parameter fixed at its fitted value"
        } else {
            "linearised (Hessian), parameter moved to its fitted value"
        };
        let lx = self.label_width() as i32 + 10;
        let hollow = |c: RGBColor| {
            move |a: &DrawingArea<DB, Shift>, (x, y): (i32, i32)| -> DrawResult {
                a.draw(&Rectangle::new(
                    [(x, y - 6), (x + 22, y + 6)],
                    c.stroke_width(2),
                ))
                .m()
            }
        };
        let filled = |c: RGBColor| {
            move |a: &DrawingArea<DB, Shift>, (x, y): (i32, i32)| -> DrawResult {
                a.draw(&Rectangle::new(
                    [(x, y - 6), (x + 22, y + 6)],
                    c.mix(0.75).filled(),
                ))
                .m()
            }
        };
        let rows: [(&str, Swatch<DB>); 4] = [
            (
                "pre-fit impact: {how} + its pre-fit uncertainty",
                &hollow(BLUE),
            ),
            (
                "pre-fit impact: {how} \u{2212} its pre-fit uncertainty",
                &hollow(ORANGE),
            ),
            (
                "post-fit impact: {how} + its post-fit uncertainty",
                &filled(BLUE),
            ),
            (
                "post-fit impact: {how} \u{2212} its post-fit uncertainty",
                &filled(ORANGE),
            ),
        ];
        for (k, (text, sw)) in rows.iter().enumerate() {
            let text = text.replace("{how}", how);
            legend_row(&head, (lx, 58 + 17 * k as i32), &text, *sw)?;
        }
        let imax = self
            .prefit_up
            .iter()
            .chain(&self.prefit_down)
            .chain(&self.postfit_up)
            .chain(&self.postfit_down)
            .fold(0.0f64, |a, v| a.max(v.abs()));
        let ilim = nice_limit(imax);
        let plim = pull_limit(self.pulls.iter().flatten().copied(), 2.0);
        let ny = n.max(1) as f64;
        let mut chart = ChartBuilder::on(&body)
            .margin_right(30)
            .margin_bottom(10)
            .x_label_area_size(55)
            .top_x_label_area_size(55)
            .y_label_area_size(self.label_width())
            .build_cartesian_2d(-plim..plim, -0.5..ny - 0.5)
            .m()?
            .set_secondary_coord(-ilim..ilim, -0.5..ny - 0.5);
        chart
            .configure_mesh()
            .disable_y_mesh()
            .disable_x_mesh()
            .y_labels(0)
            .x_labels(2 * plim as usize + 1)
            .x_label_formatter(&|v| tick_on(*v, plim))
            .x_desc("pull = (fitted value \u{2212} nominal) / pre-fit uncertainty   (black points)")
            .label_style(font(13.0))
            .axis_desc_style(font(14.0))
            .draw()
            .m()?;
        let poi_desc = format!("\u{0394}{} (impact on the parameter of interest)", self.poi);
        chart
            .configure_secondary_axes()
            .x_labels(9)
            .x_label_formatter(&|v| tick_on(*v, ilim))
            .x_desc(poi_desc)
            .label_style(font(13.0))
            .axis_desc_style(font(14.0))
            .draw()
            .m()?;
        chart
            .draw_secondary_series((0..n).map(|i| {
                let y = (n - 1 - i) as f64;
                PathElement::new(vec![(-ilim, y), (ilim, y)], LIGHT.stroke_width(1))
            }))
            .m()?;
        chart
            .draw_secondary_series(std::iter::once(PathElement::new(
                vec![(0.0, -0.5), (0.0, ny - 0.5)],
                GREY.stroke_width(1),
            )))
            .m()?;
        for i in 0..n {
            let y = (n - 1 - i) as f64;
            let bars = [
                (self.postfit_up[i], BLUE, true),
                (self.postfit_down[i], ORANGE, true),
                (self.prefit_up[i], BLUE, false),
                (self.prefit_down[i], ORANGE, false),
            ];
            for (v, c, fill) in bars {
                if v == 0.0 {
                    continue;
                }
                let style = if fill {
                    c.mix(0.75).filled()
                } else {
                    c.stroke_width(2)
                };
                let hh = if fill { 0.3 } else { 0.38 };
                chart
                    .draw_secondary_series(std::iter::once(Rectangle::new(
                        [(0.0, y - hh), (v, y + hh)],
                        style,
                    )))
                    .m()?;
            }
            pull_row(root, &mut chart, y, self.pulls[i], -plim, &self.names[i])?;
        }
        Ok(())
    }
}
