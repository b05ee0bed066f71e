//! Plot of Neyman belts: the critical values `c_cl(mu)` per confidence level
//! and the observed profile scan `t_obs(mu)`; the intervals are where the
//! observed curve lies below a belt.

use super::neyman::Neyman;
use crate::report::plot::Plot;
use plotters::coord::Shift;
use plotters::prelude::*;

const COLORS: [RGBColor; 4] = [
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(23, 190, 207),
];

/// The belt plot of a Neyman construction.
#[derive(Debug, Clone)]
pub struct BeltPlot {
    /// The construction.
    pub neyman: Neyman,
    /// Title.
    pub title: String,
}

fn m<T, E: std::fmt::Display>(r: std::result::Result<T, E>) -> std::result::Result<T, String> {
    r.map_err(|e| e.to_string())
}

impl Plot for BeltPlot {
    fn size(&self) -> (u32, u32) {
        (800, 560)
    }

    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> std::result::Result<(), String> {
        m(root.fill(&WHITE))?;
        let n = &self.neyman;
        let xs: Vec<f64> = n.points.iter().map(|p| p.mu).collect();
        let (x0, x1) = (
            xs.first().copied().unwrap_or(0.0),
            xs.last().copied().unwrap_or(1.0),
        );
        let x1 = if x1 > x0 { x1 } else { x0 + 1.0 };
        let cmax = n
            .points
            .iter()
            .flat_map(|p| p.critical.iter().copied())
            .filter(|v| v.is_finite())
            .fold(1.0_f64, f64::max);
        let ymax = (1.6 * cmax).max(4.0);
        let family = ("sans-serif", 14.0).into_font();
        let mut chart = m(ChartBuilder::on(root)
            .caption(&self.title, ("sans-serif", 20.0).into_font())
            .margin(20)
            .x_label_area_size(50)
            .y_label_area_size(60)
            .build_cartesian_2d(x0..x1, 0.0..ymax))?;
        m(chart
            .configure_mesh()
            .x_desc(n.parameter.clone())
            .y_desc("t = \u{2212}2 ln \u{03bb}")
            .label_style(family.clone())
            .axis_desc_style(family.clone())
            .draw())?;
        for (q, cl) in n.cls.iter().enumerate() {
            let col = COLORS[q % COLORS.len()];
            let pts: Vec<(f64, f64)> = n
                .points
                .iter()
                .filter(|p| p.critical[q].is_finite())
                .map(|p| (p.mu, p.critical[q].min(ymax)))
                .collect();
            m(chart.draw_series(AreaSeries::new(pts.clone(), 0.0, col.mix(0.12))))?;
            m(chart.draw_series(LineSeries::new(pts, col.stroke_width(2))))?
                .label(format!("belt {:.2}% (toys)", 100.0 * cl))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], col.stroke_width(2))
                });
            for (k, s) in n.intervals[q].segments.iter().enumerate() {
                let y = 0.03 * ymax * (q as f64 + 1.0);
                let e = PathElement::new(vec![(s[0], y), (s[1], y)], col.stroke_width(5));
                let series = m(chart.draw_series(std::iter::once(e)))?;
                if k == 0 {
                    series
                        .label(format!("{:.2}% interval", 100.0 * cl))
                        .legend(move |(x, y)| {
                            PathElement::new(vec![(x, y), (x + 20, y)], col.stroke_width(5))
                        });
                }
            }
        }
        let obs: Vec<(f64, f64)> = n
            .points
            .iter()
            .filter(|p| p.t_obs.is_finite())
            .map(|p| (p.mu, p.t_obs.min(ymax)))
            .collect();
        m(chart.draw_series(LineSeries::new(obs.clone(), BLACK.stroke_width(2))))?
            .label("observed profile scan")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.stroke_width(2)));
        m(chart.draw_series(
            obs.iter()
                .map(|&(x, y)| Circle::new((x, y), 3, BLACK.filled())),
        ))?;
        m(chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(family)
            .position(SeriesLabelPosition::UpperRight)
            .draw())?;
        Ok(())
    }
}
